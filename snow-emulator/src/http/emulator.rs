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

/// Wipes every record, seeds the instance afresh and puts its clock back to the real time.
pub async fn reset(
    State(state): State<AppState>,
    _access: ControlAccess,
) -> Result<Json<Value>, ApiError> {
    reset_instance(&state).await?;
    Ok(Json(json!({ "status": "reset" })))
}

/// What `POST /_emulator/reset` does (also the web UI's Reset button).
pub(crate) async fn reset_instance(state: &AppState) -> Result<(), ApiError> {
    let settings = state.config.settings();
    state
        .store
        .call(move |conn, catalog| -> anyhow::Result<()> {
            store::wipe(conn, catalog)?;
            store::seed::seed(conn, catalog, &settings)?;
            crate::acl::seed(conn, catalog)
        })
        .await??;
    state.store.clock().reset();
    // Back to the start-up plan (`--faults FILE`, validated at start).
    let _ = state.faults.install(state.config.faults.clone());
    state.worker.wake();
    tracing::info!("instance reset");
    Ok(())
}

/// `GET /_emulator/faults`: the installed plan, with how often each fault matched and fired.
pub async fn faults(State(state): State<AppState>, _access: ControlAccess) -> Json<Value> {
    Json(state.faults.describe())
}

/// `POST /_emulator/faults`: `{"seed": N, "faults": [...]}` replaces the plan.
pub async fn set_faults(
    State(state): State<AppState>,
    _access: ControlAccess,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let plan: crate::faults::Plan = serde_json::from_value(json_body(body).await?)
        .map_err(|e| ApiError::bad_request("Invalid fault plan", e.to_string()))?;
    state
        .faults
        .install(plan)
        .map_err(|e| ApiError::bad_request("Invalid fault plan", e))?;
    tracing::info!("fault plan installed");
    Ok(Json(state.faults.describe()))
}

/// `DELETE /_emulator/faults`: no faults; hung transactions are released.
pub async fn clear_faults(State(state): State<AppState>, _access: ControlAccess) -> Json<Value> {
    state.faults.clear();
    state.worker.wake();
    Json(state.faults.describe())
}

pub async fn worker(State(state): State<AppState>, _access: ControlAccess) -> Json<Value> {
    Json(json!({ "paused": state.worker.paused() }))
}

async fn json_body(body: Body) -> Result<Value, ApiError> {
    let bytes = read_body(body).await?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::invalid_json())
}

/// `{"paused": bool}`, or `{"action": "pause" | "resume" | "step" | "claim"}`. Pausing stops
/// the worker after the transaction in progress. `step` (paused only) processes exactly one
/// transaction and answers when it is done; `claim` (paused only) makes the next one
/// Processing without processing it, so a test can observe that state.
pub async fn set_worker(
    State(state): State<AppState>,
    _access: ControlAccess,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let value = json_body(body).await?;
    let action = match (
        value.get("paused"),
        value.get("action").and_then(Value::as_str),
    ) {
        (Some(Value::Bool(true)), None) => "pause",
        (Some(Value::Bool(false)), None) => "resume",
        (None, Some(action)) => action,
        _ => "",
    };
    match action {
        "pause" | "resume" => {
            state.worker.set_paused(action == "pause");
            Ok(Json(json!({ "paused": state.worker.paused() })))
        }
        "step" | "claim" if !state.worker.paused() => Err(ApiError::bad_request(
            "Worker is running",
            "Pause the worker before stepping it",
        )),
        "step" => step(&state).await,
        "claim" => {
            let store = state.store.clone();
            let claimed =
                tokio::task::spawn_blocking(move || crate::app::process::claim_next(&store))
                    .await
                    .map_err(|e| anyhow::anyhow!("claim failed: {e}"))??;
            Ok(Json(json!({ "paused": true, "claimed": claimed })))
        }
        _ => Err(ApiError::bad_request(
            "Invalid request",
            "Expected {\"paused\": true|false} or {\"action\": \"pause\"|\"resume\"|\"step\"|\"claim\"}",
        )),
    }
}

/// Processes exactly one transaction while the worker is paused.
pub(crate) async fn step(state: &AppState) -> Result<Json<Value>, ApiError> {
    let (store, faults) = (state.store.clone(), state.faults.clone());
    let processed =
        tokio::task::spawn_blocking(move || crate::app::process::process_next(&store, &faults))
            .await
            .map_err(|e| anyhow::anyhow!("step failed: {e}"))??;
    let transaction = processed.map(|p| json!({ "number": p.number, "state": p.state.as_str() }));
    Ok(Json(json!({
        "paused": true,
        "processed": transaction.is_some(),
        "transaction": transaction,
    })))
}

fn clock_state(state: &AppState) -> Json<Value> {
    let clock = state.store.clock();
    Json(json!({
        "now": clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "offset_seconds": clock.offset_seconds(),
    }))
}

/// The instance clock: `{"now": "...Z", "offset_seconds": N}`.
pub async fn clock(State(state): State<AppState>, _access: ControlAccess) -> Json<Value> {
    clock_state(&state)
}

/// `{"set": "2026-01-01T00:00:00Z"}`, `{"advance_seconds": N}` or `{"reset": true}`.
pub async fn set_clock(
    State(state): State<AppState>,
    _access: ControlAccess,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let value = json_body(body).await?;
    let clock = state.store.clock();
    let invalid = |detail: &str| ApiError::bad_request("Invalid request", detail);
    if let Some(set) = value.get("set") {
        let t = set
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .ok_or_else(|| invalid("set must be an RFC 3339 time such as 2026-01-01T00:00:00Z"))?;
        clock.set(t.with_timezone(&chrono::Utc));
    } else if let Some(n) = value.get("advance_seconds") {
        clock.advance(
            n.as_i64()
                .ok_or_else(|| invalid("advance_seconds must be an integer"))?,
        );
    } else if value.get("reset") == Some(&Value::Bool(true)) {
        clock.reset();
    } else {
        return Err(invalid(
            "Expected {\"set\": TIME}, {\"advance_seconds\": N} or {\"reset\": true}",
        ));
    }
    Ok(clock_state(&state))
}
