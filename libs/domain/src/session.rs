//! CME Globex sessions (DOMAIN.md §9): the trading day of an instant, market hours, and the
//! instant a trading day's session starts.
//!
//! CME Globex futures trade Sunday to Friday, 17:00–16:00 America/Chicago, with a daily halt
//! 16:00–17:00. The trading day `D` runs from 17:00 Chicago time on the calendar day before `D`
//! to 16:00 on `D` (Monday's session opens on Sunday at 17:00). "Session" and "day" for
//! signals per session, daily loss and breach flags mean this trading day.
//!
//! # Holidays
//!
//! Full-day closures — trading days that do not exist, whose session never opens — are New
//! Year's Day, Good Friday and Christmas Day, each observed on the nearest weekday when it
//! falls on a weekend (Saturday → the Friday before, Sunday → the Monday after), except that a
//! Saturday New Year's Day closes nothing (as in 2022). For 2025–2027 these are:
//!
//! | trading day | closure |
//! |---|---|
//! | 2025-01-01 (Wed) | New Year's Day |
//! | 2025-04-18 (Fri) | Good Friday |
//! | 2025-12-25 (Thu) | Christmas Day |
//! | 2026-01-01 (Thu) | New Year's Day |
//! | 2026-04-03 (Fri) | Good Friday |
//! | 2026-12-25 (Fri) | Christmas Day |
//! | 2027-01-01 (Fri) | New Year's Day |
//! | 2027-03-26 (Fri) | Good Friday |
//! | 2027-12-24 (Fri) | Christmas Day (observed) |
//!
//! Sources: CME Group holiday calendar and trading hours pages
//! (<https://www.cmegroup.com/tools-information/holiday-calendar.html>,
//! <https://www.cmegroup.com/trading-hours.html>: 2025 and 2026 Globex schedules list New
//! Year's Day, Good Friday and Christmas as the days CME Globex is closed), and the NYSE
//! holiday calendar for the observed dates of 2027
//! (<https://www.nyse.com/markets/hours-calendars>), whose full closures CME follows for these
//! three holidays. The table is a test (`tests::closures_2025_to_2027`), and the rule above
//! reproduces it, so years past 2027 keep working until CME says otherwise.
//!
//! Not modelled: early halts on the other U.S. holidays (e.g. MLK Day: equities halt at
//! 12:00 CT and reopen at 17:00 for the next trading day) and early closes on Christmas Eve
//! and the day after Thanksgiving count as open; the abbreviated Good Friday sessions CME has
//! held for interest-rate and equity products in years when the jobs report falls on it count
//! as closed; the 2025-01-09 national day of mourning (an early equity halt, not a closure)
//! counts as open.

use chrono::{
    DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::America::Chicago;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The exchange's time zone: CME Globex hours are set in Chicago time.
pub const EXCHANGE_TIME_ZONE: Tz = Chicago;

/// Seconds after midnight at which the daily halt starts (16:00 CT).
const HALT_START_SECS: u32 = 16 * 3600;
/// Seconds after midnight at which a session opens (17:00 CT).
const OPEN_SECS: u32 = 17 * 3600;

/// A U.S. holiday on which CME Globex is closed the whole trading day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closure {
    /// New Year's Day (January 1, or Monday January 2 when January 1 is a Sunday).
    NewYearsDay,
    /// Good Friday (two days before Easter Sunday).
    GoodFriday,
    /// Christmas Day (December 25, or the nearest weekday when it falls on a weekend).
    Christmas,
}

/// Easter Sunday of `year` (Gregorian calendar; the anonymous "Meeus/Jones/Butcher" algorithm).
fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// The full-day closure falling on `day`, if any (see the module docs for the rule).
#[must_use]
pub fn full_day_closure(day: NaiveDate) -> Option<Closure> {
    let (month, dom, weekday) = (day.month(), day.day(), day.weekday());
    if matches!(weekday, Weekday::Sat | Weekday::Sun) {
        return None;
    }
    let new_year = (month == 1 && dom == 1) || (month == 1 && dom == 2 && weekday == Weekday::Mon);
    if new_year {
        return Some(Closure::NewYearsDay);
    }
    let christmas = (month == 12 && dom == 25)
        || (month == 12 && dom == 24 && weekday == Weekday::Fri)
        || (month == 12 && dom == 26 && weekday == Weekday::Mon);
    if christmas {
        return Some(Closure::Christmas);
    }
    if weekday == Weekday::Fri
        && matches!(month, 3 | 4)
        && easter_sunday(day.year()).and_then(|e| e.checked_sub_days(Days::new(2))) == Some(day)
    {
        return Some(Closure::GoodFriday);
    }
    None
}

/// Whether `day` is a CME trading day: Monday to Friday and not a full-day closure.
#[must_use]
pub fn is_trading_day(day: NaiveDate) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && full_day_closure(day).is_none()
}

fn next_day(day: NaiveDate) -> NaiveDate {
    day.checked_add_days(Days::new(1)).unwrap_or(day)
}

/// The first trading day on or after `day`.
#[must_use]
pub fn trading_day_on_or_after(day: NaiveDate) -> NaiveDate {
    let mut d = day;
    // A weekend next to a closure is the longest run of non-trading days (4 days).
    for _ in 0..7 {
        if is_trading_day(d) {
            return d;
        }
        d = next_day(d);
    }
    d
}

/// The exchange-local date an instant is labelled with: the Chicago date, or the next date
/// from 17:00 on (the session that opens at 17:00 belongs to the next day).
fn session_label(instant: DateTime<Utc>) -> (NaiveDate, u32) {
    let local = instant.with_timezone(&EXCHANGE_TIME_ZONE);
    let secs = local.time().num_seconds_from_midnight();
    let date = local.date_naive();
    if secs >= OPEN_SECS {
        (next_day(date), secs)
    } else {
        (date, secs)
    }
}

/// The CME trading day an instant belongs to: the day whose session (17:00 Chicago on the day
/// before, to 16:00) contains it; during the daily halt, the day that just closed; during a
/// weekend or a full-day closure, the next trading day to open.
#[must_use]
pub fn trading_day(instant: DateTime<Utc>) -> NaiveDate {
    trading_day_on_or_after(session_label(instant).0)
}

/// Whether CME Globex is open at `instant`: inside a trading day's session, outside the daily
/// 16:00–17:00 halt, weekends and full-day closures. Cheap (one time-zone conversion and a few
/// integer comparisons; no allocation), so it can be called per message.
#[must_use]
pub fn is_market_open(instant: DateTime<Utc>) -> bool {
    let (label, secs) = session_label(instant);
    if (HALT_START_SECS..OPEN_SECS).contains(&secs) {
        return false;
    }
    is_trading_day(label)
}

/// `date` at `hour`:00 Chicago time, as a UTC instant. The session boundaries (16:00, 17:00)
/// never fall in a daylight-saving gap or overlap (Chicago changes clocks at 02:00).
fn chicago_instant(date: NaiveDate, hour: u32) -> DateTime<Utc> {
    let naive = NaiveDateTime::new(
        date,
        NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN),
    );
    match EXCHANGE_TIME_ZONE.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // Unreachable for 16:00/17:00; Central Standard Time keeps the function total.
        None => Utc.from_utc_datetime(&naive) + chrono::Duration::hours(6),
    }
}

/// The instant the session of trading day `day` opens: 17:00 Chicago time on the calendar day
/// before (Sunday for a Monday; the holiday itself for the day after a closure). Per-session
/// state (signals per session, daily loss, breach flags) is reset at this instant.
#[must_use]
pub fn session_start(day: NaiveDate) -> DateTime<Utc> {
    let previous = day.checked_sub_days(Days::new(1)).unwrap_or(day);
    chicago_instant(previous, 17)
}

/// The instant the session of trading day `day` closes: 16:00 Chicago time on `day` (regular
/// close; holiday early closes are not modelled).
#[must_use]
pub fn session_end(day: NaiveDate) -> DateTime<Utc> {
    chicago_instant(day, 16)
}

/// The next session open strictly after `instant` (the start of the next trading day's
/// session).
#[must_use]
pub fn next_session_start(instant: DateTime<Utc>) -> DateTime<Utc> {
    let mut day = trading_day(instant);
    if session_start(day) <= instant {
        day = trading_day_on_or_after(next_day(day));
    }
    session_start(day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// A Chicago wall-clock time as a UTC instant.
    fn ct(y: i32, m: u32, day: u32, h: u32, min: u32) -> DateTime<Utc> {
        Chicago
            .with_ymd_and_hms(y, m, day, h, min, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn closures_2025_to_2027() {
        let expected = [
            (d(2025, 1, 1), Closure::NewYearsDay),
            (d(2025, 4, 18), Closure::GoodFriday),
            (d(2025, 12, 25), Closure::Christmas),
            (d(2026, 1, 1), Closure::NewYearsDay),
            (d(2026, 4, 3), Closure::GoodFriday),
            (d(2026, 12, 25), Closure::Christmas),
            (d(2027, 1, 1), Closure::NewYearsDay),
            (d(2027, 3, 26), Closure::GoodFriday),
            (d(2027, 12, 24), Closure::Christmas),
        ];
        let mut found = Vec::new();
        let mut day = d(2025, 1, 1);
        while day <= d(2027, 12, 31) {
            if let Some(c) = full_day_closure(day) {
                found.push((day, c));
            }
            day = next_day(day);
        }
        assert_eq!(found, expected);
    }

    #[rstest]
    #[case(d(2021, 12, 24), Some(Closure::Christmas))] // Saturday Christmas → Friday
    #[case(d(2021, 12, 31), None)] // Saturday New Year's Day closes nothing
    #[case(d(2022, 12, 26), Some(Closure::Christmas))] // Sunday Christmas → Monday
    #[case(d(2023, 1, 2), Some(Closure::NewYearsDay))] // Sunday New Year's Day → Monday
    #[case(d(2024, 3, 29), Some(Closure::GoodFriday))]
    #[case(d(2028, 4, 14), Some(Closure::GoodFriday))]
    #[case(d(2025, 1, 20), None)] // MLK day: an early halt, not a closure
    #[case(d(2025, 11, 27), None)] // Thanksgiving: an early halt, not a closure
    fn observed_holiday_rule(#[case] day: NaiveDate, #[case] closure: Option<Closure>) {
        assert_eq!(full_day_closure(day), closure);
    }

    #[rstest]
    // Monday's session opens on Sunday at 17:00.
    #[case(ct(2026, 3, 1, 16, 59), false)]
    #[case(ct(2026, 3, 1, 17, 0), true)]
    // Daily halt 16:00–17:00.
    #[case(ct(2026, 3, 3, 15, 59), true)]
    #[case(ct(2026, 3, 3, 16, 0), false)]
    #[case(ct(2026, 3, 3, 16, 59), false)]
    #[case(ct(2026, 3, 3, 17, 0), true)]
    // Weekend: Friday 16:00 to Sunday 17:00.
    #[case(ct(2026, 3, 6, 15, 59), true)]
    #[case(ct(2026, 3, 6, 17, 30), false)]
    #[case(ct(2026, 3, 7, 12, 0), false)]
    #[case(ct(2026, 3, 8, 10, 0), false)]
    // Christmas 2025 (Thursday): no session from Dec 24 17:00 until Dec 25 17:00.
    #[case(ct(2025, 12, 24, 11, 0), true)]
    #[case(ct(2025, 12, 24, 17, 30), false)]
    #[case(ct(2025, 12, 25, 10, 0), false)]
    #[case(ct(2025, 12, 25, 17, 0), true)]
    // Good Friday 2026: Thursday's session ends at 16:00, next opens Sunday 17:00.
    #[case(ct(2026, 4, 2, 17, 30), false)]
    #[case(ct(2026, 4, 3, 9, 0), false)]
    #[case(ct(2026, 4, 5, 17, 1), true)]
    fn market_hours(#[case] at: DateTime<Utc>, #[case] open: bool) {
        assert_eq!(is_market_open(at), open, "{at}");
    }

    #[test]
    fn market_hours_follow_chicago_across_dst() {
        // 2026-03-08: US clocks spring forward. Sunday open is 17:00 CDT = 22:00 UTC; the
        // previous Sunday's was 17:00 CST = 23:00 UTC.
        let after_change = Utc.with_ymd_and_hms(2026, 3, 8, 22, 0, 0).unwrap();
        assert!(is_market_open(after_change));
        assert!(!is_market_open(after_change - chrono::Duration::seconds(1)));
        let before_change = Utc.with_ymd_and_hms(2026, 3, 1, 22, 30, 0).unwrap();
        assert!(!is_market_open(before_change), "17:00 CST is 23:00 UTC");
        // 2026-11-01: clocks fall back; the halt is 16:00–17:00 CST = 22:00–23:00 UTC on Monday.
        assert!(!is_market_open(
            Utc.with_ymd_and_hms(2026, 11, 2, 22, 30, 0).unwrap()
        ));
        assert!(is_market_open(
            Utc.with_ymd_and_hms(2026, 11, 2, 21, 30, 0).unwrap()
        ));
    }

    #[rstest]
    #[case(ct(2026, 3, 3, 9, 0), d(2026, 3, 3))]
    #[case(ct(2026, 3, 3, 16, 30), d(2026, 3, 3))] // halt: the day that just closed
    #[case(ct(2026, 3, 3, 17, 0), d(2026, 3, 4))] // the day starts at 17:00
    #[case(ct(2026, 3, 1, 18, 0), d(2026, 3, 2))] // Sunday evening → Monday
    #[case(ct(2026, 3, 6, 18, 0), d(2026, 3, 9))] // Friday evening → next Monday
    #[case(ct(2026, 3, 7, 12, 0), d(2026, 3, 9))] // Saturday → Monday
    #[case(ct(2025, 12, 24, 18, 0), d(2025, 12, 26))] // Christmas skipped
    #[case(ct(2026, 4, 2, 18, 0), d(2026, 4, 6))] // Good Friday skipped
    #[case(ct(2025, 12, 31, 17, 30), d(2026, 1, 2))] // New Year's Day skipped
    fn trading_day_starts_at_17_chicago(#[case] at: DateTime<Utc>, #[case] day: NaiveDate) {
        assert_eq!(trading_day(at), day, "{at}");
    }

    #[test]
    fn session_start_is_17_chicago_the_day_before() {
        assert_eq!(session_start(d(2026, 3, 3)), ct(2026, 3, 2, 17, 0));
        assert_eq!(session_start(d(2026, 3, 9)), ct(2026, 3, 8, 17, 0)); // Monday ← Sunday
        assert_eq!(
            session_start(d(2026, 3, 9)),
            Utc.with_ymd_and_hms(2026, 3, 8, 22, 0, 0).unwrap(),
            "CDT after the spring change"
        );
        assert_eq!(session_start(d(2025, 12, 26)), ct(2025, 12, 25, 17, 0));
        assert_eq!(session_end(d(2026, 3, 3)), ct(2026, 3, 3, 16, 0));
    }

    #[test]
    fn next_session_start_skips_weekends_and_closures() {
        assert_eq!(
            next_session_start(ct(2026, 3, 6, 10, 0)),
            ct(2026, 3, 8, 17, 0)
        );
        assert_eq!(
            next_session_start(ct(2026, 3, 3, 16, 30)),
            ct(2026, 3, 3, 17, 0)
        );
        assert_eq!(
            next_session_start(ct(2025, 12, 24, 10, 0)),
            ct(2025, 12, 25, 17, 0)
        );
        assert_eq!(
            next_session_start(ct(2026, 3, 3, 17, 0)),
            ct(2026, 3, 4, 17, 0),
            "strictly after"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn an_open_market_is_inside_its_trading_days_session(
            secs in 1_735_689_600i64..1_830_297_600i64, // 2025-01-01 .. 2027-12-31
        ) {
            let at = DateTime::from_timestamp(secs, 0).unwrap();
            let day = trading_day(at);
            prop_assert!(is_trading_day(day));
            if is_market_open(at) {
                prop_assert!(session_start(day) <= at && at < session_end(day));
            }
            prop_assert!(next_session_start(at) > at);
            prop_assert!(is_market_open(next_session_start(at)));
        }
    }
}
