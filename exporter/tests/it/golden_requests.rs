//! What the exporter sends, against the golden requests and the documented order.

use std::collections::HashSet;

use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::helpers::*;

/// The request with its generated ids replaced, for comparison with a golden file.
fn redacted(mut body: Value) -> Value {
    for key in ["transactionId", "importRunId"] {
        if body.get(key).is_some() {
            body[key] = Value::String(format!("[{key}]"));
        }
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_export_sends_the_golden_requests_in_the_documented_order() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);

    assert_eq!(
        labels(&server).await,
        expected_sequence(&["inventory_export", "contract_export", "application_export"])
    );

    for kind in [
        "connection_test",
        "inventory_export",
        "contract_export",
        "application_export",
    ] {
        let sent = bodies(&server, kind).await;
        assert_eq!(sent.len(), 1, "{kind}");
        let golden = fixture_json(&format!("wire/requests/{kind}.json"));
        assert_eq!(redacted(sent[0].clone()), redacted(golden), "{kind}");
    }
    let statuses = bodies(&server, "export_status").await;
    let golden_status = redacted(fixture_json("wire/requests/export_status.json"));
    for status in &statuses {
        assert_eq!(redacted(status.clone()), golden_status);
    }

    // Each data type is one Import Run: its segment and its status share the run id; runs differ.
    let mut runs = HashSet::new();
    for (kind, status) in ["inventory_export", "contract_export", "application_export"]
        .iter()
        .zip(&statuses)
    {
        let segment = &bodies(&server, kind).await[0];
        assert_eq!(segment["importRunId"], status["importRunId"], "{kind}");
        runs.insert(
            segment["importRunId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(runs.len(), 3, "one new importRunId per data type");

    let requests = requests(&server).await;
    let transaction_ids: HashSet<String> = requests
        .iter()
        .filter(|r| r.url.path() == FNMSTOSN)
        .filter_map(|r| r.body_json::<Value>().ok())
        .filter_map(|b| b["transactionId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        transaction_ids.len(),
        7,
        "a new transactionId per transaction"
    );

    let oauth = &requests[0];
    let form = parse_form(&oauth.body);
    assert_eq!(
        form,
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("client_id".into(), "fnms-client".into()),
            ("client_secret".into(), "fnms-secret".into()),
            ("refresh_token".into(), "[refresh token]".into()),
        ]
    );
    for request in &requests[1..] {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer [access token]"),
            "{}",
            label(request)
        );
    }

    for line in [
        "licence check passed",
        "credential test passed",
        "instance readiness check passed",
        "database check passed",
        "hardware inventory: exported 4 records in 1 segment; import run IRUN0001001 succeeded",
        "contracts: exported 2 records in 1 segment; import run IRUN0001001 succeeded",
        "installed applications: exported 3 records in 1 segment; import run IRUN0001001 succeeded",
        "export history not persisted",
        "export succeeded: hardware inventory 4 records in 1 segment, contracts 2 records in 1 segment, installed applications 3 records in 1 segment",
    ] {
        assert_log_contains(&outcome, line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_of_two_are_numbered_and_only_the_last_is_marked_last() {
    let server = ready_instance().await;
    let scratch = Scratch::new("segment_size = 2\n");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-withContracts", "false", "-withApplications", "false"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let sent = bodies(&server, "inventory_export").await;
    let shape: Vec<(i64, bool, i64)> = sent
        .iter()
        .map(|b| {
            (
                b["segmentNumber"].as_i64().unwrap_or_default(),
                b["lastSegment"].as_bool().unwrap_or_default(),
                b["recordCount"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(shape, vec![(1, false, 2), (2, true, 2)]);
    assert_eq!(sent[0]["importRunId"], sent[1]["importRunId"]);
    assert_ne!(sent[0]["transactionId"], sent[1]["transactionId"]);
    assert_log_contains(&outcome, "exported 4 records in 2 segments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_endpoint_is_used_when_asked() {
    let server = ready_instance().await;
    wiremock::Mock::given(wiremock::matchers::path("/fnmp.do"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture_json("wire/responses/connection_test.json")),
        )
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-endpoint", "fnmp.do", "-connectionTest", "true"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let paths: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(paths, vec!["/oauth_token.do", "/fnmp.do"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_test_runs_the_licence_check_and_credential_test_only() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-connectionTest", "true"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert_eq!(labels(&server).await, vec!["oauth", "connection_test"]);
    assert_log_contains(&outcome, "licence check passed");
    assert_log_contains(&outcome, "credential test passed");
    assert_log_contains(&outcome, "connection test succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_data_types_are_not_sent() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-WithHardwareInventory", "false", "-withContracts", "FALSE"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert_eq!(
        labels(&server).await,
        expected_sequence(&["application_export"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_mid_export_trades_the_refresh_token_again_and_repeats_the_request() {
    let server = ready_instance().await;
    transaction("inventory_export")
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture_json("wire/responses/unauthorized.json")),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let labels = labels(&server).await;
    assert_eq!(labels.iter().filter(|l| *l == "oauth").count(), 2);
    let sent = bodies(&server, "inventory_export").await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "the same request is repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_401_fails_the_step() {
    let server = ready_instance().await;
    transaction("inventory_export")
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture_json("wire/responses/unauthorized.json")),
        )
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_eq!(bodies(&server, "inventory_export").await.len(), 2);
    assert!(bodies(&server, "contract_export").await.is_empty());
    assert_log_contains(&outcome, "hardware inventory export failed");
    assert_log_contains(&outcome, "refused the access token again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_status_is_polled_until_complete() {
    let server = ready_instance().await;
    transaction("export_status")
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"result": {
                "returnCode": 0, "status": "success", "importRun": "IRUN0001001",
                "state": "processing", "complete": false,
            }})),
        )
        .up_to_n_times(2)
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-withContracts", "false", "-withApplications", "false"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let statuses = bodies(&server, "export_status").await;
    assert_eq!(statuses.len(), 3);
    let ids: HashSet<&str> = statuses
        .iter()
        .filter_map(|s| s["transactionId"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "each status request is a new transaction");
}
