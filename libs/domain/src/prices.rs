//! Take-profit and stop distances and prices (DOMAIN.md §5.5).
//!
//! A distance comes from a setting's value and units — Ticks: value × tick size; Points: the
//! value; Percent: reference price × value / 100 — and is rounded to the instrument's tick
//! (half away from zero; a non-zero distance is at least one tick, so a target is never placed
//! at the entry price). A value of 0 means "no order".
//!
//! Absolute prices are computed from a *known, positive* entry price that is first rounded to
//! the tick (DCA averages such as 21433.333… are fractional), on the correct side — long: TP
//! above, SL below; short: the reverse — and are [`Price`]s, so on tick by construction. An
//! unknown (missing or 0) or non-positive entry price is a typed error, never a stop at
//! `0 − distance`: the replaced platform sent exactly that to prop-firm accounts and left them
//! unprotected.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::instrument::{Instrument, checked_round_to_increment};
use crate::settings::PriceUnits;
use crate::types::{Direction, Price};

/// Which protective order a price is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectiveLeg {
    /// A take-profit (limit) order.
    TakeProfit,
    /// A stop order.
    Stop,
}

impl std::fmt::Display for ProtectiveLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProtectiveLeg::TakeProfit => "take-profit",
            ProtectiveLeg::Stop => "stop",
        })
    }
}

/// A distance or price that cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PriceError {
    /// The entry price is missing or 0 (how brokers report a fill they have not priced yet).
    #[error(
        "the entry price is unknown (missing or 0): no stop or target is computed from it; read \
         the fill price from the broker again"
    )]
    UnknownEntryPrice,
    /// The entry price is negative.
    #[error("the entry price {price} is not positive: no stop or target is computed from it")]
    NonPositiveEntryPrice {
        /// The price given.
        price: Decimal,
    },
    /// A Percent distance without a reference price.
    #[error(
        "a Percent distance needs a reference price and none is known: send `price` in the \
         alert, or use Ticks or Points"
    )]
    MissingReferencePrice,
    /// A Percent distance with a reference price ≤ 0.
    #[error("the reference price {price} for a Percent distance is not positive")]
    NonPositiveReferencePrice {
        /// The price given.
        price: Decimal,
    },
    /// A negative distance value, or a zero distance where an order is being priced.
    #[error("a take-profit or stop distance must be positive, got {distance}")]
    InvalidDistance {
        /// The distance given.
        distance: Decimal,
    },
    /// The computed price is at or below zero (the distance is larger than the price).
    #[error(
        "the {leg} price would be {price}, at or below zero: the distance is larger than the \
         entry price; reduce it"
    )]
    NotPositive {
        /// Which order.
        leg: ProtectiveLeg,
        /// The computed (rounded) price.
        price: Decimal,
    },
    /// A figure too large for exact decimal arithmetic.
    #[error("price arithmetic overflowed: a setting or price is far outside any real market")]
    OutOfRange,
}

fn on_tick(instrument: &Instrument, value: Decimal) -> Result<Decimal, PriceError> {
    checked_round_to_increment(value, instrument.tick_size).ok_or(PriceError::OutOfRange)
}

/// The distance in points, on tick, for `value` in `units` (see the module docs).
///
/// `reference` is the price Percent distances are taken of: the entry price once known, or the
/// expected entry (the alert's price, else the last trade) when a bracket is built before the
/// fill. It is ignored for Ticks and Points.
///
/// Returns `Ok(None)` for a value of 0 (no order); otherwise a distance of at least one tick.
///
/// # Errors
/// [`PriceError::InvalidDistance`] for a negative value; [`PriceError::MissingReferencePrice`] /
/// [`PriceError::NonPositiveReferencePrice`] for Percent without a usable reference;
/// [`PriceError::OutOfRange`] on overflow.
pub fn distance_points(
    instrument: &Instrument,
    value: Decimal,
    units: PriceUnits,
    reference: Option<Decimal>,
) -> Result<Option<Decimal>, PriceError> {
    if value < Decimal::ZERO {
        return Err(PriceError::InvalidDistance { distance: value });
    }
    if value.is_zero() {
        return Ok(None);
    }
    let raw = match units {
        PriceUnits::Ticks => value
            .checked_mul(instrument.tick_size)
            .ok_or(PriceError::OutOfRange)?,
        PriceUnits::Points => value,
        PriceUnits::Percent => {
            let reference = reference.ok_or(PriceError::MissingReferencePrice)?;
            if reference <= Decimal::ZERO {
                return Err(PriceError::NonPositiveReferencePrice { price: reference });
            }
            reference
                .checked_mul(value)
                .and_then(|v| v.checked_div(Decimal::ONE_HUNDRED))
                .ok_or(PriceError::OutOfRange)?
        }
    };
    let rounded = on_tick(instrument, raw)?;
    Ok(Some(rounded.max(instrument.tick_size)))
}

/// A distance given in ticks (trail trigger and step, break-even trigger and offset) in points,
/// on tick; 0 stays 0.
///
/// # Errors
/// [`PriceError::InvalidDistance`] for a negative value, [`PriceError::OutOfRange`] on
/// overflow.
pub fn ticks_to_points(instrument: &Instrument, ticks: Decimal) -> Result<Decimal, PriceError> {
    Ok(distance_points(instrument, ticks, PriceUnits::Ticks, None)?.unwrap_or(Decimal::ZERO))
}

/// A known entry price, rounded to tick: refuses a missing, 0 or negative price.
///
/// # Errors
/// [`PriceError::UnknownEntryPrice`] for `None` or 0, [`PriceError::NonPositiveEntryPrice`]
/// for a negative price, [`PriceError::OutOfRange`] on overflow.
pub fn known_entry_price(
    instrument: &Instrument,
    entry: Option<Decimal>,
) -> Result<Price, PriceError> {
    let entry = entry.ok_or(PriceError::UnknownEntryPrice)?;
    if entry < Decimal::ZERO {
        return Err(PriceError::NonPositiveEntryPrice { price: entry });
    }
    let rounded = on_tick(instrument, entry)?;
    if rounded.is_zero() {
        // 0 is how brokers report a fill they have not priced yet (and a positive price
        // below half a tick is no price a stop can hang from either).
        return Err(PriceError::UnknownEntryPrice);
    }
    Ok(Price::on_tick(instrument, rounded))
}

fn protective_price(
    instrument: &Instrument,
    direction: Direction,
    entry: Option<Decimal>,
    distance: Decimal,
    leg: ProtectiveLeg,
) -> Result<Price, PriceError> {
    let entry = known_entry_price(instrument, entry)?;
    if distance <= Decimal::ZERO {
        return Err(PriceError::InvalidDistance { distance });
    }
    let distance = on_tick(instrument, distance)?.max(instrument.tick_size);
    // Profit lies above the entry for a long and below it for a short.
    let toward_profit = match leg {
        ProtectiveLeg::TakeProfit => direction.sign(),
        ProtectiveLeg::Stop => -direction.sign(),
    };
    let price = distance
        .checked_mul(toward_profit)
        .and_then(|d| entry.value().checked_add(d))
        .ok_or(PriceError::OutOfRange)?;
    let price = on_tick(instrument, price)?;
    if price <= Decimal::ZERO {
        return Err(PriceError::NotPositive { leg, price });
    }
    Ok(Price::on_tick(instrument, price))
}

/// The take-profit price `distance` points from the (tick-rounded) entry: above for a long,
/// below for a short.
///
/// # Errors
/// An unknown or non-positive entry, a non-positive distance, or a price at or below 0.
pub fn take_profit_price(
    instrument: &Instrument,
    direction: Direction,
    entry: Option<Decimal>,
    distance: Decimal,
) -> Result<Price, PriceError> {
    protective_price(
        instrument,
        direction,
        entry,
        distance,
        ProtectiveLeg::TakeProfit,
    )
}

/// The stop price `distance` points from the (tick-rounded) entry: below for a long, above for
/// a short. Never computed from an unknown entry.
///
/// # Errors
/// An unknown or non-positive entry, a non-positive distance, or a price at or below 0.
pub fn stop_price(
    instrument: &Instrument,
    direction: Direction,
    entry: Option<Decimal>,
    distance: Decimal,
) -> Result<Price, PriceError> {
    protective_price(instrument, direction, entry, distance, ProtectiveLeg::Stop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::by_root;
    use proptest::prelude::*;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    fn inst(root: &str) -> &'static Instrument {
        by_root(root).unwrap()
    }

    #[rstest]
    #[case("MNQ", dec!(20), PriceUnits::Ticks, None, dec!(5))]
    #[case("GC", dec!(20), PriceUnits::Ticks, None, dec!(2))]
    #[case("CL", dec!(15), PriceUnits::Ticks, None, dec!(0.15))]
    #[case("MNQ", dec!(12.5), PriceUnits::Points, None, dec!(12.5))]
    #[case("MNQ", dec!(12.3), PriceUnits::Points, None, dec!(12.25))] // rounded to tick
    #[case("MNQ", dec!(0.5), PriceUnits::Percent, Some(dec!(21000)), dec!(105))]
    #[case("MNQ", dec!(0.1), PriceUnits::Percent, Some(dec!(21433.3)), dec!(21.5))] // 21.4333 → 21.5
    #[case("GC", dec!(1), PriceUnits::Percent, Some(dec!(2411)), dec!(24.1))] // 24.11 → 24.1
    fn distance_from_value_and_units(
        #[case] root: &str,
        #[case] value: Decimal,
        #[case] units: PriceUnits,
        #[case] reference: Option<Decimal>,
        #[case] expected: Decimal,
    ) {
        let d = distance_points(inst(root), value, units, reference)
            .unwrap()
            .unwrap();
        assert_eq!(d, expected);
        assert!(inst(root).is_on_tick(d));
    }

    #[test]
    fn value_zero_means_no_order() {
        for units in [PriceUnits::Ticks, PriceUnits::Points, PriceUnits::Percent] {
            assert_eq!(
                distance_points(inst("MNQ"), dec!(0), units, None).unwrap(),
                None
            );
        }
    }

    #[test]
    fn a_nonzero_distance_is_at_least_one_tick() {
        assert_eq!(
            distance_points(inst("MNQ"), dec!(0.1), PriceUnits::Points, None).unwrap(),
            Some(dec!(0.25))
        );
    }

    #[test]
    fn percent_needs_a_positive_reference() {
        assert_eq!(
            distance_points(inst("MNQ"), dec!(1), PriceUnits::Percent, None),
            Err(PriceError::MissingReferencePrice)
        );
        assert!(matches!(
            distance_points(inst("MNQ"), dec!(1), PriceUnits::Percent, Some(dec!(0))),
            Err(PriceError::NonPositiveReferencePrice { .. })
        ));
    }

    #[test]
    fn negative_distance_is_refused() {
        assert!(matches!(
            distance_points(inst("MNQ"), dec!(-4), PriceUnits::Ticks, None),
            Err(PriceError::InvalidDistance { .. })
        ));
    }

    #[rstest]
    #[case(Direction::Long, dec!(21005), dec!(20990))]
    #[case(Direction::Short, dec!(20995), dec!(21010))]
    fn targets_and_stops_on_the_correct_side(
        #[case] direction: Direction,
        #[case] tp: Decimal,
        #[case] sl: Decimal,
    ) {
        let i = inst("MNQ");
        let entry = Some(dec!(21000));
        assert_eq!(
            take_profit_price(i, direction, entry, dec!(5))
                .unwrap()
                .value(),
            tp
        );
        assert_eq!(
            stop_price(i, direction, entry, dec!(10)).unwrap().value(),
            sl
        );
    }

    #[test]
    fn gc_rounds_to_0_10_and_cl_to_0_01() {
        let gc = inst("GC");
        let tp = take_profit_price(gc, Direction::Long, Some(dec!(2411.37)), dec!(2.03)).unwrap();
        // entry 2411.37 → 2411.4; distance 2.03 → 2.0
        assert_eq!(tp.value(), dec!(2413.4));
        let cl = inst("CL");
        let sl = stop_price(cl, Direction::Short, Some(dec!(78.1234)), dec!(0.157)).unwrap();
        // entry 78.1234 → 78.12; distance 0.157 → 0.16
        assert_eq!(sl.value(), dec!(78.28));
    }

    #[rstest]
    #[case(None)]
    #[case(Some(dec!(0)))]
    fn stop_from_unknown_entry_is_refused(#[case] entry: Option<Decimal>) {
        // Regression: an SL from entry 0 was sent as −5.0 / +5.0 and rejected by the broker.
        for d in [Direction::Long, Direction::Short] {
            assert_eq!(
                stop_price(inst("MNQ"), d, entry, dec!(10)),
                Err(PriceError::UnknownEntryPrice)
            );
            assert_eq!(
                take_profit_price(inst("MNQ"), d, entry, dec!(10)),
                Err(PriceError::UnknownEntryPrice)
            );
        }
    }

    #[test]
    fn stop_from_negative_entry_is_refused() {
        assert!(matches!(
            stop_price(inst("MNQ"), Direction::Long, Some(dec!(-3)), dec!(1)),
            Err(PriceError::NonPositiveEntryPrice { .. })
        ));
    }

    #[test]
    fn a_stop_at_or_below_zero_is_refused() {
        assert_eq!(
            stop_price(inst("CL"), Direction::Long, Some(dec!(1.5)), dec!(2)),
            Err(PriceError::NotPositive {
                leg: ProtectiveLeg::Stop,
                price: dec!(-0.5)
            })
        );
        assert!(
            take_profit_price(inst("CL"), Direction::Short, Some(dec!(1.5)), dec!(1.5)).is_err()
        );
    }

    #[test]
    fn dca_average_is_rounded_to_tick_before_use() {
        // Regression: 2 @ 21400 + 1 @ 21500 averages 21433.333…; a TP built on it was off tick
        // and rejected, leaving the position without a target.
        let avg = (dec!(21400) * dec!(2) + dec!(21500)) / dec!(3);
        let tp = take_profit_price(inst("MNQ"), Direction::Long, Some(avg), dec!(5)).unwrap();
        assert_eq!(tp.value(), dec!(21438.25)); // 21433.25 + 5
        assert!(inst("MNQ").is_on_tick(tp.value()));
    }

    #[test]
    fn absurd_figures_are_errors_not_panics() {
        let i = inst("6J");
        assert_eq!(
            distance_points(i, Decimal::MAX, PriceUnits::Ticks, None),
            Err(PriceError::OutOfRange)
        );
        assert!(stop_price(i, Direction::Short, Some(Decimal::MAX), dec!(1)).is_err());
        assert!(distance_points(i, dec!(50), PriceUnits::Percent, Some(Decimal::MAX)).is_err());
    }

    fn root_strategy() -> impl Strategy<Value = &'static Instrument> {
        prop::sample::select(crate::instrument::instruments().to_vec())
            .prop_map(|i| by_root(i.root).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn tick_rounding_is_idempotent_and_on_tick(
            instrument in root_strategy(),
            raw in (-10_000_000_000i64..10_000_000_000i64, 0u32..8)
                .prop_map(|(m, s)| Decimal::new(m, s)),
        ) {
            let once = instrument.round_to_tick(raw);
            prop_assert!(instrument.is_on_tick(once));
            prop_assert_eq!(instrument.round_to_tick(once), once);
            // Nearest tick: never more than half a tick away.
            prop_assert!((once - raw).abs() * Decimal::TWO <= instrument.tick_size);
        }

        #[test]
        fn protective_prices_are_on_tick_and_on_the_right_side(
            instrument in root_strategy(),
            entry in (1i64..100_000_000, 0u32..6).prop_map(|(m, s)| Decimal::new(m, s)),
            ticks in 1u32..500,
            long in any::<bool>(),
        ) {
            let direction = if long { Direction::Long } else { Direction::Short };
            let distance = instrument.ticks_to_points(Decimal::from(ticks));
            let base = instrument.round_to_tick(entry);
            if let Ok(tp) = take_profit_price(instrument, direction, Some(entry), distance) {
                prop_assert!(instrument.is_on_tick(tp.value()));
                prop_assert_eq!((tp.value() - base) * direction.sign(), distance);
            }
            if let Ok(sl) = stop_price(instrument, direction, Some(entry), distance) {
                prop_assert!(instrument.is_on_tick(sl.value()));
                prop_assert!(sl.value() > Decimal::ZERO);
                prop_assert_eq!((base - sl.value()) * direction.sign(), distance);
            }
        }
    }
}
