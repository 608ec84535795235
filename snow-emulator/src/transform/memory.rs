//! What an engine learned, kept for the next Import Transaction of the same maps.
//!
//! Each segment of installations names many of the same applications as the last, and
//! looking them up again costs as many statements as the segment's own rows. An engine hands
//! back its reference and found-record caches with the write [`generation`] of every table
//! they read; the next engine takes them only if it runs the same maps and none of those
//! tables has been written since (by the Table API, the UI, a reset or anything else).
//! A transaction that fails hands back nothing: its rows were rolled back.

use std::collections::HashMap;

use super::found::FoundCache;
use crate::store::generation;

/// Resolved references: [`reference_key`] → sys_id.
pub type References = HashMap<String, String>;

/// The key of a resolved reference: table, field and value folded like NOCASE, written into
/// `key` (a buffer reused from row to row: only a key that is kept is allocated).
pub fn reference_key(key: &mut String, table: &str, field: &str, value: &str) {
    key.clear();
    key.push_str(table);
    key.push('\u{1f}');
    key.push_str(field);
    key.push('\u{1f}');
    key.extend(value.chars().map(|c| c.to_ascii_lowercase()));
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
            references: References::new(),
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
