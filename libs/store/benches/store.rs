//! Store latency on the hot paths, on SQLite (a file in a temporary directory) and on
//! PostgreSQL (a fresh database on the server of `DATABASE_URL`; `make bench` starts one):
//! the ingest's webhook token lookup and batched log write, and the executor's fan-out read,
//! intent creation and state change. Results go to `docs/benchmarks.md` by hand.
//!
//! `cargo bench -p jt-store --bench store` (release profile). One task issues the calls one
//! after another (latency, not throughput under contention).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use hdrhistogram::Histogram;
use jt_domain::{Settings, SettingsOverrides, Side};
use jt_store::repo::accounts::{BrokerCredentials, BrokerSubAccount, NewBrokerAccount};
use jt_store::repo::auth::NewUser;
use jt_store::repo::intents::{IntentUpdate, NewIntent};
use jt_store::repo::recorders::NewRecorder;
use jt_store::repo::traders::NewTrader;
use jt_store::repo::webhooks::NewWebhookLog;
use jt_store::*;
use jt_testkit::{TempSqlite, TestDatabase};
use rust_decimal::Decimal;

const LOOKUPS: u64 = 5_000;
const INTENTS: u64 = 1_000;
const TARGET_READS: u64 = 1_000;
const TRADERS: usize = 20;
const LOG_BATCHES: usize = 20;
const LOG_BATCH_ROWS: usize = 500;

fn line(what: &str, h: &Histogram<u64>) {
    println!(
        "  {what:<44} n={:<6} p50={:>7.1} µs  p99={:>8.1} µs  max={:>8.1} µs",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    );
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

async fn run(engine: &str, url: &str) {
    let mut cfg = StoreConfig::new(url).with_secret_key(SecretKey::generate());
    cfg.max_connections = 4;
    let store = Store::connect(&cfg).await.unwrap();
    store.migrate().await.unwrap();
    println!("{engine}:");

    let owner = store
        .users()
        .register(NewUser {
            email: "bench@example.com".into(),
            display_name: None,
            password: Secret::new("bench password"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap();
    let (recorder, token) = store
        .recorders()
        .create(
            owner.id,
            NewRecorder {
                name: "bench".into(),
                symbol: None,
                settings: Settings::default(),
                commission_per_contract: Decimal::ZERO,
            },
        )
        .await
        .unwrap();
    let account = store
        .accounts()
        .create(
            owner.id,
            NewBrokerAccount {
                label: "bench".into(),
                broker: BrokerKind::Sim,
                environment: Environment::Demo,
                username: None,
                credentials: BrokerCredentials::default(),
                require_brackets: false,
            },
        )
        .await
        .unwrap();
    let listed: Vec<BrokerSubAccount> = (0..TRADERS)
        .map(|i| BrokerSubAccount {
            broker_sub_account_id: format!("{i}"),
            name: format!("SIM{i}"),
        })
        .collect();
    let subs = store
        .accounts()
        .sync_sub_accounts(owner.id, account.id, &listed)
        .await
        .unwrap();
    for s in &subs {
        store
            .traders()
            .create(
                owner.id,
                NewTrader {
                    recorder: recorder.id,
                    sub_account: s.id,
                    enabled: true,
                    overrides: SettingsOverrides::default(),
                },
            )
            .await
            .unwrap();
    }

    let mut h = hist();
    for _ in 0..LOOKUPS {
        let t = Instant::now();
        let found = store.webhooks().resolve(token.expose()).await.unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        assert!(found.is_some());
    }
    line("webhooks().resolve(token)", &h);

    let mut h = hist();
    for _ in 0..TARGET_READS {
        let t = Instant::now();
        let targets = store
            .traders()
            .execution_targets(owner.id, recorder.id)
            .await
            .unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        assert_eq!(targets.len(), TRADERS);
    }
    line(
        &format!("traders().execution_targets ({TRADERS} traders)"),
        &h,
    );

    let (mut create, mut sent) = (hist(), hist());
    for i in 0..INTENTS {
        let new = NewIntent {
            id: IntentId::new(),
            owner: owner.id,
            sub_account: subs[(i as usize) % subs.len()].id,
            trader: None,
            signal: None,
            source: IntentSource::Signal,
            idempotency_key: format!("bench-{i}"),
            kind: IntentKind::Entry,
            symbol: "MNQ".into(),
            contract: Some("MNQZ6".into()),
            side: Some(Side::Buy),
            quantity: 1,
            settings: Settings::default(),
            plan: serde_json::json!({"qty": 1}),
            skip_reason: None,
        };
        let t = Instant::now();
        let id = store.intents().create(new).await.unwrap().intent().id;
        create.record(t.elapsed().as_nanos() as u64).unwrap();
        let t = Instant::now();
        store
            .intents()
            .transition(owner.id, id, IntentStatus::Sent, IntentUpdate::default())
            .await
            .unwrap();
        sent.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    line("intents().create", &create);
    line("intents().transition(pending → sent)", &sent);

    let mut h = hist();
    let started = Instant::now();
    for b in 0..LOG_BATCHES {
        let batch: Vec<NewWebhookLog> = (0..LOG_BATCH_ROWS)
            .map(|i| NewWebhookLog {
                id: WebhookLogId::new(),
                received_at: chrono::Utc::now(),
                recorder: Some(recorder.id),
                source_ip: Some("52.89.214.238".into()),
                body: format!(
                    r#"{{"action":"buy","ticker":"MNQ1!","contracts":1,"position":"long","n":{b}{i}}}"#
                ),
                status_code: 200,
                result: "queued".into(),
                reason: None,
                signal: Some(SignalId::new()),
            })
            .collect();
        let t = Instant::now();
        assert_eq!(
            store.webhooks().log_batch(&batch).await.unwrap(),
            LOG_BATCH_ROWS as u64
        );
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    let rows = (LOG_BATCHES * LOG_BATCH_ROWS) as f64;
    line(&format!("webhooks().log_batch ({LOG_BATCH_ROWS} rows)"), &h);
    println!(
        "  {:<44} {:.0} rows/s",
        "webhook log write rate",
        rows / started.elapsed().as_secs_f64()
    );
    store.close().await.unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sqlite = TempSqlite::new();
        run("SQLite (WAL, file in a temp dir)", sqlite.url()).await;
        let pg = TestDatabase::create().await;
        run("PostgreSQL (DATABASE_URL)", pg.url()).await;
    });
}
