//! The transform engine: runs a staging table's transform maps (from the catalog) over one
//! staging row at a time, with ServiceNow's semantics ([SN-TRANSFORM] in docs/sources.md): maps in `order`;
//! per map a row condition, then coalesce (case-insensitive unless declared otherwise; an
//! empty coalesce value skips the row), then insert or update; `copy_empty_fields = false`
//! keeps target values the source leaves empty; an update that changes nothing is
//! "ignored". Converters are a small fixed set named in the map files.
//!
//! Statements are prepared once per map and cached by SQLite; the caller wraps a whole
//! Import Transaction in one SQLite transaction.

use std::cell::RefCell;
use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::catalog::{Catalog, ChoiceAction, Column, Converter, FieldMap, Table, TransformMap};
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
pub struct RowOutcome {
    pub state: &'static str,
    pub target_sys_id: String,
    pub target_table: String,
    pub transform_map: String,
    pub comment: String,
    pub error: String,
}

struct PreparedMap<'c> {
    map: &'c TransformMap,
    target: &'c Table,
    /// Distinct target columns the map writes.
    cols: Vec<&'c Column>,
    /// For each field map, its position in `cols`.
    field_pos: Vec<usize>,
    select_sql: String,
    insert_sql: String,
    update_sql: String,
    class_params: Vec<Value>,
    /// For each target table column, its position in `cols` (if the map writes it).
    insert_pos: Vec<Option<usize>>,
    allow_insert: bool,
    allow_update: bool,
}

pub struct Engine<'c> {
    catalog: &'c Catalog,
    maps: Vec<PreparedMap<'c>>,
    user: String,
    /// Resolved references (table, field, value folded like SQLite's NOCASE) → sys_id. Only
    /// hits are kept: records are not deleted while a transaction is processed, so a hit
    /// stays true, while a miss may not (a map may insert the record).
    references: RefCell<HashMap<(String, String, String), String>>,
}

/// Bound on the reference cache (distinct model numbers, publishers… per transaction).
const REFERENCE_CACHE: usize = 50_000;

fn property_allows(
    conn: &Connection,
    catalog: &Catalog,
    name: Option<&str>,
) -> Result<bool, StoreError> {
    let Some(name) = name else { return Ok(true) };
    Ok(crate::app::property(conn, catalog, name)?.as_deref() != Some("false"))
}

impl<'c> Engine<'c> {
    /// Prepares the active maps whose source is `source_table`. Integration properties named
    /// by the maps are read now, once per Import Transaction.
    pub fn new(
        conn: &Connection,
        catalog: &'c Catalog,
        source_table: &str,
        user: &str,
    ) -> Result<Self, StoreError> {
        let mut maps = Vec::new();
        for map in catalog.maps_for(source_table) {
            let target = catalog.table(&map.target_table).ok_or_else(|| {
                StoreError::Invalid(format!("unknown target table {}", map.target_table))
            })?;
            let mut cols: Vec<&Column> = Vec::new();
            let mut field_pos = Vec::new();
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
                field_pos.push(pos);
            }
            let phys = quote(&target.physical);
            let (filter, class_params) = class_filter(target);
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
            let update_sql = format!(
                "UPDATE {phys} SET {}, sys_updated_on = ?, sys_updated_by = ?, sys_mod_count = COALESCE(sys_mod_count, 0) + 1 WHERE sys_id = ?",
                select_cols
                    .iter()
                    .map(|c| format!("{c} = ?"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let insert_pos = target
                .columns
                .iter()
                .map(|c| cols.iter().position(|m| m.name == c.name))
                .collect();
            maps.push(PreparedMap {
                insert_pos,
                allow_insert: property_allows(conn, catalog, map.insert_property.as_deref())?,
                allow_update: property_allows(conn, catalog, map.update_property.as_deref())?,
                map,
                target,
                cols,
                field_pos,
                select_sql,
                insert_sql,
                update_sql,
                class_params,
            });
        }
        Ok(Self {
            catalog,
            maps,
            user: user.to_owned(),
            references: RefCell::new(HashMap::new()),
        })
    }

    pub fn has_maps(&self) -> bool {
        !self.maps.is_empty()
    }

    /// Transforms one staging row (column → non-empty value).
    pub fn transform_row(
        &self,
        conn: &Connection,
        row: &HashMap<String, String>,
    ) -> Result<RowOutcome, StoreError> {
        let mut outcome = RowOutcome {
            state: if self.maps.is_empty() {
                "pending"
            } else {
                "ignored"
            },
            ..RowOutcome::default()
        };
        let mut notes = Vec::new();
        for pm in &self.maps {
            let holds =
                |c: &crate::catalog::Condition| c.holds(row.get(&c.field).map(String::as_str));
            if !pm.map.condition.iter().all(holds) {
                continue;
            }
            let result = self.apply(conn, pm, row)?;
            let (state, sys_id, note) = match result {
                Ok(r) => r,
                Err(why) => {
                    notes.push(format!("{}: error: {why}", pm.map.name));
                    outcome.error = why;
                    outcome.state = "error";
                    outcome.transform_map = pm.map.name.clone();
                    outcome.target_table = pm.target.name.clone();
                    continue;
                }
            };
            notes.push(match note {
                Some(n) => format!("{}: {state} ({n})", pm.map.name),
                None => format!("{}: {state}", pm.map.name),
            });
            if outcome.state != "error" {
                outcome.state = state;
                outcome.target_sys_id = sys_id;
                outcome.target_table = pm.target.name.clone();
                outcome.transform_map = pm.map.name.clone();
            }
        }
        outcome.comment = if notes.is_empty() && !self.maps.is_empty() {
            "No transform map condition matched".to_owned()
        } else {
            notes.join("; ")
        };
        Ok(outcome)
    }

    /// Converts one field map's source value. `Ok(None)`: leave the target as it is.
    fn field_value(
        &self,
        conn: &Connection,
        pm: &PreparedMap<'_>,
        f: &FieldMap,
        col: &Column,
        row: &HashMap<String, String>,
    ) -> Result<Result<Option<Value>, String>, StoreError> {
        let Some(source) = &f.source else {
            let value = f
                .rules
                .iter()
                .find(|r| {
                    r.when
                        .iter()
                        .all(|c| c.holds(row.get(&c.field).map(String::as_str)))
                })
                .map(|r| r.value.as_str())
                .or(f.default.as_deref());
            return Ok(match value {
                None => Ok(None),
                Some(v) if col.name == "sys_class_name" => Ok(Some(Value::Text(v.to_owned()))),
                Some(v) => to_sql(col.kind, v).map(Some),
            });
        };
        let raw = row.get(source).map(|s| s.trim()).filter(|s| !s.is_empty());
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
            Converter::Reference { field } => {
                self.reference(conn, col, field, raw, f.choice_action)?
            }
        })
    }

    /// Resolves a reference by the referenced table's `field` (ServiceNow's "Referenced value
    /// field name"); with choice_action create, a missing record is inserted.
    fn reference(
        &self,
        conn: &Connection,
        col: &Column,
        field: &str,
        raw: &str,
        action: ChoiceAction,
    ) -> Result<Result<Option<Value>, String>, StoreError> {
        let Some(table) = col.reference.as_deref().and_then(|t| self.catalog.table(t)) else {
            return Ok(Err(format!("{} is not a reference column", col.name)));
        };
        let key = (
            table.name.clone(),
            field.to_owned(),
            raw.to_ascii_lowercase(),
        );
        if let Some(id) = self.references.borrow().get(&key) {
            return Ok(Ok(Some(Value::Text(id.clone()))));
        }
        let (filter, mut params) = class_filter(table);
        params.insert(0, Value::Text(raw.to_owned()));
        let sql = format!(
            "SELECT sys_id FROM {} WHERE {} = ? AND {filter} LIMIT 1",
            quote(&table.physical),
            quote(field)
        );
        let found: Option<String> = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(params), |r| r.get(0))
            .optional()?;
        let remember = |id: &str| {
            let mut cache = self.references.borrow_mut();
            if cache.len() >= REFERENCE_CACHE {
                cache.clear();
            }
            cache.insert(key.clone(), id.to_owned());
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
                    conn, table, &values, &self.user,
                )?)))
            }
        })
    }

    /// Runs one map on one row: `Ok(Ok((state, target sys_id, note)))`, or the row's error.
    #[expect(
        clippy::type_complexity,
        reason = "inner Result is the row-level outcome"
    )]
    fn apply(
        &self,
        conn: &Connection,
        pm: &PreparedMap<'_>,
        row: &HashMap<String, String>,
    ) -> Result<Result<(&'static str, String, Option<String>), String>, StoreError> {
        let mut values: Vec<Option<Value>> = vec![None; pm.cols.len()];
        for (f, &pos) in pm.map.fields.iter().zip(&pm.field_pos) {
            match self.field_value(conn, pm, f, pm.cols[pos], row)? {
                Ok(Some(v)) => values[pos] = Some(v),
                Ok(None) => {}
                Err(why) => return Ok(Err(why)),
            }
        }
        let mut keys = Vec::new();
        for (f, &pos) in pm.map.fields.iter().zip(&pm.field_pos) {
            if f.coalesce {
                match &values[pos] {
                    Some(v) if *v != Value::Null => keys.push(v.clone()),
                    _ => {
                        return Ok(Ok((
                            "skipped",
                            String::new(),
                            Some(format!("coalesce field {} is empty", f.target)),
                        )));
                    }
                }
            }
        }
        let existing = if keys.is_empty() {
            None
        } else {
            let mut params = keys;
            params.extend(pm.class_params.iter().cloned());
            let mut stmt = conn.prepare_cached(&pm.select_sql)?;
            stmt.query_row(params_from_iter(params), |r| {
                let id: String = r.get(0)?;
                let current = (0..pm.cols.len())
                    .map(|i| r.get::<_, Value>(i + 1))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((id, current))
            })
            .optional()?
        };
        let now = crate::clock::now_string();
        match existing {
            Some((sys_id, mut current)) => {
                if !pm.allow_update {
                    return Ok(Ok((
                        "ignored",
                        sys_id,
                        Some("updates disabled by property".into()),
                    )));
                }
                let mut changed = false;
                for (slot, v) in current.iter_mut().zip(values) {
                    if let Some(v) = v
                        && *slot != v
                    {
                        *slot = v;
                        changed = true;
                    }
                }
                if !changed {
                    return Ok(Ok((
                        "ignored",
                        sys_id,
                        Some("no field values changed".into()),
                    )));
                }
                let mut params = current;
                params.push(Value::Text(now));
                params.push(Value::Text(self.user.clone()));
                params.push(Value::Text(sys_id.clone()));
                conn.prepare_cached(&pm.update_sql)?
                    .execute(params_from_iter(params))?;
                Ok(Ok(("updated", sys_id, None)))
            }
            None => {
                if !pm.allow_insert {
                    return Ok(Ok((
                        "ignored",
                        String::new(),
                        Some("inserts disabled by property".into()),
                    )));
                }
                let sys_id = new_sys_id();
                let mut params = Vec::with_capacity(pm.target.columns.len());
                for (col, pos) in pm.target.columns.iter().zip(&pm.insert_pos) {
                    let mapped = pos.and_then(|p| values[p].take());
                    params.push(match col.name.as_str() {
                        "sys_id" => Value::Text(sys_id.clone()),
                        "sys_class_name" => {
                            mapped.unwrap_or_else(|| Value::Text(pm.target.name.clone()))
                        }
                        "sys_created_on" | "sys_updated_on" => Value::Text(now.clone()),
                        "sys_created_by" | "sys_updated_by" => Value::Text(self.user.clone()),
                        "sys_mod_count" => Value::Integer(0),
                        "number" if mapped.is_none() && pm.target.number_prefix.is_some() => {
                            next_number(conn, pm.target)?.map_or(Value::Null, Value::Text)
                        }
                        _ => match mapped {
                            Some(v) => v,
                            None => col
                                .default
                                .as_deref()
                                .and_then(|d| to_sql(col.kind, d).ok())
                                .unwrap_or(Value::Null),
                        },
                    });
                }
                conn.prepare_cached(&pm.insert_sql)?
                    .execute(params_from_iter(params))?;
                Ok(Ok(("inserted", sys_id, None)))
            }
        }
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
