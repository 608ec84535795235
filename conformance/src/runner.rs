//! The one runner: scenario in, outcome out (Architecture Invariant: scenarios are data and
//! only this function executes them, whatever the target).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::exporter_run::{ExporterKind, ExporterOutcome, run_exporter};
use crate::instance::{Count, TableApi, refresh_token};
use crate::scenario::{Dataset, Expect, Scenario};
use crate::target::{Credentials, Instance, TargetSpec};
use crate::{controls, snapshot};

/// Everything a run needs besides the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub target: TargetSpec,
    pub exporter: ExporterKind,
    pub credentials: Credentials,
    /// The repository's `fixtures/` directory.
    pub fixtures: PathBuf,
    /// Run scenarios marked `pending` too (they are reported, not run, otherwise).
    pub include_pending: bool,
    /// Write snapshot files instead of comparing with them.
    pub update_snapshots: bool,
}

impl RunOptions {
    /// Embedded emulator, in-process exporter, fixtures of this checkout.
    pub fn embedded() -> RunOptions {
        RunOptions {
            target: TargetSpec::Embedded,
            exporter: ExporterKind::InProcess,
            credentials: Credentials::from_env(),
            fixtures: default_fixtures_dir(),
            include_pending: false,
            update_snapshots: false,
        }
    }

    /// Whether the target has the emulator's `/_emulator/…` controls: the embedded one does,
    /// and a URL given with `--reset` is declared an emulator.
    pub fn has_controls(&self) -> bool {
        match &self.target {
            TargetSpec::Embedded => true,
            TargetSpec::Remote { reset, .. } => *reset,
        }
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.fixtures.join("scenarios").join("snapshots")
    }
}

/// `fixtures/` of the checkout this crate was built from.
pub fn default_fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

/// What became of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    /// Marked `pending` in the file: the behaviour is being built.
    Pending(String),
    /// Cannot run against this target (e.g. needs emulator controls).
    Skipped(String),
}

/// How one scenario went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub status: Status,
    /// Empty when the scenario passed.
    pub failures: Vec<String>,
    pub exporter_log: String,
    pub duration: Duration,
    /// What the target did, by aspect (`exit_code`, `import_runs`, `count …`, `snapshot …`):
    /// the facts `parity` compares between two targets.
    pub observed: BTreeMap<String, String>,
}

impl Outcome {
    /// An outcome for a scenario that could not even start.
    pub fn failed(name: &str, description: &str) -> Outcome {
        Outcome {
            name: name.to_owned(),
            description: description.to_owned(),
            tags: Vec::new(),
            status: Status::Failed,
            failures: Vec::new(),
            exporter_log: String::new(),
            duration: Duration::ZERO,
            observed: BTreeMap::new(),
        }
    }

    /// Passed, or not run for a reason that is not a failure (pending, skipped).
    pub fn passed(&self) -> bool {
        self.status != Status::Failed
    }
}

/// Fast timings so scenarios finish in seconds; a scenario's own `[exporter.config]` wins.
const TEST_TIMINGS: &str = "retry_delay_ms = 10\nretry_max_delay_ms = 100\npoll_interval_ms = 25\npoll_timeout_secs = 60\nrequest_timeout_secs = 30\n";

pub async fn run_scenario(scenario: &Scenario, options: &RunOptions) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        tags: scenario.tags.clone(),
        status: Status::Passed,
        failures: Vec::new(),
        exporter_log: String::new(),
        duration: Duration::ZERO,
        observed: BTreeMap::new(),
    };
    if let Some(reason) = not_run_because(scenario, options) {
        outcome.status = reason;
        return outcome;
    }
    if let Err(error) = execute(scenario, options, &mut outcome).await {
        outcome.failures.push(format!("could not run: {error:#}"));
    }
    if !outcome.failures.is_empty() {
        outcome.status = Status::Failed;
    }
    outcome.duration = started.elapsed();
    outcome
}

fn not_run_because(scenario: &Scenario, options: &RunOptions) -> Option<Status> {
    if let Some(reason) = &scenario.pending
        && !options.include_pending
    {
        return Some(Status::Pending(reason.clone()));
    }
    if let Some(reason) = scenario.needs_controls()
        && !options.has_controls()
    {
        return Some(Status::Skipped(format!(
            "{reason}, which this target is not known to have (give --reset for an emulator)"
        )));
    }
    None
}

async fn execute(
    scenario: &Scenario,
    options: &RunOptions,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let work = tempfile::tempdir().context("cannot create a work directory")?;
    let instance = Instance::start(&options.target, options.credentials.clone()).await?;
    let table_api = TableApi::new(&instance)?;
    set_up(scenario, &instance, &table_api).await?;

    let token = match &scenario.exporter.token {
        Some(token) => token.clone(),
        None => refresh_token(&instance).await?,
    };
    let db = prepare_database(&scenario.dataset, &options.fixtures, work.path())?;
    let mut base = vec![
        "-url".to_owned(),
        instance.url.clone(),
        "-user".to_owned(),
        instance.credentials.integration_user.clone(),
        "-token".to_owned(),
        token,
        "--db".to_owned(),
        db.clone(),
    ];
    for (i, earlier) in scenario.before.iter().enumerate() {
        let config = write_exporter_config(&earlier.config, &instance.credentials, work.path())?;
        let mut args = base.clone();
        args.extend(["--config".to_owned(), config.display().to_string()]);
        args.extend(earlier.args.iter().cloned());
        let run = run_exporter(&options.exporter, args).await?;
        outcome
            .observed
            .insert(format!("before[{i}].exit_code"), run.exit_code.to_string());
        if run.exit_code != earlier.exit_code {
            outcome.failures.push(format!(
                "earlier run {}: exit code: expected {}, got {}",
                i + 1,
                earlier.exit_code,
                run.exit_code
            ));
            outcome.exporter_log = run.log;
            return instance.stop().await;
        }
        if let Some(sql) = &earlier.then_sql {
            rusqlite::Connection::open(&db)?
                .execute_batch(sql)
                .with_context(|| format!("then_sql of earlier run {}", i + 1))?;
        }
        for update in &earlier.then_updates {
            table_api
                .update_where(&update.table, &update.query, &update.values)
                .await
                .with_context(|| format!("then_updates of earlier run {}", i + 1))?;
        }
        if let Some(seconds) = earlier.then_advance_seconds {
            controls::advance_clock(&instance.url, seconds).await?;
        }
    }
    let config = write_exporter_config(
        &scenario.exporter.config,
        &instance.credentials,
        work.path(),
    )?;
    base.extend(["--config".to_owned(), config.display().to_string()]);
    base.extend(scenario.exporter.args.iter().cloned());
    let run = run_exporter(&options.exporter, base).await?;
    outcome.exporter_log = run.log.clone();
    outcome
        .observed
        .insert("exit_code".into(), run.exit_code.to_string());
    check_exit_and_log(&scenario.expect, &run, outcome);
    check_tables(scenario, &table_api, outcome).await?;
    check_states(&scenario.expect, &table_api, outcome).await?;
    check_snapshots(scenario, options, &instance, &table_api, outcome).await?;
    instance.stop().await
}

/// The instance as the scenario wants it before the exporter runs.
async fn set_up(scenario: &Scenario, instance: &Instance, api: &TableApi) -> anyhow::Result<()> {
    let setup = &scenario.instance;
    for record in &setup.records {
        api.insert(&record.table, &record.values)
            .await
            .with_context(|| format!("instance set-up: record in {}", record.table))?;
    }
    for update in &setup.updates {
        api.update_where(&update.table, &update.query, &update.values)
            .await
            .context("instance set-up: update")?;
    }
    for (name, value) in &setup.properties {
        let values = BTreeMap::from([("value".to_owned(), value.clone())]);
        api.update_where("sys_properties", &format!("name={name}"), &values)
            .await
            .with_context(|| format!("instance set-up: property {name}"))?;
    }
    for (id, active) in &setup.plugins {
        let values = BTreeMap::from([("active".to_owned(), active.clone())]);
        api.update_where("sys_plugins", &format!("id={id}"), &values)
            .await
            .with_context(|| format!("instance set-up: plugin {id}"))?;
    }
    if let Some(now) = &setup.clock {
        controls::set_clock(&instance.url, now).await?;
    }
    if !scenario.fault.is_empty() {
        controls::install_faults(&instance.url, scenario.fault_seed, &scenario.fault).await?;
    }
    Ok(())
}

fn check_exit_and_log(expect: &Expect, run: &ExporterOutcome, outcome: &mut Outcome) {
    if run.exit_code != expect.exit_code {
        outcome.failures.push(format!(
            "exit code: expected {}, got {}",
            expect.exit_code, run.exit_code
        ));
    }
    for fragment in &expect.log_contains {
        if !run.log.contains(fragment.as_str()) {
            outcome.failures.push(format!("log lacks {fragment:?}"));
        }
    }
    for fragment in &expect.log_excludes {
        if run.log.contains(fragment.as_str()) {
            outcome.failures.push(format!("log contains {fragment:?}"));
        }
    }
    if let Some(failure) = out_of_order(&run.log, &expect.log_in_order) {
        outcome.failures.push(failure);
    }
}

async fn check_tables(
    scenario: &Scenario,
    table_api: &TableApi,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let expect = &scenario.expect;
    for check in &expect.tables {
        let count = table_api.count(&check.table, &check.query).await?;
        outcome.observed.insert(
            format!("count {}[{}]", check.table, check.query),
            format!("{count:?}"),
        );
        match count {
            Count::Rows(n) if n == check.count => {}
            Count::Rows(n) => outcome.failures.push(format!(
                "{} [{}]: expected {} rows, found {n}",
                check.table, check.query, check.count
            )),
            Count::InvalidTable => outcome.failures.push(format!(
                "{}: the instance does not know this table",
                check.table
            )),
        }
    }
    for check in &expect.records {
        let fields: Vec<&str> = check.values.keys().map(String::as_str).collect();
        let records = table_api
            .records(&check.table, &check.query, &fields, false, 1000)
            .await?;
        if records.len() as u64 != check.count {
            outcome.failures.push(format!(
                "{} [{}]: expected {} records, found {}",
                check.table,
                check.query,
                check.count,
                records.len()
            ));
        }
        for record in &records {
            for (field, want) in &check.values {
                let got = record.get(field).map(String::as_str).unwrap_or("<absent>");
                if got != want {
                    outcome.failures.push(format!(
                        "{} [{}]: {field} is {got:?}, expected {want:?}",
                        check.table, check.query
                    ));
                }
            }
        }
    }
    Ok(())
}

const RUNS: &str = "x_fls_flexera_fnms_import_run";
const TRANSACTIONS: &str = "x_fls_flexera_fnms_import_transaction";

/// `import_type:state` of every record of an app table.
async fn states(table_api: &TableApi, table: &str) -> anyhow::Result<Vec<String>> {
    let rows = table_api
        .records(table, "", &["import_type", "state"], false, 10_000)
        .await?;
    let mut states: Vec<String> = rows
        .iter()
        .map(|r| {
            let get = |f: &str| r.get(f).cloned().unwrap_or_default();
            format!("{}:{}", get("import_type"), get("state"))
        })
        .collect();
    states.sort();
    Ok(states)
}

async fn check_states(
    expect: &Expect,
    table_api: &TableApi,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let runs = states(table_api, RUNS).await?;
    outcome
        .observed
        .insert("import_runs".into(), runs.join(", "));
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for state in states(table_api, TRANSACTIONS).await? {
        *counted.entry(state).or_default() += 1;
    }
    outcome
        .observed
        .insert("transactions".into(), format!("{counted:?}"));
    if let Some(want) = &expect.import_runs {
        let mut want = want.clone();
        want.sort();
        if want != runs {
            outcome.failures.push(format!(
                "Import Runs: expected [{}], found [{}]",
                want.join(", "),
                runs.join(", ")
            ));
        }
    }
    if let Some(want) = &expect.transactions
        && *want != counted
    {
        outcome.failures.push(format!(
            "Import Transactions: expected {want:?}, found {counted:?}"
        ));
    }
    Ok(())
}

async fn check_snapshots(
    scenario: &Scenario,
    options: &RunOptions,
    instance: &Instance,
    table_api: &TableApi,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let host = instance
        .url
        .split("://")
        .nth(1)
        .unwrap_or(&instance.url)
        .to_owned();
    for (i, wanted) in scenario.expect.snapshots.iter().enumerate() {
        let fields: Vec<&str> = wanted.fields.iter().map(String::as_str).collect();
        let rows = table_api
            .records(&wanted.table, &wanted.query, &fields, false, 10_000)
            .await?;
        let text = snapshot::render(&wanted.table, &wanted.query, &wanted.fields, &rows, &host);
        outcome.observed.insert(
            format!("snapshot {}[{}]", wanted.table, wanted.query),
            text.clone(),
        );
        let file = snapshot::path(&options.snapshots_dir(), &scenario.name, &wanted.table, i);
        if let Err(failure) = snapshot::check(&file, &text, options.update_snapshots) {
            outcome.failures.push(failure);
        }
    }
    Ok(())
}

/// The first fragment of `order` not found after its predecessor, described.
fn out_of_order(log: &str, order: &[String]) -> Option<String> {
    let mut from = 0;
    for (i, fragment) in order.iter().enumerate() {
        match log[from..].find(fragment.as_str()) {
            Some(at) => from += at + fragment.len(),
            None if i == 0 => return Some(format!("log lacks {fragment:?}")),
            None => return Some(format!("log lacks {fragment:?} after {:?}", order[i - 1])),
        }
    }
    None
}

/// The database path handed to the exporter: a fresh SQLite file built from the data set, so
/// every scenario starts from the same FNMS state; or the scenario's literal `path`.
fn prepare_database(dataset: &Dataset, fixtures: &Path, work: &Path) -> anyhow::Result<String> {
    if let Some(path) = &dataset.path {
        return Ok(path.clone());
    }
    let fnms = fixtures.join("fnms");
    let schema = read(&fnms.join("schema.sql"))?;
    let data = read(&fnms.join(format!("{}.sql", dataset.fnms)))?;
    let path = work.join("fnms.sqlite");
    let connection = rusqlite::Connection::open(&path)?;
    connection.execute_batch(&schema).context("schema.sql")?;
    connection
        .execute_batch(&data)
        .with_context(|| format!("data set {}", dataset.fnms))?;
    if let Some(sql) = &dataset.sql {
        connection
            .execute_batch(sql)
            .context("scenario dataset.sql")?;
    }
    Ok(path.display().to_string())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The exporter's configuration file: OAuth client, fast timings, then the scenario's keys.
fn write_exporter_config(
    overrides: &toml::Table,
    credentials: &Credentials,
    work: &Path,
) -> anyhow::Result<PathBuf> {
    let mut config: toml::Table = toml::from_str(TEST_TIMINGS)?;
    config.insert(
        "oauth_client_id".into(),
        credentials.oauth_client_id.clone().into(),
    );
    config.insert(
        "oauth_client_secret".into(),
        credentials.oauth_client_secret.clone().into(),
    );
    for (key, value) in overrides {
        config.insert(key.clone(), value.clone());
    }
    let path = work.join("fnmp_servicenow_export.toml");
    std::fs::write(&path, toml::to_string(&config)?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::out_of_order;

    fn order(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn log_order_is_checked() {
        let log = "hardware inventory: done\ncontracts: done\ninstalled applications: done\n";
        assert_eq!(
            out_of_order(log, &order(&["hardware", "contracts", "installed"])),
            None
        );
        let wrong = out_of_order(log, &order(&["contracts", "hardware"])).expect("out of order");
        assert!(
            wrong.contains("\"hardware\" after \"contracts\""),
            "{wrong}"
        );
        assert!(out_of_order(log, &order(&["assets"])).is_some());
    }
}
