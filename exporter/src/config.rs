//! Everything one run needs to know, resolved once from the command line, the environment
//! (through clap), the `--config` TOML file and the defaults — in that order of precedence.
//!
//! Resolution happens before anything talks to a database or an instance, so every
//! configuration mistake is a usage error (exit 2) with a message naming the culprit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::cli::Cli;
use crate::error::ExportError;
use crate::log::Level;
use crate::source::{DataType, Source};

/// The endpoint used when neither `-endpoint` nor the database names one ([CLI-22R1]).
pub(crate) const DEFAULT_ENDPOINT: &str = "api/x_fls_flexera_fnms/integration/fnmstosn";

/// The bundled sample, relative to the repository root.
pub(crate) const SAMPLE_SOURCE: &str = "fixtures/fnms/sample.sql";

/// The `--config` file. Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    max_tries: Option<u32>,
    retry_delay_ms: Option<u64>,
    retry_max_delay_ms: Option<u64>,
    segment_size: Option<usize>,
    poll_interval_ms: Option<u64>,
    poll_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    oauth_client_id: Option<String>,
    oauth_client_secret: Option<String>,
    database: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    progress_every_segments: Option<u64>,
}

/// Timing and sizing of the transfer.
#[derive(Debug, Clone)]
pub(crate) struct Tuning {
    /// Tries per request, the first included (documented default 10 [EXP-22R2]).
    pub(crate) max_tries: u32,
    /// First back-off; doubled on every retry, jittered.
    pub(crate) retry_delay: Duration,
    /// Back-off cap.
    pub(crate) retry_max_delay: Duration,
    /// Records per segment.
    pub(crate) segment_size: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) poll_timeout: Duration,
    pub(crate) request_timeout: Duration,
    /// A progress line every this many segments.
    pub(crate) progress_every: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_tries: 10,
            retry_delay: Duration::from_millis(1000),
            retry_max_delay: Duration::from_millis(30_000),
            segment_size: 500,
            poll_interval: Duration::from_millis(2000),
            poll_timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(120),
            progress_every: 10,
        }
    }
}

/// How the differential baseline was asked for on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChangeOptions {
    /// `-changes`: false means a full export.
    pub(crate) differential: bool,
    /// `-changesPeriod`, as a number of days back (sign dropped).
    pub(crate) period_days: Option<u32>,
    /// `-changesSince`.
    pub(crate) since: Option<NaiveDate>,
}

/// The resolved settings of one run.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Instance base URL without a trailing slash.
    pub(crate) url: String,
    pub(crate) user: String,
    pub(crate) refresh_token: String,
    /// `-endpoint`, without a leading slash; `None` = ask the database, then the default.
    pub(crate) endpoint: Option<String>,
    pub(crate) changes: ChangeOptions,
    pub(crate) connection_test: bool,
    /// Selected data types, in the documented order.
    pub(crate) data_types: Vec<DataType>,
    pub(crate) source: Source,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) tuning: Tuning,
    pub(crate) log_file: Option<PathBuf>,
    pub(crate) log_level: Level,
    /// `--dry-run DIR`: write the segments there, send nothing.
    pub(crate) dry_run: Option<PathBuf>,
}

impl Settings {
    /// Resolves the settings: flags > environment (read by clap) > configuration file > defaults.
    pub(crate) fn resolve(cli: Cli) -> Result<Settings, ExportError> {
        let (file, file_dir) = match &cli.config {
            Some(path) => (read_config(path)?, path.parent().map(Path::to_path_buf)),
            None => (ConfigFile::default(), None),
        };
        let config_path = cli.config.clone().unwrap_or_default();
        let bad = |reason: String| ExportError::Config {
            path: config_path.clone(),
            reason,
        };

        let defaults = Tuning::default();
        let tuning = Tuning {
            max_tries: file.max_tries.unwrap_or(defaults.max_tries),
            retry_delay: file
                .retry_delay_ms
                .map_or(defaults.retry_delay, Duration::from_millis),
            retry_max_delay: file
                .retry_max_delay_ms
                .map_or(defaults.retry_max_delay, Duration::from_millis),
            segment_size: file.segment_size.unwrap_or(defaults.segment_size),
            poll_interval: file
                .poll_interval_ms
                .map_or(defaults.poll_interval, Duration::from_millis),
            poll_timeout: file
                .poll_timeout_secs
                .map_or(defaults.poll_timeout, Duration::from_secs),
            request_timeout: file
                .request_timeout_secs
                .map_or(defaults.request_timeout, Duration::from_secs),
            progress_every: file
                .progress_every_segments
                .unwrap_or(defaults.progress_every),
        };
        if tuning.progress_every == 0 {
            return Err(bad("progress_every_segments must be at least 1".into()));
        }
        if !(1..=1000).contains(&tuning.max_tries) {
            return Err(bad("max_tries must be between 1 and 1000".into()));
        }
        if !(1..=100_000).contains(&tuning.segment_size) {
            return Err(bad("segment_size must be between 1 and 100000".into()));
        }
        if tuning.retry_delay > tuning.retry_max_delay {
            return Err(bad(
                "retry_delay_ms must not exceed retry_max_delay_ms".into()
            ));
        }
        if tuning.poll_interval.is_zero() {
            return Err(bad("poll_interval_ms must be at least 1".into()));
        }
        if tuning.request_timeout.is_zero() {
            return Err(bad("request_timeout_secs must be at least 1".into()));
        }

        let client_id = cli
            .oauth_client_id
            .or(file.oauth_client_id)
            .filter(|v| !v.is_empty())
            .ok_or(ExportError::MissingClientCredential {
                what: "id",
                env: "SNOW_OAUTH_CLIENT_ID",
                key: "oauth_client_id",
            })?;
        let client_secret = cli
            .oauth_client_secret
            .or(file.oauth_client_secret)
            .filter(|v| !v.is_empty())
            .ok_or(ExportError::MissingClientCredential {
                what: "secret",
                env: "SNOW_OAUTH_CLIENT_SECRET",
                key: "oauth_client_secret",
            })?;

        let relative_to_file = |path: PathBuf| match &file_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        };
        let source_path = match (cli.db, file.database) {
            (Some(path), _) => path,
            (None, Some(path)) => relative_to_file(path),
            (None, None) => {
                let sample = PathBuf::from(SAMPLE_SOURCE);
                if !sample.is_file() {
                    return Err(ExportError::NoDefaultSource { sample });
                }
                sample
            }
        };
        let ca_file = cli.ca_file.or(file.ca_file.map(relative_to_file));

        let url = normalise_url(&cli.url)?;
        let refresh_token = match (cli.token, &cli.token_file) {
            (_, Some(path)) => read_token_file(path)?,
            (Some(token), None) => token,
            (None, None) => {
                return Err(ExportError::Usage(
                    "no refresh token: give -token, --token-file or SNOW_REFRESH_TOKEN".into(),
                ));
            }
        };
        let endpoint = cli.endpoint.map(|e| normalise_endpoint(&e)).transpose()?;

        let data_types = DataType::ALL
            .into_iter()
            .filter(|dt| match dt {
                DataType::HardwareInventory => cli.with_hardware_inventory.unwrap_or(true),
                DataType::Contracts => cli.with_contracts.unwrap_or(true),
                DataType::InstalledApplications => cli.with_applications.unwrap_or(true),
            })
            .collect();

        Ok(Settings {
            url,
            user: cli.user,
            refresh_token,
            endpoint,
            changes: ChangeOptions {
                differential: cli.changes.unwrap_or(true),
                period_days: cli
                    .changes_period
                    .map(|days| u32::try_from(days.unsigned_abs()).unwrap_or(u32::MAX)),
                since: cli.changes_since,
            },
            connection_test: cli.connection_test.unwrap_or(false),
            data_types,
            source: Source::from_path(source_path),
            client_id,
            client_secret,
            ca_file,
            tuning,
            log_file: cli.log_file,
            log_level: Level::from_counts(cli.verbose, cli.quiet),
            dry_run: cli.dry_run,
        })
    }
}

fn read_config(path: &Path) -> Result<ConfigFile, ExportError> {
    let bad = |reason: String| ExportError::Config {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        match line {
            Some(line) => bad(format!("line {line}: {}", e.message())),
            None => bad(e.message().to_owned()),
        }
    })
}

/// The refresh token from `--token-file`: its first non-blank line, trimmed.
fn read_token_file(path: &Path) -> Result<String, ExportError> {
    let bad =
        |reason: String| ExportError::Usage(format!("--token-file '{}': {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| bad("the file holds no token".into()))
}

fn normalise_url(url: &str) -> Result<String, ExportError> {
    // The mistakes an operator makes most: no scheme (`instance:8443`, `127.0.0.1:8080`).
    let missing_scheme = || {
        ExportError::Usage(format!(
            "-url '{url}' has no scheme: write it as https://{url} (or http://{url} for a \
             plain-HTTP instance)"
        ))
    };
    if !url.contains("://") {
        if reqwest::Url::parse(&format!("https://{url}")).is_ok() {
            return Err(missing_scheme());
        }
        return Err(ExportError::Usage(format!(
            "-url '{url}' is not a URL: write it as https://HOST or https://HOST:PORT"
        )));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ExportError::Usage(format!("-url '{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(ExportError::Usage(format!(
            "-url '{url}' must be an https:// (or http://) URL"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ExportError::Usage(format!("-url '{url}' names no host")));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn normalise_endpoint(endpoint: &str) -> Result<String, ExportError> {
    let trimmed = endpoint.trim().trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(ExportError::Usage("-endpoint must not be empty".into()));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(extra: &[&str]) -> Cli {
        let mut args = vec![
            "x",
            "--url",
            "https://i.example/",
            "--user",
            "u",
            "--token",
            "t",
            "--db",
            "some.sqlite",
            "--oauth-client-id",
            "id",
            "--oauth-client-secret",
            "s",
        ];
        args.extend(extra);
        Cli::try_parse_from(args).expect("test command line parses")
    }

    fn config_file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).expect("write config");
        (dir, path.to_string_lossy().into_owned())
    }

    #[test]
    fn defaults_apply() {
        let s = Settings::resolve(cli(&[])).expect("resolves");
        assert_eq!(s.url, "https://i.example");
        assert_eq!(s.tuning.max_tries, 10);
        assert_eq!(s.tuning.segment_size, 500);
        assert!(s.changes.differential);
        assert_eq!(s.data_types, DataType::ALL.to_vec());
    }

    #[test]
    fn config_file_keys_apply_and_relative_database_follows_the_file() {
        let (dir, path) = config_file(
            "max_tries = 3\nsegment_size = 2\nretry_delay_ms = 10\ndatabase = \"db.sqlite\"\n",
        );
        let mut args = vec![
            "x",
            "--url",
            "https://i",
            "--user",
            "u",
            "--token",
            "t",
            "--config",
        ];
        args.push(&path);
        args.extend(["--oauth-client-id", "a", "--oauth-client-secret", "b"]);
        let s = Settings::resolve(Cli::try_parse_from(args).expect("parses")).expect("resolves");
        assert_eq!(s.tuning.max_tries, 3);
        assert_eq!(s.tuning.segment_size, 2);
        assert_eq!(s.tuning.retry_delay, Duration::from_millis(10));
        assert_eq!(s.source, Source::from_path(dir.path().join("db.sqlite")));
    }

    #[test]
    fn unknown_config_key_is_a_usage_error() {
        let (_dir, path) = config_file("max_retries = 3\n");
        let err = Settings::resolve(cli(&["--config", &path])).expect_err("unknown key");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("max_retries"), "{err}");
    }

    #[test]
    fn flags_win_over_config_for_client_credentials() {
        let (_dir, path) = config_file("oauth_client_id = \"from-file\"\n");
        let s = Settings::resolve(cli(&["--config", &path])).expect("resolves");
        assert_eq!(s.client_id, "id");
    }

    #[test]
    fn bad_url_is_a_usage_error() {
        let mut c = cli(&[]);
        c.url = "ftp://x".into();
        assert_eq!(Settings::resolve(c).expect_err("ftp").exit_code(), 2);
        for (url, hint) in [
            ("127.0.0.1:8080", "write it as https://127.0.0.1:8080"),
            ("instance.example", "has no scheme"),
            ("https://", "is not a URL"),
        ] {
            let mut c = cli(&[]);
            c.url = url.into();
            let err = Settings::resolve(c).expect_err(url);
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(hint), "{url}: {err}");
        }
    }

    #[test]
    fn token_file_supplies_the_refresh_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "\n  secret-refresh  \n").expect("write");
        let mut c = cli(&[]);
        c.token = None;
        c.token_file = Some(path.clone());
        assert_eq!(
            Settings::resolve(c).expect("resolves").refresh_token,
            "secret-refresh"
        );
        std::fs::write(&path, " \n").expect("write");
        let mut c = cli(&[]);
        c.token = None;
        c.token_file = Some(path);
        let err = Settings::resolve(c).expect_err("empty");
        assert!(err.to_string().contains("holds no token"), "{err}");
    }

    #[test]
    fn excluded_data_types_keep_the_documented_order() {
        let s = Settings::resolve(cli(&["--with-hardware-inventory", "false"])).expect("resolves");
        assert_eq!(
            s.data_types,
            vec![DataType::Contracts, DataType::InstalledApplications]
        );
    }

    #[test]
    fn changes_period_sign_is_dropped() {
        let s = Settings::resolve(cli(&["--changes-period", "-7"])).expect("resolves");
        assert_eq!(s.changes.period_days, Some(7));
        let s = Settings::resolve(cli(&["--changes-period", "7"])).expect("resolves");
        assert_eq!(s.changes.period_days, Some(7));
    }
}
