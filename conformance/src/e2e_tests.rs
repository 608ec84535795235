//! End-to-end tests of the tools (parity, record and replay, properties, bench) against
//! embedded emulators on port 0. They live in the library's unit tests because the crate's one
//! integration target is the data-driven scenario harness.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;

use crate::runner::{RunOptions, Status, run_scenario};
use crate::scenario::Scenario;
use crate::target::{Credentials, Instance, TargetSpec};
use crate::{TableApi, refresh_token, run_exporter, snapshot};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn scenario(name: &str) -> Scenario {
    let path = crate::default_fixtures_dir()
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).expect("scenario")
}

/// Distinctive secrets, so a test can prove none of them leaks into a file.
fn secret_credentials() -> Credentials {
    Credentials {
        admin_password: "Adm1n-Pw-7f3c9e".into(),
        integration_password: "Integ-Pw-51ab0d".into(),
        oauth_client_secret: "Client-Secret-c0ffee".into(),
        ..Credentials::from_env()
    }
}

/// Copies every folder of the catalog: a copy missing one (users, roles) is another instance.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("catalog") {
        let path = entry.expect("entry").path();
        let dest = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_tree(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copy");
        }
    }
}

/// The emulator's catalog with the Virtual Machine map switched off: a deliberately
/// different "build".
fn catalog_without_vm_map(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../snow-emulator/catalog");
    let target = dir.join("catalog");
    copy_tree(&source, &target);
    let maps = target.join("transform_maps/inventory.toml");
    let text = std::fs::read_to_string(&maps).expect("maps");
    let changed = text.replace(
        "name = \"FNMS Inventory -> Virtual Machine\"\n",
        "name = \"FNMS Inventory -> Virtual Machine\"\nactive = false\n",
    );
    assert_ne!(text, changed, "the VM map must exist to be switched off");
    std::fs::write(&maps, changed).expect("write");
    target
}

#[test]
fn parity_finds_no_difference_between_equal_emulators_and_names_the_one_that_differs() {
    let dir = tempfile::tempdir().expect("temp");
    let catalog = catalog_without_vm_map(dir.path());
    runtime().block_on(async {
        let credentials = Credentials::from_env();
        let a = Instance::start_embedded("127.0.0.1:0", credentials.clone())
            .await
            .expect("A");
        let b = Instance::start_embedded("127.0.0.1:0", credentials.clone())
            .await
            .expect("B");
        let c = Instance::start_embedded_with("127.0.0.1:0", credentials, Some(catalog))
            .await
            .expect("C");
        let scenarios = [scenario("full-hardware-export"), scenario("wrong-token")];
        let options = RunOptions::embedded();
        let same =
            crate::parity::run(&scenarios, &options, [a.url.as_str(), b.url.as_str()], true).await;
        assert_eq!(same.len(), 2);
        for comparison in &same {
            assert!(
                comparison.differences.is_empty(),
                "{:?}",
                comparison.differences
            );
        }
        let different =
            crate::parity::run(&scenarios, &options, [a.url.as_str(), c.url.as_str()], true).await;
        let text = crate::parity::render(&different, [a.url.as_str(), c.url.as_str()]);
        assert!(text.contains("DIFF full-hardware-export"), "{text}");
        assert!(
            text.contains("count cmdb_ci_vm_instance[]: A Rows(7) | B Rows(0)"),
            "{text}"
        );
        assert!(text.contains("SAME wrong-token"), "{text}");
        for instance in [a, b, c] {
            instance.stop().await.expect("stop");
        }
    });
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in walk(dir) {
        found.push(entry);
    }
    found
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Runs the hardware scenario through a recording proxy in front of an emulator.
async fn record_scenario(out: &Path, credentials: &Credentials) -> (Instance, String) {
    let upstream = Instance::start_embedded("127.0.0.1:0", credentials.clone())
        .await
        .expect("upstream");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy = format!("http://{}", listener.local_addr().expect("addr"));
    let (url, out_dir) = (upstream.url.clone(), out.to_owned());
    tokio::spawn(async move {
        crate::record::serve(listener, &url, &out_dir, std::future::pending()).await
    });
    let mut options = RunOptions::embedded();
    options.credentials = credentials.clone();
    options.target = TargetSpec::Remote {
        url: proxy.clone(),
        reset: false,
    };
    let outcome = run_scenario(&scenario("segmented-export"), &options).await;
    assert_eq!(outcome.status, Status::Passed, "{:?}", outcome.failures);
    (upstream, proxy)
}

#[test]
fn record_writes_golden_shaped_fixtures_without_secrets() {
    let out = tempfile::tempdir().expect("temp");
    let credentials = secret_credentials();
    runtime().block_on(async {
        let (upstream, _) = record_scenario(out.path(), &credentials).await;
        upstream.stop().await.expect("stop");
    });
    let index: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("exchanges.json")).expect("index"),
    )
    .expect("JSON");
    let segments: Vec<&Value> = index
        .iter()
        .filter(|e| e["files"].to_string().contains("inventory_export.json"))
        .collect();
    assert_eq!(segments.len(), 4, "35 computers in segments of 10");
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::default_fixtures_dir().join("wire/requests/inventory_export.json"),
        )
        .expect("golden"),
    )
    .expect("golden JSON");
    let request = out.path().join("requests").join(
        segments[0]["files"]
            .as_array()
            .and_then(|f| f.iter().find_map(|f| f.as_str()?.strip_prefix("requests/")))
            .expect("request file"),
    );
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(request).expect("req")).expect("JSON");
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        keys(&recorded),
        keys(&golden),
        "same fields as the golden request"
    );
    let token: Value = walk(&out.path().join("responses"))
        .iter()
        .find(|p| p.to_string_lossy().contains("oauth_token"))
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("JSON"))
        .expect("an oauth_token response");
    assert_eq!(token["access_token"], "[access token]");
    for file in files_under(out.path()) {
        let text = std::fs::read_to_string(&file).expect("read");
        for secret in [
            &credentials.admin_password,
            &credentials.integration_password,
            &credentials.oauth_client_secret,
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "{} leaks {secret}",
                file.display()
            );
        }
    }
}

/// A random small FNMS estate: computers (some virtual on a host), contracts, installations.
#[derive(Debug, Clone)]
struct SmallEstate {
    computers: Vec<(String, u64, bool)>,
    installs: Vec<(usize, usize)>,
}

fn small_estate() -> impl Strategy<Value = SmallEstate> {
    (1usize..10, 0usize..3).prop_flat_map(|(n, apps)| {
        (
            proptest::collection::vec(("[A-Z]{3}-[0-9]{2}", 1u64..64, any::<bool>()), n),
            proptest::collection::btree_set((0..n, 0..apps.max(1)), 0..=(n * apps / 2)),
        )
            .prop_map(move |(computers, installs)| SmallEstate {
                // Names made unique by their position: FNMS computer names need not be
                // unique, but the CMDB view this property reads is by name.
                computers: computers
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, gb, vm))| (format!("{name}-{i}"), gb, vm))
                    .collect(),
                installs: if apps == 0 {
                    vec![]
                } else {
                    installs.into_iter().collect()
                },
            })
    })
}

fn write_estate(path: &Path, estate: &SmallEstate) {
    let conn = rusqlite::Connection::open(path).expect("db");
    let schema = std::fs::read_to_string(crate::default_fixtures_dir().join("fnms/schema.sql"))
        .expect("schema");
    conn.execute_batch(&schema).expect("schema");
    conn.execute_batch("INSERT INTO LicenseOption VALUES ('ServiceNowIntegration', 1, NULL); INSERT INTO Publisher VALUES (1, 'Acme'); INSERT INTO SoftwareTitle VALUES (1, 'Acme One 1.0', 'One', 1, '1.0', NULL, '2020-01-01 00:00:00'), (2, 'Acme Two 2.0', 'Two', 1, '2.0', NULL, '2020-01-01 00:00:00');").expect("base");
    for (i, (name, gb, vm)) in estate.computers.iter().enumerate() {
        conn.execute(
            "INSERT INTO ComplianceComputer (ComplianceComputerID, ComputerName, ComplianceComputerTypeID, OperatingSystem, SerialNo, TotalMemory, UpdatedDate) VALUES (?1, ?2, ?3, 'Microsoft Windows 11 Enterprise', ?4, ?5, '2020-01-01 00:00:00')",
            rusqlite::params![i as i64 + 1, name, if *vm { 2 } else { 1 }, format!("SN{i:04}"), (*gb as i64) << 30],
        )
        .expect("computer");
    }
    for (computer, app) in &estate.installs {
        conn.execute(
            "INSERT INTO InstalledSoftware VALUES (?1, ?2, '2020-01-01', '2020-01-01 00:00:00')",
            rusqlite::params![*computer as i64 + 1, *app as i64 + 1],
        )
        .expect("install");
    }
}

/// Runs the in-process exporter against `instance` with fast timings.
async fn export(instance: &Instance, db: &Path, extra: &[&str]) -> crate::ExporterOutcome {
    export_with(instance, db, "", extra).await
}

async fn names(api: &TableApi, table: &str, field: &str) -> Vec<String> {
    let mut v: Vec<String> = api
        .records(table, "", &[field], false, 10_000)
        .await
        .expect("records")
        .into_iter()
        .map(|r| r.get(field).cloned().unwrap_or_default())
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Every exported record lands exactly once in its staging table, every computer once in
    /// the CMDB; sending every segment again (same transactionId) duplicates nothing.
    #[test]
    fn every_record_lands_exactly_once_and_retransmission_never_duplicates(estate in small_estate()) {
        let dir = tempfile::tempdir().expect("temp");
        let db = dir.path().join("fnms.sqlite");
        write_estate(&db, &estate);
        runtime().block_on(async {
            let out = dir.path().join("recording");
            let instance = Instance::start_embedded("127.0.0.1:0", Credentials::from_env()).await.expect("emulator");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let proxy_url = format!("http://{}", listener.local_addr().expect("addr"));
            let (upstream, out_dir) = (instance.url.clone(), out.clone());
            tokio::spawn(async move { crate::record::serve(listener, &upstream, &out_dir, std::future::pending()).await });
            let proxied = Instance::start(&TargetSpec::Remote { url: proxy_url, reset: false }, instance.credentials.clone()).await.expect("proxy");
            let run = export(&proxied, &db, &["-changes", "false"]).await;
            assert_eq!(run.exit_code, 0, "{}", run.log);
            let api = TableApi::new(&instance).expect("api");
            let mut want: Vec<String> = estate.computers.iter().map(|c| c.0.clone()).collect();
            want.sort();
            assert_eq!(names(&api, "x_fls_flexera_fnms_inventory_import", "u_computername").await, want);
            assert_eq!(names(&api, "cmdb_ci_computer", "name").await, want);
            let installs = names(&api, "x_fls_flexera_fnms_application_import", "sys_id").await.len();
            assert_eq!(installs, estate.installs.len());
            // Retransmission: every recorded segment again, as recorded.
            let token = crate::instance::access_token(&instance).await.expect("access token");
            let client = reqwest::Client::new();
            for file in walk(&out.join("requests")) {
                let name = file.to_string_lossy().into_owned();
                if !name.ends_with("_export.json") { continue; }
                let mut body: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
                let payload = file.to_string_lossy().replace("/requests/", "/payloads/").replace(".json", ".xml");
                body["data"] = Value::String(std::fs::read_to_string(payload).expect("payload"));
                let answer: Value = client.post(format!("{}/api/x_fls_flexera_fnms/integration/fnmstosn", instance.url))
                    .bearer_auth(&token).json(&body).send().await.expect("send").json().await.expect("JSON");
                assert_eq!(answer["result"]["returnCode"], 0, "{answer}");
            }
            assert_eq!(names(&api, "x_fls_flexera_fnms_inventory_import", "u_computername").await, want);
            assert_eq!(names(&api, "x_fls_flexera_fnms_application_import", "sys_id").await.len(), estate.installs.len());
            instance.stop().await.expect("stop");
        });
    }

    /// Full export, random changes, differential export ≡ one full export of the changed data
    /// (compared as redacted snapshots of the computers). Changes are updates and additions;
    /// deletions are the next property's.
    #[test]
    fn full_then_differential_equals_one_full_export_of_the_changed_data(
        estate in small_estate(),
        changes in proptest::collection::vec((0usize..10, 1u64..64), 0..4),
        added in proptest::collection::vec("[A-Z]{4}", 0..3),
    ) {
        let dir = tempfile::tempdir().expect("temp");
        let db = dir.path().join("fnms.sqlite");
        write_estate(&db, &estate);
        runtime().block_on(async {
            let first = Instance::start_embedded("127.0.0.1:0", Credentials::from_env()).await.expect("emulator");
            assert_eq!(export(&first, &db, &["-changes", "false"]).await.exit_code, 0);
            let conn = rusqlite::Connection::open(&db).expect("db");
            for (i, gb) in &changes {
                conn.execute("UPDATE ComplianceComputer SET TotalMemory = ?1, UpdatedDate = '2999-01-01 00:00:00' WHERE ComplianceComputerID = ?2", rusqlite::params![(*gb as i64) << 30, (*i % estate.computers.len()) as i64 + 1]).expect("update");
            }
            for (k, name) in added.iter().enumerate() {
                conn.execute("INSERT INTO ComplianceComputer (ComplianceComputerID, ComputerName, ComplianceComputerTypeID, SerialNo, UpdatedDate) VALUES (?1, ?2, 1, ?3, '2999-01-01 00:00:00')", rusqlite::params![1000 + k as i64, format!("NEW-{name}-{k}"), format!("NEW{k}")]).expect("insert");
            }
            let diff = export(&first, &db, &[]).await;
            assert_eq!(diff.exit_code, 0, "{}", diff.log);
            let second = Instance::start_embedded("127.0.0.1:0", Credentials::from_env()).await.expect("emulator");
            assert_eq!(export(&second, &db, &["-changes", "false"]).await.exit_code, 0);
            let fields: Vec<String> = ["name", "ram", "serial_number", "sys_class_name", "os"].map(String::from).to_vec();
            let mut views = Vec::new();
            for instance in [&first, &second] {
                let api = TableApi::new(instance).expect("api");
                let rows = api.records("cmdb_ci_computer", "", &["name", "ram", "serial_number", "sys_class_name", "os"], false, 10_000).await.expect("rows");
                views.push(snapshot::render("cmdb_ci_computer", "", &fields, &rows, ""));
            }
            assert_eq!(views[0], views[1]);
            first.stop().await.expect("stop");
            second.stop().await.expect("stop");
        });
    }
}

/// The computers an instance holds, by name: (name, ram, install_status).
async fn computers(instance: &Instance) -> Vec<(String, String, String)> {
    let api = TableApi::new(instance).expect("api");
    let rows = api
        .records(
            "cmdb_ci_computer",
            "",
            &["name", "ram", "install_status"],
            false,
            10_000,
        )
        .await
        .expect("rows");
    let field = |r: &crate::instance::Record, f: &str| r.get(f).cloned().unwrap_or_default();
    let mut v: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                field(r, "name"),
                field(r, "ram"),
                field(r, "install_status"),
            )
        })
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// Computers deleted from FNMS between a full and a differential export are retired
    /// (install_status 7), never deleted; every other computer equals what one full export of
    /// the remaining data gives.
    #[test]
    fn differential_with_deletions_equals_full_export_with_retired_computers(
        estate in small_estate(),
        deleted in proptest::collection::btree_set(0usize..10, 1..3),
    ) {
        let dir = tempfile::tempdir().expect("temp");
        let db = dir.path().join("fnms.sqlite");
        write_estate(&db, &estate);
        let deleted: Vec<usize> = deleted.into_iter().filter(|i| *i < estate.computers.len()).collect();
        runtime().block_on(async {
            let first = Instance::start_embedded("127.0.0.1:0", Credentials::from_env()).await.expect("emulator");
            let full = export(&first, &db, &["-changes", "false"]).await;
            assert_eq!(full.exit_code, 0, "{}", full.log);
            let conn = rusqlite::Connection::open(&db).expect("db");
            for i in &deleted {
                let id = *i as i64 + 1;
                conn.execute("DELETE FROM InstalledSoftware WHERE ComplianceComputerID = ?1", [id]).expect("delete installs");
                conn.execute("DELETE FROM ComplianceComputer WHERE ComplianceComputerID = ?1", [id]).expect("delete computer");
            }
            let diff = export(&first, &db, &[]).await;
            assert_eq!(diff.exit_code, 0, "{}", diff.log);
            let second = Instance::start_embedded("127.0.0.1:0", Credentials::from_env()).await.expect("emulator");
            assert_eq!(export(&second, &db, &["-changes", "false"]).await.exit_code, 0);
            let (retired, kept): (Vec<_>, Vec<_>) = computers(&first).await.into_iter().partition(|c| c.2 == "7");
            let mut gone: Vec<String> = deleted.iter().map(|i| estate.computers[*i].0.clone()).collect();
            gone.sort();
            assert_eq!(retired.iter().map(|c| c.0.clone()).collect::<Vec<_>>(), gone, "retired, not deleted");
            assert_eq!(kept, computers(&second).await, "the rest as one full export");
            first.stop().await.expect("stop");
            second.stop().await.expect("stop");
        });
    }
}

/// The bench pipeline at a tiny scale: completeness, not timing. The 5 % run is a CI step
/// (docs/conformance.md) in release mode.
#[test]
fn bench_pipeline_exports_everything_at_a_small_scale() {
    let options = crate::bench::BenchOptions {
        scale: 0.001,
        db: None,
        seed: 3,
        bin_dir: None,
        work: None,
    };
    let report = match runtime().block_on(crate::bench::run(&options)) {
        Ok(r) => r,
        Err(e) if e.to_string().contains("not found in") && std::env::var_os("CI").is_none() => {
            println!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e:#}"),
    };
    assert!(report.complete, "{:?}", report.completeness);
    assert_eq!(
        report.full.records,
        report.estate.computers + report.estate.contract_links + report.estate.installations
    );
    assert!(
        report.differential.records > 0 && report.differential.records < report.full.records / 10
    );
    assert!(report.floor_secs > 0.0 && report.emulator_db_bytes > 0);
    // The exporter runs for a second or more here: at least one 10 ms tick of CPU.
    assert!(report.full.exporter_cpu_secs > 0.0, "{report:?}");
}

/// Sets every unfinished Import Run and Import Transaction to failed, as the runbook tells an
/// administrator to after an interrupted export.
async fn clear_incomplete_runs(api: &TableApi) {
    let failed: std::collections::BTreeMap<String, String> =
        [("state".to_owned(), "failed".to_owned())].into();
    for table in [
        "x_fls_flexera_fnms_import_transaction",
        "x_fls_flexera_fnms_import_run",
    ] {
        // None unfinished is fine: update_where refuses an empty selection.
        let _ = api
            .update_where(table, "state!=succeeded^state!=failed", &failed)
            .await;
    }
}

/// Crash test (docs/reliability.md): the exporter binary is killed with SIGKILL at seeded
/// random points and run again (after clearing what the kill left incomplete, as the runbook
/// says), until a run completes; the CMDB then equals a clean run's. `SNOW_CRASH_POINTS`
/// (default 20) and `SNOW_CRASH_SEED` set the kills and the seed.
#[test]
fn the_exporter_killed_at_random_points_then_rerun_gives_a_clean_runs_tables() {
    use rand::{Rng, SeedableRng};
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (points, seed) = (
        number("SNOW_CRASH_POINTS", 20),
        number("SNOW_CRASH_SEED", 20_261_202),
    );
    let binaries = match crate::bench::Binaries::find(None) {
        Ok(b) => b,
        Err(e) if std::env::var_os("CI").is_none() => {
            println!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e:#}"),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp");
    let db = dir.path().join("fnms.sqlite");
    let fnms = crate::default_fixtures_dir().join("fnms");
    let sample = ["schema.sql", "sample.sql"]
        .map(|f| std::fs::read_to_string(fnms.join(f)).expect("sample"))
        .join("\n");
    rusqlite::Connection::open(&db)
        .and_then(|c| c.execute_batch(&sample))
        .expect("sample db");
    runtime().block_on(async {
        let instance = Instance::start_embedded("127.0.0.1:0", Credentials::from_env())
            .await
            .expect("emulator");
        let api = TableApi::new(&instance).expect("api");
        let token = refresh_token(&instance).await.expect("token");
        let c = &instance.credentials;
        let config = dir.path().join("export.toml");
        std::fs::write(&config, format!("oauth_client_id = {:?}\noauth_client_secret = {:?}\nretry_delay_ms = 10\npoll_interval_ms = 20\nsegment_size = 5\n", c.oauth_client_id, c.oauth_client_secret)).expect("config");
        let start = |url: &str, token: &str, db: &Path| {
            std::process::Command::new(&binaries.exporter)
                .args(["-url", url, "-user", &c.integration_user, "--db"])
                .arg(db)
                .arg("--config")
                .arg(&config)
                .env("SNOW_REFRESH_TOKEN", token)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start exporter")
        };
        // Killed runs send everything (`-changes false`), so every kill lands mid-export;
        // the run let finish is an ordinary (differential) one.
        let spawn_full = || {
            let mut command = std::process::Command::new(&binaries.exporter);
            command
                .args(["-url", &instance.url, "-user", &c.integration_user, "-changes", "false", "--db"])
                .arg(&db)
                .arg("--config")
                .arg(&config)
                .env("SNOW_REFRESH_TOKEN", &token)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            command.spawn().expect("start exporter")
        };
        let spawn = || start(&instance.url, &token, &db);
        let mut finished_before_kill = 0;
        for _ in 0..points {
            let mut child = spawn_full();
            tokio::time::sleep(std::time::Duration::from_millis(rng.random_range(0..700))).await;
            if child.try_wait().expect("wait").is_some() {
                finished_before_kill += 1;
            }
            let _ = child.kill();
            let _ = child.wait();
            clear_incomplete_runs(&api).await;
        }
        // The run that is let finish (a few tries: the instance may still be processing what
        // the last killed run sent).
        let mut status = None;
        for _ in 0..5 {
            let s = spawn().wait().expect("exporter");
            if s.success() {
                status = Some(s);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            clear_incomplete_runs(&api).await;
        }
        assert!(status.is_some(), "no run completed after the kills");
        let clean = Instance::start_embedded("127.0.0.1:0", Credentials::from_env())
            .await
            .expect("emulator");
        let clean_db = dir.path().join("clean.sqlite");
        rusqlite::Connection::open(&clean_db)
            .and_then(|c| c.execute_batch(&sample))
            .expect("clean db");
        let clean_token = refresh_token(&clean).await.expect("token");
        let clean_run = start(&clean.url, &clean_token, &clean_db).wait().expect("exporter");
        assert!(clean_run.success(), "the clean run failed");
        let clean_api = TableApi::new(&clean).expect("api");
        for (table, fields) in [
            ("cmdb_ci_computer", &["name", "ram", "sys_class_name", "serial_number"][..]),
            ("cmdb_ci_vm_instance", &["name", "memory"][..]),
            ("ast_contract", &["short_description", "state"][..]),
            ("contract_rel_ci", &["contract", "ci_item"][..]),
            ("cmdb_sam_sw_install", &["display_name", "version"][..]),
        ] {
            let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
            let mut views = Vec::new();
            for a in [&api, &clean_api] {
                let names: Vec<&str> = fields.iter().map(String::as_str).collect();
                let rows = a.records(table, "", &names, true, 10_000).await.expect("rows");
                views.push(snapshot::render(table, "", &fields, &rows, ""));
            }
            assert_eq!(views[0], views[1], "{table} differs from a clean run's");
        }
        println!(
            "exporter crash test: {points} kills (seed {seed}), {finished_before_kill} runs had finished before their kill"
        );
        instance.stop().await.expect("stop");
        clean.stop().await.expect("stop");
    });
}

/// Every fault that fails an export (docs/reliability.md): the export fails with exit 1; once
/// the plan is cleared (and the incomplete run failed, as the runbook says) a re-run succeeds
/// and the CMDB equals a fault-free run's.
#[test]
fn after_each_failing_fault_clears_a_rerun_gives_a_fault_free_runs_tables() {
    let estate = SmallEstate {
        computers: (0..7)
            .map(|i| (format!("PC-{i}"), 4 + i as u64, i % 3 == 0))
            .collect(),
        installs: vec![(0, 0), (1, 1), (2, 0), (5, 1)],
    };
    let faults = [
        "kind = \"segment_code\"\ntransaction_type = \"inventory_export\"\ncode = 50",
        "kind = \"http_status\"\npath_prefix = \"/api/x_fls_flexera_fnms\"\nstatus = 503\nretry_after = 0\nnth = 3",
        "kind = \"drop_connection\"\npath_prefix = \"/api/x_fls_flexera_fnms\"\nnth = 4",
        "kind = \"fail_transform\"\ntransaction_type = \"application_export\"",
        "kind = \"hang_transaction\"\ntransaction_type = \"inventory_export\"",
        "kind = \"disk_full\"",
    ];
    let dir = tempfile::tempdir().expect("temp");
    runtime().block_on(async {
        let reference = Instance::start_embedded("127.0.0.1:0", Credentials::from_env())
            .await
            .expect("emulator");
        let clean_db = dir.path().join("clean.sqlite");
        write_estate(&clean_db, &estate);
        let run = export(&reference, &clean_db, &["-changes", "false"]).await;
        assert_eq!(run.exit_code, 0, "{}", run.log);
        let want = computers(&reference).await;
        let want_installs = names(
            &TableApi::new(&reference).expect("api"),
            "cmdb_sam_sw_install",
            "display_name",
        )
        .await;
        for (i, fault) in faults.iter().enumerate() {
            let fault_table: toml::Table = toml::from_str(fault).expect("fault");
            let what = fault_table["kind"].as_str().unwrap_or_default().to_owned();
            let instance = Instance::start_embedded("127.0.0.1:0", Credentials::from_env())
                .await
                .expect("emulator");
            let db = dir.path().join(format!("fnms-{i}.sqlite"));
            write_estate(&db, &estate);
            // Short tries and a poll time-out, so a hung transaction ends the run quickly.
            let config = "max_tries = 2\npoll_timeout_secs = 2\n";
            crate::controls::install_faults(&instance.url, Some(7), &[fault_table])
                .await
                .expect("install");
            let failed = export_with(&instance, &db, config, &["-changes", "false"]).await;
            assert_eq!(failed.exit_code, 1, "{what}: {}", failed.log);
            reqwest::Client::new()
                .delete(format!("{}/_emulator/faults", instance.url))
                .send()
                .await
                .expect("clear");
            let api = TableApi::new(&instance).expect("api");
            // A released hung transaction finishes; give the worker a moment, then fail what
            // is still unfinished.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            clear_incomplete_runs(&api).await;
            let rerun = export(&instance, &db, &[]).await;
            assert_eq!(rerun.exit_code, 0, "{what}: {}", rerun.log);
            assert_eq!(computers(&instance).await, want, "{what}: computers");
            assert_eq!(
                names(&api, "cmdb_sam_sw_install", "display_name").await,
                want_installs,
                "{what}: installations"
            );
            instance.stop().await.expect("stop");
        }
        reference.stop().await.expect("stop");
    });
}

/// As [`export`], with `config_lines` appended to the exporter's configuration file.
async fn export_with(
    instance: &Instance,
    db: &Path,
    config_lines: &str,
    extra: &[&str],
) -> crate::ExporterOutcome {
    let token = refresh_token(instance).await.expect("token");
    let config = db.with_extension("toml");
    let c = &instance.credentials;
    std::fs::write(&config, format!("oauth_client_id = {:?}\noauth_client_secret = {:?}\nretry_delay_ms = 10\npoll_interval_ms = 20\nsegment_size = 3\n{config_lines}", c.oauth_client_id, c.oauth_client_secret)).expect("config");
    let mut args: Vec<String> = [
        "-url",
        &instance.url,
        "-user",
        &c.integration_user,
        "-token",
        &token,
        "--db",
        &db.display().to_string(),
        "--config",
        &config.display().to_string(),
        "-withContracts",
        "false",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    run_exporter(&crate::ExporterKind::InProcess, args)
        .await
        .expect("exporter")
}
