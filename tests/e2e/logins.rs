//! One connection manager holding a fleet's logins (issue #20): 200 simulator logins of five
//! accounts each, all wanting their socket at the same moment, against a simulator that answers
//! HTTP 429 to sockets opening too many at once from one IP (as Tradovate answered the replaced
//! platform's reconnect storms). The `jt connmgr` process connects every login through its
//! connect gate without one 429, syncs each socket over its five accounts, publishes the fleet's
//! fills once each, and stays within a memory bound. The control: the same fleet through a gate
//! opened wide is answered 429.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.
//! Without them the harness fails loudly; nothing here is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use jt_broker::{AccountId, BrokerEvent};
use jt_domain::order::{OrderKind, OrderRequest};
use jt_domain::types::Side;
use jt_e2e::{Options, Platform};
use jt_messages::ReportedEvent;
use jt_sim::sockets::SocketKind;
use jt_sim::tradovate::limits::LimitsConfig;

const LOGINS: usize = 200;
const ACCOUNTS_PER_LOGIN: usize = 5;
/// Logins that trade once after the fleet is connected (one fill each).
const TRADING_LOGINS: usize = 50;
/// The connection manager's resident memory with every login connected, and what trading
/// may add to it. Measured 2026-12-07 (debug build): see `docs/connmgr.md`, "Load".
const RSS_BOUND_KIB: u64 = 160 * 1024;
const RSS_GROWTH_BOUND_KIB: u64 = 24 * 1024;

/// Authorized user sockets at the simulator, by simulator user: the accounts each one's sync
/// request covers.
fn user_sockets(p: &Platform) -> BTreeMap<i64, Vec<Vec<i64>>> {
    let mut out: BTreeMap<i64, Vec<Vec<i64>>> = BTreeMap::new();
    for s in p.sim.admin().sockets() {
        if s.kind == SocketKind::User
            && let Some(user) = s.user_id
        {
            out.entry(user).or_default().push(s.accounts.clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_logins_of_five_accounts_connect_through_the_gate_without_a_429_in_bounded_memory()
 {
    let p = Platform::start(Options {
        accounts: LOGINS * ACCOUNTS_PER_LOGIN,
        logins: LOGINS,
        ..Options::default()
    })
    .await;
    assert_eq!(p.sim_users.len(), LOGINS);
    assert!(
        p.sim_users
            .iter()
            .all(|u| u.accounts.len() == ACCOUNTS_PER_LOGIN)
    );
    // The venue's side: two sockets opening at once per IP, eight attempts a second. The
    // simulator counts every upgrade it refuses.
    p.sim.admin().set_limits(LimitsConfig {
        connects_in_flight: Some(2),
        connects_per_window: Some(8),
        connect_window_ms: 1_000,
        ..LimitsConfig::default()
    });

    // Our side: the gate's default two attempts in flight, spaced 150 ms (at most seven starts
    // in any second) instead of 3 s so the test takes half a minute, not ten; no start stagger,
    // so all 200 logins ask for their socket at once — the storm the gate exists for.
    let key = p.secret_key_hex();
    let sim_url = p.sim.base_url();
    let started = Instant::now();
    let connmgr = p
        .spawn_jt(
            "connmgr",
            &[
                ("JT_SECRET_KEY", key.as_str()),
                ("JT_SIM_URL", sim_url.as_str()),
                ("JT_BROKER_START_STAGGER_SECS", "0"),
                ("JT_BROKER_CONNECT_SPACING_MS", "150"),
                ("JT_CONNMGR_SCAN_MS", "500"),
            ],
        )
        .await;

    let want: BTreeMap<i64, BTreeSet<i64>> = p
        .sim_users
        .iter()
        .map(|u| (u.user_id, u.accounts.iter().map(|a| a.id).collect()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let sockets = user_sockets(&p);
        let synced = want
            .iter()
            .filter(|(user, accounts)| {
                sockets.get(user).is_some_and(|s| {
                    s.iter()
                        .any(|a| a.iter().copied().collect::<BTreeSet<_>>() == **accounts)
                })
            })
            .count();
        if synced == LOGINS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{synced} of {LOGINS} logins connected and synced after {:?}; the simulator refused \
             {} socket upgrades",
            started.elapsed(),
            p.sim.admin().connect_stats().refused
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let connected_after = started.elapsed();

    // No 429, never more than two sockets opening at once, one socket per login synced over
    // exactly its five accounts, one token request per login.
    let stats = p.sim.admin().connect_stats();
    assert_eq!(stats.refused, 0, "socket upgrades answered 429: {stats:?}");
    assert!(
        (1..=2).contains(&stats.max_in_flight),
        "sockets opening at once: {stats:?}"
    );
    let sockets = user_sockets(&p);
    assert_eq!(sockets.len(), LOGINS);
    for (user, accounts) in &want {
        let socks = &sockets[user];
        assert_eq!(
            socks.len(),
            1,
            "user {user}: one socket, not {}",
            socks.len()
        );
        assert_eq!(
            socks[0].iter().copied().collect::<BTreeSet<_>>(),
            *accounts,
            "user {user}: its sync covers its five accounts"
        );
    }
    let logins = p
        .sim
        .admin()
        .request_counts()
        .get("tradovate:auth/accesstokenrequest")
        .copied()
        .unwrap_or(0);
    assert!(
        logins <= LOGINS as u64,
        "{logins} token requests for {LOGINS} logins"
    );
    // The status every reader (API, metrics) sees.
    for login in &p.broker_accounts {
        let status = jt_connmgr::read_status(&p.bus, *login).await.unwrap();
        assert!(
            status.is_some_and(|s| s.state == jt_connmgr::LinkState::Connected),
            "login {login} is not shown connected"
        );
    }
    let rss_connected = connmgr.rss_kib();

    // Trading on a quarter of the fleet: each fill reaches BROKER_EVENTS exactly once.
    let access = jt_connect::AccessConfig::default().with_sim_url(p.sim.base_url());
    let brokers = jt_connect::BrokerAccess::new(p.store.clone(), access);
    let traded: Vec<usize> = (0..TRADING_LOGINS)
        .map(|l| l * ACCOUNTS_PER_LOGIN)
        .collect();
    for (n, &index) in traded.iter().enumerate() {
        let login = p
            .store
            .accounts()
            .get(p.user, p.subs[index].broker_account)
            .await
            .unwrap();
        let broker = brokers.for_account(&login).await.unwrap();
        let contract = broker.resolve_contract("MNQ").await.unwrap();
        broker
            .place_order(
                &AccountId::from(p.subs[index].broker_sub_account_id.as_str()),
                &contract,
                &OrderRequest {
                    client_order_id: format!("fleet-{n}"),
                    side: Side::Buy,
                    qty: 1,
                    kind: OrderKind::Market,
                },
            )
            .await
            .unwrap();
    }
    let fills_of = |events: &[(String, jt_connmgr::BrokerEventMessage)]| {
        events
            .iter()
            .filter(|(_, m)| matches!(m.event, ReportedEvent::Known(BrokerEvent::Fill(_))))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for &index in &traded {
        loop {
            let fills = fills_of(&p.broker_events(index, "fill").await);
            assert!(
                fills <= 1,
                "account {index}: its fill published {fills} times"
            );
            if fills == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "account {index}: its fill never reached BROKER_EVENTS"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let rss_traded = connmgr.rss_kib();
    eprintln!(
        "{LOGINS} logins × {ACCOUNTS_PER_LOGIN} accounts connected and synced in \
         {connected_after:?}; connmgr RSS {rss_connected} KiB connected, {rss_traded} KiB after \
         {TRADING_LOGINS} fills; {stats:?}; {logins} token requests"
    );
    assert!(
        rss_connected < RSS_BOUND_KIB,
        "connmgr RSS {rss_connected} KiB with {LOGINS} logins connected"
    );
    assert!(
        rss_traded < rss_connected + RSS_GROWTH_BOUND_KIB,
        "connmgr RSS grew from {rss_connected} KiB to {rss_traded} KiB over {TRADING_LOGINS} fills"
    );
    assert!(
        connmgr.terminate(),
        "the connection manager stops cleanly on SIGTERM"
    );

    // The control: the same fleet through a gate opened wide (64 in flight, no spacing) is
    // answered 429 — the simulator's limit is real, and the gate is what kept it quiet.
    p.sim.admin().set_limits(LimitsConfig {
        connects_in_flight: Some(2),
        connects_per_window: Some(8),
        connect_window_ms: 1_000,
        ..LimitsConfig::default()
    });
    let ungated = p
        .spawn_jt(
            "connmgr",
            &[
                ("JT_SECRET_KEY", key.as_str()),
                ("JT_SIM_URL", sim_url.as_str()),
                ("JT_BROKER_START_STAGGER_SECS", "0"),
                ("JT_BROKER_CONNECTS_IN_FLIGHT", "64"),
                ("JT_BROKER_CONNECT_SPACING_MS", "0"),
                ("JT_CONNMGR_SCAN_MS", "500"),
            ],
        )
        .await;
    let refused = jt_e2e::eventually(
        "the ungated fleet answered 429",
        Duration::from_secs(30),
        async || Some(p.sim.admin().connect_stats().refused).filter(|n| *n > 0),
    )
    .await;
    eprintln!("without the gate: {refused} socket upgrades answered 429");
    drop(ungated);
    p.stop().await;
}
