//! Staleness (DOMAIN.md §2): a signal that is more than its limit old at the moment it is about
//! to be executed is not executed, and is recorded as stale with its age.
//!
//! The age is measured from the alert's `time` when it has one, else from the moment the ingest
//! received it: an alert without `time` that waited behind anything (a slow account, a message
//! being retried) longer than its limit is stale too, never sent late at market. A `time`
//! ahead of the receipt (the sender's clock is fast) counts from the receipt. A `time` more
//! than [`MAX_CLOCK_AHEAD_SECS`] ahead of the ingest's clock is refused at the webhook
//! ([`check_alert_time`]): such a time comes from a wrong time zone or clock, and would make the
//! alert never stale.
//!
//! Pure: the caller passes the moment of execution. The executor checks again right before
//! executing, not only at receipt (a signal can wait in the queue).

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::AlertError;

/// The trader setting's default (`stale_after_secs`).
pub const DEFAULT_STALE_AFTER_SECS: u32 = 30;

/// How far an alert's `time` may be ahead of the ingest's clock (seconds). Synchronised clocks
/// agree to milliseconds and TradingView's `{{timenow}}` is its server's clock; a PC or phone
/// clock can be a few seconds off. Ten seconds accepts any such drift while staying well
/// inside the default staleness limit; a time further ahead comes from a wrong time zone or a
/// broken clock and is refused (422) rather than trusted.
pub const MAX_CLOCK_AHEAD_SECS: u32 = 10;

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

/// Refuses an alert `time` more than [`MAX_CLOCK_AHEAD_SECS`] ahead of `received_at` (the
/// ingest's clock when the webhook arrived).
///
/// # Errors
/// [`AlertError::FutureTime`] (422) with how far ahead it is.
pub fn check_alert_time(
    alert_time: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
) -> Result<(), AlertError> {
    let Some(time) = alert_time else {
        return Ok(());
    };
    let ahead = time.signed_duration_since(received_at);
    if ahead > TimeDelta::seconds(i64::from(MAX_CLOCK_AHEAD_SECS)) {
        return Err(AlertError::FutureTime {
            time: time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ahead_secs: ahead.num_seconds(),
            tolerance_secs: MAX_CLOCK_AHEAD_SECS,
        });
    }
    Ok(())
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

    #[rstest]
    #[case::none(None, true)]
    #[case::past(Some("2026-01-05T14:00:00Z"), true)]
    #[case::slightly_ahead(Some("2026-01-05T14:30:05Z"), true)]
    #[case::at_the_tolerance(Some("2026-01-05T14:30:12Z"), true)]
    #[case::over_the_tolerance(Some("2026-01-05T14:30:12.001Z"), false)]
    #[case::local_time_sent_as_utc(Some("2026-01-05T19:30:00Z"), false)]
    #[case::year_9999(Some("9999-12-31T23:59:59Z"), false)]
    fn a_time_far_ahead_of_the_ingest_clock_is_refused(
        #[case] time: Option<&str>,
        #[case] accepted: bool,
    ) {
        let r = check_alert_time(time.map(at), at(RECEIVED));
        assert_eq!(r.is_ok(), accepted, "{r:?}");
        if let Err(e) = r {
            assert_eq!(e.http_status(), 422);
            assert_eq!(e.kind(), "future_time");
            assert!(e.to_string().contains("ahead"), "{e}");
        }
    }
}
