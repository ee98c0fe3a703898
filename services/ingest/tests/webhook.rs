//! The webhook endpoint end to end inside one process: a real store (SQLite, and PostgreSQL from
//! `DATABASE_URL`) and a real bus (embedded, and JetStream from `NATS_URL`), requests through
//! the axum router. Each case runs on both pairs; the PostgreSQL/JetStream pair panics naming
//! the variable when it is unset (`make test` sets both).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt as _;
use http_body_util::BodyExt;
use jt_bus::{Bus, BusConfig, Definitions, Envelope, JetStreamOptions, Namespace, RawMessage};
use jt_domain::Settings;
use jt_ingest::{DirectoryConfig, Ingest, IngestConfig, LogWriterConfig, RateLimit};
use jt_messages::SignalMessage;
use jt_store::repo::auth::NewUser;
use jt_store::repo::recorders::NewRecorder;
use jt_store::repo::webhooks::WebhookLogEntry;
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
    harness_cfg(pair, move |c| {
        c.rate_limit = rate;
        c.directory = directory;
    })
    .await
}

async fn harness_cfg(pair: Pair, adjust: impl FnOnce(&mut IngestConfig)) -> Harness {
    harness_on(pair, None, adjust).await
}

/// A harness whose bus is `nats` (a URL and client options) instead of the pair's own.
async fn harness_on(
    pair: Pair,
    nats: Option<(String, JetStreamOptions)>,
    adjust: impl FnOnce(&mut IngestConfig),
) -> Harness {
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
    let (nats_url, jetstream) = match (pair, nats) {
        (_, Some((url, options))) => (Some(url), options),
        (Pair::SqliteEmbedded, None) => (None, JetStreamOptions::default()),
        (Pair::PostgresJetStream, None) => (
            Some(jt_testkit::nats::nats_url()),
            JetStreamOptions::default(),
        ),
    };
    let bus = Bus::connect(BusConfig {
        nats_url,
        namespace: Namespace::unique(),
        jetstream,
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
    let mut config = IngestConfig {
        log: LogWriterConfig {
            flush_every: Duration::from_millis(20),
            ..LogWriterConfig::default()
        },
        ..IngestConfig::default()
    };
    adjust(&mut config);
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
        let (status, _, json) = self
            .send(
                Request::post(format!("/webhook/{token}"))
                    .header("content-type", "text/plain")
                    .body(body.into())
                    .unwrap(),
            )
            .await;
        (status, json)
    }

    /// Sends a request as if from `peer`; returns the status, headers and JSON answer.
    async fn send_from(
        &self,
        peer: &str,
        mut request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let addr: std::net::SocketAddr = format!("{peer}:40000").parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        self.send(request).await
    }

    async fn send(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let res = self.router.clone().oneshot(request).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {bytes:?}"));
        (status, headers, json)
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

    /// How many messages each stream of the topology holds (nothing consumes them here), by
    /// stream name: what the ingest published.
    async fn stored_per_stream(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for stream in self.defs.topology().streams {
            let mut count = 0;
            let mut seq = 1;
            for subject in &stream.subjects {
                while let Some(stored) = self
                    .bus
                    .next_message(&stream.name, subject, seq)
                    .await
                    .unwrap()
                {
                    seq = stored.sequence + 1;
                    count += 1;
                }
            }
            out.push((stream.name.clone(), count));
        }
        out
    }

    /// Stops the log writer (flushing it) and returns the logged results, oldest first.
    async fn logged_results(&mut self) -> Vec<(u16, String)> {
        self.logged()
            .await
            .into_iter()
            .map(|r| (r.status_code, r.result))
            .collect()
    }

    /// Stops the log writer (flushing it) and returns the logged rows, oldest first.
    async fn logged(&mut self) -> Vec<WebhookLogEntry> {
        if let Some(ingest) = self.ingest.take() {
            ingest.stop().await;
        }
        let mut rows = self.store.system().recent_webhook_log(1000).await.unwrap();
        rows.sort_by_key(|r| r.received_at);
        rows
    }
}

const ENTRY: &str = r#"{"action":"buy","ticker":"MNQ1!","contracts":"2","position":"long"}"#;

/// Waits for the wall clock's next whole second (plus a few milliseconds): two deliveries sent
/// right after it share the second of their message id, which JetStream de-duplicates at the
/// ingest. (A copy across a second boundary is the fan-out's to catch: `tests/e2e/signals.rs`.)
async fn start_of_a_second() {
    let into = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1_000 - into) + 5)).await;
}

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
    an_alert_is_one_publish,
    a_duplicate_delivery_within_a_second_is_one_signal,
    identical_alerts_without_time_a_second_apart_are_two_signals,
    identical_alerts_with_time_are_one_signal_for_the_whole_window,
    bad_input_gets_a_clear_4xx_and_nothing_is_queued,
    an_unknown_token_is_404_without_a_hint,
    too_many_alerts_for_one_webhook_are_429,
    every_request_is_logged,
    a_rotated_token_stops_at_the_next_revalidation,
    a_nul_byte_never_stops_the_webhook_log,
    a_nul_escape_in_a_comment_is_queued_without_it,
    a_time_far_in_the_future_is_refused_with_422,
    tokens_that_cannot_be_ours_cost_no_lookup_and_are_logged_in_aggregate,
    unknown_tokens_are_throttled_per_address_with_retry_after,
    every_refusal_is_json_whatever_the_method_or_path,
    a_stalled_body_is_cut_off_with_408,
    x_forwarded_for_is_believed_only_from_a_trusted_proxy,
    a_recorder_over_its_rate_is_told_when_to_retry,
    webhook_log_rows_past_their_retention_are_deleted,
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

async fn an_alert_is_one_publish(pair: Pair) {
    // One acknowledged publish per alert (issue 21): the signal alone, in SIGNALS — no guard
    // message beside it, with `time` or without.
    let h = harness(pair, RateLimit::default()).await;
    let timed = format!(
        r#"{{"action":"sell","ticker":"MES1!","contracts":1,"time":"{}"}}"#,
        chrono::Utc::now().to_rfc3339()
    );
    for body in [ENTRY, timed.as_str()] {
        assert_eq!(h.hook(body).await.1["status"], "queued", "{body}");
    }
    let stored = h.stored_per_stream().await;
    let total: usize = stored.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 2, "two alerts, two messages: {stored:?}");
    let signals = h.signals().await;
    assert_eq!(signals.len(), 2, "{stored:?}");
    // The untimed alert carries the digest the fan-out compares across a second boundary;
    // the timed one needs none (its message id holds for the whole duplicate window).
    assert!(signals[0].payload.body_digest.is_some());
    assert_eq!(signals[1].payload.body_digest, None);
}

async fn a_duplicate_delivery_within_a_second_is_one_signal(pair: Pair) {
    let h = harness(pair, RateLimit::default()).await;
    start_of_a_second().await;
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
    start_of_a_second().await;
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

async fn a_nul_byte_never_stops_the_webhook_log(pair: Pair) {
    // Issue 16: PostgreSQL refused the batch holding this row, the writer retried it forever and
    // nothing after it was ever logged.
    let mut h = harness(pair, RateLimit::default()).await;
    let (status, _) = h.hook("{\"action\":\"buy\u{0}\"}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        let body = format!(r#"{{"action":"buy","ticker":"MNQ1!","comment":"after {i}"}}"#);
        assert_eq!(h.hook(&body).await.0, StatusCode::OK);
    }
    let rows = h.logged().await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[0].body, "{\"action\":\"buy\\u0000\"}");
    assert_eq!(rows[0].result, "invalid_json");
    assert!(rows[1..].iter().all(|r| r.result == "queued"));
}

async fn a_nul_escape_in_a_comment_is_queued_without_it(pair: Pair) {
    let mut h = harness(pair, RateLimit::default()).await;
    let body = r#"{"action":"sell","ticker":"MNQ1!","position":"short","comment":"a\u0000b"}"#;
    let (status, answer) = h.hook(body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let signals = h.signals().await;
    assert_eq!(signals[0].payload.signal.comment.as_deref(), Some("ab"));
    let rows = h.logged().await;
    assert_eq!(rows[0].body, body, "the raw body is logged as sent");
}

async fn a_time_far_in_the_future_is_refused_with_422(pair: Pair) {
    let h = harness(pair, RateLimit::default()).await;
    let (status, answer) = h
        .hook(r#"{"action":"buy","ticker":"MNQ1!","time":"9999-12-31T23:59:59Z"}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("ahead of the platform's clock"),
        "{answer}"
    );
    // A few seconds of clock drift is accepted.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let (status, answer) = h
        .hook(&format!(
            r#"{{"action":"buy","ticker":"MNQ1!","time":"{soon}"}}"#
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(h.signals().await.len(), 1);
}

async fn tokens_that_cannot_be_ours_cost_no_lookup_and_are_logged_in_aggregate(pair: Pair) {
    let mut h = harness(pair, RateLimit::default()).await;
    let long = "A".repeat(60_000);
    for token in [
        "x",
        "not-a-token",
        long.as_str(),
        &format!("{}=", &h.token[1..]),
    ] {
        for _ in 0..5 {
            let (status, _, answer) = h
                .send_from(
                    "198.51.100.7",
                    Request::post(format!("/webhook/{token}"))
                        .body(Body::from(ENTRY))
                        .unwrap(),
                )
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
            assert_eq!(answer["error"], "unknown webhook token");
        }
    }
    // A known recorder keeps working from the same address.
    assert_eq!(h.hook(ENTRY).await.0, StatusCode::OK);
    let rows = h.logged().await;
    assert_eq!(rows.len(), 2, "one aggregate row and the alert: {rows:?}");
    let agg = rows.iter().find(|r| r.result == "unknown_token").unwrap();
    assert_eq!(agg.source_ip.as_deref(), Some("198.51.100.7"));
    assert!(
        agg.reason.as_deref().unwrap().starts_with("20 request(s)"),
        "{:?}",
        agg.reason
    );
}

async fn unknown_tokens_are_throttled_per_address_with_retry_after(pair: Pair) {
    let mut h = harness_cfg(pair, |c| {
        c.guards.unknown_limit = RateLimit {
            per_second: 1.try_into().unwrap(),
            burst: 3.try_into().unwrap(),
        };
    })
    .await;
    // The recorders' token hashes load at start (the known token below was never used).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unknown = |i: usize| format!("{:A<43}", format!("unknown{i}"));
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (status, headers, _) = h
            .send_from(
                "203.0.113.50",
                Request::post(format!("/webhook/{}", unknown(i)))
                    .body(Body::from(ENTRY))
                    .unwrap(),
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&after), "{after}");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, vec![404, 404, 404, 429, 429, 429]);
    // Another address has its own budget; a known token is never throttled for it.
    let (status, _, _) = h
        .send_from(
            "203.0.113.51",
            Request::post(format!("/webhook/{}", unknown(9)))
                .body(Body::from(ENTRY))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, answer) = h
        .send_from(
            "203.0.113.50",
            Request::post(format!("/webhook/{}", h.token))
                .body(Body::from(ENTRY))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let rows = h.logged().await;
    let throttled = rows
        .iter()
        .find(|r| r.source_ip.as_deref() == Some("203.0.113.50") && r.result == "unknown_token")
        .unwrap();
    assert!(
        throttled
            .reason
            .as_deref()
            .unwrap()
            .contains("3 answered 429"),
        "{:?}",
        throttled.reason
    );
}

async fn every_refusal_is_json_whatever_the_method_or_path(pair: Pair) {
    let mut h = harness(pair, RateLimit::default()).await;
    let cases = [
        (Request::get(format!("/webhook/{}", h.token)), 405u16),
        (Request::put("/webhook/abc"), 405),
        (Request::post("/webhook/%FF%FE"), 404),
        (Request::post("/webhook"), 404),
        (Request::post("/somewhere/else"), 404),
    ];
    for (builder, want) in cases {
        let (status, _, answer) = h
            .send_from("192.0.2.1", builder.body(Body::from("{}")).unwrap())
            .await;
        assert_eq!(status.as_u16(), want, "{answer}");
        assert_eq!(answer["status"], want);
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let rows = h.logged().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let reason = rows[0].reason.as_deref().unwrap();
    assert!(reason.starts_with("5 request(s)"), "{reason}");
    assert!(reason.contains("wrong_method 2"), "{reason}");
}

async fn a_stalled_body_is_cut_off_with_408(pair: Pair) {
    let mut h = harness_cfg(pair, |c| {
        c.guards.body_timeout = Duration::from_millis(300);
    })
    .await;
    // Headers, a few bytes, then nothing.
    let trickle = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"action\":"))
    })
    .chain(futures_util::stream::pending());
    let started = std::time::Instant::now();
    let (status, _, answer) = h
        .send(
            Request::post(format!("/webhook/{}", h.token))
                .body(Body::from_stream(trickle))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let rows = h.logged().await;
    assert_eq!(rows[0].result, "body_timeout");
}

async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy(pair: Pair) {
    let mut h = harness_cfg(pair, |c| {
        c.guards.trusted_proxies = "10.0.0.0/8".parse().unwrap();
    })
    .await;
    let req = |comment: &str| {
        Request::post(format!("/webhook/{}", h.token))
            .header("x-forwarded-for", "6.6.6.6, 52.89.214.238")
            .body(Body::from(format!(
                r#"{{"action":"buy","ticker":"MNQ1!","comment":"{comment}"}}"#
            )))
            .unwrap()
    };
    assert_eq!(
        h.send_from("10.0.0.2", req("via proxy")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.send_from("203.0.113.9", req("direct")).await.0,
        StatusCode::OK
    );
    let rows = h.logged().await;
    let ip = |needle: &str| {
        rows.iter()
            .find(|r| r.body.contains(needle))
            .and_then(|r| r.source_ip.clone())
    };
    assert_eq!(ip("via proxy").as_deref(), Some("52.89.214.238"));
    assert_eq!(
        ip("direct").as_deref(),
        Some("203.0.113.9"),
        "forged header ignored"
    );
}

async fn a_recorder_over_its_rate_is_told_when_to_retry(pair: Pair) {
    let h = harness(
        pair,
        RateLimit {
            per_second: 1.try_into().unwrap(),
            burst: 1.try_into().unwrap(),
        },
    )
    .await;
    let req = |i: usize| {
        Request::post(format!("/webhook/{}", h.token))
            .body(Body::from(format!(
                r#"{{"action":"buy","ticker":"MNQ1!","comment":"{i}"}}"#
            )))
            .unwrap()
    };
    assert_eq!(h.send(req(0)).await.0, StatusCode::OK);
    let (status, headers, answer) = h.send(req(1)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(headers["retry-after"], "1");
}

async fn webhook_log_rows_past_their_retention_are_deleted(pair: Pair) {
    let mut h = harness_cfg(pair, |c| {
        c.log_retention = Duration::from_secs(86_400);
        c.prune_every = Duration::from_millis(100);
    })
    .await;
    let row = |days: i64, body: &str| jt_store::repo::webhooks::NewWebhookLog {
        id: jt_store::WebhookLogId::new(),
        received_at: chrono::Utc::now() - chrono::Duration::days(days),
        recorder: None,
        source_ip: None,
        body: body.into(),
        status_code: 200,
        result: "queued".into(),
        reason: None,
        signal: None,
    };
    h.store
        .webhooks()
        .log_batch(&[row(2, "two days old"), row(0, "today")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rows = h.logged().await;
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(bodies, vec!["today"]);
}

/// A 503 for an alert the bus did not confirm must not say "not executed": the NATS client
/// keeps the publish it could not send and sends it when the server is back, so the signal is
/// queued — and executed — after the answer (found by the chaos suite, `docs/reliability.md`).
/// A private nats-server, stopped while the alert arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_the_bus_did_not_confirm_is_not_called_unexecuted() {
    let mut nats = tokio::task::block_in_place(jt_testkit::nats::NatsServer::start);
    let options = JetStreamOptions {
        publish_deadline: Duration::from_secs(2),
        ..JetStreamOptions::default()
    };
    let h = harness_on(Pair::PostgresJetStream, Some((nats.url(), options)), |_| {}).await;
    tokio::task::block_in_place(|| nats.stop());
    let body = format!(
        r#"{{"action":"buy","ticker":"MNQ1!","contracts":1,"position":"long","time":"{}"}}"#,
        chrono::Utc::now().to_rfc3339()
    );
    let (status, answer) = h.hook(&body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("may still be executed") && !message.contains("not executed"),
        "{message}"
    );
    tokio::task::block_in_place(|| nats.restart());
    // What the answer warns of: the publish goes out once the server is back.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = h
            .bus
            .next_message(&h.defs.signals.name, &h.defs.signals.subjects[0], 1)
            .await
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the unconfirmed signal never reached SIGNALS after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
