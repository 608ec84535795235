//! The instance clock. Every timestamp the emulator writes and every token expiry comes from
//! here, so that tests can set or advance an instance's time through `/_emulator/clock`
//! (docs/emulator.md, "Instance clock") instead of sleeping.
//!
//! Each [`Store`](crate::store::Store) owns one [`Clock`]. Time is read while holding the
//! store's connection: [`Store::lock`](crate::store::Store::lock) makes its clock the thread's
//! *current* clock until the guard drops, so code deep in the store, the auth module or the
//! transform engine reads the right instance's time through [`now_string`] without passing a
//! clock around. Outside a lock the real time is used.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// An instance's time: the real time shifted by an offset that tests can set. The clock keeps
/// running after a `set` (designed: a frozen clock would stall token expiry and polling).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_us: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::microseconds(self.offset_us.load(Ordering::SeqCst))
    }

    pub fn now_string(&self) -> String {
        format(self.now())
    }

    /// The offset from the real time, in whole seconds.
    pub fn offset_seconds(&self) -> i64 {
        self.offset_us.load(Ordering::SeqCst).div_euclid(1_000_000)
    }

    /// Moves the clock to `t`; it runs on from there.
    pub fn set(&self, t: DateTime<Utc>) {
        // Rounded up, so that the clock never reads earlier than `t` right after the set.
        let delta = t - Utc::now();
        let mut offset = delta.num_microseconds().unwrap_or(i64::MAX);
        if delta > Duration::microseconds(offset) {
            offset = offset.saturating_add(1);
        }
        self.offset_us.store(offset, Ordering::SeqCst);
    }

    /// Moves the clock forward (or back, when negative) by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.offset_us
            .fetch_add(seconds.saturating_mul(1_000_000), Ordering::SeqCst);
    }

    /// Back to the real time.
    pub fn reset(&self) {
        self.offset_us.store(0, Ordering::SeqCst);
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Clock>> = const { RefCell::new(None) };
}

/// Makes `clock` the thread's current clock until the returned guard drops.
pub(crate) fn enter(clock: &Clock) -> Entered {
    let previous = CURRENT.with(|c| c.replace(Some(clock.clone())));
    Entered { previous }
}

/// Restores the previous current clock when dropped.
pub(crate) struct Entered {
    previous: Option<Clock>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// The current instance's time (see the module documentation).
pub fn now() -> DateTime<Utc> {
    CURRENT
        .with(|c| c.borrow().as_ref().map(Clock::now))
        .unwrap_or_else(Utc::now)
}

/// ServiceNow's stored date-time format, UTC: `YYYY-MM-DD HH:MM:SS`.
pub fn format(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn now_string() -> String {
    format(now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_advance_and_reset_move_the_clock() {
        let clock = Clock::default();
        let target = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid time");
        clock.set(target);
        assert!((clock.now() - target).num_seconds().abs() <= 1);
        clock.advance(3600);
        assert!(
            (clock.now() - target - Duration::hours(1))
                .num_seconds()
                .abs()
                <= 1
        );
        clock.reset();
        assert!((clock.now() - Utc::now()).num_seconds().abs() <= 1);
        assert_eq!(clock.offset_seconds(), 0);
    }

    #[test]
    fn the_entered_clock_is_current_until_the_guard_drops() {
        let clock = Clock::default();
        clock.advance(86_400 * 365);
        {
            let _entered = enter(&clock);
            assert!(now() - Utc::now() > Duration::days(364));
        }
        assert!((now() - Utc::now()).num_seconds().abs() <= 1);
    }
}
