//! Building the orders of an intent from resolved settings (DOMAIN.md §5.5–§5.7): the entry
//! bracket (take-profit legs, fixed or trailing stop, break-even), and the protective orders
//! that replace the old ones after a DCA add.
//!
//! Distances are computed here, in points on tick, before the fill; absolute prices exist only
//! for the DCA replacement, which is computed from the broker's new average price (rounded to
//! tick before use). Nothing here talks to a broker: the executor sequences the calls.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::instrument::Instrument;
use crate::order::{
    BracketError, BracketOrder, BreakEven, OrderKind, OrderRequest, StopKind, StopSpec,
    TakeProfitLeg,
};
use crate::prices::{self, PriceError};
use crate::quantity::{QuantityError, take_profit_quantities};
use crate::settings::{Settings, StopType};
use crate::skip::SkipReason;
use crate::types::{Contracts, Direction, Price, Side};

/// Why the orders of an intent could not be built. Each says which setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum BracketBuildError {
    /// An entry of 0 contracts.
    #[error("the entry quantity is 0: nothing to place")]
    ZeroQuantity,
    /// A take-profit target's distance (`tp_targets[leg − 1]`, `tp_units`).
    #[error("take-profit target {leg} (tp_targets, tp_units): {source}")]
    TakeProfit {
        /// 1-based index of the target.
        leg: usize,
        /// What is wrong with its price or distance.
        source: PriceError,
    },
    /// The stop distance (`sl_amount`, `sl_units`).
    #[error("stop (sl_amount, sl_units): {source}")]
    Stop {
        /// What is wrong with its price or distance.
        source: PriceError,
    },
    /// The stop is enabled with an amount of 0: refusing beats placing no stop silently.
    #[error("sl_enabled is on but sl_amount is 0: set a stop distance or turn the stop off")]
    StopWithoutDistance,
    /// The trailing stop's trigger or step (`trail_trigger`, `trail_freq`).
    #[error("trailing stop (trail_trigger, trail_freq): {source}")]
    Trail {
        /// What is wrong with the distance.
        source: PriceError,
    },
    /// The break-even trigger or offset (`break_even_ticks`, `break_even_offset`).
    #[error("break-even (break_even_ticks, break_even_offset): {source}")]
    BreakEven {
        /// What is wrong with the distance.
        source: PriceError,
    },
    /// Break-even enabled with a trigger of 0 ticks.
    #[error("break_even_enabled is on but break_even_ticks is 0: set the trigger in ticks")]
    BreakEvenWithoutTrigger,
    /// The break-even stop would sit at or beyond the price that triggers it.
    #[error(
        "break_even_offset ({offset} points) must be smaller than break_even_ticks ({trigger} \
         points): the stop would be placed at or through the market"
    )]
    BreakEvenOffsetNotBelowTrigger {
        /// Offset in points.
        offset: Decimal,
        /// Trigger in points.
        trigger: Decimal,
    },
    /// The leg quantities could not be computed.
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    /// The built bracket breaks an invariant (a bug if it ever happens).
    #[error(transparent)]
    Invalid(#[from] BracketError),
}

/// The entry of an intent in the shape to send (DOMAIN.md §5.7): a bracket when the settings
/// place any take-profit, stop or break-even, otherwise a plain market order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum EntryOrder {
    /// Entry with protective orders, in one broker call where the broker supports it.
    Bracket(BracketOrder),
    /// Entry without protective orders (the strategy exits by signal).
    Market(OrderRequest),
}

impl EntryOrder {
    /// The entry's client order id.
    #[must_use]
    pub fn client_order_id(&self) -> &str {
        match self {
            EntryOrder::Bracket(b) => &b.client_order_id,
            EntryOrder::Market(o) => &o.client_order_id,
        }
    }

    /// The entry's side.
    #[must_use]
    pub fn side(&self) -> Side {
        match self {
            EntryOrder::Bracket(b) => b.side,
            EntryOrder::Market(o) => o.side,
        }
    }

    /// The entry's quantity.
    #[must_use]
    pub fn qty(&self) -> Contracts {
        match self {
            EntryOrder::Bracket(b) => b.qty,
            EntryOrder::Market(o) => o.qty,
        }
    }

    /// Whether the entry carries both a stop and a take-profit.
    #[must_use]
    pub fn has_stop_and_target(&self) -> bool {
        match self {
            EntryOrder::Bracket(b) => b.has_stop_and_target(),
            EntryOrder::Market(_) => false,
        }
    }
}

/// Refuses an entry that lacks a stop or a target on an account flagged `require_brackets`
/// (DOMAIN.md §7: prop-firm rules).
///
/// # Errors
/// [`SkipReason::ProtectionRequired`] naming what is missing.
pub fn check_required_protection(
    entry: &EntryOrder,
    require_brackets: bool,
) -> Result<(), SkipReason> {
    if !require_brackets || entry.has_stop_and_target() {
        return Ok(());
    }
    let (missing_stop, missing_target) = match entry {
        EntryOrder::Bracket(b) => (b.stop.is_none(), b.take_profits.is_empty()),
        EntryOrder::Market(_) => (true, true),
    };
    Err(SkipReason::ProtectionRequired {
        missing_stop,
        missing_target,
    })
}

fn stop_kind(settings: &Settings, instrument: &Instrument) -> Result<StopKind, BracketBuildError> {
    Ok(match settings.sl_type {
        StopType::Fixed => StopKind::Fixed,
        StopType::Trailing => StopKind::Trailing {
            trigger: prices::ticks_to_points(instrument, settings.trail_trigger)
                .map_err(|source| BracketBuildError::Trail { source })?,
            step: prices::ticks_to_points(instrument, settings.trail_freq)
                .map_err(|source| BracketBuildError::Trail { source })?,
        },
    })
}

/// The stop distance in points, `None` when the stop is off.
fn stop_spec(
    settings: &Settings,
    instrument: &Instrument,
    reference_price: Option<Decimal>,
) -> Result<Option<StopSpec>, BracketBuildError> {
    if !settings.sl_enabled {
        return Ok(None);
    }
    let distance = prices::distance_points(
        instrument,
        settings.sl_amount,
        settings.sl_units,
        reference_price,
    )
    .map_err(|source| BracketBuildError::Stop { source })?
    .ok_or(BracketBuildError::StopWithoutDistance)?;
    Ok(Some(StopSpec {
        distance,
        kind: stop_kind(settings, instrument)?,
    }))
}

/// The stop's distance in points from the entry the settings would place, `None` when the stop
/// is off (what a risk-sized entry divides its risk by).
///
/// # Errors
/// As [`build_bracket`] for the stop.
pub fn stop_distance(
    settings: &Settings,
    instrument: &Instrument,
    reference_price: Option<Decimal>,
) -> Result<Option<Decimal>, BracketBuildError> {
    Ok(stop_spec(settings, instrument, reference_price)?.map(|s| s.distance))
}

fn break_even(
    settings: &Settings,
    instrument: &Instrument,
) -> Result<Option<BreakEven>, BracketBuildError> {
    if !settings.break_even_enabled {
        return Ok(None);
    }
    let to_points = |ticks| {
        prices::ticks_to_points(instrument, ticks)
            .map_err(|source| BracketBuildError::BreakEven { source })
    };
    let trigger = to_points(settings.break_even_ticks)?;
    if trigger.is_zero() {
        return Err(BracketBuildError::BreakEvenWithoutTrigger);
    }
    let offset = to_points(settings.break_even_offset)?;
    if offset >= trigger {
        return Err(BracketBuildError::BreakEvenOffsetNotBelowTrigger { offset, trigger });
    }
    Ok(Some(BreakEven { trigger, offset }))
}

/// The take-profit legs of an entry of `qty` contracts: one per target with a non-zero value
/// and a non-zero quantity. A target of value 0 places no order; its contracts stay open for
/// the strategy's exit signal (or the stop).
fn take_profit_legs(
    settings: &Settings,
    instrument: &Instrument,
    qty: Contracts,
    reference_price: Option<Decimal>,
) -> Result<Vec<TakeProfitLeg>, BracketBuildError> {
    let trims: Vec<Decimal> = settings.tp_targets.iter().map(|t| t.trim).collect();
    let quantities = take_profit_quantities(qty, &trims, settings.trim_units, settings.multiplier)?;
    let mut legs = Vec::with_capacity(quantities.len());
    for (i, (target, leg_qty)) in settings.tp_targets.iter().zip(quantities).enumerate() {
        let distance =
            prices::distance_points(instrument, target.value, settings.tp_units, reference_price)
                .map_err(|source| BracketBuildError::TakeProfit { leg: i + 1, source })?;
        if let Some(distance) = distance
            && leg_qty > 0
        {
            legs.push(TakeProfitLeg {
                qty: leg_qty,
                distance,
            });
        }
    }
    Ok(legs)
}

/// The entry bracket for `qty` contracts in `direction` (DOMAIN.md §5.5–§5.7): a market entry,
/// take-profit legs (quantities per §5.6, distances per §5.5), the stop (fixed, or trailing
/// with trigger and step converted from `trail_trigger` / `trail_freq` ticks) and the
/// break-even move (from `break_even_ticks` / `break_even_offset` ticks).
///
/// `reference_price` is the price Percent distances are taken of (the alert's price, else the
/// last trade); it is only required when a distance is in Percent.
///
/// # Errors
/// A [`BracketBuildError`] naming the setting that cannot produce a valid order.
pub fn build_bracket(
    settings: &Settings,
    instrument: &Instrument,
    direction: Direction,
    qty: Contracts,
    reference_price: Option<Decimal>,
    client_order_id: impl Into<String>,
) -> Result<BracketOrder, BracketBuildError> {
    if qty == 0 {
        return Err(BracketBuildError::ZeroQuantity);
    }
    let bracket = BracketOrder {
        client_order_id: client_order_id.into(),
        side: direction.entry_side(),
        qty,
        entry: OrderKind::Market,
        take_profits: take_profit_legs(settings, instrument, qty, reference_price)?,
        stop: stop_spec(settings, instrument, reference_price)?,
        break_even: break_even(settings, instrument)?,
    };
    bracket.validate()?;
    Ok(bracket)
}

/// The entry in the shape to send: [`EntryOrder::Bracket`] when [`build_bracket`] yields any
/// take-profit, stop or break-even, else [`EntryOrder::Market`].
///
/// # Errors
/// As [`build_bracket`].
pub fn build_entry(
    settings: &Settings,
    instrument: &Instrument,
    direction: Direction,
    qty: Contracts,
    reference_price: Option<Decimal>,
    client_order_id: impl Into<String>,
) -> Result<EntryOrder, BracketBuildError> {
    let bracket = build_bracket(
        settings,
        instrument,
        direction,
        qty,
        reference_price,
        client_order_id,
    )?;
    if bracket.is_protected() || bracket.break_even.is_some() {
        Ok(EntryOrder::Bracket(bracket))
    } else {
        Ok(EntryOrder::Market(OrderRequest {
            client_order_id: bracket.client_order_id,
            side: bracket.side,
            qty: bracket.qty,
            kind: OrderKind::Market,
        }))
    }
}

/// A stop order at an absolute price (the replacement stop of a DCA position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopOrder {
    /// Client order id.
    pub client_order_id: String,
    /// Exit side of the position.
    pub side: Side,
    /// The whole position.
    pub qty: Contracts,
    /// Stop (trigger) price, on tick.
    pub stop: Price,
    /// Distance from the average in points; a trailing stop trails by it.
    pub distance: Decimal,
    /// Fixed, or trailing with trigger and step in points.
    pub kind: StopKind,
}

/// The protective orders placed for the whole position after a DCA add (DOMAIN.md §5.7),
/// once every working take-profit (and stop) of the contract has been cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcaProtection {
    /// One limit order for the whole position at the new average ± the first target's
    /// distance; `None` when there is no target or its value is 0.
    pub take_profit: Option<OrderRequest>,
    /// The stop for the whole position at the new average ∓ the stop distance, when
    /// `sl_enabled` (protective orders always match the position, §7).
    pub stop: Option<StopOrder>,
}

/// Suffix of the replacement take-profit's client order id.
pub const DCA_TAKE_PROFIT_SUFFIX: &str = "-tp";
/// Suffix of the replacement stop's client order id.
pub const DCA_STOP_SUFFIX: &str = "-sl";

/// The protective orders of a position after a DCA add: `position_qty` contracts at the
/// broker's new `average_price` (rounded to tick before use — a DCA average such as 21433.333…
/// is never used raw). The take-profit uses the first target's distance (Percent distances are
/// taken of the rounded average); later targets are not used while averaging, and break-even
/// is not re-armed. Client order ids are `client_order_id` + [`DCA_TAKE_PROFIT_SUFFIX`] /
/// [`DCA_STOP_SUFFIX`].
///
/// # Errors
/// [`BracketBuildError::ZeroQuantity`] for an empty position, and the price errors of an
/// unknown or non-positive average: the executor must then raise "position unprotected".
pub fn dca_protection(
    settings: &Settings,
    instrument: &Instrument,
    direction: Direction,
    position_qty: Contracts,
    average_price: Option<Decimal>,
    client_order_id: &str,
) -> Result<DcaProtection, BracketBuildError> {
    if position_qty == 0 {
        return Err(BracketBuildError::ZeroQuantity);
    }
    let take_profit = match settings.tp_targets.first() {
        None => None,
        Some(target) => {
            let tp_error = |source| BracketBuildError::TakeProfit { leg: 1, source };
            let average = prices::known_entry_price(instrument, average_price).map_err(tp_error)?;
            match prices::distance_points(
                instrument,
                target.value,
                settings.tp_units,
                Some(average.value()),
            )
            .map_err(tp_error)?
            {
                None => None,
                Some(distance) => {
                    let price = prices::take_profit_price(
                        instrument,
                        direction,
                        Some(average.value()),
                        distance,
                    )
                    .map_err(tp_error)?;
                    Some(OrderRequest {
                        client_order_id: format!("{client_order_id}{DCA_TAKE_PROFIT_SUFFIX}"),
                        side: direction.exit_side(),
                        qty: position_qty,
                        kind: OrderKind::Limit { price },
                    })
                }
            }
        }
    };
    let stop = if settings.sl_enabled {
        let sl_error = |source| BracketBuildError::Stop { source };
        let average = prices::known_entry_price(instrument, average_price).map_err(sl_error)?;
        let spec = stop_spec(settings, instrument, Some(average.value()))?
            .ok_or(BracketBuildError::StopWithoutDistance)?;
        let price = prices::stop_price(instrument, direction, Some(average.value()), spec.distance)
            .map_err(sl_error)?;
        Some(StopOrder {
            client_order_id: format!("{client_order_id}{DCA_STOP_SUFFIX}"),
            side: direction.exit_side(),
            qty: position_qty,
            stop: price,
            distance: spec.distance,
            kind: spec.kind,
        })
    } else {
        None
    };
    Ok(DcaProtection { take_profit, stop })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::by_root;
    use crate::settings::{PriceUnits, TpTarget, TrimUnits};
    use rust_decimal_macros::dec;

    fn mnq() -> &'static Instrument {
        by_root("MNQ").unwrap()
    }

    fn target(value: Decimal, trim: Decimal) -> TpTarget {
        TpTarget { value, trim }
    }

    fn protected() -> Settings {
        Settings {
            tp_targets: vec![target(dec!(20), dec!(1)), target(dec!(40), dec!(1))],
            sl_enabled: true,
            sl_amount: dec!(50),
            ..Settings::default()
        }
    }

    #[test]
    fn bracket_carries_legs_stop_and_side() {
        let b = build_bracket(&protected(), mnq(), Direction::Long, 3, None, "jt-1").unwrap();
        assert_eq!(b.side, Side::Buy);
        assert_eq!(b.qty, 3);
        assert_eq!(b.entry, OrderKind::Market);
        assert_eq!(
            b.take_profits,
            vec![
                TakeProfitLeg {
                    qty: 1,
                    distance: dec!(5)
                },
                TakeProfitLeg {
                    qty: 2,
                    distance: dec!(10)
                },
            ]
        );
        assert_eq!(
            b.stop,
            Some(StopSpec {
                distance: dec!(12.5),
                kind: StopKind::Fixed
            })
        );
        assert_eq!(b.break_even, None);
        let short = build_bracket(&protected(), mnq(), Direction::Short, 3, None, "jt-2").unwrap();
        assert_eq!(short.side, Side::Sell);
    }

    #[test]
    fn multiplier_5_with_three_one_contract_legs_gives_5_5_5() {
        let s = Settings {
            multiplier: dec!(5),
            tp_targets: vec![
                target(dec!(10), dec!(1)),
                target(dec!(20), dec!(1)),
                target(dec!(30), dec!(1)),
            ],
            ..Settings::default()
        };
        let b = build_bracket(&s, mnq(), Direction::Long, 15, None, "jt").unwrap();
        let qtys: Vec<_> = b.take_profits.iter().map(|l| l.qty).collect();
        assert_eq!(qtys, vec![5, 5, 5]);
    }

    #[test]
    fn tp_value_zero_places_no_take_profit() {
        // Regression: {"value": 0, "trim": 100} still placed limit orders at the entry price.
        let s = Settings {
            tp_targets: vec![target(dec!(0), dec!(100))],
            trim_units: TrimUnits::Percent,
            ..Settings::default()
        };
        let b = build_bracket(&s, mnq(), Direction::Long, 2, None, "jt").unwrap();
        assert!(b.take_profits.is_empty());
        let e = build_entry(&s, mnq(), Direction::Long, 2, None, "jt").unwrap();
        assert!(matches!(e, EntryOrder::Market(OrderRequest { qty: 2, .. })));
        let dca = dca_protection(&s, mnq(), Direction::Long, 2, Some(dec!(21000)), "jt").unwrap();
        assert_eq!(dca.take_profit, None);
    }

    #[test]
    fn a_zero_value_leg_among_others_leaves_its_contracts_to_the_strategy() {
        let s = Settings {
            tp_targets: vec![target(dec!(20), dec!(1)), target(dec!(0), dec!(1))],
            ..Settings::default()
        };
        let b = build_bracket(&s, mnq(), Direction::Long, 2, None, "jt").unwrap();
        assert_eq!(
            b.take_profits,
            vec![TakeProfitLeg {
                qty: 1,
                distance: dec!(5)
            }]
        );
        assert!(b.validate().is_ok());
    }

    #[test]
    fn trailing_stop_takes_trigger_and_step_from_ticks() {
        let s = Settings {
            sl_enabled: true,
            sl_amount: dec!(50),
            sl_type: StopType::Trailing,
            trail_trigger: dec!(20),
            trail_freq: dec!(4),
            ..Settings::default()
        };
        let b = build_bracket(&s, by_root("GC").unwrap(), Direction::Long, 1, None, "jt").unwrap();
        assert_eq!(
            b.stop,
            Some(StopSpec {
                distance: dec!(5),
                kind: StopKind::Trailing {
                    trigger: dec!(2),
                    step: dec!(0.4)
                }
            })
        );
    }

    #[test]
    fn break_even_converts_ticks_and_refuses_an_offset_at_the_trigger() {
        let mut s = Settings {
            sl_enabled: true,
            sl_amount: dec!(40),
            break_even_enabled: true,
            break_even_ticks: dec!(16),
            break_even_offset: dec!(2),
            ..Settings::default()
        };
        let b = build_bracket(&s, mnq(), Direction::Short, 1, None, "jt").unwrap();
        assert_eq!(
            b.break_even,
            Some(BreakEven {
                trigger: dec!(4),
                offset: dec!(0.5)
            })
        );
        s.break_even_offset = dec!(16);
        assert!(matches!(
            build_bracket(&s, mnq(), Direction::Short, 1, None, "jt"),
            Err(BracketBuildError::BreakEvenOffsetNotBelowTrigger { .. })
        ));
        s.break_even_ticks = dec!(0);
        assert_eq!(
            build_bracket(&s, mnq(), Direction::Short, 1, None, "jt"),
            Err(BracketBuildError::BreakEvenWithoutTrigger)
        );
    }

    #[test]
    fn enabled_stop_without_distance_is_refused_not_dropped() {
        let s = Settings {
            sl_enabled: true,
            sl_amount: dec!(0),
            ..Settings::default()
        };
        assert_eq!(
            build_bracket(&s, mnq(), Direction::Long, 1, None, "jt"),
            Err(BracketBuildError::StopWithoutDistance)
        );
    }

    #[test]
    fn percent_units_use_the_reference_price() {
        let s = Settings {
            tp_targets: vec![target(dec!(0.5), dec!(0))],
            tp_units: PriceUnits::Percent,
            sl_enabled: true,
            sl_amount: dec!(0.25),
            sl_units: PriceUnits::Percent,
            ..Settings::default()
        };
        let b = build_bracket(&s, mnq(), Direction::Long, 1, Some(dec!(21000)), "jt").unwrap();
        assert_eq!(b.take_profits[0].distance, dec!(105));
        assert_eq!(b.stop.unwrap().distance, dec!(52.5));
        assert!(matches!(
            build_bracket(&s, mnq(), Direction::Long, 1, None, "jt"),
            Err(BracketBuildError::TakeProfit {
                leg: 1,
                source: PriceError::MissingReferencePrice
            })
        ));
    }

    #[test]
    fn entry_without_protection_is_a_plain_market_order() {
        let e = build_entry(
            &Settings::default(),
            mnq(),
            Direction::Short,
            2,
            None,
            "jt-9",
        )
        .unwrap();
        assert_eq!(
            e,
            EntryOrder::Market(OrderRequest {
                client_order_id: "jt-9".into(),
                side: Side::Sell,
                qty: 2,
                kind: OrderKind::Market
            })
        );
        assert_eq!(
            build_entry(&Settings::default(), mnq(), Direction::Short, 0, None, "x"),
            Err(BracketBuildError::ZeroQuantity)
        );
    }

    #[test]
    fn entry_orders_round_trip_through_json() {
        for e in [
            build_entry(&protected(), mnq(), Direction::Long, 3, None, "a").unwrap(),
            build_entry(&Settings::default(), mnq(), Direction::Short, 1, None, "b").unwrap(),
        ] {
            let json = serde_json::to_value(&e).unwrap();
            assert!(json.get("shape").is_some(), "{json}");
            assert_eq!(serde_json::from_value::<EntryOrder>(json).unwrap(), e);
        }
        let p = dca_protection(
            &protected(),
            mnq(),
            Direction::Long,
            2,
            Some(dec!(21000)),
            "c",
        )
        .unwrap();
        let back: DcaProtection =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn require_brackets_refuses_an_entry_without_stop_or_target() {
        let market =
            build_entry(&Settings::default(), mnq(), Direction::Long, 1, None, "a").unwrap();
        assert_eq!(
            check_required_protection(&market, true),
            Err(SkipReason::ProtectionRequired {
                missing_stop: true,
                missing_target: true
            })
        );
        assert!(check_required_protection(&market, false).is_ok());
        let full = build_entry(&protected(), mnq(), Direction::Long, 1, None, "b").unwrap();
        assert!(check_required_protection(&full, true).is_ok());
        let tp_only = Settings {
            sl_enabled: false,
            ..protected()
        };
        let e = build_entry(&tp_only, mnq(), Direction::Long, 1, None, "c").unwrap();
        assert_eq!(
            check_required_protection(&e, true),
            Err(SkipReason::ProtectionRequired {
                missing_stop: true,
                missing_target: false
            })
        );
    }

    #[test]
    fn dca_average_is_rounded_to_tick_before_use() {
        // 2 @ 21400 + 1 @ 21500 = 3 @ 21433.333…; the TP hangs from 21433.25, not the raw value.
        let avg = (dec!(21400) * dec!(2) + dec!(21500)) / dec!(3);
        let s = Settings {
            tp_targets: vec![target(dec!(20), dec!(1)), target(dec!(80), dec!(1))],
            sl_enabled: true,
            sl_amount: dec!(40),
            ..Settings::default()
        };
        let p = dca_protection(&s, mnq(), Direction::Long, 3, Some(avg), "jt-7").unwrap();
        assert_eq!(
            p.take_profit,
            Some(OrderRequest {
                client_order_id: "jt-7-tp".into(),
                side: Side::Sell,
                qty: 3,
                kind: OrderKind::Limit {
                    price: Price::on_tick(mnq(), dec!(21438.25))
                },
            })
        );
        let stop = p.stop.unwrap();
        assert_eq!(stop.stop.value(), dec!(21423.25));
        assert_eq!(
            (stop.qty, stop.side, stop.client_order_id.as_str()),
            (3, Side::Sell, "jt-7-sl")
        );
    }

    #[test]
    fn dca_protection_is_refused_without_a_known_average() {
        let err = dca_protection(&protected(), mnq(), Direction::Short, 2, Some(dec!(0)), "x")
            .unwrap_err();
        assert_eq!(
            err,
            BracketBuildError::TakeProfit {
                leg: 1,
                source: PriceError::UnknownEntryPrice
            }
        );
        let sl_only = Settings {
            tp_targets: vec![],
            ..protected()
        };
        assert_eq!(
            dca_protection(&sl_only, mnq(), Direction::Short, 2, None, "x"),
            Err(BracketBuildError::Stop {
                source: PriceError::UnknownEntryPrice
            })
        );
    }

    #[test]
    fn dca_short_targets_sit_below_and_stops_above() {
        let p = dca_protection(
            &protected(),
            mnq(),
            Direction::Short,
            2,
            Some(dec!(21000.1)),
            "x",
        )
        .unwrap();
        let Some(OrderRequest {
            kind: OrderKind::Limit { price },
            side,
            ..
        }) = p.take_profit
        else {
            panic!("a limit take-profit");
        };
        assert_eq!((price.value(), side), (dec!(20995), Side::Buy));
        assert_eq!(p.stop.unwrap().stop.value(), dec!(21012.5));
    }
}
