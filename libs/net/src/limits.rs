//! Per-login request limits, shared by every account and caller of the login (brokers count
//! per token or per user, never per account): paced lanes (governor), the budget window that
//! operators watch, and the states the broker imposes — a cool-down after it throttled us
//! (HTTP 429/423) and a lock-out after a captcha.
//!
//! A venue describes its limits as [`Lane`]s in a [`LimitsConfig`]:
//!
//! - Tradovate: one lane paced per second with a burst, and a rolling hour of about 5,000
//!   calls beyond which calls fail fast (`RateLimited`) instead of waiting for minutes;
//! - ProjectX: 200 calls per 60 s and, in a lane of their own, 30 bar requests per 30 s, each
//!   paced so that no window can hold more than its budget ([`Pace::Spread`]); a call that
//!   would wait longer than `max_wait` for its slot fails with `RateLimited`.
//!
//! The pacing and the window here are per process. With a fleet-wide store
//! ([`LoginLimits::with_shared`]) a counted call also takes a slot of the login's shared budget
//! ([`crate::budget`]), so all processes of a login together keep its budget; a broker's
//! cool-down is shared the same way.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jt_broker::{BrokerError, CallBudget};
use parking_lot::Mutex;

use crate::budget::{BudgetStore, SharedSlots, Take};

/// Share of the budget window from which a login counts as "near its limit" (operators watch
/// `jt_broker_logins_near_budget`).
pub const NEAR_BUDGET: f64 = 0.8;

/// How a lane spaces its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// A sustained rate with a burst above it.
    PerSecond {
        /// Calls per second.
        rate: u32,
        /// Calls allowed at once above the rate.
        burst: u32,
    },
    /// At most `budget` calls in any `window`: a burst of a tenth of the budget (1 to 20), the
    /// rest spread evenly, so `burst + window × rate = budget`.
    Spread {
        /// Calls per window.
        budget: u32,
        /// The window.
        window: Duration,
    },
}

impl Pace {
    fn limiter(self) -> DefaultDirectRateLimiter {
        let quota = match self {
            Self::PerSecond { rate, burst } => {
                Quota::per_second(nonzero(rate)).allow_burst(nonzero(burst))
            }
            Self::Spread { budget, window } => {
                let budget = budget.max(2);
                let burst = (budget / 10).clamp(1, 20);
                let period = window / (budget - burst).max(1);
                Quota::with_period(period.max(Duration::from_micros(1)))
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(nonzero(burst))
            }
        };
        RateLimiter::direct(quota)
    }
}

/// One stream of calls with its own pace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneConfig {
    /// How calls are spaced.
    pub pace: Pace,
    /// A call that would wait longer than this for its slot fails with `RateLimited`
    /// (`None`: it waits).
    pub max_wait: Option<Duration>,
    /// Whether its calls count in the login's budget window.
    pub counted: bool,
}

/// A lane of a login's limits, by its index in [`LimitsConfig::lanes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lane(pub usize);

impl Lane {
    /// The first lane (every call, for a venue with one).
    pub const MAIN: Lane = Lane(0);
}

/// The limits of a venue's logins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// The venue's metric label.
    pub venue: &'static str,
    /// The lanes; a call names one.
    pub lanes: Vec<LaneConfig>,
    /// The budget window the counted calls are reported over.
    pub window: Duration,
    /// Calls allowed in the window.
    pub budget: u32,
    /// Refuse calls at once (`RateLimited` until the oldest leaves the window) when the window
    /// already holds `budget` calls; otherwise the pace alone keeps the budget.
    pub refuse_when_spent: bool,
    /// How long a captcha locks the login out.
    pub lockout: Duration,
}

/// Calls counted in buckets (a sixtieth of the window each) over a rolling window.
#[derive(Debug)]
struct Window {
    length: Duration,
    bucket: Duration,
    buckets: VecDeque<(Instant, u32)>,
}

impl Window {
    fn new(length: Duration) -> Self {
        Self {
            length,
            bucket: (length / 60).max(Duration::from_micros(1)),
            buckets: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some((start, _)) = self.buckets.front() {
            if now.duration_since(*start) >= self.length {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    fn used(&mut self, now: Instant) -> u32 {
        self.prune(now);
        self.buckets.iter().map(|(_, n)| *n).sum()
    }

    fn add(&mut self, now: Instant) {
        match self.buckets.back_mut() {
            Some((start, n)) if now.duration_since(*start) < self.bucket => *n += 1,
            _ => self.buckets.push_back((now, 1)),
        }
    }

    /// When the oldest bucket leaves the window.
    fn next_release(&self, now: Instant) -> Duration {
        self.buckets.front().map_or(Duration::ZERO, |(start, _)| {
            self.length.saturating_sub(now.duration_since(*start))
        })
    }
}

/// The limits of one login.
pub struct LoginLimits {
    config: LimitsConfig,
    lanes: Vec<DefaultDirectRateLimiter>,
    window: Mutex<Window>,
    cool_down_until: Mutex<Option<Instant>>,
    locked_until: Mutex<Option<DateTime<Utc>>>,
    /// Whether this login counts in `jt_broker_logins_near_budget`.
    near_budget: AtomicBool,
    /// The login's fleet-wide budget, when the process has a store for it.
    shared: Option<Arc<SharedSlots>>,
}

impl std::fmt::Debug for LoginLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimits")
            .field("venue", &self.config.venue)
            .field("budget", &self.budget())
            .field("locked_until", &*self.locked_until.lock())
            .finish_non_exhaustive()
    }
}

impl Drop for LoginLimits {
    fn drop(&mut self) {
        if self.near_budget.load(Ordering::Relaxed) {
            metrics::gauge!("jt_broker_logins_near_budget", "broker" => self.config.venue)
                .decrement(1.0);
        }
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

impl LoginLimits {
    /// Limits for one login.
    #[must_use]
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            lanes: config.lanes.iter().map(|l| l.pace.limiter()).collect(),
            window: Mutex::new(Window::new(config.window)),
            config,
            cool_down_until: Mutex::new(None),
            locked_until: Mutex::new(None),
            near_budget: AtomicBool::new(false),
            shared: None,
        }
    }

    /// The same limits, with the counted calls also taking slots of the login's budget shared
    /// by the fleet through `store` under `key` ([`crate::budget::ledger_key`]).
    #[must_use]
    pub fn with_shared(mut self, store: Arc<dyn BudgetStore>, key: String) -> Self {
        self.shared = Some(Arc::new(SharedSlots::new(
            store,
            key,
            self.config.venue,
            self.config.window,
            self.config.budget,
        )));
        self
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    fn exhausted(&self, retry_after: Duration) -> BrokerError {
        metrics::counter!("jt_broker_budget_exhausted_total", "broker" => self.config.venue)
            .increment(1);
        BrokerError::RateLimited { retry_after }
    }

    /// Waits for a slot in `lane`, or refuses at once when the login is locked out, cooling
    /// down, or out of its budget; a slot further away than the lane's `max_wait` is refused
    /// too. A counted call then takes a slot of the shared budget, if there is one: when the
    /// fleet spent it, the call is refused at once (`refuse_when_spent`) or waits for a slot
    /// within the lane's `max_wait`. Counts the call when admitted.
    ///
    /// # Errors
    /// `LockedOut` or `RateLimited`.
    pub async fn admit(&self, lane: impl Into<Lane>) -> Result<(), BrokerError> {
        let lane = lane.into();
        let started = Instant::now();
        self.refuse_if_blocked()?;
        let Some((limiter, config)) = self.lanes.get(lane.0).zip(self.config.lanes.get(lane.0))
        else {
            return Err(BrokerError::invalid(format!(
                "no request lane {} for {}",
                lane.0, self.config.venue
            )));
        };
        if self.config.refuse_when_spent && config.counted {
            let now = Instant::now();
            let mut w = self.window.lock();
            if w.used(now) >= self.config.budget {
                let release = w.next_release(now);
                drop(w);
                return Err(self.exhausted(release));
            }
        }
        match config.max_wait {
            Some(max) => {
                if tokio::time::timeout(max, limiter.until_ready())
                    .await
                    .is_err()
                {
                    return Err(self.exhausted(max));
                }
            }
            None => limiter.until_ready().await,
        }
        // A lock-out or cool-down may have begun while we waited.
        self.refuse_if_blocked()?;
        if config.counted {
            if let Some(shared) = &self.shared {
                self.take_shared(shared, config.max_wait, started).await?;
            }
            self.count();
        }
        Ok(())
    }

    /// A slot of the shared budget, waiting for one only where the lane waits.
    async fn take_shared(
        &self,
        shared: &SharedSlots,
        max_wait: Option<Duration>,
        started: Instant,
    ) -> Result<(), BrokerError> {
        loop {
            match shared.take().await {
                // Unavailable: the per-process limits above already admitted the call.
                Take::Granted | Take::Unavailable => return Ok(()),
                Take::CoolingDown { retry_after } => {
                    self.cool_down_here(retry_after);
                    return Err(BrokerError::RateLimited { retry_after });
                }
                Take::Spent { retry_after } => {
                    let may_wait = !self.config.refuse_when_spent
                        && max_wait.is_none_or(|max| started.elapsed() + retry_after <= max);
                    if !may_wait {
                        return Err(self.exhausted(retry_after));
                    }
                    tokio::time::sleep(retry_after).await;
                    self.refuse_if_blocked()?;
                }
            }
        }
    }

    fn count(&self) {
        let now = Instant::now();
        let used = {
            let mut w = self.window.lock();
            w.add(now);
            w.used(now)
        };
        let venue = self.config.venue;
        let ratio = f64::from(used) / f64::from(self.config.budget.max(1));
        metrics::histogram!("jt_broker_token_budget_used_ratio", "broker" => venue).record(ratio);
        let near = ratio >= NEAR_BUDGET;
        if self.near_budget.swap(near, Ordering::Relaxed) != near {
            let gauge = metrics::gauge!("jt_broker_logins_near_budget", "broker" => venue);
            if near {
                tracing::warn!(
                    used,
                    limit = self.config.budget,
                    "login is near its request budget"
                );
                gauge.increment(1.0);
            } else {
                gauge.decrement(1.0);
            }
        }
    }

    fn refuse_if_blocked(&self) -> Result<(), BrokerError> {
        if let Some(until) = *self.locked_until.lock()
            && Utc::now() < until
        {
            return Err(BrokerError::LockedOut { until });
        }
        let mut cool = self.cool_down_until.lock();
        if let Some(until) = *cool {
            let now = Instant::now();
            if now < until {
                return Err(BrokerError::RateLimited {
                    retry_after: until - now,
                });
            }
            *cool = None;
        }
        Ok(())
    }

    /// The broker throttled us (429 or 423): refuse calls for `wait`, and tell the fleet
    /// through the shared budget (in the background) so its other processes stop too.
    pub fn cool_down(&self, wait: Duration) {
        self.cool_down_here(wait);
        if let Some(shared) = &self.shared
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let shared = Arc::clone(shared);
            runtime.spawn(async move { shared.share_cool_down(wait).await });
        }
    }

    /// Refuse calls of this process for `wait`.
    fn cool_down_here(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut cool = self.cool_down_until.lock();
        if cool.is_none_or(|c| c < until) {
            *cool = Some(until);
        }
    }

    /// A captcha was demanded: lock the login out and return until when.
    pub fn lock_out(&self) -> DateTime<Utc> {
        let until = Utc::now()
            + chrono::Duration::from_std(self.config.lockout)
                .unwrap_or_else(|_| chrono::Duration::hours(1));
        *self.locked_until.lock() = Some(until);
        metrics::counter!("jt_broker_lockouts_total", "broker" => self.config.venue).increment(1);
        tracing::error!(%until, "broker demanded a captcha: login locked out, not retrying before");
        until
    }

    /// Another process of the login met a captcha (its session store says so): refuse calls
    /// until `until` as if this process had met it.
    pub fn lock_out_until(&self, until: DateTime<Utc>) {
        let mut locked = self.locked_until.lock();
        if locked.is_none_or(|u| u < until) {
            *locked = Some(until);
            tracing::error!(%until, "login locked out by another process's captcha; not retrying before");
        }
    }

    /// Until when the login is locked out, if it is.
    #[must_use]
    pub fn locked_until(&self) -> Option<DateTime<Utc>> {
        (*self.locked_until.lock()).filter(|u| Utc::now() < *u)
    }

    /// Calls counted in the budget window.
    #[must_use]
    pub fn budget(&self) -> CallBudget {
        CallBudget {
            used: self.window.lock().used(Instant::now()),
            limit: self.config.budget,
            window: self.config.window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_lane_is_refused_not_waited_for() {
        let l = LoginLimits::new(LimitsConfig {
            venue: "test",
            lanes: vec![LaneConfig {
                pace: Pace::PerSecond {
                    rate: 1_000,
                    burst: 1_000,
                },
                max_wait: None,
                counted: true,
            }],
            window: Duration::from_secs(60),
            budget: 10,
            refuse_when_spent: false,
            lockout: Duration::from_secs(3_600),
        });
        l.admit(Lane::MAIN).await.unwrap();
        assert!(matches!(
            l.admit(Lane(1)).await,
            Err(BrokerError::InvalidRequest { .. })
        ));
        assert_eq!(l.budget().used, 1);
    }

    fn shared_pair(
        budget: u32,
        window: Duration,
        max_wait: Option<Duration>,
        refuse_when_spent: bool,
    ) -> (LoginLimits, LoginLimits) {
        let store: Arc<dyn BudgetStore> = Arc::new(crate::budget::MemoryStore::default());
        let make = || {
            LoginLimits::new(LimitsConfig {
                venue: "test",
                lanes: vec![LaneConfig {
                    pace: Pace::PerSecond {
                        rate: 1_000,
                        burst: 1_000,
                    },
                    max_wait,
                    counted: true,
                }],
                window,
                budget,
                refuse_when_spent,
                lockout: Duration::from_secs(3_600),
            })
            .with_shared(Arc::clone(&store), "test.login".into())
        };
        (make(), make())
    }

    #[tokio::test]
    async fn two_processes_share_one_budget_and_the_excess_is_refused_at_once() {
        let (a, b) = shared_pair(10, Duration::from_secs(3_600), None, true);
        let mut admitted = 0;
        for _ in 0..10 {
            for l in [&a, &b] {
                match l.admit(Lane::MAIN).await {
                    Ok(()) => admitted += 1,
                    Err(BrokerError::RateLimited { retry_after }) => {
                        assert!(retry_after > Duration::from_secs(3_600), "{retry_after:?}");
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        assert_eq!(admitted, 10);
        // Each process's own window holds only its own calls.
        assert_eq!(a.budget().used + b.budget().used, 10);
    }

    #[tokio::test]
    async fn a_waiting_lane_waits_for_the_fleets_slot_within_its_max_wait() {
        // Buckets of 10 ms, a span of 650 ms.
        let window = Duration::from_millis(600);
        let (a, b) = shared_pair(4, window, Some(Duration::from_secs(3)), false);
        for _ in 0..4 {
            a.admit(Lane::MAIN).await.unwrap();
        }
        let started = Instant::now();
        b.admit(Lane::MAIN).await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        let (c, d) = shared_pair(4, window, Some(Duration::from_millis(100)), false);
        for _ in 0..4 {
            c.admit(Lane::MAIN).await.unwrap();
        }
        let started = Instant::now();
        assert!(matches!(
            d.admit(Lane::MAIN).await,
            Err(BrokerError::RateLimited { .. })
        ));
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_brokers_cool_down_stops_the_other_processes_too() {
        let (a, b) = shared_pair(100, Duration::from_secs(60), None, true);
        a.cool_down(Duration::from_secs(30));
        // The cool-down is written in the background.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            b.admit(Lane::MAIN).await,
            Err(BrokerError::RateLimited { retry_after }) if retry_after > Duration::from_secs(28)
        ));
        // And b now cools down on its own, without asking the store.
        assert!(matches!(
            b.admit(Lane::MAIN).await,
            Err(BrokerError::RateLimited { .. })
        ));
    }
}
