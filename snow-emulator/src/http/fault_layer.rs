//! The HTTP side of fault injection ([`crate::faults`]): a status code (with `Retry-After`),
//! added latency, a connection dropped before or after the request is handled, and a bearer
//! token treated as expired. Runs before authentication and routing, so a refused request
//! changes nothing.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::error::ApiError;
use crate::faults::HttpFault;

pub async fn inject(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
    if state.faults.disk_full() && is_table_write(&request) {
        return ApiError::Internal(anyhow::anyhow!(
            "database or disk is full (injected fault disk_full)"
        ))
        .into_response();
    }
    let Some(fault) = state.faults.on_request(request.uri().path(), bearer) else {
        return next.run(request).await;
    };
    tracing::info!(?fault, path = request.uri().path(), "injected fault");
    match fault {
        HttpFault::Delay(d) => {
            tokio::time::sleep(d).await;
            next.run(request).await
        }
        HttpFault::Status {
            status,
            retry_after,
        } => status_response(status, retry_after),
        HttpFault::ExpiredToken => ApiError::Unauthenticated.into_response(),
        HttpFault::DropBeforeHandling => dropped(),
        HttpFault::DropAfterHandling => {
            // Handled and committed; only the answer is lost.
            let _ = next.run(request).await;
            dropped()
        }
    }
}

/// A write through the Table or Import Set API (what a full disk refuses).
fn is_table_write(request: &Request) -> bool {
    use axum::http::Method;
    let write = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    write.contains(request.method()) && request.uri().path().starts_with("/api/now/")
}

fn status_response(status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "error": {
            "message": code.canonical_reason().unwrap_or("Error"),
            "detail": "injected fault (http_status)",
        },
        "status": "failure",
    });
    let mut r = (code, axum::Json(body)).into_response();
    if let Some(seconds) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    r
}

/// A response whose body fails at once: hyper closes the connection after the headers, so
/// the client sees the connection drop before it has an answer.
fn dropped() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault (drop_connection)",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "2")
        .body(Body::from_stream(failing))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
