//! A map's UPDATE names only the columns the row changes. An UPDATE that names an indexed
//! column rewrites its index entry even when the value is the same, so naming every mapped
//! column (the coalesce keys among them) dirtied an index page for every updated record: in
//! a differential export, twice the pages to log and check-point, besides the index work.

use rusqlite::types::Value;

/// The UPDATE of one map's target, by sys_id, for any set of changed columns.
#[derive(Debug)]
pub struct UpdateSql {
    /// The target's physical table, quoted.
    pub table: String,
    /// The map's columns, quoted, in the order of the engine's values.
    pub columns: Vec<String>,
}

/// Which of a record's mapped columns a row sets to a new value: bit `i` for column `i`.
/// Columns past the 64th are always named (they are set to their current value when the
/// row leaves them alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Changed(u64);

impl Changed {
    /// The columns whose new value (`Some`) differs from the current one.
    pub fn of(values: &[Option<Value>], current: &[Value]) -> Self {
        let bits = (values.iter().zip(current).take(64).enumerate())
            .filter(|(_, (v, cur))| v.as_ref().is_some_and(|v| v != *cur))
            .fold(0u64, |bits, (i, _)| bits | 1 << i);
        Self(bits)
    }

    /// Whether the UPDATE names column `i`.
    pub fn names(self, i: usize) -> bool {
        i >= 64 || self.0 & (1 << i) != 0
    }

    /// The key its statement is held under.
    pub fn bits(self) -> u64 {
        self.0
    }
}

impl UpdateSql {
    /// The UPDATE naming the `changed` columns; then `sys_updated_on`, `sys_updated_by` and
    /// the sys_id are bound after them.
    pub fn text(&self, changed: Changed) -> String {
        let mut text = format!("UPDATE {} SET ", self.table);
        for (i, column) in self.columns.iter().enumerate() {
            if changed.names(i) {
                text.push_str(column);
                text.push_str(" = ?, ");
            }
        }
        text.push_str(
            "sys_updated_on = ?, sys_updated_by = ?, \
             sys_mod_count = COALESCE(sys_mod_count, 0) + 1 WHERE sys_id = ?",
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn only_columns_set_to_a_new_value_are_named() {
        let current = [text("a"), text("b"), Value::Integer(3), Value::Null];
        let values = [
            Some(text("a")),
            None,
            Some(Value::Integer(4)),
            Some(text("d")),
        ];
        let changed = Changed::of(&values, &current);
        let sql = UpdateSql {
            table: "\"t\"".into(),
            columns: ["\"w\"", "\"x\"", "\"y\"", "\"z\""]
                .map(String::from)
                .to_vec(),
        };
        assert_eq!(
            sql.text(changed),
            "UPDATE \"t\" SET \"y\" = ?, \"z\" = ?, sys_updated_on = ?, sys_updated_by = ?, \
             sys_mod_count = COALESCE(sys_mod_count, 0) + 1 WHERE sys_id = ?"
        );
        assert_eq!(Changed::of(&values[..2], &current[..2]).bits(), 0);
    }

    #[test]
    fn past_the_64th_column_every_column_is_named() {
        let current = vec![Value::Integer(0); 70];
        let mut values = vec![None; 70];
        values[1] = Some(Value::Integer(1));
        let changed = Changed::of(&values, &current);
        assert_eq!(changed.bits(), 2);
        assert!(!changed.names(0) && changed.names(1) && !changed.names(63));
        assert!(changed.names(64) && changed.names(69));
    }
}
