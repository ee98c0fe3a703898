//! The Tradovate adapter's REST side against the real simulator (`jt-sim`) over loopback:
//! sessions, orders, brackets, DCA, flips, flatten, penalties, lock-outs, throttling and
//! ambiguous outcomes.

#![allow(clippy::expect_used)] // helpers outside #[test] functions

mod common;

use std::time::Duration;

use common::*;
use jt_broker::{AccountId, Broker, BrokerError, OrderStatus, OrderType, SessionOutcome};
use jt_domain::bracket::StopOrder;
use jt_domain::instrument::by_root;
use jt_domain::order::{
    BracketOrder, BreakEven, OrderKind, OrderRequest, StopKind, StopSpec, TakeProfitLeg,
};
use jt_domain::types::{Direction, Price, Side};
use jt_sim::faults::{AmbiguousMode, FaultKind};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn market(cid: &str, side: Side, qty: u32) -> OrderRequest {
    OrderRequest {
        client_order_id: cid.into(),
        side,
        qty,
        kind: OrderKind::Market,
    }
}

fn mnq(p: Decimal) -> Price {
    Price::on_tick(by_root("MNQ").expect("MNQ is in the table"), p)
}

fn leg(qty: u32, distance: Decimal) -> TakeProfitLeg {
    TakeProfitLeg { qty, distance }
}

#[tokio::test]
async fn login_is_reused_while_the_session_lives_and_renewal_never_creates_a_session() {
    let sim = sim().await;
    user(&sim, "alice", &["ALICE1"]);
    let registry = registry();
    let a = jt_tradovate::TradovateBroker::with(config(&sim, "alice"), &registry).unwrap();
    let first = a.login().await.unwrap();
    assert_eq!(first.outcome, SessionOutcome::LoggedIn);
    assert!(first.expires_at > first.obtained_at + chrono::Duration::minutes(80));
    // A second value for the same login in the process shares the session.
    let b = jt_tradovate::TradovateBroker::with(config(&sim, "alice"), &registry).unwrap();
    assert_eq!(b.login().await.unwrap().outcome, SessionOutcome::Reused);
    let renewed = b.renew().await.unwrap();
    assert_eq!(renewed.outcome, SessionOutcome::Renewed);
    assert!(renewed.obtained_at >= first.obtained_at);
    // Still one session: a third login elsewhere would evict the oldest, and ours still works.
    assert_eq!(a.accounts().await.unwrap()[0].name, "ALICE1");
    assert_eq!(a.login().await.unwrap().outcome, SessionOutcome::Reused);
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_valid_token() {
    let sim = sim().await;
    let u = user(&sim, "bob", &["BOB1"]);
    let b = broker(config(&sim, "bob"));
    b.login().await.unwrap();
    fault(
        &sim,
        FaultKind::Error {
            status: 500,
            rate: 1.0,
        },
        Some("bob"),
        Some("auth/renewaccesstoken"),
        None,
    );
    let err = b.renew().await.unwrap_err();
    assert!(matches!(err, BrokerError::Transport { .. }), "{err:?}");
    // The live token still works.
    sim.admin().clear_faults();
    assert!(b.positions(&account(&u)).await.unwrap().is_empty());
    assert_eq!(b.login().await.unwrap().outcome, SessionOutcome::Reused);
}

#[tokio::test]
async fn a_dead_session_is_renewed_by_logging_in_and_bad_credentials_need_reauth() {
    let sim = sim().await;
    user(&sim, "carol", &["CAROL1"]);
    let b = broker(config(&sim, "carol"));
    b.login().await.unwrap();
    fault(&sim, FaultKind::ExpireToken, Some("carol"), None, None);
    assert_eq!(b.renew().await.unwrap().outcome, SessionOutcome::LoggedIn);

    let mut wrong = config(&sim, "carol");
    wrong.credentials.password = "not-it".into();
    let w = broker(wrong);
    let err = w.renew().await.unwrap_err();
    assert!(matches!(err, BrokerError::NeedsReauth { .. }), "{err:?}");
    let err = w.positions(&"1".into()).await.unwrap_err();
    assert!(matches!(err, BrokerError::NeedsReauth { .. }), "{err:?}");
}

#[tokio::test]
async fn a_token_expired_mid_run_is_replaced_and_the_call_succeeds() {
    let sim = sim().await;
    let u = user(&sim, "dave", &["DAVE1"]);
    let b = broker(config(&sim, "dave"));
    let before = b.login().await.unwrap();
    fault(&sim, FaultKind::ExpireToken, Some("dave"), None, None);
    assert!(b.positions(&account(&u)).await.unwrap().is_empty());
    let after = b.login().await.unwrap();
    assert_eq!(after.outcome, SessionOutcome::Reused);
    assert!(
        after.obtained_at > before.obtained_at,
        "a new token replaced the expired one"
    );
}

#[tokio::test]
async fn an_empty_position_list_with_a_401_is_auth_expired_never_flat() {
    let sim = sim().await;
    let u = user(&sim, "erin", &["ERIN1"]);
    let b = broker(config(&sim, "erin"));
    b.login().await.unwrap();
    fault(
        &sim,
        FaultKind::Positions401,
        Some("erin"),
        Some("position/deps"),
        Some(1),
    );
    let err = b.positions(&account(&u)).await.unwrap_err();
    assert!(matches!(err, BrokerError::AuthExpired { .. }), "{err:?}");
}

#[tokio::test]
async fn the_two_session_limit_evicts_the_oldest_and_the_evicted_login_recovers() {
    let sim = sim().await;
    let u = user(&sim, "frank", &["FRANK1"]);
    // Three separate processes (registries) log in as the same user.
    let first = broker(config(&sim, "frank"));
    let second = broker(config(&sim, "frank"));
    let third = broker(config(&sim, "frank"));
    let t1 = first.login().await.unwrap();
    second.login().await.unwrap();
    third.login().await.unwrap();
    // The first session was evicted: the next call finds out, logs in again and succeeds.
    assert!(first.positions(&account(&u)).await.unwrap().is_empty());
    let t1b = first.login().await.unwrap();
    assert!(t1b.obtained_at > t1.obtained_at);
}

#[tokio::test]
async fn the_front_month_resolves_and_is_cached_and_unknown_symbols_fail() {
    let sim = sim().await;
    user(&sim, "gina", &["GINA1"]);
    let b = broker(config(&sim, "gina"));
    let front = sim
        .admin()
        .front_month("MNQ")
        .expect("the simulator lists MNQ");
    let c = b.resolve_contract("MNQ1!").await.unwrap();
    assert_eq!(c.name, front);
    assert_eq!(c.root, "MNQ");
    assert_eq!(b.resolve_contract("CME_MINI:MNQ1!").await.unwrap(), c);
    assert_eq!(b.resolve_contract(&c.name).await.unwrap().id, c.id);
    // NQ must not resolve to MNQ.
    assert_eq!(b.resolve_contract("NQ").await.unwrap().root, "NQ");
    assert!(matches!(
        b.resolve_contract("ZZZ").await,
        Err(BrokerError::UnknownContract { .. })
    ));
    assert!(matches!(
        b.resolve_contract("MNQF9").await,
        Err(BrokerError::UnknownContract { .. })
    ));
}

/// Issue 21: executions after the first make no contract request. N resolutions (sequential
/// and concurrent) of a root on one login cost one `contract/suggest` and one
/// `contractMaturity/items`; a named month one `contract/find`; a failed look-up is not cached;
/// once the TTL passes the contract is looked up again.
#[tokio::test]
async fn contract_resolutions_are_cached_per_login_in_one_flight_until_the_ttl() {
    let sim = sim().await;
    user(&sim, "cora", &["CORA1"]);
    let mut c = config(&sim, "cora");
    c.http.contract_ttl = Duration::from_millis(600);
    let b = broker(c);
    b.login().await.unwrap();
    let contract_calls = || -> std::collections::BTreeMap<String, u64> {
        sim.admin()
            .request_counts()
            .into_iter()
            .filter(|(e, _)| e.starts_with("tradovate:contract"))
            .collect()
    };
    let suggest_and_maturity = |n: u64| -> std::collections::BTreeMap<String, u64> {
        [
            ("tradovate:contract/suggest".to_string(), n),
            ("tradovate:contractmaturity/items".to_string(), n),
        ]
        .into_iter()
        .collect()
    };

    // A failure is not cached: the next look-up asks again.
    fault(
        &sim,
        FaultKind::Error {
            status: 500,
            rate: 1.0,
        },
        Some("cora"),
        Some("contract/suggest"),
        None,
    );
    assert!(b.resolve_contract("MNQ1!").await.is_err());
    sim.admin().clear_faults();
    sim.admin().reset_request_counts();

    // Concurrent first look-ups share one flight; later ones are served from the cache.
    let all = futures_util::future::join_all((0..8).map(|_| b.resolve_contract("MNQ1!"))).await;
    let first = all[0].clone().unwrap();
    assert!(all.iter().all(|r| r.as_ref().unwrap() == &first), "{all:?}");
    for symbol in ["MNQ", "MNQ1!", "CME_MINI:MNQ1!"] {
        assert_eq!(b.resolve_contract(symbol).await.unwrap(), first);
    }
    assert_eq!(contract_calls(), suggest_and_maturity(1));

    // A named month: one `contract/find`, then cached.
    sim.admin().reset_request_counts();
    for _ in 0..3 {
        assert_eq!(b.resolve_contract(&first.name).await.unwrap().id, first.id);
    }
    let calls = contract_calls();
    assert_eq!(calls.get("tradovate:contract/find"), Some(&1), "{calls:#?}");
    assert_eq!(calls.values().sum::<u64>(), 1, "{calls:#?}");

    // After the TTL: looked up again, once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    sim.admin().reset_request_counts();
    for _ in 0..3 {
        assert_eq!(b.resolve_contract("MNQ1!").await.unwrap(), first);
    }
    assert_eq!(contract_calls(), suggest_and_maturity(1));
}

#[tokio::test]
async fn a_bracket_with_three_targets_and_a_trailing_stop_is_one_call() {
    let sim = sim().await;
    let u = user(&sim, "hank", &["HANK1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "hank"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    let bracket = BracketOrder {
        client_order_id: "jt-b1".into(),
        side: Side::Buy,
        qty: 3,
        entry: OrderKind::Market,
        take_profits: vec![leg(1, dec!(5)), leg(1, dec!(10)), leg(1, dec!(20))],
        stop: Some(StopSpec {
            distance: dec!(8),
            kind: StopKind::Trailing {
                trigger: dec!(0),
                step: dec!(0),
            },
        }),
        break_even: None,
    };
    let ack = b.place_bracket(&acct, &c, &bracket).await.unwrap();
    assert!(!ack.recovered);
    assert!(ack.bracket_id.is_some());

    let orders = sim.admin().orders(Some("HANK1")).unwrap();
    assert!(orders.iter().all(|o| o.is_automated), "{orders:#?}");
    let entry = orders
        .iter()
        .find(|o| o.order_type == "Market")
        .expect("an entry");
    assert_eq!(
        (entry.action.as_str(), entry.qty, entry.filled_qty),
        ("Buy", 3, 3)
    );
    let mut targets: Vec<(Decimal, u32)> = orders
        .iter()
        .filter(|o| o.order_type == "Limit" && o.action == "Sell")
        .map(|o| (o.price.unwrap(), o.qty))
        .collect();
    targets.sort();
    let fill = entry.avg_price.unwrap();
    assert_eq!(
        targets,
        vec![
            (fill + dec!(5), 1),
            (fill + dec!(10), 1),
            (fill + dec!(20), 1)
        ]
    );
    let stops: Vec<_> = orders
        .iter()
        .filter(|o| o.action == "Sell" && o.order_type.contains("Stop"))
        .collect();
    assert_eq!(stops.len(), 3, "{orders:#?}");
    assert!(
        stops
            .iter()
            .all(|s| s.order_type == "TrailingStop" && s.qty == 1)
    );
    assert!(stops.iter().all(|s| s.stop_price == Some(fill - dec!(8))));

    // The adapter sees the same: a long 3 and six working exits.
    let pos = b.position(&acct, &c.id).await.unwrap().unwrap();
    assert_eq!(pos.net_qty, 3);
    let working = b.working_orders(&acct).await.unwrap();
    assert_eq!(working.len(), 6);
    assert_eq!(
        working
            .iter()
            .filter(|o| o.order_type == Some(OrderType::Limit))
            .count(),
        3
    );
    let found = b
        .find_order(&acct, "jt-b1")
        .await
        .unwrap()
        .expect("the entry");
    assert_eq!(found.id.as_str(), entry.id.to_string());
    assert_eq!(found.status, OrderStatus::Filled);
}

#[tokio::test]
async fn trail_after_profit_and_break_even_ride_in_the_bracket_and_unsupported_mixes_are_refused() {
    let sim = sim().await;
    let u = user(&sim, "iris", &["IRIS1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "iris"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    let mut bracket = BracketOrder {
        client_order_id: "jt-b2".into(),
        side: Side::Sell,
        qty: 2,
        entry: OrderKind::Market,
        take_profits: vec![leg(1, dec!(10))],
        stop: Some(StopSpec {
            distance: dec!(6),
            kind: StopKind::Fixed,
        }),
        break_even: Some(BreakEven {
            trigger: dec!(4),
            offset: dec!(0.5),
        }),
    };
    b.place_bracket(&acct, &c, &bracket).await.unwrap();
    let orders = sim.admin().orders(Some("IRIS1")).unwrap();
    let fill = orders
        .iter()
        .find(|o| o.order_type == "Market")
        .unwrap()
        .avg_price
        .unwrap();
    // One target leg and a stop-only runner leg: two stops above, one target below.
    let stops: Vec<_> = orders.iter().filter(|o| o.order_type == "Stop").collect();
    assert_eq!(stops.len(), 2, "{orders:#?}");
    assert!(
        stops
            .iter()
            .all(|s| s.stop_price == Some(fill + dec!(6)) && s.action == "Buy")
    );
    assert_eq!(
        orders
            .iter()
            .filter(|o| o.order_type == "Limit")
            .map(|o| o.price)
            .collect::<Vec<_>>(),
        vec![Some(fill - dec!(10))]
    );

    // Break-even with a trailing stop: refused before sending, nothing placed.
    bracket.client_order_id = "jt-b3".into();
    bracket.stop = Some(StopSpec {
        distance: dec!(6),
        kind: StopKind::Trailing {
            trigger: dec!(3),
            step: dec!(0.5),
        },
    });
    let before = sim.admin().orders(Some("IRIS1")).unwrap().len();
    let err = b.place_bracket(&acct, &c, &bracket).await.unwrap_err();
    assert!(matches!(err, BrokerError::Unsupported { .. }), "{err:?}");
    assert_eq!(sim.admin().orders(Some("IRIS1")).unwrap().len(), before);

    // Trail after a profit trigger (autoTrail) without break-even.
    bracket.break_even = None;
    b.place_bracket(&acct, &c, &bracket).await.unwrap();
    assert!(sim.admin().orders(Some("IRIS1")).unwrap().len() > before);
}

#[tokio::test]
async fn a_dca_add_is_a_market_order_then_every_exit_replaced_by_one_for_the_position() {
    let sim = sim().await;
    let u = user(&sim, "jack", &["JACK1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "jack"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    b.place_bracket(
        &acct,
        &c,
        &BracketOrder {
            client_order_id: "jt-d1".into(),
            side: Side::Buy,
            qty: 2,
            entry: OrderKind::Market,
            take_profits: vec![leg(1, dec!(10)), leg(1, dec!(20))],
            stop: Some(StopSpec {
                distance: dec!(15),
                kind: StopKind::Fixed,
            }),
            break_even: None,
        },
    )
    .await
    .unwrap();
    price(&sim, "MNQ", dec!(20990));
    let add = b
        .place_order(&acct, &c, &market("jt-d2", Side::Buy, 2))
        .await
        .unwrap();
    assert!(!add.recovered);
    let pos = b.position(&acct, &c.id).await.unwrap().unwrap();
    assert_eq!(pos.net_qty, 4);
    let avg = pos.avg_price.unwrap();
    // Take-profits first (the DOMAIN §5.7 rule), then whatever exit is left (the stops).
    let tps = b
        .cancel_take_profits(&acct, &c, Direction::Long)
        .await
        .unwrap();
    assert_eq!(tps.canceled.len(), 2, "{tps:?}");
    assert!(tps.failures.is_empty());
    let rest = b
        .cancel_exit_orders(&acct, &c, Direction::Long, jt_broker::ExitOrders::All)
        .await
        .unwrap();
    assert!(rest.failures.is_empty(), "{rest:?}");
    assert!(b.working_orders(&acct).await.unwrap().is_empty());
    let tp = mnq(avg + dec!(10));
    b.place_order(
        &acct,
        &c,
        &OrderRequest {
            client_order_id: "jt-d2-tp".into(),
            side: Side::Sell,
            qty: 4,
            kind: OrderKind::Limit { price: tp },
        },
    )
    .await
    .unwrap();
    let stop = mnq(avg - dec!(15));
    let trailing = |trigger| StopOrder {
        client_order_id: "jt-d2-sl".into(),
        side: Side::Sell,
        qty: 4,
        stop,
        distance: dec!(15),
        kind: StopKind::Trailing {
            trigger,
            step: dec!(0),
        },
    };
    b.place_stop(&acct, &c, &trailing(dec!(0))).await.unwrap();
    let working = b.working_orders(&acct).await.unwrap();
    assert_eq!(working.len(), 2, "{working:#?}");
    let target = working
        .iter()
        .find(|o| o.order_type == Some(OrderType::Limit))
        .unwrap();
    assert_eq!(
        (target.side, target.qty, target.price),
        (Side::Sell, Some(4), Some(tp.value()))
    );
    let trail = working
        .iter()
        .find(|o| o.order_type == Some(OrderType::TrailingStop))
        .unwrap();
    assert_eq!((trail.qty, trail.stop_price), (Some(4), Some(stop.value())));
    // A trailing stop that waits for a profit trigger cannot be a standalone order here:
    // refused, not placed as something else.
    let err = b
        .place_stop(&acct, &c, &trailing(dec!(5)))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Unsupported { .. }), "{err:?}");
    assert_eq!(b.working_orders(&acct).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_flip_closes_then_enters_the_other_way() {
    let sim = sim().await;
    let u = user(&sim, "kate", &["KATE1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "kate"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    let long = BracketOrder {
        client_order_id: "jt-f1".into(),
        side: Side::Buy,
        qty: 2,
        entry: OrderKind::Market,
        take_profits: vec![leg(2, dec!(10))],
        stop: Some(StopSpec {
            distance: dec!(10),
            kind: StopKind::Fixed,
        }),
        break_even: None,
    };
    b.place_bracket(&acct, &c, &long).await.unwrap();
    let closed = b.close_position(&acct, &c).await.unwrap();
    assert!(closed.order_id.is_some());
    assert!(b.position(&acct, &c.id).await.unwrap().is_none());
    assert!(b.working_orders(&acct).await.unwrap().is_empty());
    let short = BracketOrder {
        client_order_id: "jt-f2".into(),
        side: Side::Sell,
        ..long
    };
    b.place_bracket(&acct, &c, &short).await.unwrap();
    assert_eq!(b.position(&acct, &c.id).await.unwrap().unwrap().net_qty, -2);
    // Closing when flat only cancels what works on the contract.
    b.close_position(&acct, &c).await.unwrap();
    assert_eq!(b.close_position(&acct, &c).await.unwrap().order_id, None);
}

#[tokio::test]
async fn closing_when_flat_closes_a_resting_entry_that_fills_while_its_cancel_is_on_the_way() {
    let sim = sim().await;
    let u = user(&sim, "ruth", &["RUTH1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "ruth"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    let entry = OrderRequest {
        client_order_id: "jt-race-1".into(),
        side: Side::Buy,
        qty: 1,
        kind: OrderKind::Limit {
            price: mnq(dec!(20990)),
        },
    };
    b.place_order(&acct, &c, &entry).await.unwrap();
    assert!(b.position(&acct, &c.id).await.unwrap().is_none());
    // The cancel reaches the exchange late; meanwhile the market comes to the resting buy.
    fault(
        &sim,
        FaultKind::Latency { ms: 1_000 },
        Some("ruth"),
        Some("order/cancelorder"),
        None,
    );
    let market_moves = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        price(&sim, "MNQ", dec!(20980));
    };
    let (closed, ()) = tokio::join!(b.close_position(&acct, &c), market_moves);
    let closed = closed.unwrap();
    // The entry filled instead of being cancelled: the position it opened is closed too.
    assert!(closed.order_id.is_some(), "{closed:?}");
    assert!(b.position(&acct, &c.id).await.unwrap().is_none());
    assert!(b.working_orders(&acct).await.unwrap().is_empty());
}

#[tokio::test]
async fn flatten_closes_every_position_and_cancels_every_order() {
    let sim = sim().await;
    let u = user(&sim, "liam", &["LIAM1", "LIAM2"]);
    price(&sim, "MNQ", dec!(21000));
    price(&sim, "ES", dec!(6000));
    let b = broker(config(&sim, "liam"));
    let acct = account(&u);
    let other = jt_broker::AccountId::from(u.accounts[1].id);
    let mnq_c = b.resolve_contract("MNQ").await.unwrap();
    let es_c = b.resolve_contract("ES").await.unwrap();
    b.place_order(&acct, &mnq_c, &market("jt-l1", Side::Buy, 2))
        .await
        .unwrap();
    b.place_order(&acct, &es_c, &market("jt-l2", Side::Sell, 1))
        .await
        .unwrap();
    b.place_order(
        &acct,
        &es_c,
        &OrderRequest {
            client_order_id: "jt-l3".into(),
            side: Side::Buy,
            qty: 1,
            kind: OrderKind::Limit {
                price: Price::on_tick(by_root("ES").unwrap(), dec!(5900)),
            },
        },
    )
    .await
    .unwrap();
    // The other account of the login must be left alone.
    b.place_order(&other, &mnq_c, &market("jt-l4", Side::Buy, 1))
        .await
        .unwrap();

    let report = b.flatten_account(&acct).await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.closed.len(), 2);
    assert!(
        b.positions(&acct)
            .await
            .unwrap()
            .iter()
            .all(|p| p.net_qty == 0)
    );
    assert!(b.working_orders(&acct).await.unwrap().is_empty());
    assert_eq!(
        b.position(&other, &mnq_c.id)
            .await
            .unwrap()
            .unwrap()
            .net_qty,
        1
    );
    let pnl = b.account_pnl(&acct).await.unwrap();
    assert_eq!(pnl.open, Decimal::ZERO);
    let fills = b.fills(&acct).await.unwrap();
    assert_eq!(
        fills.len(),
        4,
        "{fills:#?} {:#?}",
        sim.admin().fills(Some("LIAM1")).unwrap()
    );
}

#[tokio::test]
async fn cancelling_a_contracts_working_orders_leaves_other_contracts_and_reads_no_order_twice() {
    let sim = sim().await;
    let u = user(&sim, "mona", &["MONA1"]);
    price(&sim, "MNQ", dec!(21000));
    price(&sim, "ES", dec!(6000));
    let b = broker(config(&sim, "mona"));
    let acct = account(&u);
    let mnq_c = b.resolve_contract("MNQ").await.unwrap();
    let es_c = b.resolve_contract("ES").await.unwrap();
    // On MNQ: a bracket's take-profit and stop, and a resting buy limit (both sides).
    b.place_bracket(
        &acct,
        &mnq_c,
        &BracketOrder {
            client_order_id: "jt-m1".into(),
            side: Side::Buy,
            qty: 1,
            entry: OrderKind::Market,
            take_profits: vec![leg(1, dec!(10))],
            stop: Some(StopSpec {
                distance: dec!(15),
                kind: StopKind::Fixed,
            }),
            break_even: None,
        },
    )
    .await
    .unwrap();
    let limit = |cid: &str, p: Price| OrderRequest {
        client_order_id: cid.into(),
        side: Side::Buy,
        qty: 1,
        kind: OrderKind::Limit { price: p },
    };
    b.place_order(&acct, &mnq_c, &limit("jt-m2", mnq(dec!(20900))))
        .await
        .unwrap();
    // On ES: a resting limit that must stay.
    b.place_order(
        &acct,
        &es_c,
        &limit("jt-m3", Price::on_tick(by_root("ES").unwrap(), dec!(5900))),
    )
    .await
    .unwrap();
    assert_eq!(b.working_orders(&acct).await.unwrap().len(), 4);

    sim.admin().reset_request_counts();
    let report = b.cancel_working_orders(&acct, &mnq_c).await.unwrap();
    // One list of the account's orders, then the cancels: the orders came from that list,
    // so none is read again to check whose it is.
    let calls = sim.admin().request_counts();
    assert_eq!(calls.get("tradovate:order/deps"), Some(&1), "{calls:#?}");
    assert_eq!(
        calls.get("tradovate:order/cancelorder"),
        Some(&3),
        "{calls:#?}"
    );
    assert_eq!(calls.get("tradovate:order/item"), None, "{calls:#?}");
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.canceled.len(), 3, "{report:?}");
    let left = b.working_orders(&acct).await.unwrap();
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0].contract.as_ref(), Some(&es_c.id));
}

#[tokio::test]
async fn a_penalty_ticket_is_waited_out_and_the_order_resent_once() {
    let sim = sim().await;
    let u = user(&sim, "mia", &["MIA1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "mia"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    fault(
        &sim,
        FaultKind::PTicket { p_time: 1 },
        Some("mia"),
        Some("order/placeorder"),
        Some(1),
    );
    let started = std::time::Instant::now();
    let ack = b
        .place_order(&acct, &c, &market("jt-p1", Side::Buy, 1))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(!ack.recovered);
    let orders = sim.admin().orders(Some("MIA1")).unwrap();
    assert_eq!(orders.len(), 1, "{orders:#?}");

    // A penalty longer than the adapter waits inline is handed back, and nothing is placed.
    fault(
        &sim,
        FaultKind::PTicket { p_time: 4 },
        Some("mia"),
        Some("order/placeorder"),
        Some(1),
    );
    let err = b
        .place_order(&acct, &c, &market("jt-p2", Side::Buy, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Penalty { ticket, wait } if !ticket.is_empty() && *wait == Duration::from_secs(4)),
        "{err:?}"
    );
    // Calling again too early carries the ticket, so the broker still says wait (without the
    // ticket the fault is spent and the order would go through).
    let again = b
        .place_order(&acct, &c, &market("jt-p2", Side::Buy, 1))
        .await
        .unwrap_err();
    assert!(matches!(again, BrokerError::Penalty { .. }), "{again:?}");
    assert_eq!(sim.admin().orders(Some("MIA1")).unwrap().len(), 1);
    // After the wait, the same call with the ticket goes through, once.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    b.place_order(&acct, &c, &market("jt-p2", Side::Buy, 1))
        .await
        .unwrap();
    assert_eq!(sim.admin().orders(Some("MIA1")).unwrap().len(), 2);
}

#[tokio::test]
async fn a_captcha_locks_the_login_out_and_nothing_is_retried() {
    let sim = sim().await;
    let u = user(&sim, "noah", &["NOAH1"]);
    let b = broker(config(&sim, "noah"));
    fault(&sim, FaultKind::Captcha, Some("noah"), None, None);
    let err = b.login().await.unwrap_err();
    let BrokerError::LockedOut { until } = err else {
        panic!("{err:?}")
    };
    assert!(until > chrono::Utc::now() + chrono::Duration::minutes(59));
    sim.admin().clear_faults();
    // Still locked out on our side, without asking the broker.
    let started = std::time::Instant::now();
    assert_eq!(
        b.positions(&account(&u)).await.unwrap_err(),
        BrokerError::LockedOut { until }
    );
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn throttling_429_and_423_back_off_then_recover() {
    let sim = sim().await;
    let u = user(&sim, "olga", &["OLGA1"]);
    let b = broker(config(&sim, "olga"));
    let acct = account(&u);
    b.login().await.unwrap();
    fault(
        &sim,
        FaultKind::TooManyRequests,
        Some("olga"),
        Some("position/deps"),
        Some(1),
    );
    let err = b.positions(&acct).await.unwrap_err();
    assert!(matches!(err, BrokerError::RateLimited { .. }), "{err:?}");
    // During the back-off the adapter refuses without calling.
    assert!(matches!(
        b.accounts().await,
        Err(BrokerError::RateLimited { .. })
    ));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(b.positions(&acct).await.unwrap().is_empty());

    fault(
        &sim,
        FaultKind::Locked,
        Some("olga"),
        Some("position/deps"),
        Some(1),
    );
    assert!(matches!(
        b.positions(&acct).await,
        Err(BrokerError::RateLimited { .. })
    ));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(b.positions(&acct).await.is_ok());
    assert!(b.call_budget().unwrap().used >= 5);
}

#[tokio::test]
async fn an_order_whose_answer_is_lost_exists_exactly_once() {
    let sim = sim().await;
    let u = user(&sim, "paul", &["PAUL1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "paul"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    for (cid, mode) in [
        ("jt-a1", AmbiguousMode::Drop),
        ("jt-a2", AmbiguousMode::Timeout),
    ] {
        fault(
            &sim,
            FaultKind::Ambiguous { mode },
            Some("paul"),
            Some("order/placeorder"),
            Some(1),
        );
        let ack = b
            .place_order(&acct, &c, &market(cid, Side::Buy, 1))
            .await
            .unwrap();
        assert!(ack.recovered, "{mode:?}");
        let same: Vec<_> = sim
            .admin()
            .orders(Some("PAUL1"))
            .unwrap()
            .into_iter()
            .filter(|o| o.cl_ord_id.as_deref() == Some(cid))
            .collect();
        assert_eq!(same.len(), 1, "{mode:?}: {same:#?}");
        assert_eq!(ack.order_id.as_str(), same[0].id.to_string());
    }

    // A bracket whose answer is lost is found by its id too.
    fault(
        &sim,
        FaultKind::Ambiguous {
            mode: AmbiguousMode::Drop,
        },
        Some("paul"),
        Some("orderStrategy/startorderstrategy"),
        Some(1),
    );
    let ack = b
        .place_bracket(
            &acct,
            &c,
            &BracketOrder {
                client_order_id: "jt-a3".into(),
                side: Side::Buy,
                qty: 1,
                entry: OrderKind::Market,
                take_profits: vec![leg(1, dec!(10))],
                stop: None,
                break_even: None,
            },
        )
        .await
        .unwrap();
    assert!(ack.recovered);
    let entries = sim
        .admin()
        .orders(Some("PAUL1"))
        .unwrap()
        .into_iter()
        .filter(|o| o.strategy_id.is_some() && o.order_type == "Market")
        .count();
    assert_eq!(entries, 1);
}

#[tokio::test]
async fn a_500_after_sending_is_unknown_until_looked_up_and_never_duplicated() {
    let sim = sim().await;
    let u = user(&sim, "quinn", &["QUINN1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "quinn"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    fault(
        &sim,
        FaultKind::Error {
            status: 500,
            rate: 1.0,
        },
        Some("quinn"),
        Some("order/placeorder"),
        Some(1),
    );
    let err = b
        .place_order(&acct, &c, &market("jt-u1", Side::Buy, 1))
        .await
        .unwrap_err();
    assert!(err.may_have_executed(), "{err:?}");
    assert!(sim.admin().orders(Some("QUINN1")).unwrap().is_empty());
    // The retry looks the id up first, finds nothing, and places it once.
    let ack = b
        .place_order(&acct, &c, &market("jt-u1", Side::Buy, 1))
        .await
        .unwrap();
    assert!(!ack.recovered);
    assert_eq!(sim.admin().orders(Some("QUINN1")).unwrap().len(), 1);
}

#[tokio::test]
async fn rejections_are_typed_and_off_tick_prices_never_leave() {
    let sim = sim().await;
    let u = user(&sim, "rose", &["ROSE1"]);
    price(&sim, "GC", dec!(4000));
    let b = broker(config(&sim, "rose"));
    let acct = account(&u);
    let gc = b.resolve_contract("GC").await.unwrap();
    // A GC price on the index futures' 0.25 grid is off GC's 0.10 tick.
    let off = OrderRequest {
        client_order_id: "jt-r1".into(),
        side: Side::Buy,
        qty: 1,
        kind: OrderKind::Limit {
            price: Price::on_tick(by_root("MNQ").unwrap(), dec!(3990.25)),
        },
    };
    assert!(matches!(
        b.place_order(&acct, &gc, &off).await,
        Err(BrokerError::InvalidRequest { .. })
    ));
    assert!(sim.admin().orders(Some("ROSE1")).unwrap().is_empty());
    assert!(matches!(
        b.place_order(&"999999".into(), &gc, &market("jt-r2", Side::Buy, 1))
            .await,
        Err(BrokerError::UnknownAccount { .. })
    ));
    // An order id of another login's account cannot be canceled through this one.
    assert!(b.cancel_order(&acct, &"123456789".into()).await.is_err());
}

#[tokio::test]
async fn reads_of_one_account_never_carry_another_account_of_the_login() {
    let sim = sim().await;
    let u = user(&sim, "lena", &["LENA1", "LENA2"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "lena"));
    let first = AccountId::from(u.accounts[0].id);
    let second = AccountId::from(u.accounts[1].id);
    let c = b.resolve_contract("MNQ").await.unwrap();
    let bracket = |cid: &str, qty| BracketOrder {
        client_order_id: cid.into(),
        side: Side::Buy,
        qty,
        entry: OrderKind::Market,
        take_profits: vec![leg(qty, dec!(10))],
        stop: Some(StopSpec {
            distance: dec!(10),
            kind: StopKind::Fixed,
        }),
        break_even: None,
    };
    b.place_bracket(&first, &c, &bracket("jt-l1", 2))
        .await
        .unwrap();
    // Only the first account trades: the second is flat with nothing working.
    assert!(b.working_orders(&second).await.unwrap().is_empty());
    assert!(b.position(&second, &c.id).await.unwrap().is_none());
    assert!(b.positions(&second).await.unwrap().is_empty());
    assert!(b.fills(&second).await.unwrap().is_empty());
    // The first sees its own: a long 2, a target and a stop, and its entry's fill.
    assert_eq!(b.position(&first, &c.id).await.unwrap().unwrap().net_qty, 2);
    let working = b.working_orders(&first).await.unwrap();
    assert_eq!(working.len(), 2, "{working:#?}");
    let fills = b.fills(&first).await.unwrap();
    assert_eq!(fills.iter().map(|f| f.qty).sum::<u32>(), 2, "{fills:#?}");
    // Then the second trades too: each still sees only its own.
    b.place_bracket(&second, &c, &bracket("jt-l2", 1))
        .await
        .unwrap();
    assert_eq!(
        b.position(&second, &c.id).await.unwrap().unwrap().net_qty,
        1
    );
    assert_eq!(b.position(&first, &c.id).await.unwrap().unwrap().net_qty, 2);
    assert_eq!(b.working_orders(&second).await.unwrap().len(), 2);
    assert_eq!(b.working_orders(&first).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_snapshot_reads_positions_working_orders_and_cash_in_four_calls() {
    let sim = sim().await;
    let u = user(&sim, "sara", &["SARA1", "SARA2"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "sara"));
    let acct = account(&u);
    let other = AccountId::from(u.accounts[1].id);
    let c = b.resolve_contract("MNQ").await.unwrap();
    b.place_bracket(
        &acct,
        &c,
        &BracketOrder {
            client_order_id: "jt-s1".into(),
            side: Side::Buy,
            qty: 2,
            entry: OrderKind::Market,
            take_profits: vec![leg(2, dec!(10))],
            stop: Some(StopSpec {
                distance: dec!(15),
                kind: StopKind::Fixed,
            }),
            break_even: None,
        },
    )
    .await
    .unwrap();
    sim.admin().reset_request_counts();
    let snap = b.snapshot(&acct).await.unwrap();
    // position/deps, order/deps, orderVersion/ldeps and the cash balance snapshot: nothing
    // per order, nothing per position (the contract's name is known from resolving it).
    let calls = sim.admin().request_counts();
    assert_eq!(calls.values().sum::<u64>(), 4, "{calls:#?}");
    for endpoint in [
        "position/deps",
        "order/deps",
        "orderversion/ldeps",
        "cashbalance/getcashbalancesnapshot",
    ] {
        assert_eq!(
            calls.get(&format!("tradovate:{endpoint}")),
            Some(&1),
            "{calls:#?}"
        );
    }
    assert_eq!(snap.account, acct);
    assert_eq!(snap.position(&c.id).map(|p| p.net_qty), Some(2));
    let working: Vec<_> = snap.working_on(&c.id).collect();
    assert_eq!(working.len(), 2, "a target and a stop: {working:#?}");
    assert!(
        working
            .iter()
            .all(|o| o.side == Side::Sell && o.qty == Some(2))
    );
    let pnl = snap.pnl.clone().expect("read with the snapshot").unwrap();
    assert_eq!(pnl.account, acct);
    assert!(pnl.cash.is_some(), "{pnl:?}");
    // Another account of the login is its own snapshot: flat, nothing working.
    let empty = b.snapshot(&other).await.unwrap();
    assert!(empty.position(&c.id).is_none() && empty.working_orders.is_empty());
}
