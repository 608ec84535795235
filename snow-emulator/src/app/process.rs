//! Processing one Import Transaction (docs/wire-protocol.md §4): the oldest unfinished one
//! becomes `processing` (later ones `waiting`); its XML becomes staging rows, each run
//! through the staging table's transform maps; all of it in one SQLite transaction, so a
//! crash leaves nothing half-done and a restart simply processes it again. Then the
//! transaction is `succeeded` or `failed`, and its run is closed once its last segment has
//! arrived and every transaction is finished.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, Result, anyhow};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::{RUN_TABLE, TERMINAL, TRANSACTION_TABLE, fields, log, payload, table};
use crate::catalog::Catalog;
use crate::store::{self, Fields, Store, new_sys_id, quote};
use crate::transform::Engine;

const USER: &str = "system";

/// Processes the oldest unfinished transaction. Returns false when there was none.
///
/// The worker's own commits skip the fsync (`synchronous=NORMAL`; WAL keeps them safe from a
/// killed process): nothing is acknowledged by them, the next acknowledged commit (FULL)
/// syncs them too, and if a power cut lost them the transaction would simply be processed
/// again.
pub fn process_next(store: &Store) -> Result<bool> {
    let mut conn = store.lock();
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = process_locked(&mut conn, store.catalog());
    conn.pragma_update(None, "synchronous", "FULL")?;
    result
}

/// Marks the transaction left `processing` by a crashed (panicked) attempt as failed, so a
/// poisoned transaction cannot block the queue forever.
pub fn fail_processing(store: &Store, why: &str) -> Result<()> {
    let catalog = store.catalog();
    let mut conn = store.lock();
    // The panic skipped process_next's restore of the acknowledging sync mode.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    let stuck = store::parse_encoded_query("state=processing^ORDERBYnumber");
    if let Some(t) = store::find(&conn, transactions, &stuck, 1, 0)?.pop() {
        let tx = conn.transaction()?;
        finish(&tx, catalog, &t, "failed", why)?;
        tx.commit()?;
    }
    Ok(())
}

fn process_locked(conn: &mut Connection, catalog: &Catalog) -> Result<bool> {
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    let unfinished = store::parse_encoded_query("state!=succeeded^state!=failed^ORDERBYnumber");
    let Some(t) = store::find(conn, transactions, &unfinished, 1, 0)?.pop() else {
        return Ok(false);
    };
    {
        let tx = conn.transaction()?;
        store::update(
            &tx,
            transactions,
            &t["sys_id"],
            &fields([("state", "processing".into())]),
            USER,
        )?;
        tx.execute(
            &format!(
                "UPDATE {} SET state = 'waiting' WHERE state = 'new' AND sys_id != ?1",
                quote(&transactions.physical)
            ),
            [&t["sys_id"]],
        )?;
        tx.commit()?;
    }
    let outcome = {
        let tx = conn.transaction()?;
        match stage_and_transform(&tx, catalog, &t) {
            Ok(summary) => {
                finish(&tx, catalog, &t, "succeeded", &summary)?;
                tx.commit()?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    if let Err(e) = outcome {
        let tx = conn.transaction()?;
        finish(&tx, catalog, &t, "failed", &format!("{e:#}"))?;
        tx.commit()?;
    }
    Ok(true)
}

fn stage_and_transform(conn: &Connection, catalog: &Catalog, t: &Fields) -> Result<String> {
    let it = catalog
        .import_types
        .iter()
        .find(|it| it.import_type == t["import_type"])
        .ok_or_else(|| anyhow!("no import type {} in the catalog", t["import_type"]))?;
    let staging = table(catalog, &it.staging_table)?;
    let engine = Engine::new(conn, catalog, &staging.name, USER)?;
    let insert_sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(&staging.physical),
        staging
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", "),
        vec!["?"; staging.columns.len()].join(",")
    );
    let now = crate::clock::now_string();
    let mut unknown = BTreeSet::new();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut index = 0i64;
    let mut failure: Option<anyhow::Error> = None;
    let parsed = payload::parse(&t["payload"], &it.root, &it.record, |record| {
        let mut row = HashMap::new();
        for (element, text) in record {
            let column = format!("u_{}", element.to_lowercase());
            if staging.column(&column).is_some() {
                if !text.trim().is_empty() {
                    row.insert(column, text);
                }
            } else {
                unknown.insert(element);
            }
        }
        let result = engine
            .transform_row(conn, &row)
            .map_err(anyhow::Error::from)
            .and_then(|o| {
                let mut params = Vec::with_capacity(staging.columns.len());
                for col in &staging.columns {
                    let text = |s: &str| {
                        if s.is_empty() {
                            Value::Null
                        } else {
                            Value::Text(s.to_owned())
                        }
                    };
                    params.push(match col.name.as_str() {
                        "sys_id" => Value::Text(new_sys_id()),
                        "sys_class_name" => Value::Text(staging.name.clone()),
                        "sys_created_on" | "sys_updated_on" => Value::Text(now.clone()),
                        "sys_created_by" | "sys_updated_by" => Value::Text(USER.into()),
                        "sys_mod_count" => Value::Integer(0),
                        "sys_import_row" => Value::Integer(index),
                        "sys_import_state" => Value::Text(o.state.into()),
                        "sys_import_state_comment" => text(&o.comment),
                        "sys_row_error" => text(&o.error),
                        "sys_target_sys_id" => text(&o.target_sys_id),
                        "sys_target_table" => text(&o.target_table),
                        "sys_transform_map" => text(&o.transform_map),
                        name if name == it.transaction_column => Value::Text(t["sys_id"].clone()),
                        name => row
                            .get(name)
                            .map_or(Value::Null, |v| Value::Text(v.clone())),
                    });
                }
                conn.prepare_cached(&insert_sql)?
                    .execute(params_from_iter(params))
                    .context("failed to store a staging row")?;
                *counts.entry(o.state).or_default() += 1;
                Ok(())
            });
        index += 1;
        result.map_err(|e| {
            let msg = format!("{e:#}");
            failure = Some(e);
            msg
        })
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let rows = parsed.map_err(|e| anyhow!("invalid payload: {e}"))?;
    let count = |s: &str| counts.get(s).copied().unwrap_or(0);
    let mut summary = if engine.has_maps() {
        format!(
            "{rows} rows: {} inserted, {} updated, {} ignored, {} skipped, {} errors",
            count("inserted"),
            count("updated"),
            count("ignored"),
            count("skipped"),
            count("error")
        )
    } else {
        format!(
            "{rows} rows staged in {}; no transform map is defined for it",
            staging.name
        )
    };
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.into_iter().collect();
        summary.push_str(&format!(
            "; ignored elements with no staging column: {}",
            list.join(", ")
        ));
    }
    Ok(summary)
}

/// Records the transaction's end and closes its run when that was the last work of it.
fn finish(
    conn: &Connection,
    catalog: &Catalog,
    t: &Fields,
    state: &str,
    message: &str,
) -> Result<()> {
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    let runs = table(catalog, RUN_TABLE)?;
    store::update(
        conn,
        transactions,
        &t["sys_id"],
        &fields([("state", state.to_owned()), ("message", message.to_owned())]),
        USER,
    )?;
    let level = if state == "failed" { "error" } else { "info" };
    log(
        conn,
        catalog,
        level,
        &format!("Import transaction {} {state}: {message}", t["number"]),
    )?;
    let Some(run) = store::get(conn, runs, &t["import_run"])? else {
        return Ok(());
    };
    if run["segments_expected"].is_empty() || TERMINAL.contains(&run["state"].as_str()) {
        return Ok(());
    }
    let mut by_state: HashMap<String, usize> = HashMap::new();
    {
        let sql = format!(
            "SELECT state, COUNT(*) FROM {} WHERE import_run = ?1 GROUP BY state",
            quote(&transactions.physical)
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([&run["sys_id"]])?;
        while let Some(row) = rows.next()? {
            let n: i64 = row.get(1)?;
            by_state.insert(
                row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                n as usize,
            );
        }
    }
    let total: usize = by_state.values().sum();
    if by_state
        .iter()
        .any(|(s, n)| *n > 0 && !TERMINAL.contains(&s.as_str()))
    {
        return Ok(());
    }
    let failed = by_state.get("failed").copied().unwrap_or(0);
    let (run_state, message) = if failed > 0 {
        ("failed", format!("{failed} of {total} transactions failed"))
    } else {
        ("succeeded", format!("{total} transactions succeeded"))
    };
    store::update(
        conn,
        runs,
        &run["sys_id"],
        &fields([
            ("state", run_state.to_owned()),
            ("completed", crate::clock::now_string()),
            ("message", message.clone()),
        ]),
        USER,
    )?;
    log(
        conn,
        catalog,
        if failed > 0 { "error" } else { "info" },
        &format!("Import run {} {run_state}: {message}", run["number"]),
    )?;
    Ok(())
}
