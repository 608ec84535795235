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

/// Runs a full export of the golden estate into `db` (recording history and bookkeeping),
/// changes it with `sql`, and runs the default differential export. Returns the second
/// instance's bodies per transaction type.
async fn full_then_differential(sql: &str) -> (Outcome, Vec<Value>, Vec<Value>, Vec<Value>) {
    let scratch = Scratch::new("");
    let db = scratch.golden_db("");
    let server = ready_instance().await;
    let first = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(first.code, 0, "{}", first.log);
    let conn = rusqlite::Connection::open(&db).expect("open db");
    conn.execute_batch(sql).expect("change the estate");
    drop(conn);
    let server = ready_instance().await;
    let outcome = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(outcome.code, 0, "{}", outcome.log);
    (
        outcome,
        bodies(&server, "inventory_export").await,
        bodies(&server, "contract_export").await,
        bodies(&server, "application_export").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_computer_is_sent_as_the_golden_removed_record() {
    let (_, inventory, contracts, applications) = full_then_differential(
        "DELETE FROM InstalledSoftware WHERE ComplianceComputerID = 4;
         DELETE FROM ContractComplianceComputer WHERE ComplianceComputerID = 4;
         DELETE FROM ComplianceComputer WHERE ComplianceComputerID = 4;",
    )
    .await;
    assert_eq!(inventory.len(), 1);
    assert_eq!(inventory[0]["recordCount"], 1);
    assert_eq!(
        inventory[0]["data"].as_str().unwrap_or_default(),
        read_fixture("wire/payloads/inventory_removed.xml"),
        "byte-identical to fixtures/wire/payloads/inventory_removed.xml"
    );
    // Its coverage changed, so the contract is re-sent with the computers it covers now.
    assert_eq!(ids(&contracts[0], "ContractID"), vec!["1"]);
    assert_eq!(ids(&contracts[0], "ComputerID"), vec!["2"]);
    assert_eq!(record_count(&applications), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_whose_covered_computers_changed_is_re_sent() {
    let (_, inventory, contracts, _) =
        full_then_differential("INSERT INTO ContractComplianceComputer VALUES (1, 1);").await;
    assert_eq!(record_count(&inventory), 0);
    assert_eq!(ids(&contracts[0], "ComputerID"), vec!["1", "2", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_application_re_sends_its_installations() {
    for change in [
        "UPDATE SoftwareTitle SET FullName = 'Microsoft 365 Apps' WHERE SoftwareTitleID = 1;",
        "UPDATE SoftwareTitle SET Version = '2402' WHERE SoftwareTitleID = 1;",
        "UPDATE SoftwareTitle SET Edition = NULL WHERE SoftwareTitleID = 1;",
        "UPDATE Publisher SET Name = 'Microsoft Corporation' WHERE PublisherID = 1;",
    ] {
        let (_, _, contracts, applications) = full_then_differential(change).await;
        assert_eq!(record_count(&contracts), 0, "{change}");
        assert_eq!(
            ids(&applications[0], "ComputerID"),
            vec!["1", "3"],
            "{change}"
        );
        assert_eq!(
            ids(&applications[0], "ApplicationID"),
            vec!["1", "1"],
            "{change}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_data_type_keeps_its_baseline_and_bookkeeping() {
    let scratch = Scratch::new("");
    let db = scratch.golden_db("");
    let server = ready_instance().await;
    let first = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(first.code, 0, "{}", first.log);
    let conn = rusqlite::Connection::open(&db).expect("open db");
    conn.execute_batch("INSERT INTO ContractComplianceComputer VALUES (1, 1);")
        .expect("change");
    let before: String = conn
        .query_row(
            "SELECT LastSuccessUTC FROM ServiceNowExportHistory WHERE DataType = 'contract'",
            [],
            |r| r.get(0),
        )
        .expect("history");
    // The contracts' Import Run fails: nothing about contracts may advance.
    let server = ready_instance().await;
    transaction("contract_export")
        .respond_with(return_code(30))
        .mount(&server)
        .await;
    let failed = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(failed.code, 1, "{}", failed.log);
    let after: String = conn
        .query_row(
            "SELECT LastSuccessUTC FROM ServiceNowExportHistory WHERE DataType = 'contract'",
            [],
            |r| r.get(0),
        )
        .expect("history");
    assert_eq!(before, after);
    let covered: i64 = conn
        .query_row(
            "SELECT count(*) FROM ServiceNowExportedCoverage WHERE ContractID = 1",
            [],
            |r| r.get(0),
        )
        .expect("bookkeeping");
    assert_eq!(
        covered, 2,
        "bookkeeping still describes the last successful export"
    );
    // The next run still sends the changed contract.
    let server = ready_instance().await;
    let again = run_exporter(scratch.args(&server.uri(), &db, &[])).await;
    assert_eq!(again.code, 0, "{}", again.log);
    let contracts = bodies(&server, "contract_export").await;
    assert_eq!(ids(&contracts[0], "ComputerID"), vec!["1", "2", "4"]);
}
