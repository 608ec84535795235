//! `conformance bench`: one end-to-end measurement of the export at a given scale.
//!
//! Method: the emulator and the exporter run as **child processes** (the release or debug
//! binaries next to this one), so each has its own peak RSS. Peak RSS is `VmHWM` from
//! `/proc/PID/status`: read once for the emulator while it is still running after both
//! exports; sampled every 10 ms for the exporter, keeping the last value seen before it exits.
//! Bytes written by the emulator are `write_bytes` of `/proc/PID/io` (what reached the block
//! layer, WAL and checkpoints included). The floor is the time to write the emulator's whole
//! final database (every table, payloads included) into a fresh SQLite file in one
//! transaction.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::generate::{self, Estate, GenerateOptions};
use crate::instance::{Count, TableApi, refresh_token};
use crate::target::{Credentials, Instance, TargetSpec};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub scale: f64,
    /// Use this FNMS database instead of generating one (it is copied, never changed).
    pub db: Option<PathBuf>,
    pub seed: u64,
    /// Where `snow-emulator` and `fnmp_servicenow_export` are; default: beside this program.
    pub bin_dir: Option<PathBuf>,
    /// Work directory (kept); default: a temporary one.
    pub work: Option<PathBuf>,
}

/// One export's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub records: u64,
    pub wall_secs: f64,
    pub records_per_sec: f64,
    pub exporter_peak_rss_kib: u64,
    /// CPU time (user + system) of the exporter process: with the emulator's, what the
    /// export asks of the machine's cores.
    pub exporter_cpu_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub estate: Estate,
    pub full: Phase,
    pub differential: Phase,
    pub emulator_peak_rss_kib: u64,
    pub emulator_bytes_written: u64,
    /// CPU time (user + system) the emulator spent over both exports: steadier than wall
    /// time on a shared machine, and what an export costs the instance.
    pub emulator_cpu_secs: f64,
    pub emulator_db_bytes: u64,
    pub floor_secs: f64,
    /// Full export wall time / floor.
    pub ratio_to_floor: f64,
    /// Every exported record landed in its staging table and every computer in the CMDB.
    pub complete: bool,
    pub completeness: Vec<String>,
}

/// Runs on the caller's (multi-thread) runtime; the generator and the child processes block
/// their thread, which is fine for a measurement that owns the machine.
pub async fn run(options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let temp = tempfile::tempdir()?;
    let work = options
        .work
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&work)?;
    let bins = Binaries::find(options.bin_dir.as_deref())?;
    let db = work.join("fnms.sqlite");
    let estate = match &options.db {
        Some(given) => {
            std::fs::copy(given, &db)
                .with_context(|| format!("cannot copy {}", given.display()))?;
            estate_of(&db)?
        }
        None => generate::generate(&GenerateOptions {
            out: db.clone(),
            estate: Estate::scaled(options.scale),
            seed: options.seed,
        })?,
    };
    let credentials = Credentials::from_env();
    let emulator_db = work.join("emulator.sqlite");
    // A fresh instance every time: a kept --work directory must not carry the last run's data.
    for suffix in ["", "-wal", "-shm"] {
        let stale = PathBuf::from(format!("{}{suffix}", emulator_db.display()));
        if stale.exists() {
            std::fs::remove_file(&stale)
                .with_context(|| format!("cannot remove {}", stale.display()))?;
        }
    }
    let mut emulator = Emulator::start(&bins.emulator, &emulator_db, &credentials)?;
    let result = measure(&bins, &emulator.url, &credentials, &db, &work, estate).await;
    let (emulator_peak_rss_kib, emulator_bytes_written, emulator_cpu_secs) = emulator.figures();
    emulator.stop();
    let (mut full, differential, completeness) = result?;
    let (floor_secs, emulator_db_bytes) = floor(&emulator_db, &work.join("floor.sqlite"))?;
    full.records_per_sec = full.records as f64 / full.wall_secs.max(1e-9);
    Ok(BenchReport {
        estate,
        ratio_to_floor: full.wall_secs / floor_secs.max(1e-9),
        full,
        differential,
        emulator_peak_rss_kib,
        emulator_bytes_written,
        emulator_cpu_secs,
        emulator_db_bytes,
        floor_secs,
        complete: completeness.is_empty(),
        completeness,
    })
}

/// Counts of an existing FNMS database.
fn estate_of(db: &Path) -> anyhow::Result<Estate> {
    let conn = rusqlite::Connection::open(db)?;
    let count = |t: &str| -> anyhow::Result<u64> {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?;
        Ok(n as u64)
    };
    Ok(Estate {
        computers: count("ComplianceComputer")?,
        contracts: count("Contract")?,
        contract_links: count("ContractComplianceComputer")?,
        applications: count("SoftwareTitle")?,
        installations: count("InstalledSoftware")?,
    })
}

pub(crate) struct Binaries {
    pub(crate) emulator: PathBuf,
    pub(crate) exporter: PathBuf,
}

impl Binaries {
    pub(crate) fn find(dir: Option<&Path>) -> anyhow::Result<Binaries> {
        let exe = std::env::current_exe()?;
        let mut dirs: Vec<PathBuf> = dir.map(Path::to_owned).into_iter().collect();
        if let Some(here) = exe.parent() {
            dirs.push(here.to_owned());
            // Test binaries live in target/<profile>/deps.
            if let Some(up) = here.parent() {
                dirs.push(up.to_owned());
            }
        }
        for d in &dirs {
            let emulator = d.join("snow-emulator");
            let exporter = d.join("fnmp_servicenow_export");
            if emulator.is_file() && exporter.is_file() {
                return Ok(Binaries { emulator, exporter });
            }
        }
        anyhow::bail!(
            "snow-emulator and fnmp_servicenow_export not found in {dirs:?}; build them first \
             (cargo build --release --workspace --bins) or pass --bin-dir"
        )
    }
}

/// The emulator as a child process on a free loopback port.
struct Emulator {
    child: Child,
    url: String,
}

impl Emulator {
    fn start(bin: &Path, db: &Path, credentials: &Credentials) -> anyhow::Result<Emulator> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--db"])
            .arg(db)
            .env("SNOW_ADMIN_PASSWORD", &credentials.admin_password)
            .env(
                "SNOW_INTEGRATION_PASSWORD",
                &credentials.integration_password,
            )
            .env("SNOW_OAUTH_CLIENT_ID", &credentials.oauth_client_id)
            .env("SNOW_OAUTH_CLIENT_SECRET", &credentials.oauth_client_secret)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Emulator {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Peak RSS (KiB), bytes written and CPU seconds so far.
    fn figures(&self) -> (u64, u64, f64) {
        let pid = self.child.id();
        (
            peak_rss_kib(pid).unwrap_or(0),
            bytes_written(pid).unwrap_or(0),
            cpu_secs(pid).unwrap_or(0.0),
        )
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `VmHWM` of a running process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU seconds of a running process (`/proc/PID/stat` fields 14 and 15, in
/// USER_HZ ticks, 100 per second on Linux).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// `write_bytes` of `/proc/PID/io`.
pub fn bytes_written(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

type Measured = (Phase, Phase, Vec<String>);

async fn measure(
    bins: &Binaries,
    url: &str,
    credentials: &Credentials,
    db: &Path,
    work: &Path,
    estate: Estate,
) -> anyhow::Result<Measured> {
    let instance = Instance::start(
        &TargetSpec::Remote {
            url: url.to_owned(),
            reset: false,
        },
        credentials.clone(),
    )
    .await?;
    crate::target::wait_healthy(url).await?;
    let token = refresh_token(&instance).await?;
    let config = work.join("exporter.toml");
    // Polled every 10 ms: the wait between the run's end and the poll that sees it is part of
    // the time measured, and at 100 ms it was up to a tenth of the 1 % differential.
    std::fs::write(
        &config,
        format!(
            "oauth_client_id = {:?}\noauth_client_secret = {:?}\npoll_interval_ms = 10\npoll_timeout_secs = 3600\n",
            credentials.oauth_client_id, credentials.oauth_client_secret
        ),
    )?;
    let base: Vec<String> = vec![
        "-url".into(),
        url.into(),
        "-user".into(),
        credentials.integration_user.clone(),
        "-token".into(),
        token,
        "--db".into(),
        db.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    let full_records = estate.computers + estate.contract_links + estate.installations;
    let full = export(
        &bins.exporter,
        &base,
        &["-changes", "false"],
        full_records,
        &work.join("full.log"),
    )?;
    let api = TableApi::new(&instance)?;
    let mut gaps = completeness(&api, estate, 1).await?;
    let changed = generate::change(db, db, 1.0, 0)?;
    let diff_records = changed_records(db, changed)?;
    let since = &generate::CHANGE_TIME[..10];
    let differential = export(
        &bins.exporter,
        &base,
        &["-changesSince", since],
        diff_records,
        &work.join("differential.log"),
    )?;
    // The complete differential may send more than the generator changed (every installation
    // of a renamed application, every link of a re-covered contract): what it sent is what
    // must have landed, and it must cover at least what changed.
    let sent = exported_records(&work.join("differential.log"));
    if sent < diff_records {
        gaps.push(format!(
            "the differential export sent {sent} records, fewer than the {diff_records} changed"
        ));
    }
    let staged = staged(&api).await?;
    if staged != full_records + sent {
        gaps.push(format!(
            "after the differential export {staged} staging rows, expected {} ({full_records} + {sent} sent)",
            full_records + sent
        ));
    }
    Ok((full, differential, gaps))
}

/// The records an export's log says it sent (`…: exported N records in …`), over data types.
fn exported_records(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let rest = line.split(": exported ").nth(1)?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Records the differential export sends: changed computers, every link of a changed
/// contract, changed installations.
fn changed_records(db: &Path, changed: generate::Changed) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open(db)?;
    let links: i64 = conn.query_row(
        "SELECT count(*) FROM ContractComplianceComputer WHERE ContractID IN (SELECT ContractID FROM Contract WHERE UpdatedDate >= ?1)",
        [generate::CHANGE_TIME],
        |r| r.get(0),
    )?;
    Ok(changed.computers + links as u64 + changed.installations)
}

/// Runs one export, its log into `log` (a file: a pipe nobody reads would stall it).
fn export(
    bin: &Path,
    base: &[String],
    extra: &[&str],
    records: u64,
    log: &Path,
) -> anyhow::Result<Phase> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(base)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let (mut peak, mut cpu) = (0, 0.0);
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        // Read just before the wait reaps it: exact once the process has exited (a zombie
        // keeps its times), else short by at most the last 10 ms.
        if let Some(secs) = cpu_secs(child.id()) {
            cpu = secs;
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        anyhow::bail!("export {extra:?} failed ({status}):\n{text}");
    }
    Ok(Phase {
        records,
        wall_secs: wall,
        records_per_sec: records as f64 / wall.max(1e-9),
        exporter_peak_rss_kib: peak,
        exporter_cpu_secs: cpu,
    })
}

const STAGING: [&str; 3] = [
    "x_fls_flexera_fnms_inventory_import",
    "x_fls_flexera_fnms_contract_import",
    "x_fls_flexera_fnms_application_import",
];

async fn staged(api: &TableApi) -> anyhow::Result<u64> {
    let mut total = 0;
    for table in STAGING {
        if let Count::Rows(n) = api.count(table, "").await? {
            total += n;
        }
    }
    Ok(total)
}

/// What is missing after `runs` full exports' worth of staging (empty: complete).
async fn completeness(api: &TableApi, estate: Estate, runs: u64) -> anyhow::Result<Vec<String>> {
    let mut gaps = Vec::new();
    let expected = [
        (STAGING[0], estate.computers * runs),
        (STAGING[1], estate.contract_links * runs),
        (STAGING[2], estate.installations * runs),
        ("cmdb_ci_computer", estate.computers),
        ("x_fls_flexera_fnms_import_run", 3),
        ("x_fls_flexera_fnms_import_run^state!=succeeded", 0),
    ];
    for (spec, want) in expected {
        let (table, query) = spec.split_once('^').unwrap_or((spec, ""));
        let got = api.count(table, query).await?;
        if got != Count::Rows(want) {
            gaps.push(format!("{table} [{query}]: {got:?}, expected {want}"));
        }
    }
    Ok(gaps)
}

/// Seconds to copy every table of `source` into a fresh `dest` in one transaction, and the
/// source's size in bytes: its pages in use (WAL frames included, free pages not), which is
/// what the file holds once checkpointed, not what a WAL file happens to have grown to.
pub fn floor(source: &Path, dest: &Path) -> anyhow::Result<(f64, u64)> {
    if dest.exists() {
        std::fs::remove_file(dest)?;
    }
    let conn = rusqlite::Connection::open(dest)?;
    conn.execute("ATTACH DATABASE ?1 AS src", [source.display().to_string()])?;
    let pragma = |name: &str| -> rusqlite::Result<i64> {
        conn.query_row(&format!("PRAGMA src.{name}"), [], |r| r.get(0))
    };
    let pages = pragma("page_count")? - pragma("freelist_count")?;
    let bytes = u64::try_from(pages * pragma("page_size")?).unwrap_or(0);
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM src.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    // What the emulator wrote may still be on its way to the disk; flushed first, it is not
    // counted in the floor (which would otherwise vary with how much was left).
    for suffix in ["", "-wal"] {
        let file = PathBuf::from(format!("{}{suffix}", source.display()));
        if let Ok(f) = std::fs::File::open(&file) {
            f.sync_all()?;
        }
    }
    let started = Instant::now();
    conn.execute_batch("BEGIN")?;
    for table in &tables {
        conn.execute_batch(&format!(
            "CREATE TABLE main.\"{table}\" AS SELECT * FROM src.\"{table}\""
        ))?;
    }
    conn.execute_batch("COMMIT")?;
    Ok((started.elapsed().as_secs_f64(), bytes))
}

/// The human summary.
pub fn render(report: &BenchReport) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let e = &report.estate;
    format!(
        "estate: {} computers ({} virtual), {} contracts ({} contract–computer records), {} applications, {} installations\n\
         full export:          {:>9.2} s  {:>10.0} records/s  ({} records)  exporter peak RSS {:.1} MiB, {:.2} s CPU\n\
         1 % differential:     {:>9.2} s  {:>10.0} records/s  ({} records)  exporter peak RSS {:.1} MiB, {:.2} s CPU  ({:.1} % of full)\n\
         emulator:             peak RSS {:.1} MiB, {:.1} MiB written, final database {:.1} MiB ({:.1}× written/size), {:.2} s CPU\n\
         floor:                {:>9.2} s  (whole final database into a fresh SQLite file, one transaction)\n\
         ratio to floor:       {:>9.2}×\n\
         complete:             {}{}",
        e.computers,
        e.computers / 5,
        e.contracts,
        e.contract_links,
        e.applications,
        e.installations,
        report.full.wall_secs,
        report.full.records_per_sec,
        report.full.records,
        mib(report.full.exporter_peak_rss_kib),
        report.full.exporter_cpu_secs,
        report.differential.wall_secs,
        report.differential.records_per_sec,
        report.differential.records,
        mib(report.differential.exporter_peak_rss_kib),
        report.differential.exporter_cpu_secs,
        100.0 * report.differential.wall_secs / report.full.wall_secs.max(1e-9),
        mib(report.emulator_peak_rss_kib),
        report.emulator_bytes_written as f64 / 1048576.0,
        report.emulator_db_bytes as f64 / 1048576.0,
        report.emulator_bytes_written as f64 / (report.emulator_db_bytes.max(1)) as f64,
        report.emulator_cpu_secs,
        report.floor_secs,
        report.ratio_to_floor,
        if report.complete { "yes" } else { "NO" },
        report
            .completeness
            .iter()
            .map(|g| format!("\n  - {g}"))
            .collect::<String>(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// `cpu_secs` reads seconds: a process that spins gains CPU time, and never more than
    /// the wall time it spun for on every core.
    #[test]
    fn cpu_time_is_read_in_seconds_from_proc() {
        let pid = std::process::id();
        let before = super::cpu_secs(pid).expect("own stat");
        let started = Instant::now();
        let mut spun = 0.0;
        // Bounded: gives up after 10 s of wall time on a machine too busy to spin.
        while spun < 0.2 && started.elapsed() < Duration::from_secs(10) {
            std::hint::black_box((0..10_000u64).sum::<u64>());
            spun = super::cpu_secs(pid).expect("own stat") - before;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let wall = started.elapsed().as_secs_f64();
        assert!(spun >= 0.2, "only {spun} s of CPU in {wall} s");
        assert!(spun <= wall * cores + 0.05, "{spun} s of CPU in {wall} s");
    }
}
