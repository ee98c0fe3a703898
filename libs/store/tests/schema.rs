//! The schema on both engines: migrations up and down, exact decimals, engine settings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::Utc;
use common::{Engine, TestStore};
use jt_domain::SignalAction;
use jt_store::repo::signals::NewSignal;
use jt_store::{SignalId, SignalOutcome};
use rust_decimal_macros::dec;

async fn table_names(t: &TestStore) -> Vec<String> {
    let mut names = match t.engine {
        Engine::Sqlite => {
            t.raw_strings(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .await
        }
        Engine::Postgres => {
            t.raw_strings(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            )
            .await
        }
    };
    names.sort();
    names
}

async fn migrations_apply_up_and_down(engine: Engine) {
    let t = TestStore::unmigrated(engine).await;
    let count = <jt_migrations::Migrator as jt_migrations::MigratorTrait>::migrations().len();
    let status = t.migration_status().await.unwrap();
    assert_eq!(status.len(), count);
    assert!(status.iter().all(|m| !m.applied));

    let applied = t.migrate().await.unwrap();
    assert_eq!(applied.len(), count, "{applied:?}");
    assert!(
        applied[0].starts_with("m20261121_000001_"),
        "named after the file: {applied:?}"
    );
    let mut expected: Vec<String> = jt_migrations::TABLES
        .iter()
        .map(|s| s.to_string())
        .collect();
    expected.push("seaql_migrations".to_string());
    expected.sort();
    assert_eq!(table_names(&t).await, expected);
    if engine == Engine::Postgres {
        // Half-filled pages keep the intent's state moves HOT (m20261122_000004).
        let options = t
            .raw_strings(
                "SELECT coalesce(reloptions::text, '') FROM pg_class \
                 WHERE relname = 'order_intents' AND relkind = 'r'",
            )
            .await;
        assert_eq!(options, vec!["{fillfactor=50}".to_string()]);
    }
    assert!(
        t.migration_status()
            .await
            .unwrap()
            .iter()
            .all(|m| m.applied)
    );
    assert!(
        t.migrate().await.unwrap().is_empty(),
        "a second migrate applies nothing"
    );

    t.migrate_down_all().await.unwrap();
    assert_eq!(table_names(&t).await, vec!["seaql_migrations".to_string()]);
    assert!(
        t.migration_status()
            .await
            .unwrap()
            .iter()
            .all(|m| !m.applied)
    );

    // And up again after down: the down migrations left nothing behind.
    assert_eq!(t.migrate().await.unwrap().len(), count);
    t.reset().await.unwrap();
    assert_eq!(table_names(&t).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_up_and_down_on_sqlite() {
    migrations_apply_up_and_down(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_up_and_down_on_postgres() {
    migrations_apply_up_and_down(Engine::Postgres).await;
}

/// Money and prices come back exactly as written on both engines, and on SQLite they are
/// stored as text (no binary float anywhere on the way).
async fn decimals_round_trip_exactly(t: &TestStore) {
    let owner = t.user("dec@example.com").await;
    let (recorder, _) = t.recorder(&owner, "dec").await;
    let cases = [
        dec!(21433.333333333),
        dec!(0.00390625),
        dec!(12345678.90),
        dec!(-0.25),
    ];
    for (i, d) in cases.iter().enumerate() {
        let id = SignalId::new();
        let r = t
            .signals()
            .record(NewSignal {
                id,
                owner: owner.id,
                recorder: recorder.id,
                received_at: Utc::now(),
                alert_time: None,
                action: SignalAction::Long,
                ticker: Some("MNQ1!".into()),
                quantity: Some(*d),
                price: Some(*d),
                market_position: None,
                prev_market_position: None,
                payload: serde_json::json!({ "i": i }),
                outcome: SignalOutcome::Accepted,
                outcome_reason: None,
                age_ms: None,
                body_digest: None,
            })
            .await
            .unwrap();
        assert_eq!(r, SignalOutcome::Accepted);
        let back = t.signals().get(owner.id, id).await.unwrap();
        assert_eq!(back.price, Some(*d));
        assert_eq!(back.quantity, Some(*d));
        assert_eq!(back.price.unwrap().to_string(), d.to_string(), "scale kept");
    }
    match t.engine {
        Engine::Sqlite => {
            let kinds = t
                .raw_strings("SELECT DISTINCT typeof(price) FROM signals")
                .await;
            assert_eq!(kinds, vec!["text".to_string()]);
            let mut stored = t.raw_strings("SELECT price FROM signals").await;
            stored.sort();
            assert!(
                stored.contains(&"21433.333333333".to_string()),
                "{stored:?}"
            );
            assert!(stored.contains(&"0.00390625".to_string()), "{stored:?}");
            assert!(stored.contains(&"12345678.90".to_string()), "{stored:?}");
        }
        Engine::Postgres => {
            let types = t
                .raw_strings(
                    "SELECT data_type::text FROM information_schema.columns \
                     WHERE table_name = 'signals' AND column_name = 'price'",
                )
                .await;
            assert_eq!(types, vec!["numeric".to_string()]);
        }
    }
}

/// SQLite runs in WAL mode with foreign keys on, and the database file (and its directory)
/// are created on first connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_created_in_wal_mode_with_foreign_keys() {
    let t = TestStore::new(Engine::Sqlite).await;
    assert_eq!(
        t.raw_strings("PRAGMA journal_mode").await,
        vec!["wal".to_string()]
    );
    let db = t.connection();
    let row = sea_orm::ConnectionTrait::query_one_raw(
        db,
        sea_orm::Statement::from_string(
            db.get_database_backend(),
            "PRAGMA foreign_keys".to_string(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 1);
    t.ping().await.unwrap();
}

on_both_engines!(decimals_round_trip_exactly);
