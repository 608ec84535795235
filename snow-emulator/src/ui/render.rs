//! What every page shares: the frame around it ([`Chrome`]), table cells as the UI shows
//! them, and the payload as indented XML.

use rusqlite::Connection;

use super::nav::{self, Menu};
use super::{Viewer, enc};
use crate::catalog::{Catalog, Column, ColumnType, Table};
use crate::store::{self, Fields, StoreError};

/// The banner and navigator around a page.
pub struct Chrome {
    pub title: String,
    pub user_display: String,
    pub csrf: String,
    pub menus: Vec<Menu>,
    pub notice: Option<String>,
}

impl Chrome {
    pub fn new(
        conn: &Connection,
        catalog: &Catalog,
        viewer: &Viewer,
        title: &str,
        current: &str,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            title: title.to_owned(),
            user_display: viewer.who.user_name.clone(),
            csrf: viewer.csrf.clone(),
            menus: nav::menus(conn, catalog, &viewer.who, current)?,
            notice: None,
        })
    }
}

/// One value in a list: its text, a link when it refers to a record, and a state class for
/// state-like choices (a column named `state` or ending in `_state`).
pub struct Cell {
    pub text: String,
    pub href: Option<String>,
    pub state: Option<String>,
}

pub struct Row {
    pub href: String,
    pub cells: Vec<Cell>,
}

pub fn form_href(table: &str, sys_id: &str) -> String {
    format!("/{table}.do?sys_id={}", enc(sys_id))
}

pub fn list_href(table: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/{table}_list.do")
    } else {
        format!("/{table}_list.do?sysparm_query={}", enc(query))
    }
}

fn is_state(col: &Column) -> bool {
    col.kind == ColumnType::Choice && (col.name == "state" || col.name.ends_with("_state"))
}

/// Longest text a list cell shows (the form shows all of it).
const CELL_CHARS: usize = 120;

/// A column's value as the UI shows it: choices by label, references by their target's
/// display value and linked; a record naming its target (`sys_target_table` +
/// `sys_target_sys_id`) links there too.
pub fn cell(
    conn: &Connection,
    catalog: &Catalog,
    col: &Column,
    record: &Fields,
) -> Result<Cell, StoreError> {
    let value = record.get(&col.name).cloned().unwrap_or_default();
    let state = is_state(col)
        .then(|| value.clone())
        .filter(|v| !v.is_empty());
    let (text, href) = match col.kind {
        ColumnType::Reference if !value.is_empty() => {
            let target = col.reference.as_deref().unwrap_or_default();
            let shown = store::display_value(conn, catalog, target, &value)?;
            let text = if shown.is_empty() {
                value.clone()
            } else {
                shown
            };
            (text, Some(form_href(target, &value)))
        }
        ColumnType::Choice => (col.choice_label(&value).unwrap_or(&value).to_owned(), None),
        _ if col.name == "sys_target_sys_id" && !value.is_empty() => {
            let target = record.get("sys_target_table").cloned().unwrap_or_default();
            let href = catalog.table(&target).map(|t| form_href(&t.name, &value));
            (value, href)
        }
        _ => (value, None),
    };
    Ok(Cell {
        text: truncate(&text, CELL_CHARS),
        href,
        state,
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// One record as a list row over `columns`; the first cell links to the record's form.
pub fn row(
    conn: &Connection,
    catalog: &Catalog,
    table: &Table,
    columns: &[&Column],
    record: &Fields,
) -> Result<Row, StoreError> {
    let class = record
        .get("sys_class_name")
        .and_then(|c| catalog.table(c))
        .map_or(table.name.as_str(), |t| t.name.as_str());
    let sys_id = record.get("sys_id").map_or("", String::as_str);
    Ok(Row {
        href: form_href(class, sys_id),
        cells: columns
            .iter()
            .map(|c| cell(conn, catalog, c, record))
            .collect::<Result<_, _>>()?,
    })
}

/// XML re-indented by two spaces per level; the text as it is when it does not parse.
pub fn indent_xml(text: &str) -> String {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut writer = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(event) => {
                if writer.write_event(event).is_err() {
                    return text.to_owned();
                }
            }
            Err(_) => return text.to_owned(),
        }
    }
    String::from_utf8(writer.into_inner()).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_indented_and_broken_xml_is_shown_as_it_is() {
        let xml = "<?xml version=\"1.0\"?><Inventories><Inventory><ComputerID>1</ComputerID></Inventory></Inventories>";
        let shown = indent_xml(xml);
        assert!(
            shown.contains("\n  <Inventory>\n    <ComputerID>1</ComputerID>"),
            "{shown}"
        );
        assert_eq!(indent_xml("<a><b></a>"), "<a><b></a>");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
