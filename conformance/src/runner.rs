//! The one runner: scenario in, outcome out (Architecture Invariant: scenarios are data and
//! only this function executes them, whatever the target).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::exporter_run::{ExporterKind, run_exporter};
use crate::instance::{Count, TableApi, refresh_token};
use crate::scenario::{Dataset, Scenario};
use crate::target::{Credentials, Instance, TargetSpec};

/// Everything a run needs besides the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub target: TargetSpec,
    pub exporter: ExporterKind,
    pub credentials: Credentials,
    /// The repository's `fixtures/` directory.
    pub fixtures: PathBuf,
}

impl RunOptions {
    /// Embedded emulator, in-process exporter, fixtures of this checkout.
    pub fn embedded() -> RunOptions {
        RunOptions {
            target: TargetSpec::Embedded,
            exporter: ExporterKind::InProcess,
            credentials: Credentials::from_env(),
            fixtures: default_fixtures_dir(),
        }
    }
}

/// `fixtures/` of the checkout this crate was built from.
pub fn default_fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

/// How one scenario went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub description: String,
    /// Empty when the scenario passed.
    pub failures: Vec<String>,
    pub exporter_log: String,
    pub duration: Duration,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Fast timings so scenarios finish in seconds; a scenario's own `[exporter.config]` wins.
const TEST_TIMINGS: &str = "retry_delay_ms = 10\nretry_max_delay_ms = 100\npoll_interval_ms = 25\npoll_timeout_secs = 60\nrequest_timeout_secs = 30\n";

pub async fn run_scenario(scenario: &Scenario, options: &RunOptions) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        failures: Vec::new(),
        exporter_log: String::new(),
        duration: Duration::ZERO,
    };
    if let Err(error) = execute(scenario, options, &mut outcome).await {
        outcome.failures.push(format!("could not run: {error:#}"));
    }
    outcome.duration = started.elapsed();
    outcome
}

async fn execute(
    scenario: &Scenario,
    options: &RunOptions,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let work = tempfile::tempdir().context("cannot create a work directory")?;
    let instance = Instance::start(&options.target, options.credentials.clone()).await?;
    let table_api = TableApi::new(&instance)?;

    for record in &scenario.instance.records {
        table_api
            .insert(&record.table, &record.values)
            .await
            .with_context(|| format!("instance set-up: record in {}", record.table))?;
    }

    let token = match &scenario.exporter.token {
        Some(token) => token.clone(),
        None => refresh_token(&instance).await?,
    };
    let db = prepare_database(&scenario.dataset, &options.fixtures, work.path())?;
    let config = write_exporter_config(scenario, &instance.credentials, work.path())?;

    let mut args = vec![
        "-url".to_owned(),
        instance.url.clone(),
        "-user".to_owned(),
        instance.credentials.integration_user.clone(),
        "-token".to_owned(),
        token,
        "--db".to_owned(),
        db,
        "--config".to_owned(),
        config.display().to_string(),
    ];
    args.extend(scenario.exporter.args.iter().cloned());
    let run = run_exporter(&options.exporter, args).await?;
    outcome.exporter_log = run.log.clone();

    let expect = &scenario.expect;
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
    for check in &expect.tables {
        match table_api.count(&check.table, &check.query).await? {
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
    instance.stop().await
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
    scenario: &Scenario,
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
    for (key, value) in &scenario.exporter.config {
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
