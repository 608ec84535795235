//! Logged-in sessions of the web UI, as on an instance: `login.do` checks the user's password
//! and sets a `JSESSIONID` cookie; the session ends at `logout.do` or after 30 minutes without
//! a request (glide.ui.session_timeout's fallback, [SN-SESSION] in docs/sources.md), measured
//! on the instance clock. Sessions live in memory (designed): a restarted emulator asks
//! everyone to log in again.
//!
//! Every form a page shows carries the session's `sysparm_ck` token, and a POST without the
//! right one changes nothing (ServiceNow's form token, against cross-site requests).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;

/// The cookie an instance sets for a UI session.
pub const COOKIE: &str = "JSESSIONID";
/// glide.ui.session_timeout's fallback, in minutes.
pub const IDLE_MINUTES: i64 = 30;
/// More sessions than any developer machine needs; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
struct Session {
    user_name: String,
    csrf: String,
    last_seen: DateTime<Utc>,
}

/// One logged-in user, as a request sees it.
#[derive(Debug, Clone)]
pub struct Active {
    pub user_name: String,
    pub csrf: String,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

fn random(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Sessions {
    /// Opens a session for `user_name`; returns its cookie value.
    pub fn open(&self, user_name: &str, now: DateTime<Utc>) -> String {
        let id = random(32);
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| now - s.last_seen < Duration::minutes(IDLE_MINUTES));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                user_name: user_name.to_owned(),
                csrf: random(40),
                last_seen: now,
            },
        );
        id
    }

    /// The session behind a cookie value when it has not timed out; the request renews it.
    pub fn touch(&self, id: &str, now: DateTime<Utc>) -> Option<Active> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let session = map.get_mut(id)?;
        if now - session.last_seen >= Duration::minutes(IDLE_MINUTES) {
            map.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(Active {
            user_name: session.user_name.clone(),
            csrf: session.csrf.clone(),
        })
    }

    pub fn close(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// The `Set-Cookie` value that starts (or, with an empty id, ends) a session.
pub fn set_cookie(id: &str) -> String {
    if id.is_empty() {
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    } else {
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_times_out_after_thirty_idle_minutes_and_each_request_renews_it() {
        let sessions = Sessions::default();
        let t0 = Utc::now();
        let id = sessions.open("admin", t0);
        let active = sessions
            .touch(&id, t0 + Duration::minutes(29))
            .expect("alive");
        assert_eq!(active.user_name, "admin");
        assert_eq!(active.csrf.len(), 40);
        assert!(sessions.touch(&id, t0 + Duration::minutes(58)).is_some());
        assert!(sessions.touch(&id, t0 + Duration::minutes(88)).is_none());
        assert!(sessions.touch(&id, t0 + Duration::minutes(89)).is_none());
    }

    #[test]
    fn a_closed_session_is_gone_and_cookies_are_read_among_others() {
        let sessions = Sessions::default();
        let id = sessions.open("admin", Utc::now());
        let header = format!("glide_user_route=x; {COOKIE}={id}; other=1");
        assert_eq!(cookie_value(&header), Some(id.as_str()));
        sessions.close(&id);
        assert!(sessions.touch(&id, Utc::now()).is_none());
        assert_eq!(cookie_value("a=b"), None);
        assert!(set_cookie("").contains("Max-Age=0"));
    }
}
