//! The one error type of the HTTP layer. Every handler failure becomes a response in
//! ServiceNow's shape: `{"error": {"message", "detail"}, "status": "failure"}` ([SN-TABLE-API] in
//! docs/sources.md), or the OAuth endpoint's own `{"error_description", "error"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or bad credentials (401 with `WWW-Authenticate`).
    #[error("user is not authenticated")]
    Unauthenticated,
    /// `/oauth_token.do` refused the client, user or token.
    #[error("OAuth access denied")]
    OAuthDenied,
    #[error("user not authorized")]
    Forbidden,
    /// An access rule refused a change (403 with ServiceNow's message).
    #[error("{message}: {detail}")]
    Denied { message: String, detail: String },
    /// A rate limit rule was exceeded (429 with `Retry-After`).
    #[error("rate limit exceeded")]
    RateLimited { detail: String, retry_after: u64 },
    #[error("{message}")]
    BadRequest {
        message: String,
        detail: Option<String>,
    },
    #[error("{message}")]
    NotFound {
        message: String,
        detail: Option<String>,
    },
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 406 (Accept) or 415 (Content-Type) for a media type the API does not speak.
    #[error("{message}")]
    Media {
        status: StatusCode,
        message: String,
        detail: String,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            detail: Some(detail.into()),
        }
    }

    pub fn no_resource() -> Self {
        Self::BadRequest {
            message: "Requested URI does not represent any resource".into(),
            detail: None,
        }
    }

    pub fn invalid_json() -> Self {
        Self::bad_request(
            "Exception while reading request",
            "The payload is not valid JSON.",
        )
    }

    pub fn too_large() -> Self {
        Self::bad_request(
            "Request entity too large",
            "The request body exceeds glide.rest.max_content_length (10 MB)",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(message) => Self::BadRequest {
                message,
                detail: None,
            },
            StoreError::Sqlite(e) => Self::Internal(e.into()),
            StoreError::Sync(e) => Self::Internal(e.into()),
        }
    }
}

fn envelope(status: StatusCode, message: &str, detail: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "detail": detail}, "status": "failure"});
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated => {
                let mut r = envelope(
                    StatusCode::UNAUTHORIZED,
                    "User is not authenticated",
                    Some("Required to provide Auth information"),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"Service-now\""),
                );
                r
            }
            Self::OAuthDenied => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error_description": "access_denied", "error": "server_error"})),
            )
                .into_response(),
            Self::Forbidden => envelope(
                StatusCode::FORBIDDEN,
                "User Not Authorized",
                Some("Failed API level ACL Validation"),
            ),
            Self::Denied { message, detail } => {
                envelope(StatusCode::FORBIDDEN, &message, Some(&detail))
            }
            Self::RateLimited {
                detail,
                retry_after,
            } => {
                let mut r = envelope(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Rate limit exceeded",
                    Some(&detail),
                );
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            Self::BadRequest { message, detail } => {
                envelope(StatusCode::BAD_REQUEST, &message, detail.as_deref())
            }
            Self::NotFound { message, detail } => {
                envelope(StatusCode::NOT_FOUND, &message, detail.as_deref())
            }
            Self::Media {
                status,
                message,
                detail,
            } => envelope(status, &message, Some(&detail)),
            Self::MethodNotAllowed => envelope(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not Supported",
                Some("The HTTP method is not supported by this resource"),
            ),
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                envelope(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error",
                    Some(&format!("{e:#}")),
                )
            }
        }
    }
}
