//! Order shapes: what the executor asks a broker adapter to place (DOMAIN.md §5.7).
//!
//! These types are the contract between the domain rules (which decide quantities and
//! distances), the executor (which sequences broker calls) and the adapters (which translate
//! them to a broker's wire format). Distances are *unsigned price distances in points*, already
//! on the instrument's tick grid; the adapter applies the direction (Tradovate's signed
//! multibracket offsets, ProjectX's ticks). Absolute prices exist only once a fill price is
//! known, and are [`Price`]s, so they are on tick by construction.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::types::{Contracts, Price, Side};

/// The kind of a single order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderKind {
    /// Market order.
    Market,
    /// Limit order at `price`.
    Limit {
        /// Limit price.
        price: Price,
    },
    /// Stop (market) order triggered at `stop`.
    Stop {
        /// Trigger price.
        stop: Price,
    },
    /// Stop-limit order.
    StopLimit {
        /// Trigger price.
        stop: Price,
        /// Limit price once triggered.
        price: Price,
    },
}

/// How long a resting entry (limit, stop or stop-limit) works at the broker when it has not
/// filled. Whatever the time in force, the trader's next signal on the contract cancels a resting
/// entry first (`docs/alerts.md`, "Order types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Until the end of the trading day (the CME session end, 16:00 Chicago time): the default.
    #[default]
    Day,
    /// Until cancelled (by the next signal, or by hand).
    Gtc,
}

impl TimeInForce {
    /// The wire word (`day`, `gtc`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Day => "day",
            TimeInForce::Gtc => "gtc",
        }
    }
}

impl OrderKind {
    /// Whether the order rests until a price is reached (anything but market).
    #[must_use]
    pub fn is_resting(&self) -> bool {
        !matches!(self, OrderKind::Market)
    }
}

/// One plain order: a market/limit/stop order, a DCA add, a close, a single replacement TP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Client order id, derived from the intent id (DOMAIN.md §5.8); adapters send it in the
    /// broker's own field (`clOrdId`, `customTag`) and look orders up by it.
    pub client_order_id: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity in contracts (≥ 1).
    pub qty: Contracts,
    /// Market, limit, stop or stop-limit.
    pub kind: OrderKind,
}

/// One take-profit leg of a bracket: `qty` contracts at `distance` points from the entry fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeProfitLeg {
    /// Contracts closed by this leg (≥ 1).
    pub qty: Contracts,
    /// Distance from the entry fill in points (> 0, on tick).
    pub distance: Decimal,
}

/// How the protective stop behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StopKind {
    /// A fixed stop at entry ∓ distance.
    Fixed,
    /// A trailing stop at `distance` behind the best price.
    Trailing {
        /// Profit in points before trailing starts; 0 = trail from the start.
        trigger: Decimal,
        /// Trailing step in points; 0 = the broker's finest step.
        step: Decimal,
    },
}

/// The protective stop of a bracket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopSpec {
    /// Distance from the entry fill in points (> 0, on tick).
    pub distance: Decimal,
    /// Fixed or trailing.
    pub kind: StopKind,
}

/// Move the stop to entry ± offset once price is `trigger` points in profit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakEven {
    /// Profit in points that triggers the move (> 0).
    pub trigger: Decimal,
    /// Points beyond the entry, in the profit direction, where the stop goes (≥ 0).
    pub offset: Decimal,
}

/// An entry with its protective orders: entry, take-profit legs, stop (fixed or trailing) and
/// break-even, placed in one broker call where the broker can (Tradovate multibracket order
/// strategy; ProjectX bracket fields plus separate legs).
///
/// Invariants (checked by [`BracketOrder::validate`]): the legs' quantities sum to at most
/// `qty`; every distance is positive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BracketOrder {
    /// Client order id of the entry (the adapter derives the legs' ids from it).
    pub client_order_id: String,
    /// Entry side.
    pub side: Side,
    /// Entry quantity in contracts (≥ 1).
    pub qty: Contracts,
    /// Entry order kind (almost always market).
    pub entry: OrderKind,
    /// Take-profit legs; empty = no take-profit (the strategy exits by signal).
    pub take_profits: Vec<TakeProfitLeg>,
    /// Protective stop, if any.
    pub stop: Option<StopSpec>,
    /// Break-even move of the stop, if any.
    pub break_even: Option<BreakEven>,
}

/// A bracket that breaks its invariants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("invalid bracket: {0}")]
pub struct BracketError(pub String);

impl BracketOrder {
    /// Whether the bracket has at least one protective order.
    #[must_use]
    pub fn is_protected(&self) -> bool {
        !self.take_profits.is_empty() || self.stop.is_some()
    }

    /// Whether the bracket has both a stop and a take-profit (`require_brackets` accounts).
    #[must_use]
    pub fn has_stop_and_target(&self) -> bool {
        !self.take_profits.is_empty() && self.stop.is_some()
    }

    /// Checks the invariants.
    ///
    /// # Errors
    /// A [`BracketError`] naming the broken invariant.
    pub fn validate(&self) -> Result<(), BracketError> {
        if self.qty == 0 {
            return Err(BracketError("entry quantity is 0".into()));
        }
        let mut total: u64 = 0;
        for (i, leg) in self.take_profits.iter().enumerate() {
            if leg.qty == 0 {
                return Err(BracketError(format!(
                    "take-profit leg {} has quantity 0",
                    i + 1
                )));
            }
            if leg.distance <= Decimal::ZERO {
                return Err(BracketError(format!(
                    "take-profit leg {} distance is not > 0",
                    i + 1
                )));
            }
            total += u64::from(leg.qty);
        }
        if total > u64::from(self.qty) {
            return Err(BracketError(format!(
                "take-profit legs total {total} contracts, more than the entry's {}",
                self.qty
            )));
        }
        if let Some(stop) = &self.stop
            && stop.distance <= Decimal::ZERO
        {
            return Err(BracketError("stop distance is not > 0".into()));
        }
        if let Some(be) = &self.break_even
            && (be.trigger <= Decimal::ZERO || be.offset < Decimal::ZERO)
        {
            return Err(BracketError(
                "break-even trigger must be > 0 and offset >= 0".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn bracket() -> BracketOrder {
        BracketOrder {
            client_order_id: "jt-1".into(),
            side: Side::Buy,
            qty: 3,
            entry: OrderKind::Market,
            take_profits: vec![
                TakeProfitLeg {
                    qty: 1,
                    distance: dec!(5),
                },
                TakeProfitLeg {
                    qty: 2,
                    distance: dec!(10),
                },
            ],
            stop: Some(StopSpec {
                distance: dec!(8),
                kind: StopKind::Fixed,
            }),
            break_even: None,
        }
    }

    #[test]
    fn a_valid_bracket_passes() {
        assert!(bracket().validate().is_ok());
        assert!(bracket().has_stop_and_target());
    }

    #[test]
    fn legs_exceeding_the_entry_are_refused() {
        let mut b = bracket();
        b.take_profits[1].qty = 3;
        assert!(b.validate().is_err());
    }

    #[test]
    fn zero_distances_are_refused() {
        let mut b = bracket();
        b.take_profits[0].distance = dec!(0);
        assert!(b.validate().is_err());
        let mut b = bracket();
        b.stop = Some(StopSpec {
            distance: dec!(0),
            kind: StopKind::Fixed,
        });
        assert!(b.validate().is_err());
    }

    #[test]
    fn protection_is_reported() {
        let mut b = bracket();
        b.stop = None;
        assert!(b.is_protected() && !b.has_stop_and_target());
        b.take_profits.clear();
        assert!(!b.is_protected());
    }
}
