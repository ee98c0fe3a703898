//! Tradovate's request limits, as [`jt_net::limits`] enforces them for every venue: one lane
//! paced per second with a burst (every account on the token shares it), a rolling hour of
//! about 5,000 calls per user beyond which calls fail fast with `RateLimited` instead of waiting
//! for minutes, and the lock-out after a captcha.

use std::time::Duration;

use jt_broker::model::BrokerKind;
use jt_net::limits::{LaneConfig, LimitsConfig, LoginLimits, Pace};

use crate::config::RateLimitConfig;

/// The budget window Tradovate counts calls over.
const WINDOW: Duration = Duration::from_secs(3_600);

/// The limits of one Tradovate (or NinjaTrader) login.
#[must_use]
pub fn login_limits(kind: BrokerKind, config: &RateLimitConfig) -> LoginLimits {
    LoginLimits::new(LimitsConfig {
        venue: kind.as_str(),
        lanes: vec![LaneConfig {
            pace: Pace::PerSecond {
                rate: config.per_second,
                burst: config.burst,
            },
            max_wait: None,
            counted: true,
        }],
        window: WINDOW,
        budget: config.per_hour,
        refuse_when_spent: true,
        lockout: config.captcha_lockout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use chrono::Utc;
    use jt_broker::error::BrokerError;
    use jt_net::limits::Lane;

    fn limits(per_hour: u32) -> LoginLimits {
        login_limits(
            BrokerKind::Tradovate,
            &RateLimitConfig {
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
            l.admit(Lane::MAIN).await.unwrap();
        }
        assert_eq!(l.budget().used, 3);
        assert_eq!(l.budget().remaining(), 0);
        let err = l.admit(Lane::MAIN).await.unwrap_err();
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
        assert_eq!(
            l.admit(Lane::MAIN).await,
            Err(BrokerError::LockedOut { until })
        );
        assert_eq!(l.locked_until(), Some(until));
    }

    #[tokio::test]
    async fn a_cool_down_refuses_fast_then_expires() {
        let l = limits(100);
        l.cool_down(Duration::from_millis(50));
        assert!(matches!(
            l.admit(Lane::MAIN).await,
            Err(BrokerError::RateLimited { .. })
        ));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(l.admit(Lane::MAIN).await.is_ok());
    }

    #[tokio::test]
    async fn the_per_second_limiter_spaces_calls() {
        let l = login_limits(
            BrokerKind::Tradovate,
            &RateLimitConfig {
                per_second: 20,
                burst: 1,
                ..RateLimitConfig::default()
            },
        );
        let start = Instant::now();
        for _ in 0..5 {
            l.admit(Lane::MAIN).await.unwrap();
        }
        // 1 immediate + 4 × 50 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    }
}
