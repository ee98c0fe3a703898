//! The notifier against receivers started here on loopback: a webhook receiver that checks
//! the signature with the documented algorithm (HMAC-SHA256 over `<t>.<body>`, computed here,
//! not with the crate's own function), a Discord-shaped receiver that answers 429 once, a
//! receiver that never answers, and the local SMTP server of `jt-testkit`. The receivers are on
//! loopback, so these notifiers allow private targets (`JT_NOTIFY_ALLOW_PRIVATE_TARGETS`), except
//! the ones proving that, without it, a loopback receiver is refused. The store is SQLite in
//! a temporary directory (no server needed), except the claim test that also runs on PostgreSQL
//! (`scripts/test-services`; it fails naming `DATABASE_URL` without it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use jt_mail::{SmtpConfig, SmtpMailer};
use jt_notify::{Notifier, NotifyConfig};
use jt_store::repo::auth::NewUser;
use jt_store::repo::notifications::{DeliveryQuery, NewChannel};
use jt_store::{
    ChannelId, ChannelKind, DeliveryStatus, Role, Secret, SecretKey, Store, StoreConfig, UserId,
};
use jt_testkit::smtp::{Behaviour, SmtpServer};
use jt_testkit::{TempSqlite, TestDatabase};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

enum Held {
    Sqlite(#[allow(dead_code)] TempSqlite),
    Postgres(#[allow(dead_code)] TestDatabase),
}

struct Db {
    store: Store,
    owner: UserId,
    _db: Held,
}

async fn db() -> Db {
    let db = TempSqlite::new();
    let url = db.url().to_string();
    db_at(url, Held::Sqlite(db)).await
}

/// A database on the test PostgreSQL (`DATABASE_URL`, set by `scripts/test-services`).
async fn pg() -> Db {
    let db = TestDatabase::create().await;
    let url = db.url().to_string();
    db_at(url, Held::Postgres(db)).await
}

async fn db_at(url: String, db: Held) -> Db {
    jt_runtime::tls::install_crypto_provider();
    let store = Store::connect(&StoreConfig::new(url).with_secret_key(SecretKey::generate()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let owner = store
        .users()
        .register(NewUser {
            email: "trader@example.com".into(),
            display_name: None,
            password: Secret::new("correct horse battery"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap()
        .id;
    Db {
        store,
        owner,
        _db: db,
    }
}

impl Db {
    async fn channel(&self, kind: ChannelKind, target: &str) -> (ChannelId, Option<Secret>) {
        let (c, secret) = self
            .store
            .notifications()
            .create_channel_with_secret(
                self.owner,
                NewChannel {
                    kind,
                    label: format!("{kind:?}"),
                    target: Secret::new(target),
                    events: vec!["max_loss".into(), "test".into()],
                },
            )
            .await
            .unwrap();
        (c.id, secret)
    }

    async fn queue(&self, key: &str) -> u64 {
        self.store
            .notifications()
            .enqueue(
                self.owner,
                "max_loss",
                key,
                &json!({"title": "Max daily loss reached on DEMO1: flattened", "account": "DEMO1", "limit": "500"}),
            )
            .await
            .unwrap()
    }

    async fn log(&self, channel: ChannelId) -> Vec<jt_store::repo::notifications::Delivery> {
        self.store
            .notifications()
            .deliveries(
                self.owner,
                &DeliveryQuery {
                    channel: Some(channel),
                    limit: 100,
                    ..DeliveryQuery::default()
                },
            )
            .await
            .unwrap()
    }
}

fn fast() -> NotifyConfig {
    NotifyConfig {
        poll_every: Duration::from_millis(50),
        backoff_base: Duration::from_millis(300),
        backoff_max: Duration::from_secs(5),
        send_timeout: Duration::from_secs(2),
        per_minute: NonZeroU32::new(6000).unwrap(),
        burst: NonZeroU32::new(100).unwrap(),
        // The receivers here listen on loopback.
        allow_private_targets: true,
        ..NotifyConfig::default()
    }
}

/// A running notifier, stopped on drop.
struct Running(CancellationToken);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn start(db: &Db, config: NotifyConfig, mailer: Option<Arc<dyn jt_mail::Mailer>>) -> Running {
    let stop = CancellationToken::new();
    let n = Notifier::new(config, db.store.clone(), mailer).unwrap();
    tokio::spawn(n.run(stop.clone()));
    Running(stop)
}

#[derive(Clone)]
struct Got {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<(StatusCode, String)>>>,
    got: Arc<Mutex<Vec<Got>>>,
}

async fn answer(State(s): State<Script>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    s.got.lock().push(Got {
        at: Instant::now(),
        headers,
        body,
    });
    s.answers
        .lock()
        .pop_front()
        .unwrap_or((StatusCode::OK, "ok".into()))
}

/// A receiver answering `answers` in order, then 200.
struct Receiver {
    url: String,
    script: Script,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(answers: Vec<(u16, &str)>) -> Self {
        let script = Script::default();
        *script.answers.lock() = answers
            .into_iter()
            .map(|(c, b)| (StatusCode::from_u16(c).unwrap(), b.to_string()))
            .collect();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(answer))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            script,
            _server: server,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.script.got.lock().clone()
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Got> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.got();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn wait_status(db: &Db, channel: ChannelId, status: DeliveryStatus, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let log = db.log(channel).await;
        if !log.is_empty() && log.iter().all(|d| d.status == status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries not {status:?} in time: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The documented signature check, written out: HMAC-SHA256 keyed with the secret's text over
/// `<t>.<body>`, lower-case hex.
fn expected_signature(secret: &str, header: &str, body: &[u8]) -> (i64, String) {
    let t: i64 = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .expect("t=")
        .parse()
        .unwrap();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    (t, hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_webhook_gets_the_event_signed_with_its_channels_secret() {
    let db = db().await;
    let hook = Receiver::start(vec![]).await;
    let (channel, secret) = db.channel(ChannelKind::Webhook, &hook.url).await;
    let secret = secret.expect("a webhook channel has a signing secret");
    assert!(secret.expose().starts_with("whsec_"));
    db.queue("breach-1").await;
    let _n = start(&db, fast(), None);
    let got = hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let g = &got[0];
    let header = g.headers["x-jt-signature"].to_str().unwrap();
    let (t, v1) = expected_signature(secret.expose(), header, &g.body);
    assert_eq!(header, format!("t={t},v1={v1}"));
    assert!(
        (chrono::Utc::now().timestamp() - t).abs() < 60,
        "a current timestamp"
    );
    // Any change to the body breaks it.
    let (_, other) = expected_signature(secret.expose(), header, b"{}");
    assert_ne!(other, v1);
    let body: Value = serde_json::from_slice(&g.body).unwrap();
    assert_eq!(body["event"], "max_loss");
    assert_eq!(body["payload"]["account"], "DEMO1");
    assert!(
        body["created_at"].is_string() && body["id"].is_string(),
        "{body}"
    );
    assert_eq!(g.headers["x-jt-event"], "max_loss");
    assert_eq!(g.headers["x-jt-delivery"].to_str().unwrap(), body["id"]);
    wait_status(&db, channel, DeliveryStatus::Sent, Duration::from_secs(2)).await;
    let log = db.log(channel).await;
    assert_eq!(log[0].attempts, 1);
    assert!(log[0].sent_at.is_some());
}

#[tokio::test]
async fn failures_are_retried_with_growing_back_off_then_delivered() {
    let db = db().await;
    let hook = Receiver::start(vec![(503, "down"), (500, "still down")]).await;
    let (channel, _) = db.channel(ChannelKind::Webhook, &hook.url).await;
    db.queue("breach-1").await;
    let _n = start(&db, fast(), None);
    let got = hook.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3, "two failures then a success");
    // Back-off 300 ms then 600 ms, each jittered to between half and all of it.
    let first = got[1].at - got[0].at;
    let second = got[2].at - got[1].at;
    assert!(first >= Duration::from_millis(150), "{first:?}");
    assert!(second >= Duration::from_millis(300), "{second:?}");
    wait_status(&db, channel, DeliveryStatus::Sent, Duration::from_secs(2)).await;
    let log = db.log(channel).await;
    assert_eq!(log[0].attempts, 3);
    assert!(
        log[0].last_error.as_deref().unwrap().contains("500"),
        "{:?}",
        log[0].last_error
    );
    // The signature differs per attempt only by its time; the delivery id is the same.
    assert_eq!(
        got[0].headers["x-jt-delivery"],
        got[2].headers["x-jt-delivery"]
    );
}

#[tokio::test]
async fn a_delivery_is_given_up_after_the_last_attempt_with_its_error() {
    let db = db().await;
    let hook = Receiver::start(vec![
        (503, "a"),
        (503, "b"),
        (502, "bad gateway"),
        (503, "never"),
    ])
    .await;
    let (channel, _) = db.channel(ChannelKind::Webhook, &hook.url).await;
    db.queue("breach-1").await;
    let _n = start(
        &db,
        NotifyConfig {
            max_attempts: 3,
            backoff_base: Duration::from_millis(100),
            ..fast()
        },
        None,
    );
    wait_status(
        &db,
        channel,
        DeliveryStatus::Failed,
        Duration::from_secs(10),
    )
    .await;
    let log = db.log(channel).await;
    assert_eq!(log[0].attempts, 3);
    let e = log[0].last_error.as_deref().unwrap();
    assert!(
        e.contains("502") && e.contains("gave up after 3 attempts"),
        "{e}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(hook.got().len(), 3, "no attempt after giving up");
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let db = db().await;
    let hook = Receiver::start(vec![(404, "no such hook")]).await;
    let (channel, _) = db.channel(ChannelKind::Webhook, &hook.url).await;
    db.queue("breach-1").await;
    let _n = start(&db, fast(), None);
    wait_status(&db, channel, DeliveryStatus::Failed, Duration::from_secs(5)).await;
    let log = db.log(channel).await;
    assert_eq!(log[0].attempts, 1);
    assert!(
        log[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("404 Not Found: no such hook")
    );
}

/// The SSRF guard: with private targets not allowed, a receiver on loopback — named by address
/// or by a name that resolves to it — is refused, the delivery fails at once with the reason,
/// and no request reaches the receiver.
#[tokio::test]
async fn a_loopback_receiver_is_refused_unless_private_targets_are_allowed() {
    let db = db().await;
    let hook = Receiver::start(vec![]).await;
    let by_name = hook.url.replace("127.0.0.1", "localhost");
    let (literal, _) = db.channel(ChannelKind::Webhook, &hook.url).await;
    let (named, _) = db.channel(ChannelKind::Webhook, &by_name).await;
    let (discord, _) = db.channel(ChannelKind::Discord, &by_name).await;
    db.queue("breach-1").await;
    {
        let _n = start(
            &db,
            NotifyConfig {
                allow_private_targets: false,
                ..fast()
            },
            None,
        );
        for channel in [literal, named, discord] {
            wait_status(&db, channel, DeliveryStatus::Failed, Duration::from_secs(5)).await;
            let log = db.log(channel).await;
            assert_eq!(log[0].attempts, 1, "not retried");
            let error = log[0].last_error.as_deref().unwrap();
            assert!(
                error.starts_with("the target resolves to a private address (")
                    && error.contains("JT_NOTIFY_ALLOW_PRIVATE_TARGETS"),
                "{error}"
            );
            assert!(!error.contains("/hook"), "the URL is not shown: {error}");
        }
    }
    assert!(hook.got().is_empty(), "no request reached the receiver");

    // The operator allows private targets: the same receiver gets the next event.
    db.queue("breach-2").await;
    let _n = start(&db, fast(), None);
    let got = hook.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3, "one request per channel");
    for channel in [literal, named, discord] {
        let log = db.log(channel).await;
        assert!(
            log.iter().any(|d| d.status == DeliveryStatus::Sent),
            "{log:?}"
        );
    }
}

#[tokio::test]
async fn discord_gets_its_message_and_a_429_is_waited_out_as_discord_asks() {
    let db = db().await;
    let discord = Receiver::start(vec![(
        429,
        r#"{"message": "You are being rate limited.", "retry_after": 0.8, "global": false}"#,
    )])
    .await;
    let (channel, secret) = db.channel(ChannelKind::Discord, &discord.url).await;
    assert!(secret.is_none(), "Discord channels are not signed");
    db.queue("breach-1").await;
    let _n = start(&db, fast(), None);
    let got = discord.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2);
    let waited = got[1].at - got[0].at;
    // The back-off alone would be 150-300 ms: the receiver's 0.8 s is what was honoured.
    assert!(waited >= Duration::from_millis(750), "{waited:?}");
    let body: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(
        body["content"],
        "Max daily loss reached on DEMO1: flattened"
    );
    assert_eq!(body["embeds"][0]["title"], "max_loss");
    assert!(
        body["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("**account**: DEMO1")
    );
    assert_eq!(body["allowed_mentions"]["parse"], json!([]));
    assert!(got[0].headers.get("x-jt-signature").is_none());
    wait_status(&db, channel, DeliveryStatus::Sent, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_email_is_handed_to_the_smtp_server() {
    let db = db().await;
    let smtp = SmtpServer::start(Behaviour::Accept).await;
    let mailer = SmtpMailer::new(
        SmtpConfig::from_url(&smtp.url(), "Just Trades <no-reply@jt.test>").unwrap(),
    );
    let (channel, _) = db
        .channel(ChannelKind::Email, "Trader <trader@example.com>")
        .await;
    db.queue("breach-1").await;
    let _n = start(&db, fast(), Some(Arc::new(mailer)));
    let mails = smtp.wait_for_mails(1, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: [Just Trades] Max daily loss reached on DEMO1: flattened\r\n"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("account: DEMO1\r\n"), "{}", mails[0]);
    let rcpt = &smtp.sessions()[0].commands;
    assert!(
        rcpt.contains(&"RCPT TO:<trader@example.com>".to_string()),
        "{rcpt:?}"
    );
    wait_status(&db, channel, DeliveryStatus::Sent, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_email_channel_without_a_mailer_fails_saying_so() {
    let db = db().await;
    let (channel, _) = db.channel(ChannelKind::Email, "trader@example.com").await;
    db.queue("breach-1").await;
    let _n = start(&db, fast(), None);
    wait_status(&db, channel, DeliveryStatus::Failed, Duration::from_secs(5)).await;
    assert!(
        db.log(channel).await[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("JT_SMTP_URL")
    );
}

#[tokio::test]
async fn the_same_event_queued_twice_is_delivered_once() {
    let db = db().await;
    let hook = Receiver::start(vec![]).await;
    let (channel, _) = db.channel(ChannelKind::Webhook, &hook.url).await;
    assert_eq!(db.queue("breach-7").await, 1);
    assert_eq!(
        db.queue("breach-7").await,
        0,
        "the same key is one delivery"
    );
    let _n = start(&db, fast(), None);
    hook.wait_for(1, Duration::from_secs(5)).await;
    wait_status(&db, channel, DeliveryStatus::Sent, Duration::from_secs(2)).await;
    // Queued again after it was sent: still the same delivery, nothing new.
    assert_eq!(db.queue("breach-7").await, 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(hook.got().len(), 1);
}

#[tokio::test]
async fn a_burst_to_one_channel_waits_for_its_rate_while_another_channel_does_not() {
    let db = db().await;
    let busy = Receiver::start(vec![]).await;
    let quiet = Receiver::start(vec![]).await;
    let (busy_ch, _) = db.channel(ChannelKind::Webhook, &busy.url).await;
    for i in 0..4 {
        db.queue(&format!("burst-{i}")).await; // queued before the quiet channel exists
    }
    let (_quiet_ch, _) = db.channel(ChannelKind::Webhook, &quiet.url).await;
    db.store
        .notifications()
        .enqueue_to(db.owner, _quiet_ch, "test", "quiet-1", &json!({}))
        .await
        .unwrap();
    let started = Instant::now();
    // One a second per channel, two at once.
    let _n = start(
        &db,
        NotifyConfig {
            per_minute: NonZeroU32::new(60).unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
            ..fast()
        },
        None,
    );
    let q = quiet.wait_for(1, Duration::from_secs(5)).await;
    assert!(
        q[0].at - started < Duration::from_millis(700),
        "the quiet channel did not wait"
    );
    let b = busy.wait_for(4, Duration::from_secs(8)).await;
    assert_eq!(b.len(), 4);
    let from = |i: usize| b[i].at - started;
    assert!(
        from(1) < Duration::from_millis(700),
        "the burst's first two at once: {:?}",
        from(1)
    );
    assert!(
        from(2) >= Duration::from_millis(800),
        "the third waits a period: {:?}",
        from(2)
    );
    assert!(
        from(3) >= Duration::from_millis(1800),
        "the fourth two: {:?}",
        from(3)
    );
    wait_status(&db, busy_ch, DeliveryStatus::Sent, Duration::from_secs(2)).await;
    let log = db.log(busy_ch).await;
    assert!(
        log.iter().all(|d| d.attempts == 1),
        "putting off is not an attempt: {log:?}"
    );
}

#[tokio::test]
async fn a_dead_channel_does_not_hold_up_another() {
    let db = db().await;
    // Accepts connections and never answers.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = dead.accept().await {
            h.lock().push(s);
        }
    });
    let live = Receiver::start(vec![]).await;
    let (dead_ch, _) = db.channel(ChannelKind::Webhook, &dead_url).await;
    for i in 0..3 {
        db.queue(&format!("dead-{i}")).await;
    }
    let (live_ch, _) = db.channel(ChannelKind::Webhook, &live.url).await;
    db.store
        .notifications()
        .enqueue_to(db.owner, live_ch, "test", "live-1", &json!({}))
        .await
        .unwrap();
    let started = Instant::now();
    let _n = start(
        &db,
        NotifyConfig {
            send_timeout: Duration::from_secs(3),
            ..fast()
        },
        None,
    );
    let got = live.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0].at - started < Duration::from_millis(1000),
        "{:?}",
        got[0].at - started
    );
    // The dead channel's sends time out and are retried later.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let log = db.log(dead_ch).await;
    assert!(
        log.iter().any(|d| d.attempts >= 1
            && d.last_error
                .as_deref()
                .is_some_and(|e| e.contains("timed out") || e.contains("no answer"))),
        "{log:?}"
    );
}

#[tokio::test]
async fn two_notifiers_on_one_store_send_each_delivery_once() {
    two_notifiers(db().await).await;
}

#[tokio::test]
async fn two_notifiers_on_one_postgres_database_send_each_delivery_once() {
    two_notifiers(pg().await).await;
}

async fn two_notifiers(db: Db) {
    let hook = Receiver::start(vec![]).await;
    let (channel, _) = db.channel(ChannelKind::Webhook, &hook.url).await;
    for i in 0..20 {
        db.queue(&format!("event-{i}")).await;
    }
    let config = NotifyConfig {
        poll_every: Duration::from_millis(5),
        ..fast()
    };
    let _a = start(&db, config.clone(), None);
    let _b = start(&db, config, None);
    wait_status(&db, channel, DeliveryStatus::Sent, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = hook.got();
    let mut ids: Vec<String> = got
        .iter()
        .map(|g| g.headers["x-jt-delivery"].to_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (got.len(), ids.len()),
        (20, 20),
        "each delivery sent exactly once"
    );
}
