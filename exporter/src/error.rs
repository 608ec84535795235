//! The failures the utility expects, and the one place that maps them to exit codes.
//!
//! Every way a run can end other than success is a variant of [`ExportError`]. Its message is
//! what the operator reads in the log: a lower-case fragment naming the step that failed
//! ("licence check failed: …", "contracts export failed: …"). Programming errors are not in
//! here; nothing from outside the process is `unwrap`ped.

use std::path::PathBuf;

use crate::exit_codes;

/// An expected failure of one run of the utility.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    /// A command-line value that parsed but makes no sense (exit 2).
    #[error("invalid command line: {0}")]
    Usage(String),

    /// The `--config` file cannot be read or holds an unknown key or a bad value (exit 2).
    #[error("invalid configuration file '{path}': {reason}")]
    Config { path: PathBuf, reason: String },

    /// No OAuth client id or secret from flags, environment or configuration file (exit 2).
    #[error(
        "missing OAuth client {what}: set {env} or `{key}` in the configuration file (--config)"
    )]
    MissingClientCredential {
        what: &'static str,
        env: &'static str,
        key: &'static str,
    },

    /// No `--db` and the bundled sample is not below the current directory (exit 2).
    #[error(
        "no FNMS operations database given and the bundled sample '{sample}' is not found \
         relative to the current directory; pass --db PATH"
    )]
    NoDefaultSource { sample: PathBuf },

    /// `--log-file` cannot be opened for appending (exit 2).
    #[error("cannot open log file '{path}': {source}")]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The operations database cannot be opened at all (exit 1). Reported when the licence
    /// check first needs the database, i.e. before the credential test.
    #[error("database check failed: cannot open FNMS operations database '{path}': {reason}")]
    DatabaseOpen { path: PathBuf, reason: String },

    /// Step 1 (exit 1).
    #[error("licence check failed: {0}")]
    Licence(String),

    /// Step 2 (exit 1).
    #[error("credential test failed: {0}")]
    Credential(String),

    /// Step 3 (exit 1).
    #[error("instance readiness check failed: {0}")]
    NotReady(String),

    /// Step 4 (exit 1).
    #[error("database check failed: {reason} (database '{path}')")]
    DatabaseCheck { path: PathBuf, reason: String },

    /// Step 5, one data type (exit 1); the remaining data types are skipped.
    #[error("{data_type} export failed: {reason}")]
    Export {
        data_type: &'static str,
        reason: String,
    },
}

impl ExportError {
    /// The process exit code of this failure. The only mapping from failures to exit codes.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            ExportError::Usage(_)
            | ExportError::Config { .. }
            | ExportError::MissingClientCredential { .. }
            | ExportError::NoDefaultSource { .. }
            | ExportError::LogFile { .. } => exit_codes::USAGE,
            ExportError::DatabaseOpen { .. }
            | ExportError::Licence(_)
            | ExportError::Credential(_)
            | ExportError::NotReady(_)
            | ExportError::DatabaseCheck { .. }
            | ExportError::Export { .. } => exit_codes::EXPORT_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_and_export_failures_exit_1() {
        let usage = ExportError::Usage("x".into());
        let missing = ExportError::MissingClientCredential {
            what: "id",
            env: "SNOW_OAUTH_CLIENT_ID",
            key: "oauth_client_id",
        };
        let licence = ExportError::Licence("not licensed".into());
        let export = ExportError::Export {
            data_type: "contracts",
            reason: "x".into(),
        };
        assert_eq!(usage.exit_code(), 2);
        assert_eq!(missing.exit_code(), 2);
        assert_eq!(licence.exit_code(), 1);
        assert_eq!(export.exit_code(), 1);
        assert_eq!(licence.to_string(), "licence check failed: not licensed");
        assert_eq!(export.to_string(), "contracts export failed: x");
    }
}
