//! Declarative end-to-end scenarios for the FNMS → ServiceNow export.
//!
//! A scenario (`fixtures/scenarios/*.toml`, see [`Scenario`]) names an FNMS data set, the
//! instance set-up, the exporter's options and the expected exit code, log lines and table
//! contents. [`run_scenario`] executes one against a [`TargetSpec`]: the embedded
//! `snow-emulator` (fresh, in-process, port 0) or any instance URL. [`demo`] is the README's
//! main job.
//!
//! This crate is the only place where the exporter and the emulator meet in code; they meet
//! over HTTP even here.

pub mod bench;
#[cfg(test)]
mod browser_tests;
mod controls;
pub mod demo;
#[cfg(test)]
mod e2e_tests;
mod exporter_run;
pub mod generate;
mod instance;
pub mod parity;
pub mod record;
pub mod report;
mod runner;
mod scenario;
pub mod snapshot;
pub mod suite;
mod target;

pub use exporter_run::{ExporterKind, ExporterOutcome, run_exporter};
pub use instance::{Count, Record, TableApi, access_token, refresh_token};
pub use runner::{Outcome, RunOptions, Status, default_fixtures_dir, run_scenario};
pub use scenario::{Scenario, ScenarioError, discover};
pub use target::{Credentials, Instance, TargetSpec};

/// Exit codes of the `conformance` binary.
pub mod exit_codes {
    /// Every scenario passed (or the demo's export succeeded).
    pub const SUCCESS: i32 = 0;
    /// At least one scenario failed (or the demo's export failed).
    pub const FAILED: i32 = 1;
    /// Bad command line, unreadable scenario, or the harness itself could not start.
    pub const USAGE: i32 = 2;
}

/// The golden wire files are tested by each side on its own; these tests keep them consistent
/// with each other, so the two sides are held to one contract.
#[cfg(test)]
mod golden_fixture_tests {
    use std::collections::BTreeSet;

    fn read(path: &str) -> String {
        let full = crate::default_fixtures_dir().join("wire").join(path);
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
    }

    #[test]
    fn request_data_is_the_golden_payload_and_run_ids_are_distinct() {
        let mut runs = BTreeSet::new();
        for (request, payload, record) in [
            ("inventory_export", "inventory", "<Inventory>"),
            ("contract_export", "contracts", "<Contract>"),
            ("application_export", "applications", "<Application>"),
        ] {
            let body: serde_json::Value =
                serde_json::from_str(&read(&format!("requests/{request}.json"))).expect("JSON");
            assert_eq!(
                body["data"].as_str(),
                Some(read(&format!("payloads/{payload}.xml")).as_str()),
                "{request}"
            );
            let records = body["data"]
                .as_str()
                .unwrap_or_default()
                .matches(record)
                .count();
            assert_eq!(
                body["recordCount"].as_u64(),
                Some(records as u64),
                "{request}"
            );
            assert!(
                runs.insert(body["importRunId"].to_string()),
                "{request}: import run id reused"
            );
        }
    }
}
