//! Per-login request limits: a governor rate limiter (every account on the token shares it),
//! a rolling-hour call budget that operators can watch, and the back-off and lock-out states
//! the broker imposes (HTTP 429/423, captcha).

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use crate::config::RateLimitConfig;
use jt_broker::error::BrokerError;
use jt_broker::model::{BrokerKind, CallBudget};

const BUCKET: Duration = Duration::from_secs(60);
const WINDOW: Duration = Duration::from_secs(3_600);

/// Calls counted in one-minute buckets over a rolling hour.
#[derive(Debug, Default)]
struct Window {
    buckets: VecDeque<(Instant, u32)>,
}

impl Window {
    fn prune(&mut self, now: Instant) {
        while let Some((start, _)) = self.buckets.front() {
            if now.duration_since(*start) >= WINDOW {
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
            Some((start, n)) if now.duration_since(*start) < BUCKET => *n += 1,
            _ => self.buckets.push_back((now, 1)),
        }
    }

    /// When the oldest bucket leaves the window.
    fn next_release(&self, now: Instant) -> Duration {
        self.buckets.front().map_or(Duration::ZERO, |(start, _)| {
            WINDOW.saturating_sub(now.duration_since(*start))
        })
    }
}

/// The limits of one login.
pub struct LoginLimits {
    kind: BrokerKind,
    config: RateLimitConfig,
    per_second: DefaultDirectRateLimiter,
    window: Mutex<Window>,
    cool_down_until: Mutex<Option<Instant>>,
    locked_until: Mutex<Option<DateTime<Utc>>>,
    /// Whether this login counts in `jt_broker_logins_near_budget`.
    near_budget: AtomicBool,
}

/// Share of the hourly budget from which a login counts as "near its limit" (operators watch
/// `jt_broker_logins_near_budget`).
pub const NEAR_BUDGET: f64 = 0.8;

impl std::fmt::Debug for LoginLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimits")
            .field("budget", &self.budget())
            .field("locked_until", &*self.locked_until.lock())
            .finish_non_exhaustive()
    }
}

impl Drop for LoginLimits {
    fn drop(&mut self) {
        if self.near_budget.load(Ordering::Relaxed) {
            metrics::gauge!("jt_broker_logins_near_budget", "broker" => self.kind.as_str())
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
    pub fn new(kind: BrokerKind, config: RateLimitConfig) -> Self {
        let quota =
            Quota::per_second(nonzero(config.per_second)).allow_burst(nonzero(config.burst));
        Self {
            kind,
            per_second: RateLimiter::direct(quota),
            config,
            window: Mutex::new(Window::default()),
            cool_down_until: Mutex::new(None),
            locked_until: Mutex::new(None),
            near_budget: AtomicBool::new(false),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Waits for a request slot, or refuses at once when the login is locked out, cooling down
    /// after a 429/423, or out of its hourly budget. Counts the call when admitted.
    ///
    /// # Errors
    /// `LockedOut` or `RateLimited`.
    pub async fn admit(&self) -> Result<(), BrokerError> {
        self.refuse_if_blocked()?;
        {
            let now = Instant::now();
            let mut w = self.window.lock();
            if w.used(now) >= self.config.per_hour {
                metrics::counter!("jt_broker_budget_exhausted_total", "broker" => self.kind.as_str())
                    .increment(1);
                return Err(BrokerError::RateLimited {
                    retry_after: w.next_release(now),
                });
            }
        }
        self.per_second.until_ready().await;
        // A lock-out may have been set while we waited.
        self.refuse_if_blocked()?;
        let now = Instant::now();
        let used = {
            let mut w = self.window.lock();
            w.add(now);
            w.used(now)
        };
        let ratio = f64::from(used) / f64::from(self.config.per_hour.max(1));
        metrics::histogram!("jt_broker_token_budget_used_ratio", "broker" => self.kind.as_str())
            .record(ratio);
        let near = ratio >= NEAR_BUDGET;
        if self.near_budget.swap(near, Ordering::Relaxed) != near {
            let gauge =
                metrics::gauge!("jt_broker_logins_near_budget", "broker" => self.kind.as_str());
            if near {
                tracing::warn!(
                    used,
                    limit = self.config.per_hour,
                    "login is near its hourly request budget"
                );
                gauge.increment(1.0);
            } else {
                gauge.decrement(1.0);
            }
        }
        Ok(())
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

    /// The broker throttled us (429 or 423): refuse calls for `wait`.
    pub fn cool_down(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut cool = self.cool_down_until.lock();
        if cool.is_none_or(|c| c < until) {
            *cool = Some(until);
        }
    }

    /// A captcha was demanded: lock the login out and return until when.
    pub fn lock_out(&self) -> DateTime<Utc> {
        let until = Utc::now()
            + chrono::Duration::from_std(self.config.captcha_lockout)
                .unwrap_or_else(|_| chrono::Duration::hours(1));
        *self.locked_until.lock() = Some(until);
        metrics::counter!("jt_broker_lockouts_total", "broker" => self.kind.as_str()).increment(1);
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

    /// Calls used in the rolling hour.
    #[must_use]
    pub fn budget(&self) -> CallBudget {
        CallBudget {
            used: self.window.lock().used(Instant::now()),
            limit: self.config.per_hour,
            window: WINDOW,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_hour: u32) -> LoginLimits {
        LoginLimits::new(
            BrokerKind::Tradovate,
            RateLimitConfig {
                per_second: 1_000,
                burst: 1_000,
                per_hour,
                ..RateLimitConfig::default()
            },
        )
    }

    #[tokio::test]
    async fn the_hourly_budget_is_counted_and_enforced() {
        let l = limits(3);
        for _ in 0..3 {
            l.admit().await.unwrap();
        }
        assert_eq!(l.budget().used, 3);
        assert_eq!(l.budget().remaining(), 0);
        let err = l.admit().await.unwrap_err();
        assert!(
            matches!(err, BrokerError::RateLimited { retry_after } if retry_after > Duration::from_secs(3_500)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_lock_out_refuses_every_call_until_it_ends() {
        let l = limits(100);
        let until = l.lock_out();
        assert!(until > Utc::now() + chrono::Duration::minutes(59));
        assert_eq!(l.admit().await, Err(BrokerError::LockedOut { until }));
        assert_eq!(l.locked_until(), Some(until));
    }

    #[tokio::test]
    async fn a_cool_down_refuses_fast_then_expires() {
        let l = limits(100);
        l.cool_down(Duration::from_millis(50));
        assert!(matches!(
            l.admit().await,
            Err(BrokerError::RateLimited { .. })
        ));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(l.admit().await.is_ok());
    }

    #[tokio::test]
    async fn the_per_second_limiter_spaces_calls() {
        let l = LoginLimits::new(
            BrokerKind::Tradovate,
            RateLimitConfig {
                per_second: 20,
                burst: 1,
                ..RateLimitConfig::default()
            },
        );
        let start = Instant::now();
        for _ in 0..5 {
            l.admit().await.unwrap();
        }
        // 1 immediate + 4 × 50 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    }
}
