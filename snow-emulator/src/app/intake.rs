//! The integration endpoint's logic (docs/wire-protocol.md §3): validate a request, answer
//! `connection_test` and `export_status`, and store a data segment as an Import Transaction
//! — committed before returnCode 0 is returned.

use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::payload::Records;
use super::views::{Run, State, Transaction, unfinished_query};
use super::{RUN_TABLE, TRANSACTION_TABLE, fields, log, payload, property, table};
use crate::catalog::{Catalog, ImportType};
use crate::store::{self, Fields, StoreError, quote};

pub const PROTOCOL_VERSION: i64 = 1;

/// Return codes (docs/wire-protocol.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnCode {
    Ok = 0,
    InvalidRequest = 10,
    UnknownTransactionType = 11,
    InvalidPayload = 12,
    ImportInProgress = 20,
    RunClosed = 21,
    UnknownRun = 22,
    SamPluginMissing = 30,
    NotReady = 40,
    InternalError = 50,
}

/// What the endpoint answers, plus whether a new transaction now waits for the worker.
pub struct Reply {
    pub result: Value,
    pub queued: bool,
    /// The sys_id of the transaction this request stored, if it stored one.
    pub stored: Option<String>,
}

fn success(message: String, extra: Map<String, Value>) -> Reply {
    let mut result = Map::new();
    result.insert("returnCode".into(), json!(ReturnCode::Ok as i64));
    result.insert("status".into(), json!("success"));
    result.insert("message".into(), json!(message));
    result.extend(extra);
    Reply {
        result: Value::Object(result),
        queued: false,
        stored: None,
    }
}

pub fn failure(
    code: ReturnCode,
    message: impl Into<String>,
    transaction_id: Option<&str>,
) -> Reply {
    let mut result = json!({
        "returnCode": code as i64,
        "status": "failure",
        "message": message.into(),
    });
    if let (Some(tid), Some(obj)) = (transaction_id, result.as_object_mut()) {
        obj.insert("transactionId".into(), json!(tid));
    }
    Reply {
        result,
        queued: false,
        stored: None,
    }
}

fn short_string<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().count() <= 64)
}

/// What a data segment's XML holds, read before the store is locked: its records, or why
/// the data is refused (code 12). Reading the XML is the intake's largest cost; done outside
/// the lock it overlaps the worker's processing of the previous segment, and what was read
/// is handed to the worker with the stored transaction.
#[derive(Debug)]
pub struct DataCheck(Option<Result<Records, String>>);

impl DataCheck {
    /// Reads the body's `data` when it is a data segment of a known import type.
    pub fn of(catalog: &Catalog, body: &Value) -> Self {
        let ttype = body.get("transactionType").and_then(Value::as_str);
        let it = ttype.and_then(|t| catalog.import_type(t));
        let data = body.get("data").and_then(Value::as_str);
        Self(
            it.zip(data)
                .map(|(it, data)| Records::read(data, &it.root, &it.record)),
        )
    }

    /// The number of records in `data`: as read before, or read now.
    fn count(&self, it: &ImportType, data: &str) -> Result<usize, String> {
        match &self.0 {
            Some(read) => read.as_ref().map(Records::len).map_err(Clone::clone),
            None => payload::parse(data, &it.root, &it.record, |_| Ok(())),
        }
    }

    /// What was read, when the data was readable.
    pub fn into_read(self) -> Option<Records> {
        self.0.and_then(Result::ok)
    }
}

/// Answers one request to the integration endpoint. `checked`: the segment's data read
/// before the lock ([`DataCheck::of`] of the same body). `data_is_utf8` is false when the
/// body held invalid UTF-8 that had to be replaced to read the JSON at all (the segment is
/// then refused with code 12).
pub fn handle(
    conn: &mut Connection,
    catalog: &Catalog,
    body: &Value,
    data_is_utf8: bool,
    checked: &DataCheck,
) -> Result<Reply, StoreError> {
    let Some(obj) = body.as_object() else {
        return Ok(failure(
            ReturnCode::InvalidRequest,
            "The request body must be a JSON object",
            None,
        ));
    };
    let Some(tid) = short_string(obj, "transactionId") else {
        return Ok(failure(
            ReturnCode::InvalidRequest,
            "transactionId is missing, not a string, or longer than 64 characters",
            None,
        ));
    };
    let Some(ttype) = obj.get("transactionType").and_then(Value::as_str) else {
        return Ok(failure(
            ReturnCode::InvalidRequest,
            "transactionType is missing or not a string",
            Some(tid),
        ));
    };
    match ttype {
        "connection_test" => Ok(success(
            "Connection test succeeded".into(),
            Map::from_iter([("protocolVersion".to_owned(), json!(PROTOCOL_VERSION))]),
        )),
        "export_status" => export_status(conn, catalog, obj, tid),
        other => match catalog.import_type(other) {
            Some(it) => {
                let tx = conn.transaction()?;
                let reply = segment(&tx, catalog, it, obj, tid, (data_is_utf8, checked))?;
                tx.commit()?;
                Ok(reply)
            }
            None => Ok(failure(
                ReturnCode::UnknownTransactionType,
                format!("Unknown transaction type '{other}'"),
                Some(tid),
            )),
        },
    }
}

fn export_status(
    conn: &Connection,
    catalog: &Catalog,
    obj: &Map<String, Value>,
    tid: &str,
) -> Result<Reply, StoreError> {
    let Some(run_id) = short_string(obj, "importRunId") else {
        return Ok(failure(
            ReturnCode::InvalidRequest,
            "importRunId is missing, not a string, or longer than 64 characters",
            Some(tid),
        ));
    };
    let runs = table(catalog, RUN_TABLE)?;
    let Some(run) = store::find_by(conn, runs, &[("run_id", run_id)])? else {
        return Ok(failure(
            ReturnCode::UnknownRun,
            format!("Unknown import run '{run_id}'"),
            Some(tid),
        ));
    };
    let run = Run::from_fields(&run)?;
    let counts = transaction_counts(conn, catalog, &run)?;
    Ok(success(
        format!("Import run {} is {}", run.number, run.state),
        Map::from_iter([
            ("importRunId".to_owned(), json!(run_id)),
            ("importRun".to_owned(), json!(run.number)),
            ("complete".to_owned(), json!(run.state.is_terminal())),
            ("state".to_owned(), json!(run.state.as_str())),
            ("transactions".to_owned(), Value::Object(counts)),
        ]),
    ))
}

/// A run's transactions by state, every state present, plus `total`.
fn transaction_counts(
    conn: &Connection,
    catalog: &Catalog,
    run: &Run,
) -> Result<Map<String, Value>, StoreError> {
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    let mut counts = Map::new();
    for state in State::ALL {
        counts.insert(state.as_str().into(), json!(0));
    }
    let mut total = 0i64;
    let sql = format!(
        "SELECT state, COUNT(*) FROM {} WHERE import_run = ? GROUP BY state",
        quote(&transactions.physical)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([&run.sys_id])?;
    while let Some(row) = rows.next()? {
        let state: String = row.get(0)?;
        let n: i64 = row.get(1)?;
        total += n;
        counts.insert(state, json!(n));
    }
    counts.insert("total".into(), json!(total));
    Ok(counts)
}

/// Why the instance is not ready to import (returnCode 40), if it is not.
fn not_ready(conn: &Connection, catalog: &Catalog) -> Result<Option<String>, StoreError> {
    let schedules = table(catalog, "scheduled_import_set")?;
    let active = store::find_by(
        conn,
        schedules,
        &[("name", super::SCHEDULE_NAME), ("active", "true")],
    )?;
    if active.is_none() {
        return Ok(Some(format!(
            "Scheduled Data Import '{}' is missing or inactive",
            super::SCHEDULE_NAME
        )));
    }
    let sources = table(catalog, "sys_data_source")?;
    if store::find_by(conn, sources, &[("name", super::DATA_SOURCE_NAME)])?.is_none() {
        return Ok(Some(format!(
            "Data Source '{}' is missing",
            super::DATA_SOURCE_NAME
        )));
    }
    Ok(None)
}

/// True when installations must go to SAM tables but the SAM plugin is not active.
fn sam_missing(conn: &Connection, catalog: &Catalog) -> Result<bool, StoreError> {
    let setting = property(conn, catalog, "x_fls_flexera_fnms.installation_tables")?;
    if !matches!(setting.as_deref(), Some("sam" | "cmdb_and_sam")) {
        return Ok(false);
    }
    let plugins = table(catalog, "sys_plugins")?;
    for id in [super::SAM_PLUGIN, "com.snc.samp"] {
        if store::find_by(conn, plugins, &[("id", id), ("active", "active")])?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A data segment's fields, checked (docs/wire-protocol.md §3).
struct SegmentRequest<'a> {
    tid: &'a str,
    run_id: &'a str,
    segment_number: i64,
    last_segment: bool,
    record_count: i64,
    data: &'a str,
}

impl<'a> SegmentRequest<'a> {
    /// The request, or why it is invalid (returnCode 10).
    fn parse(obj: &'a Map<String, Value>, tid: &'a str) -> Result<Self, &'static str> {
        let run_id = short_string(obj, "importRunId")
            .ok_or("importRunId is missing, not a string, or longer than 64 characters")?;
        let segment_number = obj
            .get("segmentNumber")
            .and_then(Value::as_i64)
            .filter(|n| *n >= 1)
            .ok_or("segmentNumber is missing or not an integer >= 1")?;
        let last_segment = obj
            .get("lastSegment")
            .and_then(Value::as_bool)
            .ok_or("lastSegment is missing or not a boolean")?;
        let record_count = obj
            .get("recordCount")
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0)
            .ok_or("recordCount is missing or not an integer >= 0")?;
        let data = obj
            .get("data")
            .and_then(Value::as_str)
            .ok_or("data is missing or not a string")?;
        Ok(Self {
            tid,
            run_id,
            segment_number,
            last_segment,
            record_count,
            data,
        })
    }
}

fn segment(
    conn: &Connection,
    catalog: &Catalog,
    it: &ImportType,
    obj: &Map<String, Value>,
    tid: &str,
    data: (bool, &DataCheck),
) -> Result<Reply, StoreError> {
    let req = match SegmentRequest::parse(obj, tid) {
        Ok(req) => req,
        Err(why) => return Ok(failure(ReturnCode::InvalidRequest, why, Some(tid))),
    };
    if let Some(reply) = retransmission(conn, catalog, tid)? {
        return Ok(reply);
    }
    if let Some(reply) = refusal(conn, catalog, it, &req, data)? {
        return Ok(reply);
    }
    let run = match open_run(conn, catalog, it, &req)? {
        Ok(run) => run,
        Err(reply) => return Ok(reply),
    };
    store_transaction(conn, catalog, it, &run, &req)
}

/// A segment already received (same transaction id): report it, create nothing.
fn retransmission(
    conn: &Connection,
    catalog: &Catalog,
    tid: &str,
) -> Result<Option<Reply>, StoreError> {
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    let Some(existing) = store::find_by(conn, transactions, &[("transaction_id", tid)])? else {
        return Ok(None);
    };
    let existing = Transaction::from_fields(&existing)?;
    let run_number = store::get(conn, table(catalog, RUN_TABLE)?, &existing.import_run)?
        .map(|r| r["number"].clone())
        .unwrap_or_default();
    Ok(Some(success(
        format!("Import transaction {} already received", existing.number),
        Map::from_iter([
            ("transactionId".to_owned(), json!(tid)),
            ("importRun".to_owned(), json!(run_number)),
            ("importTransaction".to_owned(), json!(existing.number)),
            ("state".to_owned(), json!(existing.state.as_str())),
            ("duplicate".to_owned(), json!(true)),
        ]),
    )))
}

/// Why the instance refuses the segment before storing anything (codes 40, 30, 12), if it
/// does.
fn refusal(
    conn: &Connection,
    catalog: &Catalog,
    it: &ImportType,
    req: &SegmentRequest<'_>,
    (data_is_utf8, checked): (bool, &DataCheck),
) -> Result<Option<Reply>, StoreError> {
    let tid = Some(req.tid);
    if let Some(why) = not_ready(conn, catalog)? {
        return Ok(Some(failure(ReturnCode::NotReady, why, tid)));
    }
    if it.requires_sam && sam_missing(conn, catalog)? {
        let message = format!(
            "The {} import requires SAM tables (x_fls_flexera_fnms.installation_tables) but the SAM plugin {} is not active",
            it.import_type,
            super::SAM_PLUGIN
        );
        log(conn, catalog, "error", &message)?;
        return Ok(Some(failure(ReturnCode::SamPluginMissing, message, tid)));
    }
    if !data_is_utf8 {
        let why = "data is not valid UTF-8";
        return Ok(Some(failure(ReturnCode::InvalidPayload, why, tid)));
    }
    let why = match checked.count(it, req.data) {
        Err(why) => format!("Invalid data: {why}"),
        Ok(found) if found as i64 != req.record_count => format!(
            "recordCount is {} but data holds {found} <{}> records",
            req.record_count, it.record
        ),
        Ok(_) => return Ok(None),
    };
    Ok(Some(failure(ReturnCode::InvalidPayload, why, tid)))
}

/// The segment's run: the open run of that id, or a new one when no other run is open.
/// `Err` carries the refusal (codes 10, 20, 21).
fn open_run(
    conn: &Connection,
    catalog: &Catalog,
    it: &ImportType,
    req: &SegmentRequest<'_>,
) -> Result<Result<Run, Reply>, StoreError> {
    let runs = table(catalog, RUN_TABLE)?;
    let tid = Some(req.tid);
    if let Some(run) = store::find_by(conn, runs, &[("run_id", req.run_id)])? {
        let run = Run::from_fields(&run)?;
        if run.import_type != it.import_type {
            let why = format!("Import run {} is a {} run", run.number, run.import_type);
            return Ok(Err(failure(ReturnCode::InvalidRequest, why, tid)));
        }
        if run.segments_expected.is_some() {
            let why = format!(
                "Import run {} is closed: its last segment was already received",
                run.number
            );
            return Ok(Err(failure(ReturnCode::RunClosed, why, tid)));
        }
        return Ok(Ok(run));
    }
    let open = unfinished_query();
    if let Some(blocking) = store::find(conn, runs, &open, 1, 0)?.into_iter().next() {
        let why = format!("{} is {}", blocking["number"], blocking["state"]);
        return Ok(Err(failure(ReturnCode::ImportInProgress, why, tid)));
    }
    let sys_id = store::insert(
        conn,
        runs,
        &fields([
            ("run_id", req.run_id.to_owned()),
            ("import_type", it.import_type.clone()),
            ("state", State::Processing.as_str().to_owned()),
            ("started", crate::clock::now_string()),
        ]),
        "system",
    )?;
    let run = store::get(conn, runs, &sys_id)?
        .ok_or_else(|| StoreError::Invalid("the new import run vanished".into()))?;
    let run = Run::from_fields(&run)?;
    let message = format!("Import run {} started ({})", run.number, it.import_type);
    log(conn, catalog, "info", &message)?;
    Ok(Ok(run))
}

/// Stores the segment as a New Import Transaction and counts it on its run.
fn store_transaction(
    conn: &Connection,
    catalog: &Catalog,
    it: &ImportType,
    run: &Run,
    req: &SegmentRequest<'_>,
) -> Result<Reply, StoreError> {
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    let state = State::New;
    let sys_id = store::insert(
        conn,
        transactions,
        &fields([
            ("import_run", run.sys_id.clone()),
            ("import_type", it.import_type.clone()),
            ("state", state.as_str().to_owned()),
            ("payload", req.data.to_owned()),
            ("transaction_id", req.tid.to_owned()),
            ("segment_number", req.segment_number.to_string()),
            ("last_segment", req.last_segment.to_string()),
            ("record_count", req.record_count.to_string()),
        ]),
        "system",
    )?;
    let number = store::get_field(conn, transactions, &sys_id, "number")?.unwrap_or_default();
    let mut run_update: Fields = fields([
        (
            "transactions_received",
            run.transactions_received.saturating_add(1).to_string(),
        ),
        (
            "records_received",
            run.records_received
                .saturating_add(req.record_count)
                .to_string(),
        ),
    ]);
    if req.last_segment {
        run_update.insert("segments_expected".into(), req.segment_number.to_string());
    }
    store::update(
        conn,
        table(catalog, RUN_TABLE)?,
        &run.sys_id,
        &run_update,
        "system",
    )?;
    let mut reply = success(
        format!("Import transaction {number} created"),
        Map::from_iter([
            ("transactionId".to_owned(), json!(req.tid)),
            ("importRun".to_owned(), json!(run.number)),
            ("importTransaction".to_owned(), json!(number)),
            ("state".to_owned(), json!(state.as_str())),
            ("duplicate".to_owned(), json!(false)),
        ]),
    );
    reply.queued = true;
    reply.stored = Some(sys_id);
    Ok(reply)
}
