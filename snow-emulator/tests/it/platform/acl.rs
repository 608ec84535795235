//! Roles and ACLs (issue 6's opening): the integration user's token may do what the export
//! needs and nothing else; every refusal is a 403 that changes nothing.
//! Source: REST API security, https://www.servicenow.com/docs/r/api-reference/rest-api-explorer/c_RESTAPI.html
//! and Access control list rules, https://www.servicenow.com/docs/r/australia/platform-security/access-control/exploring-access-control-list.html

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{ADMIN, Auth, assert_forbidden, call, sys_id_of};
use crate::check::Emulator;

#[tokio::test]
async fn integration_token_cannot_delete_the_admin_user() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let admin_id = sys_id_of(&emu, "sys_user", "user_name=admin").await;
    let path = format!("/api/now/table/sys_user/{admin_id}");
    let r = call(&emu, Method::DELETE, &path, Auth::Bearer(&token), None).await;
    assert_forbidden(&r);
    assert_eq!(
        r.body["error"]["detail"],
        "ACL Exception Delete Failed due to security constraints"
    );
    // Nothing changed: the record is there and the administrator still logs in.
    let r = call(&emu, Method::GET, &path, ADMIN, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["result"]["user_name"], "admin");
    emu.stop().await;
}

#[tokio::test]
async fn integration_token_cannot_create_or_change_users() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let before = emu.records("sys_user", "").await.len();
    let body = json!({"user_name": "mallory", "user_password": "x", "roles": "admin"});
    let r = call(
        &emu,
        Method::POST,
        "/api/now/table/sys_user",
        Auth::Bearer(&token),
        Some(&body),
    )
    .await;
    assert_forbidden(&r);
    assert_eq!(
        r.body["error"]["detail"],
        "ACL Exception Insert Failed due to security constraints"
    );
    assert_eq!(emu.records("sys_user", "").await.len(), before);
    assert!(
        emu.records("sys_user", "user_name=mallory")
            .await
            .is_empty()
    );
    // Nor grant itself a role, nor rename the administrator.
    let admin_id = sys_id_of(&emu, "sys_user", "user_name=admin").await;
    let r = call(
        &emu,
        Method::PATCH,
        &format!("/api/now/table/sys_user/{admin_id}"),
        Auth::Bearer(&token),
        Some(&json!({"user_name": "taken"})),
    )
    .await;
    assert_forbidden(&r);
    assert!(!emu.records("sys_user", "user_name=admin").await.is_empty());
    let roles_before = emu.records("sys_user_has_role", "").await.len();
    let r = call(
        &emu,
        Method::POST,
        "/api/now/table/sys_user_has_role",
        Auth::Bearer(&token),
        Some(&json!({"user": admin_id, "role": "admin"})),
    )
    .await;
    assert_forbidden(&r);
    assert_eq!(
        emu.records("sys_user_has_role", "").await.len(),
        roles_before
    );
    emu.stop().await;
}

#[tokio::test]
async fn oauth_credentials_are_readable_by_admin_only() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    for path in [
        "/api/now/table/oauth_credential",
        "/api/now/v1/table/oauth_credential",
        "/api/now/stats/oauth_credential?sysparm_count=true",
    ] {
        let r = call(&emu, Method::GET, path, Auth::Bearer(&token), None).await;
        assert_forbidden(&r);
        assert_eq!(r.body["error"]["message"], "User Not Authorized");
    }
    let creds = emu.records("oauth_credential", "").await;
    assert!(creds.len() >= 3, "admin reads the issued tokens");
    let one = creds[0]["sys_id"].as_str().expect("sys_id");
    let r = call(
        &emu,
        Method::GET,
        &format!("/api/now/table/oauth_credential/{one}"),
        Auth::Bearer(&token),
        None,
    )
    .await;
    assert_forbidden(&r);
    // Token hashes are password-type fields: never returned, even to admin.
    assert!(creds.iter().all(|c| c.get("token").is_none()));
    emu.stop().await;
}

#[tokio::test]
async fn password_fields_are_never_returned_nor_queryable() {
    let emu = Emulator::start().await;
    let users = emu.records("sys_user", "").await;
    assert!(users.iter().all(|u| u.get("user_password").is_none()));
    // A condition on the hash is dropped (it would reveal it a prefix at a time).
    let probe = emu
        .records("sys_user", "user_passwordSTARTSWITH$argon2id")
        .await;
    assert_eq!(probe.len(), users.len());
    let r = emu
        .get("/api/now/table/sys_user?sysparm_fields=user_name,user_password")
        .await;
    assert!(r.body["result"][0].get("user_password").is_none());
    emu.stop().await;
}

#[tokio::test]
async fn integration_user_reads_what_the_export_needs() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    // The four readiness queries of docs/wire-protocol.md §5, as the exporter sends them.
    for (table, query) in [
        (
            "scheduled_import_set",
            "name=FNMS Import Schedule^active=true",
        ),
        ("sys_data_source", "name=FNMS Data Source"),
        (
            "x_fls_flexera_fnms_import_run",
            "state!=succeeded^state!=failed",
        ),
        (
            "x_fls_flexera_fnms_import_transaction",
            "state!=succeeded^state!=failed",
        ),
    ] {
        let path = format!(
            "/api/now/table/{table}?sysparm_query={}&sysparm_limit=1",
            crate::check::urlencode(query)
        );
        let r = call(&emu, Method::GET, &path, Auth::Bearer(&token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{table}: {}", r.body);
        assert!(r.headers.contains_key("X-Total-Count"), "{table}");
    }
    // The app's endpoint.
    let result = emu
        .fnms(
            &token,
            &json!({"transactionId": "00000000-0000-4000-8000-000000000001", "transactionType": "connection_test"}),
        )
        .await;
    assert_eq!(result["returnCode"], 0, "{result}");
    // But not writing them.
    let r = call(
        &emu,
        Method::POST,
        "/api/now/table/sys_data_source",
        Auth::Bearer(&token),
        Some(&json!({"name": "x"})),
    )
    .await;
    assert_forbidden(&r);
    emu.stop().await;
}

#[tokio::test]
async fn roles_are_records_an_admin_grants_and_revokes() {
    let emu = Emulator::start().await;
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/sys_user",
            &json!({"user_name": "bob", "user_password": "Bob-pass-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let bob = r.body["result"]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    let bob_auth = Auth::Basic("bob", "Bob-pass-1");
    let endpoint = "/api/x_fls_flexera_fnms/integration/fnmstosn";
    let ping = json!({"transactionId": "00000000-0000-4000-8000-000000000002", "transactionType": "connection_test"});
    let read = "/api/now/table/sys_data_source";
    // No role: nothing but 403.
    assert_forbidden(&call(&emu, Method::GET, read, bob_auth, None).await);
    assert_forbidden(&call(&emu, Method::POST, endpoint, bob_auth, Some(&ping)).await);
    // Granted the app's role through a sys_user_has_role record.
    let role = sys_id_of(&emu, "sys_user_role", "name=x_fls_flexera_fnms.integration").await;
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/sys_user_has_role",
            &json!({"user": bob, "role": role}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let grant = r.body["result"]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    let r = call(&emu, Method::GET, read, bob_auth, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(&emu, Method::POST, endpoint, bob_auth, Some(&ping)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Revoked: refused again.
    let r = emu
        .send(
            Method::DELETE,
            &format!("/api/now/table/sys_user_has_role/{grant}"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_forbidden(&call(&emu, Method::GET, read, bob_auth, None).await);
    emu.stop().await;
}

#[tokio::test]
async fn seeded_roles_and_grants_are_records() {
    let emu = Emulator::start().await;
    let roles: Vec<String> = emu
        .records("sys_user_role", "")
        .await
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    for r in [
        "admin",
        "x_fls_flexera_fnms.integration",
        "import_set_loader",
    ] {
        assert!(roles.iter().any(|n| n == r), "{r} in {roles:?}");
    }
    let r = emu
        .get("/api/now/table/sys_user_has_role?sysparm_display_value=true&sysparm_query=user.user_name=fnms.integration")
        .await;
    let granted: Vec<&str> = r.body["result"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|g| g["role"]["display_value"].as_str())
        .collect();
    assert!(
        granted.contains(&"x_fls_flexera_fnms.integration"),
        "{granted:?}"
    );
    assert!(!granted.contains(&"admin"), "{granted:?}");
    emu.stop().await;
}
