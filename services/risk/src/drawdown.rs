//! Followers' max drawdown (DOMAIN.md §10): the pure parts — each follower's equity peak as
//! the monitor keeps it (raised in memory at once, written no more than once a second, like the
//! trailing mark: [`Trail`]), when the drawdown is reached, and the words that name a follower
//! in a breach and in its lock. No I/O, so each is unit-tested.
//!
//! The equity is the account's balance plus its open P&L, the figures the monitor already
//! judges the account on. The peak is the follower's own: kept since it started being watched
//! with a max drawdown, or since its owner last unlocked it (a new tracking, `follower_peaks`).

use chrono::{DateTime, NaiveDate, Utc};
use jt_store::FollowerId;
use jt_store::repo::follower_peaks::FollowerPeak;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::prop::Trail;
use crate::watch::DRAWDOWN_LOCK;

/// One follower's peak as the monitor keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peak {
    /// The tracking it belongs to (`follower_peaks.id`).
    pub tracking: Uuid,
    /// The peak: `mark` is the one judged with, `stored` what the store holds.
    pub trail: Trail,
}

impl Peak {
    /// Takes the stored tracking (a survey): the same tracking keeps the higher of both
    /// peaks; a new one (an unlock replaced the row) starts again from what the store says.
    pub fn merge(&mut self, stored: &FollowerPeak) {
        if self.tracking != stored.tracking {
            *self = Self {
                tracking: stored.tracking,
                trail: Trail::default(),
            };
        }
        self.trail.merge_stored(stored.peak, None);
    }
}

/// Whether a drawdown of `max_drawdown` from `peak` is reached at `equity`.
#[must_use]
pub fn reached(peak: Decimal, equity: Decimal, max_drawdown: Decimal) -> bool {
    peak - equity >= max_drawdown
}

/// How a follower is named in a breach's details (one segment per follower reached, joined
/// by `"; "`): its id leads, so [`segment_of`] finds it again after a restart.
#[must_use]
pub fn segment(
    follower: FollowerId,
    peak: Decimal,
    equity: Decimal,
    max_drawdown: Decimal,
) -> String {
    format!(
        "follower {follower}: equity {} is {} below its peak {} (max drawdown {})",
        equity.normalize(),
        (peak - equity).normalize(),
        peak.normalize(),
        max_drawdown.normalize(),
    )
}

/// The segment of `details` that names `follower`, if it was reached by that breach.
#[must_use]
pub fn segment_of(details: &str, follower: FollowerId) -> Option<&str> {
    let lead = format!("follower {follower}:");
    details.split("; ").find(|s| s.starts_with(&lead))
}

/// The lockout reason of a follower reached on `day`.
#[must_use]
pub fn lock_reason(day: NaiveDate, segment: &str) -> String {
    format!(
        "{DRAWDOWN_LOCK} on {day}: {segment}; copies stop until the follower is unlocked \
         (POST /api/v1/followers/{{id}}/unlock, which starts its peak afresh)"
    )
}

/// Whether a follower named by a breach recorded at `breached_at` is still to be locked: not
/// when its peak tracking started after the breach — its owner unlocked it since.
#[must_use]
pub fn still_to_lock(tracking_started: Option<DateTime<Utc>>, breached_at: DateTime<Utc>) -> bool {
    tracking_started.is_none_or(|s| s <= breached_at)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rust_decimal_macros::dec;

    use super::*;

    fn stored(tracking: Uuid, peak: Option<Decimal>) -> FollowerPeak {
        FollowerPeak {
            tracking,
            follower: FollowerId(Uuid::nil()),
            peak,
            peak_at: None,
            started_at: Utc::now(),
        }
    }

    #[test]
    fn a_drawdown_is_reached_at_exactly_the_limit_below_the_peak() {
        assert!(!reached(dec!(50000), dec!(49750.25), dec!(250)));
        assert!(reached(dec!(50000), dec!(49750), dec!(250)), "at the limit");
        assert!(reached(dec!(50000), dec!(49000), dec!(250)));
        assert!(
            !reached(dec!(50000), dec!(50100), dec!(250)),
            "above the peak"
        );
    }

    #[test]
    fn the_same_tracking_keeps_the_higher_peak_and_a_new_one_starts_again() {
        let first = Uuid::now_v7();
        let mut p = Peak::default();
        p.merge(&stored(first, None));
        assert_eq!(p.trail.mark, None);
        assert!(p.trail.observe(Some(dec!(50100))));
        p.merge(&stored(first, Some(dec!(50000))));
        assert_eq!(
            p.trail.mark,
            Some(dec!(50100)),
            "memory saw more than the store"
        );
        // The owner unlocked the follower: a new row, no peak; what memory saw is dropped.
        let second = Uuid::now_v7();
        p.merge(&stored(second, None));
        assert_eq!(p.tracking, second);
        assert_eq!(p.trail.mark, None);
        assert_eq!(p.trail.stored, None);
    }

    #[test]
    fn a_follower_is_found_again_in_the_breach_that_named_it() {
        let a = FollowerId(Uuid::now_v7());
        let b = FollowerId(Uuid::now_v7());
        let details = [
            segment(a, dec!(50000), dec!(49700), dec!(250)),
            segment(b, dec!(50200), dec!(49700), dec!(400)),
        ]
        .join("; ");
        assert_eq!(
            segment_of(&details, a),
            Some(
                format!(
                    "follower {a}: equity 49700 is 300 below its peak 50000 (max drawdown 250)"
                )
                .as_str()
            )
        );
        assert!(segment_of(&details, b).is_some_and(|s| s.contains("max drawdown 400")));
        assert_eq!(segment_of(&details, FollowerId(Uuid::now_v7())), None);
        let reason = lock_reason(
            NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            segment_of(&details, a).unwrap(),
        );
        assert!(
            reason.starts_with("max drawdown reached on 2026-12-07: follower"),
            "{reason}"
        );
    }

    #[test]
    fn an_unlock_after_the_breach_is_not_undone() {
        let breached = Utc::now();
        assert!(still_to_lock(
            Some(breached - chrono::Duration::hours(1)),
            breached
        ));
        assert!(!still_to_lock(
            Some(breached + chrono::Duration::seconds(1)),
            breached
        ));
        assert!(still_to_lock(None, breached));
    }
}
