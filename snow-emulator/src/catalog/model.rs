//! The resolved catalog: inheritance flattened, storage decided, maps validated.

use std::collections::BTreeMap;

/// Column types (ServiceNow's internal type names where they exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Integer,
    Boolean,
    Reference,
    Choice,
    DateTime,
    Date,
    Xml,
    /// Stored hashed; never returned by the Table API.
    Password,
}

impl ColumnType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "integer" => Self::Integer,
            "boolean" => Self::Boolean,
            "reference" => Self::Reference,
            "choice" => Self::Choice,
            "glide_date_time" => Self::DateTime,
            "glide_date" => Self::Date,
            "xml" | "long_text" => Self::Xml,
            "password" => Self::Password,
            _ => return None,
        })
    }

    /// Integers and booleans are SQLite integers; everything else is case-insensitive text.
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Boolean)
    }
}

#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub label: String,
    pub kind: ColumnType,
    /// Referenced table, for `Reference` columns.
    pub reference: Option<String>,
    pub choices: Vec<Choice>,
    pub default: Option<String>,
    pub index: bool,
    /// A case-sensitive coalesce uses this column: it gets a BINARY index as well.
    pub index_binary: bool,
    /// A long-text column kept in a side table of its own, so that updating the record's
    /// other columns does not rewrite it (SQLite rewrites a whole row on every update; an
    /// Import Transaction's payload would be written once per state change).
    pub out_of_row: bool,
}

impl Column {
    pub fn choice_label(&self, value: &str) -> Option<&str> {
        self.choices
            .iter()
            .find(|c| c.value == value)
            .map(|c| c.label.as_str())
    }
}

/// The system columns every record has.
pub const SYS_COLUMNS: [&str; 7] = [
    "sys_id",
    "sys_class_name",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
];

#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub label: String,
    pub parent: Option<String>,
    /// The SQLite table holding this class's rows.
    pub physical: String,
    /// Classes whose rows this table returns: itself and its descendants stored in the same
    /// physical table.
    pub classes: Vec<String>,
    /// True when `classes` covers every row of `physical` (no class filter needed).
    pub covers_physical: bool,
    pub display: String,
    pub number_prefix: Option<String>,
    /// The list view's columns, in order (declared `list`, inherited, or a default).
    pub list: Vec<String>,
    /// System, inherited and own columns.
    pub columns: Vec<Column>,
    /// foldhash, not SipHash: the worker asks it for a column several times a row.
    pub(crate) index: foldhash::HashMap<String, usize>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.index.get(name).map(|&i| &self.columns[i])
    }

    /// The position of a column in `columns`.
    pub fn column_position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// One SQLite table: the union of the columns of the classes stored in it.
#[derive(Debug, Clone)]
pub struct PhysicalTable {
    pub name: String,
    pub columns: Vec<Column>,
    pub has_subclasses: bool,
    /// Multi-column indexes, one per transform map coalescing on several fields.
    pub key_indexes: Vec<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct ImportType {
    pub transaction_type: String,
    pub import_type: String,
    pub root: String,
    pub record: String,
    pub staging_table: String,
    pub transaction_column: String,
    pub requires_sam: bool,
}

#[derive(Debug, Clone)]
pub enum CondOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    ContainsAny(Vec<String>),
    ContainsAll(Vec<String>),
    IsEmpty(bool),
}

/// A condition on one source (staging) field. Text comparisons ignore case.
#[derive(Debug, Clone)]
pub struct Condition {
    pub field: String,
    pub op: CondOp,
}

impl Condition {
    /// Whether the condition holds for a source value. The operands were lowercased when
    /// the catalog was loaded.
    pub fn holds(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("").trim().to_lowercase();
        match &self.op {
            CondOp::Equals(x) => v == *x,
            CondOp::NotEquals(x) => v != *x,
            CondOp::In(xs) => xs.contains(&v),
            CondOp::ContainsAny(xs) => xs.iter().any(|x| v.contains(x.as_str())),
            CondOp::ContainsAll(xs) => xs.iter().all(|x| v.contains(x.as_str())),
            CondOp::IsEmpty(want) => v.is_empty() == *want,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converter {
    None,
    BytesToMb,
    BytesToGb,
    BooleanEquals(String),
    /// Look the value up in `table`'s `field` (`table`: the column's referenced table or
    /// one of its descendants).
    Reference {
        field: String,
        table: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceAction {
    Create,
    Ignore,
    Reject,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub value: String,
    pub when: Vec<Condition>,
}

#[derive(Debug, Clone)]
pub struct FieldMap {
    pub source: Option<String>,
    pub target: String,
    pub coalesce: bool,
    pub case_sensitive: bool,
    pub converter: Converter,
    pub choice_action: ChoiceAction,
    pub default: Option<String>,
    pub rules: Vec<Rule>,
}

/// What an identification rule decides for one count of matching records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOutcome {
    /// Update the one matched record (with `many`: the oldest).
    Update,
    /// Insert a new record.
    Create,
    /// Leave the row (state `skipped`, with the rule's reason).
    Skip,
    /// Try the next rule.
    Next,
}

impl MatchOutcome {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "update" => Self::Update,
            "create" => Self::Create,
            "skip" => Self::Skip,
            "next" => Self::Next,
            _ => return None,
        })
    }
}

/// One key of an identification rule: a predicate on a target record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchKey {
    /// `column` equals the source value (case-insensitive).
    Equals { column: String, source: String },
    /// `column` is set and differs from the source value.
    Differs { column: String, source: String },
    /// `column` is empty.
    Empty { column: String },
    /// A record of the table stored in `physical` with `column` = source value references
    /// the target record through `reference` (e.g. the Serial Number table).
    Via {
        physical: String,
        column: String,
        reference: String,
        source: String,
    },
}

impl MatchKey {
    /// The staging column whose value the key needs, if any.
    pub fn source(&self) -> Option<&str> {
        match self {
            Self::Equals { source, .. }
            | Self::Differs { source, .. }
            | Self::Via { source, .. } => Some(source),
            Self::Empty { .. } => None,
        }
    }
}

/// One case of an identification matrix, tried in order (in the spirit of ServiceNow's IRE
/// identification rules): applies when its `when` conditions hold and every source value its
/// keys need is non-empty; then the number of target records matching all keys decides.
#[derive(Debug, Clone)]
pub struct IdentRule {
    pub case: String,
    pub documented: bool,
    pub when: Vec<Condition>,
    pub keys: Vec<MatchKey>,
    pub one: MatchOutcome,
    pub many: MatchOutcome,
    pub none: MatchOutcome,
    pub reason: String,
}

/// A named, ordered list of identification rules; `no_match` decides when every rule said
/// `next` (or none applied).
#[derive(Debug, Clone)]
pub struct Identification {
    pub name: String,
    pub rules: Vec<IdentRule>,
    pub no_match: MatchOutcome,
}

#[derive(Debug, Clone)]
pub struct TransformMap {
    pub name: String,
    pub source_table: String,
    pub target_table: String,
    pub order: i64,
    pub active: bool,
    pub copy_empty_fields: bool,
    pub insert_property: Option<String>,
    pub update_property: Option<String>,
    pub condition: Vec<Condition>,
    /// Conditions on the engine's context variables (e.g. `installation_target`), which the
    /// caller computes; a map whose context conditions fail does not run.
    pub context_condition: Vec<Condition>,
    /// Matching by identification rules instead of coalesce fields.
    pub identification: Option<Identification>,
    /// False: never insert (a row that matches nothing is skipped).
    pub create: bool,
    /// False: a map that writes a related record (a serial number, a contract's covered CI);
    /// its result goes into the row's comment but never becomes the row's target.
    pub row_target: bool,
    pub fields: Vec<FieldMap>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub tables: BTreeMap<String, Table>,
    pub physical: Vec<PhysicalTable>,
    pub import_types: Vec<ImportType>,
    /// Installed records (`records/*.toml`), in file order.
    pub records: Vec<super::records::SeedRecord>,
    /// All maps, sorted by (source table, order, name).
    pub maps: Vec<TransformMap>,
    /// Roles, grants and access rules from `acl/` (parsed by `crate::acl`).
    pub acl: crate::acl::Policy,
}

impl Catalog {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    pub fn import_type(&self, transaction_type: &str) -> Option<&ImportType> {
        self.import_types
            .iter()
            .find(|t| t.transaction_type == transaction_type)
    }

    /// Active maps on one staging table, in run order.
    pub fn maps_for(&self, source_table: &str) -> impl Iterator<Item = &TransformMap> {
        self.maps
            .iter()
            .filter(move |m| m.active && m.source_table == source_table)
    }
}
