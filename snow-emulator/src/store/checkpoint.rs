//! Checkpoints on a thread of their own. In WAL mode a commit appends pages to the log, and a
//! checkpoint copies them into the database file. Run by the committing connection
//! (SQLite's auto-checkpoint), that copy and its fsync were a step of every few worker
//! commits; here a second connection copies them (`PRAGMA wal_checkpoint(PASSIVE)`, which
//! never blocks a writer or reader) on the other core while the worker goes on.
//!
//! A passive checkpoint copies the log but cannot start it over: SQLite reuses the log from
//! its start only when a writer begins while everything is copied, and the worker rarely
//! pauses that long (measured at 10 %: the log grew to 270 MB). So once the log passes
//! [`RESTART_PAGES`], right after a checkpoint that copied nearly all of it, the thread holds
//! the writers' lock (the store's connection mutex, taken between two Import Transactions)
//! for one more passive checkpoint: it copies only what was committed meanwhile, so its
//! fsync finds little to write, and the next writer starts the log over. Before, the main
//! connection's auto-checkpoint did this step inside a worker commit, where its fsync waited
//! for everything the thread had just written (measured at 20 %: the worker spent about
//! 1.1 s of 7 s blocked in that fsync). The auto-checkpoint stays, at [`MAIN_PAGES`], as a
//! bound should the thread fall behind. (A `RESTART` checkpoint from this thread instead
//! blocked the worker through SQLite's busy handler: the full export at 10 % took 11.4 s
//! against 5.7 s.)

use std::sync::Weak;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;

use super::writers::Writers;

/// How often the thread looks at the log.
const INTERVAL: Duration = Duration::from_millis(100);

/// The log's length, in pages, from which the thread starts it over (64 MiB of 4 KiB pages).
pub const RESTART_PAGES: i64 = 16_384;

/// The main connection's own auto-checkpoint, in pages: a bound, reached only if the thread
/// falls behind.
pub const MAIN_PAGES: i64 = 4 * RESTART_PAGES;

/// Runs checkpoints of the database at `path` until the returned sender is dropped.
/// `writers` is the connection every writer holds (see the module's documentation).
pub fn spawn(path: &str, writers: Weak<Writers>) -> Result<Sender<()>> {
    let conn = super::open_file(path)
        .with_context(|| format!("failed to open database {path} for checkpoints"))?;
    conn.execute_batch("PRAGMA busy_timeout=5000; PRAGMA synchronous=FULL;")?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || {
            // A message or a dropped sender stops the thread.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                if let Err(e) = step(&conn, &writers) {
                    tracing::warn!(error = %e, "background checkpoint failed");
                }
            }
        })
        .context("failed to start the checkpoint thread")?;
    Ok(stop)
}

/// One passive checkpoint, and when the log has grown long, a second one while no one
/// writes, so that the next writer starts the log over.
fn step(conn: &Connection, writers: &Weak<Writers>) -> rusqlite::Result<()> {
    step_at(conn, writers, RESTART_PAGES)
}

/// [`step`], starting the log over from `restart_pages`.
fn step_at(conn: &Connection, writers: &Weak<Writers>, restart_pages: i64) -> rusqlite::Result<()> {
    let (log, _) = checkpoint(conn)?;
    if log < restart_pages {
        return Ok(());
    }
    let Some(writers) = writers.upgrade() else {
        return Ok(());
    };
    // Taken like any writer's, so calls queued meanwhile still run when it is let go.
    let _no_writer = writers.lock();
    checkpoint(conn).map(drop)
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
        let stop = spawn(path, Weak::new()).expect("spawn");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Only the thread checkpoints: the rows reach the database file through it.
        while file_len() < 100_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let copied_all = file_len() >= 100_000;
        drop(stop);
        assert!(copied_all, "the log was never fully copied");
    }

    /// Frames in the log after one more passive checkpoint (which copies, never restarts).
    fn log_frames(conn: &Connection) -> i64 {
        checkpoint(conn).expect("checkpoint").0
    }

    #[test]
    fn past_the_bound_a_step_waits_for_the_writers_and_the_next_commit_starts_the_log_over() {
        use std::sync::Arc;
        use std::sync::mpsc::channel;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let path = path.to_str().expect("utf-8 path").to_owned();
        let main = Connection::open(&path).expect("open");
        main.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x TEXT);",
        )
        .expect("schema");
        let write = |conn: &Connection, n: usize| {
            for i in 0..n {
                conn.execute("INSERT INTO t VALUES (?1)", [format!("{i:0>2000}")])
                    .expect("insert");
            }
        };
        write(&main, 100);
        let writers = Arc::new(Writers::new(main));
        let long = log_frames(&Connection::open(&path).expect("open"));
        assert!(long >= 100, "one page or more per row: {long}");
        // Runs a step on its own connection in a thread; its end is sent on the channel.
        let spawn_step = |bound: i64| {
            let (done, ended) = channel();
            let (path, weak) = (path.clone(), Arc::downgrade(&writers));
            std::thread::spawn(move || {
                let conn = Connection::open(&path).expect("open");
                let _ = done.send(step_at(&conn, &weak, bound).is_ok());
            });
            ended
        };

        // Under the bound a step never touches the writers' lock.
        let held = writers.lock();
        let ended = spawn_step(long + 1);
        assert_eq!(ended.recv_timeout(Duration::from_secs(10)), Ok(true));

        // Past it, the step waits for the writer to finish, then copies all.
        let ended = spawn_step(long);
        assert!(
            ended.recv_timeout(Duration::from_millis(300)).is_err(),
            "the step went on while a writer held the lock"
        );
        write(&held, 100);
        drop(held);
        assert_eq!(ended.recv_timeout(Duration::from_secs(10)), Ok(true));
        // Everything was copied, so the next commit starts the log from its beginning.
        write(&writers.lock(), 1);
        let after = log_frames(&Connection::open(&path).expect("open"));
        assert!(after < 10, "the log was started over: {after} frames");
    }
}
