//! Identification rules (a map's `identification`): an ordered matrix of cases, each a set of
//! keys, compiled once per Import Transaction into one prepared query per case.
//!
//! Before the first case that needs a query, one *pre-check* asks whether any record has any
//! of the row's lookup values (every `source` and `via_table` key of the matrix, OR-ed). A
//! record matching a case must have that case's lookup value, so when the pre-check finds
//! nothing, every case with such a key matches nothing and is decided without its query. A
//! full export meets mostly new computers: one query instead of about ten per row.

use std::cell::Cell;

use rusqlite::types::Value;

use super::held::{Held, Slots, Sql, bind_after};

use crate::catalog::{IdentRule, Identification, MatchKey, MatchOutcome, Table};
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
    /// The matrix's lookup keys (equals and via), each once, in the pre-check's order.
    lookups: Vec<&'c MatchKey>,
    /// Per rule, whether one of its keys is a lookup key (its query can then be skipped).
    has_lookup: Vec<bool>,
    /// Whether any record has one of the row's lookup values (see the module's comment).
    precheck: Option<Sql>,
    /// Queries run so far (pre-checks included), counted always and read by the tests that
    /// check what the pre-check saves; outside tests it costs one increment per query.
    asked: Cell<u64>,
}

/// A row's value for a key: trimmed as every source value is ([`super::trim`]), and `None`
/// when empty.
fn value_of<'r>(row: &'r dyn super::SourceRow, column: &str) -> Option<&'r str> {
    row.get(column).map(super::trim).filter(|v| !v.is_empty())
}

/// Whether a key finds its records through an index on a value of the row: a record matching
/// a case with such a key has that value.
fn is_lookup(key: &MatchKey) -> bool {
    matches!(key, MatchKey::Equals { .. } | MatchKey::Via { .. })
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
        self.asked.set(self.asked.get() + 1);
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
        let mut lookups: Vec<&MatchKey> = Vec::new();
        for key in ident.rules.iter().flat_map(|r| &r.keys) {
            if is_lookup(key) && !lookups.contains(&key) {
                lookups.push(key);
            }
        }
        // Each lookup is indexed, so SQLite answers the OR with one probe per lookup.
        let precheck = (!lookups.is_empty()).then(|| {
            let any: Vec<String> = lookups.iter().map(|k| key_sql(k)).collect();
            slots.sql(format!(
                "SELECT 1 FROM {} WHERE ({}) AND {filter} LIMIT 1",
                quote(&target.physical),
                any.join(" OR ")
            ))
        });
        Self {
            has_lookup: (ident.rules.iter())
                .map(|r| r.keys.iter().any(is_lookup))
                .collect(),
            ident,
            sql,
            class_params,
            lookups,
            precheck,
            asked: Cell::new(0),
        }
    }

    /// Queries run so far by this matrix (pre-checks included).
    #[cfg(test)]
    pub fn asked(&self) -> u64 {
        self.asked.get()
    }

    /// Whether any record has one of the row's lookup values. A lookup whose value is empty
    /// is bound to NULL, which equals nothing.
    fn any_lookup_found(
        &self,
        held: &Held<'_>,
        sql: &Sql,
        row: &dyn super::SourceRow,
    ) -> Result<bool, StoreError> {
        let n = self.lookups.len();
        let mut stmt = held.get_or_init(sql, |stmt| bind_after(stmt, n, &self.class_params))?;
        for (i, key) in self.lookups.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, key.source().and_then(|c| value_of(row, c)))?;
        }
        self.asked.set(self.asked.get() + 1);
        Ok(stmt.raw_query().next()?.is_some())
    }

    /// Runs the cases in order until one decides.
    pub fn decide(
        &self,
        held: &Held<'_>,
        row: &dyn super::SourceRow,
    ) -> Result<Decision, StoreError> {
        let value = |c: &str| value_of(row, c);
        let mut keys: Vec<&str> = Vec::new();
        // Asked at the first case that needs a query, then known for the row.
        let mut any_found: Option<bool> = None;
        for (i, (rule, sql)) in self.ident.rules.iter().zip(&self.sql).enumerate() {
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
            let ids = if rule.keys.is_empty() || !self.may_match(i, held, row, &mut any_found)? {
                Vec::new()
            } else {
                self.matching(held, sql, &keys)?
            };
            if let Some(decision) = self.decided(rule, ids)? {
                return Ok(decision);
            }
        }
        let note = format!("{}: no case matched a record", self.ident.name);
        Ok(match self.ident.no_match {
            MatchOutcome::Skip => Decision::Skip { note },
            _ => Decision::Create { note },
        })
    }

    /// Whether rule `i` may match a record: false when it has a lookup key and the row's
    /// pre-check (asked once, into `any_found`) found no record with any lookup value.
    fn may_match(
        &self,
        i: usize,
        held: &Held<'_>,
        row: &dyn super::SourceRow,
        any_found: &mut Option<bool>,
    ) -> Result<bool, StoreError> {
        let (true, Some(precheck)) = (self.has_lookup[i], &self.precheck) else {
            return Ok(true);
        };
        if any_found.is_none() {
            *any_found = Some(self.any_lookup_found(held, precheck, row)?);
        }
        Ok(*any_found == Some(true))
    }

    /// What a case decides for the sys_ids it matched, or `None` to try the next case.
    fn decided(&self, rule: &IdentRule, ids: Vec<String>) -> Result<Option<Decision>, StoreError> {
        let (outcome, found) = match ids.len() {
            0 => (rule.none, "matched no record"),
            1 => (rule.one, "matched one record"),
            _ => (rule.many, "matched several records"),
        };
        if outcome == MatchOutcome::Next {
            return Ok(None);
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
        Ok(Some(match outcome {
            MatchOutcome::Update => {
                let sys_id = ids.into_iter().next().ok_or_else(|| {
                    StoreError::Invalid(format!("{note}: `update` needs a matched record"))
                })?;
                Decision::Update { sys_id, note }
            }
            MatchOutcome::Skip => Decision::Skip { note },
            MatchOutcome::Create | MatchOutcome::Next => Decision::Create { note },
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::super::held::Slots;
    use super::*;
    use crate::catalog::load_embedded;
    use crate::store::{self, Fields, Store};

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn inventory_row(id: &str, name: &str, serial: &str) -> HashMap<String, String> {
        [
            ("u_computerid", id),
            ("u_computername", name),
            ("u_serialno", serial),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The pre-check answers for a row no record could match; a row with a known value still
    /// runs its cases, and a record of another class sharing the table is never a candidate.
    #[test]
    fn a_row_no_record_could_match_costs_one_query_and_a_known_one_runs_its_cases() {
        let catalog = Arc::new(load_embedded().expect("catalog"));
        let store = Store::open(":memory:", catalog.clone()).expect("store");
        let conn = store.lock();
        let table = |name| catalog.table(name).expect("table");
        let (computers, vms) = (table("cmdb_ci_computer"), table("cmdb_ci_vm_instance"));
        assert_eq!(computers.physical, vms.physical, "one physical table");
        let ident = (catalog.maps.iter())
            .find(|m| m.name == "FNMS Inventory -> Computer")
            .and_then(|m| m.identification.as_ref())
            .expect("the computer matrix");
        let known = [
            ("name", "NYC-1"),
            ("serial_number", "SN-1"),
            ("x_fls_flexera_fnms_flexera_unique_id", "1"),
        ];
        let id = store::insert(&conn, computers, &fields(&known), "admin").expect("computer");
        let vm = [
            ("name", "VM-9"),
            ("x_fls_flexera_fnms_flexera_unique_id", "9"),
        ];
        store::insert(&conn, vms, &fields(&vm), "admin").expect("vm");
        let mut slots = Slots::default();
        let prepared = PreparedIdent::new(ident, computers, &mut slots);
        let held = Held::new(&conn, &slots);
        let decide = |row: &HashMap<String, String>| {
            let before = prepared.asked();
            let decision = prepared.decide(&held, row).expect("decide");
            (decision, prepared.asked() - before)
        };

        let (new, asked) = decide(&inventory_row("2", "NEW-2", "SN-2"));
        assert!(
            matches!(&new, Decision::Create { note } if note.contains("case 14")),
            "{new:?}"
        );
        assert_eq!(asked, 1, "only the pre-check");
        let (vm_only, asked) = decide(&inventory_row("9", "VM-9", "SN-9"));
        assert!(matches!(vm_only, Decision::Create { .. }), "{vm_only:?}");
        assert_eq!(asked, 1, "a virtual machine is not a computer");

        let (update, asked) = decide(&inventory_row("1", "NYC-1", "sn-1"));
        match update {
            Decision::Update { sys_id, note } => {
                assert_eq!(sys_id, id);
                assert!(note.contains("case 01"), "{note}");
            }
            other => panic!("expected an update: {other:?}"),
        }
        assert_eq!(asked, 2, "the pre-check, then case 01");
        let (renamed, asked) = decide(&inventory_row("3", "OTHER", "SN-1"));
        assert!(
            matches!(&renamed, Decision::Skip { note } if note.contains("case 04")),
            "{renamed:?}"
        );
        assert!(asked > 2, "cases 01 to 04 ran: {asked}");
    }
}
