//! `snow-emulator`: command line over the library (see `docs/emulator.md`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use snow_emulator::Config;

// The worker allocates small strings and values per row; mimalloc serves those faster than
// the system allocator (measured in docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A faithful local ServiceNow instance for the Flexera Integration app.
///
/// Serves OAuth, the Table API, the app's integration endpoint and /_emulator test controls
/// from one SQLite database. See docs/emulator.md.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = "Credentials default to documented values that are accepted on a loopback address only;\n\
                  set all four SNOW_* credentials to listen elsewhere.\n\n\
                  Exit status: 0 after a clean shutdown (Ctrl-C / SIGTERM), 1 on a runtime failure,\n\
                  2 on a usage error (including default credentials on a non-loopback address).\n\n\
                  Logging: RUST_LOG (default: info)."
)]
struct Cli {
    /// Address to listen on (IP:PORT).
    #[arg(
        long,
        value_name = "ADDR",
        env = "SNOW_LISTEN",
        hide_env_values = true,
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,
    /// SQLite database file (created if missing; its folder must exist), or :memory:.
    #[arg(long, value_name = "PATH", env = "SNOW_DB", hide_env_values = true, default_value = "snow-emulator.sqlite", value_hint = clap::ValueHint::FilePath)]
    db: String,
    /// Catalog directory replacing the built-in one (tables/, transform_maps/, import_types.toml).
    #[arg(long, value_name = "DIR", env = "SNOW_CATALOG", hide_env_values = true, value_hint = clap::ValueHint::DirPath)]
    catalog: Option<PathBuf>,
    /// Base URL used in links (default: from each request's Host header).
    #[arg(long, value_name = "URL", env = "SNOW_PUBLIC_URL", hide_env_values = true, value_hint = clap::ValueHint::Url)]
    public_url: Option<String>,
    /// Fault plan installed at start (TOML: `seed`, `[[fault]]` tables; see docs/reliability.md).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    faults: Option<PathBuf>,
    /// TLS certificate chain (PEM); serves HTTPS together with --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key", value_hint = clap::ValueHint::FilePath)]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert", value_hint = clap::ValueHint::FilePath)]
    tls_key: Option<PathBuf>,
    /// Password of the admin user (default: admin, accepted on loopback only).
    #[arg(long, env = "SNOW_ADMIN_PASSWORD", default_value = snow_emulator::DEFAULT_ADMIN_PASSWORD, hide_env_values = true, hide_default_value = true)]
    admin_password: String,
    /// Password of the fnms.integration user (default: integration, loopback only).
    #[arg(long, env = "SNOW_INTEGRATION_PASSWORD", default_value = snow_emulator::DEFAULT_INTEGRATION_PASSWORD, hide_env_values = true, hide_default_value = true)]
    integration_password: String,
    /// OAuth client id of the "FNMS Export" Application Registry record.
    #[arg(long, env = "SNOW_OAUTH_CLIENT_ID", hide_env_values = true, default_value = snow_emulator::DEFAULT_OAUTH_CLIENT_ID)]
    oauth_client_id: String,
    /// OAuth client secret (default: documented in docs/emulator.md, loopback only).
    #[arg(long, env = "SNOW_OAUTH_CLIENT_SECRET", default_value = snow_emulator::DEFAULT_OAUTH_CLIENT_SECRET, hide_env_values = true, hide_default_value = true)]
    oauth_client_secret: String,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The database file's folder must exist: SQLite would only say "unable to open".
fn check_db_folder(db: &str) -> Result<(), String> {
    if db == ":memory:" {
        return Ok(());
    }
    match Path::new(db).parent() {
        Some(folder) if !folder.as_os_str().is_empty() && !folder.is_dir() => Err(format!(
            "cannot create the database '{db}': folder '{}' does not exist; create it or \
             choose another --db",
            folder.display()
        )),
        _ => Ok(()),
    }
}

/// Names the address and the way out when `--listen` cannot be bound.
fn listen_error(addr: SocketAddr, error: &std::io::Error) -> anyhow::Error {
    let hint = if error.kind() == std::io::ErrorKind::AddrInUse {
        "; another program (or another emulator) listens there: stop it or choose another \
         address with --listen"
    } else {
        ""
    };
    anyhow::anyhow!("cannot listen on {addr}: {error}{hint}")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in a redirected log.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(message) = check_db_folder(&cli.db) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let faults = match cli.faults.as_deref().map(read_fault_plan).transpose() {
        Ok(plan) => plan.unwrap_or_default(),
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let config = Config {
        db: cli.db,
        admin_password: cli.admin_password,
        integration_password: cli.integration_password,
        oauth_client_id: cli.oauth_client_id,
        oauth_client_secret: cli.oauth_client_secret,
        catalog_dir: cli.catalog,
        public_url: cli.public_url,
        faults,
    };
    let defaults = config.default_credentials();
    if !cli.listen.ip().is_loopback() && !defaults.is_empty() {
        eprintln!(
            "error: refusing to listen on {} with default credentials ({}); set them or listen on a loopback address",
            cli.listen,
            defaults.join(", ")
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match (&cli.tls_cert, &cli.tls_key) {
            (Some(cert), Some(key)) => {
                let listener = std::net::TcpListener::bind(cli.listen)
                    .map_err(|e| listen_error(cli.listen, &e))?;
                snow_emulator::serve_tls(listener, config, cert, key, shutdown_signal()).await
            }
            _ => {
                let listener = tokio::net::TcpListener::bind(cli.listen)
                    .await
                    .map_err(|e| listen_error(cli.listen, &e))?;
                snow_emulator::serve(listener, config, shutdown_signal()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads and checks a `--faults` file.
fn read_fault_plan(path: &std::path::Path) -> Result<snow_emulator::faults::Plan, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the fault plan {}: {e}", path.display()))?;
    let plan: snow_emulator::faults::Plan =
        toml::from_str(&text).map_err(|e| format!("fault plan {}: {e}", path.display()))?;
    plan.validate()
        .map_err(|e| format!("fault plan {}: {e}", path.display()))?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_shows_no_empty_env_values() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("[env: SNOW_LISTEN]"), "{help}");
        assert!(!help.contains("=]"), "{help}");
    }

    #[test]
    fn a_taken_listen_address_is_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let error = std::net::TcpListener::bind(addr).expect_err("taken");
        let message = listen_error(addr, &error).to_string();
        assert!(
            message.starts_with(&format!("cannot listen on {addr}: ")),
            "{message}"
        );
        assert!(
            message.contains("choose another address with --listen"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_db_folder_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("no-such-folder").join("x.sqlite");
        let message = check_db_folder(&missing.to_string_lossy()).expect_err("missing folder");
        assert!(
            message.contains("no-such-folder' does not exist"),
            "{message}"
        );
        assert!(check_db_folder(":memory:").is_ok());
        assert!(check_db_folder("here.sqlite").is_ok());
        let here = dir.path().join("x.sqlite");
        assert!(check_db_folder(&here.to_string_lossy()).is_ok());
    }
}
