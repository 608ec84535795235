//! Test harness: start an emulator, talk to it with typed helpers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use snow_emulator::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const CLIENT_ID: &str = "fnms-export";
pub const CLIENT_SECRET: &str = "fnms-export-secret";

/// One emulator started for a test, on 127.0.0.1:0. Dropping it stops the server (the
/// graceful [`TestInstance::stop`] also waits for it).
pub struct TestInstance {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub fn fixture(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/wire")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

pub fn fixture_json(rel: &str) -> Value {
    serde_json::from_str(&fixture(rel)).expect("fixture is JSON")
}

/// A data segment request.
pub fn segment(
    tid: &str,
    ttype: &str,
    run: &str,
    n: i64,
    last: bool,
    data: &str,
    count: i64,
) -> Value {
    json!({
        "transactionId": tid,
        "transactionType": ttype,
        "importRunId": run,
        "segmentNumber": n,
        "lastSegment": last,
        "recordCount": count,
        "data": data,
    })
}

/// An `<Inventories>` document from records of (element, text).
pub fn inventory_xml(records: &[Vec<(&str, &str)>]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Inventories>\n");
    for r in records {
        xml.push_str("  <Inventory>\n");
        for (k, v) in r {
            xml.push_str(&format!("    <{k}>{v}</{k}>\n"));
        }
        xml.push_str("  </Inventory>\n");
    }
    xml.push_str("</Inventories>\n");
    xml
}

async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// The name earlier tests use.
pub type Emulator = TestInstance;

impl Drop for TestInstance {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl TestInstance {
    pub async fn start() -> Self {
        Self::start_with(Config::default()).await
    }

    pub async fn start_with(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(snow_emulator::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        let emulator = Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = emulator
                .client
                .get(emulator.url("/_emulator/health"))
                .send()
                .await
                && r.status() == StatusCode::OK
            {
                break;
            }
            assert!(Instant::now() < deadline, "emulator did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        emulator
    }

    /// Stops the server gracefully and waits for it (and its worker) to finish.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server result");
        }
    }

    /// The instance's base URI (`http://127.0.0.1:PORT`).
    pub fn uri(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.uri())
    }

    pub async fn oauth(&self, form: &[(&str, &str)]) -> Reply {
        reply(
            self.client
                .post(self.url("/oauth_token.do"))
                .form(form)
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    /// A refresh token for the integration user (the token an admin generates in the app).
    pub async fn refresh_token(&self) -> String {
        let r = self
            .oauth(&[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", snow_emulator::INTEGRATION_USER),
                ("password", "integration"),
            ])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned()
    }

    /// An access token traded for a refresh token, as the exporter does.
    pub async fn token(&self) -> String {
        let refresh = self.refresh_token().await;
        let r = self
            .oauth(&[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("refresh_token", &refresh),
            ])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    pub async fn post_raw(&self, path: &str, token: &str, body: Vec<u8>) -> Reply {
        reply(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .body(body)
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    /// POSTs to the integration endpoint; returns the `result` object (asserting HTTP 200).
    pub async fn fnms(&self, token: &str, body: &Value) -> Value {
        let r = self
            .post_raw(
                "/api/x_fls_flexera_fnms/integration/fnmstosn",
                token,
                serde_json::to_vec(body).expect("json"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["result"].clone()
    }

    pub async fn status(&self, token: &str, run: &str) -> Value {
        self.fnms(
            token,
            &json!({"transactionId": uuid::Uuid::new_v4().to_string(), "transactionType": "export_status", "importRunId": run}),
        )
        .await
    }

    /// Polls export_status until the run is complete (10 s at most).
    pub async fn wait_run(&self, token: &str, run: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status(token, run).await;
            if s["complete"] == json!(true) {
                return s;
            }
            assert!(Instant::now() < deadline, "run {run} did not complete: {s}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls export_status until `n` of the run's transactions are finished, succeeded or
    /// failed (10 s at most): the segments sent so far are processed, the run may go on.
    pub async fn wait_finished(&self, token: &str, run: &str, n: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status(token, run).await;
            let count = |state: &str| s["transactions"][state].as_i64().unwrap_or(0);
            if count("succeeded") + count("failed") >= n {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "run {run}: {n} not finished: {s}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// GET as admin (Basic).
    pub async fn get(&self, path_and_query: &str) -> Reply {
        reply(
            self.client
                .get(self.url(path_and_query))
                .basic_auth(snow_emulator::ADMIN_USER, Some("admin"))
                .header("Accept", "application/json")
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    /// Sends a JSON body as admin (Basic).
    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Reply {
        reply(
            self.client
                .request(method, self.url(path))
                .basic_auth(snow_emulator::ADMIN_USER, Some("admin"))
                .json(body)
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    /// Records of a table (all of them), as admin.
    pub async fn records(&self, table: &str, query: &str) -> Vec<Value> {
        let r = self
            .get(&format!(
                "/api/now/table/{table}?sysparm_query={}",
                urlencode(query)
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["result"].as_array().expect("list").clone()
    }

    /// `POST /_emulator/worker` with `{"action": action}`; returns the answer (asserting 200).
    pub async fn worker(&self, action: &str) -> Value {
        let r = self
            .send(
                reqwest::Method::POST,
                "/_emulator/worker",
                &json!({ "action": action }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    /// `POST /_emulator/clock` with `body`; returns the answer (asserting 200).
    pub async fn clock(&self, body: &Value) -> Value {
        let r = self
            .send(reqwest::Method::POST, "/_emulator/clock", body)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    pub async fn pause_worker(&self, paused: bool) {
        let r = self
            .send(
                reqwest::Method::POST,
                "/_emulator/worker",
                &json!({"paused": paused}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
