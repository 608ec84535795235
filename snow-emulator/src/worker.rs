//! The background worker: processes Import Transactions one at a time in arrival order
//! (docs/wire-protocol.md §4). It wakes when the endpoint stores a transaction, polls now and
//! then besides, and at start picks up whatever a previous run left unfinished. Tests and
//! fault scenarios can pause, resume and step it through `/_emulator/worker`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::faults::Faults;
use crate::store::Store;

#[derive(Default)]
pub struct WorkerControl {
    notify: Notify,
    paused: AtomicBool,
}

impl WorkerControl {
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        self.wake();
    }
}

/// Runs until `shutdown` turns true; a transaction in progress is finished first.
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
        let mut worked = false;
        if !control.paused() {
            let (s, f) = (store.clone(), faults.clone());
            match tokio::task::spawn_blocking(move || crate::app::process::process_next(&s, &f))
                .await
            {
                Ok(Ok(did)) => worked = did.is_some(),
                Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "worker failed"),
                Err(e) => {
                    // A bug, not bad input: fail the transaction rather than retry it forever.
                    tracing::error!(error = %e, "processing a transaction panicked");
                    let s = store.clone();
                    let why = format!("processing failed unexpectedly: {e}");
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::app::process::fail_processing(&s, &why)
                    })
                    .await;
                }
            }
        }
        if worked {
            continue;
        }
        tokio::select! {
            _ = control.notify.notified() => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
