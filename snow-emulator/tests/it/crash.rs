//! Crash test (docs/reliability.md): the `snow-emulator` binary is killed with SIGKILL at
//! seeded random points while segments arrive and are processed, then restarted on the same
//! database. A client resends what it did not see acknowledged, with the same transaction
//! ids, as the exporter does. At the end every segment is there exactly once and every record
//! landed once: nothing acknowledged is lost, nothing retransmitted is duplicated.
//!
//! `SNOW_CRASH_POINTS` (default 20) and `SNOW_CRASH_SEED` (default 20261202) set the number of
//! kills and the seed; the figures are printed (`--nocapture`).

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::check::{CLIENT_ID, CLIENT_SECRET, inventory_xml, segment};

const SEGMENTS: usize = 30;
const PER_SEGMENT: usize = 20;
const RUN: &str = "55555555-5555-4555-8555-555555555555";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `snow-emulator` process on a free loopback port.
struct Process {
    child: Child,
    base: String,
}

impl Process {
    async fn start(db: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_snow-emulator"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--db", db])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start snow-emulator");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while client
            .get(format!("{base}/_emulator/health"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "snow-emulator did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, base }
    }

    fn kill(mut self) {
        // std's kill is SIGKILL on Unix: no shutdown code runs.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn segment_body(i: usize) -> Value {
    let ids: Vec<String> = (0..PER_SEGMENT)
        .map(|r| (i * PER_SEGMENT + r + 1).to_string())
        .collect();
    let names: Vec<String> = ids.iter().map(|id| format!("CRASH-{id}")).collect();
    let records: Vec<Vec<(&str, &str)>> = ids
        .iter()
        .zip(&names)
        .map(|(id, name)| vec![("ComputerID", id.as_str()), ("ComputerName", name.as_str())])
        .collect();
    let tid = format!("cccccccc-0000-4000-8000-{i:012}");
    let last = i + 1 == SEGMENTS;
    segment(
        &tid,
        "inventory_export",
        RUN,
        i as i64 + 1,
        last,
        &inventory_xml(&records),
        PER_SEGMENT as i64,
    )
}

async fn access_token(client: &reqwest::Client, base: &str) -> Option<String> {
    let form = [
        ("grant_type", "password"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("username", snow_emulator::INTEGRATION_USER),
        ("password", "integration"),
    ];
    let r = client
        .post(format!("{base}/oauth_token.do"))
        .form(&form)
        .send()
        .await
        .ok()?;
    let body: Value = r.json().await.ok()?;
    body["access_token"].as_str().map(str::to_owned)
}

/// Sends every segment not yet acknowledged, in order, recording each acknowledgement.
async fn send_unacknowledged(base: String, acked: Arc<Mutex<BTreeSet<usize>>>) {
    let client = reqwest::Client::new();
    let Some(token) = access_token(&client, &base).await else {
        return;
    };
    for i in 0..SEGMENTS {
        if acked.lock().expect("lock").contains(&i) {
            continue;
        }
        let Ok(r) = client
            .post(format!(
                "{base}/api/x_fls_flexera_fnms/integration/fnmstosn"
            ))
            .bearer_auth(&token)
            .json(&segment_body(i))
            .send()
            .await
        else {
            return;
        };
        let Ok(body) = r.json::<Value>().await else {
            return;
        };
        if body["result"]["returnCode"] == 0 {
            acked.lock().expect("lock").insert(i);
        }
    }
}

async fn count(client: &reqwest::Client, base: &str, table: &str, query: &str) -> u64 {
    let r = client
        .get(format!("{base}/api/now/stats/{table}"))
        .query(&[("sysparm_count", "true"), ("sysparm_query", query)])
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .expect("stats");
    let body: Value = r.json().await.expect("json");
    body["result"]["stats"]["count"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("count of {table}: {body}"))
}

#[tokio::test]
async fn killed_at_random_points_the_instance_loses_and_duplicates_nothing() {
    let points = env_number("SNOW_CRASH_POINTS", 20);
    let seed = env_number("SNOW_CRASH_SEED", 20_261_202);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir
        .path()
        .join("crash.sqlite")
        .to_string_lossy()
        .into_owned();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut acked_before_kill = Vec::new();
    for _ in 0..points {
        let process = Process::start(&db).await;
        let sender = tokio::spawn(send_unacknowledged(process.base.clone(), acked.clone()));
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..250))).await;
        process.kill();
        sender.abort();
        let _ = sender.await;
        acked_before_kill.push(acked.lock().expect("lock").len());
    }
    // The last instance is left to finish: resend the rest, wait for the run.
    let process = Process::start(&db).await;
    send_unacknowledged(process.base.clone(), acked.clone()).await;
    assert_eq!(acked.lock().expect("lock").len(), SEGMENTS);
    let client = reqwest::Client::new();
    let token = access_token(&client, &process.base).await.expect("token");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = json!({"transactionId": uuid::Uuid::new_v4().to_string(), "transactionType": "export_status", "importRunId": RUN});
        let r: Value = client
            .post(format!(
                "{}/api/x_fls_flexera_fnms/integration/fnmstosn",
                process.base
            ))
            .bearer_auth(&token)
            .json(&status)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        if r["result"]["complete"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "the run never completed: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let records = (SEGMENTS * PER_SEGMENT) as u64;
    let base = process.base.as_str();
    let transactions = count(&client, base, "x_fls_flexera_fnms_import_transaction", "").await;
    let staged = count(&client, base, "x_fls_flexera_fnms_inventory_import", "").await;
    let computers = count(&client, base, "cmdb_ci_computer", "").await;
    let succeeded = count(
        &client,
        base,
        "x_fls_flexera_fnms_import_transaction",
        "state=succeeded",
    )
    .await;
    println!(
        "crash test: {points} kills (seed {seed}); segments acknowledged after each kill: {acked_before_kill:?}; \
         at the end {transactions} transactions ({succeeded} succeeded), {staged} staging rows, {computers} computers"
    );
    process.kill();
    assert_eq!(transactions, SEGMENTS as u64, "one transaction per segment");
    assert_eq!(succeeded, SEGMENTS as u64);
    assert_eq!(staged, records, "every record staged exactly once");
    assert_eq!(computers, records, "every record landed exactly once");
}
