//! A map's inserts, written several rows to a statement.
//!
//! Each INSERT statement opens a cursor on its table and on each index, seeks each index from
//! its root and closes them all again; an INSERT of several rows does that once and appends
//! the later rows next to the earlier ones. A map's new records are therefore held back
//! ([`Pending`]) and written [`BATCH`] at a time, and sooner whenever the engine is about to
//! read the map's table: before it looks a record up there, updates one, or finishes the
//! transaction. Only a map whose table no other map of the engine writes, references or
//! identifies by is batched, so the map's own statements are the only readers to flush for
//! (`Engine::batchable`).
//!
//! A held-back row that cannot be written (a constraint) fails the transaction when it is
//! written, as it failed it before when inserted; the error then names the batch's rows, not
//! the row alone.

use std::cell::OnceCell;

use rusqlite::types::Value;
use rusqlite::{Connection, Statement};

use crate::store::{StoreError, insert_rows_sql};

/// Rows a statement writes at most.
pub const BATCH: usize = 16;

/// The sizes statements are prepared for: a count of rows is written as a sum of these.
const SIZES: [usize; 5] = [16, 8, 4, 2, 1];

/// One map's INSERT texts, one per size in [`SIZES`], each made on its first use: a
/// transaction that writes a few rows needs only some.
pub struct BatchSql {
    physical: String,
    columns: Vec<String>,
    texts: [OnceCell<String>; SIZES.len()],
}

impl BatchSql {
    pub fn new(physical: &str, columns: &[&str]) -> Self {
        Self {
            physical: physical.to_owned(),
            columns: columns.iter().map(|&c| c.to_owned()).collect(),
            texts: Default::default(),
        }
    }

    /// The INSERT of the `i`-th size in [`SIZES`].
    fn text(&self, i: usize) -> &str {
        self.texts[i].get_or_init(|| {
            let columns: Vec<&str> = self.columns.iter().map(String::as_str).collect();
            insert_rows_sql(&self.physical, &columns, SIZES[i])
        })
    }

    /// Writes `rows` with as few statements as [`SIZES`] allow, in order. `bind` binds one
    /// row's values from parameter `offset + 1` on. The statements are taken from the
    /// connection's cache: prepared once per connection, not per transaction.
    pub fn write(
        &self,
        conn: &Connection,
        rows: &[Vec<Value>],
        bind: impl Fn(&mut Statement<'_>, usize, &[Value]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut rest = rows;
        for (i, size) in SIZES.iter().enumerate() {
            while rest.len() >= *size {
                let (now, later) = rest.split_at(*size);
                let mut stmt = conn.prepare_cached(self.text(i))?;
                for (r, row) in now.iter().enumerate() {
                    bind(&mut stmt, r * self.columns.len(), row)?;
                }
                stmt.raw_execute()?;
                rest = later;
            }
        }
        Ok(())
    }
}

/// Rows one map inserted and has not yet written.
#[derive(Default)]
pub struct Pending {
    map: Option<usize>,
    rows: Vec<Vec<Value>>,
}

impl Pending {
    /// Whether map `map` has rows held back.
    pub fn holds(&self, map: usize) -> bool {
        self.map == Some(map) && !self.rows.is_empty()
    }

    /// Whether rows of a map other than `map` are held back.
    pub fn holds_other(&self, map: usize) -> bool {
        self.map.is_some_and(|m| m != map) && !self.rows.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.rows.len() >= BATCH
    }

    pub fn push(&mut self, map: usize, row: Vec<Value>) {
        self.map = Some(map);
        self.rows.push(row);
    }

    /// The rows held back and their map, leaving none.
    pub fn take(&mut self) -> Option<(usize, Vec<Vec<Value>>)> {
        let map = self.map.take()?;
        Some((map, std::mem::take(&mut self.rows))).filter(|(_, rows)| !rows.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_count_of_rows_is_written_in_order_with_the_fewest_statements() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (n INTEGER, s TEXT)")
            .expect("create");
        let sql = BatchSql::new("t", &["n", "s"]);
        let bind = |stmt: &mut Statement<'_>, at: usize, row: &[Value]| {
            for (i, v) in row.iter().enumerate() {
                stmt.raw_bind_parameter(at + i + 1, v)?;
            }
            Ok(())
        };
        let mut written = 0;
        for count in [0usize, 1, 7, 16, 31] {
            let rows: Vec<Vec<Value>> = (written..written + count)
                .map(|n| vec![Value::Integer(n as i64), Value::Text(format!("row {n}"))])
                .collect();
            let before = conn.total_changes();
            sql.write(&conn, &rows, bind).expect("write");
            assert_eq!(conn.total_changes() - before, count as u64);
            written += count;
        }
        let got: Vec<(i64, String)> = conn
            .prepare("SELECT n, s FROM t ORDER BY rowid")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let want: Vec<(i64, String)> = (0..written as i64)
            .map(|n| (n, format!("row {n}")))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn pending_rows_belong_to_one_map_and_are_taken_once() {
        let mut pending = Pending::default();
        assert!(pending.take().is_none());
        pending.push(2, vec![Value::Null]);
        assert!(pending.holds(2) && !pending.holds(1));
        assert!(pending.holds_other(1) && !pending.holds_other(2));
        for _ in 1..BATCH {
            assert!(!pending.is_full());
            pending.push(2, vec![Value::Null]);
        }
        assert!(pending.is_full());
        let (map, rows) = pending.take().expect("rows");
        assert_eq!((map, rows.len()), (2, BATCH));
        assert!(pending.take().is_none() && !pending.holds(2));
    }
}
