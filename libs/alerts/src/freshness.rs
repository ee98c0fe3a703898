//! Staleness (DOMAIN.md §2): a signal whose `time` is more than `stale_after_secs` before the
//! moment it is about to be executed is not executed, and is recorded as stale with its age.
//!
//! Pure: the caller passes the moment of execution. The executor checks again right before
//! executing, not only at receipt (a signal can wait in the queue).

use chrono::{DateTime, TimeDelta, Utc};

/// The trader setting's default (`stale_after_secs`).
pub const DEFAULT_STALE_AFTER_SECS: u32 = 30;

/// The outcome of a staleness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The alert carries no `time`: it is never stale.
    Untimed,
    /// Within its limit.
    Fresh {
        /// How long ago the alert fired (negative when the sender's clock is ahead).
        age: TimeDelta,
    },
    /// Too old: do not execute; record it as stale with its age.
    Stale {
        /// How long ago the alert fired.
        age: TimeDelta,
        /// The most it was allowed: the limit plus the alert's own `delay`.
        allowed: TimeDelta,
    },
}

impl Freshness {
    /// Whether the signal must not be executed.
    #[must_use]
    pub fn is_stale(&self) -> bool {
        matches!(self, Freshness::Stale { .. })
    }
}

/// Checks an alert's age at the moment of execution `now`.
///
/// The limit is the alert's `max_lag` when it has one, else `stale_after_secs`. A per-alert
/// `delay` is an intended wait, so it is added to the limit: the check measures how late the
/// execution is beyond the moment the alert asked for (`time + delay`). A signal exactly at
/// the limit is still fresh ("more than" the limit is stale). No `time` → [`Freshness::Untimed`].
#[must_use]
pub fn check_freshness(
    alert_time: Option<DateTime<Utc>>,
    delay_secs: u32,
    max_lag_secs: Option<u32>,
    stale_after_secs: u32,
    now: DateTime<Utc>,
) -> Freshness {
    let Some(time) = alert_time else {
        return Freshness::Untimed;
    };
    let limit = max_lag_secs.unwrap_or(stale_after_secs);
    let allowed = TimeDelta::seconds(i64::from(limit) + i64::from(delay_secs));
    let age = now.signed_duration_since(time);
    if age > allowed {
        Freshness::Stale { age, allowed }
    } else {
        Freshness::Fresh { age }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const FIRED: &str = "2026-01-05T14:30:00Z";

    #[rstest]
    #[case::fresh_within_default("2026-01-05T14:30:10Z", 0, None, 30, false)]
    #[case::exactly_at_the_limit_is_fresh("2026-01-05T14:30:30Z", 0, None, 30, false)]
    #[case::one_millisecond_over_is_stale("2026-01-05T14:30:30.001Z", 0, None, 30, true)]
    #[case::old_signal_is_stale("2026-01-05T14:31:00Z", 0, None, 30, true)]
    #[case::max_lag_extends_the_limit("2026-01-05T14:34:00Z", 0, Some(300), 30, false)]
    #[case::max_lag_shortens_the_limit("2026-01-05T14:30:06Z", 0, Some(5), 30, true)]
    #[case::delay_is_added_to_the_limit("2026-01-05T14:31:20Z", 60, None, 30, false)]
    #[case::late_beyond_the_delay_is_stale("2026-01-05T14:31:31Z", 60, None, 30, true)]
    #[case::sender_clock_ahead_is_fresh("2026-01-05T14:29:00Z", 0, None, 30, false)]
    fn stale_when_older_than_the_limit_at_execution(
        #[case] now: &str,
        #[case] delay: u32,
        #[case] max_lag: Option<u32>,
        #[case] stale_after: u32,
        #[case] stale: bool,
    ) {
        let f = check_freshness(Some(at(FIRED)), delay, max_lag, stale_after, at(now));
        assert_eq!(f.is_stale(), stale, "{f:?}");
    }

    #[test]
    fn stale_reports_its_age_and_the_limit() {
        let f = check_freshness(
            Some(at(FIRED)),
            0,
            None,
            DEFAULT_STALE_AFTER_SECS,
            at("2026-01-05T14:30:45Z"),
        );
        assert_eq!(
            f,
            Freshness::Stale {
                age: TimeDelta::seconds(45),
                allowed: TimeDelta::seconds(30)
            }
        );
    }

    #[test]
    fn no_time_is_never_stale() {
        let f = check_freshness(None, 0, Some(1), 1, at("2099-01-01T00:00:00Z"));
        assert_eq!(f, Freshness::Untimed);
        assert!(!f.is_stale());
    }
}
