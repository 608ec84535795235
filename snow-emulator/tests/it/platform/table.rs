//! Table API media types, display values both ways and `X-no-response-body`.
//! Source: Table API, https://www.servicenow.com/docs/r/api-reference/rest-apis/c_TableAPI.html
//! and REST API headers, https://www.servicenow.com/docs/r/api-reference/rest-api-explorer/c_RESTAPI.html

use reqwest::StatusCode;
use serde_json::json;

use super::sys_id_of;
use crate::check::Emulator;

#[tokio::test]
async fn xml_responses_and_request_bodies() {
    let emu = Emulator::start().await;
    let r = emu
        .client
        .get(emu.url(
            "/api/now/table/sys_data_source?sysparm_fields=name,format&sysparm_query=name=FNMS%20Data%20Source",
        ))
        .basic_auth("admin", Some("admin"))
        .header("Accept", "application/xml")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().expect("ct").to_owned();
    assert!(ct.starts_with("application/xml"), "{ct}");
    let text = r.text().await.expect("text");
    assert_eq!(
        text,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><response><result><format>XML</format><name>FNMS Data Source</name></result></response>"
    );
    let r = emu
        .client
        .post(emu.url("/api/now/table/sys_data_source"))
        .basic_auth("admin", Some("admin"))
        .header("Accept", "application/json")
        .header("Content-Type", "application/xml")
        .body("<request><entry><name>From &amp; XML</name><format>CSV</format></entry></request>")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let stored = emu.records("sys_data_source", "format=CSV").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["name"], "From & XML");
    emu.stop().await;
}

#[tokio::test]
async fn unsupported_media_types_are_406_and_415() {
    let emu = Emulator::start().await;
    let r = emu
        .client
        .get(emu.url("/api/now/table/sys_data_source"))
        .basic_auth("admin", Some("admin"))
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    let r = emu
        .client
        .post(emu.url("/api/now/table/sys_data_source"))
        .basic_auth("admin", Some("admin"))
        .header("Content-Type", "text/plain")
        .body("name=x")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(emu.records("sys_data_source", "name=x").await.is_empty());
    emu.stop().await;
}

#[tokio::test]
async fn input_display_values_resolve_references_and_choices() {
    let emu = Emulator::start().await;
    let source = sys_id_of(&emu, "sys_data_source", "name=FNMS Data Source").await;
    let r = emu
        .send(
            reqwest::Method::POST,
            "/api/now/table/scheduled_import_set?sysparm_input_display_value=true&sysparm_display_value=all",
            &json!({"name": "By display", "data_source": "FNMS Data Source", "run_type": "On Demand"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let rec = &r.body["result"];
    assert_eq!(rec["data_source"]["value"], source.as_str());
    assert_eq!(rec["data_source"]["display_value"], "FNMS Data Source");
    assert_eq!(
        rec["run_type"],
        json!({"display_value": "On Demand", "value": "on_demand"})
    );
    // Without the flag the same text is stored as given.
    let r = emu
        .send(
            reqwest::Method::POST,
            "/api/now/table/scheduled_import_set",
            &json!({"name": "By value", "run_type": "once"}),
        )
        .await;
    assert_eq!(r.body["result"]["run_type"], "once");
    emu.stop().await;
}

#[tokio::test]
async fn no_response_body_when_asked() {
    let emu = Emulator::start().await;
    let r = emu
        .client
        .post(emu.url("/api/now/table/sys_data_source"))
        .basic_auth("admin", Some("admin"))
        .header("X-no-response-body", "true")
        .json(&json!({"name": "quiet"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().contains_key("location"));
    assert!(r.text().await.expect("text").is_empty());
    assert_eq!(emu.records("sys_data_source", "name=quiet").await.len(), 1);
    emu.stop().await;
}

#[tokio::test]
async fn pagination_header_can_be_suppressed() {
    let emu = Emulator::start().await;
    let r = emu
        .get("/api/now/table/sys_properties?sysparm_limit=2&sysparm_view=desktop")
        .await;
    assert!(r.headers.contains_key("link"), "{:?}", r.headers);
    let r = emu
        .get(
            "/api/now/table/sys_properties?sysparm_limit=2&sysparm_suppress_pagination_header=true",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.headers.contains_key("link"), "{:?}", r.headers);
    assert_eq!(r.headers["x-total-count"], "8");
    assert_eq!(r.body["result"].as_array().map(Vec::len), Some(2));
    emu.stop().await;
}
