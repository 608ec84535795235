//! The segment writer against the golden payloads (wire-protocol §6).

use crate::helpers::{Scratch, golden_script, read_fixture};
use exporter::testing::segments;

#[track_caller]
fn check_golden(data_type: &str, payload: &str) {
    let got = segments(&golden_script(), data_type, 500).expect("segments");
    let expected = read_fixture(&format!("wire/payloads/{payload}"));
    assert_eq!(got.len(), 1, "{data_type}: one segment");
    let (xml, _, last) = &got[0];
    assert!(last, "{data_type}: the only segment is the last");
    assert_eq!(xml, &expected, "{data_type}: byte-identical to {payload}");
}

#[test]
fn inventory_matches_golden_payload() {
    check_golden("inventory", "inventory.xml");
}

#[test]
fn contracts_match_golden_payload() {
    check_golden("contract", "contracts.xml");
}

#[test]
fn applications_match_golden_payload() {
    check_golden("application", "applications.xml");
}

/// The record lines of a segment: everything between the root's opening and closing lines.
fn inner(xml: &str) -> String {
    let lines: Vec<&str> = xml.lines().collect();
    assert!(lines.len() >= 3, "{xml}");
    lines[2..lines.len() - 1].join("\n")
}

#[test]
fn inventory_in_segments_of_two_concatenates_to_the_golden_payload() {
    let got = segments(&golden_script(), "inventory", 2).expect("segments");
    let counts: Vec<(usize, bool)> = got.iter().map(|(_, n, last)| (*n, *last)).collect();
    assert_eq!(counts, vec![(2, false), (2, true)]);
    let joined: Vec<String> = got.iter().map(|(xml, _, _)| inner(xml)).collect();
    assert_eq!(
        joined.join("\n"),
        inner(&read_fixture("wire/payloads/inventory.xml"))
    );
    for (xml, _, _) in &got {
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Inventories>\n"));
        assert!(xml.ends_with("</Inventories>\n"));
    }
}

#[test]
fn segment_boundaries_never_leave_an_empty_trailer() {
    let exact = segments(&golden_script(), "inventory", 4).expect("segments");
    assert_eq!(exact.len(), 1);
    let ones = segments(&golden_script(), "inventory", 1).expect("segments");
    let flags: Vec<bool> = ones.iter().map(|(_, _, last)| *last).collect();
    assert_eq!(flags, vec![false, false, false, true]);
}

#[test]
fn a_data_type_without_rows_is_one_empty_last_segment() {
    let scratch = Scratch::new("");
    let db = scratch.golden_db("DELETE FROM ContractComplianceComputer; DELETE FROM Contract;");
    let got = segments(&db, "contract", 500).expect("segments");
    assert_eq!(
        got,
        vec![(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Contracts>\n</Contracts>\n".to_owned(),
            0,
            true
        )]
    );
}

#[test]
fn a_contract_covering_no_computer_is_one_record_without_computer_id() {
    let scratch = Scratch::new("");
    let db = scratch.golden_db(
        "INSERT INTO Contract (ContractID, ContractNo, ContractName, ContractType, Value, UpdatedDate)
         VALUES (2, 'CTR-2', 'Support & <care>', 'Support', 99.5, '2026-11-02 00:00:00');",
    );
    let got = segments(&db, "contract", 500).expect("segments");
    let xml = &got[0].0;
    assert_eq!(got[0].1, 3);
    let last = xml.split("<Contract>").last().expect("third record");
    assert_eq!(
        last,
        "\n    <ContractID>2</ContractID>\n    <ContractNo>CTR-2</ContractNo>\n    \
         <ContractName>Support &amp; &lt;care&gt;</ContractName>\n    \
         <ContractType>Support</ContractType>\n    <Value>99.50</Value>\n  \
         </Contract>\n</Contracts>\n"
    );
}
