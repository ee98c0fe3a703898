//! Event-driven writers: the same broker event applied twice leaves the same state, an older
//! event never overwrites a newer one, and fills are recorded once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use common::TestStore;
use jt_domain::Side;
use jt_store::repo::broker::{Applied, BrokerOrder, BrokerPosition, Fill, FillRecorded};
use jt_store::{BrokerOrderStatus, BrokerOrderType, OrderRole, StoreError};
use rust_decimal_macros::dec;

async fn order_events_are_idempotent_and_ordered(t: &TestStore) {
    let owner = t.user("orders@example.com").await;
    let (_, sub) = t.account(&owner, "orders").await;
    let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 15, 30, 0).unwrap() + Duration::microseconds(100);
    let working = BrokerOrder {
        sub_account: sub.id,
        broker_order_id: "7001".into(),
        client_order_id: Some("jt-abc-tp1".into()),
        intent: None,
        contract: "MNQZ6".into(),
        side: Side::Sell,
        order_type: BrokerOrderType::Limit,
        role: Some(OrderRole::TakeProfit),
        quantity: 2,
        filled_quantity: 0,
        limit_price: Some(dec!(21433.25)),
        stop_price: None,
        average_fill_price: None,
        status: BrokerOrderStatus::Working,
        status_reason: None,
        broker_updated_at: t0,
    };
    assert_eq!(
        t.broker()
            .upsert_order(owner.id, working.clone())
            .await
            .unwrap(),
        Applied::Stored
    );
    let once = t.broker().order(owner.id, sub.id, "7001").await.unwrap();
    assert_eq!(
        t.broker()
            .upsert_order(owner.id, working.clone())
            .await
            .unwrap(),
        Applied::Stored
    );
    assert_eq!(
        t.broker().order(owner.id, sub.id, "7001").await.unwrap(),
        once,
        "same event, same state"
    );
    assert_eq!(t.count("broker_orders", "1 = 1").await, 1);

    // Filled 250 µs later; then the late "working" event arrives and is ignored.
    let filled = BrokerOrder {
        filled_quantity: 2,
        average_fill_price: Some(dec!(21433.25)),
        status: BrokerOrderStatus::Filled,
        broker_updated_at: t0 + Duration::microseconds(250),
        ..working.clone()
    };
    assert_eq!(
        t.broker()
            .upsert_order(owner.id, filled.clone())
            .await
            .unwrap(),
        Applied::Stored
    );
    assert_eq!(
        t.broker()
            .upsert_order(owner.id, working.clone())
            .await
            .unwrap(),
        Applied::Stale
    );
    let now = t.broker().order(owner.id, sub.id, "7001").await.unwrap();
    assert_eq!(now.status, BrokerOrderStatus::Filled);
    assert_eq!(now.filled_quantity, 2);
    assert_eq!(now.limit_price, Some(dec!(21433.25)));
    assert!(
        t.broker()
            .open_orders(owner.id, sub.id, Some("MNQZ6"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        t.broker()
            .orders_by_client_id(owner.id, sub.id, "jt-abc-tp1")
            .await
            .unwrap()
            .len(),
        1
    );

    // Another user's events cannot land on this account.
    let other = t.user("orders2@example.com").await;
    let err = t
        .broker()
        .upsert_order(
            other.id,
            BrokerOrder {
                broker_order_id: "7002".into(),
                ..working.clone()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(
        t.broker()
            .upsert_order(
                other.id,
                BrokerOrder {
                    broker_updated_at: t0 + Duration::hours(1),
                    ..working
                }
            )
            .await
            .unwrap(),
        Applied::Stale,
        "an existing row of another owner is never overwritten"
    );
    assert_eq!(
        t.broker()
            .order(owner.id, sub.id, "7001")
            .await
            .unwrap()
            .status,
        BrokerOrderStatus::Filled
    );
}

async fn fills_are_recorded_once(t: &TestStore) {
    let owner = t.user("fills@example.com").await;
    let (_, sub) = t.account(&owner, "fills").await;
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let fill = |id: &str, price| Fill {
        sub_account: sub.id,
        broker_fill_id: id.into(),
        broker_order_id: "7001".into(),
        client_order_id: None,
        contract: "MNQZ6".into(),
        side: Side::Buy,
        quantity: 1,
        price,
        filled_at: Utc::now(),
        trading_day: day,
    };
    assert_eq!(
        t.broker()
            .record_fill(owner.id, fill("f1", dec!(21400.25)))
            .await
            .unwrap(),
        FillRecorded::New
    );
    assert_eq!(
        t.broker()
            .record_fill(owner.id, fill("f1", dec!(21400.25)))
            .await
            .unwrap(),
        FillRecorded::AlreadySeen
    );
    assert_eq!(
        t.broker()
            .record_fill(owner.id, fill("f2", dec!(0.00390625)))
            .await
            .unwrap(),
        FillRecorded::New
    );
    let fills = t
        .broker()
        .fills_of_day(owner.id, sub.id, day)
        .await
        .unwrap();
    assert_eq!(fills.len(), 2);
    assert!(fills.iter().any(|f| f.price == dec!(0.00390625)));
}

async fn position_events_are_idempotent_and_ordered(t: &TestStore) {
    let owner = t.user("pos@example.com").await;
    let (_, sub) = t.account(&owner, "pos").await;
    let t0 = Utc::now();
    let long3 = BrokerPosition {
        sub_account: sub.id,
        contract: "MNQZ6".into(),
        net_quantity: 3,
        average_price: Some(dec!(21433.333333333)),
        realized_pnl: Some(dec!(-12.5)),
        broker_updated_at: t0,
    };
    t.broker()
        .upsert_position(owner.id, long3.clone())
        .await
        .unwrap();
    let once = t.broker().positions(owner.id, sub.id).await.unwrap();
    t.broker()
        .upsert_position(owner.id, long3.clone())
        .await
        .unwrap();
    assert_eq!(t.broker().positions(owner.id, sub.id).await.unwrap(), once);
    let flat = BrokerPosition {
        net_quantity: 0,
        average_price: None,
        broker_updated_at: t0 + Duration::seconds(1),
        ..long3.clone()
    };
    t.broker().upsert_position(owner.id, flat).await.unwrap();
    assert_eq!(
        t.broker().upsert_position(owner.id, long3).await.unwrap(),
        Applied::Stale
    );
    let p = t.broker().positions(owner.id, sub.id).await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].net_quantity, p[0].average_price), (0, None));
}

async fn the_last_order_activity_of_a_contract_is_when_its_last_order_event_was_recorded(
    t: &TestStore,
) {
    let owner = t.user("activity@example.com").await;
    let (_, sub) = t.account(&owner, "activity").await;
    assert_eq!(
        t.broker()
            .last_order_activity(owner.id, sub.id, "MNQZ6")
            .await
            .unwrap(),
        None
    );
    let before = Utc::now() - Duration::seconds(1);
    let order = BrokerOrder {
        sub_account: sub.id,
        broker_order_id: "8001".into(),
        client_order_id: None,
        intent: None,
        contract: "MNQZ6".into(),
        side: Side::Sell,
        order_type: BrokerOrderType::Limit,
        role: None,
        quantity: 1,
        filled_quantity: 0,
        limit_price: Some(dec!(21433.25)),
        stop_price: None,
        average_fill_price: None,
        // Cancelled orders count: a cancel is activity too (a DCA add replacing its TP).
        status: BrokerOrderStatus::Cancelled,
        status_reason: None,
        broker_updated_at: Utc.with_ymd_and_hms(2026, 11, 20, 15, 30, 0).unwrap(),
    };
    t.broker().upsert_order(owner.id, order).await.unwrap();
    let at = t
        .broker()
        .last_order_activity(owner.id, sub.id, "MNQZ6")
        .await
        .unwrap()
        .expect("recorded");
    assert!(
        at >= before,
        "{at} is when it was recorded, not the broker's time"
    );
    assert_eq!(
        t.broker()
            .last_order_activity(owner.id, sub.id, "ESZ6")
            .await
            .unwrap(),
        None
    );
}

/// What the connection manager subscribes quotes for: contracts with a non-flat position or an
/// open order, per login; flat positions and finished orders are not wanted.
async fn held_contracts_are_the_open_positions_and_orders_per_login(t: &TestStore) {
    let owner = t.user("held@example.com").await;
    let (login, sub) = t.account(&owner, "held").await;
    let (other_login, other_sub) = t.account(&owner, "other").await;
    assert!(t.system().held_contracts().await.unwrap().is_empty());
    let now = Utc::now();
    let position = |sub, contract: &str, net_quantity| BrokerPosition {
        sub_account: sub,
        contract: contract.into(),
        net_quantity,
        average_price: Some(dec!(21400)),
        realized_pnl: None,
        broker_updated_at: now,
    };
    for (s, c, q) in [
        (sub.id, "MNQZ6", 2),
        (sub.id, "ESZ6", 0),
        (other_sub.id, "MNQZ6", -1),
    ] {
        t.broker()
            .upsert_position(owner.id, position(s, c, q))
            .await
            .unwrap();
    }
    let order = |id: &str, contract: &str, status| BrokerOrder {
        sub_account: sub.id,
        broker_order_id: id.into(),
        client_order_id: None,
        intent: None,
        contract: contract.into(),
        side: Side::Buy,
        order_type: BrokerOrderType::Limit,
        role: None,
        quantity: 1,
        filled_quantity: 0,
        limit_price: Some(dec!(6000)),
        stop_price: None,
        average_fill_price: None,
        status,
        status_reason: None,
        broker_updated_at: now,
    };
    t.broker()
        .upsert_order(owner.id, order("1", "MESZ6", BrokerOrderStatus::Working))
        .await
        .unwrap();
    t.broker()
        .upsert_order(owner.id, order("2", "NQZ6", BrokerOrderStatus::Cancelled))
        .await
        .unwrap();
    let mut expected = vec![
        (login, "MESZ6".to_string()),
        (login, "MNQZ6".to_string()),
        (other_login, "MNQZ6".to_string()),
    ];
    expected.sort();
    let mut held = t.system().held_contracts().await.unwrap();
    held.sort();
    assert_eq!(held, expected);
}

on_both_engines!(
    held_contracts_are_the_open_positions_and_orders_per_login,
    the_last_order_activity_of_a_contract_is_when_its_last_order_event_was_recorded,
    order_events_are_idempotent_and_ordered,
    fills_are_recorded_once,
    position_events_are_idempotent_and_ordered,
);
