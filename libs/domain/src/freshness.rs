//! Staleness (DOMAIN.md §2): a signal that is more than its limit old at the moment it is about
//! to be executed is not executed, and is recorded as stale with its age.
//!
//! The age is measured from the alert's `time` when it has one, else from the moment the ingest
//! received it: an alert without `time` that waited behind anything (a slow account, a message
//! being retried) longer than its limit is stale too, never sent late at market. A `time`
//! ahead of the receipt (the sender's clock is fast) counts from the receipt. A `time` far
//! ahead of the ingest's clock is refused at the webhook (`jt_alerts::check_alert_time`):
//! such a time comes from a wrong time zone or clock, and would make the alert never stale.
//!
//! Pure: the caller passes the moment of execution. The executor checks again right before
//! executing, not only at receipt (a signal can wait in the queue).

use chrono::{DateTime, TimeDelta, Utc};

/// The trader setting's default (`stale_after_secs`).
pub const DEFAULT_STALE_AFTER_SECS: u32 = 30;

/// What the age of an alert is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeFrom {
    /// The alert's own `time`.
    AlertTime,
    /// The moment the ingest received it (no `time`, or a `time` ahead of the receipt).
    Receipt,
}

/// The outcome of a staleness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its limit.
    Fresh {
        /// How old the alert is.
        age: TimeDelta,
        /// What the age is measured from.
        from: AgeFrom,
    },
    /// Too old: do not execute; record it as stale with its age.
    Stale {
        /// How old the alert is.
        age: TimeDelta,
        /// The most it was allowed: the limit plus the alert's own `delay`.
        allowed: TimeDelta,
        /// What the age is measured from.
        from: AgeFrom,
    },
}

impl Freshness {
    /// Whether the signal must not be executed.
    #[must_use]
    pub fn is_stale(&self) -> bool {
        matches!(self, Freshness::Stale { .. })
    }

    /// How old the alert is.
    #[must_use]
    pub fn age(&self) -> TimeDelta {
        match self {
            Freshness::Fresh { age, .. } | Freshness::Stale { age, .. } => *age,
        }
    }
}

/// Checks an alert's age at the moment of execution `now`.
///
/// The age runs from the alert's `time`, or from `received_at` when it has none (or when its
/// `time` is later than the receipt). The limit is the alert's `max_lag` when it has one, else
/// `stale_after_secs`. A per-alert `delay` is an intended wait, so it is added to the limit:
/// the check measures how late the execution is beyond the moment the alert asked for. A
/// signal exactly at the limit is still fresh ("more than" the limit is stale).
#[must_use]
pub fn check_freshness(
    alert_time: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    delay_secs: u32,
    max_lag_secs: Option<u32>,
    stale_after_secs: u32,
    now: DateTime<Utc>,
) -> Freshness {
    let (since, from) = match alert_time {
        Some(time) if time <= received_at => (time, AgeFrom::AlertTime),
        _ => (received_at, AgeFrom::Receipt),
    };
    let limit = max_lag_secs.unwrap_or(stale_after_secs);
    let allowed = TimeDelta::seconds(i64::from(limit) + i64::from(delay_secs));
    let age = now.signed_duration_since(since);
    if age > allowed {
        Freshness::Stale { age, allowed, from }
    } else {
        Freshness::Fresh { age, from }
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
    /// The ingest received it two seconds after it fired.
    const RECEIVED: &str = "2026-01-05T14:30:02Z";

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
        let f = check_freshness(
            Some(at(FIRED)),
            at(RECEIVED),
            delay,
            max_lag,
            stale_after,
            at(now),
        );
        assert_eq!(f.is_stale(), stale, "{f:?}");
    }

    #[test]
    fn stale_reports_its_age_and_the_limit() {
        let f = check_freshness(
            Some(at(FIRED)),
            at(RECEIVED),
            0,
            None,
            DEFAULT_STALE_AFTER_SECS,
            at("2026-01-05T14:30:45Z"),
        );
        assert_eq!(
            f,
            Freshness::Stale {
                age: TimeDelta::seconds(45),
                allowed: TimeDelta::seconds(30),
                from: AgeFrom::AlertTime,
            }
        );
    }

    #[rstest]
    #[case::waited_within_its_limit("2026-01-05T14:30:32Z", 0, None, false)]
    #[case::waited_longer_than_its_limit("2026-01-05T14:30:32.001Z", 0, None, true)]
    #[case::waited_behind_a_poisoned_message("2026-01-05T14:32:27Z", 0, None, true)]
    #[case::max_lag_applies("2026-01-05T14:30:10Z", 0, Some(5), true)]
    #[case::delay_is_added("2026-01-05T14:31:00Z", 60, None, false)]
    fn an_alert_without_time_ages_from_its_receipt(
        #[case] now: &str,
        #[case] delay: u32,
        #[case] max_lag: Option<u32>,
        #[case] stale: bool,
    ) {
        let f = check_freshness(None, at(RECEIVED), delay, max_lag, 30, at(now));
        assert_eq!(f.is_stale(), stale, "{f:?}");
        let from = match f {
            Freshness::Fresh { from, .. } | Freshness::Stale { from, .. } => from,
        };
        assert_eq!(from, AgeFrom::Receipt);
    }

    #[test]
    fn a_time_ahead_of_the_receipt_ages_from_the_receipt() {
        // A fast sender clock must not buy the alert extra life.
        let f = check_freshness(
            Some(at("2026-01-05T14:30:09Z")),
            at(RECEIVED),
            0,
            None,
            30,
            at("2026-01-05T14:30:33Z"),
        );
        assert!(f.is_stale(), "{f:?}");
        assert_eq!(f.age(), TimeDelta::seconds(31));
    }
}
