//! What consuming a serial message costs in messages to nats-server, counted by the consuming
//! replica's own connection (`async_nats::Statistics`), for both serial schemes: the gate
//! (the fan-out, per recorder: head read, lock, head read under the lock, release, ack) and the
//! partition owner (ORDERS, per account: the delivery's ack, and the pulls and lease renewals
//! that do not grow with the messages). A count, not a timing: it is the same on any machine.
//! Needs `NATS_URL` (`make test` sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use jt_bus::{Backend, Bus, ConsumerDef, Incoming, Message, Outcome};

const KEYS: u32 = 50;
const PER_KEY: u32 = 20;

/// Messages the replica `bus` sent to the server per message of `def` consumed (with the
/// executor's 256 messages in flight), once started:
/// counted from the fifth of the messages to the last, so the start (binding, leases, the
/// partition consumers' first pulls) and the stop are left out.
async fn sent_while_consuming<M: Message>(bus: &Bus, def: &ConsumerDef) -> f64 {
    let Backend::JetStream(js) = bus.backend() else {
        panic!("a JetStream bus")
    };
    let stats = js.client().statistics();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let (task, stop) = spawn_consumer(bus, def, options(256), move |_m: Incoming<M>| {
        d.fetch_add(1, Ordering::SeqCst);
        async { Outcome::Ack }
    });
    let total = (KEYS * PER_KEY) as usize;
    let from = total / 5;
    let within = Duration::from_secs(60);
    assert!(eventually(within, || done.load(Ordering::SeqCst) >= from).await);
    let (start_count, start_sent) = (
        done.load(Ordering::SeqCst),
        stats.out_messages.load(Ordering::Relaxed),
    );
    assert!(
        eventually(within, || done.load(Ordering::SeqCst) >= total).await,
        "only {} of {total}",
        done.load(Ordering::SeqCst)
    );
    let sent = stats.out_messages.load(Ordering::Relaxed) - start_sent;
    let handled = done.load(Ordering::SeqCst) - start_count;
    stop.cancel();
    task.await.unwrap();
    #[allow(clippy::cast_precision_loss)]
    let per_message = sent as f64 / handled as f64;
    per_message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_owner_sends_fewer_messages_per_order_than_the_gate() {
    // Production's ack wait: in-progress acks every 10 s, none in a run this short (the test
    // timings' 1 s would add heartbeats that production does not send).
    let f = Fixture::new(jetstream().await, |d| {
        d.fanout.ack_wait = Duration::from_secs(30);
        d.execute.ack_wait = Duration::from_secs(30);
    })
    .await;
    for n in 0..PER_KEY {
        for k in 0..KEYS {
            f.bus
                .publish(&signal(&format!("rec-{k}"), n))
                .await
                .unwrap();
            f.bus
                .publish(&order(&format!("acct-{k}"), n))
                .await
                .unwrap();
        }
    }
    // Each on a connection of its own, so the counts are its own.
    let gate =
        sent_while_consuming::<TestSignal>(&another_replica(&f.bus).await, &f.defs.fanout).await;
    let owner =
        sent_while_consuming::<TestOrder>(&another_replica(&f.bus).await, &f.defs.execute).await;
    println!(
        "messages sent to nats-server per message consumed ({} keys × {PER_KEY}): gate {gate:.2}, partition owner {owner:.2}",
        KEYS
    );
    // The gate pays at least a head read, a lock create, a head read under the lock, a
    // release and an ack per message.
    assert!(gate >= 5.0, "gate {gate:.2}");
    // The owner pays the ack, plus pulls (one per few messages) and lease renewals shared by
    // all messages.
    assert!(owner < 2.0, "partition owner {owner:.2}");
    f.teardown().await;
}
