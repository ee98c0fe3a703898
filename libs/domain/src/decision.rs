//! What one trader must do about one signal (DOMAIN.md §5.3, §5.4, §5.7): from the signal's
//! action, the broker's real position for the contract and the trader's resolved settings, a
//! [`Decision`] — an [`IntentPlan`] to execute, or a [`SkipReason`].
//!
//! | position at the broker | signal | DCA | plan |
//! |---|---|---|---|
//! | flat | long / short | – | [`IntentPlan::Entry`]: `initial_position_size × multiplier`, bracket |
//! | same direction | long / short | on | [`IntentPlan::Add`]: `add_position_size × multiplier`, market add, then TP (and stop) replaced for the whole position |
//! | same direction | long / short | off | [`IntentPlan::FreshEntry`]: the full bracket with `initial_position_size × multiplier`, exactly as if flat |
//! | opposite | long / short | on | skipped: "opposite signal while averaging; the resting take-profit manages the exit" |
//! | opposite | long / short | off | [`IntentPlan::Flip`]: cancel the contract's working orders, close, then the full bracket entry |
//! | any | close / flatten / kill | – | [`IntentPlan::Close`]: cancel working orders, close ([`IntentPlan::CancelOrders`] when flat) |
//! | long | close_long | – | [`IntentPlan::Close`]; short → skipped; flat → [`IntentPlan::CancelOrders`] (close_short mirrors it) |
//! | any | cancel | – | [`IntentPlan::CancelOrders`] |
//! | long | reduce_long (fraction f) | – | [`IntentPlan::Reduce`]: resize the protection to what remains, then sell `size × f` (half away from zero, ≥ 1, never past flat; all of it → [`IntentPlan::Close`]); flat or short → skipped (reduce_short mirrors it) |
//!
//! `same_direction_ignore` skips same-direction signals while in a position. Entry filters
//! ([`crate::filters::check_entry`]) refuse only new exposure: a flip whose entry is refused
//! still closes the position (the exit half passes), and is recorded as
//! [`IntentPlan::Close`] with the reason the entry was dropped. Quantities are capped so the
//! resulting position never exceeds `max_contracts` (counting what the broker really holds),
//! and an entry never exceeds `max_contracts_per_trade`.
//!
//! The signal's own quantity (`contracts` in the alert) does not size trader orders: sizes come
//! from the settings, or from the alert's risk instruction ([`AlertSize`], computed by the
//! executor from the stop and the account's balance). Plans are plain data (serde) so the executor stores them with the intent.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::filters::{self, FilterState};
use crate::quantity::{self, QuantityError, SizedEntry};
use crate::settings::Settings;
use crate::signal::SignalAction;
use crate::skip::SkipReason;
use crate::types::{Contracts, Direction, Side};

/// The account's real position for one contract, as the broker reports it (the broker is the
/// truth; the database may be stale).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerPosition {
    /// Signed net quantity: > 0 long, < 0 short, 0 flat.
    pub net_qty: i64,
    /// Average entry price, when the broker reports one.
    pub average_price: Option<Decimal>,
}

impl BrokerPosition {
    /// No position.
    pub const FLAT: BrokerPosition = BrokerPosition {
        net_qty: 0,
        average_price: None,
    };

    /// The position's direction, `None` when flat.
    #[must_use]
    pub fn direction(&self) -> Option<Direction> {
        Direction::of_net(self.net_qty)
    }

    /// The absolute size in contracts (saturating: no broker holds 4 billion contracts).
    #[must_use]
    pub fn size(&self) -> Contracts {
        Contracts::try_from(self.net_qty.unsigned_abs()).unwrap_or(Contracts::MAX)
    }
}

/// Everything [`decide`] needs. `now` and the instants in `filters` are arguments: nothing here
/// reads a clock.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    /// The signal's action (after `inverse_strategy`).
    pub action: SignalAction,
    /// The broker's position for the contract on this account.
    pub position: BrokerPosition,
    /// The trader's resolved settings.
    pub settings: &'a Settings,
    /// The executor's counters and instants for this trader and contract.
    pub filters: FilterState,
    /// The instant the signal is being executed.
    pub now: DateTime<Utc>,
    /// For a partial exit (`reduce_long` / `reduce_short`): the fraction of its position the
    /// strategy sold (0 < fraction < 1). Each trader's position is reduced by the same
    /// fraction of its own size ([`quantity::reduce_by_fraction`]).
    pub exit_fraction: Option<Decimal>,
    /// An entry size the alert decided (risk sizing, already scaled by the multiplier),
    /// replacing `initial_position_size` / `add_position_size × multiplier`; the caps still
    /// apply. A quantity of 0 refuses the entry (the exit half of a flip still runs).
    pub alert_size: Option<AlertSize>,
}

/// An entry sized by the alert's risk instruction (`risk_dollars`, `risk_percentage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSize {
    /// Contracts: the risk (× multiplier) ÷ what one contract loses at the stop, rounded down.
    pub qty: Contracts,
    /// Dollars the alert allows this trader to risk (after the multiplier).
    pub risk: Decimal,
    /// Dollars one contract loses at the stop.
    pub per_contract: Decimal,
}

/// One broker step of a plan, in order. The executor performs them one after another and
/// stops at the first failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum PlanStep {
    /// Cancel every working order of the contract on this account (looked up at the broker,
    /// per sub-account).
    CancelWorkingOrders,
    /// Close the position with a market order.
    ClosePosition {
        /// The exit side.
        side: Side,
        /// The position's size as the broker reported it.
        qty: Contracts,
    },
    /// Place the entry: a bracket (entry + TP legs + stop + break-even) in one call when the
    /// settings place any protection, a market order otherwise
    /// ([`crate::bracket::build_entry`]).
    PlaceEntry {
        /// Entry side.
        side: Side,
        /// Entry quantity.
        qty: Contracts,
    },
    /// A DCA add: a market order, never a bracket.
    MarketAdd {
        /// Entry side.
        side: Side,
        /// Contracts added.
        qty: Contracts,
    },
    /// A partial exit, first step: resize the position's protection to what will remain —
    /// take-profit legs trimmed from the farthest, stops to the remaining quantity — so no exit
    /// order can take the position past flat once it is smaller.
    ResizeProtection {
        /// Contracts that remain after the reduction.
        position_qty: Contracts,
    },
    /// A partial exit, second step: a market order on the exit side for `qty` contracts.
    ReducePosition {
        /// The exit side.
        side: Side,
        /// Contracts taken off.
        qty: Contracts,
    },
    /// After the add fills: cancel every working take-profit and stop of the contract, read
    /// the new average from the broker, and place one take-profit (and the stop, when enabled)
    /// for the whole position ([`crate::bracket::dca_protection`]). Never modify in place.
    ReplaceProtection {
        /// The whole position after the add, as planned (the broker's figure wins).
        position_qty: Contracts,
    },
}

/// What to do at the broker for one trader, fully sized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IntentPlan {
    /// Entry from flat: one bracket of `initial_position_size × multiplier`.
    Entry {
        /// Entry direction.
        direction: Direction,
        /// Quantity and the caps that shaped it.
        size: SizedEntry,
    },
    /// DCA off, same direction: a full bracket with `initial_position_size × multiplier`,
    /// exactly as if flat; the open position is not added to and its orders are not touched.
    FreshEntry {
        /// Entry direction (the position's).
        direction: Direction,
        /// Quantity and the caps that shaped it (`max_contracts` counts `existing`).
        size: SizedEntry,
        /// Contracts already open at the broker in that direction.
        existing: Contracts,
    },
    /// DCA on, same direction: market add of `add_position_size × multiplier`, then one
    /// take-profit (and stop) for the whole position at the new average.
    Add {
        /// The position's direction.
        direction: Direction,
        /// Quantity added and the caps that shaped it.
        size: SizedEntry,
        /// Contracts open before the add.
        position_before: Contracts,
    },
    /// DCA off, opposite direction: cancel working orders, close, then a full bracket entry.
    Flip {
        /// The direction of the position being closed.
        from: Direction,
        /// Contracts closed.
        close_qty: Contracts,
        /// The new direction.
        direction: Direction,
        /// The new entry's quantity.
        size: SizedEntry,
    },
    /// A partial exit: the position reduced by the strategy's fraction, its protection resized
    /// to what remains.
    Reduce {
        /// The direction of the position being reduced.
        direction: Direction,
        /// Contracts taken off.
        qty: Contracts,
        /// Contracts that remain (≥ 1: a reduction to flat is a [`IntentPlan::Close`]).
        remaining: Contracts,
        /// The fraction the strategy sold.
        fraction: Decimal,
    },
    /// Cancel working orders of the contract and close the position.
    Close {
        /// The direction of the position being closed.
        direction: Direction,
        /// Contracts closed.
        qty: Contracts,
        /// Set when this close is what remains of a flip whose new entry a filter refused.
        entry_refused: Option<SkipReason>,
    },
    /// Cancel working orders of the contract; the position (if any) is untouched.
    CancelOrders,
}

impl IntentPlan {
    /// The broker steps of the plan, in order.
    #[must_use]
    pub fn steps(&self) -> Vec<PlanStep> {
        match self {
            IntentPlan::Entry { direction, size }
            | IntentPlan::FreshEntry {
                direction, size, ..
            } => {
                vec![PlanStep::PlaceEntry {
                    side: direction.entry_side(),
                    qty: size.qty,
                }]
            }
            IntentPlan::Add {
                direction,
                size,
                position_before,
            } => vec![
                PlanStep::MarketAdd {
                    side: direction.entry_side(),
                    qty: size.qty,
                },
                PlanStep::ReplaceProtection {
                    position_qty: position_before.saturating_add(size.qty),
                },
            ],
            IntentPlan::Flip {
                from,
                close_qty,
                direction,
                size,
            } => vec![
                PlanStep::CancelWorkingOrders,
                PlanStep::ClosePosition {
                    side: from.exit_side(),
                    qty: *close_qty,
                },
                PlanStep::PlaceEntry {
                    side: direction.entry_side(),
                    qty: size.qty,
                },
            ],
            IntentPlan::Reduce {
                direction,
                qty,
                remaining,
                ..
            } => vec![
                PlanStep::ResizeProtection {
                    position_qty: *remaining,
                },
                PlanStep::ReducePosition {
                    side: direction.exit_side(),
                    qty: *qty,
                },
            ],
            IntentPlan::Close { direction, qty, .. } => vec![
                PlanStep::CancelWorkingOrders,
                PlanStep::ClosePosition {
                    side: direction.exit_side(),
                    qty: *qty,
                },
            ],
            IntentPlan::CancelOrders => vec![PlanStep::CancelWorkingOrders],
        }
    }

    /// The direction and quantity of the plan's new exposure (entry or add), if any: what
    /// the bracket is built for and what counts as an executed entry signal.
    #[must_use]
    pub fn new_exposure(&self) -> Option<(Direction, Contracts)> {
        match self {
            IntentPlan::Entry { direction, size }
            | IntentPlan::FreshEntry {
                direction, size, ..
            }
            | IntentPlan::Add {
                direction, size, ..
            }
            | IntentPlan::Flip {
                direction, size, ..
            } => Some((*direction, size.qty)),
            IntentPlan::Reduce { .. } | IntentPlan::Close { .. } | IntentPlan::CancelOrders => None,
        }
    }
}

/// The outcome for one trader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Carry out the plan.
    Execute {
        /// The plan.
        plan: IntentPlan,
    },
    /// Do nothing at the broker; record the reason.
    Skip {
        /// Which rule and why.
        reason: SkipReason,
    },
}

fn execute(plan: IntentPlan) -> Result<Decision, QuantityError> {
    Ok(Decision::Execute { plan })
}

fn skip(reason: SkipReason) -> Result<Decision, QuantityError> {
    Ok(Decision::Skip { reason })
}

/// The close of whatever is open, or a cancel of leftover orders when flat (a stray
/// take-profit on a flat account would open a position when it fills).
fn close_all(position: BrokerPosition) -> IntentPlan {
    match position.direction() {
        Some(direction) => IntentPlan::Close {
            direction,
            qty: position.size(),
            entry_refused: None,
        },
        None => IntentPlan::CancelOrders,
    }
}

fn close_side(action: SignalAction, wanted: Direction, position: BrokerPosition) -> Decision {
    match position.direction() {
        None => Decision::Execute {
            plan: IntentPlan::CancelOrders,
        },
        Some(d) if d == wanted => Decision::Execute {
            plan: close_all(position),
        },
        Some(d) => Decision::Skip {
            reason: SkipReason::NothingToClose {
                action,
                position: d,
            },
        },
    }
}

/// A partial exit of `direction`'s position by `fraction` (see [`quantity::reduce_by_fraction`]):
/// a reduction, or a close when the rounding takes the whole position.
fn reduce(
    action: SignalAction,
    direction: Direction,
    fraction: Option<Decimal>,
    position: BrokerPosition,
) -> Decision {
    match position.direction() {
        None => Decision::Skip {
            reason: SkipReason::NothingToReduce { action },
        },
        Some(d) if d != direction => Decision::Skip {
            reason: SkipReason::NothingToClose {
                action,
                position: d,
            },
        },
        Some(_) => {
            let size = position.size();
            let fraction = fraction.unwrap_or(Decimal::ONE);
            let qty = quantity::reduce_by_fraction(size, fraction);
            if qty >= size {
                return Decision::Execute {
                    plan: close_all(position),
                };
            }
            Decision::Execute {
                plan: IntentPlan::Reduce {
                    direction,
                    qty,
                    remaining: size - qty,
                    fraction,
                },
            }
        }
    }
}

/// Sizes an entry of `size_setting × multiplier` (or the alert's own size) on top of `open`
/// contracts.
fn size_entry(
    settings: &Settings,
    size_setting: Contracts,
    open: Contracts,
    alert_size: Option<AlertSize>,
) -> Result<SizedEntry, QuantityError> {
    let requested = match alert_size {
        Some(a) => a.qty,
        None => quantity::scale_by_multiplier(size_setting, settings.multiplier)?,
    };
    Ok(quantity::cap_entry(
        requested,
        open,
        settings.max_contracts,
        settings.max_contracts_per_trade,
    ))
}

fn at_cap(settings: &Settings, open: Contracts) -> SkipReason {
    SkipReason::MaxContractsReached {
        max_contracts: settings.max_contracts,
        open,
    }
}

/// Decides what one trader does about one signal (see the module table).
///
/// # Errors
/// [`QuantityError`] when the settings cannot produce a quantity (a multiplier ≤ 0 or absurdly
/// large): the executor records the intent as failed with that message. Run
/// [`Settings::validate`] first to refuse such settings earlier.
pub fn decide(input: &DecisionInput<'_>) -> Result<Decision, QuantityError> {
    let DecisionInput {
        action,
        position,
        settings,
        filters: state,
        now,
        exit_fraction,
        alert_size,
    } = *input;
    let wanted = match action {
        SignalAction::Cancel => return execute(IntentPlan::CancelOrders),
        SignalAction::Close | SignalAction::Flatten | SignalAction::Kill => {
            return execute(close_all(position));
        }
        SignalAction::CloseLong => return Ok(close_side(action, Direction::Long, position)),
        SignalAction::CloseShort => return Ok(close_side(action, Direction::Short, position)),
        SignalAction::ReduceLong => {
            return Ok(reduce(action, Direction::Long, exit_fraction, position));
        }
        SignalAction::ReduceShort => {
            return Ok(reduce(action, Direction::Short, exit_fraction, position));
        }
        SignalAction::Resume => return skip(SkipReason::ControlCommand { action }),
        SignalAction::Long => Direction::Long,
        SignalAction::Short => Direction::Short,
    };
    let refused = filters::check_entry(settings, wanted, &state, now)
        .err()
        .or_else(|| {
            alert_size
                .filter(|a| a.qty == 0)
                .map(|a| SkipReason::RiskBelowOneContract {
                    risk: a.risk,
                    per_contract: a.per_contract,
                })
        });
    let open = position.size();
    match position.direction() {
        None => {
            if let Some(reason) = refused {
                return skip(reason);
            }
            let size = size_entry(settings, settings.initial_position_size, 0, alert_size)?;
            if size.qty == 0 {
                return skip(at_cap(settings, 0));
            }
            execute(IntentPlan::Entry {
                direction: wanted,
                size,
            })
        }
        Some(held) if held == wanted => {
            if let Some(reason) = refused {
                return skip(reason);
            }
            if settings.same_direction_ignore {
                return skip(SkipReason::SameDirectionIgnored { direction: held });
            }
            if settings.dca_enabled
                && let Err(reason) = filters::add_delay(settings.add_delay, state.last_add_at, now)
            {
                return skip(reason);
            }
            // DCA off: the open position does not change the entry (no downgrade to the add
            // size, no "existing position" shortcut); only the hard cap counts it.
            let size_setting = if settings.dca_enabled {
                settings.add_position_size
            } else {
                settings.initial_position_size
            };
            let size = size_entry(settings, size_setting, open, alert_size)?;
            if size.qty == 0 {
                return skip(at_cap(settings, open));
            }
            execute(if settings.dca_enabled {
                IntentPlan::Add {
                    direction: held,
                    size,
                    position_before: open,
                }
            } else {
                IntentPlan::FreshEntry {
                    direction: held,
                    size,
                    existing: open,
                }
            })
        }
        Some(held) => {
            if settings.dca_enabled {
                return skip(SkipReason::OppositeWhileAveraging {
                    position: held,
                    signal: wanted,
                });
            }
            if let Some(reason) = refused {
                // The exit half of the flip passes every filter.
                return execute(IntentPlan::Close {
                    direction: held,
                    qty: open,
                    entry_refused: Some(reason),
                });
            }
            // After the close the position is flat, so the cap applies to the entry alone.
            let size = size_entry(settings, settings.initial_position_size, 0, alert_size)?;
            execute(IntentPlan::Flip {
                from: held,
                close_qty: open,
                direction: wanted,
                size,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::SizeLimit;
    use crate::settings::{ClockTime, DirectionFilter, TimeWindow};
    use chrono::TimeZone;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn now() -> DateTime<Utc> {
        // Thursday 2026-01-15 10:00 New York: inside a 09:30–16:00 window.
        Utc.with_ymd_and_hms(2026, 1, 15, 15, 0, 0).unwrap()
    }

    fn pos(net_qty: i64) -> BrokerPosition {
        BrokerPosition {
            net_qty,
            average_price: (net_qty != 0).then_some(dec!(21000)),
        }
    }

    fn decide_with(
        action: SignalAction,
        position: BrokerPosition,
        settings: &Settings,
    ) -> Decision {
        decide(&DecisionInput {
            action,
            position,
            settings,
            filters: FilterState::default(),
            now: now(),
            exit_fraction: None,
            alert_size: None,
        })
        .unwrap()
    }

    fn plan(d: Decision) -> IntentPlan {
        match d {
            Decision::Execute { plan } => plan,
            Decision::Skip { reason } => panic!("expected a plan, got skip: {reason}"),
        }
    }

    fn reason(d: Decision) -> SkipReason {
        match d {
            Decision::Skip { reason } => reason,
            Decision::Execute { plan } => panic!("expected a skip, got {plan:?}"),
        }
    }

    fn sized(qty: Contracts) -> SizedEntry {
        SizedEntry {
            requested: qty,
            qty,
            limited_by: None,
        }
    }

    fn base() -> Settings {
        Settings {
            initial_position_size: 3,
            add_position_size: 1,
            multiplier: dec!(2),
            ..Settings::default()
        }
    }

    #[test]
    fn flat_gives_an_entry_of_initial_size_times_multiplier() {
        let p = plan(decide_with(
            SignalAction::Long,
            BrokerPosition::FLAT,
            &base(),
        ));
        assert_eq!(
            p,
            IntentPlan::Entry {
                direction: Direction::Long,
                size: sized(6)
            }
        );
        assert_eq!(
            p.steps(),
            vec![PlanStep::PlaceEntry {
                side: Side::Buy,
                qty: 6
            }]
        );
    }

    #[test]
    fn same_direction_with_dca_on_adds_add_size_times_multiplier() {
        let s = Settings {
            dca_enabled: true,
            ..base()
        };
        let p = plan(decide_with(SignalAction::Short, pos(-6), &s));
        assert_eq!(
            p,
            IntentPlan::Add {
                direction: Direction::Short,
                size: sized(2),
                position_before: 6
            }
        );
        assert_eq!(
            p.steps(),
            vec![
                PlanStep::MarketAdd {
                    side: Side::Sell,
                    qty: 2
                },
                PlanStep::ReplaceProtection { position_qty: 8 }
            ]
        );
    }

    #[test]
    fn dca_off_with_a_stale_same_direction_position_is_a_full_fresh_entry() {
        // Regression: a stale position with DCA off turned a 3-contract bracket into a
        // 1-contract market order with wrong TP handling.
        let s = Settings {
            initial_position_size: 3,
            add_position_size: 1,
            ..Settings::default()
        };
        let p = plan(decide_with(SignalAction::Long, pos(2), &s));
        assert_eq!(
            p,
            IntentPlan::FreshEntry {
                direction: Direction::Long,
                size: sized(3),
                existing: 2
            }
        );
        assert_eq!(
            p.steps(),
            vec![PlanStep::PlaceEntry {
                side: Side::Buy,
                qty: 3
            }],
            "a bracket entry exactly as if flat: no add, no cancel"
        );
    }

    #[test]
    fn opposite_signal_with_dca_on_is_skipped_with_the_rule_text() {
        let s = Settings {
            dca_enabled: true,
            ..base()
        };
        let r = reason(decide_with(SignalAction::Short, pos(4), &s));
        assert_eq!(
            r,
            SkipReason::OppositeWhileAveraging {
                position: Direction::Long,
                signal: Direction::Short
            }
        );
        assert_eq!(r.rule(), "dca_enabled");
        assert!(
            r.to_string()
                .contains("the resting take-profit manages the exit")
        );
    }

    #[test]
    fn opposite_signal_with_dca_off_flips() {
        let p = plan(decide_with(SignalAction::Short, pos(4), &base()));
        assert_eq!(
            p,
            IntentPlan::Flip {
                from: Direction::Long,
                close_qty: 4,
                direction: Direction::Short,
                size: sized(6)
            }
        );
        assert_eq!(
            p.steps(),
            vec![
                PlanStep::CancelWorkingOrders,
                PlanStep::ClosePosition {
                    side: Side::Sell,
                    qty: 4
                },
                PlanStep::PlaceEntry {
                    side: Side::Sell,
                    qty: 6
                },
            ]
        );
    }

    #[test]
    fn close_cancels_and_closes_whatever_is_open() {
        for action in [
            SignalAction::Close,
            SignalAction::Flatten,
            SignalAction::Kill,
        ] {
            let p = plan(decide_with(action, pos(-3), &base()));
            assert_eq!(
                p.steps(),
                vec![
                    PlanStep::CancelWorkingOrders,
                    PlanStep::ClosePosition {
                        side: Side::Buy,
                        qty: 3
                    }
                ]
            );
            assert_eq!(
                plan(decide_with(action, BrokerPosition::FLAT, &base())),
                IntentPlan::CancelOrders,
                "flat: only leftover orders are cancelled"
            );
        }
    }

    #[test]
    fn close_long_and_close_short_close_only_their_side() {
        let s = base();
        assert_eq!(
            plan(decide_with(SignalAction::CloseLong, pos(2), &s)),
            IntentPlan::Close {
                direction: Direction::Long,
                qty: 2,
                entry_refused: None
            }
        );
        assert_eq!(
            reason(decide_with(SignalAction::CloseLong, pos(-2), &s)),
            SkipReason::NothingToClose {
                action: SignalAction::CloseLong,
                position: Direction::Short
            }
        );
        assert_eq!(
            plan(decide_with(SignalAction::CloseShort, pos(-2), &s)),
            IntentPlan::Close {
                direction: Direction::Short,
                qty: 2,
                entry_refused: None
            }
        );
        assert!(matches!(
            decide_with(SignalAction::CloseShort, pos(5), &s),
            Decision::Skip { .. }
        ));
        assert_eq!(
            plan(decide_with(
                SignalAction::CloseShort,
                BrokerPosition::FLAT,
                &s
            )),
            IntentPlan::CancelOrders
        );
    }

    #[test]
    fn cancel_touches_orders_only() {
        let p = plan(decide_with(SignalAction::Cancel, pos(3), &base()));
        assert_eq!(p, IntentPlan::CancelOrders);
        assert_eq!(p.steps(), vec![PlanStep::CancelWorkingOrders]);
        assert_eq!(p.new_exposure(), None);
    }

    #[test]
    fn resume_is_a_control_command_not_a_trade() {
        assert_eq!(
            reason(decide_with(SignalAction::Resume, pos(0), &base())),
            SkipReason::ControlCommand {
                action: SignalAction::Resume
            }
        );
    }

    #[test]
    fn same_direction_ignore_skips_while_in_a_position() {
        for dca in [true, false] {
            let s = Settings {
                same_direction_ignore: true,
                dca_enabled: dca,
                ..base()
            };
            assert_eq!(
                reason(decide_with(SignalAction::Long, pos(1), &s)),
                SkipReason::SameDirectionIgnored {
                    direction: Direction::Long
                }
            );
            assert!(matches!(
                plan(decide_with(SignalAction::Long, BrokerPosition::FLAT, &s)),
                IntentPlan::Entry { .. }
            ));
        }
    }

    #[test]
    fn max_contracts_caps_the_resulting_position() {
        let s = Settings {
            dca_enabled: true,
            max_contracts: 7,
            ..base()
        };
        // add 2 on top of 6 → only 1 fits
        let p = plan(decide_with(SignalAction::Long, pos(6), &s));
        assert_eq!(
            p,
            IntentPlan::Add {
                direction: Direction::Long,
                size: SizedEntry {
                    requested: 2,
                    qty: 1,
                    limited_by: Some(SizeLimit::MaxContracts { max: 7, open: 6 })
                },
                position_before: 6
            }
        );
        assert_eq!(
            reason(decide_with(SignalAction::Long, pos(7), &s)),
            SkipReason::MaxContractsReached {
                max_contracts: 7,
                open: 7
            }
        );
        // A flip's entry is capped on its own: the position is flat after the close.
        let s = Settings {
            max_contracts: 4,
            ..base()
        };
        let Some((_, qty)) = plan(decide_with(SignalAction::Long, pos(-4), &s)).new_exposure()
        else {
            panic!("a flip enters");
        };
        assert_eq!(qty, 4);
        // A fresh entry counts what the broker really holds.
        assert_eq!(
            reason(decide_with(SignalAction::Long, pos(4), &s)),
            SkipReason::MaxContractsReached {
                max_contracts: 4,
                open: 4
            }
        );
    }

    #[test]
    fn max_contracts_per_trade_caps_each_entry() {
        let s = Settings {
            max_contracts_per_trade: 4,
            ..base()
        };
        let p = plan(decide_with(SignalAction::Short, BrokerPosition::FLAT, &s));
        assert_eq!(p.new_exposure(), Some((Direction::Short, 4)));
    }

    #[test]
    fn add_delay_skips_an_add_too_soon_after_the_last() {
        let s = Settings {
            dca_enabled: true,
            add_delay: 2,
            ..base()
        };
        let input = |last_add_ms: i64| DecisionInput {
            action: SignalAction::Long,
            position: pos(3),
            settings: &s,
            filters: FilterState {
                last_add_at: Some(now() - chrono::Duration::milliseconds(last_add_ms)),
                ..FilterState::default()
            },
            now: now(),
            exit_fraction: None,
            alert_size: None,
        };
        assert_eq!(
            reason(decide(&input(1500)).unwrap()),
            SkipReason::AddDelay {
                add_delay_secs: 2,
                elapsed_ms: 1500
            }
        );
        assert!(matches!(
            plan(decide(&input(2500)).unwrap()),
            IntentPlan::Add { .. }
        ));
    }

    fn windowed() -> Settings {
        Settings {
            time_filter_1: TimeWindow {
                enabled: true,
                start: ClockTime::hm(18, 0).unwrap(),
                stop: ClockTime::hm(20, 0).unwrap(),
            },
            ..base()
        }
    }

    #[test]
    fn filtered_entries_are_skipped_but_exits_pass() {
        let s = windowed(); // now() is 10:00 New York: outside 18:00–20:00
        assert!(matches!(
            reason(decide_with(SignalAction::Long, BrokerPosition::FLAT, &s)),
            SkipReason::OutsideTimeWindows { .. }
        ));
        assert!(matches!(
            reason(decide_with(SignalAction::Long, pos(2), &s)),
            SkipReason::OutsideTimeWindows { .. }
        ));
        assert!(matches!(
            plan(decide_with(SignalAction::Close, pos(2), &s)),
            IntentPlan::Close { .. }
        ));
        assert!(matches!(
            plan(decide_with(SignalAction::CloseLong, pos(2), &s)),
            IntentPlan::Close { .. }
        ));
    }

    #[test]
    fn a_flip_whose_entry_is_refused_still_closes() {
        let p = plan(decide_with(SignalAction::Short, pos(2), &windowed()));
        let IntentPlan::Close {
            direction,
            qty,
            entry_refused: Some(SkipReason::OutsideTimeWindows { .. }),
        } = p
        else {
            panic!("expected the exit half of the flip, got {p:?}");
        };
        assert_eq!((direction, qty), (Direction::Long, 2));
        // The direction filter works the same way: a long-only trader exits on a short signal.
        let long_only = Settings {
            direction_filter: DirectionFilter::LongOnly,
            ..base()
        };
        assert!(matches!(
            plan(decide_with(SignalAction::Short, pos(2), &long_only)),
            IntentPlan::Close {
                entry_refused: Some(SkipReason::DirectionFilter { .. }),
                ..
            }
        ));
        assert!(matches!(
            reason(decide_with(
                SignalAction::Short,
                BrokerPosition::FLAT,
                &long_only
            )),
            SkipReason::DirectionFilter { .. }
        ));
    }

    #[test]
    fn kill_switch_and_breach_refuse_entries_but_not_closes() {
        for state in [
            FilterState {
                kill_switch: true,
                ..FilterState::default()
            },
            FilterState {
                daily_loss_breached: true,
                ..FilterState::default()
            },
        ] {
            let d = |action, position| {
                decide(&DecisionInput {
                    action,
                    position,
                    settings: &base(),
                    filters: state,
                    now: now(),
                    exit_fraction: None,
                    alert_size: None,
                })
                .unwrap()
            };
            assert!(matches!(
                d(SignalAction::Long, BrokerPosition::FLAT),
                Decision::Skip { .. }
            ));
            assert!(matches!(
                d(SignalAction::Close, pos(1)),
                Decision::Execute {
                    plan: IntentPlan::Close { .. }
                }
            ));
        }
    }

    #[test]
    fn invalid_multiplier_is_an_error_not_a_guess() {
        let s = Settings {
            multiplier: dec!(0),
            ..Settings::default()
        };
        assert!(
            decide(&DecisionInput {
                action: SignalAction::Long,
                position: BrokerPosition::FLAT,
                settings: &s,
                filters: FilterState::default(),
                now: now(),
                exit_fraction: None,
                alert_size: None,
            })
            .is_err()
        );
    }

    fn decide_full(
        action: SignalAction,
        position: BrokerPosition,
        settings: &Settings,
        exit_fraction: Option<Decimal>,
        alert_size: Option<AlertSize>,
    ) -> Decision {
        decide(&DecisionInput {
            action,
            position,
            settings,
            filters: FilterState::default(),
            now: now(),
            exit_fraction,
            alert_size,
        })
        .unwrap()
    }

    #[test]
    fn a_partial_exit_reduces_each_position_by_the_strategys_fraction() {
        let s = base();
        // The strategy sold half of its long: 4 → 2 here, resize first, then sell.
        let p = plan(decide_full(
            SignalAction::ReduceLong,
            pos(4),
            &s,
            Some(dec!(0.5)),
            None,
        ));
        assert_eq!(
            p,
            IntentPlan::Reduce {
                direction: Direction::Long,
                qty: 2,
                remaining: 2,
                fraction: dec!(0.5)
            }
        );
        assert_eq!(
            p.steps(),
            vec![
                PlanStep::ResizeProtection { position_qty: 2 },
                PlanStep::ReducePosition {
                    side: Side::Sell,
                    qty: 2
                }
            ]
        );
        assert_eq!(p.new_exposure(), None);
        // A short: buy back a third of 6.
        let p = plan(decide_full(
            SignalAction::ReduceShort,
            pos(-6),
            &s,
            Some(dec!(0.3333333333)),
            None,
        ));
        assert!(matches!(
            p,
            IntentPlan::Reduce {
                direction: Direction::Short,
                qty: 2,
                remaining: 4,
                ..
            }
        ));
        // One contract and half of it sold: the rounding takes it all, a close, never a flip.
        let p = plan(decide_full(
            SignalAction::ReduceLong,
            pos(1),
            &s,
            Some(dec!(0.5)),
            None,
        ));
        assert_eq!(
            p,
            IntentPlan::Close {
                direction: Direction::Long,
                qty: 1,
                entry_refused: None
            }
        );
    }

    #[test]
    fn a_partial_exit_on_a_flat_or_opposite_account_is_skipped() {
        let s = base();
        assert_eq!(
            reason(decide_full(
                SignalAction::ReduceLong,
                BrokerPosition::FLAT,
                &s,
                Some(dec!(0.5)),
                None
            )),
            SkipReason::NothingToReduce {
                action: SignalAction::ReduceLong
            }
        );
        assert_eq!(
            reason(decide_full(
                SignalAction::ReduceLong,
                pos(-3),
                &s,
                Some(dec!(0.5)),
                None
            )),
            SkipReason::NothingToClose {
                action: SignalAction::ReduceLong,
                position: Direction::Short
            }
        );
        // Exits pass the entry filters.
        assert!(matches!(
            plan(decide_full(
                SignalAction::ReduceLong,
                pos(4),
                &windowed(),
                Some(dec!(0.25)),
                None
            )),
            IntentPlan::Reduce { qty: 1, .. }
        ));
    }

    #[test]
    fn an_alert_sized_entry_replaces_the_configured_size_and_is_still_capped() {
        let size = |qty| AlertSize {
            qty,
            risk: dec!(100),
            per_contract: dec!(20),
        };
        let s = Settings {
            max_contracts_per_trade: 4,
            ..base()
        };
        let p = plan(decide_full(
            SignalAction::Long,
            BrokerPosition::FLAT,
            &s,
            None,
            Some(size(3)),
        ));
        assert_eq!(p.new_exposure(), Some((Direction::Long, 3)));
        let p = plan(decide_full(
            SignalAction::Long,
            BrokerPosition::FLAT,
            &s,
            None,
            Some(size(9)),
        ));
        assert_eq!(p.new_exposure(), Some((Direction::Long, 4)), "capped");
        // Not one contract fits: the entry is refused, the exit half of a flip still runs.
        assert!(matches!(
            reason(decide_full(
                SignalAction::Long,
                BrokerPosition::FLAT,
                &s,
                None,
                Some(size(0))
            )),
            SkipReason::RiskBelowOneContract { .. }
        ));
        assert!(matches!(
            plan(decide_full(
                SignalAction::Long,
                pos(-2),
                &s,
                None,
                Some(size(0))
            )),
            IntentPlan::Close {
                entry_refused: Some(SkipReason::RiskBelowOneContract { .. }),
                ..
            }
        ));
    }

    #[test]
    fn decisions_round_trip_through_json() {
        let d = decide_with(SignalAction::Short, pos(4), &base());
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains(r#""decision":"execute""#) && json.contains(r#""kind":"flip""#));
        assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), d);
        let s = Settings {
            dca_enabled: true,
            ..base()
        };
        let d = decide_with(SignalAction::Short, pos(4), &s);
        let back: Decision = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_plan_breaks_max_contracts(
            net in -20i64..20,
            long in any::<bool>(),
            dca in any::<bool>(),
            initial in 1u32..6,
            add in 1u32..6,
            multiplier in (5u32..40).prop_map(|m| Decimal::new(i64::from(m), 1)),
            max_contracts in 0u32..25,
        ) {
            let s = Settings {
                initial_position_size: initial,
                add_position_size: add,
                multiplier,
                dca_enabled: dca,
                max_contracts,
                ..Settings::default()
            };
            let action = if long { SignalAction::Long } else { SignalAction::Short };
            let d = decide_with(action, pos(net), &s);
            if let Decision::Execute { plan } = d {
                let (direction, qty) = plan.new_exposure().unwrap_or((Direction::Long, 0));
                prop_assert!(qty >= 1 || plan.new_exposure().is_none());
                let after = match &plan {
                    IntentPlan::Flip { .. } => qty,
                    _ => {
                        let same = pos(net).direction() == Some(direction);
                        let held = if same { pos(net).size() } else { 0 };
                        held + qty
                    }
                };
                if max_contracts > 0 {
                    prop_assert!(after <= max_contracts, "{plan:?}");
                }
            }
        }
    }
}
