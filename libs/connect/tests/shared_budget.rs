//! A login's request budget is the fleet's, not a process's: three broker accesses (two
//! executor replicas and a connection manager — separate processes that share only the bus and
//! the store) hammer one simulator login whose user may make `LIMIT` requests an hour before
//! the simulator locks it out with HTTP 429. Through the bus (`NATS_URL`, JetStream) they
//! together stay under the limit and the excess fails fast with `RateLimited`; without the
//! shared budget the same fleet overspends the login and meets the simulator's 429.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use jt_broker::{AccountId, Broker, BrokerError};
use jt_bus::{Bus, BusConfig, Definitions, Namespace};
use jt_connect::{AccessConfig, BrokerAccess, BusBudgets};
use jt_sim::admin::NewUser as SimUser;
use jt_sim::tradovate::limits::LimitsConfig as SimLimits;
use jt_sim::{Sim, SimConfig};
use jt_store::repo::accounts::{BrokerAccount, BrokerCredentials, NewBrokerAccount};
use jt_store::repo::auth::NewUser;
use jt_store::{BrokerKind, Environment, Role, Secret, SecretKey, Store, StoreConfig};
use jt_testkit::TempSqlite;

const PASSWORD: &str = "sim-password";
/// Requests the simulator's user may make in its hour before it answers 429.
const LIMIT: u32 = 40;
/// Processes of the fleet.
const PROCESSES: usize = 3;
/// Concurrent callers per process, and calls each makes.
const CALLERS: usize = 4;
const CALLS: usize = 10;

struct World {
    _db: TempSqlite,
    store: Store,
    sim: Sim,
    namespace: Namespace,
    account: BrokerAccount,
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
    let user = store
        .users()
        .register(NewUser {
            email: "budget@test.example".into(),
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
    sim.admin()
        .create_user(&SimUser {
            name: "alice".into(),
            password: PASSWORD.into(),
            accounts: vec!["SIMA".into()],
            ..SimUser::default()
        })
        .unwrap();
    // Tradovate's per-user hour, scaled down: the (LIMIT + 1)th request of the user in the
    // hour is answered 429 and locks the user out.
    sim.admin().set_limits(SimLimits {
        window_secs: 3_600,
        hard_limit: Some(LIMIT),
        ..SimLimits::default()
    });
    let account = store
        .accounts()
        .create(
            user,
            NewBrokerAccount {
                label: "simulator".into(),
                broker: BrokerKind::Sim,
                environment: Environment::Demo,
                username: Some("alice".into()),
                credentials: BrokerCredentials {
                    password: Some(Secret::new(PASSWORD)),
                    ..BrokerCredentials::default()
                },
                require_brackets: false,
            },
        )
        .await
        .unwrap();
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    World {
        _db: db,
        store,
        sim,
        namespace: Namespace::isolated(&tag).unwrap(),
        account,
    }
}

/// One process: its own bus connection and broker access over the shared store.
async fn process(w: &World, shared: bool) -> Arc<dyn Broker> {
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
    let mut access = AccessConfig::default()
        .with_sim_url(w.sim.base_url())
        .with_start_stagger(Duration::ZERO)
        .with_request_budget(LIMIT);
    if shared {
        access = access.with_shared_budgets(BusBudgets::new(&bus));
    }
    BrokerAccess::new(w.store.clone(), access)
        .for_account(&w.account)
        .await
        .expect("a broker for the account")
}

/// What the fleet's calls got.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    /// Refused by our own budget: the wait is the rest of the budget window.
    refused: usize,
    /// Refused because the broker throttled (its 429's back-off, a minute).
    throttled: usize,
    /// Requests of the user the simulator received (token requests excluded: they are not
    /// the user's).
    received: u64,
}

async fn hammer(shared: bool) -> Tally {
    let w = world().await;
    let mut brokers = Vec::new();
    for _ in 0..PROCESSES {
        brokers.push(process(&w, shared).await);
    }
    // The first process logs in; the others adopt its session from the store.
    let sub: AccountId = brokers[0].accounts().await.unwrap()[0].id.clone();
    let mut tasks = Vec::new();
    for broker in &brokers {
        for _ in 0..CALLERS {
            let broker = Arc::clone(broker);
            let sub = sub.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..CALLS {
                    got.push(broker.positions(&sub).await.map(|_| ()));
                }
                got
            }));
        }
    }
    let mut tally = Tally::default();
    for task in tasks {
        for result in task.await.unwrap() {
            match result {
                Ok(()) => tally.ok += 1,
                Err(BrokerError::RateLimited { retry_after })
                    if retry_after > Duration::from_secs(30 * 60) =>
                {
                    tally.refused += 1;
                }
                Err(BrokerError::RateLimited { .. } | BrokerError::LockedOut { .. }) => {
                    tally.throttled += 1;
                }
                Err(other) => panic!("unexpected error: {other:?}"),
            }
        }
    }
    tally.received = w
        .sim
        .admin()
        .request_counts()
        .into_iter()
        .filter(|(k, _)| k.starts_with("tradovate:") && !k.contains("accesstokenrequest"))
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "shared={shared}: {tally:?}; simulator counts: {:?}",
        w.sim.admin().request_counts()
    );
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_together_never_passes_a_logins_budget() {
    let t = hammer(true).await;
    let attempts = PROCESSES * CALLERS * CALLS;
    assert_eq!(t.ok + t.refused + t.throttled, attempts);
    assert!(
        t.received <= u64::from(LIMIT),
        "the simulator received {} requests of the user, over its {LIMIT}: {t:?}",
        t.received
    );
    assert_eq!(t.throttled, 0, "the simulator never throttled: {t:?}");
    assert!(t.refused > 0, "the excess was refused: {t:?}");
    // Slots claimed but not spent are lost (conservative), at most a chunk less one per
    // process; the rest of the budget was used.
    let lost = PROCESSES as u64 * u64::from(jt_net::budget::CHUNK - 1);
    assert!(
        t.received + lost >= u64::from(LIMIT),
        "the budget was used, not wasted: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_shared_budget_the_same_fleet_overspends_the_login() {
    let t = hammer(false).await;
    assert!(
        t.received > u64::from(LIMIT),
        "each process kept only its own budget, so together they passed the login's: {t:?}"
    );
    assert!(t.throttled > 0, "and the simulator throttled them: {t:?}");
}
