//! The `dead_letter` notification on JetStream (`NATS_URL`) and PostgreSQL (`DATABASE_URL`),
//! both from `scripts/test-services`: a consumer gives up on a message; the dead letter is
//! queued once on the admin's channel subscribing to `dead_letter` (a redelivered letter adds
//! nothing), and a user with no relation to it gets nothing. The same on the embedded bus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use jt_bus::{
    Bus, BusConfig, ConsumeOptions, Definitions, Envelope, Incoming, Letter, Message, MessageId,
    Namespace, Outcome, SubjectError, Subjects,
};
use jt_risk::dead_letters;
use jt_store::repo::auth::NewUser;
use jt_store::repo::notifications::{DeliveryQuery, NewChannel};
use jt_store::{ChannelKind, Role, Secret, SecretKey, Store, StoreConfig, UserId};
use jt_testkit::TestDatabase;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A message on EXECUTIONS that the test's `history` handler always fails.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Doomed {
    sub_account: String,
    secret_note: String,
}

impl Message for Doomed {
    const TYPE: &'static str = "doomed";
    const SCHEMA_VERSION: u32 = 1;
    fn subject(&self, s: &Subjects) -> Result<String, SubjectError> {
        s.execution(&self.sub_account)
    }
}

async fn user(store: &Store, email: &str, role: Role) -> UserId {
    store
        .users()
        .register(NewUser {
            email: email.into(),
            display_name: None,
            password: Secret::new("correct horse battery"),
            role,
            approved: true,
        })
        .await
        .unwrap()
        .id
}

async fn channel(store: &Store, owner: UserId, events: &[&str]) -> jt_store::ChannelId {
    store
        .notifications()
        .create_channel(
            owner,
            NewChannel {
                kind: ChannelKind::Webhook,
                label: "ops".into(),
                target: Secret::new("https://hooks.example.com/jt"),
                events: events.iter().map(|e| (*e).to_owned()).collect(),
            },
        )
        .await
        .unwrap()
        .id
}

async fn log(store: &Store, owner: UserId) -> Vec<jt_store::repo::notifications::Delivery> {
    store
        .notifications()
        .deliveries(
            owner,
            &DeliveryQuery {
                limit: 100,
                ..DeliveryQuery::default()
            },
        )
        .await
        .unwrap()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes a message the `history` consumer (2 attempts, always failing) gives up on.
async fn doom(bus: &Bus, n: u32) {
    let message = Doomed {
        sub_account: Uuid::now_v7().to_string(),
        secret_note: "never in a notification".into(),
    };
    bus.publish(&Envelope::new(
        MessageId::new(format!("doomed:{n}")).unwrap(),
        message,
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_told_once_to_the_admins_and_to_no_stranger() {
    jt_runtime::tls::install_crypto_provider();
    let tag = format!("dn{}", &Uuid::new_v4().simple().to_string()[..10]);
    let bus = Bus::connect(BusConfig {
        nats_url: Some(jt_testkit::nats::nats_url()),
        namespace: Namespace::isolated(&tag).unwrap(),
        ..BusConfig::default()
    })
    .await
    .unwrap();
    told_once(bus).await;
}

/// `jt dev` without `NATS_URL`: the embedded bus keeps dead letters too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_bus_too() {
    let bus = Bus::connect(BusConfig {
        nats_url: None,
        namespace: Namespace::unique(),
        ..BusConfig::default()
    })
    .await
    .unwrap();
    assert!(matches!(bus.backend(), jt_bus::Backend::Embedded(_)));
    told_once(bus).await;
}

async fn told_once(bus: Bus) {
    let db = TestDatabase::create().await;
    let store = Store::connect(
        &StoreConfig::new(db.url().to_string()).with_secret_key(SecretKey::generate()),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let admin = user(&store, "ops@example.com", Role::Admin).await;
    let stranger = user(&store, "trader@example.com", Role::User).await;
    let admin_channel = channel(&store, admin, &["dead_letter"]).await;
    let _admin_other = channel(&store, admin, &["max_loss"]).await;
    let _stranger_channel = channel(&store, stranger, &["dead_letter", "max_loss"]).await;

    let mut defs = Definitions::new(bus.namespace());
    for c in [&mut defs.history, &mut defs.dead_letter_notify] {
        c.ack_wait = Duration::from_secs(2);
        c.max_deliver = 2;
        c.backoff = vec![Duration::from_millis(50)];
    }
    bus.provision(&defs.topology()).await.unwrap();
    let stop = CancellationToken::new();
    {
        let (bus, def, stop) = (bus.clone(), defs.history.clone(), stop.clone());
        tokio::spawn(async move {
            bus.consume(
                &def,
                ConsumeOptions::default(),
                stop,
                |_m: Incoming<Doomed>| async { Outcome::retry("the receiver is down (test)") },
            )
            .await
            .unwrap();
        });
    }

    // 1. The first letter through the production `notify`, by a handler that has the letter
    //    redelivered once after queuing: the redelivery queues nothing.
    doom(&bus, 1).await;
    let queued: Arc<parking_lot::Mutex<Vec<(u32, u64, String)>>> = Arc::default();
    let seen = Arc::new(AtomicU32::new(0));
    let first_stop = stop.child_token();
    let first = {
        let (bus, store, defs, stop) =
            (bus.clone(), store.clone(), defs.clone(), first_stop.clone());
        let (queued, seen) = (queued.clone(), seen.clone());
        let def = defs.dead_letter_notify.clone();
        tokio::spawn(async move {
            bus.consume(
                &def,
                ConsumeOptions::default(),
                stop,
                move |m: Incoming<Letter>| {
                    let (store, defs, queued, seen) =
                        (store.clone(), defs.clone(), queued.clone(), seen.clone());
                    async move {
                        let key = m.envelope.id.as_str().to_owned();
                        let n = dead_letters::notify(
                            &store,
                            &defs,
                            &key,
                            &m.envelope.payload,
                            m.stream_sequence,
                        )
                        .await
                        .unwrap();
                        queued.lock().push((m.attempt, n, key));
                        seen.fetch_add(1, Ordering::SeqCst);
                        if m.attempt == 1 {
                            Outcome::retry("redeliver it (test)")
                        } else {
                            Outcome::Ack
                        }
                    }
                },
            )
            .await
            .unwrap();
        })
    };
    wait_for("the letter and its redelivery", async || {
        seen.load(Ordering::SeqCst) >= 2
    })
    .await;
    let got = queued.lock().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].0, got[0].1),
        (1, 1),
        "one delivery: the admin's dead_letter channel"
    );
    assert_eq!(
        (got[1].0, got[1].1),
        (2, 0),
        "the redelivered letter adds none"
    );
    let key = &got[0].2;
    assert!(
        key.starts_with(&format!("dlq:{}:history:", defs.executions.name)),
        "{key}"
    );

    let rows = log(&store, admin).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.channel, admin_channel);
    assert_eq!(row.event_kind, "dead_letter");
    assert_eq!(&row.dedup_key, key);
    let p = &row.payload;
    assert_eq!(p["stream"], defs.executions.name.as_str());
    assert_eq!(p["consumer"], "history");
    assert_eq!(p["attempts"], 2);
    assert_eq!(p["message_type"], "doomed");
    assert_eq!(p["message_id"], "doomed:1");
    assert!(
        p["reason"]
            .as_str()
            .unwrap()
            .contains("the receiver is down"),
        "{p}"
    );
    assert!(
        !p.to_string().contains("never in a notification"),
        "no body: {p}"
    );
    assert!(
        log(&store, stranger).await.is_empty(),
        "a stranger hears nothing"
    );

    // 2. The service's own consumer (`run`) on the next letter: one more, for the admin only.
    first_stop.cancel();
    first.await.unwrap();
    let run_stop = stop.child_token();
    let runner = tokio::spawn(dead_letters::run(
        store.clone(),
        bus.clone(),
        defs.clone(),
        ConsumeOptions::default(),
        run_stop.clone(),
    ));
    doom(&bus, 2).await;
    wait_for("the second letter's notification", async || {
        log(&store, admin).await.len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = log(&store, admin).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().any(|r| r.payload["message_id"] == "doomed:2"));
    assert!(rows.iter().all(|r| r.channel == admin_channel));
    assert!(
        log(&store, stranger).await.is_empty(),
        "a stranger hears nothing"
    );
    stop.cancel();
    runner.await.unwrap().unwrap();
}

/// A letter whose subject names a recorder reaches its owner's `dead_letter` channel too (the
/// admins' as well); another user's stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_named_by_the_subject_hears_of_the_letter() {
    jt_runtime::tls::install_crypto_provider();
    let db = TestDatabase::create().await;
    let store = Store::connect(
        &StoreConfig::new(db.url().to_string()).with_secret_key(SecretKey::generate()),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let admin = user(&store, "ops@example.com", Role::Admin).await;
    let owner = user(&store, "owner@example.com", Role::User).await;
    let stranger = user(&store, "trader@example.com", Role::User).await;
    for u in [admin, owner, stranger] {
        channel(&store, u, &["dead_letter"]).await;
    }
    let (recorder, _) = store
        .recorders()
        .create(
            owner,
            jt_store::repo::recorders::NewRecorder {
                name: "MNQ scalper".into(),
                symbol: None,
                settings: jt_domain::Settings::default(),
                commission_per_contract: rust_decimal::Decimal::ZERO,
            },
        )
        .await
        .unwrap();
    let defs = Definitions::new(&Namespace::unique());
    let letter = Letter {
        stream: defs.signals.name.clone(),
        consumer: "fanout".into(),
        reason: "gave up after 5 attempts: the store is down".into(),
        attempts: 5,
        original_sequence: 12,
        original_subject: defs
            .namespace
            .subjects()
            .signal(&recorder.id.to_string())
            .unwrap(),
        original_type: Some("signal".into()),
        original_id: Some("sig:1".into()),
    };
    let key = format!("dlq:{}:fanout:12", defs.signals.name);
    let n = dead_letters::notify(&store, &defs, &key, &letter, 3)
        .await
        .unwrap();
    assert_eq!(n, 2, "the admin's channel and the owner's");
    assert_eq!(
        dead_letters::notify(&store, &defs, &key, &letter, 3)
            .await
            .unwrap(),
        0,
        "the same letter again queues nothing"
    );
    for (u, want) in [(admin, 1), (owner, 1), (stranger, 0)] {
        let rows = log(&store, u).await;
        assert_eq!(rows.len(), want, "{rows:?}");
        if let Some(r) = rows.first() {
            assert_eq!(r.dedup_key, key);
            assert_eq!(r.payload["message_id"], "sig:1");
        }
    }
}
