//! Write generations: a counter per physical table, moved on by every write, so a cache of
//! what a table held can tell, later, whether it still does.
//!
//! The counters are process-wide and keyed by table name, not by database: two instances in
//! one process (tests) only make each other's caches miss more often, which is safe; what
//! must never happen — a write that moves no counter — cannot, as long as every write goes
//! through `store` or calls [`wrote`] itself (the transform engine and the worker's claim do).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

static GENERATIONS: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(Mutex::default);

/// Records a write to `physical`.
pub fn wrote(physical: &str) {
    let mut generations = GENERATIONS.lock().unwrap_or_else(PoisonError::into_inner);
    match generations.get_mut(physical) {
        Some(n) => *n += 1,
        None => {
            generations.insert(physical.to_owned(), 1);
        }
    }
}

/// The number of writes to `physical` so far.
pub fn generation(physical: &str) -> u64 {
    GENERATIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(physical)
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_write_moves_only_its_tables_counter() {
        let (a, b) = ("generation_test_a", "generation_test_b");
        let before = (super::generation(a), super::generation(b));
        super::wrote(a);
        assert_eq!(super::generation(a), before.0 + 1);
        assert_eq!(super::generation(b), before.1);
    }
}
