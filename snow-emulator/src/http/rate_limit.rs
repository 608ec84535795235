//! Inbound REST rate limits as records (`sys_rate_limit_rules`, docs/platform-api.md): per
//! hour, for one user, the users holding a role, or all users; a single-user rule beats a
//! role rule beats an all-users rule, and among role rules the lowest limit wins (documented).
//! A request past the limit is answered 429 with `Retry-After`; every request a rule covers
//! carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` and
//! `X-RateLimit-Rule`. Counts are kept in memory per rule and user for the current clock
//! hour (the instance counts per node, so a restart starting afresh is faithful enough).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Timelike, Utc};
use rusqlite::Connection;

use crate::auth::Principal;
use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::store::{self, Fields, StoreError};

/// The REST API a request belongs to (`sys_rate_limit_rules.rest_api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestApi {
    Table,
    Aggregate,
    ImportSet,
    Integration,
    Other,
}

impl RestApi {
    pub fn of_path(path: &str) -> Self {
        let rest = path.strip_prefix("/api/now/").unwrap_or_default();
        let rest = match rest.split_once('/') {
            Some((v, tail)) if v == "v1" || v == "v2" => tail,
            _ => rest,
        };
        if rest.starts_with("table/") {
            Self::Table
        } else if rest.starts_with("stats/") {
            Self::Aggregate
        } else if rest.starts_with("import/") {
            Self::ImportSet
        } else if path.starts_with("/api/x_fls_flexera_fnms/") || path == "/fnmp.do" {
            Self::Integration
        } else {
            Self::Other
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Aggregate => "aggregate",
            Self::ImportSet => "import_set",
            Self::Integration => "integration",
            Self::Other => "other",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Table => "Table API",
            Self::Aggregate => "Aggregate API",
            Self::ImportSet => "Import Set API",
            Self::Integration => "Flexera Integration API",
            Self::Other => "REST API",
        }
    }
}

/// What the response must say about the rule that covered the request.
#[derive(Debug, Clone)]
pub struct Verdict {
    rule: String,
    limit: i64,
    remaining: i64,
    reset: i64,
}

/// Filled by the authentication extractor, read by [`headers`] on the way out.
#[derive(Clone, Default)]
pub struct Slot(Arc<Mutex<Option<Verdict>>>);

/// The instance's time for rate windows: the one place this module reads the clock.
fn now() -> DateTime<Utc> {
    crate::clock::now()
}

/// (rule sys_id, user sys_id) → (window start, requests). Sys_ids are random per instance,
/// so instances in one process never share a counter.
type Counters = HashMap<(String, String), (i64, i64)>;
static COUNTERS: Mutex<Option<Counters>> = Mutex::new(None);

/// The rule that applies to `who` on `api`, if any.
fn rule_for(
    conn: &Connection,
    catalog: &Catalog,
    who: &Principal,
    api: RestApi,
) -> Result<Option<Fields>, StoreError> {
    let Some(rules) = catalog.table("sys_rate_limit_rules") else {
        return Ok(None);
    };
    let mut q = store::EncodedQuery::default();
    q.and("active", store::Op::Eq, "true");
    let mut best: Option<(u8, i64, Fields)> = None;
    for rule in store::find(conn, rules, &q, 1000, 0)? {
        let api_ok = rule
            .get("rest_api")
            .is_none_or(|a| a.is_empty() || a == api.key());
        let rank = match rule.get("type").map(String::as_str) {
            Some("single_user") if rule.get("user") == Some(&who.sys_id) => 0,
            Some("role") => {
                let role = rule.get("role").cloned().unwrap_or_default();
                let name = store::display_value(conn, catalog, "sys_user_role", &role)?;
                if !who.roles.contains(&name) {
                    continue;
                }
                1
            }
            Some("all_users") => 2,
            _ => continue,
        };
        let limit = rule
            .get("rate_limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(i64::MAX);
        if api_ok
            && best
                .as_ref()
                .is_none_or(|(r, l, _)| (rank, limit) < (*r, *l))
        {
            best = Some((rank, limit, rule));
        }
    }
    Ok(best.map(|(_, _, rule)| rule))
}

/// Counts the request against the rule that covers it; `Err` when the limit is spent.
pub fn admit(
    conn: &Connection,
    catalog: &Catalog,
    who: &Principal,
    path: &str,
    slot: Option<&Slot>,
) -> Result<(), ApiError> {
    let api = RestApi::of_path(path);
    let Some(rule) = rule_for(conn, catalog, who, api)? else {
        return Ok(());
    };
    let limit: i64 = rule
        .get("rate_limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let now = now();
    let window = now.timestamp() - i64::from(now.minute() * 60 + now.second());
    let reset = window + 3600;
    let key = (rule["sys_id"].clone(), who.sys_id.clone());
    let (admitted, used) = {
        let mut counters = COUNTERS.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = counters
            .get_or_insert_with(HashMap::new)
            .entry(key)
            .or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        let admitted = entry.1 < limit;
        if admitted {
            entry.1 += 1;
        }
        (admitted, entry.1)
    };
    if let Some(slot) = slot {
        *slot.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Verdict {
            rule: rule["sys_id"].clone(),
            limit,
            remaining: (limit - used).max(0),
            reset,
        });
    }
    if !admitted {
        return Err(ApiError::RateLimited {
            detail: format!(
                "Rate limit of {limit} requests per hour for {} exceeded",
                api.label()
            ),
            retry_after: u64::try_from(reset - now.timestamp()).unwrap_or(1).max(1),
        });
    }
    Ok(())
}

/// Middleware: gives the request a [`Slot`] and writes the rule's headers on the response.
pub async fn headers(mut request: Request, next: Next) -> Response {
    let slot = Slot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let verdict = slot.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(v) = verdict {
        let h = response.headers_mut();
        for (name, value) in [
            ("X-RateLimit-Limit", v.limit.to_string()),
            ("X-RateLimit-Remaining", v.remaining.to_string()),
            ("X-RateLimit-Reset", v.reset.to_string()),
            ("X-RateLimit-Rule", v.rule),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                h.insert(name, value);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::RestApi;

    #[test]
    fn requests_are_classified_by_api() {
        for (path, api) in [
            ("/api/now/table/sys_user", RestApi::Table),
            ("/api/now/v2/table/sys_user/abc", RestApi::Table),
            ("/api/now/stats/incident", RestApi::Aggregate),
            ("/api/now/v1/stats/incident", RestApi::Aggregate),
            (
                "/api/now/import/imp_user/insertMultiple",
                RestApi::ImportSet,
            ),
            (
                "/api/x_fls_flexera_fnms/integration/fnmstosn",
                RestApi::Integration,
            ),
            ("/fnmp.do", RestApi::Integration),
            ("/_emulator/reset", RestApi::Other),
        ] {
            assert_eq!(RestApi::of_path(path), api, "{path}");
        }
    }
}
