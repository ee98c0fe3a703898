//! One watched account's P&L, kept from what the brokers report and what the market quotes —
//! pure arithmetic, no I/O, so every rule is unit-tested.
//!
//! P&L of the trading day = **realised** (the broker's own figure: Tradovate's cash balance
//! events and snapshot, ProjectX's trades of the day less fees — both net of what the broker
//! charges) + **open** (each open position marked to the newest quote:
//! `(mark − average) × net quantity × point value`). When a held contract has no fresh quote
//! the open P&L is the broker's own figure from the last poll, so an account is never judged
//! on a partial sum.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use jt_domain::instrument::resolve_ticker;
use rust_decimal::Decimal;
use serde::Serialize;

/// One open position as the book holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Signed net quantity (> 0 long).
    pub net_qty: i64,
    /// Average price.
    pub average: Decimal,
}

/// Where the open P&L figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenSource {
    /// Every open position marked to a fresh quote.
    Quotes,
    /// The broker's own open P&L from the last poll (some contract had no fresh quote).
    Broker,
    /// Flat: nothing open.
    Flat,
    /// Positions open but neither fresh quotes nor a broker figure yet: not judged.
    Unknown,
}

/// The day's P&L of an account at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pnl {
    /// Realised since the trading day's start.
    pub realized: Decimal,
    /// Open.
    pub open: Decimal,
    /// Where `open` came from.
    pub source: OpenSource,
}

impl Pnl {
    /// Realised plus open.
    #[must_use]
    pub fn total(&self) -> Decimal {
        self.realized + self.open
    }
}

/// The newest mark of a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Price.
    pub price: Decimal,
    /// When the book received it.
    pub at: DateTime<Utc>,
}

/// What the broker last said about the account's P&L.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerFigure {
    /// Realised of the day.
    pub realized: Decimal,
    /// Open, when the broker reported one (Tradovate's cash events carry only realised).
    pub open: Option<Decimal>,
    /// The cash balance (realised, net of fees), when reported: with open P&L, the equity the
    /// prop-firm rules judge (a trailing drawdown is a floor under equity, not under the day).
    pub cash: Option<Decimal>,
    /// When it was read.
    pub at: DateTime<Utc>,
}

/// One watched account.
#[derive(Debug, Clone, Default)]
pub struct Book {
    /// Open positions by contract name (`MNQZ6`).
    pub positions: BTreeMap<String, Held>,
    /// The broker's latest figure, if any yet.
    pub broker: Option<BrokerFigure>,
}

impl Book {
    /// Replaces a contract's position (a flat one is removed).
    pub fn set_position(&mut self, contract: &str, net_qty: i64, average: Option<Decimal>) {
        match (net_qty, average) {
            (0, _) => {
                self.positions.remove(contract);
            }
            (q, Some(average)) => {
                self.positions.insert(
                    contract.to_owned(),
                    Held {
                        net_qty: q,
                        average,
                    },
                );
            }
            // An open position without an average cannot be marked: keep what was known;
            // the broker's own open figure covers it until the next snapshot.
            (q, None) => {
                if let Some(h) = self.positions.get_mut(contract) {
                    h.net_qty = q;
                }
            }
        }
    }

    /// Whether the account holds `contract`.
    #[must_use]
    pub fn holds(&self, contract: &str) -> bool {
        self.positions.contains_key(contract)
    }

    /// The day's P&L with `marks` no older than `max_age` at `now`; `None` when nothing about
    /// the realised figure is known yet (no broker read since the watch began).
    #[must_use]
    pub fn pnl(
        &self,
        marks: &impl Fn(&str) -> Option<Mark>,
        now: DateTime<Utc>,
        max_age: chrono::Duration,
    ) -> Option<Pnl> {
        let broker = self.broker?;
        if self.positions.is_empty() {
            // The store knows no position, but the broker is the truth: a position the store
            // has not caught up with yet (the positions service lagging or down) still counts.
            return Some(match broker.open.filter(|o| !o.is_zero()) {
                Some(open) => Pnl {
                    realized: broker.realized,
                    open,
                    source: OpenSource::Broker,
                },
                None => Pnl {
                    realized: broker.realized,
                    open: Decimal::ZERO,
                    source: OpenSource::Flat,
                },
            });
        }
        let marked = self
            .positions
            .iter()
            .map(|(contract, h)| {
                let mark = marks(contract).filter(|m| now - m.at <= max_age)?;
                let point = resolve_ticker(contract).ok()?.point_value();
                Some((mark.price - h.average) * Decimal::from(h.net_qty) * point)
            })
            .collect::<Option<Vec<Decimal>>>();
        let (open, source) = match (marked, broker.open) {
            (Some(parts), _) => (parts.into_iter().sum(), OpenSource::Quotes),
            (None, Some(open)) => (open, OpenSource::Broker),
            (None, None) => (Decimal::ZERO, OpenSource::Unknown),
        };
        Some(Pnl {
            realized: broker.realized,
            open,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Duration;
    use rust_decimal_macros::dec;

    use super::*;

    fn figure(realized: Decimal, open: Option<Decimal>) -> BrokerFigure {
        BrokerFigure {
            realized,
            open,
            cash: None,
            at: Utc::now(),
        }
    }

    #[test]
    fn nothing_is_judged_before_the_broker_has_been_read() {
        let book = Book::default();
        assert_eq!(book.pnl(&|_| None, Utc::now(), Duration::seconds(5)), None);
    }

    #[test]
    fn a_flat_account_is_its_realised_pnl() {
        let book = Book {
            broker: Some(figure(dec!(-120.50), Some(dec!(0)))),
            ..Book::default()
        };
        let pnl = book
            .pnl(&|_| None, Utc::now(), Duration::seconds(5))
            .unwrap();
        assert_eq!((pnl.total(), pnl.source), (dec!(-120.50), OpenSource::Flat));
    }

    #[test]
    fn an_open_loss_the_broker_reports_counts_even_when_the_store_shows_no_position() {
        let book = Book {
            broker: Some(figure(dec!(-20), Some(dec!(-90)))),
            ..Book::default()
        };
        let pnl = book
            .pnl(&|_| None, Utc::now(), Duration::seconds(5))
            .unwrap();
        assert_eq!((pnl.total(), pnl.source), (dec!(-110), OpenSource::Broker));
    }

    #[test]
    fn open_positions_are_marked_to_fresh_quotes_with_each_contracts_point_value() {
        let now = Utc::now();
        let mut book = Book {
            broker: Some(figure(dec!(-100), Some(dec!(-1)))),
            ..Book::default()
        };
        // MNQ: $2 a point; long 3 from 21000.25, quoted 20990.25 → −10 × 3 × 2 = −60.
        book.set_position("MNQZ6", 3, Some(dec!(21000.25)));
        // ES: $50 a point; short 1 from 6000, quoted 6001.5 → −1.5 × 50 = −75.
        book.set_position("ESZ6", -1, Some(dec!(6000)));
        let marks = |c: &str| {
            Some(Mark {
                price: if c == "MNQZ6" {
                    dec!(20990.25)
                } else {
                    dec!(6001.5)
                },
                at: now,
            })
        };
        let pnl = book.pnl(&marks, now, Duration::seconds(5)).unwrap();
        assert_eq!(pnl.open, dec!(-135));
        assert_eq!(pnl.total(), dec!(-235));
        assert_eq!(pnl.source, OpenSource::Quotes);
    }

    #[test]
    fn a_stale_or_missing_quote_falls_back_to_the_brokers_open_figure_never_a_partial_sum() {
        let now = Utc::now();
        let mut book = Book {
            broker: Some(figure(dec!(0), Some(dec!(-42)))),
            ..Book::default()
        };
        book.set_position("MNQZ6", 1, Some(dec!(100)));
        book.set_position("MESZ6", 1, Some(dec!(100)));
        let stale = |c: &str| {
            Some(Mark {
                price: dec!(50),
                at: if c == "MNQZ6" {
                    now
                } else {
                    now - Duration::seconds(30)
                },
            })
        };
        let pnl = book.pnl(&stale, now, Duration::seconds(5)).unwrap();
        assert_eq!((pnl.open, pnl.source), (dec!(-42), OpenSource::Broker));

        book.broker = Some(figure(dec!(0), None));
        let pnl = book.pnl(&stale, now, Duration::seconds(5)).unwrap();
        assert_eq!(
            pnl.source,
            OpenSource::Unknown,
            "not judged on half the positions"
        );
    }

    #[test]
    fn a_flat_position_is_removed_and_one_without_an_average_keeps_the_last_known() {
        let mut book = Book::default();
        book.set_position("MNQZ6", 2, Some(dec!(10)));
        book.set_position("MNQZ6", 3, None);
        assert_eq!(
            book.positions["MNQZ6"],
            Held {
                net_qty: 3,
                average: dec!(10)
            }
        );
        book.set_position("MNQZ6", 0, None);
        assert!(!book.holds("MNQZ6"));
    }
}
