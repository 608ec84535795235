//! The Table API subset ([SN-TABLE-API] in docs/sources.md): list with encoded queries and paging headers,
//! read, insert, update and delete one record, for every catalog table. Values are strings;
//! references are `{link, value}`; password columns are never shown nor queryable.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::access::authorize;
use super::{AppState, AuthUser, BaseUrl, read_body};
use crate::acl::{Operation, Resource};
use crate::auth::{self, Principal};
use crate::catalog::{Catalog, Column, ColumnType, Table};
use crate::error::ApiError;
use crate::store::{self, Fields, Op, StoreError};

const DEFAULT_LIMIT: i64 = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    V1,
    V2,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DisplayMode {
    Value,
    Display,
    All,
}

/// How records are rendered.
struct Format {
    mode: DisplayMode,
    exclude_link: bool,
    base: String,
    fields: Option<Vec<String>>,
    /// The reader: dot-walks into tables they may not read are left out.
    who: Principal,
}

pub(super) type Params = Vec<(String, String)>;

/// The records a request selects: `sysparm_query` AND-ed with name=value pairs; conditions
/// on password columns are dropped (they would reveal the hash).
pub(super) fn query_of(params: &Params, table: &Table) -> store::EncodedQuery {
    let mut q = store::parse_encoded_query(param(params, "sysparm_query").unwrap_or(""));
    for (k, v) in params {
        if !k.starts_with("sysparm_") {
            q.and(k, Op::Eq, v);
        }
    }
    q.retain_terms(|t| {
        table
            .column(&t.field)
            .is_none_or(|c| c.kind != ColumnType::Password)
    });
    q
}

/// A boolean parameter: true when its value is `true` in any case (the platform reads them
/// like Java's `Boolean.parseBoolean`; pysnow sends Python's `True`).
pub(super) fn flag(params: &Params, name: &str) -> bool {
    param(params, name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

pub(super) fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn path_params(
    path: Result<Path<HashMap<String, String>>, PathRejection>,
) -> Result<(Version, String, Option<String>), ApiError> {
    let Path(map) = path.map_err(|_| ApiError::no_resource())?;
    let version = match map.get("version").map(String::as_str) {
        None | Some("v2") => Version::V2,
        Some("v1") => Version::V1,
        Some(_) => return Err(ApiError::no_resource()),
    };
    let table = map.get("table").cloned().unwrap_or_default();
    Ok((version, table, map.get("sys_id").cloned()))
}

pub(super) fn query_params(
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Params, ApiError> {
    query.map(|Query(q)| q).map_err(|_| {
        ApiError::bad_request(
            "Invalid query parameters",
            "The query string could not be read",
        )
    })
}

/// The table, when it exists ("Invalid table" for every caller, [SN-TABLE-API] in docs/sources.md) and `who`
/// may do `op` on it.
pub(super) fn lookup<'c>(
    catalog: &'c Catalog,
    name: &str,
    who: &Principal,
    op: Operation,
) -> Result<&'c Table, ApiError> {
    let table = catalog.table(name).ok_or_else(|| ApiError::BadRequest {
        message: format!("Invalid table {name}"),
        detail: None,
    })?;
    authorize(catalog, who, op, Resource::Table(&table.name))?;
    Ok(table)
}

fn not_found() -> ApiError {
    ApiError::NotFound {
        message: "No Record found".into(),
        detail: Some("Record doesn't exist or ACL restricts the record retrieval".into()),
    }
}

/// A body's media type (`application/json` or `application/xml`, [SN-TABLE-API] in docs/sources.md).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Media {
    Json,
    Xml,
}

/// The response type the client accepts: JSON unless it asks for XML only; 406 for
/// anything else.
pub(super) fn accept(headers: &HeaderMap) -> Result<Media, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.trim().is_empty() || accept.contains("json") || accept.contains("*/*") {
        Ok(Media::Json)
    } else if accept.contains("xml") {
        Ok(Media::Xml)
    } else {
        Err(ApiError::Media {
            status: StatusCode::NOT_ACCEPTABLE,
            message: format!("Invalid Accept header {accept}"),
            detail: "Supported: application/json, application/xml".into(),
        })
    }
}

/// The request body's type: JSON when not given; 415 for anything but JSON or XML.
pub(super) fn content_type(headers: &HeaderMap) -> Result<Media, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.trim().is_empty() || ct.contains("json") {
        Ok(Media::Json)
    } else if ct.contains("xml") {
        Ok(Media::Xml)
    } else {
        Err(ApiError::Media {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!("Invalid Content-Type header {ct}"),
            detail: "Supported: application/json, application/xml".into(),
        })
    }
}

/// A response body in the accepted type.
pub(super) fn respond(status: StatusCode, media: Media, body: &Value) -> Response {
    match media {
        Media::Json => (status, Json(body)).into_response(),
        Media::Xml => (
            status,
            [(header::CONTENT_TYPE, "application/xml;charset=UTF-8")],
            super::xml::to_xml(body),
        )
            .into_response(),
    }
}

fn format_of(params: &Params, base: String, who: &Principal) -> Format {
    let mode = match param(params, "sysparm_display_value")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("true") => DisplayMode::Display,
        Some("all") => DisplayMode::All,
        _ => DisplayMode::Value,
    };
    let fields = param(params, "sysparm_fields")
        .filter(|f| !f.trim().is_empty())
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    Format {
        mode,
        exclude_link: flag(params, "sysparm_exclude_reference_link"),
        base,
        fields,
        who: who.clone(),
    }
}

/// One column's value as the Table API shows it in the requested mode.
fn render_value(
    conn: &Connection,
    catalog: &Catalog,
    col: &Column,
    value: String,
    fmt: &Format,
) -> Result<Value, StoreError> {
    Ok(match (col.kind, fmt.mode) {
        (ColumnType::Reference, mode) if !value.is_empty() => {
            let target = col.reference.as_deref().unwrap_or_default();
            let link = format!("{}/api/now/table/{target}/{value}", fmt.base);
            let display = || store::display_value(conn, catalog, target, &value);
            let mut obj = Map::new();
            match mode {
                DisplayMode::Value if fmt.exclude_link => Value::String(value),
                DisplayMode::Display if fmt.exclude_link => Value::String(display()?),
                DisplayMode::Value => {
                    obj.insert("link".into(), json!(link));
                    obj.insert("value".into(), json!(value));
                    Value::Object(obj)
                }
                DisplayMode::Display => {
                    obj.insert("display_value".into(), json!(display()?));
                    obj.insert("link".into(), json!(link));
                    Value::Object(obj)
                }
                DisplayMode::All => {
                    obj.insert("display_value".into(), json!(display()?));
                    if !fmt.exclude_link {
                        obj.insert("link".into(), json!(link));
                    }
                    obj.insert("value".into(), json!(value));
                    Value::Object(obj)
                }
            }
        }
        (_, DisplayMode::Value) => Value::String(value),
        (kind, mode) => {
            let display = match kind {
                ColumnType::Choice => col.choice_label(&value).unwrap_or(&value).to_owned(),
                _ => value.clone(),
            };
            if mode == DisplayMode::Display {
                Value::String(display)
            } else {
                json!({"display_value": display, "value": value})
            }
        }
    })
}

/// A dot-walked field (`model_id.name`): follows references from `record`; None when a
/// part is not a reference, does not exist, or is a password.
fn walk(
    conn: &Connection,
    catalog: &Catalog,
    table: &Table,
    record: &Fields,
    path: &str,
    fmt: &Format,
) -> Result<Option<Value>, StoreError> {
    let Some((first, rest)) = path.split_once('.') else {
        return Ok(None);
    };
    let Some(target) = table
        .column(first)
        .filter(|c| c.kind == ColumnType::Reference)
        .and_then(|c| c.reference.as_deref())
        .and_then(|r| catalog.table(r))
        .filter(|t| {
            crate::acl::check(catalog, &fmt.who, Operation::Read, Resource::Table(&t.name))
        })
    else {
        return Ok(None);
    };
    let id = record.get(first).cloned().unwrap_or_default();
    let next = if id.is_empty() {
        None
    } else {
        store::get(conn, target, &id)?
    };
    if rest.contains('.') {
        return match next {
            Some(next) => walk(conn, catalog, target, &next, rest, fmt),
            None => Ok(target
                .column(rest.split('.').next().unwrap_or_default())
                .map(|_| Value::String(String::new()))),
        };
    }
    let Some(col) = target
        .column(rest)
        .filter(|c| c.kind != ColumnType::Password)
    else {
        return Ok(None);
    };
    let value = next.and_then(|n| n.get(rest).cloned()).unwrap_or_default();
    Ok(Some(render_value(conn, catalog, col, value, fmt)?))
}

fn render(
    conn: &Connection,
    catalog: &Catalog,
    table: &Table,
    record: &Fields,
    fmt: &Format,
) -> Result<Value, StoreError> {
    let mut out = Map::new();
    for col in &table.columns {
        if col.kind == ColumnType::Password {
            continue;
        }
        if fmt.fields.as_ref().is_some_and(|f| !f.contains(&col.name)) {
            continue;
        }
        let value = record.get(&col.name).cloned().unwrap_or_default();
        out.insert(
            col.name.clone(),
            render_value(conn, catalog, col, value, fmt)?,
        );
    }
    // Dot-walked fields come back under their literal name ([SN-TABLE-API] in docs/sources.md).
    for path in fmt.fields.iter().flatten().filter(|f| f.contains('.')) {
        if let Some(v) = walk(conn, catalog, table, record, path, fmt)? {
            out.insert(path.clone(), v);
        }
    }
    Ok(Value::Object(out))
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn page_link(
    base: &str,
    path: &str,
    params: &Params,
    limit: i64,
    offset: i64,
    rel: &str,
) -> String {
    let mut pairs: Vec<String> = params
        .iter()
        .filter(|(k, _)| k != "sysparm_offset" && k != "sysparm_limit")
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    pairs.push(format!("sysparm_limit={limit}"));
    pairs.push(format!("sysparm_offset={offset}"));
    format!("<{base}{path}?{}>;rel=\"{rel}\"", pairs.join("&"))
}

pub async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    path: Result<Path<HashMap<String, String>>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
    BaseUrl(base): BaseUrl,
) -> Result<Response, ApiError> {
    let (version, table_name, _) = path_params(path)?;
    let params = query_params(query)?;
    let media = accept(&headers)?;
    let limit = param(&params, "sysparm_limit")
        .and_then(|l| l.trim().parse::<i64>().ok())
        .filter(|l| *l >= 0)
        .unwrap_or(DEFAULT_LIMIT);
    let offset = match param(&params, "sysparm_offset") {
        Some(o) => o.trim().parse::<i64>().unwrap_or(0),
        None => 0,
    };
    if offset < 0 {
        return Err(ApiError::bad_request(
            format!("offset is {offset}"),
            "Negative offset is not supported",
        ));
    }
    let counting = !flag(&params, "sysparm_no_count");
    let paging = !flag(&params, "sysparm_suppress_pagination_header");
    let fmt = format_of(&params, base.clone(), &user);
    let params2 = params.clone();
    let (records, total) = state
        .store
        .call(
            move |conn, catalog| -> Result<(Vec<Value>, Option<i64>), ApiError> {
                let table = lookup(catalog, &table_name, &user, Operation::Read)?;
                let q = query_of(&params2, table);
                let total = if counting {
                    Some(store::count(conn, Some(catalog), table, &q)?)
                } else {
                    None
                };
                let rows = store::find_walk(conn, Some(catalog), table, &q, limit, offset)?;
                let records = rows
                    .iter()
                    .map(|r| render(conn, catalog, table, r, &fmt))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((records, total))
            },
        )
        .await??;
    if version == Version::V1 && records.is_empty() {
        return Err(ApiError::NotFound {
            message: "No Record found".into(),
            detail: Some(
                "Records matching query not found. Check query parameter or offset parameter"
                    .into(),
            ),
        });
    }
    let page_full = records.len() as i64 == limit;
    let mut response = respond(StatusCode::OK, media, &json!({ "result": records }));
    let h = response.headers_mut();
    if let Some(total) = total
        && let Ok(v) = HeaderValue::from_str(&total.to_string())
    {
        h.insert("X-Total-Count", v);
    }
    let more = total.map_or(page_full, |t| offset.saturating_add(limit) < t);
    if paging && limit > 0 && (more || offset > 0) {
        let path = uri.path();
        let mut links = vec![page_link(&base, path, &params, limit, 0, "first")];
        if offset > 0 {
            links.push(page_link(
                &base,
                path,
                &params,
                limit,
                (offset - limit).max(0),
                "prev",
            ));
        }
        if more {
            links.push(page_link(
                &base,
                path,
                &params,
                limit,
                offset.saturating_add(limit),
                "next",
            ));
        }
        if let Some(total) = total {
            let last = if total == 0 {
                0
            } else {
                (total - 1) / limit * limit
            };
            links.push(page_link(&base, path, &params, limit, last, "last"));
        }
        if let Ok(v) = HeaderValue::from_str(&links.join(",")) {
            h.insert(header::LINK, v);
        }
    }
    Ok(response)
}

pub async fn get_one(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    path: Result<Path<HashMap<String, String>>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
    BaseUrl(base): BaseUrl,
) -> Result<Response, ApiError> {
    let (_, table_name, sys_id) = path_params(path)?;
    let params = query_params(query)?;
    let media = accept(&headers)?;
    let fmt = format_of(&params, base, &user);
    let sys_id = sys_id.unwrap_or_default();
    let record = state
        .store
        .call(move |conn, catalog| -> Result<Value, ApiError> {
            let table = lookup(catalog, &table_name, &user, Operation::Read)?;
            let record = store::get(conn, table, &sys_id)?.ok_or_else(not_found)?;
            Ok(render(conn, catalog, table, &record, &fmt)?)
        })
        .await??;
    Ok(respond(StatusCode::OK, media, &json!({ "result": record })))
}

/// How a write's body is read: its media type, and whether values are display values
/// (`sysparm_input_display_value=true`).
#[derive(Clone, Copy)]
struct Input {
    media: Media,
    display: bool,
}

impl Input {
    fn of(headers: &HeaderMap, params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            media: content_type(headers)?,
            display: flag(params, "sysparm_input_display_value"),
        })
    }
}

/// The stored value for a display value: a reference by its target's display column (or a
/// sys_id), a choice by its label (or value).
fn from_display(
    conn: &Connection,
    catalog: &Catalog,
    col: &Column,
    text: String,
) -> Result<String, StoreError> {
    match col.kind {
        ColumnType::Reference if !text.is_empty() => {
            let Some(target) = col.reference.as_deref().and_then(|r| catalog.table(r)) else {
                return Ok(text);
            };
            let found = store::find_by(conn, target, &[(target.display.as_str(), text.as_str())])?;
            Ok(found.map_or(text, |r| r["sys_id"].clone()))
        }
        ColumnType::Choice => Ok(col
            .choices
            .iter()
            .find(|c| c.label.eq_ignore_ascii_case(&text))
            .map_or(text, |c| c.value.clone())),
        _ => Ok(text),
    }
}

/// A request body as column values: strings as they are, numbers and booleans as text, a
/// `{value: …}` object by its value; password columns hashed.
fn body_fields(
    conn: &Connection,
    catalog: &Catalog,
    bytes: &[u8],
    table: &Table,
    input: Input,
) -> Result<Fields, ApiError> {
    let value: Value = match input.media {
        Media::Json => serde_json::from_slice(bytes).map_err(|_| ApiError::invalid_json())?,
        Media::Xml => std::str::from_utf8(bytes)
            .map_err(|e| e.to_string())
            .and_then(super::xml::from_xml)
            .map_err(|e| ApiError::bad_request("Exception while reading request", e))?,
    };
    let value = match value {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        v => v,
    };
    let Value::Object(obj) = value else {
        return Err(ApiError::invalid_json());
    };
    let mut fields = Fields::new();
    for (k, v) in obj {
        let text = match v {
            Value::String(s) => s,
            Value::Null => String::new(),
            Value::Object(o) => match o.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => continue,
            },
            other => other.to_string(),
        };
        let text = match table.column(&k) {
            Some(c) if c.kind == ColumnType::Password && !text.is_empty() => {
                auth::hash_password(&text)
            }
            Some(c) if input.display => from_display(conn, catalog, c, text)?,
            Some(_) => text,
            None => continue,
        };
        fields.insert(k, text);
    }
    Ok(fields)
}

pub async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    path: Result<Path<HashMap<String, String>>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
    BaseUrl(base): BaseUrl,
    body: Body,
) -> Result<Response, ApiError> {
    let (_, table_name, _) = path_params(path)?;
    let params = query_params(query)?;
    let (media, input) = (accept(&headers)?, Input::of(&headers, &params)?);
    let bytes = read_body(body).await?;
    let fmt = format_of(&params, base.clone(), &user);
    let name = table_name.clone();
    let (sys_id, record) = state
        .store
        .call(move |conn, catalog| -> Result<(String, Value), ApiError> {
            let table = lookup(catalog, &name, &user, Operation::Create)?;
            let fields = body_fields(conn, catalog, &bytes, table, input)?;
            let sys_id = store::insert(conn, table, &fields, &user.user_name)?;
            let record = store::get(conn, table, &sys_id)?.ok_or_else(not_found)?;
            Ok((sys_id, render(conn, catalog, table, &record, &fmt)?))
        })
        .await??;
    let location = format!("{base}/api/now/table/{table_name}/{sys_id}");
    let no_body = headers
        .get("X-no-response-body")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let mut response = if no_body {
        StatusCode::CREATED.into_response()
    } else {
        respond(StatusCode::CREATED, media, &json!({ "result": record }))
    };
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

pub async fn update(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    path: Result<Path<HashMap<String, String>>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
    BaseUrl(base): BaseUrl,
    body: Body,
) -> Result<Response, ApiError> {
    let (_, table_name, sys_id) = path_params(path)?;
    let params = query_params(query)?;
    let (media, input) = (accept(&headers)?, Input::of(&headers, &params)?);
    let bytes = read_body(body).await?;
    let fmt = format_of(&params, base, &user);
    let sys_id = sys_id.unwrap_or_default();
    let record = state
        .store
        .call(move |conn, catalog| -> Result<Value, ApiError> {
            let table = lookup(catalog, &table_name, &user, Operation::Write)?;
            let fields = body_fields(conn, catalog, &bytes, table, input)?;
            if !store::update(conn, table, &sys_id, &fields, &user.user_name)? {
                return Err(not_found());
            }
            let record = store::get(conn, table, &sys_id)?.ok_or_else(not_found)?;
            Ok(render(conn, catalog, table, &record, &fmt)?)
        })
        .await??;
    Ok(respond(StatusCode::OK, media, &json!({ "result": record })))
}

pub async fn delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    path: Result<Path<HashMap<String, String>>, PathRejection>,
) -> Result<Response, ApiError> {
    let (_, table_name, sys_id) = path_params(path)?;
    let sys_id = sys_id.unwrap_or_default();
    state
        .store
        .call(move |conn, catalog| -> Result<(), ApiError> {
            let table = lookup(catalog, &table_name, &user, Operation::Delete)?;
            if store::delete(conn, table, &sys_id)? {
                Ok(())
            } else {
                Err(not_found())
            }
        })
        .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}
