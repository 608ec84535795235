//! Time as the exporter waits on it: back-off between tries, `Retry-After`, polling and the
//! poll time-out all go through one [`Clock`], so tests substitute a virtual clock and a
//! five-minute back-off takes no time at all.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Monotonic time and sleeping.
pub trait Clock: Send + Sync {
    /// Time elapsed since an arbitrary fixed origin.
    fn elapsed(&self) -> Duration;
    /// Waits `duration` (a virtual clock just advances).
    fn sleep(&self, duration: Duration);
}

/// The real clock: `Instant` and `std::thread::sleep`.
pub(crate) struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub(crate) fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A clock that never waits: `sleep` advances it and is recorded, for tests.
#[derive(Default)]
pub struct VirtualClock {
    state: Mutex<(Duration, Vec<Duration>)>,
}

impl VirtualClock {
    pub fn new() -> VirtualClock {
        VirtualClock::default()
    }

    /// Every sleep asked for, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().map(|s| s.1.clone()).unwrap_or_default()
    }
}

impl Clock for VirtualClock {
    fn elapsed(&self) -> Duration {
        self.state.lock().map(|s| s.0).unwrap_or_default()
    }

    fn sleep(&self, duration: Duration) {
        if let Ok(mut state) = self.state.lock() {
            state.0 += duration;
            state.1.push(duration);
        }
    }
}
