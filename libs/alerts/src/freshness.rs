//! Refusing an alert `time` from the future at the webhook (DOMAIN.md §2). Staleness itself —
//! an alert older than its limit when it is about to be executed — is a rule of the domain
//! (`jt_domain::freshness`), re-exported by this crate.

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::AlertError;

/// How far an alert's `time` may be ahead of the ingest's clock (seconds). Synchronised clocks
/// agree to milliseconds and TradingView's `{{timenow}}` is its server's clock; a PC or phone
/// clock can be a few seconds off. Ten seconds accepts any such drift while staying well
/// inside the default staleness limit; a time further ahead comes from a wrong time zone or a
/// broken clock and is refused (422) rather than trusted.
pub const MAX_CLOCK_AHEAD_SECS: u32 = 10;

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

    /// The ingest received it two seconds after it fired.
    const RECEIVED: &str = "2026-01-05T14:30:02Z";

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
