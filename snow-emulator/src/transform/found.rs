//! Records found by coalesce keys, remembered for the rest of one Import Transaction.
//!
//! A segment of installations names the same few applications again and again, so the model
//! maps would look each one up hundreds of times. Only this engine writes while a transaction
//! is processed (the worker holds the store lock throughout), so a remembered record stays
//! true as long as the engine keeps it current: a map's own updates refresh its entries, and
//! any write by another map to the same physical table forgets that map's entries. Misses are
//! not remembered (the map may insert the record next).
//!
//! A remembered record also remembers the row that last left it unchanged: its source
//! values, as read (see `Engine::unchanged_by_memo`). The model maps see the same
//! application on most installations, and a row with the same source values cannot change
//! the record either, so it is "ignored" without converting or comparing a field.
//!
//! Except by prefix: a map coalescing on several fields (an installation: the computer, then
//! the discovery model) first asks whether any record has the key's first value, once, and
//! remembers when none has. A computer's twenty installations then cost one lookup instead of
//! twenty. The keys the map itself inserts under such a prefix are remembered too, so a second
//! row with the same key still finds the record the first one made. They are remembered by
//! their 64-bit hash, not their text (an installation's key is two sys_ids long, and a full
//! export inserts two million): two keys sharing a hash only cost the second one a lookup
//! that finds nothing, never a wrong answer.

use std::cell::RefCell;
// foldhash, not std's SipHash: the keys are the engine's own, hashed several times a row.
use foldhash::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use rusqlite::types::Value;

/// Bound on remembered records per map (cleared when full).
const PER_MAP: usize = 50_000;

/// One remembered record: its sys_id and the current values of the map's columns. Shared,
/// so a hit costs no copy (most hits only compare).
pub type Record = Arc<(String, Vec<Value>)>;

/// A row that left a remembered record unchanged: its key, its source values and the
/// record's sys_id, in one allocation. The model maps ask for one on every installation, for
/// applications met in no particular order; held apart, the key, the values and the record
/// each cost a wait for memory (docs/performance.md).
struct Unchanged {
    /// `key`, then `raw`, then the sys_id.
    text: Box<str>,
    key_len: usize,
    raw_len: usize,
}

impl Unchanged {
    fn new(key: &str, raw: &str, sys_id: &str) -> Self {
        Self {
            text: [key, raw, sys_id].concat().into(),
            key_len: key.len(),
            raw_len: raw.len(),
        }
    }

    /// The sys_id, if this is the row `raw` under `key`.
    fn sys_id_if(&self, key: &str, raw: &str) -> Option<&str> {
        let (k, rest) = self.text.split_at_checked(self.key_len)?;
        let (r, id) = rest.split_at_checked(self.raw_len)?;
        (k == key && r == raw).then_some(id)
    }
}

pub struct FoundCache {
    maps: Vec<RefCell<HashMap<String, Record>>>,
    /// For each map, the rows that left a remembered record unchanged since it was last
    /// written, by their key's hash ([`key_hash`]; another key with the same hash is told
    /// apart by the key the entry holds).
    unchanged: Vec<RefCell<HashMap<u64, Unchanged>>>,
    /// For each map, first coalesce values (folded like keys) it asked about: `true` when no
    /// record had it.
    absent: Vec<RefCell<HashMap<String, bool>>>,
    /// For each map, the hashes of the keys it inserted since (those records exist after
    /// all).
    inserted: Vec<RefCell<HashSet<u64>>>,
    /// For each map, the last first value looked up in `absent`, and the answer.
    last_prefix: Vec<RefCell<Option<(String, bool)>>>,
    /// For each map, the other maps writing the same physical table.
    sharing: Vec<Vec<usize>>,
}

impl FoundCache {
    /// `physical[i]` is map `i`'s physical target table.
    pub fn new(physical: &[&str]) -> Self {
        let sharing = physical
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (0..physical.len())
                    .filter(|&j| j != i && physical[j] == *p)
                    .collect()
            })
            .collect();
        Self {
            maps: physical.iter().map(|_| RefCell::default()).collect(),
            unchanged: physical.iter().map(|_| RefCell::default()).collect(),
            absent: physical.iter().map(|_| RefCell::default()).collect(),
            inserted: physical.iter().map(|_| RefCell::default()).collect(),
            last_prefix: physical.iter().map(|_| RefCell::default()).collect(),
            sharing,
        }
    }

    pub fn get(&self, map: usize, key: &str) -> Option<Record> {
        self.maps[map].borrow().get(key).cloned()
    }

    /// The sys_id of the record map `map` remembers under `key`, if a row with the source
    /// values `raw` left it unchanged since it was last written.
    pub fn unchanged(&self, map: usize, key: &str, raw: &str) -> Option<String> {
        let unchanged = self.unchanged[map].borrow();
        let entry = unchanged.get(&key_hash(key))?;
        entry.sys_id_if(key, raw).map(str::to_owned)
    }

    /// A row with the source values `raw` left the record under `key` unchanged.
    pub fn note_unchanged(&self, map: usize, key: &str, raw: &str) {
        if let Some(record) = self.maps[map].borrow().get(key) {
            let mut unchanged = self.unchanged[map].borrow_mut();
            if unchanged.len() >= PER_MAP {
                unchanged.clear();
            }
            unchanged.insert(key_hash(key), Unchanged::new(key, raw, &record.0));
        }
    }

    /// Remembers (or refreshes) what map `map` found or wrote under `key`.
    pub fn put(&self, map: usize, key: String, record: Record) {
        let mut found = self.maps[map].borrow_mut();
        if found.len() >= PER_MAP {
            found.clear();
            self.unchanged[map].borrow_mut().clear();
        }
        // Written or found again: what left it unchanged before tells nothing now.
        self.unchanged[map].borrow_mut().remove(&key_hash(&key));
        found.insert(key, record);
    }

    /// Whether map `map` knows that no record has `key`: none had its first value `prefix`,
    /// and the map has not inserted `key` since.
    #[cfg(test)]
    pub fn known_absent(&self, map: usize, prefix: &str, key: &str) -> bool {
        self.prefix_absent(map, prefix) == Some(true) && !self.inserted(map, key)
    }

    /// What map `map` learned of the first value `prefix`: `Some(true)` when no record had
    /// it, `None` when it never asked. The last answer is kept beside the table: the rows of
    /// one computer ask about the same value one after the other.
    pub fn prefix_absent(&self, map: usize, prefix: &str) -> Option<bool> {
        let mut last = self.last_prefix[map].borrow_mut();
        if let Some((p, absent)) = last.as_ref()
            && p == prefix
        {
            return Some(*absent);
        }
        let absent = *self.absent[map].borrow().get(prefix)?;
        *last = Some((prefix.to_owned(), absent));
        Some(absent)
    }

    /// Whether map `map` may have inserted a record under `key` since it last asked: true
    /// also for another key with the same hash, which then costs a lookup, nothing more.
    pub fn inserted(&self, map: usize, key: &str) -> bool {
        self.inserted[map].borrow().contains(&key_hash(key))
    }

    /// Remembers whether a record of map `map`'s table has the first value `prefix`.
    pub fn put_prefix(&self, map: usize, prefix: &str, absent: bool) {
        let mut known = self.absent[map].borrow_mut();
        if known.len() >= PER_MAP {
            known.clear();
            self.inserted[map].borrow_mut().clear();
        }
        known.insert(prefix.to_owned(), absent);
        *self.last_prefix[map].borrow_mut() = Some((prefix.to_owned(), absent));
    }

    /// Map `map` inserted a record under `key`: it is no longer absent.
    pub fn put_inserted(&self, map: usize, key: &str) {
        if self.absent[map].borrow().is_empty() {
            return;
        }
        let mut inserted = self.inserted[map].borrow_mut();
        if inserted.len() >= PER_MAP {
            inserted.clear();
            self.absent[map].borrow_mut().clear();
            self.last_prefix[map].borrow_mut().take();
        }
        inserted.insert(key_hash(key));
    }

    /// Map `map` wrote its table: the other maps writing that table forget what they found
    /// and what they knew absent.
    pub fn wrote(&self, map: usize) {
        for &j in &self.sharing[map] {
            self.maps[j].borrow_mut().clear();
            self.unchanged[j].borrow_mut().clear();
            self.absent[j].borrow_mut().clear();
            self.inserted[j].borrow_mut().clear();
            self.last_prefix[j].borrow_mut().take();
        }
    }
}

/// A key's hash for [`FoundCache::inserted`]: the same in every engine of the process.
fn key_hash(key: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0).hash_one(key)
}

/// Adds one value to the cache key of a coalesce lookup: the value with its type, text
/// folded as the column compares it (SQLite's NOCASE folds ASCII letters only).
pub fn push_key(key: &mut String, v: &Value, case_sensitive: bool) {
    use std::fmt::Write as _;
    match v {
        Value::Text(s) if case_sensitive => {
            key.push('t');
            key.push_str(s);
        }
        Value::Text(s) => {
            key.push('t');
            let start = key.len();
            key.push_str(s);
            key[start..].make_ascii_lowercase();
        }
        // Writing to a String cannot fail.
        Value::Integer(i) => drop(write!(key, "i{i}")),
        Value::Real(f) => drop(write!(key, "r{f}")),
        Value::Null => key.push('n'),
        Value::Blob(b) => drop(write!(key, "b{b:?}")),
    }
    key.push('\u{1f}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(values: &[(Value, bool)]) -> String {
        let mut key = String::new();
        for (v, cs) in values {
            push_key(&mut key, v, *cs);
        }
        key
    }

    #[test]
    fn keys_fold_case_unless_case_sensitive_and_keep_types_apart() {
        let text = |s: &str, cs| (Value::Text(s.into()), cs);
        assert_eq!(key(&[text("ABC", false)]), key(&[text("abc", false)]));
        assert_ne!(key(&[text("ABC", true)]), key(&[text("abc", true)]));
        assert_ne!(key(&[text("1", false)]), key(&[(Value::Integer(1), false)]));
        assert_ne!(
            key(&[text("a", false), text("bc", false)]),
            key(&[text("ab", false), text("c", false)])
        );
    }

    #[test]
    fn an_unchanged_row_is_remembered_until_the_record_is_written_again() {
        let cache = FoundCache::new(&["cmdb_model", "cmdb_model"]);
        let record = || Arc::new(("id".to_owned(), vec![]));
        cache.note_unchanged(0, "k", "a\u{1f}b");
        assert_eq!(
            cache.unchanged(0, "k", "a\u{1f}b"),
            None,
            "nothing remembered yet"
        );
        cache.put(0, "k".into(), record());
        cache.note_unchanged(0, "k", "a\u{1f}b");
        assert_eq!(cache.unchanged(0, "k", "a\u{1f}b").as_deref(), Some("id"));
        assert_eq!(cache.unchanged(0, "k", "a\u{1f}c"), None, "other values");
        cache.put(0, "k".into(), record());
        assert_eq!(
            cache.unchanged(0, "k", "a\u{1f}b"),
            None,
            "refreshed: forgotten"
        );
        cache.note_unchanged(0, "k", "a\u{1f}b");
        cache.wrote(1);
        assert_eq!(
            cache.unchanged(0, "k", "a\u{1f}b"),
            None,
            "the table was written"
        );
    }

    #[test]
    fn an_unchanged_row_answers_only_for_its_own_key_and_values() {
        let row = Unchanged::new("ab", "c\u{1f}", "id");
        assert_eq!(row.sys_id_if("ab", "c\u{1f}"), Some("id"));
        assert_eq!(
            row.sys_id_if("a", "bc\u{1f}"),
            None,
            "where the key ends counts"
        );
        assert_eq!(row.sys_id_if("ab", "c"), None);
        let cache = FoundCache::new(&["cmdb_model"]);
        cache.put(0, "k".into(), Arc::new(("id".to_owned(), vec![])));
        cache.note_unchanged(0, "k", "v");
        assert_eq!(cache.unchanged(0, "k", "v").as_deref(), Some("id"));
        assert_eq!(cache.unchanged(0, "kk", "v"), None, "another key");
    }

    #[test]
    fn a_write_forgets_only_the_other_maps_on_the_same_table() {
        let cache = FoundCache::new(&["cmdb_ci", "cmdb_ci", "cmdb_model"]);
        for m in 0..3 {
            cache.put(m, "k".into(), Arc::new(("id".into(), vec![])));
        }
        cache.wrote(0);
        assert!(cache.get(0, "k").is_some(), "the writer keeps its own");
        assert!(cache.get(1, "k").is_none(), "same table: forgotten");
        assert!(cache.get(2, "k").is_some(), "another table: kept");
    }

    #[test]
    fn an_absent_prefix_answers_for_every_key_but_those_inserted_since() {
        let cache = FoundCache::new(&["cmdb_sam_sw_install", "cmdb_sam_sw_install"]);
        assert!(!cache.known_absent(0, "p", "p/a"), "nothing known yet");
        cache.put_prefix(0, "r", false);
        assert!(
            cache.prefix_absent(0, "r") == Some(false) && !cache.known_absent(0, "r", "r/a"),
            "present"
        );
        assert_eq!(cache.prefix_absent(0, "s"), None, "never asked");
        cache.put_prefix(0, "p", true);
        assert!(cache.known_absent(0, "p", "p/a"));
        assert!(!cache.known_absent(0, "q", "q/a"), "another prefix");
        cache.put_inserted(0, "p/a");
        assert!(
            !cache.known_absent(0, "p", "p/a"),
            "inserted since: look it up"
        );
        assert!(cache.known_absent(0, "p", "p/b"));
        cache.put_prefix(1, "p", true);
        cache.wrote(0);
        assert!(
            cache.known_absent(0, "p", "p/b"),
            "the writer keeps its own"
        );
        assert!(!cache.known_absent(1, "p", "p/b"), "same table: forgotten");
    }
}
