//! `conformance record --upstream URL`: a recording proxy. The exporter is pointed at it; every
//! request is forwarded to the upstream instance unchanged and the exchange is written as
//! golden fixtures in the `fixtures/wire/` layout — `requests/NNN-name.json`,
//! `responses/NNN-name.json`, `payloads/NNN-name.xml` for segment data — plus `exchanges.json`
//! listing method, path, status and files. Secrets (tokens, passwords, client secrets,
//! Authorization headers) never reach the files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Fields whose values are secrets, wherever they occur (JSON or form bodies).
const SECRET_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "password",
    "client_secret",
    "token",
    "user_password",
];

#[derive(Clone)]
struct Recorder {
    http: reqwest::Client,
    upstream: String,
    out: PathBuf,
    counter: Arc<AtomicUsize>,
    index: Arc<Mutex<Vec<Value>>>,
}

/// Serves the proxy on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    upstream: &str,
    out: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    for dir in ["requests", "responses", "payloads"] {
        std::fs::create_dir_all(out.join(dir))
            .with_context(|| format!("cannot create {}", out.join(dir).display()))?;
    }
    let recorder = Recorder {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?,
        upstream: upstream.trim_end_matches('/').to_owned(),
        out: out.to_owned(),
        counter: Arc::new(AtomicUsize::new(0)),
        index: Arc::new(Mutex::new(Vec::new())),
    };
    let app = axum::Router::new().fallback(forward).with_state(recorder);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("the recording proxy stopped")
}

async fn forward(State(recorder): State<Recorder>, request: Request) -> Response {
    match relay(&recorder, request).await {
        Ok(response) => response,
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            format!("conformance record: upstream exchange failed: {error:#}"),
        )
            .into_response(),
    }
}

/// Hop-by-hop and length headers are the proxy's own business.
fn passes(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection" | "keep-alive"
    )
}

async fn relay(recorder: &Recorder, request: Request) -> anyhow::Result<Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 256 * 1024 * 1024).await?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())?;
    let mut upstream = recorder
        .http
        .request(method, format!("{}{path}", recorder.upstream))
        .body(body.clone());
    for (name, value) in &parts.headers {
        if passes(name) {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = upstream.send().await.context("upstream unreachable")?;
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let answer_body = answer.bytes().await?;
    recorder.write(
        parts.method.as_str(),
        &path,
        &parts.headers,
        &body,
        status,
        &answer_body,
    )?;
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    Ok(response.body(Body::from(answer_body))?)
}

impl Recorder {
    fn write(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        request: &Bytes,
        status: u16,
        response: &Bytes,
    ) -> anyhow::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut request = body_value(request, content_type);
        let name = format!("{n:03}-{}", exchange_name(path, &request));
        let mut files = Vec::new();
        if let Some(data) = request.get("data").and_then(Value::as_str) {
            let file = format!("payloads/{name}.xml");
            std::fs::write(self.out.join(&file), data)?;
            files.push(file);
        }
        redact(&mut request);
        let mut response = body_value(response, "application/json");
        redact(&mut response);
        for (dir, value) in [("requests", &request), ("responses", &response)] {
            if value.is_null() {
                continue;
            }
            let file = format!("{dir}/{name}.json");
            std::fs::write(
                self.out.join(&file),
                serde_json::to_string_pretty(value)? + "\n",
            )?;
            files.push(file);
        }
        let path = redact_query(path);
        let mut index = self
            .index
            .lock()
            .map_err(|_| anyhow::anyhow!("index poisoned"))?;
        index.push(
            json!({ "n": n, "method": method, "path": path, "status": status, "files": files }),
        );
        index.sort_by_key(|e| e["n"].as_u64());
        std::fs::write(
            self.out.join("exchanges.json"),
            serde_json::to_string_pretty(&*index)? + "\n",
        )?;
        Ok(())
    }
}

/// JSON as is; a form body as an object of its fields; anything else as a string.
fn body_value(bytes: &Bytes, content_type: &str) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return value;
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let fields: Map<String, Value> = url_decode_pairs(&text)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Value::Object(fields);
    }
    Value::String(text)
}

fn url_decode_pairs(text: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{text}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// `inventory_export`, `oauth_token`, `table_sys_properties`, …
fn exchange_name(path: &str, request: &Value) -> String {
    if let Some(kind) = request.get("transactionType").and_then(Value::as_str) {
        return sanitize(kind);
    }
    let path = path.split('?').next().unwrap_or(path);
    if path.ends_with("oauth_token.do") {
        return "oauth_token".into();
    }
    if let Some(table) = path.split("/table/").nth(1) {
        return format!(
            "table_{}",
            sanitize(table.split('/').next().unwrap_or(table))
        );
    }
    sanitize(path.trim_matches('/'))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Replaces every secret field's value, at any depth, with `[redacted]` (the golden files'
/// own placeholders for tokens).
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) && !inner.is_null() {
                    *inner = Value::String(placeholder(key).into());
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn placeholder(key: &str) -> &'static str {
    match key {
        "access_token" => "[access token]",
        "refresh_token" | "token" => "[refresh token]",
        _ => "[redacted]",
    }
}

fn redact_query(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let pairs: Vec<String> = url_decode_pairs(query)
        .into_iter()
        .map(|(k, v)| {
            let v = if SECRET_FIELDS.contains(&k.as_str()) {
                "[redacted]".to_owned()
            } else {
                v
            };
            format!("{k}={v}")
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_in_queries() {
        let mut v = json!({"refresh_token": "r", "result": {"access_token": "a", "x": [{"password": "p"}]}, "client_id": "c"});
        redact(&mut v);
        assert_eq!(
            v,
            json!({"refresh_token": "[refresh token]", "result": {"access_token": "[access token]", "x": [{"password": "[redacted]"}]}, "client_id": "c"})
        );
        assert_eq!(
            redact_query("/a?client_secret=s&b=1"),
            "/a?client_secret=[redacted]&b=1"
        );
        let form = body_value(
            &Bytes::from("grant_type=refresh_token&refresh_token=abc"),
            "application/x-www-form-urlencoded",
        );
        assert_eq!(form["refresh_token"], "abc");
    }
}
