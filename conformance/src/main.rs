//! `conformance`: run scenarios, or the end-to-end demo. Thin over the library.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use conformance::{
    ExporterKind, RunOptions, TargetSpec, bench, exit_codes, generate, report, suite,
};

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

/// Which scenarios, and how to run them (shared by `run` and `parity`).
#[derive(clap::Args)]
struct SuiteArgs {
    /// Scenario names, tags or files; default: every scenario under --scenarios.
    selectors: Vec<String>,
    /// Directory searched for scenarios.
    #[arg(long, value_name = "DIR")]
    scenarios: Option<PathBuf>,
    /// Scenarios run at once (each on its own instance).
    #[arg(short = 'j', long, default_value_t = 2)]
    jobs: usize,
    /// Run scenarios marked pending too.
    #[arg(long)]
    include_pending: bool,
    /// Run this exporter binary instead of the in-process exporter.
    #[arg(long, value_name = "PATH")]
    exporter_bin: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios (all, or those named, tagged or given as files) and report each.
    Run {
        #[command(flatten)]
        suite: SuiteArgs,
        /// Run against this instance instead of the embedded emulator.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// With --url: the instance is an emulator; POST /_emulator/reset before each scenario
        /// and use its controls (faults, clock). Without it, scenarios needing them are skipped.
        #[arg(long, requires = "url")]
        reset: bool,
        /// Write a JUnit XML report here.
        #[arg(long, value_name = "PATH")]
        junit: Option<PathBuf>,
        /// Write snapshot files instead of comparing with them.
        #[arg(long)]
        update_snapshots: bool,
    },
    /// List scenarios: name, tags, one line each.
    List {
        /// Names, tags or files, as for `run`.
        selectors: Vec<String>,
        /// Directory searched for scenarios.
        #[arg(long, value_name = "DIR")]
        scenarios: Option<PathBuf>,
    },
    /// Run the same scenarios against two targets and print where they differ.
    Parity {
        #[command(flatten)]
        suite: SuiteArgs,
        /// The two targets, A then B (give --url twice).
        #[arg(long = "url", value_name = "URL", num_args = 1, required = true)]
        urls: Vec<String>,
        /// Both targets are emulators: reset before each scenario and use their controls.
        #[arg(long)]
        reset: bool,
    },
    /// A recording proxy: forward every request to --upstream and write the traffic as
    /// golden fixtures (fixtures/wire layout), secrets redacted.
    Record {
        /// The instance requests are forwarded to.
        #[arg(long, value_name = "URL")]
        upstream: String,
        /// Where the proxy listens; point the exporter's -url here.
        #[arg(long, default_value = "127.0.0.1:8089", value_name = "ADDR")]
        listen: String,
        /// Output directory.
        #[arg(long, default_value = "target/recording", value_name = "DIR")]
        out: PathBuf,
    },
    /// Write an FNMS operations database of realistic shape (deterministic under --seed).
    Generate {
        /// The SQLite file to write (replaced).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Share of the full estate (100,000 computers, 5,000 contracts, 20,009 links,
        /// 20,000 applications, 2,000,000 installations).
        #[arg(long, default_value_t = 0.01)]
        scale: f64,
        #[arg(long)]
        computers: Option<u64>,
        #[arg(long)]
        contracts: Option<u64>,
        #[arg(long)]
        contract_links: Option<u64>,
        #[arg(long)]
        applications: Option<u64>,
        #[arg(long)]
        installations: Option<u64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Instead of generating: copy --base and change this percentage of its rows.
        #[arg(long, value_name = "PERCENT", requires = "base")]
        change: Option<f64>,
        #[arg(long, value_name = "PATH")]
        base: Option<PathBuf>,
    },
    /// Generate (or take) an estate, export it fully and 1 % differentially through the
    /// emulator, and print time, throughput, peak RSS, bytes written and the SQLite floor.
    Bench {
        #[arg(long, default_value_t = 0.01)]
        scale: f64,
        /// Use this FNMS database instead of generating one.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the figures as JSON here.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Where snow-emulator and fnmp_servicenow_export are (default: beside this program).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Keep the work files (databases) here.
        #[arg(long, value_name = "DIR")]
        work: Option<PathBuf>,
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
                suite,
                url,
                reset,
                junit,
                update_snapshots,
            } => run(suite, url, reset, junit, update_snapshots).await,
            Command::List {
                selectors,
                scenarios,
            } => list(&selectors, scenarios),
            Command::Parity { suite, urls, reset } => parity(suite, urls, reset).await,
            Command::Record {
                upstream,
                listen,
                out,
            } => record(&upstream, &listen, &out).await,
            Command::Generate {
                out,
                scale,
                computers,
                contracts,
                contract_links,
                applications,
                installations,
                seed,
                change,
                base,
            } => {
                let mut estate = generate::Estate::scaled(scale);
                estate.computers = computers.unwrap_or(estate.computers);
                estate.contracts = contracts.unwrap_or(estate.contracts);
                estate.contract_links = contract_links.unwrap_or(estate.contract_links);
                estate.applications = applications.unwrap_or(estate.applications);
                estate.installations = installations.unwrap_or(estate.installations);
                generate_cmd(out, estate, seed, change.zip(base))
            }
            Command::Bench {
                scale,
                db,
                seed,
                json,
                bin_dir,
                work,
            } => {
                let options = bench::BenchOptions {
                    scale,
                    db,
                    seed,
                    bin_dir,
                    work,
                };
                bench_cmd(options, json).await
            }
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

fn scenarios_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| conformance::default_fixtures_dir().join("scenarios"))
}

fn list(selectors: &[String], dir: Option<PathBuf>) -> i32 {
    match suite::select(&scenarios_dir(dir), selectors) {
        Ok(scenarios) => {
            for scenario in &scenarios {
                println!("{}", suite::list_line(scenario));
            }
            exit_codes::SUCCESS
        }
        Err(e) => {
            eprintln!("conformance: {e}");
            exit_codes::USAGE
        }
    }
}

async fn run(
    args: SuiteArgs,
    url: Option<String>,
    reset: bool,
    junit: Option<PathBuf>,
    update_snapshots: bool,
) -> i32 {
    let mut options = RunOptions::embedded();
    options.exporter = exporter_kind(args.exporter_bin);
    options.include_pending = args.include_pending;
    options.update_snapshots = update_snapshots;
    let mut jobs = args.jobs;
    if let Some(url) = url {
        options.target = TargetSpec::Remote { url, reset };
        // One shared instance: scenarios take turns.
        jobs = 1;
    }
    let scenarios = match suite::select(&scenarios_dir(args.scenarios), &args.selectors) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("conformance: {e}");
            return exit_codes::USAGE;
        }
    };
    let outcomes = suite::run_all(scenarios, &options, jobs, |outcome| {
        let _ = report::write_human(&mut std::io::stdout(), outcome);
    })
    .await;
    let mut stdout = std::io::stdout();
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

async fn parity(args: SuiteArgs, urls: Vec<String>, reset: bool) -> i32 {
    let [a, b] = urls.as_slice() else {
        eprintln!("conformance parity: give --url exactly twice (A and B)");
        return exit_codes::USAGE;
    };
    let scenarios = match suite::select(&scenarios_dir(args.scenarios), &args.selectors) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("conformance: {e}");
            return exit_codes::USAGE;
        }
    };
    let mut options = RunOptions::embedded();
    options.exporter = exporter_kind(args.exporter_bin);
    options.include_pending = args.include_pending;
    let comparisons = conformance::parity::run(&scenarios, &options, [a, b], reset).await;
    print!("{}", conformance::parity::render(&comparisons, [a, b]));
    if comparisons.iter().all(|c| c.differences.is_empty()) {
        exit_codes::SUCCESS
    } else {
        exit_codes::FAILED
    }
}

async fn record(upstream: &str, listen: &str, out: &std::path::Path) -> i32 {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("conformance record: cannot listen on {listen}: {e}");
            return exit_codes::USAGE;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        println!(
            "recording: http://{addr} → {upstream}, fixtures in {} (Ctrl-C to stop)",
            out.display()
        );
    }
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match conformance::record::serve(listener, upstream, out, stop).await {
        Ok(()) => exit_codes::SUCCESS,
        Err(e) => {
            eprintln!("conformance record: {e:#}");
            exit_codes::USAGE
        }
    }
}

fn generate_cmd(
    out: PathBuf,
    estate: generate::Estate,
    seed: u64,
    change: Option<(f64, PathBuf)>,
) -> i32 {
    let result = match change {
        Some((percent, base)) => generate::change(&base, &out, percent, seed)
            .map(|c| format!("changed {c:?} in {}", out.display())),
        None => generate::generate(&generate::GenerateOptions {
            out: out.clone(),
            estate,
            seed,
        })
        .map(|e| format!("wrote {e:?} to {}", out.display())),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            exit_codes::SUCCESS
        }
        Err(e) => {
            eprintln!("conformance generate: {e:#}");
            exit_codes::USAGE
        }
    }
}

async fn bench_cmd(options: bench::BenchOptions, json: Option<PathBuf>) -> i32 {
    let report = match bench::run(&options).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("conformance bench: {e:#}");
            return exit_codes::USAGE;
        }
    };
    println!("{}", bench::render(&report));
    if let Some(path) = json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(&path, text).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("conformance bench: cannot write {}: {e}", path.display());
            return exit_codes::USAGE;
        }
    }
    if report.complete {
        exit_codes::SUCCESS
    } else {
        exit_codes::FAILED
    }
}
