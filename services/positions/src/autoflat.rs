//! `auto_flat_after_cutoff` (DOMAIN.md §4, §9): when a trader's enabled trading window closes,
//! its sub-account is flattened, once per window end.
//!
//! The rule itself is `jt_domain::filters::auto_flat_due` (the setting is on, a window is
//! enabled and `now` is outside every enabled window); this module finds *which* window end
//! made it due, so that the flatten's identity is that instant: every check, every replica and
//! every restart derive the same intent for the same window end, and JetStream (inside its
//! duplicate window) or the store's idempotency key (after it) keep it to one execution.

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use jt_domain::Settings;
use jt_domain::filters::auto_flat_due;

/// The most recent end of an enabled window at or before `now`, in UTC; `None` when no
/// enabled window has an end (none enabled, or one spanning the whole day).
#[must_use]
pub fn last_cutoff(settings: &Settings, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = settings.time_zone.0;
    let today = now.with_timezone(&tz).date_naive();
    [settings.time_filter_1, settings.time_filter_2]
        .into_iter()
        .filter(|w| w.enabled && w.start != w.stop)
        .flat_map(|w| {
            [today.pred_opt(), Some(today), today.succ_opt()]
                .into_iter()
                .flatten()
                .filter_map(move |day| {
                    tz.from_local_datetime(&day.and_time(w.stop.0))
                        .earliest()
                        .map(|t| t.with_timezone(&Utc))
                })
        })
        .filter(|t| *t <= now)
        .max()
}

/// The window end whose flatten is due at `now`: the setting is on, `now` is outside every
/// enabled window, and the last window end is at most `grace` ago (a service started hours
/// after a cutoff does not flatten positions opened by hand since).
#[must_use]
pub fn due(settings: &Settings, now: DateTime<Utc>, grace: Duration) -> Option<DateTime<Utc>> {
    if !auto_flat_due(settings, now) {
        return None;
    }
    last_cutoff(settings, now).filter(|cutoff| now - *cutoff <= grace)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jt_domain::settings::{ClockTime, TimeWindow, TimeZone};

    fn settings(start: (u32, u32), stop: (u32, u32)) -> Settings {
        Settings {
            auto_flat_after_cutoff: true,
            time_zone: TimeZone(chrono_tz::America::New_York),
            time_filter_1: TimeWindow {
                enabled: true,
                start: ClockTime::hm(start.0, start.1).unwrap(),
                stop: ClockTime::hm(stop.0, stop.1).unwrap(),
            },
            ..Settings::default()
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_window_end_in_the_traders_zone_is_the_cutoff() {
        // 09:30–16:00 New York; 16:00 EST is 21:00 UTC on 4 December 2026.
        let s = settings((9, 30), (16, 0));
        let grace = Duration::minutes(15);
        assert_eq!(due(&s, utc("2026-12-04T20:59:59Z"), grace), None, "inside");
        assert_eq!(
            due(&s, utc("2026-12-04T21:00:00Z"), grace),
            Some(utc("2026-12-04T21:00:00Z"))
        );
        assert_eq!(
            due(&s, utc("2026-12-04T21:14:00Z"), grace),
            Some(utc("2026-12-04T21:00:00Z"))
        );
        assert_eq!(
            due(&s, utc("2026-12-04T21:16:00Z"), grace),
            None,
            "too late"
        );
        // Overnight, the last end is still the previous afternoon's.
        assert_eq!(
            last_cutoff(&s, utc("2026-12-05T03:00:00Z")),
            Some(utc("2026-12-04T21:00:00Z"))
        );
    }

    #[test]
    fn a_window_across_midnight_ends_the_next_day() {
        let s = settings((18, 0), (2, 0));
        // 02:00 New York on 5 December is 07:00 UTC.
        assert_eq!(
            due(&s, utc("2026-12-05T07:05:00Z"), Duration::minutes(15)),
            Some(utc("2026-12-05T07:00:00Z"))
        );
        assert_eq!(
            due(&s, utc("2026-12-05T06:59:00Z"), Duration::minutes(15)),
            None
        );
    }

    #[test]
    fn nothing_is_due_when_the_setting_is_off_or_no_window_is_enabled() {
        let mut s = settings((9, 30), (16, 0));
        s.auto_flat_after_cutoff = false;
        assert_eq!(
            due(&s, utc("2026-12-04T21:01:00Z"), Duration::minutes(15)),
            None
        );
        let mut s = settings((9, 30), (16, 0));
        s.time_filter_1.enabled = false;
        assert_eq!(last_cutoff(&s, utc("2026-12-04T21:01:00Z")), None);
    }
}
