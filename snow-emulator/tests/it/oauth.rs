//! `/oauth_token.do` and authentication of the other APIs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::check::{CLIENT_ID, CLIENT_SECRET, Emulator, fixture_json};

fn redact(mut v: Value) -> Value {
    for key in ["access_token", "refresh_token"] {
        if let Some(t) = v.get_mut(key) {
            let s = t.as_str().expect("token is a string");
            assert!(
                s.len() >= 80 && s.chars().all(|c| c.is_ascii_alphanumeric()),
                "{s}"
            );
            *t = json!(format!("[{}]", key.replace('_', " ")));
        }
    }
    v
}

#[tokio::test]
async fn password_and_refresh_grants_match_the_golden_responses() {
    let emu = Emulator::start().await;
    let r = emu
        .oauth(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", "fnms.integration"),
            ("password", "integration"),
        ])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let refresh = r.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_eq!(redact(r.body), fixture_json("responses/oauth_token.json"));

    let r = emu
        .oauth(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", &refresh),
        ])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let access = r.body["access_token"].as_str().expect("access").to_owned();
    assert_eq!(redact(r.body), fixture_json("responses/oauth_refresh.json"));

    // The access token opens the APIs (what the integration user's roles allow).
    let r = emu
        .client
        .get(emu.url("/api/now/table/x_fls_flexera_fnms_import_run?sysparm_limit=1"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    emu.stop().await;
}

#[tokio::test]
async fn refusals_are_access_denied() {
    let emu = Emulator::start().await;
    let refresh = emu.refresh_token().await;
    let denied = fixture_json("responses/oauth_denied.json");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
            ("username", "fnms.integration"),
            ("password", "integration"),
        ],
        vec![
            ("grant_type", "password"),
            ("client_id", "other"),
            ("client_secret", CLIENT_SECRET),
            ("username", "fnms.integration"),
            ("password", "integration"),
        ],
        vec![
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", "fnms.integration"),
            ("password", "wrong"),
        ],
        vec![
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", "FNMS.INTEGRATION"),
            ("password", "integration"),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", "not-a-token"),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
            ("refresh_token", &refresh),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
        vec![],
    ];
    for form in cases {
        let r = emu.oauth(&form).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{form:?}");
        assert_eq!(r.body, denied, "{form:?}");
    }
    // A JSON body is not a form.
    let r = emu
        .client
        .post(emu.url("/oauth_token.do"))
        .json(&json!({"grant_type": "password"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    emu.stop().await;
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_the_unauthorized_envelope() {
    let emu = Emulator::start().await;
    let golden = fixture_json("responses/unauthorized.json");
    let token = emu.token().await;
    let attempts = [
        emu.client.get(emu.url("/api/now/table/sys_user")),
        emu.client
            .get(emu.url("/api/now/table/sys_user"))
            .bearer_auth("wrong"),
        emu.client
            .get(emu.url("/api/now/table/sys_user"))
            .bearer_auth(format!("{token}x")),
        emu.client
            .get(emu.url("/api/now/table/sys_user"))
            .basic_auth("admin", Some("wrong")),
        emu.client
            .get(emu.url("/api/now/table/sys_user"))
            .basic_auth("nobody", Some("admin")),
        emu.client
            .get(emu.url("/api/now/table/sys_user"))
            .header("Authorization", "Basic !!!"),
        emu.client
            .post(emu.url("/fnmp.do"))
            .bearer_auth("wrong")
            .body("{}"),
        emu.client
            .post(emu.url("/api/x_fls_flexera_fnms/integration/fnmstosn"))
            .body("{}"),
        // A refresh token is not an access token.
        emu.client
            .get(emu.url("/api/now/table/sys_user"))
            .bearer_auth(emu.refresh_token().await),
    ];
    for a in attempts {
        let r = a.send().await.expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"Service-now\""
        );
        assert_eq!(r.json::<Value>().await.expect("json"), golden);
    }
    // Basic auth with the right password works, for both users.
    let r = emu
        .client
        .get(emu.url("/api/now/table/sys_data_source"))
        .basic_auth("fnms.integration", Some("integration"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    emu.stop().await;
}

#[tokio::test]
async fn credentials_follow_the_configuration_and_are_never_shown() {
    let config = snow_emulator::Config {
        admin_password: "s3cret-admin".into(),
        oauth_client_secret: "other-secret".into(),
        ..Default::default()
    };
    let emu = Emulator::start_with(config).await;
    assert_eq!(
        emu.get("/api/now/table/sys_user").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = emu
        .client
        .get(emu.url("/api/now/table/sys_user?sysparm_query=user_name=admin"))
        .basic_auth("admin", Some("s3cret-admin"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("json");
    let user = &body["result"][0];
    assert_eq!(user["user_name"], "admin");
    assert!(
        user.get("user_password").is_none(),
        "password column shown: {user}"
    );
    let r = emu
        .oauth(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", "other-secret"),
            ("username", "admin"),
            ("password", "s3cret-admin"),
        ])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Tokens are stored hashed: the credential table does not show them, and cannot be
    // searched by them.
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    let r = emu
        .client
        .get(emu.url(&format!("/api/now/table/oauth_credential?token={token}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    let creds = body["result"].as_array().expect("list");
    assert_eq!(
        creds.len(),
        2,
        "the password filter must be ignored: {body}"
    );
    assert!(creds.iter().all(|c| c.get("token").is_none()));
    emu.stop().await;
}

/// Queries match without regard to case, credentials must not: with users `admin` and `ADMIN`
/// each logs in with its own password only.
#[tokio::test]
async fn user_names_differing_only_in_case_are_different_users() {
    let emu = Emulator::start().await;
    let r = emu
        .send(
            reqwest::Method::POST,
            "/api/now/table/sys_user",
            &json!({"user_name": "ADMIN", "user_password": "other"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let login = |user: &'static str, password: &'static str| {
        emu.client
            .get(emu.url("/api/now/table/sys_user?sysparm_limit=1"))
            .basic_auth(user, Some(password))
            .send()
    };
    let status = |r: reqwest::Result<reqwest::Response>| r.expect("request").status();
    assert_eq!(status(login("admin", "admin").await), StatusCode::OK);
    // Authenticated (a new user has no role, so reading users is refused, not unauthorized).
    assert_eq!(status(login("ADMIN", "other").await), StatusCode::FORBIDDEN);
    assert_eq!(
        status(login("ADMIN", "admin").await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(login("admin", "other").await),
        StatusCode::UNAUTHORIZED
    );
    emu.stop().await;
}
