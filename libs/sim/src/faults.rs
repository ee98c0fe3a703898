//! Injected faults: scoped rules (per user, account, endpoint) that change how requests and
//! sockets behave until they are removed, and one-shot actions applied at once.
//!
//! A rule matches a request when every scope it names matches (an unnamed scope matches
//! everything); `count` limits how many requests it affects. `DELETE /sim/faults` removes
//! every rule and lifts every socket freeze.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::core::model::Id;

/// One fault, as posted to `/sim/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Only requests of this user (name or id).
    #[serde(default)]
    pub user: Option<String>,
    /// Only requests about this account (name or id).
    #[serde(default)]
    pub account: Option<String>,
    /// Only this endpoint (`order/placeorder`, ProjectX `order/place` or `hubs/user`; a trailing
    /// `*` matches a prefix).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Affect this many requests, then disappear (`None`: until reset).
    #[serde(default)]
    pub count: Option<u32>,
}

/// How an ambiguous failure looks to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AmbiguousMode {
    /// The connection closes before the response (HTTP) or the socket drops (WebSocket).
    Drop,
    /// No response until the client gives up (the request is handled).
    Timeout,
}

/// Fault kinds (`"kind"` in JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FaultKind {
    /// Delay handling by `ms` milliseconds.
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// Answer `status` (default 500) without handling, for a `rate` share of requests.
    Error {
        /// HTTP status.
        #[serde(default = "default_error_status")]
        status: u16,
        /// Share of requests (0–1, default 1).
        #[serde(default = "one")]
        rate: f64,
    },
    /// Handle the request (the order is placed) but lose the response.
    Ambiguous {
        /// Drop or time out.
        #[serde(default = "default_ambiguous")]
        mode: AmbiguousMode,
    },
    /// Answer a penalty ticket (`pTime` seconds).
    PTicket {
        /// Seconds.
        #[serde(default = "default_ptime", rename = "pTime")]
        p_time: u64,
    },
    /// Answer a captcha penalty (token requests of the scoped user).
    Captcha,
    /// Answer 429 with an empty body.
    TooManyRequests,
    /// Answer 423.
    Locked,
    /// `position/list`, `deps`, `ldeps` (ProjectX: `Position/searchOpen`) answer 401 with an
    /// empty list.
    Positions401,
    /// Stop sending events of the scoped account (or user) on user sockets.
    SuppressEvents,
    /// Sockets of the scoped user/account stop reading and writing (until reset).
    FreezeSocket,
    /// Sockets of the scoped user/account are dropped now (no close frame).
    DropSocket,
    /// Sockets of the scoped user/account get a `shutdown` event and a close frame now.
    Shutdown {
        /// `Maintenance`, `ConnectionQuotaReached` or `IPQuotaReached`.
        #[serde(default = "default_reason", rename = "reasonCode")]
        reason_code: String,
    },
    /// Every token of the scoped user expires now.
    ExpireToken,
    /// Replay the day's events of the scoped account (or every account of the user) now.
    Replay,
}

fn default_error_status() -> u16 {
    500
}
fn one() -> f64 {
    1.0
}
fn default_ambiguous() -> AmbiguousMode {
    AmbiguousMode::Drop
}
fn default_ptime() -> u64 {
    5
}
fn default_reason() -> String {
    "Maintenance".into()
}

impl FaultKind {
    /// Whether the fault acts once, when posted, instead of staying as a rule.
    #[must_use]
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            FaultKind::DropSocket
                | FaultKind::Shutdown { .. }
                | FaultKind::ExpireToken
                | FaultKind::Replay
        )
    }
}

/// A stored rule with its scope resolved to ids.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Id.
    pub id: u64,
    /// The fault as posted.
    pub spec: FaultSpec,
    /// Resolved user.
    pub user_id: Option<Id>,
    /// Resolved account.
    pub account_id: Option<Id>,
    remaining: Option<u32>,
}

/// Where a request lands, for matching rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Point<'a> {
    /// User.
    pub user_id: Option<Id>,
    /// Account the request is about.
    pub account_id: Option<Id>,
    /// Endpoint (lower case, no leading slash).
    pub endpoint: &'a str,
}

/// The rule store.
#[derive(Debug, Default)]
pub struct Faults {
    rules: RwLock<Vec<Rule>>,
    any: AtomicBool,
    next: AtomicU64,
}

fn endpoint_matches(pattern: &str, endpoint: &str) -> bool {
    let p = pattern.trim_start_matches('/').to_ascii_lowercase();
    // Tradovate paths may be given with `v1/`, ProjectX paths with `api/`.
    let p = p
        .strip_prefix("v1/")
        .or_else(|| p.strip_prefix("api/"))
        .unwrap_or(&p);
    match p.strip_suffix('*') {
        Some(prefix) => endpoint.starts_with(prefix),
        None => endpoint == p,
    }
}

impl Faults {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Faults::default()
    }

    /// Adds a rule; returns its id.
    pub fn add(&self, spec: FaultSpec, user_id: Option<Id>, account_id: Option<Id>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let remaining = spec.count;
        self.rules.write().push(Rule {
            id,
            spec,
            user_id,
            account_id,
            remaining,
        });
        self.any.store(true, Ordering::Release);
        id
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.write().clear();
        self.any.store(false, Ordering::Release);
    }

    /// Removes one rule.
    pub fn remove(&self, id: u64) -> bool {
        let mut rules = self.rules.write();
        let before = rules.len();
        rules.retain(|r| r.id != id);
        self.any.store(!rules.is_empty(), Ordering::Release);
        rules.len() != before
    }

    /// Every rule.
    #[must_use]
    pub fn list(&self) -> Vec<Rule> {
        self.rules.read().clone()
    }

    fn scope_matches(r: &Rule, p: &Point<'_>, need_endpoint: bool) -> bool {
        if let Some(u) = r.user_id
            && p.user_id != Some(u)
        {
            return false;
        }
        if let Some(a) = r.account_id
            && p.account_id != Some(a)
        {
            return false;
        }
        match &r.spec.endpoint {
            Some(e) if need_endpoint => endpoint_matches(e, p.endpoint),
            _ => true,
        }
    }

    /// The request faults that apply to `p`, consuming their counts.
    #[must_use]
    pub fn take(&self, p: &Point<'_>) -> Vec<FaultKind> {
        if !self.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut rules = self.rules.write();
        let mut rng = rand::rng();
        for r in rules.iter_mut() {
            let request_fault = matches!(
                r.spec.kind,
                FaultKind::Latency { .. }
                    | FaultKind::Error { .. }
                    | FaultKind::Ambiguous { .. }
                    | FaultKind::PTicket { .. }
                    | FaultKind::Captcha
                    | FaultKind::TooManyRequests
                    | FaultKind::Locked
                    | FaultKind::Positions401
            );
            if !request_fault || !Self::scope_matches(r, p, true) {
                continue;
            }
            if let FaultKind::Positions401 = r.spec.kind
                && !(p.endpoint.starts_with("position/")
                    && matches!(
                        p.endpoint.rsplit('/').next(),
                        Some("list" | "deps" | "ldeps" | "searchopen")
                    ))
            {
                continue;
            }
            if let FaultKind::Error { rate, .. } = r.spec.kind
                && rate < 1.0
                && rng.random::<f64>() >= rate
            {
                continue;
            }
            if r.remaining == Some(0) {
                continue;
            }
            if let Some(n) = r.remaining.as_mut() {
                *n -= 1;
            }
            out.push(r.spec.kind.clone());
        }
        rules.retain(|r| r.remaining != Some(0));
        self.any.store(!rules.is_empty(), Ordering::Release);
        out
    }

    /// Whether events of `account_id` (owned by `user_id`) must not be sent.
    #[must_use]
    pub fn suppressed(&self, user_id: Id, account_id: Id) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.rules.read().iter().any(|r| {
            matches!(r.spec.kind, FaultKind::SuppressEvents)
                && r.user_id.is_none_or(|u| u == user_id)
                && r.account_id.is_none_or(|a| a == account_id)
        })
    }

    /// Whether a socket of `user_id` serving `accounts` must stay frozen.
    #[must_use]
    pub fn frozen(&self, user_id: Option<Id>, accounts: &[Id]) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.rules.read().iter().any(|r| {
            matches!(r.spec.kind, FaultKind::FreezeSocket)
                && r.user_id.is_none_or(|u| Some(u) == user_id)
                && r.account_id.is_none_or(|a| accounts.contains(&a))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FaultKind) -> FaultSpec {
        FaultSpec {
            kind,
            user: None,
            account: None,
            endpoint: None,
            count: None,
        }
    }

    #[test]
    fn json_shape() {
        let f: FaultSpec = serde_json::from_str(
            r#"{"kind":"latency","ms":250,"endpoint":"order/placeorder","user":"alice"}"#,
        )
        .unwrap();
        assert_eq!(f.kind, FaultKind::Latency { ms: 250 });
        assert_eq!(f.endpoint.as_deref(), Some("order/placeorder"));
        let f: FaultSpec =
            serde_json::from_str(r#"{"kind":"pTicket","pTime":3,"count":1}"#).unwrap();
        assert_eq!(f.kind, FaultKind::PTicket { p_time: 3 });
        let f: FaultSpec =
            serde_json::from_str(r#"{"kind":"ambiguous","mode":"timeout"}"#).unwrap();
        assert_eq!(
            f.kind,
            FaultKind::Ambiguous {
                mode: AmbiguousMode::Timeout
            }
        );
        assert!(serde_json::from_str::<FaultSpec>(r#"{"kind":"nope"}"#).is_err());
    }

    #[test]
    fn scope_and_count() {
        let faults = Faults::new();
        let mut s = spec(FaultKind::Locked);
        s.endpoint = Some("/v1/order/*".into());
        s.count = Some(1);
        faults.add(s, Some(7), None);
        let other_user = Point {
            user_id: Some(8),
            account_id: None,
            endpoint: "order/placeorder",
        };
        assert!(faults.take(&other_user).is_empty());
        let other_endpoint = Point {
            user_id: Some(7),
            account_id: None,
            endpoint: "account/list",
        };
        assert!(faults.take(&other_endpoint).is_empty());
        let hit = Point {
            user_id: Some(7),
            account_id: None,
            endpoint: "order/placeorder",
        };
        assert_eq!(faults.take(&hit), vec![FaultKind::Locked]);
        assert!(faults.take(&hit).is_empty(), "count exhausted");
        assert!(faults.list().is_empty());
    }

    #[test]
    fn positions_401_only_hits_position_lists() {
        let faults = Faults::new();
        faults.add(spec(FaultKind::Positions401), None, None);
        let p = |e| Point {
            user_id: Some(1),
            account_id: None,
            endpoint: e,
        };
        assert!(faults.take(&p("order/list")).is_empty());
        assert_eq!(
            faults.take(&p("position/list")),
            vec![FaultKind::Positions401]
        );
        assert_eq!(
            faults.take(&p("position/deps")),
            vec![FaultKind::Positions401]
        );
        faults.clear();
        assert!(faults.take(&p("position/list")).is_empty());
    }
}
