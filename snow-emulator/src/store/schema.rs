//! Creates the SQLite tables and indexes the catalog describes, and adds columns an
//! administrator has since declared (changing a column's type is not migrated).

use anyhow::Result;
use rusqlite::Connection;

use super::quote;
use crate::catalog::{Catalog, Column, ColumnType, PhysicalTable, StoreFile};

fn sql_type(col: &Column) -> &'static str {
    if col.name == "sys_id" {
        "TEXT NOT NULL UNIQUE"
    } else if col.kind.is_numeric() {
        "INTEGER"
    } else if col.kind == ColumnType::Reference {
        // A reference holds a sys_id, and compares as the sys_id column does: exactly. A
        // NOCASE comparison of two time-ordered sys_ids walks their long common prefix a
        // letter at a time; in the indexes over references (an installation's computer and
        // model, a staging row's transaction) it cost about a tenth of the worker
        // (docs/performance.md).
        "TEXT"
    } else {
        // ServiceNow matches text without regard to case (its database collation does).
        "TEXT COLLATE NOCASE"
    }
}

/// Brings the schema up to the catalog. With `attached` (a file database), import set tables
/// are made in the import sets file ([`super::bulk`]), and moved there from the main file of
/// a database made before they had a file of their own.
pub fn migrate(conn: &Connection, catalog: &Catalog, attached: bool) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _emulator_numbers (table_name TEXT PRIMARY KEY, next INTEGER NOT NULL);",
    )?;
    for table in &catalog.physical {
        let schema = match (attached, table.file) {
            (true, StoreFile::ImportSets) => super::bulk::SCHEMA,
            _ => "main",
        };
        create_table(conn, schema, table)?;
        if schema != "main" && !columns_of(conn, "main", &table.name)?.is_empty() {
            move_from_main(conn, schema, &table.name)?;
        }
        create_indexes(conn, schema, table)?;
    }
    Ok(())
}

/// Creates the table, or adds the columns it lacks.
fn create_table(conn: &Connection, schema: &str, table: &PhysicalTable) -> Result<()> {
    let name = format!("{schema}.{}", quote(&table.name));
    // Long text (xml) columns go last: SQLite reads a record's columns in order, so a
    // column stored after a 500 kB payload would cost a walk of its overflow pages.
    let mut ordered: Vec<&Column> = table.columns.iter().filter(|c| !c.out_of_row).collect();
    ordered.sort_by_key(|c| c.kind == ColumnType::Xml);
    let cols: Vec<String> = ordered
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), sql_type(c)))
        .collect();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {name} ({})",
        cols.join(", ")
    ))?;
    let existing = columns_of(conn, schema, &table.name)?;
    for c in table.columns.iter().filter(|c| c.out_of_row) {
        super::out_of_row::migrate(conn, &table.name, c, existing.contains(&c.name))?;
    }
    for c in table.columns.iter().filter(|c| !c.out_of_row) {
        if !existing.contains(&c.name) && c.name != "sys_id" {
            conn.execute_batch(&format!(
                "ALTER TABLE {name} ADD COLUMN {} {}",
                quote(&c.name),
                sql_type(c)
            ))?;
        }
    }
    Ok(())
}

/// The columns of `schema.table`; none when there is no such table.
fn columns_of(conn: &Connection, schema: &str, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA {schema}.table_info({})", quote(table)))?;
    let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
    Ok(names.collect::<rusqlite::Result<_>>()?)
}

/// Moves the rows of the main file's `table` into `schema`'s, then drops the main one (which
/// would otherwise hide the other from plain names), in one transaction.
fn move_from_main(conn: &Connection, schema: &str, table: &str) -> Result<()> {
    let kept = columns_of(conn, schema, table)?;
    let cols: Vec<String> = (columns_of(conn, "main", table)?.iter())
        .filter(|c| kept.contains(c))
        .map(|c| quote(c))
        .collect();
    let (cols, name) = (cols.join(", "), quote(table));
    conn.execute_batch(&format!(
        "BEGIN; INSERT INTO {schema}.{name} ({cols}) SELECT {cols} FROM main.{name}; \
         DROP TABLE main.{name}; COMMIT;"
    ))?;
    Ok(())
}

/// The table's indexes: one per indexed column not served by a coalesce index, and one per
/// coalesce key.
fn create_indexes(conn: &Connection, schema: &str, table: &PhysicalTable) -> Result<()> {
    // A column that leads an index over a coalesce key is served by that index; its own
    // would only cost a B-tree insertion more per record (dropped from older files too).
    let leads_key = |c: &Column| table.key_indexes.iter().any(|k| k.first() == Some(&c.name));
    for c in table.columns.iter().filter(|c| c.index && leads_key(c)) {
        conn.execute_batch(&format!(
            "DROP INDEX IF EXISTS {schema}.{}",
            quote(&format!("idx_{}_{}", table.name, c.name))
        ))?;
    }
    let mut indexed: Vec<(String, String)> = table
        .columns
        .iter()
        .filter(|c| c.index && !c.out_of_row && !leads_key(c))
        .map(|c| (c.name.clone(), quote(&c.name)))
        .collect();
    if table.has_subclasses {
        indexed.push(("sys_class_name".into(), quote("sys_class_name")));
    }
    for c in table.columns.iter().filter(|c| c.index_binary) {
        indexed.push((
            format!("{}_cs", c.name),
            format!("{} COLLATE BINARY", quote(&c.name)),
        ));
    }
    for key in &table.key_indexes {
        let cols: Vec<String> = key.iter().map(|c| quote(c)).collect();
        indexed.push((key.join("_"), cols.join(", ")));
    }
    for (suffix, expr) in indexed {
        conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS {schema}.{} ON {} ({})",
            quote(&format!("idx_{}_{}", table.name, suffix)),
            quote(&table.name),
            expr
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    /// A map coalescing on several fields gets one index over them (in their order), which
    /// its lookup searches on every key, instead of an index per field.
    #[test]
    fn a_multi_field_coalesce_is_served_by_one_index_over_its_fields() {
        let catalog = Arc::new(crate::catalog::load_embedded().expect("catalog"));
        let store = crate::store::Store::open(":memory:", catalog.clone()).expect("store");
        let installs = catalog
            .physical
            .iter()
            .find(|p| p.name == "cmdb_sam_sw_install")
            .expect("installations table");
        assert_eq!(
            installs.key_indexes,
            [vec![
                "installed_on".to_owned(),
                "discovery_model".to_owned()
            ]]
        );
        let conn = store.lock();
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT sys_id FROM cmdb_sam_sw_install \
                 WHERE installed_on = ?1 AND discovery_model = ?2 LIMIT 1",
                ["a", "b"],
                |r| r.get(3),
            )
            .expect("plan");
        assert!(
            plan.contains("idx_cmdb_sam_sw_install_installed_on_discovery_model")
                && plan.contains("installed_on=? AND discovery_model=?"),
            "{plan}"
        );
    }

    /// The Serial Number table's `serial_number` leads its coalesce index: looking a serial
    /// number up uses that index, and no index of its own is kept beside it.
    #[test]
    fn a_column_leading_a_coalesce_index_gets_no_index_of_its_own() {
        let catalog = Arc::new(crate::catalog::load_embedded().expect("catalog"));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("old.sqlite");
        let path = path.to_str().expect("utf-8");
        {
            // A file from before: the column's own index exists.
            let store = crate::store::Store::open(path, catalog.clone()).expect("store");
            store
                .lock()
                .execute_batch(
                    "CREATE INDEX idx_cmdb_serial_number_serial_number \
                     ON cmdb_serial_number (serial_number)",
                )
                .expect("old index");
        }
        let store = crate::store::Store::open(path, catalog).expect("reopen");
        let conn = store.lock();
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_list('cmdb_serial_number') WHERE origin = 'c'")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("indexes");
        assert!(
            !indexes.contains(&"idx_cmdb_serial_number_serial_number".to_owned()),
            "{indexes:?}"
        );
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT cmdb_ci FROM cmdb_serial_number WHERE serial_number = ?1",
                ["a"],
                |r| r.get(3),
            )
            .expect("plan");
        assert!(
            plan.contains("idx_cmdb_serial_number_serial_number_cmdb_ci"),
            "{plan}"
        );
    }
}

#[cfg(test)]
mod file_tests {
    use std::sync::Arc;

    use rusqlite::Connection;

    /// A file made before import set tables had a file of their own keeps its rows: they are
    /// moved at start, and the main file's table is dropped.
    #[test]
    fn an_older_files_import_set_rows_move_to_the_import_sets_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.sqlite");
        let path = path.to_str().expect("utf-8");
        let table = "x_fls_flexera_fnms_inventory_import";
        let old = Connection::open(path).expect("open");
        old.execute_batch(&format!(
            "CREATE TABLE {table} (sys_id TEXT NOT NULL UNIQUE, u_computername TEXT, u_gone TEXT);
             INSERT INTO {table} VALUES ('0123456789abcdef0123456789abcdef', 'OLD-1', 'x');"
        ))
        .expect("old schema");
        drop(old);
        let catalog = Arc::new(crate::catalog::load_embedded().expect("catalog"));
        let store = crate::store::Store::open(path, catalog).expect("store");
        let staging = store.catalog().table(table).expect("staging").clone();
        let query = crate::store::parse_encoded_query("u_computername=OLD-1");
        let found = crate::store::find(&store.lock(), &staging, &query, 10, 0).expect("find");
        assert_eq!(found.len(), 1, "the row is still found by its table's name");
        let count = |file: &str| -> i64 {
            let conn = Connection::open(file).expect("open");
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .expect("schema")
        };
        assert_eq!(count(path), 0, "gone from the main file");
        assert_eq!(count(&crate::store::import_sets_file(path)), 1);
    }
}
