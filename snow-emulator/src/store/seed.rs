//! Seeding: writes the catalog's installed records (`catalog/records/*.toml`,
//! [`crate::catalog::SeedRecord`]) into a fresh or existing database. It runs at every start
//! and after a reset: a record missing by its key column is created; a record that exists is
//! kept as an administrator left it, except the columns taken from the configuration
//! (secrets and settings), which follow it at every start.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use rusqlite::Connection;

use super::{Fields, find_by, insert, update};
use crate::catalog::{Catalog, RecordRef, SeedRecord, Table};

/// Named configuration values the records may take (`admin_password`, …).
pub type Settings = BTreeMap<&'static str, String>;

/// How a secret from the configuration is stored (the one place to change the hashing).
fn stored_secret(plain: &str) -> String {
    crate::auth::hash_password(plain)
}

fn table<'c>(catalog: &'c Catalog, name: &str) -> Result<&'c Table> {
    catalog
        .table(name)
        .ok_or_else(|| anyhow!("the catalog has no {name} table"))
}

fn setting<'s>(settings: &'s Settings, name: &str, r: &SeedRecord) -> Result<&'s str> {
    settings.get(name).map(String::as_str).ok_or_else(|| {
        anyhow!(
            "installed record {}.{}={} takes unknown setting {name}",
            r.table,
            r.key,
            r.key_value()
        )
    })
}

/// The columns that follow the configuration at every start.
fn configured(r: &SeedRecord, settings: &Settings) -> Result<Fields> {
    let mut out = Fields::new();
    for (column, name) in &r.settings {
        out.insert(column.clone(), setting(settings, name, r)?.to_owned());
    }
    for (column, name) in &r.secrets {
        out.insert(column.clone(), stored_secret(setting(settings, name, r)?));
    }
    Ok(out)
}

fn resolve_reference(conn: &Connection, catalog: &Catalog, r: &RecordRef) -> Result<String> {
    let target = table(catalog, &r.table)?;
    let found = find_by(conn, target, &[(&r.key, &r.value)])?
        .ok_or_else(|| anyhow!("no {} record with {} = {}", r.table, r.key, r.value))?;
    Ok(found["sys_id"].clone())
}

/// Creates the record when it is missing; returns its sys_id and whether it was created.
fn ensure(conn: &Connection, catalog: &Catalog, r: &SeedRecord) -> Result<(String, bool)> {
    let t = table(catalog, &r.table)?;
    if let Some(existing) = find_by(conn, t, &[(&r.key, r.key_value())])? {
        return Ok((existing["sys_id"].clone(), false));
    }
    let values: Fields = r.values.clone().into_iter().collect();
    Ok((insert(conn, t, &values, "system")?, true))
}

/// Writes the catalog's installed records (see the module documentation).
pub fn seed(conn: &mut Connection, catalog: &Catalog, settings: &Settings) -> Result<()> {
    let tx = conn.transaction()?;
    let mut ids = Vec::with_capacity(catalog.records.len());
    for r in &catalog.records {
        ids.push(ensure(&tx, catalog, r)?);
    }
    // References are resolved once every record exists, so file order does not matter.
    for (r, (sys_id, created)) in catalog.records.iter().zip(&ids) {
        let mut always = configured(r, settings)?;
        if *created {
            for (column, reference) in &r.references {
                let id = resolve_reference(&tx, catalog, reference)
                    .with_context(|| format!("{}.{column}", r.table))?;
                always.insert(column.clone(), id);
            }
        }
        if !always.is_empty() {
            update(&tx, table(catalog, &r.table)?, sys_id, &always, "system")?;
        }
    }
    tx.commit().context("failed to commit the seed")?;
    Ok(())
}
