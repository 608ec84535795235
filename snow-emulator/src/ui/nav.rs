//! The navigator: application menus and their modules are records (`sys_app_application`,
//! `sys_app_module`, installed from `catalog/records/navigator.toml`), so a menu is changed
//! like any other record. A module listing a table the user may not read is left out, as is
//! a menu left with nothing in it.

use rusqlite::Connection;

use crate::acl::{self, Operation, Resource};
use crate::auth::Principal;
use crate::catalog::Catalog;
use crate::store::{self, Fields, StoreError};

pub struct Menu {
    pub title: String,
    pub items: Vec<Item>,
}

pub struct Item {
    pub title: String,
    pub href: String,
    pub separator: bool,
    /// The page being shown is this module's.
    pub current: bool,
}

/// A module's link type (`sys_app_module.link_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkType {
    List,
    Direct,
    Separator,
}

impl LinkType {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "LIST" => Self::List,
            "DIRECT" => Self::Direct,
            "SEPARATOR" => Self::Separator,
            _ => return None,
        })
    }
}

fn text(f: &Fields, column: &str) -> String {
    f.get(column).cloned().unwrap_or_default()
}

fn active(conn: &Connection, catalog: &Catalog, table: &str) -> Result<Vec<Fields>, StoreError> {
    let Some(table) = catalog.table(table) else {
        return Ok(Vec::new());
    };
    let query = store::parse_encoded_query("active=true^ORDERBYorder^ORDERBYtitle");
    store::find(conn, table, &query, 1000, 0)
}

/// The menus `who` sees; `current` (a path and query) marks the module being shown.
pub fn menus(
    conn: &Connection,
    catalog: &Catalog,
    who: &Principal,
    current: &str,
) -> Result<Vec<Menu>, StoreError> {
    let modules = active(conn, catalog, "sys_app_module")?;
    let mut menus = Vec::new();
    for app in active(conn, catalog, "sys_app_application")? {
        let app_id = text(&app, "sys_id");
        let items: Vec<Item> = modules
            .iter()
            .filter(|m| text(m, "application") == app_id)
            .filter_map(|m| item(catalog, who, m, current))
            .collect();
        let items = drop_bare_separators(items);
        if !items.is_empty() {
            menus.push(Menu {
                title: text(&app, "title"),
                items,
            });
        }
    }
    Ok(menus)
}

fn item(catalog: &Catalog, who: &Principal, module: &Fields, current: &str) -> Option<Item> {
    let title = text(module, "title");
    let href = match LinkType::parse(&text(module, "link_type"))? {
        LinkType::Separator => {
            return Some(Item {
                title,
                href: String::new(),
                separator: true,
                current: false,
            });
        }
        LinkType::List => {
            let table = text(module, "name");
            let readable = catalog.table(&table).is_some()
                && acl::check(catalog, who, Operation::Read, Resource::Table(&table));
            if !readable {
                return None;
            }
            super::render::list_href(&table, &text(module, "filter"))
        }
        LinkType::Direct => format!("/{}", text(module, "query").trim_start_matches('/')),
    };
    Some(Item {
        current: href == current,
        title,
        href,
        separator: false,
    })
}

/// A separator with no module after it (before the next separator) heads nothing.
fn drop_bare_separators(items: Vec<Item>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::with_capacity(items.len());
    for item in items {
        if item.separator && out.last().is_some_and(|l| l.separator) {
            out.pop();
        }
        out.push(item);
    }
    if out.last().is_some_and(|l| l.separator) {
        out.pop();
    }
    out
}
