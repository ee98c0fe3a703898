//! A login's symbol → contract cache, so that executions after the first make no contract
//! request (a front-month resolution costs Tradovate two calls, `contract/suggest` and
//! `contractMaturity/items`, and ProjectX one, `Contract/search`).
//!
//! Correctness comes before hits:
//! - an entry is served only until the earlier of the contract's expiration (when the venue
//!   gave one) and a bounded time to live, so a front month (`MNQ1!`) is looked up again after
//!   it rolls and a rolled `isFront` flag is seen within the TTL;
//! - a failed resolution is never cached (the next caller asks the venue again);
//! - concurrent first look-ups of one key make one request (single flight): the others wait for
//!   it and read its answer;
//! - the size is bounded: a full cache drops expired entries, then the one that expires first.
//!
//! What it must not do: know a venue's endpoints or how a symbol is normalised (the venue picks
//! the key), or hold a lock across the venue's request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jt_broker::{BrokerError, Contract};
use parking_lot::Mutex;

/// The default time to live of an entry without an earlier expiration.
pub const DEFAULT_CONTRACT_TTL: Duration = Duration::from_secs(3600);

/// The default number of symbols kept per login.
pub const DEFAULT_CONTRACT_CAPACITY: usize = 512;

#[derive(Debug, Clone)]
struct Entry {
    contract: Contract,
    valid_until: DateTime<Utc>,
}

/// What a venue's look-up found: the contract and, when the venue said, when it expires.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The contract.
    pub contract: Contract,
    /// Its expiration (last trade) as the venue reported it; `None`: only the TTL bounds it.
    pub expires: Option<DateTime<Utc>>,
}

/// Symbol → contract for one login (see the module docs).
#[derive(Debug)]
pub struct ContractCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
    /// One async lock per key being looked up: the single flight.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for ContractCache {
    fn default() -> Self {
        Self::new(DEFAULT_CONTRACT_TTL, DEFAULT_CONTRACT_CAPACITY)
    }
}

impl ContractCache {
    /// A cache whose entries live at most `ttl` and which holds at most `capacity` of them
    /// (at least one).
    #[must_use]
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// The number of entries held (expired ones included until they are dropped).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fresh(&self, key: &str, now: DateTime<Utc>) -> Option<Contract> {
        let entries = self.entries.lock();
        let e = entries.get(key)?;
        (now < e.valid_until).then(|| e.contract.clone())
    }

    /// The contract cached under `key`, else the answer of `look_up` (made once however many
    /// callers ask for `key` at the same time), cached when it succeeded.
    ///
    /// # Errors
    /// `look_up`'s error, uncached.
    pub async fn get_or_resolve<F, Fut>(
        &self,
        key: &str,
        look_up: F,
    ) -> Result<Contract, BrokerError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Resolved, BrokerError>>,
    {
        if let Some(c) = self.fresh(key, Utc::now()) {
            return Ok(c);
        }
        let flight = Arc::clone(self.flights.lock().entry(key.to_string()).or_default());
        let _turn = flight.lock().await;
        // Whoever held the turn before may have filled the entry.
        if let Some(c) = self.fresh(key, Utc::now()) {
            return Ok(c);
        }
        let result = look_up().await;
        if let Ok(found) = &result {
            self.insert(key, found, Utc::now());
        }
        // Waiters hold their own clone of the lock; a later caller finds the entry (or, after a
        // failure, starts a new flight).
        self.flights.lock().remove(key);
        result.map(|r| r.contract)
    }

    fn insert(&self, key: &str, found: &Resolved, now: DateTime<Utc>) {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        let by_ttl = now
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let valid_until = found.expires.map_or(by_ttl, |exp| exp.min(by_ttl));
        if valid_until <= now {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            entries.retain(|_, e| e.valid_until > now);
            if entries.len() >= self.capacity
                && let Some(first) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.valid_until)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&first);
            }
        }
        entries.insert(
            key.to_string(),
            Entry {
                contract: found.contract.clone(),
                valid_until,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use jt_broker::ContractId;

    use super::*;

    fn contract(name: &str) -> Contract {
        Contract {
            id: ContractId::from(name),
            name: name.to_string(),
            root: "MNQ".to_string(),
        }
    }

    fn found(name: &str, expires: Option<DateTime<Utc>>) -> Result<Resolved, BrokerError> {
        Ok(Resolved {
            contract: contract(name),
            expires,
        })
    }

    #[tokio::test]
    async fn a_second_look_up_is_served_from_the_cache() {
        let cache = ContractCache::default();
        let calls = AtomicU32::new(0);
        for _ in 0..3 {
            let c = cache
                .get_or_resolve("MNQ", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    found("MNQZ6", None)
                })
                .await
                .unwrap();
            assert_eq!(c.name, "MNQZ6");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failure_is_not_cached() {
        let cache = ContractCache::default();
        let r = cache
            .get_or_resolve("MNQ", || async {
                Err(BrokerError::Transport {
                    detail: "down".into(),
                })
            })
            .await;
        assert!(matches!(r, Err(BrokerError::Transport { .. })), "{r:?}");
        assert!(cache.is_empty());
        let c = cache
            .get_or_resolve("MNQ", || async { found("MNQZ6", None) })
            .await
            .unwrap();
        assert_eq!(c.name, "MNQZ6");
    }

    #[tokio::test]
    async fn an_expired_contract_is_looked_up_again() {
        let cache = ContractCache::default();
        let soon = Utc::now() + chrono::Duration::milliseconds(50);
        cache
            .get_or_resolve("MNQ", || async { found("MNQZ6", Some(soon)) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        let c = cache
            .get_or_resolve("MNQ", || async { found("MNQH7", None) })
            .await
            .unwrap();
        assert_eq!(c.name, "MNQH7", "the expired front month was served");
        // Already expired when found: served once, never cached.
        let past = Utc::now() - chrono::Duration::seconds(1);
        cache
            .get_or_resolve("ES", || async { found("ESZ6", Some(past)) })
            .await
            .unwrap();
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn the_ttl_bounds_an_entry_without_expiration() {
        let cache = ContractCache::new(Duration::from_millis(50), 8);
        let calls = AtomicU32::new(0);
        let look = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            found("MNQZ6", None)
        };
        cache.get_or_resolve("MNQ", look).await.unwrap();
        cache.get_or_resolve("MNQ", look).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(80)).await;
        cache.get_or_resolve("MNQ", look).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_first_look_ups_make_one_request() {
        let cache = ContractCache::default();
        let calls = AtomicU32::new(0);
        let look = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            found("MNQZ6", None)
        };
        let all =
            futures_util::future::join_all((0..8).map(|_| cache.get_or_resolve("MNQ", look))).await;
        assert!(all.iter().all(|r| r.as_ref().unwrap().name == "MNQZ6"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_size_is_bounded() {
        let cache = ContractCache::new(Duration::from_secs(60), 3);
        for root in ["A", "B", "C", "D", "E"] {
            cache
                .get_or_resolve(root, || async { found(root, None) })
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), 3);
        // The latest is kept.
        let calls = AtomicU32::new(0);
        cache
            .get_or_resolve("E", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                found("E", None)
            })
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
