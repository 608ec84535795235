//! Installed records: what a fresh instance holds besides its tables (users, the OAuth client,
//! the app's Scheduled Data Import, Data Source, properties, plugins), declared in
//! `catalog/records/*.toml` and written by [`crate::store::seed`]. The format:
//!
//! ```toml
//! [[record]]
//! table = "sys_user"
//! key = "user_name"              # the column that identifies the record: seeding is idempotent
//! [record.values]                # written when the record is created; an admin's later
//! user_name = "admin"            # changes are kept
//! [record.secrets]               # written hashed at every start, from the named setting
//! user_password = "admin_password"
//! [record.settings]              # written as is at every start, from the named setting
//! [record.references]            # reference columns, resolved when the record is created
//! run_as = { table = "sys_user", key = "user_name", value = "fnms.integration" }
//! ```

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, ensure};
use serde::Deserialize;

use super::model::{Catalog, ColumnType, Table};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsFile {
    #[serde(default)]
    pub record: Vec<RecordDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDef {
    pub table: String,
    pub key: String,
    #[serde(default)]
    pub values: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub references: BTreeMap<String, RecordRef>,
}

/// A reference to another installed record, by its key column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    pub table: String,
    pub key: String,
    pub value: String,
}

/// One installed record, validated against the catalog's tables.
#[derive(Debug, Clone)]
pub struct SeedRecord {
    pub table: String,
    pub key: String,
    pub values: BTreeMap<String, String>,
    /// column → setting name; the value is hashed before it is stored.
    pub secrets: BTreeMap<String, String>,
    /// column → setting name.
    pub settings: BTreeMap<String, String>,
    pub references: BTreeMap<String, RecordRef>,
}

impl SeedRecord {
    /// The value of the key column, which identifies the record.
    pub fn key_value(&self) -> &str {
        self.values.get(&self.key).map_or("", String::as_str)
    }
}

fn text(value: toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Float(f) => f.to_string(),
        other => return Err(anyhow!("{other} is not a string, number or boolean")),
    })
}

fn column_of<'t>(table: &'t Table, column: &str) -> Result<&'t super::model::Column> {
    table
        .column(column)
        .ok_or_else(|| anyhow!("table {} has no column {column}", table.name))
}

/// Checks one record's table, columns and references and turns its values into strings.
pub fn resolve(catalog: &Catalog, def: RecordDef) -> Result<SeedRecord> {
    let table = catalog
        .table(&def.table)
        .ok_or_else(|| anyhow!("unknown table {}", def.table))?;
    let mut values = BTreeMap::new();
    for (column, value) in def.values {
        column_of(table, &column)?;
        values.insert(column.clone(), text(value).with_context(|| column.clone())?);
    }
    ensure!(
        values.get(&def.key).is_some_and(|v| !v.is_empty()),
        "the key column {} has no value",
        def.key
    );
    for column in def.secrets.keys().chain(def.settings.keys()) {
        column_of(table, column)?;
    }
    for (column, r) in &def.references {
        let c = column_of(table, column)?;
        ensure!(
            c.kind == ColumnType::Reference,
            "{column} is not a reference column"
        );
        let target = catalog
            .table(&r.table)
            .ok_or_else(|| anyhow!("{column} refers to unknown table {}", r.table))?;
        column_of(target, &r.key)?;
    }
    Ok(SeedRecord {
        table: def.table,
        key: def.key,
        values,
        secrets: def.secrets,
        settings: def.settings,
        references: def.references,
    })
}

/// Parses `records/*.toml` files and adds their records to the catalog, in file order.
pub fn add(catalog: &mut Catalog, files: Vec<(String, String)>) -> Result<()> {
    for (path, text) in files {
        let file: RecordsFile =
            toml::from_str(&text).with_context(|| format!("catalog file {path}"))?;
        for def in file.record {
            let what = format!("catalog file {path}: record in {}", def.table);
            let record = resolve(catalog, def).context(what)?;
            ensure!(
                !catalog.records.iter().any(|r| r.table == record.table
                    && r.key == record.key
                    && r.key_value() == record.key_value()),
                "catalog file {path}: record {}.{}={} is declared twice",
                record.table,
                record.key,
                record.key_value()
            );
            catalog.records.push(record);
        }
    }
    Ok(())
}
