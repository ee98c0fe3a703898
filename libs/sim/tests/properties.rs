//! Property tests of the matching engine: random order flow and price paths, then the books
//! must balance: positions are the signed sum of fills, P&L matches an independent FIFO
//! replay of the fills, cash moves by exactly realized P&L minus commissions, linked orders
//! never exit more than their share, limit fills respect their limits.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{HashMap, VecDeque};

use chrono::NaiveDate;
use jt_sim::core::account::OrderSpec;
use jt_sim::core::model::{Action, Id, OrderType};
use jt_sim::core::strategy::{BracketSpec, EntrySpec, StrategySpec};
use jt_sim::core::{Ctx, Exchange, MatchingSettings, SessionMode};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

#[derive(Debug, Clone)]
enum Step {
    Price(i64),
    Market(bool, u32),
    Limit(bool, u32, i64),
    Stop(bool, u32, i64),
    Oco(bool, u32, i64, i64),
    Oso(bool, u32, i64, i64),
    Strategy(bool, u32, i64, i64),
    Cancel(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (-40i64..40).prop_map(Step::Price),
        2 => (any::<bool>(), 1u32..5).prop_map(|(b, q)| Step::Market(b, q)),
        2 => (any::<bool>(), 1u32..5, 1i64..30).prop_map(|(b, q, o)| Step::Limit(b, q, o)),
        2 => (any::<bool>(), 1u32..5, 1i64..30).prop_map(|(b, q, o)| Step::Stop(b, q, o)),
        1 => (any::<bool>(), 1u32..4, 1i64..30, 1i64..30).prop_map(|(b, q, t, s)| Step::Oco(b, q, t, s)),
        1 => (any::<bool>(), 1u32..4, 1i64..30, 1i64..30).prop_map(|(b, q, t, s)| Step::Oso(b, q, t, s)),
        1 => (any::<bool>(), 1u32..4, 1i64..30, 1i64..30).prop_map(|(b, q, t, s)| Step::Strategy(b, q, t, s)),
        1 => (0usize..50).prop_map(Step::Cancel),
    ]
}

struct World {
    ex: Exchange,
    account: Id,
    ci: usize,
    contract_id: Id,
    price: Decimal,
    orders: Vec<Id>,
    ocos: Vec<(Id, Id, u32)>,
    osos: Vec<(Id, Vec<Id>)>,
}

const TICK: Decimal = dec!(0.25);

fn side(buy: bool) -> Action {
    if buy { Action::Buy } else { Action::Sell }
}

fn spec(
    a: Action,
    qty: u32,
    t: OrderType,
    price: Option<Decimal>,
    stop: Option<Decimal>,
) -> OrderSpec {
    OrderSpec {
        action: Some(a),
        qty,
        order_type: Some(t),
        price,
        stop_price: stop,
        is_automated: true,
        ..OrderSpec::default()
    }
}

impl World {
    fn new(m: MatchingSettings) -> World {
        let ex = Exchange::new(
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            m,
            SessionMode::AlwaysOpen,
        );
        let user = ex.create_user("p", "pw", None, None).unwrap();
        let account = ex.add_account(user.id, Some("P1"), dec!(50000)).unwrap().id;
        let c = ex.catalog.front("MNQ").unwrap();
        let (ci, contract_id) = (c.index, c.id);
        ex.set_price(ci, dec!(21000));
        World {
            ex,
            account,
            ci,
            contract_id,
            price: dec!(21000),
            orders: Vec::new(),
            ocos: Vec::new(),
            osos: Vec::new(),
        }
    }

    fn at(&self, ticks: i64) -> Decimal {
        self.price + Decimal::from(ticks) * TICK
    }

    fn run(&mut self, s: &Step) {
        let ctx = Ctx::default();
        match *s {
            Step::Price(t) => {
                self.price = dec!(21000) + Decimal::from(t) * TICK;
                self.ex.set_price(self.ci, self.price);
            }
            Step::Market(b, q) => {
                if let Ok(id) = self.ex.place_order(
                    &ctx,
                    self.account,
                    self.ci,
                    &spec(side(b), q, OrderType::Market, None, None),
                ) {
                    self.orders.push(id);
                }
            }
            Step::Limit(b, q, o) => {
                let p = if b { self.at(-o) } else { self.at(o) };
                if let Ok(id) = self.ex.place_order(
                    &ctx,
                    self.account,
                    self.ci,
                    &spec(side(b), q, OrderType::Limit, Some(p), None),
                ) {
                    self.orders.push(id);
                }
            }
            Step::Stop(b, q, o) => {
                let p = if b { self.at(o) } else { self.at(-o) };
                if let Ok(id) = self.ex.place_order(
                    &ctx,
                    self.account,
                    self.ci,
                    &spec(side(b), q, OrderType::Stop, None, Some(p)),
                ) {
                    self.orders.push(id);
                }
            }
            Step::Oco(b, q, t, st) => {
                // An exit pair: for a sell pair the target is above, the stop below.
                let a = side(b);
                let (tp, sl) = if b {
                    (self.at(-t), self.at(st))
                } else {
                    (self.at(t), self.at(-st))
                };
                if let Ok((x, y)) = self.ex.place_oco(
                    &ctx,
                    self.account,
                    self.ci,
                    &spec(a, q, OrderType::Limit, Some(tp), None),
                    &spec(a, q, OrderType::Stop, None, Some(sl)),
                ) {
                    self.orders.extend([x, y]);
                    self.ocos.push((x, y, q));
                }
            }
            Step::Oso(b, q, t, st) => {
                let a = side(b);
                let exit = a.opposite();
                let (tp, sl) = if b {
                    (self.at(t), self.at(-st))
                } else {
                    (self.at(-t), self.at(st))
                };
                if let Ok((e, ids)) = self.ex.place_oso(
                    &ctx,
                    self.account,
                    self.ci,
                    &spec(a, q, OrderType::Market, None, None),
                    &[
                        spec(exit, 0, OrderType::Limit, Some(tp), None),
                        spec(exit, 0, OrderType::Stop, None, Some(sl)),
                    ],
                ) {
                    self.orders.push(e);
                    self.orders.extend(ids.iter().copied());
                    self.osos.push((e, ids));
                }
            }
            Step::Strategy(b, q, t, st) => {
                let a = side(b);
                let dir = if b {
                    Decimal::ONE
                } else {
                    Decimal::NEGATIVE_ONE
                };
                let spec = StrategySpec {
                    action: a,
                    entry: EntrySpec {
                        qty: q,
                        order_type: OrderType::Market,
                        price: None,
                        stop_price: None,
                        tif: None,
                        cl_ord_id: None,
                    },
                    brackets: vec![BracketSpec {
                        qty: q,
                        profit_target: Some(dir * Decimal::from(t) * TICK),
                        stop_loss: Some(-dir * Decimal::from(st) * TICK),
                        trailing_stop: false,
                        auto_trail: None,
                        break_even: None,
                    }],
                };
                let _ = self.ex.start_strategy(
                    &ctx,
                    self.account,
                    self.ci,
                    spec,
                    "{}".into(),
                    None,
                    None,
                    true,
                );
            }
            Step::Cancel(i) => {
                if !self.orders.is_empty() {
                    let id = self.orders[i % self.orders.len()];
                    let _ = self.ex.cancel_order(&ctx, id, None, true, None);
                }
            }
        }
    }

    fn check(&self, commission: Decimal) {
        let vpp = dec!(2); // MNQ: $2 per point
        self.ex
            .read(self.account, |_, st| {
                // Orders: filled quantity = Σ fills, never more than ordered.
                let mut by_order: HashMap<Id, u32> = HashMap::new();
                for f in &st.fills {
                    *by_order.entry(f.order_id).or_default() += f.qty;
                }
                for o in st.orders.values() {
                    let filled = by_order.get(&o.order.id).copied().unwrap_or(0);
                    assert_eq!(filled, o.cum_qty, "order {}", o.order.id);
                    assert!(
                        o.cum_qty <= o.version.order_qty,
                        "order {} filled {} of {}",
                        o.order.id,
                        o.cum_qty,
                        o.version.order_qty
                    );
                }
                // Limit fills respect their limits.
                for f in &st.fills {
                    let o = &st.orders[&f.order_id];
                    if o.version.order_type == OrderType::Limit
                        && let Some(l) = o.version.price
                    {
                        match f.action {
                            Action::Buy => {
                                assert!(f.price <= l, "buy limit {l} filled at {}", f.price)
                            }
                            Action::Sell => {
                                assert!(f.price >= l, "sell limit {l} filled at {}", f.price)
                            }
                        }
                    }
                }
                // Position = signed sum of fills; an independent FIFO replay gives the same
                // net price and realized P&L.
                let mut lots: VecDeque<(i64, Decimal)> = VecDeque::new();
                let mut net: i64 = 0;
                let mut realized = Decimal::ZERO;
                let mut qty_total: u64 = 0;
                for f in &st.fills {
                    qty_total += u64::from(f.qty);
                    let mut left = i64::from(f.qty) * if f.action == Action::Buy { 1 } else { -1 };
                    while left != 0 && net != 0 && (net > 0) != (left > 0) {
                        let Some(front) = lots.front_mut() else { break };
                        let take = front.0.abs().min(left.abs());
                        let pnl = if net > 0 {
                            f.price - front.1
                        } else {
                            front.1 - f.price
                        };
                        realized += pnl * Decimal::from(take) * vpp;
                        front.0 -= front.0.signum() * take;
                        left -= left.signum() * take;
                        net += if net > 0 { -take } else { take };
                        if front.0 == 0 {
                            lots.pop_front();
                        }
                    }
                    if left != 0 {
                        lots.push_back((left, f.price));
                        net += left;
                    }
                }
                let p = st.positions.get(&self.contract_id);
                assert_eq!(p.map_or(0, |p| p.pos.net_pos), net);
                if let Some(p) = p {
                    let bought: u64 = st
                        .fills
                        .iter()
                        .filter(|f| f.action == Action::Buy)
                        .map(|f| u64::from(f.qty))
                        .sum();
                    let sold: u64 = st
                        .fills
                        .iter()
                        .filter(|f| f.action == Action::Sell)
                        .map(|f| u64::from(f.qty))
                        .sum();
                    assert_eq!((p.pos.bought, p.pos.sold), (bought, sold));
                    let expected_price = (net != 0).then(|| {
                        lots.iter()
                            .map(|l| Decimal::from(l.0.abs()) * l.1)
                            .sum::<Decimal>()
                            / Decimal::from(net.abs())
                    });
                    assert_eq!(p.pos.net_price, expected_price);
                    let paired: u64 = st.fill_pairs.iter().map(|fp| u64::from(fp.qty)).sum();
                    assert_eq!(paired * 2, bought + sold - net.unsigned_abs());
                }
                let pairs_pnl: Decimal = st
                    .fill_pairs
                    .iter()
                    .map(|fp| (fp.sell_price - fp.buy_price) * Decimal::from(fp.qty) * vpp)
                    .sum();
                assert_eq!(st.cash.realized_pnl, realized);
                assert_eq!(pairs_pnl, realized);
                assert_eq!(
                    st.cash.amount,
                    dec!(50000) + realized - commission * Decimal::from(qty_total)
                );
                // Linked exits never exceed their share.
                for (a, b, q) in &self.ocos {
                    let (ca, cb) = (st.orders[a].cum_qty, st.orders[b].cum_qty);
                    assert!(ca + cb <= *q, "OCO {a}/{b} filled {ca}+{cb} of {q}");
                }
                for (e, ids) in &self.osos {
                    let entry = st.orders[e].cum_qty;
                    let exits: u32 = ids.iter().map(|i| st.orders[i].cum_qty).sum();
                    assert!(exits <= entry, "OSO {e}: exits {exits} > entry {entry}");
                }
                for s in st.strategies.values() {
                    let entry = st.orders[&s.entry_id].cum_qty;
                    for br in &s.brackets {
                        let exits: u32 = [br.target_id, br.stop_id]
                            .into_iter()
                            .flatten()
                            .map(|i| st.orders[&i].cum_qty)
                            .sum();
                        assert!(exits <= br.allocated && br.allocated <= entry);
                    }
                }
            })
            .unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn books_balance_under_random_flow(
        steps in proptest::collection::vec(step(), 1..60),
        partial in prop_oneof![Just(None), Just(Some(1u32)), Just(Some(2u32))],
        commission in prop_oneof![Just(Decimal::ZERO), Just(dec!(0.5))],
    ) {
        let mut w = World::new(MatchingSettings {
            partial_fill_qty: partial,
            slippage_ticks: 0,
            commission_per_contract: commission,
        });
        for s in &steps {
            w.run(s);
            w.check(commission);
        }
    }
}
