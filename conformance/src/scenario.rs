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
    #[serde(default)]
    pub dataset: Dataset,
    #[serde(default)]
    pub instance: InstanceSetup,
    #[serde(default)]
    pub exporter: ExporterRun,
    pub expect: Expect,
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
