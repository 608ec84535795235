//! `conformance parity --url A --url B`: the same scenarios against two targets, and what
//! differs between them — outcome, exit codes, Import Run and Transaction states, counts and
//! table snapshots (the way LocalStack proves itself against AWS). The scenarios' own
//! expectations are not the point here; the two targets' agreement is.

use std::collections::BTreeSet;

use crate::runner::{Outcome, RunOptions, Status, run_scenario};
use crate::scenario::Scenario;
use crate::target::TargetSpec;

/// One difference between the two targets for one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub scenario: String,
    pub aspect: String,
    pub a: String,
    pub b: String,
}

/// Per scenario: its two outcomes and their differences.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub a: Outcome,
    pub b: Outcome,
    pub differences: Vec<Difference>,
}

/// Runs each scenario on `a` then on `b` (one at a time: each target is reset before every
/// scenario when `reset` is set, so scenarios cannot share it).
pub async fn run(
    scenarios: &[Scenario],
    base: &RunOptions,
    urls: [&str; 2],
    reset: bool,
) -> Vec<Comparison> {
    let mut comparisons = Vec::new();
    for scenario in scenarios {
        let mut outcomes = Vec::new();
        for url in urls {
            let mut options = base.clone();
            options.target = TargetSpec::Remote {
                url: url.to_owned(),
                reset,
            };
            outcomes.push(run_scenario(scenario, &options).await);
        }
        let b = outcomes.pop();
        let a = outcomes.pop();
        if let (Some(a), Some(b)) = (a, b) {
            let differences = compare(&a, &b);
            comparisons.push(Comparison { a, b, differences });
        }
    }
    comparisons
}

fn status_word(status: &Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Pending(_) => "pending",
        Status::Skipped(_) => "skipped",
    }
}

/// Every aspect either target observed, where the two disagree.
pub fn compare(a: &Outcome, b: &Outcome) -> Vec<Difference> {
    let mut differences = Vec::new();
    let mut push = |aspect: &str, x: &str, y: &str| {
        if x != y {
            differences.push(Difference {
                scenario: a.name.clone(),
                aspect: aspect.to_owned(),
                a: x.to_owned(),
                b: y.to_owned(),
            });
        }
    };
    push("outcome", status_word(&a.status), status_word(&b.status));
    let aspects: BTreeSet<&String> = a.observed.keys().chain(b.observed.keys()).collect();
    for aspect in aspects {
        let get = |o: &Outcome| {
            o.observed
                .get(aspect)
                .cloned()
                .unwrap_or_else(|| "<not observed>".into())
        };
        push(aspect, &get(a), &get(b));
    }
    differences
}

/// The report: one line per scenario, then each difference (snapshots as line diffs).
pub fn render(comparisons: &[Comparison], urls: [&str; 2]) -> String {
    let mut out = format!("parity: A = {}, B = {}\n", urls[0], urls[1]);
    for c in comparisons {
        if c.differences.is_empty() {
            out.push_str(&format!(
                "SAME {} ({})\n",
                c.a.name,
                status_word(&c.a.status)
            ));
            continue;
        }
        out.push_str(&format!("DIFF {}\n", c.a.name));
        for d in &c.differences {
            if d.a.contains('\n') || d.b.contains('\n') {
                out.push_str(&format!("     {}:\n", d.aspect));
                let (old, new): (Vec<&str>, Vec<&str>) =
                    (d.a.lines().collect(), d.b.lines().collect());
                for line in old.iter().filter(|l| !new.contains(l)) {
                    out.push_str(&format!("       A {line}\n"));
                }
                for line in new.iter().filter(|l| !old.contains(l)) {
                    out.push_str(&format!("       B {line}\n"));
                }
            } else {
                out.push_str(&format!("     {}: A {} | B {}\n", d.aspect, d.a, d.b));
            }
        }
    }
    let differing = comparisons
        .iter()
        .filter(|c| !c.differences.is_empty())
        .count();
    out.push_str(&format!(
        "parity: {} scenarios, {} the same, {differing} different\n",
        comparisons.len(),
        comparisons.len() - differing
    ));
    out
}
