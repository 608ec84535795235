//! SQLite storage driven by the catalog. One SQLite table per class hierarchy root (or per
//! table declared `storage = "own"`), real typed columns, cached prepared statements.
//!
//! One connection behind a mutex serves the HTTP handlers and the worker; async code reaches
//! it through [`Store::call`], which runs the closure on the blocking pool. Every state change
//! is committed before the caller acknowledges it (WAL, `synchronous=FULL`).
//!
//! A second connection, only for reading ([`Store::read`]), answers the lookups every request
//! makes before its handler runs (its credentials, its rate limit): WAL lets it read the last
//! committed state while the worker holds the first one for a whole Import Transaction, so a
//! request never waits for the worker just to be authenticated.

mod checkpoint;
mod generation;
mod log_vfs;
mod out_of_row;
mod query;
mod record;
mod schema;
pub mod seed;
mod writers;

use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::types::Value;

use crate::catalog::{Catalog, ColumnType};
use crate::clock::{self, Clock};
use writers::{Writers, WritersGuard};

pub use generation::{generation, wrote};
pub use query::{EncodedQuery, Op, parse_encoded_query};
pub use record::*;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The connection every writer takes in turn ([`writers`]).
    conn: Arc<Writers>,
    /// The read-only connection ([`Store::read`]); none for an in-memory database, which a
    /// second connection cannot share.
    reader: Option<Mutex<Connection>>,
    /// The write-ahead log of a file database ([`Store::sync_log`]).
    log_path: Option<std::path::PathBuf>,
    catalog: Arc<Catalog>,
    clock: Clock,
    /// What a caller keeps between uses of this database (the worker's transform caches),
    /// opaque to the store; see [`Store::keep`].
    kept: Mutex<Option<Box<dyn Any + Send>>>,
    /// Values handed from one user of a record to the next (see [`Store::hand_over`]).
    handed: Mutex<VecDeque<(String, Box<dyn Any + Send>)>>,
    /// Stops the checkpoint thread when the store is dropped ([`checkpoint`]).
    _checkpoints: Option<Mutex<std::sync::mpsc::Sender<()>>>,
}

/// How many handed-over values are held; the oldest is dropped first.
const HANDED: usize = 8;

/// The locked connection; while it lives, the instance clock is the thread's current clock
/// (see [`crate::clock`]).
pub struct Locked<'a> {
    conn: Held<'a>,
    _clock: clock::Entered,
}

enum Held<'a> {
    Writers(WritersGuard<'a>),
    Reader(MutexGuard<'a, Connection>),
}

impl std::ops::Deref for Locked<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match &self.conn {
            Held::Writers(conn) => conn,
            Held::Reader(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match &mut self.conn {
            Held::Writers(conn) => conn,
            Held::Reader(conn) => conn,
        }
    }
}

impl Store {
    /// Opens (or creates) the database and brings its schema up to the catalog.
    pub fn open(path: &str, catalog: Arc<Catalog>) -> Result<Self> {
        let conn = if path == ":memory:" {
            Connection::open_in_memory().map_err(Into::into)
        } else {
            open_file(path)
        }
        .with_context(|| format!("failed to open database {path}"))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; \
             PRAGMA foreign_keys=OFF; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;",
        )?;
        conn.set_prepared_statement_cache_capacity(256);
        schema::migrate(&conn, &catalog).context("failed to create the schema")?;
        let file = path != ":memory:";
        if file {
            conn.pragma_update(None, "wal_autocheckpoint", checkpoint::MAIN_PAGES)?;
        }
        let conn = Arc::new(Writers::new(conn));
        let (checkpoints, reader) = if file {
            let writers = Arc::downgrade(&conn);
            (
                Some(checkpoint::spawn(path, writers)?),
                Some(open_reader(path)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                reader: reader.map(Mutex::new),
                log_path: file.then(|| format!("{path}-wal").into()),
                catalog,
                clock: Clock::default(),
                kept: Mutex::new(None),
                handed: Mutex::new(VecDeque::new()),
                _checkpoints: checkpoints.map(Mutex::new),
            }),
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The instance clock (`/_emulator/clock`).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The connection, for blocking code (the worker, closures given to [`Store::call`]).
    /// A panic elsewhere while holding the lock does not make the data unusable: SQLite rolls
    /// back the unfinished transaction, so a poisoned lock is simply taken over.
    pub fn lock(&self) -> Locked<'_> {
        Locked {
            conn: Held::Writers(self.inner.conn.lock()),
            _clock: clock::enter(&self.inner.clock),
        }
    }

    /// The read-only connection ([`Store::read`]), or the only one for an in-memory database.
    pub fn read_lock(&self) -> Locked<'_> {
        let Some(reader) = &self.inner.reader else {
            return self.lock();
        };
        Locked {
            conn: Held::Reader(reader.lock().unwrap_or_else(PoisonError::into_inner)),
            _clock: clock::enter(&self.inner.clock),
        }
    }

    /// Runs the read-only `f` on the blocking pool with a connection that sees every committed
    /// change and never waits for a writer (see the module's documentation). For lookups that
    /// must not queue behind the worker; anything that writes uses [`Store::call`].
    pub async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &Catalog) -> R + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = store.read_lock();
            f(&conn, store.catalog())
        })
        .await
        .context("storage task failed")
    }

    /// Makes every commit made so far durable, without the store lock: an fsync of the
    /// write-ahead log. For a commit made [`unsynced`], before it is acknowledged. A commit
    /// that a checkpoint has meanwhile copied into the database file is durable already
    /// (SQLite syncs the log before a checkpoint and the database file before the log starts
    /// over). Nothing to do for an in-memory database.
    pub fn sync_log(&self) -> std::io::Result<()> {
        match &self.inner.log_path {
            Some(path) => std::fs::File::open(path)?.sync_data(),
            None => Ok(()),
        }
    }

    /// Keeps `value` with this database until [`Store::take_kept`]; it must stay true of this
    /// database only (check it against [`generation`]s before use).
    pub fn keep<T: Any + Send>(&self, value: T) {
        *self
            .inner
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(value));
    }

    /// Takes what was kept, if it is a `T`.
    pub fn take_kept<T: Any + Send>(&self) -> Option<T> {
        let kept = self
            .inner
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        kept.downcast::<T>().ok().map(|b| *b)
    }

    /// Hands `value`, derived from the committed record `sys_id`, to whoever next works on
    /// that record ([`Store::take_handed`]). Only a few are held, newest first; whoever
    /// finds nothing derives it again from the record. Opaque to the store.
    pub fn hand_over<T: Any + Send>(&self, sys_id: &str, value: T) {
        let mut handed = self
            .inner
            .handed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if handed.len() >= HANDED {
            handed.pop_front();
        }
        handed.push_back((sys_id.to_owned(), Box::new(value)));
    }

    /// Takes what was handed over for record `sys_id`, if it is a `T`.
    pub fn take_handed<T: Any + Send>(&self, sys_id: &str) -> Option<T> {
        let mut handed = self
            .inner
            .handed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let i = handed.iter().position(|(id, _)| id == sys_id)?;
        let (_, value) = handed.remove(i)?;
        value.downcast::<T>().ok().map(|b| *b)
    }

    /// Runs `f` with the connection on the blocking thread pool.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection, &Catalog) -> R + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.lock();
            f(&mut conn, store.catalog())
        })
        .await
        .context("storage task failed")
    }

    /// [`Store::call`], but when another caller holds the connection, `f` runs on that
    /// caller's thread as it lets go instead of waiting on a thread of its own ([`writers`]).
    /// For the intake's segments, which the worker then takes up without a thread switch.
    /// `f` runs while another caller's lock is held: it must not take the store's lock.
    pub async fn call_queued<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection, &Catalog) -> R + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let store = self.clone();
        let call = Box::new(move |conn: &mut Connection| {
            // The holder may be a thread that has not entered the instance clock.
            let _clock = clock::enter(&store.inner.clock);
            let _ = answer.send(f(conn, store.catalog()));
        });
        let writers = self.inner.conn.clone();
        tokio::task::spawn_blocking(move || writers.queue(call))
            .await
            .context("storage task failed")?;
        answered.await.context("storage call failed")
    }
}

/// Runs `f`, whose commits skip their fsync (`synchronous=NORMAL`: still safe from a killed
/// process), then restores `FULL`. A caller that acknowledges them makes them durable with
/// [`Store::sync_log`] after releasing the lock, so the fsync does not hold up the worker; the
/// worker's own commits acknowledge nothing and are synced by the next commit that does.
pub fn unsynced<R>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> R,
) -> rusqlite::Result<R> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = f(conn);
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(result)
}

/// Opens a connection to a database file through the VFS that gathers the log's writes
/// ([`log_vfs`]).
fn open_file(path: &str) -> Result<Connection> {
    let vfs = log_vfs::name().map_err(anyhow::Error::msg)?;
    Ok(Connection::open_with_flags_and_vfs(
        path,
        rusqlite::OpenFlags::default(),
        vfs,
    )?)
}

/// The read-only connection of a file database: `query_only`, so a bug cannot write through
/// it; its own small page cache.
fn open_reader(path: &str) -> Result<Connection> {
    let conn =
        open_file(path).with_context(|| format!("failed to open database {path} for reading"))?;
    conn.execute_batch("PRAGMA busy_timeout=5000; PRAGMA query_only=1;")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Deletes every record and the number counters (the caller reseeds).
pub fn wipe(conn: &mut Connection, catalog: &Catalog) -> Result<()> {
    let tx = conn.transaction()?;
    for t in &catalog.physical {
        tx.execute(&format!("DELETE FROM {}", quote(&t.name)), [])?;
        wrote(&t.name);
        for c in t.columns.iter().filter(|c| c.out_of_row) {
            out_of_row::wipe(&tx, &t.name, c)?;
        }
    }
    tx.execute("DELETE FROM _emulator_numbers", [])?;
    tx.commit()?;
    Ok(())
}

/// Quotes an identifier. Identifiers only ever come from the validated catalog; quoting is a
/// second line of defence.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Converts a ServiceNow string value to what the column stores. The empty string is NULL,
/// as on a real instance.
pub fn to_sql(kind: ColumnType, value: &str) -> Result<Value, String> {
    if value.is_empty() {
        return Ok(Value::Null);
    }
    match kind {
        ColumnType::Integer => value
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("'{value}' is not an integer")),
        ColumnType::Boolean => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Integer(1)),
            "false" | "0" | "no" => Ok(Value::Integer(0)),
            _ => Err(format!("'{value}' is not a boolean")),
        },
        ColumnType::DateTime | ColumnType::Date if is_canonical_time(kind, value) => {
            Ok(Value::Text(value.to_owned()))
        }
        ColumnType::DateTime => {
            chrono::NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%d %H:%M:%S")
                .map(|d| Value::Text(d.format("%Y-%m-%d %H:%M:%S").to_string()))
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
                        .map(|d| Value::Text(format!("{} 00:00:00", d.format("%Y-%m-%d"))))
                })
                .map_err(|_| format!("'{value}' is not a date-time (YYYY-MM-DD HH:MM:SS)"))
        }
        ColumnType::Date => chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
            .map(|d| Value::Text(d.format("%Y-%m-%d").to_string()))
            .map_err(|_| format!("'{value}' is not a date (YYYY-MM-DD)")),
        _ => Ok(Value::Text(value.to_owned())),
    }
}

/// Whether `value` is a valid date (`YYYY-MM-DD`) or date-time (`YYYY-MM-DD HH:MM:SS`)
/// already written as [`to_sql`] writes it, so it is stored as it is: checked without
/// chrono's format parser, which costs more than the rest of a field's conversion.
fn is_canonical_time(kind: ColumnType, value: &str) -> bool {
    let b = value.as_bytes();
    let len = if kind == ColumnType::Date { 10 } else { 19 };
    let digits = |at: std::ops::Range<usize>| {
        b[at.clone()]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| (b[at].iter()).fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
    };
    if b.len() != len || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let date = match (digits(0..4), digits(5..7), digits(8..10)) {
        (Some(y), Some(m), Some(d)) => i32::try_from(y)
            .ok()
            .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, m, d)),
        _ => None,
    };
    if date.is_none() || len == 10 {
        return date.is_some();
    }
    if b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return false;
    }
    match (digits(11..13), digits(14..16), digits(17..19)) {
        (Some(h), Some(m), Some(s)) => chrono::NaiveTime::from_hms_opt(h, m, s).is_some(),
        _ => false,
    }
}

/// Converts a stored value back to the string the Table API shows.
pub fn from_sql(kind: ColumnType, value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Integer(i) if kind == ColumnType::Boolean => (*i != 0).to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// A new sys_id: 32 lowercase hex digits. Encoded straight into a buffer: the worker makes
/// one per staging row and record, and `to_string` would go through the formatter.
pub fn new_sys_id() -> String {
    let mut hex = [0u8; uuid::fmt::Simple::LENGTH];
    uuid::Uuid::now_v7()
        .simple()
        .encode_lower(&mut hex)
        .to_owned()
}

pub fn is_sys_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod handed_tests {
    use super::*;

    #[test]
    fn handed_values_are_taken_once_by_record_and_type_and_only_the_newest_are_held() {
        let catalog = Arc::new(crate::catalog::load_embedded().expect("catalog"));
        let store = Store::open(":memory:", catalog).expect("store");
        store.hand_over("a", 1u32);
        assert_eq!(store.take_handed::<String>("a"), None, "another type");
        store.hand_over("a", 1u32);
        assert_eq!(store.take_handed::<u32>("b"), None, "another record");
        assert_eq!(store.take_handed::<u32>("a"), Some(1));
        assert_eq!(store.take_handed::<u32>("a"), None, "taken once");
        for i in 0..=HANDED {
            store.hand_over(&i.to_string(), i);
        }
        assert_eq!(
            store.take_handed::<usize>("0"),
            None,
            "the oldest was dropped"
        );
        assert_eq!(
            store.take_handed::<usize>(&HANDED.to_string()),
            Some(HANDED)
        );
    }
}

#[cfg(test)]
mod reader_tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// A store on a database file (a temporary directory, kept while the store is used).
    fn file_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let catalog = Arc::new(crate::catalog::load_embedded().expect("catalog"));
        let store = Store::open(path.to_str().expect("utf-8"), catalog).expect("store");
        (dir, store)
    }

    #[test]
    fn the_reader_sees_every_commit_and_never_waits_for_the_writer() {
        let (_dir, store) = file_store();
        let users = store.catalog().table("sys_user").expect("sys_user").clone();
        let fields: Fields = [("user_name".to_owned(), "reader.test".to_owned())].into();
        insert(&store.lock(), &users, &fields, "system").expect("insert");
        let count = |conn: &Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM sys_user", [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(count(&store.read_lock()), 1, "a commit is seen at once");

        // The writer holds its connection inside an open transaction, as the worker does
        // for a whole Import Transaction; the reader answers meanwhile from the last commit.
        let mut writer = store.lock();
        let tx = writer.transaction().expect("begin");
        insert(&tx, &users, &fields, "system").expect("insert");
        let (done, seen) = mpsc::channel();
        let reader_store = store.clone();
        std::thread::spawn(move || {
            let _ = done.send(count(&reader_store.read_lock()));
        });
        let counted = seen.recv_timeout(Duration::from_secs(10));
        tx.commit().expect("commit");
        drop(writer);
        assert_eq!(
            counted,
            Ok(1),
            "the reader waited for the writer, or saw uncommitted rows"
        );
        assert_eq!(count(&store.read_lock()), 2);
    }

    #[test]
    fn the_reader_cannot_write() {
        let (_dir, store) = file_store();
        let refused = store
            .read_lock()
            .execute("DELETE FROM sys_user", [])
            .expect_err("query_only");
        assert!(refused.to_string().contains("readonly"), "{refused}");
    }

    #[test]
    fn an_unsynced_commit_restores_full_sync_and_is_synced_after() {
        let (_dir, store) = file_store();
        let users = store.catalog().table("sys_user").expect("sys_user").clone();
        let fields: Fields = [("user_name".to_owned(), "unsynced".to_owned())].into();
        let sync_mode = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
                .expect("pragma")
        };
        let mut conn = store.lock();
        let inner_mode = unsynced(&mut conn, |conn| {
            insert(conn, &users, &fields, "system").expect("insert");
            sync_mode(conn)
        })
        .expect("unsynced");
        assert_eq!(inner_mode, 1, "NORMAL inside");
        assert_eq!(sync_mode(&conn), 2, "FULL again for everyone else");
        drop(conn);
        store.sync_log().expect("the log is synced");
        let memory = Store::open(":memory:", store.inner.catalog.clone()).expect("memory");
        memory.sync_log().expect("nothing to sync in memory");
    }
}

#[cfg(test)]
mod to_sql_tests {
    use super::*;

    /// The slow path alone: what `to_sql` gave before the canonical shortcut.
    fn parsed(kind: ColumnType, value: &str) -> Option<String> {
        let v = value.trim();
        match kind {
            ColumnType::Date => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .ok()
                .map(|d| d.format("%Y-%m-%d").to_string()),
            _ => chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
                .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .map(|d| format!("{} 00:00:00", d.format("%Y-%m-%d")))
                })
                .ok(),
        }
    }

    #[test]
    fn dates_and_times_convert_as_chrono_parses_them() {
        let cases = [
            "2024-02-29 23:59:59",
            "2023-02-29 10:00:00",
            "2024-13-01 00:00:00",
            "2024-12-31 24:00:00",
            "2024-12-31 23:60:00",
            "2024-12-31 23:59:60",
            "0000-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2024-1-01 00:00:00",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:0x",
            " 2024-01-01 00:00:00 ",
            "2024-01-01",
            "2024-02-30",
            "2024/01/01",
            "+2024-01-01",
            "２024-01-01",
            "20240101",
        ];
        for kind in [ColumnType::DateTime, ColumnType::Date] {
            for case in cases {
                let fast = to_sql(kind, case).ok();
                let slow = parsed(kind, case).map(Value::Text);
                assert_eq!(fast, slow, "{kind:?} {case:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sys_ids_are_sys_ids_and_grow_in_the_order_they_are_made() {
        let ids: Vec<String> = (0..1000).map(|_| new_sys_id()).collect();
        assert!(ids.iter().all(|id| is_sys_id(id)), "{:?}", &ids[..3]);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "time-ordered and unique"
        );
    }
}
