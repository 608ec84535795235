//! Typed views of the app's own records: the states of Import Runs and Import Transactions,
//! and the rows the app's logic reads, so that code names fields and states, not strings.

use crate::store::{self, EncodedQuery, Fields, StoreError};

/// The state of an Import Transaction (documented [ITX-510] in docs/sources.md; the same
/// choice list serves Import Runs, designed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// The default when the record is created.
    New,
    /// The instance is processing another transaction received earlier.
    Waiting,
    /// The app is importing this transaction (a run: some of its transactions are open).
    Processing,
    /// The import completed.
    Succeeded,
    /// The import failed; `message` says why.
    Failed,
}

impl State {
    pub const ALL: [State; 5] = [
        State::New,
        State::Waiting,
        State::Processing,
        State::Succeeded,
        State::Failed,
    ];

    /// The stored choice value.
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Waiting => "waiting",
            State::Processing => "processing",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Succeeded or failed: nothing more will happen to it.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Succeeded | State::Failed)
    }
}

/// Runs or transactions not yet finished (New, Waiting, Processing, or no state), oldest first.
/// Spelled as an `IN` list plus an empty test, which the state index serves; the equivalent
/// `state!=succeeded^state!=failed` becomes `(state IS NULL OR state != ?)`, which no index
/// serves, so every lookup scanned the whole table and a large export went quadratic.
pub fn unfinished_query() -> EncodedQuery {
    let open: Vec<&str> = State::ALL
        .into_iter()
        .filter(|s| !s.is_terminal())
        .map(State::as_str)
        .collect();
    store::parse_encoded_query(&format!(
        "stateIN{}^ORstateISEMPTY^ORDERBYnumber",
        open.join(",")
    ))
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn text(f: &Fields, column: &str) -> String {
    f.get(column).cloned().unwrap_or_default()
}

fn int(f: &Fields, column: &str) -> Option<i64> {
    f.get(column).and_then(|v| v.parse().ok())
}

fn state(f: &Fields, table: &str) -> Result<State, StoreError> {
    let value = text(f, "state");
    State::parse(&value).ok_or_else(|| {
        StoreError::Invalid(format!(
            "{table} {} has an unknown state '{value}'",
            text(f, "number")
        ))
    })
}

/// An Import Transaction (`x_fls_flexera_fnms_import_transaction`).
#[derive(Debug, Clone)]
pub struct Transaction {
    pub sys_id: String,
    pub number: String,
    /// sys_id of its Import Run.
    pub import_run: String,
    pub import_type: String,
    pub state: State,
    /// Updates since the intake stored it: 0 while its payload is the one the intake read.
    pub mod_count: i64,
}

impl Transaction {
    /// The columns [`Transaction::from_fields`] reads (not the payload, read only when needed).
    pub const COLUMNS: [&str; 6] = [
        "sys_id",
        "number",
        "import_run",
        "import_type",
        "state",
        "sys_mod_count",
    ];

    pub fn from_fields(f: &Fields) -> Result<Self, StoreError> {
        Ok(Self {
            sys_id: text(f, "sys_id"),
            number: text(f, "number"),
            import_run: text(f, "import_run"),
            import_type: text(f, "import_type"),
            state: state(f, "Import transaction")?,
            mod_count: int(f, "sys_mod_count").unwrap_or(0),
        })
    }
}

/// An Import Run (`x_fls_flexera_fnms_import_run`).
#[derive(Debug, Clone)]
pub struct Run {
    pub sys_id: String,
    pub number: String,
    pub import_type: String,
    pub state: State,
    /// Set when the last segment has arrived: the run is closed to new segments.
    pub segments_expected: Option<i64>,
    pub transactions_received: i64,
    pub records_received: i64,
}

impl Run {
    pub fn from_fields(f: &Fields) -> Result<Self, StoreError> {
        Ok(Self {
            sys_id: text(f, "sys_id"),
            number: text(f, "number"),
            import_type: text(f, "import_type"),
            state: state(f, "Import run")?,
            segments_expected: int(f, "segments_expected"),
            transactions_received: int(f, "transactions_received").unwrap_or(0),
            records_received: int(f, "records_received").unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_only_two_are_terminal() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("Processing"), None);
        let terminal: Vec<State> = State::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [State::Succeeded, State::Failed]);
    }

    /// The worker's claim and the intake's busy check run this once per segment: it must be an
    /// index search, not a scan of every transaction ever received.
    #[test]
    fn the_unfinished_lookup_searches_the_state_index() {
        let catalog = std::sync::Arc::new(crate::catalog::load_embedded().expect("catalog"));
        let store = crate::store::Store::open(":memory:", catalog.clone()).expect("store");
        let conn = store.lock();
        for name in [super::super::RUN_TABLE, super::super::TRANSACTION_TABLE] {
            let table = catalog.table(name).expect("app table");
            let (cond, params, order) = unfinished_query().to_sql(table, None);
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT * FROM {} WHERE {cond} ORDER BY {order} LIMIT 1",
                crate::store::quote(&table.physical)
            );
            let mut stmt = conn.prepare(&sql).expect("plan");
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .expect("plan rows")
                .collect::<Result<_, _>>()
                .expect("plan rows");
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN")),
                "{name}: {plan:?}"
            );
            assert!(
                plan.iter().any(|s| s.contains("(state=?)")),
                "{name}: {plan:?}"
            );
        }
    }
}
