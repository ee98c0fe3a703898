//! The consume loop's metrics, on the embedded bus (no server): per consumer the dead-letter,
//! redelivery and undecodable counters exist at zero as soon as it starts; a retried attempt
//! counts a redelivery and a give-up a dead letter; the backlog gauges, sampled when the
//! consumer starts, add up to the messages not yet settled. Its own test binary: it installs
//! the process-wide Prometheus recorder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, TestEvent, TestSignal, embedded, event, eventually, options, signal};
use jt_bus::{Incoming, Outcome};

/// The value of `name{…consumer="<consumer>"…}` in a scrape.
fn value(text: &str, name: &str, consumer: &str) -> Option<f64> {
    let label = format!("consumer=\"{consumer}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_count_redeliveries_and_dead_letters_and_sample_their_backlog() {
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let f = Fixture::new(embedded().await, |_| {}).await;

    // A consumer whose handler always fails: 3 attempts (max_deliver), 2 of them retries, then
    // one dead letter.
    f.bus.publish(&signal("r1", 1)).await.unwrap();
    let (failing, stop_failing) = common::spawn_consumer(
        &f.bus,
        &f.defs.fanout,
        options(4),
        |_m: Incoming<TestSignal>| async { Outcome::retry("the broker said no (test)") },
    );
    let scrape = || prometheus.render();
    assert!(
        eventually(Duration::from_secs(10), || {
            value(&scrape(), "jt_bus_dead_letters_total", "fanout") == Some(1.0)
        })
        .await,
        "{}",
        scrape()
    );
    let text = scrape();
    assert_eq!(
        value(&text, "jt_bus_redeliveries_total", "fanout"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "jt_bus_undecodable_total", "fanout"),
        Some(0.0),
        "{text}"
    );

    // A consumer holding its messages: 5 published, none settled. The first sample (at start)
    // sees them pending or in flight, whichever side of the first pull it falls on.
    for n in 1..=5 {
        f.bus.publish(&event("a1", n)).await.unwrap();
    }
    let release = Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    let (holding, stop_holding) = common::spawn_consumer(
        &f.bus,
        &f.defs.positions,
        options(2),
        move |_m: Incoming<TestEvent>| {
            let held = held.clone();
            async move {
                held.notified().await;
                Outcome::Ack
            }
        },
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            let text = scrape();
            let pending = value(&text, "jt_bus_consumer_pending", "positions");
            let in_flight = value(&text, "jt_bus_consumer_ack_pending", "positions");
            matches!((pending, in_flight), (Some(p), Some(a)) if (p + a - 5.0).abs() < 0.5)
        })
        .await,
        "{}",
        scrape()
    );
    let text = scrape();
    assert_eq!(
        value(&text, "jt_bus_dead_letters_total", "positions"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "jt_bus_redeliveries_total", "positions"),
        Some(0.0),
        "{text}"
    );

    stop_failing.cancel();
    stop_holding.cancel();
    release.notify_waiters();
    failing.await.unwrap();
    holding.await.unwrap();
}
