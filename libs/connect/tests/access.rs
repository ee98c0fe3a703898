//! Broker access against the built-in simulator on a SQLite store: a stored account becomes a
//! logged-in broker, one login is shared, a changed account gets a new broker, and what cannot
//! be reached says why.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use jt_connect::{AccessConfig, AccessError, BrokerAccess};
use jt_sim::admin::NewUser as SimUser;
use jt_sim::{Sim, SimConfig};
use jt_store::repo::accounts::{AccountUpdate, BrokerAccount, BrokerCredentials, NewBrokerAccount};
use jt_store::repo::auth::NewUser;
use jt_store::{BrokerKind, Environment, Role, Secret, SecretKey, Store, StoreConfig, UserId};
use jt_testkit::TempSqlite;

const PASSWORD: &str = "sim-password";

struct World {
    _db: TempSqlite,
    store: Store,
    sim: Sim,
    user: UserId,
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
            email: "access@test.example".into(),
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
            accounts: vec!["SIMA".into(), "SIMB".into()],
            ..SimUser::default()
        })
        .unwrap();
    World {
        _db: db,
        store,
        sim,
        user,
    }
}

async fn account(w: &World, password: Option<&str>) -> BrokerAccount {
    w.store
        .accounts()
        .create(
            w.user,
            NewBrokerAccount {
                label: "simulator".into(),
                broker: BrokerKind::Sim,
                environment: Environment::Demo,
                username: Some("alice".into()),
                credentials: BrokerCredentials {
                    password: password.map(Secret::new),
                    ..BrokerCredentials::default()
                },
                require_brackets: false,
            },
        )
        .await
        .unwrap()
}

fn access(w: &World) -> BrokerAccess {
    BrokerAccess::new(
        w.store.clone(),
        AccessConfig::default().with_sim_url(w.sim.base_url()),
    )
}

#[tokio::test]
async fn a_stored_account_becomes_a_logged_in_broker_listing_its_sub_accounts() {
    let w = world().await;
    let account = account(&w, Some(PASSWORD)).await;
    let brokers = access(&w);
    let mut seen: Vec<String> = brokers
        .probe(&account)
        .await
        .expect("the simulator accepts the login")
        .into_iter()
        .map(|a| a.name)
        .collect();
    seen.sort();
    assert_eq!(seen, ["SIMA", "SIMB"]);
}

#[tokio::test]
async fn one_account_is_one_broker_until_the_account_changes() {
    let w = world().await;
    let account = account(&w, Some(PASSWORD)).await;
    let brokers = access(&w);
    let first = brokers.for_account(&account).await.unwrap();
    let again = brokers.for_account(&account).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "the cached broker is reused");

    let changed = w
        .store
        .accounts()
        .update(
            w.user,
            account.id,
            AccountUpdate {
                label: Some("renamed".into()),
                ..AccountUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(changed.updated_at, account.updated_at);
    let rebuilt = brokers.for_account(&changed).await.unwrap();
    assert!(
        !Arc::ptr_eq(&first, &rebuilt),
        "a changed account gets a new broker"
    );
    assert!(!rebuilt.accounts().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_password_is_the_brokers_refusal_with_its_reason() {
    let w = world().await;
    let account = account(&w, Some("not the password")).await;
    let err = access(&w).probe(&account).await.unwrap_err();
    assert!(matches!(err, AccessError::Broker(_)), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().starts_with("the broker answered:"), "{err}");
}

#[tokio::test]
async fn what_cannot_be_reached_says_why() {
    let w = world().await;
    let no_password = account(&w, None).await;
    let err = access(&w).for_account(&no_password).await.unwrap_err();
    assert_eq!(err, AccessError::NoCredentials);

    let with_password = account(&w, Some(PASSWORD)).await;
    let without_simulator = BrokerAccess::new(w.store.clone(), AccessConfig::default());
    let err = without_simulator
        .for_account(&with_password)
        .await
        .unwrap_err();
    assert_eq!(err, AccessError::NoSimulator);
    assert!(err.to_string().contains("JT_SIM_URL"), "{err}");
}

/// A stored Webull account (app key and secret) reaches the simulator's Webull surface
/// through `JT_WEBULL_URL`: the probe lists its accounts, the broker says it is Webull, and a
/// wrong secret is the broker's refusal.
#[tokio::test]
async fn a_webull_account_is_reached_with_its_sealed_key_pair() {
    let w = world().await;
    let created = w
        .sim
        .admin()
        .create_user(&SimUser {
            name: "wb-alice".into(),
            password: "unused".into(),
            accounts: vec!["WB1".into()],
            sec: Some("wb-secret".into()),
            protocol: jt_sim::core::model::Protocol::Webull,
            api_key: Some("wb-key".into()),
            ..SimUser::default()
        })
        .unwrap();
    let stored = |secret: &'static str| {
        let store = w.store.clone();
        let user = w.user;
        async move {
            store
                .accounts()
                .create(
                    user,
                    NewBrokerAccount {
                        label: "webull".into(),
                        broker: BrokerKind::Webull,
                        environment: Environment::Demo,
                        username: None,
                        credentials: BrokerCredentials {
                            api_key: Some(Secret::new("wb-key")),
                            api_secret: Some(Secret::new(secret)),
                            ..BrokerCredentials::default()
                        },
                        require_brackets: false,
                    },
                )
                .await
                .unwrap()
        }
    };
    let brokers = BrokerAccess::new(
        w.store.clone(),
        AccessConfig::default().with_webull_url(w.sim.webull_url()),
    );
    let good = stored("wb-secret").await;
    let seen = brokers
        .probe(&good)
        .await
        .expect("the key pair is accepted");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id.0, created.accounts[0].id.to_string());
    assert_eq!(seen[0].name, "WB1");
    let broker = brokers.for_account(&good).await.unwrap();
    assert_eq!(broker.kind(), BrokerKind::Webull);

    let bad = stored("not-the-secret").await;
    let err = BrokerAccess::new(
        w.store.clone(),
        AccessConfig::default().with_webull_url(w.sim.webull_url()),
    )
    .probe(&bad)
    .await
    .unwrap_err();
    assert!(matches!(err, AccessError::Broker(_)), "{err:?}");
}
