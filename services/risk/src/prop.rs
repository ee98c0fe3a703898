//! Prop-firm rules while positions are open (DOMAIN.md §14): the pure parts of what the monitor
//! does beside judging `RuleSet::check_open` — keeping the trailing drawdown's high-water mark
//! (raised in memory at once, written to the store no more than once a second), finding the
//! trading day whose close an end-of-day mark takes, and which limits are close enough to
//! warn about. No I/O, so each is unit-tested.

use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, Utc};
use jt_domain::propfirm::{Distance, Rule};
use jt_domain::session::{is_trading_day, session_end, trading_day};
use rust_decimal::Decimal;

/// One account's trailing mark as the monitor keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail {
    /// The mark the account is judged with: the stored one, raised by what this monitor saw.
    pub mark: Option<Decimal>,
    /// The highest mark this monitor wrote (or read back) from the store.
    pub stored: Option<Decimal>,
    /// When this monitor last wrote it.
    pub written_at: Option<Instant>,
    /// The trading day whose close last moved an end-of-day mark.
    pub mark_day: Option<NaiveDate>,
}

impl Trail {
    /// Takes what the store holds (a survey): the mark only rises, whichever side saw the
    /// higher value.
    pub fn merge_stored(&mut self, stored: Option<Decimal>, mark_day: Option<NaiveDate>) {
        self.mark = self.mark.max(stored);
        self.stored = self.stored.max(stored);
        self.mark_day = self.mark_day.max(mark_day);
    }

    /// Observes the mark after a new figure (`RuleSet::next_mark`); whether it rose.
    pub fn observe(&mut self, next: Option<Decimal>) -> bool {
        match next {
            Some(n) if self.mark.is_none_or(|m| n > m) => {
                self.mark = Some(n);
                true
            }
            _ => false,
        }
    }

    /// The mark to write to the store now, if any: only one higher than what the store has,
    /// and no sooner than `every` after the last write (a rally quoting every few
    /// milliseconds writes once a second, and the last high of the burst at the next tick).
    pub fn due(&mut self, now: Instant, every: Duration) -> Option<Decimal> {
        let mark = self.mark?;
        if self.stored.is_some_and(|s| s >= mark)
            || self
                .written_at
                .is_some_and(|t| now.duration_since(t) < every)
        {
            return None;
        }
        self.stored = Some(mark);
        self.written_at = Some(now);
        Some(mark)
    }

    /// A write that failed: tried again at the next tick.
    pub fn write_failed(&mut self, previous: Option<Decimal>) {
        self.stored = previous;
    }
}

/// The latest trading day that has closed (16:00 Chicago) at `now`: during the daily halt the
/// day that just closed, during a session the one before it (weekends and full-day closures
/// skipped). Holiday early closes are not modelled (as `session_end`).
#[must_use]
pub fn closed_day(now: DateTime<Utc>) -> NaiveDate {
    let mut day = trading_day(now);
    if session_end(day) <= now {
        return day;
    }
    for _ in 0..7 {
        day = day.checked_sub_days(Days::new(1)).unwrap_or(day);
        if is_trading_day(day) {
            break;
        }
    }
    day
}

/// The trading day whose close an end-of-day mark should take now, if any: one later than the
/// last recorded (`mark_day`), read (`read_at`) after that close, on a flat account — the
/// balance of an account holding a position over the close is not its closing balance, so it
/// waits for a later close.
#[must_use]
pub fn close_due(
    mark_day: Option<NaiveDate>,
    now: DateTime<Utc>,
    read_at: DateTime<Utc>,
    flat: bool,
) -> Option<NaiveDate> {
    let day = closed_day(now);
    (flat && mark_day.is_none_or(|d| d < day) && read_at >= session_end(day)).then_some(day)
}

/// The money limits close enough to warn about: what is left before the platform acts is
/// above zero (at zero it acts) and below `share` × the rule's buffer. A rule without a
/// buffer gives no warning (there is nothing to be "within").
#[must_use]
pub fn warnings(distances: &[Distance], share: Decimal) -> Vec<&Distance> {
    distances
        .iter()
        .filter(|d| matches!(d.rule, Rule::TrailingDrawdown | Rule::DailyLoss))
        .filter(|d| {
            let buffer = d.acts_at - d.firm_limit;
            buffer > Decimal::ZERO && d.remaining > Decimal::ZERO && d.remaining < buffer * share
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rust_decimal_macros::dec;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_mark_rises_at_once_in_memory_and_is_written_at_most_once_a_second() {
        let t0 = Instant::now();
        let mut t = Trail::default();
        t.merge_stored(Some(dec!(50000)), None);
        assert!(!t.observe(Some(dec!(49900))), "lower: no change");
        assert_eq!(t.due(t0, Duration::from_secs(1)), None, "the store has it");
        assert!(t.observe(Some(dec!(50100))));
        assert_eq!(t.due(t0, Duration::from_secs(1)), Some(dec!(50100)));
        assert!(t.observe(Some(dec!(50200))));
        assert_eq!(
            t.mark,
            Some(dec!(50200)),
            "judged with the new high at once"
        );
        assert_eq!(
            t.due(t0 + Duration::from_millis(500), Duration::from_secs(1)),
            None,
            "not twice within a second"
        );
        assert_eq!(
            t.due(t0 + Duration::from_secs(1), Duration::from_secs(1)),
            Some(dec!(50200)),
            "the last high of the burst is written next"
        );
        assert_eq!(
            t.due(t0 + Duration::from_secs(5), Duration::from_secs(1)),
            None
        );
        // A failed write is tried again.
        t.observe(Some(dec!(50300)));
        let before = t.stored;
        assert_eq!(
            t.due(t0 + Duration::from_secs(6), Duration::from_secs(1)),
            Some(dec!(50300))
        );
        t.write_failed(before);
        assert_eq!(
            t.due(t0 + Duration::from_secs(7), Duration::from_secs(1)),
            Some(dec!(50300))
        );
        // Another writer's higher mark is taken; the mark never falls.
        t.merge_stored(Some(dec!(51000)), Some(day("2026-12-08")));
        t.merge_stored(Some(dec!(40000)), None);
        assert_eq!(
            (t.mark, t.mark_day),
            (Some(dec!(51000)), Some(day("2026-12-08")))
        );
    }

    #[test]
    fn the_closed_day_is_the_one_that_ended_at_16_chicago() {
        // Tuesday 2026-12-08, 15:59 Chicago (CST = UTC−6): Monday's close is the last.
        assert_eq!(closed_day(at("2026-12-08T21:59:00Z")), day("2026-12-07"));
        // 16:00 and the halt: Tuesday closed.
        assert_eq!(closed_day(at("2026-12-08T22:00:00Z")), day("2026-12-08"));
        assert_eq!(closed_day(at("2026-12-08T22:30:00Z")), day("2026-12-08"));
        // 17:30: Wednesday's session; Tuesday is still the last close.
        assert_eq!(closed_day(at("2026-12-08T23:30:00Z")), day("2026-12-08"));
        // Monday morning: the last close was Friday's.
        assert_eq!(closed_day(at("2026-12-07T15:00:00Z")), day("2026-12-04"));
        // Saturday: Friday's.
        assert_eq!(closed_day(at("2026-12-05T15:00:00Z")), day("2026-12-04"));
    }

    #[test]
    fn an_end_of_day_mark_takes_a_flat_accounts_balance_read_after_the_close_once() {
        let halt = at("2026-12-08T22:10:00Z");
        let before_close = at("2026-12-08T21:50:00Z");
        let tuesday = day("2026-12-08");
        assert_eq!(close_due(None, halt, halt, true), Some(tuesday));
        assert_eq!(
            close_due(Some(day("2026-12-07")), halt, halt, true),
            Some(tuesday)
        );
        assert_eq!(close_due(Some(tuesday), halt, halt, true), None, "once");
        assert_eq!(
            close_due(None, halt, before_close, true),
            None,
            "a balance read before the close is not the close's"
        );
        assert_eq!(
            close_due(None, halt, halt, false),
            None,
            "held over the close"
        );
    }

    #[test]
    fn a_warning_is_due_within_twice_the_buffer_and_not_once_the_platform_acts() {
        let d = |rule, remaining| Distance {
            rule,
            acts_at: dec!(48750),
            firm_limit: dec!(48500),
            current: dec!(48750) + remaining,
            remaining,
        };
        let all = [
            d(Rule::TrailingDrawdown, dec!(499)),
            d(Rule::TrailingDrawdown, dec!(500)),
            d(Rule::TrailingDrawdown, dec!(0)),
            d(Rule::DailyProfitCap, dec!(1)),
        ];
        let w = warnings(&all, dec!(2));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].remaining, dec!(499));
        let no_buffer = Distance {
            rule: Rule::DailyLoss,
            acts_at: dec!(-1000),
            firm_limit: dec!(-1000),
            current: dec!(-999),
            remaining: dec!(1),
        };
        assert!(warnings(&[no_buffer], dec!(2)).is_empty());
    }
}
