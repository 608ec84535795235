//! `fnmp_servicenow_export`: a re-implementation of FlexNet Manager Suite's export utility
//! for ServiceNow's Flexera Integration app.
//!
//! It reads an FNMS operations database and, in the documented order, checks the licence,
//! tests the credentials, checks that the instance can accept an import, checks the database,
//! then exports hardware inventory, contracts and installed applications as segmented,
//! retried, polled Import Runs (docs/exporter.md; the wire contract is docs/wire-protocol.md).
//!
//! The library's whole public surface is [`run`] and [`exit_codes`]: the binary is a thin
//! wrapper, and the conformance suite calls [`run`] in-process. `run` keeps no global state, so
//! several runs may proceed in one process at once.
//!
//! Module map: `cli` (documented spellings → clap), `config` (flags > env > file > defaults),
//! `source` (the FNMS database), `payload` (XML segments), `transport` (OAuth, endpoint,
//! Table API, retries), `process` (the ordered steps), `error` (failures and their exit
//! codes), `log` (the run's log).

mod cli;
mod clock;
mod config;
mod error;
mod log;
mod payload;
mod process;
mod source;
mod transport;

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;

use clap::Parser;
use clap::error::ErrorKind;

use crate::error::ExportError;

/// Process exit codes of `fnmp_servicenow_export` (documented in `--help` and docs/exporter.md).
pub mod exit_codes {
    /// The export (or the connection test) succeeded.
    pub const SUCCESS: i32 = 0;
    /// The export failed or was abandoned: a pre-flight check failed, segment tries were
    /// exhausted, return code 30, or an Import Run failed or did not complete in time.
    pub const EXPORT_FAILED: i32 = 1;
    /// Bad command line or configuration; nothing was attempted.
    pub const USAGE: i32 = 2;
}

/// Runs the utility as if from the command line. `args` includes the program name.
/// Everything the utility reports (its log) is written to `log`. Returns the process exit code.
/// Never calls `std::process::exit`, never installs global state (no global tracing subscriber,
/// no environment mutation), so several runs can happen in one process concurrently.
pub fn run(args: Vec<OsString>, log: Box<dyn Write + Send>) -> i32 {
    run_with_clock(
        args,
        log::Log::new(log),
        Arc::new(clock::SystemClock::new()),
    )
}

/// [`run`] logging to stderr, as the binary does: when stderr is a terminal, each data type
/// shows a progress bar (records, rate, ETA, segments, retries) instead of progress lines.
pub fn run_on_stderr(args: Vec<OsString>) -> i32 {
    use std::io::IsTerminal;
    let stderr = std::io::stderr();
    let log = if stderr.is_terminal() {
        log::Log::on_terminal(Box::new(stderr))
    } else {
        log::Log::new(Box::new(stderr))
    };
    run_with_clock(args, log, Arc::new(clock::SystemClock::new()))
}

/// [`run`] with the clock every wait goes through (back-off, `Retry-After`, polling).
fn run_with_clock(args: Vec<OsString>, mut log: log::Log, clock: Arc<dyn clock::Clock>) -> i32 {
    let args = cli::translate_documented_options(args);
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            log.raw(&err.render().to_string());
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => exit_codes::SUCCESS,
                _ => exit_codes::USAGE,
            };
        }
    };
    let settings = match config::Settings::resolve(cli) {
        Ok(settings) => settings,
        Err(error) => {
            log.error(&error);
            return error.exit_code();
        }
    };
    log.set_level(settings.log_level);
    if let Some(path) = &settings.log_file {
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => log.set_file(file),
            Err(source) => {
                let error = ExportError::LogFile {
                    path: path.clone(),
                    source,
                };
                log.error(&error);
                return error.exit_code();
            }
        }
    }
    match process::run(&settings, &mut log, clock) {
        Ok(()) => exit_codes::SUCCESS,
        Err(error) => error.exit_code(),
    }
}

/// Hooks for the crate's own integration tests (`tests/it`). Not a stable API.
#[doc(hidden)]
pub mod testing {
    use std::borrow::Cow;
    use std::path::Path;

    use std::ffi::OsString;
    use std::io::Write;
    use std::sync::Arc;

    pub use crate::clock::{Clock, VirtualClock};
    use crate::payload::{SegmentWriter, stream_segments};
    use crate::source::{DataType, Database, FieldValue, Source};

    /// [`crate::run`] on the given clock: tests of back-off, `Retry-After` and polling use a
    /// [`VirtualClock`] and take milliseconds.
    pub fn run_with_clock(
        args: Vec<OsString>,
        log: Box<dyn Write + Send>,
        clock: Arc<dyn Clock>,
    ) -> i32 {
        super::run_with_clock(args, crate::log::Log::new(log), clock)
    }

    fn data_type(name: &str) -> Result<DataType, String> {
        DataType::ALL
            .into_iter()
            .find(|dt| dt.history_key() == name)
            .ok_or_else(|| format!("unknown data type '{name}'"))
    }

    /// The field names of a data type (`inventory`, `contract`, `application`), in order.
    pub fn field_names(data_type_name: &str) -> Result<Vec<&'static str>, String> {
        Ok(data_type(data_type_name)?
            .fields()
            .iter()
            .map(|f| f.name)
            .collect())
    }

    /// The segments (XML, record count, last flag) a full export of the data type produces
    /// from the database at `db` (a SQLite file or a `.sql` script).
    pub fn segments(
        db: &Path,
        data_type_name: &str,
        segment_size: usize,
    ) -> Result<Vec<(String, usize, bool)>, String> {
        let dt = data_type(data_type_name)?;
        let db = Database::open(&Source::from_path(db.to_path_buf())).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        stream_segments(&db, dt, None, false, segment_size, |segment, last| {
            out.push((segment.xml, segment.records, last));
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// One record: its non-NULL fields as (name, text).
    pub type Record = Vec<(&'static str, String)>;

    /// What the exporter would send for one data type from the SQLite file `db`, exactly as a
    /// run does (snapshot, records changed since `since` or all, bookkeeping compared when the
    /// data type has a recorded success); then records the success at `record_at`, as a run
    /// does once the Import Run succeeded.
    pub fn export_records(
        db: &Path,
        data_type_name: &str,
        since: Option<&str>,
        record_at: &str,
    ) -> Result<Vec<Record>, String> {
        let dt = data_type(data_type_name)?;
        let db = Database::open(&Source::File(db.to_path_buf())).map_err(|e| e.to_string())?;
        let parse = |t: &str| crate::source::parse_timestamp(t).ok_or(format!("bad time '{t}'"));
        let since = since.map(parse).transpose()?;
        let compare = since.is_some() && db.has_bookkeeping(dt).map_err(|e| e.to_string())?;
        db.snapshot(dt).map_err(|e| e.to_string())?;
        let mut records = Vec::new();
        db.for_each_record(dt, since, compare, |values| {
            let record = dt
                .fields()
                .iter()
                .zip(values)
                .filter_map(|(field, value)| {
                    let mut text = String::new();
                    crate::payload::write_field_text(&mut text, field.format, &value)?;
                    Some((field.name, text))
                })
                .collect();
            records.push(record);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        db.record_success(dt, parse(record_at)?)
            .map_err(|e| e.to_string())?;
        Ok(records)
    }

    /// One segment of the given records, each a list of optional field texts in field order.
    pub fn write_segment(
        data_type_name: &str,
        records: &[Vec<Option<String>>],
    ) -> Result<String, String> {
        let mut writer = SegmentWriter::new(data_type(data_type_name)?);
        for record in records {
            let mut values = record.iter().map(|v| match v {
                Some(text) => FieldValue::Text(Cow::Borrowed(text.as_str())),
                None => FieldValue::Null,
            });
            writer.push_record(&mut values);
        }
        Ok(writer.finish().xml)
    }
}
