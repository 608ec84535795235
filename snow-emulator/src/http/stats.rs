//! The Aggregate API, `GET /api/now/[v1|v2/]stats/{table}` (docs/platform-api.md): count,
//! min, max, avg and sum over the records an encoded query selects, optionally grouped, with
//! `sysparm_having` filters on the groups. Reading needs the table's read access.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::table_api::{Params, flag, lookup, param, path_params, query_of, query_params};
use super::{AppState, AuthUser};
use crate::acl::Operation;
use crate::catalog::{Catalog, ColumnType, Table};
use crate::error::ApiError;
use crate::store::{self, Aggregate, Group, Having, StoreError};

const FUNCTIONS: [Aggregate; 4] = [
    Aggregate::Min,
    Aggregate::Max,
    Aggregate::Avg,
    Aggregate::Sum,
];

/// The comma-separated list of a parameter, empty parts dropped.
fn list(params: &Params, name: &str) -> Vec<String> {
    param(params, name)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The aggregates asked for: count first (when `sysparm_count=true`), then each function's
/// fields in the documented order.
fn requested(params: &Params) -> Vec<(Aggregate, String)> {
    let mut out = Vec::new();
    if flag(params, "sysparm_count") {
        out.push((Aggregate::Count, String::new()));
    }
    for f in FUNCTIONS {
        for field in list(params, &format!("sysparm_{}_fields", f.name())) {
            out.push((f, field));
        }
    }
    out
}

pub async fn stats(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    path: Result<Path<HashMap<String, String>>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (_, table_name, _) = path_params(path)?;
    let params = query_params(query)?;
    let display = match param(&params, "sysparm_display_value").map(str::to_ascii_lowercase) {
        Some(v) if v == "true" => Shown::Label,
        Some(v) if v == "all" => Shown::All,
        _ => Shown::Value,
    };
    let result = state
        .store
        .call(move |conn, catalog| -> Result<Value, ApiError> {
            let table = lookup(catalog, &table_name, &user, Operation::Read)?;
            let q = query_of(&params, table);
            let group_by: Vec<String> = list(&params, "sysparm_group_by")
                .into_iter()
                .filter(|g| {
                    table
                        .column(g)
                        .is_some_and(|c| c.kind != ColumnType::Password)
                })
                .collect();
            let aggregates: Vec<(Aggregate, String)> = requested(&params)
                .into_iter()
                .filter(|(a, f)| {
                    *a == Aggregate::Count
                        || table
                            .column(f)
                            .is_some_and(|c| c.kind != ColumnType::Password)
                })
                .collect();
            let having: Vec<Having> = list(&params, "sysparm_having")
                .iter()
                .filter_map(|h| Having::parse(h))
                .collect();
            if group_by.is_empty() && aggregates.is_empty() {
                // Nothing asked: no aggregate is performed (documented).
                return Ok(json!({"stats": {}}));
            }
            let groups =
                store::aggregate(conn, catalog, table, &q, &group_by, &aggregates, &having)?;
            let shape = Shape {
                catalog,
                table,
                group_by: &group_by,
                aggregates: &aggregates,
            };
            if group_by.is_empty() {
                let first = groups.into_iter().next().unwrap_or(Group {
                    keys: Vec::new(),
                    values: Vec::new(),
                });
                return Ok(json!({"stats": shape.stats(&first)}));
            }
            let mut out = Vec::with_capacity(groups.len());
            for g in &groups {
                out.push(json!({
                    "stats": shape.stats(g),
                    "groupby_fields": shape.groupby_fields(conn, g, display)?,
                }));
            }
            Ok(Value::Array(out))
        })
        .await??;
    Ok(Json(json!({ "result": result })))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Value,
    Label,
    All,
}

struct Shape<'a> {
    catalog: &'a Catalog,
    table: &'a Table,
    group_by: &'a [String],
    aggregates: &'a [(Aggregate, String)],
}

impl Shape<'_> {
    /// `{"count": "3", "avg": {"field": "1.5000"}, …}`.
    fn stats(&self, g: &Group) -> Value {
        let mut out = Map::new();
        for ((a, field), value) in self.aggregates.iter().zip(&g.values) {
            if *a == Aggregate::Count {
                out.insert("count".into(), json!(value));
                continue;
            }
            let slot = out
                .entry(a.name())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = slot {
                m.insert(field.clone(), json!(value));
            }
        }
        Value::Object(out)
    }

    /// `[{"value": …, "field": …}]`, with display values when asked.
    fn groupby_fields(
        &self,
        conn: &Connection,
        g: &Group,
        display: Shown,
    ) -> Result<Vec<Value>, StoreError> {
        let mut out = Vec::with_capacity(g.keys.len());
        for (field, value) in self.group_by.iter().zip(&g.keys) {
            let shown = match self.table.column(field) {
                Some(c) if c.kind == ColumnType::Reference && !value.is_empty() => {
                    let target = c.reference.as_deref().unwrap_or_default();
                    store::display_value(conn, self.catalog, target, value)?
                }
                Some(c) => c.choice_label(value).unwrap_or(value).to_owned(),
                None => value.clone(),
            };
            out.push(match display {
                Shown::Value => json!({"value": value, "field": field}),
                Shown::Label => json!({"value": shown, "field": field}),
                Shown::All => json!({"value": value, "display_value": shown, "field": field}),
            });
        }
        Ok(out)
    }
}
