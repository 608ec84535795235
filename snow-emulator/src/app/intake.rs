//! The integration endpoint's logic (docs/wire-protocol.md §3): validate a request, answer
//! `connection_test` and `export_status`, and store a data segment as an Import Transaction
//! — committed before returnCode 0 is returned.

use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::{RUN_TABLE, TERMINAL, TRANSACTION_TABLE, fields, log, payload, property, table};
use crate::catalog::{Catalog, ImportType};
use crate::store::{self, Fields, StoreError, quote, seed};

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
    }
}

fn short_string<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().count() <= 64)
}

/// Handles one request body. `data_is_utf8` is false when the body held invalid UTF-8 that
/// had to be replaced to read the JSON at all (the segment is then refused with code 12).
pub fn handle(
    conn: &mut Connection,
    catalog: &Catalog,
    body: &Value,
    data_is_utf8: bool,
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
                let reply = segment(&tx, catalog, it, obj, tid, data_is_utf8)?;
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
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    let mut counts = Map::new();
    for state in ["new", "waiting", "processing", "succeeded", "failed"] {
        counts.insert(state.into(), json!(0));
    }
    let mut total = 0i64;
    {
        let sql = format!(
            "SELECT state, COUNT(*) FROM {} WHERE import_run = ? GROUP BY state",
            quote(&transactions.physical)
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([&run["sys_id"]])?;
        while let Some(row) = rows.next()? {
            let state: String = row.get(0)?;
            let n: i64 = row.get(1)?;
            total += n;
            counts.insert(state, json!(n));
        }
    }
    counts.insert("total".into(), json!(total));
    let state = run["state"].clone();
    Ok(success(
        format!("Import run {} is {state}", run["number"]),
        Map::from_iter([
            ("importRunId".to_owned(), json!(run_id)),
            ("importRun".to_owned(), json!(run["number"])),
            (
                "complete".to_owned(),
                json!(TERMINAL.contains(&state.as_str())),
            ),
            ("state".to_owned(), json!(state)),
            ("transactions".to_owned(), Value::Object(counts)),
        ]),
    ))
}

/// Why the instance is not ready to import (returnCode 40), if it is not.
fn not_ready(conn: &Connection, catalog: &Catalog) -> Result<Option<String>, StoreError> {
    let schedules = table(catalog, "scheduled_import_set")?;
    let active = store::find_by(
        conn,
        schedules,
        &[("name", seed::SCHEDULE_NAME), ("active", "true")],
    )?;
    if active.is_none() {
        return Ok(Some(format!(
            "Scheduled Data Import '{}' is missing or inactive",
            seed::SCHEDULE_NAME
        )));
    }
    let sources = table(catalog, "sys_data_source")?;
    if store::find_by(conn, sources, &[("name", seed::DATA_SOURCE_NAME)])?.is_none() {
        return Ok(Some(format!(
            "Data Source '{}' is missing",
            seed::DATA_SOURCE_NAME
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
    for id in [seed::SAM_PLUGIN, "com.snc.samp"] {
        if store::find_by(conn, plugins, &[("id", id), ("active", "active")])?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn segment(
    conn: &Connection,
    catalog: &Catalog,
    it: &ImportType,
    obj: &Map<String, Value>,
    tid: &str,
    data_is_utf8: bool,
) -> Result<Reply, StoreError> {
    let invalid = |m: &str| Ok(failure(ReturnCode::InvalidRequest, m, Some(tid)));
    let Some(run_id) = short_string(obj, "importRunId") else {
        return invalid("importRunId is missing, not a string, or longer than 64 characters");
    };
    let Some(segment_number) = obj
        .get("segmentNumber")
        .and_then(Value::as_i64)
        .filter(|n| *n >= 1)
    else {
        return invalid("segmentNumber is missing or not an integer >= 1");
    };
    let Some(last_segment) = obj.get("lastSegment").and_then(Value::as_bool) else {
        return invalid("lastSegment is missing or not a boolean");
    };
    let Some(record_count) = obj
        .get("recordCount")
        .and_then(Value::as_i64)
        .filter(|n| *n >= 0)
    else {
        return invalid("recordCount is missing or not an integer >= 0");
    };
    let Some(data) = obj.get("data").and_then(Value::as_str) else {
        return invalid("data is missing or not a string");
    };

    let runs = table(catalog, RUN_TABLE)?;
    let transactions = table(catalog, TRANSACTION_TABLE)?;

    // Retransmission: report the stored transaction, create nothing.
    if let Some(existing) = store::find_by(conn, transactions, &[("transaction_id", tid)])? {
        let run_number = store::get(conn, runs, &existing["import_run"])?
            .map(|r| r["number"].clone())
            .unwrap_or_default();
        return Ok(success(
            format!("Import transaction {} already received", existing["number"]),
            Map::from_iter([
                ("transactionId".to_owned(), json!(tid)),
                ("importRun".to_owned(), json!(run_number)),
                ("importTransaction".to_owned(), json!(existing["number"])),
                ("state".to_owned(), json!(existing["state"])),
                ("duplicate".to_owned(), json!(true)),
            ]),
        ));
    }

    if let Some(why) = not_ready(conn, catalog)? {
        return Ok(failure(ReturnCode::NotReady, why, Some(tid)));
    }
    if it.requires_sam && sam_missing(conn, catalog)? {
        let message = format!(
            "The {} import requires SAM tables (x_fls_flexera_fnms.installation_tables) but the SAM plugin {} is not active",
            it.import_type,
            seed::SAM_PLUGIN
        );
        log(conn, catalog, "error", &message)?;
        return Ok(failure(ReturnCode::SamPluginMissing, message, Some(tid)));
    }
    if !data_is_utf8 {
        return Ok(failure(
            ReturnCode::InvalidPayload,
            "data is not valid UTF-8",
            Some(tid),
        ));
    }
    let found = match payload::parse(data, &it.root, &it.record, |_| Ok(())) {
        Ok(n) => n,
        Err(why) => {
            return Ok(failure(
                ReturnCode::InvalidPayload,
                format!("Invalid data: {why}"),
                Some(tid),
            ));
        }
    };
    if found as i64 != record_count {
        return Ok(failure(
            ReturnCode::InvalidPayload,
            format!(
                "recordCount is {record_count} but data holds {found} <{}> records",
                it.record
            ),
            Some(tid),
        ));
    }

    let run = match store::find_by(conn, runs, &[("run_id", run_id)])? {
        Some(run) => {
            if run["import_type"] != it.import_type {
                return invalid(&format!(
                    "Import run {} is a {} run",
                    run["number"], run["import_type"]
                ));
            }
            if !run["segments_expected"].is_empty() {
                return Ok(failure(
                    ReturnCode::RunClosed,
                    format!(
                        "Import run {} is closed: its last segment was already received",
                        run["number"]
                    ),
                    Some(tid),
                ));
            }
            run
        }
        None => {
            let mut open = store::parse_encoded_query("state!=succeeded^state!=failed");
            open.order.push(("number".into(), false));
            if let Some(blocking) = store::find(conn, runs, &open, 1, 0)?.into_iter().next() {
                return Ok(failure(
                    ReturnCode::ImportInProgress,
                    format!("{} is {}", blocking["number"], blocking["state"]),
                    Some(tid),
                ));
            }
            let sys_id = store::insert(
                conn,
                runs,
                &fields([
                    ("run_id", run_id.to_owned()),
                    ("import_type", it.import_type.clone()),
                    ("state", "processing".to_owned()),
                    ("started", crate::clock::now_string()),
                ]),
                "system",
            )?;
            let run = store::get(conn, runs, &sys_id)?
                .ok_or_else(|| StoreError::Invalid("the new import run vanished".into()))?;
            log(
                conn,
                catalog,
                "info",
                &format!("Import run {} started ({})", run["number"], it.import_type),
            )?;
            run
        }
    };

    let busy = !store::find(
        conn,
        transactions,
        &store::parse_encoded_query("state!=succeeded^state!=failed"),
        1,
        0,
    )?
    .is_empty();
    let state = if busy { "waiting" } else { "new" };
    let sys_id = store::insert(
        conn,
        transactions,
        &fields([
            ("import_run", run["sys_id"].clone()),
            ("import_type", it.import_type.clone()),
            ("state", state.to_owned()),
            ("payload", data.to_owned()),
            ("transaction_id", tid.to_owned()),
            ("segment_number", segment_number.to_string()),
            ("last_segment", last_segment.to_string()),
            ("record_count", record_count.to_string()),
        ]),
        "system",
    )?;
    let number = store::get(conn, transactions, &sys_id)?
        .map(|t| t["number"].clone())
        .unwrap_or_default();
    let int = |k: &str| run[k].parse::<i64>().unwrap_or(0);
    let mut run_update: Fields = fields([
        (
            "transactions_received",
            int("transactions_received").saturating_add(1).to_string(),
        ),
        (
            "records_received",
            int("records_received")
                .saturating_add(record_count)
                .to_string(),
        ),
    ]);
    if last_segment {
        run_update.insert("segments_expected".into(), segment_number.to_string());
    }
    store::update(conn, runs, &run["sys_id"], &run_update, "system")?;
    let mut reply = success(
        format!("Import transaction {number} created"),
        Map::from_iter([
            ("transactionId".to_owned(), json!(tid)),
            ("importRun".to_owned(), json!(run["number"])),
            ("importTransaction".to_owned(), json!(number)),
            ("state".to_owned(), json!(state)),
            ("duplicate".to_owned(), json!(false)),
        ]),
    );
    reply.queued = true;
    Ok(reply)
}
