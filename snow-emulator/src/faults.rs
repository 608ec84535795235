//! Fault injection (designed; docs/reliability.md): a plan of faults installed through
//! `/_emulator/faults` or `--faults FILE`, consulted where each fault acts — the HTTP layer
//! (status codes, 429 with `Retry-After`, latency, dropped connections, expired tokens), the
//! integration endpoint (a segment's return code, a full disk) and the worker (a transaction
//! that hangs in Processing, fails during its transform, or is slow to transform).
//!
//! Every fault counts the events it matches; it fires from its `nth` match on (default 1),
//! at most `times` times (default: every time), and, with `fraction`, on a seeded
//! pseudo-random share of its matches — the same seed and requests give the same firings.
//! This module knows nothing of the app: callers pass what the event is (a path, a
//! transaction type).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One fault as it is written in a plan (JSON body or TOML file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: Kind,
    /// Only requests whose path starts with this (HTTP faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Only segments / transactions of this type (segment and worker faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// `segment_code`: the return code answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// `http_status`: the status answered, with `retry_after` seconds if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// `latency`: the delay, before the request (`when = "request"`, default) or before the
    /// transaction's transform (`when = "transform"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SegmentCode,
    HttpStatus,
    Latency,
    DropConnection,
    HangTransaction,
    FailTransform,
    ExpireToken,
    DiskFull,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum When {
    #[default]
    Request,
    /// `drop_connection`: the request is processed, then the connection drops before the
    /// answer is written (the client cannot tell whether it landed).
    Response,
    /// `latency`: before a transaction is transformed.
    Transform,
}

/// A whole plan: what `POST /_emulator/faults` takes and `--faults FILE` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    #[serde(default)]
    pub seed: u64,
    #[serde(default, alias = "fault")]
    pub faults: Vec<FaultSpec>,
}

impl Plan {
    /// Checks that each fault has what its kind needs.
    pub fn validate(&self) -> Result<(), String> {
        for (i, f) in self.faults.iter().enumerate() {
            let need = |ok: bool, what: &str| {
                if ok {
                    Ok(())
                } else {
                    Err(format!("fault {i} ({:?}) needs {what}", f.kind))
                }
            };
            match f.kind {
                Kind::SegmentCode => need(f.code.is_some(), "`code`")?,
                Kind::HttpStatus => need(
                    f.status.is_some_and(|s| (400..600).contains(&s)),
                    "`status` between 400 and 599",
                )?,
                Kind::Latency => need(
                    f.latency_ms.is_some_and(|ms| ms <= 120_000),
                    "`latency_ms` (at most 120000)",
                )?,
                _ => {}
            }
            if let Some(p) = f.fraction {
                need((0.0..=1.0).contains(&p), "`fraction` between 0 and 1")?;
            }
            if f.nth == Some(0) {
                return Err(format!("fault {i}: `nth` counts from 1"));
            }
        }
        Ok(())
    }
}

/// What the HTTP layer does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFault {
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    Delay(Duration),
    DropBeforeHandling,
    DropAfterHandling,
    ExpiredToken,
}

/// What the integration endpoint does to one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentFault {
    Code(i64),
    DiskFull,
}

/// What the worker does to one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerFault {
    Hang,
    Fail,
    Delay(Duration),
}

#[derive(Debug, Clone, Serialize)]
struct Installed {
    #[serde(flatten)]
    spec: FaultSpec,
    matched: u64,
    fired: u64,
}

#[derive(Debug, Default)]
struct State {
    seed: u64,
    faults: Vec<Installed>,
    /// Transactions (by number) a `hang_transaction` fault holds in Processing.
    hung: HashSet<String>,
}

/// The instance's fault plan. Cheap to consult when empty.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

/// splitmix64: a deterministic draw in [0, 1) for (seed, fault, match).
fn draw(seed: u64, fault: usize, matched: u64) -> f64 {
    let mut z = seed
        ^ (fault as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ matched.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters only; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the plan (after [`Plan::validate`]).
    pub fn install(&self, plan: Plan) -> Result<(), String> {
        plan.validate()?;
        let mut s = self.lock();
        s.seed = plan.seed;
        s.faults = plan
            .faults
            .into_iter()
            .map(|spec| Installed {
                spec,
                matched: 0,
                fired: 0,
            })
            .collect();
        s.hung.clear();
        Ok(())
    }

    /// Removes every fault and releases hung transactions.
    pub fn clear(&self) {
        self.install(Plan::default()).unwrap_or_default();
    }

    /// The plan with each fault's counters, for `GET /_emulator/faults`.
    pub fn describe(&self) -> serde_json::Value {
        let s = self.lock();
        serde_json::json!({ "seed": s.seed, "faults": s.faults, "hung": s.hung })
    }

    /// Counts the event against each fault of `kinds` that `matches` it and returns the
    /// first that fires.
    fn fire(&self, kinds: &[Kind], matches: impl Fn(&FaultSpec) -> bool) -> Option<FaultSpec> {
        let mut s = self.lock();
        let seed = s.seed;
        let mut fired = None;
        for (i, f) in s.faults.iter_mut().enumerate() {
            if !kinds.contains(&f.spec.kind) || !matches(&f.spec) {
                continue;
            }
            f.matched += 1;
            let due = f.matched >= f.spec.nth.unwrap_or(1);
            let left = f.spec.times.is_none_or(|t| f.fired < t);
            let drawn = f.spec.fraction.is_none_or(|p| draw(seed, i, f.matched) < p);
            if fired.is_none() && due && left && drawn {
                f.fired += 1;
                fired = Some(f.spec.clone());
            }
        }
        fired
    }

    /// The fault, if any, for one HTTP request (never for `/_emulator/` controls).
    pub fn on_request(&self, path: &str, has_bearer: bool) -> Option<HttpFault> {
        if path.starts_with("/_emulator/") {
            return None;
        }
        let kinds = [
            Kind::HttpStatus,
            Kind::Latency,
            Kind::DropConnection,
            Kind::ExpireToken,
        ];
        let spec = self.fire(&kinds, |f| {
            let on_path = f.path_prefix.as_deref().is_none_or(|p| path.starts_with(p));
            let timed = f.kind != Kind::Latency || f.when.unwrap_or_default() == When::Request;
            let bearer = f.kind != Kind::ExpireToken || has_bearer;
            on_path && timed && bearer
        })?;
        Some(match spec.kind {
            Kind::HttpStatus => HttpFault::Status {
                status: spec.status.unwrap_or(500),
                retry_after: spec.retry_after,
            },
            Kind::Latency => HttpFault::Delay(Duration::from_millis(spec.latency_ms.unwrap_or(0))),
            Kind::DropConnection if spec.when == Some(When::Response) => {
                HttpFault::DropAfterHandling
            }
            Kind::DropConnection => HttpFault::DropBeforeHandling,
            _ => HttpFault::ExpiredToken,
        })
    }

    /// The fault, if any, for one data segment of `transaction_type`.
    pub fn on_segment(&self, transaction_type: &str) -> Option<SegmentFault> {
        let spec = self.fire(&[Kind::SegmentCode, Kind::DiskFull], |f| {
            type_matches(f, transaction_type)
        })?;
        Some(match spec.kind {
            Kind::SegmentCode => SegmentFault::Code(spec.code.unwrap_or(50)),
            _ => SegmentFault::DiskFull,
        })
    }

    /// Whether writes through the Table API are refused (a `disk_full` fault is installed).
    pub fn disk_full(&self) -> bool {
        self.lock()
            .faults
            .iter()
            .any(|f| f.spec.kind == Kind::DiskFull)
    }

    /// The fault, if any, for transaction `number` of `transaction_type` about to be
    /// transformed. A hung transaction stays hung until the plan is cleared.
    pub fn on_transaction(&self, number: &str, transaction_type: &str) -> Option<WorkerFault> {
        if self.lock().hung.contains(number) {
            return Some(WorkerFault::Hang);
        }
        let kinds = [Kind::HangTransaction, Kind::FailTransform, Kind::Latency];
        let spec = self.fire(&kinds, |f| {
            let timed = f.kind != Kind::Latency || f.when == Some(When::Transform);
            timed && type_matches(f, transaction_type)
        })?;
        Some(match spec.kind {
            Kind::HangTransaction => {
                self.lock().hung.insert(number.to_owned());
                WorkerFault::Hang
            }
            Kind::FailTransform => WorkerFault::Fail,
            _ => WorkerFault::Delay(Duration::from_millis(spec.latency_ms.unwrap_or(0))),
        })
    }
}

fn type_matches(f: &FaultSpec, transaction_type: &str) -> bool {
    f.transaction_type
        .as_deref()
        .is_none_or(|t| t.eq_ignore_ascii_case(transaction_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(toml_text: &str) -> Plan {
        toml::from_str(toml_text).expect("plan")
    }

    #[test]
    fn nth_and_times_select_which_matches_fire() {
        let f = Faults::default();
        f.install(plan(
            "[[fault]]\nkind = \"segment_code\"\ncode = 50\nnth = 2\ntimes = 2\ntransaction_type = \"inventory_export\"\n",
        ))
        .expect("install");
        let fired: Vec<bool> = (0..5)
            .map(|_| f.on_segment("inventory_export").is_some())
            .collect();
        assert_eq!(fired, [false, true, true, false, false]);
        assert_eq!(f.on_segment("contract_export"), None);
    }

    #[test]
    fn a_fraction_is_deterministic_under_a_seed() {
        let run = |seed: u64| {
            let f = Faults::default();
            f.install(plan(&format!(
                "seed = {seed}\n[[fault]]\nkind = \"http_status\"\nstatus = 503\nfraction = 0.3\n"
            )))
            .expect("install");
            (0..200)
                .map(|_| f.on_request("/api/now/table/x", false).is_some())
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let share = a.iter().filter(|x| **x).count();
        assert!((30..90).contains(&share), "{share} of 200");
    }

    #[test]
    fn bad_plans_are_refused_with_the_reason() {
        let f = Faults::default();
        for (text, why) in [
            ("[[fault]]\nkind = \"segment_code\"\n", "needs `code`"),
            (
                "[[fault]]\nkind = \"http_status\"\nstatus = 200\n",
                "between 400",
            ),
            ("[[fault]]\nkind = \"latency\"\n", "latency_ms"),
            (
                "[[fault]]\nkind = \"drop_connection\"\nfraction = 2.0\n",
                "fraction",
            ),
            (
                "[[fault]]\nkind = \"disk_full\"\nnth = 0\n",
                "counts from 1",
            ),
        ] {
            let err = f.install(plan(text)).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
        assert!(toml::from_str::<Plan>("[[fault]]\nkind = \"meteor\"\n").is_err());
    }

    #[test]
    fn a_hung_transaction_stays_hung_until_cleared() {
        let f = Faults::default();
        f.install(plan("[[fault]]\nkind = \"hang_transaction\"\ntimes = 1\n"))
            .expect("install");
        assert_eq!(
            f.on_transaction("ITRN1", "inventory_export"),
            Some(WorkerFault::Hang)
        );
        assert_eq!(
            f.on_transaction("ITRN1", "inventory_export"),
            Some(WorkerFault::Hang)
        );
        assert_eq!(f.on_transaction("ITRN2", "inventory_export"), None);
        f.clear();
        assert_eq!(f.on_transaction("ITRN1", "inventory_export"), None);
    }

    #[test]
    fn controls_and_other_kinds_are_never_hit_by_http_faults() {
        let f = Faults::default();
        f.install(plan(
            "[[fault]]\nkind = \"expire_token\"\n[[fault]]\nkind = \"latency\"\nlatency_ms = 5\nwhen = \"transform\"\n",
        ))
        .expect("install");
        assert_eq!(f.on_request("/_emulator/faults", true), None);
        assert_eq!(f.on_request("/oauth_token.do", false), None);
        assert_eq!(
            f.on_request("/api/now/table/x", true),
            Some(HttpFault::ExpiredToken)
        );
    }
}
