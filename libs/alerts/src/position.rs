//! What a trade alert asks, from its action word and the strategy's position before and after
//! the order (TradingView's `{{strategy.order.action}}`, `{{strategy.market_position}}`,
//! `{{strategy.position_size}}` …): an entry, an add, a partial exit of a fraction, a full exit
//! or a flip — checked against the action, so a contradiction is refused instead of traded.
//!
//! The rules (also in `docs/alerts.md`, "Position fields"):
//! - `close`/`exit`/`flatten`, `close_long`, `close_short` and `cancel` are explicit: the
//!   position fields do not change them.
//! - Without any position field, buy means long and sell means short (DOMAIN.md §2).
//! - With the position after the order only, a position in the order's direction is an entry
//!   or add; a flat one closes the side the order exits; an order against the position that
//!   stays (a sell while long) is a partial exit, whose fraction needs the sizes: `contracts`
//!   and `position_size` give the size before (`position_size ± contracts`).
//! - With both positions the change is derived from them, and the action must agree with it.

use jt_domain::signal::SignalAction;
use jt_domain::types::Direction;
use rust_decimal::Decimal;

use crate::error::AlertError;
use crate::signal::{MarketPosition, PositionChange};

/// What the alert's action word asks, before the position fields are taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Buy,
    Sell,
    Close,
    CloseLong,
    CloseShort,
    Cancel,
    Add,
}

impl Verb {
    /// The verb of an action word (any case; `close long` = `close-long` = `close_long`).
    pub(crate) fn from_word(word: &str) -> Option<Self> {
        Some(match normalize_word(word).as_str() {
            "buy" | "long" | "enter_long" => Verb::Buy,
            "sell" | "short" | "enter_short" => Verb::Sell,
            "close" | "exit" | "flatten" => Verb::Close,
            "close_long" | "exit_long" => Verb::CloseLong,
            "close_short" | "exit_short" => Verb::CloseShort,
            "cancel" => Verb::Cancel,
            "add" => Verb::Add,
            _ => return None,
        })
    }

    fn word(self) -> &'static str {
        match self {
            Verb::Buy => "buy",
            Verb::Sell => "sell",
            Verb::Close => "close",
            Verb::CloseLong => "close_long",
            Verb::CloseShort => "close_short",
            Verb::Cancel => "cancel",
            Verb::Add => "add",
        }
    }
}

/// Lower case, trimmed, spaces and dashes as underscores: `Close Long` → `close_long`.
pub(crate) fn normalize_word(word: &str) -> String {
    word.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

/// One side of the strategy's position as the alert reports it: flat, or long/short with its
/// size when the alert gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    Flat,
    Long(Option<Decimal>),
    Short(Option<Decimal>),
}

impl Held {
    /// A signed size: > 0 long, < 0 short, 0 flat.
    pub(crate) fn from_signed(size: Decimal) -> Held {
        if size.is_zero() {
            Held::Flat
        } else if size.is_sign_positive() {
            Held::Long(Some(size))
        } else {
            Held::Short(Some(-size))
        }
    }

    /// A market position without a size.
    pub(crate) fn from_position(p: MarketPosition) -> Held {
        match p {
            MarketPosition::Long => Held::Long(None),
            MarketPosition::Short => Held::Short(None),
            MarketPosition::Flat => Held::Flat,
        }
    }

    fn direction(self) -> Option<Direction> {
        match self {
            Held::Flat => None,
            Held::Long(_) => Some(Direction::Long),
            Held::Short(_) => Some(Direction::Short),
        }
    }

    /// The signed size, when known (flat is 0).
    pub(crate) fn signed(self) -> Option<Decimal> {
        match self {
            Held::Flat => Some(Decimal::ZERO),
            Held::Long(size) => size,
            Held::Short(size) => size.map(|s| -s),
        }
    }

    fn magnitude(self) -> Option<Decimal> {
        self.signed().map(|s| s.abs())
    }

    /// `long 2`, `long`, `flat`.
    fn describe(self) -> String {
        match self {
            Held::Flat => "flat".into(),
            Held::Long(Some(s)) => format!("long {}", s.normalize()),
            Held::Short(Some(s)) => format!("short {}", s.normalize()),
            Held::Long(None) => "long".into(),
            Held::Short(None) => "short".into(),
        }
    }

    fn market_position(self) -> MarketPosition {
        match self {
            Held::Flat => MarketPosition::Flat,
            Held::Long(_) => MarketPosition::Long,
            Held::Short(_) => MarketPosition::Short,
        }
    }
}

/// Combines what the alert says of one moment (after or before the order): the market position
/// word, a signed size and an absolute size. `what` names the moment's fields for messages.
///
/// # Errors
/// [`AlertError::PositionContradiction`] when they disagree.
pub(crate) fn held(
    position: Option<MarketPosition>,
    signed: Option<(Decimal, &str)>,
    absolute: Option<(Decimal, &str)>,
    position_field: &str,
) -> Result<Option<Held>, AlertError> {
    let contradiction = |detail: String| AlertError::PositionContradiction { detail };
    if let Some((size, field)) = signed {
        let h = Held::from_signed(size);
        if let Some((abs, abs_field)) = absolute
            && abs != size.abs()
        {
            return Err(contradiction(format!(
                "`{field}` is {size} but `{abs_field}` is {abs}"
            )));
        }
        if let Some(p) = position
            && p != h.market_position()
        {
            return Err(contradiction(format!(
                "`{position_field}` says {} but `{field}` is {size} ({})",
                p.as_str(),
                h.describe()
            )));
        }
        return Ok(Some(h));
    }
    if let Some((abs, abs_field)) = absolute {
        return match position {
            Some(MarketPosition::Long) => Ok(Some(Held::Long(Some(abs)).normalized())),
            Some(MarketPosition::Short) => Ok(Some(Held::Short(Some(abs)).normalized())),
            Some(MarketPosition::Flat) if abs.is_zero() => Ok(Some(Held::Flat)),
            Some(MarketPosition::Flat) => Err(contradiction(format!(
                "`{position_field}` says flat but `{abs_field}` is {abs}"
            ))),
            None if abs.is_zero() => Ok(Some(Held::Flat)),
            None => Err(contradiction(format!(
                "`{abs_field}` is {abs} without a side: an absolute size needs \
                 `{position_field}` (long or short) beside it"
            ))),
        };
    }
    Ok(position.map(Held::from_position))
}

impl Held {
    /// A long or short of size 0 is flat.
    fn normalized(self) -> Held {
        match self.signed() {
            Some(s) if s.is_zero() => Held::Flat,
            _ => self,
        }
    }
}

/// Everything the alert says about its intent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reported {
    /// The action word, when the alert has one.
    pub(crate) verb: Option<Verb>,
    /// The position after the order.
    pub(crate) after: Option<Held>,
    /// The position before the order.
    pub(crate) before: Option<Held>,
    /// The order's contracts (`contracts`, `quantity`, …).
    pub(crate) contracts: Option<Decimal>,
}

/// What the alert asks, before `inverse_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interpreted {
    pub(crate) action: SignalAction,
    pub(crate) change: Option<PositionChange>,
    /// The fraction sold by a partial exit.
    pub(crate) fraction: Option<Decimal>,
    /// The sizes after and before, when known (signed).
    pub(crate) size_after: Option<Decimal>,
    pub(crate) size_before: Option<Decimal>,
}

impl Interpreted {
    fn plain(action: SignalAction) -> Self {
        Interpreted {
            action,
            change: None,
            fraction: None,
            size_after: None,
            size_before: None,
        }
    }
}

fn entry_action(direction: Direction) -> SignalAction {
    match direction {
        Direction::Long => SignalAction::Long,
        Direction::Short => SignalAction::Short,
    }
}

/// The verb that opens or adds to `direction`.
fn opens(verb: Verb, direction: Direction) -> bool {
    matches!(
        (verb, direction),
        (Verb::Add, _) | (Verb::Buy, Direction::Long) | (Verb::Sell, Direction::Short)
    )
}

/// The verb that reduces or closes `direction`.
fn exits(verb: Verb, direction: Direction) -> bool {
    matches!(
        (verb, direction),
        (Verb::Sell, Direction::Long) | (Verb::Buy, Direction::Short)
    )
}

/// The mapping of DOMAIN.md §2 for an order whose position after is flat (or without any
/// position field: `after` is `None`).
fn classic(verb: Option<Verb>, after: Option<Held>) -> Result<SignalAction, AlertError> {
    Ok(match (verb, after) {
        (None, None) => return Err(AlertError::MissingAction),
        (None, Some(_)) => SignalAction::Close,
        (Some(Verb::Buy), None) => SignalAction::Long,
        (Some(Verb::Sell), None) => SignalAction::Short,
        (Some(Verb::Buy), Some(_)) => SignalAction::CloseShort,
        (Some(Verb::Sell), Some(_)) => SignalAction::CloseLong,
        (Some(Verb::Add), _) => return Err(AlertError::AddWithoutDirection),
        (Some(Verb::Close), _) => SignalAction::Close,
        (Some(Verb::CloseLong), _) => SignalAction::CloseLong,
        (Some(Verb::CloseShort), _) => SignalAction::CloseShort,
        (Some(Verb::Cancel), _) => SignalAction::Cancel,
    })
}

/// Interprets the alert (see the module rules).
///
/// # Errors
/// [`AlertError::MissingAction`], [`AlertError::AddWithoutDirection`],
/// [`AlertError::PartialExit`] (a partial exit without sizes), and
/// [`AlertError::PositionContradiction`].
pub(crate) fn interpret(r: &Reported) -> Result<Interpreted, AlertError> {
    let verb = r.verb;
    // Explicit words win over the position fields.
    if let Some(v @ (Verb::Close | Verb::CloseLong | Verb::CloseShort | Verb::Cancel)) = verb {
        return Ok(Interpreted::plain(classic(Some(v), None)?));
    }
    let Some(after) = r.after else {
        if r.before.is_some() {
            return Err(AlertError::PositionContradiction {
                detail: "the alert gives the position before the order but not after it: add \
                         `market_position` (or `position_size`)"
                    .into(),
            });
        }
        return Ok(Interpreted::plain(classic(verb, None)?));
    };
    // The size before from the size after and the order's contracts.
    let derived_before = match (verb, after.signed(), r.contracts) {
        (Some(Verb::Buy), Some(a), Some(c)) if c > Decimal::ZERO => {
            a.checked_sub(c).map(Held::from_signed)
        }
        (Some(Verb::Sell), Some(a), Some(c)) if c > Decimal::ZERO => {
            a.checked_add(c).map(Held::from_signed)
        }
        _ => None,
    };
    let before = match (r.before, derived_before) {
        // A reported size wins; a reported side without size takes the derived size when they
        // agree.
        (Some(b), Some(d)) if b.signed().is_none() && b.direction() == d.direction() => Some(d),
        (Some(b), _) => Some(b),
        (None, d) => d,
    };
    let mut out = match before {
        Some(before) => between(verb, before, after)?,
        None => after_only(verb, after)?,
    };
    out.size_after = after.signed();
    out.size_before = before.and_then(Held::signed);
    Ok(out)
}

/// The intent from the position after the order alone.
fn after_only(verb: Option<Verb>, after: Held) -> Result<Interpreted, AlertError> {
    let Some(direction) = after.direction() else {
        return Ok(Interpreted::plain(classic(verb, Some(after))?));
    };
    match verb {
        None => Ok(Interpreted::plain(entry_action(direction))),
        Some(v) if opens(v, direction) => Ok(Interpreted::plain(entry_action(direction))),
        Some(v) => Err(AlertError::PartialExit {
            action: v.word(),
            position: match direction {
                Direction::Long => "long",
                Direction::Short => "short",
            },
        }),
    }
}

/// The intent from the positions before and after, checked against the verb.
fn between(verb: Option<Verb>, before: Held, after: Held) -> Result<Interpreted, AlertError> {
    let change = match (before.direction(), after.direction()) {
        (None, None) => return Ok(Interpreted::plain(classic(verb, Some(after))?)),
        (None, Some(d)) => PositionChange::Entry { direction: d },
        (Some(d), None) => PositionChange::FullExit { direction: d },
        (Some(from), Some(to)) if from != to => PositionChange::Flip { from, to },
        (Some(d), Some(_)) => match (before.magnitude(), after.magnitude()) {
            (Some(b), Some(a)) if a > b => PositionChange::Add { direction: d },
            (Some(b), Some(a)) if a < b => PositionChange::PartialExit {
                direction: d,
                fraction: (b - a) / b,
            },
            (Some(_), Some(_)) => {
                return Err(AlertError::PositionContradiction {
                    detail: format!(
                        "the position fields say the strategy stayed {} ({} → {}): nothing \
                         changed, so there is nothing to trade",
                        after.describe(),
                        before.describe(),
                        after.describe()
                    ),
                });
            }
            // Same side, a size missing: the verb says which way it went.
            _ => match verb {
                Some(v) if exits(v, d) => return after_only(verb, after),
                _ => {
                    return Ok(Interpreted::plain(entry_action(d)));
                }
            },
        },
    };
    let agrees = match (verb, change) {
        (None, _) => true,
        (
            Some(v),
            PositionChange::Entry { direction }
            | PositionChange::Add { direction }
            | PositionChange::Flip { to: direction, .. },
        ) => opens(v, direction),
        (
            Some(v),
            PositionChange::PartialExit { direction, .. } | PositionChange::FullExit { direction },
        ) => exits(v, direction),
    };
    if !agrees {
        return Err(AlertError::PositionContradiction {
            detail: format!(
                "the alert says {} but its position fields say {} ({} → {})",
                verb.map_or("nothing", Verb::word),
                change.describe(),
                before.describe(),
                after.describe()
            ),
        });
    }
    let (action, fraction) = match change {
        PositionChange::Entry { direction }
        | PositionChange::Add { direction }
        | PositionChange::Flip { to: direction, .. } => (entry_action(direction), None),
        PositionChange::FullExit {
            direction: Direction::Long,
        } => (SignalAction::CloseLong, None),
        PositionChange::FullExit {
            direction: Direction::Short,
        } => (SignalAction::CloseShort, None),
        PositionChange::PartialExit {
            direction,
            fraction,
        } => (
            match direction {
                Direction::Long => SignalAction::ReduceLong,
                Direction::Short => SignalAction::ReduceShort,
            },
            Some(fraction),
        ),
    };
    Ok(Interpreted {
        action,
        change: Some(change),
        fraction,
        size_after: None,
        size_before: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    fn l(n: i64) -> Held {
        Held::from_signed(Decimal::from(n))
    }

    fn run(
        verb: Option<Verb>,
        before: Option<Held>,
        after: Option<Held>,
        contracts: Option<Decimal>,
    ) -> Result<Interpreted, AlertError> {
        interpret(&Reported {
            verb,
            after,
            before,
            contracts,
        })
    }

    #[rstest]
    #[case::entry_long(Some(Verb::Buy), Some(l(0)), Some(l(2)), SignalAction::Long)]
    #[case::entry_without_verb(None, Some(l(0)), Some(l(-2)), SignalAction::Short)]
    #[case::add_long(Some(Verb::Buy), Some(l(1)), Some(l(3)), SignalAction::Long)]
    #[case::traderspost_add(Some(Verb::Add), Some(l(-1)), Some(l(-3)), SignalAction::Short)]
    #[case::full_exit_long(Some(Verb::Sell), Some(l(2)), Some(l(0)), SignalAction::CloseLong)]
    #[case::full_exit_short(Some(Verb::Buy), Some(l(-2)), Some(l(0)), SignalAction::CloseShort)]
    #[case::flip_to_short(Some(Verb::Sell), Some(l(2)), Some(l(-1)), SignalAction::Short)]
    #[case::partial_long(Some(Verb::Sell), Some(l(2)), Some(l(1)), SignalAction::ReduceLong)]
    #[case::partial_short(Some(Verb::Buy), Some(l(-4)), Some(l(-1)), SignalAction::ReduceShort)]
    #[case::sizes_alone_close(None, None, Some(l(0)), SignalAction::Close)]
    #[case::close_word_wins(Some(Verb::Close), Some(l(2)), Some(l(1)), SignalAction::Close)]
    fn position_sizes_give_the_intent(
        #[case] verb: Option<Verb>,
        #[case] before: Option<Held>,
        #[case] after: Option<Held>,
        #[case] want: SignalAction,
    ) {
        assert_eq!(run(verb, before, after, None).unwrap().action, want);
    }

    #[test]
    fn a_partial_exit_carries_the_fraction_sold() {
        let i = run(Some(Verb::Sell), Some(l(3)), Some(l(1)), None).unwrap();
        assert_eq!(i.fraction, Some(dec!(2) / dec!(3)));
        assert!(matches!(
            i.change,
            Some(PositionChange::PartialExit {
                direction: Direction::Long,
                ..
            })
        ));
        // From the size after and the order's contracts: 1 left after selling 1 → half.
        let i = run(Some(Verb::Sell), None, Some(l(1)), Some(dec!(1))).unwrap();
        assert_eq!(i.action, SignalAction::ReduceLong);
        assert_eq!(i.fraction, Some(dec!(0.5)));
        assert_eq!(i.size_before, Some(dec!(2)));
    }

    #[test]
    fn the_issue_example_is_a_partial_exit_not_a_short() {
        // action sell, position_size 1, prev_position_size 2.
        let i = run(Some(Verb::Sell), Some(l(2)), Some(l(1)), None).unwrap();
        assert_eq!(i.action, SignalAction::ReduceLong);
        assert_eq!(i.fraction, Some(dec!(0.5)));
    }

    #[rstest]
    #[case::buy_while_the_long_shrinks(Some(Verb::Buy), Some(l(2)), Some(l(1)))]
    #[case::sell_into_a_long_entry(Some(Verb::Sell), Some(l(0)), Some(l(2)))]
    #[case::add_on_a_full_exit(Some(Verb::Add), Some(l(2)), Some(l(0)))]
    #[case::buy_on_a_flip_to_short(Some(Verb::Buy), Some(l(1)), Some(l(-1)))]
    #[case::nothing_changed(Some(Verb::Buy), Some(l(2)), Some(l(2)))]
    fn a_contradiction_is_refused_with_the_values(
        #[case] verb: Option<Verb>,
        #[case] before: Option<Held>,
        #[case] after: Option<Held>,
    ) {
        let e = run(verb, before, after, None).unwrap_err();
        assert_eq!(e.kind(), "position_contradiction", "{e}");
        assert_eq!(e.http_status(), 422);
    }

    #[test]
    fn huge_sizes_never_overflow() {
        let i = run(
            Some(Verb::Sell),
            None,
            Some(Held::from_signed(Decimal::MAX)),
            Some(Decimal::MAX),
        )
        .unwrap_err();
        assert_eq!(i.kind(), "partial_exit");
    }

    #[test]
    fn a_partial_exit_without_sizes_asks_for_them() {
        let e = run(
            Some(Verb::Sell),
            None,
            Some(Held::Long(None)),
            Some(dec!(1)),
        )
        .unwrap_err();
        assert_eq!(e.kind(), "partial_exit");
        assert!(e.to_string().contains("position_size"), "{e}");
    }

    #[test]
    fn the_fields_of_one_moment_must_agree() {
        use MarketPosition::*;
        assert_eq!(
            held(
                Some(Long),
                Some((dec!(2), "position_size")),
                None,
                "position"
            )
            .unwrap(),
            Some(l(2))
        );
        assert!(
            held(
                Some(Short),
                Some((dec!(2), "position_size")),
                None,
                "position"
            )
            .is_err()
        );
        assert!(held(Some(Flat), None, Some((dec!(1), "x")), "position").is_err());
        assert_eq!(
            held(Some(Short), None, Some((dec!(3), "x")), "position").unwrap(),
            Some(l(-3))
        );
        assert!(held(None, None, Some((dec!(3), "x")), "position").is_err());
        assert_eq!(
            held(None, None, Some((dec!(0), "x")), "position").unwrap(),
            Some(Held::Flat)
        );
    }
}
