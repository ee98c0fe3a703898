//! The serial gate reads "the oldest message of this key" with JetStream's direct get when the
//! stream allows it, and through the stream leader (`STREAM.MSG.GET`) when it does not — a
//! stream provisioned by an older build until it is provisioned again. Both must keep per-key
//! order and run every message once. Runs against the NATS server at `NATS_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use jt_bus::{Incoming, Outcome};

/// The stream's `allow_direct`, read from the server.
async fn allows_direct(stream: &str) -> bool {
    let client = async_nats::connect(jt_testkit::nats::nats_url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let info = js
        .get_stream(stream)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    info.config.allow_direct
}

/// Turns direct get off, as on a stream created before the bus asked for it.
async fn turn_direct_get_off(stream: &str) {
    let client = async_nats::connect(jt_testkit::nats::nats_url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let mut config = js
        .get_stream(stream)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .config;
    config.allow_direct = false;
    js.update_stream(config).await.unwrap();
}

/// Two replicas consume three accounts' orders numbered `numbers`; returns the numbers each
/// account's handler saw, in the order it saw them.
async fn run_two_replicas(f: &Fixture, numbers: std::ops::Range<u32>) -> HashMap<String, Vec<u32>> {
    let accounts = ["acct-a", "acct-b", "acct-c"];
    for n in numbers.clone() {
        for a in accounts {
            f.bus.publish(&order(a, n)).await.unwrap();
        }
    }
    let seen = shared(HashMap::<String, Vec<u32>>::new());
    let handler = {
        let seen = seen.clone();
        move |m: Incoming<TestOrder>| {
            let seen = seen.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                seen.lock()
                    .entry(m.envelope.payload.account.clone())
                    .or_default()
                    .push(m.envelope.payload.n);
                Outcome::Ack
            }
        }
    };
    let replica_b = another_replica(&f.bus).await;
    let (ta, sa) = spawn_consumer(&f.bus, &f.defs.execute, options(8), handler.clone());
    let (tb, sb) = spawn_consumer(&replica_b, &f.defs.execute, options(8), handler);
    let total = accounts.len() * numbers.len();
    let done = || seen.lock().values().map(Vec::len).sum::<usize>();
    assert!(
        eventually(Duration::from_secs(30), || done() >= total).await,
        "only {} of {total} handled",
        done()
    );
    // Anything handled twice would show up within a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (t, s) in [(ta, sa), (tb, sb)] {
        s.cancel();
        t.await.unwrap();
    }
    seen.lock().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serial_order_holds_with_direct_get_and_without_it() {
    let f = Fixture::new(jetstream().await, |_| {}).await;
    assert!(
        allows_direct(&f.defs.orders.name).await,
        "the bus provisions streams with direct get"
    );
    for (account, seen) in run_two_replicas(&f, 0..10).await {
        assert_eq!(
            seen,
            (0..10).collect::<Vec<_>>(),
            "{account}: with direct get"
        );
    }

    // A stream an older build created: the gate reads through the leader instead (a direct
    // get would find no responder), with the same guarantees. (New numbers: new message ids.)
    turn_direct_get_off(&f.defs.orders.name).await;
    assert!(!allows_direct(&f.defs.orders.name).await);
    for (account, seen) in run_two_replicas(&f, 10..20).await {
        assert_eq!(
            seen,
            (10..20).collect::<Vec<_>>(),
            "{account}: without direct get"
        );
    }

    // Provisioning again turns it back on.
    f.bus.provision(&f.defs.topology()).await.unwrap();
    assert!(allows_direct(&f.defs.orders.name).await);
    f.teardown().await;
}
