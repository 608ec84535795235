//! What the caller hands the engine for one Import Transaction, and what the engine says
//! about each row. The engine reads nothing else: no properties, no plugins, no clock.

use std::collections::HashMap;

/// Everything a transform run depends on besides the catalog and the rows.
#[derive(Debug, Clone, Default)]
pub struct EngineContext {
    /// Values of the properties the maps name (`insert_property`, `update_property`); a
    /// property absent here allows the operation.
    pub properties: HashMap<String, String>,
    /// Context variables the maps' `context_condition`s test (e.g. `installation_target`).
    pub variables: HashMap<String, String>,
    /// The user records are created and updated as (the scheduled import's Run As user).
    pub user: String,
    /// The transaction's timestamp (`sys_created_on` / `sys_updated_on` of what it writes).
    pub now: String,
}

impl EngineContext {
    /// False only when the named property is set to "false" (source of truth).
    pub fn allows(&self, property: Option<&str>) -> bool {
        property.is_none_or(|p| self.properties.get(p).map(String::as_str) != Some("false"))
    }
}

/// What happened to one staging row (ServiceNow's `sys_import_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RowState {
    Inserted,
    Updated,
    /// Mapped, but nothing to write (no change, or the property forbids it).
    Ignored,
    /// Not mapped: empty coalesce value, identification declined, or no match to retire.
    Skipped,
    Error,
    /// Staged only: no transform map exists for its table.
    #[default]
    Pending,
}

impl RowState {
    /// Which map's result a row shows when several maps ran on it (designed): an error
    /// wins, then the last write, then `ignored`, then `skipped`.
    pub fn rank(self) -> u8 {
        match self {
            Self::Error => 5,
            Self::Inserted | Self::Updated => 4,
            Self::Ignored => 3,
            Self::Skipped => 2,
            Self::Pending => 1,
        }
    }

    /// The stored choice value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inserted => "inserted",
            Self::Updated => "updated",
            Self::Ignored => "ignored",
            Self::Skipped => "skipped",
            Self::Error => "error",
            Self::Pending => "pending",
        }
    }
}

impl std::fmt::Display for RowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
