//! Rate limit rules as records: 429 with `Retry-After` past the hourly limit, and the
//! `X-RateLimit-*` headers on every request a rule covers.
//! Source: Inbound REST API rate limiting,
//! https://www.servicenow.com/docs/r/api-reference/rest-api-explorer/inbound-REST-API-rate-limiting.html

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{Auth, call, sys_id_of};
use crate::check::Emulator;

#[tokio::test]
async fn a_single_user_rule_limits_that_user_only() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let user = sys_id_of(&emu, "sys_user", "user_name=fnms.integration").await;
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/sys_rate_limit_rules",
            &json!({"name": "integration", "type": "single_user", "user": user, "rate_limit": "3", "rest_api": "table"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let rule = r.body["result"]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    let path = "/api/now/table/x_fls_flexera_fnms_import_run";
    for remaining in ["2", "1", "0"] {
        let r = call(&emu, Method::GET, path, Auth::Bearer(&token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.headers["X-RateLimit-Limit"], "3");
        assert_eq!(r.headers["X-RateLimit-Remaining"], remaining);
        assert_eq!(r.headers["X-RateLimit-Rule"], rule.as_str());
        let reset: i64 = r.headers["X-RateLimit-Reset"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("unix time");
        assert_eq!(reset % 3600, 0, "the next hour");
    }
    let r = call(&emu, Method::GET, path, Auth::Bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"error": {"message": "Rate limit exceeded", "detail": "Rate limit of 3 requests per hour for Table API exceeded"}, "status": "failure"})
    );
    let retry: u64 = r.headers["Retry-After"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry), "{retry}");
    // Other APIs and other users are not covered by the rule.
    let r = call(
        &emu,
        Method::GET,
        "/api/now/stats/x_fls_flexera_fnms_import_run?sysparm_count=true",
        Auth::Bearer(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.headers.contains_key("X-RateLimit-Limit"));
    let r = emu.get(path).await;
    assert_eq!(r.status, StatusCode::OK);
    emu.stop().await;
}

#[tokio::test]
async fn among_role_rules_the_lowest_limit_wins() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    for (name, role, limit) in [
        ("app role", "x_fls_flexera_fnms.integration", "5"),
        ("oauth role", "oauth_user", "1"),
    ] {
        let role = sys_id_of(&emu, "sys_user_role", &format!("name={role}")).await;
        let r = emu
            .send(
                Method::POST,
                "/api/now/table/sys_rate_limit_rules",
                &json!({"name": name, "type": "role", "role": role, "rate_limit": limit}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let path = "/api/now/table/sys_data_source";
    let r = call(&emu, Method::GET, path, Auth::Bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["X-RateLimit-Limit"], "1");
    let r = call(&emu, Method::GET, path, Auth::Bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    emu.stop().await;
}
