//! The instance a scenario runs against: the embedded emulator (fresh, in-process, port 0) or
//! any instance URL. Everything after start-up goes over HTTP, so both are driven the same way.

use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which instance to use.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// `snow-emulator` in this process on 127.0.0.1:0 with a fresh `:memory:` database.
    Embedded,
    /// An instance already running at `url`. With `reset`, `POST /_emulator/reset` is sent
    /// first (only an emulator has it).
    Remote { url: String, reset: bool },
}

/// Who the runner is on the instance. The admin sets up records and reads tables; the
/// integration user's refresh token is what the exporter gets, as in production.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub admin_user: String,
    pub admin_password: String,
    pub integration_user: String,
    pub integration_password: String,
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
}

impl Credentials {
    /// The same environment that configures the emulator (`SNOW_*`), with its documented
    /// loopback defaults, so one environment configures every program.
    pub fn from_env() -> Credentials {
        let config = snow_emulator::Config::from_env();
        Credentials {
            admin_user: std::env::var("SNOW_ADMIN_USER")
                .unwrap_or_else(|_| snow_emulator::ADMIN_USER.to_owned()),
            admin_password: config.admin_password,
            integration_user: std::env::var("SNOW_INTEGRATION_USER")
                .unwrap_or_else(|_| snow_emulator::INTEGRATION_USER.to_owned()),
            integration_password: config.integration_password,
            oauth_client_id: config.oauth_client_id,
            oauth_client_secret: config.oauth_client_secret,
        }
    }
}

/// A started instance. Dropping it without [`Instance::stop`] aborts an embedded server.
pub struct Instance {
    pub url: String,
    pub credentials: Credentials,
    embedded: Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
}

impl Instance {
    pub async fn start(spec: &TargetSpec, credentials: Credentials) -> anyhow::Result<Instance> {
        match spec {
            TargetSpec::Embedded => Instance::start_embedded("127.0.0.1:0", credentials).await,
            TargetSpec::Remote { url, reset } => {
                let url = url.trim_end_matches('/').to_owned();
                if *reset {
                    let response = reqwest::Client::new()
                        .post(format!("{url}/_emulator/reset"))
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await
                        .with_context(|| format!("cannot reset {url}"))?;
                    anyhow::ensure!(
                        response.status().is_success(),
                        "reset of {url} answered {}",
                        response.status()
                    );
                }
                Ok(Instance {
                    url,
                    credentials,
                    embedded: None,
                })
            }
        }
    }

    /// Starts the emulator in this process on `listen` with a fresh in-memory database.
    pub async fn start_embedded(
        listen: &str,
        credentials: Credentials,
    ) -> anyhow::Result<Instance> {
        Instance::start_embedded_with(listen, credentials, None).await
    }

    /// Like [`Instance::start_embedded`], with the catalog read from `catalog_dir` (a changed
    /// catalog makes a deliberately different emulator, e.g. for parity tests).
    pub async fn start_embedded_with(
        listen: &str,
        credentials: Credentials,
        catalog_dir: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Instance> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let config = snow_emulator::Config {
            db: ":memory:".to_owned(),
            admin_password: credentials.admin_password.clone(),
            integration_password: credentials.integration_password.clone(),
            oauth_client_id: credentials.oauth_client_id.clone(),
            oauth_client_secret: credentials.oauth_client_secret.clone(),
            catalog_dir,
            ..snow_emulator::Config::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(snow_emulator::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        let url = format!("http://{addr}");
        wait_healthy(&url).await?;
        Ok(Instance {
            url,
            credentials,
            embedded: Some((stop, task)),
        })
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Shuts an embedded emulator down gracefully; a remote instance is left as it is.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some((stop, task)) = self.embedded.take() {
            let _ = stop.send(());
            task.await.context("emulator task panicked")??;
        }
        Ok(())
    }

    /// Waits until the caller asks to stop (Ctrl-C).
    pub async fn serve_until_ctrl_c(self) -> anyhow::Result<()> {
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        self.stop().await
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some((_, task)) = self.embedded.take() {
            task.abort();
        }
    }
}

pub(crate) async fn wait_healthy(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("{url}/_emulator/health")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the embedded emulator at {url} did not become healthy within 5 s")
}
