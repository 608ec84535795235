//! The transform engine's context for one Import Transaction, built by the app: the
//! integration properties as they are now (so a change through the Table API takes effect
//! for the next transaction) and the `installation_target` context variable that routes
//! installed applications to SAM and/or CMDB tables (docs/emulator.md, "Routing").

use std::collections::HashMap;

use rusqlite::Connection;

use super::table;
use crate::catalog::Catalog;
use crate::store::{self, StoreError};
use crate::transform::EngineContext;

pub const INSTALLATION_TABLES: &str = "x_fls_flexera_fnms.installation_tables";
/// Plugins whose activity means "the SAM plugin is active" (SAM Foundation, SAM Pro).
const SAM_PLUGINS: [&str; 2] = ["com.snc.sams", "com.snc.samp"];

/// Where installed applications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationTarget {
    Sam,
    Cmdb,
    Both,
}

impl InstallationTarget {
    /// The documented rule: "Decide automatically" means SAM tables when the SAM plugin is
    /// active, else CMDB tables; an unknown value counts as automatic.
    pub fn decide(setting: Option<&str>, sam_active: bool) -> Self {
        match setting {
            Some("cmdb") => Self::Cmdb,
            Some("sam") => Self::Sam,
            Some("cmdb_and_sam") => Self::Both,
            _ if sam_active => Self::Sam,
            _ => Self::Cmdb,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sam => "sam",
            Self::Cmdb => "cmdb",
            Self::Both => "both",
        }
    }
}

fn sam_active(conn: &Connection, catalog: &Catalog) -> Result<bool, StoreError> {
    let plugins = table(catalog, "sys_plugins")?;
    for id in SAM_PLUGINS {
        if store::find_by(conn, plugins, &[("id", id), ("active", "active")])?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The properties and plugins as a transaction read them, kept for the next one while
/// neither table has been written since (their write generations, taken before reading).
/// Reading them cost a query of each table per transaction: 3 % of the worker at full
/// scale (docs/performance.md).
#[derive(Clone)]
pub struct ContextReading {
    properties: HashMap<String, String>,
    variables: HashMap<String, String>,
    snapshot: Vec<(String, u64)>,
}

impl ContextReading {
    fn still_true(&self) -> bool {
        (self.snapshot.iter()).all(|(table, g)| store::generation(table) == *g)
    }
}

/// Reads the properties and plugins once, for one transaction.
pub fn engine_context(
    conn: &Connection,
    catalog: &Catalog,
    user: &str,
    now: String,
) -> Result<EngineContext, StoreError> {
    engine_context_kept(conn, catalog, (user, now), None).map(|(context, _)| context)
}

/// [`engine_context`], from `kept` while it is still true; returns the reading to keep.
pub fn engine_context_kept(
    conn: &Connection,
    catalog: &Catalog,
    (user, now): (&str, String),
    kept: Option<ContextReading>,
) -> Result<(EngineContext, ContextReading), StoreError> {
    let reading = match kept.filter(ContextReading::still_true) {
        Some(reading) => reading,
        None => read_context(conn, catalog)?,
    };
    let context = EngineContext {
        properties: reading.properties.clone(),
        variables: reading.variables.clone(),
        user: user.to_owned(),
        now,
    };
    Ok((context, reading))
}

fn read_context(conn: &Connection, catalog: &Catalog) -> Result<ContextReading, StoreError> {
    let props = table(catalog, "sys_properties")?;
    let plugins = table(catalog, "sys_plugins")?;
    let snapshot = [&props.physical, &plugins.physical]
        .map(|t| (t.clone(), store::generation(t)))
        .to_vec();
    let all = store::parse_encoded_query("nameSTARTSWITHx_fls_flexera_fnms.");
    let properties: HashMap<String, String> = store::find(conn, props, &all, 10_000, 0)?
        .into_iter()
        .map(|p| (p["name"].clone(), p["value"].clone()))
        .collect();
    let target = InstallationTarget::decide(
        properties.get(INSTALLATION_TABLES).map(String::as_str),
        sam_active(conn, catalog)?,
    );
    Ok(ContextReading {
        properties,
        variables: [("installation_target".to_owned(), target.as_str().to_owned())]
            .into_iter()
            .collect(),
        snapshot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installation_target_follows_the_property_and_the_plugin() {
        use InstallationTarget::*;
        for (setting, sam, want) in [
            (Some("auto"), true, Sam),
            (Some("auto"), false, Cmdb),
            (None, false, Cmdb),
            (Some("cmdb"), true, Cmdb),
            (Some("sam"), false, Sam),
            (Some("cmdb_and_sam"), true, Both),
        ] {
            assert_eq!(
                InstallationTarget::decide(setting, sam),
                want,
                "{setting:?} {sam}"
            );
        }
    }
}
