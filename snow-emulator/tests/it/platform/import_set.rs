//! The Import Set API runs the app's transform maps synchronously and answers per row.
//! Source: Import Set API, https://www.servicenow.com/docs/r/api-reference/rest-apis/c_ImportSetAPI.html

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{Auth, assert_forbidden, call};
use crate::check::Emulator;

const STAGING: &str = "x_fls_flexera_fnms_inventory_import";

#[tokio::test]
async fn one_row_is_staged_and_transformed_synchronously() {
    let emu = Emulator::start().await;
    let row = json!({"u_computerid": "42", "u_computername": "pc-42", "u_serialno": "SN42"});
    let r = emu
        .send(Method::POST, &format!("/api/now/import/{STAGING}"), &row)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["staging_table"], STAGING);
    let set = r.body["import_set"].as_str().expect("import set");
    assert!(set.starts_with("ISET"), "{set}");
    let result = &r.body["result"][0];
    assert_eq!(result["status"], "inserted", "{}", r.body);
    assert_eq!(result["table"], "cmdb_ci_computer");
    assert_eq!(result["transform_map"], "FNMS Inventory -> Computer");
    assert_eq!(result["display_value"], "pc-42");
    let id = result["sys_id"].as_str().expect("sys_id");
    assert!(
        result["record_link"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!("/api/now/table/cmdb_ci_computer/{id}")))
    );
    let ci = emu
        .records(
            "cmdb_ci_computer",
            "x_fls_flexera_fnms_flexera_unique_id=42",
        )
        .await;
    assert_eq!(ci.len(), 1);
    assert_eq!(ci[0]["serial_number"], "SN42");
    // Written by a map whose records the engine holds back for a batch: still there.
    let serials = emu.records("cmdb_serial_number", "").await;
    assert_eq!(serials.len(), 1, "{serials:?}");
    // The same row again changes nothing; a changed one updates the same record.
    let r = emu
        .send(Method::POST, &format!("/api/now/import/{STAGING}"), &row)
        .await;
    assert_eq!(r.body["result"][0]["status"], "ignored", "{}", r.body);
    assert_eq!(
        r.body["import_set"], set,
        "one loading import set per table"
    );
    let changed = json!({"u_computerid": "42", "u_computername": "pc-42b"});
    let r = emu
        .send(
            Method::POST,
            &format!("/api/now/import/{STAGING}"),
            &changed,
        )
        .await;
    assert_eq!(r.body["result"][0]["status"], "updated", "{}", r.body);
    assert_eq!(r.body["result"][0]["sys_id"], id);
    assert_eq!(emu.records(STAGING, "").await.len(), 3);
    emu.stop().await;
}

#[tokio::test]
async fn insert_multiple_stages_every_record() {
    let emu = Emulator::start().await;
    let body = json!({"records": [
        {"u_computerid": "1", "u_computername": "one", "u_serialno": "SN1"},
        {"u_computerid": "2", "u_computername": "two", "u_serialno": "SN2"},
    ]});
    let r = emu
        .send(
            Method::POST,
            &format!("/api/now/import/{STAGING}/insertMultiple"),
            &body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let set = r.body["import_set_id"].as_str().expect("import_set_id");
    assert!(r.body["multi_import_set_id"].is_string());
    assert_eq!(
        emu.records("sys_import_set", &format!("sys_id={set}"))
            .await
            .len(),
        1
    );
    assert_eq!(
        emu.records(STAGING, "sys_import_state=inserted")
            .await
            .len(),
        2
    );
    assert_eq!(emu.records("cmdb_ci_computer", "").await.len(), 2);
    assert_eq!(emu.records("cmdb_serial_number", "").await.len(), 2);
    emu.stop().await;
}

#[tokio::test]
async fn loading_needs_the_loader_role() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let r = call(
        &emu,
        Method::POST,
        &format!("/api/now/import/{STAGING}"),
        Auth::Bearer(&token),
        Some(&json!({"u_computerid": "7"})),
    )
    .await;
    assert_forbidden(&r);
    assert!(emu.records(STAGING, "").await.is_empty());
    assert!(emu.records("cmdb_ci_computer", "").await.is_empty());
    // Not a staging table.
    let r = emu
        .send(
            Method::POST,
            "/api/now/import/sys_user",
            &json!({"user_name": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    emu.stop().await;
}
