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
//! the record either, so it is "ignored" without converting or comparing a field. The maps
//! that key a record the same way (both model maps key the application) share one entry.
//!
//! Except by prefix: a map coalescing on several fields (an installation: the computer, then
//! the discovery model) first asks whether any record has the key's first value, once, and
//! remembers when none has. A computer's twenty installations then cost one lookup instead of
//! twenty. The keys the map itself inserts under the last such prefix are remembered beside
//! it, so a second row with the same key still finds the record the first one made; once the
//! map moves on to another prefix, the one it inserted under is no longer "absent" (its rows
//! are looked up again). They are remembered by their 64-bit hash, not their text (an
//! installation's key is two sys_ids long): two keys sharing a hash only cost the second one
//! a lookup that finds nothing, never a wrong answer.

use std::cell::{Cell, RefCell};
// foldhash, not std's SipHash: the keys are the engine's own, hashed several times a row.
use foldhash::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use rusqlite::types::Value;
use smallvec::SmallVec;

/// Bound on remembered records per map (cleared when full).
const PER_MAP: usize = 50_000;

/// Bound on the keys remembered as inserted under one absent first value: past it, the
/// value is no longer known absent (a computer has tens of installations, not thousands).
const PER_PREFIX: usize = 256;

/// One remembered record: its sys_id and the current values of the map's columns. Shared,
/// so a hit costs no copy (most hits only compare).
pub type Record = Arc<(String, Vec<Value>)>;

/// The rows that left remembered records unchanged under one key, for every map that
/// remembers one: the key, then each slot's source values and the record's sys_id, in one
/// allocation. The model maps key an installation's application the same way and ask for it
/// one after the other, for applications met in no particular order: kept in one entry, the
/// second map finds in the cache what the first one waited for (docs/performance.md).
struct Unchanged {
    /// `key`, then each slot's `raw` and sys_id where the slot says.
    text: Box<str>,
    key_len: usize,
    slots: SmallVec<[Slot; 2]>,
}

/// Where one map's row lies in [`Unchanged::text`], and which of the map's generations
/// ([`FoundCache::forget_unchanged`]) remembered it.
#[derive(Clone, Copy)]
struct Slot {
    map: usize,
    generation: u64,
    raw: (usize, usize),
    sys_id: (usize, usize),
}

impl Unchanged {
    fn key(&self) -> &str {
        self.text.get(..self.key_len).unwrap_or_default()
    }

    fn part(&self, (start, len): (usize, usize)) -> &str {
        self.text.get(start..start + len).unwrap_or_default()
    }

    /// The sys_id, if map `map` (now at `generation`) remembered the row `raw` under `key`.
    fn sys_id_if(&self, map: usize, generation: u64, key: &str, raw: &str) -> Option<&str> {
        if self.key() != key {
            return None;
        }
        let slot = self.slots.iter().find(|s| s.map == map)?;
        (slot.generation == generation && self.part(slot.raw) == raw)
            .then(|| self.part(slot.sys_id))
    }

    /// This entry with map `map`'s row replaced by `(raw, sys_id)` (or dropped for `None`),
    /// keeping the other maps' current slots; `None` when no slot is left.
    fn with(
        old: Option<&Self>,
        key: &str,
        map: usize,
        row: Option<(u64, &str, &str)>,
        current: impl Fn(&Slot) -> bool,
    ) -> Option<Self> {
        let kept = old
            .filter(|o| o.key() == key)
            .into_iter()
            .flat_map(|o| o.slots.iter().map(move |s| (o, s)))
            .filter(|(_, s)| s.map != map && current(s));
        let mut text = String::from(key);
        let mut slots = SmallVec::new();
        let mut push = |map, generation, raw: &str, sys_id: &str, text: &mut String| {
            let raw_at = (text.len(), raw.len());
            text.push_str(raw);
            let sys_id_at = (text.len(), sys_id.len());
            text.push_str(sys_id);
            slots.push(Slot {
                map,
                generation,
                raw: raw_at,
                sys_id: sys_id_at,
            });
        };
        for (o, s) in kept {
            push(
                s.map,
                s.generation,
                o.part(s.raw),
                o.part(s.sys_id),
                &mut text,
            );
        }
        if let Some((generation, raw, sys_id)) = row {
            push(map, generation, raw, sys_id, &mut text);
        }
        (!slots.is_empty()).then(|| Self {
            text: text.into(),
            key_len: key.len(),
            slots,
        })
    }
}

/// The last first value a map asked about ([`FoundCache::prefix_absent`]), its answer, and
/// the hashes of the keys the map inserted under it since.
struct LastPrefix {
    prefix: String,
    absent: bool,
    inserted: Vec<u64>,
}

impl LastPrefix {
    fn new(prefix: &str, absent: bool) -> Self {
        Self {
            prefix: prefix.to_owned(),
            absent,
            inserted: Vec::new(),
        }
    }
}

pub struct FoundCache {
    maps: Vec<RefCell<HashMap<String, Record>>>,
    /// The rows that left a remembered record unchanged since it was last written, for all
    /// maps, by their key's hash ([`key_hash`]; another key with the same hash is told apart
    /// by the key the entry holds, and replaces it).
    unchanged: RefCell<HashMap<u64, Unchanged>>,
    /// For each map, how often its unchanged rows were all forgotten: a slot counts only
    /// while it carries its map's current generation.
    generations: Vec<Cell<u64>>,
    /// For each map, first coalesce values (folded like keys) it asked about: `true` when no
    /// record had it (and the map has inserted none under it since it last asked).
    absent: Vec<RefCell<HashMap<String, bool>>>,
    /// For each map, the last first value looked up in `absent`, with the keys inserted
    /// under it since.
    last_prefix: Vec<RefCell<Option<LastPrefix>>>,
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
            unchanged: RefCell::default(),
            generations: physical.iter().map(|_| Cell::default()).collect(),
            absent: physical.iter().map(|_| RefCell::default()).collect(),
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
        let unchanged = self.unchanged.borrow();
        let entry = unchanged.get(&key_hash(key))?;
        let generation = self.generations[map].get();
        entry
            .sys_id_if(map, generation, key, raw)
            .map(str::to_owned)
    }

    /// A row with the source values `raw` left the record under `key` unchanged.
    pub fn note_unchanged(&self, map: usize, key: &str, raw: &str) {
        let Some(record) = self.maps[map].borrow().get(key).cloned() else {
            return;
        };
        let mut unchanged = self.unchanged.borrow_mut();
        if unchanged.len() >= PER_MAP * self.maps.len() {
            unchanged.clear();
        }
        let row = (self.generations[map].get(), raw, record.0.as_str());
        self.replace_unchanged(&mut unchanged, map, key, Some(row));
    }

    /// Puts map `map`'s row under `key` (or none) in the entry of `key`.
    fn replace_unchanged(
        &self,
        unchanged: &mut HashMap<u64, Unchanged>,
        map: usize,
        key: &str,
        row: Option<(u64, &str, &str)>,
    ) {
        let hash = key_hash(key);
        let current = |s: &Slot| self.generations[s.map].get() == s.generation;
        match Unchanged::with(unchanged.get(&hash), key, map, row, current) {
            Some(entry) => unchanged.insert(hash, entry),
            None => unchanged.remove(&hash),
        };
    }

    /// Forgets every row that left one of map `map`'s records unchanged.
    fn forget_unchanged(&self, map: usize) {
        let generation = &self.generations[map];
        generation.set(generation.get().wrapping_add(1));
    }

    /// Remembers (or refreshes) what map `map` found or wrote under `key`.
    pub fn put(&self, map: usize, key: String, record: Record) {
        let mut found = self.maps[map].borrow_mut();
        if found.len() >= PER_MAP {
            found.clear();
            self.forget_unchanged(map);
        }
        // Written or found again: what left it unchanged before tells nothing now.
        let mut unchanged = self.unchanged.borrow_mut();
        if unchanged.contains_key(&key_hash(&key)) {
            self.replace_unchanged(&mut unchanged, map, &key, None);
        }
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
        if let Some(l) = last.as_ref()
            && l.prefix == prefix
        {
            return Some(l.absent);
        }
        let absent = *self.absent[map].borrow().get(prefix)?;
        self.retire(map, last.replace(LastPrefix::new(prefix, absent)));
        Some(absent)
    }

    /// Whether map `map` may have inserted a record under `key` since it learned that the
    /// key's first value was absent: true also for another key with the same hash, or a key
    /// outside the last first value asked, which then cost a lookup, nothing more.
    pub fn inserted(&self, map: usize, key: &str) -> bool {
        match self.last_prefix[map].borrow().as_ref() {
            Some(l) if key.starts_with(&l.prefix) => l.inserted.contains(&key_hash(key)),
            _ => true,
        }
    }

    /// Remembers whether a record of map `map`'s table has the first value `prefix`.
    pub fn put_prefix(&self, map: usize, prefix: &str, absent: bool) {
        let mut known = self.absent[map].borrow_mut();
        let mut last = self.last_prefix[map].borrow_mut();
        if known.len() >= PER_MAP {
            known.clear();
            last.take();
        }
        known.insert(prefix.to_owned(), absent);
        drop(known);
        self.retire(map, last.replace(LastPrefix::new(prefix, absent)));
    }

    /// Map `map` inserted a record under `key`: it is no longer absent. Kept beside the
    /// last first value, which the row inserted under (a computer's next installation asks
    /// about it again); once the map moves on, that value is no longer known absent.
    pub fn put_inserted(&self, map: usize, key: &str) {
        if self.absent[map].borrow().is_empty() {
            return;
        }
        let mut last = self.last_prefix[map].borrow_mut();
        match last.as_mut() {
            // A value with records already: its rows are looked up anyway.
            Some(l) if key.starts_with(&l.prefix) && !l.absent => {}
            Some(l) if key.starts_with(&l.prefix) => {
                if l.inserted.len() < PER_PREFIX {
                    l.inserted.push(key_hash(key));
                } else {
                    l.absent = false;
                    l.inserted.clear();
                    (self.absent[map].borrow_mut()).insert(l.prefix.clone(), false);
                }
            }
            // Under a value not asked last: what was known absent may be wrong now.
            _ => {
                self.absent[map].borrow_mut().clear();
                last.take();
            }
        }
    }

    /// The last first value of map `map` gives way: if the map inserted under it, it is no
    /// longer absent.
    fn retire(&self, map: usize, old: Option<LastPrefix>) {
        if let Some(old) = old.filter(|o| !o.inserted.is_empty()) {
            self.absent[map].borrow_mut().insert(old.prefix, false);
        }
    }

    /// Map `map` wrote its table: the other maps writing that table forget what they found
    /// and what they knew absent.
    pub fn wrote(&self, map: usize) {
        for &j in &self.sharing[map] {
            self.maps[j].borrow_mut().clear();
            self.forget_unchanged(j);
            self.absent[j].borrow_mut().clear();
            self.last_prefix[j].borrow_mut().take();
        }
    }
}

/// A key's hash: the same in every engine of the process.
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
        let row = Unchanged::with(None, "ab", 0, Some((0, "c\u{1f}", "id")), |_| true);
        let row = row.expect("one slot");
        assert_eq!(row.sys_id_if(0, 0, "ab", "c\u{1f}"), Some("id"));
        assert_eq!(
            row.sys_id_if(0, 0, "a", "bc\u{1f}"),
            None,
            "where the key ends counts"
        );
        assert_eq!(row.sys_id_if(0, 0, "ab", "c"), None);
        assert_eq!(row.sys_id_if(1, 0, "ab", "c\u{1f}"), None, "another map");
        assert_eq!(
            row.sys_id_if(0, 1, "ab", "c\u{1f}"),
            None,
            "forgotten since"
        );
        let cache = FoundCache::new(&["cmdb_model"]);
        cache.put(0, "k".into(), Arc::new(("id".to_owned(), vec![])));
        cache.note_unchanged(0, "k", "v");
        assert_eq!(cache.unchanged(0, "k", "v").as_deref(), Some("id"));
        assert_eq!(cache.unchanged(0, "kk", "v"), None, "another key");
    }

    #[test]
    fn maps_asking_under_the_same_key_share_an_entry_but_not_their_answers() {
        let cache = FoundCache::new(&["cmdb_model", "cmdb_sam_sw_discovery_model"]);
        cache.put(0, "k".into(), Arc::new(("model".to_owned(), vec![])));
        cache.put(1, "k".into(), Arc::new(("discovery".to_owned(), vec![])));
        cache.note_unchanged(0, "k", "a");
        cache.note_unchanged(1, "k", "b");
        assert_eq!(cache.unchanged.borrow().len(), 1, "one entry for the key");
        assert_eq!(cache.unchanged(0, "k", "a").as_deref(), Some("model"));
        assert_eq!(cache.unchanged(1, "k", "b").as_deref(), Some("discovery"));
        assert_eq!(cache.unchanged(0, "k", "b"), None, "the other map's values");
        cache.note_unchanged(0, "k", "a2");
        assert_eq!(cache.unchanged(0, "k", "a"), None, "replaced");
        assert_eq!(cache.unchanged(0, "k", "a2").as_deref(), Some("model"));
        assert_eq!(cache.unchanged(1, "k", "b").as_deref(), Some("discovery"));
        cache.put(1, "k".into(), Arc::new(("discovery".to_owned(), vec![])));
        assert_eq!(cache.unchanged(1, "k", "b"), None, "found again: forgotten");
        assert_eq!(cache.unchanged(0, "k", "a2").as_deref(), Some("model"));
        cache.forget_unchanged(0);
        assert_eq!(
            cache.unchanged(0, "k", "a2"),
            None,
            "all of map 0 forgotten"
        );
        cache.note_unchanged(1, "k", "b");
        assert_eq!(cache.unchanged(1, "k", "b").as_deref(), Some("discovery"));
        let entries = cache.unchanged.borrow();
        let entry = entries.values().next().expect("the entry");
        assert_eq!(
            entry.slots.len(),
            1,
            "map 0's stale row dropped when rebuilt"
        );
    }

    #[test]
    fn a_first_value_inserted_under_is_no_longer_absent_once_the_map_moves_on() {
        let cache = FoundCache::new(&["cmdb_sam_sw_install"]);
        cache.put_prefix(0, "p", true);
        cache.put_inserted(0, "p/a");
        assert!(cache.known_absent(0, "p", "p/b"), "still the last value");
        cache.put_prefix(0, "q", true);
        assert_eq!(cache.prefix_absent(0, "p"), Some(false), "moved on");
        assert!(!cache.known_absent(0, "p", "p/b"));
        assert!(
            cache.known_absent(0, "q", "q/a"),
            "nothing inserted under q"
        );
        assert_eq!(cache.prefix_absent(0, "q"), Some(true));
        cache.put_inserted(0, "z/a");
        assert_eq!(
            cache.prefix_absent(0, "q"),
            None,
            "an insert elsewhere: forgotten"
        );
        cache.put_prefix(0, "r", true);
        for i in 0..=PER_PREFIX {
            cache.put_inserted(0, &format!("r/{i}"));
        }
        assert_eq!(
            cache.prefix_absent(0, "r"),
            Some(false),
            "too many: present"
        );
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
