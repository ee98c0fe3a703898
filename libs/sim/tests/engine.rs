//! The matching engine through the core API: order types, links, strategies, positions, P&L.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use chrono::NaiveDate;
use jt_sim::core::account::{ModifySpec, OrderSpec};
use jt_sim::core::model::{
    Action, FailureReason, Id, OrdStatus, OrderType, StrategyStatus, TimeInForce,
};
use jt_sim::core::strategy::{AutoTrail, BracketSpec, BreakEven, EntrySpec, StrategySpec};
use jt_sim::core::{Ctx, Exchange, MatchingSettings, SessionMode};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

struct Bench {
    ex: Exchange,
    account: Id,
    mnq: usize,
    mnq_id: Id,
}

fn bench_with(m: MatchingSettings) -> Bench {
    let ex = Exchange::new(
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        m,
        SessionMode::AlwaysOpen,
    );
    let user = ex.create_user("u", "pw", None, None).unwrap();
    let account = ex.add_account(user.id, Some("A1"), dec!(50000)).unwrap().id;
    let c = ex.catalog.front("MNQ").unwrap();
    let (mnq, mnq_id) = (c.index, c.id);
    ex.set_price(mnq, dec!(21000));
    Bench {
        ex,
        account,
        mnq,
        mnq_id,
    }
}

fn bench() -> Bench {
    bench_with(MatchingSettings::default())
}

fn order(
    action: Action,
    qty: u32,
    t: OrderType,
    price: Option<Decimal>,
    stop: Option<Decimal>,
) -> OrderSpec {
    OrderSpec {
        action: Some(action),
        qty,
        order_type: Some(t),
        price,
        stop_price: stop,
        is_automated: true,
        ..OrderSpec::default()
    }
}

impl Bench {
    fn place(&self, spec: &OrderSpec) -> Id {
        self.ex
            .place_order(&Ctx::default(), self.account, self.mnq, spec)
            .unwrap()
    }
    fn price(&self, p: Decimal) {
        self.ex.set_price(self.mnq, p);
    }
    fn status(&self, id: Id) -> OrdStatus {
        self.ex.order_status(id).unwrap()
    }
    fn net(&self) -> i64 {
        self.ex
            .read(self.account, |_, st| {
                st.positions.get(&self.mnq_id).map_or(0, |p| p.pos.net_pos)
            })
            .unwrap()
    }
    fn fills(&self) -> Vec<(Id, Action, u32, Decimal)> {
        self.ex
            .read(self.account, |_, st| {
                st.fills
                    .iter()
                    .map(|f| (f.order_id, f.action, f.qty, f.price))
                    .collect()
            })
            .unwrap()
    }
    fn rec<R>(&self, id: Id, f: impl FnOnce(&jt_sim::core::account::OrderRec) -> R) -> R {
        self.ex
            .read(self.account, |_, st| f(st.orders.get(&id).unwrap()))
            .unwrap()
    }
    fn cash(&self) -> (Decimal, Decimal) {
        self.ex
            .read(self.account, |_, st| (st.cash.amount, st.cash.realized_pnl))
            .unwrap()
    }
}

#[test]
fn market_orders_fill_at_the_price_and_build_the_position() {
    let b = bench();
    let id = b.place(&order(Action::Buy, 2, OrderType::Market, None, None));
    assert_eq!(b.status(id), OrdStatus::Filled);
    assert_eq!(b.net(), 2);
    b.price(dec!(21010));
    let sell = b.place(&order(Action::Sell, 3, OrderType::Market, None, None));
    assert_eq!(b.status(sell), OrdStatus::Filled);
    assert_eq!(b.net(), -1);
    // 2 contracts × 10 points × $2 = $40 realized.
    assert_eq!(b.cash(), (dec!(50040), dec!(40)));
    let (pairs, net_price) =
        b.ex.read(b.account, |_, st| {
            (
                st.fill_pairs
                    .iter()
                    .map(|p| (p.qty, p.buy_price, p.sell_price))
                    .collect::<Vec<_>>(),
                st.positions.get(&b.mnq_id).unwrap().pos.net_price,
            )
        })
        .unwrap();
    assert_eq!(pairs, vec![(2, dec!(21000), dec!(21010))]);
    assert_eq!(net_price, Some(dec!(21010)));
}

#[test]
fn limits_rest_and_fill_at_their_price_when_traded_through() {
    let b = bench();
    let buy = b.place(&order(
        Action::Buy,
        1,
        OrderType::Limit,
        Some(dec!(20990)),
        None,
    ));
    assert_eq!(b.status(buy), OrdStatus::Working);
    b.price(dec!(20995));
    assert_eq!(b.status(buy), OrdStatus::Working);
    b.price(dec!(20980));
    assert_eq!(b.status(buy), OrdStatus::Filled);
    assert_eq!(b.fills()[0].3, dec!(20990));
    // A marketable limit fills at the better market price.
    let sell = b.place(&order(
        Action::Sell,
        1,
        OrderType::Limit,
        Some(dec!(20900)),
        None,
    ));
    assert_eq!(b.status(sell), OrdStatus::Filled);
    assert_eq!(b.fills()[1].3, dec!(20980));
}

#[test]
fn stops_trigger_at_the_market_and_wrong_side_stops_are_rejected() {
    let b = bench();
    let stop = b.place(&order(
        Action::Sell,
        1,
        OrderType::Stop,
        None,
        Some(dec!(20990)),
    ));
    assert_eq!(b.status(stop), OrdStatus::Working);
    b.price(dec!(20991));
    assert_eq!(b.status(stop), OrdStatus::Working);
    // A gap through the stop fills at the market, not at the stop.
    b.price(dec!(20985));
    assert_eq!(b.status(stop), OrdStatus::Filled);
    assert_eq!(b.fills()[0].3, dec!(20985));
    // A buy stop below the market is rejected by the exchange (after the order id exists).
    let wrong = b.place(&order(
        Action::Buy,
        1,
        OrderType::Stop,
        None,
        Some(dec!(20980)),
    ));
    assert_eq!(b.status(wrong), OrdStatus::Rejected);
}

#[test]
fn stop_limits_become_limits() {
    let b = bench();
    let sl = b.place(&order(
        Action::Buy,
        1,
        OrderType::StopLimit,
        Some(dec!(21005)),
        Some(dec!(21004)),
    ));
    assert_eq!(b.status(sl), OrdStatus::Working);
    // Triggered, but the market is above the limit: it rests.
    b.price(dec!(21010));
    assert_eq!(b.status(sl), OrdStatus::Working);
    b.price(dec!(21005));
    assert_eq!(b.status(sl), OrdStatus::Filled);
    assert_eq!(b.fills()[0].3, dec!(21005));
}

#[test]
fn trailing_stops_follow_the_best_price() {
    let b = bench();
    let t = b.place(&OrderSpec {
        peg_difference: Some(dec!(-5)),
        ..order(Action::Sell, 1, OrderType::TrailingStop, None, None)
    });
    assert_eq!(b.rec(t, |o| o.version.stop_price), Some(dec!(20995)));
    b.price(dec!(21020));
    assert_eq!(b.rec(t, |o| o.version.stop_price), Some(dec!(21015)));
    b.price(dec!(21010)); // does not move back
    assert_eq!(b.rec(t, |o| o.version.stop_price), Some(dec!(21015)));
    b.price(dec!(21015));
    assert_eq!(b.status(t), OrdStatus::Filled);
    // Only the quantity of a trailing stop may change.
    let t2 = b.place(&OrderSpec {
        peg_difference: Some(dec!(5)),
        ..order(Action::Buy, 1, OrderType::TrailingStop, None, None)
    });
    let r = b.ex.modify_order(
        &Ctx::default(),
        t2,
        &ModifySpec {
            qty: 1,
            order_type: Some(OrderType::TrailingStop),
            stop_price: Some(dec!(21100)),
            ..ModifySpec::default()
        },
    );
    assert_eq!(
        r.unwrap_err().reason,
        FailureReason::TrailingStopNonOrderQtyModify
    );
}

#[test]
fn oso_brackets_wait_for_the_entry_then_work_as_an_oco() {
    let b = bench();
    let entry = order(Action::Buy, 2, OrderType::Limit, Some(dec!(20990)), None);
    let tp = order(Action::Sell, 0, OrderType::Limit, Some(dec!(21010)), None);
    let sl = order(Action::Sell, 0, OrderType::Stop, None, Some(dec!(20980)));
    let (e, ids) =
        b.ex.place_oso(&Ctx::default(), b.account, b.mnq, &entry, &[tp, sl])
            .unwrap();
    assert_eq!(b.status(e), OrdStatus::Working);
    assert_eq!(b.status(ids[0]), OrdStatus::Suspended);
    assert_eq!(b.status(ids[1]), OrdStatus::Suspended);
    assert_eq!(
        b.rec(ids[0], |o| (o.order.parent_id, o.order.linked_id)),
        (Some(e), Some(ids[1]))
    );
    b.price(dec!(20990));
    assert_eq!(b.status(e), OrdStatus::Filled);
    assert_eq!(b.status(ids[0]), OrdStatus::Working);
    assert_eq!(b.status(ids[1]), OrdStatus::Working);
    b.price(dec!(21010));
    assert_eq!(b.status(ids[0]), OrdStatus::Filled);
    assert_eq!(b.status(ids[1]), OrdStatus::Canceled);
    assert_eq!(b.net(), 0);
    // Canceling an unfilled entry cancels its suspended brackets.
    let entry = order(Action::Buy, 1, OrderType::Limit, Some(dec!(20000)), None);
    let tp = order(Action::Sell, 0, OrderType::Limit, Some(dec!(21500)), None);
    let (e, ids) =
        b.ex.place_oso(&Ctx::default(), b.account, b.mnq, &entry, &[tp])
            .unwrap();
    b.ex.cancel_order(&Ctx::default(), e, None, true, None)
        .unwrap();
    assert_eq!(b.status(e), OrdStatus::Canceled);
    assert_eq!(b.status(ids[0]), OrdStatus::Canceled);
}

#[test]
fn partial_fills_size_the_brackets_to_what_filled() {
    let b = bench_with(MatchingSettings {
        partial_fill_qty: Some(1),
        ..MatchingSettings::default()
    });
    let entry = order(Action::Buy, 3, OrderType::Market, None, None);
    let sl = order(Action::Sell, 0, OrderType::Stop, None, Some(dec!(20900)));
    let tp = order(Action::Sell, 0, OrderType::Limit, Some(dec!(21100)), None);
    let (e, ids) =
        b.ex.place_oso(&Ctx::default(), b.account, b.mnq, &entry, &[sl, tp])
            .unwrap();
    assert_eq!(b.rec(e, |o| o.cum_qty), 1);
    assert_eq!(b.rec(ids[0], |o| o.version.order_qty), 1);
    assert_eq!(b.rec(ids[1], |o| o.version.order_qty), 1);
    b.price(dec!(21001));
    assert_eq!(b.rec(e, |o| o.cum_qty), 2);
    assert_eq!(b.rec(ids[0], |o| o.version.order_qty), 2);
    b.price(dec!(21002));
    assert_eq!(b.status(e), OrdStatus::Filled);
    assert_eq!(b.rec(ids[0], |o| o.version.order_qty), 3);
    assert_eq!(b.rec(ids[1], |o| o.version.order_qty), 3);
    // The target fills one lot at a time; its stop shrinks with it.
    b.price(dec!(21100));
    assert_eq!(b.rec(ids[1], |o| o.cum_qty), 1);
    assert_eq!(b.rec(ids[0], |o| o.version.order_qty), 2);
    b.price(dec!(21101));
    b.price(dec!(21102));
    assert_eq!(b.status(ids[1]), OrdStatus::Filled);
    assert_eq!(b.status(ids[0]), OrdStatus::Canceled);
    assert_eq!(b.net(), 0);
}

#[test]
fn oco_pairs_never_fill_both_sides() {
    let b = bench();
    b.place(&order(Action::Buy, 1, OrderType::Market, None, None));
    let (tp, sl) =
        b.ex.place_oco(
            &Ctx::default(),
            b.account,
            b.mnq,
            &order(Action::Sell, 1, OrderType::Limit, Some(dec!(21010)), None),
            &order(Action::Sell, 1, OrderType::Stop, None, Some(dec!(20990))),
        )
        .unwrap();
    b.price(dec!(20980));
    assert_eq!(b.status(sl), OrdStatus::Filled);
    assert_eq!(b.status(tp), OrdStatus::Canceled);
    b.price(dec!(21020));
    assert_eq!(b.status(tp), OrdStatus::Canceled);
    assert_eq!(b.net(), 0);
}

fn strategy(action: Action, qty: u32, brackets: Vec<BracketSpec>) -> StrategySpec {
    StrategySpec {
        action,
        entry: EntrySpec {
            qty,
            order_type: OrderType::Market,
            price: None,
            stop_price: None,
            tif: Some(TimeInForce::Day),
            cl_ord_id: None,
        },
        brackets,
    }
}

fn bracket(qty: u32, pt: Decimal, sl: Decimal) -> BracketSpec {
    BracketSpec {
        qty,
        profit_target: Some(pt),
        stop_loss: Some(sl),
        trailing_stop: false,
        auto_trail: None,
        break_even: None,
    }
}

type Leg = (
    Id,
    OrderType,
    OrdStatus,
    u32,
    Option<Decimal>,
    Option<Decimal>,
);

fn strategy_orders(b: &Bench, sid: Id) -> Vec<Leg> {
    b.ex.read(b.account, |_, st| {
        st.orders
            .values()
            .filter(|o| o.strategy.is_some_and(|s| s.0 == sid))
            .map(|o| {
                (
                    o.order.id,
                    o.version.order_type,
                    o.order.ord_status,
                    o.version.order_qty,
                    o.version.price,
                    o.version.stop_price,
                )
            })
            .collect()
    })
    .unwrap()
}

#[test]
fn multibracket_legs_exit_in_turn_and_the_last_exit_cancels_the_rest() {
    let b = bench();
    let spec = strategy(
        Action::Buy,
        3,
        vec![
            bracket(1, dec!(5), dec!(-10)),
            bracket(1, dec!(10), dec!(-10)),
            bracket(1, dec!(20), dec!(-10)),
        ],
    );
    let s =
        b.ex.start_strategy(
            &Ctx::default(),
            b.account,
            b.mnq,
            spec,
            "{}".into(),
            None,
            None,
            true,
        )
        .unwrap();
    assert_eq!(s.status, StrategyStatus::ActiveStrategy);
    let orders = strategy_orders(&b, s.id);
    // Entry + 3 targets + 3 stops.
    assert_eq!(orders.len(), 7);
    let targets: Vec<_> = orders.iter().filter(|o| o.1 == OrderType::Limit).collect();
    assert_eq!(
        targets.iter().map(|o| o.4.unwrap()).collect::<Vec<_>>(),
        vec![dec!(21005), dec!(21010), dec!(21020)]
    );
    assert!(
        orders
            .iter()
            .filter(|o| o.1 == OrderType::Stop)
            .all(|o| o.5 == Some(dec!(20990)))
    );
    b.price(dec!(21005));
    assert_eq!(b.net(), 2);
    b.price(dec!(21010));
    assert_eq!(b.net(), 1);
    // The last leg stops out: nothing remains, the strategy is finished.
    b.price(dec!(20990));
    assert_eq!(b.net(), 0);
    let live = strategy_orders(&b, s.id)
        .into_iter()
        .filter(|o| matches!(o.2, OrdStatus::Working | OrdStatus::Suspended))
        .count();
    assert_eq!(live, 0);
    let status =
        b.ex.read(b.account, |_, st| {
            st.strategies.get(&s.id).unwrap().entity.status
        })
        .unwrap();
    assert_eq!(status, StrategyStatus::ExecutionFinished);
}

#[test]
fn a_fill_that_leaves_the_account_flat_ends_the_exits_of_filled_entries() {
    let b = bench();
    let live = |b: &Bench| b.ex.read(b.account, |_, st| st.live_ids.len()).unwrap();
    let strategy_status = |b: &Bench, sid: Id| {
        b.ex.read(b.account, |_, st| {
            st.strategies.get(&sid).unwrap().entity.status
        })
        .unwrap()
    };
    // A multibracket strategy closed by an order of its own: the exits go with the position.
    let s =
        b.ex.start_strategy(
            &Ctx::default(),
            b.account,
            b.mnq,
            strategy(Action::Buy, 2, vec![bracket(2, dec!(10), dec!(-10))]),
            "{}".into(),
            None,
            None,
            true,
        )
        .unwrap();
    assert_eq!(b.net(), 2);
    assert_eq!(live(&b), 2, "target and stop work");
    let close = b.place(&order(Action::Sell, 2, OrderType::Market, None, None));
    assert_eq!(b.status(close), OrdStatus::Filled);
    assert_eq!(b.net(), 0);
    assert_eq!(live(&b), 0, "{:?}", strategy_orders(&b, s.id));
    assert!(
        strategy_orders(&b, s.id)
            .iter()
            .filter(|o| o.1 != OrderType::Market)
            .all(|o| o.2 == OrdStatus::Canceled)
    );
    assert_eq!(strategy_status(&b, s.id), StrategyStatus::ExecutionFinished);
    // An OSO closed the same way, in two lots: its brackets shrink with the first, go with
    // the second.
    let entry = order(Action::Sell, 2, OrderType::Market, None, None);
    let tp = order(Action::Buy, 0, OrderType::Limit, Some(dec!(20990)), None);
    let sl = order(Action::Buy, 0, OrderType::Stop, None, Some(dec!(21010)));
    let (e, ids) =
        b.ex.place_oso(&Ctx::default(), b.account, b.mnq, &entry, &[tp, sl])
            .unwrap();
    assert_eq!(b.status(e), OrdStatus::Filled);
    b.place(&order(Action::Buy, 1, OrderType::Market, None, None));
    assert_eq!(b.net(), -1);
    assert_eq!(b.status(ids[1]), OrdStatus::Working, "still short one");
    b.place(&order(Action::Buy, 1, OrderType::Market, None, None));
    assert_eq!(b.net(), 0);
    assert_eq!(b.status(ids[0]), OrdStatus::Canceled);
    assert_eq!(b.status(ids[1]), OrdStatus::Canceled);
    // The old stop's price trades: nothing fills, the account stays flat.
    let fills = b.fills().len();
    b.price(dec!(21020));
    b.price(dec!(20980));
    assert_eq!((b.net(), b.fills().len()), (0, fills));

    // Orders not tied to a filled entry stay: a breakout OCO placed flat, an OSO whose entry
    // has not filled, through a round trip of other orders.
    b.price(dec!(21000));
    let (up, down) =
        b.ex.place_oco(
            &Ctx::default(),
            b.account,
            b.mnq,
            &order(Action::Buy, 1, OrderType::Stop, None, Some(dec!(21050))),
            &order(Action::Sell, 1, OrderType::Stop, None, Some(dec!(20950))),
        )
        .unwrap();
    let entry = order(Action::Buy, 1, OrderType::Limit, Some(dec!(20900)), None);
    let tp = order(Action::Sell, 0, OrderType::Limit, Some(dec!(20950)), None);
    let (e, ids) =
        b.ex.place_oso(&Ctx::default(), b.account, b.mnq, &entry, &[tp])
            .unwrap();
    b.place(&order(Action::Buy, 1, OrderType::Market, None, None));
    b.place(&order(Action::Sell, 1, OrderType::Market, None, None));
    assert_eq!(b.net(), 0);
    assert_eq!(
        [b.status(up), b.status(down), b.status(e), b.status(ids[0])],
        [
            OrdStatus::Working,
            OrdStatus::Working,
            OrdStatus::Working,
            OrdStatus::Suspended
        ]
    );
}

#[test]
fn auto_trail_and_break_even_move_the_stop() {
    let b = bench();
    let mut trail = bracket(1, dec!(50), dec!(-10));
    trail.auto_trail = Some(AutoTrail {
        distance: dec!(4),
        trigger: dec!(6),
        freq: dec!(1),
    });
    let mut be = bracket(1, dec!(50), dec!(-10));
    be.break_even = Some(BreakEven {
        trigger: dec!(5),
        offset: dec!(1),
    });
    let spec = strategy(Action::Buy, 2, vec![trail, be]);
    let s =
        b.ex.start_strategy(
            &Ctx::default(),
            b.account,
            b.mnq,
            spec,
            "{}".into(),
            None,
            None,
            true,
        )
        .unwrap();
    let stops = |b: &Bench| -> Vec<Decimal> {
        strategy_orders(b, s.id)
            .into_iter()
            .filter(|o| o.1 == OrderType::Stop)
            .map(|o| o.5.unwrap())
            .collect()
    };
    assert_eq!(stops(&b), vec![dec!(20990), dec!(20990)]);
    b.price(dec!(21005)); // +5: break-even fires, the trail is not armed yet
    assert_eq!(stops(&b), vec![dec!(20990), dec!(21001)]);
    b.price(dec!(21006)); // +6: the trail arms at 21006 − 4
    assert_eq!(stops(&b), vec![dec!(21002), dec!(21001)]);
    b.price(dec!(21006.5)); // less than freq: no move
    assert_eq!(stops(&b), vec![dec!(21002), dec!(21001)]);
    b.price(dec!(21012));
    assert_eq!(stops(&b), vec![dec!(21008), dec!(21001)]);
    b.price(dec!(21009)); // pulls back: the stop stays
    assert_eq!(stops(&b), vec![dec!(21008), dec!(21001)]);
    b.price(dec!(21007.75)); // trail stop hit
    assert_eq!(b.net(), 1);
    b.price(dec!(21001));
    assert_eq!(b.net(), 0);
    // Realized: (21007.75 − 21000) + (21001 − 21000) = 8.75 points × $2.
    assert_eq!(b.cash().1, dec!(17.5));
}

#[test]
fn short_strategies_mirror_and_interrupt_cancels_an_unfilled_entry() {
    let b = bench();
    let spec = strategy(Action::Sell, 1, vec![bracket(1, dec!(-30), dec!(15))]);
    let s =
        b.ex.start_strategy(
            &Ctx::default(),
            b.account,
            b.mnq,
            spec,
            "{}".into(),
            None,
            None,
            true,
        )
        .unwrap();
    let orders = strategy_orders(&b, s.id);
    assert!(
        orders
            .iter()
            .any(|o| o.1 == OrderType::Limit && o.4 == Some(dec!(20970)))
    );
    assert!(
        orders
            .iter()
            .any(|o| o.1 == OrderType::Stop && o.5 == Some(dec!(21015)))
    );
    assert_eq!(b.net(), -1);

    let mut limit_entry = strategy(Action::Buy, 1, vec![bracket(1, dec!(5), dec!(-5))]);
    limit_entry.entry.order_type = OrderType::Limit;
    limit_entry.entry.price = Some(dec!(20000));
    let s2 =
        b.ex.start_strategy(
            &Ctx::default(),
            b.account,
            b.mnq,
            limit_entry,
            "{}".into(),
            None,
            None,
            true,
        )
        .unwrap();
    let after = b.ex.interrupt_strategy(&Ctx::default(), s2.id).unwrap();
    assert_eq!(after.status, StrategyStatus::StoppedByUser);
    assert!(
        strategy_orders(&b, s2.id)
            .iter()
            .all(|o| o.2 == OrdStatus::Canceled)
    );
}

#[test]
fn bad_strategies_are_refused_before_anything_is_placed() {
    let b = bench();
    let wrong_sign = strategy(Action::Buy, 1, vec![bracket(1, dec!(-5), dec!(5))]);
    assert!(
        b.ex.start_strategy(
            &Ctx::default(),
            b.account,
            b.mnq,
            wrong_sign,
            "{}".into(),
            None,
            None,
            true
        )
        .is_err()
    );
    let too_many = strategy(Action::Buy, 1, vec![bracket(2, dec!(5), dec!(-5))]);
    assert!(
        b.ex.start_strategy(
            &Ctx::default(),
            b.account,
            b.mnq,
            too_many,
            "{}".into(),
            None,
            None,
            true
        )
        .is_err()
    );
    assert_eq!(b.ex.live_order_count(b.account), 0);
}

#[test]
fn cancel_modify_and_too_late() {
    let b = bench();
    let id = b.place(&order(
        Action::Buy,
        2,
        OrderType::Limit,
        Some(dec!(20900)),
        None,
    ));
    let cmd =
        b.ex.modify_order(
            &Ctx::default(),
            id,
            &ModifySpec {
                qty: 3,
                order_type: Some(OrderType::Limit),
                price: Some(dec!(20950)),
                ..ModifySpec::default()
            },
        )
        .unwrap();
    assert!(cmd > 0);
    assert_eq!(
        b.rec(id, |o| (o.version.order_qty, o.version.price)),
        (3, Some(dec!(20950)))
    );
    // Modified through the market: fills at the market.
    b.ex.modify_order(
        &Ctx::default(),
        id,
        &ModifySpec {
            qty: 3,
            order_type: Some(OrderType::Limit),
            price: Some(dec!(21010)),
            ..ModifySpec::default()
        },
    )
    .unwrap();
    assert_eq!(b.status(id), OrdStatus::Filled);
    // Canceling a filled order: the command exists and is rejected as too late.
    let cmd =
        b.ex.cancel_order(&Ctx::default(), id, None, true, None)
            .unwrap();
    let report =
        b.ex.read(b.account, |_, st| {
            st.command_reports
                .iter()
                .find(|r| r.command_id == cmd)
                .map(|r| r.reject_reason)
        })
        .unwrap();
    assert_eq!(report, Some(Some(FailureReason::TooLate)));
    assert_eq!(b.status(id), OrdStatus::Filled);
}

#[test]
fn liquidation_cancels_working_orders_and_flattens() {
    let b = bench();
    b.place(&order(Action::Buy, 3, OrderType::Market, None, None));
    let tp = b.place(&order(
        Action::Sell,
        3,
        OrderType::Limit,
        Some(dec!(21100)),
        None,
    ));
    let close =
        b.ex.liquidate(&Ctx::default(), b.account, b.mnq_id, false)
            .unwrap()
            .unwrap();
    assert_eq!(b.status(tp), OrdStatus::Canceled);
    assert_eq!(b.status(close), OrdStatus::Filled);
    assert_eq!(b.net(), 0);
    // Flat: nothing to close, but working orders of the contract are still cancelled (the
    // documented request is "cancel orders … and close that position").
    let resting = b.place(&order(
        Action::Buy,
        1,
        OrderType::Limit,
        Some(dec!(20000)),
        None,
    ));
    assert_eq!(
        b.ex.liquidate(&Ctx::default(), b.account, b.mnq_id, false)
            .unwrap(),
        None
    );
    assert_eq!(b.status(resting), OrdStatus::Canceled);
    // A running strategy is stopped and every one of its orders cancelled.
    let s =
        b.ex.start_strategy(
            &Ctx::default(),
            b.account,
            b.mnq,
            strategy(Action::Buy, 1, vec![bracket(1, dec!(10), dec!(-10))]),
            "{}".into(),
            None,
            None,
            true,
        )
        .unwrap();
    b.ex.liquidate(&Ctx::default(), b.account, b.mnq_id, false)
        .unwrap()
        .unwrap();
    assert_eq!(b.net(), 0);
    assert!(
        strategy_orders(&b, s.id)
            .iter()
            .all(|o| matches!(o.2, OrdStatus::Filled | OrdStatus::Canceled))
    );
    let status =
        b.ex.read(b.account, |_, st| {
            st.strategies.get(&s.id).unwrap().entity.status
        })
        .unwrap();
    assert_eq!(status, StrategyStatus::StoppedByUser);
}

#[test]
fn ioc_limits_that_cannot_fill_expire() {
    let b = bench();
    let id = b.place(&OrderSpec {
        tif: Some(TimeInForce::Ioc),
        ..order(Action::Buy, 1, OrderType::Limit, Some(dec!(20900)), None)
    });
    assert_eq!(b.status(id), OrdStatus::Expired);
}

#[test]
fn commissions_and_slippage() {
    let b = bench_with(MatchingSettings {
        partial_fill_qty: None,
        slippage_ticks: 2,
        commission_per_contract: dec!(0.5),
    });
    b.place(&order(Action::Buy, 2, OrderType::Market, None, None));
    assert_eq!(b.fills()[0].3, dec!(21000.5));
    b.place(&order(Action::Sell, 2, OrderType::Market, None, None));
    assert_eq!(b.fills()[1].3, dec!(20999.5));
    // −1 point × 2 contracts × $2 = −$4, commissions 4 × $0.50 = $2.
    assert_eq!(b.cash(), (dec!(49994), dec!(-4)));
}

#[test]
fn closed_session_refuses_orders() {
    let b = bench();
    b.ex.set_session_mode(SessionMode::Closed);
    let r =
        b.ex.place_order(
            &Ctx::default(),
            b.account,
            b.mnq,
            &order(Action::Buy, 1, OrderType::Market, None, None),
        )
        .unwrap_err();
    assert_eq!(r.reason, FailureReason::SessionClosed);
}
