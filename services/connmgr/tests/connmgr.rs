//! The connection manager on JetStream (`NATS_URL`), PostgreSQL (`DATABASE_URL`) and the
//! exchange simulator: replicas split the logins through leases, a dead replica's logins are
//! taken over within seconds, and a fill at the simulator reaches BROKER_EVENTS once, under one
//! message id, across the take-over. Run with `scripts/test-services -- cargo test -p
//! jt-connmgr`; without the servers the tests fail loudly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jt_broker::{AccountId, BrokerEvent, OrderStatus};
use jt_bus::{Bus, BusConfig, Definitions, Envelope, MessageId, Namespace};
use jt_connect::{AccessConfig, BrokerAccess};
use jt_connmgr::{BrokerEventMessage, ConnmgrConfig, LinkState, ReportedEvent};
use jt_domain::order::{BracketOrder, OrderKind, OrderRequest, StopKind, StopSpec, TakeProfitLeg};
use jt_domain::types::Side;
use jt_service::{Context, Running};
use jt_sim::admin::NewUser as SimUser;
use jt_sim::{Sim, SimConfig};
use jt_store::repo::accounts::{
    BrokerAccount, BrokerCredentials, BrokerSubAccount, NewBrokerAccount,
};
use jt_store::repo::auth::NewUser;
use jt_store::{
    BrokerAccountId, BrokerKind, Environment, Role, Secret, SecretKey, Store, StoreConfig,
    SubAccountId, UserId,
};
use rust_decimal::Decimal;

const PASSWORD: &str = "sim-password";

struct World {
    _db: jt_testkit::TestDatabase,
    store: Store,
    bus: Bus,
    sim: Sim,
    user: UserId,
}

async fn world() -> World {
    jt_runtime::tls::install_crypto_provider();
    let _ = jt_runtime::metrics::install();
    let db = jt_testkit::TestDatabase::create().await;
    let store = Store::connect(
        &StoreConfig::new(db.url().to_string()).with_secret_key(SecretKey::generate()),
    )
    .await
    .expect("store connects");
    store.migrate().await.expect("migrations apply");
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let bus = Bus::connect(BusConfig {
        nats_url: Some(jt_testkit::nats::nats_url()),
        namespace: Namespace::isolated(&tag).unwrap(),
        ..BusConfig::default()
    })
    .await
    .expect("bus connects");
    bus.provision(&Definitions::new(bus.namespace()).topology())
        .await
        .expect("provision");
    let sim = Sim::start(SimConfig::default())
        .await
        .expect("simulator starts");
    sim.admin()
        .set_price("MNQ", "21000.00".parse::<Decimal>().unwrap())
        .unwrap();
    let user = store
        .users()
        .register(NewUser {
            email: "connmgr@test.example".into(),
            display_name: None,
            password: Secret::new("correct horse battery"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap()
        .id;
    World {
        _db: db,
        store,
        bus,
        sim,
        user,
    }
}

/// A simulator login with one sub-account, stored as a broker account.
async fn login(w: &World, name: &str) -> (BrokerAccount, SubAccountId, AccountId) {
    let created = w
        .sim
        .admin()
        .create_user(&SimUser {
            name: name.into(),
            password: PASSWORD.into(),
            accounts: vec![format!("{name}-A")],
            balance: Some(Decimal::from(50_000)),
            ..SimUser::default()
        })
        .unwrap();
    let account = w
        .store
        .accounts()
        .create(
            w.user,
            NewBrokerAccount {
                label: name.into(),
                broker: BrokerKind::Sim,
                environment: Environment::Demo,
                username: Some(name.into()),
                credentials: BrokerCredentials {
                    password: Some(Secret::new(PASSWORD)),
                    ..BrokerCredentials::default()
                },
                require_brackets: false,
            },
        )
        .await
        .unwrap();
    let listed: Vec<BrokerSubAccount> = created
        .accounts
        .iter()
        .map(|a| BrokerSubAccount {
            broker_sub_account_id: a.id.to_string(),
            name: a.name.clone(),
        })
        .collect();
    let subs = w
        .store
        .accounts()
        .sync_sub_accounts(w.user, account.id, &listed)
        .await
        .unwrap();
    let account = w.store.accounts().get(w.user, account.id).await.unwrap();
    (
        account,
        subs[0].id,
        AccountId(subs[0].broker_sub_account_id.clone()),
    )
}

/// A connmgr replica of its own (its own broker access, as another process would have).
struct Replica {
    ctx: Context,
    running: Option<Running>,
}

async fn replica(w: &World, owner: &str) -> Replica {
    let brokers = Arc::new(BrokerAccess::new(
        w.store.clone(),
        AccessConfig::default()
            .with_sim_url(w.sim.base_url())
            .with_webull_url(w.sim.webull_url())
            .with_start_stagger(Duration::ZERO),
    ));
    let ctx = Context::new(w.store.clone(), w.bus.clone(), brokers);
    let config = ConnmgrConfig {
        owner: owner.into(),
        scan_every: Duration::from_millis(500),
        ..ConnmgrConfig::default()
    };
    let running = jt_connmgr::start(config, &ctx)
        .await
        .expect("connmgr starts");
    Replica {
        ctx,
        running: Some(running),
    }
}

impl Replica {
    /// Dies without a goodbye: its task is aborted, its leases are left to expire.
    fn kill(&mut self) {
        if let Some(r) = self.running.take() {
            r.task.abort();
        }
    }

    async fn stop(&mut self) {
        self.ctx.shutdown.cancel();
        if let Some(r) = self.running.take() {
            r.wait().await.unwrap();
        }
    }
}

async fn holders(w: &World, logins: &[BrokerAccountId]) -> BTreeMap<BrokerAccountId, String> {
    let mut out = BTreeMap::new();
    for id in logins {
        if let Some(h) = jt_connmgr::holder(&w.bus, *id).await.unwrap() {
            out.insert(*id, h);
        }
    }
    out
}

async fn wait_for<F, Fut, T>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every BROKER_EVENTS message on `subject`.
async fn events_on(w: &World, subject: &str) -> Vec<(String, BrokerEventMessage)> {
    let stream = w.bus.namespace().stream_name("BROKER_EVENTS");
    let mut out = Vec::new();
    let mut seq = 1;
    while let Some(stored) = w.bus.next_message(&stream, subject, seq).await.unwrap() {
        seq = stored.sequence + 1;
        let env = Envelope::<BrokerEventMessage>::decode(&stored.message).unwrap();
        out.push((env.id.as_str().to_string(), env.payload));
    }
    out
}

async fn buy_one(w: &World, account: &BrokerAccount, broker_account: &AccountId, tag: &str) {
    // The test trades through its own broker access, as the executor would.
    let brokers = BrokerAccess::new(
        w.store.clone(),
        AccessConfig::default().with_sim_url(w.sim.base_url()),
    );
    let broker = brokers.for_account(account).await.unwrap();
    let symbol = w.sim.admin().front_month("MNQ").unwrap();
    let contract = broker.resolve_contract(&symbol).await.unwrap();
    broker
        .place_order(
            broker_account,
            &contract,
            &OrderRequest {
                client_order_id: format!("jttest{tag}"),
                side: Side::Buy,
                qty: 1,
                kind: OrderKind::Market,
            },
        )
        .await
        .unwrap();
}

fn fills(events: &[(String, BrokerEventMessage)]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|(id, m)| match &m.event {
            ReportedEvent::Known(BrokerEvent::Fill(f)) => Some((id.clone(), f.id.to_string())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_split_the_logins_and_a_dead_ones_are_taken_over_with_each_fill_published_once() {
    let w = world().await;
    let mut logins = Vec::new();
    for name in ["ann", "bob", "cat", "dan"] {
        logins.push(login(&w, name).await);
    }
    let ids: Vec<BrokerAccountId> = logins.iter().map(|l| l.0.id).collect();
    let mut a = replica(&w, "replica-a").await;
    // The second replica starts a moment later, as in a rolling start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = replica(&w, "replica-b").await;

    // Every login is held, each by exactly one replica, with one connection at the broker.
    let held = wait_for(
        "every login held and connected",
        Duration::from_secs(20),
        || async {
            let h = holders(&w, &ids).await;
            let mut connected = 0;
            for id in &ids {
                if let Some(s) = jt_connmgr::read_status(&w.bus, *id).await.unwrap()
                    && s.state == LinkState::Connected
                {
                    connected += 1;
                }
            }
            (h.len() == ids.len() && connected == ids.len()).then_some(h)
        },
    )
    .await;
    let user_sockets = |w: &World| {
        w.sim
            .admin()
            .sockets()
            .into_iter()
            .filter(|s| s.kind == jt_sim::sockets::SocketKind::User && s.user_id.is_some())
            .count()
    };
    assert_eq!(
        user_sockets(&w),
        ids.len(),
        "one socket per login, never two"
    );

    // A fill on a login held by replica A: published once.
    let (victim_index, _) = logins
        .iter()
        .enumerate()
        .find(|(_, l)| held[&l.0.id] == "replica-a")
        .or_else(|| logins.iter().enumerate().next())
        .unwrap();
    let (account, sub, broker_account) = logins[victim_index].clone();
    let victim_owner = held[&account.id].clone();
    let subject = w
        .bus
        .subjects()
        .broker_event(&sub.to_string(), "fill")
        .unwrap();
    buy_one(&w, &account, &broker_account, "1").await;
    let first = wait_for(
        "the fill on BROKER_EVENTS",
        Duration::from_secs(10),
        || async {
            let f = fills(&events_on(&w, &subject).await);
            (!f.is_empty()).then_some(f)
        },
    )
    .await;
    assert_eq!(first.len(), 1, "one fill, one message: {first:?}");

    // The holder dies without releasing anything.
    let killed_at = Instant::now();
    let (dead, alive) = if victim_owner == "replica-a" {
        (&mut a, "replica-b")
    } else {
        (&mut b, "replica-a")
    };
    dead.kill();
    let taken = wait_for(
        "the dead replica's logins taken over",
        Duration::from_secs(10),
        || async {
            let h = holders(&w, &ids).await;
            (h.len() == ids.len() && h.values().all(|o| o == alive)).then_some(h)
        },
    )
    .await;
    let took = killed_at.elapsed();
    eprintln!("take-over of every login in {took:?}: {taken:?}");
    assert!(took < Duration::from_secs(10));
    wait_for(
        "the taken-over login connected again",
        Duration::from_secs(15),
        || async {
            jt_connmgr::read_status(&w.bus, account.id)
                .await
                .unwrap()
                .filter(|s| s.owner == alive && s.state == LinkState::Connected)
        },
    )
    .await;

    // A new fill after the take-over arrives once; the first one was not published again.
    buy_one(&w, &account, &broker_account, "2").await;
    let both = wait_for("the second fill", Duration::from_secs(10), || async {
        let f = fills(&events_on(&w, &subject).await);
        (f.len() >= 2).then_some(f)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = fills(&events_on(&w, &subject).await);
    assert_eq!(settled, both, "nothing more arrived");
    let ids_seen: BTreeSet<&String> = settled.iter().map(|(_, f)| f).collect();
    assert_eq!(ids_seen.len(), 2, "each fill once: {settled:?}");

    // The same fill seen again (a reconnect's sync, another replica) has the same message id:
    // the stream drops it.
    let (msg_id, message) = events_on(&w, &subject)
        .await
        .into_iter()
        .find(|(_, m)| matches!(m.event, ReportedEvent::Known(BrokerEvent::Fill(_))))
        .unwrap();
    let mut again = message.clone();
    again.received_at = chrono::Utc::now();
    assert_eq!(again.message_id(), msg_id);
    let receipt = w
        .bus
        .publish(&Envelope::new(
            MessageId::new(again.message_id()).unwrap(),
            again,
        ))
        .await
        .unwrap();
    assert!(receipt.duplicate, "a repeat is dropped by the stream");

    let alive_replica = if alive == "replica-a" { &mut a } else { &mut b };
    alive_replica.stop().await;
    // A clean stop releases the leases at once.
    let left = holders(&w, &ids).await;
    assert!(left.is_empty(), "released on shutdown: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_login_is_picked_up_and_a_deleted_one_let_go_without_a_restart() {
    let w = world().await;
    let (first, ..) = login(&w, "eve").await;
    let mut r = replica(&w, "only").await;
    wait_for("the first login held", Duration::from_secs(10), || async {
        jt_connmgr::holder(&w.bus, first.id).await.unwrap()
    })
    .await;
    let (second, ..) = login(&w, "fay").await;
    wait_for("the new login held", Duration::from_secs(10), || async {
        jt_connmgr::read_status(&w.bus, second.id)
            .await
            .unwrap()
            .filter(|s| s.state == LinkState::Connected && s.accounts == 1)
    })
    .await;
    w.store.accounts().delete(w.user, first.id).await.unwrap();
    wait_for(
        "the deleted login let go",
        Duration::from_secs(10),
        || async {
            jt_connmgr::holder(&w.bus, first.id)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        jt_connmgr::holder(&w.bus, second.id)
            .await
            .unwrap()
            .as_deref(),
        Some("only")
    );
    r.stop().await;
}

/// A Webull login (its key pair) on the simulator's Webull surface with one account, stored
/// as a broker account.
async fn webull_login(w: &World, name: &str) -> (BrokerAccount, SubAccountId, AccountId) {
    let key = format!("{name}-key");
    let created = w
        .sim
        .admin()
        .create_user(&SimUser {
            name: name.into(),
            password: "unused".into(),
            accounts: vec![format!("{name}-A")],
            balance: Some(Decimal::from(50_000)),
            sec: Some("wb-secret".into()),
            protocol: jt_sim::core::model::Protocol::Webull,
            api_key: Some(key.clone()),
            ..SimUser::default()
        })
        .unwrap();
    let account = w
        .store
        .accounts()
        .create(
            w.user,
            NewBrokerAccount {
                label: name.into(),
                broker: BrokerKind::Webull,
                environment: Environment::Demo,
                username: None,
                credentials: BrokerCredentials {
                    api_key: Some(Secret::new(key)),
                    api_secret: Some(Secret::new("wb-secret")),
                    ..BrokerCredentials::default()
                },
                require_brackets: false,
            },
        )
        .await
        .unwrap();
    let listed = vec![BrokerSubAccount {
        broker_sub_account_id: created.accounts[0].id.to_string(),
        name: created.accounts[0].name.clone(),
    }];
    let subs = w
        .store
        .accounts()
        .sync_sub_accounts(w.user, account.id, &listed)
        .await
        .unwrap();
    let account = w.store.accounts().get(w.user, account.id).await.unwrap();
    (
        account,
        subs[0].id,
        AccountId(subs[0].broker_sub_account_id.clone()),
    )
}

async fn connected(w: &World, login: BrokerAccountId, owner: &str) {
    wait_for(
        "the login held and connected",
        Duration::from_secs(15),
        || async {
            jt_connmgr::read_status(&w.bus, login)
                .await
                .unwrap()
                .filter(|s| s.state == LinkState::Connected && s.owner == owner)
        },
    )
    .await;
}

/// Webull's event side is polled and held like any other login's; its one-cancels-other runs
/// in the connection manager, from the broker's own state: a bracket placed by another
/// process (the executor, here the test's own broker access, never subscribed), the holder
/// restarted between the placement and the take-profit's fill — the new holder never saw the
/// protection placed — and the stop is canceled within a few polls; each fill is published
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webull_login_is_polled_and_its_one_cancels_other_survives_a_restart() {
    let w = world().await;
    let (account, sub, broker_account) = webull_login(&w, "wb-gus").await;
    let mut first = replica(&w, "first").await;
    connected(&w, account.id, "first").await;

    // The executor's side: its own broker access, which opens no event side.
    let placing = BrokerAccess::new(
        w.store.clone(),
        AccessConfig::default().with_webull_url(w.sim.webull_url()),
    );
    let broker = placing.for_account(&account).await.unwrap();
    let contract = broker.resolve_contract("MNQ1!").await.unwrap();
    w.sim
        .admin()
        .set_price(&contract.name, "21000".parse::<Decimal>().unwrap())
        .unwrap();
    let points = |p: &str| p.parse::<Decimal>().unwrap();
    broker
        .place_bracket(
            &broker_account,
            &contract,
            &BracketOrder {
                client_order_id: "jtwb1".into(),
                side: Side::Buy,
                qty: 1,
                entry: OrderKind::Market,
                take_profits: vec![TakeProfitLeg {
                    qty: 1,
                    distance: points("5"),
                }],
                stop: Some(StopSpec {
                    distance: points("5"),
                    kind: StopKind::Fixed,
                }),
                break_even: None,
            },
        )
        .await
        .unwrap();
    let subject = w
        .bus
        .subjects()
        .broker_event(&sub.to_string(), "fill")
        .unwrap();
    let entry = wait_for(
        "the entry's fill on BROKER_EVENTS",
        Duration::from_secs(10),
        || async {
            let f = fills(&events_on(&w, &subject).await);
            (!f.is_empty()).then_some(f)
        },
    )
    .await;
    assert_eq!(entry.len(), 1, "{entry:?}");

    // The holder restarts; the new one never saw the protection placed.
    first.stop().await;
    let mut second = replica(&w, "second").await;
    connected(&w, account.id, "second").await;
    let working = |want: &'static str| {
        let broker = Arc::clone(&broker);
        let broker_account = broker_account.clone();
        async move {
            broker
                .find_order(&broker_account, want)
                .await
                .unwrap()
                .map(|o| o.status)
        }
    };
    assert_eq!(working("jtwb1-sl").await, Some(OrderStatus::Working));

    // The take-profit fills at the broker: the stop goes within a few polls (2 s each).
    let filled_at = Instant::now();
    w.sim
        .admin()
        .set_price(&contract.name, points("21005"))
        .unwrap();
    wait_for(
        "the stop canceled by the connection manager",
        Duration::from_secs(10),
        || async { (working("jtwb1-sl").await == Some(OrderStatus::Canceled)).then_some(()) },
    )
    .await;
    let took = filled_at.elapsed();
    assert_eq!(working("jtwb1-tp1").await, Some(OrderStatus::Filled));
    let position = broker
        .position(&broker_account, &contract.id)
        .await
        .unwrap();
    assert!(
        position.as_ref().is_none_or(|p| p.net_qty == 0),
        "{position:?}"
    );

    // Each fill once: the entry's (before the restart) and the take-profit's (after).
    let all = wait_for(
        "the take-profit's fill on BROKER_EVENTS",
        Duration::from_secs(10),
        || async {
            let f = fills(&events_on(&w, &subject).await);
            (f.len() >= 2).then_some(f)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all_later = fills(&events_on(&w, &subject).await);
    assert_eq!(all_later, all, "nothing published twice");
    assert_eq!(all.len(), 2, "{all:?}");
    let ids: BTreeSet<&String> = all.iter().map(|(_, f)| f).collect();
    assert_eq!(ids.len(), 2, "two fills, two ids: {all:?}");
    eprintln!("the stop was canceled {took:?} after the take-profit's price was reached");
    second.stop().await;
}
