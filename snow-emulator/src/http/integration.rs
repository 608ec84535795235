//! `POST /api/x_fls_flexera_fnms/integration/fnmstosn` and its alias `/fnmp.do`
//! (docs/wire-protocol.md §3). The platform refuses an oversized or non-JSON body with its
//! 400 envelope; everything else is answered 200 with a return code by `app::intake`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde_json::{Value, json};

use super::{AppState, AuthUser, read_body};
use crate::app::intake::{self, ReturnCode};
use crate::error::ApiError;

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
    let reply = state
        .store
        .call(move |conn, catalog| intake::handle(conn, catalog, &value, data_is_utf8))
        .await?;
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
    if reply.queued {
        state.worker.wake();
    }
    Ok(Json(json!({ "result": reply.result })))
}
