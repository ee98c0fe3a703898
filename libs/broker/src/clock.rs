//! Trading-day and market-hours helpers the adapters need (cache keys, replay filtering,
//! dead-subscription detection), from `jt_domain::session` — one calendar for the platform.
//!
//! The market-hours rule is injected as a [`MarketHours`] predicate so tests (and a connection
//! manager with its own calendar) can choose; [`default_market_hours`] is the domain's
//! holiday-aware CME Globex calendar.

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use jt_domain::session::{is_market_open, trading_day};

/// "Is the market open at this instant?" — decides whether a silent subscription is dead.
pub type MarketHours = Arc<dyn Fn(DateTime<Utc>) -> bool + Send + Sync>;

/// [`is_market_open`] as a [`MarketHours`].
#[must_use]
pub fn default_market_hours() -> MarketHours {
    Arc::new(is_market_open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_default_is_the_domain_calendar() {
        let hours = default_market_hours();
        for at in [
            "2025-12-06T18:00:00Z",
            "2025-12-08T15:00:00Z",
            "2025-12-25T15:00:00Z",
        ] {
            assert_eq!(hours(utc(at)), is_market_open(utc(at)), "{at}");
        }
        // The weekend belongs to Monday's trading day, as brokers and the simulator report it.
        assert_eq!(
            trading_day(utc("2025-12-06T12:00:00Z")).to_string(),
            "2025-12-08"
        );
    }
}
