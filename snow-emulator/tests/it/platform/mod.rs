//! The platform as clients see it (docs/platform-api.md): roles and ACLs, OAuth client
//! authentication and grants, Table API media types and display values, the Aggregate and
//! Import Set APIs, rate limits, and real ServiceNow clients over HTTPS. Each test names the
//! ServiceNow page it checks (URLs in docs/sources.md, section "Platform").

mod acl;
mod clients;
mod import_set;
mod oauth;
mod rate_limit;
mod stats;
mod table;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::check::{Emulator, Reply};

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

pub const ADMIN: Auth<'static> = Auth::Basic("admin", "admin");

/// Sends a request with a JSON body (or none) and reads the reply.
pub async fn call(
    emu: &Emulator,
    method: Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<&Value>,
) -> Reply {
    let mut req = emu
        .client
        .request(method, emu.url(path))
        .header("Accept", "application/json");
    req = match auth {
        Auth::Bearer(t) => req.bearer_auth(t),
        Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
    };
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.expect("send");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Asserts ServiceNow's 403 envelope.
pub fn assert_forbidden(r: &Reply) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["status"], "failure", "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        r.body
    );
}

/// The sys_id of the first record matching a query (as admin).
pub async fn sys_id_of(emu: &Emulator, table: &str, query: &str) -> String {
    let records = emu.records(table, query).await;
    records
        .first()
        .and_then(|r| r["sys_id"].as_str())
        .unwrap_or_else(|| panic!("no {table} record matches {query}"))
        .to_owned()
}
