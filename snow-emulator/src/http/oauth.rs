//! `POST /oauth_token.do` ([SN-AUTH] in docs/sources.md): password and refresh_token grants,
//! form-encoded. Any refusal is ServiceNow's 401 `access_denied`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use serde_json::json;

use super::AppState;
use crate::auth;
use crate::error::ApiError;

pub async fn token(
    State(state): State<AppState>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Ok(Form(form)) = form else {
        return Err(ApiError::OAuthDenied);
    };
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (grant, client_id, secret) = (get("grant_type"), get("client_id"), get("client_secret"));
    let tokens = match grant.as_str() {
        "password" => {
            let (user, password) = (get("username"), get("password"));
            state
                .store
                .call(move |conn, catalog| {
                    auth::password_grant(conn, catalog, &client_id, &secret, &user, &password)
                })
                .await??
        }
        "refresh_token" => {
            let refresh = get("refresh_token");
            state
                .store
                .call(move |conn, catalog| {
                    auth::refresh_grant(conn, catalog, &client_id, &secret, &refresh)
                })
                .await??
        }
        _ => None,
    };
    let tokens = tokens.ok_or(ApiError::OAuthDenied)?;
    let mut body = json!({
        "access_token": tokens.access_token,
        "scope": "useraccount",
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
    });
    if let (Some(refresh), Some(obj)) = (tokens.refresh_token, body.as_object_mut()) {
        obj.insert("refresh_token".into(), json!(refresh));
    }
    Ok(Json(body))
}
