//! ServiceNow encoded queries (`active=true^nameLIKEsql^ORDERBYname`): parsing and
//! translation to parameterised SQL. Values only ever travel as SQL parameters; fields are
//! looked up in the catalog, and a part naming an unknown field or operator is ignored, as
//! a real instance does by default ([SN-TABLE-API] in docs/sources.md).

use rusqlite::types::Value;

use super::{quote, to_sql};
use crate::catalog::{Catalog, ColumnType, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    StartsWith,
    EndsWith,
    Like,
    NotLike,
    In,
    NotIn,
    IsEmpty,
    IsNotEmpty,
    Anything,
    EmptyString,
    Between,
    SameAs,
    NSameAs,
    /// A documented operator the emulator does not evaluate (the part is ignored).
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub field: String,
    pub op: Op,
    pub value: String,
}

/// `groups` are OR-ed (`^NQ`); each group is an AND of OR-lists (`^` and `^OR`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedQuery {
    pub groups: Vec<Vec<Vec<Term>>>,
    pub order: Vec<(String, bool)>,
}

/// Longest tokens first, so that `ISNOTEMPTY` is not read as `IS…` and `NOT IN` not as `IN`.
const OPERATORS: &[(&str, Op)] = &[
    ("ISNOTEMPTY", Op::IsNotEmpty),
    ("ISEMPTY", Op::IsEmpty),
    ("ANYTHING", Op::Anything),
    ("EMPTYSTRING", Op::EmptyString),
    ("STARTSWITH", Op::StartsWith),
    ("ENDSWITH", Op::EndsWith),
    ("NOT LIKE", Op::NotLike),
    ("LIKE", Op::Like),
    ("NOT IN", Op::NotIn),
    ("INSTANCEOF", Op::Unsupported),
    ("IN", Op::In),
    ("BETWEEN", Op::Between),
    ("NSAMEAS", Op::NSameAs),
    ("SAMEAS", Op::SameAs),
    ("DYNAMIC", Op::Unsupported),
    ("DATEPART", Op::Unsupported),
    ("RELATIVE", Op::Unsupported),
    ("MORETHAN", Op::Unsupported),
    ("LESSTHAN", Op::Unsupported),
    ("NOTON", Op::Unsupported),
    ("ON", Op::Unsupported),
    ("VALCHANGES", Op::Unsupported),
    ("CHANGES", Op::Unsupported),
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("=", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("!*", Op::NotLike),
    ("*", Op::Like),
    ("%", Op::EndsWith),
];

fn parse_term(s: &str) -> Option<Term> {
    let end = s
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(s.len());
    let (field, rest) = s.split_at(end);
    if field.is_empty() {
        return None;
    }
    OPERATORS.iter().find_map(|(token, op)| {
        rest.strip_prefix(token).map(|value| Term {
            field: field.to_owned(),
            op: *op,
            value: value.to_owned(),
        })
    })
}

/// Parses an encoded query. Never fails: malformed parts are dropped.
pub fn parse_encoded_query(s: &str) -> EncodedQuery {
    let mut q = EncodedQuery::default();
    for group_str in s.split("^NQ") {
        let mut group: Vec<Vec<Term>> = Vec::new();
        for part in group_str.split('^') {
            if part.is_empty() || part == "EQ" {
                continue;
            }
            if let Some(field) = part.strip_prefix("ORDERBYDESC") {
                q.order.push((field.to_owned(), true));
            } else if let Some(field) = part.strip_prefix("ORDERBY") {
                q.order.push((field.to_owned(), false));
            } else if let Some(rest) = part.strip_prefix("OR") {
                if let Some(t) = parse_term(rest) {
                    match group.last_mut() {
                        Some(last) => last.push(t),
                        None => group.push(vec![t]),
                    }
                }
            } else if let Some(t) = parse_term(part) {
                group.push(vec![t]);
            }
        }
        if !group.is_empty() {
            q.groups.push(group);
        }
    }
    q
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The value as the column stores it; None when it cannot be (e.g. `ram=abc`).
fn typed(kind: ColumnType, value: &str) -> Option<Value> {
    if kind.is_numeric() {
        to_sql(kind, value).ok().filter(|v| *v != Value::Null)
    } else {
        Some(Value::Text(value.to_owned()))
    }
}

/// Dot-walking (`model_id.name=x`): the first part must be a reference column; the rest is
/// a condition on the referenced table, as a sub-select.
fn walk_sql(t: &Term, table: &Table, catalog: &Catalog, params: &mut Vec<Value>) -> Option<String> {
    let (first, rest) = t.field.split_once('.')?;
    let col = table.column(first)?;
    let target = catalog.table(col.reference.as_deref()?)?;
    // Passwords are never queryable, not even through a reference.
    if target
        .column(rest)
        .is_some_and(|c| c.kind == ColumnType::Password)
    {
        return None;
    }
    let inner = Term {
        field: rest.to_owned(),
        op: t.op,
        value: t.value.clone(),
    };
    let (filter, filter_params) = super::class_filter(target);
    let mut sub_params = Vec::new();
    let cond = term_sql(&inner, target, Some(catalog), &mut sub_params)?;
    params.extend(filter_params);
    params.extend(sub_params);
    Some(format!(
        "{} IN (SELECT sys_id FROM {} WHERE {filter} AND {cond})",
        quote(&col.name),
        quote(&target.physical)
    ))
}

fn term_sql(
    t: &Term,
    table: &Table,
    catalog: Option<&Catalog>,
    params: &mut Vec<Value>,
) -> Option<String> {
    if t.field.contains('.') {
        return walk_sql(t, table, catalog?, params);
    }
    let col = table.column(&t.field)?;
    let c = super::out_of_row::column_sql(&table.physical, col);
    let empty = format!("({c} IS NULL OR {c} = '')");
    let not_empty = format!("({c} IS NOT NULL AND {c} != '')");
    let like = |pattern: String, params: &mut Vec<Value>, negate: bool| {
        params.push(Value::Text(pattern));
        if negate {
            format!("({c} IS NULL OR {c} NOT LIKE ? ESCAPE '\\')")
        } else {
            format!("{c} LIKE ? ESCAPE '\\'")
        }
    };
    let sql = match t.op {
        Op::Eq if t.value.is_empty() => empty,
        Op::Ne if t.value.is_empty() => not_empty,
        Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => match typed(col.kind, &t.value) {
            Some(v) => {
                params.push(v);
                match t.op {
                    // "is not" also matches empty values (designed; see docs/emulator.md).
                    Op::Ne => format!("({c} IS NULL OR {c} != ?)"),
                    Op::Eq => format!("{c} = ?"),
                    Op::Lt => format!("{c} < ?"),
                    Op::Le => format!("{c} <= ?"),
                    Op::Gt => format!("{c} > ?"),
                    _ => format!("{c} >= ?"),
                }
            }
            None if t.op == Op::Ne => "1=1".to_owned(),
            None => "0".to_owned(),
        },
        Op::StartsWith => like(format!("{}%", escape_like(&t.value)), params, false),
        Op::EndsWith => like(format!("%{}", escape_like(&t.value)), params, false),
        Op::Like => like(format!("%{}%", escape_like(&t.value)), params, false),
        Op::NotLike => like(format!("%{}%", escape_like(&t.value)), params, true),
        Op::In | Op::NotIn => {
            let values: Vec<Value> = t
                .value
                .split(',')
                .filter_map(|v| typed(col.kind, v.trim()))
                .collect();
            if values.is_empty() {
                return Some(if t.op == Op::In { "0" } else { "1=1" }.to_owned());
            }
            let marks = vec!["?"; values.len()].join(",");
            params.extend(values);
            if t.op == Op::In {
                format!("{c} IN ({marks})")
            } else {
                format!("({c} IS NULL OR {c} NOT IN ({marks}))")
            }
        }
        Op::IsEmpty => empty,
        Op::IsNotEmpty => not_empty,
        Op::Anything => "1=1".to_owned(),
        Op::EmptyString => format!("{c} = ''"),
        Op::Between => {
            let (a, b) = t.value.split_once('@')?;
            let (a, b) = (typed(col.kind, a)?, typed(col.kind, b)?);
            params.push(a);
            params.push(b);
            format!("{c} BETWEEN ? AND ?")
        }
        Op::SameAs | Op::NSameAs => {
            let other = table.column(&t.value)?;
            let o = super::out_of_row::column_sql(&table.physical, other);
            if t.op == Op::SameAs {
                format!("{c} = {o}")
            } else {
                format!("({c} IS NULL OR {c} != {o})")
            }
        }
        Op::Unsupported => return None,
    };
    Some(sql)
}

impl EncodedQuery {
    /// Drops every condition for which `keep` is false (e.g. on password columns).
    pub fn retain_terms(&mut self, keep: impl Fn(&Term) -> bool) {
        for group in &mut self.groups {
            for ors in group.iter_mut() {
                ors.retain(&keep);
            }
            group.retain(|ors| !ors.is_empty());
        }
        self.order.retain(|(field, _)| {
            keep(&Term {
                field: field.clone(),
                op: Op::Anything,
                value: String::new(),
            })
        });
    }

    /// Adds `field op value` as one more AND condition (to the last `^NQ` group).
    pub fn and(&mut self, field: &str, op: Op, value: &str) {
        let term = Term {
            field: field.to_owned(),
            op,
            value: value.to_owned(),
        };
        if self.groups.is_empty() {
            self.groups.push(Vec::new());
        }
        for group in &mut self.groups {
            group.push(vec![term.clone()]);
        }
    }

    /// SQL condition, its parameters and an ORDER BY list for `table`.
    /// With a catalog, dot-walked fields (`model_id.name`) are resolved; without, ignored.
    pub fn to_sql(&self, table: &Table, catalog: Option<&Catalog>) -> (String, Vec<Value>, String) {
        let mut params = Vec::new();
        let mut groups = Vec::new();
        for group in &self.groups {
            let mut ands = Vec::new();
            for ors in group {
                let parts: Vec<String> = ors
                    .iter()
                    .filter_map(|t| term_sql(t, table, catalog, &mut params))
                    .collect();
                if !parts.is_empty() {
                    ands.push(format!("({})", parts.join(" OR ")));
                }
            }
            groups.push(if ands.is_empty() {
                "1=1".to_owned()
            } else {
                ands.join(" AND ")
            });
        }
        let cond = if groups.is_empty() {
            "1=1".to_owned()
        } else {
            groups
                .iter()
                .map(|g| format!("({g})"))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let mut order: Vec<String> = self
            .order
            .iter()
            .filter_map(|(field, desc)| {
                let col = table.column(field)?;
                Some(format!(
                    "{}{}",
                    super::out_of_row::column_sql(&table.physical, col),
                    if *desc { " DESC" } else { "" }
                ))
            })
            .collect();
        order.push("rowid".to_owned());
        (cond, params, order.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn term(field: &str, op: Op, value: &str) -> Term {
        Term {
            field: field.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn parses_and_or_nq_and_order() {
        let q = parse_encoded_query(
            "active=true^nameLIKEsql^ORnameSTARTSWITHx^NQstate!=failed^ORDERBYDESCnumber^ORDERBYname",
        );
        assert_eq!(q.groups.len(), 2);
        assert_eq!(q.groups[0][0], vec![term("active", Op::Eq, "true")]);
        assert_eq!(
            q.groups[0][1],
            vec![
                term("name", Op::Like, "sql"),
                term("name", Op::StartsWith, "x")
            ]
        );
        assert_eq!(q.groups[1][0], vec![term("state", Op::Ne, "failed")]);
        assert_eq!(
            q.order,
            vec![("number".into(), true), ("name".into(), false)]
        );
    }

    #[test]
    fn operators_are_read_longest_first() {
        let q =
            parse_encoded_query("aISNOTEMPTY^bNOT INx,y^cINx^dNOT LIKEz^eINSTANCEOFcmdb_ci^f<=3");
        let ops: Vec<Op> = q.groups[0].iter().map(|o| o[0].op).collect();
        assert_eq!(
            ops,
            vec![
                Op::IsNotEmpty,
                Op::NotIn,
                Op::In,
                Op::NotLike,
                Op::Unsupported,
                Op::Le
            ]
        );
    }

    #[test]
    fn malformed_parts_are_dropped() {
        let q = parse_encoded_query("^^NQ^Foo=1^=x^name");
        assert!(q.groups.is_empty());
        assert_eq!(parse_encoded_query("name=a^EQ").groups.len(), 1);
    }

    #[test]
    fn like_escapes_wildcards() {
        assert_eq!(escape_like("50%_a\\"), "50\\%\\_a\\\\");
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".*") {
            // Any text parses into a query whose terms all name a field, no more groups than
            // `^NQ` separators allow, and SQL with one parameter per placeholder.
            let q = parse_encoded_query(&s);
            prop_assert!(q.groups.len() <= s.matches("^NQ").count() + 1);
            prop_assert!(q.groups.iter().flatten().flatten().all(|t| !t.field.is_empty()));
            let catalog = crate::catalog::load_embedded().expect("catalog");
            let table = catalog.table("cmdb_ci_computer").expect("table");
            let (sql, params, _) = q.to_sql(table, Some(&catalog));
            prop_assert_eq!(sql.matches('?').count(), params.len());
        }

        #[test]
        fn parser_never_panics_on_query_like_input(s in "[a-z_=^!<>%*@,A-Z ]{0,60}") {
            let q = parse_encoded_query(&s);
            let catalog = crate::catalog::load_embedded().expect("catalog");
            let table = catalog.table("cmdb_ci_computer").expect("table");
            let (sql, params, _) = q.to_sql(table, Some(&catalog));
            prop_assert_eq!(sql.matches('?').count(), params.len());
        }
    }
}
