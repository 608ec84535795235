//! The utility's log: what it reports, one line per event, to the caller's writer and
//! optionally appended to `--log-file`.
//!
//! Deliberately not a global `tracing` subscriber: [`crate::run`] may be called several times
//! in one process, concurrently, each with its own writer, so the log is a value passed down.
//! Write errors are ignored — a closed stderr must not turn a good export into a failed one.

use std::fmt::Display;
use std::fs::File;
use std::io::Write;

/// How much the log says. `-v` raises it, `-q` lowers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    /// Level for `-v` given `verbose` times and `-q` given `quiet` times (default: info).
    pub(crate) fn from_counts(verbose: u8, quiet: u8) -> Level {
        match 2 + i16::from(verbose) - i16::from(quiet) {
            i16::MIN..=0 => Level::Error,
            1 => Level::Warn,
            2 => Level::Info,
            _ => Level::Debug,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
        }
    }
}

/// The log of one run.
pub(crate) struct Log {
    out: Box<dyn Write + Send>,
    file: Option<File>,
    level: Level,
    /// `out` is a terminal: progress is drawn as bars rather than logged as lines.
    terminal: bool,
    /// The bar being drawn; log lines are written around it.
    bar: Option<indicatif::ProgressBar>,
}

impl Log {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Log {
        Log {
            out,
            file: None,
            level: Level::Info,
            terminal: false,
            bar: None,
        }
    }

    /// A log whose writer is a terminal: data types show progress bars (on stderr).
    pub(crate) fn on_terminal(out: Box<dyn Write + Send>) -> Log {
        Log {
            terminal: true,
            ..Log::new(out)
        }
    }

    /// Whether progress bars are drawn: on a terminal, at the default level or above.
    pub(crate) fn draws_bars(&self) -> bool {
        self.terminal && self.enabled(Level::Info)
    }

    /// Sets (or clears) the bar the log writes around.
    pub(crate) fn set_bar(&mut self, bar: Option<indicatif::ProgressBar>) {
        self.bar = bar;
    }

    pub(crate) fn set_level(&mut self, level: Level) {
        self.level = level;
    }

    pub(crate) fn set_file(&mut self, file: File) {
        self.file = Some(file);
    }

    pub(crate) fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Writes text as is (help, usage errors) to the caller's writer only.
    pub(crate) fn raw(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    pub(crate) fn line(&mut self, level: Level, message: impl Display) {
        if !self.enabled(level) {
            return;
        }
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let line = format!("{stamp} {} {message}\n", level.label());
        let out = &mut self.out;
        let mut write = || {
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
        if let Some(file) = &mut self.file {
            let _ = file.write_all(line.as_bytes());
        }
    }

    pub(crate) fn error(&mut self, message: impl Display) {
        self.line(Level::Error, message);
    }

    pub(crate) fn warn(&mut self, message: impl Display) {
        self.line(Level::Warn, message);
    }

    pub(crate) fn info(&mut self, message: impl Display) {
        self.line(Level::Info, message);
    }

    pub(crate) fn debug(&mut self, message: impl Display) {
        self.line(Level::Debug, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_only_on_a_terminal_at_the_default_level() {
        assert!(!Log::new(Box::new(std::io::sink())).draws_bars());
        let mut log = Log::on_terminal(Box::new(std::io::sink()));
        assert!(log.draws_bars());
        log.set_level(Level::Warn);
        assert!(!log.draws_bars(), "-q: no bar");
    }

    #[test]
    fn verbosity_counts_map_to_levels() {
        assert_eq!(Level::from_counts(0, 0), Level::Info);
        assert_eq!(Level::from_counts(1, 0), Level::Debug);
        assert_eq!(Level::from_counts(3, 0), Level::Debug);
        assert_eq!(Level::from_counts(0, 1), Level::Warn);
        assert_eq!(Level::from_counts(0, 2), Level::Error);
        assert_eq!(Level::from_counts(0, 9), Level::Error);
    }
}
