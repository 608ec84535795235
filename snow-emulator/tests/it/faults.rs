//! Fault injection through `/_emulator/faults` (docs/reliability.md): each kind does what it
//! says at the layer it says, is counted, and is gone once cleared; a bad plan is refused
//! with the reason and installs nothing.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::check::{TestInstance, inventory_xml, segment};

const RUN: &str = "44444444-4444-4444-8444-444444444444";

async fn install(emu: &TestInstance, plan: Value) -> Value {
    let r = emu.send(Method::POST, "/_emulator/faults", &plan).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

fn one_segment(tid: &str) -> Value {
    let xml = inventory_xml(&[vec![("ComputerID", "1"), ("ComputerName", "PC-1")]]);
    segment(tid, "inventory_export", RUN, 1, true, &xml, 1)
}

#[tokio::test]
async fn a_segment_code_fault_answers_its_code_and_stores_nothing_until_it_is_spent() {
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    install(
        &emu,
        json!({"faults": [{"kind": "segment_code", "transaction_type": "inventory_export", "code": 50, "times": 2}]}),
    )
    .await;
    let body = one_segment("aaaaaaaa-0000-4000-8000-000000000001");
    for _ in 0..2 {
        let r = emu.fnms(&token, &body).await;
        assert_eq!(r["returnCode"], 50, "{r}");
        assert!(
            emu.records("x_fls_flexera_fnms_import_run", "")
                .await
                .is_empty()
        );
    }
    // The same transaction id, retried, is then accepted once.
    assert_eq!(emu.fnms(&token, &body).await["returnCode"], 0);
    emu.wait_run(&token, RUN).await;
    let listed = emu.get("/_emulator/faults").await.body;
    assert_eq!(listed["faults"][0]["matched"], 3, "{listed}");
    assert_eq!(listed["faults"][0]["fired"], 2, "{listed}");
    assert_eq!(emu.records("cmdb_ci_computer", "").await.len(), 1);
    emu.stop().await;
}

#[tokio::test]
async fn http_status_with_retry_after_latency_and_expired_tokens_act_before_the_handler() {
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    install(
        &emu,
        json!({"faults": [
            {"kind": "http_status", "path_prefix": "/api/now/table/sys_properties", "status": 429, "retry_after": 7, "times": 1},
            {"kind": "expire_token", "path_prefix": "/api/now/table/x_fls_flexera_fnms_import_run", "times": 1},
            {"kind": "latency", "path_prefix": "/api/now/table/sys_plugins", "latency_ms": 200, "times": 1},
        ]}),
    )
    .await;
    let r = emu
        .client
        .get(emu.url("/api/now/table/sys_properties"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "failure", "ServiceNow's envelope: {body}");
    let runs = |token: String| {
        let emu = &emu;
        async move {
            emu.client
                .get(emu.url("/api/now/table/x_fls_flexera_fnms_import_run"))
                .bearer_auth(token)
                .send()
                .await
                .expect("send")
                .status()
        }
    };
    assert_eq!(runs(token.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(runs(token).await, StatusCode::OK, "only `times` requests");
    let started = Instant::now();
    assert_eq!(
        emu.get("/api/now/table/sys_plugins").await.status,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    emu.stop().await;
}

#[tokio::test]
async fn a_connection_dropped_after_handling_loses_the_answer_not_the_segment() {
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    install(
        &emu,
        json!({"faults": [{"kind": "drop_connection", "when": "response", "path_prefix": "/api/x_fls_flexera_fnms/integration/fnmstosn", "times": 1}]}),
    )
    .await;
    let body = one_segment("aaaaaaaa-0000-4000-8000-000000000002");
    let sent = emu
        .client
        .post(emu.url("/api/x_fls_flexera_fnms/integration/fnmstosn"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await;
    let failed = match sent {
        Err(_) => true,
        Ok(r) => r.text().await.is_err(),
    };
    assert!(failed, "the client must not get an answer");
    // The retransmission is recognised: one transaction, one computer.
    assert_eq!(emu.fnms(&token, &body).await["returnCode"], 0);
    emu.wait_run(&token, RUN).await;
    assert_eq!(
        emu.records("x_fls_flexera_fnms_import_transaction", "")
            .await
            .len(),
        1
    );
    assert_eq!(emu.records("cmdb_ci_computer", "").await.len(), 1);
    emu.stop().await;
}

#[tokio::test]
async fn a_hung_transaction_stays_processing_until_the_faults_are_cleared() {
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    install(&emu, json!({"faults": [{"kind": "hang_transaction"}]})).await;
    assert_eq!(
        emu.fnms(&token, &one_segment("aaaaaaaa-0000-4000-8000-000000000003"))
            .await["returnCode"],
        0
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let t = emu
            .records("x_fls_flexera_fnms_import_transaction", "")
            .await;
        if t[0]["state"] == "processing" {
            break;
        }
        assert!(Instant::now() < deadline, "never Processing: {t:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(emu.status(&token, RUN).await["complete"], false);
    let r = emu
        .send(Method::DELETE, "/_emulator/faults", &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["faults"], json!([]));
    emu.wait_run(&token, RUN).await;
    let t = emu
        .records("x_fls_flexera_fnms_import_transaction", "")
        .await;
    assert_eq!(t[0]["state"], "succeeded");
    emu.stop().await;
}

#[tokio::test]
async fn a_failing_transform_fails_the_transaction_and_its_run() {
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    install(
        &emu,
        json!({"faults": [{"kind": "fail_transform", "times": 1}]}),
    )
    .await;
    emu.fnms(&token, &one_segment("aaaaaaaa-0000-4000-8000-000000000004"))
        .await;
    emu.wait_run(&token, RUN).await;
    let t = emu
        .records("x_fls_flexera_fnms_import_transaction", "")
        .await;
    assert_eq!(t[0]["state"], "failed");
    let runs = emu.records("x_fls_flexera_fnms_import_run", "").await;
    assert_eq!(runs[0]["state"], "failed");
    assert!(emu.records("cmdb_ci_computer", "").await.is_empty());
    emu.stop().await;
}

#[tokio::test]
async fn a_full_disk_refuses_segments_and_table_writes_but_serves_reads() {
    let emu = TestInstance::start().await;
    let token = emu.token().await;
    install(&emu, json!({"faults": [{"kind": "disk_full"}]})).await;
    let r = emu
        .fnms(&token, &one_segment("aaaaaaaa-0000-4000-8000-000000000005"))
        .await;
    assert_eq!(r["returnCode"], 50, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or_default()
            .contains("disk is full")
    );
    let w = emu
        .send(
            Method::POST,
            "/api/now/table/cmdb_ci_computer",
            &json!({"name": "X"}),
        )
        .await;
    assert_eq!(w.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", w.body);
    assert!(emu.records("cmdb_ci_computer", "").await.is_empty());
    assert!(
        emu.records("x_fls_flexera_fnms_import_transaction", "")
            .await
            .is_empty()
    );
    emu.stop().await;
}

#[tokio::test]
async fn a_bad_plan_is_refused_with_the_reason_and_the_old_plan_stays() {
    let emu = TestInstance::start().await;
    install(&emu, json!({"faults": [{"kind": "disk_full"}]})).await;
    for (plan, why) in [
        (
            json!({"faults": [{"kind": "segment_code"}]}),
            "needs `code`",
        ),
        (json!({"faults": [{"kind": "meteor"}]}), "unknown variant"),
        (
            json!({"faults": [{"kind": "latency", "latency_ms": 5, "colour": 1}]}),
            "unknown field",
        ),
    ] {
        let r = emu.send(Method::POST, "/_emulator/faults", &plan).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{plan}");
        let detail = r.body["error"]["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(why), "{plan}: {}", r.body);
    }
    let listed = emu.get("/_emulator/faults").await.body;
    assert_eq!(listed["faults"][0]["kind"], "disk_full", "{listed}");
    // A reset goes back to the start-up plan (none here).
    let r = emu.send(Method::POST, "/_emulator/reset", &json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(emu.get("/_emulator/faults").await.body["faults"], json!([]));
    emu.stop().await;
}

#[tokio::test]
async fn a_start_up_plan_is_installed_and_a_seeded_fraction_repeats() {
    let plan: snow_emulator::faults::Plan = toml::from_str(
        "seed = 5\n[[fault]]\nkind = \"http_status\"\npath_prefix = \"/api/now/table/sys_plugins\"\nstatus = 503\nfraction = 0.5\n",
    )
    .expect("plan");
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let emu = TestInstance::start_with(snow_emulator::Config {
            faults: plan.clone(),
            ..Default::default()
        })
        .await;
        let mut seen = Vec::new();
        for _ in 0..20 {
            seen.push(emu.get("/api/now/table/sys_plugins").await.status.as_u16());
        }
        outcomes.push(seen);
        emu.stop().await;
    }
    assert_eq!(outcomes[0], outcomes[1], "same seed, same firings");
    assert!(
        outcomes[0].contains(&503) && outcomes[0].contains(&200),
        "{:?}",
        outcomes[0]
    );
}
