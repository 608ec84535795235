//! The Import Set API (docs/platform-api.md): `POST /api/now/import/{staging_table}` stages
//! one row and transforms it synchronously with the staging table's transform maps (the
//! app's engine); `…/insertMultiple` stages `{"records": […]}` in a new import set. Loading
//! needs create access on the staging table (role `import_set_loader`, or admin); the
//! transform then writes the targets, as on an instance.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::table_api::lookup;
use super::{AppState, AuthUser, BaseUrl, read_body};
use crate::acl::Operation;
use crate::auth::Principal;
use crate::catalog::{Catalog, Table};
use crate::error::ApiError;
use crate::store::{self, Fields};
use crate::transform::{Engine, RowOutcome};

/// The one place this API builds the app's transform engine.
fn transform_engine<'c, 'conn>(
    conn: &'conn Connection,
    catalog: &'c Catalog,
    staging: &Table,
    user: &str,
) -> Result<Engine<'c, 'conn>, ApiError> {
    // The same context the app's worker builds: properties, plugins, run-as user, one time.
    let context =
        crate::app::routing::engine_context(conn, catalog, user, crate::clock::now_string())?;
    Ok(Engine::new(conn, catalog, &staging.name, context, None)?)
}

fn staging_table<'c>(
    catalog: &'c Catalog,
    name: &str,
    who: &Principal,
) -> Result<&'c Table, ApiError> {
    let table = lookup(catalog, name, who, Operation::Create)?;
    let mut current = Some(table);
    while let Some(t) = current {
        if t.name == "sys_import_set_row" {
            return Ok(table);
        }
        current = t.parent.as_deref().and_then(|p| catalog.table(p));
    }
    Err(ApiError::bad_request(
        format!("Invalid staging table {name}"),
        "The table does not extend sys_import_set_row",
    ))
}

fn system_table<'c>(catalog: &'c Catalog, name: &str) -> Result<&'c Table, ApiError> {
    catalog
        .table(name)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the catalog has no {name} table")))
}

/// A JSON object of name/value pairs as staging columns (strings as they are, other JSON
/// as its text; system and unknown columns ignored).
fn row_of(value: &Value, staging: &Table) -> Result<HashMap<String, String>, ApiError> {
    let Value::Object(obj) = value else {
        return Err(ApiError::invalid_json());
    };
    let mut row = HashMap::new();
    for (k, v) in obj {
        if k.starts_with("sys_") || staging.column(k).is_none() {
            continue;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if !text.trim().is_empty() {
            row.insert(k.clone(), text);
        }
    }
    Ok(row)
}

/// Stores one staging row with its transform outcome.
fn stage(
    conn: &Connection,
    staging: &Table,
    row: &HashMap<String, String>,
    outcome: &RowOutcome,
    index: usize,
    user: &str,
) -> Result<String, ApiError> {
    let mut fields: Fields = row.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in [
        ("sys_import_row", index.to_string()),
        ("sys_import_state", outcome.state.as_str().to_owned()),
        ("sys_import_state_comment", outcome.comment.clone()),
        ("sys_row_error", outcome.error.clone()),
        ("sys_target_sys_id", outcome.target_sys_id.clone()),
        ("sys_target_table", outcome.target_table.to_owned()),
        ("sys_transform_map", outcome.transform_map.to_owned()),
    ] {
        fields.insert(k.to_owned(), v);
    }
    Ok(store::insert(conn, staging, &fields, user)?)
}

/// The per-row result element of ServiceNow's response.
fn result_element(
    conn: &Connection,
    catalog: &Catalog,
    base: &str,
    outcome: &RowOutcome,
) -> Result<Value, ApiError> {
    let mut out = Map::new();
    out.insert("transform_map".into(), json!(outcome.transform_map));
    out.insert("table".into(), json!(outcome.target_table));
    if let Some(target) = catalog.table(outcome.target_table)
        && !outcome.target_sys_id.is_empty()
    {
        let shown = store::display_value(conn, catalog, &target.name, &outcome.target_sys_id)?;
        out.insert("display_name".into(), json!(target.display));
        out.insert("display_value".into(), json!(shown));
        out.insert(
            "record_link".into(),
            json!(format!(
                "{base}/api/now/table/{}/{}",
                target.name, outcome.target_sys_id
            )),
        );
    }
    out.insert("status".into(), json!(outcome.state.as_str()));
    out.insert("sys_id".into(), json!(outcome.target_sys_id));
    if !outcome.comment.is_empty() {
        out.insert("status_message".into(), json!(outcome.comment));
    }
    if !outcome.error.is_empty() {
        out.insert("error_message".into(), json!(outcome.error));
    }
    Ok(Value::Object(out))
}

/// The synchronous import set of a staging table: the one still loading, else a new one.
fn import_set(conn: &Connection, catalog: &Catalog, staging: &str) -> Result<Fields, ApiError> {
    let sets = system_table(catalog, "sys_import_set")?;
    let pairs = [
        ("table_name", staging),
        ("state", "loading"),
        ("mode", "synchronous"),
    ];
    if let Some(existing) = store::find_by(conn, sets, &pairs)? {
        return Ok(existing);
    }
    let values: Fields = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let sys_id = store::insert(conn, sets, &values, "system")?;
    store::get(conn, sets, &sys_id)?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("import set vanished")))
}

pub async fn insert(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    path: Result<Path<String>, PathRejection>,
    BaseUrl(base): BaseUrl,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(|_| ApiError::no_resource())?;
    let bytes = read_body(body).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::invalid_json())?;
    let body = state
        .store
        .call(move |conn, catalog| -> Result<Value, ApiError> {
            let staging = staging_table(catalog, &name, &user)?;
            let row = row_of(&value, staging)?;
            let tx = conn.transaction().map_err(store::StoreError::from)?;
            let set = import_set(&tx, catalog, &staging.name)?;
            let engine = transform_engine(&tx, catalog, staging, &user.user_name)?;
            let outcome = engine.transform_row(&row)?;
            // Writes what the engine held back, before the answer reads the record.
            engine.finish()?;
            drop(engine);
            stage(&tx, staging, &row, &outcome, 0, &user.user_name)?;
            let element = result_element(&tx, catalog, &base, &outcome)?;
            tx.commit().map_err(store::StoreError::from)?;
            Ok(json!({
                "import_set": set.get("number").cloned().unwrap_or_default(),
                "staging_table": staging.name,
                "result": [element],
            }))
        })
        .await??;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn insert_multiple(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(|_| ApiError::no_resource())?;
    let bytes = read_body(body).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::invalid_json())?;
    let Some(records) = value.get("records").and_then(Value::as_array).cloned() else {
        return Err(ApiError::bad_request(
            "Invalid request",
            "Expected {\"records\": [ … ]}",
        ));
    };
    let body = state
        .store
        .call(move |conn, catalog| -> Result<Value, ApiError> {
            let staging = staging_table(catalog, &name, &user)?;
            let rows = records
                .iter()
                .map(|r| row_of(r, staging))
                .collect::<Result<Vec<_>, _>>()?;
            let tx = conn.transaction().map_err(store::StoreError::from)?;
            let multi = system_table(catalog, "sys_multi_import_set")?;
            let mut values = Fields::new();
            values.insert("table_name".into(), staging.name.clone());
            let multi_id = store::insert(&tx, multi, &values, &user.user_name)?;
            values.insert("multi_import_set".into(), multi_id.clone());
            values.insert("state".into(), "processed".into());
            values.insert("mode".into(), "asynchronous".into());
            let sets = system_table(catalog, "sys_import_set")?;
            let set_id = store::insert(&tx, sets, &values, &user.user_name)?;
            let engine = transform_engine(&tx, catalog, staging, &user.user_name)?;
            for (i, row) in rows.iter().enumerate() {
                let outcome = engine.transform_row(row)?;
                stage(&tx, staging, row, &outcome, i, &user.user_name)?;
            }
            engine.finish()?;
            drop(engine);
            tx.commit().map_err(store::StoreError::from)?;
            Ok(json!({"import_set_id": set_id, "multi_import_set_id": multi_id}))
        })
        .await??;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
