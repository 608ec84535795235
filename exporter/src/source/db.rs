//! Opening the operations database, the checks that read it, the baseline history, and
//! the streaming of records.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::{DataType, Source};
use crate::error::ExportError;

/// The schema version this exporter reads (`DatabaseConfiguration.SchemaVersion`).
pub(crate) const SCHEMA_VERSION: &str = "1";

/// Tables read whatever the selected data types.
const COMMON_TABLES: &[&str] = &[
    "DatabaseConfiguration",
    "LicenseOption",
    "ServiceNowExportHistory",
];

/// The exporter's own tables beside `ServiceNowExportHistory` (docs/fnms-database.md): what
/// the last successful export of each data type sent, so that the next differential export
/// can tell removed computers, changed contract coverage and renamed applications.
const BOOKKEEPING_TABLES: &str = "
CREATE TABLE IF NOT EXISTS ServiceNowExportedComputer (
    ComplianceComputerID INTEGER PRIMARY KEY,
    ComputerName         TEXT,
    SerialNo             TEXT
);
CREATE TABLE IF NOT EXISTS ServiceNowExportedCoverage (
    ContractID           INTEGER NOT NULL,
    ComplianceComputerID INTEGER NOT NULL,
    PRIMARY KEY (ContractID, ComplianceComputerID)
);
CREATE TABLE IF NOT EXISTS ServiceNowExportedTitle (
    SoftwareTitleID INTEGER PRIMARY KEY,
    FullName        TEXT,
    Publisher       TEXT,
    Version         TEXT,
    Edition         TEXT
);
CREATE TABLE IF NOT EXISTS ServiceNowExportBookkeeping (
    DataType    TEXT PRIMARY KEY,
    RecordedUTC TEXT NOT NULL
);";

/// Removed computers: exported before, gone from `ComplianceComputer` now. Same columns as
/// the inventory query, `Removed` = 'true'.
const REMOVED_COMPUTERS: &str = "
SELECT e.ComplianceComputerID, e.ComputerName, NULL, NULL, NULL, NULL, NULL, NULL, e.SerialNo,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'true'
FROM ServiceNowExportedComputer e
WHERE NOT EXISTS (SELECT 1 FROM ComplianceComputer c
                  WHERE c.ComplianceComputerID = e.ComplianceComputerID)
ORDER BY e.ComplianceComputerID";

/// The bookkeeping table of a data type and the query of its current state.
fn bookkeeping(dt: DataType) -> (&'static str, &'static str) {
    match dt {
        DataType::HardwareInventory => (
            "ServiceNowExportedComputer",
            "SELECT ComplianceComputerID, ComputerName, SerialNo FROM ComplianceComputer",
        ),
        DataType::Contracts => (
            "ServiceNowExportedCoverage",
            "SELECT ContractID, ComplianceComputerID FROM ContractComplianceComputer",
        ),
        DataType::InstalledApplications => (
            "ServiceNowExportedTitle",
            "SELECT t.SoftwareTitleID, t.FullName, p.Name, t.Version, t.Edition
             FROM SoftwareTitle t LEFT JOIN Publisher p ON p.PublisherID = t.PublisherID",
        ),
    }
}

/// Timestamp format of `UpdatedDate` and `LastSuccessUTC` (UTC).
pub(crate) const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// One field value of a record, as read from the database.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(Cow<'a, str>),
}

impl<'a> From<ValueRef<'a>> for FieldValue<'a> {
    fn from(value: ValueRef<'a>) -> Self {
        match value {
            ValueRef::Null => FieldValue::Null,
            ValueRef::Integer(i) => FieldValue::Integer(i),
            ValueRef::Real(f) => FieldValue::Real(f),
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                FieldValue::Text(String::from_utf8_lossy(bytes))
            }
        }
    }
}

/// An open FNMS operations database.
pub(crate) struct Database {
    conn: Connection,
    source: Source,
}

impl Database {
    /// Opens the database. A file must exist (it is never created); a script is executed into
    /// memory after its sibling `schema.sql`.
    pub(crate) fn open(source: &Source) -> Result<Database, ExportError> {
        let path = source.path();
        let fail = |reason: String| ExportError::DatabaseOpen {
            path: path.to_path_buf(),
            reason,
        };
        let conn = match source {
            Source::File(path) => {
                if !path.exists() {
                    return Err(fail("no such file".into()));
                }
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn =
                    Connection::open_with_flags(path, flags).map_err(|e| fail(e.to_string()))?;
                conn.busy_timeout(Duration::from_secs(5))
                    .map_err(|e| fail(e.to_string()))?;
                // Opening is lazy: make SQLite read the header now.
                conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
                    .map_err(|e| fail(e.to_string()))?;
                conn
            }
            Source::Script(path) => {
                let conn = Connection::open_in_memory().map_err(|e| fail(e.to_string()))?;
                if let Some(schema) = sibling_schema(path) {
                    execute_script(&conn, &schema).map_err(fail)?;
                }
                execute_script(&conn, path).map_err(fail)?;
                conn
            }
        };
        // Large ORDER BY sorts spill to disk rather than grow the heap.
        conn.pragma_update(None, "temp_store", "FILE")
            .map_err(|e| fail(e.to_string()))?;
        conn.execute_batch(BOOKKEEPING_TABLES)
            .map_err(|e| fail(format!("cannot create the export bookkeeping tables: {e}")))?;
        Ok(Database {
            conn,
            source: source.clone(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.source.path()
    }

    /// Whether changes (the export history) outlive this run.
    pub(crate) fn is_persistent(&self) -> bool {
        matches!(self.source, Source::File(_))
    }

    /// Step 1: the ServiceNow integration option is licensed and not expired on `today`.
    pub(crate) fn check_licence(&self, today: NaiveDate) -> Result<(), ExportError> {
        let row: Option<(Value, Option<String>)> = self
            .conn
            .query_row(
                "SELECT Licensed, ExpiryDate FROM LicenseOption WHERE Name = 'ServiceNowIntegration'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| {
                ExportError::Licence(format!(
                    "cannot read LicenseOption in '{}': {e}",
                    self.path().display()
                ))
            })?;
        let Some((licensed, expiry)) = row else {
            return Err(ExportError::Licence(
                "the ServiceNow integration option (ServiceNowIntegration) is not licensed".into(),
            ));
        };
        if !matches!(licensed, Value::Integer(1)) {
            return Err(ExportError::Licence(
                "the ServiceNow integration option (ServiceNowIntegration) is not licensed (Licensed = 0)"
                    .into(),
            ));
        }
        if let Some(expiry) = expiry {
            let date = expiry
                .get(..10)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or_else(|| {
                    ExportError::Licence(format!(
                        "the ServiceNow integration licence has an unreadable expiry date '{expiry}'"
                    ))
                })?;
            if date < today {
                return Err(ExportError::Licence(format!(
                    "the ServiceNow integration licence expired on {date}"
                )));
            }
        }
        Ok(())
    }

    /// The endpoint recorded in `ServiceNowExportSetting` ([CLI-22R1]), if any.
    pub(crate) fn recorded_endpoint(&self) -> Option<String> {
        self.conn
            .query_row(
                "SELECT Value FROM ServiceNowExportSetting WHERE Name = 'Endpoint'",
                [],
                |row| row.get::<_, String>(0),
            )
            .ok()
            .map(|e| e.trim().trim_start_matches('/').to_owned())
            .filter(|e| !e.is_empty())
    }

    /// Step 4: the schema version, the tables, and that every query of the selected data
    /// types compiles against this database.
    pub(crate) fn check_schema(&self, data_types: &[DataType]) -> Result<(), ExportError> {
        let fail = |reason: String| ExportError::DatabaseCheck {
            path: self.path().to_path_buf(),
            reason,
        };
        let version: Option<Value> = self
            .conn
            .query_row(
                "SELECT Value FROM DatabaseConfiguration WHERE Property = 'SchemaVersion'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| fail(format!("cannot read the schema version: {e}")))?;
        let version = match version {
            Some(Value::Text(v)) => v,
            Some(Value::Integer(v)) => v.to_string(),
            Some(_) | None => return Err(fail("no SchemaVersion in DatabaseConfiguration".into())),
        };
        if version != SCHEMA_VERSION {
            return Err(fail(format!(
                "schema version {version} is not supported (expected {SCHEMA_VERSION})"
            )));
        }
        let mut missing = Vec::new();
        let needed = COMMON_TABLES
            .iter()
            .chain(data_types.iter().flat_map(|dt| dt.tables()));
        for table in needed {
            let exists: bool = self
                .conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_schema
                      WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE)",
                    [table],
                    |row| row.get(0),
                )
                .map_err(|e| fail(format!("cannot list tables: {e}")))?;
            if !exists {
                missing.push(*table);
            }
        }
        if !missing.is_empty() {
            return Err(fail(format!("missing tables: {}", missing.join(", "))));
        }
        for dt in data_types {
            for differential in [false, true] {
                self.conn.prepare(&dt.query(differential)).map_err(|e| {
                    fail(format!(
                        "the {} query does not match the database: {e}",
                        dt.label()
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// When the data type last completed successfully (`ServiceNowExportHistory`).
    pub(crate) fn last_success(&self, dt: DataType) -> Result<Option<NaiveDateTime>, ExportError> {
        let fail = |reason: String| ExportError::DatabaseCheck {
            path: self.path().to_path_buf(),
            reason,
        };
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT LastSuccessUTC FROM ServiceNowExportHistory WHERE DataType = ?1",
                [dt.history_key()],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| fail(format!("cannot read ServiceNowExportHistory: {e}")))?;
        text.map(|t| {
            parse_timestamp(&t).ok_or_else(|| {
                fail(format!(
                    "ServiceNowExportHistory has an unreadable LastSuccessUTC '{t}' for {}",
                    dt.history_key()
                ))
            })
        })
        .transpose()
    }

    /// Takes the snapshot of what this export of `dt` sends (before reading its records), for
    /// [`Database::record_success`] to keep. A temporary table: on disk, not in the heap.
    pub(crate) fn snapshot(&self, dt: DataType) -> Result<(), ExportError> {
        let (table, current) = bookkeeping(dt);
        self.conn
            .execute_batch(&format!(
                "DROP TABLE IF EXISTS temp.Snapshot{table};
                 CREATE TEMP TABLE Snapshot{table} AS {current};"
            ))
            .map_err(|e| ExportError::Export {
                data_type: dt.label(),
                reason: format!("cannot read the FNMS operations database: {e}"),
            })
    }

    /// Whether the bookkeeping of `dt` may be compared with: this exporter wrote it together
    /// with the history. A history row alone (written by FNMS's own utility, or by hand) has
    /// nothing to compare with, so only `UpdatedDate` decides what is sent.
    pub(crate) fn has_bookkeeping(&self, dt: DataType) -> Result<bool, ExportError> {
        if self.last_success(dt)?.is_none() {
            return Ok(false);
        }
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM ServiceNowExportBookkeeping WHERE DataType = ?1)",
                [dt.history_key()],
                |row| row.get(0),
            )
            .map_err(|e| ExportError::Export {
                data_type: dt.label(),
                reason: format!("cannot read the FNMS operations database: {e}"),
            })
    }

    /// Records `started` as the data type's new baseline and the snapshot taken before the
    /// export as its bookkeeping, in one transaction (after the Import Run succeeded).
    pub(crate) fn record_success(
        &self,
        dt: DataType,
        started: NaiveDateTime,
    ) -> Result<(), rusqlite::Error> {
        let (table, _) = bookkeeping(dt);
        let has_snapshot: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM temp.sqlite_schema WHERE name = ?1)",
            [format!("Snapshot{table}")],
            |row| row.get(0),
        )?;
        let tx = self.conn.unchecked_transaction()?;
        let started = started.format(TIMESTAMP_FORMAT).to_string();
        // (table, time column): one row per data type, set to when this export started.
        let mut stamps = vec![("ServiceNowExportHistory", "LastSuccessUTC")];
        if has_snapshot {
            tx.execute_batch(&format!(
                "DELETE FROM {table};
                 INSERT INTO {table} SELECT * FROM temp.Snapshot{table};
                 DROP TABLE temp.Snapshot{table};"
            ))?;
            stamps.push(("ServiceNowExportBookkeeping", "RecordedUTC"));
        }
        for (stamp_table, column) in stamps {
            tx.execute(
                &format!(
                    "INSERT INTO {stamp_table} (DataType, {column}) VALUES (?1, ?2)
                     ON CONFLICT (DataType) DO UPDATE SET {column} = excluded.{column}"
                ),
                params![dt.history_key(), started],
            )?;
        }
        tx.commit()
    }

    /// Streams the data type's records in key order, changed on or after `baseline` if given,
    /// calling `each` with every record's field values (in field order). One row in memory at
    /// a time; `each` may do I/O (send a segment) between rows.
    /// How many records [`Database::for_each_record`] would stream (for a progress bar's ETA).
    pub(crate) fn count_records(
        &self,
        dt: DataType,
        baseline: Option<NaiveDateTime>,
        compare: bool,
    ) -> Result<u64, rusqlite::Error> {
        let mut statement = self.conn.prepare(&format!(
            "SELECT count(*) FROM ({})",
            dt.query(baseline.is_some())
        ))?;
        bind_baseline(&mut statement, baseline, compare)?;
        let mut rows = statement.raw_query();
        let mut count: i64 = match rows.next()? {
            Some(row) => row.get(0)?,
            None => 0,
        };
        if dt == DataType::HardwareInventory {
            let removed: i64 = self.conn.query_row(
                &format!("SELECT count(*) FROM ({REMOVED_COMPUTERS})"),
                [],
                |row| row.get(0),
            )?;
            count += removed;
        }
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// With `compare`, a differential query also selects what the bookkeeping shows changed
    /// (contract coverage, application names). Hardware inventory ends with the removed
    /// computers whatever the baseline.
    pub(crate) fn for_each_record(
        &self,
        dt: DataType,
        baseline: Option<NaiveDateTime>,
        compare: bool,
        mut each: impl FnMut(&mut dyn Iterator<Item = FieldValue<'_>>) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let read_failed = |e: rusqlite::Error| ExportError::Export {
            data_type: dt.label(),
            reason: format!(
                "cannot read the FNMS operations database '{}': {e}",
                self.path().display()
            ),
        };
        let mut statement = self
            .conn
            .prepare(&dt.query(baseline.is_some()))
            .map_err(read_failed)?;
        bind_baseline(&mut statement, baseline, compare).map_err(read_failed)?;
        let width = dt.fields().len();
        let mut rows = statement.raw_query();
        while let Some(row) = rows.next().map_err(read_failed)? {
            let mut values = row_values(row, width);
            each(&mut values)?;
        }
        drop(rows);
        if dt == DataType::HardwareInventory {
            let mut removed = self.conn.prepare(REMOVED_COMPUTERS).map_err(read_failed)?;
            let mut rows = removed.query([]).map_err(read_failed)?;
            while let Some(row) = rows.next().map_err(read_failed)? {
                let mut values = row_values(row, width);
                each(&mut values)?;
            }
        }
        Ok(())
    }
}

/// `?1` = the baseline and, where the query compares with the bookkeeping, `?2` = `compare`.
fn bind_baseline(
    statement: &mut rusqlite::Statement<'_>,
    baseline: Option<NaiveDateTime>,
    compare: bool,
) -> Result<(), rusqlite::Error> {
    if let Some(baseline) = baseline {
        statement.raw_bind_parameter(1, baseline.format(TIMESTAMP_FORMAT).to_string())?;
        if statement.parameter_count() >= 2 {
            statement.raw_bind_parameter(2, compare)?;
        }
    }
    Ok(())
}

fn row_values<'r>(row: &'r Row<'r>, width: usize) -> impl Iterator<Item = FieldValue<'r>> {
    (0..width).map(move |i| {
        row.get_ref(i)
            .map(FieldValue::from)
            .unwrap_or(FieldValue::Null)
    })
}

/// Parses `YYYY-MM-DD HH:MM:SS` (also with `T`, or a bare date meaning midnight).
pub(crate) fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim().trim_end_matches('Z');
    NaiveDateTime::parse_from_str(text, TIMESTAMP_FORMAT)
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// The `schema.sql` beside a script, unless the script is that file.
fn sibling_schema(script: &Path) -> Option<PathBuf> {
    let schema = script.with_file_name("schema.sql");
    if !schema.is_file() {
        return None;
    }
    let same = match (schema.canonicalize(), script.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => schema == script,
    };
    (!same).then_some(schema)
}

fn execute_script(conn: &Connection, path: &Path) -> Result<(), String> {
    let sql = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    conn.execute_batch(&sql)
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fnms")
    }

    fn golden() -> Database {
        Database::open(&Source::Script(fixtures().join("golden.sql"))).expect("golden opens")
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).expect("date")
    }

    #[test]
    fn golden_script_loads_after_its_schema() {
        let db = golden();
        db.check_licence(today()).expect("licensed");
        db.check_schema(&DataType::ALL).expect("schema ok");
        assert_eq!(
            db.recorded_endpoint().as_deref(),
            Some("api/x_fls_flexera_fnms/integration/fnmstosn")
        );
        assert!(!db.is_persistent());
    }

    #[test]
    fn licence_rules() {
        let db = golden();
        db.conn
            .execute_batch(
                "UPDATE LicenseOption SET ExpiryDate = '2026-11-28' WHERE Name = 'ServiceNowIntegration'",
            )
            .expect("update");
        db.check_licence(today())
            .expect("expires today: still valid");
        db.conn
            .execute_batch("UPDATE LicenseOption SET ExpiryDate = '2026-11-27'")
            .expect("update");
        let err = db.check_licence(today()).expect_err("expired");
        assert!(err.to_string().contains("expired on 2026-11-27"), "{err}");
        db.conn
            .execute_batch("UPDATE LicenseOption SET ExpiryDate = NULL, Licensed = 0")
            .expect("update");
        let err = db.check_licence(today()).expect_err("unlicensed");
        assert!(err.to_string().starts_with("licence check failed"), "{err}");
        db.conn
            .execute_batch("DELETE FROM LicenseOption")
            .expect("delete");
        assert!(db.check_licence(today()).is_err());
    }

    #[test]
    fn schema_check_names_the_problem() {
        let db = golden();
        db.conn
            .execute_batch("UPDATE DatabaseConfiguration SET Value = '2'")
            .expect("update");
        let err = db.check_schema(&DataType::ALL).expect_err("version 2");
        assert!(err.to_string().contains("schema version 2"), "{err}");
        assert!(err.to_string().contains("golden.sql"), "{err}");

        let db = golden();
        db.conn
            .execute_batch("DROP TABLE ContractComplianceComputer")
            .expect("drop");
        let err = db.check_schema(&DataType::ALL).expect_err("missing table");
        assert!(
            err.to_string().contains("ContractComplianceComputer"),
            "{err}"
        );
        db.check_schema(&[DataType::HardwareInventory])
            .expect("contracts not selected: table not needed");
    }

    #[test]
    fn missing_file_is_reported_with_its_path() {
        let err = match Database::open(&Source::File(PathBuf::from("/nonexistent/fnms.sqlite"))) {
            Ok(_) => panic!("opened a missing file"),
            Err(err) => err,
        };
        let text = err.to_string();
        assert!(text.starts_with("database check failed: cannot open FNMS operations database '/nonexistent/fnms.sqlite'"), "{text}");
    }

    #[test]
    fn history_round_trips() {
        let db = golden();
        assert_eq!(db.last_success(DataType::Contracts).expect("reads"), None);
        let at = parse_timestamp("2026-11-27 03:00:00").expect("ts");
        db.record_success(DataType::Contracts, at).expect("records");
        assert_eq!(
            db.last_success(DataType::Contracts).expect("reads"),
            Some(at)
        );
        let later = parse_timestamp("2026-11-28T03:00:00Z").expect("ts");
        db.record_success(DataType::Contracts, later)
            .expect("records");
        assert_eq!(
            db.last_success(DataType::Contracts).expect("reads"),
            Some(later)
        );
    }

    #[test]
    fn count_records_counts_what_is_streamed_removed_computers_included() {
        let db = golden();
        let at = parse_timestamp("2026-11-27 03:00:00");
        for dt in DataType::ALL {
            db.snapshot(dt).expect("snapshot");
            db.record_success(dt, at.expect("ts")).expect("record");
        }
        db.conn
            .execute_batch(
                "DELETE FROM InstalledSoftware WHERE ComplianceComputerID = 4;
                 DELETE FROM ContractComplianceComputer WHERE ComplianceComputerID = 4;
                 DELETE FROM ComplianceComputer WHERE ComplianceComputerID = 4;",
            )
            .expect("remove computer 4");
        for dt in DataType::ALL {
            for (baseline, compare) in [(None, false), (at, true)] {
                let mut streamed = 0u64;
                db.for_each_record(dt, baseline, compare, |_| {
                    streamed += 1;
                    Ok(())
                })
                .expect("streams");
                let counted = db.count_records(dt, baseline, compare).expect("counts");
                assert_eq!(counted, streamed, "{dt:?} {baseline:?}");
            }
        }
        let removed = db
            .count_records(DataType::HardwareInventory, at, true)
            .expect("counts");
        assert_eq!(removed, 1, "only the removed computer 4 changed");
    }

    #[test]
    fn differential_installations_are_found_through_the_updated_date_index() {
        // Not a scan of every installation: the export reads twenty thousand changed rows of
        // two million through the index (see data_type.rs).
        let db = golden();
        let sql = format!(
            "EXPLAIN QUERY PLAN {}",
            DataType::InstalledApplications.query(true)
        );
        let mut statement = db.conn.prepare(&sql).expect("prepares");
        let plan: Vec<String> = statement
            .query_map(params!["2026-11-19 00:00:00", true], |row| row.get(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH i USING INTEGER PRIMARY KEY")),
            "{plan:#?}"
        );
        assert!(
            plan.iter()
                .any(|step| step.contains("USING COVERING INDEX InstalledSoftware_UpdatedDate")),
            "{plan:#?}"
        );
    }

    #[test]
    fn differential_query_filters_on_updated_date() {
        let db = golden();
        let mut ids = Vec::new();
        db.for_each_record(
            DataType::HardwareInventory,
            parse_timestamp("2026-11-19"),
            false,
            |values| {
                match values.next() {
                    Some(FieldValue::Integer(id)) => ids.push(id),
                    other => panic!("ComputerID: {other:?}"),
                }
                Ok(())
            },
        )
        .expect("streams");
        assert_eq!(ids, vec![1, 2, 3]);
    }
}
