//! A login's request budget shared by every process of the fleet: brokers count per login
//! (Tradovate per user, ProjectX per token), not per process, so two executor replicas and the
//! connection manager must together stay under one budget.
//!
//! How it works (`docs/brokers.md`, "Shared request budgets"):
//!
//! - one [`Ledger`] per login in a fleet-wide key-value store ([`BudgetStore`]; the bus's
//!   `jt_broker_budgets` KV bucket in the services), key `<venue>.<login hash>`;
//! - the ledger counts the calls it granted in buckets of a sixtieth of the budget window
//!   (Tradovate: one minute; ProjectX: one second), keyed by wall-clock bucket index, and
//!   grants no more than the budget over the last [`SPAN_EXTRA`] + 60 buckets — a little more
//!   than the window, so the broker's window, wherever it starts and slides, never holds more
//!   than the budget even though a granted slot is spent a little after its bucket;
//! - a process claims a chunk of [`CHUNK`] slots at a time by compare-and-set on the ledger
//!   (retrying when another process wrote first); a claim that would pass the budget gets
//!   what is left, and with nothing left the caller is told when the oldest bucket frees;
//! - a process spends its chunk for at most [`GRACE_BUCKETS`] buckets after the claim; slots
//!   not spent by then are lost (the ledger counted them: conservative, never over);
//! - a broker's cool-down (a 429's wait) is written to the ledger too, and a process that
//!   claims while it lasts cools down as well;
//! - when the store cannot answer (a timeout, an error, a ledger this build cannot read) the
//!   process falls back to its own per-process limits for [`FALLBACK_FOR`], warns once and
//!   counts `jt_broker_shared_budget_fallback_total`: trading does not stop for the bus.
//!
//! The arithmetic is here and pure ([`Ledger::claim`]); the store is injected, so this crate
//! does not depend on the bus.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};

/// Buckets per budget window.
pub const BUCKETS_PER_WINDOW: i64 = 60;
/// Buckets after its claim during which a slot may still be spent.
pub const GRACE_BUCKETS: i64 = 3;
/// Buckets counted beyond the window: the grace, the bucket a slot was claimed in (it may have
/// been claimed at its very start) and one for the time a call takes to reach the broker.
pub const SPAN_EXTRA: i64 = GRACE_BUCKETS + 2;
/// Slots a process claims at once.
pub const CHUNK: u32 = 8;
/// How long a claim may take before the process falls back to its own limits.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a process keeps to its own limits after the store failed, before trying again.
pub const FALLBACK_FOR: Duration = Duration::from_secs(10);
/// Compare-and-set attempts of one claim before it counts as "nothing left right now".
const CAS_ATTEMPTS: usize = 32;

/// The store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// A fleet-wide key-value store with compare-and-set, where the ledgers live.
#[async_trait]
pub trait BudgetStore: Send + Sync + fmt::Debug {
    /// The value of `key` and its revision, if it has one.
    ///
    /// # Errors
    /// The store cannot answer.
    async fn load(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError>;

    /// Writes `value` only if `key` is still at `revision` (0: has no value); `false` when
    /// someone else wrote first.
    ///
    /// # Errors
    /// The store cannot answer.
    async fn store(&self, key: &str, value: Vec<u8>, revision: u64) -> Result<bool, StoreError>;
}

/// Where a login's budget window is cut into buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Length of a bucket, milliseconds.
    pub bucket_ms: i64,
    /// Buckets counted against the budget (the current one included).
    pub span: i64,
}

impl Geometry {
    /// Buckets of a sixtieth of `window` (at least a millisecond), counted over the window and
    /// [`SPAN_EXTRA`] more.
    #[must_use]
    pub fn new(window: Duration) -> Self {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        Self {
            bucket_ms: (window_ms / BUCKETS_PER_WINDOW).max(1),
            span: BUCKETS_PER_WINDOW + SPAN_EXTRA,
        }
    }

    /// The bucket of the wall-clock time `ms` (Unix milliseconds).
    #[must_use]
    pub fn bucket(&self, ms: i64) -> i64 {
        ms.div_euclid(self.bucket_ms)
    }
}

/// What the fleet granted from one login's budget, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// `(bucket index, slots granted in it)`, oldest first.
    pub granted: Vec<(i64, u32)>,
    /// Until when (Unix milliseconds) the broker told a process of the login to stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cool_until_ms: Option<i64>,
}

impl Ledger {
    /// Slots granted in the buckets it holds.
    #[must_use]
    pub fn used(&self) -> u32 {
        self.granted
            .iter()
            .fold(0u32, |sum, (_, n)| sum.saturating_add(*n))
    }

    /// Grants up to `want` slots in bucket `now`, so that the `span` buckets ending at `now`
    /// never hold more than `limit`; returns how many (0 when nothing is left). Buckets out
    /// of the span are forgotten; buckets after `now` (a process whose clock runs ahead) count.
    pub fn claim(&mut self, now: i64, span: i64, want: u32, limit: u32) -> u32 {
        self.granted.retain(|(b, _)| *b > now - span);
        let grant = want.min(limit.saturating_sub(self.used()));
        if grant > 0 {
            match self.granted.binary_search_by_key(&now, |(b, _)| *b) {
                Ok(i) => self.granted[i].1 = self.granted[i].1.saturating_add(grant),
                Err(i) => self.granted.insert(i, (now, grant)),
            }
        }
        grant
    }

    /// The first bucket in which a slot frees (the oldest bucket has left the span), if any
    /// is held.
    #[must_use]
    pub fn frees_at(&self, span: i64) -> Option<i64> {
        self.granted.first().map(|(b, _)| b + span)
    }
}

/// What [`SharedSlots::take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// A slot: make the call.
    Granted,
    /// The fleet spent the budget; a slot frees in `retry_after`.
    Spent {
        /// Until the oldest bucket leaves the span.
        retry_after: Duration,
    },
    /// Another process was told to stop by the broker (a 429) for `retry_after` more.
    CoolingDown {
        /// What is left of the broker's wait.
        retry_after: Duration,
    },
    /// The store cannot answer: keep to the per-process limits (warned and counted).
    Unavailable,
}

#[derive(Debug, Default)]
struct Allotment {
    /// The bucket the slots were claimed in.
    bucket: i64,
    /// Slots left.
    left: u32,
    /// Until when (Unix milliseconds) the ledger had nothing left: no slot frees before the
    /// oldest bucket leaves the span, so the store is not asked again until then.
    spent_until_ms: i64,
}

/// One login's slots from the shared budget, in one process.
pub struct SharedSlots {
    store: Arc<dyn BudgetStore>,
    key: String,
    venue: &'static str,
    geometry: Geometry,
    limit: u32,
    /// One claim at a time per login and process: callers queue behind it and share its chunk.
    allotment: tokio::sync::Mutex<Allotment>,
    /// Until when the store is not asked (it failed).
    fallback_until: parking_lot::Mutex<Option<Instant>>,
}

impl fmt::Debug for SharedSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSlots")
            .field("key", &self.key)
            .field("limit", &self.limit)
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

/// The ledger key of the login of `user` at `host` on `venue`: `<venue>.<16 hex digits>`. The
/// user name is hashed (FNV-1a, stable across builds and processes) because names may hold
/// characters a KV key cannot.
#[must_use]
pub fn ledger_key(venue: &str, host: &str, user: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host
        .bytes()
        .chain(std::iter::once(0))
        .chain(user.to_lowercase().bytes())
    {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{venue}.{hash:016x}")
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(u64::try_from(n.max(0)).unwrap_or(0))
}

enum Claimed {
    Slots(u32),
    Spent(Duration),
    Cooling(Duration),
}

impl SharedSlots {
    /// The slots of the login whose ledger is `key`, `limit` calls per `window`.
    #[must_use]
    pub fn new(
        store: Arc<dyn BudgetStore>,
        key: String,
        venue: &'static str,
        window: Duration,
        limit: u32,
    ) -> Self {
        Self {
            store,
            key,
            venue,
            geometry: Geometry::new(window),
            limit,
            allotment: tokio::sync::Mutex::new(Allotment::default()),
            fallback_until: parking_lot::Mutex::new(None),
        }
    }

    /// The ledger's key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    fn falling_back(&self) -> bool {
        let mut until = self.fallback_until.lock();
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                tracing::info!(key = %self.key, "asking the shared request budget again");
                false
            }
            None => false,
        }
    }

    fn fall_back(&self, why: &str) -> Take {
        let mut until = self.fallback_until.lock();
        if until.is_none() {
            tracing::warn!(
                key = %self.key,
                error = why,
                "shared request budget unavailable: keeping to this process's own limits"
            );
        }
        *until = Some(Instant::now() + FALLBACK_FOR);
        drop(until);
        self.unavailable()
    }

    fn unavailable(&self) -> Take {
        metrics::counter!("jt_broker_shared_budget_fallback_total", "broker" => self.venue)
            .increment(1);
        Take::Unavailable
    }

    /// A slot for one counted call: from this process's chunk while it lasts and is fresh,
    /// else from a new chunk claimed from the ledger.
    pub async fn take(&self) -> Take {
        if self.falling_back() {
            return self.unavailable();
        }
        let mut allotment = self.allotment.lock().await;
        let now = now_ms();
        let bucket = self.geometry.bucket(now);
        if allotment.left > 0 && bucket <= allotment.bucket + GRACE_BUCKETS {
            allotment.left -= 1;
            return Take::Granted;
        }
        allotment.left = 0;
        // A caller that queued behind a claim that failed does not try again itself.
        if self.falling_back() {
            return self.unavailable();
        }
        if now < allotment.spent_until_ms {
            return Take::Spent {
                retry_after: ms(allotment.spent_until_ms - now),
            };
        }
        match tokio::time::timeout(CLAIM_TIMEOUT, self.claim(now)).await {
            Ok(Ok(Claimed::Slots(n))) => {
                allotment.bucket = bucket;
                allotment.left = n.saturating_sub(1);
                Take::Granted
            }
            Ok(Ok(Claimed::Spent(retry_after))) => {
                allotment.spent_until_ms =
                    now.saturating_add(i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX));
                Take::Spent { retry_after }
            }
            Ok(Ok(Claimed::Cooling(retry_after))) => Take::CoolingDown { retry_after },
            Ok(Err(e)) => self.fall_back(&e.0),
            Err(_) => self.fall_back("no answer within the claim timeout"),
        }
    }

    async fn load(&self) -> Result<(Ledger, u64), StoreError> {
        match self.store.load(&self.key).await? {
            Some((bytes, revision)) => serde_json::from_slice(&bytes)
                .map(|l| (l, revision))
                .map_err(|e| StoreError(format!("unreadable ledger {}: {e}", self.key))),
            None => Ok((Ledger::default(), 0)),
        }
    }

    async fn save(&self, ledger: &Ledger, revision: u64) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(ledger).map_err(|e| StoreError(e.to_string()))?;
        self.store.store(&self.key, bytes, revision).await
    }

    async fn claim(&self, now: i64) -> Result<Claimed, StoreError> {
        let bucket = self.geometry.bucket(now);
        for _ in 0..CAS_ATTEMPTS {
            let (mut ledger, revision) = self.load().await?;
            if let Some(until) = ledger.cool_until_ms
                && until > now
            {
                return Ok(Claimed::Cooling(ms(until - now)));
            }
            let grant = ledger.claim(bucket, self.geometry.span, CHUNK, self.limit);
            if grant == 0 {
                let frees = ledger.frees_at(self.geometry.span).unwrap_or(bucket + 1);
                return Ok(Claimed::Spent(ms(frees * self.geometry.bucket_ms - now)));
            }
            if self.save(&ledger, revision).await? {
                return Ok(Claimed::Slots(grant));
            }
        }
        // Every attempt lost to another writer: the ledger is that busy, so try again a bucket
        // later rather than guess.
        Ok(Claimed::Spent(ms(self.geometry.bucket_ms)))
    }

    /// The broker told this process to stop for `wait`: writes it to the ledger so the other
    /// processes stop at their next claim. Best effort (a failure is logged).
    pub async fn share_cool_down(&self, wait: Duration) {
        let until = now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        let write = async {
            for _ in 0..CAS_ATTEMPTS {
                let (mut ledger, revision) = self.load().await?;
                if ledger.cool_until_ms.is_some_and(|u| u >= until) {
                    return Ok(());
                }
                ledger.cool_until_ms = Some(until);
                if self.save(&ledger, revision).await? {
                    return Ok(());
                }
            }
            Err(StoreError("the ledger kept changing".into()))
        };
        match tokio::time::timeout(CLAIM_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(key = %self.key, error = %e, "could not share the broker's cool-down");
            }
            Err(_) => {
                tracing::warn!(key = %self.key, "could not share the broker's cool-down: no answer");
            }
        }
    }
}

/// A [`BudgetStore`] in memory: one process's "fleet", for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: parking_lot::Mutex<std::collections::HashMap<String, (Vec<u8>, u64)>>,
    /// When set, every call fails (a store outage).
    pub down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl BudgetStore for MemoryStore {
    async fn load(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError("down".into()));
        }
        Ok(self.map.lock().get(key).cloned())
    }

    async fn store(&self, key: &str, value: Vec<u8>, revision: u64) -> Result<bool, StoreError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError("down".into()));
        }
        let mut map = self.map.lock();
        let current = map.get(key).map_or(0, |(_, r)| *r);
        if current != revision {
            return Ok(false);
        }
        map.insert(key.to_string(), (value, current + 1));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SPAN: i64 = BUCKETS_PER_WINDOW + SPAN_EXTRA;

    #[test]
    fn claims_never_pass_the_limit_and_the_last_one_is_partial() {
        let mut l = Ledger::default();
        let mut granted = Vec::new();
        for _ in 0..5 {
            granted.push(l.claim(100, SPAN, CHUNK, 20));
        }
        assert_eq!(granted, [8, 8, 4, 0, 0]);
        assert_eq!(l.used(), 20);
        assert_eq!(l.granted, [(100, 20)]);
    }

    #[test]
    fn every_bucket_of_the_span_counts_and_a_bucket_that_left_it_frees_its_slots() {
        let mut l = Ledger::default();
        assert_eq!(l.claim(100, SPAN, 8, 10), 8);
        assert_eq!(l.claim(110, SPAN, 8, 10), 2);
        // Still inside the span of bucket 100: nothing left.
        assert_eq!(l.claim(100 + SPAN - 1, SPAN, 8, 10), 0);
        assert_eq!(l.frees_at(SPAN), Some(100 + SPAN));
        // Bucket 100 left the span: its 8 slots are back.
        assert_eq!(l.claim(100 + SPAN, SPAN, 8, 10), 8);
        assert_eq!(l.granted, [(110, 2), (100 + SPAN, 8)]);
        // A whole new window later everything is forgotten.
        assert_eq!(l.claim(110 + 3 * SPAN, SPAN, 8, 10), 8);
        assert_eq!(l.granted, [(110 + 3 * SPAN, 8)]);
    }

    #[test]
    fn a_bucket_ahead_of_this_clock_counts() {
        let mut l = Ledger::default();
        assert_eq!(l.claim(205, SPAN, 8, 10), 8);
        assert_eq!(l.claim(200, SPAN, 8, 10), 2);
        assert_eq!(l.granted, [(200, 2), (205, 8)]);
    }

    #[test]
    fn the_span_covers_the_window_and_the_grace() {
        let g = Geometry::new(Duration::from_secs(3_600));
        assert_eq!(g.bucket_ms, 60_000);
        assert_eq!(g.span, 65);
        assert_eq!(g.bucket(120_000), 2);
        assert_eq!(Geometry::new(Duration::from_secs(60)).bucket_ms, 1_000);
        assert_eq!(Geometry::new(Duration::from_millis(10)).bucket_ms, 1);
    }

    #[test]
    fn a_ledger_reads_back_and_keys_are_stable_and_valid() {
        let l = Ledger {
            granted: vec![(1, 2)],
            cool_until_ms: Some(5),
        };
        let text = serde_json::to_string(&l).unwrap();
        assert_eq!(text, r#"{"granted":[[1,2]],"cool_until_ms":5}"#);
        assert_eq!(serde_json::from_str::<Ledger>(&text).unwrap(), l);
        let k = ledger_key("tradovate", "https://demo.example/v1/", "Alice");
        assert_eq!(
            k,
            ledger_key("tradovate", "https://demo.example/v1/", "alice")
        );
        assert_ne!(
            k,
            ledger_key("tradovate", "https://live.example/v1/", "alice")
        );
        assert!(k.starts_with("tradovate.") && k.len() == "tradovate.".len() + 16);
    }

    fn slots(store: &Arc<MemoryStore>, limit: u32) -> SharedSlots {
        SharedSlots::new(
            Arc::clone(store) as Arc<dyn BudgetStore>,
            "test.login".into(),
            "test",
            Duration::from_secs(3_600),
            limit,
        )
    }

    #[tokio::test]
    async fn processes_sharing_a_store_never_take_more_than_the_limit_together() {
        let store = Arc::new(MemoryStore::default());
        let a = slots(&store, 20);
        let b = slots(&store, 20);
        let mut granted = 0;
        let mut spent = 0;
        for _ in 0..30 {
            for s in [&a, &b] {
                match s.take().await {
                    Take::Granted => granted += 1,
                    Take::Spent { retry_after } => {
                        assert!(retry_after > Duration::from_secs(3_600), "{retry_after:?}");
                        spent += 1;
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(granted, 20);
        assert_eq!(spent, 40);
        // A spent budget is remembered until a slot frees: the store is not asked meanwhile.
        store.down.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(a.take().await, Take::Spent { .. }));
    }

    #[tokio::test]
    async fn a_cool_down_reaches_the_other_processes_at_their_next_claim() {
        let store = Arc::new(MemoryStore::default());
        let a = slots(&store, 100);
        let b = slots(&store, 100);
        a.share_cool_down(Duration::from_secs(30)).await;
        assert!(matches!(
            b.take().await,
            Take::CoolingDown { retry_after } if retry_after > Duration::from_secs(28)
        ));
    }

    #[tokio::test]
    async fn an_unreachable_store_falls_back_to_the_process_and_is_asked_again_later() {
        let store = Arc::new(MemoryStore::default());
        let a = slots(&store, 100);
        store.down.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(a.take().await, Take::Unavailable);
        store
            .down
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // Within the fall-back period the store is not asked.
        assert_eq!(a.take().await, Take::Unavailable);
        *a.fallback_until.lock() = Some(Instant::now());
        assert_eq!(a.take().await, Take::Granted);
    }

    #[tokio::test]
    async fn an_unreadable_ledger_is_a_fall_back_not_a_fresh_budget() {
        let store = Arc::new(MemoryStore::default());
        store
            .store("test.login", b"{\"v2\":1}".to_vec(), 0)
            .await
            .unwrap();
        assert_eq!(slots(&store, 100).take().await, Take::Unavailable);
    }
}
