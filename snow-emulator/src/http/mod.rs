//! The HTTP surface: routing, authentication and what all handlers share. Handlers are thin:
//! they read the request, call the store (on the blocking pool) and shape the response;
//! every failure is an [`ApiError`].
//!
//! - `oauth`: `/oauth_token.do`
//! - `integration`: the Flexera endpoint (`fnmstosn`, `fnmp.do`)
//! - `table_api`: `/api/now/[v1|v2/]table/…`
//! - `emulator`: `/_emulator/…` controls (health, catalog, reset, worker; room for faults,
//!   clock, web UI)

pub mod access;
pub(crate) mod emulator;
mod fault_layer;
mod import_set;
mod integration;
mod oauth;
mod rate_limit;
mod stats;
pub(crate) mod table_api;
mod xml;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::{get, post};
use base64::Engine as _;

use crate::Config;
use crate::auth::{self, Principal};
use crate::error::ApiError;
use crate::store::Store;
use crate::worker::WorkerControl;

/// glide.rest.max_content_length's default ([SN-AUTH] in docs/sources.md).
pub const MAX_BODY: usize = 10 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub config: Config,
    pub worker: Arc<WorkerControl>,
    pub faults: Arc<crate::faults::Faults>,
    /// The web UI's logged-in sessions (`crate::ui`).
    pub sessions: Arc<crate::ui::Sessions>,
    pub scheme: &'static str,
    pub local_addr: SocketAddr,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Base URL for links: the configured public URL, else what the client called (Host
    /// header in HTTP/1.1, the request's authority in HTTP/2), else the listener.
    pub fn base_url(&self, parts: &Parts) -> String {
        if let Some(url) = &self.config.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let safe = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| safe(h))
            .map(str::to_owned)
            .or_else(|| {
                parts
                    .uri
                    .authority()
                    .map(|a| a.as_str().to_owned())
                    .filter(|h| safe(h))
            })
            .unwrap_or_else(|| self.local_addr.to_string());
        format!("{}://{host}", self.scheme)
    }
}

/// The instance's base URL as seen by this request (see [`AppState::base_url`]).
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(state.base_url(parts)))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    use table_api as t;
    Router::new()
        .route("/oauth_token.do", post(oauth::token))
        .route(
            "/api/x_fls_flexera_fnms/integration/fnmstosn",
            post(integration::fnmstosn),
        )
        .route("/fnmp.do", post(integration::fnmstosn))
        .route("/api/now/table/{table}", get(t::list).post(t::create))
        .route(
            "/api/now/table/{table}/{sys_id}",
            get(t::get_one)
                .put(t::update)
                .patch(t::update)
                .delete(t::delete),
        )
        .route(
            "/api/now/{version}/table/{table}",
            get(t::list).post(t::create),
        )
        .route(
            "/api/now/{version}/table/{table}/{sys_id}",
            get(t::get_one)
                .put(t::update)
                .patch(t::update)
                .delete(t::delete),
        )
        .route("/api/now/stats/{table}", get(stats::stats))
        .route("/api/now/import/{table}", post(import_set::insert))
        .route(
            "/api/now/import/{table}/insertMultiple",
            post(import_set::insert_multiple),
        )
        .route("/api/now/{version}/stats/{table}", get(stats::stats))
        .route("/_emulator/health", get(emulator::health))
        .route("/_emulator/reset", post(emulator::reset))
        .route("/_emulator/catalog", get(emulator::catalog))
        .route(
            "/_emulator/worker",
            get(emulator::worker).post(emulator::set_worker),
        )
        .route(
            "/_emulator/faults",
            get(emulator::faults)
                .post(emulator::set_faults)
                .delete(emulator::clear_faults),
        )
        .route(
            "/_emulator/clock",
            get(emulator::clock).post(emulator::set_clock),
        )
        .route(
            "/api/x_fls_flexera_fnms/integration/generate_token",
            post(integration::generate_token),
        )
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::no_resource() })
        .layer(axum::middleware::from_fn(rate_limit::headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            fault_layer::inject,
        ))
        .layer(axum::middleware::from_fn(header_limit))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // ServiceNow's REST transaction quota is 60 s ([SN-AUTH] in docs/sources.md); it also keeps a
        // graceful shutdown from waiting on a stuck request. What the platform answers then
        // is not documented; 503 is designed.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            std::time::Duration::from_secs(60),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Total size of a request's header names and values the instance accepts (designed; the
/// application server in front of an instance refuses far smaller headers than hyper's own
/// limit, and no client of this integration sends more than a few kilobytes).
pub const MAX_HEADERS: usize = 64 * 1024;

/// Refuses a request whose headers exceed [`MAX_HEADERS`] with `431` in the error envelope,
/// before anything reads it.
async fn header_limit(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_HEADERS {
        let body = serde_json::json!({
            "error": {
                "message": "Request Header Fields Too Large",
                "detail": format!("The request headers exceed {MAX_HEADERS} bytes"),
            },
            "status": "failure",
        });
        return (
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            axum::Json(body),
        )
            .into_response();
    }
    next.run(request).await
}

/// Reads a request body up to [`MAX_BODY`].
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())
}

/// The authenticated caller: Basic (sys_user) or Bearer (an OAuth access token).
pub struct AuthUser(pub Principal);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .ok_or(ApiError::Unauthenticated)?;
        let (scheme, credentials) = value
            .trim()
            .split_once(' ')
            .ok_or(ApiError::Unauthenticated)?;
        let credentials = credentials.trim().to_owned();
        let principal = match scheme.to_ascii_lowercase().as_str() {
            "bearer" => {
                state
                    .store
                    .read(move |conn, catalog| auth::bearer(conn, catalog, &credentials))
                    .await??
            }
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(credentials)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or(ApiError::Unauthenticated)?;
                let (user, password) = decoded
                    .split_once(':')
                    .map(|(u, p)| (u.to_owned(), p.to_owned()))
                    .ok_or(ApiError::Unauthenticated)?;
                state
                    .store
                    .read(move |conn, catalog| auth::basic(conn, catalog, &user, &password))
                    .await??
            }
            _ => None,
        };
        let principal = principal.ok_or(ApiError::Unauthenticated)?;
        let slot = parts.extensions.get::<rate_limit::Slot>().cloned();
        let (who, path) = (principal.clone(), parts.uri.path().to_owned());
        state
            .store
            .read(move |conn, catalog| rate_limit::admit(conn, catalog, &who, &path, slot.as_ref()))
            .await??;
        Ok(AuthUser(principal))
    }
}

/// Access to the `/_emulator` controls that change state: open to clients on the loopback
/// interface (tests, the conformance suite, a developer's tools, as LocalStack and moto do),
/// otherwise only to an authenticated administrator.
pub struct ControlAccess;

impl FromRequestParts<AppState> for ControlAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        if peer.is_some_and(|p| p.ip().is_loopback()) {
            return Ok(Self);
        }
        let AuthUser(p) = AuthUser::from_request_parts(parts, state).await?;
        if p.admin {
            Ok(Self)
        } else {
            Err(ApiError::Forbidden)
        }
    }
}
