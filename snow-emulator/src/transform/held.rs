//! Statements an engine holds for its life (one Import Transaction): each taken from the
//! connection's statement cache on first use, then bound and stepped directly on every row,
//! and handed back to the cache when the engine ends (so the next transaction's engine does
//! not prepare it again).
//!
//! rusqlite's statement cache hashes and compares the whole SQL text when a statement is
//! taken and again when it is handed back. A map's INSERT names every column of its table,
//! so on small rows that bookkeeping cost about as much as SQLite's own work (a profile at
//! 20 % put the cache's hashing, comparing and returning at about a tenth of the worker;
//! docs/performance.md): hence once per engine, not once per row.

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use rusqlite::{CachedStatement, Connection, Statement};

use crate::store::StoreError;

/// One statement's SQL and the slot it is held in.
#[derive(Debug)]
pub struct Sql {
    slot: usize,
    text: String,
}

/// Hands out slots while an engine's maps are compiled.
#[derive(Debug, Default)]
pub struct Slots(usize);

impl Slots {
    /// A new slot for `text`.
    pub fn sql(&mut self, text: String) -> Sql {
        self.0 += 1;
        Sql {
            slot: self.0 - 1,
            text,
        }
    }

    pub fn count(&self) -> usize {
        self.0
    }
}

/// The statements of one engine, on the connection it works on.
pub struct Held<'conn> {
    conn: &'conn Connection,
    slots: Vec<RefCell<Option<CachedStatement<'conn>>>>,
    /// Statements whose text depends on the row (a map's UPDATE, by the columns it names),
    /// by a key the caller chooses.
    keyed: RefCell<HashMap<(usize, u64), CachedStatement<'conn>>>,
}

impl<'conn> Held<'conn> {
    pub fn new(conn: &'conn Connection, slots: &Slots) -> Self {
        Self {
            conn,
            slots: (0..slots.count()).map(|_| RefCell::default()).collect(),
            keyed: RefCell::default(),
        }
    }

    pub fn conn(&self) -> &'conn Connection {
        self.conn
    }

    /// The statement for `sql`, taken from the statement cache (or prepared) on its first use
    /// in this engine, running `init` on it once, right after it is taken (to bind the
    /// parameters every use shares: SQLite keeps bindings from one execution to the next, so
    /// only the others need binding on each use; the cache clears them when it takes a
    /// statement back). It is reset after each use by rusqlite (`execute`, `query_row`, a
    /// dropped `Rows`), so it is ready again.
    pub fn get_or_init(
        &self,
        sql: &Sql,
        init: impl FnOnce(&mut Statement<'conn>) -> Result<(), StoreError>,
    ) -> Result<RefMut<'_, Statement<'conn>>, StoreError> {
        let cell = self.slots.get(sql.slot).ok_or_else(|| {
            StoreError::Invalid(format!("no slot {} for a held statement", sql.slot))
        })?;
        let mut held = cell
            .try_borrow_mut()
            .map_err(|_| StoreError::Invalid(format!("statement already in use: {}", sql.text)))?;
        if held.is_none() {
            let mut stmt = self.conn.prepare_cached(&sql.text)?;
            init(&mut stmt)?;
            *held = Some(stmt);
        }
        RefMut::filter_map(held, |held| held.as_mut().map(|stmt| &mut **stmt))
            .map_err(|_| StoreError::Invalid(format!("statement not prepared: {}", sql.text)))
    }

    /// The statement held under `key`, prepared from `text()` on the key's first use. One
    /// keyed statement is in use at a time.
    pub fn get_keyed(
        &self,
        key: (usize, u64),
        text: impl FnOnce() -> String,
    ) -> Result<RefMut<'_, Statement<'conn>>, StoreError> {
        let mut keyed = (self.keyed.try_borrow_mut())
            .map_err(|_| StoreError::Invalid("a keyed statement is already in use".into()))?;
        if let Entry::Vacant(vacant) = keyed.entry(key) {
            vacant.insert(self.conn.prepare_cached(&text())?);
        }
        RefMut::filter_map(keyed, |keyed| keyed.get_mut(&key).map(|stmt| &mut **stmt))
            .map_err(|_| StoreError::Invalid(format!("no keyed statement {key:?}")))
    }
}

/// Binds `values` from parameter `after + 1` on: the class names a query's keys are followed
/// by, the same on every use (for [`Held::get_or_init`]).
pub fn bind_after(
    stmt: &mut Statement<'_>,
    after: usize,
    values: &[rusqlite::types::Value],
) -> Result<(), StoreError> {
    for (i, v) in values.iter().enumerate() {
        stmt.raw_bind_parameter(after + i + 1, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory database with `schema`.
    fn database(schema: &str) -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(schema).expect("schema");
        conn
    }

    #[test]
    fn a_held_statement_is_reused_row_after_row_and_across_a_schema_change() {
        let conn = database("CREATE TABLE t (x INTEGER)");
        let mut slots = Slots::default();
        let insert = slots.sql("INSERT INTO t (x) VALUES (?1)".into());
        let count = slots.sql("SELECT count(*) FROM t".into());
        let held = Held::new(&conn, &slots);
        for i in 0..3 {
            held.get_or_init(&insert, |_| Ok(()))
                .expect("insert")
                .execute([i])
                .expect("execute");
        }
        let n: i64 = (held.get_or_init(&count, |_| Ok(())).expect("count"))
            .query_row([], |r| r.get(0))
            .expect("query");
        assert_eq!(n, 3);
        // A held statement survives a change of the schema (SQLite prepares it again).
        conn.execute_batch("ALTER TABLE t ADD COLUMN y TEXT")
            .expect("alter");
        held.get_or_init(&insert, |_| Ok(()))
            .expect("insert")
            .execute([9])
            .expect("after alter");
        let again: i64 = (held.get_or_init(&count, |_| Ok(())).expect("count"))
            .query_row([], |r| r.get(0))
            .expect("query");
        assert_eq!(again, 4);
    }

    #[test]
    fn parameters_bound_once_at_preparation_stay_bound() {
        let conn = database("CREATE TABLE t (x INTEGER, y TEXT)");
        let mut slots = Slots::default();
        let insert = slots.sql("INSERT INTO t (x, y) VALUES (?1, ?2)".into());
        let held = Held::new(&conn, &slots);
        let mut inits = 0;
        for i in 0..3 {
            let mut stmt = held
                .get_or_init(&insert, |s| {
                    inits += 1;
                    Ok(s.raw_bind_parameter(2, "shared")?)
                })
                .expect("insert");
            stmt.raw_bind_parameter(1, i).expect("bind");
            stmt.raw_execute().expect("execute");
        }
        assert_eq!(inits, 1);
        let shared: i64 = conn
            .query_row("SELECT count(*) FROM t WHERE y = 'shared'", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(shared, 3);
    }

    #[test]
    fn the_next_engine_binds_again_what_its_statement_shares() {
        // The cache clears a statement's bindings when it takes it back, so each engine's
        // first use runs `init` again.
        let conn = database("CREATE TABLE t (x INTEGER, y TEXT)");
        let mut slots = Slots::default();
        let insert = slots.sql("INSERT INTO t (x, y) VALUES (?1, ?2)".into());
        for engine in ["first", "second"] {
            let held = Held::new(&conn, &slots);
            for i in 0..2 {
                let mut stmt = held
                    .get_or_init(&insert, |s| Ok(s.raw_bind_parameter(2, engine)?))
                    .expect("insert");
                stmt.raw_bind_parameter(1, i).expect("bind");
                stmt.raw_execute().expect("execute");
            }
        }
        let rows: String = conn
            .query_row(
                "SELECT group_concat(x || '/' || y, ' ') FROM (SELECT x, y FROM t ORDER BY rowid)",
                [],
                |r| r.get(0),
            )
            .expect("rows");
        assert_eq!(rows, "0/first 1/first 0/second 1/second");
    }

    #[test]
    fn a_keyed_statement_is_prepared_once_per_key() {
        let conn = Connection::open_in_memory().expect("open");
        let held = Held::new(&conn, &Slots::default());
        let mut prepared = Vec::new();
        for (key, value) in [((0, 1), 10), ((0, 2), 20), ((0, 1), 11)] {
            let mut text = || {
                prepared.push(key);
                format!("SELECT ?1 + {}", key.1)
            };
            let got: i64 = (held.get_keyed(key, &mut text).expect("keyed"))
                .query_row([value], |r| r.get(0))
                .expect("query");
            assert_eq!(got, value + key.1 as i64);
        }
        assert_eq!(
            prepared,
            [(0, 1), (0, 2)],
            "the third use found the first's statement"
        );
        let _in_use = held.get_keyed((0, 1), String::new).expect("first");
        assert!(
            held.get_keyed((0, 2), String::new).is_err(),
            "one in use at a time"
        );
    }

    #[test]
    fn a_statement_in_use_is_refused_rather_than_shared() {
        let conn = Connection::open_in_memory().expect("open");
        let mut slots = Slots::default();
        let one = slots.sql("SELECT 1".into());
        let held = Held::new(&conn, &slots);
        let _in_use = held.get_or_init(&one, |_| Ok(())).expect("first");
        let second = held.get_or_init(&one, |_| Ok(()));
        assert!(
            matches!(&second, Err(StoreError::Invalid(m)) if m.contains("already in use")),
            "{:?}",
            second.err()
        );
    }
}
