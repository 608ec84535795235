//! The Import Transaction life cycle (New → Waiting/Processing → Succeeded/Failed) observed
//! through the worker controls, the Run As user, the staging labels, the instance clock and
//! Generate Token (docs/emulator.md, docs/wire-protocol.md).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::check::{CLIENT_ID, CLIENT_SECRET, TestInstance, inventory_xml, segment};

const TRANSACTIONS: &str = "x_fls_flexera_fnms_import_transaction";

fn computer(id: &str) -> String {
    inventory_xml(&[vec![
        ("ComputerID", id),
        ("ComputerName", &format!("PC-{id}")),
        ("SerialNo", &format!("SN-{id}")),
        ("DeviceType", "Computer"),
    ]])
}

/// The states of every transaction, in number order.
async fn states(emu: &TestInstance) -> Vec<String> {
    emu.records(TRANSACTIONS, "ORDERBYnumber")
        .await
        .iter()
        .map(|t| t["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn send_segments(emu: &TestInstance, token: &str, run: &str, n: i64) {
    for i in 1..=n {
        let body = segment(
            &format!("{run}-t{i}"),
            "inventory_export",
            run,
            i,
            i == n,
            &computer(&format!("{run}{i}")),
            1,
        );
        let r = emu.fnms(token, &body).await;
        assert_eq!(r["returnCode"], 0, "{r}");
        assert_eq!(r["state"], "new", "created in the documented default state");
    }
}

#[tokio::test]
async fn paused_worker_shows_new_then_claim_shows_processing_and_waiting() {
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    assert_eq!(emu.worker("pause").await["paused"], true);
    send_segments(&emu, &token, "run-a", 3).await;
    assert_eq!(states(&emu).await, ["new", "new", "new"]);

    let claimed = emu.worker("claim").await;
    assert!(claimed["claimed"].is_string(), "{claimed}");
    assert_eq!(states(&emu).await, ["processing", "waiting", "waiting"]);

    // Each step finishes exactly one transaction, in arrival order.
    let first = emu.worker("step").await;
    assert_eq!(first["processed"], true, "{first}");
    assert_eq!(first["transaction"]["number"], claimed["claimed"]);
    assert_eq!(first["transaction"]["state"], "succeeded");
    assert_eq!(states(&emu).await, ["succeeded", "waiting", "waiting"]);
    emu.worker("step").await;
    assert_eq!(states(&emu).await, ["succeeded", "succeeded", "waiting"]);
    emu.worker("step").await;
    assert_eq!(states(&emu).await, ["succeeded", "succeeded", "succeeded"]);
    assert_eq!(emu.status(&token, "run-a").await["state"], "succeeded");
    let idle = emu.worker("step").await;
    assert_eq!(idle["processed"], false, "{idle}");
    assert_eq!(idle["transaction"], Value::Null);
}

#[tokio::test]
async fn step_needs_a_paused_worker_and_resume_drains_the_queue() {
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    let r = emu
        .send(
            Method::POST,
            "/_emulator/worker",
            &json!({"action": "step"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = emu
        .send(
            Method::POST,
            "/_emulator/worker",
            &json!({"action": "jump"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    emu.worker("pause").await;
    send_segments(&emu, &token, "run-b", 2).await;
    emu.worker("claim").await;
    assert_eq!(states(&emu).await, ["processing", "waiting"]);
    // The older form of the control still works.
    emu.pause_worker(false).await;
    let done = emu.wait_run(&token, "run-b").await;
    assert_eq!(done["transactions"]["succeeded"], 2, "{done}");
}

#[tokio::test]
async fn transforms_run_as_the_scheduled_imports_run_as_user() {
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    send_segments(&emu, &token, "run-c", 1).await;
    emu.wait_run(&token, "run-c").await;
    let ci = emu.records("cmdb_ci_computer", "name=PC-run-c1").await;
    assert_eq!(ci.len(), 1);
    assert_eq!(ci[0]["sys_created_by"], snow_emulator::INTEGRATION_USER);
    let staged = emu
        .records(
            "x_fls_flexera_fnms_inventory_import",
            "u_computername=PC-run-c1",
        )
        .await;
    assert_eq!(staged.len(), 1);
    assert_eq!(staged[0]["sys_created_by"], snow_emulator::INTEGRATION_USER);

    // The user is read from the schedule: changing its Run As changes who writes.
    let schedule = &emu
        .records("scheduled_import_set", "name=FNMS Import Schedule")
        .await[0];
    let admin = &emu.records("sys_user", "user_name=admin").await[0];
    let path = format!(
        "/api/now/table/scheduled_import_set/{}",
        schedule["sys_id"].as_str().expect("sys_id")
    );
    let r = emu
        .send(Method::PATCH, &path, &json!({"run_as": admin["sys_id"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    send_segments(&emu, &token, "run-d", 1).await;
    emu.wait_run(&token, "run-d").await;
    let ci = emu.records("cmdb_ci_computer", "name=PC-run-d1").await;
    assert_eq!(ci[0]["sys_created_by"], "admin");
}

#[tokio::test]
async fn staging_tables_carry_the_documented_labels() {
    let emu = TestInstance::start().await;
    let r = emu.get("/_emulator/catalog").await;
    let label = |name: &str| {
        r.body["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["label"].clone())
    };
    assert_eq!(
        label("x_fls_flexera_fnms_inventory_import"),
        Some(json!("Inventory Imports"))
    );
    assert_eq!(
        label("x_fls_flexera_fnms_contract_import"),
        Some(json!("Contract Imports"))
    );
    assert_eq!(
        label("x_fls_flexera_fnms_application_import"),
        Some(json!("Application Imports"))
    );
}

#[tokio::test]
async fn the_instance_clock_sets_timestamps_and_can_be_reset() {
    let emu = TestInstance::start().await;
    let set = emu.clock(&json!({"set": "2030-01-01T00:00:00Z"})).await;
    assert!(
        set["now"]
            .as_str()
            .is_some_and(|n| n.starts_with("2030-01-01T00:00")),
        "{set}"
    );
    assert!(
        set["offset_seconds"].as_i64().is_some_and(|o| o > 0),
        "{set}"
    );
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/sys_properties",
            &json!({"name": "x.clock.probe", "value": "1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let created = r.body["result"]["sys_created_on"]
        .as_str()
        .unwrap_or_default();
    assert!(created.starts_with("2030-01-01 00:00"), "{}", r.body);

    let advanced = emu.clock(&json!({"advance_seconds": 86_400})).await;
    assert!(
        advanced["now"]
            .as_str()
            .is_some_and(|n| n.starts_with("2030-01-02T00:00")),
        "{advanced}"
    );
    let got = emu.get("/_emulator/clock").await;
    assert_eq!(got.body["offset_seconds"], advanced["offset_seconds"]);

    let reset = emu.clock(&json!({"reset": true})).await;
    assert_eq!(reset["offset_seconds"], 0, "{reset}");
    let r = emu
        .send(
            Method::POST,
            "/_emulator/clock",
            &json!({"set": "yesterday"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}

#[tokio::test]
async fn advancing_the_clock_expires_access_and_refresh_tokens() {
    let emu = TestInstance::start().await;
    let refresh = emu.refresh_token().await;
    let token = emu.token().await;
    let probe = |token: String| {
        let emu = &emu;
        async move {
            emu.client
                .get(emu.url("/api/now/table/x_fls_flexera_fnms_import_run?sysparm_limit=1"))
                .bearer_auth(token)
                .send()
                .await
                .expect("send")
                .status()
        }
    };
    assert_eq!(probe(token.clone()).await, StatusCode::OK);
    // Access tokens live 1800 s by default.
    emu.clock(&json!({"advance_seconds": 1801})).await;
    assert_eq!(probe(token).await, StatusCode::UNAUTHORIZED);
    let grant = [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("refresh_token", refresh.as_str()),
    ];
    assert_eq!(emu.oauth(&grant).await.status, StatusCode::OK);
    // Refresh tokens live 100 days by default.
    emu.clock(&json!({"advance_seconds": 8_640_000})).await;
    assert_eq!(emu.oauth(&grant).await.status, StatusCode::UNAUTHORIZED);
}

const GENERATE: &str = "/api/x_fls_flexera_fnms/integration/generate_token";

#[tokio::test]
async fn generate_token_answers_a_refresh_token_the_exporters_grant_accepts() {
    let emu = TestInstance::start().await;
    let r = emu
        .send(
            Method::POST,
            GENERATE,
            &json!({"user_name": snow_emulator::INTEGRATION_USER, "password": "integration"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let result = &r.body["result"];
    assert_eq!(result["user_name"], snow_emulator::INTEGRATION_USER);
    let expires_in = result["expires_in"].as_i64().expect("expires_in");
    assert!((8_639_990..=8_640_000).contains(&expires_in), "{result}");
    let refresh = result["refresh_token"].as_str().expect("refresh token");

    // The exporter's refresh grant (docs/wire-protocol.md §2) with that token.
    let granted = emu
        .oauth(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", refresh),
        ])
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let access = granted.body["access_token"].as_str().expect("access token");
    let test = emu
        .fnms(
            access,
            &json!({"transactionId": "gen-1", "transactionType": "connection_test"}),
        )
        .await;
    assert_eq!(test["returnCode"], 0, "{test}");
}

#[tokio::test]
async fn generate_token_refuses_bad_credentials_and_non_admin_callers() {
    let emu = TestInstance::start().await;
    let wrong = json!({"user_name": snow_emulator::INTEGRATION_USER, "password": "nope"});
    let r = emu.send(Method::POST, GENERATE, &wrong).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body["result"].is_null());
    let r = emu
        .send(Method::POST, GENERATE, &json!({"user_name": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // The integration user may not mint tokens: only an administrator uses the set-up page.
    let right = json!({"user_name": snow_emulator::INTEGRATION_USER, "password": "integration"});
    let r = emu
        .client
        .post(emu.url(GENERATE))
        .basic_auth(snow_emulator::INTEGRATION_USER, Some("integration"))
        .json(&right)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = emu.client.post(emu.url(GENERATE)).json(&right).send().await;
    assert_eq!(r.expect("send").status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn installed_records_come_from_the_catalog_and_keep_admin_changes_across_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = snow_emulator::Config {
        db: dir.path().join("i.sqlite").to_string_lossy().into_owned(),
        ..Default::default()
    };
    let emu = TestInstance::start_with(config.clone()).await;
    let props = emu
        .records("sys_properties", "nameSTARTSWITHx_fls_flexera_fnms.")
        .await;
    assert_eq!(
        props.len(),
        8,
        "every property of records/flexera_integration.toml"
    );
    let schedule = &emu
        .records("scheduled_import_set", "name=FNMS Import Schedule")
        .await[0];
    let integration = &emu.records("sys_user", "user_name=fnms.integration").await[0];
    assert_eq!(
        schedule["run_as"]["value"], integration["sys_id"],
        "{schedule}"
    );
    let prop = &emu
        .records(
            "sys_properties",
            "name=x_fls_flexera_fnms.installation_tables",
        )
        .await[0];
    let path = format!(
        "/api/now/table/sys_properties/{}",
        prop["sys_id"].as_str().expect("sys_id")
    );
    let r = emu
        .send(Method::PATCH, &path, &json!({"value": "cmdb"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    emu.stop().await;

    // Seeding again keeps the change, adds nothing twice, and passwords follow the config.
    let config = snow_emulator::Config {
        integration_password: "changed".into(),
        ..config
    };
    let emu = TestInstance::start_with(config).await;
    let prop = &emu
        .records(
            "sys_properties",
            "name=x_fls_flexera_fnms.installation_tables",
        )
        .await[0];
    assert_eq!(prop["value"], "cmdb");
    assert_eq!(emu.records("sys_user", "").await.len(), 2);
    let grant = |password: &'static str| {
        [
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", snow_emulator::INTEGRATION_USER),
            ("password", password),
        ]
    };
    assert_eq!(emu.oauth(&grant("changed")).await.status, StatusCode::OK);
    assert_eq!(
        emu.oauth(&grant("integration")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_payload_edited_before_processing_is_processed_as_edited() {
    // The intake hands what it read to the worker; the worker must not use it once the
    // stored payload is no longer what was read.
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    emu.worker("pause").await;
    send_segments(&emu, &token, "run-e", 1).await;
    let t = &emu.records(TRANSACTIONS, "ORDERBYnumber").await[0];
    let path = format!(
        "/api/now/table/{TRANSACTIONS}/{}",
        t["sys_id"].as_str().expect("sys_id")
    );
    let r = emu
        .send(
            Method::PATCH,
            &path,
            &json!({"payload": computer("edited")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    emu.worker("resume").await;
    let done = emu.wait_run(&token, "run-e").await;
    assert_eq!(done["transactions"]["succeeded"], 1, "{done}");
    assert_eq!(
        emu.records("cmdb_ci_computer", "name=PC-edited")
            .await
            .len(),
        1
    );
    assert!(
        emu.records("cmdb_ci_computer", "name=PC-run-e1")
            .await
            .is_empty()
    );
}
