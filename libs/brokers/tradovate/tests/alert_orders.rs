//! The trait's calls that alert instructions need (issue 17), against the simulator's
//! Tradovate surface: the account's balance (risk sizing), a working order's quantity changed
//! in place (a partial exit's protection), and resting entries with a time in force.

#![allow(clippy::expect_used)] // helpers outside #[test] functions

mod common;

use std::time::Duration;

use common::*;
use jt_broker::{AccountId, Broker, BrokerError, OrderStatus, OrderType};
use jt_domain::bracket::EntryOrder;
use jt_domain::instrument::by_root;
use jt_domain::order::{
    BracketOrder, OrderKind, OrderRequest, StopKind, StopSpec, TakeProfitLeg, TimeInForce,
};
use jt_domain::types::{Price, Side};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn mnq(p: Decimal) -> Price {
    Price::on_tick(by_root("MNQ").expect("MNQ is in the table"), p)
}

fn bracket(cid: &str, entry: OrderKind) -> BracketOrder {
    BracketOrder {
        client_order_id: cid.into(),
        side: Side::Buy,
        qty: 3,
        entry,
        take_profits: vec![
            TakeProfitLeg {
                qty: 1,
                distance: dec!(5),
            },
            TakeProfitLeg {
                qty: 2,
                distance: dec!(10),
            },
        ],
        stop: Some(StopSpec {
            distance: dec!(8),
            kind: StopKind::Fixed,
        }),
        break_even: None,
    }
}

#[tokio::test]
async fn tradovate_reports_the_cash_balance() {
    let sim = sim().await;
    let u = user(&sim, "bal", &["BAL1"]);
    let b = broker(config(&sim, "bal"));
    assert_eq!(b.balance(&account(&u)).await.unwrap(), dec!(50000));
}

#[tokio::test]
async fn tradovate_trims_a_bracket_legs_quantity_in_place_and_keeps_its_prices_and_pair() {
    let sim = sim().await;
    let u = user(&sim, "trim", &["TRIM1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "trim"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    b.place_bracket(&acct, &c, &bracket("jt-trim", OrderKind::Market))
        .await
        .unwrap();
    let working = b.working_orders(&acct).await.unwrap();
    let far = working
        .iter()
        .filter(|o| o.order_type == Some(OrderType::Limit))
        .max_by_key(|o| o.price)
        .expect("two targets")
        .clone();
    assert_eq!(far.qty, Some(2));
    // The target's one-cancels-other partner is its leg's stop.
    let partner = far
        .linked
        .clone()
        .expect("Tradovate reports the OCO partner");
    let stop = working
        .iter()
        .find(|o| o.id == partner)
        .expect("the partner is working")
        .clone();
    assert_eq!(stop.order_type, Some(OrderType::Stop));
    b.modify_order_qty(&acct, &far, 1).await.unwrap();
    b.modify_order_qty(&acct, &stop, 1).await.unwrap();
    let after = b.working_orders(&acct).await.unwrap();
    let far_after = after.iter().find(|o| o.id == far.id).unwrap();
    assert_eq!((far_after.qty, far_after.price), (Some(1), far.price));
    let stop_after = after.iter().find(|o| o.id == stop.id).unwrap();
    assert_eq!(
        (stop_after.qty, stop_after.stop_price),
        (Some(1), stop.stop_price)
    );
    // Another account's order is refused before anything is sent.
    let other = AccountId::from("1");
    assert!(matches!(
        b.modify_order_qty(&other, &far, 1).await,
        Err(BrokerError::InvalidRequest { .. })
    ));
}

#[tokio::test]
async fn tradovate_moves_a_bracket_legs_price_in_place_and_keeps_its_quantity() {
    let sim = sim().await;
    let u = user(&sim, "move", &["MOVE1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "move"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    b.place_bracket(&acct, &c, &bracket("jt-move", OrderKind::Market))
        .await
        .unwrap();
    let working = b.working_orders(&acct).await.unwrap();
    let far = working
        .iter()
        .filter(|o| o.order_type == Some(OrderType::Limit))
        .max_by_key(|o| o.price)
        .expect("two targets")
        .clone();
    let stop = working
        .iter()
        .find(|o| o.id == far.linked.clone().expect("its OCO partner"))
        .expect("the partner is working")
        .clone();
    let (tp, sl) = (
        far.price.expect("a limit price") + dec!(4),
        stop.stop_price.expect("a stop price") + dec!(2.25),
    );
    b.modify_order_price(&acct, &far, tp).await.unwrap();
    b.modify_order_price(&acct, &stop, sl).await.unwrap();
    let after = b.working_orders(&acct).await.unwrap();
    let far_after = after.iter().find(|o| o.id == far.id).unwrap();
    assert_eq!((far_after.qty, far_after.price), (far.qty, Some(tp)));
    let stop_after = after.iter().find(|o| o.id == stop.id).unwrap();
    assert_eq!(
        (stop_after.qty, stop_after.stop_price),
        (stop.qty, Some(sl))
    );
    // Another account's order is refused before anything is sent.
    assert!(matches!(
        b.modify_order_price(&AccountId::from("1"), &far, tp).await,
        Err(BrokerError::InvalidRequest { .. })
    ));
}

#[tokio::test]
async fn tradovate_rests_a_day_limit_entry_with_its_bracket_until_the_trading_day_ends() {
    let sim = sim().await;
    let u = user(&sim, "rest", &["REST1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "rest"));
    let acct = account(&u);
    let c = b.resolve_contract("MNQ").await.unwrap();
    let entry = EntryOrder::Bracket(bracket(
        "jt-rest",
        OrderKind::Limit {
            price: mnq(dec!(20990)),
        },
    ));
    let ack = b
        .place_resting_entry(&acct, &c, &entry, TimeInForce::Day)
        .await
        .unwrap();
    assert!(ack.bracket_id.is_some());
    let orders = sim.admin().orders(Some("REST1")).unwrap();
    let limit = orders
        .iter()
        .find(|o| o.order_type == "Limit" && o.action == "Buy")
        .expect("the entry rests as a limit");
    assert_eq!(limit.price, Some(dec!(20990)));
    assert_eq!(b.position(&acct, &c.id).await.unwrap(), None);
    // A plain day stop entry too.
    let plain = EntryOrder::Market(OrderRequest {
        client_order_id: "jt-rest-2".into(),
        side: Side::Sell,
        qty: 1,
        kind: OrderKind::Stop {
            stop: mnq(dec!(20950)),
        },
    });
    b.place_resting_entry(&acct, &c, &plain, TimeInForce::Day)
        .await
        .unwrap();
    // The session ends: both expire, nothing fills afterwards.
    assert_eq!(sim.admin().end_trading_day(Some("REST1")).unwrap(), 2);
    let found = b.find_order(&acct, "jt-rest").await.unwrap().unwrap();
    assert_eq!(found.status, OrderStatus::Expired);
    price(&sim, "MNQ", dec!(20940));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.position(&acct, &c.id).await.unwrap(), None);
}
