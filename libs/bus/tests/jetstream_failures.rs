//! JetStream failure tests on a private nats-server 2.15.1 (started, stopped, killed and
//! restarted by the test on its own port and store; the binary comes from `.tools/`, installed
//! by `scripts/test-services`). The other failure cases — a consumer killed mid-message and a
//! slow consumer — are in the contract suite and run on JetStream there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use jt_bus::{Bus, Incoming, JetStreamOptions, Namespace, Outcome};
use jt_testkit::nats::NatsServer;

#[derive(Clone, Copy, Debug)]
enum Outage {
    /// SIGTERM: a rolling restart.
    Restart,
    /// SIGKILL: the process dies without shutting down.
    Crash,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_restart_while_publishing_loses_nothing_and_stores_nothing_twice() {
    publish_through(Outage::Restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_crash_while_publishing_loses_nothing_and_stores_nothing_twice() {
    publish_through(Outage::Crash).await;
}

async fn publish_through(outage: Outage) {
    let server = NatsServer::start();
    let url = server.url();
    let options = JetStreamOptions {
        publish_deadline: Duration::from_secs(60),
        ..test_jetstream_options()
    };
    let bus = Bus::jetstream(&url, Namespace::unique(), options)
        .await
        .unwrap();
    let defs = fast_definitions(bus.namespace());
    bus.provision(&defs.topology()).await.unwrap();

    // A limits stream (it keeps what was acked, so every stored copy can be counted); a
    // consumer runs through the outage too; its handler is idempotent on the message id.
    let effects = shared(HashSet::<String>::new());
    let deliveries = Arc::new(AtomicU32::new(0));
    let (e, d) = (effects.clone(), deliveries.clone());
    let consumer_bus = Bus::jetstream(&url, bus.namespace().clone(), test_jetstream_options())
        .await
        .unwrap();
    let (consumer, stop) = spawn_consumer(
        &consumer_bus,
        &defs.positions,
        options_for_outage(),
        move |m: Incoming<TestEvent>| {
            d.fetch_add(1, Ordering::SeqCst);
            e.lock().insert(m.envelope.id.to_string());
            async { Outcome::Ack }
        },
    );

    // Eight publishers, 50 messages each, one at a time each: 8 in flight.
    let publishers = 8u32;
    let per_publisher = 50u32;
    let confirmed = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let (bus, confirmed) = (bus.clone(), confirmed.clone());
        tasks.push(tokio::spawn(async move {
            let mut duplicates = 0u32;
            for i in 0..per_publisher {
                let n = p * per_publisher + i;
                let receipt = bus
                    .publish(&event("outage", n))
                    .await
                    .unwrap_or_else(|e| panic!("publish {n} not confirmed across the outage: {e}"));
                duplicates += u32::from(receipt.duplicate);
                confirmed.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            duplicates
        }));
    }
    let total = publishers * per_publisher;
    assert!(
        eventually(Duration::from_secs(30), || confirmed.load(Ordering::SeqCst)
            >= total / 4)
        .await
    );
    let before = confirmed.load(Ordering::SeqCst);
    let server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        match outage {
            Outage::Restart => server.stop(),
            Outage::Crash => server.kill(),
        }
        std::thread::sleep(Duration::from_millis(1500));
        server.restart();
        server
    })
    .await
    .unwrap();
    let mut duplicates = 0;
    for t in tasks {
        duplicates += t.await.unwrap();
    }
    assert!(before < total, "the outage happened mid-publishing");
    eprintln!(
        "{outage:?}: {before} of {total} confirmed before the outage, {duplicates} retries answered as duplicates"
    );

    // Exactly one stored message per id.
    let stats = bus.stream_stats(&defs.broker_events.name).await.unwrap();
    assert_eq!(
        stats.messages,
        u64::from(total),
        "stored {} for {total} ids ({duplicates} retries were duplicates)",
        stats.messages
    );
    let mut stored = HashMap::<String, u32>::new();
    let mut seq = 1;
    let filter = format!("{}.broker.>", bus.namespace().root());
    while let Some(m) = bus
        .next_message(&defs.broker_events.name, &filter, seq)
        .await
        .unwrap()
    {
        seq = m.sequence + 1;
        *stored
            .entry(m.message.message_id().unwrap().to_owned())
            .or_default() += 1;
    }
    let expected: HashSet<String> = (0..total)
        .map(|n| event("outage", n).id.to_string())
        .collect();
    assert_eq!(
        stored.keys().cloned().collect::<HashSet<_>>(),
        expected,
        "nothing lost"
    );
    assert!(stored.values().all(|c| *c == 1), "nothing stored twice");

    // And the consumer, running through the outage, handled every message.
    assert!(
        eventually(Duration::from_secs(30), || effects.lock().len()
            == total as usize)
        .await,
        "consumer handled {} of {total}",
        effects.lock().len()
    );
    assert_eq!(*effects.lock(), expected);
    assert!(deliveries.load(Ordering::SeqCst) >= total);
    stop.cancel();
    consumer.await.unwrap();
    drop(server);
}

fn options_for_outage() -> jt_bus::ConsumeOptions {
    jt_bus::ConsumeOptions {
        max_in_flight: 16,
        ..options(16)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_retried_after_ack_timeouts_keeps_its_id_and_is_stored_once() {
    let mut server = NatsServer::start();
    let options = JetStreamOptions {
        request_timeout: Duration::from_millis(300),
        publish_deadline: Duration::from_secs(20),
        ..test_jetstream_options()
    };
    let bus = Bus::jetstream(&server.url(), Namespace::unique(), options)
        .await
        .unwrap();
    let defs = fast_definitions(bus.namespace());
    bus.provision(&defs.topology()).await.unwrap();

    // The server stalls: the first attempts time out unanswered, but they are in its socket.
    server.pause();
    let publishing = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(&signal("stall", 1)).await })
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    if publishing.is_finished() {
        panic!(
            "no ack while the server is frozen, yet the publish ended: {:?}",
            publishing.await
        );
    }
    server.resume();
    let receipt = publishing
        .await
        .unwrap()
        .expect("confirmed once the server answers");
    assert!(
        receipt.duplicate,
        "the first attempt was stored; the answered retry carried the same id"
    );
    assert_eq!(
        bus.stream_stats(&defs.signals.name).await.unwrap().messages,
        1,
        "stored once"
    );
}
