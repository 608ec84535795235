//! Steps 1–4: any failure abandons the export (exit 1) before anything is exported, and
//! the message names the step. Configuration mistakes are usage errors (exit 2).

use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

fn nothing_exported(labels: &[String]) -> bool {
    !labels
        .iter()
        .any(|l| l.contains("_export") || l == "export_status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_fails_the_credential_test() {
    let server = ready_instance().await;
    Mock::given(method("POST"))
        .and(path("/oauth_token.do"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture_json("wire/responses/oauth_denied.json")),
        )
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_eq!(
        labels(&server).await,
        vec!["oauth"],
        "one try: no retry on 401"
    );
    assert_log_contains(&outcome, "licence check passed");
    assert_log_contains(
        &outcome,
        "credential test failed: token request: the instance refused the refresh token: HTTP 401: access_denied",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_protocol_version_fails_the_credential_test() {
    let server = ready_instance().await;
    transaction("connection_test")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {
            "returnCode": 0, "status": "success", "protocolVersion": 2
        }})))
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_eq!(labels(&server).await, vec!["oauth", "connection_test"]);
    assert_log_contains(
        &outcome,
        "credential test failed: the instance speaks protocol version 2",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_file_is_reported_with_its_path_before_any_request() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let missing = scratch.dir.path().join("no-such-fnms.sqlite");
    let outcome = run_exporter(scratch.args(&server.uri(), &missing, &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert!(labels(&server).await.is_empty());
    assert_log_contains(
        &outcome,
        &format!(
            "database check failed: cannot open FNMS operations database '{}': no such file",
            missing.display()
        ),
    );
    assert!(
        !missing.exists(),
        "the database is never created by the exporter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlicensed_integration_abandons_before_any_request() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let db = scratch.golden_db("UPDATE LicenseOption SET Licensed = 0;");
    let outcome = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert!(labels(&server).await.is_empty());
    assert_log_contains(
        &outcome,
        "licence check failed: the ServiceNow integration option",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_licence_abandons() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let db = scratch.golden_db("UPDATE LicenseOption SET ExpiryDate = '2020-01-31';");
    let outcome = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_log_contains(
        &outcome,
        "licence check failed: the ServiceNow integration licence expired on 2020-01-31",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_in_progress_blocks_the_export() {
    let server = ready_instance().await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/x_fls_flexera_fnms_import_run"))
        .and(query_param(
            "sysparm_query",
            "state!=succeeded^state!=failed",
        ))
        .respond_with(table_response(
            json!([{"number": "IRUN0001004", "state": "processing"}]),
        ))
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    let labels = labels(&server).await;
    assert!(nothing_exported(&labels), "{labels:?}");
    assert_eq!(
        labels.last().map(String::as_str),
        Some("table:x_fls_flexera_fnms_import_run")
    );
    assert_log_contains(
        &outcome,
        "instance readiness check failed: Import Runs: an import is still in progress: IRUN0001004 is processing",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_scheduled_data_import_blocks_the_export() {
    let server = ready_instance().await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/scheduled_import_set"))
        .respond_with(table_response(json!([])))
        .mount(&server)
        .await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert!(nothing_exported(&labels(&server).await));
    assert_log_contains(
        &outcome,
        "instance readiness check failed: Scheduled Data Import: no active Scheduled Data Import 'FNMS Import Schedule'",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_schema_version_fails_the_database_check_after_the_readiness_check() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let db = scratch.golden_db("UPDATE DatabaseConfiguration SET Value = '7';");
    let outcome = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_eq!(
        labels(&server).await,
        expected_sequence(&[]),
        "steps 1-3 ran, nothing exported"
    );
    assert_log_contains(
        &outcome,
        &format!(
            "database check failed: schema version 7 is not supported (expected 1) (database '{}')",
            db.display()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_mistakes_are_usage_errors() {
    let server = ready_instance().await;

    let scratch = Scratch::new("max_retries = 3\n");
    let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
    assert_eq!(outcome.code, 2, "{}", outcome.log);
    assert_log_contains(&outcome, "invalid configuration file");
    assert_log_contains(&outcome, "max_retries");

    if std::env::var_os("SNOW_OAUTH_CLIENT_SECRET").is_none() {
        let scratch = Scratch::new("");
        std::fs::write(&scratch.config, "oauth_client_id = \"x\"\n").expect("write config");
        let outcome = run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await;
        assert_eq!(outcome.code, 2, "{}", outcome.log);
        assert_log_contains(
            &outcome,
            "missing OAuth client secret: set SNOW_OAUTH_CLIENT_SECRET",
        );
    }
    assert!(labels(&server).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_option_values_are_usage_errors() {
    let scratch = Scratch::new("");
    for (extra, needle) in [
        (&["-changes", "maybe"][..], "invalid value 'maybe'"),
        (
            &["-changesSince", "2026-13-01"][..],
            "invalid value '2026-13-01'",
        ),
        (&["-changesPeriod", "lots"][..], "invalid value 'lots'"),
        (&["-withContracts", "yes"][..], "expected true or false"),
        (&["-bogus"][..], "unexpected argument '-b'"),
    ] {
        let outcome =
            run_exporter(scratch.args("https://127.0.0.1:9", &golden_script(), extra)).await;
        assert_eq!(outcome.code, 2, "{extra:?}: {}", outcome.log);
        assert_log_contains(&outcome, needle);
    }
    let outcome = run_exporter(scratch.args("not a url", &golden_script(), &[])).await;
    assert_eq!(outcome.code, 2, "{}", outcome.log);
    assert_log_contains(&outcome, "-url 'not a url' is not a URL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_db_and_outside_the_repository_root_the_sample_is_not_found() {
    // Tests run with the crate directory as working directory, where fixtures/ is absent.
    let scratch = Scratch::new("");
    let mut args = scratch.args("https://127.0.0.1:9", &golden_script(), &[]);
    let db_at = args.iter().position(|a| a == "--db").expect("--db");
    args.drain(db_at..db_at + 2);
    let outcome = run_exporter(args).await;
    assert_eq!(outcome.code, 2, "{}", outcome.log);
    assert_log_contains(&outcome, "fixtures/fnms/sample.sql");
    assert_log_contains(&outcome, "pass --db PATH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_without_certificates_is_a_usage_error() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let ca = scratch.dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").expect("write ca");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["--ca-file", &ca.to_string_lossy()],
    ))
    .await;
    assert_eq!(outcome.code, 2, "{}", outcome.log);
    assert_log_contains(&outcome, "CA file");
    assert!(labels(&server).await.is_empty());
}
