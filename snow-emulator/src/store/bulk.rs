//! Bulk inserts, for the rows a caller writes many of in one transaction and nothing in that
//! transaction reads back (import set rows). In a file database their tables live in a file
//! of their own ([`StoreFile::ImportSets`], attached to every other connection as
//! [`SCHEMA`]) and a thread of their own writes them, with its own connection: its commits
//! take that file's lock and log, so the rows are written on the other core while the caller
//! goes on with its transaction in the main file (docs/performance.md, sixth round).
//!
//! A [`BulkInsert`] queues rows in batches; [`BulkInsert::commit`] waits until the thread
//! has committed them. The caller commits its own transaction after that, so a crash in
//! between leaves rows whose transaction is unfinished: a bulk names what it replaces (the
//! rows of an earlier attempt), deleted in the same commit. A bulk dropped uncommitted is
//! rolled back. In an in-memory database, which a second connection cannot share, the rows
//! are written on the caller's connection, inside the caller's transaction.
//!
//! [`StoreFile::ImportSets`]: crate::catalog::StoreFile::ImportSets

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use anyhow::{Context, Result, anyhow};
use rusqlite::types::Value;
use rusqlite::{CachedStatement, Connection};

/// The name under which the import sets file is attached to the store's connections.
pub const SCHEMA: &str = "import_sets";

/// Rows queued before they are handed to the writer: a hand-over per batch, not per row.
const BATCH_ROWS: usize = 128;

/// The import sets file of the database at `path`.
pub fn file_of(path: &str) -> String {
    format!("{path}-import-sets")
}

/// One column of a queued row.
enum Cell {
    /// The value bound at the start of the bulk ([`Begin::constants`]) stays.
    Keep,
    Null,
    Int(i64),
    /// A range of [`Batch::text`].
    Text(u32, u32),
}

#[derive(Default)]
struct Batch {
    text: String,
    cells: Vec<Cell>,
}

/// What a bulk insert is: its INSERT, and what it does first.
struct Begin {
    /// `INSERT INTO table (columns…) VALUES (?…)`, one parameter per column.
    insert: String,
    width: usize,
    /// A DELETE with one parameter, and its value: the rows this bulk replaces.
    replaces: Option<(String, String)>,
    /// Columns every row has the same value in, bound once (position, value).
    constants: Vec<(usize, Value)>,
}

enum Message {
    Begin(Begin),
    Rows(Batch),
    Commit(SyncSender<Result<(), String>>),
    Abort,
}

/// The thread writing the import sets file; it stops when the store is dropped.
pub struct Writer {
    queue: Sender<Message>,
}

impl Writer {
    /// Opens the file at `path` (whose schema [`super::schema`] made) and starts the thread.
    pub fn spawn(path: &str) -> Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("failed to open database {path} for bulk writes"))?;
        // Its commits are not acknowledged to anyone: they are made durable with the main
        // file's (Store::sync_log).
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; \
             PRAGMA cache_size=-16384;",
        )?;
        conn.pragma_update(None, "wal_autocheckpoint", super::checkpoint::MAIN_PAGES)?;
        let (queue, queued) = mpsc::channel();
        std::thread::Builder::new()
            .name("bulk-writer".into())
            .spawn(move || serve(&conn, &queued))
            .context("failed to start the bulk writer thread")?;
        Ok(Self { queue })
    }
}

/// Serves one bulk after another until the store drops its sender.
fn serve(conn: &Connection, queued: &Receiver<Message>) {
    let mut next = None;
    while let Some(message) = next
        .take()
        .map(Message::Begin)
        .or_else(|| queued.recv().ok())
    {
        match message {
            Message::Begin(begin) => next = bulk(conn, &begin, queued),
            Message::Commit(reply) => {
                let _ = reply.send(Err("no bulk insert had begun".into()));
            }
            Message::Rows(_) | Message::Abort => {}
        }
    }
}

/// One bulk: its rows in one SQLite transaction, committed or rolled back as its end says.
/// A bulk begun before this one ended aborts it, and is returned to be served next.
fn bulk(conn: &Connection, begin: &Begin, queued: &Receiver<Message>) -> Option<Begin> {
    let mut next = None;
    let mut error = None;
    let mut stmt = match conn
        .execute_batch("BEGIN")
        .and_then(|()| start(conn, begin))
    {
        Ok(stmt) => Some(stmt),
        Err(e) => {
            error = Some(e.to_string());
            None
        }
    };
    let reply = loop {
        match queued.recv() {
            Ok(Message::Rows(batch)) => {
                if let (Some(stmt), None) = (&mut stmt, &error)
                    && let Err(e) = write(stmt, &batch, begin.width)
                {
                    error = Some(e.to_string());
                }
            }
            Ok(Message::Commit(reply)) => break Some(reply),
            Ok(Message::Begin(begun)) => {
                next = Some(begun);
                break None;
            }
            Ok(Message::Abort) | Err(_) => break None,
        }
    };
    drop(stmt);
    let committed = match (&reply, error) {
        (Some(_), None) => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
        (_, Some(e)) => Err(e),
        (None, None) => Err("aborted".into()),
    };
    if committed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    if let Some(reply) = reply {
        let _ = reply.send(committed);
    }
    next
}

/// Deletes what the bulk replaces and prepares its INSERT with the constants bound.
fn start<'c>(conn: &'c Connection, begin: &Begin) -> rusqlite::Result<CachedStatement<'c>> {
    if let Some((delete, value)) = &begin.replaces {
        conn.prepare_cached(delete)?.execute([value])?;
    }
    let mut stmt = conn.prepare_cached(&begin.insert)?;
    for (at, value) in &begin.constants {
        stmt.raw_bind_parameter(at + 1, value)?;
    }
    Ok(stmt)
}

/// Inserts a batch's rows with `stmt`, binding what each row does not keep.
fn write(stmt: &mut CachedStatement<'_>, batch: &Batch, width: usize) -> rusqlite::Result<()> {
    for row in batch.cells.chunks(width) {
        for (i, cell) in row.iter().enumerate() {
            let at = i + 1;
            match *cell {
                Cell::Keep => Ok(()),
                Cell::Null => stmt.raw_bind_parameter(at, rusqlite::types::Null),
                Cell::Int(n) => stmt.raw_bind_parameter(at, n),
                Cell::Text(from, to) => {
                    stmt.raw_bind_parameter(at, &batch.text[from as usize..to as usize])
                }
            }?;
        }
        stmt.raw_execute()?;
    }
    Ok(())
}

/// Where a bulk's rows go.
enum Sink<'c> {
    /// The caller's connection, in its transaction (an in-memory database, or a table in
    /// the main file).
    Inline(CachedStatement<'c>),
    Writer(&'c Writer),
}

/// A bulk insert in progress (see the module's documentation). Rows are given a column at a
/// time, in the INSERT's order, then [`BulkInsert::end_row`].
pub struct BulkInsert<'c> {
    sink: Sink<'c>,
    width: usize,
    batch: Batch,
    /// Whether the writer has a bulk begun and not yet ended.
    open: bool,
}

impl<'c> BulkInsert<'c> {
    /// Starts a bulk of `insert` (one parameter per column, `width` of them): on `writer`'s
    /// thread when given, else on `conn`. `replaces` is a DELETE with one parameter and its
    /// value; `constants` are bound once for every row (rows then give [`Self::keep`] there).
    pub fn start(
        writer: Option<&'c Writer>,
        conn: &'c Connection,
        insert: String,
        width: usize,
        replaces: Option<(String, String)>,
        constants: Vec<(usize, Value)>,
    ) -> Result<Self> {
        let begin = Begin {
            insert,
            width,
            replaces,
            constants,
        };
        let sink = match writer {
            Some(writer) => {
                (writer.queue.send(Message::Begin(begin))).map_err(|_| stopped())?;
                Sink::Writer(writer)
            }
            None => Sink::Inline(start(conn, &begin)?),
        };
        Ok(Self {
            open: matches!(sink, Sink::Writer(_)),
            sink,
            width,
            batch: Batch::default(),
        })
    }

    /// The next column keeps the value bound at the start.
    pub fn keep(&mut self) {
        self.batch.cells.push(Cell::Keep);
    }

    /// The next column is `value`, NULL when `None`.
    pub fn text(&mut self, value: Option<&str>) {
        let cell = match value {
            None => Cell::Null,
            Some(s) => {
                let from = self.batch.text.len();
                self.batch.text.push_str(s);
                // A batch's text stays far under 4 GiB (BATCH_ROWS rows).
                Cell::Text(from as u32, self.batch.text.len() as u32)
            }
        };
        self.batch.cells.push(cell);
    }

    pub fn int(&mut self, value: i64) {
        self.batch.cells.push(Cell::Int(value));
    }

    /// Ends a row; every [`BATCH_ROWS`] rows, they are written (or handed to the writer).
    pub fn end_row(&mut self) -> Result<()> {
        debug_assert_eq!(
            self.batch.cells.len() % self.width,
            0,
            "a row of every column"
        );
        if self.batch.cells.len() >= BATCH_ROWS * self.width {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.cells.is_empty() {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Inline(stmt) => {
                write(stmt, &self.batch, self.width)?;
                self.batch.text.clear();
                self.batch.cells.clear();
            }
            Sink::Writer(writer) => {
                let next = Batch {
                    text: String::with_capacity(self.batch.text.capacity()),
                    cells: Vec::with_capacity(self.batch.cells.capacity()),
                };
                let batch = std::mem::replace(&mut self.batch, next);
                writer
                    .queue
                    .send(Message::Rows(batch))
                    .map_err(|_| stopped())?;
            }
        }
        Ok(())
    }

    /// Writes what is queued and, on the writer's thread, waits for its commit. Inline, the
    /// rows are committed with the caller's transaction.
    pub fn commit(mut self) -> Result<()> {
        self.flush()?;
        let Sink::Writer(writer) = &self.sink else {
            return Ok(());
        };
        let (reply, replied) = mpsc::sync_channel(1);
        self.open = false;
        writer
            .queue
            .send(Message::Commit(reply))
            .map_err(|_| stopped())?;
        replied
            .recv()
            .map_err(|_| stopped())?
            .map_err(|e| anyhow!("failed to write the import set rows: {e}"))
    }
}

impl Drop for BulkInsert<'_> {
    /// Uncommitted, the writer's transaction is rolled back.
    fn drop(&mut self) {
        if let (true, Sink::Writer(writer)) = (self.open, &self.sink) {
            let _ = writer.queue.send(Message::Abort);
        }
    }
}

fn stopped() -> anyhow::Error {
    anyhow!("the bulk writer thread has stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERT: &str = "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)";

    /// A file with one table, and the writer of it.
    fn file() -> (tempfile::TempDir, String, Writer) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sets.sqlite");
        let path = path.to_str().expect("utf-8").to_owned();
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (a TEXT UNIQUE, b INTEGER, c TEXT);",
        )
        .expect("schema");
        let writer = Writer::spawn(&path).expect("writer");
        (dir, path, writer)
    }

    fn rows(path: &str, filter: &str) -> i64 {
        let conn = Connection::open(path).expect("open");
        (conn.query_row(&format!("SELECT count(*) FROM t WHERE {filter}"), [], |r| {
            r.get(0)
        }))
        .expect("count")
    }

    /// A bulk of rows `names`, each with its position and the constant `c`, replacing the
    /// rows with that `c`.
    fn bulk<'c>(
        writer: Option<&'c Writer>,
        conn: &'c Connection,
        c: &str,
        names: impl IntoIterator<Item = String>,
    ) -> BulkInsert<'c> {
        let replaces = Some(("DELETE FROM t WHERE c = ?1".to_owned(), c.to_owned()));
        let constants = vec![(2, Value::Text(c.to_owned()))];
        let mut bulk =
            BulkInsert::start(writer, conn, INSERT.into(), 3, replaces, constants).expect("start");
        for (i, name) in names.into_iter().enumerate() {
            bulk.text(Some(&name));
            bulk.int(i as i64);
            bulk.keep();
            bulk.end_row().expect("row");
        }
        bulk
    }

    #[test]
    fn the_writer_commits_a_bulk_replaces_its_earlier_rows_and_rolls_back_a_dropped_or_failed_one()
    {
        let (_dir, path, writer) = file();
        let caller = Connection::open(&path).expect("open");
        let many = (0..300).map(|i| format!("x{i}"));
        bulk(Some(&writer), &caller, "x", many)
            .commit()
            .expect("commit");
        assert_eq!(rows(&path, "c = 'x'"), 300, "three batches and a rest");
        assert_eq!(
            rows(&path, "a = 'x299' AND b = 299"),
            1,
            "each value where it belongs"
        );

        let again = bulk(Some(&writer), &caller, "x", ["y".to_owned()]);
        again.commit().expect("commit");
        assert_eq!(rows(&path, "c = 'x'"), 1, "the earlier rows replaced");

        // Dropped uncommitted, with batches already handed over: nothing stays.
        drop(bulk(
            Some(&writer),
            &caller,
            "x",
            (0..200).map(|i| format!("z{i}")),
        ));
        let duplicate = ["w".to_owned(), "w".to_owned()];
        let failed = bulk(Some(&writer), &caller, "w", duplicate).commit();
        let why = format!("{:#}", failed.expect_err("a UNIQUE violation"));
        assert!(why.contains("UNIQUE"), "{why}");
        assert_eq!(rows(&path, "1"), 1, "only the committed bulk's row");

        // The writer goes on after a failure.
        bulk(Some(&writer), &caller, "v", ["v".to_owned()])
            .commit()
            .expect("commit");
        assert_eq!(rows(&path, "1"), 2);
    }

    #[test]
    fn without_a_writer_rows_are_written_in_the_callers_transaction() {
        let (_dir, path, _writer) = file();
        let caller = Connection::open(&path).expect("open");
        caller.execute_batch("BEGIN").expect("begin");
        bulk(None, &caller, "x", (0..5).map(|i| format!("x{i}")))
            .commit()
            .expect("commit");
        let seen: i64 =
            (caller.query_row("SELECT count(*) FROM t", [], |r| r.get(0))).expect("count");
        assert_eq!(seen, 5, "visible to the caller");
        assert_eq!(rows(&path, "1"), 0, "not committed yet");
        caller.execute_batch("ROLLBACK").expect("rollback");
        assert_eq!(
            rows(&path, "1"),
            0,
            "rolled back with the caller's transaction"
        );
    }
}
