//! Generic record operations over any catalog table: what the Table API, the app's intake
//! and seeding use. (The transform engine has its own hot path, see `transform`.)

use std::collections::BTreeMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::out_of_row::{self, column_sql};
use super::query::EncodedQuery;
use super::{from_sql, is_sys_id, new_sys_id, quote, to_sql};
use crate::catalog::{Catalog, Column, ColumnType, Table};

/// A record as ServiceNow shows values: column → string ("" when empty).
pub type Fields = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller's input is not acceptable (becomes a 400).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A commit could not be made durable ([`super::Store::sync_log`]).
    #[error("failed to sync the database log: {0}")]
    Sync(#[from] std::io::Error),
}

/// The class restriction for queries on `table`, as SQL plus parameters.
pub fn class_filter(table: &Table) -> (String, Vec<Value>) {
    class_filter_with(table, "sys_class_name")
}

/// Like [`class_filter`], but never through the `sys_class_name` index: for lookups by a
/// selective indexed column (coalesce, references), where SQLite without statistics might
/// otherwise walk every row of the class.
pub fn class_filter_unindexed(table: &Table) -> (String, Vec<Value>) {
    class_filter_with(table, "+sys_class_name")
}

fn class_filter_with(table: &Table, expr: &str) -> (String, Vec<Value>) {
    if table.covers_physical {
        ("1=1".to_owned(), Vec::new())
    } else {
        let marks = vec!["?"; table.classes.len()].join(",");
        (
            format!("{expr} IN ({marks})"),
            table
                .classes
                .iter()
                .map(|c| Value::Text(c.clone()))
                .collect(),
        )
    }
}

/// Next auto-number of a table (`IRUN0001001`, …). Counters are kept per prefix.
pub fn next_number(conn: &Connection, table: &Table) -> rusqlite::Result<Option<String>> {
    let Some(prefix) = &table.number_prefix else {
        return Ok(None);
    };
    conn.prepare_cached(
        "INSERT INTO _emulator_numbers (table_name, next) VALUES (?1, 1001) ON CONFLICT DO NOTHING",
    )?
    .execute([prefix])?;
    let n: i64 = conn
        .prepare_cached(
            "UPDATE _emulator_numbers SET next = next + 1 WHERE table_name = ?1 RETURNING next - 1",
        )?
        .query_row([prefix], |r| r.get(0))?;
    Ok(Some(format!("{prefix}{n:07}")))
}

/// An INSERT of `rows` rows into `columns` of the physical table `physical`, one parameter
/// per value. `OR FAIL`: a statement of several rows that could abort would keep a
/// statement journal to undo its earlier rows; its callers roll the whole transaction back
/// on any error anyway.
pub fn insert_rows_sql(physical: &str, columns: &[&str], rows: usize) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let row = format!("({})", vec!["?"; columns.len()].join(","));
    format!(
        "INSERT OR FAIL INTO {} ({}) VALUES {}",
        quote(physical),
        names.join(", "),
        vec![row; rows].join(",")
    )
}

/// Every column of `table`, in order, as a query on its physical table reads it.
fn select_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|c| column_sql(&table.physical, c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns an INSERT writes in the row itself.
fn in_row(table: &Table) -> impl Iterator<Item = &Column> {
    table.columns.iter().filter(|c| !c.out_of_row)
}

fn row_to_fields(table: &Table, row: &rusqlite::Row<'_>) -> rusqlite::Result<Fields> {
    columns_to_fields(&table.columns, row)
}

/// A row's values of `columns`, selected in that order, as the API shows them.
fn columns_to_fields<'c>(
    columns: impl IntoIterator<Item = &'c Column>,
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Fields> {
    let mut fields = Fields::new();
    for (i, col) in columns.into_iter().enumerate() {
        let v: Value = row.get(i)?;
        fields.insert(col.name.clone(), from_sql(col.kind, &v));
    }
    Ok(fields)
}

/// Inserts one record. Unknown columns are ignored (as the Table API does); omitted columns
/// take their default; `number` is assigned when the table is auto-numbered.
pub fn insert(
    conn: &Connection,
    table: &Table,
    values: &Fields,
    user: &str,
) -> Result<String, StoreError> {
    let now = crate::clock::now_string();
    let mut sql_values = Vec::with_capacity(table.columns.len());
    let mut sys_id = new_sys_id();
    for col in &table.columns {
        let given = values.get(&col.name).map(String::as_str);
        let v = match col.name.as_str() {
            "sys_id" => {
                if let Some(id) = given.filter(|id| is_sys_id(id)) {
                    sys_id = id.to_owned();
                }
                Value::Text(sys_id.clone())
            }
            "sys_class_name" => Value::Text(table.name.clone()),
            "sys_created_on" | "sys_updated_on" => Value::Text(now.clone()),
            "sys_created_by" | "sys_updated_by" => Value::Text(user.to_owned()),
            "sys_mod_count" => Value::Integer(0),
            "number" if given.unwrap_or("").is_empty() && table.number_prefix.is_some() => {
                next_number(conn, table)?.map_or(Value::Null, Value::Text)
            }
            name => match given.or(col.default.as_deref()) {
                Some(s) => to_sql(col.kind, s)
                    .map_err(|e| StoreError::Invalid(format!("Invalid value for {name}: {e}")))?,
                None => Value::Null,
            },
        };
        sql_values.push(v);
    }
    let (apart, in_row_values): (Vec<_>, Vec<_>) = table
        .columns
        .iter()
        .zip(sql_values)
        .partition(|(c, _)| c.out_of_row);
    let names: Vec<String> = in_row(table).map(|c| quote(&c.name)).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(&table.physical),
        names.join(", "),
        vec!["?"; names.len()].join(",")
    );
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(in_row_values.into_iter().map(|(_, v)| v)))
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Invalid(format!("A record with sys_id {sys_id} already exists"))
            }
            other => StoreError::Sqlite(other),
        })?;
    for (col, v) in apart {
        out_of_row::write(conn, &table.physical, col, &sys_id, &v)?;
    }
    super::wrote(&table.physical);
    Ok(sys_id)
}

/// Updates the given columns of one record; system columns are maintained, not written.
/// Returns false when no such record exists.
pub fn update(
    conn: &Connection,
    table: &Table,
    sys_id: &str,
    values: &Fields,
    user: &str,
) -> Result<bool, StoreError> {
    let mut sets = Vec::new();
    let mut params = Vec::new();
    let mut apart = Vec::new();
    for (name, value) in values {
        let Some(col) = table.column(name) else {
            continue;
        };
        if name.starts_with("sys_") && crate::catalog::SYS_COLUMNS.contains(&name.as_str()) {
            continue;
        }
        let v = to_sql(col.kind, value)
            .map_err(|e| StoreError::Invalid(format!("Invalid value for {name}: {e}")))?;
        if col.out_of_row {
            apart.push((col, v));
            continue;
        }
        sets.push(format!("{} = ?", quote(name)));
        params.push(v);
    }
    sets.push("sys_updated_on = ?".into());
    params.push(Value::Text(crate::clock::now_string()));
    sets.push("sys_updated_by = ?".into());
    params.push(Value::Text(user.to_owned()));
    sets.push("sys_mod_count = COALESCE(sys_mod_count, 0) + 1".into());
    let (filter, filter_params) = class_filter(table);
    params.push(Value::Text(sys_id.to_owned()));
    params.extend(filter_params);
    let sql = format!(
        "UPDATE {} SET {} WHERE sys_id = ? AND {filter}",
        quote(&table.physical),
        sets.join(", ")
    );
    let updated = conn
        .prepare_cached(&sql)?
        .execute(params_from_iter(params))?
        > 0;
    if updated {
        for (col, v) in apart {
            out_of_row::write(conn, &table.physical, col, sys_id, &v)?;
        }
    }
    if updated {
        super::wrote(&table.physical);
    }
    Ok(updated)
}

pub fn delete(conn: &Connection, table: &Table, sys_id: &str) -> Result<bool, StoreError> {
    let (filter, filter_params) = class_filter(table);
    let mut params = vec![Value::Text(sys_id.to_owned())];
    params.extend(filter_params);
    let sql = format!(
        "DELETE FROM {} WHERE sys_id = ? AND {filter}",
        quote(&table.physical)
    );
    let deleted = conn
        .prepare_cached(&sql)?
        .execute(params_from_iter(params))?
        > 0;
    if deleted {
        for col in table.columns.iter().filter(|c| c.out_of_row) {
            out_of_row::write(conn, &table.physical, col, sys_id, &Value::Null)?;
        }
    }
    if deleted {
        super::wrote(&table.physical);
    }
    Ok(deleted)
}

/// One record by sys_id, with the columns of `table` (a parent table shows a child's row
/// with the parent's columns, as ServiceNow does).
pub fn get(conn: &Connection, table: &Table, sys_id: &str) -> Result<Option<Fields>, StoreError> {
    let (filter, filter_params) = class_filter(table);
    let mut params = vec![Value::Text(sys_id.to_owned())];
    params.extend(filter_params);
    let sql = format!(
        "SELECT {} FROM {} WHERE sys_id = ? AND {filter}",
        select_list(table),
        quote(&table.physical)
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params), |r| row_to_fields(table, r))
        .optional()?)
}

/// One column of one record by sys_id (`None` when no such record or column): for callers
/// that need one small value of a record with a large one (a transaction's number, not its
/// payload).
pub fn get_field(
    conn: &Connection,
    table: &Table,
    sys_id: &str,
    column: &str,
) -> Result<Option<String>, StoreError> {
    let Some(col) = table.column(column) else {
        return Ok(None);
    };
    let (filter, filter_params) = class_filter(table);
    let mut params = vec![Value::Text(sys_id.to_owned())];
    params.extend(filter_params);
    let sql = format!(
        "SELECT {} FROM {} WHERE sys_id = ? AND {filter}",
        column_sql(&table.physical, col),
        quote(&table.physical)
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params), |r| r.get::<_, Value>(0))
        .optional()?
        .map(|v| from_sql(col.kind, &v)))
}

fn where_clause(
    table: &Table,
    query: &EncodedQuery,
    catalog: Option<&Catalog>,
) -> (String, Vec<Value>, String) {
    let (filter, mut params) = class_filter(table);
    let (cond, cond_params, order) = query.to_sql(table, catalog);
    params.extend(cond_params);
    (format!("({filter}) AND ({cond})"), params, order)
}

/// Records matching an encoded query, one page.
pub fn find(
    conn: &Connection,
    table: &Table,
    query: &EncodedQuery,
    limit: i64,
    offset: i64,
) -> Result<Vec<Fields>, StoreError> {
    find_walk(conn, None, table, query, limit, offset)
}

/// [`find`], resolving dot-walked conditions through the catalog.
pub fn find_walk(
    conn: &Connection,
    catalog: Option<&Catalog>,
    table: &Table,
    query: &EncodedQuery,
    limit: i64,
    offset: i64,
) -> Result<Vec<Fields>, StoreError> {
    let (cond, mut params, order) = where_clause(table, query, catalog);
    params.push(Value::Integer(offset));
    // The limit is written into the SQL, not bound: SQLite plans with a bound LIMIT's value,
    // so a statement with `LIMIT ?` is compiled again on every execution (measured: every
    // step of the worker's claim query re-prepared). A bound OFFSET does not do that.
    let sql = format!(
        "SELECT {} FROM {} WHERE {cond} ORDER BY {order} LIMIT {limit} OFFSET ?",
        select_list(table),
        quote(&table.physical)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |r| row_to_fields(table, r))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The first `limit` records matching an encoded query, with only the named columns (those
/// the table has): for callers that need a few small values of records with a large one.
pub fn find_columns(
    conn: &Connection,
    table: &Table,
    query: &EncodedQuery,
    columns: &[&str],
    limit: i64,
) -> Result<Vec<Fields>, StoreError> {
    let cols: Vec<&Column> = columns.iter().filter_map(|c| table.column(c)).collect();
    let (cond, params, order) = where_clause(table, query, None);
    let list: Vec<String> = cols
        .iter()
        .map(|c| column_sql(&table.physical, c))
        .collect();
    // The limit is written into the SQL, as in `find_walk`.
    let sql = format!(
        "SELECT {} FROM {} WHERE {cond} ORDER BY {order} LIMIT {limit}",
        list.join(", "),
        quote(&table.physical)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |r| {
        columns_to_fields(cols.iter().copied(), r)
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Number of records matching an encoded query (dot-walks resolved when given a catalog).
pub fn count(
    conn: &Connection,
    catalog: Option<&Catalog>,
    table: &Table,
    query: &EncodedQuery,
) -> Result<i64, StoreError> {
    let (cond, params, _) = where_clause(table, query, catalog);
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {cond}",
        quote(&table.physical)
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params), |r| r.get(0))?)
}

/// First record whose columns equal the given values (exact, case-insensitive for text).
pub fn find_by(
    conn: &Connection,
    table: &Table,
    pairs: &[(&str, &str)],
) -> Result<Option<Fields>, StoreError> {
    let mut q = EncodedQuery::default();
    for (field, value) in pairs {
        q.and(field, super::Op::Eq, value);
    }
    Ok(find(conn, table, &q, 1, 0)?.into_iter().next())
}

/// The record whose `column` equals `value` exactly. Queries match without regard to case, as
/// ServiceNow's do; credentials (user names, client ids) must match exactly, so among the
/// case-insensitive matches the exact one is picked.
pub fn find_exact(
    conn: &Connection,
    table: &Table,
    column: &str,
    value: &str,
) -> Result<Option<Fields>, StoreError> {
    let mut q = EncodedQuery::default();
    q.and(column, super::Op::Eq, value);
    Ok(find(conn, table, &q, 1000, 0)?
        .into_iter()
        .find(|r| r.get(column).map(String::as_str) == Some(value)))
}

/// The display value of the record a reference points to ("" when it does not exist).
pub fn display_value(
    conn: &Connection,
    catalog: &Catalog,
    table_name: &str,
    sys_id: &str,
) -> Result<String, StoreError> {
    let Some(table) = catalog.table(table_name) else {
        return Ok(String::new());
    };
    let kind = table
        .column(&table.display)
        .map_or(ColumnType::String, |c| c.kind);
    let sql = format!(
        "SELECT {} FROM {} WHERE sys_id = ?",
        quote(&table.display),
        quote(&table.physical)
    );
    let v: Option<Value> = conn
        .prepare_cached(&sql)?
        .query_row([sys_id], |r| r.get(0))
        .optional()?;
    Ok(v.map(|v| from_sql(kind, &v)).unwrap_or_default())
}

/// An aggregate function of the Aggregate API (`sysparm_<aggregate>_fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Min,
    Max,
    Avg,
    Sum,
}

impl Aggregate {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "count" => Self::Count,
            "min" => Self::Min,
            "max" => Self::Max,
            "avg" => Self::Avg,
            "sum" => Self::Sum,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Min => "min",
            Self::Max => "max",
            Self::Avg => "avg",
            Self::Sum => "sum",
        }
    }

    /// The aggregate of `expr`, a column's SQL expression (see [`column_sql`]).
    fn sql(self, expr: &str) -> String {
        match self {
            Self::Count => "COUNT(*)".to_owned(),
            Self::Min => format!("MIN({expr})"),
            Self::Max => format!("MAX({expr})"),
            Self::Avg => format!("AVG({expr})"),
            Self::Sum => format!("TOTAL({expr})"),
        }
    }
}

/// `sysparm_having` part: `aggregate^field^operator^value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Having {
    pub aggregate: Aggregate,
    pub field: String,
    /// One of `=`, `!=`, `>`, `<`, `>=`, `<=`.
    pub op: &'static str,
    pub value: f64,
}

impl Having {
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(4, '^');
        let aggregate = Aggregate::parse(parts.next()?.trim())?;
        let field = parts.next()?.trim().to_owned();
        let op_text = parts.next()?.trim();
        let op = ["!=", ">=", "<=", "=", ">", "<"]
            .into_iter()
            .find(|o| *o == op_text)?;
        let value = parts.next()?.trim().parse().ok()?;
        Some(Self {
            aggregate,
            field,
            op,
            value,
        })
    }
}

#[cfg(test)]
mod having_tests {
    use super::{Aggregate, Having};

    #[test]
    fn having_parts_parse() {
        let h = Having::parse("count^priority^>=^3").expect("having");
        assert_eq!(
            (h.aggregate, h.field.as_str(), h.op, h.value),
            (Aggregate::Count, "priority", ">=", 3.0)
        );
        assert!(Having::parse("count^priority^~^3").is_none());
        assert!(Having::parse("median^priority^>^3").is_none());
        assert!(Having::parse("avg^priority^>").is_none());
    }
}

/// One group of an aggregate query: the group-by values and one value per requested
/// aggregate, as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub keys: Vec<String>,
    pub values: Vec<String>,
}

/// Aggregates over the records matching `query`, grouped by `group_by` (columns already
/// validated against `table` by the caller; unknown ones are skipped here too).
pub fn aggregate(
    conn: &Connection,
    catalog: &Catalog,
    table: &Table,
    query: &EncodedQuery,
    group_by: &[String],
    aggregates: &[(Aggregate, String)],
    having: &[Having],
) -> Result<Vec<Group>, StoreError> {
    let group_cols: Vec<_> = group_by.iter().filter_map(|g| table.column(g)).collect();
    let known = |a: Aggregate, f: &str| a == Aggregate::Count || table.column(f).is_some();
    let expr = |f: &str| {
        table
            .column(f)
            .map_or_else(|| quote(f), |c| column_sql(&table.physical, c))
    };
    let mut select: Vec<String> = group_cols
        .iter()
        .map(|c| column_sql(&table.physical, c))
        .collect();
    select.extend(aggregates.iter().map(|(a, f)| a.sql(&expr(f))));
    if select.is_empty() || aggregates.iter().any(|(a, f)| !known(*a, f)) {
        return Err(StoreError::Invalid("Invalid aggregate field".into()));
    }
    let (cond, mut params, _) = where_clause(table, query, Some(catalog));
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {cond}",
        select.join(", "),
        quote(&table.physical)
    );
    let keys = group_cols
        .iter()
        .map(|c| column_sql(&table.physical, c))
        .collect::<Vec<_>>()
        .join(", ");
    if !keys.is_empty() {
        sql.push_str(&format!(" GROUP BY {keys}"));
    }
    let havings: Vec<_> = having
        .iter()
        .filter(|h| known(h.aggregate, &h.field))
        .collect();
    if !havings.is_empty() {
        let parts: Vec<String> = havings
            .iter()
            .map(|h| {
                format!(
                    "{} {} ?",
                    h.aggregate.sql(&expr(&h.field)),
                    h.op.replace("!=", "<>")
                )
            })
            .collect();
        params.extend(havings.iter().map(|h| Value::Real(h.value)));
        sql.push_str(&format!(" HAVING {}", parts.join(" AND ")));
    }
    if !keys.is_empty() {
        sql.push_str(&format!(" ORDER BY {keys}"));
    }
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |row| {
        let mut keys = Vec::with_capacity(group_cols.len());
        for (i, c) in group_cols.iter().enumerate() {
            keys.push(from_sql(c.kind, &row.get::<_, Value>(i)?));
        }
        let mut values = Vec::with_capacity(aggregates.len());
        for (j, (a, f)) in aggregates.iter().enumerate() {
            let v: Value = row.get(group_cols.len() + j)?;
            let kind = table.column(f).map_or(ColumnType::Integer, |c| c.kind);
            values.push(aggregate_text(*a, kind, &v));
        }
        Ok(Group { keys, values })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// ServiceNow shows averages with four decimals, sums of integers as integers.
fn aggregate_text(a: Aggregate, kind: ColumnType, v: &Value) -> String {
    match (a, v) {
        (_, Value::Null) => String::new(),
        (Aggregate::Avg, Value::Real(f)) => format!("{f:.4}"),
        (Aggregate::Avg, Value::Integer(i)) => format!("{i}.0000"),
        (Aggregate::Sum, Value::Real(f)) if f.fract() == 0.0 => format!("{f:.0}"),
        (Aggregate::Count | Aggregate::Sum, other) => from_sql(ColumnType::Integer, other),
        (_, other) => from_sql(kind, other),
    }
}
