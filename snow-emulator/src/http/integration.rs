//! `POST /api/x_fls_flexera_fnms/integration/fnmstosn` and its alias `/fnmp.do`
//! (docs/wire-protocol.md §3). The platform refuses an oversized or non-JSON body with its
//! 400 envelope; everything else is answered 200 with a return code by `app::intake`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde_json::{Value, json};

use super::{AppState, AuthUser, read_body};
use crate::app::intake::{self, ReturnCode};
use crate::auth;
use crate::error::ApiError;
use crate::faults::SegmentFault;

pub async fn fnmstosn(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    uri: axum::http::Uri,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    super::access::authorize(
        state.store.catalog(),
        &user,
        crate::acl::Operation::Execute,
        crate::acl::Resource::Endpoint(uri.path()),
    )?;
    let bytes = read_body(body).await?;
    let (value, data_is_utf8) = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => (v, true),
        // Invalid UTF-8 inside an otherwise readable body is the segment's fault (code 12),
        // not the platform's: read it with replacement characters, then refuse the data.
        Err(_) if std::str::from_utf8(&bytes).is_err() => {
            let lossy = String::from_utf8_lossy(&bytes);
            let v = serde_json::from_str::<Value>(&lossy).map_err(|_| ApiError::invalid_json())?;
            (v, false)
        }
        Err(_) => return Err(ApiError::invalid_json()),
    };
    let tid = value
        .get("transactionId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(reply) = injected(&state, &value, tid.as_deref()) {
        return Ok(Json(json!({ "result": reply.result })));
    }
    // Only a data segment writes; `connection_test` and `export_status` polls need no fsync.
    let writes = value
        .get("transactionType")
        .and_then(Value::as_str)
        .is_some_and(|t| state.store.catalog().import_type(t).is_some());
    let store = state.store.clone();
    let (value, checked) = tokio::task::spawn_blocking(move || {
        let checked = intake::DataCheck::of(store.catalog(), &value);
        (value, checked)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading the segment failed: {e}")))?;
    let (store, worker) = (state.store.clone(), state.worker.clone());
    // Queued: when the worker holds the store, stored on its thread as it lets go, so it
    // goes on to this transaction without a thread switch.
    let reply = state
        .store
        .call_queued(move |conn, catalog| {
            // Made durable by `sync_log` below, once the lock is released.
            let reply = crate::store::unsynced(conn, |conn| {
                intake::handle(conn, catalog, &value, data_is_utf8, &checked)
            })
            .map_err(crate::store::StoreError::from)
            .and_then(|r| r);
            // Handed over while the lock is held, so the worker cannot claim the transaction
            // before it is there.
            if let Ok(Some(sys_id)) = reply.as_ref().map(|r| r.stored.as_deref())
                && let Some(read) = checked.into_read()
            {
                store.hand_over(sys_id, read);
            }
            // Woken from here, not after this task's end, so the worker (waiting on its own
            // thread, when it is not the one running this) starts as soon as the lock is free.
            // It may start on the transaction before the log is synced: its own commits come
            // later in the same log, so a power cut cannot keep them and lose this one.
            if reply.as_ref().is_ok_and(|r| r.queued) {
                worker.wake();
            }
            reply
        })
        .await?;
    let reply = if writes {
        let store = state.store.clone();
        let synced = tokio::task::spawn_blocking(move || store.sync_log())
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("syncing the log failed: {e}")))?;
        reply.and_then(|r| synced.map(|()| r).map_err(crate::store::StoreError::from))
    } else {
        reply
    };
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "failed to store a transaction");
            intake::failure(
                ReturnCode::InternalError,
                format!("The instance failed to store the transaction: {e}"),
                tid.as_deref(),
            )
        }
    };
    Ok(Json(json!({ "result": reply.result })))
}

/// A segment fault ([`crate::faults`]) for a data segment: its return code, or the answer of
/// a store that cannot write (the same as a real write failure's). Nothing is stored.
fn injected(state: &AppState, value: &Value, tid: Option<&str>) -> Option<intake::Reply> {
    let ttype = value.get("transactionType").and_then(Value::as_str)?;
    state.store.catalog().import_type(ttype)?;
    let reply = match state.faults.on_segment(ttype)? {
        SegmentFault::Code(code) => {
            let mut reply = intake::failure(
                ReturnCode::InternalError,
                format!("injected fault (segment_code {code})"),
                tid,
            );
            reply.result["returnCode"] = json!(code);
            reply
        }
        SegmentFault::DiskFull => intake::failure(
            ReturnCode::InternalError,
            "The instance failed to store the transaction: database or disk is full",
            tid,
        ),
    };
    tracing::info!(transaction_type = ttype, "injected segment fault");
    Some(reply)
}

/// `POST /api/x_fls_flexera_fnms/integration/generate_token` (designed; docs/wire-protocol.md
/// "Generate Token"): what the app's set-up page does when an administrator enters the
/// integration user's id and password and clicks Generate Token ([CFG-SN-22R1] in
/// docs/sources.md). Body `{"user_name", "password"}`; answers the refresh token for the app's
/// OAuth client, which the exporter trades for access tokens, and when it expires.
pub async fn generate_token(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    if !caller.admin {
        return Err(ApiError::Forbidden);
    }
    let bytes = read_body(body).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::invalid_json())?;
    let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(user), Some(password)) = (field("user_name"), field("password")) else {
        return Err(ApiError::bad_request(
            "Invalid request",
            "Expected {\"user_name\": \"...\", \"password\": \"...\"}",
        ));
    };
    let (client_id, secret) = (
        state.config.oauth_client_id.clone(),
        state.config.oauth_client_secret.clone(),
    );
    let issued = state
        .store
        .call(
            move |conn, catalog| -> Result<_, crate::store::StoreError> {
                let Some(tokens) =
                    auth::password_grant(conn, catalog, &client_id, &secret, &user, &password)?
                else {
                    return Ok(None);
                };
                let Some(refresh) = tokens.refresh_token else {
                    return Ok(None);
                };
                let expires = auth::refresh_expiry(conn, catalog, &refresh)?;
                Ok(Some((refresh, expires, user)))
            },
        )
        .await??;
    let Some((refresh, expires, user)) = issued else {
        return Err(ApiError::bad_request(
            "Token generation failed",
            "The user id or password is not valid",
        ));
    };
    let now = state.store.clock().now_string();
    let expires_in = seconds_between(&now, &expires);
    Ok(Json(json!({ "result": {
        "user_name": user,
        "refresh_token": refresh,
        "expires": expires,
        "expires_in": expires_in,
    }})))
}

/// When the refresh token just issued expires (its `oauth_credential` record).
fn seconds_between(from: &str, to: &str) -> i64 {
    let parse = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok();
    match (parse(from), parse(to)) {
        (Some(a), Some(b)) => (b - a).num_seconds(),
        _ => 0,
    }
}
