//! `/_emulator/…`: controls for tests and developers, not part of ServiceNow. `health` and
//! `catalog` are open; the controls that change state are open to loopback clients and
//! otherwise need an administrator (see [`super::ControlAccess`]).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde_json::{Value, json};

use super::{AppState, ControlAccess, read_body};
use crate::error::ApiError;
use crate::store;

pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let catalog = state.store.catalog();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "worker": { "paused": state.worker.paused() },
        "catalog": { "tables": catalog.tables.len(), "transform_maps": catalog.maps.len() },
    }))
}

/// The catalog as loaded: tables (with class hierarchy and storage), columns, maps.
pub async fn catalog(State(state): State<AppState>) -> Json<Value> {
    let catalog = state.store.catalog();
    let tables: Vec<Value> = catalog
        .tables
        .values()
        .map(|t| {
            json!({
                "name": t.name,
                "label": t.label,
                "extends": t.parent,
                "physical": t.physical,
                "display": t.display,
                "columns": t.columns.iter().map(|c| json!({
                    "name": c.name,
                    "label": c.label,
                    "type": format!("{:?}", c.kind).to_lowercase(),
                    "reference": c.reference,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let maps: Vec<Value> = catalog
        .maps
        .iter()
        .map(|m| json!({"name": m.name, "source_table": m.source_table, "target_table": m.target_table, "order": m.order, "active": m.active}))
        .collect();
    Json(json!({ "tables": tables, "transform_maps": maps }))
}

/// Wipes every record and seeds the instance afresh.
pub async fn reset(
    State(state): State<AppState>,
    _access: ControlAccess,
) -> Result<Json<Value>, ApiError> {
    let config = state.config.clone();
    state
        .store
        .call(move |conn, catalog| -> anyhow::Result<()> {
            store::wipe(conn, catalog)?;
            store::seed::seed(conn, catalog, &config)?;
            crate::acl::seed(conn, catalog)
        })
        .await??;
    tracing::info!("instance reset");
    Ok(Json(json!({ "status": "reset" })))
}

pub async fn worker(State(state): State<AppState>, _access: ControlAccess) -> Json<Value> {
    Json(json!({ "paused": state.worker.paused() }))
}

/// `{"paused": true}` stops the worker after the transaction in progress; `false` resumes.
pub async fn set_worker(
    State(state): State<AppState>,
    _access: ControlAccess,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::invalid_json())?;
    let paused = value
        .get("paused")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            ApiError::bad_request("Invalid request", "Expected {\"paused\": true|false}")
        })?;
    state.worker.set_paused(paused);
    Ok(Json(json!({ "paused": paused })))
}
