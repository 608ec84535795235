//! A misbehaving instance (docs/reliability.md): garbage, an HTML error page, a huge body, a
//! slow drip, a connection that never answers. Each segment answer is retried, then the
//! export fails with exit 1 and a message naming what came back, within the configured time-
//! outs and without reading more than `MAX_ANSWER` of any body.

use std::time::Duration;

use wiremock::ResponseTemplate;

use crate::helpers::*;

/// Every inventory segment answered with `answer`; two tries; a 1 s request time-out.
async fn export_against(answer: ResponseTemplate) -> Outcome {
    let server = ready_instance().await;
    transaction("inventory_export")
        .respond_with(answer)
        .with_priority(1)
        .mount(&server)
        .await;
    let scratch = Scratch::new("max_tries = 2\nrequest_timeout_secs = 1\n");
    run_exporter(scratch.args(&server.uri(), &golden_script(), &[])).await
}

fn assert_failed_saying(outcome: &Outcome, said: &str) {
    assert_eq!(outcome.code, 1, "{}", outcome.log);
    assert_log_contains(outcome, "try 2 of 2 failed");
    assert_log_contains(outcome, said);
    assert_log_contains(outcome, "skipped remaining exports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_not_json_and_says_how_it_starts() {
    let outcome =
        export_against(ResponseTemplate::new(200).set_body_string("\u{1}\u{2}garbage")).await;
    assert_failed_saying(&outcome, "not JSON");
    assert_log_contains(&outcome, "garbage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_error_page_from_a_proxy_is_a_retried_http_status() {
    let page =
        "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>";
    let outcome = export_against(
        ResponseTemplate::new(502)
            .insert_header("Content-Type", "text/html")
            .set_body_string(page),
    )
    .await;
    assert_failed_saying(&outcome, "HTTP 502");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_page_answered_200_is_not_taken_for_success() {
    let page = "<!DOCTYPE html><html><body><form action=\"login.do\"></form></body></html>";
    let outcome = export_against(
        ResponseTemplate::new(200)
            .insert_header("Content-Type", "text/html")
            .set_body_string(page),
    )
    .await;
    assert_failed_saying(&outcome, "not JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_is_not_read_past_the_limit() {
    let huge = format!("{{\"result\": \"{}\"}}", "x".repeat(12 * 1024 * 1024));
    let outcome = export_against(ResponseTemplate::new(200).set_body_string(huge)).await;
    assert_failed_saying(&outcome, "larger than 4 MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_never_answers_times_out_per_try() {
    let outcome = export_against(return_code(0).set_delay(Duration::from_secs(30))).await;
    assert_failed_saying(&outcome, "timed out");
    // Two tries of 1 s each plus back-off: far less than the 30 s the answer would take.
    assert!(
        outcome.elapsed < Duration::from_secs(15),
        "{:?}",
        outcome.elapsed
    );
}
