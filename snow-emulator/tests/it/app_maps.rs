//! The Flexera app's transform maps beyond hardware: computer matching (the case matrix, fed
//! by fixtures/emulator/coalesce.toml), installed-application routing
//! (fixtures/emulator/routing.toml), contracts and their covered computers, removed
//! computers, source-of-truth properties and a second full export.

use std::collections::BTreeMap;
use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::check::{Emulator, fixture_json, inventory_xml, segment};

const INVENTORY_RUN: &str = "11111111-1111-4111-8111-111111111111";
const CONTRACT_RUN: &str = "22222222-2222-4222-8222-222222222222";
const APPLICATION_RUN: &str = "33333333-3333-4333-8333-333333333333";

/// Every target table of the app's maps.
const TARGETS: [&str; 12] = [
    "cmdb_model",
    "cmdb_ci_computer",
    "cmdb_ci_vm_instance",
    "cmdb_serial_number",
    "ast_contract",
    "ast_lease",
    "contract_rel_ci",
    "cmdb_software_product_model",
    "cmdb_sam_sw_discovery_model",
    "cmdb_sam_sw_install",
    "cmdb_ci_spkg",
    "cmdb_software_instance",
];

fn emulator_fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/emulator")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

async fn create(emu: &Emulator, table: &str, body: &Value) -> String {
    let r = emu
        .send(Method::POST, &format!("/api/now/table/{table}"), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["result"]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned()
}

/// Sets a record's fields, found by `key=value`.
async fn set(emu: &Emulator, table: &str, query: &str, body: Value) {
    let found = emu.records(table, query).await;
    let id = found[0]["sys_id"].as_str().expect("record");
    let r = emu
        .send(
            Method::PATCH,
            &format!("/api/now/table/{table}/{id}"),
            &body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn set_property(emu: &Emulator, name: &str, value: &str) {
    set(
        emu,
        "sys_properties",
        &format!("name={name}"),
        json!({"value": value}),
    )
    .await;
}

/// Imports inventory records as one single-segment run.
async fn import_inventory(emu: &Emulator, token: &str, run: &str, records: &[Vec<(&str, &str)>]) {
    let tid = uuid::Uuid::new_v4().to_string();
    let xml = inventory_xml(records);
    let r = emu
        .fnms(
            token,
            &segment(
                &tid,
                "inventory_export",
                run,
                1,
                true,
                &xml,
                records.len() as i64,
            ),
        )
        .await;
    assert_eq!(r["returnCode"], 0, "{r}");
    emu.wait_run(token, run).await;
}

/// Sends a golden request (with a fresh transaction and run id when `fresh`) and waits.
async fn golden(emu: &Emulator, token: &str, name: &str, run: &str, fresh: bool) -> Value {
    let mut body = fixture_json(&format!("requests/{name}.json"));
    let run = if fresh {
        let id = uuid::Uuid::new_v4().to_string();
        body["transactionId"] = json!(uuid::Uuid::new_v4().to_string());
        body["importRunId"] = json!(id);
        id
    } else {
        run.to_owned()
    };
    let r = emu.fnms(token, &body).await;
    if r["returnCode"] == 0 {
        emu.wait_run(token, &run).await;
    }
    r
}

async fn counts(emu: &Emulator) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for t in TARGETS {
        out.insert(t, emu.records(t, "").await.len());
    }
    out
}

#[derive(Deserialize)]
struct CoalesceFile {
    case: Vec<CoalesceCase>,
}

#[derive(Deserialize)]
struct CoalesceCase {
    case: String,
    existing: Vec<BTreeMap<String, String>>,
    #[serde(default)]
    serial_table: Vec<SerialRow>,
    record: BTreeMap<String, String>,
    state: String,
    target: Option<usize>,
    computers: usize,
}

#[derive(Deserialize)]
struct SerialRow {
    serial_number: String,
    ci: usize,
}

async fn run_coalesce_case(c: &CoalesceCase) {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let mut ids = Vec::new();
    for computer in &c.existing {
        ids.push(create(&emu, "cmdb_ci_computer", &json!(computer)).await);
    }
    for s in &c.serial_table {
        let body = json!({"serial_number": s.serial_number, "cmdb_ci": ids[s.ci]});
        create(&emu, "cmdb_serial_number", &body).await;
    }
    let record: Vec<(&str, &str)> = c
        .record
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    import_inventory(&emu, &token, INVENTORY_RUN, &[record]).await;
    let rows = emu.records("x_fls_flexera_fnms_inventory_import", "").await;
    let comment = rows[0]["sys_import_state_comment"]
        .as_str()
        .unwrap_or_default();
    let want = format!(
        "FNMS Inventory -> Computer: {} (FNMS Computer case {}:",
        c.state, c.case
    );
    assert!(comment.contains(&want), "case {}: {comment}", c.case);
    let computers = emu.records("cmdb_ci_computer", "").await;
    assert_eq!(computers.len(), c.computers, "case {}", c.case);
    if let Some(t) = c.target {
        let updated = computers
            .iter()
            .find(|r| r["sys_id"] == json!(ids[t]))
            .expect("target still exists");
        let id = c.record.get("ComputerID").map(String::as_str).unwrap_or("");
        assert_eq!(
            updated["x_fls_flexera_fnms_flexera_unique_id"], id,
            "case {}",
            c.case
        );
        assert_eq!(
            updated["name"],
            c.record
                .get("ComputerName")
                .map(String::as_str)
                .unwrap_or(""),
            "case {}",
            c.case
        );
    }
    emu.stop().await;
}

#[tokio::test]
async fn every_computer_matching_case_behaves_as_the_matrix_says() {
    let file: CoalesceFile = emulator_fixture("coalesce.toml");
    let mut seen: Vec<&str> = file.case.iter().map(|c| c.case.as_str()).collect();
    seen.dedup();
    assert_eq!(seen.len(), 14, "one fixture per case at least: {seen:?}");
    for c in &file.case {
        run_coalesce_case(c).await;
    }
}

#[derive(Deserialize)]
struct RoutingFile {
    case: Vec<RoutingCase>,
}

#[derive(Deserialize)]
struct RoutingCase {
    property: String,
    sam_plugin: bool,
    #[serde(default)]
    refused: bool,
    #[serde(default)]
    counts: BTreeMap<String, usize>,
}

#[tokio::test]
async fn installed_applications_follow_the_property_and_the_plugin() {
    let file: RoutingFile = emulator_fixture("routing.toml");
    assert_eq!(file.case.len(), 8);
    for c in &file.case {
        let what = format!("{} / plugin {}", c.property, c.sam_plugin);
        let emu = Emulator::start().await;
        let token = emu.token().await;
        set_property(&emu, "x_fls_flexera_fnms.installation_tables", &c.property).await;
        if !c.sam_plugin {
            set(
                &emu,
                "sys_plugins",
                "id=com.snc.sams",
                json!({"active": "inactive"}),
            )
            .await;
        }
        golden(&emu, &token, "inventory_export", INVENTORY_RUN, false).await;
        let r = golden(&emu, &token, "application_export", APPLICATION_RUN, false).await;
        if c.refused {
            assert_eq!(r["returnCode"], 30, "{what}: {r}");
        } else {
            assert_eq!(r["returnCode"], 0, "{what}: {r}");
            for (table, n) in &c.counts {
                assert_eq!(emu.records(table, "").await.len(), *n, "{what}: {table}");
            }
        }
        emu.stop().await;
    }
}

#[tokio::test]
async fn contracts_land_as_leases_linked_to_the_inventory_computers() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    golden(&emu, &token, "inventory_export", INVENTORY_RUN, false).await;
    golden(&emu, &token, "contract_export", CONTRACT_RUN, false).await;
    let leases = emu.records("ast_lease", "").await;
    assert_eq!(leases.len(), 1);
    let lease = &leases[0];
    assert_eq!(lease["x_fls_flexera_fnms_contract_id"], "1");
    assert_eq!(lease["vendor_contract"], "CTR-2024-0042");
    assert_eq!(lease["state"], "active");
    assert_eq!(lease["starts"], "2024-01-01");
    assert_eq!(
        emu.records("ast_contract", "").await.len(),
        1,
        "a lease is a contract"
    );
    let links = emu.records("contract_rel_ci", "").await;
    let mut covered: Vec<String> = Vec::new();
    for l in &links {
        assert_eq!(l["contract"]["value"], lease["sys_id"]);
        let ci = l["ci_item"]["value"].as_str().expect("ci_item");
        let computer = emu
            .records("cmdb_ci_computer", &format!("sys_id={ci}"))
            .await;
        assert_eq!(computer.len(), 1, "link resolves to a computer: {l}");
        covered.push(
            computer[0]["x_fls_flexera_fnms_flexera_unique_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    covered.sort();
    assert_eq!(covered, ["2", "4"]);
    emu.stop().await;
}

#[tokio::test]
async fn a_second_full_export_changes_no_row_count() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    set_property(
        &emu,
        "x_fls_flexera_fnms.installation_tables",
        "cmdb_and_sam",
    )
    .await;
    for name in ["inventory_export", "contract_export", "application_export"] {
        golden(&emu, &token, name, "", true).await;
    }
    let first = counts(&emu).await;
    for (table, n) in &first {
        assert!(*n > 0, "{table} is empty after the first export: {first:?}");
    }
    for name in ["inventory_export", "contract_export", "application_export"] {
        golden(&emu, &token, name, "", true).await;
    }
    assert_eq!(counts(&emu).await, first);
    emu.stop().await;
}

/// The worker keeps what it looked up for the next transaction; a change through the Table API
/// in between must make it look again (here: the models it found are gone).
#[tokio::test]
async fn models_deleted_between_two_exports_are_created_again() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    golden(&emu, &token, "inventory_export", "", true).await;
    golden(&emu, &token, "application_export", "", true).await;
    let models = emu.records("cmdb_software_product_model", "").await;
    assert!(
        !models.is_empty(),
        "the first export made no software models"
    );
    for m in &models {
        let id = m["sys_id"].as_str().expect("sys_id");
        let path = format!("/api/now/table/cmdb_software_product_model/{id}");
        let r = emu.send(Method::DELETE, &path, &json!({})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    golden(&emu, &token, "application_export", "", true).await;
    let again = emu.records("cmdb_software_product_model", "").await;
    assert_eq!(again.len(), models.len(), "models were not created again");
    let ids: Vec<&str> = again.iter().filter_map(|m| m["sys_id"].as_str()).collect();
    let installs = emu.records("cmdb_sam_sw_install", "").await;
    assert!(!installs.is_empty());
    for i in &installs {
        let model = i["software_model"]["value"]
            .as_str()
            .or_else(|| i["software_model"].as_str())
            .expect("software_model");
        assert!(
            ids.contains(&model),
            "an installation points at a deleted model: {i}"
        );
    }
    emu.stop().await;
}

#[tokio::test]
async fn removed_computers_are_retired_never_created() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let pc = vec![
        ("ComputerID", "1"),
        ("ComputerName", "NYC-1"),
        ("SerialNo", "SN-1"),
        ("DeviceType", "Virtual Machine"),
    ];
    import_inventory(&emu, &token, INVENTORY_RUN, &[pc]).await;
    let removed = vec![
        ("ComputerID", "1"),
        ("ComputerName", "NYC-1"),
        ("SerialNo", "SN-1"),
        ("Removed", "true"),
    ];
    let unknown = vec![
        ("ComputerID", "2"),
        ("ComputerName", "GONE"),
        ("SerialNo", "SN-2"),
        ("Removed", "true"),
    ];
    let run2 = uuid::Uuid::new_v4().to_string();
    import_inventory(&emu, &token, &run2, &[removed, unknown]).await;
    let computers = emu.records("cmdb_ci_computer", "").await;
    assert_eq!(
        computers.len(),
        1,
        "nothing created for an unknown removed computer"
    );
    assert_eq!(computers[0]["install_status"], "7");
    let vms = emu.records("cmdb_ci_vm_instance", "").await;
    assert_eq!(vms.len(), 1);
    assert_eq!(vms[0]["install_status"], "7");
    emu.stop().await;
}

#[tokio::test]
async fn source_of_truth_properties_take_effect_for_the_next_transaction() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    set_property(&emu, "x_fls_flexera_fnms.sot.add_inventories", "false").await;
    let pc = |name: &'static str| {
        vec![
            ("ComputerID", "1"),
            ("ComputerName", name),
            ("SerialNo", "SN-1"),
        ]
    };
    import_inventory(&emu, &token, INVENTORY_RUN, &[pc("A")]).await;
    assert!(emu.records("cmdb_ci_computer", "").await.is_empty());
    set_property(&emu, "x_fls_flexera_fnms.sot.add_inventories", "true").await;
    set_property(&emu, "x_fls_flexera_fnms.sot.update_inventories", "false").await;
    import_inventory(&emu, &token, &uuid::Uuid::new_v4().to_string(), &[pc("A")]).await;
    import_inventory(&emu, &token, &uuid::Uuid::new_v4().to_string(), &[pc("B")]).await;
    let computers = emu.records("cmdb_ci_computer", "").await;
    assert_eq!(computers.len(), 1);
    assert_eq!(computers[0]["name"], "A", "updates disabled");
    set_property(&emu, "x_fls_flexera_fnms.sot.add_contracts", "false").await;
    golden(&emu, &token, "contract_export", CONTRACT_RUN, false).await;
    assert!(emu.records("ast_contract", "").await.is_empty());
    emu.stop().await;
}

/// The application staging rows in the order they were processed: by their transaction's
/// number, then by row.
async fn staging_rows_in_order(emu: &Emulator) -> Vec<Value> {
    let transactions: Vec<String> = emu
        .records("x_fls_flexera_fnms_import_transaction", "ORDERBYnumber")
        .await
        .iter()
        .map(|t| t["sys_id"].as_str().unwrap_or("?").to_owned())
        .collect();
    let mut rows: Vec<(usize, i64, Value)> = emu
        .records("x_fls_flexera_fnms_application_import", "")
        .await
        .into_iter()
        .map(|r| {
            let t = r["import_transaction"]["value"].as_str().unwrap_or("?");
            let segment = transactions.iter().position(|id| id == t);
            let row = r["sys_import_row"].as_str().and_then(|v| v.parse().ok());
            (segment.unwrap_or(99), row.unwrap_or(-1), r)
        })
        .collect();
    rows.sort_by_key(|(segment, row, _)| (*segment, *row));
    rows.into_iter().map(|(_, _, r)| r).collect()
}

/// An `<Applications>` document: (computer id, application id) per record.
fn applications_xml(records: &[(&str, &str)]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Applications>\n");
    for (computer, app) in records {
        xml.push_str(&format!(
            "  <Application><ComputerID>{computer}</ComputerID><ApplicationID>{app}</ApplicationID>\
             <DisplayName>App {app}</DisplayName><Publisher>P</Publisher><Version>1</Version>\
             </Application>\n"
        ));
    }
    xml.push_str("</Applications>\n");
    xml
}

/// Sends segment `number` of the application run: (computer id, application id) per record.
async fn send_applications(
    emu: &Emulator,
    token: &str,
    number: i64,
    last: bool,
    records: &[(&str, &str)],
) {
    let tid = uuid::Uuid::new_v4().to_string();
    let xml = applications_xml(records);
    let body = segment(
        &tid,
        "application_export",
        APPLICATION_RUN,
        number,
        last,
        &xml,
        records.len() as i64,
    );
    let r = emu.fnms(token, &body).await;
    assert_eq!(r["returnCode"], 0, "{r}");
}

/// The engine asks once whether a computer has any installation and, when none has, inserts
/// the rest of its rows without looking each up; a row repeating one it inserted must still
/// find that record, in the same segment and in the next.
#[tokio::test]
async fn installations_of_a_computer_without_any_are_inserted_once_each() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    golden(&emu, &token, "inventory_export", "", true).await;
    let segments: [&[(&str, &str)]; 2] = [
        &[("1", "901"), ("1", "902"), ("1", "901"), ("2", "901")],
        &[("1", "903"), ("1", "902"), ("2", "904")],
    ];
    for (n, records) in segments.iter().enumerate() {
        send_applications(&emu, &token, n as i64 + 1, n == 1, records).await;
    }
    emu.wait_run(&token, APPLICATION_RUN).await;
    let installs = emu.records("cmdb_sam_sw_install", "").await;
    let mut pairs: Vec<String> = installs
        .iter()
        .map(|i| format!("{}/{}", i["installed_on"]["value"], i["display_name"]))
        .collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(
        installs.len(),
        5,
        "one per computer and application: {pairs:?}"
    );
    assert_eq!(pairs.len(), 5, "{pairs:?}");
    let rows = staging_rows_in_order(&emu).await;
    let states: Vec<&str> = (rows.iter())
        .map(|r| r["sys_import_state"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        states,
        [
            "inserted", "inserted", "ignored", "inserted", "inserted", "ignored", "inserted"
        ]
    );
    emu.stop().await;
}

/// Installations are written several to a statement and held back until then: a row
/// repeating one still held back, one already written, or one of a computer whose
/// installations were asked about since, still finds its record, and every record lands with
/// its own values.
#[tokio::test]
async fn installations_held_back_for_a_batch_are_found_and_land_with_their_own_values() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    golden(&emu, &token, "inventory_export", "", true).await;
    let apps: Vec<String> = (0..40).map(|i| format!("{}", 1000 + i)).collect();
    let mut records: Vec<(&str, &str)> = apps.iter().map(|a| ("1", a.as_str())).collect();
    // Repeats: within the first batch, after it was written, and after another computer.
    records.insert(10, ("1", "1003"));
    records.insert(30, ("1", "1019"));
    records.extend(apps[..5].iter().map(|a| ("2", a.as_str())));
    records.push(("1", "1001"));
    records.push(("2", "1004"));
    let repeats = [10, 30, 47, 48];
    send_applications(&emu, &token, 1, true, &records).await;
    emu.wait_run(&token, APPLICATION_RUN).await;
    let computers = emu.records("cmdb_ci_computer", "").await;
    let computer_of = |id: &str| {
        (computers.iter())
            .find(|c| c["sys_id"] == id)
            .and_then(|c| c["x_fls_flexera_fnms_flexera_unique_id"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let mut landed: Vec<(String, String)> = emu
        .records("cmdb_sam_sw_install", "")
        .await
        .iter()
        .map(|i| {
            let on = computer_of(i["installed_on"]["value"].as_str().unwrap_or_default());
            (on, i["display_name"].as_str().unwrap_or("?").to_owned())
        })
        .collect();
    landed.sort();
    let mut expected: Vec<(String, String)> = (records.iter())
        .map(|(c, a)| (c.to_string(), format!("App {a}")))
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(expected.len(), 45);
    assert_eq!(landed, expected, "one record per computer and application");
    let rows = staging_rows_in_order(&emu).await;
    assert_eq!(rows.len(), records.len());
    for (i, row) in rows.iter().enumerate() {
        let state = if repeats.contains(&i) {
            "ignored"
        } else {
            "inserted"
        };
        assert_eq!(
            row["sys_import_state"], state,
            "row {i}: {}",
            row["sys_import_state_comment"]
        );
        assert!(
            !row["sys_target_sys_id"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "row {i}"
        );
    }
    emu.stop().await;
}

/// A row that leaves a model unchanged lets later rows with the same source values be
/// "ignored" without comparing fields; a row with other values, the next segment after an
/// edit through the Table API, and a second edit within the same values must still update it.
#[tokio::test]
async fn a_model_left_unchanged_is_still_updated_by_other_values_or_after_an_edit() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    golden(&emu, &token, "inventory_export", "", true).await;
    let xml = |records: &[(&str, &str)]| {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Applications>\n");
        for (computer, name) in records {
            xml.push_str(&format!(
                "  <Application><ComputerID>{computer}</ComputerID><ApplicationID>905</ApplicationID>\
                 <DisplayName>{name}</DisplayName><Publisher>P</Publisher><Version>1</Version>\
                 </Application>\n"
            ));
        }
        xml + "</Applications>\n"
    };
    let model_comment = |states: &[&str]| -> Vec<String> {
        states
            .iter()
            .map(|s| format!("FNMS Application -> Software Model: {s}"))
            .collect()
    };
    let send = |n: i64, last: bool, records: Vec<(&'static str, &'static str)>| {
        let (emu, token) = (&emu, &token);
        async move {
            let body = segment(
                &uuid::Uuid::new_v4().to_string(),
                "application_export",
                APPLICATION_RUN,
                n,
                last,
                &xml(&records),
                records.len() as i64,
            );
            let r = emu.fnms(token, &body).await;
            assert_eq!(r["returnCode"], 0, "{r}");
            // Each segment processed before the next is sent (and before any edit).
            emu.wait_finished(token, APPLICATION_RUN, n).await;
        }
    };
    let model_name = || async {
        let models = emu
            .records(
                "cmdb_software_product_model",
                "x_fls_flexera_fnms_application_id=905",
            )
            .await;
        assert_eq!(models.len(), 1, "{models:?}");
        models[0]["name"].as_str().unwrap_or("?").to_owned()
    };
    send(
        1,
        false,
        vec![("1", "A"), ("2", "A"), ("1", "B"), ("2", "B")],
    )
    .await;
    assert_eq!(
        model_name().await,
        "B",
        "other values in the same segment update"
    );
    set(
        &emu,
        "cmdb_software_product_model",
        "x_fls_flexera_fnms_application_id=905",
        json!({"name": "Edited"}),
    )
    .await;
    send(2, false, vec![("1", "B"), ("2", "B")]).await;
    assert_eq!(
        model_name().await,
        "B",
        "the next segment after an edit updates"
    );
    send(3, true, vec![("1", "B"), ("2", "A"), ("1", "B")]).await;
    assert_eq!(model_name().await, "B", "back to B after A");
    emu.wait_run(&token, APPLICATION_RUN).await;
    let rows = staging_rows_in_order(&emu).await;
    // The Software Model map's note, the first of each row's comment.
    let comments: Vec<String> = (rows.iter())
        .map(|r| r["sys_import_state_comment"].as_str().unwrap_or("?"))
        .map(|c| c.split("; ").next().unwrap_or("?").to_owned())
        .collect();
    let unchanged = "ignored (no field values changed)";
    assert_eq!(
        comments,
        model_comment(&[
            "inserted", unchanged, "updated", unchanged, // segment 1
            "updated", unchanged, // segment 2, after the edit
            unchanged, "updated", "updated", // segment 3
        ])
    );
    emu.stop().await;
}

/// The sys_id a reference field holds, as the Table API shows it.
fn reference_of(record: &Value, field: &str) -> String {
    (record[field]["value"].as_str())
        .or_else(|| record[field].as_str())
        .unwrap_or("?")
        .to_owned()
}

/// An installation's models are the records the model maps found, updated or inserted for
/// its row (the engine hands them on instead of looking them up again): a model inserted by
/// the row, one found in another case of its application id, one edited by the row, and,
/// where two models share an application id, the one the model map updated.
#[tokio::test]
async fn an_installation_points_at_the_models_its_own_row_found_or_made() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    golden(&emu, &token, "inventory_export", "", true).await;
    let model =
        |app: &str, name: &str| json!({"x_fls_flexera_fnms_application_id": app, "name": name});
    let upper = create(&emu, "cmdb_software_product_model", &model("ABC-7", "Old")).await;
    let first = create(&emu, "cmdb_software_product_model", &model("908", "First")).await;
    let second = create(&emu, "cmdb_software_product_model", &model("908", "Second")).await;
    let records = [
        ("1", "907"),
        ("2", "907"),
        ("1", "abc-7"),
        ("2", "908"),
        ("1", "908"),
    ];
    let body = segment(
        &uuid::Uuid::new_v4().to_string(),
        "application_export",
        APPLICATION_RUN,
        1,
        true,
        &applications_xml(&records),
        records.len() as i64,
    );
    assert_eq!(emu.fnms(&token, &body).await["returnCode"], 0);
    emu.wait_run(&token, APPLICATION_RUN).await;

    let models = emu.records("cmdb_software_product_model", "").await;
    let updated: Vec<&Value> = (models.iter())
        .filter(|m| m["x_fls_flexera_fnms_application_id"] == "908" && m["name"] == "App 908")
        .collect();
    assert_eq!(
        updated.len(),
        1,
        "one of the two 908 models updated: {models:?}"
    );
    let updated_908 = updated[0]["sys_id"].as_str().unwrap_or("?");
    assert!([first.as_str(), second.as_str()].contains(&updated_908));
    let inserted_907 = (models.iter())
        .find(|m| m["x_fls_flexera_fnms_application_id"] == "907")
        .and_then(|m| m["sys_id"].as_str())
        .expect("the 907 model inserted");
    let discovery = emu.records("cmdb_sam_sw_discovery_model", "").await;
    let installs = emu.records("cmdb_sam_sw_install", "").await;
    assert_eq!(installs.len(), records.len(), "{installs:?}");
    for i in &installs {
        let app = i["display_name"]
            .as_str()
            .unwrap_or("?")
            .trim_start_matches("App ");
        let expected = match app {
            "907" => inserted_907,
            "abc-7" => upper.as_str(),
            "908" => updated_908,
            other => panic!("unexpected installation of {other}"),
        };
        assert_eq!(reference_of(i, "software_model"), expected, "{i}");
        let discovery_model = (discovery.iter())
            .find(|d| d["sys_id"].as_str() == Some(reference_of(i, "discovery_model").as_str()))
            .unwrap_or_else(|| panic!("no discovery model for {i}"));
        let same_app = discovery_model["x_fls_flexera_fnms_application_id"]
            .as_str()
            .is_some_and(|a| a.eq_ignore_ascii_case(app));
        assert!(same_app, "{discovery_model} for {i}");
        assert_eq!(
            reference_of(discovery_model, "model"),
            expected,
            "{discovery_model}"
        );
    }
    emu.stop().await;
}
