//! `/{table}.do?sys_id=…`: one record's form. References are links, XML (a transaction's
//! payload) is shown indented, and related lists show the records that refer to this one —
//! found from the catalog's reference columns, so no table is special here. A user who may
//! write the table edits plain fields in place (POST to the same URL).

use askama::Template;
use axum::response::{IntoResponse, Redirect, Response};
use rusqlite::Connection;

use super::list::{list_columns, readable};
use super::pages::{self, Progress};
use super::render::{self, Chrome, Row};
use super::{Req, Viewer, html, param};
use crate::acl::{self, Operation, Resource};
use crate::catalog::{Catalog, Column, ColumnType, SYS_COLUMNS, Table};
use crate::error::ApiError;
use crate::http::access::authorize;
use crate::store::{self, Fields, Op};

/// Rows a related list shows on the form (the rest are one link away).
const RELATED_ROWS: i64 = 20;

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct Field {
    pub name: String,
    pub label: String,
    /// The stored value (what an input edits).
    pub value: String,
    /// What a reader sees.
    pub text: String,
    pub href: Option<String>,
    pub xml: Option<String>,
    pub state: Option<String>,
    pub editable: bool,
    pub options: Vec<Choice>,
    pub wide: bool,
}

pub struct Related {
    pub title: String,
    pub heads: Vec<String>,
    pub rows: Vec<Row>,
    pub total: usize,
    pub href: String,
}

#[derive(Template)]
#[template(path = "form.html")]
pub struct FormPage {
    pub chrome: Chrome,
    pub table: String,
    pub label: String,
    pub sys_id: String,
    pub display: String,
    pub fields: Vec<Field>,
    pub editable: bool,
    /// The user may write this table: the form offers an Edit link.
    pub may_edit: bool,
    pub related: Vec<Related>,
    pub progress: Option<Progress>,
}

pub async fn page(r: Req<'_>, table: String) -> Response {
    let sys_id = param(&r.params, "sys_id").unwrap_or_default().to_owned();
    if r.post {
        if let Some(refused) = r.refused_post() {
            return refused;
        }
        return save(r, table, sys_id).await;
    }
    let updated = param(&r.params, "sysparm_updated") == Some("true");
    let edit = param(&r.params, "sysparm_edit") == Some("true");
    let Req { state, viewer, .. } = r;
    let built = state
        .store
        .call(move |conn, catalog| build(conn, catalog, &viewer, &table, &sys_id, edit))
        .await;
    match built {
        Ok(Ok(mut page)) => {
            if updated {
                page.chrome.notice = Some("Record updated".into());
            }
            html(&page)
        }
        Ok(Err(e)) => pages::api_error(e),
        Err(e) => pages::api_error(ApiError::Internal(e)),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound {
        message: "Record not found".into(),
        detail: Some("The record does not exist, or you may not read it".into()),
    }
}

fn build(
    conn: &Connection,
    catalog: &Catalog,
    viewer: &Viewer,
    name: &str,
    sys_id: &str,
    edit: bool,
) -> Result<FormPage, ApiError> {
    let table = readable(catalog, viewer, name)?;
    let record = store::get(conn, table, sys_id)?.ok_or_else(not_found)?;
    // A record is shown as its own class (a computer found through cmdb_ci is a computer).
    let table = record
        .get("sys_class_name")
        .and_then(|c| catalog.table(c))
        .filter(|t| {
            t.name != table.name
                && acl::check(
                    catalog,
                    &viewer.who,
                    Operation::Read,
                    Resource::Table(&t.name),
                )
        })
        .unwrap_or(table);
    let may_edit = viewer.session
        && acl::check(
            catalog,
            &viewer.who,
            Operation::Write,
            Resource::Table(&table.name),
        );
    let editable = may_edit && edit;
    let fields = form_order(table)
        .into_iter()
        .map(|c| field(conn, catalog, c, &record, editable))
        .collect::<Result<Vec<_>, _>>()?;
    let display = record.get(&table.display).cloned().unwrap_or_default();
    let mut chrome = Chrome::new(conn, catalog, viewer, &table.label, "")?;
    chrome.title = format!("{} {display}", table.label);
    Ok(FormPage {
        progress: pages::run_progress(conn, catalog, &table.name, &record)?,
        related: related(conn, catalog, viewer, table, sys_id)?,
        editable: editable && fields.iter().any(|f| f.editable),
        may_edit: may_edit && !editable,
        chrome,
        table: table.name.clone(),
        label: table.label.clone(),
        sys_id: sys_id.to_owned(),
        display,
        fields,
    })
}

/// The form's order: the display column, the list view's columns, the rest, long text, and
/// the system columns last (a form's footer).
fn form_order(table: &Table) -> Vec<&Column> {
    let rank = |c: &Column| {
        if c.name == table.display {
            0
        } else if SYS_COLUMNS.contains(&c.name.as_str()) {
            4
        } else if c.kind == ColumnType::Xml {
            3
        } else if table.list.contains(&c.name) {
            1
        } else {
            2
        }
    };
    let mut columns: Vec<&Column> = table
        .columns
        .iter()
        .filter(|c| c.kind != ColumnType::Password)
        .collect();
    // Stable: within a rank, the list view's order, else the catalog's.
    columns.sort_by_key(|c| {
        let at = table
            .list
            .iter()
            .position(|n| *n == c.name)
            .unwrap_or(usize::MAX);
        (rank(c), at)
    });
    columns
}

/// Plain values are editable; references, XML and the system columns are not.
fn can_edit(col: &Column) -> bool {
    !SYS_COLUMNS.contains(&col.name.as_str())
        && !matches!(
            col.kind,
            ColumnType::Reference | ColumnType::Xml | ColumnType::Password
        )
}

fn field(
    conn: &Connection,
    catalog: &Catalog,
    col: &Column,
    record: &Fields,
    editable: bool,
) -> Result<Field, ApiError> {
    let value = record.get(&col.name).cloned().unwrap_or_default();
    let cell = render::cell(conn, catalog, col, record)?;
    let editable = editable && can_edit(col);
    let options = if editable {
        options(col, &value)
    } else {
        Vec::new()
    };
    let xml = (col.kind == ColumnType::Xml).then(|| render::indent_xml(&value));
    Ok(Field {
        name: col.name.clone(),
        label: col.label.clone(),
        text: if xml.is_some() {
            String::new()
        } else {
            full_text(col, &value, cell.text)
        },
        wide: xml.is_some(),
        href: cell.href,
        state: cell.state,
        xml,
        editable,
        options,
        value,
    })
}

/// A form shows a value whole (a list cell is cut short).
fn full_text(col: &Column, value: &str, shown: String) -> String {
    match col.kind {
        ColumnType::String | ColumnType::Integer | ColumnType::DateTime | ColumnType::Date => {
            value.to_owned()
        }
        _ => shown,
    }
}

fn options(col: &Column, value: &str) -> Vec<Choice> {
    let pairs: Vec<(String, String)> = match col.kind {
        ColumnType::Choice => col
            .choices
            .iter()
            .map(|c| (c.value.clone(), c.label.clone()))
            .collect(),
        ColumnType::Boolean => vec![
            ("true".into(), "true".into()),
            ("false".into(), "false".into()),
        ],
        _ => return Vec::new(),
    };
    pairs
        .into_iter()
        .map(|(v, label)| Choice {
            selected: v == value,
            value: v,
            label,
        })
        .collect()
}

/// Tables whose reference columns point at this record's table or one of its ancestors;
/// each column once, on the table that declares it.
fn referring<'c>(catalog: &'c Catalog, table: &Table) -> Vec<(&'c Table, &'c Column)> {
    let mut targets = vec![table.name.clone()];
    let mut cur = table.parent.clone();
    while let Some(p) = cur {
        cur = catalog.table(&p).and_then(|t| t.parent.clone());
        targets.push(p);
    }
    let mut out = Vec::new();
    for t in catalog.tables.values() {
        for c in &t.columns {
            let points_here = c.kind == ColumnType::Reference
                && c.reference.as_ref().is_some_and(|r| targets.contains(r));
            let inherited = t
                .parent
                .as_deref()
                .and_then(|p| catalog.table(p))
                .is_some_and(|p| p.column(&c.name).is_some());
            if points_here && !inherited {
                out.push((t, c));
            }
        }
    }
    out
}

fn related(
    conn: &Connection,
    catalog: &Catalog,
    viewer: &Viewer,
    table: &Table,
    sys_id: &str,
) -> Result<Vec<Related>, ApiError> {
    let mut lists = Vec::new();
    for (t, c) in referring(catalog, table) {
        if !acl::check(
            catalog,
            &viewer.who,
            Operation::Read,
            Resource::Table(&t.name),
        ) {
            continue;
        }
        let mut query = store::EncodedQuery::default();
        query.and(&c.name, Op::Eq, sys_id);
        let total = store::count(conn, Some(catalog), t, &query)?;
        if total == 0 {
            continue;
        }
        let records = store::find(conn, t, &query, RELATED_ROWS, 0)?;
        let columns: Vec<&Column> = list_columns(t)
            .into_iter()
            .filter(|col| col.name != c.name)
            .collect();
        lists.push(Related {
            title: format!("{} ({})", t.label, c.label),
            heads: columns.iter().map(|col| col.label.clone()).collect(),
            rows: records
                .iter()
                .map(|r| render::row(conn, catalog, t, &columns, r))
                .collect::<Result<_, _>>()?,
            total: usize::try_from(total).unwrap_or(0),
            href: render::list_href(&t.name, &format!("{}={sys_id}", c.name)),
        });
    }
    Ok(lists)
}

/// POST: the editable fields sent, through the same store update as the Table API.
async fn save(r: Req<'_>, table: String, sys_id: String) -> Response {
    let Req {
        state,
        viewer,
        form,
        ..
    } = r;
    let (name, id) = (table.clone(), sys_id.clone());
    let saved = state
        .store
        .call(move |conn, catalog| -> Result<String, ApiError> {
            let table = catalog.table(&name).ok_or_else(not_found)?;
            authorize(
                catalog,
                &viewer.who,
                Operation::Write,
                Resource::Table(&table.name),
            )?;
            let values: Fields = form
                .iter()
                .filter(|(k, _)| table.column(k).is_some_and(can_edit))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !store::update(conn, table, &id, &values, &viewer.who.user_name)? {
                return Err(not_found());
            }
            Ok(table.name.clone())
        })
        .await;
    match saved {
        Ok(Ok(table)) => Redirect::to(&format!(
            "{}&sysparm_updated=true",
            render::form_href(&table, &sys_id)
        ))
        .into_response(),
        Ok(Err(e)) => pages::api_error(e),
        Err(e) => pages::api_error(ApiError::Internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_lists_come_from_reference_columns_declared_once() {
        let catalog = crate::catalog::load_embedded().expect("catalog");
        let computer = catalog.table("cmdb_ci_computer").expect("table");
        let found: Vec<String> = referring(&catalog, computer)
            .iter()
            .map(|(t, c)| format!("{}.{}", t.name, c.name))
            .collect();
        assert!(
            found.contains(&"cmdb_sam_sw_install.installed_on".to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(&"contract_rel_ci.ci_item".to_owned()),
            "{found:?}"
        );
        let run = catalog.table("x_fls_flexera_fnms_import_run").expect("run");
        let found: Vec<String> = referring(&catalog, run)
            .iter()
            .map(|(t, c)| format!("{}.{}", t.name, c.name))
            .collect();
        assert_eq!(found, ["x_fls_flexera_fnms_import_transaction.import_run"]);
    }
}
