//! The webhook endpoint end to end inside one process: a real store (SQLite, and PostgreSQL from
//! `DATABASE_URL`) and a real bus (embedded, and JetStream from `NATS_URL`), requests through
//! the axum router. Each case runs on both pairs; the PostgreSQL/JetStream pair panics naming
//! the variable when it is unset (`make test` sets both).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use jt_bus::{Bus, BusConfig, Definitions, Envelope, Namespace, RawMessage};
use jt_domain::Settings;
use jt_ingest::{DirectoryConfig, Ingest, IngestConfig, LogWriterConfig, RateLimit};
use jt_messages::SignalMessage;
use jt_store::repo::auth::NewUser;
use jt_store::repo::recorders::NewRecorder;
use jt_store::{RecorderId, Role, Secret, SecretKey, Store, StoreConfig, UserId};
use jt_testkit::{TempSqlite, TestDatabase};
use rust_decimal::Decimal;
use tower::ServiceExt;

enum DbGuard {
    Sqlite(#[allow(dead_code)] TempSqlite),
    Postgres(#[allow(dead_code)] TestDatabase),
}

struct Harness {
    store: Store,
    bus: Bus,
    defs: Definitions,
    ingest: Option<Ingest>,
    router: Router,
    token: String,
    recorder: RecorderId,
    owner: UserId,
    _db: DbGuard,
}

#[derive(Clone, Copy, Debug)]
enum Pair {
    SqliteEmbedded,
    PostgresJetStream,
}

async fn harness(pair: Pair, rate: RateLimit) -> Harness {
    harness_with(pair, rate, DirectoryConfig::default()).await
}

async fn harness_with(pair: Pair, rate: RateLimit, directory: DirectoryConfig) -> Harness {
    jt_runtime::tls::install_crypto_provider();
    let (guard, url) = match pair {
        Pair::SqliteEmbedded => {
            let s = TempSqlite::new();
            let url = s.url().to_string();
            (DbGuard::Sqlite(s), url)
        }
        Pair::PostgresJetStream => {
            let d = TestDatabase::create().await;
            let url = d.url().to_string();
            (DbGuard::Postgres(d), url)
        }
    };
    let store = Store::connect(&StoreConfig::new(url).with_secret_key(SecretKey::generate()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let nats_url = match pair {
        Pair::SqliteEmbedded => None,
        Pair::PostgresJetStream => Some(jt_testkit::nats::nats_url()),
    };
    let bus = Bus::connect(BusConfig {
        nats_url,
        namespace: Namespace::unique(),
        ..BusConfig::default()
    })
    .await
    .unwrap();
    let defs = Definitions::new(bus.namespace());
    bus.provision(&defs.topology()).await.unwrap();

    let user = store
        .users()
        .register(NewUser {
            email: format!("{}@example.com", uuid::Uuid::now_v7()),
            display_name: None,
            password: Secret::new("correct horse battery"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap();
    let (recorder, token) = store
        .recorders()
        .create(
            user.id,
            NewRecorder {
                name: "MNQ scalper".into(),
                symbol: None,
                settings: Settings::default(),
                commission_per_contract: Decimal::ZERO,
            },
        )
        .await
        .unwrap();
    let config = IngestConfig {
        rate_limit: rate,
        directory,
        log: LogWriterConfig {
            flush_every: Duration::from_millis(20),
            ..LogWriterConfig::default()
        },
        ..IngestConfig::default()
    };
    let ingest = Ingest::start(&config, &store, bus.clone());
    let router = ingest.router();
    Harness {
        store,
        bus,
        defs,
        ingest: Some(ingest),
        router,
        token: token.expose().to_string(),
        recorder: recorder.id,
        owner: user.id,
        _db: guard,
    }
}

impl Harness {
    async fn post(&self, token: &str, body: impl Into<Body>) -> (StatusCode, serde_json::Value) {
        let res = self
            .router
            .clone()
            .oneshot(
                Request::post(format!("/webhook/{token}"))
                    .header("content-type", "text/plain")
                    .body(body.into())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {bytes:?}"));
        (status, json)
    }

    async fn hook(&self, body: &str) -> (StatusCode, serde_json::Value) {
        self.post(&self.token.clone(), body.to_string()).await
    }

    async fn signals(&self) -> Vec<Envelope<SignalMessage>> {
        let mut out = Vec::new();
        let mut seq = 1;
        while let Some(stored) = self
            .bus
            .next_message(&self.defs.signals.name, &self.defs.signals.subjects[0], seq)
            .await
            .unwrap()
        {
            seq = stored.sequence + 1;
            let raw: RawMessage = stored.message;
            out.push(Envelope::<SignalMessage>::decode(&raw).unwrap());
        }
        out
    }

    /// Stops the log writer (flushing it) and returns the logged results, oldest first.
    async fn logged_results(&mut self) -> Vec<(u16, String)> {
        if let Some(ingest) = self.ingest.take() {
            ingest.stop().await;
        }
        let mut rows = self.store.system().recent_webhook_log(100).await.unwrap();
        rows.sort_by_key(|r| r.received_at);
        rows.into_iter()
            .map(|r| (r.status_code, r.result))
            .collect()
    }
}

const ENTRY: &str = r#"{"action":"buy","ticker":"MNQ1!","contracts":"2","position":"long"}"#;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite_embedded {
            $( #[tokio::test] async fn $name() { super::$name(super::Pair::SqliteEmbedded).await } )*
        }
        mod postgres_jetstream {
            $( #[tokio::test] async fn $name() { super::$name(super::Pair::PostgresJetStream).await } )*
        }
    };
}

on_both!(
    an_alert_is_queued_and_answered_with_its_signal_id,
    a_duplicate_delivery_within_a_second_is_one_signal,
    identical_alerts_without_time_a_second_apart_are_two_signals,
    identical_alerts_with_time_are_one_signal_for_the_whole_window,
    bad_input_gets_a_clear_4xx_and_nothing_is_queued,
    an_unknown_token_is_404_without_a_hint,
    too_many_alerts_for_one_webhook_are_429,
    every_request_is_logged,
    a_rotated_token_stops_at_the_next_revalidation,
);

async fn an_alert_is_queued_and_answered_with_its_signal_id(pair: Pair) {
    let h = harness(pair, RateLimit::default()).await;
    let (status, body) = h.hook(ENTRY).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "queued");
    let signals = h.signals().await;
    assert_eq!(signals.len(), 1);
    let msg = &signals[0].payload;
    assert_eq!(body["signal_id"], msg.signal_id.to_string());
    assert_eq!(msg.recorder_id, h.recorder.0);
    assert_eq!(msg.signal.action, jt_domain::SignalAction::Long);
    assert_eq!(msg.signal.quantity, Some(Decimal::from(2)));
    assert_eq!(msg.signal.instrument.unwrap().root, "MNQ");
}

async fn a_duplicate_delivery_within_a_second_is_one_signal(pair: Pair) {
    let h = harness(pair, RateLimit::default()).await;
    let (s1, b1) = h.hook(ENTRY).await;
    let (s2, b2) = h.hook(ENTRY).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    let statuses = [
        b1["status"].as_str().unwrap(),
        b2["status"].as_str().unwrap(),
    ];
    assert_eq!(statuses, ["queued", "duplicate"], "{b1} {b2}");
    assert_eq!(h.signals().await.len(), 1);
}

async fn identical_alerts_without_time_a_second_apart_are_two_signals(pair: Pair) {
    // DCA adds: the same body, no `time`, more than a second apart.
    let h = harness(pair, RateLimit::default()).await;
    assert_eq!(h.hook(ENTRY).await.1["status"], "queued");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.hook(ENTRY).await.1["status"], "queued");
    assert_eq!(h.signals().await.len(), 2);
}

async fn identical_alerts_with_time_are_one_signal_for_the_whole_window(pair: Pair) {
    let h = harness(pair, RateLimit::default()).await;
    let body = format!(
        r#"{{"action":"sell","ticker":"MES1!","contracts":1,"position":"short","time":"{}"}}"#,
        chrono::Utc::now().to_rfc3339()
    );
    assert_eq!(h.hook(&body).await.1["status"], "queued");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.hook(&body).await.1["status"], "duplicate");
    assert_eq!(h.signals().await.len(), 1);
}

async fn bad_input_gets_a_clear_4xx_and_nothing_is_queued(pair: Pair) {
    let h = harness(
        pair,
        RateLimit {
            per_second: 1000.try_into().unwrap(),
            burst: 1000.try_into().unwrap(),
        },
    )
    .await;
    let cases: &[(&str, u16, &str)] = &[
        ("{not json", 400, "JSON"),
        (r#"{"action":"hold","ticker":"MNQ1!"}"#, 422, "hold"),
        (
            r#"{"action":"{{strategy.order.action}}","ticker":"MNQ1!"}"#,
            422,
            "placeholder",
        ),
        (r#"{"action":"buy"}"#, 422, "ticker"),
        (r#"{"action":"buy","ticker":"AAPL"}"#, 422, "AAPL"),
    ];
    for (body, status, needle) in cases {
        let (got, answer) = h.hook(body).await;
        assert_eq!(got.as_u16(), *status, "{body} → {answer}");
        assert_eq!(answer["status"], *status);
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(needle),
            "{body}: error {error:?} should mention {needle:?}"
        );
    }
    let huge = format!(
        r#"{{"action":"buy","ticker":"MNQ1!","comment":"{}"}}"#,
        "x".repeat(70_000)
    );
    let (got, answer) = h.hook(&huge).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(h.signals().await.is_empty());
}

async fn an_unknown_token_is_404_without_a_hint(pair: Pair) {
    let h = harness(pair, RateLimit::default()).await;
    let (status, body) = h.post("not-a-token", ENTRY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "unknown webhook token");
    assert!(h.signals().await.is_empty());
}

async fn too_many_alerts_for_one_webhook_are_429(pair: Pair) {
    let one = 1.try_into().unwrap();
    let h = harness(
        pair,
        RateLimit {
            per_second: one,
            burst: 2.try_into().unwrap(),
        },
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let body = format!(r#"{{"action":"buy","ticker":"MNQ1!","comment":"{i}"}}"#);
        statuses.push(h.hook(&body).await.0.as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 429, 429]);
    assert_eq!(h.signals().await.len(), 2);
}

async fn every_request_is_logged(pair: Pair) {
    let mut h = harness(pair, RateLimit::default()).await;
    h.hook(ENTRY).await;
    h.hook(ENTRY).await;
    h.hook("{oops").await;
    h.post("unknown", ENTRY).await;
    let logged = h.logged_results().await;
    let results: Vec<&str> = logged.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        results,
        vec!["queued", "duplicate", "invalid_json", "unknown_token"],
        "{logged:?}"
    );
    let codes: Vec<u16> = logged.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, vec![200, 200, 400, 404]);
}

async fn a_rotated_token_stops_at_the_next_revalidation(pair: Pair) {
    // Answers never go stale by age here: only the ingest's bulk revalidation can notice.
    let h = harness_with(
        pair,
        RateLimit::default(),
        DirectoryConfig {
            fresh_for: Duration::from_secs(3600),
            revalidate_every: Duration::from_millis(100),
            ..DirectoryConfig::default()
        },
    )
    .await;
    assert_eq!(h.hook(ENTRY).await.0, StatusCode::OK);
    let fresh = h
        .store
        .recorders()
        .rotate_webhook_token(h.owner, h.recorder)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = h
            .hook(r#"{"action":"sell","ticker":"MNQ1!","position":"flat"}"#)
            .await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            std::time::Instant::now() < deadline,
            "the old token still works"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = h
        .post(
            fresh.expose(),
            r#"{"action":"buy","ticker":"MNQ1!","comment":"new URL"}"#.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the new URL works at once");
}
