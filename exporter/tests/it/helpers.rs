//! Shared fixtures: paths, a scratch directory with a fast configuration file, a mock
//! ServiceNow instance answering with the golden responses, and a way to run the exporter
//! in-process (inside `spawn_blocking`, as the conformance suite does) and read what it sent.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const FNMSTOSN: &str = "/api/x_fls_flexera_fnms/integration/fnmstosn";

/// Priority of the default (happy-path) mocks; tests mount overrides with the default
/// priority 5, which wins.
const DEFAULT_PRIORITY: u8 = 10;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(relative: &str) -> PathBuf {
    repo_root().join("fixtures").join(relative)
}

pub fn read_fixture(relative: &str) -> String {
    std::fs::read_to_string(fixture(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

pub fn fixture_json(relative: &str) -> Value {
    serde_json::from_str(&read_fixture(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The golden estate as a `.sql` script (loaded after the schema.sql beside it).
pub fn golden_script() -> PathBuf {
    fixture("fnms/golden.sql")
}

/// A scratch directory with a configuration file tuned for fast tests.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Scratch {
    /// `extra` is appended to the configuration file (e.g. `max_tries = 3`).
    pub fn new(extra: &str) -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("exporter.toml");
        let base = [
            "oauth_client_id = \"fnms-client\"",
            "oauth_client_secret = \"fnms-secret\"",
            "retry_delay_ms = 5",
            "retry_max_delay_ms = 20",
            "poll_interval_ms = 10",
            "request_timeout_secs = 10",
        ];
        // A key given in `extra` replaces the base line (TOML refuses duplicates).
        let overridden = |line: &str| {
            let key = line.split('=').next().unwrap_or_default().trim();
            extra
                .lines()
                .any(|l| l.split('=').next().unwrap_or_default().trim() == key)
        };
        let mut text: String = base
            .iter()
            .filter(|line| !overridden(line))
            .map(|line| format!("{line}\n"))
            .collect();
        text.push_str(extra);
        std::fs::write(&config, text).expect("write config");
        Scratch { dir, config }
    }

    /// A SQLite file holding schema.sql + golden.sql, then `extra_sql`.
    pub fn golden_db(&self, extra_sql: &str) -> PathBuf {
        let path = self.dir.path().join("fnms.sqlite");
        let conn = rusqlite::Connection::open(&path).expect("create db");
        conn.execute_batch(&read_fixture("fnms/schema.sql"))
            .expect("schema");
        conn.execute_batch(&read_fixture("fnms/golden.sql"))
            .expect("golden");
        conn.execute_batch(extra_sql).expect("extra sql");
        path
    }

    /// The mandatory options, the config file and `--db`, then `extra`.
    pub fn args(&self, url: &str, db: &Path, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "fnmp_servicenow_export",
            "-url",
            url,
            "-user",
            "fnms.integration@example.com",
            "-token",
            "[refresh token]",
            "--config",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(self.config.to_string_lossy().into_owned());
        args.push("--db".into());
        args.push(db.to_string_lossy().into_owned());
        // The environment beats the configuration file; keep tests independent of it.
        for (var, flag, value) in [
            ("SNOW_OAUTH_CLIENT_ID", "--oauth-client-id", "fnms-client"),
            (
                "SNOW_OAUTH_CLIENT_SECRET",
                "--oauth-client-secret",
                "fnms-secret",
            ),
        ] {
            if std::env::var_os(var).is_some() {
                args.push(flag.into());
                args.push(value.into());
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// A `Write` whose bytes the test can read afterwards.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one run did.
pub struct Outcome {
    pub code: i32,
    pub log: String,
    pub elapsed: std::time::Duration,
}

/// Runs the exporter in-process on a blocking thread of the test's runtime.
pub async fn run_exporter(args: Vec<String>) -> Outcome {
    let capture = Capture::default();
    let writer = capture.clone();
    let started = std::time::Instant::now();
    let code = tokio::task::spawn_blocking(move || {
        exporter::run(args.into_iter().map(Into::into).collect(), Box::new(writer))
    })
    .await
    .expect("exporter thread");
    Outcome {
        code,
        log: capture.text(),
        elapsed: started.elapsed(),
    }
}

fn json_response(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A table answer with `X-Total-Count`.
pub fn table_response(records: Value) -> ResponseTemplate {
    let count = records.as_array().map_or(0, Vec::len);
    ResponseTemplate::new(200)
        .insert_header("X-Total-Count", count.to_string().as_str())
        .set_body_json(json!({ "result": records }))
}

/// The `result` of a segment answer with the given return code.
pub fn return_code(code: i64) -> ResponseTemplate {
    json_response(json!({"result": {
        "returnCode": code,
        "status": if code == 0 { "success" } else { "failure" },
        "message": format!("test return code {code}"),
    }}))
}

/// Mock for transactions of one type on the integration endpoint.
pub fn transaction(transaction_type: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path(FNMSTOSN))
        .and(body_partial_json(
            json!({ "transactionType": transaction_type }),
        ))
}

/// A mock instance that is ready and accepts everything with the golden responses.
pub async fn ready_instance() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth_token.do"))
        .respond_with(json_response(fixture_json(
            "wire/responses/oauth_refresh.json",
        )))
        .with_priority(DEFAULT_PRIORITY)
        .mount(&server)
        .await;
    transaction("connection_test")
        .respond_with(json_response(fixture_json(
            "wire/responses/connection_test.json",
        )))
        .with_priority(DEFAULT_PRIORITY)
        .mount(&server)
        .await;
    for kind in ["inventory_export", "contract_export", "application_export"] {
        transaction(kind)
            .respond_with(json_response(fixture_json(
                "wire/responses/inventory_export.json",
            )))
            .with_priority(DEFAULT_PRIORITY)
            .mount(&server)
            .await;
    }
    transaction("export_status")
        .respond_with(json_response(fixture_json(
            "wire/responses/export_status.json",
        )))
        .with_priority(DEFAULT_PRIORITY)
        .mount(&server)
        .await;
    let tables = [
        (
            "scheduled_import_set",
            "name=FNMS Import Schedule^active=true",
            json!([{"name": "FNMS Import Schedule", "active": "true"}]),
        ),
        (
            "sys_data_source",
            "name=FNMS Data Source",
            json!([{"name": "FNMS Data Source"}]),
        ),
        (
            "x_fls_flexera_fnms_import_run",
            "state!=succeeded^state!=failed",
            json!([]),
        ),
        (
            "x_fls_flexera_fnms_import_transaction",
            "state!=succeeded^state!=failed",
            json!([]),
        ),
    ];
    for (table, query, records) in tables {
        Mock::given(method("GET"))
            .and(path(format!("/api/now/table/{table}")))
            .and(query_param("sysparm_query", query))
            .and(query_param("sysparm_limit", "1"))
            .respond_with(table_response(records))
            .with_priority(DEFAULT_PRIORITY)
            .mount(&server)
            .await;
    }
    server
}

pub async fn requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

/// A short label per request: `oauth`, `table:<name>`, the transaction type (with
/// `#segment` for data segments), or `METHOD path` for anything else.
pub fn label(request: &Request) -> String {
    let path = request.url.path();
    if path == "/oauth_token.do" {
        return "oauth".into();
    }
    if let Some(table) = path.strip_prefix("/api/now/table/") {
        return format!("table:{table}");
    }
    if path == FNMSTOSN || path == "/fnmp.do" {
        let body: Value = request.body_json().expect("endpoint body is JSON");
        let kind = body["transactionType"].as_str().unwrap_or("?").to_owned();
        return match body.get("segmentNumber") {
            Some(n) => format!("{kind}#{n}"),
            None => kind,
        };
    }
    format!("{} {path}", request.method)
}

pub async fn labels(server: &MockServer) -> Vec<String> {
    requests(server).await.iter().map(label).collect()
}

/// Bodies of the endpoint requests of one transaction type, in order.
pub async fn bodies(server: &MockServer, transaction_type: &str) -> Vec<Value> {
    requests(server)
        .await
        .iter()
        .filter(|r| r.url.path() == FNMSTOSN || r.url.path() == "/fnmp.do")
        .filter_map(|r| r.body_json::<Value>().ok())
        .filter(|b| b["transactionType"] == transaction_type)
        .collect()
}

/// The happy-path call order for the given data types.
pub fn expected_sequence(types: &[&str]) -> Vec<String> {
    let mut expected: Vec<String> = [
        "oauth",
        "connection_test",
        "table:scheduled_import_set",
        "table:sys_data_source",
        "table:x_fls_flexera_fnms_import_run",
        "table:x_fls_flexera_fnms_import_transaction",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for kind in types {
        expected.push(format!("{kind}#1"));
        expected.push("export_status".into());
    }
    expected
}

#[track_caller]
pub fn assert_log_contains(outcome: &Outcome, needle: &str) {
    assert!(
        outcome.log.contains(needle),
        "log lacks {needle:?}:\n{}",
        outcome.log
    );
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                    out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).expect("utf-8 form value")
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Runs the exporter in-process on a virtual clock: every back-off, `Retry-After` and poll
/// interval is recorded and skipped. Returns the outcome and the waits asked for.
pub async fn run_exporter_virtual(args: Vec<String>) -> (Outcome, Vec<std::time::Duration>) {
    let capture = Capture::default();
    let writer = capture.clone();
    let clock = Arc::new(exporter::testing::VirtualClock::new());
    let run_clock = clock.clone();
    let started = std::time::Instant::now();
    let code = tokio::task::spawn_blocking(move || {
        exporter::testing::run_with_clock(
            args.into_iter().map(Into::into).collect(),
            Box::new(writer),
            run_clock,
        )
    })
    .await
    .expect("exporter thread");
    let outcome = Outcome {
        code,
        log: capture.text(),
        elapsed: started.elapsed(),
    };
    (outcome, clock.sleeps())
}

/// A port on 127.0.0.1 where nothing listens (bound, then freed).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `PROPTEST_CASES` when set (to run the properties long), else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
