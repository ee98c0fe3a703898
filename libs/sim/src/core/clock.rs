//! Time: microsecond timestamps, ISO-8601 rendering, CME trade dates and session hours.
//!
//! Trade dates and session hours come from the domain's CME Globex calendar
//! (`jt_domain::session`: Sunday 17:00 to Friday 16:00 Chicago time, the daily 16:00–17:00
//! halt, full-day holiday closures). ICE softs keep shorter hours; the simulator applies the
//! Globex schedule to every product.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use super::model::TradeDate;

/// Microseconds since the Unix epoch, now.
#[must_use]
pub fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

/// Renders a microsecond timestamp as Tradovate does: `2021-04-13T04:59:06.588Z`.
#[must_use]
pub fn iso(us: i64) -> String {
    match Utc.timestamp_micros(us).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

fn utc(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// The CME trade date of an instant.
#[must_use]
pub fn trade_date_of(us: i64) -> NaiveDate {
    jt_domain::session::trading_day(utc(us))
}

/// The trade date of an instant, as the wire struct.
#[must_use]
pub fn trade_date(us: i64) -> TradeDate {
    let d = trade_date_of(us);
    TradeDate {
        year: d.year(),
        month: d.month(),
        day: d.day(),
    }
}

/// Whether CME Globex is open at this instant.
#[must_use]
pub fn cme_session_open(us: i64) -> bool {
    jt_domain::session::is_market_open(utc(us))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::Chicago;

    fn ct(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        Chicago
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
            .timestamp_micros()
    }

    #[test]
    fn hours_and_trade_dates_follow_the_globex_calendar() {
        assert!(cme_session_open(ct(2026, 11, 23, 9, 30)));
        assert!(!cme_session_open(ct(2026, 11, 23, 16, 30)), "daily halt");
        assert!(!cme_session_open(ct(2026, 11, 28, 12, 0)), "Saturday");
        assert!(!cme_session_open(ct(2026, 12, 25, 10, 0)), "Christmas");
        assert_eq!(
            trade_date_of(ct(2026, 11, 23, 17, 0)),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
        );
        assert_eq!(
            trade_date(ct(2026, 11, 29, 18, 0)),
            TradeDate {
                year: 2026,
                month: 11,
                day: 30
            }
        );
    }

    #[test]
    fn iso_has_milliseconds_and_z() {
        assert_eq!(iso(1_618_289_946_588_000), "2021-04-13T04:59:06.588Z");
    }
}
