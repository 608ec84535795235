//! The instance clock. Every timestamp the emulator writes comes from here, so that a later
//! `/_emulator/clock` control can shift time for token-expiry and date tests.

use chrono::{DateTime, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// ServiceNow's stored date-time format, UTC: `YYYY-MM-DD HH:MM:SS`.
pub fn format(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn now_string() -> String {
    format(now())
}
