//! Identification rules (a map's `identification`): an ordered matrix of cases, each a set of
//! keys, compiled once per Import Transaction into one prepared query per case.

use rusqlite::types::Value;

use super::held::{Held, Slots, Sql, bind_after};

use crate::catalog::{Identification, MatchKey, MatchOutcome, Table};
use crate::store::{StoreError, class_filter_unindexed as class_filter, quote};

/// What the matrix decided for one row.
#[derive(Debug)]
pub enum Decision {
    Update { sys_id: String, note: String },
    Create { note: String },
    Skip { note: String },
}

pub struct PreparedIdent<'c> {
    ident: &'c Identification,
    /// Per rule, a query returning at most two matching sys_ids.
    sql: Vec<Sql>,
    class_params: Vec<Value>,
}

fn key_sql(key: &MatchKey) -> String {
    match key {
        MatchKey::Equals { column, .. } => format!("{} = ?", quote(column)),
        MatchKey::Differs { column, .. } => {
            format!(
                "({0} IS NOT NULL AND {0} != '' AND {0} != ?)",
                quote(column)
            )
        }
        MatchKey::Empty { column } => format!("({0} IS NULL OR {0} = '')", quote(column)),
        MatchKey::Via {
            physical,
            column,
            reference,
            ..
        } => format!(
            "sys_id IN (SELECT {} FROM {} WHERE {} = ?)",
            quote(reference),
            quote(physical),
            quote(column)
        ),
    }
}

impl<'c> PreparedIdent<'c> {
    /// The sys_ids (two at most) a case's query finds for the row's `keys`. The class names
    /// follow the keys and are the same on every row: bound once, when the query is prepared.
    fn matching(
        &self,
        held: &Held<'_>,
        sql: &Sql,
        keys: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt =
            held.get_or_init(sql, |stmt| bind_after(stmt, keys.len(), &self.class_params))?;
        for (i, key) in keys.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, key)?;
        }
        let mut rows = stmt.raw_query();
        let mut ids = Vec::new();
        while let Some(row) = rows.next()? {
            ids.push(row.get(0)?);
        }
        Ok(ids)
    }

    pub fn new(ident: &'c Identification, target: &Table, slots: &mut Slots) -> Self {
        let (filter, class_params) = class_filter(target);
        let sql = ident
            .rules
            .iter()
            .map(|rule| {
                let mut keys: Vec<String> = rule.keys.iter().map(key_sql).collect();
                keys.push("1=1".to_owned());
                slots.sql(format!(
                    "SELECT sys_id FROM {} WHERE {} AND {filter} LIMIT 2",
                    quote(&target.physical),
                    keys.join(" AND ")
                ))
            })
            .collect();
        Self {
            ident,
            sql,
            class_params,
        }
    }

    /// Runs the cases in order until one decides.
    pub fn decide(
        &self,
        held: &Held<'_>,
        row: &dyn super::SourceRow,
    ) -> Result<Decision, StoreError> {
        let value = |c: &str| row.get(c).map(str::trim).filter(|v| !v.is_empty());
        let mut keys: Vec<&str> = Vec::new();
        for (rule, sql) in self.ident.rules.iter().zip(&self.sql) {
            if !rule.when.iter().all(|c| c.holds(value(&c.field))) {
                continue;
            }
            keys.clear();
            let sources = rule.keys.iter().filter_map(MatchKey::source);
            if !sources
                .map(value)
                .all(|v| v.map(|v| keys.push(v)).is_some())
            {
                continue;
            }
            // A case without keys decides by its `none` outcome alone.
            let ids = if rule.keys.is_empty() {
                Vec::new()
            } else {
                self.matching(held, sql, &keys)?
            };
            let (outcome, found) = match ids.len() {
                0 => (rule.none, "matched no record"),
                1 => (rule.one, "matched one record"),
                _ => (rule.many, "matched several records"),
            };
            if outcome == MatchOutcome::Next {
                continue;
            }
            let origin = if rule.documented {
                "documented"
            } else {
                "designed"
            };
            let note = format!(
                "{} case {}: {found}: {} [{origin}]",
                self.ident.name, rule.case, rule.reason
            );
            match outcome {
                MatchOutcome::Update => {
                    let sys_id = ids.into_iter().next().ok_or_else(|| {
                        StoreError::Invalid(format!("{note}: `update` needs a matched record"))
                    })?;
                    return Ok(Decision::Update { sys_id, note });
                }
                MatchOutcome::Skip => return Ok(Decision::Skip { note }),
                MatchOutcome::Create | MatchOutcome::Next => return Ok(Decision::Create { note }),
            }
        }
        let note = format!("{}: no case matched a record", self.ident.name);
        Ok(match self.ident.no_match {
            MatchOutcome::Skip => Decision::Skip { note },
            _ => Decision::Create { note },
        })
    }
}
