//! OAuth as ServiceNow does it: client authentication in the body or an HTTP Basic header
//! (RFC 6749 §2.3.1, https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1), password,
//! refresh_token and client_credentials grants, per-client lifetimes, revocation by deleting
//! the token record.
//! Sources: https://www.servicenow.com/docs/r/platform-security/authentication/r_OAuthAPIRequestParameters.html ,
//! https://www.servicenow.com/docs/r/platform-security/authentication/client-credentials.html

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ADMIN, Auth, call, sys_id_of};
use crate::check::{CLIENT_ID, CLIENT_SECRET, Emulator, Reply};

async fn token_request(
    emu: &Emulator,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Reply {
    let mut req = emu.client.post(emu.url("/oauth_token.do")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.expect("send");
    let status = r.status();
    let headers = r.headers().clone();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

const INTEGRATION: (&str, &str) = ("fnms.integration", "integration");

#[tokio::test]
async fn client_authenticates_with_an_http_basic_header() {
    let emu = Emulator::start().await;
    let form = [
        ("grant_type", "password"),
        ("username", INTEGRATION.0),
        ("password", INTEGRATION.1),
    ];
    let r = token_request(&emu, Some((CLIENT_ID, CLIENT_SECRET)), &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1799);
    let refresh = r.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    // The refresh grant with the header too.
    let r = token_request(
        &emu,
        Some((CLIENT_ID, CLIENT_SECRET)),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let access = r.body["access_token"].as_str().expect("access");
    let ok = call(
        &emu,
        Method::GET,
        "/api/now/table/sys_data_source",
        Auth::Bearer(access),
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // A wrong secret in the header is ServiceNow's access_denied.
    let r = token_request(&emu, Some((CLIENT_ID, "wrong")), &form).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.body,
        json!({"error_description": "access_denied", "error": "server_error"})
    );
    emu.stop().await;
}

#[tokio::test]
async fn client_credentials_grant_needs_the_property_and_an_application_user() {
    let emu = Emulator::start().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    // Off by default (documented).
    assert_eq!(
        token_request(&emu, None, &form).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/sys_properties",
            &json!({"name": "glide.oauth.inbound.client.credential.grant_type.enabled", "value": "true", "type": "boolean"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Still refused without an OAuth Application User.
    assert_eq!(
        token_request(&emu, None, &form).await.status,
        StatusCode::UNAUTHORIZED
    );
    let user = sys_id_of(&emu, "sys_user", "user_name=fnms.integration").await;
    let entity = sys_id_of(&emu, "oauth_entity", &format!("client_id={CLIENT_ID}")).await;
    let r = emu
        .send(
            Method::PATCH,
            &format!("/api/now/table/oauth_entity/{entity}"),
            &json!({"oauth_application_user": user}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = token_request(&emu, None, &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
    let access = r.body["access_token"].as_str().expect("access");
    // The token acts as the application user, with that user's roles only.
    let read = call(
        &emu,
        Method::GET,
        "/api/now/table/x_fls_flexera_fnms_import_run",
        Auth::Bearer(access),
        None,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let users = call(
        &emu,
        Method::GET,
        "/api/now/table/sys_user",
        Auth::Bearer(access),
        None,
    )
    .await;
    assert_eq!(users.status, StatusCode::FORBIDDEN);
    emu.stop().await;
}

#[tokio::test]
async fn deleting_the_token_record_revokes_it() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let path = "/api/now/table/x_fls_flexera_fnms_import_run";
    assert_eq!(
        call(&emu, Method::GET, path, Auth::Bearer(&token), None)
            .await
            .status,
        StatusCode::OK
    );
    for cred in emu.records("oauth_credential", "type=access_token").await {
        let id = cred["sys_id"].as_str().expect("sys_id");
        let r = call(
            &emu,
            Method::DELETE,
            &format!("/api/now/table/oauth_credential/{id}"),
            ADMIN,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let r = call(&emu, Method::GET, path, Auth::Bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    emu.stop().await;
}

#[tokio::test]
async fn per_client_lifetimes_are_enforced() {
    let emu = Emulator::start().await;
    let entity = sys_id_of(&emu, "oauth_entity", &format!("client_id={CLIENT_ID}")).await;
    let r = emu
        .send(
            Method::PATCH,
            &format!("/api/now/table/oauth_entity/{entity}"),
            &json!({"access_token_lifespan": "1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = token_request(
        &emu,
        None,
        &[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", INTEGRATION.0),
            ("password", INTEGRATION.1),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["expires_in"], 0);
    let access = r.body["access_token"].as_str().expect("access").to_owned();
    // Expiry has a one-second resolution: within three seconds the token is refused.
    let deadline = Instant::now() + Duration::from_secs(3);
    let path = "/api/now/table/x_fls_flexera_fnms_import_run";
    loop {
        let r = call(&emu, Method::GET, path, Auth::Bearer(&access), None).await;
        if r.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "token outlived its lifespan");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emu.stop().await;
}

#[tokio::test]
async fn secrets_are_stored_as_argon2_hashes() {
    // The admin cannot read hashes through the API; the store's own check is in auth's unit
    // tests. Here: a password set through the Table API works for Basic authentication and a
    // near miss does not.
    let emu = Emulator::start().await;
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/sys_user",
            &json!({"user_name": "carol", "user_password": "Carol-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ok = call(
        &emu,
        Method::GET,
        "/api/now/table/sys_user",
        Auth::Basic("carol", "Carol-1"),
        None,
    )
    .await;
    // Authenticated (no role: 403, not 401).
    assert_eq!(ok.status, StatusCode::FORBIDDEN, "{}", ok.body);
    let bad = call(
        &emu,
        Method::GET,
        "/api/now/table/sys_user",
        Auth::Basic("carol", "carol-1"),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    emu.stop().await;
}
