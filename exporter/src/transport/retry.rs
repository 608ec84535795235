//! The retry policy: up to `max_tries` tries in all (documented default 10 [EXP-22R2]),
//! exponential back-off from `retry_delay_ms`, doubling, jittered, capped by
//! `retry_max_delay_ms`; a `Retry-After` from the instance is waited at least.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::blocking::Response;

use crate::clock::Clock;
use crate::config::Tuning;
use crate::log::Log;

/// Longest `Retry-After` honoured; a larger one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub(crate) struct RetryPolicy {
    pub(crate) max_tries: u32,
    first_delay: Duration,
    max_delay: Duration,
    clock: Arc<dyn Clock>,
    /// Failed tries that were retried, over every clone of this policy (for the summary).
    retries: Arc<AtomicU64>,
}

/// What one try came to.
pub(crate) enum Attempt<T, F> {
    Done(T),
    /// A failed try that another try may fix.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// A failure no retry can fix.
    Fail(F),
}

impl RetryPolicy {
    pub(crate) fn new(tuning: &Tuning, clock: Arc<dyn Clock>) -> RetryPolicy {
        RetryPolicy {
            max_tries: tuning.max_tries,
            first_delay: tuning.retry_delay,
            max_delay: tuning.retry_max_delay,
            clock,
            retries: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Retried tries so far.
    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The back-off before each retry: jittered within [d, 2d), never above the cap.
    fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let max = self.max_delay;
        ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .map(move |d| d.min(max))
    }

    /// Runs `attempt` until it is done, fails for good, or `max_tries` tries have failed.
    /// `exhausted` turns the number of tries and the last reason into the caller's failure.
    pub(crate) fn run<T, F>(
        &self,
        log: &mut Log,
        what: &str,
        mut attempt: impl FnMut(&mut Log) -> Attempt<T, F>,
        exhausted: impl FnOnce(u32, String) -> F,
    ) -> Result<T, F> {
        let mut delays = self.delays();
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt(log) {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(failure) => return Err(failure),
                Attempt::Retry {
                    reason,
                    retry_after,
                } => {
                    if tries >= self.max_tries {
                        log.warn(format!(
                            "{what}: try {tries} of {} failed: {reason}",
                            self.max_tries
                        ));
                        return Err(exhausted(tries, reason));
                    }
                    let backoff = delays.next().unwrap_or(self.max_delay);
                    let delay = retry_after.map_or(backoff, |after| after.max(backoff));
                    log.warn(format!(
                        "{what}: try {tries} of {} failed: {reason}; retrying in {:.2} s",
                        self.max_tries,
                        delay.as_secs_f64()
                    ));
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    self.clock.sleep(delay);
                }
            }
        }
    }
}

/// The `Retry-After` of a response: delay-seconds (fractions accepted) or an HTTP-date.
pub(crate) fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    parse_retry_after(value, chrono::Utc::now())
}

fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or_default().min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy(max_tries: u32) -> RetryPolicy {
        let tuning = Tuning {
            max_tries,
            retry_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_millis(1000),
            ..Tuning::default()
        };
        RetryPolicy::new(&tuning, Arc::new(crate::clock::VirtualClock::new()))
    }

    #[test]
    fn delays_double_with_jitter_and_respect_the_cap() {
        let delays: Vec<Duration> = policy(10).delays().take(8).collect();
        let mut expected = Duration::from_millis(100);
        for d in &delays {
            assert!(
                *d >= expected.min(Duration::from_millis(1000)),
                "{delays:?}"
            );
            assert!(
                *d <= (expected * 2).min(Duration::from_millis(1000)),
                "{delays:?}"
            );
            expected = (expected * 2).min(Duration::from_millis(1000));
        }
        assert_eq!(delays[7], Duration::from_millis(1000));
    }

    #[test]
    fn retry_after_forms() {
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 28, 10, 0, 0)
            .single()
            .expect("time");
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("0.25", now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 10:00:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn gives_up_after_max_tries() {
        let mut log = Log::new(Box::new(std::io::sink()));
        let clock = Arc::new(crate::clock::VirtualClock::new());
        let tuning = Tuning {
            max_tries: 3,
            retry_delay: Duration::from_millis(1),
            retry_max_delay: Duration::from_millis(2),
            ..Tuning::default()
        };
        let fast = RetryPolicy::new(&tuning, clock.clone());
        let mut calls = 0;
        let result: Result<(), String> = fast.run(
            &mut log,
            "test",
            |_| {
                calls += 1;
                Attempt::Retry {
                    reason: format!("no {calls}"),
                    retry_after: None,
                }
            },
            |tries, last| format!("{tries}: {last}"),
        );
        assert_eq!(calls, 3);
        assert_eq!(result, Err("3: no 3".to_owned()));
        assert_eq!(fast.retries(), 2);
        assert_eq!(
            clock.sleeps().len(),
            2,
            "two back-offs, on the virtual clock"
        );
    }
}
