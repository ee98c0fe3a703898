//! The Tradovate user WebSocket against the real simulator (`jt-sim`) over loopback: typed
//! events to several subscribers, dropped and frozen sockets, dead subscriptions in and out of
//! market hours, session replays, planned reconnects and 200 logins connecting at once.

#![allow(clippy::expect_used)] // helpers outside #[test] functions

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use jt_broker::{Broker, BrokerEvent, BrokerEvents, ConnectionState, EventOrigin};
use jt_domain::order::{OrderKind, OrderRequest};
use jt_domain::types::Side;
use jt_sim::SimConfig;
use jt_sim::faults::FaultKind;

use jt_net::gate::{ConnectGate, GateConfig};
use jt_net::registry::Plumbing;
use jt_tradovate::websocket::client::EndReason;
use jt_tradovate::{LoginRegistry, TradovateBroker, TradovateConfig};
use rust_decimal_macros::dec;

/// A simulator that heartbeats every 200 ms, so silence is detected in about a second.
async fn fast_sim() -> jt_sim::Sim {
    start_sim(SimConfig {
        heartbeat_interval: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await
}

fn ws_config(sim: &jt_sim::Sim, name: &str) -> TradovateConfig {
    let mut c = config(sim, name);
    c.ws.heartbeat_interval = Duration::from_millis(300);
    c.ws.server_silence_timeout = Duration::from_secs(1);
    c.ws.connect_timeout = Duration::from_secs(1);
    c.ws.auth_timeout = Duration::from_secs(1);
    c.ws.sync_timeout = Duration::from_secs(2);
    c.ws.subscription_window = Duration::from_millis(200);
    // An idle test account is a silent subscription: only the dead-subscription tests use a
    // short threshold.
    c.ws.dead_subscription_windows = 1_000;
    c
}

fn market(cid: &str, side: Side, qty: u32) -> OrderRequest {
    OrderRequest {
        client_order_id: cid.into(),
        side,
        qty,
        kind: OrderKind::Market,
    }
}

fn is_connected(e: &BrokerEvent) -> bool {
    matches!(e, BrokerEvent::Connection(ConnectionState::Connected))
}

fn ends(b: &TradovateBroker) -> Vec<EndReason> {
    b.socket().map(|s| s.stats().ends).unwrap_or_default()
}

#[tokio::test]
async fn typed_events_reach_every_subscriber_and_a_stuck_one_affects_no_other() {
    let sim = fast_sim().await;
    let u = user(&sim, "ava", &["AVA1"]);
    price(&sim, "MNQ", dec!(21000));
    let mut cfg = ws_config(&sim, "ava");
    cfg.ws.subscriber_capacity = 8;
    let b = broker(cfg);
    let acct = account(&u);
    let mut reader = b.subscribe(std::slice::from_ref(&acct)).await.unwrap();
    let mut stuck = b.subscribe(std::slice::from_ref(&acct)).await.unwrap();
    assert!(
        next_event(&mut reader, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    let c = b.resolve_contract("MNQ").await.unwrap();
    // The reader reads while the orders go in; the stuck subscriber never reads.
    let reading = tokio::spawn(async move {
        let events = collect(&mut reader, Duration::from_millis(2500)).await;
        (reader, events)
    });
    for n in 0..6 {
        b.place_order(&acct, &c, &market(&format!("jt-e{n}"), Side::Buy, 1))
            .await
            .unwrap();
    }
    let (_reader, events) = reading.await.unwrap();
    let mut fills = Vec::new();
    let mut position = None;
    let mut cash = false;
    for e in &events {
        match &e.event {
            BrokerEvent::Fill(f) => {
                assert_eq!(e.origin, EventOrigin::Live);
                fills.push(f.clone());
            }
            BrokerEvent::Position(p) if e.origin == EventOrigin::Live => position = Some(p.clone()),
            BrokerEvent::CashBalance(_) => cash = true,
            _ => {}
        }
    }
    assert_eq!(
        fills.len(),
        6,
        "{:#?}",
        events
            .iter()
            .map(|e| (e.origin, &e.event))
            .collect::<Vec<_>>()
    );
    assert!(
        fills
            .iter()
            .all(|f| f.account == acct && f.price == dec!(21000))
    );
    assert_eq!(
        fills
            .iter()
            .filter_map(|f| f.client_order_id.clone())
            .collect::<Vec<_>>()
            .len(),
        6,
        "fills carry the client order id of their order"
    );
    assert_eq!(position.expect("a position event").net_qty, 6);
    assert!(cash, "cash balance events arrive");
    // The subscriber that never read lost events of its own and is told to resync.
    let stuck_events = collect(&mut stuck, Duration::from_millis(200)).await;
    assert!(stuck_events.len() <= 9);
    b.place_order(&acct, &c, &market("jt-e9", Side::Sell, 1))
        .await
        .unwrap();
    assert!(
        next_event(&mut stuck, Duration::from_secs(2), |e| matches!(
            e,
            BrokerEvent::Resync { .. }
        ))
        .await
        .is_some()
    );
}

#[tokio::test]
async fn a_dropped_socket_reconnects_and_events_flow_again() {
    let sim = fast_sim().await;
    let u = user(&sim, "ben", &["BEN1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(ws_config(&sim, "ben"));
    let acct = account(&u);
    let mut sub = b.subscribe(std::slice::from_ref(&acct)).await.unwrap();
    assert!(
        next_event(&mut sub, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    fault(&sim, FaultKind::DropSocket, Some("ben"), None, None);
    assert!(
        next_event(&mut sub, Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::Connection(ConnectionState::Reconnecting { .. })
        ))
        .await
        .is_some()
    );
    assert!(
        next_event(&mut sub, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    assert_eq!(ends(&b), vec![EndReason::ClosedByServer]);
    let c = b.resolve_contract("MNQ").await.unwrap();
    b.place_order(&acct, &c, &market("jt-r1", Side::Buy, 1))
        .await
        .unwrap();
    assert!(
        next_event(&mut sub, Duration::from_secs(3), |e| matches!(
            e,
            BrokerEvent::Fill(_)
        ))
        .await
        .is_some()
    );
    let stats = b.socket().unwrap().stats();
    assert_eq!(stats.synced_connections, 2);
    assert_eq!(stats.sync_requests, 2, "one sync request per socket");
}

#[tokio::test]
async fn a_frozen_socket_is_declared_dead_after_the_silence_timeout() {
    let sim = fast_sim().await;
    let u = user(&sim, "cleo", &["CLEO1"]);
    let b = broker(ws_config(&sim, "cleo"));
    let mut sub = b.subscribe(&[account(&u)]).await.unwrap();
    assert!(
        next_event(&mut sub, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    let frozen_at = std::time::Instant::now();
    fault(&sim, FaultKind::FreezeSocket, Some("cleo"), None, None);
    assert!(
        eventually(Duration::from_secs(4), || async {
            ends(&b).contains(&EndReason::ServerSilent)
        })
        .await,
        "{:?}",
        ends(&b)
    );
    assert!(frozen_at.elapsed() >= Duration::from_millis(900));
    sim.admin().clear_faults();
    assert!(
        eventually(Duration::from_secs(6), || async {
            b.socket().unwrap().stats().synced_connections >= 2
                && b.socket().unwrap().feed().state() == ConnectionState::Connected
        })
        .await,
        "{:?}",
        b.socket().unwrap().stats()
    );
}

#[tokio::test]
async fn a_dead_subscription_reconnects_while_the_market_is_open() {
    let sim = fast_sim().await;
    let u = user(&sim, "dina", &["DINA1"]);
    let mut cfg = ws_config(&sim, "dina");
    cfg.ws.dead_subscription_windows = 3;
    let b = broker(cfg);
    let mut sub = b.subscribe(&[account(&u)]).await.unwrap();
    assert!(
        next_event(&mut sub, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    fault(&sim, FaultKind::SuppressEvents, Some("dina"), None, None);
    assert!(
        eventually(Duration::from_secs(4), || async {
            ends(&b).contains(&EndReason::DeadSubscription)
        })
        .await,
        "{:?}",
        ends(&b)
    );
    // The socket itself was alive the whole time: heartbeats kept coming.
    assert!(!ends(&b).contains(&EndReason::ServerSilent));
}

#[tokio::test]
async fn a_silent_subscription_is_left_alone_while_the_market_is_closed() {
    let sim = fast_sim().await;
    let u = user(&sim, "eli", &["ELI1"]);
    let mut cfg = ws_config(&sim, "eli");
    cfg.ws.dead_subscription_windows = 3;
    cfg.ws.market_hours = Arc::new(|_| false);
    let b = broker(cfg);
    let mut sub = b.subscribe(&[account(&u)]).await.unwrap();
    assert!(
        next_event(&mut sub, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    fault(&sim, FaultKind::SuppressEvents, Some("eli"), None, None);
    // Ten windows of silence, three times the threshold.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(ends(&b).is_empty(), "{:?}", ends(&b));
    assert_eq!(
        b.socket().unwrap().feed().state(),
        ConnectionState::Connected
    );
}

#[tokio::test]
async fn a_session_replay_delivers_no_fill_twice() {
    let sim = fast_sim().await;
    let u = user(&sim, "finn", &["FINN1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(ws_config(&sim, "finn"));
    let acct = account(&u);
    let mut sub = b.subscribe(std::slice::from_ref(&acct)).await.unwrap();
    assert!(
        next_event(&mut sub, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    let c = b.resolve_contract("MNQ").await.unwrap();
    b.place_order(&acct, &c, &market("jt-p1", Side::Buy, 2))
        .await
        .unwrap();
    b.place_order(&acct, &c, &market("jt-p2", Side::Sell, 1))
        .await
        .unwrap();
    let first = collect(&mut sub, Duration::from_millis(800)).await;
    let count = |events: &[Arc<jt_broker::EventEnvelope>]| {
        events
            .iter()
            .filter(|e| matches!(e.event, BrokerEvent::Fill(_)))
            .count()
    };
    assert_eq!(count(&first), 2);

    // The broker replays the day on the live socket.
    assert_eq!(sim.admin().replay(Some("FINN1")).unwrap(), 1);
    let replayed = collect(&mut sub, Duration::from_millis(800)).await;
    assert_eq!(count(&replayed), 0, "{replayed:#?}");

    // And again on a new connection (the session-end case).
    fault(&sim, FaultKind::DropSocket, Some("finn"), None, None);
    assert!(
        next_event(&mut sub, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    sim.admin().replay(Some("FINN1")).unwrap();
    let again = collect(&mut sub, Duration::from_millis(800)).await;
    assert_eq!(count(&again), 0, "{again:#?}");
    // A new fill still arrives.
    b.place_order(&acct, &c, &market("jt-p3", Side::Sell, 1))
        .await
        .unwrap();
    assert!(
        next_event(&mut sub, Duration::from_secs(3), |e| matches!(
            e,
            BrokerEvent::Fill(_)
        ))
        .await
        .is_some()
    );
}

#[tokio::test]
async fn the_socket_is_reopened_with_a_fresh_token_before_the_token_ages_out() {
    let sim = fast_sim().await;
    let u = user(&sim, "gus", &["GUS1"]);
    let mut cfg = ws_config(&sim, "gus");
    cfg.ws.max_token_age = Duration::from_millis(1500);
    cfg.ws.min_socket_life = Duration::from_millis(500);

    let b = broker(cfg);
    let mut sub = b.subscribe(&[account(&u)]).await.unwrap();
    assert!(
        next_event(&mut sub, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    let first_token = b.http().session().current().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            ends(&b).first() == Some(&EndReason::TokenAge)
                && b.socket().unwrap().stats().synced_connections >= 2
        })
        .await,
        "{:?}",
        b.socket().unwrap().stats()
    );
    let second_token = b.http().session().current().unwrap();
    assert!(
        second_token.generation > first_token.generation,
        "renewed before reconnecting"
    );
    assert!(second_token.obtained_at > first_token.obtained_at);
}

#[tokio::test]
async fn an_account_added_later_is_served_after_a_planned_reconnect() {
    let sim = fast_sim().await;
    let u = user(&sim, "hugo", &["HUGO1", "HUGO2"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(ws_config(&sim, "hugo"));
    let first = account(&u);
    let second = jt_broker::AccountId::from(u.accounts[1].id);
    let mut sub1 = b.subscribe(std::slice::from_ref(&first)).await.unwrap();
    assert!(
        next_event(&mut sub1, Duration::from_secs(5), is_connected)
            .await
            .is_some()
    );
    assert_eq!(b.socket().unwrap().served().len(), 1);
    let mut sub2 = b.subscribe(std::slice::from_ref(&second)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            b.socket().unwrap().served().len() == 2
        })
        .await
    );
    assert_eq!(ends(&b), vec![EndReason::AccountsAdded]);
    let sockets = sim.admin().sockets();
    let live: Vec<_> = sockets.iter().filter(|s| s.user_id.is_some()).collect();
    assert_eq!(live.len(), 1, "one socket per token: {sockets:?}");
    assert_eq!(live[0].accounts.len(), 2);
    // Each subscriber sees only its account.
    let c = b.resolve_contract("MNQ").await.unwrap();
    b.place_order(&second, &c, &market("jt-h1", Side::Buy, 1))
        .await
        .unwrap();
    let fill = next_event(&mut sub2, Duration::from_secs(3), |e| {
        matches!(e, BrokerEvent::Fill(_))
    })
    .await
    .expect("the second account's fill");
    assert_eq!(fill.event.account(), Some(&second));
    let others = collect(&mut sub1, Duration::from_millis(300)).await;
    assert!(
        others
            .iter()
            .all(|e| e.event.account().is_none_or(|a| *a == first))
    );
}

#[tokio::test]
async fn two_hundred_logins_connecting_at_once_never_have_more_than_two_attempts_in_flight() {
    let sim = fast_sim().await;
    let gate = ConnectGate::new(&GateConfig {
        max_in_flight: 2,
        spacing: Duration::from_millis(5),
    });
    let registry = LoginRegistry::new(Plumbing::process_wide().with_gate(Arc::clone(&gate)));
    let mut brokers = Vec::new();
    let mut subs = Vec::new();
    for n in 0..200 {
        let name = format!("u{n:03}");
        let u = user(&sim, &name, &[&format!("ACC{n:03}")]);
        let b = TradovateBroker::with(ws_config(&sim, &name), &registry).unwrap();
        brokers.push((b, account(&u)));
    }
    // Every login subscribes at the same moment.
    let subscribed = futures_util::future::join_all(
        brokers
            .iter()
            .map(|(b, a)| b.subscribe(std::slice::from_ref(a))),
    )
    .await;
    for s in subscribed {
        subs.push(s.unwrap());
    }
    assert!(
        eventually(Duration::from_secs(60), || async {
            brokers.iter().all(|(b, _)| {
                b.socket()
                    .is_some_and(|s| s.feed().state() == ConnectionState::Connected)
            })
        })
        .await,
        "not every login connected"
    );
    assert!(
        gate.max_in_flight_seen() <= 2,
        "{}",
        gate.max_in_flight_seen()
    );
    assert!(gate.attempts() >= 200);
    let authorized = sim
        .admin()
        .sockets()
        .iter()
        .filter(|s| s.user_id.is_some())
        .count();
    assert_eq!(authorized, 200);
    drop(subs);
}
