//! Creates the SQLite tables and indexes the catalog describes, and adds columns an
//! administrator has since declared (changing a column's type is not migrated).

use anyhow::Result;
use rusqlite::Connection;

use super::quote;
use crate::catalog::{Catalog, Column, ColumnType};

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

pub fn migrate(conn: &Connection, catalog: &Catalog) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _emulator_numbers (table_name TEXT PRIMARY KEY, next INTEGER NOT NULL);",
    )?;
    for table in &catalog.physical {
        // Long text (xml) columns go last: SQLite reads a record's columns in order, so a
        // column stored after a 500 kB payload would cost a walk of its overflow pages.
        let mut ordered: Vec<&Column> = table.columns.iter().filter(|c| !c.out_of_row).collect();
        ordered.sort_by_key(|c| c.kind == ColumnType::Xml);
        let cols: Vec<String> = ordered
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), sql_type(c)))
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            quote(&table.name),
            cols.join(", ")
        ))?;
        let mut existing = Vec::new();
        {
            let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(&table.name)))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                existing.push(row.get::<_, String>(1)?);
            }
        }
        for c in table.columns.iter().filter(|c| c.out_of_row) {
            super::out_of_row::migrate(conn, &table.name, c, existing.contains(&c.name))?;
        }
        for c in table.columns.iter().filter(|c| !c.out_of_row) {
            if !existing.contains(&c.name) && c.name != "sys_id" {
                conn.execute_batch(&format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    quote(&table.name),
                    quote(&c.name),
                    sql_type(c)
                ))?;
            }
        }
        // A column that leads an index over a coalesce key is served by that index; its own
        // would only cost a B-tree insertion more per record (dropped from older files too).
        let leads_key = |c: &Column| table.key_indexes.iter().any(|k| k.first() == Some(&c.name));
        for c in table.columns.iter().filter(|c| c.index && leads_key(c)) {
            conn.execute_batch(&format!(
                "DROP INDEX IF EXISTS {}",
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
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                quote(&format!("idx_{}_{}", table.name, suffix)),
                quote(&table.name),
                expr
            ))?;
        }
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
