//! The Flexera Integration app's server side: the integration endpoint's logic (intake of
//! segments, run bookkeeping, return codes) and the processing of Import Transactions into
//! staging rows and, through the transform engine, target records. Protocol:
//! docs/wire-protocol.md.

pub mod intake;
pub mod payload;
pub mod process;

use rusqlite::Connection;

use crate::catalog::{Catalog, Table};
use crate::store::{self, Fields, StoreError};

pub const RUN_TABLE: &str = "x_fls_flexera_fnms_import_run";
pub const TRANSACTION_TABLE: &str = "x_fls_flexera_fnms_import_transaction";
pub const LOG_SOURCE: &str = "x_fls_flexera_fnms";

pub const TERMINAL: [&str; 2] = ["succeeded", "failed"];

pub(crate) fn table<'c>(catalog: &'c Catalog, name: &str) -> Result<&'c Table, StoreError> {
    catalog
        .table(name)
        .ok_or_else(|| StoreError::Invalid(format!("the catalog has no {name} table")))
}

pub(crate) fn fields<const N: usize>(pairs: [(&str, String); N]) -> Fields {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Writes one Application Log (syslog) line.
pub fn log(
    conn: &Connection,
    catalog: &Catalog,
    level: &str,
    message: &str,
) -> Result<(), StoreError> {
    match level {
        "error" => tracing::error!("{message}"),
        "warning" => tracing::warn!("{message}"),
        _ => tracing::info!("{message}"),
    }
    let syslog = table(catalog, "syslog")?;
    store::insert(
        conn,
        syslog,
        &fields([
            ("level", level.to_owned()),
            ("message", message.to_owned()),
            ("source", LOG_SOURCE.to_owned()),
        ]),
        "system",
    )?;
    Ok(())
}

/// The value of a system property, if it exists.
pub fn property(
    conn: &Connection,
    catalog: &Catalog,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let props = table(catalog, "sys_properties")?;
    Ok(store::find_by(conn, props, &[("name", name)])?.map(|p| p["value"].clone()))
}
