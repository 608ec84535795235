//! The web UI in a real browser: headless Chromium (Debian's `chromium`) driven over
//! WebDriver (`chromedriver`, fantoccini) follows an export from the login page to a
//! computer record, as a newcomer would, and saves a screenshot of each step.
//!
//! Screenshots go to `target/ui-screenshots/` (or `UI_SCREENSHOTS_DIR`; the tour in
//! docs/emulator.md is made with `UI_SCREENSHOTS_DIR=docs/ui`). Without Chromium or
//! chromedriver the test skips, and fails under `CI` (scripts/install-test-deps.sh installs
//! them).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::target::{Credentials, Instance};
use crate::{TableApi, refresh_token, run_exporter};

/// How long any one wait in this test may take.
const WAIT: Duration = Duration::from_secs(30);

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// Both tools, or a skip (a failure under CI).
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (tool("chromium"), tool("chromedriver")) {
        (Some(browser), Some(driver)) => Some((browser, driver)),
        _ => {
            let message =
                "chromium and chromedriver are needed (bash scripts/install-test-deps.sh)";
            assert!(std::env::var_os("CI").is_none(), "{message}");
            println!("skipped: {message}");
            None
        }
    }
}

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(path: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, chromium: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,900", "--lang=en-US"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

struct Shots {
    dir: PathBuf,
}

impl Shots {
    fn new() -> Shots {
        let dir = std::env::var_os("UI_SCREENSHOTS_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots"),
            PathBuf::from,
        );
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        Shots { dir }
    }

    async fn take(&self, client: &Client, name: &str) {
        let png = client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

/// Waits until the page's HTML satisfies `ok` (the page's own script refreshes live regions).
async fn until(client: &Client, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let html = client.source().await.expect("page source");
        if ok(&html) {
            return html;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; page:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click_link(client: &Client, text: &str) {
    client
        .find(Locator::LinkText(text))
        .await
        .unwrap_or_else(|e| panic!("link {text}: {e}"))
        .click()
        .await
        .expect("click");
}

async fn worker(instance: &Instance, paused: bool) {
    let r = reqwest::Client::new()
        .post(format!("{}/_emulator/worker", instance.url))
        .json(&json!({ "paused": paused }))
        .send()
        .await
        .expect("worker control");
    assert!(r.status().is_success());
}

async fn export(instance: &Instance, dir: &Path) -> crate::ExporterOutcome {
    let token = refresh_token(instance).await.expect("token");
    let c = &instance.credentials;
    let config = dir.join("export.toml");
    let text = format!(
        "oauth_client_id = {:?}\noauth_client_secret = {:?}\npoll_interval_ms = 50\n",
        c.oauth_client_id, c.oauth_client_secret
    );
    std::fs::write(&config, text).expect("config");
    let sample = crate::default_fixtures_dir().join("fnms/sample.sql");
    let args = [
        "--db",
        &sample.display().to_string(),
        "-url",
        &instance.url,
        "-user",
        &c.integration_user,
        "-token",
        &token,
        "--config",
        &config.display().to_string(),
    ];
    run_exporter(
        &crate::ExporterKind::InProcess,
        args.iter().map(|s| (*s).to_owned()).collect(),
    )
    .await
    .expect("exporter")
}

async fn login(client: &Client, base: &str, credentials: &Credentials) {
    client
        .goto(&format!("{base}/navpage.do"))
        .await
        .expect("goto");
    let user = client
        .wait()
        .for_element(Locator::Id("user_name"))
        .await
        .expect("login form");
    user.send_keys(&credentials.admin_user).await.expect("type");
    let password = client
        .find(Locator::Id("user_password"))
        .await
        .expect("password");
    password
        .send_keys(&credentials.admin_password)
        .await
        .expect("type");
    client
        .find(Locator::Id("sysverb_login"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    until(client, "the dashboard", |h| {
        h.contains("<h1>Dashboard</h1>")
    })
    .await;
}

#[test]
fn a_newcomer_follows_an_export_from_the_dashboard_to_a_computer_in_chromium() {
    let Some((chromium, chromedriver)) = tools() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let driver = Driver::start(&chromedriver);
        let instance = Instance::start_embedded("127.0.0.1:0", Credentials::from_env())
            .await
            .expect("emulator");
        let client = browser(&driver, &chromium).await;
        let shots = Shots::new();
        let result = tour(&client, &instance, &shots).await;
        let _ = client.close().await;
        instance.stop().await.expect("stop");
        result
    });
}

/// The steps, in order; each asserts what the page shows.
async fn tour(client: &Client, instance: &Instance, shots: &Shots) {
    let base = instance.url.clone();
    client
        .goto(&format!("{base}/navpage.do"))
        .await
        .expect("goto");
    until(client, "the login page", |h| {
        h.contains("id=\"sysverb_login\"")
    })
    .await;
    shots.take(client, "01-login").await;
    login(client, &base, &instance.credentials).await;

    // The export runs while the worker is paused: the dashboard shows the run waiting, then,
    // without a reload, succeeded.
    worker(instance, true).await;
    let dir = tempfile::tempdir().expect("temp");
    let exporting = {
        let (url, credentials, path) = (
            base.clone(),
            instance.credentials.clone(),
            dir.path().to_owned(),
        );
        tokio::spawn(async move {
            let remote = Instance::start(
                &crate::TargetSpec::Remote { url, reset: false },
                credentials,
            )
            .await
            .expect("instance");
            export(&remote, &path).await
        })
    };
    until(client, "the waiting run", |h| h.contains("IRUN0001001")).await;
    shots.take(client, "02-dashboard-waiting").await;
    worker(instance, false).await;
    let outcome = tokio::time::timeout(WAIT, exporting)
        .await
        .expect("export ends")
        .expect("export task");
    assert_eq!(outcome.exit_code, 0, "{}", outcome.log);
    until(client, "three succeeded runs", |h| {
        h.matches("state state-succeeded\">Succeeded</span>")
            .count()
            == 3
    })
    .await;
    shots.take(client, "03-dashboard").await;

    click_link(client, "Import Runs").await;
    let runs = until(client, "the Import Runs list", |h| {
        h.contains("Rows 1 to 3 of")
    })
    .await;
    assert!(runs.contains("IRUN0001003"));
    shots.take(client, "04-import-runs").await;

    click_link(client, "IRUN0001001").await;
    until(client, "the run's form", |h| {
        h.contains("segments processed")
    })
    .await;
    let related = client
        .find(Locator::Css(".related a[href*='import_transaction.do']"))
        .await
        .expect("a transaction");
    shots.take(client, "05-import-run").await;
    related.click().await.expect("click");
    let payload = client
        .wait()
        .for_element(Locator::Css("pre.xml"))
        .await
        .expect("payload");
    let text = payload.text().await.expect("text");
    assert!(
        text.contains("<Inventories>\n  <Inventory>\n    <ComputerID>"),
        "{text}"
    );
    shots.take(client, "06-transaction-payload").await;

    filter_computers(client, instance, shots).await;
    edit_property(client, instance, shots).await;
}

async fn filter_computers(client: &Client, instance: &Instance, shots: &Shots) {
    let query = "nameSTARTSWITHNYC^virtual=false";
    let api = TableApi::new(instance).expect("api");
    let expected = match api.count("cmdb_ci_computer", query).await.expect("count") {
        crate::Count::Rows(n) => n,
        crate::Count::InvalidTable => panic!("no computer table"),
    };
    assert!(expected > 0);
    click_link(client, "Computers").await;
    let input = client
        .wait()
        .for_element(Locator::Id("sysparm_query"))
        .await
        .expect("filter");
    input.clear().await.expect("clear");
    input.send_keys(query).await.expect("type");
    client
        .find(Locator::Css("form.query button"))
        .await
        .expect("run")
        .click()
        .await
        .expect("click");
    let rows = format!("Rows 1 to {expected} of <span class=\"total\">{expected}</span>");
    until(client, "the filtered list", |h| h.contains(&rows)).await;
    shots.take(client, "07-computers-filtered").await;
    client
        .find(Locator::Css("table.records tbody tr td a"))
        .await
        .expect("a computer")
        .click()
        .await
        .expect("click");
    until(client, "the computer's form", |h| {
        h.contains("Software Installation (Installed on)")
    })
    .await;
    shots.take(client, "08-computer").await;
}

async fn edit_property(client: &Client, instance: &Instance, shots: &Shots) {
    click_link(client, "Integration Properties").await;
    let select = client
        .wait()
        .for_element(Locator::Css(
            "select[name='x_fls_flexera_fnms.installation_tables']",
        ))
        .await
        .expect("the installation tables property");
    select.select_by_value("cmdb").await.expect("select");
    client
        .find(Locator::Id("save_properties"))
        .await
        .expect("save")
        .click()
        .await
        .expect("click");
    until(client, "the saved notice", |h| {
        h.contains("take effect at once")
    })
    .await;
    shots.take(client, "09-integration-properties").await;
    let api = TableApi::new(instance).expect("api");
    let records = api
        .records(
            "sys_properties",
            "name=x_fls_flexera_fnms.installation_tables",
            &["value"],
            false,
            1,
        )
        .await
        .expect("property");
    let value = records.first().and_then(|r| r.get("value")).cloned();
    assert_eq!(value.as_deref(), Some("cmdb"));
}
