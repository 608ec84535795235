//! Processing one Import Transaction (docs/wire-protocol.md §4). The oldest unfinished one is
//! *claimed*: it becomes Processing and every other New one Waiting. Then its XML becomes
//! staging rows, each run through the staging table's transform maps as the scheduled
//! import's Run As user, all of it in one SQLite transaction, so a crash leaves nothing
//! half-done and a restart simply processes it again. Then the transaction is Succeeded or
//! Failed, and its run is closed once its last segment has arrived and every transaction is
//! finished.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, Result, anyhow};
use rusqlite::Connection;

use super::payload::{self, Records};
use super::routing::ContextReading;
use super::views::{Run, State, Transaction, unfinished_query};
use super::{RUN_TABLE, TRANSACTION_TABLE, fields, log, run_as_user, table};
use crate::catalog::{Catalog, ImportType, Table};
use crate::faults::{Faults, WorkerFault};
use crate::store::{self, Store, new_sys_id, quote};
use crate::transform::{Engine, Memory, PositionalRow, RowOutcome, RowState};

/// A transaction the worker finished: its number and its end state.
#[derive(Debug, Clone)]
pub struct Processed {
    pub number: String,
    pub state: State,
}

/// Processes the oldest unfinished transaction. Returns `None` when there was none.
///
/// The worker's own commits skip the fsync (`synchronous=NORMAL`; WAL keeps them safe from a
/// killed process): nothing is acknowledged by them, the next acknowledged commit (FULL)
/// syncs them too, and if a power cut lost them the transaction would simply be processed
/// again.
///
/// Without a fault, the claim and the processing are one SQLite transaction under one hold
/// of the store lock: nobody can look in between, so a separate commit of the claim would
/// only cost a commit per segment. An injected fault (`faults`) may hold the claimed
/// transaction in Processing, fail it, or delay its transform; then the claim is committed
/// first and the store is not locked while the fault waits, so polls see Processing.
pub fn process_next(store: &Store, faults: &Faults) -> Result<Option<Processed>> {
    let catalog = store.catalog();
    let mut conn = store.lock();
    let Some(t) = next_unfinished(&conn, catalog)? else {
        return Ok(None);
    };
    let fault = faults.on_transaction(&t.number, transaction_type(catalog, &t));
    let Some(fault) = fault else {
        return store::unsynced(&mut conn, |conn| process_with_memory(store, conn, t))?.map(Some);
    };
    let claimed = store::unsynced(&mut conn, |conn| claim(conn, catalog, t))?;
    drop(conn);
    process_faulted(store, claimed?, fault)
}

/// Processes `t` with what the store holds for it: the engine's caches from the previous
/// transaction, and the records the intake read from `t`'s payload (if nothing has updated
/// the transaction since the intake stored it, so the payload is still the one it read).
/// Keeps what the engine learned.
fn process_with_memory(store: &Store, conn: &mut Connection, t: Transaction) -> Result<Processed> {
    let kept = store.take_kept::<Kept>();
    let read = store
        .take_handed::<Records>(&t.sys_id)
        .filter(|_| t.mod_count == 0);
    let (processed, kept) = process_claimed(conn, store.catalog(), t, kept, read)?;
    if let Some(kept) = kept {
        store.keep(kept);
    }
    Ok(processed)
}

/// What the worker keeps from one transaction for the next ([`Store::keep`]): the engine's
/// caches and the properties and plugins it read, each used only while still true.
struct Kept {
    memory: Memory,
    context: ContextReading,
}

/// The wire protocol's name of a transaction's import type (what faults are declared for).
fn transaction_type<'c>(catalog: &'c Catalog, t: &'c Transaction) -> &'c str {
    catalog
        .import_types
        .iter()
        .find(|it| it.import_type == t.import_type)
        .map_or(t.import_type.as_str(), |it| it.transaction_type.as_str())
}

/// Goes on with a claimed transaction as its fault says: hang (leave it Processing), fail
/// it, or process it after a delay.
fn process_faulted(store: &Store, t: Transaction, fault: WorkerFault) -> Result<Option<Processed>> {
    let failed = match fault {
        WorkerFault::Hang => return Ok(None),
        WorkerFault::Delay(d) => {
            std::thread::sleep(d);
            false
        }
        WorkerFault::Fail => true,
    };
    let result = store::unsynced(&mut store.lock(), |conn| {
        if failed {
            fail_injected(conn, store.catalog(), t)
        } else {
            process_with_memory(store, conn, t)
        }
    })?;
    result.map(Some)
}

/// A `fail_transform` fault: the transaction fails as a broken transform would.
fn fail_injected(conn: &mut Connection, catalog: &Catalog, t: Transaction) -> Result<Processed> {
    let user = run_as_user(conn, catalog)?;
    let tx = conn.transaction()?;
    let why = "the transform failed: injected fault (fail_transform)";
    finish(&tx, catalog, &t, State::Failed, why, &user)?;
    tx.commit()?;
    Ok(Processed {
        number: t.number,
        state: State::Failed,
    })
}

/// Claims the oldest unfinished transaction without processing it (a test control: the
/// transaction stays Processing until the worker resumes or steps). Returns its number.
pub fn claim_next(store: &Store) -> Result<Option<String>> {
    let mut conn = store.lock();
    let catalog = store.catalog();
    let Some(t) = next_unfinished(&conn, catalog)? else {
        return Ok(None);
    };
    Ok(Some(claim(&mut conn, catalog, t)?.number))
}

/// Marks the transaction a crashed (panicked) attempt worked on as failed, so a poisoned
/// transaction cannot block the queue forever. That is the oldest unfinished one: claimed
/// and left Processing (a fault's path), or still New or Waiting when the claim was rolled
/// back with the rest of the attempt.
pub fn fail_processing(store: &Store, why: &str) -> Result<()> {
    let catalog = store.catalog();
    let mut conn = store.lock();
    // The panic skipped process_next's restore of the acknowledging sync mode.
    conn.pragma_update(None, "synchronous", "FULL")?;
    if let Some(t) = next_unfinished(&conn, catalog)? {
        let user = run_as_user(&conn, catalog)?;
        let tx = conn.transaction()?;
        finish(&tx, catalog, &t, State::Failed, why, &user)?;
        tx.commit()?;
    }
    Ok(())
}

/// The oldest unfinished transaction, if any.
fn next_unfinished(conn: &Connection, catalog: &Catalog) -> Result<Option<Transaction>> {
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    let unfinished = unfinished_query();
    let columns = Transaction::COLUMNS;
    match store::find_columns(conn, transactions, &unfinished, &columns, 1)?.pop() {
        Some(t) => Ok(Some(Transaction::from_fields(&t)?)),
        None => Ok(None),
    }
}

/// Claims `t` in its own committed SQLite transaction (see [`mark_claimed`]).
fn claim(conn: &mut Connection, catalog: &Catalog, mut t: Transaction) -> Result<Transaction> {
    let user = run_as_user(conn, catalog)?;
    let tx = conn.transaction()?;
    mark_claimed(&tx, catalog, &mut t, &user)?;
    tx.commit()?;
    Ok(t)
}

/// Makes `t` Processing and the other New transactions Waiting.
fn mark_claimed(
    conn: &Connection,
    catalog: &Catalog,
    t: &mut Transaction,
    user: &str,
) -> Result<()> {
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    if t.state != State::Processing {
        let state = fields([("state", State::Processing.as_str().into())]);
        store::update(conn, transactions, &t.sys_id, &state, user)?;
        t.state = State::Processing;
    }
    // Cached: it runs once per transaction.
    conn.prepare_cached(&format!(
        "UPDATE {} SET state = ?1 WHERE state = ?2 AND sys_id != ?3",
        quote(&transactions.physical)
    ))?
    .execute([State::Waiting.as_str(), State::New.as_str(), &t.sys_id])?;
    store::wrote(&transactions.physical);
    Ok(())
}

/// Claims (when not yet claimed) and processes a transaction in one SQLite transaction.
/// Returns what the engine learned (for the next transaction) when it succeeded; a failed
/// one was rolled back, and so is forgotten.
fn process_claimed(
    conn: &mut Connection,
    catalog: &Catalog,
    mut t: Transaction,
    kept: Option<Kept>,
    read: Option<Records>,
) -> Result<(Processed, Option<Kept>)> {
    let user = run_as_user(conn, catalog)?;
    let outcome = {
        let tx = conn.transaction()?;
        mark_claimed(&tx, catalog, &mut t, &user)?;
        match stage_and_transform(&tx, catalog, &t, &user, (kept, read)) {
            Ok((summary, kept)) => {
                finish(&tx, catalog, &t, State::Succeeded, &summary, &user)?;
                tx.commit()?;
                Ok(kept)
            }
            Err(e) => Err(e),
        }
    };
    let (state, kept) = match outcome {
        Ok(kept) => (State::Succeeded, Some(kept)),
        Err(e) => {
            // Everything above was rolled back, the claim too.
            let tx = conn.transaction()?;
            mark_claimed(&tx, catalog, &mut t, &user)?;
            finish(&tx, catalog, &t, State::Failed, &format!("{e:#}"), &user)?;
            tx.commit()?;
            (State::Failed, None)
        }
    };
    let processed = Processed {
        number: t.number,
        state,
    };
    Ok((processed, kept))
}

/// Staging rows are written with prepared INSERTs over every column of the table, `rows` rows
/// a statement.
fn staging_insert_sql(staging: &Table, rows: usize) -> String {
    let columns: Vec<&str> = staging.columns.iter().map(|c| c.name.as_str()).collect();
    store::insert_rows_sql(&staging.physical, &columns, rows)
}

/// Rows a batched staging INSERT writes. Each statement opens a cursor on the table and on
/// each index, seeks every index from its root, and closes them; one statement for 16 rows
/// took the worker from 1,383 M to 1,253 M instructions at 1 % (callgrind), together with
/// SQLite's larger lookaside (`.cargo/config.toml`), without which its bound texts
/// overflowed into malloc and it cost more than it saved (docs/performance.md).
const STAGING_BATCH: usize = 16;

/// Writes a transaction's staging rows in order: when the number of rows is known, all but
/// the last few [`STAGING_BATCH`] at a time, the rest (or all, when it is not known) one at
/// a time.
struct StagingWriter<'c> {
    one: rusqlite::CachedStatement<'c>,
    batch: Option<rusqlite::CachedStatement<'c>>,
    /// Rows with a lower index go through `batch`: a multiple of [`STAGING_BATCH`].
    batched: i64,
    /// Rows bound into `batch` and not yet written.
    pending: usize,
}

impl<'c> StagingWriter<'c> {
    fn new(
        conn: &'c Connection,
        ctx: &RowContext<'_>,
        rows: Option<usize>,
    ) -> rusqlite::Result<Self> {
        let full = rows.map_or(0, |n| n / STAGING_BATCH * STAGING_BATCH);
        let mut one = conn.prepare_cached(&staging_insert_sql(ctx.staging, 1))?;
        bind_constants(&mut one, ctx, 1)?;
        let batch = if full > 0 {
            let mut batch = conn.prepare_cached(&staging_insert_sql(ctx.staging, STAGING_BATCH))?;
            bind_constants(&mut batch, ctx, STAGING_BATCH)?;
            Some(batch)
        } else {
            None
        };
        Ok(Self {
            one,
            batch,
            batched: i64::try_from(full).unwrap_or(0),
            pending: 0,
        })
    }

    /// Binds row `ctx.index` and writes it, or its batch once full.
    fn insert(
        &mut self,
        ctx: &RowContext<'_>,
        row: &PositionalRow<'_>,
        o: &RowOutcome<'_>,
    ) -> rusqlite::Result<()> {
        match &mut self.batch {
            Some(batch) if ctx.index < self.batched => {
                bind_row(batch, ctx, self.pending * ctx.columns.len(), row, o)?;
                self.pending += 1;
                if self.pending == STAGING_BATCH {
                    self.pending = 0;
                    batch.raw_execute()?;
                }
                Ok(())
            }
            _ => {
                bind_row(&mut self.one, ctx, 0, row, o)?;
                self.one.raw_execute().map(drop)
            }
        }
    }
}

/// An empty text is NULL, as on a real instance.
fn text(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// What the staging INSERT binds to one column, decided once per transaction rather than by
/// the column's name on every row.
#[derive(Debug, Clone, Copy)]
enum StagingColumn {
    SysId,
    ClassName,
    Now,
    User,
    ModCount,
    ImportRow,
    ImportState,
    StateComment,
    RowError,
    TargetSysId,
    TargetTable,
    TransformMap,
    Transaction,
    /// A data column: the record's field at this position.
    Data,
}

impl StagingColumn {
    fn of(name: &str, it: &ImportType) -> Self {
        match name {
            "sys_id" => Self::SysId,
            "sys_class_name" => Self::ClassName,
            "sys_created_on" | "sys_updated_on" => Self::Now,
            "sys_created_by" | "sys_updated_by" => Self::User,
            "sys_mod_count" => Self::ModCount,
            "sys_import_row" => Self::ImportRow,
            "sys_import_state" => Self::ImportState,
            "sys_import_state_comment" => Self::StateComment,
            "sys_row_error" => Self::RowError,
            "sys_target_sys_id" => Self::TargetSysId,
            "sys_target_table" => Self::TargetTable,
            "sys_transform_map" => Self::TransformMap,
            name if name == it.transaction_column => Self::Transaction,
            _ => Self::Data,
        }
    }
}

/// What one staging row is written with, besides its data columns.
struct RowContext<'a> {
    staging: &'a Table,
    /// For each staging column, what it is written with.
    columns: Vec<StagingColumn>,
    transaction: &'a str,
    user: &'a str,
    now: &'a str,
    index: i64,
}

impl StagingColumn {
    /// Whether every row of a transaction is written with the same value here.
    fn is_constant(self) -> bool {
        matches!(
            self,
            Self::ClassName | Self::Now | Self::User | Self::ModCount | Self::Transaction
        )
    }
}

/// Binds the columns every row of the transaction shares, once for each of the statement's
/// `rows`: SQLite keeps a statement's bindings from one execution to the next, and a bound
/// text is copied each time.
fn bind_constants(
    stmt: &mut rusqlite::Statement<'_>,
    ctx: &RowContext<'_>,
    rows: usize,
) -> rusqlite::Result<()> {
    let width = ctx.columns.len();
    for offset in (0..rows).map(|r| r * width) {
        for (i, column) in ctx.columns.iter().enumerate() {
            let at = offset + i + 1;
            match column {
                StagingColumn::ClassName => stmt.raw_bind_parameter(at, ctx.staging.name.as_str()),
                StagingColumn::Now => stmt.raw_bind_parameter(at, ctx.now),
                StagingColumn::User => stmt.raw_bind_parameter(at, ctx.user),
                StagingColumn::ModCount => stmt.raw_bind_parameter(at, 0),
                StagingColumn::Transaction => stmt.raw_bind_parameter(at, ctx.transaction),
                _ => Ok(()),
            }?;
        }
    }
    Ok(())
}

/// Binds one staging row's data columns, the transform's outcome and its own system columns
/// at parameter `offset` of `stmt` ([`StagingWriter`]), from where they are, not copied; the
/// columns every row shares are already bound ([`bind_constants`]).
fn bind_row(
    stmt: &mut rusqlite::Statement<'_>,
    ctx: &RowContext<'_>,
    offset: usize,
    row: &PositionalRow<'_>,
    o: &RowOutcome<'_>,
) -> rusqlite::Result<()> {
    let sys_id = new_sys_id();
    for (i, column) in ctx.columns.iter().enumerate() {
        let at = offset + i + 1;
        match column {
            c if c.is_constant() => Ok(()),
            StagingColumn::SysId => stmt.raw_bind_parameter(at, sys_id.as_str()),
            StagingColumn::ImportRow => stmt.raw_bind_parameter(at, ctx.index),
            StagingColumn::ImportState => stmt.raw_bind_parameter(at, o.state.as_str()),
            StagingColumn::StateComment => stmt.raw_bind_parameter(at, text(&o.comment)),
            StagingColumn::RowError => stmt.raw_bind_parameter(at, text(&o.error)),
            StagingColumn::TargetSysId => stmt.raw_bind_parameter(at, text(&o.target_sys_id)),
            StagingColumn::TargetTable => stmt.raw_bind_parameter(at, text(o.target_table)),
            StagingColumn::TransformMap => stmt.raw_bind_parameter(at, text(o.transform_map)),
            StagingColumn::Data => stmt.raw_bind_parameter(at, row.at(i)),
            _ => Ok(()),
        }?;
    }
    Ok(())
}

/// Where a record's fields go in the staging row (`ModelNo` → `u_modelno`). The records of
/// a segment repeat the same elements in the same order, so each position remembers the
/// element it last saw and its column.
struct ColumnsOf<'a> {
    staging: &'a Table,
    seen: Vec<(String, Option<usize>)>,
    /// Elements without a staging column (named in the transaction's message).
    unknown: BTreeSet<String>,
}

impl<'a> ColumnsOf<'a> {
    fn new(staging: &'a Table) -> Self {
        Self {
            staging,
            seen: Vec::new(),
            unknown: BTreeSet::new(),
        }
    }

    /// Fills `row` with a record's fields (element name, text); blank ones stay empty.
    fn fill(
        &mut self,
        row: &mut PositionalRow<'_>,
        record: &mut dyn Iterator<Item = (&str, &str)>,
    ) {
        row.clear();
        for (i, (element, text)) in record.enumerate() {
            if self.seen.get(i).is_none_or(|(e, _)| e != element) {
                let column = format!("u_{}", element.to_lowercase());
                let position = self.staging.column_position(&column);
                if position.is_none() {
                    self.unknown.insert(element.to_owned());
                }
                let entry = (element.to_owned(), position);
                match self.seen.get_mut(i) {
                    Some(slot) => *slot = entry,
                    None => self.seen.push(entry),
                }
            }
            if let Some(position) = self.seen[i].1
                && !crate::transform::trim(text).is_empty()
            {
                row.set(position, text);
            }
        }
    }
}

fn stage_and_transform(
    conn: &Connection,
    catalog: &Catalog,
    t: &Transaction,
    user: &str,
    (kept, read): (Option<Kept>, Option<Records>),
) -> Result<(String, Kept)> {
    let it = catalog
        .import_types
        .iter()
        .find(|it| it.import_type == t.import_type)
        .ok_or_else(|| anyhow!("no import type {} in the catalog", t.import_type))?;
    let staging = table(catalog, &it.staging_table)?;
    let now = crate::clock::now_string();
    let (memory, reading) = kept.map_or((None, None), |k| (Some(k.memory), Some(k.context)));
    let (context, reading) =
        super::routing::engine_context_kept(conn, catalog, (user, now.clone()), reading)?;
    let engine = Engine::new(conn, catalog, &staging.name, context, memory)?;
    let mut ctx = RowContext {
        staging,
        columns: (staging.columns.iter())
            .map(|c| StagingColumn::of(&c.name, it))
            .collect(),
        transaction: &t.sys_id,
        user,
        now: &now,
        index: 0,
    };
    let mut writer = StagingWriter::new(conn, &ctx, read.as_ref().map(Records::len))?;
    let mut columns = ColumnsOf::new(staging);
    let mut row = PositionalRow::new(staging);
    // foldhash, not SipHash: counted once a row.
    let mut counts: foldhash::HashMap<RowState, usize> = Default::default();
    let mut failure: Option<anyhow::Error> = None;
    let mut each = |record: &mut dyn Iterator<Item = (&str, &str)>| {
        columns.fill(&mut row, record);
        let result = engine
            .transform_row(&row)
            .map_err(anyhow::Error::from)
            .and_then(|o| {
                writer
                    .insert(&ctx, &row, &o)
                    .context("failed to store a staging row")?;
                *counts.entry(o.state).or_default() += 1;
                Ok(())
            });
        ctx.index += 1;
        result.map_err(|e| {
            let msg = format!("{e:#}");
            failure = Some(e);
            msg
        })
    };
    let parsed = match read {
        Some(records) => (0..records.len())
            .try_for_each(|i| each(&mut records.record(i)))
            .map(|()| records.len()),
        None => payload::parse(
            &payload_of(conn, catalog, t)?,
            &it.root,
            &it.record,
            |fields| each(&mut fields.iter().map(|(e, text)| (e.as_str(), text.as_str()))),
        ),
    };
    if let Some(e) = failure {
        return Err(e);
    }
    engine
        .finish()
        .context("failed to write the transformed records")?;
    store::wrote(&staging.physical);
    let rows = parsed.map_err(|e| anyhow!("invalid payload: {e}"))?;
    let summary = summary(rows, &counts, engine.has_maps(), staging, columns.unknown);
    let kept = Kept {
        memory: engine.into_memory(),
        context: reading,
    };
    Ok((summary, kept))
}

/// A transaction's payload, read when the intake's reading of it is not at hand.
fn payload_of(conn: &Connection, catalog: &Catalog, t: &Transaction) -> Result<String> {
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    Ok(store::get_field(conn, transactions, &t.sys_id, "payload")?.unwrap_or_default())
}

/// The transaction's message: what happened to its rows.
fn summary(
    rows: usize,
    counts: &foldhash::HashMap<RowState, usize>,
    has_maps: bool,
    staging: &Table,
    unknown: BTreeSet<String>,
) -> String {
    let count = |s: RowState| counts.get(&s).copied().unwrap_or(0);
    let mut summary = if has_maps {
        format!(
            "{rows} rows: {} inserted, {} updated, {} ignored, {} skipped, {} errors",
            count(RowState::Inserted),
            count(RowState::Updated),
            count(RowState::Ignored),
            count(RowState::Skipped),
            count(RowState::Error)
        )
    } else {
        format!(
            "{rows} rows staged in {}; no transform map is defined for it",
            staging.name
        )
    };
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.into_iter().collect();
        summary.push_str(&format!(
            "; ignored elements with no staging column: {}",
            list.join(", ")
        ));
    }
    summary
}

/// Records the transaction's end and closes its run when that was the last work of it.
fn finish(
    conn: &Connection,
    catalog: &Catalog,
    t: &Transaction,
    state: State,
    message: &str,
    user: &str,
) -> Result<()> {
    let transactions = table(catalog, TRANSACTION_TABLE)?;
    store::update(
        conn,
        transactions,
        &t.sys_id,
        &fields([
            ("state", state.as_str().to_owned()),
            ("message", message.to_owned()),
        ]),
        user,
    )?;
    let level = if state == State::Failed {
        "error"
    } else {
        "info"
    };
    log(
        conn,
        catalog,
        level,
        &format!("Import transaction {} {state}: {message}", t.number),
    )?;
    close_run(conn, catalog, &t.import_run, user)
}

/// Counts a run's transactions by state.
fn states_of_run(
    conn: &Connection,
    transactions: &Table,
    run: &str,
) -> Result<HashMap<State, usize>> {
    let sql = format!(
        "SELECT state, COUNT(*) FROM {} WHERE import_run = ?1 GROUP BY state",
        quote(&transactions.physical)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([run])?;
    let mut by_state = HashMap::new();
    while let Some(row) = rows.next()? {
        let value = row.get::<_, Option<String>>(0)?.unwrap_or_default();
        let state = State::parse(&value)
            .ok_or_else(|| anyhow!("an import transaction has unknown state '{value}'"))?;
        let n: i64 = row.get(1)?;
        by_state.insert(state, usize::try_from(n).unwrap_or(0));
    }
    Ok(by_state)
}

/// Closes the run when its last segment has arrived and all its transactions are finished.
fn close_run(conn: &Connection, catalog: &Catalog, run_sys_id: &str, user: &str) -> Result<()> {
    let runs = table(catalog, RUN_TABLE)?;
    let Some(run) = store::get(conn, runs, run_sys_id)? else {
        return Ok(());
    };
    let run = Run::from_fields(&run)?;
    if run.segments_expected.is_none() || run.state.is_terminal() {
        return Ok(());
    }
    let by_state = states_of_run(conn, table(catalog, TRANSACTION_TABLE)?, &run.sys_id)?;
    if by_state.iter().any(|(s, n)| *n > 0 && !s.is_terminal()) {
        return Ok(());
    }
    let total: usize = by_state.values().sum();
    let failed = by_state.get(&State::Failed).copied().unwrap_or(0);
    let (run_state, message) = if failed > 0 {
        (
            State::Failed,
            format!("{failed} of {total} transactions failed"),
        )
    } else {
        (State::Succeeded, format!("{total} transactions succeeded"))
    };
    store::update(
        conn,
        runs,
        &run.sys_id,
        &fields([
            ("state", run_state.as_str().to_owned()),
            ("completed", crate::clock::now_string()),
            ("message", message.clone()),
        ]),
        user,
    )?;
    let level = if failed > 0 { "error" } else { "info" };
    log(
        conn,
        catalog,
        level,
        &format!("Import run {} {run_state}: {message}", run.number),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A store with the app installed and one run holding one New transaction.
    fn store_with_new_transaction() -> (Store, String) {
        let catalog = Arc::new(crate::catalog::load_embedded().expect("catalog"));
        let store = Store::open(":memory:", catalog).expect("store");
        let settings = crate::Config::default().settings();
        crate::store::seed::seed(&mut store.lock(), store.catalog(), &settings).expect("seed");
        let conn = store.lock();
        let catalog = store.catalog();
        let run = store::insert(
            &conn,
            table(catalog, RUN_TABLE).expect("runs"),
            &fields([("run_id", "r".into()), ("state", "processing".into())]),
            "system",
        )
        .expect("run");
        let t = store::insert(
            &conn,
            table(catalog, TRANSACTION_TABLE).expect("transactions"),
            &fields([
                ("import_run", run),
                ("import_type", "inventory".into()),
                ("state", State::New.as_str().into()),
                ("payload", "<Inventories/>".into()),
            ]),
            "system",
        )
        .expect("transaction");
        drop(conn);
        (store, t)
    }

    fn state_of(store: &Store, sys_id: &str) -> String {
        let transactions = table(store.catalog(), TRANSACTION_TABLE).expect("transactions");
        store::get_field(&store.lock(), transactions, sys_id, "state")
            .expect("read")
            .expect("record")
    }

    #[test]
    fn the_claim_reads_a_transaction_without_its_payload_and_sees_any_update_of_it() {
        let (store, t) = store_with_new_transaction();
        let catalog = store.catalog();
        let found = next_unfinished(&store.lock(), catalog).expect("read");
        let found = found.expect("the new transaction");
        assert_eq!(
            (found.sys_id.as_str(), found.state),
            (t.as_str(), State::New)
        );
        assert_eq!(found.mod_count, 0, "as the intake stored it");
        let transactions = table(catalog, TRANSACTION_TABLE).expect("transactions");
        let query = unfinished_query();
        let columns = ["number", "payload", "no_such_column"];
        let rows = store::find_columns(&store.lock(), transactions, &query, &columns, 5);
        let names: Vec<Vec<String>> = (rows.expect("find").iter())
            .map(|f| f.keys().cloned().collect())
            .collect();
        assert_eq!(names, [["number", "payload"]], "only the columns asked for");

        let edit = fields([("payload", "<Inventories></Inventories>".into())]);
        store::update(&store.lock(), transactions, &t, &edit, "admin").expect("edit");
        let found = next_unfinished(&store.lock(), catalog).expect("read");
        assert_eq!(found.expect("still unfinished").mod_count, 1);
    }

    #[test]
    fn a_panicked_attempt_fails_its_transaction_whether_or_not_its_claim_was_kept() {
        // Claim and processing are one SQLite transaction, so a panic rolls the claim back
        // too: the transaction is still New, and must not be retried forever.
        let (store, t) = store_with_new_transaction();
        fail_processing(&store, "boom").expect("fail");
        assert_eq!(state_of(&store, &t), "failed");

        // A fault's path commits the claim first: Processing is failed the same way.
        let (store, t) = store_with_new_transaction();
        claim_next(&store).expect("claim");
        assert_eq!(state_of(&store, &t), "processing");
        fail_processing(&store, "boom").expect("fail");
        assert_eq!(state_of(&store, &t), "failed");
    }
}
