//! Small vocabulary types shared by every rule: order side, position direction, tick-exact
//! prices and contract quantities.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::instrument::Instrument;

/// The side of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    /// The other side.
    #[must_use]
    pub fn opposite(self) -> Self {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// The position direction an order of this side opens.
    #[must_use]
    pub fn opens(self) -> Direction {
        match self {
            Side::Buy => Direction::Long,
            Side::Sell => Direction::Short,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        })
    }
}

/// The direction of a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Long (net quantity > 0).
    Long,
    /// Short (net quantity < 0).
    Short,
}

impl Direction {
    /// The other direction.
    #[must_use]
    pub fn opposite(self) -> Self {
        match self {
            Direction::Long => Direction::Short,
            Direction::Short => Direction::Long,
        }
    }

    /// The order side that opens (or adds to) a position in this direction.
    #[must_use]
    pub fn entry_side(self) -> Side {
        match self {
            Direction::Long => Side::Buy,
            Direction::Short => Side::Sell,
        }
    }

    /// The order side that reduces or closes a position in this direction.
    #[must_use]
    pub fn exit_side(self) -> Side {
        self.entry_side().opposite()
    }

    /// +1 for long, −1 for short: the sign of profit per point of upward price move.
    #[must_use]
    pub fn sign(self) -> Decimal {
        match self {
            Direction::Long => Decimal::ONE,
            Direction::Short => Decimal::NEGATIVE_ONE,
        }
    }

    /// The direction of a signed net position, `None` when flat.
    #[must_use]
    pub fn of_net(net: i64) -> Option<Self> {
        match net.signum() {
            1 => Some(Direction::Long),
            -1 => Some(Direction::Short),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Long => "long",
            Direction::Short => "short",
        })
    }
}

/// A price on its instrument's tick grid. Built only through [`Price::on_tick`], so a value
/// of this type can be sent to a broker as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Price(Decimal);

impl Price {
    /// Rounds `raw` to the instrument's tick (half away from zero).
    #[must_use]
    pub fn on_tick(instrument: &Instrument, raw: Decimal) -> Self {
        Self(instrument.round_to_tick(raw))
    }

    /// The exact decimal value.
    #[must_use]
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.normalize())
    }
}

/// A number of contracts (always whole; brokers trade futures in whole contracts).
pub type Contracts = u32;
