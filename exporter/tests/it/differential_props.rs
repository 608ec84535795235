//! Property: a full export, then random changes in FNMS, then a differential export leaves the
//! instance with the same records as one full export of the changed data would.
//!
//! The instance is modelled as the wire contract says it applies records: hardware inventory
//! keyed by ComputerID (a `<Removed>` record retires the computer, and with it the records of
//! its installations); a contract's records replace that contract's earlier records;
//! installations keyed by (ComputerID, ApplicationID). The end-to-end version against the
//! emulator's tables lives in the conformance crate.

use std::collections::BTreeMap;

use exporter::testing::{Record, export_records};
use proptest::prelude::*;

use crate::helpers::Scratch;

/// When the full export succeeded; the golden estate changed before it.
const FULL_AT: &str = "2026-11-30 00:00:00";
/// When the random changes happen.
const CHANGED_AT: &str = "2026-12-01 00:00:00";
const DIFFERENTIAL_AT: &str = "2026-12-02 00:00:00";
const FINAL_AT: &str = "2026-12-03 00:00:00";

/// More than the golden estate holds: a contract covering nothing, a third application.
const EXTRA: &str = "
INSERT INTO Contract (ContractID, ContractNo, ContractName, ContractType, UpdatedDate)
    VALUES (2, 'CTR-2', 'Desktop support', 'Support', '2026-11-01 00:00:00');
INSERT INTO Publisher (PublisherID, Name) VALUES (3, 'Adobe');
INSERT INTO SoftwareTitle VALUES
    (3, 'Adobe Acrobat Pro', 'Acrobat', 3, '24', NULL, '2026-10-01 00:00:00');";

#[derive(Debug, Clone)]
enum Change {
    RenameComputer(i64, String),
    RemoveComputer(i64),
    AddCoverage(i64, i64),
    RemoveCoverage(i64, i64),
    RenameTitle(i64, String),
    RenamePublisher(i64, String),
    NewVersion(i64, String),
    NewEdition(i64, Option<String>),
    Install(i64, i64),
    UpdateContract(i64, String),
}

fn change() -> impl Strategy<Value = Change> {
    let computer = 1i64..=4;
    let contract = 1i64..=2;
    let title = 1i64..=3;
    let name = "[A-Za-z][A-Za-z0-9 &<-]{0,12}";
    prop_oneof![
        (computer.clone(), name).prop_map(|(c, n)| Change::RenameComputer(c, n)),
        computer.clone().prop_map(Change::RemoveComputer),
        (contract.clone(), computer.clone()).prop_map(|(k, c)| Change::AddCoverage(k, c)),
        (contract.clone(), computer.clone()).prop_map(|(k, c)| Change::RemoveCoverage(k, c)),
        (title.clone(), name).prop_map(|(t, n)| Change::RenameTitle(t, n)),
        (1i64..=3, name).prop_map(|(p, n)| Change::RenamePublisher(p, n)),
        (title.clone(), "[0-9.]{1,5}").prop_map(|(t, v)| Change::NewVersion(t, v)),
        (title.clone(), proptest::option::of("[A-Z][a-z]{2,8}"))
            .prop_map(|(t, e)| Change::NewEdition(t, e)),
        (computer, title).prop_map(|(c, t)| Change::Install(c, t)),
        (contract, name).prop_map(|(k, n)| Change::UpdateContract(k, n)),
    ]
}

/// Applies a change as FNMS would: rows it edits get `UpdatedDate` = now, except where FNMS
/// does not touch the exported row (coverage lives in its own table; a rename is on the title).
fn apply(conn: &rusqlite::Connection, change: &Change) {
    let at = CHANGED_AT;
    let result = match change {
        Change::RenameComputer(id, name) => conn.execute(
            "UPDATE ComplianceComputer SET ComputerName = ?2, UpdatedDate = ?3
             WHERE ComplianceComputerID = ?1",
            rusqlite::params![id, name, at],
        ),
        Change::RemoveComputer(id) => conn
            .execute_batch(&format!(
                "DELETE FROM InstalledSoftware WHERE ComplianceComputerID = {id};
                 DELETE FROM ContractComplianceComputer WHERE ComplianceComputerID = {id};
                 UPDATE ComplianceComputer SET HostComplianceComputerID = NULL,
                        UpdatedDate = '{at}' WHERE HostComplianceComputerID = {id};
                 DELETE FROM ComplianceComputer WHERE ComplianceComputerID = {id};"
            ))
            .map(|()| 1),
        Change::AddCoverage(contract, computer) => conn.execute(
            "INSERT OR IGNORE INTO ContractComplianceComputer
             SELECT ?1, ComplianceComputerID FROM ComplianceComputer
             WHERE ComplianceComputerID = ?2",
            [contract, computer],
        ),
        Change::RemoveCoverage(contract, computer) => conn.execute(
            "DELETE FROM ContractComplianceComputer
             WHERE ContractID = ?1 AND ComplianceComputerID = ?2",
            [contract, computer],
        ),
        Change::RenameTitle(id, name) => conn.execute(
            "UPDATE SoftwareTitle SET FullName = ?2 WHERE SoftwareTitleID = ?1",
            rusqlite::params![id, name],
        ),
        Change::RenamePublisher(id, name) => conn.execute(
            "UPDATE Publisher SET Name = ?2 WHERE PublisherID = ?1
             AND NOT EXISTS (SELECT 1 FROM Publisher WHERE Name = ?2)",
            rusqlite::params![id, name],
        ),
        Change::NewVersion(id, version) => conn.execute(
            "UPDATE SoftwareTitle SET Version = ?2 WHERE SoftwareTitleID = ?1",
            rusqlite::params![id, version],
        ),
        Change::NewEdition(id, edition) => conn.execute(
            "UPDATE SoftwareTitle SET Edition = ?2 WHERE SoftwareTitleID = ?1",
            rusqlite::params![id, edition],
        ),
        Change::Install(computer, title) => conn.execute(
            "INSERT OR IGNORE INTO InstalledSoftware
             SELECT ComplianceComputerID, ?2, '2026-11-30', ?3 FROM ComplianceComputer
             WHERE ComplianceComputerID = ?1",
            rusqlite::params![computer, title, at],
        ),
        Change::UpdateContract(id, name) => conn.execute(
            "UPDATE Contract SET ContractName = ?2, UpdatedDate = ?3 WHERE ContractID = ?1",
            rusqlite::params![id, name, at],
        ),
    };
    result.unwrap_or_else(|e| panic!("{change:?}: {e}"));
}

fn field<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

/// The instance's records, as the model applies them.
#[derive(Debug, Default, PartialEq)]
struct Target {
    computers: BTreeMap<String, Record>,
    contracts: BTreeMap<String, Vec<Record>>,
    installs: BTreeMap<(String, String), Record>,
}

impl Target {
    fn apply(&mut self, inventory: Vec<Record>, contracts: Vec<Record>, installs: Vec<Record>) {
        for record in inventory {
            let id = field(&record, "ComputerID").unwrap_or_default().to_owned();
            if field(&record, "Removed") == Some("true") {
                self.computers.remove(&id);
                self.installs.retain(|(computer, _), _| *computer != id);
            } else {
                self.computers.insert(id, record);
            }
        }
        let mut received: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for record in contracts {
            let id = field(&record, "ContractID").unwrap_or_default().to_owned();
            received.entry(id).or_default().push(record);
        }
        self.contracts.extend(received);
        for record in installs {
            let key = (
                field(&record, "ComputerID").unwrap_or_default().to_owned(),
                field(&record, "ApplicationID")
                    .unwrap_or_default()
                    .to_owned(),
            );
            self.installs.insert(key, record);
        }
    }
}

fn export_all(db: &std::path::Path, since: Option<&str>, at: &str) -> [Vec<Record>; 3] {
    ["inventory", "contract", "application"]
        .map(|dt| export_records(db, dt, since, at).unwrap_or_else(|e| panic!("{dt}: {e}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::helpers::proptest_cases(24), ..ProptestConfig::default() })]

    #[test]
    fn full_then_changes_then_differential_equals_a_full_export_of_the_changed_data(
        changes in proptest::collection::vec(change(), 0..8)
    ) {
        let scratch = Scratch::new("");
        let db = scratch.golden_db(EXTRA);
        let mut target = Target::default();
        let [inventory, contracts, installs] = export_all(&db, None, FULL_AT);
        target.apply(inventory, contracts, installs);

        let conn = rusqlite::Connection::open(&db).expect("open");
        for change in &changes {
            apply(&conn, change);
        }
        drop(conn);

        let [inventory, contracts, installs] = export_all(&db, Some(FULL_AT), DIFFERENTIAL_AT);
        target.apply(inventory, contracts, installs);

        let mut full = Target::default();
        let [inventory, contracts, installs] = export_all(&db, None, FINAL_AT);
        full.apply(inventory, contracts, installs);
        prop_assert_eq!(target, full);
    }
}
