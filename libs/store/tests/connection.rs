//! Connection handling: an unreachable database is retried with back-off and then reported
//! as unavailable (no hang, no panic); a pool whose connections are cut recovers, and the
//! readiness check says so in between.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Engine, TestStore};
use jt_store::{Store, StoreConfig, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_retried_then_reported() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cfg = StoreConfig::new(format!("postgres://postgres@127.0.0.1:{port}/none"));
    cfg.connect_retry_for = Duration::from_millis(1200);
    cfg.acquire_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = Store::connect(&cfg).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        took >= Duration::from_millis(700),
        "retried with back-off ({took:?})"
    );
    assert!(took < Duration::from_secs(10), "gave up in time ({took:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_url_is_refused_at_once() {
    let err = Store::connect(&StoreConfig::new("mysql://localhost/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_recovers_after_connections_are_cut() {
    let t = TestStore::new(Engine::Postgres).await;
    let owner = t.user("reconnect@example.com").await;
    t.ping().await.unwrap();
    t.terminate_connections().await;
    // The first uses of dead connections fail as transient; within a few tries the pool has
    // opened fresh ones.
    let mut recovered = false;
    for _ in 0..10 {
        match t.users().get(owner.id).await {
            Ok(u) => {
                assert_eq!(u.id, owner.id);
                recovered = true;
                break;
            }
            Err(e) => assert!(e.is_transient(), "a cut connection is transient: {e:?}"),
        }
    }
    assert!(recovered, "the pool reconnected");
    t.ping().await.unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestStore::new(Engine::Sqlite).await;
    // A write, so that the WAL exists too.
    t.user("private@example.com").await;
    let db = t.url.trim_start_matches("sqlite://").to_string();
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600, "{db}");
    assert_eq!(mode(&format!("{db}-wal")), 0o600);
    let dir = std::path::Path::new(&db).parent().unwrap();
    assert_eq!(
        mode(dir.to_str().unwrap()),
        0o700,
        "a new directory is private"
    );

    // A database made world-readable before is tightened at the next start.
    drop(t.store.clone());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let again = Store::connect(&StoreConfig::new(t.url.clone()))
        .await
        .unwrap();
    assert_eq!(mode(&db), 0o600);
    again.close().await.unwrap();
}
