//! `snow-emulator`: a faithful local ServiceNow instance for the Flexera Integration app.
//!
//! It serves OAuth (`/oauth_token.do`), the Table API, the app's integration endpoint
//! (`fnmstosn` / `fnmp.do`) and test controls (`/_emulator/…`) from one SQLite database.
//! Tables, columns, choices and transform maps come from a data catalog (TOML), never from
//! code. The contract with the exporter is `docs/wire-protocol.md`; how to run and extend the
//! emulator is `docs/emulator.md`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! snow_emulator::serve(listener, snow_emulator::Config::default(), std::future::pending()).await
//! # }
//! ```

mod acl;
mod app;
mod auth;
mod catalog;
mod clock;
mod error;
pub mod faults;
mod http;
mod store;
mod transform;
mod ui;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

/// The built-in administrator.
pub const ADMIN_USER: &str = "admin";
/// The integration user the exporter's refresh token belongs to.
pub const INTEGRATION_USER: &str = "fnms.integration";

/// Emulator settings. [`Default`] gives the documented defaults with an in-memory database.
#[derive(Debug, Clone)]
pub struct Config {
    /// SQLite file path, or `:memory:`.
    pub db: String,
    /// Password of [`ADMIN_USER`] (`SNOW_ADMIN_PASSWORD`, default `admin`).
    pub admin_password: String,
    /// Password of [`INTEGRATION_USER`] (`SNOW_INTEGRATION_PASSWORD`, default `integration`).
    pub integration_password: String,
    /// OAuth client id (`SNOW_OAUTH_CLIENT_ID`, default `fnms-export`).
    pub oauth_client_id: String,
    /// OAuth client secret (`SNOW_OAUTH_CLIENT_SECRET`, default `fnms-export-secret`).
    pub oauth_client_secret: String,
    /// A catalog directory; `None` uses the catalog embedded at build time.
    pub catalog_dir: Option<PathBuf>,
    /// Base URL used in links; `None` derives it from the request's Host header.
    pub public_url: Option<String>,
    /// Faults installed at start (`--faults FILE`); replaced through `/_emulator/faults`.
    pub faults: faults::Plan,
}

pub const DEFAULT_ADMIN_PASSWORD: &str = "admin";
pub const DEFAULT_INTEGRATION_PASSWORD: &str = "integration";
pub const DEFAULT_OAUTH_CLIENT_ID: &str = "fnms-export";
pub const DEFAULT_OAUTH_CLIENT_SECRET: &str = "fnms-export-secret";

impl Default for Config {
    fn default() -> Self {
        Self {
            db: ":memory:".into(),
            admin_password: DEFAULT_ADMIN_PASSWORD.into(),
            integration_password: DEFAULT_INTEGRATION_PASSWORD.into(),
            oauth_client_id: DEFAULT_OAUTH_CLIENT_ID.into(),
            oauth_client_secret: DEFAULT_OAUTH_CLIENT_SECRET.into(),
            catalog_dir: None,
            public_url: None,
            faults: faults::Plan::default(),
        }
    }
}

impl Config {
    /// The defaults, overridden by `SNOW_ADMIN_PASSWORD`, `SNOW_INTEGRATION_PASSWORD`,
    /// `SNOW_OAUTH_CLIENT_ID`, `SNOW_OAUTH_CLIENT_SECRET`, `SNOW_DB`, `SNOW_CATALOG` and
    /// `SNOW_PUBLIC_URL` where set.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let d = Self::default();
        Self {
            db: var("SNOW_DB").unwrap_or(d.db),
            admin_password: var("SNOW_ADMIN_PASSWORD").unwrap_or(d.admin_password),
            integration_password: var("SNOW_INTEGRATION_PASSWORD")
                .unwrap_or(d.integration_password),
            oauth_client_id: var("SNOW_OAUTH_CLIENT_ID").unwrap_or(d.oauth_client_id),
            oauth_client_secret: var("SNOW_OAUTH_CLIENT_SECRET").unwrap_or(d.oauth_client_secret),
            catalog_dir: var("SNOW_CATALOG").map(PathBuf::from),
            public_url: var("SNOW_PUBLIC_URL"),
            faults: d.faults,
        }
    }

    /// The configuration values installed records take (`catalog/records/*.toml`, keys
    /// `secrets` and `settings`).
    pub fn settings(&self) -> store::seed::Settings {
        store::seed::Settings::from([
            ("admin_password", self.admin_password.clone()),
            ("integration_password", self.integration_password.clone()),
            ("oauth_client_id", self.oauth_client_id.clone()),
            ("oauth_client_secret", self.oauth_client_secret.clone()),
        ])
    }

    /// Names of the credentials still at their documented default (fine on loopback only).
    pub fn default_credentials(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.admin_password == DEFAULT_ADMIN_PASSWORD {
            out.push("SNOW_ADMIN_PASSWORD");
        }
        if self.integration_password == DEFAULT_INTEGRATION_PASSWORD {
            out.push("SNOW_INTEGRATION_PASSWORD");
        }
        if self.oauth_client_id == DEFAULT_OAUTH_CLIENT_ID {
            out.push("SNOW_OAUTH_CLIENT_ID");
        }
        if self.oauth_client_secret == DEFAULT_OAUTH_CLIENT_SECRET {
            out.push("SNOW_OAUTH_CLIENT_SECRET");
        }
        out
    }
}

/// A started instance: its router and its background worker.
struct Instance {
    router: axum::Router,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
}

impl Instance {
    async fn start(
        config: Config,
        scheme: &'static str,
        local_addr: SocketAddr,
    ) -> anyhow::Result<Self> {
        let catalog = match &config.catalog_dir {
            Some(dir) => catalog::load_dir(dir)?,
            None => catalog::load_embedded()?,
        };
        app::check_catalog(&catalog)?;
        let catalog = Arc::new(catalog);
        let (db, settings) = (config.db.clone(), config.settings());
        let store = tokio::task::spawn_blocking(move || -> anyhow::Result<store::Store> {
            let store = store::Store::open(&db, catalog)?;
            store::seed::seed(&mut store.lock(), store.catalog(), &settings)?;
            acl::seed(&store.lock(), store.catalog())?;
            Ok(store)
        })
        .await
        .context("failed to start the store")??;
        let control = Arc::new(worker::WorkerControl::default());
        let faults = Arc::new(faults::Faults::default());
        faults
            .install(config.faults.clone())
            .map_err(|e| anyhow::anyhow!("fault plan: {e}"))?;
        let (stop, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(worker::run(
            store.clone(),
            control.clone(),
            faults.clone(),
            stop_rx,
        ));
        let state = http::AppState::new(http::Inner {
            store,
            faults,
            config,
            worker: control,
            sessions: Arc::default(),
            scheme,
            local_addr,
        });
        tracing::info!(%local_addr, scheme, "snow-emulator listening");
        Ok(Self {
            router: http::router(state),
            stop,
            worker,
        })
    }

    async fn finish(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.worker.await {
            tracing::error!(error = %e, "worker ended abnormally");
        }
        tracing::info!("snow-emulator stopped");
    }
}

/// Serves plain HTTP on `listener` until `shutdown` completes, then finishes in-flight
/// requests and the transaction being processed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local_addr = listener.local_addr()?;
    let instance = Instance::start(config, "http", local_addr).await?;
    let router = instance.router.clone();
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("server failed")?;
    instance.finish().await;
    Ok(())
}

/// Like [`serve`], over HTTPS with a PEM certificate chain and private key.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    config: Config,
    cert_pem: &Path,
    key_pem: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert_pem, key_pem)
        .await
        .with_context(|| {
            format!(
                "failed to load TLS certificate {} / key {}",
                cert_pem.display(),
                key_pem.display()
            )
        })?;
    let local_addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let instance = Instance::start(config, "https", local_addr).await?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    axum_server::tls_rustls::from_tcp_rustls(listener, tls)?
        .handle(handle)
        .serve(
            instance
                .router
                .clone()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .context("server failed")?;
    instance.finish().await;
    Ok(())
}
