//! Per-login (per-token) request limits: every account on the token shares them.
//!
//! ProjectX allows 200 requests per 60 s and 30 `History/retrieveBars` per 30 s per token
//! (BROKERS.md §2.7). A `governor` limiter per bucket spaces the calls so that no window of
//! that length can hold more than the budget: with a burst of `b` the sustained rate is
//! `(budget − b) / window`, so `b + window × rate = budget` at most. A call that would wait
//! longer than `max_wait` for its slot fails with `RateLimited`; after an HTTP 429 the login
//! cools down and calls fail fast until it ends.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use crate::config::RateLimitConfig;
use jt_broker::error::BrokerError;
use jt_broker::model::CallBudget;

/// Which budget a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Every endpoint but the bars.
    General,
    /// `History/retrieveBars`.
    Bars,
}

fn limiter(budget: u32, window: Duration) -> DefaultDirectRateLimiter {
    let budget = budget.max(2);
    let burst = (budget / 10).clamp(1, 20);
    let sustained = budget - burst;
    let period = window / sustained.max(1);
    let quota = Quota::with_period(period.max(Duration::from_micros(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
    RateLimiter::direct(quota)
}

/// The limits of one login.
pub struct LoginLimits {
    config: RateLimitConfig,
    general: DefaultDirectRateLimiter,
    bars: DefaultDirectRateLimiter,
    admitted: Mutex<VecDeque<Instant>>,
    cool_down_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for LoginLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimits")
            .field("budget", &self.budget())
            .finish_non_exhaustive()
    }
}

impl LoginLimits {
    /// Limits for one login.
    #[must_use]
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            general: limiter(config.requests, config.window),
            bars: limiter(config.bars_requests, config.bars_window),
            config,
            admitted: Mutex::new(VecDeque::new()),
            cool_down_until: Mutex::new(None),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    fn refuse_if_cooling(&self) -> Result<(), BrokerError> {
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

    /// Waits for a slot in `bucket` (at most `max_wait`), or refuses at once while cooling
    /// down after a 429. Counts the call when admitted.
    ///
    /// # Errors
    /// `RateLimited`.
    pub async fn admit(&self, bucket: Bucket) -> Result<(), BrokerError> {
        self.refuse_if_cooling()?;
        let limiter = match bucket {
            Bucket::General => &self.general,
            Bucket::Bars => &self.bars,
        };
        if tokio::time::timeout(self.config.max_wait, limiter.until_ready())
            .await
            .is_err()
        {
            metrics::counter!("jt_broker_budget_exhausted_total", "broker" => "projectx")
                .increment(1);
            return Err(BrokerError::RateLimited {
                retry_after: self.config.max_wait,
            });
        }
        self.refuse_if_cooling()?;
        if bucket == Bucket::General {
            let now = Instant::now();
            let mut log = self.admitted.lock();
            log.push_back(now);
            while log
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.config.window)
            {
                log.pop_front();
            }
            let ratio = log.len() as f64 / f64::from(self.config.requests.max(1));
            metrics::histogram!("jt_broker_token_budget_used_ratio", "broker" => "projectx")
                .record(ratio);
        }
        Ok(())
    }

    /// The broker answered 429: refuse calls for `wait`.
    pub fn cool_down(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut cool = self.cool_down_until.lock();
        if cool.is_none_or(|c| c < until) {
            *cool = Some(until);
        }
    }

    /// Calls made in the current window (the general bucket).
    #[must_use]
    pub fn budget(&self) -> CallBudget {
        let now = Instant::now();
        let used = self
            .admitted
            .lock()
            .iter()
            .filter(|t| now.duration_since(**t) < self.config.window)
            .count();
        CallBudget {
            used: u32::try_from(used).unwrap_or(u32::MAX),
            limit: self.config.requests,
            window: self.config.window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_window_holds_more_than_the_budget() {
        let l = LoginLimits::new(RateLimitConfig {
            requests: 20,
            window: Duration::from_millis(400),
            max_wait: Duration::from_secs(5),
            ..RateLimitConfig::default()
        });
        let mut times = Vec::new();
        for _ in 0..45 {
            l.admit(Bucket::General).await.unwrap();
            times.push(Instant::now());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_millis(400))
                .count();
            assert!(in_window <= 20, "{in_window} calls within one window");
        }
        assert!(l.budget().used <= 20);
    }

    #[tokio::test]
    async fn a_slot_too_far_away_or_a_cool_down_refuses_fast() {
        let l = LoginLimits::new(RateLimitConfig {
            bars_requests: 2,
            bars_window: Duration::from_secs(60),
            max_wait: Duration::from_millis(50),
            ..RateLimitConfig::default()
        });
        l.admit(Bucket::Bars).await.unwrap();
        let err = l.admit(Bucket::Bars).await.unwrap_err();
        assert!(matches!(err, BrokerError::RateLimited { .. }), "{err:?}");
        l.admit(Bucket::General).await.unwrap();
        l.cool_down(Duration::from_millis(60));
        assert!(l.admit(Bucket::General).await.is_err());
        tokio::time::sleep(Duration::from_millis(70)).await;
        assert!(l.admit(Bucket::General).await.is_ok());
    }
}
