//! Webull end to end (issue 26): an alert over HTTP to the ingest, through JetStream and the
//! executor, to a Webull account on the simulator's signed Webull surface — the entry, then
//! the stop and the take-profit the adapter places for what filled, linked by the platform's
//! one-cancels-other, which runs in the connection manager (the login's polled event side):
//! the executor is gone, the take-profit fills, the connection manager cancels the stop, and
//! each fill reaches BROKER_EVENTS once.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jt_broker::BrokerEvent;
use jt_connmgr::ReportedEvent;
use jt_domain::Settings;
use jt_domain::settings::{PriceUnits, StopType, TpTarget, TrimUnits};
use jt_e2e::{ConnectionManager, Options, Platform, alert, assert_status, is_working};
use jt_store::IntentStatus;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_reaches_a_webull_account_and_the_connection_manager_guards_its_bracket() {
    let mut p = Platform::start(Options::default()).await;
    let wb = p.webull_account("WB1").await;
    let connmgr = ConnectionManager::start(&p).await;
    let login = p.subs[wb].broker_account;
    let deadline = std::time::Instant::now() + WAIT;
    while !jt_connmgr::read_status(&p.bus, login)
        .await
        .unwrap()
        .is_some_and(|s| s.state == jt_connmgr::LinkState::Connected)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the Webull login is held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settings = Settings {
        initial_position_size: 2,
        tp_targets: vec![TpTarget {
            value: Decimal::from(20),
            trim: Decimal::from(2),
        }],
        tp_units: PriceUnits::Ticks,
        trim_units: TrimUnits::Contracts,
        sl_enabled: true,
        sl_amount: dec!(20),
        sl_units: PriceUnits::Ticks,
        sl_type: StopType::Fixed,
        ..Settings::default()
    };
    let (_, token) = p
        .recorder(settings, &[(wb, jt_domain::SettingsOverrides::default())])
        .await;
    let entry = p.queued(&token, &alert("buy", "long", "")).await;
    let intents = p.settled_intents(entry, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Accepted);

    // The entry filled 2 at 21000; the stop (20 ticks: 5 points) and the take-profit sit
    // around the fill, sized to it, both working.
    let orders = p
        .wait_orders(wb, WAIT, |o| {
            o.iter().filter(|o| is_working(o)).count() == 2
        })
        .await;
    assert_eq!(p.net_position(wb), 2);
    let mut exits: Vec<(String, u32, Option<Decimal>, Option<Decimal>)> = orders
        .iter()
        .filter(|o| is_working(o))
        .map(|o| (o.order_type.clone(), o.qty, o.price, o.stop_price))
        .collect();
    exits.sort();
    assert_eq!(
        exits,
        vec![
            ("Limit".into(), 2, Some(dec!(21005)), None),
            ("Stop".into(), 2, None, Some(dec!(20995))),
        ],
        "{orders:#?}"
    );
    assert!(
        orders.iter().filter(|o| is_working(o)).all(|o| o
            .cl_ord_id
            .as_deref()
            .is_some_and(|c| c.ends_with("-sl") || c.ends_with("-tp1"))),
        "{orders:#?}"
    );

    // The executor goes away: nothing of the protection lives in it.
    p.kill_executor().await;
    // The take-profit fills: the connection manager cancels the stop (Webull has no OCO for
    // futures).
    p.price("MNQ", "21005");
    let orders = p
        .wait_orders(wb, WAIT, |o| o.iter().all(|o| !is_working(o)))
        .await;
    assert_eq!(p.net_position(wb), 0, "{orders:#?}");
    let stop = orders
        .iter()
        .find(|o| o.cl_ord_id.as_deref().is_some_and(|c| c.ends_with("-sl")))
        .unwrap();
    assert_eq!(format!("{:?}", stop.status), "Canceled", "{orders:#?}");

    // The entry's fill and the take-profit's, each once on BROKER_EVENTS.
    let fills = |events: Vec<(String, jt_connmgr::BrokerEventMessage)>| -> Vec<(String, u32)> {
        events
            .into_iter()
            .filter_map(|(_, m)| match m.event {
                ReportedEvent::Known(BrokerEvent::Fill(f)) => {
                    let what = match f.client_order_id.as_deref() {
                        Some(c) if c.ends_with("-tp1") => "take-profit",
                        Some(c) if c.ends_with("-sl") => "stop",
                        _ => "entry",
                    };
                    Some((what.to_string(), f.qty))
                }
                _ => None,
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = fills(p.broker_events(wb, "fill").await);
    while seen.len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = fills(p.broker_events(wb, "fill").await);
    }
    // Two more polls publish nothing again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut seen = fills(p.broker_events(wb, "fill").await);
    seen.sort();
    assert_eq!(
        seen,
        vec![("entry".to_string(), 2), ("take-profit".to_string(), 2)]
    );
    connmgr.stop().await;
    p.stop().await;
}
