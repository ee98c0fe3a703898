//! Shared test support: payload types, backends, fixtures.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use jt_bus::{
    Backend, Bus, ConsumeOptions, ConsumerDef, Definitions, Envelope, Incoming, JetStreamOptions,
    Message, MessageId, Namespace, Outcome, SubjectError, SubjectToken, Subjects,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// An order-like payload on `jt.orders.<account>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestOrder {
    pub account: String,
    pub n: u32,
    pub note: String,
}

impl Message for TestOrder {
    const TYPE: &'static str = "test-order";
    const SCHEMA_VERSION: u32 = 1;
    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        subjects.order(&self.account)
    }
}

/// A signal-like payload on `jt.signals.<recorder>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSignal {
    pub recorder: String,
    pub n: u32,
}

impl Message for TestSignal {
    const TYPE: &'static str = "test-signal";
    const SCHEMA_VERSION: u32 = 1;
    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        subjects.signal(&self.recorder)
    }
}

/// A broker-event-like payload on `jt.broker.<account>.<entity>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestEvent {
    pub account: String,
    pub entity: String,
    pub n: u32,
}

impl Message for TestEvent {
    const TYPE: &'static str = "test-event";
    const SCHEMA_VERSION: u32 = 1;
    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        subjects.broker_event(&self.account, &self.entity)
    }
}

pub fn order(account: &str, n: u32) -> Envelope<TestOrder> {
    let token = SubjectToken::escape(account).unwrap();
    Envelope::new(
        MessageId::from_parts(&["order", token.as_str(), &n.to_string()]).unwrap(),
        TestOrder {
            account: account.to_owned(),
            n,
            note: "x".repeat(40),
        },
    )
}

pub fn signal(recorder: &str, n: u32) -> Envelope<TestSignal> {
    Envelope::new(
        MessageId::from_parts(&["signal", recorder, &n.to_string()]).unwrap(),
        TestSignal {
            recorder: recorder.to_owned(),
            n,
        },
    )
}

pub fn event(account: &str, n: u32) -> Envelope<TestEvent> {
    Envelope::new(
        MessageId::from_parts(&["event", account, &n.to_string()]).unwrap(),
        TestEvent {
            account: account.to_owned(),
            entity: "fill".into(),
            n,
        },
    )
}

pub fn test_jetstream_options() -> JetStreamOptions {
    JetStreamOptions {
        client_name: "jt-bus-tests".into(),
        no_stream_grace: Duration::from_millis(500),
        ..JetStreamOptions::default()
    }
}

/// A fresh embedded bus in its own namespace.
pub async fn embedded() -> Bus {
    Bus::embedded(Namespace::unique())
}

/// A JetStream bus at `NATS_URL` in its own namespace (panics naming `NATS_URL` when unset).
pub async fn jetstream() -> Bus {
    let url = jt_testkit::nats::nats_url();
    Bus::jetstream(&url, Namespace::unique(), test_jetstream_options())
        .await
        .unwrap_or_else(|e| panic!("NATS_URL={url}: {e}"))
}

/// Another replica: a second connection on JetStream, the same state on the embedded bus.
pub async fn another_replica(bus: &Bus) -> Bus {
    match bus.backend() {
        Backend::Embedded(_) => bus.clone(),
        Backend::JetStream(_) => Bus::jetstream(
            &jt_testkit::nats::nats_url(),
            bus.namespace().clone(),
            test_jetstream_options(),
        )
        .await
        .unwrap(),
    }
}

/// The platform's definitions with test timings: 1 s ack wait, 3 attempts, 50 ms back-off,
/// 2 s lock and partition-lease TTL.
pub fn fast_definitions(ns: &Namespace) -> Definitions {
    let mut d = Definitions::new(ns);
    for c in [
        &mut d.fanout,
        &mut d.execute,
        &mut d.positions,
        &mut d.risk,
        &mut d.copier_events,
        &mut d.history,
        &mut d.copier_executions,
        &mut d.commands_consumer,
        &mut d.dead_letter_notify,
    ] {
        c.ack_wait = Duration::from_secs(1);
        c.max_deliver = 3;
        c.backoff = vec![Duration::from_millis(50)];
    }
    d.locks.ttl = Some(Duration::from_secs(2));
    d.partitions.ttl = Some(Duration::from_secs(2));
    for c in [&mut d.execute, &mut d.commands_consumer] {
        if let Some(serial) = &mut c.serial {
            serial.locks.ttl = Some(Duration::from_secs(2));
            if let Some(parts) = &mut serial.partitions {
                parts.leases.ttl = Some(Duration::from_secs(2));
            }
        }
    }
    d
}

pub struct Fixture {
    pub bus: Bus,
    pub defs: Definitions,
}

impl Fixture {
    /// Provisions `fast_definitions` (after `tweak`) on `bus`.
    pub async fn new(bus: Bus, tweak: impl FnOnce(&mut Definitions)) -> Self {
        let mut defs = fast_definitions(bus.namespace());
        tweak(&mut defs);
        bus.provision(&defs.topology()).await.unwrap();
        Self { bus, defs }
    }

    /// Messages stored in a stream.
    pub async fn stored(&self, stream: &str) -> u64 {
        self.bus.stream_stats(stream).await.unwrap().messages
    }

    /// A consumer's lag.
    pub async fn lag(&self, consumer: &ConsumerDef) -> jt_bus::ConsumerLag {
        self.bus.consumer_lag(consumer).await.unwrap()
    }

    pub async fn teardown(self) {
        self.bus.teardown(&self.defs.topology()).await.unwrap();
    }
}

pub fn options(max_in_flight: usize) -> ConsumeOptions {
    ConsumeOptions {
        max_in_flight,
        pull_expiry: Duration::from_millis(500),
        gate_wait: Duration::from_secs(5),
        gate_poll: Duration::from_millis(50),
        defer_delay: Duration::from_millis(100),
        drain_timeout: Duration::from_millis(500),
        takeover_grace: Duration::from_millis(500),
        ..ConsumeOptions::default()
    }
}

/// Runs a consumer in the background until the token is cancelled.
pub fn spawn_consumer<M, H, Fut>(
    bus: &Bus,
    def: &ConsumerDef,
    options: ConsumeOptions,
    handler: H,
) -> (JoinHandle<()>, CancellationToken)
where
    M: Message,
    H: Fn(Incoming<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let token = CancellationToken::new();
    let (bus, def, t) = (bus.clone(), def.clone(), token.clone());
    let handle = tokio::spawn(async move {
        bus.consume(&def, options, t, handler).await.unwrap();
    });
    (handle, token)
}

/// Whether `stream` is empty within about two seconds (acked work-queue messages leave it).
pub async fn becomes_empty(bus: &Bus, stream: &str) -> bool {
    for _ in 0..100 {
        if bus.stream_stats(stream).await.unwrap().messages == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Polls `check` until it holds or `within` passes; returns whether it held.
pub async fn eventually<F: FnMut() -> bool>(within: Duration, mut check: F) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub type Shared<T> = Arc<parking_lot::Mutex<T>>;

pub fn shared<T>(value: T) -> Shared<T> {
    Arc::new(parking_lot::Mutex::new(value))
}
