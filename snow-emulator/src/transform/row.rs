//! What the engine reads a source row through. The Import Set API hands it a map of columns;
//! the worker a [`PositionalRow`], whose buffers are reused from row to row of a segment.

use std::collections::HashMap;

use crate::catalog::Table;

/// `value` without leading and trailing white space, as `str::trim` takes it off. A value
/// that starts and ends with a visible ASCII character (nearly every one) is returned as it
/// is without decoding its characters: trimming is asked several times a field.
pub fn trim(value: &str) -> &str {
    match value.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => value,
        [only] if only.is_ascii_graphic() => value,
        _ => value.trim(),
    }
}

/// A source row: the value of a column, by name. The engine treats an empty or blank value
/// as no value.
pub trait SourceRow {
    fn get(&self, column: &str) -> Option<&str>;

    /// The value of `column`, which is at `position` of the source table's columns when
    /// known: a row held by position answers without looking the name up.
    fn get_at(&self, column: &str, _position: Option<usize>) -> Option<&str> {
        self.get(column)
    }
}

impl SourceRow for HashMap<String, String> {
    fn get(&self, column: &str) -> Option<&str> {
        HashMap::get(self, column).map(String::as_str)
    }
}

/// A row of `table` held by column position, "" for no value. Filling it again reuses its
/// strings, so a segment's rows allocate only while the first one is read.
pub struct PositionalRow<'t> {
    table: &'t Table,
    values: Vec<String>,
}

impl<'t> PositionalRow<'t> {
    pub fn new(table: &'t Table) -> Self {
        Self {
            table,
            values: vec![String::new(); table.columns.len()],
        }
    }

    /// Empties every column.
    pub fn clear(&mut self) {
        self.values.iter_mut().for_each(String::clear);
    }

    /// Sets column `position` (of the table's columns) to `text`.
    pub fn set(&mut self, position: usize, text: &str) {
        if let Some(v) = self.values.get_mut(position) {
            v.clear();
            v.push_str(text);
        }
    }

    /// The value at `position`, if not empty.
    pub fn at(&self, position: usize) -> Option<&str> {
        self.values
            .get(position)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl SourceRow for PositionalRow<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        self.at(self.table.column_position(column)?)
    }

    fn get_at(&self, column: &str, position: Option<usize>) -> Option<&str> {
        match position {
            Some(p) => self.at(p),
            None => self.get(column),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refilled_row_keeps_nothing_of_the_last() {
        let catalog = crate::catalog::load_embedded().expect("catalog");
        let table = catalog
            .table("x_fls_flexera_fnms_application_import")
            .expect("staging table");
        let pos = |name: &str| table.column_position(name).expect("column");
        let mut row = PositionalRow::new(table);
        row.set(pos("u_computerid"), "7");
        row.set(pos("u_version"), "1.0");
        assert_eq!(row.get("u_version"), Some("1.0"));
        row.clear();
        row.set(pos("u_computerid"), "8");
        assert_eq!(row.get("u_computerid"), Some("8"));
        assert_eq!(row.get("u_version"), None);
        assert_eq!(row.get("no_such_column"), None);
    }

    #[test]
    fn a_row_read_by_position_answers_as_by_name() {
        let catalog = crate::catalog::load_embedded().expect("catalog");
        let table = catalog
            .table("x_fls_flexera_fnms_application_import")
            .expect("staging table");
        let at = table.column_position("u_version");
        let mut row = PositionalRow::new(table);
        row.set(at.expect("column"), "2.0");
        assert_eq!(row.get_at("u_version", at), Some("2.0"));
        assert_eq!(row.get_at("u_version", None), Some("2.0"), "by name");
        let by_name: HashMap<String, String> = [("u_version".into(), "3.0".into())].into();
        assert_eq!(
            by_name.get_at("u_version", at),
            Some("3.0"),
            "a map ignores positions"
        );
    }

    /// The fast path of [`trim`] gives what `str::trim` gives.
    #[test]
    fn trimming_agrees_with_str_trim() {
        for case in [
            "",
            " ",
            "a",
            " a",
            "a ",
            " a b ",
            "\u{a0}x\u{a0}",
            "x\u{3000}",
            "\tx\n",
            "ab",
            "é",
            "xé",
            "éx",
        ] {
            assert_eq!(trim(case), case.trim(), "{case:?}");
        }
        proptest::proptest!(|(s in "\\PC{0,8}|[ \\t\\n\\x{a0}\\x{2003}a-c]{0,6}")| {
            proptest::prop_assert_eq!(trim(&s), s.trim());
        });
    }
}
