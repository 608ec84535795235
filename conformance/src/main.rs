//! `conformance`: run scenarios, or the end-to-end demo. Thin over the library.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use conformance::{ExporterKind, RunOptions, Scenario, TargetSpec, exit_codes, report};

/// Declarative end-to-end scenarios for the FNMS → ServiceNow export.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Exit status: 0 all passed (demo: export succeeded); 1 a scenario failed (demo: export failed); 2 usage or set-up error.\n\nEnvironment: SNOW_ADMIN_PASSWORD, SNOW_INTEGRATION_PASSWORD, SNOW_OAUTH_CLIENT_ID, SNOW_OAUTH_CLIENT_SECRET configure the embedded emulator and the exporter alike (documented loopback defaults otherwise); SNOW_ADMIN_USER and SNOW_INTEGRATION_USER name the users on a remote instance."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios and report PASS/FAIL for each.
    Run {
        /// Scenario files; default: every *.toml under --scenarios.
        files: Vec<PathBuf>,
        /// Directory searched when no files are given.
        #[arg(long, value_name = "DIR")]
        scenarios: Option<PathBuf>,
        /// Run against this instance instead of the embedded emulator.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// With --url: POST /_emulator/reset before each scenario (emulators only).
        #[arg(long, requires = "url")]
        reset: bool,
        /// Run this exporter binary instead of the in-process exporter.
        #[arg(long, value_name = "PATH")]
        exporter_bin: Option<PathBuf>,
        /// Write a JUnit XML report here.
        #[arg(long, value_name = "PATH")]
        junit: Option<PathBuf>,
    },
    /// The main job: emulator + bundled sample + exporter, end to end, showing what landed where.
    Demo {
        /// Where the embedded emulator listens.
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
        listen: String,
        /// Keep the emulator running after the export, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        /// Run this exporter binary instead of the in-process exporter.
        #[arg(long, value_name = "PATH")]
        exporter_bin: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("conformance: cannot start the async runtime: {e}");
            std::process::exit(exit_codes::USAGE);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Run {
                files,
                scenarios,
                url,
                reset,
                exporter_bin,
                junit,
            } => run(files, scenarios, url, reset, exporter_bin, junit).await,
            Command::Demo {
                listen,
                keep_running,
                exporter_bin,
            } => {
                let options = conformance::demo::DemoOptions {
                    listen,
                    keep_running,
                    exporter: exporter_kind(exporter_bin),
                };
                match conformance::demo::run(options, &mut std::io::stdout()).await {
                    Ok(0) => exit_codes::SUCCESS,
                    Ok(_) => exit_codes::FAILED,
                    Err(e) => {
                        eprintln!("conformance demo: {e:#}");
                        exit_codes::USAGE
                    }
                }
            }
        }
    });
    std::process::exit(code);
}

fn exporter_kind(bin: Option<PathBuf>) -> ExporterKind {
    bin.map_or(ExporterKind::InProcess, ExporterKind::Binary)
}

async fn run(
    files: Vec<PathBuf>,
    dir: Option<PathBuf>,
    url: Option<String>,
    reset: bool,
    exporter_bin: Option<PathBuf>,
    junit: Option<PathBuf>,
) -> i32 {
    let mut options = RunOptions::embedded();
    options.exporter = exporter_kind(exporter_bin);
    if let Some(url) = url {
        options.target = TargetSpec::Remote { url, reset };
    }
    let files = if files.is_empty() {
        let dir = dir.unwrap_or_else(|| options.fixtures.join("scenarios"));
        match conformance::discover(&dir) {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "conformance: cannot list scenarios in {}: {e}",
                    dir.display()
                );
                return exit_codes::USAGE;
            }
        }
    } else {
        files
    };
    let mut scenarios = Vec::new();
    for file in &files {
        match Scenario::load(file) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("conformance: {e}");
                return exit_codes::USAGE;
            }
        }
    }
    let mut outcomes = Vec::new();
    let mut stdout = std::io::stdout();
    for scenario in &scenarios {
        let outcome = conformance::run_scenario(scenario, &options).await;
        let _ = report::write_human(&mut stdout, &outcome);
        outcomes.push(outcome);
    }
    let _ = writeln!(stdout, "{}", report::summary(&outcomes));
    if let Some(path) = junit {
        let written = report::junit(&outcomes)
            .map_err(|e| e.to_string())
            .and_then(|xml| std::fs::write(&path, xml).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("conformance: cannot write {}: {e}", path.display());
            return exit_codes::USAGE;
        }
    }
    if outcomes.iter().all(|o| o.passed()) {
        exit_codes::SUCCESS
    } else {
        exit_codes::FAILED
    }
}
