//! The transform engine: runs a staging table's transform maps (from the catalog) over one
//! staging row at a time, with ServiceNow's semantics ([SN-TRANSFORM] in docs/sources.md): maps in `order`;
//! per map a row condition, then coalesce (case-insensitive unless declared otherwise; an
//! empty coalesce value skips the row), then insert or update; `copy_empty_fields = false`
//! keeps target values the source leaves empty; an update that changes nothing is
//! "ignored". Converters are a small fixed set named in the map files.
//!
//! A map may match by `identification` (an ordered case matrix, see [`identify`]) instead of
//! coalesce fields, and may be limited to some values of a context variable
//! (`context_condition`). The caller passes an [`EngineContext`]: property values, context
//! variables, the run-as user and the transaction's timestamp; the engine reads nothing else.
//!
//! Statements are taken from the connection's statement cache once per engine and held for
//! its transaction ([`held`]); the caller wraps a whole Import Transaction in one SQLite
//! transaction.

mod batch;
mod context;
mod found;
mod held;
mod identify;
mod memory;
mod row;
mod update;

pub use context::{EngineContext, RowState};
pub use memory::Memory;
pub use row::{PositionalRow, SourceRow, trim};

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use rusqlite::Connection;
use rusqlite::types::Value;

use crate::catalog::{
    Catalog, ChoiceAction, Column, ColumnType, Converter, FieldMap, Table, TransformMap,
};
use crate::store::{
    self, StoreError, class_filter_unindexed as class_filter, new_sys_id, next_number, quote,
    to_sql,
};

const MB: i64 = 1 << 20;
const GB: i64 = 1 << 30;

/// `n / unit` rounded to the nearest, without overflow for any non-negative `n`.
fn round_div(n: i64, unit: i64) -> i64 {
    n / unit + i64::from(n % unit >= unit / 2)
}

/// What happened to one staging row (its `sys_import_*` columns).
#[derive(Debug, Clone, Default)]
pub struct RowOutcome<'c> {
    pub state: RowState,
    pub target_sys_id: String,
    pub target_table: &'c str,
    pub transform_map: &'c str,
    pub comment: String,
    pub error: String,
}

/// Adds one map's note to a row's comment ("; " between notes): `{map}: {parts…}`.
fn add_note(comment: &mut String, map: &str, parts: &[&str]) {
    if !comment.is_empty() {
        comment.push_str("; ");
    }
    comment.push_str(map);
    comment.push_str(": ");
    parts.iter().for_each(|p| comment.push_str(p));
}

struct PreparedMap<'c> {
    /// Its position in the engine's maps (and in the found-record cache).
    index: usize,
    map: &'c TransformMap,
    target: &'c Table,
    /// Distinct target columns the map writes.
    cols: Vec<&'c Column>,
    /// The map's field maps, in order.
    fields: Vec<PreparedField<'c>>,
    select_sql: held::Sql,
    /// Whether any record has the first coalesce field's value (several coalesce fields only).
    prefix_sql: Option<held::Sql>,
    /// The current values of one record, by sys_id (after identification).
    by_id_sql: held::Sql,
    ident: Option<identify::PreparedIdent<'c>>,
    insert_sql: held::Sql,
    /// Set when the map's inserts are held back and written several to a statement
    /// ([`batch`]).
    batch: Option<batch::BatchSql>,
    /// The UPDATE, naming only the columns a row changes.
    update: update::UpdateSql,
    class_params: Vec<Value>,
    /// For each target table column, what an insert binds to it.
    insert_cols: Vec<InsertColumn>,
    /// For each target table column, what an insert writes when the map gives no value.
    defaults: Vec<Value>,
    allow_insert: bool,
    allow_update: bool,
    /// Whether a row's source values alone decide that it leaves a remembered record
    /// unchanged (see [`unchanged_memo_holds`]).
    unchanged_memo: bool,
    /// Positions (in `cols`) of references left out when unresolved (`choice_action =
    /// ignore`): a row that left one out is not remembered as unchanged.
    may_resolve_later: Vec<usize>,
    /// The reference this map's result answers for the rest of the row (see
    /// [`answered_references`]).
    answers: Option<Answers>,
}

/// A map whose record is the one a reference of a later map resolves to: `field` (in the
/// map's `fields`), its one coalesce field, is the referenced field of reference `slot`.
#[derive(Debug, Clone, Copy)]
struct Answers {
    field: usize,
    slot: usize,
}

/// Whether the same source values always convert to the same field values for `map`, so a
/// row whose source values left a record unchanged tells for every later row with the same
/// values: matched by coalesce fields, and every field read from a source column (no rules
/// on other columns). A reference resolved once stays resolved; one left out unresolved
/// (`choice_action = ignore`) may resolve later, so such a row is not remembered
/// ([`PreparedMap::may_resolve_later`]).
fn unchanged_memo_holds(map: &TransformMap) -> bool {
    map.identification.is_none()
        && map.fields.iter().any(|f| f.coalesce)
        && map.fields.iter().all(|f| f.source.is_some())
}

impl<'c> PreparedMap<'c> {
    /// Compiles one map against its target table: the columns it writes, its lookup, insert
    /// and update statements, and what the properties allow.
    fn new(
        (index, catalog): (usize, &'c Catalog),
        map: &'c TransformMap,
        (source, target): (Option<&'c Table>, &'c Table),
        ctx: &EngineContext,
        slots: &mut held::Slots,
    ) -> Result<Self, StoreError> {
        let mut cols: Vec<&Column> = Vec::new();
        let mut fields = Vec::new();
        for f in &map.fields {
            let col = target.column(&f.target).ok_or_else(|| {
                StoreError::Invalid(format!("unknown target column {}", f.target))
            })?;
            let pos = match cols.iter().position(|c| c.name == col.name) {
                Some(p) => p,
                None => {
                    cols.push(col);
                    cols.len() - 1
                }
            };
            fields.push(PreparedField {
                map: f,
                col: pos,
                source_pos: (f.source.as_deref().zip(source))
                    .and_then(|(c, source)| source.column_position(c)),
                referenced: match &f.converter {
                    Converter::Reference { table, .. } => catalog.table(table),
                    _ => None,
                },
                reference_slot: 0,
            });
        }
        let (filter, class_params) = class_filter(target);
        let sql = Statements::new(map, target, &cols, &filter);
        let insert_cols = target
            .columns
            .iter()
            .map(|c| InsertColumn::of(c, cols.iter().position(|m| m.name == c.name), target))
            .collect();
        let defaults = target
            .columns
            .iter()
            .map(|c| {
                c.default
                    .as_deref()
                    .and_then(|d| to_sql(c.kind, d).ok())
                    .unwrap_or(Value::Null)
            })
            .collect();
        Ok(PreparedMap {
            index,
            insert_cols,
            defaults,
            allow_insert: ctx.allows(map.insert_property.as_deref()),
            allow_update: ctx.allows(map.update_property.as_deref()),
            unchanged_memo: unchanged_memo_holds(map),
            may_resolve_later: (fields.iter())
                .filter(|f| matches!(f.map.converter, Converter::Reference { .. }))
                .filter(|f| f.map.choice_action == ChoiceAction::Ignore)
                .map(|f| f.col)
                .collect(),
            answers: None,
            ident: map
                .identification
                .as_ref()
                .map(|i| identify::PreparedIdent::new(i, target, slots)),
            by_id_sql: slots.sql(sql.by_id),
            map,
            target,
            cols,
            fields,
            select_sql: slots.sql(sql.select),
            prefix_sql: sql.prefix.map(|p| slots.sql(p)),
            insert_sql: slots.sql(sql.insert),
            batch: None,
            update: sql.update,
            class_params,
        })
    }
}

/// One field map, compiled against its map's source and target tables.
struct PreparedField<'c> {
    map: &'c FieldMap,
    /// Its target column's position in the map's `cols`.
    col: usize,
    /// The position of its source column in the source table.
    source_pos: Option<usize>,
    /// The table its reference converter names, if it names a known one.
    referenced: Option<&'c Table>,
    /// For a reference: which of the engine's resolved-reference maps it uses (one per
    /// referenced table and field, numbered by [`number_references`]).
    reference_slot: usize,
}

/// What a map's INSERT binds to one target column, decided once per map rather than by the
/// column's name on every row.
#[derive(Debug, Clone, Copy)]
enum InsertColumn {
    SysId,
    /// The record's class, unless the map gives one (the position of its value).
    ClassName(Option<usize>),
    Now,
    User,
    ModCount,
    /// The table's next number, unless the map gives one.
    Number(Option<usize>),
    /// The map's value at this position, else the column's default.
    Mapped(Option<usize>),
}

impl InsertColumn {
    fn of(col: &Column, mapped: Option<usize>, target: &Table) -> Self {
        match col.name.as_str() {
            "sys_id" => Self::SysId,
            "sys_class_name" => Self::ClassName(mapped),
            "sys_created_on" | "sys_updated_on" => Self::Now,
            "sys_created_by" | "sys_updated_by" => Self::User,
            "sys_mod_count" => Self::ModCount,
            "number" if target.number_prefix.is_some() => Self::Number(mapped),
            _ => Self::Mapped(mapped),
        }
    }
}

/// A map's statements: find by coalesce keys, read by sys_id, insert, update, and for a map
/// coalescing on several fields, whether any record has the first field's value.
struct Statements {
    select: String,
    prefix: Option<String>,
    by_id: String,
    insert: String,
    update: update::UpdateSql,
}

impl Statements {
    /// `filter` is the target's class filter (its parameters are bound by the caller).
    fn new(map: &TransformMap, target: &Table, cols: &[&Column], filter: &str) -> Self {
        let phys = quote(&target.physical);
        let coalesce: Vec<String> = map
            .fields
            .iter()
            .filter(|f| f.coalesce)
            .map(|f| {
                let binary = if f.case_sensitive {
                    " COLLATE BINARY"
                } else {
                    ""
                };
                format!("{}{binary} = ?", quote(&f.target))
            })
            .collect();
        let select_cols: Vec<String> = cols.iter().map(|c| quote(&c.name)).collect();
        let select_sql = format!(
            "SELECT sys_id, {} FROM {phys} WHERE {} AND {filter} LIMIT 1",
            select_cols.join(", "),
            if coalesce.is_empty() {
                "0".to_owned()
            } else {
                coalesce.join(" AND ")
            }
        );
        let prefix = (coalesce.len() > 1).then(|| {
            format!(
                "SELECT 1 FROM {phys} WHERE {} AND {filter} LIMIT 1",
                coalesce[0]
            )
        });
        let by_id_sql = format!(
            "SELECT sys_id, {} FROM {phys} WHERE sys_id = ?",
            select_cols.join(", ")
        );
        let insert_sql = format!(
            "INSERT INTO {phys} ({}) VALUES ({})",
            target
                .columns
                .iter()
                .map(|c| quote(&c.name))
                .collect::<Vec<_>>()
                .join(", "),
            vec!["?"; target.columns.len()].join(",")
        );
        let update = update::UpdateSql {
            table: phys,
            columns: select_cols,
        };
        Self {
            select: select_sql,
            prefix,
            by_id: by_id_sql,
            insert: insert_sql,
            update,
        }
    }
}

pub struct Engine<'c, 'conn> {
    maps: Vec<PreparedMap<'c>>,
    /// The maps' statements, on the connection the engine works on.
    held: held::Held<'conn>,
    ctx: EngineContext,
    /// Resolved references, per referenced table and field (see [`memory::References`]).
    references: RefCell<memory::References>,
    /// Per referenced table and field, the query that resolves a reference.
    reference_lookups: Vec<ReferenceLookup>,
    /// The folded value of the reference being resolved ([`memory::fold`]), reused.
    reference_key: RefCell<String>,
    /// The current row's source values for the map being applied, joined (see
    /// [`Engine::unchanged_by_memo`]), reused.
    raw: RefCell<String>,
    /// The coalesce key a row is looked up by in the unchanged-row memo, reused: the model
    /// maps ask it on every installation.
    memo_key: RefCell<String>,
    /// Records found by coalesce keys in this transaction (see [`found`]).
    found: found::FoundCache,
    /// Physical tables the two caches read (map targets, referenced tables).
    read_tables: Vec<String>,
    /// Records a batched map inserted and has not yet written ([`batch`]).
    pending: RefCell<batch::Pending>,
}

impl<'c, 'conn> Engine<'c, 'conn> {
    /// Prepares the active maps whose source is `source_table` and whose context conditions
    /// hold for `ctx`, to work on `conn` (the caller's SQLite transaction).
    /// `kept`: what the previous engine handed back ([`Engine::into_memory`]); its caches
    /// are taken over if still true.
    pub fn new(
        conn: &'conn Connection,
        catalog: &'c Catalog,
        source_table: &str,
        ctx: EngineContext,
        kept: Option<Memory>,
    ) -> Result<Self, StoreError> {
        let mut maps = Vec::new();
        let in_context = |m: &&TransformMap| {
            m.context_condition
                .iter()
                .all(|c| c.holds(ctx.variables.get(&c.field).map(String::as_str)))
        };
        let source = catalog.table(source_table);
        let mut slots = held::Slots::default();
        for map in catalog.maps_for(source_table).filter(in_context) {
            let target = catalog.table(&map.target_table).ok_or_else(|| {
                StoreError::Invalid(format!("unknown target table {}", map.target_table))
            })?;
            let at = (maps.len(), catalog);
            maps.push(PreparedMap::new(
                at,
                map,
                (source, target),
                &ctx,
                &mut slots,
            )?);
        }
        let reference_lookups = number_references(&mut maps, &mut slots);
        answered_references(&mut maps);
        batch_exclusive_maps(&mut maps);
        let physical: Vec<&str> = maps.iter().map(|m| m.target.physical.as_str()).collect();
        let names: Vec<String> = maps.iter().map(|m| m.map.name.clone()).collect();
        let (references, found) = kept
            .and_then(|m| m.still_true_for(&names))
            .unwrap_or_else(|| (Default::default(), found::FoundCache::new(&physical)));
        Ok(Self {
            found,
            read_tables: read_tables(&maps),
            held: held::Held::new(conn, &slots),
            maps,
            ctx,
            references: RefCell::new(references),
            reference_lookups,
            reference_key: RefCell::default(),
            raw: RefCell::default(),
            memo_key: RefCell::default(),
            pending: RefCell::default(),
        })
    }

    pub fn has_maps(&self) -> bool {
        !self.maps.is_empty()
    }

    /// Writes the records still held back ([`batch`]). Call it after the last row, before
    /// the transaction commits.
    pub fn finish(&self) -> Result<(), StoreError> {
        self.write_pending()
    }

    /// What this engine learned, for the next transaction of the same maps. Call it only once
    /// the transaction is committed.
    pub fn into_memory(self) -> Memory {
        debug_assert!(
            self.pending.borrow_mut().take().is_none(),
            "finish() was not called"
        );
        Memory {
            maps: self.maps.iter().map(|m| m.map.name.clone()).collect(),
            snapshot: memory::snapshot(&self.read_tables),
            references: self.references.into_inner(),
            found: self.found,
        }
    }

    /// Transforms one staging row.
    pub fn transform_row(&self, row: &dyn SourceRow) -> Result<RowOutcome<'c>, StoreError> {
        let mut outcome = RowOutcome::default();
        let mut comment = String::new();
        for pm in &self.maps {
            let holds = |c: &crate::catalog::Condition| c.holds(row.get(&c.field));
            if !pm.map.condition.iter().all(holds) {
                continue;
            }
            let (state, sys_id, note) = match self.apply(pm, row)? {
                Ok(r) => {
                    self.answer_references(pm, row, &r.1);
                    r
                }
                Err(why) => {
                    add_note(&mut comment, &pm.map.name, &["error: ", &why]);
                    outcome.error = why;
                    outcome.state = RowState::Error;
                    outcome.transform_map = &pm.map.name;
                    outcome.target_table = &pm.target.name;
                    continue;
                }
            };
            match note {
                Some(n) => add_note(&mut comment, &pm.map.name, &[state.as_str(), " (", &n, ")"]),
                None => add_note(&mut comment, &pm.map.name, &[state.as_str()]),
            }
            let shown = pm.map.row_target || outcome.state == RowState::Pending;
            if shown && state.rank() >= outcome.state.rank() {
                outcome.state = state;
                outcome.target_sys_id = sys_id;
                outcome.target_table = &pm.target.name;
                outcome.transform_map = &pm.map.name;
            }
        }
        outcome.comment = if comment.is_empty() && !self.maps.is_empty() {
            outcome.state = RowState::Ignored;
            "No transform map condition matched".to_owned()
        } else {
            comment
        };
        Ok(outcome)
    }

    /// Tells the resolved references what map `pm` found or inserted for this row
    /// (`sys_id`, empty when nothing), if a later reference asks for that same record: the
    /// row's installation then resolves its models without looking them up.
    fn answer_references(&self, pm: &PreparedMap<'_>, row: &dyn SourceRow, sys_id: &str) {
        let Some(Answers { field, slot }) = pm.answers else {
            return;
        };
        let field = &pm.fields[field];
        let raw = (field.map.source.as_deref()).and_then(|s| row.get_at(s, field.source_pos));
        let Some(raw) = raw
            .map(row::trim)
            .filter(|r| !r.is_empty() && !sys_id.is_empty())
        else {
            return;
        };
        let mut key = self.reference_key.borrow_mut();
        memory::fold(&mut key, raw);
        self.references.borrow_mut().note_last(slot, &key, sys_id);
    }

    /// Converts one field map's source value. `Ok(None)`: leave the target as it is.
    fn field_value(
        &self,
        pm: &PreparedMap<'_>,
        field: &PreparedField<'_>,
        row: &dyn SourceRow,
    ) -> Result<Result<Option<Value>, String>, StoreError> {
        let (f, col) = (field.map, pm.cols[field.col]);
        let Some(source) = &f.source else {
            let value = f
                .rules
                .iter()
                .find(|r| r.when.iter().all(|c| c.holds(row.get(&c.field))))
                .map(|r| r.value.as_str())
                .or(f.default.as_deref());
            return Ok(match value {
                None => Ok(None),
                Some(v) if col.name == "sys_class_name" => Ok(Some(Value::Text(v.to_owned()))),
                Some(v) => to_sql(col.kind, v).map(Some),
            });
        };
        let raw = row
            .get_at(source, field.source_pos)
            .map(row::trim)
            .filter(|s| !s.is_empty());
        let Some(raw) = raw else {
            return Ok(Ok(pm.map.copy_empty_fields.then_some(Value::Null)));
        };
        let bytes = || {
            raw.parse::<i64>()
                .ok()
                .filter(|b| *b >= 0)
                .ok_or_else(|| format!("{source}: '{raw}' is not a number of bytes"))
        };
        Ok(match &f.converter {
            Converter::None => to_sql(col.kind, raw)
                .map(Some)
                .map_err(|e| format!("{}: {e}", col.name)),
            Converter::BytesToMb => bytes().map(|b| Some(Value::Integer(round_div(b, MB)))),
            Converter::BytesToGb => bytes().map(|b| Some(Value::Integer(round_div(b, GB)))),
            Converter::BooleanEquals(expected) => Ok(Some(Value::Integer(i64::from(
                raw.eq_ignore_ascii_case(expected),
            )))),
            Converter::Reference { field: name, .. } => {
                self.reference(col, field, name, raw, f.choice_action)?
            }
        })
    }

    /// Resolves a reference by the referenced table's `field` (ServiceNow's "Referenced value
    /// field name"); with choice_action create, a missing record is inserted.
    fn reference(
        &self,
        col: &Column,
        prepared: &PreparedField<'_>,
        field: &str,
        raw: &str,
        action: ChoiceAction,
    ) -> Result<Result<Option<Value>, String>, StoreError> {
        let (Some(table), slot) = (prepared.referenced, prepared.reference_slot) else {
            return Ok(Err(format!("{} is not a reference column", col.name)));
        };
        {
            let mut key = self.reference_key.borrow_mut();
            memory::fold(&mut key, raw);
            if let Some(id) = self.references.borrow_mut().get(slot, &key) {
                return Ok(Ok(Some(Value::Text(id.to_owned()))));
            }
        }
        let found: Option<String> = {
            let lookup = self.reference_lookups.get(slot).ok_or_else(|| {
                StoreError::Invalid(format!("no reference lookup {slot} for {}", col.name))
            })?;
            let classes = &lookup.classes;
            let mut stmt =
                (self.held).get_or_init(&lookup.sql, |s| held::bind_after(s, 1, classes))?;
            stmt.raw_bind_parameter(1, raw)?;
            let mut rows = stmt.raw_query();
            match rows.next()? {
                Some(row) => Some(row.get(0)?),
                None => None,
            }
        };
        let remember = |id: &str| {
            let key = self.reference_key.borrow();
            self.references.borrow_mut().put(slot, &key, id.to_owned());
        };
        Ok(match (found, action) {
            (Some(id), _) => {
                remember(&id);
                Ok(Some(Value::Text(id)))
            }
            (None, ChoiceAction::Ignore) => Ok(None),
            (None, ChoiceAction::Reject) => Err(format!(
                "{}: reference value '{raw}' rejected (no {} with {field} = '{raw}')",
                col.name, table.name
            )),
            (None, ChoiceAction::Create) => {
                let values = [(field.to_owned(), raw.to_owned())].into_iter().collect();
                Ok(Some(Value::Text(store::insert(
                    self.held.conn(),
                    table,
                    &values,
                    &self.ctx.user,
                )?)))
            }
        })
    }

    /// Runs one map on one row: `Ok(Ok((state, target sys_id, note)))`, or the row's error.
    fn apply(
        &self,
        pm: &PreparedMap<'_>,
        row: &dyn SourceRow,
    ) -> Result<Result<Applied, String>, StoreError> {
        let mut values: Vec<Option<Value>> = vec![None; pm.cols.len()];
        if let Some(applied) = self.unchanged_by_memo(pm, row, &mut values)? {
            return Ok(Ok(applied));
        }
        for field in &pm.fields {
            match self.field_value(pm, field, row)? {
                Ok(Some(v)) => values[field.col] = Some(v),
                Ok(None) => {}
                Err(why) => return Ok(Err(why)),
            }
        }
        let (existing, note) = match self.find_target(pm, row, &values)? {
            Found::Record(record, note) => (Ok(record), note),
            Found::Nothing(note, key) => (Err(key), note),
            Found::Skip(note) => {
                return Ok(Ok((RowState::Skipped, String::new(), Some(note.into()))));
            }
        };
        Ok(Ok(match existing {
            Ok(record) => self.update(pm, record, values, note)?,
            Err(_) if !pm.map.create => (
                RowState::Skipped,
                String::new(),
                Some(join_note(
                    note,
                    "no matching record; this map never creates",
                )),
            ),
            Err(_) if !pm.allow_insert => (
                RowState::Ignored,
                String::new(),
                Some(join_note(note, "inserts disabled by property")),
            ),
            Err(key) => (
                RowState::Inserted,
                self.insert(pm, values, key)?,
                note.map(Cow::Owned),
            ),
        }))
    }

    /// A row "ignored" without converting its fields: the record its coalesce key finds was
    /// left unchanged by a row with the same source values ([`found`]). Converts only the
    /// coalesce fields (into `values`) and joins the source values into `self.raw`, which
    /// [`Engine::update`] remembers when the row turns out to change nothing.
    fn unchanged_by_memo(
        &self,
        pm: &PreparedMap<'_>,
        row: &dyn SourceRow,
        values: &mut [Option<Value>],
    ) -> Result<Option<Applied>, StoreError> {
        if !pm.unchanged_memo || !pm.allow_update {
            return Ok(None);
        }
        let mut raw = self.raw.borrow_mut();
        raw.clear();
        for field in &pm.fields {
            let value = (field.map.source.as_deref())
                .and_then(|source| row.get_at(source, field.source_pos));
            raw.push_str(value.map_or("", row::trim));
            raw.push('\u{1f}');
        }
        for field in pm.fields.iter().filter(|f| f.map.coalesce) {
            match self.field_value(pm, field, row)? {
                Ok(v) => values[field.col] = v,
                Err(_) => return Ok(None),
            }
        }
        let mut key = self.memo_key.borrow_mut();
        if coalesce_key(pm, values, &mut key).is_err() {
            return Ok(None);
        }
        let hit = self.found.unchanged(pm.index, &key, &raw);
        Ok(hit.map(|sys_id| {
            let note = Some(Cow::Borrowed(NO_CHANGE));
            (RowState::Ignored, sys_id, note)
        }))
    }

    /// Finds the record a row maps to: by identification rules, else by coalesce fields.
    fn find_target(
        &self,
        pm: &PreparedMap<'_>,
        row: &dyn SourceRow,
        values: &[Option<Value>],
    ) -> Result<Found, StoreError> {
        if let Some(ident) = &pm.ident {
            self.write_pending_of(pm)?;
            return Ok(match ident.decide(&self.held, row)? {
                identify::Decision::Update { sys_id, note } => {
                    match self.current(&pm.by_id_sql, pm, &[&Value::Text(sys_id)], &[])? {
                        Some(record) => Found::Record(Target::new(record, None), Some(note)),
                        None => Found::Nothing(Some(note), None),
                    }
                }
                identify::Decision::Create { note } => Found::Nothing(Some(note), None),
                identify::Decision::Skip { note } => Found::Skip(note),
            });
        }
        self.find_by_coalesce(pm, values)
    }

    /// Finds the record with the row's coalesce values: remembered, known absent, or looked
    /// up (see [`found`]).
    fn find_by_coalesce(
        &self,
        pm: &PreparedMap<'_>,
        values: &[Option<Value>],
    ) -> Result<Found, StoreError> {
        let mut key = String::with_capacity(80);
        let prefix_len = match coalesce_key(pm, values, &mut key) {
            Ok(prefix_len) => prefix_len,
            Err(found) => return Ok(found),
        };
        let mut keys = (pm.fields.iter())
            .filter(|f| f.map.coalesce)
            .filter_map(|f| values[f.col].as_ref());
        // Asked first: a computer's installations share their first value, so the answer
        // is at hand, and when it is "absent" the record cache need not be searched.
        if self.prefix_absent(pm, keys.next(), &key[..prefix_len], &key)? {
            return Ok(Found::Nothing(None, Some(key)));
        }
        if let Some(record) = self.found.get(pm.index, &key) {
            return Ok(Found::Record(Target::new(record, Some(key)), None));
        }
        let keys: Vec<&Value> = (pm.fields.iter())
            .filter(|f| f.map.coalesce)
            .filter_map(|f| values[f.col].as_ref())
            .collect();
        Ok(
            match self.current(&pm.select_sql, pm, &keys, &pm.class_params)? {
                Some(record) => {
                    self.found.put(pm.index, key.clone(), record.clone());
                    Found::Record(Target::new(record, Some(key)), None)
                }
                None => Found::Nothing(None, Some(key)),
            },
        )
    }

    /// Whether no record can have `key` since none has its first coalesce value `first`
    /// (folded: `prefix`). Asked once per value, for maps coalescing on several fields.
    fn prefix_absent(
        &self,
        pm: &PreparedMap<'_>,
        first: Option<&Value>,
        prefix: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        let (Some(sql), Some(first)) = (&pm.prefix_sql, first) else {
            return Ok(false);
        };
        let absent = match self.found.prefix_absent(pm.index, prefix) {
            Some(absent) => absent,
            None => {
                self.write_pending_of(pm)?;
                let classes = &pm.class_params;
                let mut stmt = (self.held).get_or_init(sql, |s| held::bind_after(s, 1, classes))?;
                stmt.raw_bind_parameter(1, first)?;
                let absent = stmt.raw_query().next()?.is_none();
                self.found.put_prefix(pm.index, prefix, absent);
                absent
            }
        };
        Ok(absent && !self.found.inserted(pm.index, key))
    }

    /// The sys_id and current mapped values of the record a query finds by `keys` (then
    /// `classes`, bound once per statement).
    fn current(
        &self,
        sql: &held::Sql,
        pm: &PreparedMap<'_>,
        keys: &[&Value],
        classes: &[Value],
    ) -> Result<Option<found::Record>, StoreError> {
        self.write_pending_of(pm)?;
        let mut stmt =
            (self.held).get_or_init(sql, |s| held::bind_after(s, keys.len(), classes))?;
        for (i, key) in keys.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, *key)?;
        }
        let mut rows = stmt.raw_query();
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let id: String = r.get(0)?;
        let current = (0..pm.cols.len())
            .map(|i| r.get::<_, Value>(i + 1))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(Arc::new((id, current))))
    }

    /// Updates the record a row maps to with the row's values, unless none changes it.
    fn update(
        &self,
        pm: &PreparedMap<'_>,
        target: Target,
        values: Vec<Option<Value>>,
        note: Option<String>,
    ) -> Result<Applied, StoreError> {
        let (sys_id, current) = &*target.record;
        if !pm.allow_update {
            let note = join_note(note, "updates disabled by property");
            return Ok((RowState::Ignored, sys_id.clone(), Some(note)));
        }
        let changes = |(v, cur): (&Option<Value>, &Value)| v.as_ref().is_some_and(|v| v != cur);
        if !values.iter().zip(current).any(changes) {
            let resolved = pm.may_resolve_later.iter().all(|&c| values[c].is_some());
            if let (true, true, Some(key)) = (pm.unchanged_memo, resolved, &target.key) {
                self.found.note_unchanged(pm.index, key, &self.raw.borrow());
            }
            let note = join_note(note, NO_CHANGE);
            return Ok((RowState::Ignored, sys_id.clone(), Some(note)));
        }
        self.write_pending_of(pm)?;
        let changed = update::Changed::of(&values, current);
        let mut updated = current.clone();
        for (slot, v) in updated.iter_mut().zip(values) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        self.write_update(pm, sys_id, &updated, changed)?;
        store::wrote(&pm.target.physical);
        self.found.wrote(pm.index);
        if let Some(key) = target.key {
            self.found
                .put(pm.index, key, Arc::new((sys_id.clone(), updated)));
        }
        Ok((RowState::Updated, sys_id.clone(), note.map(Cow::Owned)))
    }

    /// Writes a record's `updated` values: those of the `changed` columns, and who and when.
    fn write_update(
        &self,
        pm: &PreparedMap<'_>,
        sys_id: &str,
        updated: &[Value],
        changed: update::Changed,
    ) -> Result<(), StoreError> {
        let key = (pm.index, changed.bits());
        let mut stmt = (self.held).get_keyed(key, || pm.update.text(changed))?;
        let mut at = 0;
        for (i, v) in updated.iter().enumerate() {
            if changed.names(i) {
                at += 1;
                stmt.raw_bind_parameter(at, v)?;
            }
        }
        stmt.raw_bind_parameter(at + 1, self.ctx.now.as_str())?;
        stmt.raw_bind_parameter(at + 2, self.ctx.user.as_str())?;
        stmt.raw_bind_parameter(at + 3, sys_id)?;
        stmt.raw_execute()?;
        Ok(())
    }

    /// Inserts the row's record: the mapped values, the system columns, the defaults. `key`:
    /// the coalesce key it will be found by.
    fn insert(
        &self,
        pm: &PreparedMap<'_>,
        mut values: Vec<Option<Value>>,
        key: Option<String>,
    ) -> Result<String, StoreError> {
        let sys_id = new_sys_id();
        if pm.batch.is_some() {
            return self.hold_back(pm, values, key, sys_id);
        }
        let ctx = &self.ctx;
        let mut stmt = (self.held).get_or_init(&pm.insert_sql, |stmt| {
            bind_insert_constants(stmt, &pm.insert_cols, ctx)
        })?;
        let mut take = |pos: Option<usize>| pos.and_then(|p| values[p].take());
        for (i, column) in pm.insert_cols.iter().enumerate() {
            let at = i + 1;
            match *column {
                // Bound once, when the statement was prepared.
                InsertColumn::Now | InsertColumn::User | InsertColumn::ModCount => Ok(()),
                InsertColumn::SysId => stmt.raw_bind_parameter(at, sys_id.as_str()),
                InsertColumn::ClassName(pos) => match take(pos) {
                    Some(v) => stmt.raw_bind_parameter(at, v),
                    None => stmt.raw_bind_parameter(at, pm.target.name.as_str()),
                },
                InsertColumn::Number(pos) => match take(pos) {
                    Some(v) => stmt.raw_bind_parameter(at, v),
                    None => stmt.raw_bind_parameter(at, next_number(self.held.conn(), pm.target)?),
                },
                InsertColumn::Mapped(pos) => match take(pos) {
                    Some(v) => stmt.raw_bind_parameter(at, v),
                    None => stmt.raw_bind_parameter(at, &pm.defaults[i]),
                },
            }?;
        }
        stmt.raw_execute()?;
        self.note_inserted(pm, key);
        Ok(sys_id)
    }

    /// What an insert by map `pm` (its record found by `key`) changes for the caches: its
    /// table's write generation, the other maps' records of that table, the keys known absent.
    fn note_inserted(&self, pm: &PreparedMap<'_>, key: Option<String>) {
        store::wrote(&pm.target.physical);
        self.found.wrote(pm.index);
        if let Some(key) = key {
            self.found.put_inserted(pm.index, &key);
        }
    }

    /// [`Engine::insert`] for a batched map: the row's values are held back and written with
    /// the next ones ([`batch`]). What the caches learn is the same.
    fn hold_back(
        &self,
        pm: &PreparedMap<'_>,
        mut values: Vec<Option<Value>>,
        key: Option<String>,
        sys_id: String,
    ) -> Result<String, StoreError> {
        if self.pending.borrow().holds_other(pm.index) {
            self.write_pending()?;
        }
        let mut take = |pos: Option<usize>| pos.and_then(|p| values[p].take());
        let mut row = Vec::with_capacity(pm.insert_cols.len());
        for (i, column) in pm.insert_cols.iter().enumerate() {
            row.push(match *column {
                // Bound when written, from the engine's context.
                InsertColumn::Now | InsertColumn::User | InsertColumn::ModCount => Value::Null,
                InsertColumn::SysId => Value::Text(sys_id.clone()),
                InsertColumn::ClassName(pos) => {
                    take(pos).unwrap_or_else(|| Value::Text(pm.target.name.clone()))
                }
                InsertColumn::Number(pos) => match take(pos) {
                    Some(v) => v,
                    None => {
                        next_number(self.held.conn(), pm.target)?.map_or(Value::Null, Value::Text)
                    }
                },
                InsertColumn::Mapped(pos) => take(pos).unwrap_or_else(|| pm.defaults[i].clone()),
            });
        }
        let full = {
            let mut pending = self.pending.borrow_mut();
            pending.push(pm.index, row);
            pending.is_full()
        };
        if full {
            self.write_pending()?;
        }
        self.note_inserted(pm, key);
        Ok(sys_id)
    }

    /// Writes map `pm`'s held-back records, if any: before a statement reads or writes its
    /// table.
    fn write_pending_of(&self, pm: &PreparedMap<'_>) -> Result<(), StoreError> {
        if self.pending.borrow().holds(pm.index) {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Writes every held-back record.
    fn write_pending(&self) -> Result<(), StoreError> {
        let Some((map, rows)) = self.pending.borrow_mut().take() else {
            return Ok(());
        };
        let pm = &self.maps[map];
        let Some(batch) = &pm.batch else {
            return Err(StoreError::Invalid(format!(
                "records held back for {}, which is not batched",
                pm.map.name
            )));
        };
        let ctx = &self.ctx;
        batch.write(self.held.conn(), &rows, |stmt, offset, row| {
            for (i, (column, value)) in pm.insert_cols.iter().zip(row).enumerate() {
                let at = offset + i + 1;
                match column {
                    InsertColumn::Now => stmt.raw_bind_parameter(at, ctx.now.as_str()),
                    InsertColumn::User => stmt.raw_bind_parameter(at, ctx.user.as_str()),
                    InsertColumn::ModCount => stmt.raw_bind_parameter(at, 0),
                    _ => stmt.raw_bind_parameter(at, value),
                }?;
            }
            Ok(())
        })
    }
}

/// Batches the inserts of every map whose target table no other map of the engine writes or
/// references, and that identifies no records: its own lookups and updates are then the only
/// statements that read the table, and they write the held-back rows first ([`batch`]).
fn batch_exclusive_maps(maps: &mut [PreparedMap<'_>]) {
    let shared = |i: usize, physical: &str| {
        maps.iter().enumerate().any(|(j, other)| {
            (j != i && other.target.physical == physical)
                || (other.fields.iter())
                    .any(|f| f.referenced.is_some_and(|t| t.physical == physical))
        })
    };
    let batched: Vec<bool> = (maps.iter().enumerate())
        .map(|(i, pm)| pm.ident.is_none() && !shared(i, &pm.target.physical))
        .collect();
    for (pm, batched) in maps.iter_mut().zip(batched) {
        if batched {
            let columns: Vec<&str> = pm.target.columns.iter().map(|c| c.name.as_str()).collect();
            pm.batch = Some(batch::BatchSql::new(&pm.target.physical, &columns));
        }
    }
}

/// Numbers the referenced (table, field) pairs of the maps' reference converters, in order:
/// the same maps get the same numbers, so a kept [`memory::References`] stays valid.
/// Returns, per number, the lookup of a referenced record by the field's value.
fn number_references<'c>(
    maps: &mut [PreparedMap<'c>],
    slots: &mut held::Slots,
) -> Vec<ReferenceLookup> {
    let mut seen: Vec<(&'c Table, &'c str)> = Vec::new();
    for field in maps.iter_mut().flat_map(|m| m.fields.iter_mut()) {
        let (Some(table), Converter::Reference { field: name, .. }) =
            (field.referenced, &field.map.converter)
        else {
            continue;
        };
        let same = |(t, f): &(&Table, &str)| t.name == table.name && *f == name.as_str();
        field.reference_slot = match seen.iter().position(same) {
            Some(i) => i,
            None => {
                seen.push((table, name.as_str()));
                seen.len() - 1
            }
        };
    }
    (seen.into_iter())
        .map(|(table, field)| ReferenceLookup::new(table, field, slots))
        .collect()
}

/// Marks the maps whose record a reference of the engine resolves to ([`Answers`]): a map
/// coalescing on one plain text field F of its target T, when a reference looks records of
/// T up by F. Both then run the same query (`F = value` under T's class filter, first
/// match), so the record the map found, updated or inserted for a row is the one that
/// reference finds for the same value.
fn answered_references(maps: &mut [PreparedMap<'_>]) {
    let references: Vec<(&str, &str, usize)> = (maps.iter())
        .flat_map(|m| m.fields.iter())
        .filter_map(|f| match (f.referenced, &f.map.converter) {
            (Some(t), Converter::Reference { field, .. }) => {
                Some((t.name.as_str(), field.as_str(), f.reference_slot))
            }
            _ => None,
        })
        .collect();
    let answers: Vec<Option<Answers>> = (maps.iter())
        .map(|m| {
            let mut coalesce = m.fields.iter().enumerate().filter(|(_, f)| f.map.coalesce);
            let (Some((field, f)), None) = (coalesce.next(), coalesce.next()) else {
                return None;
            };
            let plain = m.ident.is_none()
                && matches!(f.map.converter, Converter::None)
                && !f.map.case_sensitive
                && m.cols[f.col].kind == ColumnType::String;
            let asked =
                |(t, name, _): &&(&str, &str, usize)| *t == m.target.name && *name == f.map.target;
            let slot = references.iter().find(asked).map(|r| r.2);
            slot.filter(|_| plain).map(|slot| Answers { field, slot })
        })
        .collect();
    for (m, answers) in maps.iter_mut().zip(answers) {
        m.answers = answers;
    }
}

/// The query finding a referenced record by one field's value, and its class names.
struct ReferenceLookup {
    sql: held::Sql,
    classes: Vec<Value>,
}

impl ReferenceLookup {
    fn new(table: &Table, field: &str, slots: &mut held::Slots) -> Self {
        let (filter, classes) = class_filter(table);
        let sql = format!(
            "SELECT sys_id FROM {} WHERE {} = ? AND {filter} LIMIT 1",
            quote(&table.physical),
            quote(field)
        );
        Self {
            sql: slots.sql(sql),
            classes,
        }
    }
}

/// Binds what every insert of an engine writes alike (time, user, modification count), once
/// per prepared INSERT: a bound text is copied on every bind.
fn bind_insert_constants(
    stmt: &mut rusqlite::Statement<'_>,
    columns: &[InsertColumn],
    ctx: &EngineContext,
) -> Result<(), StoreError> {
    for (i, column) in columns.iter().enumerate() {
        match *column {
            InsertColumn::Now => stmt.raw_bind_parameter(i + 1, ctx.now.as_str()),
            InsertColumn::User => stmt.raw_bind_parameter(i + 1, ctx.user.as_str()),
            InsertColumn::ModCount => stmt.raw_bind_parameter(i + 1, 0),
            _ => Ok(()),
        }?;
    }
    Ok(())
}

/// The physical tables an engine's caches read: its maps' targets and referenced tables.
fn read_tables(maps: &[PreparedMap<'_>]) -> Vec<String> {
    let mut tables: Vec<String> = Vec::new();
    for pm in maps {
        let referenced = pm.fields.iter().filter_map(|f| f.referenced);
        for t in std::iter::once(pm.target).chain(referenced) {
            if !tables.contains(&t.physical) {
                tables.push(t.physical.clone());
            }
        }
    }
    tables
}

/// The note of an update that changes nothing (ServiceNow's "ignored").
const NO_CHANGE: &str = "no field values changed";

/// Writes a row's coalesce key into `key`: the converted `values` folded as their columns
/// compare them ([`found::push_key`]). Returns the length of its first value's part; `Err`:
/// what the row finds without one (skipped for an empty coalesce value; nothing for a map
/// without coalesce fields).
fn coalesce_key(
    pm: &PreparedMap<'_>,
    values: &[Option<Value>],
    key: &mut String,
) -> Result<usize, Found> {
    key.clear();
    let mut prefix_len = None;
    for field in pm.fields.iter().filter(|f| f.map.coalesce) {
        let (f, pos) = (field.map, field.col);
        match &values[pos] {
            Some(v) if *v != Value::Null => {
                found::push_key(key, v, f.case_sensitive);
                prefix_len.get_or_insert(key.len());
            }
            _ => return Err(Found::Skip(format!("coalesce field {} is empty", f.target))),
        }
    }
    prefix_len.ok_or(Found::Nothing(None, None))
}

/// One map's result on one row: state, target sys_id, note for the row's comment.
type Applied = (RowState, String, Option<Note>);

/// A map's note for the row's comment: most are one of a few constant texts, not copied.
type Note = Cow<'static, str>;

/// The record a row maps to (its sys_id and the current values of the map's columns), and
/// the found-record cache key it was found by (none when found by identification).
struct Target {
    record: found::Record,
    key: Option<String>,
}

impl Target {
    fn new(record: found::Record, key: Option<String>) -> Self {
        Self { record, key }
    }
}

/// What a row maps to, with the note for the row's comment.
enum Found {
    Record(Target, Option<String>),
    /// No record: the note, and the coalesce key an inserted record will be found by.
    Nothing(Option<String>, Option<String>),
    Skip(String),
}

fn join_note(note: Option<String>, more: &'static str) -> Note {
    match note {
        Some(n) => Cow::Owned(format!("{n}; {more}")),
        None => Cow::Borrowed(more),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_conversion_rounds_and_never_overflows() {
        assert_eq!(round_div(17_179_869_184, MB), 16_384);
        assert_eq!(round_div(512_110_190_592, GB), 477);
        assert_eq!(round_div(MB / 2 - 1, MB), 0);
        assert_eq!(round_div(MB / 2, MB), 1);
        assert_eq!(round_div(i64::MAX, MB), i64::MAX / MB + 1);
    }
}
