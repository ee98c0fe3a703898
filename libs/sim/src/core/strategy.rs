//! Multibracket order strategies: what a client asks for, checked before anything is placed.
//!
//! Offsets are signed price distances in points from the entry fill, as Tradovate's examples
//! send them: a buy's target is positive and its stop negative, a sell's the other way round.
//! `autoTrail` turns the stop into a trailing stop once the trade is `trigger` points in profit,
//! trailing `stopLoss` points behind the best price in steps of `freq`; break-even moves the
//! stop to entry ± `offset` once the trade is `trigger` points in profit.

use rust_decimal::Decimal;

use super::model::{Action, OrderType, TimeInForce};

/// The entry order of a strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySpec {
    /// Quantity.
    pub qty: u32,
    /// Market, Limit, Stop or StopLimit.
    pub order_type: OrderType,
    /// Limit price.
    pub price: Option<Decimal>,
    /// Stop price.
    pub stop_price: Option<Decimal>,
    /// Time in force.
    pub tif: Option<TimeInForce>,
    /// Client order id of the entry (ProjectX `customTag`; Tradovate strategies have none).
    pub cl_ord_id: Option<String>,
}

/// Trail the stop after a profit threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoTrail {
    /// Trailing distance (points, > 0).
    pub distance: Decimal,
    /// Profit (points) that starts the trail.
    pub trigger: Decimal,
    /// Smallest stop move (points; 0 = every tick).
    pub freq: Decimal,
}

/// Move the stop to break-even after a profit threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakEven {
    /// Profit (points, > 0) that triggers the move.
    pub trigger: Decimal,
    /// Points beyond the entry, in the profit direction, where the stop goes (≥ 0).
    pub offset: Decimal,
}

/// One exit pair of a multibracket strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BracketSpec {
    /// Contracts this bracket exits.
    pub qty: u32,
    /// Signed target offset (points) from the entry fill; `None` = no target.
    pub profit_target: Option<Decimal>,
    /// Signed stop offset (points) from the entry fill; `None` = no stop.
    pub stop_loss: Option<Decimal>,
    /// Whether the stop trails from the start.
    pub trailing_stop: bool,
    /// Trail after profit.
    pub auto_trail: Option<AutoTrail>,
    /// Break-even move.
    pub break_even: Option<BreakEven>,
}

/// A whole multibracket strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategySpec {
    /// Entry side.
    pub action: Action,
    /// Entry order.
    pub entry: EntrySpec,
    /// Exit brackets (may be empty: an entry alone).
    pub brackets: Vec<BracketSpec>,
}

impl StrategySpec {
    /// Checks signs, quantities and the tick grid.
    ///
    /// # Errors
    /// A human-readable reason (Tradovate answers these as `errorText`).
    pub fn validate(&self, tick: Decimal) -> Result<(), String> {
        if self.entry.qty == 0 {
            return Err("entryVersion.orderQty must be at least 1".into());
        }
        let total: u64 = self.brackets.iter().map(|b| u64::from(b.qty)).sum();
        if total > u64::from(self.entry.qty) {
            return Err(format!(
                "brackets total {total} contracts, more than the entry's {}",
                self.entry.qty
            ));
        }
        let dir = Decimal::from(self.action.sign());
        let on_tick = |d: Decimal| (d % tick).is_zero();
        for (i, b) in self.brackets.iter().enumerate() {
            let n = i + 1;
            if b.qty == 0 {
                return Err(format!("bracket {n}: qty must be at least 1"));
            }
            if b.profit_target.is_none() && b.stop_loss.is_none() {
                return Err(format!("bracket {n}: neither profitTarget nor stopLoss"));
            }
            if let Some(pt) = b.profit_target {
                if pt * dir <= Decimal::ZERO {
                    return Err(format!(
                        "bracket {n}: profitTarget {pt} is on the losing side for a {}",
                        self.action.as_str()
                    ));
                }
                if !on_tick(pt) {
                    return Err(format!(
                        "bracket {n}: profitTarget {pt} is not on the tick grid ({tick})"
                    ));
                }
            }
            if let Some(sl) = b.stop_loss {
                if sl * dir >= Decimal::ZERO {
                    return Err(format!(
                        "bracket {n}: stopLoss {sl} is on the winning side for a {}",
                        self.action.as_str()
                    ));
                }
                if !on_tick(sl) {
                    return Err(format!(
                        "bracket {n}: stopLoss {sl} is not on the tick grid ({tick})"
                    ));
                }
            }
            if let Some(t) = b.auto_trail {
                if b.stop_loss.is_none() {
                    return Err(format!("bracket {n}: autoTrail needs a stopLoss"));
                }
                if t.distance <= Decimal::ZERO
                    || t.trigger < Decimal::ZERO
                    || t.freq < Decimal::ZERO
                {
                    return Err(format!("bracket {n}: autoTrail values must be positive"));
                }
                if !(on_tick(t.distance) && on_tick(t.trigger) && on_tick(t.freq)) {
                    return Err(format!(
                        "bracket {n}: autoTrail values must be on the tick grid ({tick})"
                    ));
                }
            }
            if let Some(be) = b.break_even {
                if b.trailing_stop {
                    // The text Tradovate answers for a break-even on a trailing stop.
                    return Err("Stop and Stop/Limit breakeven supported only".into());
                }
                if b.stop_loss.is_none() {
                    return Err(format!("bracket {n}: breakEven needs a stopLoss"));
                }
                if be.trigger <= Decimal::ZERO
                    || be.offset < Decimal::ZERO
                    || be.offset >= be.trigger
                {
                    return Err(format!(
                        "bracket {n}: breakEven needs trigger > 0 and 0 <= offset < trigger"
                    ));
                }
                if !(on_tick(be.trigger) && on_tick(be.offset)) {
                    return Err(format!(
                        "bracket {n}: breakEven values must be on the tick grid ({tick})"
                    ));
                }
            }
        }
        match self.entry.order_type {
            OrderType::Market => Ok(()),
            OrderType::Limit if self.entry.price.is_some() => Ok(()),
            OrderType::Stop if self.entry.stop_price.is_some() => Ok(()),
            OrderType::StopLimit
                if self.entry.price.is_some() && self.entry.stop_price.is_some() =>
            {
                Ok(())
            }
            t => Err(format!(
                "entryVersion: {t:?} entry needs its price fields (Market, Limit, Stop and StopLimit are supported)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn spec(action: Action, pt: Decimal, sl: Decimal) -> StrategySpec {
        StrategySpec {
            action,
            entry: EntrySpec {
                qty: 2,
                order_type: OrderType::Market,
                price: None,
                stop_price: None,
                tif: None,
                cl_ord_id: None,
            },
            brackets: vec![BracketSpec {
                qty: 2,
                profit_target: Some(pt),
                stop_loss: Some(sl),
                trailing_stop: false,
                auto_trail: None,
                break_even: None,
            }],
        }
    }

    #[test]
    fn signs_follow_the_entry_side() {
        assert!(
            spec(Action::Buy, dec!(75), dec!(-33))
                .validate(dec!(0.25))
                .is_ok()
        );
        assert!(
            spec(Action::Sell, dec!(-30), dec!(15))
                .validate(dec!(0.25))
                .is_ok()
        );
        assert!(
            spec(Action::Buy, dec!(-30), dec!(15))
                .validate(dec!(0.25))
                .is_err()
        );
        assert!(
            spec(Action::Sell, dec!(30), dec!(-15))
                .validate(dec!(0.25))
                .is_err()
        );
    }

    #[test]
    fn offsets_must_be_on_tick_and_quantities_fit() {
        assert!(
            spec(Action::Buy, dec!(1.1), dec!(-1))
                .validate(dec!(0.25))
                .is_err()
        );
        let mut s = spec(Action::Buy, dec!(1), dec!(-1));
        s.brackets[0].qty = 3;
        assert!(s.validate(dec!(0.25)).is_err());
    }

    #[test]
    fn break_even_on_a_trailing_stop_is_refused_with_tradovates_text() {
        let mut s = spec(Action::Buy, dec!(5), dec!(-5));
        s.brackets[0].trailing_stop = true;
        s.brackets[0].break_even = Some(BreakEven {
            trigger: dec!(2),
            offset: dec!(0),
        });
        assert_eq!(
            s.validate(dec!(0.25)).unwrap_err(),
            "Stop and Stop/Limit breakeven supported only"
        );
    }
}
