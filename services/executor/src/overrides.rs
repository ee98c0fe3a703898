//! Per-alert exits: an alert's own `tp`/`sl` (DOMAIN.md §2) replaces the trader's take-profit
//! targets or stop distance for that one signal.
//!
//! A distance keeps its units (or the trader's); an absolute price becomes a distance in points
//! from the alert's price, and must lie on the profitable side (take-profit) or the protective
//! side (stop) of it. An override that cannot be honoured refuses the intent with the reason:
//! a protective level the trader asked for is never silently dropped or moved.

use jt_alerts::{ExitLevel, StopOverride};
use jt_domain::settings::{PriceUnits, TpTarget};
use jt_domain::{Direction, Settings};
use rust_decimal::Decimal;

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
    let mut s = settings.clone();
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
    Ok(s)
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_domain::settings::StopType;
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
    fn a_price_level_without_the_alert_price_is_refused() {
        let sl = StopOverride {
            level: ExitLevel::Price { price: dec!(21400) },
            stop_type: None,
        };
        let err = apply(&Settings::default(), Direction::Long, None, None, Some(&sl)).unwrap_err();
        assert_eq!(err, OverrideError::NoReferencePrice { which: "stop" });
    }
}
