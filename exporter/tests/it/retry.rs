//! Retransmission (wire-protocol §3.1): same body and transactionId, up to max_tries tries,
//! return code 30 abandons at once, exhausted tries skip the remaining exports.

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_code_50_twice_then_0_is_three_tries_of_the_same_transaction() {
    let server = ready_instance().await;
    transaction("inventory_export")
        .respond_with(return_code(50))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let sent = bodies(&server, "inventory_export").await;
    assert_eq!(sent.len(), 3);
    assert!(
        sent.iter().all(|b| *b == sent[0]),
        "identical retransmissions"
    );
    assert_log_contains(
        &outcome,
        "hardware inventory segment 1: try 1 of 10 failed: returnCode 50 INTERNAL_ERROR",
    );
    assert_log_contains(&outcome, "try 2 of 10 failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_tries_fail_the_export_and_skip_the_remaining_data_types() {
    let server = ready_instance().await;
    transaction("inventory_export")
        .respond_with(return_code(50))
        .mount(&server)
        .await;
    let scratch = Scratch::new("max_tries = 4\n");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    let sent = bodies(&server, "inventory_export").await;
    assert_eq!(sent.len(), 4, "exactly max_tries tries");
    assert!(
        sent.iter()
            .all(|b| b["transactionId"] == sent[0]["transactionId"])
    );
    let labels = labels(&server).await;
    assert!(
        !labels.iter().any(|l| l.starts_with("contract_export")
            || l.starts_with("application_export")
            || l == "export_status"),
        "{labels:?}"
    );
    assert_log_contains(
        &outcome,
        "hardware inventory export failed: segment 1 not accepted after 4 tries; last: returnCode 50 INTERNAL_ERROR",
    );
    assert_log_contains(
        &outcome,
        "skipped remaining exports: contracts, installed applications",
    );
    assert_log_contains(&outcome, "export failed (exit code 1)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_code_30_abandons_after_one_try() {
    let server = ready_instance().await;
    transaction("application_export")
        .respond_with(return_code(30))
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_eq!(bodies(&server, "application_export").await.len(), 1);
    assert_log_contains(
        &outcome,
        "installed applications export failed: segment 1 refused with returnCode 30 SAM_PLUGIN_MISSING",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_429_waits_for_retry_after() {
    let server = ready_instance().await;
    transaction("inventory_export")
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(
                    json!({"error": {"message": "Too many requests"}, "status": "failure"}),
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let (outcome, waits) = run_exporter_virtual(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-withContracts", "false", "-withApplications", "false"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let sent = bodies(&server, "inventory_export").await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1]);
    assert_eq!(
        waits.first(),
        Some(&std::time::Duration::from_secs(1)),
        "waited {waits:?}"
    );
    assert_log_contains(&outcome, "HTTP 429: Too many requests; retrying in 1.00 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_bad_requests_are_failed_tries() {
    let server = ready_instance().await;
    transaction("contract_export")
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    transaction("contract_export")
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": "Request body is not JSON", "detail": "x"}, "status": "failure"
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert_eq!(bodies(&server, "contract_export").await.len(), 3);
    assert_log_contains(&outcome, "HTTP 503");
    assert_log_contains(&outcome, "HTTP 400: Request body is not JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_run_fails_the_export_and_skips_the_rest() {
    let server = ready_instance().await;
    transaction("export_status")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {
            "returnCode": 0, "status": "success", "importRun": "IRUN0001007",
            "state": "failed", "complete": true,
            "message": "Import run IRUN0001007 is failed",
        }})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert!(bodies(&server, "contract_export").await.is_empty());
    assert_log_contains(
        &outcome,
        "hardware inventory export failed: import run IRUN0001007 failed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_run_that_never_completes_times_out() {
    let server = ready_instance().await;
    transaction("export_status")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {
            "returnCode": 0, "status": "success", "importRun": "IRUN0001001",
            "state": "processing", "complete": false,
        }})))
        .mount(&server)
        .await;
    let scratch = Scratch::new("poll_timeout_secs = 0\n");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_eq!(bodies(&server, "export_status").await.len(), 1);
    assert!(bodies(&server, "contract_export").await.is_empty());
    assert_log_contains(
        &outcome,
        "did not complete within 0 s (last state: processing)",
    );
}
