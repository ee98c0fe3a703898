//! Copy-trading deltas (DOMAIN.md §10): what a follower does when its leader's position
//! changes, and the mini → micro contract mapping.
//!
//! The follower's target for a leader quantity `q` is
//! `f(q) = min(max(1, round(q × ratio × multiplier)), max_position_size)` for `q > 0` and 0
//! for `q = 0`, where `ratio` is the mapping's quantity ratio (1 without a mapping, 10 for
//! NQ → MNQ), rounding is half away from zero and a `max_position_size` of 0 means no cap.
//! Both the previous and the new leader position go through `f` (a follower capped at 5 stays
//! at 5 when the leader grows), and same-side changes move by the difference only — never
//! close and re-enter, which left followers briefly unprotected and paid double commission.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::instrument::{Instrument, InstrumentError, by_root};
use crate::quantity::{self, QuantityError};
use crate::types::{Contracts, Direction, Price, Side};

/// A follower's copy settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerSizing {
    /// Scales the leader's quantity (> 0).
    pub multiplier: Decimal,
    /// Cap on the follower's position in its own contracts; 0 = none.
    pub max_position_size: Contracts,
    /// Copy the leader's take-profit on entries.
    pub copy_tp: bool,
    /// Copy the leader's stop on entries.
    pub copy_sl: bool,
    /// Follower contracts per leader contract from the contract mapping (10 for NQ → MNQ; 1
    /// without a mapping).
    pub quantity_ratio: u32,
}

/// `f(q)`: the follower's position size for a leader position of `leader_qty` contracts.
///
/// # Errors
/// [`QuantityError`] for a multiplier ≤ 0 or a product too large for a contract count.
pub fn follower_quantity(
    leader_qty: Contracts,
    sizing: &FollowerSizing,
) -> Result<Contracts, QuantityError> {
    if leader_qty == 0 {
        return Ok(0);
    }
    let mapped = Decimal::from(leader_qty) * Decimal::from(sizing.quantity_ratio.max(1));
    let scaled = quantity::scale_decimal(mapped, sizing.multiplier)?;
    Ok(if sizing.max_position_size > 0 {
        scaled.min(sizing.max_position_size)
    } else {
        scaled
    })
}

/// What the follower does (DOMAIN.md §10 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CopyAction {
    /// The change does not move the follower (e.g. both sizes are at the cap).
    Nothing,
    /// Flat → position: an entry of `f(new)`, with the leader's TP/SL when copied.
    Entry {
        /// Entry side.
        side: Side,
        /// `f(new)`.
        qty: Contracts,
        /// Copy the leader's take-profit.
        take_profit: bool,
        /// Copy the leader's stop.
        stop: bool,
    },
    /// Position → flat: close the follower's position (its real size, read at the broker).
    Close {
        /// The direction being closed.
        direction: Direction,
        /// `f(prev)`, the size the follower is expected to hold.
        expected_qty: Contracts,
    },
    /// Same side, larger: buy/sell the difference `f(new) − f(prev)`; no TP/SL.
    Increase {
        /// Entry side of the position.
        side: Side,
        /// `f(new) − f(prev)`.
        qty: Contracts,
    },
    /// Same side, smaller: reduce by `f(prev) − f(new)`; no TP/SL.
    Reduce {
        /// Exit side of the position.
        side: Side,
        /// `f(prev) − f(new)`.
        qty: Contracts,
    },
    /// Side change: close, then an entry of `f(new)` with TP/SL when copied.
    Reverse {
        /// The direction being closed.
        close_direction: Direction,
        /// `f(prev)`.
        expected_close_qty: Contracts,
        /// Side of the new entry.
        entry_side: Side,
        /// `f(new)`.
        entry_qty: Contracts,
        /// Copy the leader's take-profit.
        take_profit: bool,
        /// Copy the leader's stop.
        stop: bool,
    },
}

fn size(net: i64) -> Contracts {
    Contracts::try_from(net.unsigned_abs()).unwrap_or(Contracts::MAX)
}

/// The follower's action for a leader change from `prev_net` to `new_net` (signed net
/// quantities).
///
/// # Errors
/// [`QuantityError`] from [`follower_quantity`].
pub fn copy_delta(
    prev_net: i64,
    new_net: i64,
    sizing: &FollowerSizing,
) -> Result<CopyAction, QuantityError> {
    let f_prev = follower_quantity(size(prev_net), sizing)?;
    let f_new = follower_quantity(size(new_net), sizing)?;
    let entry = |direction: Direction| CopyAction::Entry {
        side: direction.entry_side(),
        qty: f_new,
        take_profit: sizing.copy_tp,
        stop: sizing.copy_sl,
    };
    Ok(
        match (Direction::of_net(prev_net), Direction::of_net(new_net)) {
            (None, None) => CopyAction::Nothing,
            (None, Some(to)) => entry(to),
            (Some(from), None) => CopyAction::Close {
                direction: from,
                expected_qty: f_prev,
            },
            (Some(from), Some(to)) if from != to => CopyAction::Reverse {
                close_direction: from,
                expected_close_qty: f_prev,
                entry_side: to.entry_side(),
                entry_qty: f_new,
                take_profit: sizing.copy_tp,
                stop: sizing.copy_sl,
            },
            (Some(side), Some(_)) => {
                if f_new > f_prev {
                    CopyAction::Increase {
                        side: side.entry_side(),
                        qty: f_new - f_prev,
                    }
                } else if f_new < f_prev {
                    CopyAction::Reduce {
                        side: side.exit_side(),
                        qty: f_prev - f_new,
                    }
                } else {
                    CopyAction::Nothing
                }
            }
        },
    )
}

/// A leader contract traded as another contract by a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContractMapping {
    /// The leader's instrument root (`NQ`).
    pub leader_root: &'static str,
    /// The follower's instrument root (`MNQ`).
    pub follower_root: &'static str,
    /// Follower contracts per leader contract (10).
    pub quantity_ratio: u32,
}

/// The micro mapping of a mini/full-size root (NQ → MNQ, ES → MES, YM → MYM, RTY → M2K,
/// GC → MGC, CL → MCL, … with the instrument table's ratio), from the instrument partners.
/// `None` when the root has no smaller partner.
///
/// # Errors
/// [`InstrumentError::UnknownRoot`] for a root not in the table.
pub fn micro_mapping(leader_root: &str) -> Result<Option<ContractMapping>, InstrumentError> {
    let leader = by_root(leader_root)?;
    Ok(leader
        .partner
        .filter(|p| p.partner_is_micro)
        .map(|p| ContractMapping {
            leader_root: leader.root,
            follower_root: p.root,
            quantity_ratio: p.ratio,
        }))
}

/// A leader's TP or SL price carried to the follower's contract: the same underlying price,
/// rounded to the follower's tick (6E trades in 0.00005, M6E in 0.0001).
#[must_use]
pub fn map_price(price: Price, follower: &Instrument) -> Price {
    Price::on_tick(follower, price.value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    fn sizing(multiplier: Decimal, max: Contracts) -> FollowerSizing {
        FollowerSizing {
            multiplier,
            max_position_size: max,
            copy_tp: true,
            copy_sl: false,
            quantity_ratio: 1,
        }
    }

    #[rstest]
    #[case(0, dec!(2), 0, 0)]
    #[case(1, dec!(1), 0, 1)]
    #[case(3, dec!(0.5), 0, 2)] // 1.5 → 2
    #[case(1, dec!(0.2), 0, 1)] // at least 1
    #[case(4, dec!(2.5), 0, 10)]
    #[case(4, dec!(2.5), 6, 6)] // capped
    fn follower_quantity_formula(
        #[case] q: Contracts,
        #[case] m: Decimal,
        #[case] max: Contracts,
        #[case] expected: Contracts,
    ) {
        assert_eq!(follower_quantity(q, &sizing(m, max)).unwrap(), expected);
    }

    #[test]
    fn flat_to_position_is_an_entry_with_copied_protection() {
        let s = sizing(dec!(2), 0);
        assert_eq!(
            copy_delta(0, -2, &s).unwrap(),
            CopyAction::Entry {
                side: Side::Sell,
                qty: 4,
                take_profit: true,
                stop: false
            }
        );
    }

    #[test]
    fn position_to_flat_is_a_close() {
        assert_eq!(
            copy_delta(3, 0, &sizing(dec!(1), 0)).unwrap(),
            CopyAction::Close {
                direction: Direction::Long,
                expected_qty: 3
            }
        );
    }

    #[test]
    fn same_side_larger_buys_the_difference_without_protection() {
        // Regression: Long 1 → Long 2 used to close the follower and re-enter with 2.
        assert_eq!(
            copy_delta(1, 2, &sizing(dec!(3), 0)).unwrap(),
            CopyAction::Increase {
                side: Side::Buy,
                qty: 3
            }
        );
        assert_eq!(
            copy_delta(-1, -3, &sizing(dec!(1), 0)).unwrap(),
            CopyAction::Increase {
                side: Side::Sell,
                qty: 2
            }
        );
    }

    #[test]
    fn same_side_smaller_reduces_by_the_difference() {
        assert_eq!(
            copy_delta(4, 1, &sizing(dec!(1), 0)).unwrap(),
            CopyAction::Reduce {
                side: Side::Sell,
                qty: 3
            }
        );
        assert_eq!(
            copy_delta(-4, -2, &sizing(dec!(0.5), 0)).unwrap(),
            CopyAction::Reduce {
                side: Side::Buy,
                qty: 1
            }
        );
    }

    #[test]
    fn both_sizes_go_through_the_cap() {
        // f(5) = f(8) = 3 with a cap of 3: the follower does not move.
        assert_eq!(
            copy_delta(5, 8, &sizing(dec!(1), 3)).unwrap(),
            CopyAction::Nothing
        );
        // f(8) = 3 → f(2) = 2: reduce by 1, not by 6.
        assert_eq!(
            copy_delta(8, 2, &sizing(dec!(1), 3)).unwrap(),
            CopyAction::Reduce {
                side: Side::Sell,
                qty: 1
            }
        );
    }

    #[test]
    fn side_change_closes_then_enters_with_protection() {
        let s = FollowerSizing {
            copy_sl: true,
            ..sizing(dec!(2), 5)
        };
        assert_eq!(
            copy_delta(2, -3, &s).unwrap(),
            CopyAction::Reverse {
                close_direction: Direction::Long,
                expected_close_qty: 4,
                entry_side: Side::Sell,
                entry_qty: 5,
                take_profit: true,
                stop: true
            }
        );
    }

    #[test]
    fn flat_to_flat_does_nothing() {
        assert_eq!(
            copy_delta(0, 0, &sizing(dec!(1), 0)).unwrap(),
            CopyAction::Nothing
        );
    }

    #[rstest]
    #[case("NQ", "MNQ")]
    #[case("ES", "MES")]
    #[case("YM", "MYM")]
    #[case("RTY", "M2K")]
    #[case("GC", "MGC")]
    #[case("CL", "MCL")]
    fn mini_to_micro_mapping_is_ten_to_one(#[case] from: &str, #[case] to: &str) {
        let m = micro_mapping(from).unwrap().unwrap();
        assert_eq!(
            (m.leader_root, m.follower_root, m.quantity_ratio),
            (from, to, 10)
        );
    }

    #[test]
    fn mapping_needs_a_smaller_partner() {
        assert_eq!(micro_mapping("MNQ").unwrap(), None, "already micro");
        assert_eq!(micro_mapping("ZB").unwrap(), None, "no partner");
        assert!(micro_mapping("XYZ").is_err());
    }

    #[test]
    fn mapped_quantity_is_scaled_by_the_ratio() {
        let m = micro_mapping("NQ").unwrap().unwrap();
        let s = FollowerSizing {
            quantity_ratio: m.quantity_ratio,
            ..sizing(dec!(0.5), 0)
        };
        assert_eq!(follower_quantity(3, &s).unwrap(), 15);
        assert_eq!(
            copy_delta(1, 2, &s).unwrap(),
            CopyAction::Increase {
                side: Side::Buy,
                qty: 5
            }
        );
    }

    #[test]
    fn mapped_prices_land_on_the_followers_tick() {
        let six_e = by_root("6E").unwrap();
        let m6e = by_root("M6E").unwrap();
        let tp = Price::on_tick(six_e, dec!(1.08555));
        assert_eq!(map_price(tp, m6e).value(), dec!(1.0856));
        let nq = Price::on_tick(by_root("NQ").unwrap(), dec!(21000.75));
        assert_eq!(map_price(nq, by_root("MNQ").unwrap()), nq);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn follower_quantity_never_exceeds_max_position(
            q in 0u32..10_000,
            multiplier in (1u32..500).prop_map(|m| Decimal::new(i64::from(m), 1)),
            max in 1u32..200,
            ratio in prop::sample::select(vec![1u32, 5, 10]),
        ) {
            let s = FollowerSizing { quantity_ratio: ratio, ..sizing(multiplier, max) };
            let f = follower_quantity(q, &s).unwrap();
            prop_assert!(f <= max);
            prop_assert_eq!(f == 0, q == 0);
        }

        #[test]
        fn applying_the_delta_reaches_the_target(
            prev in -50i64..50,
            new in -50i64..50,
            multiplier in (1u32..50).prop_map(|m| Decimal::new(i64::from(m), 1)),
            max in 0u32..30,
        ) {
            // Starting from f(prev) on prev's side, the action leaves the follower at f(new)
            // on new's side.
            let s = sizing(multiplier, max);
            let signed = |net: i64| -> i64 {
                let f = i64::from(follower_quantity(size(net), &s).unwrap());
                if net < 0 { -f } else { f }
            };
            let mut follower = signed(prev);
            let qty = |side: Side, q: Contracts| match side {
                Side::Buy => i64::from(q),
                Side::Sell => -i64::from(q),
            };
            match copy_delta(prev, new, &s).unwrap() {
                CopyAction::Nothing => {}
                CopyAction::Entry { side, qty: q, .. }
                | CopyAction::Increase { side, qty: q }
                | CopyAction::Reduce { side, qty: q } => follower += qty(side, q),
                CopyAction::Close { .. } => follower = 0,
                CopyAction::Reverse { entry_side, entry_qty, .. } => {
                    follower = qty(entry_side, entry_qty);
                }
            }
            prop_assert_eq!(follower, signed(new));
        }
    }
}
