//! The inventory transform maps: golden data into the CMDB, CI classes, idempotency.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::check::{Emulator, fixture_json, inventory_xml, segment};

const GOLDEN_RUN: &str = "11111111-1111-4111-8111-111111111111";

async fn import(
    emu: &Emulator,
    token: &str,
    tid: &str,
    run: &str,
    records: &[Vec<(&str, &str)>],
) -> Value {
    let r = emu
        .fnms(
            token,
            &segment(
                tid,
                "inventory_export",
                run,
                1,
                true,
                &inventory_xml(records),
                records.len() as i64,
            ),
        )
        .await;
    assert_eq!(r["returnCode"], 0, "{r}");
    emu.wait_run(token, run).await
}

fn by_name(records: Vec<Value>) -> BTreeMap<String, Value> {
    records
        .into_iter()
        .map(|r| (r["name"].as_str().unwrap_or_default().to_owned(), r))
        .collect()
}

#[tokio::test]
async fn golden_inventory_lands_in_the_cmdb() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    emu.fnms(&token, &fixture_json("requests/inventory_export.json"))
        .await;
    emu.wait_run(&token, GOLDEN_RUN).await;

    let models = emu.records("cmdb_model", "").await;
    assert_eq!(models.len(), 4);
    let model_ids: BTreeMap<String, String> = models
        .iter()
        .map(|m| {
            (
                m["sys_id"].as_str().unwrap_or_default().to_owned(),
                m["model_number"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let latitude = models
        .iter()
        .find(|m| m["name"] == "Latitude 7440")
        .expect("model");
    assert_eq!(latitude["model_number"], "Latitude 7440");
    assert_eq!(latitude["type"], "Laptop");
    assert_eq!(latitude["cmdb_model_category"], "Computer");
    assert_eq!(latitude["manufacturer"], "Dell Inc.");

    let computers = by_name(emu.records("cmdb_ci_computer", "").await);
    let expected = [
        (
            "NYC-LT-0001",
            "cmdb_ci_computer",
            "16384",
            "false",
            "Latitude 7440",
            "1",
        ),
        (
            "LON-ESX-01",
            "cmdb_ci_esx_server",
            "524288",
            "false",
            "ProLiant DL380 Gen10",
            "2",
        ),
        (
            "LON-APP-07",
            "cmdb_ci_win_server",
            "8192",
            "true",
            "VMware Virtual Platform",
            "3",
        ),
        (
            "lon-db-02",
            "cmdb_ci_linux_server",
            "262144",
            "false",
            "PowerEdge R650",
            "4",
        ),
    ];
    assert_eq!(computers.len(), 4);
    for (name, class, ram, virt, model, id) in expected {
        let c = &computers[name];
        assert_eq!(c["sys_class_name"], class, "{name}");
        assert_eq!(c["ram"], ram, "{name}");
        assert_eq!(c["virtual"], virt, "{name}");
        assert_eq!(c["x_fls_flexera_fnms_flexera_unique_id"], id, "{name}");
        let model_ref = c["model_id"]["value"].as_str().expect("model reference");
        assert_eq!(model_ids[model_ref], model, "{name}");
    }
    let pc = &computers["NYC-LT-0001"];
    assert_eq!(pc["serial_number"], "5CG3301ABC");
    assert_eq!(pc["os"], "Microsoft Windows 11 Enterprise");
    assert_eq!(pc["os_domain"], "corp.example.com");
    assert_eq!(pc["disk_space"], "477");
    assert_eq!(pc["cpu_count"], "1");
    assert_eq!(pc["cpu_core_count"], "12");
    assert_eq!(pc["cpu_speed"], "1800");
    assert_eq!(pc["cpu_type"], "13th Gen Intel(R) Core(TM) i7-1365U");
    assert_eq!(pc["ip_address"], "10.20.1.15");
    assert_eq!(pc["mac_address"], "3C:52:82:11:22:33");
    assert_eq!(pc["chassis_type"], "Laptop");
    assert_eq!(pc["last_discovered"], "2026-11-20 08:15:00");

    let vms = emu.records("cmdb_ci_vm_instance", "").await;
    assert_eq!(vms.len(), 1);
    let vm = &vms[0];
    assert_eq!(vm["name"], "LON-APP-07");
    assert_eq!(vm["memory"], "8192");
    assert_eq!(vm["cpus"], "2");
    assert_eq!(vm["disks_size"], "100");
    assert_eq!(vm["vm_inst_id"], "VMware-42 1a 2b 3c 4d 5e 6f 70");
    assert_eq!(vm["x_fls_flexera_fnms_flexera_unique_id"], "3");

    let staged = emu
        .records(
            "x_fls_flexera_fnms_inventory_import",
            "ORDERBYsys_import_row",
        )
        .await;
    assert_eq!(staged.len(), 4);
    let t = &emu
        .records("x_fls_flexera_fnms_import_transaction", "")
        .await[0];
    for (i, s) in staged.iter().enumerate() {
        assert_eq!(s["sys_import_row"], i.to_string());
        assert_eq!(s["sys_import_state"], "inserted");
        assert_eq!(s["import_transaction"]["value"], t["sys_id"]);
        assert!(
            !s["sys_target_sys_id"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
    }
    assert_eq!(staged[0]["u_totalmemory"], "17179869184");
    assert_eq!(staged[0]["u_modelno"], "Latitude 7440");
    assert_eq!(staged[2]["sys_target_table"], "cmdb_ci_vm_instance");
    assert_eq!(
        t["message"],
        "4 rows: 4 inserted, 0 updated, 0 ignored, 0 skipped, 0 errors"
    );
    emu.stop().await;
}

#[tokio::test]
async fn reimport_updates_and_never_duplicates() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let golden = fixture_json("requests/inventory_export.json");
    emu.fnms(&token, &golden).await;
    emu.wait_run(&token, GOLDEN_RUN).await;
    let before = by_name(emu.records("cmdb_ci", "").await);

    // Same data, new transaction and run: nothing changes.
    let mut again = golden.clone();
    again["transactionId"] = json!("22222222-0000-4000-8000-000000000001");
    again["importRunId"] = json!("run-2");
    emu.fnms(&token, &again).await;
    let status = emu.wait_run(&token, "run-2").await;
    assert_eq!(status["state"], "succeeded");
    let after = by_name(emu.records("cmdb_ci", "").await);
    assert_eq!(
        before, after,
        "a re-import of the same data changes nothing"
    );
    assert_eq!(emu.records("cmdb_model", "").await.len(), 4);
    let staged = emu
        .records(
            "x_fls_flexera_fnms_inventory_import",
            "sys_import_state=ignored",
        )
        .await;
    assert_eq!(staged.len(), 4);

    // Changed data updates in place; empty source values keep the target's (copy_empty_fields
    // = false); the class follows the operating system.
    let changed = vec![vec![
        ("ComputerID", "4"),
        ("ComputerName", "lon-db-02"),
        ("DeviceType", "Computer"),
        ("OperatingSystem", "IBM AIX 7.3"),
        ("TotalMemory", "549755813888"),
        ("SerialNo", ""),
    ]];
    import(&emu, &token, "t-changed", "run-3", &changed).await;
    let now = by_name(emu.records("cmdb_ci_computer", "").await);
    assert_eq!(now.len(), 4);
    let db = &now["lon-db-02"];
    assert_eq!(db["sys_id"], before["lon-db-02"]["sys_id"]);
    assert_eq!(db["ram"], "524288");
    assert_eq!(db["serial_number"], "J8K2L93");
    assert_eq!(db["sys_class_name"], "cmdb_ci_aix_server");
    assert_eq!(db["sys_mod_count"], "1");
    let row = &emu
        .records(
            "x_fls_flexera_fnms_inventory_import",
            "sys_import_state=updated",
        )
        .await;
    assert_eq!(row.len(), 1);
    emu.stop().await;
}

/// Imports one laptop of model `model` as transaction and run `n`; the models after it.
async fn import_laptop_model(emu: &Emulator, token: &str, n: u32, model: &str) -> Vec<Value> {
    let record = vec![vec![
        ("ComputerID", "7"),
        ("ComputerName", "ams-lt-07"),
        ("DeviceType", "Computer"),
        ("ModelNo", model),
        ("Manufacturer", "Dell Inc."),
        ("ChassisType", "Notebook"),
    ]];
    import(emu, token, &format!("t-{n}"), &format!("run-{n}"), &record).await;
    emu.records("cmdb_model", "").await
}

/// An update names only the columns whose value changes (so unchanged indexed columns keep
/// their index entries), but a coalesce value found in another case is a change: the record
/// takes the new spelling.
#[tokio::test]
async fn an_update_writes_each_changed_value_a_coalesce_value_in_another_case_included() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let before = import_laptop_model(&emu, &token, 1, "Latitude 7440").await;
    assert_eq!(before.len(), 1, "{before:?}");
    let after = import_laptop_model(&emu, &token, 2, "LATITUDE 7440").await;
    assert_eq!(
        after.len(),
        1,
        "found by its model number in another case: {after:?}"
    );
    let (before, after) = (&before[0], &after[0]);
    assert_eq!(after["sys_id"], before["sys_id"]);
    assert_eq!(after["model_number"], "LATITUDE 7440");
    assert_eq!(after["name"], "LATITUDE 7440");
    assert_eq!(after["sys_mod_count"], "1");
    for unchanged in [
        "type",
        "cmdb_model_category",
        "manufacturer",
        "sys_created_on",
    ] {
        assert_eq!(after[unchanged], before[unchanged], "{unchanged}");
    }
    // The same values again: nothing is written.
    let again = import_laptop_model(&emu, &token, 3, "LATITUDE 7440").await;
    assert_eq!(again[0]["sys_mod_count"], "1");
    emu.stop().await;
}

#[tokio::test]
async fn ci_class_rules() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let cases = [
        (
            "VM Host",
            "Microsoft Windows Server 2019 Datacenter",
            "cmdb_ci_hyper_v_server",
        ),
        ("VM Host", "VMware ESXi 7.0", "cmdb_ci_esx_server"),
        (
            "VM Host",
            "Ubuntu 22.04 (KVM)",
            "cmdb_ci_virtualization_server",
        ),
        ("Computer", "AIX 7.2", "cmdb_ci_aix_server"),
        (
            "Virtual Machine",
            "Oracle Solaris 11.4",
            "cmdb_ci_solaris_server",
        ),
        ("Computer", "Sun OS 5.10", "cmdb_ci_solaris_server"),
        ("Computer", "Mac OS X Server 10.6", "cmdb_ci_osx_server"),
        ("Computer", "Mac OS X 14", "cmdb_ci_computer"),
        ("Mobile Device", "HP-UX 11i v3", "cmdb_ci_hpux_server"),
        ("Computer", "FreeBSD Unix 13", "cmdb_ci_unix_server"),
        (
            "Computer",
            "Microsoft Windows Server 2016",
            "cmdb_ci_win_server",
        ),
        ("Computer", "Microsoft Windows 10 Pro", "cmdb_ci_computer"),
        (
            "Virtual Machine",
            "SUSE Linux Enterprise 15",
            "cmdb_ci_linux_server",
        ),
        ("", "Windows Server 2022", "cmdb_ci_computer"),
    ];
    let ids: Vec<String> = (1..=cases.len()).map(|i| format!("c{i}")).collect();
    let records: Vec<Vec<(&str, &str)>> = cases
        .iter()
        .zip(&ids)
        .map(|((device, os, _), id)| {
            let mut r = vec![
                ("ComputerID", id.as_str()),
                ("ComputerName", id.as_str()),
                ("OperatingSystem", *os),
            ];
            if !device.is_empty() {
                r.push(("DeviceType", *device));
            }
            r
        })
        .collect();
    import(&emu, &token, "t1", "run-1", &records).await;
    let computers = by_name(emu.records("cmdb_ci_computer", "").await);
    for ((device, os, class), id) in cases.iter().zip(&ids) {
        assert_eq!(
            computers[id.as_str()]["sys_class_name"],
            *class,
            "{device} / {os}"
        );
    }
    // Only the two virtual machines became VM instances.
    assert_eq!(emu.records("cmdb_ci_vm_instance", "").await.len(), 2);
    emu.stop().await;
}

#[tokio::test]
async fn rows_without_coalesce_values_or_with_bad_values() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let records = vec![
        vec![("DeviceType", "Computer")],
        vec![
            ("ComputerID", "9"),
            ("ComputerName", "bad-ram"),
            ("TotalMemory", "lots"),
        ],
        vec![
            ("ComputerID", "10"),
            ("ComputerName", "fine"),
            ("NumberOfCores", "8"),
        ],
    ];
    let status = import(&emu, &token, "t1", "run-1", &records).await;
    assert_eq!(status["state"], "succeeded");
    let staged = emu
        .records(
            "x_fls_flexera_fnms_inventory_import",
            "ORDERBYsys_import_row",
        )
        .await;
    assert_eq!(staged[0]["sys_import_state"], "skipped");
    assert_eq!(staged[1]["sys_import_state"], "error");
    assert!(
        staged[1]["sys_row_error"]
            .as_str()
            .unwrap_or_default()
            .contains("lots")
    );
    assert_eq!(staged[2]["sys_import_state"], "inserted");
    assert_eq!(emu.records("cmdb_ci_computer", "").await.len(), 1);
    let t = &emu
        .records("x_fls_flexera_fnms_import_transaction", "")
        .await[0];
    assert_eq!(
        t["message"],
        "3 rows: 1 inserted, 0 updated, 0 ignored, 1 skipped, 1 errors"
    );
    emu.stop().await;
}

#[tokio::test]
async fn source_of_truth_properties_stop_inserts_and_updates() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let prop = &emu
        .records(
            "sys_properties",
            "name=x_fls_flexera_fnms.sot.add_inventories",
        )
        .await[0];
    let path = format!(
        "/api/now/table/sys_properties/{}",
        prop["sys_id"].as_str().expect("id")
    );
    emu.send(Method::PATCH, &path, &json!({"value": "false"}))
        .await;
    import(
        &emu,
        &token,
        "t1",
        "run-1",
        &[vec![("ComputerID", "1"), ("ComputerName", "a")]],
    )
    .await;
    assert!(emu.records("cmdb_ci", "").await.is_empty());
    let staged = &emu.records("x_fls_flexera_fnms_inventory_import", "").await[0];
    assert_eq!(staged["sys_import_state"], "ignored");
    emu.send(Method::PATCH, &path, &json!({"value": "true"}))
        .await;
    import(
        &emu,
        &token,
        "t2",
        "run-2",
        &[vec![("ComputerID", "1"), ("ComputerName", "a")]],
    )
    .await;
    assert_eq!(emu.records("cmdb_ci", "").await.len(), 1);
    emu.stop().await;
}

/// A segment's staging rows are written several at a time when the segment was read at the
/// intake (all but the last few) and one at a time otherwise: 37 rows take two full batches
/// and five single rows. Each row keeps its own values, outcome and place, whichever way it
/// was written.
#[tokio::test]
async fn staging_rows_keep_their_order_and_values_however_they_are_batched() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let names: Vec<String> = (0..37).map(|i| format!("batch-{i:02}")).collect();
    let ids: Vec<String> = (0..37).map(|i| format!("{}", 500 + i)).collect();
    let expected = |i: usize| match i {
        i if i % 7 == 3 => "skipped",
        i if i % 11 == 5 => "error",
        _ => "inserted",
    };
    let records: Vec<Vec<(&str, &str)>> = (0..37)
        .map(|i| {
            let mut r = vec![
                ("ComputerID", ids[i].as_str()),
                ("ComputerName", names[i].as_str()),
            ];
            match expected(i) {
                // No coalesce value at all: nothing to match a computer by.
                "skipped" => r = vec![("DeviceType", "Computer")],
                "error" => r.push(("TotalMemory", "lots")),
                _ => {}
            }
            r
        })
        .collect();
    let status = import(&emu, &token, "t-batches", "run-batches", &records).await;
    assert_eq!(status["state"], "succeeded");
    let t = &emu
        .records("x_fls_flexera_fnms_import_transaction", "")
        .await[0];
    let staged = emu
        .records(
            "x_fls_flexera_fnms_inventory_import",
            "ORDERBYsys_import_row",
        )
        .await;
    assert_eq!(staged.len(), 37);
    let mut sys_ids = std::collections::BTreeSet::new();
    for (i, s) in staged.iter().enumerate() {
        assert_eq!(s["sys_import_row"], i.to_string());
        let name = if expected(i) == "skipped" {
            ""
        } else {
            names[i].as_str()
        };
        assert_eq!(s["u_computername"], name, "row {i}");
        assert_eq!(s["sys_import_state"], expected(i), "row {i}");
        assert_eq!(s["sys_class_name"], "x_fls_flexera_fnms_inventory_import");
        assert_eq!(s["sys_created_by"], s["sys_updated_by"]);
        assert!(!s["sys_created_by"].as_str().unwrap_or_default().is_empty());
        assert_eq!(s["import_transaction"]["value"], t["sys_id"]);
        let target = s["sys_target_sys_id"].as_str().unwrap_or_default();
        assert_eq!(target.is_empty(), expected(i) != "inserted", "row {i}");
        let error = s["sys_row_error"].as_str().unwrap_or_default();
        assert_eq!(error.contains("lots"), expected(i) == "error", "row {i}");
        assert!(sys_ids.insert(s["sys_id"].as_str().unwrap_or_default().to_owned()));
    }
    let computers = by_name(emu.records("cmdb_ci_computer", "").await);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            computers.contains_key(name),
            expected(i) == "inserted",
            "{name}"
        );
    }
    assert_eq!(
        t["message"],
        "37 rows: 29 inserted, 0 updated, 0 ignored, 5 skipped, 3 errors"
    );
    emu.stop().await;
}
