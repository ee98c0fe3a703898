//! What one leader fill means for one follower: the leader's position before and after, the
//! follower's symbol and sizing after its contract mapping, and the step (DOMAIN.md §10,
//! `jt_domain::copy`). Pure: no store, no bus.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use jt_broker::{ContractId, OrderReport, OrderType};
use jt_domain::copy::{CopyAction, FollowerSizing, copy_delta};
use jt_domain::{Direction, Side, instrument};
use jt_messages::ProtectionKind;
use jt_store::repo::copy::{ContractMapping, Follower};
use rust_decimal::Decimal;

/// How the leader's position on one contract changed with one fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Signed net before the fill.
    pub prev: i64,
    /// Signed net after it.
    pub new: i64,
}

/// The signed quantity of a fill.
#[must_use]
pub fn signed(side: Side, qty: u32) -> i64 {
    match side {
        Side::Buy => i64::from(qty),
        Side::Sell => -i64::from(qty),
    }
}

/// How many fills per contract are remembered with their change (a redelivery of one of them
/// gets the same change back).
const RECENT: usize = 512;

#[derive(Debug, Default)]
struct Book {
    net: i64,
    /// Fills at or before this time are part of the seed (the store's position): a replay of
    /// one of them changes nothing.
    seeded_at: Option<DateTime<Utc>>,
    /// The newest fill time applied.
    last_at: Option<DateTime<Utc>>,
    recent: VecDeque<(String, Change)>,
}

/// Where a fill stands against the tracked position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// A fill seen for the first time, or seen again (a redelivery): the change it made.
    Change(Change),
    /// An older fill than the tracked position (a session-end replay, a reconnect's snapshot
    /// after a restart): already part of the position, and not copied now.
    Old,
}

/// The leaders' positions per (sub-account, contract), as the copier's fills built them.
#[derive(Debug, Default)]
pub struct Positions {
    books: HashMap<(String, String), Book>,
}

impl Positions {
    /// Whether the contract of `sub` is tracked (else it must be seeded first).
    #[must_use]
    pub fn knows(&self, sub: &str, contract: &str) -> bool {
        self.books
            .contains_key(&(sub.to_owned(), contract.to_owned()))
    }

    /// Starts tracking from the store's picture: `net` as of `at` (`None`: no position known).
    pub fn seed(&mut self, sub: &str, contract: &str, net: i64, at: Option<DateTime<Utc>>) {
        self.books.insert(
            (sub.to_owned(), contract.to_owned()),
            Book {
                net,
                seeded_at: at,
                last_at: at,
                recent: VecDeque::new(),
            },
        );
    }

    /// Starts tracking from the broker's picture: `net` after the fills already handled, the
    /// last of them at `at`; `handled` are those at exactly `at`, oldest first, with their
    /// signed quantities: seen again (a redelivery of a fill copied to some followers only)
    /// they give the change they made, while another fill at that time is still news.
    pub fn seed_handled(
        &mut self,
        sub: &str,
        contract: &str,
        net: i64,
        at: DateTime<Utc>,
        handled: &[(String, i64)],
    ) {
        let mut recent = VecDeque::new();
        let mut after = net;
        for (id, signed_qty) in handled.iter().rev() {
            let change = Change {
                prev: after - signed_qty,
                new: after,
            };
            recent.push_front((id.clone(), change));
            after = change.prev;
        }
        self.books.insert(
            (sub.to_owned(), contract.to_owned()),
            Book {
                net,
                seeded_at: Some(at),
                last_at: Some(at),
                recent,
            },
        );
    }

    /// Every tracked contract of `sub`: `(contract, net, state)`, where `state` names the
    /// position's state (the last fill applied): auto-sync derives its correction's identity
    /// from it, so a repeated check of the same state is the same correction.
    #[must_use]
    pub fn of(&self, sub: &str) -> Vec<(String, i64, String)> {
        self.books
            .iter()
            .filter(|((s, _), _)| s == sub)
            .map(|((_, contract), book)| {
                let state = book.recent.back().map_or_else(
                    || {
                        format!(
                            "seed-{}",
                            book.seeded_at.map_or(0, |t| t.timestamp_millis())
                        )
                    },
                    |(id, _)| id.clone(),
                );
                (contract.clone(), book.net, state)
            })
            .collect()
    }

    /// The tracked net of `sub`'s `contract`, if it is tracked.
    #[must_use]
    pub fn net(&self, sub: &str, contract: &str) -> Option<i64> {
        self.books
            .get(&(sub.to_owned(), contract.to_owned()))
            .map(|b| b.net)
    }

    /// Whether a fill would be news to the tracked position: not applied yet, and not older
    /// than it ([`Positions::apply`] would give it a new change). An untracked contract knows
    /// no fill.
    #[must_use]
    pub fn is_new(&self, sub: &str, contract: &str, fill_id: &str, at: DateTime<Utc>) -> bool {
        self.books
            .get(&(sub.to_owned(), contract.to_owned()))
            .is_none_or(|book| {
                !book.recent.iter().any(|(id, _)| id == fill_id)
                    && book.seeded_at.is_none_or(|s| at >= s)
                    && book.last_at.is_none_or(|l| at >= l)
            })
    }

    /// Applies one fill (once: a fill id seen again returns its change unchanged).
    pub fn apply(
        &mut self,
        sub: &str,
        contract: &str,
        fill_id: &str,
        signed_qty: i64,
        at: DateTime<Utc>,
    ) -> Tracked {
        let book = self
            .books
            .entry((sub.to_owned(), contract.to_owned()))
            .or_default();
        if let Some((_, change)) = book.recent.iter().find(|(id, _)| id == fill_id) {
            return Tracked::Change(*change);
        }
        if book.seeded_at.is_some_and(|s| at < s) || book.last_at.is_some_and(|l| at < l) {
            return Tracked::Old;
        }
        let change = Change {
            prev: book.net,
            new: book.net + signed_qty,
        };
        book.net = change.new;
        book.last_at = Some(at);
        book.recent.push_back((fill_id.to_owned(), change));
        if book.recent.len() > RECENT {
            book.recent.pop_front();
        }
        Tracked::Change(change)
    }
}

/// The seed of a contract's tracking before a fill at `at`, from the store's position
/// (`(net, time of that state)`; `None`: none stored, flat): the net before the fill and the
/// time from which fills are applied. A stored state as new as the fill includes it and every
/// fill after it up to the state's time (the positions service got there first — or a
/// session-end replay after a restart): `included` (their signed sum, the fill's own among them)
/// is taken back out, so the fill and those after it, applied again, end where the store is.
#[must_use]
pub fn seed_before(
    stored: Option<(i64, DateTime<Utc>)>,
    included: i64,
    at: DateTime<Utc>,
) -> (i64, Option<DateTime<Utc>>) {
    match stored {
        None => (0, None),
        Some((net, time)) if time >= at => (net - included, Some(at)),
        Some((net, time)) => (net, Some(time)),
    }
}

/// The signed sum of the fills a stored state of `time` includes from the fill `(id, signed,
/// at)` on: the recorded fills `(id, signed, filled_at)` of the contract at or after `at` and at
/// or before `time`, and the fill itself when it is not recorded yet.
#[must_use]
pub fn included_since(
    fill: (&str, i64, DateTime<Utc>),
    recorded: &[(String, i64, DateTime<Utc>)],
    time: DateTime<Utc>,
) -> i64 {
    let (id, signed_qty, at) = fill;
    let mut sum: i64 = recorded
        .iter()
        .filter(|(_, _, t)| *t >= at && *t <= time)
        .map(|(_, q, _)| q)
        .sum();
    if !recorded.iter().any(|(r, _, _)| r == id) {
        sum += signed_qty;
    }
    sum
}

/// The follower's side of a leader contract: its symbol and its sizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The contract the follower trades (`MNQZ6` for a leader's `NQZ6` under NQ → MNQ).
    pub symbol: String,
    /// Multiplier (times the mapping's ratio), cap, TP/SL.
    pub sizing: FollowerSizing,
}

/// The follower's symbol and sizing for the leader's `contract` (a broker contract name such as
/// `NQZ6`, or a root): the first mapping whose source root is the contract's root replaces the
/// root and scales the quantity by its ratio.
#[must_use]
pub fn target(follower: &Follower, mappings: &[ContractMapping], contract: &str) -> Target {
    let upper = contract.trim().to_ascii_uppercase();
    let mapped = instrument::resolve_ticker(&upper).ok().and_then(|i| {
        mappings
            .iter()
            .find(|m| m.source_root.eq_ignore_ascii_case(i.root))
            .and_then(|m| {
                upper.strip_prefix(i.root).map(|suffix| {
                    (
                        format!("{}{suffix}", m.target_root.to_ascii_uppercase()),
                        m.quantity_ratio,
                    )
                })
            })
    });
    let (symbol, ratio) = mapped.unwrap_or((upper, Decimal::ONE));
    Target {
        symbol,
        sizing: FollowerSizing {
            // The ratio is folded into the multiplier: one rounding of q × ratio × multiplier,
            // and fractional ratios work too.
            multiplier: follower.multiplier * ratio,
            max_position_size: follower.max_position_size.unwrap_or(0),
            copy_tp: follower.copy_tp,
            copy_sl: follower.copy_sl,
            quantity_ratio: 1,
        },
    }
}

/// The step of a follower for a leader change.
///
/// # Errors
/// A multiplier the quantity function refuses (≤ 0, or too large).
pub fn step(change: Change, target: &Target) -> Result<CopyAction, String> {
    copy_delta(change.prev, change.new, &target.sizing).map_err(|e| e.to_string())
}

/// The side and quantity of the follower's order for a step (copy log), if it sends one.
#[must_use]
pub fn order_of(step: &CopyAction) -> Option<(Side, u32)> {
    match *step {
        CopyAction::Nothing => None,
        CopyAction::Entry { side, qty, .. }
        | CopyAction::Increase { side, qty }
        | CopyAction::Reduce { side, qty } => Some((side, qty)),
        CopyAction::Close {
            direction,
            expected_qty,
        } => Some((direction.exit_side(), expected_qty)),
        CopyAction::Reverse {
            entry_side,
            entry_qty,
            ..
        } => Some((entry_side, entry_qty)),
    }
}

/// The follower's signed net the leader's signed `net` implies (auto-sync): the same quantity
/// function as a copy, `f(|net|)` on the leader's side; flat for a flat leader.
///
/// # Errors
/// A multiplier the quantity function refuses (≤ 0, or too large).
pub fn implied(net: i64, target: &Target) -> Result<i64, String> {
    if net == 0 {
        return Ok(0);
    }
    let size = jt_domain::copy::follower_quantity(
        u32::try_from(net.unsigned_abs()).unwrap_or(u32::MAX),
        &target.sizing,
    )
    .map_err(|e| e.to_string())?;
    Ok(i64::from(size) * net.signum())
}

/// The step that brings a follower holding `held` (signed, read at its broker) to `want`
/// (signed, [`implied`]): an entry from flat, a close to flat, an add or trim by the
/// difference on the same side, a reversal across sides. [`CopyAction::Nothing`] when it holds
/// what it should. Unlike [`step`], the quantities are the follower's own contracts, read at
/// the broker: never a re-send of the leader's change.
#[must_use]
pub fn correction(held: i64, want: i64, target: &Target) -> CopyAction {
    let size = |n: i64| u32::try_from(n.unsigned_abs()).unwrap_or(u32::MAX);
    let (copy_tp, copy_sl) = (target.sizing.copy_tp, target.sizing.copy_sl);
    match (Direction::of_net(held), Direction::of_net(want)) {
        _ if held == want => CopyAction::Nothing,
        (None, None) => CopyAction::Nothing,
        (None, Some(to)) => CopyAction::Entry {
            side: to.entry_side(),
            qty: size(want),
            take_profit: copy_tp,
            stop: copy_sl,
        },
        (Some(from), None) => CopyAction::Close {
            direction: from,
            expected_qty: size(held),
        },
        (Some(from), Some(to)) if from != to => CopyAction::Reverse {
            close_direction: from,
            expected_close_qty: size(held),
            entry_side: to.entry_side(),
            entry_qty: size(want),
            take_profit: copy_tp,
            stop: copy_sl,
        },
        (Some(side), Some(_)) if size(want) > size(held) => CopyAction::Increase {
            side: side.entry_side(),
            qty: size(want) - size(held),
        },
        (Some(side), Some(_)) => CopyAction::Reduce {
            side: side.exit_side(),
            qty: size(held) - size(want),
        },
    }
}

/// The intent an order of ours was placed for: the 32 hex digits after `jt` in its client
/// order id (`jt_messages::client_order_id`; a protective leg's suffix ignored).
#[must_use]
pub fn intent_of(client_order_id: Option<&str>) -> Option<uuid::Uuid> {
    let c = client_order_id.filter(|c| is_ours(Some(c)))?;
    uuid::Uuid::try_parse(c.get(2..34)?).ok()
}

/// Whether a client order id is one of ours (`jt` + 32 hex digits, with an optional suffix for
/// protective legs): `jt_messages::client_order_id`.
#[must_use]
pub fn is_ours(client_order_id: Option<&str>) -> bool {
    client_order_id.is_some_and(|c| {
        c.strip_prefix("jt").is_some_and(|rest| {
            rest.len() >= 32 && rest.as_bytes()[..32].iter().all(u8::is_ascii_hexdigit)
        })
    })
}

/// One protective order of the leader: its broker id and its price (a take-profit's limit, a
/// stop's trigger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// The leader's order.
    pub order: OrderReport,
    /// Its price.
    pub price: Decimal,
}

/// The leader's protection of a `direction` position on `contract`, from its working orders
/// at the broker: exit-side limits are take-profits, exit-side stops (stop, stop-limit,
/// trailing) are stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderProtection {
    /// The outermost take-profit (the last to fill: farthest from the market).
    pub take_profit: Option<Level>,
    /// The outermost stop (the last to trigger).
    pub stop: Option<Level>,
}

impl LeaderProtection {
    /// The level of `kind`.
    #[must_use]
    pub fn of(&self, kind: ProtectionKind) -> Option<&Level> {
        match kind {
            ProtectionKind::TakeProfit => self.take_profit.as_ref(),
            ProtectionKind::Stop => self.stop.as_ref(),
        }
    }
}

/// The kind of protection `order` is for a `direction` position: an exit-side limit is a
/// take-profit, an exit-side stop of any kind a stop; anything else (an entry-side order, a
/// market order) none.
#[must_use]
pub fn protection_kind(order: &OrderReport, direction: Direction) -> Option<ProtectionKind> {
    if order.side != direction.exit_side() {
        return None;
    }
    match order.order_type? {
        OrderType::Limit => Some(ProtectionKind::TakeProfit),
        OrderType::Stop
        | OrderType::StopLimit
        | OrderType::TrailingStop
        | OrderType::TrailingStopLimit => Some(ProtectionKind::Stop),
        OrderType::Market | OrderType::Other => None,
    }
}

/// The leader's protection of its `direction` position on `contract` (see
/// [`LeaderProtection`]). Several take-profits (a bracket's scaled legs) or several stops:
/// the **outermost** one of each kind is copied — the follower holds one take-profit and one
/// stop for its whole position, and the leader's nearer legs reach it as fills (trims) when
/// they fill; the outermost is the one left protecting the leader's last contract.
#[must_use]
pub fn leader_protection(
    orders: &[OrderReport],
    contract: &ContractId,
    direction: Direction,
) -> LeaderProtection {
    let mut out = LeaderProtection::default();
    for o in orders.iter().filter(|o| o.is_working_on(contract)) {
        let Some(kind) = protection_kind(o, direction) else {
            continue;
        };
        let price = match kind {
            ProtectionKind::TakeProfit => o.price,
            ProtectionKind::Stop => o.stop_price,
        };
        let Some(price) = price else { continue };
        // Farther from the market: higher for a long's take-profit, lower for its stop.
        let farther = |a: Decimal, b: Decimal| match (direction, kind) {
            (Direction::Long, ProtectionKind::TakeProfit)
            | (Direction::Short, ProtectionKind::Stop) => a > b,
            _ => a < b,
        };
        let slot = match kind {
            ProtectionKind::TakeProfit => &mut out.take_profit,
            ProtectionKind::Stop => &mut out.stop,
        };
        if slot.as_ref().is_none_or(|l| farther(price, l.price)) {
            *slot = Some(Level {
                order: o.clone(),
                price,
            });
        }
    }
    out
}

/// A leader's protective price for the follower's `symbol` (after the contract mapping): the
/// same price — a mapping pairs contracts quoted alike (NQ → MNQ) — on the follower's tick,
/// rounded towards the position's entry when it falls between ticks (a stop never farther, a
/// target never beyond the leader's). `None` for a symbol no instrument knows.
#[must_use]
pub fn mapped_price(
    symbol: &str,
    direction: Direction,
    kind: ProtectionKind,
    price: Decimal,
) -> Option<Decimal> {
    let tick = instrument::resolve_ticker(symbol).ok()?.tick_size;
    if tick <= Decimal::ZERO {
        return Some(price);
    }
    let ticks = price / tick;
    // Towards the entry: down for a long's target and a short's stop, up otherwise.
    let down = matches!(
        (direction, kind),
        (Direction::Long, ProtectionKind::TakeProfit) | (Direction::Short, ProtectionKind::Stop)
    );
    let on = if down { ticks.floor() } else { ticks.ceil() } * tick;
    Some(on.normalize())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jt_domain::Direction;
    use jt_store::{FollowerId, LeaderId, SubAccountId, UserId};
    use rust_decimal_macros::dec;

    fn follower(multiplier: Decimal) -> Follower {
        Follower {
            id: FollowerId::new(),
            owner: UserId::new(),
            leader: LeaderId::new(),
            sub_account: SubAccountId::new(),
            label: None,
            multiplier,
            max_position_size: None,
            enabled: true,
            copy_tp: true,
            copy_sl: true,
            daily_loss_limit: None,
            max_drawdown: None,
            locked_out: false,
            lockout_reason: None,
            closed_by_hand_stays_flat: false,
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    /// The follower's signed position after applying `step` to `from`.
    fn after(from: i64, step: CopyAction) -> i64 {
        match step {
            CopyAction::Nothing => from,
            CopyAction::Entry { side, qty, .. }
            | CopyAction::Increase { side, qty }
            | CopyAction::Reduce { side, qty } => from + signed(side, qty),
            CopyAction::Close { .. } => 0,
            CopyAction::Reverse {
                entry_side,
                entry_qty,
                ..
            } => signed(entry_side, entry_qty),
        }
    }

    #[test]
    fn the_five_steps_give_every_follower_the_table() {
        // entry 2 → add 2 → trim 1 → reversal to short 2 → flat.
        let leader_fills = [2, 2, -1, -5, 2];
        let expected = [
            (dec!(1), [2, 4, 3, -2, 0]),
            (dec!(2), [4, 8, 6, -4, 0]),
            (dec!(0.5), [1, 2, 2, -1, 0]),
        ];
        for (multiplier, table) in expected {
            let f = follower(multiplier);
            let tgt = target(&f, &[], "MNQZ6");
            let mut positions = Positions::default();
            positions.seed("L", "MNQZ6", 0, None);
            let mut held = 0;
            for (i, (q, want)) in leader_fills.iter().zip(table).enumerate() {
                let i64i = i64::try_from(i).unwrap();
                let Tracked::Change(change) =
                    positions.apply("L", "MNQZ6", &format!("f{i}"), *q, t(i64i))
                else {
                    panic!("a new fill is a change")
                };
                held = after(held, step(change, &tgt).unwrap());
                assert_eq!(held, want, "multiplier {multiplier}, step {i}");
            }
        }
    }

    #[test]
    fn a_seed_from_the_handled_fills_copies_the_missed_ones_and_gives_a_redelivery_its_change() {
        // The broker: +2 at t1, +1 at t2 and +1 also at t2 (handled: copied), then +3 at t3
        // and -1 at t4 missed while no one held the login; its net now 5.
        let mut positions = Positions::default();
        let handled = [("b".to_owned(), 1), ("c".to_owned(), 1)];
        positions.seed_handled("L", "NQZ6", 5 - (3 - 1), t(2), &handled);
        assert_eq!(positions.net("L", "NQZ6"), Some(2 + 1));
        // Older, or handled at the seed's time: not news; a missed fill at that time would be.
        assert!(!positions.is_new("L", "NQZ6", "a", t(1)));
        assert!(!positions.is_new("L", "NQZ6", "c", t(2)));
        assert!(positions.is_new("L", "NQZ6", "c2", t(2)));
        assert!(positions.is_new("L", "NQZ6", "d", t(3)));
        assert!(positions.is_new("L", "Other", "d", t(0)));
        // A redelivery of a handled fill gets the change it made (copied to the followers
        // that miss it), not "no change".
        assert_eq!(
            positions.apply("L", "NQZ6", "c", 1, t(2)),
            Tracked::Change(Change { prev: 2, new: 3 })
        );
        assert_eq!(
            positions.apply("L", "NQZ6", "b", 1, t(2)),
            Tracked::Change(Change { prev: 1, new: 2 })
        );
        assert_eq!(positions.apply("L", "NQZ6", "a", 2, t(1)), Tracked::Old);
        // The missed fills, in order, from the net after the handled ones to the broker's.
        assert_eq!(
            positions.apply("L", "NQZ6", "d", 3, t(3)),
            Tracked::Change(Change { prev: 3, new: 6 })
        );
        assert_eq!(
            positions.apply("L", "NQZ6", "e", -1, t(4)),
            Tracked::Change(Change { prev: 6, new: 5 })
        );
        assert!(!positions.is_new("L", "NQZ6", "e", t(4)));
    }

    #[test]
    fn a_mapping_changes_the_root_and_scales_by_its_ratio() {
        let f = follower(dec!(1));
        let mapping = ContractMapping {
            source_root: "NQ".into(),
            target_root: "MNQ".into(),
            quantity_ratio: dec!(10),
        };
        let tgt = target(&f, std::slice::from_ref(&mapping), "NQZ6");
        assert_eq!(tgt.symbol, "MNQZ6");
        assert_eq!(
            step(Change { prev: 0, new: -2 }, &tgt).unwrap(),
            CopyAction::Entry {
                side: Side::Sell,
                qty: 20,
                take_profit: true,
                stop: true
            }
        );
        // Another root is not mapped.
        assert_eq!(target(&f, &[mapping], "ESZ6").symbol, "ESZ6");
        let close = step(Change { prev: 3, new: 0 }, &tgt).unwrap();
        assert_eq!(
            close,
            CopyAction::Close {
                direction: Direction::Long,
                expected_qty: 30
            }
        );
    }

    #[test]
    fn a_fill_seen_again_is_the_same_change_and_an_old_one_changes_nothing() {
        let mut p = Positions::default();
        p.seed("L", "C", 1, Some(t(10)));
        assert_eq!(p.apply("L", "C", "old", 1, t(5)), Tracked::Old);
        let first = p.apply("L", "C", "a", 2, t(11));
        assert_eq!(first, Tracked::Change(Change { prev: 1, new: 3 }));
        assert_eq!(p.apply("L", "C", "a", 2, t(11)), first);
        assert_eq!(
            p.apply("L", "C", "b", -3, t(12)),
            Tracked::Change(Change { prev: 3, new: 0 })
        );
        assert!(p.knows("L", "C") && !p.knows("L", "D"));
    }

    #[test]
    fn a_seed_from_the_store_leaves_the_fill_out_once() {
        // Nothing stored: flat, every fill counts.
        assert_eq!(seed_before(None, 2, t(10)), (0, None));
        // Stored before the fill: the state before it.
        assert_eq!(seed_before(Some((4, t(5))), -1, t(10)), (4, Some(t(5))));
        // Stored as new as the fill (it includes it): the fill taken back out, then applied.
        let (net, at) = seed_before(Some((3, t(10))), -1, t(10));
        assert_eq!((net, at), (4, Some(t(10))));
        let mut p = Positions::default();
        p.seed("L", "C", net, at);
        assert_eq!(
            p.apply("L", "C", "trim", -1, t(10)),
            Tracked::Change(Change { prev: 4, new: 3 })
        );
    }

    #[test]
    fn a_replay_after_a_restart_ends_where_the_store_is() {
        // The day: +2, +2, -1 (the store: 3 at t(12)). A restarted copier gets the session's
        // replay, oldest first.
        let recorded = vec![
            ("a".to_owned(), 2, t(10)),
            ("b".to_owned(), 2, t(11)),
            ("c".to_owned(), -1, t(12)),
        ];
        let included = included_since(("a", 2, t(10)), &recorded, t(12));
        assert_eq!(included, 3);
        let (net, at) = seed_before(Some((3, t(12))), included, t(10));
        let mut p = Positions::default();
        p.seed("L", "C", net, at);
        for (id, q, when) in &recorded {
            let _ = p.apply("L", "C", id, *q, *when);
        }
        assert_eq!(
            p.apply("L", "C", "d", 1, t(13)),
            Tracked::Change(Change { prev: 3, new: 4 }),
            "the next live fill starts from the store's position"
        );
        // A fill not recorded yet counts itself.
        assert_eq!(included_since(("x", -1, t(12)), &[], t(12)), -1);
    }

    #[test]
    fn our_client_order_ids_are_recognised() {
        let ours = jt_messages::intent::client_order_id(jt_messages::derived_id("t", &["1"]));
        assert!(is_ours(Some(&ours)));
        assert!(is_ours(Some(&format!("{ours}-tp1"))));
        assert!(!is_ours(Some("JT_COPY_1")));
        assert!(!is_ours(Some("jtshort")));
        assert!(!is_ours(None));
    }

    #[test]
    fn a_correction_brings_any_follower_position_to_what_the_leader_implies() {
        let mapping = ContractMapping {
            source_root: "NQ".into(),
            target_root: "MNQ".into(),
            quantity_ratio: dec!(10),
        };
        for (multiplier, mappings) in [
            (dec!(1), vec![]),
            (dec!(2), vec![]),
            (dec!(0.5), vec![]),
            (dec!(1), vec![mapping]),
        ] {
            let tgt = target(&follower(multiplier), &mappings, "NQZ6");
            for leader in -4..=4 {
                let want = implied(leader, &tgt).unwrap();
                // The same quantity function as a copy: from flat, the copied entry's size.
                let entry = step(
                    Change {
                        prev: 0,
                        new: leader,
                    },
                    &tgt,
                )
                .unwrap();
                assert_eq!(want, after(0, entry), "{multiplier} {leader}");
                for held in -45..=45 {
                    let fix = correction(held, want, &tgt);
                    assert_eq!(after(held, fix), want, "{multiplier}: {held} → {want}");
                    assert_eq!(fix == CopyAction::Nothing, held == want);
                }
            }
        }
        // The quantities are the follower's own, from what it holds: 1 held, 4 wanted → add 3.
        let tgt = target(&follower(dec!(2)), &[], "NQZ6");
        assert_eq!(
            correction(1, implied(2, &tgt).unwrap(), &tgt),
            CopyAction::Increase {
                side: Side::Buy,
                qty: 3
            }
        );
        assert_eq!(
            correction(-3, 4, &tgt),
            CopyAction::Reverse {
                close_direction: Direction::Short,
                expected_close_qty: 3,
                entry_side: Side::Buy,
                entry_qty: 4,
                take_profit: true,
                stop: true,
            }
        );
    }

    #[test]
    fn an_order_of_ours_names_its_intent() {
        let id = uuid::Uuid::new_v4();
        let ours = format!("jt{}", id.simple());
        assert_eq!(intent_of(Some(&ours)), Some(id));
        assert_eq!(intent_of(Some(&format!("{ours}-tp"))), Some(id));
        assert_eq!(intent_of(Some("by-hand-1")), None);
        assert_eq!(intent_of(None), None);
    }

    #[test]
    fn a_tracked_position_names_its_state_by_its_last_fill() {
        let mut positions = Positions::default();
        positions.seed("L", "NQZ6", 0, None);
        positions.apply("L", "NQZ6", "f1", 2, t(1));
        assert_eq!(positions.of("L"), vec![("NQZ6".into(), 2, "f1".into())]);
        positions.apply("L", "NQZ6", "f2", -2, t(2));
        assert_eq!(positions.of("L"), vec![("NQZ6".into(), 0, "f2".into())]);
        assert!(positions.of("M").is_empty());
    }

    fn order(
        id: &str,
        side: Side,
        order_type: OrderType,
        price: Option<Decimal>,
        stop: Option<Decimal>,
    ) -> OrderReport {
        OrderReport {
            id: jt_broker::OrderId(id.into()),
            client_order_id: None,
            account: jt_broker::AccountId("A".into()),
            contract: Some(ContractId("NQZ6".into())),
            symbol: Some("NQZ6".into()),
            side,
            order_type: Some(order_type),
            qty: Some(1),
            price,
            stop_price: stop,
            status: jt_broker::OrderStatus::Working,
            filled_qty: None,
            avg_fill_price: None,
            parent: None,
            linked: None,
            reject_reason: None,
            timestamp: None,
        }
    }

    #[test]
    fn the_leaders_outermost_target_and_stop_are_its_protection() {
        let nq = ContractId("NQZ6".into());
        let orders = vec![
            order("tp1", Side::Sell, OrderType::Limit, Some(dec!(21010)), None),
            order("tp2", Side::Sell, OrderType::Limit, Some(dec!(21020)), None),
            order("sl1", Side::Sell, OrderType::Stop, None, Some(dec!(20990))),
            order(
                "sl2",
                Side::Sell,
                OrderType::StopLimit,
                Some(dec!(20979)),
                Some(dec!(20980)),
            ),
            // An entry-side limit (a resting add) is no protection of a long.
            order("buy", Side::Buy, OrderType::Limit, Some(dec!(20950)), None),
            // Another contract's stop is not this one's.
            OrderReport {
                contract: Some(ContractId("ESZ6".into())),
                ..order("es", Side::Sell, OrderType::Stop, None, Some(dec!(1)))
            },
            // Cancelled: gone.
            OrderReport {
                status: jt_broker::OrderStatus::Canceled,
                ..order("old", Side::Sell, OrderType::Stop, None, Some(dec!(20900)))
            },
        ];
        let long = leader_protection(&orders, &nq, Direction::Long);
        assert_eq!(long.take_profit.as_ref().unwrap().order.id.0, "tp2");
        assert_eq!(long.take_profit.as_ref().unwrap().price, dec!(21020));
        assert_eq!(long.stop.as_ref().unwrap().order.id.0, "sl2");
        assert_eq!(long.stop.as_ref().unwrap().price, dec!(20980));
        // For a short, the exit side is Buy: the resting buy limit is its target.
        let short = leader_protection(&orders, &nq, Direction::Short);
        assert_eq!(short.take_profit.as_ref().unwrap().order.id.0, "buy");
        assert!(short.stop.is_none());
        let shorts = vec![
            order("a", Side::Buy, OrderType::Limit, Some(dec!(20950)), None),
            order("b", Side::Buy, OrderType::Limit, Some(dec!(20940)), None),
            order("c", Side::Buy, OrderType::Stop, None, Some(dec!(21030))),
            order(
                "d",
                Side::Buy,
                OrderType::TrailingStop,
                None,
                Some(dec!(21040)),
            ),
        ];
        let short = leader_protection(&shorts, &nq, Direction::Short);
        assert_eq!(
            short.of(ProtectionKind::TakeProfit).unwrap().order.id.0,
            "b"
        );
        assert_eq!(short.of(ProtectionKind::Stop).unwrap().order.id.0, "d");
        assert_eq!(
            protection_kind(&shorts[3], Direction::Short),
            Some(ProtectionKind::Stop)
        );
        assert_eq!(protection_kind(&shorts[3], Direction::Long), None);
    }

    #[test]
    fn a_leader_price_maps_onto_the_followers_tick_towards_the_entry() {
        use ProtectionKind::{Stop, TakeProfit};
        // NQ → MNQ: the same price scale and tick; a price on tick is kept exactly.
        assert_eq!(
            mapped_price("MNQZ6", Direction::Long, TakeProfit, dec!(21010.25)),
            Some(dec!(21010.25))
        );
        assert_eq!(
            mapped_price("MNQZ6", Direction::Long, Stop, dec!(20990.50)),
            Some(dec!(20990.5))
        );
        // Between ticks: a long's target rounds down and its stop up (towards the entry); a
        // short's the other way.
        assert_eq!(
            mapped_price("MNQZ6", Direction::Long, TakeProfit, dec!(21010.30)),
            Some(dec!(21010.25))
        );
        assert_eq!(
            mapped_price("MNQZ6", Direction::Long, Stop, dec!(20990.30)),
            Some(dec!(20990.5))
        );
        assert_eq!(
            mapped_price("MNQZ6", Direction::Short, TakeProfit, dec!(20950.30)),
            Some(dec!(20950.5))
        );
        assert_eq!(
            mapped_price("MNQZ6", Direction::Short, Stop, dec!(21030.30)),
            Some(dec!(21030.25))
        );
        // A coarser tick (CL: 0.01; 6E: 0.00005).
        assert_eq!(
            mapped_price("CLZ6", Direction::Long, Stop, dec!(70.123)),
            Some(dec!(70.13))
        );
        assert_eq!(mapped_price("NOPE", Direction::Long, Stop, dec!(1)), None);
    }
}
