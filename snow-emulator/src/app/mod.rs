//! The Flexera Integration app's server side: the integration endpoint's logic (intake of
//! segments, run bookkeeping, return codes) and the processing of Import Transactions into
//! staging rows and, through the transform engine, target records. Protocol:
//! docs/wire-protocol.md.

pub mod intake;
pub mod payload;
pub mod process;
pub mod routing;
pub mod views;

use rusqlite::Connection;

use crate::catalog::{Catalog, Table};
use crate::store::{self, Fields, StoreError};

pub const RUN_TABLE: &str = "x_fls_flexera_fnms_import_run";
pub const TRANSACTION_TABLE: &str = "x_fls_flexera_fnms_import_transaction";
pub const LOG_SOURCE: &str = "x_fls_flexera_fnms";

/// Installed records the app's logic looks up by name (declared in
/// `catalog/records/flexera_integration.toml`).
pub const SCHEDULE_NAME: &str = "FNMS Import Schedule";
pub const DATA_SOURCE_NAME: &str = "FNMS Data Source";
pub const SAM_PLUGIN: &str = "com.snc.sams";

/// Tables and columns the app's server-side logic (and authentication) relies on. A catalog
/// without them is refused at start rather than failing requests later.
const REQUIRED: &[(&str, &[&str])] = &[
    (
        RUN_TABLE,
        &[
            "number",
            "run_id",
            "import_type",
            "state",
            "started",
            "completed",
            "segments_expected",
            "transactions_received",
            "records_received",
            "message",
        ],
    ),
    (
        TRANSACTION_TABLE,
        &[
            "number",
            "import_run",
            "import_type",
            "state",
            "payload",
            "transaction_id",
            "segment_number",
            "last_segment",
            "record_count",
            "message",
        ],
    ),
    ("syslog", &["level", "message", "source"]),
    ("sys_properties", &["name", "value", "type", "description"]),
    (
        "sys_plugins",
        &["id", "source", "name", "version", "active"],
    ),
    (
        "scheduled_import_set",
        &["name", "active", "data_source", "run_as", "run_type"],
    ),
    (
        "sys_data_source",
        &[
            "name",
            "type",
            "format",
            "import_set_table_name",
            "import_set_table_label",
        ],
    ),
    (
        "sys_user",
        &[
            "user_name",
            "user_password",
            "active",
            "roles",
            "name",
            "first_name",
            "last_name",
            "web_service_access_only",
        ],
    ),
    (
        "oauth_entity",
        &[
            "name",
            "client_id",
            "client_secret",
            "active",
            "access_token_lifespan",
            "refresh_token_lifespan",
        ],
    ),
    (
        "oauth_credential",
        &["token", "type", "user", "oauth_entity", "scope", "expires"],
    ),
];

/// Checks that the catalog has what [`REQUIRED`] lists.
pub fn check_catalog(catalog: &Catalog) -> anyhow::Result<()> {
    for (name, columns) in REQUIRED {
        let t = catalog.table(name).ok_or_else(|| {
            anyhow::anyhow!("the catalog has no {name} table, which the emulator needs")
        })?;
        for c in *columns {
            anyhow::ensure!(
                t.column(c).is_some(),
                "catalog table {name} lacks column {c}, which the emulator needs"
            );
        }
    }
    for it in &catalog.import_types {
        let staging = table(catalog, &it.staging_table)?;
        for c in [
            "sys_import_row",
            "sys_import_state",
            "sys_import_state_comment",
            "sys_row_error",
            "sys_target_sys_id",
            "sys_target_table",
            "sys_transform_map",
        ] {
            anyhow::ensure!(
                staging.column(c).is_some(),
                "staging table {} lacks column {c} (extend sys_import_set_row)",
                staging.name
            );
        }
    }
    Ok(())
}

pub(crate) fn table<'c>(catalog: &'c Catalog, name: &str) -> Result<&'c Table, StoreError> {
    catalog
        .table(name)
        .ok_or_else(|| StoreError::Invalid(format!("the catalog has no {name} table")))
}

pub(crate) fn fields<const N: usize>(pairs: [(&str, String); N]) -> Fields {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The user transforms run as: the Run As user of the scheduled import
/// ([`SCHEDULE_NAME`]), as on a real instance ([CFG-SN-22R1] in docs/sources.md); `system`
/// when the schedule or its user is gone.
pub fn run_as_user(conn: &Connection, catalog: &Catalog) -> Result<String, StoreError> {
    let schedules = table(catalog, "scheduled_import_set")?;
    let users = table(catalog, "sys_user")?;
    let Some(schedule) = store::find_by(conn, schedules, &[("name", SCHEDULE_NAME)])? else {
        return Ok("system".into());
    };
    let user = match schedule.get("run_as").filter(|id| !id.is_empty()) {
        Some(id) => store::get(conn, users, id)?,
        None => None,
    };
    Ok(user
        .and_then(|u| u.get("user_name").cloned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "system".into()))
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
