//! The command line as an operator sees it.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_documents_every_option_env_var_config_key_and_exit_code() {
    let outcome = run_exporter(vec!["fnmp_servicenow_export".into(), "--help".into()]).await;
    assert_eq!(outcome.code, 0);
    insta::assert_snapshot!("help", outcome.log);
    for needle in [
        "--url",
        "--user",
        "--token",
        "--endpoint",
        "--changes",
        "--changes-period",
        "--changes-since",
        "--connection-test",
        "--with-applications",
        "--with-contracts",
        "--with-hardware-inventory",
        "--db",
        "--config",
        "--log-file",
        "--verbose",
        "--quiet",
        "-WithHardwareInventory",
        "SNOW_OAUTH_CLIENT_ID",
        "SNOW_OAUTH_CLIENT_SECRET",
        "max_tries",
        "retry_delay_ms",
        "retry_max_delay_ms",
        "segment_size",
        "poll_interval_ms",
        "poll_timeout_secs",
        "request_timeout_secs",
        "oauth_client_id",
        "oauth_client_secret",
        "database",
        "Exit codes",
        "0  success",
        "1  export failed",
        "2  usage error",
    ] {
        assert_log_contains(&outcome, needle);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_help_spelling_and_version_exit_0() {
    let outcome = run_exporter(vec!["fnmp_servicenow_export".into(), "-help".into()]).await;
    assert_eq!(outcome.code, 0);
    assert_log_contains(&outcome, "Usage: fnmp_servicenow_export");
    let outcome = run_exporter(vec!["fnmp_servicenow_export".into(), "--version".into()]).await;
    assert_eq!(outcome.code, 0);
    assert_log_contains(&outcome, "fnmp_servicenow_export 0.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_arguments_is_a_usage_error_naming_the_mandatory_options() {
    let outcome = run_exporter(vec!["fnmp_servicenow_export".into()]).await;
    assert_eq!(outcome.code, 2);
    assert_log_contains(&outcome, "--url <URL>");
    assert_log_contains(&outcome, "--token <REFRESH_TOKEN>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_file_receives_the_log_too() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let log_file = scratch.dir.path().join("export.log");
    std::fs::write(&log_file, "earlier run\n").expect("seed log");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-connectionTest", "--log-file", &log_file.to_string_lossy()],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let written = std::fs::read_to_string(&log_file).expect("log file");
    assert!(written.starts_with("earlier run\n"), "appends");
    assert!(written.contains("credential test passed"), "{written}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_keeps_only_warnings_and_errors() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-connectionTest", "true", "-q"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert_eq!(outcome.log, "", "nothing to warn about");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_in_one_process_do_not_interfere() {
    let server = ready_instance().await;
    let first = Scratch::new("");
    let second = Scratch::new("");
    let (a, b) = tokio::join!(
        run_exporter(first.args(&server.uri(), &golden_script(), &[])),
        run_exporter(second.args(&server.uri(), &golden_script(), &["-connectionTest"])),
    );
    assert_eq!(a.code, 0, "{}", a.log);
    assert_eq!(b.code, 0, "{}", b.log);
    assert!(a.log.contains("export succeeded"));
    assert!(!b.log.contains("export succeeded"));
    assert!(b.log.contains("connection test succeeded"));
}
