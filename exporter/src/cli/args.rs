//! The options as clap parses them, and the text of `--help`.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{ArgAction, Parser, ValueHint};

const DOCUMENTED: &str =
    "Documented options (spelled -url, -changesPeriod, -WithHardwareInventory, …)";
const SOURCE: &str = "FNMS operations database and configuration";
const LOGGING: &str = "Logging";

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 export failed or abandoned, 2 usage error. See --help for details.";

const AFTER_LONG_HELP: &str = "\
The documented options are accepted with a single dash exactly as FlexNet Manager Suite
documents them (-url, -user, -token, -endpoint, -changes, -changesPeriod, -changesSince,
-connectionTest, -withApplications, -withContracts, -WithHardwareInventory; names are
case-insensitive), or as the long options shown above. Booleans are true or false, in any case.

Process (in this order; any failure in steps 1-4 abandons the export):
  1. licence check            LicenseOption 'ServiceNowIntegration' in the operations database
  2. credential test          refresh token traded at {url}/oauth_token.do, connection_test
  3. instance readiness check Scheduled Data Import and Data Source exist; no Import Run or
                              Import Transaction in a state other than succeeded or failed
  4. database check           schema version and the tables the export reads
  5. export                   hardware inventory, then contracts, then installed applications;
                              each one Import Run of segments, polled until complete
With -connectionTest true only steps 1 and 2 run.

Differential export (-changes true, the default): only rows changed on or after the baseline,
which is -changesSince, else now minus -changesPeriod days, else the data type's last
successful export recorded in ServiceNowExportHistory, else none (everything is sent).

Environment:
  SNOW_OAUTH_CLIENT_ID      OAuth client id (overridden by --oauth-client-id)
  SNOW_OAUTH_CLIENT_SECRET  OAuth client secret (overridden by --oauth-client-secret)
  SNOW_REFRESH_TOKEN        OAuth refresh token (overridden by -token; never logged)

Configuration file (--config PATH, TOML, every key optional; flags > environment > file):
  max_tries = 10               tries per request, the first included (documented default 10)
  retry_delay_ms = 1000        first back-off; doubles on each retry, with jitter
  retry_max_delay_ms = 30000   back-off cap (a longer Retry-After is still honoured)
  segment_size = 500           records per segment
  poll_interval_ms = 2000      time between export_status requests
  poll_timeout_secs = 3600     how long to wait for an Import Run to complete
  request_timeout_secs = 120   timeout of one HTTP request
  progress_every_segments = 10 a progress line every N segments
  oauth_client_id = \"…\"        OAuth client id
  oauth_client_secret = \"…\"    OAuth client secret
  database = \"PATH\"            operations database (relative to the configuration file)
  ca_file = \"PATH\"             extra PEM root certificates to trust
Unknown keys are an error.

Default source: without --db or `database`, the bundled sample fixtures/fnms/sample.sql
(with fixtures/fnms/schema.sql) relative to the current directory.

Exit codes:
  0  success (or a passed connection test)
  1  export failed or abandoned: a failed licence check, credential test, instance readiness
     check or database check; segment tries exhausted; return code 30; an Import Run that
     failed or did not complete in time. Remaining data types are skipped.
  2  usage error: bad option or value, bad configuration file, missing OAuth client id or
     secret, no database given and no bundled sample, log file not writable";

/// FlexNet Manager Suite → ServiceNow export utility.
///
/// Exports hardware inventory, contracts and installed applications from an FNMS operations
/// database to a ServiceNow instance running the Flexera Integration app: licence check,
/// credential test, instance readiness check and database check, then a segmented, retried
/// and polled Import Run per data type.
#[derive(Debug, Parser)]
#[command(
    name = "fnmp_servicenow_export",
    version,
    after_help = AFTER_HELP,
    after_long_help = AFTER_LONG_HELP,
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    /// ServiceNow instance URL, e.g. https://YOUR-INSTANCE.service-now.com [-url; mandatory]
    #[arg(long, value_name = "URL", value_hint = ValueHint::Url, help_heading = DOCUMENTED)]
    pub(crate) url: String,

    /// ServiceNow account the token was issued to; logged, not transmitted [-user; mandatory]
    #[arg(long, value_name = "NAME", help_heading = DOCUMENTED)]
    pub(crate) user: String,

    /// OAuth refresh token copied from ServiceNow; visible in the process list, so prefer
    /// --token-file or the environment [-token; mandatory unless --token-file]
    #[arg(long, value_name = "REFRESH_TOKEN", env = "SNOW_REFRESH_TOKEN", hide_env_values = true,
          required_unless_present = "token_file", help_heading = DOCUMENTED)]
    pub(crate) token: Option<String>,

    /// Integration endpoint: api/x_fls_flexera_fnms/integration/fnmstosn or fnmp.do
    /// [-endpoint; default: ServiceNowExportSetting 'Endpoint' in the database, else the
    /// fnmstosn path]
    #[arg(long, value_name = "PATH", help_heading = DOCUMENTED)]
    pub(crate) endpoint: Option<String>,

    /// Differential export (true) or full export (false) [-changes; default true]
    #[arg(long, value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1,
          default_missing_value = "true", help_heading = DOCUMENTED)]
    pub(crate) changes: Option<bool>,

    /// Baseline N days back; documented as a negative number, a positive one means the same
    /// [-changesPeriod]
    #[arg(long, value_name = "-DAYS", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-36_500..=36_500),
          help_heading = DOCUMENTED)]
    pub(crate) changes_period: Option<i64>,

    /// Baseline date, UTC midnight; wins over -changesPeriod [-changesSince]
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date, help_heading = DOCUMENTED)]
    pub(crate) changes_since: Option<NaiveDate>,

    /// Run only the licence check and the credential test [-connectionTest]
    #[arg(long, value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1,
          default_missing_value = "true", help_heading = DOCUMENTED)]
    pub(crate) connection_test: Option<bool>,

    /// Export installed applications [-withApplications; default true]
    #[arg(long, value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1,
          default_missing_value = "true", help_heading = DOCUMENTED)]
    pub(crate) with_applications: Option<bool>,

    /// Export contracts [-withContracts; default true]
    #[arg(long, value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1,
          default_missing_value = "true", help_heading = DOCUMENTED)]
    pub(crate) with_contracts: Option<bool>,

    /// Export hardware inventory [-WithHardwareInventory; default true]
    #[arg(long, value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1,
          default_missing_value = "true", help_heading = DOCUMENTED)]
    pub(crate) with_hardware_inventory: Option<bool>,

    /// FNMS operations database: a SQLite file (opened read-write, never created), or a .sql
    /// script loaded into memory after the schema.sql beside it
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath, help_heading = SOURCE)]
    pub(crate) db: Option<PathBuf>,

    /// Configuration file (TOML); keys below
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath, help_heading = SOURCE)]
    pub(crate) config: Option<PathBuf>,

    /// OAuth client id
    #[arg(long, value_name = "ID", env = "SNOW_OAUTH_CLIENT_ID", hide_env_values = true,
          help_heading = SOURCE)]
    pub(crate) oauth_client_id: Option<String>,

    /// OAuth client secret
    #[arg(long, value_name = "SECRET", env = "SNOW_OAUTH_CLIENT_SECRET",
          hide_env_values = true, help_heading = SOURCE)]
    pub(crate) oauth_client_secret: Option<String>,

    /// Read the refresh token from this file (its first non-blank line, trimmed)
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath, conflicts_with = "token",
          help_heading = SOURCE)]
    pub(crate) token_file: Option<PathBuf>,

    /// Write the segments that would be sent to this folder (one XML file per segment and a
    /// manifest.json) and send nothing; only the licence and database checks run
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath, help_heading = SOURCE)]
    pub(crate) dry_run: Option<PathBuf>,

    /// Extra PEM root certificates to trust for HTTPS (e.g. an emulator's self-signed one)
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath, help_heading = SOURCE)]
    pub(crate) ca_file: Option<PathBuf>,

    /// Also append the log to this file
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath, help_heading = LOGGING)]
    pub(crate) log_file: Option<PathBuf>,

    /// Log more (debug: every request and retry)
    #[arg(short, long, action = ArgAction::Count, help_heading = LOGGING)]
    pub(crate) verbose: u8,

    /// Log less (-q warnings and errors, -qq errors only)
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "verbose",
          help_heading = LOGGING)]
    pub(crate) quiet: u8,
}

fn parse_bool(value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("expected true or false".to_owned())
    }
}

fn parse_date(value: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|e| format!("expected a date as YYYY-MM-DD ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::ffi::OsString;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut all = vec![OsString::from("fnmp_servicenow_export")];
        all.extend(args.iter().map(OsString::from));
        Cli::try_parse_from(crate::cli::translate_documented_options(all))
    }

    const MANDATORY: [&str; 6] = ["-url", "https://x", "-user", "u", "-token", "t"];

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn documented_spellings_parse() {
        let mut args = MANDATORY.to_vec();
        args.extend([
            "-endpoint",
            "fnmp.do",
            "-changes",
            "FALSE",
            "-changesPeriod",
            "-7",
            "-changesSince",
            "2026-01-31",
            "-connectionTest",
            "true",
            "-withApplications",
            "false",
            "-withContracts",
            "True",
            "-WithHardwareInventory",
            "false",
        ]);
        let cli = parse(&args).expect("documented synopsis parses");
        assert_eq!(cli.url, "https://x");
        assert_eq!(cli.user, "u");
        assert_eq!(cli.token.as_deref(), Some("t"));
        assert_eq!(cli.endpoint.as_deref(), Some("fnmp.do"));
        assert_eq!(cli.changes, Some(false));
        assert_eq!(cli.changes_period, Some(-7));
        assert_eq!(
            cli.changes_since,
            NaiveDate::from_ymd_opt(2026, 1, 31),
            "changesSince"
        );
        assert_eq!(cli.connection_test, Some(true));
        assert_eq!(cli.with_applications, Some(false));
        assert_eq!(cli.with_contracts, Some(true));
        assert_eq!(cli.with_hardware_inventory, Some(false));
    }

    #[test]
    fn long_options_parse() {
        let cli = parse(&[
            "--url",
            "https://x",
            "--user",
            "u",
            "--token",
            "t",
            "--changes-period",
            "-3",
            "--with-hardware-inventory",
            "false",
            "--connection-test",
            "--db",
            "a.sql",
            "-vv",
        ])
        .expect("long options parse");
        assert_eq!(cli.changes_period, Some(-3));
        assert_eq!(cli.with_hardware_inventory, Some(false));
        assert_eq!(cli.connection_test, Some(true));
        assert_eq!(cli.db, Some(PathBuf::from("a.sql")));
        assert_eq!(cli.verbose, 2);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for (option, value) in [
            ("-changes", "maybe"),
            ("-changesPeriod", "week"),
            ("-changesSince", "31/01/2026"),
            ("-WithHardwareInventory", "yes"),
        ] {
            let mut args = MANDATORY.to_vec();
            args.extend([option, value]);
            let err = parse(&args).expect_err(option);
            assert_eq!(err.exit_code(), 2, "{option}");
            assert!(err.to_string().contains(value), "{option}: {err}");
        }
    }

    #[test]
    fn mandatory_options_are_required() {
        let err = parse(&["-url", "https://x", "-user", "u"]).expect_err("no token");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--token"), "{err}");
    }
}
