//! Reporting outcomes: a line per scenario for people, JUnit XML for CI.

use std::io::Write;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::runner::{Outcome, Status};

/// `PASS name (0.42 s)`, `PENDING name — reason`, `SKIP name — reason`, or `FAIL name`
/// followed by the reasons and the exporter's log.
pub fn write_human(out: &mut dyn Write, outcome: &Outcome) -> std::io::Result<()> {
    let secs = outcome.duration.as_secs_f64();
    match &outcome.status {
        Status::Passed => writeln!(out, "PASS {} ({secs:.2} s)", outcome.name),
        Status::Pending(reason) => writeln!(out, "PENDING {} — {reason}", outcome.name),
        Status::Skipped(reason) => writeln!(out, "SKIP {} — {reason}", outcome.name),
        Status::Failed => {
            writeln!(
                out,
                "FAIL {} ({secs:.2} s) — {}",
                outcome.name, outcome.description
            )?;
            for failure in &outcome.failures {
                writeln!(out, "     - {failure}")?;
            }
            writeln!(out, "     exporter log:")?;
            for line in outcome.exporter_log.lines() {
                writeln!(out, "     | {line}")?;
            }
            Ok(())
        }
    }
}

/// The closing line, in the plain `N passed, N failed` form CI tools read.
pub fn summary(outcomes: &[Outcome]) -> String {
    let count = |f: fn(&Status) -> bool| outcomes.iter().filter(|o| f(&o.status)).count();
    let total: f64 = outcomes.iter().map(|o| o.duration.as_secs_f64()).sum();
    format!(
        "conformance: {} passed, {} failed, {} pending, {} skipped ({total:.1} s of scenario time)",
        count(|s| *s == Status::Passed),
        count(|s| *s == Status::Failed),
        count(|s| matches!(s, Status::Pending(_))),
        count(|s| matches!(s, Status::Skipped(_))),
    )
}

pub fn junit(outcomes: &[Outcome]) -> Result<String, quick_junit::SerializeError> {
    let mut suite = TestSuite::new("scenarios");
    for outcome in outcomes {
        let status = match &outcome.status {
            Status::Passed => TestCaseStatus::success(),
            Status::Failed => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(outcome.failures.join("; "));
                status
            }
            Status::Pending(reason) | Status::Skipped(reason) => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(reason.as_str());
                status
            }
        };
        let mut case = TestCase::new(outcome.name.as_str(), status);
        case.set_classname("conformance").set_time(outcome.duration);
        if outcome.status == Status::Failed {
            case.set_system_out(outcome.exporter_log.as_str());
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("conformance");
    report.add_test_suite(suite);
    report.to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    fn outcome(name: &str, status: Status) -> Outcome {
        Outcome {
            name: name.into(),
            description: "d".into(),
            tags: vec![],
            failures: if status == Status::Failed {
                vec!["exit code: expected 0, got 1".into()]
            } else {
                vec![]
            },
            status,
            exporter_log: "log line".into(),
            duration: Duration::from_millis(10),
            observed: BTreeMap::new(),
        }
    }

    #[test]
    fn summary_and_junit_tell_pending_and_skipped_from_passed() {
        let outcomes = [
            outcome("a", Status::Passed),
            outcome("b", Status::Failed),
            outcome("c", Status::Pending("transforms".into())),
            outcome("d", Status::Skipped("needs faults".into())),
        ];
        let line = summary(&outcomes);
        assert!(
            line.starts_with("conformance: 1 passed, 1 failed, 1 pending, 1 skipped"),
            "{line}"
        );
        let xml = junit(&outcomes).expect("junit");
        assert!(xml.contains("tests=\"4\""), "{xml}");
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert_eq!(xml.matches("<skipped").count(), 2, "{xml}");
        let mut text = Vec::new();
        write_human(&mut text, &outcomes[2]).expect("write");
        assert_eq!(String::from_utf8_lossy(&text), "PENDING c — transforms\n");
    }
}
