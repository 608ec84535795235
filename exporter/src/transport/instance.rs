//! A ServiceNow instance as the exporter sees it: one authenticated HTTP client, the refresh
//! token it trades for access tokens, and three kinds of calls, each retried by the policy.

use std::fmt;
use std::path::Path;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};

use super::messages::{Envelope, SAM_PLUGIN_MISSING, Transaction, TxResult, return_code_name};
use super::retry::{Attempt, RetryPolicy, retry_after};
use crate::log::Log;

/// Why a call to the instance did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Every one of `tries` tries failed; `last` says how the last one did.
    Exhausted { tries: u32, last: String },
    /// Return code 30: abandon the export at once (documented [EXP-22R2]).
    Abandoned(String),
    /// The refresh token was refused, or the access token twice.
    Unauthorized(String),
    /// A refusal that retrying cannot change (e.g. a Table API ACL).
    Refused(String),
    /// No HTTP answer, for a reason retrying cannot change (before any data is sent).
    Unreachable(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Exhausted { tries, last } => {
                write!(f, "not accepted after {tries} tries; last: {last}")
            }
            Failure::Abandoned(reason)
            | Failure::Unauthorized(reason)
            | Failure::Refused(reason)
            | Failure::Unreachable(reason) => f.write_str(reason),
        }
    }
}

/// What a Table API query returned: the total count and the first record.
#[derive(Debug, Clone)]
pub(crate) struct TableAnswer {
    pub(crate) count: u64,
    pub(crate) first: Option<serde_json::Value>,
}

/// Connection settings of an [`Instance`].
pub(crate) struct InstanceConfig<'a> {
    pub(crate) url: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: &'a str,
    pub(crate) refresh_token: &'a str,
    pub(crate) ca_file: Option<&'a Path>,
    pub(crate) request_timeout: std::time::Duration,
    pub(crate) policy: RetryPolicy,
}

pub(crate) struct Instance {
    client: Client,
    base: String,
    endpoint_path: String,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    access_token: Option<String>,
    policy: RetryPolicy,
    /// `host:port` of the instance, for messages.
    host: String,
    /// Until data is sent, causes no retry can fix fail at once (see [`transport_error`]).
    fail_fast: bool,
}

impl Instance {
    /// Builds the HTTP client. Fails only on a bad `ca_file`.
    pub(crate) fn new(config: InstanceConfig<'_>) -> Result<Instance, String> {
        let mut builder = Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!(
                "fnmp_servicenow_export/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(path) = config.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read CA file '{}': {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("CA file '{}' is not PEM: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "CA file '{}' holds no PEM certificate",
                    path.display()
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let host = reqwest::Url::parse(config.url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port_or_known_default() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| config.url.to_owned());
        Ok(Instance {
            host,
            fail_fast: true,
            client,
            base: config.url.to_owned(),
            endpoint_path: config.endpoint.to_owned(),
            client_id: config.client_id.to_owned(),
            client_secret: config.client_secret.to_owned(),
            refresh_token: config.refresh_token.to_owned(),
            access_token: None,
            policy: config.policy,
        })
    }

    /// Sets the integration endpoint path (`-endpoint`, the database's setting, or the default).
    pub(crate) fn set_endpoint(&mut self, endpoint: &str) {
        endpoint
            .trim_start_matches('/')
            .clone_into(&mut self.endpoint_path);
    }

    /// From now on data is being sent: every failed try is retried (documented ten tries).
    pub(crate) fn end_preflight(&mut self) {
        self.fail_fast = false;
    }

    /// Retried tries so far.
    pub(crate) fn retries(&self) -> u64 {
        self.policy.retries()
    }

    pub(crate) fn endpoint_path(&self) -> &str {
        &self.endpoint_path
    }

    /// Trades the refresh token for an access token at `/oauth_token.do` (wire-protocol §2).
    pub(crate) fn authorise(&mut self, log: &mut Log) -> Result<(), Failure> {
        let url = format!("{}/oauth_token.do", self.base);
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("refresh_token", self.refresh_token.as_str()),
        ];
        let client = &self.client;
        let (fail_fast, host) = (self.fail_fast, self.host.as_str());
        let token = self.policy.run(
            log,
            "token request",
            |log| {
                let response = match client
                    .post(&url)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&form)
                    .send()
                {
                    Ok(response) => response,
                    Err(e) => return transport_error(&e, fail_fast, host),
                };
                let status = response.status();
                log.debug(format!("POST /oauth_token.do -> {}", status.as_u16()));
                match status {
                    StatusCode::OK => match read_json::<serde_json::Value>(response) {
                        Ok(body) => match body.get("access_token").and_then(|t| t.as_str()) {
                            Some(token) if !token.is_empty() => Attempt::Done(token.to_owned()),
                            _ => Attempt::Retry {
                                reason: "token response has no access_token".into(),
                                retry_after: None,
                            },
                        },
                        Err(e) => Attempt::Retry {
                            reason: format!("unreadable token response: {e}"),
                            retry_after: None,
                        },
                    },
                    StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                        Attempt::Fail(Failure::Unauthorized(format!(
                            "the instance refused the refresh token: HTTP {}{}",
                            status.as_u16(),
                            oauth_error(response)
                        )))
                    }
                    _ if retryable(status) => retry_status(response),
                    _ => Attempt::Fail(Failure::Refused(format!(
                        "unexpected HTTP {} from /oauth_token.do{}",
                        status.as_u16(),
                        error_message(response)
                    ))),
                }
            },
            |tries, last| Failure::Exhausted { tries, last },
        )?;
        self.access_token = Some(token);
        Ok(())
    }

    /// Sends a transaction to the integration endpoint with the policy's retries (same body,
    /// same `transactionId`). Return code 0 is success, 30 abandons, any other is retried.
    pub(crate) fn transact(
        &mut self,
        log: &mut Log,
        what: &str,
        transaction: &Transaction<'_>,
    ) -> Result<TxResult, Failure> {
        let mut body = Vec::with_capacity(
            transaction
                .data
                .map_or(256, |d| d.len() + d.len() / 8 + 512),
        );
        serde_json::to_writer(&mut body, transaction)
            .map_err(|e| Failure::Refused(format!("cannot encode the request: {e}")))?;
        let url = format!("{}/{}", self.base, self.endpoint_path);
        let path = format!("/{}", self.endpoint_path);
        self.send(
            log,
            what,
            &|client, token| {
                client
                    .post(&url)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(reqwest::header::ACCEPT, "application/json")
                    .body(body.clone())
            },
            &mut |log, response| {
                let status = response.status();
                log.debug(format!(
                    "POST {path} ({}) -> {}",
                    transaction.transaction_type,
                    status.as_u16()
                ));
                if status == StatusCode::OK {
                    match read_json::<Envelope>(response) {
                        Ok(Envelope { result }) if result.return_code == 0 => Attempt::Done(result),
                        Ok(Envelope { result }) if result.return_code == SAM_PLUGIN_MISSING => {
                            Attempt::Fail(Failure::Abandoned(format!(
                                "returnCode 30 SAM_PLUGIN_MISSING{}",
                                message_suffix(result.message.as_deref())
                            )))
                        }
                        Ok(Envelope { result }) => Attempt::Retry {
                            reason: format!(
                                "returnCode {} {}{}",
                                result.return_code,
                                return_code_name(result.return_code),
                                message_suffix(result.message.as_deref())
                            ),
                            retry_after: None,
                        },
                        Err(e) => Attempt::Retry {
                            reason: format!("unreadable response: {e}"),
                            retry_after: None,
                        },
                    }
                } else {
                    // Every refusal is a failed try (wire-protocol §3.1); 401 is handled by send.
                    retry_status(response)
                }
            },
        )
    }

    /// `GET /api/now/table/{table}?sysparm_query=…&sysparm_limit=1` (wire-protocol §5).
    pub(crate) fn table_query(
        &mut self,
        log: &mut Log,
        what: &str,
        table: &str,
        query: &str,
    ) -> Result<TableAnswer, Failure> {
        let url = format!("{}/api/now/table/{table}", self.base);
        let path = format!("/api/now/table/{table}");
        self.send(
            log,
            what,
            &|client, token| {
                client
                    .get(&url)
                    .bearer_auth(token)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .query(&[("sysparm_query", query), ("sysparm_limit", "1")])
            },
            &mut |log, response| {
                let status = response.status();
                log.debug(format!("GET {path} -> {}", status.as_u16()));
                if status == StatusCode::OK {
                    let total = response
                        .headers()
                        .get("X-Total-Count")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    match read_json::<serde_json::Value>(response) {
                        Ok(body) => {
                            let records = body.get("result").and_then(|r| r.as_array());
                            match records {
                                Some(records) => Attempt::Done(TableAnswer {
                                    count: total.unwrap_or(records.len() as u64),
                                    first: records.first().cloned(),
                                }),
                                None => Attempt::Retry {
                                    reason: format!("response from {path} has no result list"),
                                    retry_after: None,
                                },
                            }
                        }
                        Err(e) => Attempt::Retry {
                            reason: format!("unreadable response from {path}: {e}"),
                            retry_after: None,
                        },
                    }
                } else if retryable(status) {
                    retry_status(response)
                } else {
                    Attempt::Fail(Failure::Refused(format!(
                        "HTTP {} from {path}{}",
                        status.as_u16(),
                        error_message(response)
                    )))
                }
            },
        )
    }

    /// One request with the policy's retries. Obtains an access token first if there is none;
    /// on a 401 trades the refresh token once more and repeats the request (not counted as a
    /// try); a second 401 fails.
    fn send<T>(
        &mut self,
        log: &mut Log,
        what: &str,
        request: &dyn Fn(&Client, &str) -> RequestBuilder,
        interpret: &mut dyn FnMut(&mut Log, Response) -> Attempt<T, Failure>,
    ) -> Result<T, Failure> {
        let policy = self.policy.clone();
        let mut refreshed = false;
        policy.run(
            log,
            what,
            |log| loop {
                if self.access_token.is_none()
                    && let Err(failure) = self.authorise(log)
                {
                    return Attempt::Fail(failure);
                }
                let token = self.access_token.clone().unwrap_or_default();
                let response = match request(&self.client, &token).send() {
                    Ok(response) => response,
                    Err(e) => return transport_error(&e, self.fail_fast, &self.host),
                };
                if response.status() != StatusCode::UNAUTHORIZED {
                    return interpret(log, response);
                }
                if refreshed {
                    return Attempt::Fail(Failure::Unauthorized(
                        "the instance refused the access token again after a refresh (HTTP 401)"
                            .into(),
                    ));
                }
                log.debug(format!(
                    "{what}: access token refused (HTTP 401); trading the refresh token again"
                ));
                refreshed = true;
                self.access_token = None;
            },
            |tries, last| Failure::Exhausted { tries, last },
        )
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// A failed try from a request that got no HTTP answer. Before any data is sent
/// (`fail_fast`), a cause no retry can fix (refused connection, unknown host, TLS failure)
/// fails at once with its fix; timeouts, and everything once data flows, are retried.
fn transport_error<T>(error: &reqwest::Error, fail_fast: bool, host: &str) -> Attempt<T, Failure> {
    let chain = error_chain(error);
    if fail_fast
        && !error.is_timeout()
        && let Some(cause) = Unreachable::classify(&chain)
    {
        return Attempt::Fail(Failure::Unreachable(cause.explain(host, &chain)));
    }
    let kind = if error.is_timeout() {
        "request timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    Attempt::Retry {
        reason: format!("{kind}: {chain}"),
        retry_after: None,
    }
}

/// Why the instance cannot be reached at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreachable {
    ConnectionRefused,
    UnknownHost,
    CertificateNotTrusted,
    TlsHandshake,
}

impl Unreachable {
    /// Recognises the cause in an error chain's text (reqwest, hyper, rustls and the OS
    /// resolver expose no finer types through `reqwest::Error`).
    pub(crate) fn classify(chain: &str) -> Option<Unreachable> {
        let text = chain.to_ascii_lowercase();
        if text.contains("connection refused") || text.contains("os error 111") {
            Some(Unreachable::ConnectionRefused)
        } else if text.contains("dns error")
            || text.contains("failed to lookup address")
            || text.contains("name or service not known")
            || text.contains("no such host")
        {
            Some(Unreachable::UnknownHost)
        } else if text.contains("certificate") || text.contains("unknownissuer") {
            Some(Unreachable::CertificateNotTrusted)
        } else if text.contains("tls")
            || text.contains("handshake")
            || text.contains("corrupt message")
        {
            Some(Unreachable::TlsHandshake)
        } else {
            None
        }
    }

    fn explain(self, host: &str, chain: &str) -> String {
        match self {
            Unreachable::ConnectionRefused => format!(
                "nothing accepts connections at {host} (connection refused); check the port in \
                 -url and that the instance is up"
            ),
            Unreachable::UnknownHost => format!(
                "the host name in -url ({host}) cannot be resolved; check its spelling and the \
                 DNS of this machine"
            ),
            Unreachable::CertificateNotTrusted => format!(
                "the certificate of {host} is not trusted ({chain}); if the instance uses a \
                 private certificate authority, pass its PEM certificate with --ca-file PATH"
            ),
            Unreachable::TlsHandshake => format!(
                "the TLS handshake with {host} failed ({chain}); check that the port speaks \
                 HTTPS (use http:// for a plain-HTTP instance)"
            ),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A failed try from an HTTP status, honouring `Retry-After`.
fn retry_status<T, F>(response: Response) -> Attempt<T, F> {
    let status = response.status().as_u16();
    let after = retry_after(&response);
    Attempt::Retry {
        reason: format!("HTTP {status}{}", error_message(response)),
        retry_after: after,
    }
}

/// `: message` from ServiceNow's error envelope, if the body is one.
fn error_message(response: Response) -> String {
    let body: Option<serde_json::Value> = read_json(response).ok();
    let message = body.as_ref().and_then(|b| {
        b.pointer("/error/message")
            .or_else(|| b.pointer("/result/message"))
            .and_then(|m| m.as_str())
    });
    message_suffix(message)
}

/// `: access_denied` from an OAuth error body.
fn oauth_error(response: Response) -> String {
    let body: Option<serde_json::Value> = read_json(response).ok();
    let message = body.as_ref().and_then(|b| {
        b.get("error_description")
            .or_else(|| b.get("error"))
            .and_then(|m| m.as_str())
    });
    message_suffix(message)
}

/// The most of an answer the exporter reads (designed): the largest the integration sends
/// back is a few kilobytes, so a bigger body is a misbehaving instance or a proxy's page,
/// and reading it all would make memory depend on the other side.
pub(crate) const MAX_ANSWER: u64 = 4 * 1024 * 1024;

/// Reads at most [`MAX_ANSWER`] bytes of a body and parses them as JSON; larger, unreadable
/// or not JSON is an error saying which.
fn read_json<T: serde::de::DeserializeOwned>(body: impl std::io::Read) -> Result<T, String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    body.take(MAX_ANSWER + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("the answer could not be read: {e}"))?;
    if bytes.len() as u64 > MAX_ANSWER {
        return Err(format!(
            "the answer is larger than {} MiB",
            MAX_ANSWER / (1024 * 1024)
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
        format!("not JSON ({e}), starting {start:?}")
    })
}

fn message_suffix(message: Option<&str>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// Any bytes an instance may answer: an error or a value, never a panic; the
        /// envelope's return code is read whenever the bytes are such an envelope.
        /// `PROPTEST_CASES=100000` runs it long.
        #[test]
        fn any_answer_is_read_or_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512), code in any::<i64>()) {
            let _ = read_json::<Envelope>(&bytes[..]);
            let _ = read_json::<serde_json::Value>(&bytes[..]);
            let envelope = format!("{{\"result\": {{\"returnCode\": {code}}}}}");
            let read = read_json::<Envelope>(envelope.as_bytes());
            prop_assert_eq!(read.map(|e| e.result.return_code), Ok(code));
        }
    }

    #[test]
    fn an_answer_over_the_limit_is_refused() {
        let big = vec![b' '; MAX_ANSWER as usize + 1];
        let err = read_json::<serde_json::Value>(&big[..]).expect_err("too large");
        assert!(err.contains("larger than 4 MiB"), "{err}");
    }

    use super::*;

    #[test]
    fn causes_no_retry_can_fix_are_recognised_in_the_error_chain() {
        for (chain, expected) in [
            (
                "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
                Some(Unreachable::ConnectionRefused),
            ),
            (
                "client error (Connect): dns error: failed to lookup address information: Name or service not known",
                Some(Unreachable::UnknownHost),
            ),
            (
                "client error (Connect): invalid peer certificate: UnknownIssuer",
                Some(Unreachable::CertificateNotTrusted),
            ),
            (
                "client error (Connect): received corrupt message of type InvalidContentType",
                Some(Unreachable::TlsHandshake),
            ),
            ("operation timed out", None),
            ("connection closed before message completed", None),
        ] {
            assert_eq!(Unreachable::classify(chain), expected, "{chain}");
        }
        let text = Unreachable::CertificateNotTrusted.explain("i.example:443", "UnknownIssuer");
        assert!(text.contains("--ca-file PATH"), "{text}");
    }
}
