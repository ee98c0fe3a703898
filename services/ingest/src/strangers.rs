//! Requests without a known webhook token — ill-shaped or unknown tokens, a wrong method, a
//! path that is no webhook — cost as little as possible and are logged in aggregate.
//!
//! Anyone can send them, unauthenticated and in bulk, so nothing about them may grow with
//! their number:
//!
//! - a token that cannot be one of ours (not 43 URL-safe base64 characters) is refused before
//!   any look-up, cache entry or database work;
//! - every address has a budget of such requests ([`Strangers::charge`]); over it, its
//!   requests are answered 429 with `Retry-After`, and while it is over, a token the cache does
//!   not know as a recorder's is refused without a look-up ([`Strangers::blocked`]);
//! - they are not one webhook log row each: per address and period (a minute by default) one
//!   row says how many there were, of which kinds, how many were throttled, and keeps the
//!   first body ([`Strangers::drain`]); a warning line sums the period up.
//!
//! Memory is bounded by the number of addresses tracked ([`MAX_SOURCES`]; beyond it they are
//! counted under one "other addresses" row).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use jt_store::WebhookLogId;
use jt_store::repo::webhooks::NewWebhookLog;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::webhook::RateLimit;

/// Addresses tracked at once (limits, blocks, aggregates).
pub const MAX_SOURCES: usize = 10_000;
/// How much of the first body of an address the aggregate row keeps.
const KEPT_BODY_BYTES: usize = 1024;

/// The kinds of request counted here (bounded: metric labels and the aggregate's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A token that cannot be ours (length, alphabet, or not UTF-8 in the path).
    InvalidToken,
    /// A well-formed token no recorder has.
    UnknownToken,
    /// A method other than POST on a webhook URL.
    WrongMethod,
    /// A path that is no webhook.
    NoSuchPath,
}

impl Kind {
    /// The short name (logs, metrics, the aggregate row).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::InvalidToken => "invalid_token",
            Kind::UnknownToken => "unknown_token",
            Kind::WrongMethod => "wrong_method",
            Kind::NoSuchPath => "no_such_path",
        }
    }
}

#[derive(Debug)]
struct Seen {
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    kinds: BTreeMap<Kind, u64>,
    throttled: u64,
    first_status: u16,
    first_body: String,
}

/// The per-address budget, blocks and aggregates; shared by the handlers.
pub struct Strangers {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    limit: RateLimit,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    seen: Mutex<HashMap<Option<IpAddr>, Seen>>,
}

impl std::fmt::Debug for Strangers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strangers")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The address used for requests whose peer is unknown, and for addresses beyond
/// [`MAX_SOURCES`].
const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl Strangers {
    /// A tracker with `limit` requests per address.
    #[must_use]
    pub fn new(limit: RateLimit) -> Arc<Self> {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Arc::new(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            limit,
            blocked: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// The budget per address.
    #[must_use]
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// How long `source` is still refused, if it went over its budget recently.
    #[must_use]
    pub fn blocked(&self, source: Option<IpAddr>) -> Option<Duration> {
        let until = *self.blocked.lock().get(&source.unwrap_or(ANY))?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    /// Takes one request from `source`'s budget; `Err(wait)` when it is spent (the source is
    /// then refused for `wait`).
    ///
    /// # Errors
    /// How long until the next request would be within the budget.
    pub fn charge(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        let key = source.unwrap_or(ANY);
        match self.limiter.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until
                    .wait_time_from(DefaultClock::default().now())
                    .max(Duration::from_millis(1));
                let mut blocked = self.blocked.lock();
                if blocked.len() < MAX_SOURCES || blocked.contains_key(&key) {
                    blocked.insert(key, Instant::now() + wait);
                }
                Err(wait)
            }
        }
    }

    /// Counts one request of `kind` from `source`, answered `status`, for the aggregate row.
    pub fn note(
        &self,
        source: Option<IpAddr>,
        kind: Kind,
        status: u16,
        body: &[u8],
        at: DateTime<Utc>,
    ) {
        metrics::counter!("jt_ingest_strangers_total", "kind" => kind.as_str(), "status" => if status == 429 { "429" } else { "4xx" }).increment(1);
        let mut seen = self.seen.lock();
        let key = if seen.len() < MAX_SOURCES || seen.contains_key(&source) {
            source
        } else {
            None
        };
        let entry = seen.entry(key).or_insert_with(|| Seen {
            first_at: at,
            last_at: at,
            kinds: BTreeMap::new(),
            throttled: 0,
            first_status: status,
            first_body: kept_body(body),
        });
        entry.last_at = entry.last_at.max(at);
        *entry.kinds.entry(kind).or_default() += 1;
        if status == 429 {
            entry.throttled += 1;
        }
    }

    /// The aggregate rows of the period since the last call (one per address), with a warning
    /// line summing them up; forgets them.
    #[must_use]
    pub fn drain(&self) -> Vec<NewWebhookLog> {
        let seen = std::mem::take(&mut *self.seen.lock());
        if seen.is_empty() {
            return Vec::new();
        }
        let total: u64 = seen.values().flat_map(|s| s.kinds.values()).sum();
        let throttled: u64 = seen.values().map(|s| s.throttled).sum();
        tracing::warn!(
            requests = total,
            addresses = seen.len(),
            throttled,
            "requests without a known webhook token (one webhook log row per address)"
        );
        let mut rows: Vec<NewWebhookLog> = seen
            .into_iter()
            .map(|(source, s)| {
                let count: u64 = s.kinds.values().sum();
                let kinds = s
                    .kinds
                    .iter()
                    .map(|(k, n)| format!("{} {n}", k.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let who = match source {
                    Some(_) => "this address",
                    None => "addresses not tracked one by one",
                };
                let mut reason = format!(
                    "{count} request(s) without a known webhook token from {who} between {} and {} ({kinds})",
                    s.first_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    s.last_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                );
                if s.throttled > 0 {
                    reason.push_str(&format!(
                        "; {} answered 429 (over {} per second)",
                        s.throttled, self.limit.per_second
                    ));
                }
                if !s.first_body.is_empty() {
                    reason.push_str("; the first body is kept");
                }
                NewWebhookLog {
                    id: WebhookLogId::new(),
                    received_at: s.first_at,
                    recorder: None,
                    source_ip: source.map(|ip| ip.to_string()),
                    body: s.first_body,
                    status_code: s.first_status,
                    result: "unknown_token".into(),
                    reason: Some(reason),
                    signal: None,
                }
            })
            .collect();
        rows.sort_by_key(|r| r.received_at);
        rows
    }

    /// Forgets budgets and blocks of addresses idle for a while (bounded memory).
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = Instant::now();
        self.blocked.lock().retain(|_, until| *until > now);
    }
}

fn kept_body(body: &[u8]) -> String {
    let cut = &body[..body.len().min(KEPT_BODY_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_second: per_second.try_into().unwrap(),
            burst: burst.try_into().unwrap(),
        }
    }

    #[test]
    fn an_address_over_its_budget_is_blocked_and_others_are_not() {
        let s = Strangers::new(limit(1, 3));
        let a: Option<IpAddr> = Some("203.0.113.1".parse().unwrap());
        let b: Option<IpAddr> = Some("203.0.113.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(s.charge(a), Ok(()));
        }
        let wait = s.charge(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(s.blocked(a).is_some());
        assert_eq!(s.blocked(b), None);
        assert_eq!(s.charge(b), Ok(()));
    }

    #[test]
    fn many_requests_make_one_row_per_address_with_counts_and_the_first_body() {
        let s = Strangers::new(limit(10, 10));
        let a: Option<IpAddr> = Some("203.0.113.1".parse().unwrap());
        let t0 = Utc::now();
        s.note(a, Kind::UnknownToken, 404, b"{\"action\":\"buy\"}", t0);
        for i in 0..99 {
            s.note(
                a,
                if i % 3 == 0 {
                    Kind::InvalidToken
                } else {
                    Kind::UnknownToken
                },
                if i > 90 { 429 } else { 404 },
                &vec![b'x'; 60_000],
                t0 + chrono::Duration::milliseconds(i),
            );
        }
        s.note(None, Kind::WrongMethod, 405, b"", t0);
        let rows = s.drain();
        assert_eq!(rows.len(), 2);
        let row = rows.iter().find(|r| r.source_ip.is_some()).unwrap();
        assert_eq!(row.body, "{\"action\":\"buy\"}");
        assert_eq!(row.status_code, 404);
        assert_eq!(row.result, "unknown_token");
        let reason = row.reason.as_deref().unwrap();
        assert!(reason.starts_with("100 request(s)"), "{reason}");
        assert!(
            reason.contains("invalid_token 33, unknown_token 67"),
            "{reason}"
        );
        assert!(reason.contains("8 answered 429"), "{reason}");
        assert!(s.drain().is_empty(), "drained");
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let s = Strangers::new(limit(10, 10));
        for i in 0..(MAX_SOURCES as u32 + 500) {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            s.note(Some(ip), Kind::UnknownToken, 404, b"", Utc::now());
        }
        let rows = s.drain();
        assert_eq!(rows.len(), MAX_SOURCES + 1, "the rest under one row");
        let other = rows.iter().find(|r| r.source_ip.is_none()).unwrap();
        assert!(
            other
                .reason
                .as_deref()
                .unwrap()
                .starts_with("500 request(s)")
        );
    }
}
