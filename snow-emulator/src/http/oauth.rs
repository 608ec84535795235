//! `POST /oauth_token.do` ([SN-AUTH] in docs/sources.md): password, refresh_token and client_credentials
//! grants, form-encoded. The client authenticates in the body (`client_id`,
//! `client_secret`) or in an `Authorization: Basic` header (RFC 6749 §2.3.1), as
//! off-the-shelf OAuth clients do. Any refusal is ServiceNow's 401 `access_denied`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use serde_json::json;

use super::AppState;
use crate::auth;
use crate::error::ApiError;

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The client's id and secret from an `Authorization: Basic` header (RFC 6749 §2.3.1: each
/// form-encoded, then joined by `:` and base64-encoded).
fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Ok(Form(form)) = form else {
        return Err(ApiError::OAuthDenied);
    };
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (client_id, secret) =
        basic_client(&headers).unwrap_or_else(|| (get("client_id"), get("client_secret")));
    let grant = get("grant_type");
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
        "client_credentials" => {
            state
                .store
                .call(move |conn, catalog| {
                    auth::client_credentials_grant(conn, catalog, &client_id, &secret)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_client_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let raw = base64::engine::general_purpose::STANDARD.encode("my+id:s%3Acret%25");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {raw}").parse().expect("header"),
        );
        assert_eq!(
            basic_client(&h),
            Some(("my id".to_owned(), "s:cret%".to_owned()))
        );
        h.insert(header::AUTHORIZATION, "Bearer x".parse().expect("header"));
        assert_eq!(basic_client(&h), None);
        assert_eq!(form_decode("%zz"), None);
    }
}
