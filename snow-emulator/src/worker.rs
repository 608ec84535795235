//! The background worker: processes Import Transactions one at a time in arrival order
//! (docs/wire-protocol.md §4). It wakes when the endpoint stores a transaction, polls now and
//! then besides, and at start picks up whatever a previous run left unfinished. Tests and
//! fault scenarios can pause, resume and step it through `/_emulator/worker`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::app::process;
use crate::faults::Faults;
use crate::store::Store;

/// How long the worker's thread waits for the next transaction before handing back to the
/// async loop: a segment arrives every few milliseconds while an export runs.
const LINGER: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct WorkerControl {
    notify: Notify,
    paused: AtomicBool,
    /// Counts wakes, for a worker thread waiting without the async loop ([`Self::wait`]).
    wakes: Mutex<u64>,
    woken: Condvar,
}

impl WorkerControl {
    /// Tells the worker there may be work: callable from any thread, async or not (the
    /// intake calls it right after its commit, still on the storage thread).
    pub fn wake(&self) {
        *self.wakes.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.woken.notify_all();
        self.notify.notify_one();
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        self.wake();
    }

    fn wakes(&self) -> u64 {
        *self.wakes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits on the calling thread, at most `timeout`, for a wake after the `seen`-th.
    /// Returns whether one came.
    fn wait(&self, seen: u64, timeout: Duration) -> bool {
        let wakes = self.wakes.lock().unwrap_or_else(PoisonError::into_inner);
        let (wakes, _) = self
            .woken
            .wait_timeout_while(wakes, timeout, |n| *n == seen)
            .unwrap_or_else(PoisonError::into_inner);
        *wakes != seen
    }
}

/// Runs until `shutdown` turns true; a transaction in progress is finished first.
///
/// Transactions are processed on a blocking thread that goes on to the next as long as
/// there is one, and waits there ([`LINGER`]) for the intake's wake when there is none:
/// each segment of an export would otherwise pay a round through the async runtime (the
/// blocking task's end, this loop, a new blocking task) between the intake's commit and the
/// worker's start on it (docs/performance.md).
pub async fn run(
    store: Store,
    control: Arc<WorkerControl>,
    faults: Arc<Faults>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        if !control.paused() {
            let (s, f, c, stop) = (
                store.clone(),
                faults.clone(),
                control.clone(),
                shutdown.clone(),
            );
            match tokio::task::spawn_blocking(move || drain(&s, &f, &c, &stop)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "worker failed"),
                Err(e) => {
                    // A bug, not bad input: fail the transaction rather than retry it forever.
                    // The transactions before it in this drain are committed, so the one in
                    // progress is the oldest unfinished.
                    tracing::error!(error = %e, "processing a transaction panicked");
                    let s = store.clone();
                    let why = format!("processing failed unexpectedly: {e}");
                    let _ = tokio::task::spawn_blocking(move || process::fail_processing(&s, &why))
                        .await;
                }
            }
        }
        // A drain returns only once there is no work (or it is paused or stopping).
        tokio::select! {
            _ = control.notify.notified() => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Processes transactions one at a time while there are any and the worker is neither
/// paused nor shutting down; when there is none, waits up to [`LINGER`] for one, then
/// returns.
fn drain(
    store: &Store,
    faults: &Faults,
    control: &WorkerControl,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    while !control.paused() && !*stop.borrow() {
        let seen = control.wakes();
        if process::process_next(store, faults)?.is_none() && !control.wait(seen, LINGER) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_worker_thread_sees_a_wake_from_another_thread_and_times_out_without_one() {
        let control = Arc::new(WorkerControl::default());
        let seen = control.wakes();
        assert!(
            !control.wait(seen, Duration::from_millis(10)),
            "no wake yet"
        );
        let waker = control.clone();
        let woke = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.wake();
        });
        // Bounded: the test fails rather than hangs if the wake is lost.
        assert!(control.wait(seen, Duration::from_secs(10)), "woken");
        woke.join().expect("waker");
        assert!(
            control.wait(seen, Duration::ZERO),
            "a wake before the wait counts"
        );
        assert!(!control.wait(control.wakes(), Duration::ZERO));
    }
}
