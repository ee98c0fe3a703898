//! A login's request budget is the fleet's, not a process's: three broker accesses (two
//! executor replicas and a connection manager — separate processes that share only the bus and
//! the store) hammer one simulator login. Through the bus (`NATS_URL`, JetStream) they together
//! stay under the login's limit and the excess fails with `RateLimited`; without the shared
//! budget the same fleet overspends the login and meets the simulator's 429.
//!
//! - Tradovate: the user may make `LIMIT` requests an hour (scaled down from ~5,000) before
//!   the simulator locks it out with 429; the excess is refused at once.
//! - ProjectX: the token may make 200 requests per 60 s (the real limit, the simulator's
//!   default); each process paces itself to 200/60 s, so three together would pass it within
//!   20 s; a call that would wait longer than the lane's ten seconds for a slot is refused.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Venue {
    /// The simulator's Tradovate surface (a `sim` account).
    Tradovate,
    /// Its ProjectX surface.
    ProjectX,
}

async fn world(venue: Venue) -> World {
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
    let created = sim
        .admin()
        .create_user(&SimUser {
            name: "alice".into(),
            password: PASSWORD.into(),
            accounts: vec!["SIMA".into()],
            protocol: match venue {
                Venue::Tradovate => jt_sim::core::model::Protocol::Tradovate,
                Venue::ProjectX => jt_sim::core::model::Protocol::ProjectX,
            },
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
                broker: match venue {
                    Venue::Tradovate => BrokerKind::Sim,
                    Venue::ProjectX => BrokerKind::ProjectX,
                },
                environment: Environment::Demo,
                username: Some("alice".into()),
                credentials: BrokerCredentials {
                    password: Some(Secret::new(PASSWORD)),
                    api_key: created.api_key.clone().map(Secret::new),
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
        .with_projectx_url(w.sim.base_url())
        .with_start_stagger(Duration::ZERO);
    if w.account.broker == BrokerKind::Sim {
        access = access.with_request_budget(LIMIT);
    }
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
    /// Refused with `RateLimited` (or `LockedOut`), whoever refused.
    limited: usize,
    /// Of those, refused with a wait of more than 30 minutes: our own hourly budget (the
    /// simulator's 429 means a back-off of a minute at most).
    refused_for_the_hour: usize,
    /// Requests of the login the simulator received, answered or refused (token requests
    /// excluded: they are not the login's).
    received: u64,
}

/// ProjectX: how long the fleet hammers (three processes paced to 200/60 s each pass 200
/// together after about 14 s).
const PROJECTX_HAMMER: Duration = Duration::from_secs(20);

async fn hammer(venue: Venue, shared: bool) -> Tally {
    let w = world(venue).await;
    let mut brokers = Vec::new();
    for _ in 0..PROCESSES {
        brokers.push(process(&w, shared).await);
    }
    // The first process logs in; the others adopt its session (token) from the store.
    let sub: AccountId = brokers[0].accounts().await.unwrap()[0].id.clone();
    let until = tokio::time::Instant::now() + PROJECTX_HAMMER;
    let mut tasks = Vec::new();
    for broker in &brokers {
        for _ in 0..CALLERS {
            let broker = Arc::clone(broker);
            let sub = sub.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let done = match venue {
                        Venue::Tradovate => got.len() == CALLS,
                        Venue::ProjectX => tokio::time::Instant::now() >= until,
                    };
                    if done {
                        break got;
                    }
                    let result = broker.positions(&sub).await.map(|_| ());
                    if venue == Venue::ProjectX && result.is_err() {
                        // A refused caller does not spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    got.push(result);
                }
            }));
        }
    }
    let mut tally = Tally::default();
    for task in tasks {
        for result in task.await.unwrap() {
            match result {
                Ok(()) => tally.ok += 1,
                Err(BrokerError::RateLimited { retry_after }) => {
                    tally.limited += 1;
                    if retry_after > Duration::from_secs(30 * 60) {
                        tally.refused_for_the_hour += 1;
                    }
                }
                Err(BrokerError::LockedOut { .. }) => tally.limited += 1,
                Err(other) => panic!("unexpected error: {other:?}"),
            }
        }
    }
    let counts = w.sim.admin().request_counts();
    let prefix = match venue {
        Venue::Tradovate => "tradovate:",
        Venue::ProjectX => "projectx:",
    };
    tally.received = counts
        .iter()
        .filter(|(k, _)| {
            k.starts_with(prefix) && !k.contains("accesstokenrequest") && !k.contains("loginkey")
        })
        .map(|(_, n)| n)
        .sum();
    eprintln!("{venue:?}, shared={shared}: {tally:?}; simulator counts: {counts:?}");
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_together_never_passes_a_tradovate_users_hour() {
    let t = hammer(Venue::Tradovate, true).await;
    assert_eq!(t.ok + t.limited, PROCESSES * CALLERS * CALLS);
    assert!(
        t.received <= u64::from(LIMIT),
        "the simulator received {} requests of the user, over its {LIMIT}: {t:?}",
        t.received
    );
    // Every refusal was ours, for the rest of the hour: the simulator never throttled.
    assert!(t.limited > 0, "the excess was refused: {t:?}");
    assert_eq!(t.refused_for_the_hour, t.limited, "{t:?}");
    // Slots claimed but not spent are lost (conservative), at most a chunk less one per
    // process; the rest of the budget was used.
    let lost = PROCESSES as u64 * u64::from(jt_net::budget::CHUNK - 1);
    assert!(
        t.received + lost >= u64::from(LIMIT),
        "the budget was used, not wasted: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_shared_budget_the_same_fleet_overspends_the_tradovate_user() {
    let t = hammer(Venue::Tradovate, false).await;
    assert!(
        t.received > u64::from(LIMIT),
        "each process kept only its own budget, so together they passed the user's: {t:?}"
    );
    assert!(
        t.limited > t.refused_for_the_hour,
        "and the simulator throttled them: {t:?}"
    );
}

/// ProjectX's limit per token and window (the simulator's default).
const PROJECTX_LIMIT: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_together_never_passes_a_projectx_tokens_minute() {
    let t = hammer(Venue::ProjectX, true).await;
    // All within one 60 s window: the simulator received no more than the limit, so it
    // refused nothing (it answers 429 only past the limit).
    assert!(
        t.received <= PROJECTX_LIMIT,
        "the simulator received {} requests of the token, over its {PROJECTX_LIMIT}: {t:?}",
        t.received
    );
    assert!(t.limited > 0, "the excess was refused: {t:?}");
    let lost = PROCESSES as u64 * u64::from(jt_net::budget::CHUNK - 1);
    assert!(
        t.received + lost >= PROJECTX_LIMIT,
        "the budget was used, not wasted: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_shared_budget_the_same_fleet_overspends_the_projectx_token() {
    let t = hammer(Venue::ProjectX, false).await;
    assert!(
        t.received > PROJECTX_LIMIT,
        "each process kept only its own pace, so together they passed the token's limit: {t:?}"
    );
    assert!(t.limited > 0, "and the simulator throttled them: {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_its_bucket_a_process_keeps_to_its_own_budget_and_trades_on() {
    let w = world(Venue::Tradovate).await;
    // A bus on which the budgets' bucket was never provisioned: every claim fails.
    let bus = Bus::connect(BusConfig {
        nats_url: Some(jt_testkit::nats::nats_url()),
        namespace: w.namespace.clone(),
        ..BusConfig::default()
    })
    .await
    .expect("bus connects (NATS_URL)");
    let access = AccessConfig::default()
        .with_sim_url(w.sim.base_url())
        .with_request_budget(LIMIT)
        .with_shared_budgets(BusBudgets::new(&bus));
    let broker = BrokerAccess::new(w.store.clone(), access)
        .for_account(&w.account)
        .await
        .unwrap();
    let sub = broker.accounts().await.unwrap()[0].id.clone();
    for _ in 0..10 {
        broker.positions(&sub).await.expect("the call goes through");
    }
    // The per-process hour still holds.
    let mut refused = 0;
    for _ in 0..LIMIT {
        if let Err(e) = broker.positions(&sub).await {
            assert!(matches!(e, BrokerError::RateLimited { .. }), "{e:?}");
            refused += 1;
        }
    }
    // The log-in's calls and the ten above were counted too, so some of these were refused.
    assert!(refused >= 11, "{refused} refused");
    let received: u64 = w
        .sim
        .admin()
        .request_counts()
        .iter()
        .filter(|(k, _)| !k.contains("accesstokenrequest"))
        .map(|(_, n)| n)
        .sum();
    assert!(received <= u64::from(LIMIT), "{received}");
}
