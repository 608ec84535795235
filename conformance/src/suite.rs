//! A suite: scenarios selected by name, tag or path, run in parallel, each on its own fresh
//! instance (the embedded emulator gives every scenario a new in-memory database).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::runner::{Outcome, RunOptions, run_scenario};
use crate::scenario::{Scenario, ScenarioError, discover};

/// Why a selection failed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("cannot list scenarios in {dir}: {source}")]
    List {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("no scenario is named or tagged {0:?} (see `conformance list`)")]
    NoMatch(String),
}

/// Every scenario under `dir`, or those a selector names: a path to a file, a scenario name,
/// or a tag. The order is the directory's, whatever the order of selectors.
pub fn select(dir: &Path, selectors: &[String]) -> Result<Vec<Scenario>, SelectError> {
    let mut chosen = Vec::new();
    let mut names = Vec::new();
    for selector in selectors {
        let path = Path::new(selector);
        if selector.ends_with(".toml") || path.is_file() {
            chosen.push(Scenario::load(path)?);
        } else {
            names.push(selector.as_str());
        }
    }
    if !names.is_empty() || selectors.is_empty() {
        let all = all_in(dir)?;
        for name in &names {
            if !all.iter().any(|s| s.matches(name)) {
                return Err(SelectError::NoMatch((*name).to_owned()));
            }
        }
        chosen.extend(
            all.into_iter()
                .filter(|s| names.is_empty() || names.iter().any(|n| s.matches(n))),
        );
    }
    Ok(chosen)
}

/// Every scenario under `dir`, loaded.
pub fn all_in(dir: &Path) -> Result<Vec<Scenario>, SelectError> {
    let files = discover(dir).map_err(|source| SelectError::List {
        dir: dir.to_owned(),
        source,
    })?;
    Ok(files
        .iter()
        .map(|f| Scenario::load(f))
        .collect::<Result<_, _>>()?)
}

/// Runs `scenarios` at most `jobs` at a time; `each` sees every outcome as it arrives. The
/// outcomes come back in the scenarios' order.
pub async fn run_all(
    scenarios: Vec<Scenario>,
    options: &RunOptions,
    jobs: usize,
    mut each: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let permits = Arc::new(Semaphore::new(jobs.max(1)));
    let mut set = JoinSet::new();
    let count = scenarios.len();
    for (index, scenario) in scenarios.into_iter().enumerate() {
        let options = options.clone();
        let permits = Arc::clone(&permits);
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (index, run_scenario(&scenario, &options).await)
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; count];
    let mut panics = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((index, outcome)) => {
                each(&outcome);
                outcomes[index] = Some(outcome);
            }
            Err(error) => panics.push(error.to_string()),
        }
    }
    let mut outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
    // A panic is a runner bug; it must still fail the suite.
    for (i, error) in panics.into_iter().enumerate() {
        let mut lost = Outcome::failed(&format!("panicked-{i}"), &error);
        lost.failures
            .push(format!("scenario task panicked: {error}"));
        each(&lost);
        outcomes.push(lost);
    }
    outcomes
}

/// One line per scenario: name, tags, and PENDING when marked so.
pub fn list_line(scenario: &Scenario) -> String {
    let pending = if scenario.pending.is_some() {
        "  [pending]"
    } else {
        ""
    };
    format!("{:<48} {}{pending}", scenario.name, scenario.tags.join(","))
}
