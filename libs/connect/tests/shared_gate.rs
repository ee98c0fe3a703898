//! The connect gate is the fleet's, not a process's (DOMAIN §8): two connection-manager
//! replicas — two broker accesses that share only the bus and the store, behind one IP — open
//! the event sockets of three logins each at once. The simulator answers 429 to a socket
//! upgrade when more than one starts from the IP within 250 ms (Tradovate's answer to a
//! reconnect storm, scaled down). Through the bus (`NATS_URL`, JetStream; the gate's ledger in
//! the `jt_broker_budgets` bucket) the two together start one attempt per 500 ms, two at most
//! in flight, and none is refused; with a gate each, their first attempts collide and are.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use jt_broker::{BrokerEvent, ConnectionState, EventSubscription};
use jt_bus::{Bus, BusConfig, Definitions, Namespace};
use jt_connect::{AccessConfig, BrokerAccess, BusBudgets};
use jt_net::budget::BudgetStore;
use jt_net::gate::{GATE_KEY, GateConfig, GateLedger};
use jt_sim::admin::NewUser as SimUser;
use jt_sim::tradovate::limits::LimitsConfig as SimLimits;
use jt_sim::{Sim, SimConfig};
use jt_store::repo::accounts::{BrokerAccount, BrokerCredentials, NewBrokerAccount};
use jt_store::repo::auth::NewUser;
use jt_store::{BrokerKind, Environment, Role, Secret, SecretKey, Store, StoreConfig};
use jt_testkit::TempSqlite;

const PASSWORD: &str = "sim-password";
/// Processes (connection-manager replicas) and the logins each holds.
const PROCESSES: usize = 2;
const LOGINS_PER_PROCESS: usize = 3;
/// The gate: DOMAIN §8's two in flight, the spacing scaled down from 3 s.
const SPACING: Duration = Duration::from_millis(500);
/// The simulator: one upgrade per IP per this window (half the spacing: room for the time
/// between a claim and its upgrade reaching the simulator).
const SIM_WINDOW_MS: u64 = 250;

struct World {
    _db: TempSqlite,
    store: Store,
    sim: Sim,
    namespace: Namespace,
    accounts: Vec<BrokerAccount>,
}

async fn world() -> World {
    jt_runtime::tls::install_crypto_provider();
    let db = TempSqlite::new();
    let store = Store::connect(
        &StoreConfig::new(db.url().to_string()).with_secret_key(SecretKey::generate()),
    )
    .await
    .expect("store connects");
    store.migrate().await.expect("migrations apply");
    let owner = store
        .users()
        .register(NewUser {
            email: "gate@test.example".into(),
            display_name: None,
            password: Secret::new("correct horse battery"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap()
        .id;
    let sim = Sim::start(SimConfig::default())
        .await
        .expect("simulator starts");
    let mut accounts = Vec::new();
    for i in 0..PROCESSES * LOGINS_PER_PROCESS {
        let name = format!("login{i}");
        sim.admin()
            .create_user(&SimUser {
                name: name.clone(),
                password: PASSWORD.into(),
                accounts: vec![format!("SIM{i}")],
                ..SimUser::default()
            })
            .unwrap();
        accounts.push(
            store
                .accounts()
                .create(
                    owner,
                    NewBrokerAccount {
                        label: name.clone(),
                        broker: BrokerKind::Sim,
                        environment: Environment::Demo,
                        username: Some(name),
                        credentials: BrokerCredentials {
                            password: Some(Secret::new(PASSWORD)),
                            ..BrokerCredentials::default()
                        },
                        require_brackets: false,
                    },
                )
                .await
                .unwrap(),
        );
    }
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    World {
        _db: db,
        store,
        sim,
        namespace: Namespace::isolated(&tag).unwrap(),
        accounts,
    }
}

async fn bus(w: &World) -> Bus {
    let bus = Bus::connect(BusConfig {
        nats_url: Some(jt_testkit::nats::nats_url()),
        namespace: w.namespace.clone(),
        ..BusConfig::default()
    })
    .await
    .expect("bus connects (NATS_URL)");
    bus.provision(&Definitions::new(bus.namespace()).topology())
        .await
        .expect("provision");
    bus
}

/// One process: its own bus connection and broker access over the shared store.
async fn process(w: &World, shared: bool) -> BrokerAccess {
    let mut access = AccessConfig::default()
        .with_sim_url(w.sim.base_url())
        .with_start_stagger(Duration::ZERO)
        .with_gate(GateConfig {
            max_in_flight: 2,
            spacing: SPACING,
        });
    if shared {
        access = access.with_shared_budgets(BusBudgets::new(&bus(w).await));
    }
    BrokerAccess::new(w.store.clone(), access)
}

/// Every process subscribes to its logins' events at once; returns the subscriptions (kept
/// open) and how many reached `Connected` within `within`.
async fn storm(w: &World, shared: bool, within: Duration) -> (Vec<EventSubscription>, usize) {
    let mut processes = Vec::new();
    for _ in 0..PROCESSES {
        processes.push(process(w, shared).await);
    }
    // Read each login's sub-accounts first (REST), so the sockets are all that is left.
    let mut plans = Vec::new();
    for (p, access) in processes.iter().enumerate() {
        for account in &w.accounts[p * LOGINS_PER_PROCESS..(p + 1) * LOGINS_PER_PROCESS] {
            let ids: Vec<_> = access
                .probe(account)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect();
            plans.push((access.events_for(account).await.unwrap(), ids));
        }
    }
    let mut subs = futures_util::future::join_all(
        plans
            .iter()
            .map(|(events, ids)| async move { events.subscribe(ids).await.unwrap() }),
    )
    .await;
    let deadline = tokio::time::Instant::now() + within;
    let mut connected = 0;
    for sub in &mut subs {
        loop {
            let event = tokio::time::timeout_at(deadline, sub.recv()).await;
            match event {
                Ok(Some(e)) if e.event == BrokerEvent::Connection(ConnectionState::Connected) => {
                    connected += 1;
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    (subs, connected)
}

fn limit_the_sim(w: &World) {
    w.sim.admin().set_limits(SimLimits {
        connects_in_flight: Some(2),
        connects_per_window: Some(1),
        connect_window_ms: SIM_WINDOW_MS,
        ..SimLimits::default()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_together_keep_to_one_gate_and_are_never_refused() {
    let w = world().await;
    limit_the_sim(&w);
    let t0 = tokio::time::Instant::now();
    let (_subs, connected) = storm(&w, true, Duration::from_secs(30)).await;
    let took = t0.elapsed();
    let stats = w.sim.admin().connect_stats();
    eprintln!("shared: {connected} connected in {took:?}; simulator: {stats:?}");
    assert_eq!(connected, PROCESSES * LOGINS_PER_PROCESS);
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert!(stats.max_in_flight <= 2, "{stats:?}");
    // Six starts, one fleet spacing apart.
    let starts = u32::try_from(PROCESSES * LOGINS_PER_PROCESS - 1).unwrap();
    assert!(took >= SPACING * starts, "{took:?}");
    // The gate's ledger is in the budgets' bucket, every slot released.
    let store = BusBudgets::new(&bus(&w).await);
    let (bytes, _) = store.load(GATE_KEY).await.unwrap().expect("a gate ledger");
    let ledger: GateLedger = serde_json::from_slice(&bytes).unwrap();
    assert!(ledger.slots.is_empty(), "{ledger:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_gate_each_the_replicas_first_attempts_collide_and_are_refused() {
    let w = world().await;
    limit_the_sim(&w);
    let (_subs, _) = storm(&w, false, Duration::from_secs(5)).await;
    let stats = w.sim.admin().connect_stats();
    eprintln!("per process: simulator: {stats:?}");
    assert!(stats.refused > 0, "{stats:?}");
}
