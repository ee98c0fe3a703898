//! Entry filters (DOMAIN.md §4, §5.1, §9): time windows in the recorder's time zone,
//! `direction_filter`, `signal_cooldown`, `max_signals_per_session`, `add_delay`, the daily
//! loss breach and the kill switch. Each returns a typed [`SkipReason`].
//!
//! Every filter here guards *new exposure* only: closes, cancels and the exit half of a flip
//! always pass (DOMAIN.md: "closes always pass"), because blocking an exit is how a filter
//! turns into an unmanaged position. The executor keeps the counters and instants
//! ([`FilterState`]) and passes them in with `now`; nothing here reads a clock.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::session;
use crate::settings::{DirectionFilter, Settings, TimeWindow};
use crate::skip::SkipReason;
use crate::types::Direction;

/// What the executor knows about one trader on one contract when a signal arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterState {
    /// When this trader last executed a signal (for `signal_cooldown`).
    pub last_signal_at: Option<DateTime<Utc>>,
    /// Entry signals this trader executed in the current CME trading day (for
    /// `max_signals_per_session`; exits are not counted, as they are never refused).
    pub signals_this_session: u32,
    /// When an order last increased this position — the opening entry or a DCA add (for
    /// `add_delay`; the opening entry counts as the first add).
    pub last_add_at: Option<DateTime<Utc>>,
    /// The account breached `max_daily_loss` in the current trading day.
    pub daily_loss_breached: bool,
    /// The kill switch is engaged for this trader's account, owner or globally.
    pub kill_switch: bool,
}

/// Whether `time` lies in `window` (whether or not it is enabled): start inclusive, stop
/// exclusive; a stop before the start crosses midnight (18:00–02:00); start = stop is the
/// whole day.
#[must_use]
pub fn in_window(window: &TimeWindow, time: NaiveTime) -> bool {
    let (start, stop) = (window.start.0, window.stop.0);
    if start == stop {
        true
    } else if start < stop {
        start <= time && time < stop
    } else {
        time >= start || time < stop
    }
}

fn enabled_windows(settings: &Settings) -> Vec<TimeWindow> {
    [settings.time_filter_1, settings.time_filter_2]
        .into_iter()
        .filter(|w| w.enabled)
        .collect()
}

/// `time_filter_1` / `time_filter_2`: an entry at `now` must fall inside at least one enabled
/// window, read on the wall clock of the recorder's `time_zone` (so 09:30 New York is 13:30 UTC
/// in summer and 14:30 UTC in winter). No enabled window means no restriction.
///
/// # Errors
/// [`SkipReason::OutsideTimeWindows`].
pub fn time_windows(settings: &Settings, now: DateTime<Utc>) -> Result<(), SkipReason> {
    let windows = enabled_windows(settings);
    if windows.is_empty() {
        return Ok(());
    }
    let local = now.with_timezone(&settings.time_zone.0).naive_local();
    if windows.iter().any(|w| in_window(w, local.time())) {
        return Ok(());
    }
    Err(SkipReason::OutsideTimeWindows {
        local_time: local,
        time_zone: settings.time_zone,
        windows,
    })
}

/// `auto_flat_after_cutoff`: whether positions must be flattened at `now` — the setting is on,
/// at least one window is enabled, and `now` is outside every enabled window.
#[must_use]
pub fn auto_flat_due(settings: &Settings, now: DateTime<Utc>) -> bool {
    settings.auto_flat_after_cutoff
        && !enabled_windows(settings).is_empty()
        && time_windows(settings, now).is_err()
}

/// `direction_filter`: whether an entry in `direction` is allowed.
///
/// # Errors
/// [`SkipReason::DirectionFilter`].
pub fn direction_filter(filter: DirectionFilter, direction: Direction) -> Result<(), SkipReason> {
    let allowed = match filter {
        DirectionFilter::Both => true,
        DirectionFilter::LongOnly => direction == Direction::Long,
        DirectionFilter::ShortOnly => direction == Direction::Short,
    };
    if allowed {
        Ok(())
    } else {
        Err(SkipReason::DirectionFilter { filter, direction })
    }
}

/// Milliseconds from `since` to `now`, 0 when `since` is in the future (clock skew between
/// replicas must not open a gap in a minimum delay).
fn elapsed_ms(since: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - since).num_milliseconds().max(0)
}

fn too_soon(min_secs: u32, since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    let since = since?;
    if min_secs == 0 {
        return None;
    }
    let elapsed = elapsed_ms(since, now);
    (elapsed < i64::from(min_secs) * 1000).then_some(elapsed)
}

/// `signal_cooldown`: at least `cooldown_secs` since the last executed signal.
///
/// # Errors
/// [`SkipReason::SignalCooldown`].
pub fn signal_cooldown(
    cooldown_secs: u32,
    last_signal_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), SkipReason> {
    match too_soon(cooldown_secs, last_signal_at, now) {
        None => Ok(()),
        Some(elapsed_ms) => Err(SkipReason::SignalCooldown {
            cooldown_secs,
            elapsed_ms,
        }),
    }
}

/// `add_delay`: at least `add_delay_secs` since the last entry or add on this position.
///
/// # Errors
/// [`SkipReason::AddDelay`].
pub fn add_delay(
    add_delay_secs: u32,
    last_add_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), SkipReason> {
    match too_soon(add_delay_secs, last_add_at, now) {
        None => Ok(()),
        Some(elapsed_ms) => Err(SkipReason::AddDelay {
            add_delay_secs,
            elapsed_ms,
        }),
    }
}

/// `max_signals_per_session`: fewer than `max` entry signals executed in the trading day
/// (0 = unlimited).
///
/// # Errors
/// [`SkipReason::MaxSignalsPerSession`].
pub fn max_signals_per_session(
    max: u32,
    executed: u32,
    trading_day: NaiveDate,
) -> Result<(), SkipReason> {
    if max == 0 || executed < max {
        Ok(())
    } else {
        Err(SkipReason::MaxSignalsPerSession {
            max,
            executed,
            trading_day,
        })
    }
}

/// Whether the daily loss limit is breached (DOMAIN.md §9): realized P&L since the session
/// start plus open P&L at or below −`max_daily_loss`. A limit of 0 is off.
#[must_use]
pub fn is_daily_loss_breached(max_daily_loss: Decimal, realized: Decimal, open: Decimal) -> bool {
    max_daily_loss > Decimal::ZERO && realized.saturating_add(open) <= -max_daily_loss
}

/// Refuses entries for the rest of the trading day once the account is marked breached.
///
/// # Errors
/// [`SkipReason::DailyLossBreached`].
pub fn daily_loss(
    breached: bool,
    max_daily_loss: Decimal,
    trading_day: NaiveDate,
) -> Result<(), SkipReason> {
    if breached {
        Err(SkipReason::DailyLossBreached {
            max_daily_loss,
            trading_day,
        })
    } else {
        Ok(())
    }
}

/// Refuses entries while the kill switch is engaged.
///
/// # Errors
/// [`SkipReason::KillSwitch`].
pub fn kill_switch(engaged: bool) -> Result<(), SkipReason> {
    if engaged {
        Err(SkipReason::KillSwitch)
    } else {
        Ok(())
    }
}

/// Every entry filter, in a fixed order (kill switch, daily loss, direction, time windows,
/// signals per session, cooldown): the first that refuses an entry in `direction` at `now`.
/// `add_delay` is checked by the decision, because only an add is subject to it.
///
/// # Errors
/// The [`SkipReason`] of the first filter that refuses.
pub fn check_entry(
    settings: &Settings,
    direction: Direction,
    state: &FilterState,
    now: DateTime<Utc>,
) -> Result<(), SkipReason> {
    let day = session::trading_day(now);
    kill_switch(state.kill_switch)?;
    daily_loss(state.daily_loss_breached, settings.max_daily_loss, day)?;
    direction_filter(settings.direction_filter, direction)?;
    time_windows(settings, now)?;
    max_signals_per_session(
        settings.max_signals_per_session,
        state.signals_this_session,
        day,
    )?;
    signal_cooldown(settings.signal_cooldown, state.last_signal_at, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ClockTime;
    use chrono::TimeZone;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    fn window(start: (u32, u32), stop: (u32, u32)) -> TimeWindow {
        TimeWindow {
            enabled: true,
            start: ClockTime::hm(start.0, start.1).unwrap(),
            stop: ClockTime::hm(stop.0, stop.1).unwrap(),
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[rstest]
    #[case(window((9, 30), (16, 0)), t(9, 30), true)]
    #[case(window((9, 30), (16, 0)), t(15, 59), true)]
    #[case(window((9, 30), (16, 0)), t(16, 0), false)] // stop is exclusive
    #[case(window((9, 30), (16, 0)), t(9, 29), false)]
    #[case(window((18, 0), (2, 0)), t(23, 0), true)] // crosses midnight
    #[case(window((18, 0), (2, 0)), t(1, 59), true)]
    #[case(window((18, 0), (2, 0)), t(2, 0), false)]
    #[case(window((18, 0), (2, 0)), t(12, 0), false)]
    #[case(window((0, 0), (0, 0)), t(12, 0), true)] // start = stop: all day
    fn time_window_membership(#[case] w: TimeWindow, #[case] at: NaiveTime, #[case] inside: bool) {
        assert_eq!(in_window(&w, at), inside);
    }

    fn new_york_session() -> Settings {
        Settings {
            time_filter_1: window((9, 30), (16, 0)),
            ..Settings::default()
        }
    }

    #[test]
    fn time_windows_follow_the_recorders_wall_clock_across_dst() {
        let s = new_york_session();
        // Winter (EST, UTC−5): 09:30 New York = 14:30 UTC.
        assert!(time_windows(&s, utc(2026, 1, 15, 14, 30)).is_ok());
        assert!(time_windows(&s, utc(2026, 1, 15, 13, 45)).is_err());
        // Summer (EDT, UTC−4): 09:30 New York = 13:30 UTC.
        assert!(time_windows(&s, utc(2026, 7, 15, 13, 30)).is_ok());
        assert!(
            time_windows(&s, utc(2026, 7, 15, 20, 0)).is_err(),
            "16:00 EDT"
        );
        // The Monday after the spring change (2026-03-08) is already on EDT.
        assert!(time_windows(&s, utc(2026, 3, 9, 13, 45)).is_ok());
        assert!(
            time_windows(&s, utc(2026, 3, 6, 13, 45)).is_err(),
            "08:45 EST"
        );
    }

    #[test]
    fn time_windows_in_another_zone() {
        let s = Settings {
            time_filter_1: window((8, 0), (12, 0)),
            time_zone: "Europe/London".parse().unwrap(),
            ..Settings::default()
        };
        // London is on BST (UTC+1) in July: 08:00 local = 07:00 UTC.
        assert!(time_windows(&s, utc(2026, 7, 1, 7, 0)).is_ok());
        assert!(
            time_windows(&s, utc(2026, 1, 5, 7, 0)).is_err(),
            "07:00 GMT"
        );
    }

    #[test]
    fn entries_outside_every_enabled_window_are_skipped() {
        let s = Settings {
            time_filter_1: window((9, 30), (11, 0)),
            time_filter_2: window((13, 0), (15, 0)),
            ..Settings::default()
        };
        assert!(time_windows(&s, utc(2026, 1, 15, 15, 0)).is_ok()); // 10:00 EST
        assert!(time_windows(&s, utc(2026, 1, 15, 19, 0)).is_ok()); // 14:00 EST
        let Err(SkipReason::OutsideTimeWindows {
            local_time,
            windows,
            ..
        }) = time_windows(&s, utc(2026, 1, 15, 17, 0))
        else {
            panic!("12:00 EST is outside both windows");
        };
        assert_eq!(local_time.time(), t(12, 0));
        assert_eq!(windows.len(), 2);
        // A disabled window restricts nothing.
        let mut off = s.clone();
        off.time_filter_1.enabled = false;
        off.time_filter_2.enabled = false;
        assert!(time_windows(&off, utc(2026, 1, 15, 17, 0)).is_ok());
    }

    #[test]
    fn overnight_window_crossing_midnight() {
        let s = Settings {
            time_filter_1: window((18, 0), (2, 0)),
            ..Settings::default()
        };
        assert!(time_windows(&s, utc(2026, 1, 16, 4, 0)).is_ok()); // 23:00 EST
        assert!(time_windows(&s, utc(2026, 1, 16, 6, 30)).is_ok()); // 01:30 EST
        assert!(time_windows(&s, utc(2026, 1, 16, 8, 0)).is_err()); // 03:00 EST
    }

    #[test]
    fn auto_flat_is_due_only_outside_enabled_windows_when_on() {
        let mut s = new_york_session();
        assert!(!auto_flat_due(&s, utc(2026, 1, 15, 22, 0)), "setting off");
        s.auto_flat_after_cutoff = true;
        assert!(auto_flat_due(&s, utc(2026, 1, 15, 22, 0)));
        assert!(!auto_flat_due(&s, utc(2026, 1, 15, 15, 0)));
        s.time_filter_1.enabled = false;
        assert!(
            !auto_flat_due(&s, utc(2026, 1, 15, 22, 0)),
            "no window, no cutoff"
        );
    }

    #[rstest]
    #[case(DirectionFilter::Both, Direction::Long, true)]
    #[case(DirectionFilter::Both, Direction::Short, true)]
    #[case(DirectionFilter::LongOnly, Direction::Long, true)]
    #[case(DirectionFilter::LongOnly, Direction::Short, false)]
    #[case(DirectionFilter::ShortOnly, Direction::Short, true)]
    #[case(DirectionFilter::ShortOnly, Direction::Long, false)]
    fn direction_filter_refuses_entries_against_it(
        #[case] filter: DirectionFilter,
        #[case] direction: Direction,
        #[case] allowed: bool,
    ) {
        assert_eq!(direction_filter(filter, direction).is_ok(), allowed);
    }

    #[test]
    fn signal_cooldown_counts_from_the_last_executed_signal() {
        let now = utc(2026, 1, 15, 15, 0);
        let last = now - chrono::Duration::seconds(30);
        assert_eq!(
            signal_cooldown(60, Some(last), now),
            Err(SkipReason::SignalCooldown {
                cooldown_secs: 60,
                elapsed_ms: 30_000
            })
        );
        assert!(
            signal_cooldown(30, Some(last), now).is_ok(),
            "exactly the cooldown"
        );
        assert!(signal_cooldown(0, Some(now), now).is_ok(), "0 = off");
        assert!(signal_cooldown(60, None, now).is_ok(), "first signal");
        // A last-signal instant in the future (clock skew) does not open the gate.
        assert!(signal_cooldown(60, Some(now + chrono::Duration::seconds(5)), now).is_err());
    }

    #[test]
    fn add_delay_counts_from_the_last_entry_or_add() {
        let now = utc(2026, 1, 15, 15, 0);
        assert_eq!(
            add_delay(1, Some(now - chrono::Duration::milliseconds(400)), now),
            Err(SkipReason::AddDelay {
                add_delay_secs: 1,
                elapsed_ms: 400
            })
        );
        assert!(add_delay(1, Some(now - chrono::Duration::milliseconds(1000)), now).is_ok());
        assert!(add_delay(0, Some(now), now).is_ok());
        assert!(add_delay(5, None, now).is_ok());
    }

    #[test]
    fn max_signals_per_session_is_a_budget_per_trading_day() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
        assert!(max_signals_per_session(3, 2, day).is_ok());
        assert_eq!(
            max_signals_per_session(3, 3, day),
            Err(SkipReason::MaxSignalsPerSession {
                max: 3,
                executed: 3,
                trading_day: day
            })
        );
        assert!(
            max_signals_per_session(0, 1000, day).is_ok(),
            "0 = unlimited"
        );
    }

    #[test]
    fn daily_loss_breach_is_realized_plus_open_at_the_limit() {
        assert!(is_daily_loss_breached(dec!(400), dec!(-300), dec!(-100)));
        assert!(is_daily_loss_breached(dec!(400), dec!(-450), dec!(20)));
        assert!(!is_daily_loss_breached(dec!(400), dec!(-300), dec!(-99.99)));
        assert!(
            !is_daily_loss_breached(dec!(0), dec!(-100000), dec!(0)),
            "0 = off"
        );
        assert!(
            is_daily_loss_breached(dec!(1), Decimal::MIN, Decimal::MIN),
            "no overflow"
        );
        let day = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
        assert!(daily_loss(false, dec!(400), day).is_ok());
        assert_eq!(
            daily_loss(true, dec!(400), day),
            Err(SkipReason::DailyLossBreached {
                max_daily_loss: dec!(400),
                trading_day: day
            })
        );
    }

    #[test]
    fn kill_switch_refuses_entries() {
        assert_eq!(kill_switch(true), Err(SkipReason::KillSwitch));
        assert!(kill_switch(false).is_ok());
    }

    #[test]
    fn check_entry_runs_every_filter_and_labels_the_trading_day() {
        let now = utc(2026, 1, 15, 23, 30); // 17:30 CST: already the 16th's trading day
        let s = Settings {
            max_signals_per_session: 2,
            signal_cooldown: 10,
            direction_filter: DirectionFilter::LongOnly,
            ..Settings::default()
        };
        let fresh = FilterState::default();
        assert!(check_entry(&s, Direction::Long, &fresh, now).is_ok());
        assert!(matches!(
            check_entry(&s, Direction::Short, &fresh, now),
            Err(SkipReason::DirectionFilter { .. })
        ));
        let busy = FilterState {
            signals_this_session: 2,
            ..fresh
        };
        assert_eq!(
            check_entry(&s, Direction::Long, &busy, now),
            Err(SkipReason::MaxSignalsPerSession {
                max: 2,
                executed: 2,
                trading_day: NaiveDate::from_ymd_opt(2026, 1, 16).unwrap()
            })
        );
        let recent = FilterState {
            last_signal_at: Some(now),
            ..fresh
        };
        assert!(matches!(
            check_entry(&s, Direction::Long, &recent, now),
            Err(SkipReason::SignalCooldown { .. })
        ));
        let killed = FilterState {
            kill_switch: true,
            daily_loss_breached: true,
            ..busy
        };
        assert_eq!(
            check_entry(&s, Direction::Short, &killed, now),
            Err(SkipReason::KillSwitch),
            "the kill switch is reported first"
        );
    }
}
