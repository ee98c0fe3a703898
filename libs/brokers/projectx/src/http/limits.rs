//! ProjectX's per-token request limits, as [`jt_net::limits`] enforces them for every venue:
//! every account on the token shares them.
//!
//! ProjectX allows 200 requests per 60 s and 30 `History/retrieveBars` per 30 s per token
//! (BROKERS.md §2.7): two lanes, each spaced so that no window of that length can hold more
//! than its budget ([`Pace::Spread`]). A call that would wait longer than `max_wait` for its
//! slot fails with `RateLimited`; after an HTTP 429 the login cools down and calls fail fast
//! until it ends.

use std::time::Duration;

use jt_net::limits::{Lane, LaneConfig, LimitsConfig, LoginLimits, Pace};

use crate::config::RateLimitConfig;

/// Which budget a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Every endpoint but the bars.
    General,
    /// `History/retrieveBars`.
    Bars,
}

impl From<Bucket> for Lane {
    fn from(b: Bucket) -> Self {
        match b {
            Bucket::General => Lane(0),
            Bucket::Bars => Lane(1),
        }
    }
}

/// The limits of one ProjectX login.
#[must_use]
pub fn login_limits(config: &RateLimitConfig) -> LoginLimits {
    let lane = |budget, window| LaneConfig {
        pace: Pace::Spread { budget, window },
        max_wait: Some(config.max_wait),
        counted: false,
    };
    LoginLimits::new(LimitsConfig {
        venue: "projectx",
        lanes: vec![
            LaneConfig {
                counted: true,
                ..lane(config.requests, config.window)
            },
            lane(config.bars_requests, config.bars_window),
        ],
        window: config.window,
        budget: config.requests,
        // The pace keeps the budget; nothing to refuse early.
        refuse_when_spent: false,
        // ProjectX demands no captcha; a lock-out cannot happen.
        lockout: Duration::from_secs(3_600),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use jt_broker::error::BrokerError;

    #[tokio::test]
    async fn no_window_holds_more_than_the_budget() {
        let l = login_limits(&RateLimitConfig {
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
        let l = login_limits(&RateLimitConfig {
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
