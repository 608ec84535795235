//! The writers' connection, and the calls queued for it.
//!
//! One connection writes, and every writer takes it in turn. A call queued with
//! [`Writers::queue`] does not wait for it on a thread of its own: whoever holds the
//! connection runs the queued calls when it lets go, still holding it, and the queuer takes
//! the connection itself only when it is free. The intake stores segments this way. The
//! worker holds the connection for a whole Import Transaction; a segment that arrives
//! meanwhile is stored on the worker's thread the moment the worker finishes, and the worker
//! goes straight on to it. Before, the worker woke the intake's thread, which stored the
//! segment and woke the worker again: two thread switches per segment, which the worker
//! spent waiting (docs/performance.md).
//!
//! No call is left behind. A queuer pushes its call, then tries the lock. A holder runs the
//! queue, unlocks, then looks at the queue again and tries the lock if anything is there. So
//! when a queuer's try fails, the holder's unlock comes after the push, and its second look
//! finds the call.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use rusqlite::Connection;

/// A call queued for the writers' connection. It answers its caller itself (through a
/// channel it owns), so a panic drops that channel and the caller hears of it.
pub type Queued = Box<dyn FnOnce(&mut Connection) + Send>;

pub struct Writers {
    conn: Mutex<Connection>,
    queued: Mutex<VecDeque<Queued>>,
}

/// The writers' connection, held; on drop it runs the queued calls, then unlocks.
pub struct WritersGuard<'a> {
    writers: &'a Writers,
    /// Always `Some` until dropped.
    conn: Option<MutexGuard<'a, Connection>>,
}

impl Writers {
    pub fn new(conn: Connection) -> Self {
        Self {
            conn: Mutex::new(conn),
            queued: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits for the connection. A panic elsewhere while holding it does not make the data
    /// unusable: SQLite rolls back the unfinished transaction, so a poisoned lock is simply
    /// taken over.
    pub fn lock(&self) -> WritersGuard<'_> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        self.guard(conn)
    }

    /// The connection if no one holds it.
    fn try_lock(&self) -> Option<WritersGuard<'_>> {
        match self.conn.try_lock() {
            Ok(conn) => Some(self.guard(conn)),
            Err(TryLockError::Poisoned(e)) => Some(self.guard(e.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn guard<'a>(&'a self, conn: MutexGuard<'a, Connection>) -> WritersGuard<'a> {
        WritersGuard {
            writers: self,
            conn: Some(conn),
        }
    }

    /// Runs `call` with the connection: now, on this thread, if no one holds it; else on the
    /// holder's thread when it lets go. Blocks only in the first case, for the call's run.
    pub fn queue(&self, call: Queued) {
        self.queue_lock().push_back(call);
        drop(self.try_lock());
    }

    fn queue_lock(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the queued calls, oldest first, including those queued meanwhile.
    fn run_queued(&self, conn: &mut Connection) {
        loop {
            // Popped apart from the run, so a call may queue another without a deadlock.
            let Some(call) = self.queue_lock().pop_front() else {
                return;
            };
            if catch_unwind(AssertUnwindSafe(|| call(conn))).is_err() {
                // The call's own transaction, if any, rolled back as it unwound; a sync mode
                // it changed may not have been restored.
                let _ = conn.pragma_update(None, "synchronous", "FULL");
                tracing::error!("a queued storage call panicked");
            }
        }
    }
}

impl std::ops::Deref for WritersGuard<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_deref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for WritersGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_deref_mut().expect("held until dropped")
    }
}

impl Drop for WritersGuard<'_> {
    fn drop(&mut self) {
        while let Some(mut conn) = self.conn.take() {
            self.writers.run_queued(&mut conn);
            #[cfg(test)]
            tests::before_unlock();
            drop(conn);
            if self.writers.queue_lock().is_empty() {
                return;
            }
            // Queued between the run and the unlock, by a queuer whose try failed.
            self.conn = self.writers.try_lock().and_then(|mut g| g.conn.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    thread_local! {
        /// What a test runs on the holder's thread between its run of the queue and its
        /// unlock: the one window a queuer's failed try can fall into.
        static BEFORE_UNLOCK: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
            const { std::cell::RefCell::new(None) };
    }

    pub(super) fn before_unlock() {
        if let Some(hook) = BEFORE_UNLOCK.with(|h| h.borrow_mut().take()) {
            hook();
        }
    }

    fn writers() -> Arc<Writers> {
        Arc::new(Writers::new(Connection::open_in_memory().expect("open")))
    }

    fn thread_name() -> Option<String> {
        std::thread::current().name().map(str::to_owned)
    }

    #[test]
    fn a_call_queued_while_the_connection_is_held_runs_on_the_holders_thread_as_it_lets_go() {
        let writers = writers();
        let holder = writers.clone();
        let (held, holding) = channel();
        let (release, released) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("holder".into())
            .spawn(move || {
                let guard = holder.lock();
                held.send(()).expect("send");
                released.recv().expect("recv");
                drop(guard);
            })
            .expect("spawn");
        holding.recv_timeout(Duration::from_secs(10)).expect("held");
        let (answer, answered) = channel();
        writers.queue(Box::new(move |conn| {
            let one: i64 = conn.query_row("SELECT 1", [], |r| r.get(0)).expect("query");
            answer.send((one, thread_name())).expect("send");
        }));
        assert!(
            answered.try_recv().is_err(),
            "the call waited for the holder"
        );
        release.send(()).expect("send");
        let (one, ran_on) = answered
            .recv_timeout(Duration::from_secs(10))
            .expect("the call ran");
        assert_eq!((one, ran_on.as_deref()), (1, Some("holder")));
        thread.join().expect("holder");
    }

    #[test]
    fn a_call_queued_while_the_connection_is_free_runs_at_once_on_the_queuers_thread() {
        let writers = writers();
        let (answer, answered) = channel();
        let queuer = std::thread::Builder::new()
            .name("queuer".into())
            .spawn(move || {
                writers.queue(Box::new(move |_| answer.send(thread_name()).expect("send")));
            })
            .expect("spawn");
        queuer.join().expect("queuer");
        assert_eq!(
            answered.try_recv().ok().flatten().as_deref(),
            Some("queuer")
        );
    }

    #[test]
    fn a_panicking_call_is_dropped_with_its_answer_and_the_next_one_still_runs() {
        let writers = writers();
        let guard = writers.lock();
        guard
            .pragma_update(None, "synchronous", "NORMAL")
            .expect("pragma");
        let (first, first_answered) = channel::<()>();
        writers.queue(Box::new(move |_| {
            let _first = first;
            panic!("a bug in a queued call");
        }));
        let (second, second_answered) = channel();
        writers.queue(Box::new(move |conn| {
            let mode: i64 =
                (conn.query_row("PRAGMA synchronous", [], |r| r.get(0))).expect("pragma");
            second.send(mode).expect("send");
        }));
        drop(guard);
        assert!(
            first_answered.recv().is_err(),
            "the caller hears of the panic"
        );
        assert_eq!(second_answered.recv().ok(), Some(2), "FULL restored");
    }

    #[test]
    fn a_call_queued_after_the_holders_run_but_before_its_unlock_is_still_run() {
        let writers = writers();
        let guard = writers.lock();
        let (answer, answered) = channel();
        let queuer = writers.clone();
        BEFORE_UNLOCK.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                // On another thread, whose try of the lock fails: the holder still has it.
                std::thread::spawn(move || {
                    queuer.queue(Box::new(move |_| answer.send(thread_name()).expect("send")));
                })
                .join()
                .expect("queuer");
            }));
        });
        drop(guard);
        let ran_on = answered.try_recv().expect("run before the drop returned");
        assert_eq!(ran_on, thread_name(), "by the holder, on its second look");
    }

    #[test]
    fn no_call_is_left_behind_however_queuers_and_holders_interleave() {
        let writers = writers();
        let (answer, answered) = channel();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (writers, answer) = (writers.clone(), answer.clone());
                std::thread::spawn(move || {
                    for i in 0..500 {
                        if i % 3 == t % 3 {
                            drop(writers.lock());
                        }
                        let answer = answer.clone();
                        writers.queue(Box::new(move |_| answer.send(()).expect("send")));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        drop(answer);
        // Every call has run by now: each queuer's own try, or a holder, ran it.
        assert_eq!(answered.try_iter().count(), 8 * 500);
    }
}
