//! The skeleton serves the routes of several services on one listener beside health and
//! metrics, drains before `drained`, and stops the whole process when one service fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use jt_bus::{Bus, Namespace};
use jt_connect::{AccessConfig, BrokerAccess};
use jt_service::{Context, Running};
use jt_store::{Store, StoreConfig};
use jt_testkit::TempSqlite;

async fn context() -> (TempSqlite, Context) {
    jt_runtime::tls::install_crypto_provider();
    let db = TempSqlite::new();
    let store = Store::connect(&StoreConfig::new(db.url().to_string()))
        .await
        .expect("store connects");
    store.migrate().await.expect("migrations apply");
    let bus = Bus::embedded(Namespace::production());
    let brokers = Arc::new(BrokerAccess::new(store.clone(), AccessConfig::default()));
    (db, Context::new(store, bus, brokers))
}

/// A service answering `GET /{name}` until shutdown, noting whether the listener had drained
/// when it stopped.
fn service(ctx: &Context, name: &'static str, saw_drained: Arc<AtomicBool>) -> Running {
    let routes = Router::new().route(&format!("/{name}"), get(move || async move { name }));
    let (stop, drained) = (ctx.shutdown.clone(), ctx.drained.clone());
    let task = tokio::spawn(async move {
        stop.cancelled().await;
        tokio::time::timeout(Duration::from_secs(5), drained.cancelled())
            .await
            .map_err(|_| anyhow::anyhow!("never drained"))?;
        saw_drained.store(true, Ordering::SeqCst);
        Ok(())
    });
    Running::new(name, routes, task)
}

#[tokio::test]
async fn two_services_share_one_listener_with_health_and_stop_after_draining() {
    let (_db, ctx) = context().await;
    ctx.register_core_health(jt_runtime::health::Criticality::Required)
        .await;
    let (a_done, b_done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let services = vec![
        service(&ctx, "alpha", a_done.clone()),
        service(&ctx, "beta", b_done.clone()),
    ];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = {
        let ctx = ctx.clone();
        tokio::spawn(async move { jt_service::serve_on(&ctx, listener, services).await })
    };

    let http = reqwest::Client::new();
    for (path, body) in [("alpha", "alpha"), ("beta", "beta")] {
        let r = http.get(format!("{base}/{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), body);
    }
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let checks: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(checks["checks"]["store"], "ok", "{checks}");
    assert_eq!(checks["checks"]["bus"], "ok", "{checks}");
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    ctx.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .expect("a clean stop");
    assert!(a_done.load(Ordering::SeqCst) && b_done.load(Ordering::SeqCst));
    assert!(ctx.drained.is_cancelled());
}

#[tokio::test]
async fn a_failing_service_stops_the_others_and_names_itself() {
    let (_db, ctx) = context().await;
    let healthy_stopped = Arc::new(AtomicBool::new(false));
    let healthy = service(&ctx, "healthy", healthy_stopped.clone());
    let broken = Running::new(
        "broken",
        Router::new(),
        tokio::spawn(async { Err(anyhow::anyhow!("the consumer could not start")) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        jt_service::serve_on(&ctx, listener, vec![healthy, broken]),
    )
    .await
    .expect("a failed service ends the process without a signal");
    let err = format!("{:#}", result.unwrap_err());
    assert!(
        err.contains("the broken service failed") && err.contains("could not start"),
        "{err}"
    );
    assert!(
        ctx.shutdown.is_cancelled(),
        "the other services are told to stop"
    );
    assert!(healthy_stopped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_listener_address_in_use_is_an_error_naming_the_variable() {
    let (_db, ctx) = context().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = jt_service::serve(&ctx, addr, vec![]).await.unwrap_err();
    assert!(format!("{err:#}").contains("JT_HTTP_ADDR"), "{err:#}");
}
