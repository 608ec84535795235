//! Throughput measurement (ignored by default; run with
//! `cargo test -p snow-emulator --release --test it perf -- --ignored --nocapture`,
//! `BENCH_COMPUTERS` sets the size, default 20000, a fifth of them virtual).
//! Compares the end-to-end import (HTTP, staging, transform maps) with the floor: inserting
//! the same final rows straight into SQLite in one transaction.

use std::time::{Duration, Instant};

use rusqlite::types::Value as Sql;
use serde_json::json;
use snow_emulator::Config;

use crate::check::{Emulator, segment};

fn inventory(from: usize, to: usize) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Inventories>\n");
    for i in from..to {
        let virt = i % 5 == 0;
        let (device, os, model) = if virt {
            (
                "Virtual Machine",
                "Microsoft Windows Server 2022 Standard",
                "VMware Virtual Platform".to_owned(),
            )
        } else if i % 7 == 0 {
            (
                "Computer",
                "Red Hat Enterprise Linux 9.4",
                format!("PowerEdge R{}", 600 + i % 50),
            )
        } else {
            (
                "Computer",
                "Microsoft Windows 11 Enterprise",
                format!("Latitude {}", 7000 + i % 40),
            )
        };
        xml.push_str(&format!(
            "  <Inventory>\n    <ComputerID>{i}</ComputerID>\n    <ComputerName>HOST-{i:06}</ComputerName>\n    <Domain>corp.example.com</Domain>\n    <DeviceType>{device}</DeviceType>\n    <OperatingSystem>{os}</OperatingSystem>\n    <Manufacturer>Dell Inc.</Manufacturer>\n    <ModelNo>{model}</ModelNo>\n    <SerialNo>SN{i:08}</SerialNo>\n    <ChassisType>Desktop</ChassisType>\n    <ComputerType>Computer</ComputerType>\n    <TotalMemory>17179869184</TotalMemory>\n    <TotalDiskSpace>512110190592</TotalDiskSpace>\n    <NumberOfProcessors>1</NumberOfProcessors>\n    <NumberOfCores>8</NumberOfCores>\n    <ProcessorType>Intel(R) Core(TM) i7</ProcessorType>\n    <MaxClockSpeed>2400</MaxClockSpeed>\n    <IPAddress>10.0.{}.{}</IPAddress>\n    <MACAddress>00:50:56:00:{:02X}:{:02X}</MACAddress>\n    <InventoryDate>2026-11-20 08:15:00</InventoryDate>\n  </Inventory>\n",
            i / 256 % 256, i % 256, i / 256 % 256, i % 256
        ));
    }
    xml.push_str("</Inventories>\n");
    xml
}

/// Copies every row of the given tables into a fresh database with the same schema, one
/// prepared INSERT per row, in one transaction: the floor.
fn floor(src: &std::path::Path, dst: &std::path::Path, tables: &[&str]) -> (Duration, usize) {
    let from = rusqlite::Connection::open(src).expect("open");
    let to = rusqlite::Connection::open(dst).expect("open");
    let mut rows_total = 0;
    let mut data = Vec::new();
    for t in tables {
        let ddl: Vec<String> = from
            .prepare("SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL")
            .expect("prepare")
            .query_map([t], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("ddl");
        for d in ddl {
            to.execute_batch(&d).expect("ddl");
        }
        let mut stmt = from
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .expect("prepare");
        let n = stmt.column_count();
        let rows: Vec<Vec<Sql>> = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows_total += rows.len();
        data.push((t.to_string(), n, rows));
    }
    to.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .expect("pragma");
    let start = Instant::now();
    let tx = to.unchecked_transaction().expect("tx");
    for (t, n, rows) in &data {
        let sql = format!("INSERT INTO \"{t}\" VALUES ({})", vec!["?"; *n].join(","));
        let mut stmt = tx.prepare(&sql).expect("prepare");
        for r in rows {
            stmt.execute(rusqlite::params_from_iter(r)).expect("insert");
        }
    }
    tx.commit().expect("commit");
    (start.elapsed(), rows_total)
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn perf_inventory_throughput() {
    let n: usize = std::env::var("BENCH_COMPUTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bench.sqlite");
    let emu = Emulator::start_with(Config {
        db: db.to_string_lossy().into_owned(),
        ..Default::default()
    })
    .await;
    let token = emu.token().await;
    let starts: Vec<usize> = (0..n).step_by(500).collect();
    // Intake and processing are timed apart (worker paused while sending), then together.
    emu.pause_worker(true).await;
    let start = Instant::now();
    let count = starts.len();
    for (i, from) in starts.iter().enumerate() {
        // Generated on the fly so that the client holds one segment at a time.
        let xml = inventory(*from, (*from + 500).min(n));
        let records = xml.matches("<Inventory>").count() as i64;
        let r = emu
            .fnms(
                &token,
                &segment(
                    &format!("t{i}"),
                    "inventory_export",
                    "bench",
                    i as i64 + 1,
                    i + 1 == count,
                    &xml,
                    records,
                ),
            )
            .await;
        assert_eq!(r["returnCode"], json!(0), "{r}");
    }
    let sent = start.elapsed();
    emu.pause_worker(false).await;
    let processing_start = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = emu.status(&token, "bench").await;
        if s["complete"] == json!(true) {
            assert_eq!(s["state"], "succeeded", "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let processing = processing_start.elapsed();
    let total = start.elapsed();
    let peak_import = peak_rss();
    emu.stop().await;
    let (floor_time, rows) = floor(
        &db,
        &dir.path().join("floor.sqlite"),
        &[
            "cmdb_ci",
            "cmdb_model",
            "x_fls_flexera_fnms_inventory_import",
        ],
    );
    println!(
        "perf: peak RSS of the test process during the import (client and emulator): {peak_import} kB"
    );
    println!(
        "perf: {n} computers in {count} segments: intake {:.2}s, processing {:.2}s, total {:.2}s ({:.0} computers/s); floor: {rows} rows in {:.2}s; ratio total/floor {:.1}x, processing/floor {:.1}x",
        sent.as_secs_f64(),
        processing.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        floor_time.as_secs_f64(),
        total.as_secs_f64() / floor_time.as_secs_f64(),
        processing.as_secs_f64() / floor_time.as_secs_f64()
    );
}
