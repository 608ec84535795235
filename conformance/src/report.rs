//! Reporting outcomes: a line per scenario for people, JUnit XML for CI.

use std::io::Write;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::runner::Outcome;

/// `PASS name (0.42 s)` or `FAIL name` followed by the reasons and the exporter's log.
pub fn write_human(out: &mut dyn Write, outcome: &Outcome) -> std::io::Result<()> {
    let secs = outcome.duration.as_secs_f64();
    if outcome.passed() {
        writeln!(out, "PASS {} ({secs:.2} s)", outcome.name)
    } else {
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

/// The closing line, in the plain `N passed, N failed` form CI tools read.
pub fn summary(outcomes: &[Outcome]) -> String {
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    format!(
        "conformance: {passed} passed, {} failed",
        outcomes.len() - passed
    )
}

pub fn junit(outcomes: &[Outcome]) -> Result<String, quick_junit::SerializeError> {
    let mut suite = TestSuite::new("scenarios");
    for outcome in outcomes {
        let status = if outcome.passed() {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(outcome.failures.join("; "));
            status
        };
        let mut case = TestCase::new(outcome.name.as_str(), status);
        case.set_classname("conformance").set_time(outcome.duration);
        if !outcome.passed() {
            case.set_system_out(outcome.exporter_log.as_str());
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("conformance");
    report.add_test_suite(suite);
    report.to_string()
}
