//! Trading-day and market-hours helpers the adapters need (cache keys, replay filtering,
//! dead-subscription detection), from `jt_domain::session` — one calendar for the platform.
//!
//! The market-hours rule is injected as a [`MarketHours`] predicate so tests (and a connection
//! manager with its own calendar) can choose; [`default_market_hours`] is the domain's
//! holiday-aware CME Globex calendar.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

pub use jt_domain::session::{is_market_open, trading_day};

/// "Is the market open at this instant?" — decides whether a silent subscription is dead.
pub type MarketHours = Arc<dyn Fn(DateTime<Utc>) -> bool + Send + Sync>;

/// [`is_market_open`] as a [`MarketHours`].
#[must_use]
pub fn default_market_hours() -> MarketHours {
    Arc::new(is_market_open)
}

/// A login's event side across session boundaries: which trading session it is in, when the
/// next one starts (17:00 America/Chicago), and on which trading day each order it remembers was
/// last heard of — so that at a new session the finished orders only past sessions needed can
/// be forgotten (the Tradovate and ProjectX dispatchers; `docs/connmgr.md`, "Many logins").
#[derive(Debug)]
pub struct SessionMemory {
    session: NaiveDate,
    next_session: DateTime<Utc>,
    order_days: HashMap<i64, NaiveDate>,
}

impl Default for SessionMemory {
    fn default() -> Self {
        Self::new(Utc::now())
    }
}

impl SessionMemory {
    /// In the session of `now`.
    #[must_use]
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            session: trading_day(now),
            next_session: jt_domain::session::next_session_start(now),
            order_days: HashMap::new(),
        }
    }

    /// The trading day of the current session.
    #[must_use]
    pub fn session(&self) -> NaiveDate {
        self.session
    }

    /// `order` was heard of now (in the current session).
    pub fn heard_of(&mut self, order: i64) {
        self.order_days.insert(order, self.session);
    }

    /// `None` while `now` is in the current session (one comparison: cheap enough for every
    /// message). Once a new session has begun: the orders among `finished` last heard of before
    /// yesterday's session, forgotten here and to be forgotten by the caller — yesterday's are
    /// kept for a session-end replay, working orders are never offered.
    pub fn roll(
        &mut self,
        now: DateTime<Utc>,
        finished: impl IntoIterator<Item = i64>,
        venue: &str,
    ) -> Option<Vec<i64>> {
        if now < self.next_session {
            return None;
        }
        self.session = trading_day(now);
        self.next_session = jt_domain::session::next_session_start(now);
        let keep_from = self.session.pred_opt().unwrap_or(self.session);
        let forgotten: Vec<i64> = finished
            .into_iter()
            .filter(|id| self.order_days.get(id).is_none_or(|d| *d < keep_from))
            .collect();
        for id in &forgotten {
            self.order_days.remove(id);
        }
        tracing::debug!(
            venue,
            session = %self.session,
            forgotten = forgotten.len(),
            "a new trading session: finished orders of past sessions forgotten"
        );
        Some(forgotten)
    }
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
