//! Differential export: which rows are sent, and the baseline the exporter records.

use serde_json::Value;

use crate::helpers::*;

fn record_count(bodies: &[Value]) -> i64 {
    bodies
        .iter()
        .map(|b| b["recordCount"].as_i64().unwrap_or_default())
        .sum()
}

fn ids(body: &Value, element: &str) -> Vec<String> {
    let data = body["data"].as_str().unwrap_or_default();
    let open = format!("<{element}>");
    let close = format!("</{element}>");
    data.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(id, _)| id.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_since_sends_only_rows_changed_on_or_after_that_date() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &golden_script(),
        &["-changesSince", "2026-11-19"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let inventory = bodies(&server, "inventory_export").await;
    assert_eq!(ids(&inventory[0], "ComputerID"), vec!["1", "2", "3"]);
    let contracts = bodies(&server, "contract_export").await;
    assert_eq!(contracts.len(), 1, "one empty segment");
    assert_eq!(contracts[0]["recordCount"], 0);
    assert_eq!(contracts[0]["lastSegment"], true);
    let applications = bodies(&server, "application_export").await;
    assert_eq!(ids(&applications[0], "ComputerID"), vec!["1", "3"]);
    assert_log_contains(
        &outcome,
        "hardware inventory: starting export, import run id",
    );
    assert_log_contains(
        &outcome,
        "changes since 2026-11-19 00:00:00 UTC (-changesSince)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_success_is_the_default_baseline_and_is_recorded_after_each_data_type() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let db = scratch.golden_db(
        "INSERT INTO ServiceNowExportHistory VALUES ('inventory', '2026-11-19 22:00:00');",
    );
    let outcome = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert_eq!(record_count(&bodies(&server, "inventory_export").await), 3);
    assert_eq!(
        record_count(&bodies(&server, "contract_export").await),
        2,
        "no history: full"
    );
    assert_log_contains(
        &outcome,
        "changes since 2026-11-19 22:00:00 UTC (last successful export)",
    );

    let conn = rusqlite::Connection::open(&db).expect("open db");
    let recorded: Vec<(String, String)> = conn
        .prepare("SELECT DataType, LastSuccessUTC FROM ServiceNowExportHistory ORDER BY DataType")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("history");
    let kinds: Vec<&str> = recorded.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, vec!["application", "contract", "inventory"]);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        recorded.iter().all(|(_, at)| at.starts_with(&today)),
        "{recorded:?}"
    );

    // A second differential run sends nothing new: one empty segment per data type.
    server.reset().await;
    let server = ready_instance().await;
    let outcome = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    for kind in ["inventory_export", "contract_export", "application_export"] {
        assert_eq!(record_count(&bodies(&server, kind).await), 0, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_false_sends_everything_whatever_the_history() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    let db = scratch.golden_db(
        "INSERT INTO ServiceNowExportHistory VALUES ('inventory', '2030-01-01 00:00:00');",
    );
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &db,
        &["-changes", "false", "-changesPeriod", "-1"],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    assert_eq!(record_count(&bodies(&server, "inventory_export").await), 4);
    assert_log_contains(&outcome, "full export (-changes false)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_period_counts_days_back_from_now() {
    let server = ready_instance().await;
    let scratch = Scratch::new("");
    // Computer 4 changed 2 days ago, the others 30 days ago.
    let db = scratch.golden_db(
        "UPDATE ComplianceComputer SET UpdatedDate = datetime('now', '-30 days');
         UPDATE ComplianceComputer SET UpdatedDate = datetime('now', '-2 days')
          WHERE ComplianceComputerID = 4;",
    );
    let outcome = run_exporter(scratch.args(
        &server.uri(),
        &db,
        &[
            "-changesPeriod",
            "-7",
            "-withContracts",
            "false",
            "-withApplications",
            "false",
        ],
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    let inventory = bodies(&server, "inventory_export").await;
    assert_eq!(ids(&inventory[0], "ComputerID"), vec!["4"]);
    assert_log_contains(&outcome, "(-changesPeriod 7 days)");
}
