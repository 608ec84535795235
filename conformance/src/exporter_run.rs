//! Runs the exporter: in this process through `exporter::run` (fast, the default), or as an
//! external `fnmp_servicenow_export` binary (to check a build as an operator would run it).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

/// Which exporter to run.
#[derive(Debug, Clone, Default)]
pub enum ExporterKind {
    #[default]
    InProcess,
    Binary(PathBuf),
}

/// What a run left behind.
#[derive(Debug, Clone)]
pub struct ExporterOutcome {
    pub exit_code: i32,
    /// The exporter's log (stderr of a binary).
    pub log: String,
}

/// `args` excludes the program name.
pub async fn run_exporter(
    kind: &ExporterKind,
    args: Vec<String>,
) -> anyhow::Result<ExporterOutcome> {
    let kind = kind.clone();
    tokio::task::spawn_blocking(move || match kind {
        ExporterKind::InProcess => {
            let log = SharedLog::default();
            let mut argv: Vec<OsString> = vec!["fnmp_servicenow_export".into()];
            argv.extend(args.into_iter().map(OsString::from));
            let exit_code = exporter::run(argv, Box::new(log.clone()));
            Ok(ExporterOutcome {
                exit_code,
                log: log.contents(),
            })
        }
        ExporterKind::Binary(path) => {
            let output = std::process::Command::new(&path)
                .args(&args)
                .output()
                .with_context(|| format!("cannot run {}", path.display()))?;
            Ok(ExporterOutcome {
                // A binary killed by a signal has no code; report it as a failure.
                exit_code: output.status.code().unwrap_or(-1),
                log: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    })
    .await
    .context("exporter thread panicked")?
}

/// A `Write` the exporter logs into and the runner reads afterwards.
#[derive(Clone, Default)]
struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl SharedLog {
    fn contents(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for SharedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut b) => {
                b.extend_from_slice(buf);
                Ok(buf.len())
            }
            Err(_) => Err(std::io::Error::other("log buffer poisoned")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
