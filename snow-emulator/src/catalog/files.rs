//! The TOML shapes as written by an administrator (see `catalog/tables/platform.toml` and
//! `catalog/transform_maps/inventory.toml` for the documented format).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesFile {
    #[serde(default)]
    pub table: Vec<TableDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    pub name: String,
    pub label: Option<String>,
    pub extends: Option<String>,
    pub storage: Option<String>,
    pub display: Option<String>,
    pub number_prefix: Option<String>,
    /// The list view's columns (the web UI, CSV exports); children inherit them.
    pub list: Option<Vec<String>>,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    #[serde(rename = "type")]
    pub kind: String,
    pub label: Option<String>,
    pub reference: Option<String>,
    #[serde(default)]
    pub choices: Vec<ChoiceDef>,
    pub default: Option<String>,
    #[serde(default)]
    pub index: bool,
    /// Keep this long-text column in a side table (see `Column::out_of_row`).
    #[serde(default)]
    pub out_of_row: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceDef {
    pub value: String,
    pub label: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapsFile {
    #[serde(default)]
    pub map: Vec<MapDef>,
    #[serde(default)]
    pub identification: Vec<IdentificationDef>,
}

fn next() -> String {
    "next".to_owned()
}

fn update() -> String {
    "update".to_owned()
}

fn skip() -> String {
    "skip".to_owned()
}

fn create() -> String {
    "create".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentificationDef {
    pub name: String,
    #[serde(default = "create")]
    pub no_match: String,
    #[serde(default)]
    pub rule: Vec<IdentRuleDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentRuleDef {
    pub case: String,
    #[serde(default)]
    pub documented: bool,
    #[serde(default)]
    pub when: Vec<ConditionDef>,
    #[serde(rename = "match", default)]
    pub keys: Vec<MatchDef>,
    #[serde(default = "update")]
    pub one: String,
    #[serde(default = "skip")]
    pub many: String,
    #[serde(default = "next")]
    pub none: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchDef {
    pub column: String,
    pub source: Option<String>,
    pub differs_from: Option<String>,
    #[serde(default)]
    pub empty: bool,
    pub via_table: Option<String>,
    pub via_column: Option<String>,
}

fn default_order() -> i64 {
    100
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapDef {
    pub name: String,
    pub source_table: String,
    pub target_table: String,
    #[serde(default = "default_order")]
    pub order: i64,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub copy_empty_fields: bool,
    pub insert_property: Option<String>,
    pub update_property: Option<String>,
    #[serde(default)]
    pub condition: Vec<ConditionDef>,
    #[serde(default)]
    pub context_condition: Vec<ConditionDef>,
    pub identification: Option<String>,
    #[serde(default = "yes")]
    pub create: bool,
    #[serde(default = "yes")]
    pub row_target: bool,
    #[serde(default)]
    pub field: Vec<FieldDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub source: Option<String>,
    pub target: String,
    #[serde(default)]
    pub coalesce: bool,
    #[serde(default)]
    pub coalesce_case_sensitive: bool,
    pub converter: Option<String>,
    pub equals: Option<String>,
    pub reference_field: Option<String>,
    pub reference_table: Option<String>,
    pub choice_action: Option<String>,
    pub default: Option<String>,
    #[serde(default)]
    pub rule: Vec<RuleDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub value: String,
    #[serde(default)]
    pub when: Vec<ConditionDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDef {
    pub field: String,
    pub equals: Option<String>,
    pub not_equals: Option<String>,
    #[serde(rename = "in")]
    pub in_list: Option<Vec<String>>,
    pub contains_any: Option<Vec<String>>,
    pub contains_all: Option<Vec<String>>,
    pub is_empty: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportTypesFile {
    #[serde(default)]
    pub import_type: Vec<ImportTypeDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportTypeDef {
    pub transaction_type: String,
    pub import_type: String,
    pub root: String,
    pub record: String,
    pub staging_table: String,
    pub transaction_column: String,
    #[serde(default)]
    pub requires_sam: bool,
}
