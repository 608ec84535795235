//! The integration endpoint against the golden files and docs/wire-protocol.md §3–§4.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::check::{Emulator, fixture, fixture_json, inventory_xml, segment};

const RUN: &str = "11111111-1111-4111-8111-111111111111";

fn request(name: &str) -> Value {
    fixture_json(&format!("requests/{name}.json"))
}

fn golden(name: &str) -> Value {
    fixture_json(&format!("responses/{name}.json"))
}

fn one_computer(id: &str) -> String {
    inventory_xml(&[vec![
        ("ComputerID", id),
        ("ComputerName", "PC"),
        ("DeviceType", "Computer"),
    ]])
}

#[tokio::test]
async fn golden_connection_test_and_unknown_type() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    for name in ["connection_test", "unknown_transaction_type"] {
        let result = emu.fnms(&token, &request(name)).await;
        assert_eq!(json!({ "result": result }), golden(name), "{name}");
    }
    // Neither creates anything.
    assert!(
        emu.records("x_fls_flexera_fnms_import_transaction", "")
            .await
            .is_empty()
    );
    assert!(
        emu.records("x_fls_flexera_fnms_import_run", "")
            .await
            .is_empty()
    );
    emu.stop().await;
}

#[tokio::test]
async fn golden_inventory_export_then_export_status() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let req = request("inventory_export");
    assert_eq!(
        req["data"].as_str(),
        Some(fixture("payloads/inventory.xml").as_str())
    );
    let result = emu.fnms(&token, &req).await;
    assert_eq!(json!({ "result": result }), golden("inventory_export"));
    emu.wait_run(&token, RUN).await;
    let status = emu.fnms(&token, &request("export_status")).await;
    assert_eq!(json!({ "result": status }), golden("export_status"));

    // The transaction holds the payload verbatim and the documented columns.
    let t = &emu
        .records("x_fls_flexera_fnms_import_transaction", "")
        .await[0];
    assert_eq!(t["number"], "ITRN0001001");
    assert_eq!(t["state"], "succeeded");
    assert_eq!(t["import_type"], "inventory");
    assert_eq!(t["payload"], req["data"]);
    assert_eq!(t["record_count"], "4");
    assert_eq!(t["last_segment"], "true");
    let run = &emu.records("x_fls_flexera_fnms_import_run", "").await[0];
    assert_eq!(t["import_run"]["value"], run["sys_id"]);
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["segments_expected"], "1");
    assert_eq!(run["records_received"], "4");
    assert!(!run["completed"].as_str().unwrap_or_default().is_empty());
    // Application Log lines for the run.
    let log = emu.records("syslog", "source=x_fls_flexera_fnms").await;
    let messages: Vec<&str> = log.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Import run IRUN0001001 started")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Import run IRUN0001001 succeeded")),
        "{messages:?}"
    );
    emu.stop().await;
}

#[tokio::test]
async fn legacy_alias_behaves_identically() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let r = emu
        .post_raw(
            "/fnmp.do",
            &token,
            serde_json::to_vec(&request("inventory_export")).expect("json"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, golden("inventory_export"));
    let r = emu
        .post_raw(
            "/fnmp.do",
            &token,
            serde_json::to_vec(&request("connection_test")).expect("json"),
        )
        .await;
    assert_eq!(r.body, golden("connection_test"));
    emu.stop().await;
}

#[tokio::test]
async fn retransmission_is_idempotent() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let req = request("inventory_export");
    let first = emu.fnms(&token, &req).await;
    emu.wait_run(&token, RUN).await;
    let again = emu.fnms(&token, &req).await;
    assert_eq!(again["returnCode"], 0);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["importTransaction"], first["importTransaction"]);
    assert_eq!(again["importRun"], "IRUN0001001");
    assert_eq!(again["state"], "succeeded");
    assert_eq!(
        emu.records("x_fls_flexera_fnms_import_transaction", "")
            .await
            .len(),
        1
    );
    assert_eq!(
        emu.records("x_fls_flexera_fnms_inventory_import", "")
            .await
            .len(),
        4
    );
    assert_eq!(emu.records("cmdb_ci_computer", "").await.len(), 4);
    emu.stop().await;
}

#[tokio::test]
async fn segments_queue_in_arrival_order_and_close_the_run() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    emu.pause_worker(true).await;
    let mut states = Vec::new();
    for n in 1..=3 {
        let r = emu
            .fnms(
                &token,
                &segment(
                    &format!("t{n}"),
                    "inventory_export",
                    "run-a",
                    n,
                    n == 3,
                    &one_computer(&n.to_string()),
                    1,
                ),
            )
            .await;
        assert_eq!(r["returnCode"], 0, "{r}");
        states.push(r["state"].as_str().unwrap_or_default().to_owned());
    }
    // Every transaction is created New (documented default); Waiting comes when another is
    // processed (tests/it/lifecycle.rs).
    assert_eq!(states, ["new", "new", "new"]);
    let status = emu.status(&token, "run-a").await;
    assert_eq!(status["state"], "processing");
    assert_eq!(status["complete"], false);
    assert_eq!(status["transactions"]["total"], 3);
    // Readiness check of wire-protocol §5 sees the open run.
    let r = emu
        .get("/api/now/table/x_fls_flexera_fnms_import_run?sysparm_query=state!=succeeded^state!=failed&sysparm_limit=1")
        .await;
    assert_eq!(r.headers["x-total-count"], "1");

    emu.pause_worker(false).await;
    let done = emu.wait_run(&token, "run-a").await;
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["transactions"]["succeeded"], 3);
    let numbers: Vec<Value> = emu
        .records(
            "x_fls_flexera_fnms_import_transaction",
            "ORDERBYsys_updated_on^ORDERBYnumber",
        )
        .await
        .iter()
        .map(|t| t["number"].clone())
        .collect();
    assert_eq!(
        numbers,
        [
            json!("ITRN0001001"),
            json!("ITRN0001002"),
            json!("ITRN0001003")
        ]
    );
    assert_eq!(emu.records("cmdb_ci_computer", "").await.len(), 3);
    emu.stop().await;
}

#[tokio::test]
async fn run_rules_give_codes_20_21_22() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    emu.pause_worker(true).await;
    let r = emu
        .fnms(
            &token,
            &segment(
                "a1",
                "inventory_export",
                "run-a",
                1,
                false,
                &one_computer("1"),
                1,
            ),
        )
        .await;
    assert_eq!(r["returnCode"], 0);
    // Another run while run-a is open.
    let r = emu
        .fnms(
            &token,
            &segment("b1", "contract_export", "run-b", 1, true, "<Contracts/>", 0),
        )
        .await;
    assert_eq!(r["returnCode"], 20, "{r}");
    assert_eq!(r["message"], "IRUN0001001 is processing");
    assert_eq!(r["transactionId"], "b1");
    // Close run-a, then send more to it.
    let r = emu
        .fnms(
            &token,
            &segment(
                "a2",
                "inventory_export",
                "run-a",
                2,
                true,
                &one_computer("2"),
                1,
            ),
        )
        .await;
    assert_eq!(r["returnCode"], 0);
    let r = emu
        .fnms(
            &token,
            &segment(
                "a3",
                "inventory_export",
                "run-a",
                3,
                true,
                &one_computer("3"),
                1,
            ),
        )
        .await;
    assert_eq!(r["returnCode"], 21, "{r}");
    // Unknown run.
    let r = emu.status(&token, "no-such-run").await;
    assert_eq!(r["returnCode"], 22, "{r}");
    assert_eq!(r["status"], "failure");
    emu.pause_worker(false).await;
    emu.wait_run(&token, "run-a").await;
    // Now a new run is welcome.
    let r = emu
        .fnms(
            &token,
            &segment("b1", "contract_export", "run-b", 1, true, "<Contracts/>", 0),
        )
        .await;
    assert_eq!(r["returnCode"], 0, "{r}");
    assert_eq!(r["importRun"], "IRUN0001002");
    let done = emu.wait_run(&token, "run-b").await;
    assert_eq!(done["state"], "succeeded");
    assert_eq!(
        emu.records("x_fls_flexera_fnms_import_transaction", "")
            .await
            .len(),
        3
    );
    emu.stop().await;
}

#[tokio::test]
async fn invalid_requests_get_code_10() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let good = segment(
        "t1",
        "inventory_export",
        "run",
        1,
        true,
        &one_computer("1"),
        1,
    );
    let mut cases = vec![json!([1, 2]), json!({"transactionType": "connection_test"})];
    for (key, bad) in [
        ("transactionId", json!(7)),
        ("transactionId", json!("x".repeat(65))),
        ("transactionType", json!(null)),
        ("importRunId", json!("")),
        ("segmentNumber", json!(0)),
        ("segmentNumber", json!("1")),
        ("lastSegment", json!("true")),
        ("recordCount", json!(-1)),
        ("data", json!(null)),
    ] {
        let mut c = good.clone();
        c[key] = bad;
        cases.push(c);
    }
    for c in cases {
        let r = emu.fnms(&token, &c).await;
        assert_eq!(r["returnCode"], 10, "{c} → {r}");
        assert_eq!(r["status"], "failure");
    }
    assert!(
        emu.records("x_fls_flexera_fnms_import_transaction", "")
            .await
            .is_empty()
    );
    emu.stop().await;
}

#[tokio::test]
async fn not_ready_and_sam_missing_get_codes_40_and_30() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    // Code 30: the property requires SAM tables, the plugin is inactive.
    let prop = &emu
        .records(
            "sys_properties",
            "name=x_fls_flexera_fnms.installation_tables",
        )
        .await[0];
    let r = emu
        .send(
            Method::PATCH,
            &format!(
                "/api/now/table/sys_properties/{}",
                prop["sys_id"].as_str().expect("id")
            ),
            &json!({"value": "sam"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let plugin = &emu.records("sys_plugins", "id=com.snc.sams").await[0];
    let plugin_path = format!(
        "/api/now/table/sys_plugins/{}",
        plugin["sys_id"].as_str().expect("id")
    );
    emu.send(Method::PATCH, &plugin_path, &json!({"active": "inactive"}))
        .await;
    let apps = fixture_json("requests/application_export.json");
    let r = emu.fnms(&token, &apps).await;
    assert_eq!(r["returnCode"], 30, "{r}");
    let log = emu.records("syslog", "level=error").await;
    assert!(
        log.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or_default()
            .contains("SAM plugin")),
        "{log:?}"
    );
    // Inventory is not affected by the SAM rule.
    emu.send(Method::PATCH, &plugin_path, &json!({"active": "active"}))
        .await;
    // Code 40: the Scheduled Data Import is inactive.
    let schedule = &emu
        .records("scheduled_import_set", "name=FNMS Import Schedule")
        .await[0];
    let schedule_path = format!(
        "/api/now/table/scheduled_import_set/{}",
        schedule["sys_id"].as_str().expect("id")
    );
    emu.send(Method::PATCH, &schedule_path, &json!({"active": false}))
        .await;
    let r = emu.fnms(&token, &request("inventory_export")).await;
    assert_eq!(r["returnCode"], 40, "{r}");
    emu.send(Method::PATCH, &schedule_path, &json!({"active": true}))
        .await;
    // Code 40: the Data Source is gone.
    let source = &emu
        .records("sys_data_source", "name=FNMS Data Source")
        .await[0];
    let r = emu
        .send(
            Method::DELETE,
            &format!(
                "/api/now/table/sys_data_source/{}",
                source["sys_id"].as_str().expect("id")
            ),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = emu.fnms(&token, &request("inventory_export")).await;
    assert_eq!(r["returnCode"], 40, "{r}");
    assert!(
        emu.records("x_fls_flexera_fnms_import_transaction", "")
            .await
            .is_empty()
    );
    // A reset reseeds the instance.
    let r = emu.send(Method::POST, "/_emulator/reset", &json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    // A reset also forgets issued tokens.
    let r = emu.post_raw("/fnmp.do", &token, b"{}".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let token = emu.token().await;
    let r = emu.fnms(&token, &request("inventory_export")).await;
    assert_eq!(r["returnCode"], 0, "{r}");
    assert_eq!(r["importRun"], "IRUN0001001", "numbering restarts");
    emu.stop().await;
}

#[tokio::test]
async fn contract_and_application_segments_are_staged_and_transformed() {
    for (name, table, rows) in [
        ("contract_export", "x_fls_flexera_fnms_contract_import", 2),
        (
            "application_export",
            "x_fls_flexera_fnms_application_import",
            3,
        ),
    ] {
        let emu = Emulator::start().await;
        let token = emu.token().await;
        let body = request(name);
        let r = emu.fnms(&token, &body).await;
        assert_eq!(r["returnCode"], 0, "{r}");
        let run = body["importRunId"].as_str().unwrap_or_default();
        let done = emu.wait_run(&token, run).await;
        assert_eq!(done["state"], "succeeded");
        let staged = emu.records(table, "ORDERBYsys_import_row").await;
        assert_eq!(staged.len(), rows);
        // Without an inventory the links and installations are skipped; the first row
        // inserts the contract (resp. the models), later rows of the same one find it.
        let states: Vec<&str> = staged
            .iter()
            .map(|s| s["sys_import_state"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(states[0], "inserted", "{staged:?}");
        assert!(
            states.iter().all(|s| matches!(*s, "inserted" | "ignored")),
            "{staged:?}"
        );
        let t = &emu
            .records("x_fls_flexera_fnms_import_transaction", "")
            .await[0];
        assert!(
            t["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("{rows} rows: ")),
            "{t}"
        );
        emu.stop().await;
    }
}
