//! The Aggregate API: count, group by, min, max, avg, sum, having.
//! Source: Aggregate API, https://www.servicenow.com/docs/r/api-reference/rest-apis/c_AggregateAPI.html

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{Auth, assert_forbidden, call};
use crate::check::Emulator;

#[tokio::test]
async fn count_without_grouping() {
    let emu = Emulator::start().await;
    let r = emu
        .get("/api/now/stats/sys_properties?sysparm_count=true&sysparm_query=nameSTARTSWITHx_fls_flexera_fnms.sot")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"result": {"stats": {"count": "6"}}}));
    emu.stop().await;
}

#[tokio::test]
async fn numeric_aggregates_grouped_with_having() {
    let emu = Emulator::start().await;
    for (name, life) in [("a", "100"), ("b", "200"), ("c", "200")] {
        let r = emu
            .send(
                Method::POST,
                "/api/now/table/oauth_entity",
                &json!({"name": name, "client_id": name, "access_token_lifespan": life, "active": "false"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = emu
        .get("/api/now/v1/stats/oauth_entity?sysparm_count=true&sysparm_min_fields=access_token_lifespan&sysparm_max_fields=access_token_lifespan&sysparm_avg_fields=access_token_lifespan&sysparm_sum_fields=access_token_lifespan")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["result"]["stats"],
        json!({
            "count": "4",
            "min": {"access_token_lifespan": "100"},
            "max": {"access_token_lifespan": "1800"},
            "avg": {"access_token_lifespan": "575.0000"},
            "sum": {"access_token_lifespan": "2300"},
        })
    );
    let r = emu
        .get("/api/now/stats/oauth_entity?sysparm_count=true&sysparm_group_by=active&sysparm_display_value=all")
        .await;
    assert_eq!(
        r.body["result"],
        json!([
            {"stats": {"count": "3"}, "groupby_fields": [{"value": "false", "display_value": "false", "field": "active"}]},
            {"stats": {"count": "1"}, "groupby_fields": [{"value": "true", "display_value": "true", "field": "active"}]},
        ])
    );
    let r = emu
        .get("/api/now/stats/oauth_entity?sysparm_count=true&sysparm_group_by=access_token_lifespan&sysparm_having=count^access_token_lifespan^>^1")
        .await;
    assert_eq!(
        r.body["result"],
        json!([{"stats": {"count": "2"}, "groupby_fields": [{"value": "200", "field": "access_token_lifespan"}]}])
    );
    emu.stop().await;
}

#[tokio::test]
async fn aggregates_need_read_access() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let r = call(
        &emu,
        Method::GET,
        "/api/now/stats/x_fls_flexera_fnms_import_run?sysparm_count=true",
        Auth::Bearer(&token),
        None,
    )
    .await;
    assert_eq!(r.body, json!({"result": {"stats": {"count": "0"}}}));
    let r = call(
        &emu,
        Method::GET,
        "/api/now/stats/sys_user?sysparm_count=true",
        Auth::Bearer(&token),
        None,
    )
    .await;
    assert_forbidden(&r);
    let r = emu
        .get("/api/now/stats/no_such_table?sysparm_count=true")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    emu.stop().await;
}
