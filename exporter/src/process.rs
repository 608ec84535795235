//! The documented process, step by step and in the documented order [EXP-22R2]:
//! licence check → credential test → instance readiness check → database check → export of
//! hardware inventory, contracts, installed applications (each one Import Run: segments,
//! then `export_status` polling). Any failure abandons the run; later data types are skipped.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, Timelike, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::{ChangeOptions, DEFAULT_ENDPOINT, Settings};
use crate::error::ExportError;
use crate::log::Log;
use crate::payload::{Segment, stream_segments, stream_segments_ahead};
use crate::source::{DataType, Database};
use crate::transport::{Failure, Instance, RetryPolicy, TableAnswer, Transaction};

/// The protocol version this exporter speaks (wire-protocol §7).
const PROTOCOL_VERSION: i64 = 1;

/// Where a data type's differential baseline comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Baseline {
    /// Send every row.
    All { reason: &'static str },
    /// Send rows with `UpdatedDate >= at`.
    Since { at: NaiveDateTime, reason: String },
}

impl Baseline {
    pub(crate) fn since(&self) -> Option<NaiveDateTime> {
        match self {
            Baseline::All { .. } => None,
            Baseline::Since { at, .. } => Some(*at),
        }
    }

    fn describe(&self) -> String {
        match self {
            Baseline::All { reason } => format!("full export ({reason})"),
            Baseline::Since { at, reason } => {
                format!(
                    "changes since {} UTC ({reason})",
                    at.format("%Y-%m-%d %H:%M:%S")
                )
            }
        }
    }
}

/// The baseline rule: `-changes false` → everything; else `-changesSince`, else now minus
/// `-changesPeriod` days, else the last successful export of the data type, else everything.
pub(crate) fn select_baseline(
    changes: &ChangeOptions,
    now: NaiveDateTime,
    last_success: Option<NaiveDateTime>,
) -> Baseline {
    if !changes.differential {
        return Baseline::All {
            reason: "-changes false",
        };
    }
    if let Some(date) = changes.since {
        return Baseline::Since {
            at: date.and_time(chrono::NaiveTime::MIN),
            reason: "-changesSince".into(),
        };
    }
    if let Some(days) = changes.period_days {
        return Baseline::Since {
            at: now - chrono::Duration::days(i64::from(days)),
            reason: format!("-changesPeriod {days} days"),
        };
    }
    match last_success {
        Some(at) => Baseline::Since {
            at,
            reason: "last successful export".into(),
        },
        None => Baseline::All {
            reason: "no previous successful export recorded",
        },
    }
}

/// How one data type's export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    Skipped,
    /// `--dry-run`: written to the folder, nothing sent.
    Written,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Written => "written (dry run)",
        }
    }
}

/// What one data type's export came to (one line of the final summary).
struct TypeReport {
    data_type: DataType,
    records: usize,
    segments: u64,
    retries: u64,
    import_run: Option<String>,
    duration: Duration,
    outcome: Outcome,
}

impl TypeReport {
    fn new(data_type: DataType, outcome: Outcome) -> TypeReport {
        TypeReport {
            data_type,
            records: 0,
            segments: 0,
            retries: 0,
            import_run: None,
            duration: Duration::ZERO,
            outcome,
        }
    }

    fn line(&self) -> String {
        format!(
            "summary: {}: {} {}, {} {}, {} {}, import run {}, {:.1} s, {}",
            self.data_type.label(),
            self.records,
            plural(self.records as u64, "record", "records"),
            self.segments,
            plural(self.segments, "segment", "segments"),
            self.retries,
            plural(self.retries, "retry", "retries"),
            self.import_run.as_deref().unwrap_or("-"),
            self.duration.as_secs_f64(),
            self.outcome.label()
        )
    }
}

/// The documented caution of excluding hardware inventory [CFG-FNMS-22R2].
const WITHOUT_INVENTORY_CAUTION: &str = "hardware inventory is excluded (-WithHardwareInventory \
     false): contracts and installed applications depend on computers existing in ServiceNow, so \
     this may leave gaps in the contract and software records imported; Flexera recommends \
     exporting all data types";

/// Runs the whole process and logs its outcome. Returns the failure, already logged.
pub(crate) fn run(
    settings: &Settings,
    log: &mut Log,
    clock: Arc<dyn Clock>,
) -> Result<(), ExportError> {
    let mode = if settings.connection_test {
        "connection test"
    } else if settings.dry_run.is_some() {
        "dry run"
    } else {
        "export"
    };
    log.info(format!(
        "{mode} started: instance {}, user {}, database '{}'",
        settings.url,
        settings.user,
        settings.source.path().display()
    ));
    if !settings.connection_test && !settings.data_types.contains(&DataType::HardwareInventory) {
        log.warn(WITHOUT_INVENTORY_CAUTION);
    }
    let mut reports = Vec::new();
    let result = steps(settings, log, &clock, &mut reports);
    for report in &reports {
        log.info(report.line());
    }
    match &result {
        Ok(()) if settings.connection_test => log.info("connection test succeeded"),
        Ok(()) => log.info(summary(mode, &reports)),
        Err(error) => {
            log.error(error);
            let skipped: Vec<&str> = reports
                .iter()
                .filter(|r| r.outcome == Outcome::Skipped)
                .map(|r| r.data_type.label())
                .collect();
            if !skipped.is_empty() {
                log.warn(format!("skipped remaining exports: {}", skipped.join(", ")));
            }
            log.error(format!("{mode} failed (exit code {})", error.exit_code()));
        }
    }
    result
}

fn summary(mode: &str, reports: &[TypeReport]) -> String {
    if reports.is_empty() {
        return format!("{mode} succeeded: no data types selected");
    }
    let parts: Vec<String> = reports
        .iter()
        .map(|r| {
            format!(
                "{} {} {} in {} {}",
                r.data_type.label(),
                r.records,
                plural(r.records as u64, "record", "records"),
                r.segments,
                plural(r.segments, "segment", "segments")
            )
        })
        .collect();
    format!("{mode} succeeded: {}", parts.join(", "))
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn steps(
    settings: &Settings,
    log: &mut Log,
    clock: &Arc<dyn Clock>,
    reports: &mut Vec<TypeReport>,
) -> Result<(), ExportError> {
    let run_started = Utc::now().naive_utc();
    let mut instance = Instance::new(crate::transport::InstanceConfig {
        url: &settings.url,
        endpoint: DEFAULT_ENDPOINT,
        client_id: &settings.client_id,
        client_secret: &settings.client_secret,
        refresh_token: &settings.refresh_token,
        ca_file: settings.ca_file.as_deref(),
        request_timeout: settings.tuning.request_timeout,
        policy: RetryPolicy::new(&settings.tuning, clock.clone()),
    })
    .map_err(ExportError::Usage)?;

    // 1. Licence check (reads the operations database, so opening it is reported here).
    log.info("starting licence check");
    let mut db = Database::open(&settings.source)?;
    db.check_licence(run_started.date())?;
    log.info("licence check passed");

    let endpoint = match (&settings.endpoint, db.recorded_endpoint()) {
        (Some(flag), _) => flag.clone(),
        (None, Some(recorded)) => recorded,
        (None, None) => DEFAULT_ENDPOINT.to_owned(),
    };
    instance.set_endpoint(&endpoint);
    log.debug(format!("endpoint: /{}", instance.endpoint_path()));

    if settings.dry_run.is_none() {
        // 2. Credential test.
        log.info("starting credential test");
        credential_test(&mut instance, log)?;
        log.info("credential test passed");
        if settings.connection_test {
            return Ok(());
        }

        // 3. Instance readiness.
        log.info("starting instance readiness check");
        readiness_check(&mut instance, log)?;
        log.info("instance readiness check passed");
    }

    // 4. Database check, including the baselines it will use.
    log.info("starting database check");
    db.check_schema(&settings.data_types)?;
    let mut plan = Vec::new();
    for &dt in &settings.data_types {
        let needs_history = settings.changes.differential
            && settings.changes.since.is_none()
            && settings.changes.period_days.is_none();
        let last = if needs_history {
            db.last_success(dt)?
        } else {
            None
        };
        let baseline = select_baseline(&settings.changes, run_started, last);
        let compare = baseline.since().is_some() && db.has_bookkeeping(dt)?;
        plan.push((dt, baseline, compare));
    }
    log.info("database check passed");

    if let Some(dir) = &settings.dry_run {
        return dry_run(&db, settings, log, clock.as_ref(), dir, &plan, reports);
    }

    // 5. Export, in the documented order; the first failure skips the rest.
    instance.end_preflight();
    let mut history_note_logged = false;
    for (index, (dt, baseline, compare)) in plan.iter().enumerate() {
        let mut report = TypeReport::new(*dt, Outcome::Failed);
        let started = clock.elapsed();
        let retries_before = instance.retries();
        let result = export_data_type(
            &mut db,
            &mut instance,
            settings,
            log,
            clock.as_ref(),
            (baseline, *compare),
            &mut report,
        );
        report.retries = instance.retries() - retries_before;
        report.duration = clock.elapsed().saturating_sub(started);
        reports.push(report);
        if let Err(error) = result {
            reports.extend(
                plan[index + 1..]
                    .iter()
                    .map(|(dt, _, _)| TypeReport::new(*dt, Outcome::Skipped)),
            );
            return Err(error);
        }
        if !db.is_persistent() && !history_note_logged {
            log.info(format!(
                "export history not persisted: '{}' is loaded into memory for this run",
                db.path().display()
            ));
            history_note_logged = true;
        }
    }
    Ok(())
}

fn credential_test(instance: &mut Instance, log: &mut Log) -> Result<(), ExportError> {
    instance
        .authorise(log)
        .map_err(|f| ExportError::Credential(format!("token request: {f}")))?;
    let transaction_id = Uuid::new_v4().to_string();
    let result = instance
        .transact(
            log,
            "connection test",
            &Transaction::connection_test(&transaction_id),
        )
        .map_err(|f| ExportError::Credential(format!("connection_test: {f}")))?;
    match result.protocol_version {
        Some(PROTOCOL_VERSION) => Ok(()),
        Some(other) => Err(ExportError::Credential(format!(
            "the instance speaks protocol version {other}; this exporter knows version {PROTOCOL_VERSION}"
        ))),
        None => Err(ExportError::Credential(
            "the instance did not report a protocol version".into(),
        )),
    }
}

/// The four readiness queries of wire-protocol §5.
fn readiness_check(instance: &mut Instance, log: &mut Log) -> Result<(), ExportError> {
    struct Check {
        name: &'static str,
        table: &'static str,
        query: &'static str,
        /// true: a record must exist; false: none may exist.
        must_exist: bool,
        missing: &'static str,
    }
    const CHECKS: [Check; 4] = [
        Check {
            name: "Scheduled Data Import",
            table: "scheduled_import_set",
            query: "name=FNMS Import Schedule^active=true",
            must_exist: true,
            missing: "no active Scheduled Data Import 'FNMS Import Schedule' on the instance",
        },
        Check {
            name: "Data Source",
            table: "sys_data_source",
            query: "name=FNMS Data Source",
            must_exist: true,
            missing: "no Data Source 'FNMS Data Source' on the instance",
        },
        Check {
            name: "Import Runs",
            table: "x_fls_flexera_fnms_import_run",
            query: "state!=succeeded^state!=failed",
            must_exist: false,
            missing: "",
        },
        Check {
            name: "Import Transactions",
            table: "x_fls_flexera_fnms_import_transaction",
            query: "state!=succeeded^state!=failed",
            must_exist: false,
            missing: "",
        },
    ];
    for check in &CHECKS {
        let TableAnswer { count, first } = instance
            .table_query(log, check.name, check.table, check.query)
            .map_err(|f| ExportError::NotReady(format!("{}: {f}", check.name)))?;
        log.debug(format!("{}: {count} matching record(s)", check.name));
        if check.must_exist && count == 0 {
            return Err(ExportError::NotReady(format!(
                "{}: {}",
                check.name, check.missing
            )));
        }
        if !check.must_exist && count > 0 {
            let field = |name: &str| {
                first
                    .as_ref()
                    .and_then(|r| r.get(name))
                    .and_then(|v| {
                        v.as_str()
                            .or_else(|| v.get("value").and_then(|v| v.as_str()))
                    })
                    .unwrap_or("?")
                    .to_owned()
            };
            let more = if count > 1 {
                format!(" (and {} more)", count - 1)
            } else {
                String::new()
            };
            return Err(ExportError::NotReady(format!(
                "{}: an import is still in progress: {} is {}{more}",
                check.name,
                field("number"),
                field("state")
            )));
        }
    }
    Ok(())
}

/// `--dry-run DIR`: each data type's segments as `DIR/<transactionType>-NNNNN.xml` and a
/// `DIR/manifest.json` listing them; nothing is sent and no baseline is recorded.
fn dry_run(
    db: &Database,
    settings: &Settings,
    log: &mut Log,
    clock: &dyn Clock,
    dir: &Path,
    plan: &[(DataType, Baseline, bool)],
    reports: &mut Vec<TypeReport>,
) -> Result<(), ExportError> {
    let cannot = |path: &Path, e: std::io::Error| {
        ExportError::Usage(format!("--dry-run: cannot write '{}': {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| cannot(dir, e))?;
    let mut manifest = Vec::new();
    for (dt, baseline, compare) in plan {
        let mut report = TypeReport::new(*dt, Outcome::Written);
        let started = clock.elapsed();
        let mut files = Vec::new();
        let size = settings.tuning.segment_size;
        stream_segments(
            db,
            *dt,
            baseline.since(),
            *compare,
            size,
            |segment, last| {
                report.segments += 1;
                report.records += segment.records;
                let name = format!("{}-{:05}.xml", dt.transaction_type(), report.segments);
                let path = dir.join(&name);
                std::fs::write(&path, &segment.xml).map_err(|e| cannot(&path, e))?;
                files.push(serde_json::json!({
                    "file": name,
                    "segmentNumber": report.segments,
                    "lastSegment": last,
                    "recordCount": segment.records,
                }));
                Ok(())
            },
        )?;
        report.duration = clock.elapsed().saturating_sub(started);
        log.info(format!(
            "{}: wrote {} {} in {} {} to '{}' ({})",
            dt.label(),
            report.records,
            plural(report.records as u64, "record", "records"),
            report.segments,
            plural(report.segments, "segment", "segments"),
            dir.display(),
            baseline.describe()
        ));
        manifest.push(serde_json::json!({
            "dataType": dt.history_key(),
            "transactionType": dt.transaction_type(),
            "baseline": baseline.since().map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string()),
            "records": report.records,
            "segments": files,
        }));
        reports.push(report);
    }
    let path = dir.join("manifest.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({ "dataTypes": manifest }))
        .unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|e| cannot(&path, e))
}

/// Step 5 for one data type: one Import Run, its segments, then polling until complete.
/// Fills `report` as it goes, so a failure still reports how far it got.
fn export_data_type(
    db: &mut Database,
    instance: &mut Instance,
    settings: &Settings,
    log: &mut Log,
    clock: &dyn Clock,
    (baseline, compare): (&Baseline, bool),
    report: &mut TypeReport,
) -> Result<(), ExportError> {
    let dt = report.data_type;
    db.snapshot(dt)?;
    let label = dt.label();
    let started = Utc::now()
        .naive_utc()
        .with_nanosecond(0)
        .unwrap_or_default();
    let import_run_id = Uuid::new_v4().to_string();
    log.info(format!(
        "{label}: starting export, import run id {import_run_id}, {}",
        baseline.describe()
    ));
    let since = clock.elapsed();
    let bar = progress_bar(db, log, dt, baseline, compare);
    log.set_bar(bar.clone());
    let streamed = stream_segments_ahead(
        db,
        dt,
        (baseline.since(), compare),
        settings.tuning.segment_size,
        |segment: Segment, last: bool| {
            report.segments += 1;
            report.records += segment.records;
            let number = send_segment(
                instance,
                log,
                dt,
                &import_run_id,
                report.segments,
                last,
                &segment,
            )?;
            if report.import_run.is_none() {
                report.import_run = number;
            }
            if let Some(bar) = &bar {
                bar.set_position(report.records as u64);
                let rate = report.records as f64 / bar.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "{rate:.0} records/s, {} {}, {} {}",
                    report.segments,
                    plural(report.segments, "segment", "segments"),
                    instance.retries(),
                    plural(instance.retries(), "retry", "retries")
                ));
            } else if report
                .segments
                .is_multiple_of(settings.tuning.progress_every)
                && !last
            {
                let seconds = clock
                    .elapsed()
                    .saturating_sub(since)
                    .as_secs_f64()
                    .max(0.001);
                log.info(format!(
                    "{label}: {} segments sent, {} records, {:.0} records/s, {} retries so far",
                    report.segments,
                    report.records,
                    report.records as f64 / seconds,
                    instance.retries()
                ));
            }
            Ok(())
        },
    );
    let polled = streamed.and_then(|()| {
        if let Some(bar) = &bar {
            bar.set_message("waiting for the import run");
        }
        poll_until_complete(instance, settings, log, clock, dt, &import_run_id)
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
        log.set_bar(None);
    }
    let number = polled?;
    if number.is_some() {
        report.import_run = number;
    }
    let run_number = report
        .import_run
        .clone()
        .unwrap_or_else(|| import_run_id.clone());
    report.import_run = Some(run_number.clone());
    report.outcome = Outcome::Succeeded;
    log.info(format!(
        "{label}: exported {} {} in {} {}; import run {run_number} succeeded",
        report.records,
        plural(report.records as u64, "record", "records"),
        report.segments,
        plural(report.segments, "segment", "segments"),
    ));
    if let Err(e) = db.record_success(dt, started) {
        log.warn(format!(
            "{label}: could not record the export in ServiceNowExportHistory: {e}"
        ));
    }
    Ok(())
}

/// On a terminal, a bar for the data type: records of the total, rate, ETA, segments, retries.
fn progress_bar(
    db: &Database,
    log: &Log,
    dt: DataType,
    baseline: &Baseline,
    compare: bool,
) -> Option<indicatif::ProgressBar> {
    if !log.draws_bars() {
        return None;
    }
    let total = db.count_records(dt, baseline.since(), compare).ok()?;
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>22} [{bar:30}] {pos}/{len} records, ETA {eta}, {msg}",
    )
    .ok()?
    .progress_chars("=> ");
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    )
    .with_style(style)
    .with_prefix(dt.label());
    Some(bar)
}

/// Sends one segment with the policy's retries; returns the Import Run number it reports.
fn send_segment(
    instance: &mut Instance,
    log: &mut Log,
    dt: DataType,
    import_run_id: &str,
    number: u64,
    last: bool,
    segment: &Segment,
) -> Result<Option<String>, ExportError> {
    let fail = |reason: String| ExportError::Export {
        data_type: dt.label(),
        reason,
    };
    let transaction_id = Uuid::new_v4().to_string();
    let transaction = Transaction::segment(
        &transaction_id,
        dt.transaction_type(),
        import_run_id,
        number,
        last,
        segment.records,
        &segment.xml,
    );
    let what = format!("{} segment {number}", dt.label());
    let result = instance
        .transact(log, &what, &transaction)
        .map_err(|failure| match failure {
            Failure::Abandoned(reason) => fail(format!(
                "segment {number} refused with {reason}; export abandoned"
            )),
            other => fail(format!("segment {number} {other}")),
        })?;
    log.debug(format!(
        "{what}: {} records accepted as {} of {}{}",
        segment.records,
        result.import_transaction.as_deref().unwrap_or("?"),
        result.import_run.as_deref().unwrap_or("?"),
        if result.duplicate == Some(true) {
            " (duplicate)"
        } else {
            ""
        }
    ));
    Ok(result.import_run)
}

/// Polls `export_status` every `poll_interval` until the run is complete, logging each change
/// of state. Returns the Import Run's number on success.
fn poll_until_complete(
    instance: &mut Instance,
    settings: &Settings,
    log: &mut Log,
    clock: &dyn Clock,
    dt: DataType,
    import_run_id: &str,
) -> Result<Option<String>, ExportError> {
    let label = dt.label();
    let fail = |reason: String| ExportError::Export {
        data_type: label,
        reason,
    };
    let deadline = clock.elapsed() + settings.tuning.poll_timeout;
    let what = format!("{label} status");
    let mut last_state = String::new();
    loop {
        let transaction_id = Uuid::new_v4().to_string();
        let result = instance
            .transact(
                log,
                &what,
                &Transaction::export_status(&transaction_id, import_run_id),
            )
            .map_err(|f| fail(format!("export_status {f}")))?;
        let state = result.state.as_deref().unwrap_or("unknown");
        let number = result
            .import_run
            .clone()
            .unwrap_or_else(|| import_run_id.to_owned());
        let counts = result
            .transactions
            .as_ref()
            .map(|t| format!(" (transactions: {t})"))
            .unwrap_or_default();
        if state != last_state {
            log.info(format!("{label}: import run {number} is {state}{counts}"));
            state.clone_into(&mut last_state);
        } else {
            log.debug(format!("{label}: import run {number} is {state}{counts}"));
        }
        let complete = result.complete == Some(true) || matches!(state, "succeeded" | "failed");
        if complete {
            if state == "succeeded" {
                return Ok(result.import_run);
            }
            let message = result
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return Err(fail(format!("import run {number} {state}{message}")));
        }
        if clock.elapsed() + settings.tuning.poll_interval > deadline {
            return Err(fail(format!(
                "import run {number} did not complete within {} s (last state: {state})",
                settings.tuning.poll_timeout.as_secs()
            )));
        }
        clock.sleep(settings.tuning.poll_interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").expect("timestamp")
    }

    fn changes(differential: bool, period_days: Option<u32>, since: Option<&str>) -> ChangeOptions {
        ChangeOptions {
            differential,
            period_days,
            since: since.map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")),
        }
    }

    #[track_caller]
    fn check(changes: ChangeOptions, last: Option<&str>, expected: Option<&str>) {
        let now = at("2026-11-28 03:00:00");
        let baseline = select_baseline(&changes, now, last.map(at));
        assert_eq!(baseline.since(), expected.map(at), "{baseline:?}");
    }

    #[test]
    fn changes_false_is_a_full_export_whatever_else_is_given() {
        check(
            changes(false, Some(7), Some("2026-01-01")),
            Some("2026-11-20 00:00:00"),
            None,
        );
    }

    #[test]
    fn changes_since_wins() {
        check(
            changes(true, Some(7), Some("2026-11-19")),
            Some("2026-11-20 00:00:00"),
            Some("2026-11-19 00:00:00"),
        );
    }

    #[test]
    fn changes_period_counts_back_from_now() {
        check(
            changes(true, Some(7), None),
            Some("2026-11-27 00:00:00"),
            Some("2026-11-21 03:00:00"),
        );
        check(
            changes(true, Some(0), None),
            None,
            Some("2026-11-28 03:00:00"),
        );
    }

    #[test]
    fn history_is_the_default_baseline() {
        check(
            changes(true, None, None),
            Some("2026-11-21 03:00:07"),
            Some("2026-11-21 03:00:07"),
        );
    }

    #[test]
    fn no_history_means_full_export() {
        check(changes(true, None, None), None, None);
    }
}
