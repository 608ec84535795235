//! Real ServiceNow clients, unmodified, over HTTPS: pysnow (PyPI) and servicenow-rest-api
//! (npm) run the scripts under `snow-emulator/tests/clients/` against an emulator whose
//! certificate a test CA signs; each client trusts the CA its usual way
//! (`REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`). `scripts/install-test-deps.sh` installs
//! them; without them the tests skip (or fail under `CI`).
//! Sources: https://pysnow.readthedocs.io/ , https://www.npmjs.com/package/servicenow-rest-api

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::sync::oneshot;

use crate::check::{CLIENT_ID, CLIENT_SECRET};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `Some(path)` when the tool exists; otherwise skips (or fails under CI).
fn tool(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "{what} not found at {}: run scripts/install-test-deps.sh",
        path.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    println!("skipped: {message}");
    None
}

fn node() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("node"))
            .find(|p| p.is_file())
    });
    tool(found.unwrap_or_else(|| PathBuf::from("node")), "node")
}

/// A test CA and a server certificate it signs for localhost and 127.0.0.1.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "snow-emulator test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("ca");
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("cert");
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("key");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// An HTTPS emulator on 127.0.0.1; stopped when dropped.
struct Https {
    port: u16,
    stop: Option<oneshot::Sender<()>>,
}

impl Https {
    async fn start(pki: &Pki) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (stop, stopped) = oneshot::channel::<()>();
        let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
        tokio::spawn(async move {
            snow_emulator::serve_tls(
                listener,
                snow_emulator::Config::default(),
                &cert,
                &key,
                async move {
                    let _ = stopped.await;
                },
            )
            .await
        });
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).expect("read ca"))
                .expect("pem");
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("https://localhost:{port}/_emulator/health");
        while client.get(&url).send().await.is_err() {
            assert!(Instant::now() < deadline, "https emulator did not start");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self {
            port,
            stop: Some(stop),
        }
    }
}

impl Drop for Https {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Runs a client script (bounded: two minutes) and returns its output; panics with the
/// output when it fails.
async fn run(mut cmd: Command) -> String {
    let output = tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("join");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "client failed:\n{text}");
    text
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysnow_over_https() {
    let Some(python) = tool(
        workspace().join("target/test-deps/venv/bin/python"),
        "pysnow's virtualenv",
    ) else {
        return;
    };
    let pki = Pki::new();
    let server = Https::start(&pki).await;
    let mut cmd = Command::new(python);
    cmd.arg(script("pysnow_client.py"))
        .env("SNOW_HOST", format!("localhost:{}", server.port))
        .env("SNOW_CLIENT_ID", CLIENT_ID)
        .env("SNOW_CLIENT_SECRET", CLIENT_SECRET)
        .env("REQUESTS_CA_BUNDLE", pki.path("ca.pem"))
        .env("NO_PROXY", "*")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy");
    let out = run(cmd).await;
    assert!(out.contains("PYSNOW OK"), "{out}");
    assert!(out.contains("ok: 403 for creating a user"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_rest_api_over_https() {
    let Some(modules) = tool(
        workspace().join("target/test-deps/node/node_modules/servicenow-rest-api"),
        "servicenow-rest-api",
    ) else {
        return;
    };
    let Some(node) = node() else { return };
    let pki = Pki::new();
    let server = Https::start(&pki).await;
    let mut cmd = Command::new(node);
    cmd.arg(script("servicenow_rest_api.js"))
        .env("SNOW_HOST", format!("127.0.0.1:{}", server.port))
        .env("NODE_PATH", modules.parent().expect("node_modules"))
        .env("NODE_EXTRA_CA_CERTS", pki.path("ca.pem"))
        .env("NO_PROXY", "*")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy");
    let out = run(cmd).await;
    assert!(out.contains("SERVICENOW-REST-API OK"), "{out}");
    assert!(out.contains("ok: 403 for what the role forbids"), "{out}");
}
