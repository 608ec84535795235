//! The scenario model: one TOML file under `fixtures/scenarios/` is one end-to-end case.
//!
//! A scenario is data (Architecture Invariant): it names an FNMS data set, the instance set-up,
//! the exporter's options and what must be true afterwards. Nothing in it says *how* to reach
//! the instance, so the same file runs against the embedded emulator or a real URL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Defaults to the file stem.
    #[serde(default)]
    pub name: String,
    pub description: String,
    /// Which documented step or rule this scenario holds the implementation to (for readers).
    #[serde(default)]
    pub covers: Vec<String>,
    /// Areas this scenario belongs to (`preflight`, `inventory`, `differential`, …);
    /// `conformance run TAG` selects by them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Set while the behaviour is being built elsewhere: the runner reports the scenario as
    /// pending with this reason instead of running it (`--include-pending` runs it anyway).
    #[serde(default)]
    pub pending: Option<String>,
    /// Seed of the fault plan (`{"seed": …}` of `POST /_emulator/faults`).
    #[serde(default)]
    pub fault_seed: Option<u64>,
    /// Faults sent verbatim as JSON to `POST /_emulator/faults` before the exporter runs.
    #[serde(default)]
    pub fault: Vec<toml::Table>,
    #[serde(default)]
    pub dataset: Dataset,
    #[serde(default)]
    pub instance: InstanceSetup,
    /// Earlier exporter runs on the same FNMS database and instance, in order (re-export,
    /// differential export, baseline after a failure).
    #[serde(default)]
    pub before: Vec<EarlierRun>,
    #[serde(default)]
    pub exporter: ExporterRun,
    pub expect: Expect,
}

/// One exporter run before the scenario's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlierRun {
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub config: toml::Table,
    /// The exit code this run must end with.
    pub exit_code: i32,
    /// SQL run on the FNMS database after this run (the changes the next run exports).
    #[serde(default)]
    pub then_sql: Option<String>,
    /// Instance records changed after this run (e.g. a property set back).
    #[serde(default)]
    pub then_updates: Vec<SetupUpdate>,
    /// Seconds the instance clock advances after this run (emulator control).
    #[serde(default)]
    pub then_advance_seconds: Option<i64>,
}

/// The FNMS operations database the exporter reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// A data set under `fixtures/fnms/` (`sample`, `golden`), loaded after `schema.sql`.
    #[serde(default = "default_fnms")]
    pub fnms: String,
    /// Instead of `fnms`: a database path handed to the exporter as is (e.g. one that does not
    /// exist, to test the database check).
    #[serde(default)]
    pub path: Option<String>,
    /// SQL run on the database after the data set loads (e.g. to revoke the licence).
    #[serde(default)]
    pub sql: Option<String>,
}

fn default_fnms() -> String {
    "sample".to_owned()
}

impl Default for Dataset {
    fn default() -> Self {
        Dataset {
            fnms: default_fnms(),
            path: None,
            sql: None,
        }
    }
}

/// Records created on the instance, through the Table API, before the exporter runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSetup {
    #[serde(default)]
    pub records: Vec<SetupRecord>,
    /// Existing records changed before the run (e.g. the Scheduled Data Import made inactive).
    #[serde(default)]
    pub updates: Vec<SetupUpdate>,
    /// Integration properties (`sys_properties` by name) set before the run.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Plugins (`sys_plugins` by id) and their `active` value (`active` / `inactive`).
    #[serde(default)]
    pub plugins: BTreeMap<String, String>,
    /// Instance clock set before the run (`POST /_emulator/clock` `{"set": …}`; emulator
    /// control).
    #[serde(default)]
    pub clock: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupUpdate {
    pub table: String,
    /// Encoded query selecting the records to change (at least one must match).
    pub query: String,
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupRecord {
    pub table: String,
    pub values: BTreeMap<String, String>,
}

/// How the exporter is invoked. The runner always supplies `-url`, `-user`, `--db` and
/// `--config`; `-token` too unless `token` is given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterRun {
    /// Further command-line arguments, as an operator would type them.
    #[serde(default)]
    pub args: Vec<String>,
    /// A literal refresh token instead of one obtained from the instance.
    #[serde(default)]
    pub token: Option<String>,
    /// Exporter configuration-file keys (merged over the runner's fast test timings).
    #[serde(default)]
    pub config: toml::Table,
}

/// What must hold after the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub exit_code: i32,
    /// Fragments that must each appear in the exporter's log.
    #[serde(default)]
    pub log_contains: Vec<String>,
    /// Fragments that must not appear.
    #[serde(default)]
    pub log_excludes: Vec<String>,
    /// Fragments that must appear in this order (each after the previous one's first match).
    #[serde(default)]
    pub log_in_order: Vec<String>,
    /// Row counts, through the Table API.
    #[serde(default)]
    pub tables: Vec<TableCount>,
    /// Field values of the records a query selects (each selected record must match).
    #[serde(default)]
    pub records: Vec<RecordValues>,
    /// Every Import Run as `import_type:state` (order-free: compared sorted).
    #[serde(default)]
    pub import_runs: Option<Vec<String>>,
    /// Import Transactions counted by `import_type:state`; combinations not listed must not
    /// occur.
    #[serde(default)]
    pub transactions: Option<BTreeMap<String, u64>>,
    /// Whole tables compared with a snapshot file (`fixtures/scenarios/snapshots/`), sys_ids,
    /// timestamps and host names redacted.
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub table: String,
    #[serde(default)]
    pub query: String,
    /// The columns shown, in this order.
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableCount {
    pub table: String,
    /// Encoded query (`sysparm_query`); empty selects every row.
    #[serde(default)]
    pub query: String,
    pub count: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordValues {
    pub table: String,
    pub query: String,
    /// How many records the query must select (default 1).
    #[serde(default = "one")]
    pub count: u64,
    pub values: BTreeMap<String, String>,
}

fn one() -> u64 {
    1
}

/// A scenario file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid scenario {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
}

impl Scenario {
    /// Why this scenario cannot run against an instance without the emulator's controls.
    pub fn needs_controls(&self) -> Option<&'static str> {
        if !self.fault.is_empty() {
            Some("needs /_emulator/faults (fault injection)")
        } else if self.instance.clock.is_some()
            || self.before.iter().any(|r| r.then_advance_seconds.is_some())
        {
            Some("needs /_emulator/clock (instance clock)")
        } else {
            None
        }
    }

    /// Selected by `NAME` or `TAG` on the command line.
    pub fn matches(&self, selector: &str) -> bool {
        self.name == selector || self.tags.iter().any(|t| t == selector)
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Scenario::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario =
            toml::from_str(text).map_err(|source| ScenarioError::Parse {
                path: path.to_owned(),
                source,
            })?;
        if scenario.name.is_empty() {
            scenario.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        Ok(scenario)
    }
}

/// Every `*.toml` under `dir`, sorted, recursively.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected_with_the_path() {
        let err = Scenario::parse(
            Path::new("x.toml"),
            "description = 'd'\n[expect]\nexit_code = 0\nexit_kode = 1\n",
        )
        .expect_err("typo must not pass");
        let text = err.to_string();
        assert!(
            text.contains("x.toml") && text.contains("exit_kode"),
            "{text}"
        );
    }

    #[test]
    fn name_defaults_to_file_stem_and_dataset_to_sample() {
        let s = Scenario::parse(
            Path::new("dir/my-case.toml"),
            "description = 'd'\n[expect]\nexit_code = 1\n",
        )
        .expect("valid");
        assert_eq!(s.name, "my-case");
        assert_eq!(s.dataset.fnms, "sample");
        assert_eq!(s.expect.exit_code, 1);
    }
}
