//! Per-alert risk instructions (the pure rules; the executor applies them to each trader's
//! settings for one signal, and a manual or copied trade's own levels go through the same
//! rules): an alert's own take-profit and stop (`tp`/`sl` and every other
//! dialect's, DOMAIN.md §2), trailing, break-even and `same_direction_ignore` replace the
//! trader's settings for that one signal.
//!
//! A distance keeps its units (or the trader's); an absolute price becomes a distance in points
//! from the alert's price, and must lie on the profitable side (take-profit) or the protective
//! side (stop) of it; dollars per contract become whole ticks of the traded instrument (`amount
//! ÷ tick value`, rounded down, at least one). An override that cannot be honoured refuses the
//! intent with the reason: a protective level the trader asked for is never silently dropped
//! or moved.

use rust_decimal::Decimal;

use crate::alert::{AlertRisk, ExitLevel, StopOverride};
use crate::instrument::Instrument;
use crate::settings::{PriceUnits, Settings, StopType, TpTarget};
use crate::types::Direction;

/// Why an alert's exit override cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// An absolute level needs the alert's price to become a distance.
    #[error("the alert's {which} is a price level, but the alert has no price to measure it from")]
    NoReferencePrice {
        /// `take-profit` or `stop`.
        which: &'static str,
    },
    /// The level is on the wrong side of the entry.
    #[error(
        "the alert's {which} at {level} is on the wrong side of the {direction} entry at {reference}"
    )]
    WrongSide {
        /// `take-profit` or `stop`.
        which: &'static str,
        /// The level.
        level: Decimal,
        /// The alert's price.
        reference: Decimal,
        /// The entry direction.
        direction: Direction,
    },
    /// A distance of zero or less.
    #[error("the alert's {which} distance must be greater than 0")]
    NotPositive {
        /// `take-profit` or `stop`.
        which: &'static str,
    },
    /// A level in dollars needs the traded instrument's tick value.
    #[error("the alert's {which} is in dollars, but the traded instrument is not known")]
    DollarsWithoutInstrument {
        /// `take-profit` or `stop`.
        which: &'static str,
    },
    /// A trailing instruction without any stop distance to trail by.
    #[error(
        "the alert asks for a trailing stop, but no stop distance is set: add sl (or dollar_sl, \
         percentage_sl, trail_stop) to the alert, or enable the trader's stop"
    )]
    TrailWithoutStop,
    /// A break-even offset without a trigger.
    #[error(
        "the alert gives breakeven_offset but no break-even trigger, and the trader has none: \
         add breakeven (ticks of profit that move the stop)"
    )]
    BreakEvenWithoutTrigger,
}

/// The trader's settings with the alert's exits applied for an entry in `direction`.
///
/// # Errors
/// [`OverrideError`] when an override cannot be honoured.
pub fn apply(
    settings: &Settings,
    direction: Direction,
    reference: Option<Decimal>,
    take_profit: Option<&ExitLevel>,
    stop: Option<&StopOverride>,
) -> Result<Settings, OverrideError> {
    apply_all(
        settings,
        direction,
        None,
        reference,
        take_profit,
        stop,
        &AlertRisk::default(),
    )
}

/// [`apply`] with the instrument (dollar levels become its ticks) and the alert's trailing,
/// break-even and `same_direction_ignore` instructions.
///
/// # Errors
/// [`OverrideError`] when an override cannot be honoured.
pub fn apply_all(
    settings: &Settings,
    direction: Direction,
    instrument: Option<&Instrument>,
    reference: Option<Decimal>,
    take_profit: Option<&ExitLevel>,
    stop: Option<&StopOverride>,
    risk: &AlertRisk,
) -> Result<Settings, OverrideError> {
    let mut s = settings.clone();
    let dollars = |level: &ExitLevel| match (*level, instrument) {
        (ExitLevel::Dollars { amount }, Some(i)) => ExitLevel::Distance {
            value: dollar_ticks(amount, i),
            units: Some(PriceUnits::Ticks),
        },
        _ => *level,
    };
    let take_profit = take_profit.map(dollars);
    let stop = stop.map(|s| StopOverride {
        level: dollars(&s.level),
        stop_type: s.stop_type,
    });
    let (take_profit, stop) = (take_profit.as_ref(), stop.as_ref());
    if let Some(level) = take_profit {
        let (value, units) = distance("take-profit", level, direction, reference, true)?;
        s.tp_targets = vec![TpTarget {
            value,
            trim: Decimal::ZERO,
        }];
        s.tp_units = units.unwrap_or(settings.tp_units);
    }
    if let Some(stop) = stop {
        let (value, units) = distance("stop", &stop.level, direction, reference, false)?;
        s.sl_enabled = true;
        s.sl_amount = value;
        s.sl_units = units.unwrap_or(settings.sl_units);
        if let Some(kind) = stop.stop_type {
            s.sl_type = kind;
        }
    }
    if let Some(trail) = &risk.trail {
        if !s.sl_enabled || s.sl_amount.is_zero() {
            return Err(OverrideError::TrailWithoutStop);
        }
        s.sl_type = StopType::Trailing;
        if let Some(trigger) = trail.trigger_ticks {
            s.trail_trigger = trigger;
        }
        if let Some(step) = trail.step_ticks {
            s.trail_freq = step;
        }
    }
    if let Some(be) = &risk.break_even {
        match be.trigger_ticks {
            Some(trigger) => s.break_even_ticks = trigger,
            None if !s.break_even_enabled || s.break_even_ticks.is_zero() => {
                return Err(OverrideError::BreakEvenWithoutTrigger);
            }
            None => {}
        }
        s.break_even_enabled = true;
        if let Some(offset) = be.offset_ticks {
            s.break_even_offset = offset;
        }
    }
    if let Some(ignore) = risk.same_direction_ignore {
        s.same_direction_ignore = ignore;
    }
    Ok(s)
}

/// Dollars per contract as whole ticks of `instrument`: `amount ÷ tick value`, rounded down
/// (never more at stake than the dollars given), at least one tick.
#[must_use]
pub fn dollar_ticks(amount: Decimal, instrument: &Instrument) -> Decimal {
    amount
        .checked_div(instrument.tick_value)
        .unwrap_or(Decimal::ZERO)
        .floor()
        .max(Decimal::ONE)
}

/// The override as a positive distance and its units (`None` = the trader's units).
fn distance(
    which: &'static str,
    level: &ExitLevel,
    direction: Direction,
    reference: Option<Decimal>,
    profit_side: bool,
) -> Result<(Decimal, Option<PriceUnits>), OverrideError> {
    match *level {
        ExitLevel::Distance { value, units } => {
            if value <= Decimal::ZERO {
                return Err(OverrideError::NotPositive { which });
            }
            Ok((value, units))
        }
        ExitLevel::Price { price } => {
            let reference = reference.ok_or(OverrideError::NoReferencePrice { which })?;
            // Signed profit of the level for the position: positive above a long's entry.
            let signed = (price - reference) * direction.sign();
            let ok = if profit_side {
                signed > Decimal::ZERO
            } else {
                signed < Decimal::ZERO
            };
            if !ok {
                return Err(OverrideError::WrongSide {
                    which,
                    level: price,
                    reference,
                    direction,
                });
            }
            Ok((signed.abs(), Some(PriceUnits::Points)))
        }
        // Converted to ticks by `apply_all` when the instrument is known.
        ExitLevel::Dollars { .. } => Err(OverrideError::DollarsWithoutInstrument { which }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::StopType;
    use rust_decimal_macros::dec;

    #[test]
    fn no_override_leaves_the_settings_alone() {
        let s = Settings::default();
        assert_eq!(apply(&s, Direction::Long, None, None, None).unwrap(), s);
    }

    #[test]
    fn a_distance_override_replaces_every_target_with_one_whole_position_target() {
        let s = Settings {
            tp_targets: vec![
                TpTarget {
                    value: dec!(10),
                    trim: dec!(1),
                },
                TpTarget {
                    value: dec!(20),
                    trim: dec!(1),
                },
            ],
            ..Settings::default()
        };
        let tp = ExitLevel::Distance {
            value: dec!(12),
            units: None,
        };
        let r = apply(&s, Direction::Long, None, Some(&tp), None).unwrap();
        assert_eq!(
            r.tp_targets,
            vec![TpTarget {
                value: dec!(12),
                trim: dec!(0)
            }]
        );
        assert_eq!(r.tp_units, PriceUnits::Ticks, "the trader's units");
    }

    #[test]
    fn a_price_level_becomes_points_from_the_alert_price_on_the_right_side() {
        let tp = ExitLevel::Price {
            price: dec!(21450.25),
        };
        let sl = StopOverride {
            level: ExitLevel::Price { price: dec!(21420) },
            stop_type: Some(StopType::Trailing),
        };
        let r = apply(
            &Settings::default(),
            Direction::Long,
            Some(dec!(21430)),
            Some(&tp),
            Some(&sl),
        )
        .unwrap();
        assert_eq!(r.tp_targets[0].value, dec!(20.25));
        assert_eq!(r.tp_units, PriceUnits::Points);
        assert!(r.sl_enabled);
        assert_eq!(
            (r.sl_amount, r.sl_units, r.sl_type),
            (dec!(10), PriceUnits::Points, StopType::Trailing)
        );
        // Short: the take-profit is below.
        let short_tp = ExitLevel::Price { price: dec!(21400) };
        let r = apply(
            &Settings::default(),
            Direction::Short,
            Some(dec!(21430)),
            Some(&short_tp),
            None,
        )
        .unwrap();
        assert_eq!(r.tp_targets[0].value, dec!(30));
    }

    #[test]
    fn a_level_on_the_wrong_side_is_refused_not_moved() {
        let tp = ExitLevel::Price { price: dec!(21400) };
        let err = apply(
            &Settings::default(),
            Direction::Long,
            Some(dec!(21430)),
            Some(&tp),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                OverrideError::WrongSide {
                    which: "take-profit",
                    ..
                }
            ),
            "{err}"
        );
        let sl = StopOverride {
            level: ExitLevel::Price { price: dec!(21440) },
            stop_type: None,
        };
        assert!(
            apply(
                &Settings::default(),
                Direction::Long,
                Some(dec!(21430)),
                None,
                Some(&sl)
            )
            .is_err()
        );
    }

    #[test]
    fn dollars_become_whole_ticks_of_the_instrument_rounded_down() {
        let mnq = crate::instrument::by_root("MNQ").unwrap();
        let es = crate::instrument::by_root("ES").unwrap();
        // MNQ: $0.50 a tick. ES: $12.50 a tick.
        assert_eq!(dollar_ticks(dec!(30), mnq), dec!(60));
        assert_eq!(dollar_ticks(dec!(30.25), mnq), dec!(60));
        assert_eq!(dollar_ticks(dec!(100), es), dec!(8));
        assert_eq!(
            dollar_ticks(dec!(110), es),
            dec!(8),
            "never more than asked"
        );
        assert_eq!(dollar_ticks(dec!(5), es), dec!(1), "at least one tick");
        let sl = StopOverride {
            level: ExitLevel::Dollars { amount: dec!(30) },
            stop_type: None,
        };
        let r = apply_all(
            &Settings::default(),
            Direction::Long,
            Some(mnq),
            None,
            Some(&ExitLevel::Dollars { amount: dec!(50) }),
            Some(&sl),
            &AlertRisk::default(),
        )
        .unwrap();
        assert_eq!((r.sl_amount, r.sl_units), (dec!(60), PriceUnits::Ticks));
        assert!(r.sl_enabled);
        assert_eq!(r.tp_targets[0].value, dec!(100));
        assert_eq!(r.tp_units, PriceUnits::Ticks);
    }

    #[test]
    fn trail_break_even_and_same_direction_ignore_replace_the_traders() {
        let trader = Settings {
            sl_enabled: true,
            sl_amount: dec!(40),
            ..Settings::default()
        };
        let risk = AlertRisk {
            trail: Some(crate::alert::TrailOverride {
                trigger_ticks: Some(dec!(8)),
                step_ticks: None,
            }),
            break_even: Some(crate::alert::BreakEvenOverride {
                trigger_ticks: Some(dec!(12)),
                offset_ticks: Some(dec!(2)),
            }),
            sizing: None,
            same_direction_ignore: Some(true),
        };
        let r = apply_all(&trader, Direction::Long, None, None, None, None, &risk).unwrap();
        assert_eq!(r.sl_type, StopType::Trailing);
        assert_eq!((r.trail_trigger, r.trail_freq), (dec!(8), dec!(0)));
        assert!(r.break_even_enabled);
        assert_eq!(
            (r.break_even_ticks, r.break_even_offset),
            (dec!(12), dec!(2))
        );
        assert!(r.same_direction_ignore);
        // A trail without any stop, or an offset without a trigger, is refused.
        let bare = Settings::default();
        let trail_only = AlertRisk {
            trail: Some(crate::alert::TrailOverride::default()),
            ..AlertRisk::default()
        };
        assert_eq!(
            apply_all(&bare, Direction::Long, None, None, None, None, &trail_only),
            Err(OverrideError::TrailWithoutStop)
        );
        let offset_only = AlertRisk {
            break_even: Some(crate::alert::BreakEvenOverride {
                trigger_ticks: None,
                offset_ticks: Some(dec!(1)),
            }),
            ..AlertRisk::default()
        };
        assert_eq!(
            apply_all(&bare, Direction::Long, None, None, None, None, &offset_only),
            Err(OverrideError::BreakEvenWithoutTrigger)
        );
    }

    #[test]
    fn a_price_level_without_the_alert_price_is_refused() {
        let sl = StopOverride {
            level: ExitLevel::Price { price: dec!(21400) },
            stop_type: None,
        };
        let err = apply(&Settings::default(), Direction::Long, None, None, Some(&sl)).unwrap_err();
        assert_eq!(err, OverrideError::NoReferencePrice { which: "stop" });
    }
}
