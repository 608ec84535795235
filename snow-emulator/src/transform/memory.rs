//! What an engine learned, kept for the next Import Transaction of the same maps.
//!
//! Each segment of installations names many of the same applications as the last, and
//! looking them up again costs as many statements as the segment's own rows. An engine hands
//! back its reference and found-record caches with the write [`generation`] of every table
//! they read; the next engine takes them only if it runs the same maps and none of those
//! tables has been written since (by the Table API, the UI, a reset or anything else).
//! A transaction that fails hands back nothing: its rows were rolled back.

use super::found::FoundCache;
use crate::store::generation;

/// Bound on the resolved references kept per referenced field (distinct model numbers,
/// publishers, computers…).
const PER_FIELD: usize = 50_000;

/// Resolved references, one map per referenced table and field (the engine numbers them,
/// [`super::Engine`]'s `reference_slot`): the value folded like NOCASE → sys_id. Only hits
/// are kept: records are not deleted while a transaction is processed, so a hit stays true,
/// while a miss may not (a map may insert the record).
///
/// Keyed by the value alone, not by table and field too: an installation resolves four
/// references, and hashing and comparing a long key of table, field and value on each cost
/// 6 % of the worker at 20 % (docs/performance.md).
#[derive(Default)]
pub struct References {
    by_field: Vec<foldhash::HashMap<Box<str>, String>>,
    /// Per field, the last value found and its sys_id (buffers reused): an installation's
    /// computer is the one of the row before.
    last: Vec<(String, String)>,
}

impl References {
    pub fn get(&mut self, slot: usize, folded: &str) -> Option<&str> {
        let last = last_of(&mut self.last, slot);
        if last.0 != folded || last.0.is_empty() {
            let found = self.by_field.get(slot)?.get(folded)?;
            set_last(last, folded, found);
        }
        Some(&last.1)
    }

    /// `sys_id` is what the field holds the value `folded` for, learned otherwise than by
    /// looking it up (the record a map of the same row found): kept as the field's last
    /// value only, which the row's own references ask next.
    pub fn note_last(&mut self, slot: usize, folded: &str, sys_id: &str) {
        set_last(last_of(&mut self.last, slot), folded, sys_id);
    }

    pub fn put(&mut self, slot: usize, folded: &str, sys_id: String) {
        if self.by_field.len() <= slot {
            self.by_field.resize_with(slot + 1, Default::default);
        }
        let known = &mut self.by_field[slot];
        if known.len() >= PER_FIELD {
            known.clear();
            // The last value stays true: hits are never taken back.
        }
        known.insert(folded.into(), sys_id);
    }
}

/// Field `slot`'s last value and sys_id (empty until it has one).
fn last_of(last: &mut Vec<(String, String)>, slot: usize) -> &mut (String, String) {
    if last.len() <= slot {
        last.resize_with(slot + 1, Default::default);
    }
    &mut last[slot]
}

/// Makes `folded` → `sys_id` a field's last value, reusing its buffers.
fn set_last((value, id): &mut (String, String), folded: &str, sys_id: &str) {
    value.clear();
    value.push_str(folded);
    id.clear();
    id.push_str(sys_id);
}

/// `value` folded like SQLite's NOCASE (ASCII letters only), written into `key`: a buffer
/// reused from row to row, so only a key that is kept is allocated.
pub fn fold(key: &mut String, value: &str) {
    key.clear();
    key.push_str(value);
    key.make_ascii_lowercase();
}

pub struct Memory {
    /// The engine's maps, in order (the found cache is indexed by position).
    pub(super) maps: Vec<String>,
    pub(super) references: References,
    pub(super) found: FoundCache,
    /// Every table the caches read, with its write generation when they were handed back.
    pub(super) snapshot: Vec<(String, u64)>,
}

impl Memory {
    /// The caches, if they are still true for an engine running `maps`.
    pub(super) fn still_true_for(self, maps: &[String]) -> Option<(References, FoundCache)> {
        let unchanged = self.snapshot.iter().all(|(t, g)| generation(t) == *g);
        (unchanged && self.maps == maps).then_some((self.references, self.found))
    }
}

/// The tables' current generations.
pub(super) fn snapshot(tables: &[String]) -> Vec<(String, u64)> {
    tables.iter().map(|t| (t.clone(), generation(t))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(table: &str) -> Memory {
        Memory {
            maps: vec!["m".into()],
            references: References::default(),
            found: FoundCache::new(&[table]),
            snapshot: snapshot(&[table.to_owned()]),
        }
    }

    #[test]
    fn memory_is_dropped_after_a_write_to_a_table_it_read_or_for_other_maps() {
        let table = "memory_test_table";
        assert!(memory(table).still_true_for(&["m".into()]).is_some());
        assert!(memory(table).still_true_for(&["other".into()]).is_none());
        let kept = memory(table);
        crate::store::wrote(table);
        assert!(kept.still_true_for(&["m".into()]).is_none());
    }
}

#[cfg(test)]
mod reference_tests {
    use super::*;

    #[test]
    fn references_are_kept_per_field_and_by_the_folded_value() {
        let mut refs = References::default();
        let mut key = String::new();
        fold(&mut key, "PC-0001");
        refs.put(1, &key, "id-1".into());
        fold(&mut key, "pc-0001");
        assert_eq!(refs.get(1, &key), Some("id-1"));
        assert_eq!(
            refs.get(1, &key),
            Some("id-1"),
            "again, from the last value"
        );
        fold(&mut key, "pc-0002");
        assert_eq!(refs.get(1, &key), None, "another value");
        refs.put(1, &key, "id-2".into());
        assert_eq!(refs.get(1, &key), Some("id-2"));
        fold(&mut key, "pc-0001");
        assert_eq!(refs.get(1, &key), Some("id-1"));
        assert_eq!(refs.get(0, &key), None, "another field");
        assert_eq!(refs.get(7, &key), None, "a field never seen");
    }
}
