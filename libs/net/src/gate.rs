//! The fleet's connect gate (DOMAIN §8): at most N WebSocket connection attempts in flight and
//! their starts at least a spacing apart, however many tokens reconnect at once — across every
//! process of the fleet, not only this one. The replaced platform's 429 storms ended only when
//! this gate (2 attempts, 3 s) was added; two connection-manager replicas behind one egress IP
//! with a gate each would make twice the attempts.
//!
//! How it works (`docs/brokers.md`, "The shared connect gate"):
//!
//! - every attempt first passes the process's own semaphore and spacing (cheap, and what is
//!   left when the fleet's store cannot answer);
//! - with a store ([`ConnectGate::shared`]; the services pass the bus's `jt_broker_budgets`
//!   KV bucket) it then claims a slot in one [`GateLedger`] under the key [`GATE_KEY`] by
//!   compare-and-set: granted when fewer than `max_in_flight` unexpired slots are held and the
//!   fleet's next start has come, writing a slot (holder, expiry = now + [`SLOT_HOLD`]) and the
//!   next start = now + spacing; otherwise it waits (until the next start, or a short poll) and
//!   tries again;
//! - dropping the pass releases the slot (best effort, in the background); a dead process's
//!   slot frees itself at its expiry;
//! - when the store fails or does not answer within [`CLAIM_TIMEOUT`] the attempt goes ahead on
//!   the process's own gate, the process keeps to it for [`FALLBACK_FOR`], warns once and counts
//!   `jt_broker_shared_gate_fallback_total`: connecting never waits for the bus.
//!
//! One key for the whole fleet, not one per venue: the limit is the egress IP's (the venues'
//! edges count attempts per IP), and one process's gate already serves every venue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::budget::{BudgetStore, StoreError};

pub use crate::budget::{CLAIM_TIMEOUT, FALLBACK_FOR};

/// The ledger's key in the store.
pub const GATE_KEY: &str = "connect-gate";
/// How long a slot is held at most: a little more than an attempt may take (the adapters'
/// connect timeout, 15 s, and the authorization after it), so a slot whose process died, or
/// whose release was lost, frees itself.
pub const SLOT_HOLD: Duration = Duration::from_secs(30);
/// How long to wait before asking again when every slot is held (a release is not announced).
pub const POLL: Duration = Duration::from_millis(250);
/// Compare-and-set attempts of one claim before waiting a poll.
const CAS_ATTEMPTS: usize = 16;

/// The process-wide connect gate (DOMAIN §8).
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Connection attempts in flight at once.
    pub max_in_flight: usize,
    /// Minimum time between the starts of two attempts.
    pub spacing: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 2,
            spacing: Duration::from_secs(3),
        }
    }
}

/// One attempt in flight somewhere in the fleet, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Who holds it: `<process>/<attempt>`.
    pub holder: String,
    /// Until when (Unix milliseconds) it counts even if never released.
    pub until_ms: i64,
}

/// The fleet's attempts in flight and its next start, as stored under [`GATE_KEY`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateLedger {
    /// Slots held (expired ones are dropped at the next claim).
    pub slots: Vec<Slot>,
    /// The earliest start (Unix milliseconds) of the next attempt.
    pub next_start_ms: i64,
}

/// What [`GateLedger::claim`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A slot: start the attempt.
    Granted,
    /// Ask again in this many milliseconds.
    Wait(i64),
}

impl GateLedger {
    /// Claims a slot for `holder` at `now` (Unix milliseconds): granted when fewer than
    /// `max_in_flight` unexpired slots are held and the next start has come; the slot is held
    /// until `now + hold_ms` and the next start moves to `now + spacing_ms`. Otherwise how long
    /// to wait: until the next start, or (every slot held) until the first expiry, at most
    /// `poll_ms` since a release may come sooner.
    pub fn claim(
        &mut self,
        now: i64,
        holder: &str,
        max_in_flight: usize,
        spacing_ms: i64,
        hold_ms: i64,
        poll_ms: i64,
    ) -> Claim {
        self.slots.retain(|s| s.until_ms > now);
        if self.slots.len() >= max_in_flight.max(1) {
            let first = self.slots.iter().map(|s| s.until_ms).min().unwrap_or(now);
            return Claim::Wait((first - now).clamp(1, poll_ms.max(1)));
        }
        if self.next_start_ms > now {
            return Claim::Wait(self.next_start_ms - now);
        }
        self.slots.push(Slot {
            holder: holder.to_string(),
            until_ms: now.saturating_add(hold_ms),
        });
        self.next_start_ms = now.saturating_add(spacing_ms);
        Claim::Granted
    }

    /// Frees `holder`'s slot; `false` when it held none (expired, or never written).
    pub fn release(&mut self, holder: &str) -> bool {
        let before = self.slots.len();
        self.slots.retain(|s| s.holder != holder);
        self.slots.len() != before
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The fleet half of a gate: the store and this process's place in it.
#[derive(Debug)]
struct Fleet {
    store: Arc<dyn BudgetStore>,
    /// This process, in holder names.
    process: String,
    next_holder: AtomicU64,
    hold: Duration,
    /// Until when the store is not asked (it failed).
    fallback_until: Mutex<Option<std::time::Instant>>,
    fallbacks: AtomicUsize,
}

impl Fleet {
    async fn load(&self) -> Result<(GateLedger, u64), StoreError> {
        match self.store.load(GATE_KEY).await? {
            Some((bytes, revision)) => serde_json::from_slice(&bytes)
                .map(|l| (l, revision))
                .map_err(|e| StoreError(format!("unreadable connect gate ledger: {e}"))),
            None => Ok((GateLedger::default(), 0)),
        }
    }

    async fn save(&self, ledger: &GateLedger, revision: u64) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(ledger).map_err(|e| StoreError(e.to_string()))?;
        self.store.store(GATE_KEY, bytes, revision).await
    }

    async fn try_claim(&self, holder: &str, config: &GateConfig) -> Result<Claim, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let (mut ledger, revision) = self.load().await?;
            let claim = ledger.claim(
                now_ms(),
                holder,
                config.max_in_flight,
                millis(config.spacing),
                millis(self.hold),
                millis(POLL),
            );
            if claim != Claim::Granted {
                return Ok(claim);
            }
            if self.save(&ledger, revision).await? {
                return Ok(Claim::Granted);
            }
        }
        Ok(Claim::Wait(millis(POLL)))
    }

    async fn release(&self, holder: &str) -> Result<(), StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let (mut ledger, revision) = self.load().await?;
            if !ledger.release(holder) || self.save(&ledger, revision).await? {
                return Ok(());
            }
        }
        Err(StoreError("the connect gate ledger kept changing".into()))
    }

    fn falling_back(&self) -> bool {
        let mut until = self.fallback_until.lock();
        match *until {
            Some(t) if std::time::Instant::now() < t => true,
            Some(_) => {
                *until = None;
                tracing::info!("asking the shared connect gate again");
                false
            }
            None => false,
        }
    }

    fn fall_back(&self, why: &str) {
        let mut until = self.fallback_until.lock();
        if until.is_none() {
            tracing::warn!(
                error = why,
                "shared connect gate unavailable: keeping to this process's own gate"
            );
        }
        *until = Some(std::time::Instant::now() + FALLBACK_FOR);
    }

    fn count_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::SeqCst);
        metrics::counter!("jt_broker_shared_gate_fallback_total").increment(1);
    }

    /// A fleet slot for `holder`, or `false` when the store cannot answer (fall back).
    async fn enter(&self, holder: &str, config: &GateConfig) -> bool {
        loop {
            if self.falling_back() {
                self.count_fallback();
                return false;
            }
            match tokio::time::timeout(CLAIM_TIMEOUT, self.try_claim(holder, config)).await {
                Ok(Ok(Claim::Granted)) => return true,
                Ok(Ok(Claim::Wait(ms))) => {
                    tokio::time::sleep(Duration::from_millis(
                        u64::try_from(ms.max(1)).unwrap_or(1),
                    ))
                    .await;
                }
                Ok(Err(e)) => {
                    self.fall_back(&e.0);
                    self.count_fallback();
                    return false;
                }
                Err(_) => {
                    self.fall_back("no answer within the claim timeout");
                    self.count_fallback();
                    return false;
                }
            }
        }
    }
}

/// Limits concurrent connection attempts across every socket that shares it and, with a store,
/// across the fleet.
#[derive(Debug)]
pub struct ConnectGate {
    config: GateConfig,
    permits: Arc<Semaphore>,
    next_start: Mutex<Option<Instant>>,
    fleet: Option<Arc<Fleet>>,
    in_flight: AtomicUsize,
    max_seen: AtomicUsize,
    attempts: AtomicUsize,
}

/// Held while a connection attempt is in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct GatePass {
    _permit: OwnedSemaphorePermit,
    gate: Arc<ConnectGate>,
    /// The fleet slot this pass holds, if it got one.
    holder: Option<String>,
}

impl GatePass {
    /// Whether the attempt holds a slot of the fleet's gate (`false`: this process's only).
    #[must_use]
    pub fn shared(&self) -> bool {
        self.holder.is_some()
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let now = self.gate.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!("jt_broker_ws_connect_in_flight").set(now as f64);
        if let (Some(holder), Some(fleet)) = (self.holder.take(), self.gate.fleet.clone()) {
            // Best effort: a release that does not arrive leaves the slot to its expiry.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    match tokio::time::timeout(CLAIM_TIMEOUT, fleet.release(&holder)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "connect gate slot left to expire");
                        }
                        Err(_) => tracing::debug!("connect gate slot left to expire: no answer"),
                    }
                });
            }
        }
    }
}

impl ConnectGate {
    /// A gate with its own limits (tests, or a connection manager that owns one).
    #[must_use]
    pub fn new(config: &GateConfig) -> Arc<Self> {
        Self::build(config, None)
    }

    /// A gate whose limits hold across every process sharing `store` (the services: the bus's
    /// `jt_broker_budgets` bucket), with this process's own gate in front and as the fall-back.
    #[must_use]
    pub fn shared(config: &GateConfig, store: Arc<dyn BudgetStore>) -> Arc<Self> {
        Self::shared_holding(config, store, SLOT_HOLD)
    }

    /// [`ConnectGate::shared`] with slots that expire after `hold` (tests of expiry).
    #[must_use]
    pub fn shared_holding(
        config: &GateConfig,
        store: Arc<dyn BudgetStore>,
        hold: Duration,
    ) -> Arc<Self> {
        let process = format!("{:08x}{:08x}", std::process::id(), rand::random::<u32>());
        Self::build(
            config,
            Some(Arc::new(Fleet {
                store,
                process,
                next_holder: AtomicU64::new(0),
                hold,
                fallback_until: Mutex::new(None),
                fallbacks: AtomicUsize::new(0),
            })),
        )
    }

    fn build(config: &GateConfig, fleet: Option<Arc<Fleet>>) -> Arc<Self> {
        Arc::new(Self {
            config: config.clone(),
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            next_start: Mutex::new(None),
            fleet,
            in_flight: AtomicUsize::new(0),
            max_seen: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
        })
    }

    /// The gate every socket of this process shares by default (2 in flight, 3 s apart).
    #[must_use]
    pub fn process_wide() -> Arc<Self> {
        static GATE: OnceLock<Arc<ConnectGate>> = OnceLock::new();
        Arc::clone(GATE.get_or_init(|| Self::new(&GateConfig::default())))
    }

    /// Waits for a slot and for the spacing since the previous attempt's start: this
    /// process's first, then the fleet's when the gate has a store.
    pub async fn enter(self: &Arc<Self>) -> GatePass {
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            unreachable!("the gate's semaphore is never closed");
        };
        let start = {
            let mut next = self.next_start.lock();
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + self.config.spacing);
            start
        };
        tokio::time::sleep_until(start).await;
        let holder = match &self.fleet {
            Some(fleet) => {
                let holder = format!(
                    "{}/{}",
                    fleet.process,
                    fleet.next_holder.fetch_add(1, Ordering::SeqCst)
                );
                fleet.enter(&holder, &self.config).await.then_some(holder)
            }
            None => None,
        };
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_seen.fetch_max(now, Ordering::SeqCst);
        self.attempts.fetch_add(1, Ordering::SeqCst);
        metrics::gauge!("jt_broker_ws_connect_in_flight").set(now as f64);
        GatePass {
            _permit: permit,
            gate: Arc::clone(self),
            holder,
        }
    }

    /// Whether the gate holds across the fleet (it has a store).
    #[must_use]
    pub fn is_shared(&self) -> bool {
        self.fleet.is_some()
    }

    /// Attempts admitted on this process's gate only because the fleet's store did not answer.
    #[must_use]
    pub fn fallbacks(&self) -> usize {
        self.fleet
            .as_ref()
            .map_or(0, |f| f.fallbacks.load(Ordering::SeqCst))
    }

    /// Attempts in flight now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most attempts ever in flight at once.
    #[must_use]
    pub fn max_in_flight_seen(&self) -> usize {
        self.max_seen.load(Ordering::SeqCst)
    }

    /// Attempts admitted so far.
    #[must_use]
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_limit_in_flight_and_starts_are_spaced() {
        let gate = ConnectGate::new(&GateConfig {
            max_in_flight: 2,
            spacing: Duration::from_secs(3),
        });
        let starts = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let gate = Arc::clone(&gate);
            let starts = Arc::clone(&starts);
            tasks.push(tokio::spawn(async move {
                let _pass = gate.enter().await;
                starts.lock().push(t0.elapsed());
                // An attempt takes 5 s.
                tokio::time::sleep(Duration::from_secs(5)).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(gate.max_in_flight_seen(), 2);
        assert_eq!(gate.attempts(), 10);
        let mut s = starts.lock().clone();
        s.sort();
        for pair in s.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(3), "{s:?}");
        }
    }

    const HOLD: i64 = 30_000;

    #[test]
    fn the_ledger_grants_up_to_the_limit_and_spaces_the_starts() {
        let mut l = GateLedger::default();
        assert_eq!(l.claim(1_000, "a/0", 2, 3_000, HOLD, 250), Claim::Granted);
        assert_eq!(l.next_start_ms, 4_000);
        // Too soon: wait for the next start.
        assert_eq!(
            l.claim(2_500, "b/0", 2, 3_000, HOLD, 250),
            Claim::Wait(1_500)
        );
        assert_eq!(l.claim(4_000, "b/0", 2, 3_000, HOLD, 250), Claim::Granted);
        // Both slots held: poll (the first expiry is far off).
        assert_eq!(l.claim(9_000, "c/0", 2, 3_000, HOLD, 250), Claim::Wait(250));
        assert_eq!(l.slots.len(), 2);
        // One released: the next start has long come.
        assert!(l.release("a/0"));
        assert!(!l.release("a/0"));
        assert_eq!(l.claim(9_000, "c/0", 2, 3_000, HOLD, 250), Claim::Granted);
        assert_eq!(
            l.slots
                .iter()
                .map(|s| s.holder.as_str())
                .collect::<Vec<_>>(),
            ["b/0", "c/0"]
        );
    }

    #[test]
    fn a_dead_holders_slot_expires_and_the_wait_ends_at_the_first_expiry() {
        let mut l = GateLedger::default();
        assert_eq!(l.claim(0, "dead/0", 2, 3_000, HOLD, 250), Claim::Granted);
        assert_eq!(
            l.claim(3_000, "dead/1", 2, 3_000, HOLD, 250),
            Claim::Granted
        );
        // Nearly expired: wait only until the first expiry, not a whole poll.
        assert_eq!(
            l.claim(29_900, "a/0", 2, 3_000, HOLD, 250),
            Claim::Wait(100)
        );
        // Expired: the slot is free again without a release.
        assert_eq!(l.claim(30_000, "a/0", 2, 3_000, HOLD, 250), Claim::Granted);
        assert_eq!(l.slots.len(), 2);
        assert_eq!(l.slots[0].holder, "dead/1");
        assert_eq!(l.slots[1].until_ms, 60_000);
        // Zero in flight is read as one.
        let mut one = GateLedger::default();
        assert_eq!(one.claim(0, "x/0", 0, 0, HOLD, 250), Claim::Granted);
        assert_eq!(one.claim(1, "x/1", 0, 0, HOLD, 250), Claim::Wait(250));
    }

    #[test]
    fn a_ledger_reads_back() {
        let l = GateLedger {
            slots: vec![Slot {
                holder: "p/1".into(),
                until_ms: 5,
            }],
            next_start_ms: 7,
        };
        let text = serde_json::to_string(&l).unwrap();
        assert_eq!(
            text,
            r#"{"slots":[{"holder":"p/1","until_ms":5}],"next_start_ms":7}"#
        );
        assert_eq!(serde_json::from_str::<GateLedger>(&text).unwrap(), l);
    }

    use crate::budget::MemoryStore;

    const SPACING: Duration = Duration::from_millis(150);

    fn config() -> GateConfig {
        GateConfig {
            max_in_flight: 2,
            spacing: SPACING,
        }
    }

    /// `gates` ("processes") each start `per_gate` attempts of 400 ms at once; returns the most
    /// attempts in flight across all of them and the attempts' starts (Unix ms), sorted.
    async fn storm(gates: &[Arc<ConnectGate>], per_gate: usize) -> (usize, Vec<i64>) {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for gate in gates {
            for _ in 0..per_gate {
                let (gate, in_flight, max, starts) = (
                    Arc::clone(gate),
                    Arc::clone(&in_flight),
                    Arc::clone(&max),
                    Arc::clone(&starts),
                );
                tasks.push(tokio::spawn(async move {
                    let pass = gate.enter().await;
                    starts.lock().push(now_ms());
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    drop(pass);
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut s = starts.lock().clone();
        s.sort_unstable();
        (max.load(Ordering::SeqCst), s)
    }

    #[tokio::test]
    async fn two_processes_sharing_a_store_keep_to_one_limit_and_one_spacing() {
        let store = Arc::new(MemoryStore::default());
        let gates = [
            ConnectGate::shared(&config(), Arc::clone(&store) as Arc<dyn BudgetStore>),
            ConnectGate::shared(&config(), Arc::clone(&store) as Arc<dyn BudgetStore>),
        ];
        let (max, starts) = storm(&gates, 4).await;
        assert_eq!(max, 2, "{starts:?}");
        assert_eq!(starts.len(), 8);
        for pair in starts.windows(2) {
            // The ledger spaced the claims exactly; the starts are read a moment after.
            assert!(pair[1] - pair[0] >= millis(SPACING) - 20, "{starts:?}");
        }
        assert!(gates.iter().all(|g| g.fallbacks() == 0));
        // Every slot was released (in the background).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (bytes, _) = store.load(GATE_KEY).await.unwrap().unwrap();
        let ledger: GateLedger = serde_json::from_slice(&bytes).unwrap();
        assert!(ledger.slots.is_empty(), "{ledger:?}");
    }

    #[tokio::test]
    async fn without_the_store_two_processes_make_twice_the_attempts() {
        // The problem the shared gate solves: each process keeps to 2, the fleet makes 4.
        let gates = [ConnectGate::new(&config()), ConnectGate::new(&config())];
        let (max, _) = storm(&gates, 4).await;
        assert_eq!(max, 4);
    }

    #[tokio::test]
    async fn a_dead_processes_slots_free_themselves_at_their_expiry() {
        let store = Arc::new(MemoryStore::default());
        let dead = ConnectGate::shared_holding(
            &GateConfig {
                max_in_flight: 2,
                spacing: Duration::ZERO,
            },
            Arc::clone(&store) as Arc<dyn BudgetStore>,
            Duration::from_millis(600),
        );
        // The "dead" process claims both slots and never releases them.
        std::mem::forget(dead.enter().await);
        std::mem::forget(dead.enter().await);
        let alive = ConnectGate::shared(&config(), Arc::clone(&store) as Arc<dyn BudgetStore>);
        let t0 = std::time::Instant::now();
        let pass = alive.enter().await;
        let waited = t0.elapsed();
        assert!(pass.shared());
        assert!(waited >= Duration::from_millis(500), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn a_failing_store_falls_back_to_the_process_gate_and_is_asked_again_later() {
        let store = Arc::new(MemoryStore::default());
        store.down.store(true, Ordering::Relaxed);
        let gate = ConnectGate::shared(&config(), Arc::clone(&store) as Arc<dyn BudgetStore>);
        let pass = gate.enter().await;
        assert!(!pass.shared());
        drop(pass);
        assert_eq!(gate.fallbacks(), 1);
        // The store is back, but within the fall-back period it is not asked.
        store.down.store(false, Ordering::Relaxed);
        assert!(!gate.enter().await.shared());
        assert_eq!(gate.fallbacks(), 2);
        assert_eq!(gate.attempts(), 2);
        let fleet = gate.fleet.as_ref().unwrap();
        *fleet.fallback_until.lock() = Some(std::time::Instant::now());
        assert!(gate.enter().await.shared());
        assert_eq!(gate.fallbacks(), 2);
    }

    /// A store that never answers.
    #[derive(Debug)]
    struct Silent;

    #[async_trait::async_trait]
    impl BudgetStore for Silent {
        async fn load(&self, _: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
            std::future::pending().await
        }
        async fn store(&self, _: &str, _: Vec<u8>, _: u64) -> Result<bool, StoreError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_store_costs_one_claim_timeout_then_the_process_gate_alone() {
        let gate = ConnectGate::shared(&config(), Arc::new(Silent));
        let t0 = Instant::now();
        assert!(!gate.enter().await.shared());
        assert_eq!(t0.elapsed(), CLAIM_TIMEOUT);
        let t1 = Instant::now();
        assert!(!gate.enter().await.shared());
        // Only the process's spacing, no second timeout.
        assert!(t1.elapsed() <= SPACING, "{:?}", t1.elapsed());
        assert_eq!(gate.fallbacks(), 2);
    }

    #[tokio::test]
    async fn an_unreadable_ledger_is_a_fall_back_not_a_free_gate() {
        let store = Arc::new(MemoryStore::default());
        store
            .store(GATE_KEY, b"{\"v2\":1}".to_vec(), 0)
            .await
            .unwrap();
        let gate = ConnectGate::shared(&config(), store as Arc<dyn BudgetStore>);
        assert!(!gate.enter().await.shared());
        assert_eq!(gate.fallbacks(), 1);
    }
}
