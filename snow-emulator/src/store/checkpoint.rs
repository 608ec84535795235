//! Checkpoints on a thread of their own. In WAL mode a commit appends pages to the log, and a
//! checkpoint copies them into the database file. Run by the committing connection
//! (SQLite's auto-checkpoint), that copy and its fsync were a step of every few worker
//! commits; here a second connection copies them (`PRAGMA wal_checkpoint(PASSIVE)`, which
//! never blocks a writer or reader) on the other core while the worker goes on.
//!
//! A passive checkpoint copies the log but cannot start it over: SQLite reuses the log from
//! its start only when a writer begins while everything is copied, and the worker rarely
//! pauses that long (measured at 10 %: the log grew to 270 MB). So the main connection keeps
//! its own auto-checkpoint at [`MAIN_PAGES`]: when it runs, the thread has copied nearly
//! everything, so it copies little, and the next writer starts the log over. (A `RESTART`
//! checkpoint from this thread instead blocked the worker: the full export at 10 % took
//! 11.4 s against 5.7 s.)

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;

/// How often the thread looks at the log.
const INTERVAL: Duration = Duration::from_millis(100);

/// The main connection's own auto-checkpoint, in pages (64 MiB of 4 KiB pages).
pub const MAIN_PAGES: i64 = 16_384;

/// Runs checkpoints of the database at `path` until the returned sender is dropped.
pub fn spawn(path: &str) -> Result<Sender<()>> {
    let conn = Connection::open(path)
        .with_context(|| format!("failed to open database {path} for checkpoints"))?;
    conn.execute_batch("PRAGMA busy_timeout=5000; PRAGMA synchronous=FULL;")?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || {
            // A message or a dropped sender stops the thread.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                if let Err(e) = checkpoint(&conn) {
                    tracing::warn!(error = %e, "background checkpoint failed");
                }
            }
        })
        .context("failed to start the checkpoint thread")?;
    Ok(stop)
}

/// One passive checkpoint: copies what no reader still needs; returns (log frames,
/// frames copied).
pub fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_copies_the_log_into_the_database_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let path = path.to_str().expect("utf-8 path");
        let main = Connection::open(path).expect("open");
        main.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x TEXT);",
        )
        .expect("schema");
        for i in 0..200 {
            main.execute("INSERT INTO t VALUES (?1)", [format!("{i:0>500}")])
                .expect("insert");
        }
        let file_len = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(file_len() < 50_000, "nothing copied yet: {}", file_len());
        let stop = spawn(path).expect("spawn");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Only the thread checkpoints: the rows reach the database file through it.
        while file_len() < 100_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let copied_all = file_len() >= 100_000;
        drop(stop);
        assert!(copied_all, "the log was never fully copied");
    }
}
