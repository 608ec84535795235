//! What a fresh instance with the Flexera Integration app installed holds: the two users,
//! the OAuth client, the app's Scheduled Data Import and Data Source, its integration
//! properties and the SAM plugin. Seeding runs at every start and after a reset: missing
//! records are created; users' passwords and the OAuth client follow the configuration;
//! anything else an administrator changed is kept.

use anyhow::{Context, Result, anyhow};
use rusqlite::Connection;

use super::{Fields, find_by, insert, update};
use crate::catalog::Catalog;
use crate::{ADMIN_USER, Config, INTEGRATION_USER};

/// The app's integration properties (names and values designed; meanings documented,
/// flexera.md §6).
pub const PROPERTIES: &[(&str, &str, &str, &str)] = &[
    (
        "x_fls_flexera_fnms.installation_tables",
        "auto",
        "choicelist",
        "Use CMDB and/or SAM tables for installation: auto (Decide automatically), cmdb (Use CMDB tables), sam (Use SAM tables), cmdb_and_sam (Use CMDB and SAM tables)",
    ),
    (
        "x_fls_flexera_fnms.sot.add_inventories",
        "true",
        "boolean",
        "FNMS is the source of truth for adding inventories",
    ),
    (
        "x_fls_flexera_fnms.sot.update_inventories",
        "true",
        "boolean",
        "FNMS is the source of truth for updating inventories",
    ),
    (
        "x_fls_flexera_fnms.sot.add_applications",
        "true",
        "boolean",
        "FNMS is the source of truth for adding installed applications",
    ),
    (
        "x_fls_flexera_fnms.sot.update_applications",
        "true",
        "boolean",
        "FNMS is the source of truth for updating installed applications",
    ),
    (
        "x_fls_flexera_fnms.sot.add_contracts",
        "true",
        "boolean",
        "FNMS is the source of truth for adding contracts",
    ),
    (
        "x_fls_flexera_fnms.sot.update_contracts",
        "true",
        "boolean",
        "FNMS is the source of truth for updating contracts",
    ),
    (
        "x_fls_flexera_fnms.native_tables",
        "false",
        "boolean",
        "Integrate Flexera Models/Installations in ServiceNow Native tables",
    ),
];

pub const SCHEDULE_NAME: &str = "FNMS Import Schedule";
pub const DATA_SOURCE_NAME: &str = "FNMS Data Source";
pub const OAUTH_CLIENT_NAME: &str = "FNMS Export";
pub const SAM_PLUGIN: &str = "com.snc.sams";

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Inserts `values` unless a record with `key = values[key]` exists; returns its sys_id.
fn ensure(
    conn: &Connection,
    catalog: &Catalog,
    table: &str,
    key: &str,
    values: Fields,
) -> Result<String> {
    let t = catalog
        .table(table)
        .ok_or_else(|| anyhow!("the catalog has no {table} table"))?;
    let key_value = values.get(key).cloned().unwrap_or_default();
    if let Some(existing) = find_by(conn, t, &[(key, &key_value)])? {
        return Ok(existing["sys_id"].clone());
    }
    Ok(insert(conn, t, &values, "system")?)
}

/// Like [`ensure`], then writes `always` over the record (configuration-owned values).
fn upsert(
    conn: &Connection,
    catalog: &Catalog,
    table: &str,
    key: &str,
    values: Fields,
    always: Fields,
) -> Result<String> {
    let sys_id = ensure(conn, catalog, table, key, values)?;
    let t = catalog
        .table(table)
        .ok_or_else(|| anyhow!("the catalog has no {table} table"))?;
    update(conn, t, &sys_id, &always, "system")?;
    Ok(sys_id)
}

pub fn seed(conn: &mut Connection, catalog: &Catalog, config: &Config) -> Result<()> {
    let tx = conn.transaction()?;
    let hash = crate::auth::hash_password;
    upsert(
        &tx,
        catalog,
        "sys_user",
        "user_name",
        fields(&[
            ("user_name", ADMIN_USER),
            ("first_name", "System"),
            ("last_name", "Administrator"),
            ("name", "System Administrator"),
            ("roles", "admin"),
        ]),
        fields(&[("user_password", &hash(&config.admin_password))]),
    )?;
    let integration = upsert(
        &tx,
        catalog,
        "sys_user",
        "user_name",
        fields(&[
            ("user_name", INTEGRATION_USER),
            ("first_name", "FNMS"),
            ("last_name", "Integration"),
            ("name", "FNMS Integration"),
            ("roles", "x_fls_flexera_fnms.integration,oauth_user"),
            ("web_service_access_only", "true"),
        ]),
        fields(&[("user_password", &hash(&config.integration_password))]),
    )?;
    upsert(
        &tx,
        catalog,
        "oauth_entity",
        "name",
        fields(&[("name", OAUTH_CLIENT_NAME)]),
        fields(&[
            ("client_id", &config.oauth_client_id),
            ("client_secret", &hash(&config.oauth_client_secret)),
        ]),
    )?;
    let data_source = ensure(
        &tx,
        catalog,
        "sys_data_source",
        "name",
        fields(&[
            ("name", DATA_SOURCE_NAME),
            ("type", "Custom (Load by Script)"),
            ("format", "XML"),
            (
                "import_set_table_name",
                "x_fls_flexera_fnms_inventory_import",
            ),
            ("import_set_table_label", "FNMS Inventory Import"),
        ]),
    )?;
    ensure(
        &tx,
        catalog,
        "scheduled_import_set",
        "name",
        fields(&[
            ("name", SCHEDULE_NAME),
            ("active", "true"),
            ("data_source", &data_source),
            ("run_as", &integration),
            ("run_type", "periodically"),
        ]),
    )?;
    for (name, value, kind, description) in PROPERTIES {
        ensure(
            &tx,
            catalog,
            "sys_properties",
            "name",
            fields(&[
                ("name", name),
                ("value", value),
                ("type", kind),
                ("description", description),
            ]),
        )?;
    }
    ensure(
        &tx,
        catalog,
        "sys_plugins",
        "id",
        fields(&[
            ("id", SAM_PLUGIN),
            ("source", SAM_PLUGIN),
            ("name", "Software Asset Management Foundation"),
            ("version", "1.0.0"),
            ("active", "active"),
        ]),
    )?;
    tx.commit().context("failed to commit the seed")?;
    Ok(())
}
