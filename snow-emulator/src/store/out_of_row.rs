//! Long-text columns kept out of their record's row (`out_of_row = true` in the catalog).
//!
//! SQLite rewrites a whole row, overflow pages included, on every UPDATE. An Import
//! Transaction's payload (hundreds of kB) would be written again at each of its state
//! changes (New → Waiting → Processing → Succeeded); kept in a side table it is written once.
//! The side table `{physical}__{column}` holds `(sys_id, value)`; reads, filters and sorts see
//! the column as a correlated sub-select, so callers name it like any other column.

use rusqlite::types::Value;
use rusqlite::{Connection, params};

use super::quote;
use crate::catalog::Column;

/// The side table of an out-of-row column of `physical`.
pub fn side_table(physical: &str, column: &str) -> String {
    format!("{physical}__{column}")
}

/// The SQL expression for a column's value in a query whose FROM is `physical` (unaliased).
/// A sub-select carries no collation of its own, so it is given the one text columns have
/// (out-of-row columns are long text): it compares and sorts as it would in the row.
pub fn column_sql(physical: &str, col: &Column) -> String {
    if col.out_of_row {
        format!(
            "(SELECT value FROM {} WHERE sys_id = {}.sys_id) COLLATE NOCASE",
            quote(&side_table(physical, &col.name)),
            quote(physical)
        )
    } else {
        quote(&col.name)
    }
}

/// Creates the side table (and, for a database made before the column moved out of row,
/// moves its values there).
pub fn migrate(
    conn: &Connection,
    physical: &str,
    col: &Column,
    in_row: bool,
) -> rusqlite::Result<()> {
    let side = quote(&side_table(physical, &col.name));
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {side} (sys_id TEXT PRIMARY KEY, value TEXT)"
    ))?;
    if in_row {
        let (main, c) = (quote(physical), quote(&col.name));
        conn.execute_batch(&format!(
            "INSERT OR IGNORE INTO {side} (sys_id, value) SELECT sys_id, {c} FROM {main} WHERE {c} IS NOT NULL;
             UPDATE {main} SET {c} = NULL WHERE {c} IS NOT NULL;"
        ))?;
    }
    Ok(())
}

/// Sets (or, with NULL, clears) one record's value.
pub fn write(
    conn: &Connection,
    physical: &str,
    col: &Column,
    sys_id: &str,
    value: &Value,
) -> rusqlite::Result<()> {
    let side = quote(&side_table(physical, &col.name));
    if *value == Value::Null {
        conn.prepare_cached(&format!("DELETE FROM {side} WHERE sys_id = ?1"))?
            .execute([sys_id])?;
    } else {
        conn.prepare_cached(&format!(
            "INSERT INTO {side} (sys_id, value) VALUES (?1, ?2)
             ON CONFLICT (sys_id) DO UPDATE SET value = excluded.value"
        ))?
        .execute(params![sys_id, value])?;
    }
    Ok(())
}

/// Empties the side table (a reset).
pub fn wipe(conn: &Connection, physical: &str, col: &Column) -> rusqlite::Result<()> {
    let side = quote(&side_table(physical, &col.name));
    conn.execute(&format!("DELETE FROM {side}"), [])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::catalog::{Catalog, Table};
    use crate::store::{self, Fields, Store, parse_encoded_query};

    const TRANSACTIONS: &str = "x_fls_flexera_fnms_import_transaction";

    fn open() -> (Arc<Catalog>, Store) {
        let catalog = Arc::new(crate::catalog::load_embedded().expect("catalog"));
        let store = Store::open(":memory:", catalog.clone()).expect("store");
        (catalog, store)
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn columns(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({})", store::quote(table)))
            .expect("table_info");
        stmt.query_map([], |r| r.get(1))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("columns")
    }

    fn side_rows(conn: &rusqlite::Connection) -> i64 {
        let side = super::side_table(TRANSACTIONS, "payload");
        conn.query_row(
            &format!("SELECT COUNT(*) FROM {}", store::quote(&side)),
            [],
            |r| r.get(0),
        )
        .expect("count")
    }

    fn find(conn: &rusqlite::Connection, t: &Table, q: &str) -> Vec<String> {
        store::find(conn, t, &parse_encoded_query(q), 10, 0)
            .expect("find")
            .into_iter()
            .map(|r| r["number"].clone())
            .collect()
    }

    #[test]
    fn the_payload_lives_in_its_side_table_and_reads_like_any_column() {
        let (catalog, store) = open();
        let t = catalog.table(TRANSACTIONS).expect("table");
        let conn = store.lock();
        assert!(!columns(&conn, TRANSACTIONS).contains(&"payload".to_owned()));
        let a = store::insert(&conn, t, &fields(&[("payload", "<a>zeta</a>")]), "admin")
            .expect("insert");
        let b = store::insert(&conn, t, &fields(&[("payload", "<b>alpha</b>")]), "admin")
            .expect("insert");
        assert_eq!(side_rows(&conn), 2);

        // Updating the small columns leaves the payload where it is, and as it was.
        store::update(&conn, t, &a, &fields(&[("state", "processing")]), "admin").expect("update");
        let row = store::get(&conn, t, &a).expect("get").expect("row");
        assert_eq!(
            (row["state"].as_str(), row["payload"].as_str()),
            ("processing", "<a>zeta</a>")
        );

        // Filters and sorts see it, comparing without regard to case as in the row.
        let first = store::get(&conn, t, &a).expect("get").expect("a")["number"].clone();
        let second = store::get(&conn, t, &b).expect("get").expect("b")["number"].clone();
        assert_eq!(
            find(&conn, t, "payloadLIKEzeta"),
            std::slice::from_ref(&first)
        );
        assert_eq!(
            find(&conn, t, "payload=<A>ZETA</A>"),
            std::slice::from_ref(&first)
        );
        assert_eq!(
            find(&conn, t, "ORDERBYpayload"),
            [first.clone(), second.clone()]
        );
        assert_eq!(
            find(&conn, t, "ORDERBYDESCpayload"),
            [second.clone(), first.clone()]
        );

        // Replacing, clearing, deleting and wiping keep the side table in step.
        store::update(
            &conn,
            t,
            &b,
            &fields(&[("payload", "<b>beta</b>")]),
            "admin",
        )
        .expect("update");
        assert_eq!(
            store::get(&conn, t, &b).expect("get").expect("b")["payload"],
            "<b>beta</b>"
        );
        store::update(&conn, t, &b, &fields(&[("payload", "")]), "admin").expect("update");
        assert_eq!(
            store::get(&conn, t, &b).expect("get").expect("b")["payload"],
            ""
        );
        assert_eq!(side_rows(&conn), 1);
        assert!(store::delete(&conn, t, &a).expect("delete"));
        assert_eq!(side_rows(&conn), 0);
        store::insert(&conn, t, &fields(&[("payload", "<c/>")]), "admin").expect("insert");
        drop(conn);
        store::wipe(&mut store.lock(), &catalog).expect("wipe");
        assert_eq!(side_rows(&store.lock()), 0);
    }

    #[test]
    fn a_database_with_the_payload_in_row_is_moved_to_the_side_table() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("old.sqlite");
        let path = path.to_str().expect("utf-8 path");
        {
            let old = rusqlite::Connection::open(path).expect("old");
            old.execute_batch(&format!(
                "CREATE TABLE {TRANSACTIONS} (sys_id TEXT NOT NULL UNIQUE, number TEXT, payload TEXT);
                 INSERT INTO {TRANSACTIONS} VALUES ('0123456789abcdef0123456789abcdef', 'ITRN0000001', '<old/>');"
            ))
            .expect("old layout");
        }
        let catalog = Arc::new(crate::catalog::load_embedded().expect("catalog"));
        let store = Store::open(path, catalog.clone()).expect("migrated");
        let t = catalog.table(TRANSACTIONS).expect("table");
        let conn = store.lock();
        let row = store::get(&conn, t, "0123456789abcdef0123456789abcdef")
            .expect("get")
            .expect("row");
        assert_eq!(row["payload"], "<old/>");
        assert_eq!(side_rows(&conn), 1);
        let in_row: Option<String> = conn
            .query_row(&format!("SELECT payload FROM {TRANSACTIONS}"), [], |r| {
                r.get(0)
            })
            .expect("old column");
        assert_eq!(in_row, None, "the old column is emptied, not kept twice");
    }
}
