//! `/{table}_list.do`: a table's list view at an instance's URL. `sysparm_query` filters and
//! sorts (encoded query, `ORDERBY…`), `sysparm_orderby` adds a sort, `sysparm_first_row`
//! (from 1) and `sysparm_rows_per_page` page (designed: 20 rows a page by default).

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use rusqlite::Connection;

use super::render::{self, Chrome, Row};
use super::{Req, Viewer, enc, html, pages, param};
use crate::acl::{Operation, Resource};
use crate::catalog::{Catalog, Column, Table};
use crate::error::ApiError;
use crate::http::access::authorize;
use crate::store;

const ROWS_PER_PAGE: i64 = 20;
const MAX_ROWS_PER_PAGE: i64 = 500;

pub struct Head {
    pub label: String,
    pub href: String,
    /// `ascending` / `descending` when the list is sorted by this column first.
    pub sorted: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "list.html")]
pub struct ListPage {
    pub chrome: Chrome,
    pub table: String,
    pub label: String,
    pub query: String,
    pub conditions: Vec<String>,
    pub heads: Vec<Head>,
    pub rows: Vec<Row>,
    pub total: i64,
    pub first: i64,
    pub last: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub export_base: String,
    pub export_query: String,
}

/// The table, when it exists and `who` may read it.
pub fn readable<'c>(
    catalog: &'c Catalog,
    viewer: &Viewer,
    name: &str,
) -> Result<&'c Table, ApiError> {
    let table = catalog.table(name).ok_or_else(|| ApiError::NotFound {
        message: format!("Invalid table {name}"),
        detail: None,
    })?;
    authorize(
        catalog,
        &viewer.who,
        Operation::Read,
        Resource::Table(&table.name),
    )?;
    Ok(table)
}

/// The page's query: `sysparm_query`, plus `sysparm_orderby` as a trailing sort.
pub fn query_text(params: &super::Params) -> String {
    let mut q = param(params, "sysparm_query")
        .unwrap_or_default()
        .to_owned();
    if let Some(field) = param(params, "sysparm_orderby").filter(|f| !f.is_empty()) {
        if !q.is_empty() {
            q.push('^');
        }
        q.push_str("ORDERBY");
        q.push_str(field);
    }
    q
}

struct Paging {
    first_row: i64,
    per_page: i64,
}

impl Paging {
    fn of(params: &super::Params) -> Self {
        let number = |name: &str| param(params, name).and_then(|v| v.trim().parse::<i64>().ok());
        Self {
            first_row: number("sysparm_first_row").unwrap_or(1).max(1),
            per_page: number("sysparm_rows_per_page")
                .unwrap_or(ROWS_PER_PAGE)
                .clamp(1, MAX_ROWS_PER_PAGE),
        }
    }
}

pub async fn page(r: Req<'_>, table: String) -> Response {
    let Req {
        state,
        viewer,
        params,
        ..
    } = r;
    let built = state
        .store
        .call(move |conn, catalog| build(conn, catalog, &viewer, &table, &params))
        .await;
    match built {
        Ok(Ok(page)) => html(&page),
        Ok(Err(e)) => pages::api_error(e),
        Err(e) => pages::api_error(ApiError::Internal(e)),
    }
}

fn build(
    conn: &Connection,
    catalog: &Catalog,
    viewer: &Viewer,
    name: &str,
    params: &super::Params,
) -> Result<ListPage, ApiError> {
    let table = readable(catalog, viewer, name)?;
    let text = query_text(params);
    let query = store::parse_encoded_query(&text);
    let paging = Paging::of(params);
    let total = store::count(conn, Some(catalog), table, &query)?;
    let records = store::find_walk(
        conn,
        Some(catalog),
        table,
        &query,
        paging.per_page,
        paging.first_row - 1,
    )?;
    let columns = list_columns(table);
    let rows = records
        .iter()
        .map(|rec| render::row(conn, catalog, table, &columns, rec))
        .collect::<Result<Vec<_>, _>>()?;
    let current = render::list_href(&table.name, &text);
    let mut chrome = Chrome::new(conn, catalog, viewer, &table.label, &current)?;
    chrome.title = format!("{} list", table.label);
    let shown = rows.len() as i64;
    Ok(ListPage {
        chrome,
        heads: heads(table, &columns, &text, &query),
        rows,
        total,
        first: if shown == 0 { 0 } else { paging.first_row },
        last: paging.first_row + shown - 1,
        prev: (paging.first_row > 1).then(|| {
            page_href(
                table,
                &text,
                (paging.first_row - paging.per_page).max(1),
                &paging,
            )
        }),
        next: (paging.first_row - 1 + shown < total)
            .then(|| page_href(table, &text, paging.first_row + shown, &paging)),
        export_base: format!("/{}_list.do?", table.name),
        export_query: if text.is_empty() {
            String::new()
        } else {
            format!("&sysparm_query={}", enc(&text))
        },
        conditions: conditions(&text),
        query: text,
        table: table.name.clone(),
        label: table.label.clone(),
    })
}

/// The list view's columns (catalog `list`), those the table has.
pub fn list_columns(table: &Table) -> Vec<&Column> {
    table.list.iter().filter_map(|c| table.column(c)).collect()
}

fn page_href(table: &Table, query: &str, first_row: i64, paging: &Paging) -> String {
    let mut href = render::list_href(&table.name, query);
    href.push(if query.is_empty() { '?' } else { '&' });
    href.push_str(&format!("sysparm_first_row={first_row}"));
    if paging.per_page != ROWS_PER_PAGE {
        href.push_str(&format!("&sysparm_rows_per_page={}", paging.per_page));
    }
    href
}

/// The query without its sorts.
fn without_order(query: &str) -> String {
    query
        .split('^')
        .filter(|p| !p.is_empty() && !p.starts_with("ORDERBY"))
        .collect::<Vec<_>>()
        .join("^")
}

/// The filter's conditions as the breadcrumb shows them (`^NQ` starts a new query).
fn conditions(query: &str) -> Vec<String> {
    query
        .split('^')
        .filter(|p| !p.is_empty() && !p.starts_with("ORDERBY") && *p != "EQ")
        .map(|p| match p.strip_prefix("NQ") {
            Some(rest) => format!("or: {rest}"),
            None => p.to_owned(),
        })
        .collect()
}

/// Column headings; each sorts by its column, the other way round when it sorts already.
fn heads(table: &Table, columns: &[&Column], text: &str, query: &store::EncodedQuery) -> Vec<Head> {
    let base = without_order(text);
    let first = query.order.first();
    columns
        .iter()
        .map(|c| {
            let sorted = first
                .filter(|(f, _)| *f == c.name)
                .map(|(_, desc)| if *desc { "descending" } else { "ascending" });
            let order = if sorted == Some("ascending") {
                format!("ORDERBYDESC{}", c.name)
            } else {
                format!("ORDERBY{}", c.name)
            };
            let q = if base.is_empty() {
                order
            } else {
                format!("{base}^{order}")
            };
            Head {
                label: c.label.clone(),
                href: render::list_href(&table.name, &q),
                sorted,
            }
        })
        .collect()
}

/// 403 and 404 pages for a list or form, with the reason.
pub fn refusal(e: &ApiError) -> Option<(StatusCode, &'static str)> {
    match e {
        ApiError::Forbidden | ApiError::Denied { .. } => {
            Some((StatusCode::FORBIDDEN, "Access denied"))
        }
        ApiError::NotFound { .. } => Some((StatusCode::NOT_FOUND, "Not found")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_replaces_the_order_and_keeps_the_filter() {
        assert_eq!(
            without_order("virtual=true^ORDERBYname^ORDERBYDESCram"),
            "virtual=true"
        );
        assert_eq!(
            conditions("a=1^NQb=2^ORDERBYname"),
            vec!["a=1".to_owned(), "or: b=2".to_owned()]
        );
        let params = vec![
            ("sysparm_query".to_owned(), "a=1".to_owned()),
            ("sysparm_orderby".to_owned(), "name".to_owned()),
        ];
        assert_eq!(query_text(&params), "a=1^ORDERBYname");
    }
}
