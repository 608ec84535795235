//! One test per scenario file under `fixtures/scenarios/`, each against a fresh embedded
//! emulator with the in-process exporter. Set `SNOW_CONFORMANCE_URL` to run them against a
//! running instance instead (it is reset before each scenario, so use an emulator).

use std::path::Path;

use conformance::{RunOptions, Scenario, TargetSpec, report};

fn scenario(path: &Path) -> datatest_stable::Result<()> {
    let scenario = Scenario::load(path)?;
    let mut options = RunOptions::embedded();
    if let Ok(url) = std::env::var("SNOW_CONFORMANCE_URL") {
        options.target = TargetSpec::Remote { url, reset: true };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(conformance::run_scenario(&scenario, &options));
    if outcome.passed() {
        return Ok(());
    }
    let mut text = Vec::new();
    report::write_human(&mut text, &outcome)?;
    Err(String::from_utf8_lossy(&text).into_owned().into())
}

datatest_stable::harness! {
    { test = scenario, root = "../fixtures/scenarios", pattern = r"\.toml$" },
}
