//! What an operator meets at 3 a.m.: fast failures with their fix, the caution when hardware
//! inventory is excluded, progress and summary lines, the token off the command line, and
//! `--dry-run`.

use std::time::Duration;

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::helpers::*;

/// Only hardware inventory, to keep runs short.
const INVENTORY_ONLY: [&str; 4] = ["-withContracts", "false", "-withApplications", "false"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_fails_the_credential_test_at_once_naming_the_fix() {
    // Slow back-off on purpose: a retry would show as a wait on the virtual clock.
    let scratch = Scratch::new("retry_delay_ms = 30000\nretry_max_delay_ms = 30000\n");
    let url = format!("http://127.0.0.1:{}", closed_port());
    let (outcome, waits) = run_exporter_virtual(scratch.args(&url, &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert!(
        waits.is_empty(),
        "no retry before any data is sent: {waits:?}"
    );
    assert_log_contains(
        &outcome,
        "credential test failed: token request: nothing accepts connections at 127.0.0.1:",
    );
    assert_log_contains(&outcome, "(connection refused); check the port in -url");
    assert!(!outcome.log.contains("try 1 of"), "{}", outcome.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_plain_http_port_fails_at_once_naming_the_fix() {
    let server = ready_instance().await;
    let url = server.uri().replace("http://", "https://");
    let scratch = Scratch::new("");
    let (outcome, waits) = run_exporter_virtual(scratch.args(&url, &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert!(waits.is_empty(), "{waits:?}");
    assert_log_contains(&outcome, "the TLS handshake with 127.0.0.1:");
    assert_log_contains(&outcome, "use http:// for a plain-HTTP instance");
    assert!(requests(&server).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_without_a_scheme_is_a_usage_error_with_the_fix() {
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args("127.0.0.1:8080", &golden_script(), &[])).await;
    assert_eq!(outcome.code, 2, "{}", outcome.log);
    assert_log_contains(
        &outcome,
        "-url '127.0.0.1:8080' has no scheme: write it as https://127.0.0.1:8080",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_data_flows_a_refused_connection_is_retried() {
    // The instance answers the pre-flight steps, then a segment gets HTTP 503 the documented
    // number of times: ten tries, nine back-offs.
    let server = ready_instance().await;
    transaction("inventory_export")
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let scratch = Scratch::new("retry_delay_ms = 1000\nretry_max_delay_ms = 30000\n");
    let (outcome, waits) =
        run_exporter_virtual(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_eq!(bodies(&server, "inventory_export").await.len(), 10);
    assert_eq!(waits.len(), 9, "{waits:?}");
    assert!(
        waits.iter().all(|w| *w >= Duration::from_secs(1)),
        "{waits:?}"
    );
    assert!(
        outcome.elapsed < Duration::from_secs(20),
        "virtual waits: {:?}",
        outcome.elapsed
    );
    assert_log_contains(&outcome, "not accepted after 10 tries");
    assert_log_contains(
        &outcome,
        "summary: hardware inventory: 4 records, 1 segment, 9 retries",
    );
    assert_log_contains(&outcome, "failed");
    assert_log_contains(
        &outcome,
        "summary: contracts: 0 records, 0 segments, 0 retries, import run -, 0.0 s, skipped",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluding_hardware_inventory_warns_with_the_documented_caution() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-WithHardwareInventory", "false"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert_log_contains(
        &outcome,
        "WARN  hardware inventory is excluded (-WithHardwareInventory false): contracts and installed applications depend on computers existing in ServiceNow",
    );

    let server = ready_instance().await;
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert!(!outcome.log.contains("is excluded"), "{}", outcome.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_every_n_segments_state_changes_and_a_summary_per_data_type() {
    let server = ready_instance().await;
    let statuses = ["waiting", "processing", "processing"];
    for state in statuses {
        transaction("export_status")
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {
                "returnCode": 0, "status": "success", "importRun": "IRUN0001001",
                "state": state, "complete": false,
                "transactions": {"total": 4, "succeeded": 1},
            }})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    let scratch = Scratch::new("segment_size = 1\nprogress_every_segments = 2\n");
    let (outcome, waits) =
        run_exporter_virtual(scratch.args(&server.uri(), &golden_script(), &INVENTORY_ONLY)).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert_eq!(waits.len(), 3, "three polls before success: {waits:?}");
    assert_log_contains(
        &outcome,
        "INFO  hardware inventory: 2 segments sent, 2 records",
    );
    assert!(
        !outcome.log.contains("4 segments sent"),
        "the last segment is the summary's"
    );
    assert_log_contains(
        &outcome,
        "INFO  hardware inventory: import run IRUN0001001 is waiting",
    );
    assert_eq!(
        outcome.log.matches("is processing").count(),
        1,
        "{}",
        outcome.log
    );
    assert_log_contains(&outcome, "is succeeded");
    assert_log_contains(
        &outcome,
        "summary: hardware inventory: 4 records, 4 segments, 0 retries, import run IRUN0001001, ",
    );
    assert_log_contains(&outcome, "s, succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_on_the_clock() {
    let server = ready_instance().await;
    transaction("inventory_export")
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let (outcome, waits) =
        run_exporter_virtual(scratch.args(&server.uri(), &golden_script(), &INVENTORY_ONLY)).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert_eq!(waits.first(), Some(&Duration::from_secs(120)), "{waits:?}");
    assert!(outcome.elapsed < Duration::from_secs(20));
    assert_log_contains(&outcome, "retrying in 120.00 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_time_out_is_measured_on_the_clock() {
    let server = ready_instance().await;
    transaction("export_status")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {
            "returnCode": 0, "status": "success", "importRun": "IRUN0001001",
            "state": "processing", "complete": false,
        }})))
        .mount(&server)
        .await;
    let scratch = Scratch::new("poll_interval_ms = 30000\npoll_timeout_secs = 300\n");
    let (outcome, waits) =
        run_exporter_virtual(scratch.args(&server.uri(), &golden_script(), &INVENTORY_ONLY)).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_eq!(
        waits,
        vec![Duration::from_secs(30); 10],
        "polls every 30 s for 300 s"
    );
    assert_eq!(
        bodies(&server, "export_status").await.len(),
        11,
        "at 0, 30, … 300 s"
    );
    assert_log_contains(
        &outcome,
        "did not complete within 300 s (last state: processing)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_token_comes_from_a_file_and_is_never_logged() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let token_file = scratch.dir.path().join("refresh-token");
    std::fs::write(&token_file, "file-refresh-token-7f3a\n").expect("write token");
    let mut args = scratch.args(&server.uri(), &golden_script(), &["-v"]);
    let at = args.iter().position(|a| a == "-token").expect("-token");
    args.splice(
        at..at + 2,
        ["--token-file".to_owned(), token_file.display().to_string()],
    );
    let outcome = run_exporter(args).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let oauth = requests(&server)
        .await
        .into_iter()
        .find(|r| r.url.path() == "/oauth_token.do")
        .expect("token request");
    let form = parse_form(&oauth.body);
    assert!(
        form.contains(&("refresh_token".into(), "file-refresh-token-7f3a".into())),
        "{form:?}"
    );
    assert!(
        !outcome.log.contains("file-refresh-token-7f3a"),
        "{}",
        outcome.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_segments_and_a_manifest_and_sends_nothing() {
    let scratch = Scratch::new("segment_size = 2\n");
    let out = scratch.dir.path().join("dry");
    let url = format!("http://127.0.0.1:{}", closed_port());
    let dir = out.display().to_string();
    let outcome = run_exporter(scratch.args(&url, &golden_script(), &["--dry-run", &dir])).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert!(!outcome.log.contains("credential test"), "{}", outcome.log);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).expect(name);
    let expected = read_fixture("wire/payloads/inventory.xml");
    for name in ["inventory_export-00001.xml", "inventory_export-00002.xml"] {
        let xml = read(name);
        for line in xml.lines().filter(|l| l.starts_with("    <ComputerID>")) {
            assert!(expected.contains(line), "{name}: {line}");
        }
    }
    let manifest: serde_json::Value = serde_json::from_str(&read("manifest.json")).expect("json");
    let types = manifest["dataTypes"].as_array().expect("dataTypes");
    assert_eq!(types.len(), 3);
    assert_eq!(types[0]["transactionType"], "inventory_export");
    assert_eq!(types[0]["records"], 4);
    assert_eq!(
        types[0]["segments"][1]["file"],
        "inventory_export-00002.xml"
    );
    assert_eq!(types[0]["segments"][1]["lastSegment"], true);
    assert_eq!(types[1]["segments"][0]["file"], "contract_export-00001.xml");
    assert_eq!(
        read("contract_export-00001.xml"),
        read_fixture("wire/payloads/contracts.xml")
    );
    assert_log_contains(
        &outcome,
        "summary: hardware inventory: 4 records, 2 segments, 0 retries, import run -, 0.0 s, written (dry run)",
    );
}
