//! Contract quantities (DOMAIN.md §5.4, §5.6): the trader's multiplier, the position and
//! per-trade caps, and the quantities of multi-target take-profit legs.
//!
//! Rounding is always half away from zero to a whole contract, and a non-zero request never
//! rounds down to nothing (at least 1 contract). Every product of a user-supplied decimal is
//! checked, so no setting can make these functions panic.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::settings::TrimUnits;
use crate::types::Contracts;

/// A quantity that cannot be computed from the given settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum QuantityError {
    /// The multiplier is zero or negative.
    #[error("multiplier {multiplier} is not greater than 0: fix the trader's `multiplier` setting")]
    NonPositiveMultiplier {
        /// The multiplier given.
        multiplier: Decimal,
    },
    /// The scaled quantity is beyond any contract count a broker accepts.
    #[error(
        "{quantity} × {multiplier} contracts is beyond any order size a broker accepts: check the \
         `multiplier` and size settings"
    )]
    TooLarge {
        /// The quantity before scaling.
        quantity: Decimal,
        /// The multiplier.
        multiplier: Decimal,
    },
}

/// Rounds a decimal number of contracts half away from zero, at least 1 when `raw > 0`
/// (0 for 0 or less).
fn whole_contracts(raw: Decimal) -> Option<Contracts> {
    if raw <= Decimal::ZERO {
        return Some(0);
    }
    let rounded = raw.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    rounded.to_u32().map(|q| q.max(1))
}

/// Scales a decimal quantity by `multiplier` (DOMAIN.md §5.4): `quantity × multiplier` rounded
/// half away from zero, at least 1 contract when `quantity > 0`, 0 when `quantity` is 0.
///
/// # Errors
/// [`QuantityError::NonPositiveMultiplier`] for a multiplier ≤ 0;
/// [`QuantityError::TooLarge`] when the product does not fit a contract count.
pub fn scale_decimal(quantity: Decimal, multiplier: Decimal) -> Result<Contracts, QuantityError> {
    if multiplier <= Decimal::ZERO {
        return Err(QuantityError::NonPositiveMultiplier { multiplier });
    }
    let too_large = || QuantityError::TooLarge {
        quantity,
        multiplier,
    };
    let product = quantity.checked_mul(multiplier).ok_or_else(too_large)?;
    whole_contracts(product).ok_or_else(too_large)
}

/// Scales a contract count from the settings by the trader's multiplier (DOMAIN.md §5.4):
/// `initial_position_size × multiplier` for an entry, `add_position_size × multiplier` for an
/// add. Half away from zero, at least 1 for a non-zero request.
///
/// # Errors
/// As [`scale_decimal`].
pub fn scale_by_multiplier(
    quantity: Contracts,
    multiplier: Decimal,
) -> Result<Contracts, QuantityError> {
    scale_decimal(Decimal::from(quantity), multiplier)
}

/// The contracts a partial exit takes off a position of `size` when the strategy sold
/// `fraction` of its own (0 < fraction < 1): `size × fraction` rounded half away from zero, at
/// least 1 contract, never more than `size` (never past flat). 0 for an empty position or a
/// fraction that is not positive.
#[must_use]
pub fn reduce_by_fraction(size: Contracts, fraction: Decimal) -> Contracts {
    if size == 0 || fraction <= Decimal::ZERO {
        return 0;
    }
    let raw = Decimal::from(size)
        .checked_mul(fraction.min(Decimal::ONE))
        .unwrap_or_else(|| Decimal::from(size));
    whole_contracts(raw).map_or(size, |q| q.min(size))
}

/// Why a risk-sized quantity could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RiskSizingError {
    /// Risk sizing needs the stop's distance.
    #[error(
        "the alert sizes the entry by risk, but no stop is set: add a stop (sl, dollar_sl or \
         percentage_sl) to the alert, or enable the trader's stop"
    )]
    NoStop,
    /// The risk or the stop is not positive, or the arithmetic overflowed.
    #[error(
        "risk sizing cannot use a risk of ${risk} with a stop risking ${per_contract} per contract"
    )]
    Invalid {
        /// Dollars at risk.
        risk: Decimal,
        /// Dollars lost per contract at the stop.
        per_contract: Decimal,
    },
}

/// The quantity an entry risking `risk_dollars` may have when its stop is `stop_points` away:
/// `risk ÷ (stop ticks × tick value)`, rounded **down** to whole contracts — a risk-sized entry
/// never risks more than asked (0 when one contract already risks more; the caller skips it).
///
/// # Errors
/// [`RiskSizingError`] for a stop of 0 or a non-positive risk.
pub fn risk_sized(
    risk_dollars: Decimal,
    stop_points: Decimal,
    instrument: &crate::instrument::Instrument,
) -> Result<(Contracts, Decimal), RiskSizingError> {
    if stop_points <= Decimal::ZERO {
        return Err(RiskSizingError::NoStop);
    }
    let per_contract = stop_points
        .checked_div(instrument.tick_size)
        .and_then(|ticks| ticks.checked_mul(instrument.tick_value))
        .unwrap_or(Decimal::MAX);
    if risk_dollars <= Decimal::ZERO || per_contract <= Decimal::ZERO {
        return Err(RiskSizingError::Invalid {
            risk: risk_dollars,
            per_contract,
        });
    }
    let qty = risk_dollars
        .checked_div(per_contract)
        .unwrap_or(Decimal::ZERO)
        .floor()
        .to_u32()
        .unwrap_or(Contracts::MAX);
    Ok((qty, per_contract.normalize()))
}

/// A cap that reduced an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum SizeLimit {
    /// `max_contracts_per_trade` cut the order.
    MaxContractsPerTrade {
        /// The configured cap.
        max: Contracts,
    },
    /// `max_contracts` cut the order so the resulting position stays at the cap.
    MaxContracts {
        /// The configured cap.
        max: Contracts,
        /// Contracts already open in the entry's direction.
        open: Contracts,
    },
}

/// The size of one entry or add, with the figures that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizedEntry {
    /// The setting's size × multiplier, before caps.
    pub requested: Contracts,
    /// The quantity to send (0 = nothing can be added: the position is at `max_contracts`).
    pub qty: Contracts,
    /// The cap that reduced `requested`, if one did (the tighter one when both apply).
    pub limited_by: Option<SizeLimit>,
}

/// Caps an entry so that the order never exceeds `max_contracts_per_trade` and the resulting
/// position (`open` contracts already held in the entry's direction + the order) never exceeds
/// `max_contracts`. A cap of 0 means none.
#[must_use]
pub fn cap_entry(
    requested: Contracts,
    open: Contracts,
    max_contracts: Contracts,
    max_contracts_per_trade: Contracts,
) -> SizedEntry {
    let mut qty = requested;
    let mut limited_by = None;
    if max_contracts_per_trade > 0 && qty > max_contracts_per_trade {
        qty = max_contracts_per_trade;
        limited_by = Some(SizeLimit::MaxContractsPerTrade {
            max: max_contracts_per_trade,
        });
    }
    if max_contracts > 0 {
        let room = max_contracts.saturating_sub(open);
        if qty > room {
            qty = room;
            limited_by = Some(SizeLimit::MaxContracts {
                max: max_contracts,
                open,
            });
        }
    }
    SizedEntry {
        requested,
        qty,
        limited_by,
    }
}

/// Quantities of the take-profit legs of an entry of `entry_qty` contracts (DOMAIN.md §5.6),
/// one per `trims` element, in order:
///
/// - `Contracts`: `trim × multiplier`, half away from zero, at least 1;
/// - `Percent`: `trim`% of `entry_qty`, half away from zero, at least 1;
/// - a trim of 0 means "the whole remaining position" (the default of a target without trim);
/// - never more than what remains; the last leg takes the remainder;
/// - once the quantity is used up, later legs get 0 (they are not placed).
///
/// The result sums to `entry_qty` whenever `trims` is not empty. Example: multiplier 5, three
/// legs of 1 contract on an entry of 15 → 5, 5, 5.
///
/// # Errors
/// [`QuantityError::NonPositiveMultiplier`] for `Contracts` trims with a multiplier ≤ 0.
pub fn take_profit_quantities(
    entry_qty: Contracts,
    trims: &[Decimal],
    trim_units: TrimUnits,
    multiplier: Decimal,
) -> Result<Vec<Contracts>, QuantityError> {
    if trim_units == TrimUnits::Contracts && multiplier <= Decimal::ZERO {
        return Err(QuantityError::NonPositiveMultiplier { multiplier });
    }
    let mut remaining = entry_qty;
    let mut out = Vec::with_capacity(trims.len());
    for (i, trim) in trims.iter().enumerate() {
        let last = i + 1 == trims.len();
        let wanted = if last || *trim <= Decimal::ZERO {
            remaining
        } else {
            let raw = match trim_units {
                TrimUnits::Contracts => trim.checked_mul(multiplier),
                TrimUnits::Percent => Decimal::from(entry_qty)
                    .checked_mul(*trim)
                    .and_then(|v| v.checked_div(Decimal::ONE_HUNDRED)),
            };
            // A product too large for a contract count is certainly more than what remains.
            raw.and_then(whole_contracts).unwrap_or(remaining)
        };
        let leg = wanted.min(remaining);
        remaining -= leg;
        out.push(leg);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    #[rstest]
    #[case(1, dec!(1), 1)]
    #[case(3, dec!(2.5), 8)] // 7.5 → 8: half away from zero
    #[case(1, dec!(2.5), 3)] // 2.5 → 3, not banker's 2
    #[case(1, dec!(1.4), 1)]
    #[case(1, dec!(0.1), 1)] // never rounds a real request down to nothing
    #[case(1, dec!(0.5), 1)]
    #[case(3, dec!(0.5), 2)] // 1.5 → 2
    #[case(0, dec!(5), 0)]
    #[case(2, dec!(20), 40)]
    fn multiplier_rounds_half_away_from_zero_and_at_least_one(
        #[case] qty: Contracts,
        #[case] multiplier: Decimal,
        #[case] expected: Contracts,
    ) {
        assert_eq!(scale_by_multiplier(qty, multiplier).unwrap(), expected);
    }

    #[test]
    fn non_positive_multiplier_is_an_error() {
        assert!(matches!(
            scale_by_multiplier(1, dec!(0)),
            Err(QuantityError::NonPositiveMultiplier { .. })
        ));
        assert!(scale_by_multiplier(1, dec!(-2)).is_err());
    }

    #[test]
    fn absurd_multiplier_is_an_error_not_a_panic() {
        assert!(matches!(
            scale_by_multiplier(u32::MAX, Decimal::MAX),
            Err(QuantityError::TooLarge { .. })
        ));
        assert!(matches!(
            scale_by_multiplier(10, dec!(1000000000)),
            Err(QuantityError::TooLarge { .. })
        ));
    }

    #[test]
    fn max_contracts_caps_the_resulting_position() {
        let s = cap_entry(5, 3, 6, 0);
        assert_eq!(s.qty, 3);
        assert_eq!(
            s.limited_by,
            Some(SizeLimit::MaxContracts { max: 6, open: 3 })
        );
        assert_eq!(cap_entry(5, 6, 6, 0).qty, 0, "already at the cap");
        assert_eq!(cap_entry(5, 9, 6, 0).qty, 0, "already above the cap");
        let free = cap_entry(5, 100, 0, 0);
        assert_eq!((free.qty, free.limited_by), (5, None), "0 = no cap");
    }

    #[test]
    fn max_contracts_per_trade_caps_one_entry() {
        let s = cap_entry(8, 0, 0, 3);
        assert_eq!(s.qty, 3);
        assert_eq!(
            s.limited_by,
            Some(SizeLimit::MaxContractsPerTrade { max: 3 })
        );
        // Both caps: the tighter one wins and is the one reported.
        let s = cap_entry(8, 4, 6, 3);
        assert_eq!(s.qty, 2);
        assert_eq!(
            s.limited_by,
            Some(SizeLimit::MaxContracts { max: 6, open: 4 })
        );
        let s = cap_entry(8, 0, 6, 3);
        assert_eq!(s.qty, 3);
        assert_eq!(
            s.limited_by,
            Some(SizeLimit::MaxContractsPerTrade { max: 3 })
        );
    }

    #[test]
    fn multiplier_5_with_three_one_contract_legs_gives_5_5_5() {
        // Regression: the replaced platform produced 1, 1, 13.
        let entry = scale_by_multiplier(3, dec!(5)).unwrap();
        assert_eq!(entry, 15);
        let legs = take_profit_quantities(
            entry,
            &[dec!(1), dec!(1), dec!(1)],
            TrimUnits::Contracts,
            dec!(5),
        )
        .unwrap();
        assert_eq!(legs, vec![5, 5, 5]);
    }

    #[test]
    fn contract_trims_are_scaled_by_the_multiplier() {
        let legs = take_profit_quantities(
            8,
            &[dec!(1), dec!(1), dec!(2)],
            TrimUnits::Contracts,
            dec!(2),
        )
        .unwrap();
        assert_eq!(legs, vec![2, 2, 4]);
        // 1 × 2.5 = 2.5 → 3 (half away from zero)
        let legs = take_profit_quantities(5, &[dec!(1), dec!(1)], TrimUnits::Contracts, dec!(2.5))
            .unwrap();
        assert_eq!(legs, vec![3, 2]);
    }

    #[test]
    fn percent_trims_are_a_share_of_the_entry() {
        let legs = take_profit_quantities(
            10,
            &[dec!(50), dec!(30), dec!(20)],
            TrimUnits::Percent,
            dec!(3),
        )
        .unwrap();
        assert_eq!(legs, vec![5, 3, 2]);
        // 3 × 50 % = 1.5 → 2, the last leg takes the remaining 1.
        let legs =
            take_profit_quantities(3, &[dec!(50), dec!(50)], TrimUnits::Percent, dec!(1)).unwrap();
        assert_eq!(legs, vec![2, 1]);
        // 2 % of 5 = 0.1 → at least 1.
        let legs =
            take_profit_quantities(5, &[dec!(2), dec!(100)], TrimUnits::Percent, dec!(1)).unwrap();
        assert_eq!(legs, vec![1, 4]);
    }

    #[test]
    fn last_leg_takes_the_remainder() {
        let legs = take_profit_quantities(
            10,
            &[dec!(1), dec!(1), dec!(1)],
            TrimUnits::Contracts,
            dec!(1),
        )
        .unwrap();
        assert_eq!(legs, vec![1, 1, 8]);
        // The same with percent trims that do not add up to 100.
        let legs =
            take_profit_quantities(10, &[dec!(10), dec!(10)], TrimUnits::Percent, dec!(1)).unwrap();
        assert_eq!(legs, vec![1, 9]);
    }

    #[test]
    fn legs_never_take_more_than_remains_and_exhausted_legs_get_nothing() {
        let legs = take_profit_quantities(
            2,
            &[dec!(1), dec!(1), dec!(1)],
            TrimUnits::Contracts,
            dec!(1),
        )
        .unwrap();
        assert_eq!(legs, vec![1, 1, 0]);
        let legs = take_profit_quantities(
            3,
            &[dec!(5), dec!(1), dec!(1)],
            TrimUnits::Contracts,
            dec!(1),
        )
        .unwrap();
        assert_eq!(legs, vec![3, 0, 0]);
        // A trim of 100 contracts on a 1-contract entry (a production setting) closes it all.
        let legs = take_profit_quantities(1, &[dec!(100)], TrimUnits::Contracts, dec!(1)).unwrap();
        assert_eq!(legs, vec![1]);
    }

    #[test]
    fn trim_zero_means_the_whole_remaining_position() {
        let legs = take_profit_quantities(
            6,
            &[dec!(2), dec!(0), dec!(1)],
            TrimUnits::Contracts,
            dec!(1),
        )
        .unwrap();
        assert_eq!(legs, vec![2, 4, 0]);
        let legs = take_profit_quantities(6, &[dec!(0)], TrimUnits::Percent, dec!(1)).unwrap();
        assert_eq!(legs, vec![6]);
    }

    #[test]
    fn no_targets_means_no_legs() {
        assert!(
            take_profit_quantities(3, &[], TrimUnits::Contracts, dec!(1))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn huge_trims_cannot_panic() {
        let legs = take_profit_quantities(
            4,
            &[Decimal::MAX, dec!(1)],
            TrimUnits::Contracts,
            Decimal::MAX,
        )
        .unwrap();
        assert_eq!(legs, vec![4, 0]);
        let legs = take_profit_quantities(4, &[Decimal::MAX, dec!(1)], TrimUnits::Percent, dec!(1))
            .unwrap();
        assert_eq!(legs, vec![4, 0]);
    }

    fn trims_strategy() -> impl Strategy<Value = Vec<Decimal>> {
        prop::collection::vec(
            (0u32..=400).prop_map(|v| Decimal::new(i64::from(v), 1)),
            1..6,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn legs_sum_to_the_entry_quantity(
            entry in 0u32..500,
            trims in trims_strategy(),
            percent in any::<bool>(),
            multiplier in (1u32..400).prop_map(|m| Decimal::new(i64::from(m), 1)),
        ) {
            let units = if percent { TrimUnits::Percent } else { TrimUnits::Contracts };
            let legs = take_profit_quantities(entry, &trims, units, multiplier).unwrap();
            prop_assert_eq!(legs.len(), trims.len());
            prop_assert_eq!(legs.iter().map(|q| u64::from(*q)).sum::<u64>(), u64::from(entry));
            // Once a leg gets nothing, every later one does too: legs fill in order.
            if let Some(first_empty) = legs.iter().position(|q| *q == 0) {
                prop_assert!(legs[first_empty..].iter().all(|q| *q == 0));
            }
        }

        #[test]
        fn scaling_is_at_least_one_and_within_half_a_contract(
            qty in 1u32..10_000,
            multiplier in (1u32..1000).prop_map(|m| Decimal::new(i64::from(m), 2)),
        ) {
            let scaled = scale_by_multiplier(qty, multiplier).unwrap();
            prop_assert!(scaled >= 1);
            let exact = Decimal::from(qty) * multiplier;
            if exact >= Decimal::ONE {
                prop_assert!((Decimal::from(scaled) - exact).abs() <= dec!(0.5));
            }
        }

        #[test]
        fn a_capped_entry_never_breaks_either_cap(
            requested in 0u32..1000,
            open in 0u32..1000,
            max in 0u32..1000,
            per_trade in 0u32..1000,
        ) {
            let s = cap_entry(requested, open, max, per_trade);
            prop_assert!(s.qty <= requested);
            if per_trade > 0 { prop_assert!(s.qty <= per_trade); }
            if max > 0 { prop_assert!(s.qty == 0 || open + s.qty <= max); }
            prop_assert_eq!(s.limited_by.is_none(), s.qty == requested);
        }
    }

    #[test]
    fn a_partial_exit_takes_the_same_fraction_of_each_position_never_past_flat() {
        // The strategy sold half: 4 → 2, 8 → 4, 2 → 1.
        assert_eq!(reduce_by_fraction(4, dec!(0.5)), 2);
        assert_eq!(reduce_by_fraction(8, dec!(0.5)), 4);
        assert_eq!(reduce_by_fraction(2, dec!(0.5)), 1);
        // Half away from zero, at least one contract.
        assert_eq!(reduce_by_fraction(3, dec!(0.5)), 2);
        assert_eq!(reduce_by_fraction(1, dec!(0.5)), 1);
        assert_eq!(reduce_by_fraction(10, dec!(0.01)), 1);
        // Never more than the position.
        assert_eq!(reduce_by_fraction(3, dec!(0.9)), 3);
        assert_eq!(reduce_by_fraction(3, dec!(2)), 3);
        assert_eq!(reduce_by_fraction(0, dec!(0.5)), 0);
        assert_eq!(reduce_by_fraction(5, dec!(0)), 0);
    }

    #[test]
    fn a_risk_sized_entry_never_risks_more_than_asked() {
        let mnq = crate::instrument::by_root("MNQ").unwrap();
        // 40 ticks × $0.50 = $20 a contract; $100 buys 5 contracts.
        assert_eq!(risk_sized(dec!(100), dec!(10), mnq).unwrap(), (5, dec!(20)));
        // $110 still buys 5 (rounded down), $19 buys none.
        assert_eq!(risk_sized(dec!(110), dec!(10), mnq).unwrap().0, 5);
        assert_eq!(risk_sized(dec!(19), dec!(10), mnq).unwrap().0, 0);
        assert_eq!(
            risk_sized(dec!(100), dec!(0), mnq),
            Err(RiskSizingError::NoStop)
        );
        assert!(risk_sized(dec!(-1), dec!(10), mnq).is_err());
        let es = crate::instrument::by_root("ES").unwrap();
        // 8 ticks × $12.50 = $100 a contract.
        assert_eq!(
            risk_sized(dec!(1000), dec!(2), es).unwrap(),
            (10, dec!(100))
        );
    }
}
