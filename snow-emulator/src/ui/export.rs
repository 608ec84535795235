//! URL exports ([SN-URL-EXPORT], [SN-EXPORT-PARAMS], [SN-JSONV2] in docs/sources.md):
//! `/{table}_list.do?CSV`, `?XML` and `?JSONv2` (also on `/{table}.do`), with
//! `sysparm_query`, `sysparm_orderby` and `sysparm_fields`, for scripts that pull data that
//! way. Basic authentication works, and only tables the caller may read are exported.
//!
//! - CSV: the list view's columns (all with `sysparm_default_export_fields=all`), every value
//!   quoted, display values unless `sysparm_display_value=false`, names as headers unless
//!   `sysparm_export_column_header_label=true`.
//! - XML: `<xml><{table}>…</{table}></xml>`, every column, raw values; a reference also
//!   carries its display value as an attribute (designed).
//! - JSONv2: `{"records": [...]}`, raw values; `displayvalue=true` shows display values,
//!   `displayvalue=all` adds them as `dv_{field}`; `sysparm_action=getKeys` lists sys_ids,
//!   `sysparm_sys_id` picks one record, `sysparm_record_count` limits.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::list::{list_columns, query_text, readable};
use super::{Params, Viewer, param};
use crate::catalog::{Catalog, Column, ColumnType, Table};
use crate::error::ApiError;
use crate::store::{self, Fields, Op};

/// Records an export writes at most (glide.ui.export.limit's designed stand-in).
pub const EXPORT_LIMIT: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xml,
    JsonV2,
}

impl Format {
    /// The processor a query string names (`?CSV`, `?XML`, `?JSONv2`).
    pub fn of(params: &Params) -> Option<Self> {
        params.iter().find_map(|(k, _)| match k.as_str() {
            "CSV" => Some(Self::Csv),
            "XML" => Some(Self::Xml),
            "JSONv2" | "JSON" => Some(Self::JsonV2),
            _ => None,
        })
    }
}

pub async fn respond(
    state: &crate::http::AppState,
    viewer: Viewer,
    table: &str,
    format: Format,
    params: Params,
) -> Response {
    let table = table.to_owned();
    let result = state
        .store
        .call(move |conn, catalog| -> Result<Response, ApiError> {
            let table = readable(catalog, &viewer, &table)?;
            let records = select(conn, catalog, table, &params)?;
            Ok(match format {
                Format::Csv => csv(conn, catalog, table, &records, &params)?,
                Format::Xml => xml(conn, catalog, table, &records)?,
                Format::JsonV2 => json_v2(conn, catalog, table, &records, &params)?,
            })
        })
        .await;
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::Internal(e).into_response(),
    }
}

fn select(
    conn: &Connection,
    catalog: &Catalog,
    table: &Table,
    params: &Params,
) -> Result<Vec<Fields>, ApiError> {
    let mut query = store::parse_encoded_query(&query_text(params));
    if let Some(id) = param(params, "sysparm_sys_id").filter(|s| !s.is_empty()) {
        query.and("sys_id", Op::Eq, id);
    }
    let limit = param(params, "sysparm_record_count")
        .and_then(|n| n.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .map_or(EXPORT_LIMIT, |n| n.min(EXPORT_LIMIT));
    Ok(store::find_walk(
        conn,
        Some(catalog),
        table,
        &query,
        limit,
        0,
    )?)
}

/// `sysparm_fields`, or else `default` (never a password).
fn fields<'t>(table: &'t Table, params: &Params, default: Vec<&'t Column>) -> Vec<&'t Column> {
    let chosen: Vec<&Column> = param(params, "sysparm_fields")
        .map(|f| {
            f.split(',')
                .filter_map(|n| table.column(n.trim()))
                .collect()
        })
        .unwrap_or(default);
    chosen
        .into_iter()
        .filter(|c| c.kind != ColumnType::Password)
        .collect()
}

fn all_columns(table: &Table) -> Vec<&Column> {
    table.columns.iter().collect()
}

/// A value as the user reads it: references by display value, choices by label.
fn display(
    conn: &Connection,
    catalog: &Catalog,
    col: &Column,
    value: &str,
) -> Result<String, ApiError> {
    Ok(match col.kind {
        ColumnType::Reference if !value.is_empty() => store::display_value(
            conn,
            catalog,
            col.reference.as_deref().unwrap_or_default(),
            value,
        )?,
        ColumnType::Choice => col.choice_label(value).unwrap_or(value).to_owned(),
        _ => value.to_owned(),
    })
}

fn value<'r>(record: &'r Fields, col: &Column) -> &'r str {
    record.get(&col.name).map_or("", String::as_str)
}

fn attachment(kind: &'static str, table: &Table, ext: &str, body: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{}.{ext}\"", table.name);
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

fn csv(
    conn: &Connection,
    catalog: &Catalog,
    table: &Table,
    records: &[Fields],
    params: &Params,
) -> Result<Response, ApiError> {
    let default = if param(params, "sysparm_default_export_fields") == Some("all") {
        all_columns(table)
    } else {
        list_columns(table)
    };
    let columns = fields(table, params, default);
    let raw = param(params, "sysparm_display_value") == Some("false");
    let labels = param(params, "sysparm_export_column_header_label") == Some("true");
    let mut out = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    let write_err = |e: csv::Error| ApiError::Internal(e.into());
    out.write_record(
        columns
            .iter()
            .map(|c| if labels { &c.label } else { &c.name }),
    )
    .map_err(write_err)?;
    for record in records {
        let mut row = Vec::with_capacity(columns.len());
        for col in &columns {
            let v = value(record, col);
            row.push(if raw {
                v.to_owned()
            } else {
                display(conn, catalog, col, v)?
            });
        }
        out.write_record(&row).map_err(write_err)?;
    }
    let body = out
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("csv: {e}")))?;
    Ok(attachment("text/csv; charset=utf-8", table, "csv", body))
}

fn xml(
    conn: &Connection,
    catalog: &Catalog,
    table: &Table,
    records: &[Fields],
) -> Result<Response, ApiError> {
    use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
    let mut w = quick_xml::Writer::new(Vec::new());
    let io = |e: std::io::Error| ApiError::Internal(e.into());
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io)?;
    w.write_event(Event::Start(BytesStart::new("xml")))
        .map_err(io)?;
    for record in records {
        w.write_event(Event::Start(BytesStart::new(table.name.as_str())))
            .map_err(io)?;
        for col in table
            .columns
            .iter()
            .filter(|c| c.kind != ColumnType::Password)
        {
            let v = value(record, col);
            let mut start = BytesStart::new(col.name.as_str());
            if col.kind == ColumnType::Reference && !v.is_empty() {
                start.push_attribute(("display_value", display(conn, catalog, col, v)?.as_str()));
            }
            w.write_event(Event::Start(start)).map_err(io)?;
            w.write_event(Event::Text(BytesText::new(v))).map_err(io)?;
            w.write_event(Event::End(BytesEnd::new(col.name.as_str())))
                .map_err(io)?;
        }
        w.write_event(Event::End(BytesEnd::new(table.name.as_str())))
            .map_err(io)?;
    }
    w.write_event(Event::End(BytesEnd::new("xml")))
        .map_err(io)?;
    Ok(attachment(
        "application/xml; charset=utf-8",
        table,
        "xml",
        w.into_inner(),
    ))
}

fn json_v2(
    conn: &Connection,
    catalog: &Catalog,
    table: &Table,
    records: &[Fields],
    params: &Params,
) -> Result<Response, ApiError> {
    if param(params, "sysparm_action") == Some("getKeys") {
        let keys: Vec<&str> = records
            .iter()
            .map(|r| r.get("sys_id").map_or("", String::as_str))
            .collect();
        return Ok(axum::Json(json!({ "records": keys })).into_response());
    }
    let mode = param(params, "displayvalue").map(str::to_ascii_lowercase);
    let columns = fields(table, params, all_columns(table));
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let mut obj = Map::new();
        for col in &columns {
            let v = value(record, col);
            match mode.as_deref() {
                Some("true") => {
                    obj.insert(col.name.clone(), json!(display(conn, catalog, col, v)?));
                }
                Some("all") => {
                    obj.insert(col.name.clone(), json!(v));
                    obj.insert(
                        format!("dv_{}", col.name),
                        json!(display(conn, catalog, col, v)?),
                    );
                }
                _ => {
                    obj.insert(col.name.clone(), json!(v));
                }
            }
        }
        out.push(Value::Object(obj));
    }
    Ok(axum::Json(json!({ "records": out })).into_response())
}
