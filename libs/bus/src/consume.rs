//! The consume loop: durable pull consumers shared by any number of replicas.
//!
//! [`Bus::consume`] pulls at most [`ConsumeOptions::max_in_flight`] messages at a time (a
//! replica never buffers more than it works on: back-pressure stays at the server), runs the
//! handler for each, sends in-progress acks while the handler works, and settles the message by
//! the handler's [`Outcome`]:
//!
//! - [`Outcome::Ack`]: done; acked only now, after the handler made its effect durable.
//! - [`Outcome::Retry`]: nak with a delay (the consumer's back-off unless the handler names
//!   one); after `max_deliver` attempts the message goes to dead letter.
//! - [`Outcome::Reject`]: poison; dead letter now.
//!
//! A message that does not decode (unknown type or schema version, bad JSON) is retried like a
//! failure — during a rolling deploy another replica may read it — and goes to dead letter with
//! the reason after its last attempt; the consumer keeps running. Every dead letter is counted
//! (`jt_bus_dead_letters_total`) and logged as an error; every retried attempt too
//! (`jt_bus_redeliveries_total`), and each replica samples its consumers' backlog every
//! [`LAG_SAMPLE_EVERY`] (`jt_bus_consumer_pending`, `_ack_pending`, `_redelivered`). [`Outcome::Wait`] hands a message back
//! without counting an attempt (a serial consumer's message waiting for a broker's limit). A message whose attempt count is already
//! past `max_deliver` when it arrives (the last attempt crashed or hung) goes to dead letter
//! without running the handler again.
//!
//! Serial consumers (ORDERS, COMMANDS) additionally pass the [`Gate`]: see `docs/bus.md`.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt, stream::BoxStream};
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info_span, warn};

use crate::bus::{Backend, Bus};
use crate::dead_letter::{self, Origin};
use crate::embedded::{EmbeddedBus, EmbeddedDelivery};
use crate::envelope::{Envelope, Message, RawMessage};
use crate::error::BusError;
use crate::jetstream::from_header_map;
use crate::kv::{KvBucket, Lease, valid_key};
use crate::raw::{HeadRead, StreamShape};
use crate::subject::Subjects;
use crate::topology::{ConsumerDef, Retention};

/// How one replica runs a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// Messages this replica holds at once (pulled and not yet settled). The server holds
    /// the rest; nothing is buffered beyond this.
    pub max_in_flight: usize,
    /// How long one pull request waits at the server for messages.
    pub pull_expiry: Duration,
    /// Serial consumers: how long a message waits in this replica for its key before it is
    /// handed back to the server (nak with delay, not counted as an attempt).
    pub gate_wait: Duration,
    /// Serial consumers: the longest pause between looks at a key held by another replica.
    pub gate_poll: Duration,
    /// Serial consumers: the nak delay (±20 % jitter) of a message handed back because its key
    /// is busy and the local waiting room is full.
    pub defer_delay: Duration,
    /// On shutdown, how long to let handlers finish before abandoning them (their messages
    /// come back after `ack_wait`).
    pub drain_timeout: Duration,
    /// Who this replica is, in lock values (pod name or similar).
    pub owner: String,
    /// Partition-owned consumers: after taking over a partition from a replica that did not
    /// hand it over cleanly (it died, or lost its lease), how long the messages it may have
    /// been working on wait before they run again — longer than a broker call it may still
    /// have had in flight (the write timeout, 10 s), so a resumed intent's look-up finds it.
    pub takeover_grace: Duration,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            max_in_flight: 16,
            pull_expiry: Duration::from_secs(5),
            gate_wait: Duration::from_secs(30),
            gate_poll: Duration::from_millis(200),
            defer_delay: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(20),
            takeover_grace: Duration::from_secs(20),
            owner: format!("{}-{}", std::process::id(), &id[..8]),
        }
    }
}

/// A message handed to a handler.
#[derive(Debug)]
pub struct Incoming<M> {
    /// The decoded envelope.
    pub envelope: Envelope<M>,
    /// The subject it arrived on.
    pub subject: String,
    /// Its stream sequence.
    pub stream_sequence: u64,
    /// This attempt (1-based).
    pub attempt: u32,
    /// The consumer's `max_deliver`: [`Outcome::Retry`] on this attempt dead-letters it.
    pub max_attempts: u32,
    /// Serial consumers: cancelled if the key's lock was lost (another replica may now run this
    /// key): stop at the next safe point and return [`Outcome::Retry`]. Never cancelled for
    /// other consumers.
    pub lock_lost: CancellationToken,
}

impl<M> Incoming<M> {
    /// Whether this is the last attempt before dead letter.
    #[must_use]
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// What the handler made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled; its effect is durable. The message is acknowledged.
    Ack,
    /// Not handled this time (a dependency is down, a transient error): try again later.
    Retry {
        /// Why, for logs and for the dead letter if this was the last attempt.
        reason: String,
        /// When; `None` uses the consumer's back-off.
        after: Option<Duration>,
    },
    /// Can never be handled (invalid content, a rule forbids it): dead letter now.
    Reject {
        /// Why, kept with the dead letter.
        reason: String,
    },
    /// Not attempted: the handler must wait for something outside it (a broker's rate limit)
    /// before it can try. The message comes back after `after` and, on a serial consumer, the
    /// wait does not count as an attempt, so a message may wait any number of times without
    /// going to dead letter (it stays its key's head: later messages of the key wait behind
    /// it). On other consumers it counts as an attempt.
    Wait {
        /// Why, for logs.
        reason: String,
        /// How long to wait.
        after: Duration,
    },
}

impl Outcome {
    /// [`Outcome::Retry`] after the consumer's back-off.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// [`Outcome::Retry`] after `delay`.
    pub fn retry_after(reason: impl Into<String>, delay: Duration) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: Some(delay),
        }
    }

    /// [`Outcome::Reject`].
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject {
            reason: reason.into(),
        }
    }

    /// [`Outcome::Wait`].
    pub fn wait(reason: impl Into<String>, after: Duration) -> Self {
        Self::Wait {
            reason: reason.into(),
            after,
        }
    }
}

// ---- deliveries, backend-neutral ----

pub(crate) enum Delivery {
    JetStream {
        message: Box<jetstream::Message>,
        raw: RawMessage,
        sequence: u64,
        delivered: u32,
    },
    Embedded(EmbeddedDelivery),
}

impl Delivery {
    fn from_jetstream(message: jetstream::Message) -> Result<Self, String> {
        let (sequence, delivered) = {
            let info = message
                .info()
                .map_err(|e| format!("unreadable delivery metadata: {e}"))?;
            (
                info.stream_sequence,
                u32::try_from(info.delivered).unwrap_or(u32::MAX),
            )
        };
        let raw = RawMessage {
            subject: message.subject.to_string(),
            headers: message
                .headers
                .as_ref()
                .map(from_header_map)
                .unwrap_or_default(),
            payload: message.payload.clone(),
        };
        Ok(Self::JetStream {
            message: Box::new(message),
            raw,
            sequence,
            delivered,
        })
    }

    pub(crate) fn raw(&self) -> &RawMessage {
        match self {
            Self::JetStream { raw, .. } => raw,
            Self::Embedded(d) => &d.message,
        }
    }

    pub(crate) fn sequence(&self) -> u64 {
        match self {
            Self::JetStream { sequence, .. } => *sequence,
            Self::Embedded(d) => d.sequence,
        }
    }

    pub(crate) fn delivered(&self) -> u32 {
        match self {
            Self::JetStream { delivered, .. } => *delivered,
            Self::Embedded(d) => d.delivered,
        }
    }

    /// Acks and waits for the server to confirm, so whoever runs next sees it gone.
    pub(crate) async fn ack(&self) -> Result<(), String> {
        match self {
            Self::JetStream { message, .. } => {
                message.double_ack().await.map_err(|e| e.to_string())
            }
            Self::Embedded(d) => {
                d.ack();
                Ok(())
            }
        }
    }

    pub(crate) async fn nak(&self, delay: Option<Duration>) {
        match self {
            Self::JetStream { message, .. } => {
                if let Err(e) = message.ack_with(AckKind::Nak(delay)).await {
                    warn!(error = %e, "nak failed; the message comes back after ack_wait");
                }
            }
            Self::Embedded(d) => d.nak(delay),
        }
    }

    pub(crate) async fn progress(&self) {
        match self {
            Self::JetStream { message, .. } => {
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    debug!(error = %e, "in-progress ack failed");
                }
            }
            Self::Embedded(d) => d.progress(),
        }
    }
}

pub(crate) enum Puller {
    JetStream(Box<PullConsumer>),
    Embedded {
        bus: EmbeddedBus,
        stream: String,
        durable: String,
    },
}

impl Puller {
    /// Binds the server-side consumer `durable` of `stream`.
    pub(crate) async fn bind(bus: &Bus, stream: &str, durable: &str) -> Result<Self, BusError> {
        Ok(match bus.backend() {
            Backend::JetStream(js) => {
                Self::JetStream(Box::new(js.pull_consumer(stream, durable).await?))
            }
            Backend::Embedded(e) => {
                e.lag(stream, durable)?;
                Self::Embedded {
                    bus: e.clone(),
                    stream: stream.to_owned(),
                    durable: durable.to_owned(),
                }
            }
        })
    }

    pub(crate) async fn pull(
        &self,
        max: usize,
        expiry: Duration,
    ) -> Result<BoxStream<'static, Result<Delivery, String>>, String> {
        match self {
            Self::JetStream(consumer) => {
                let batch = consumer
                    .batch()
                    .max_messages(max)
                    .expires(expiry)
                    .messages()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(batch
                    .map(|item| {
                        item.map_err(|e| e.to_string())
                            .and_then(Delivery::from_jetstream)
                    })
                    .boxed())
            }
            Self::Embedded {
                bus,
                stream,
                durable,
            } => {
                let deadline = Instant::now() + expiry;
                let state = (bus.clone(), stream.clone(), durable.clone(), max);
                Ok(futures_util::stream::unfold(
                    state,
                    move |(bus, stream, durable, left)| async move {
                        if left == 0 {
                            return None;
                        }
                        match bus.next_delivery(&stream, &durable, deadline).await {
                            Ok(Some(d)) => {
                                Some((Ok(Delivery::Embedded(d)), (bus, stream, durable, left - 1)))
                            }
                            Ok(None) => None,
                            Err(e) => Some((Err(e.to_string()), (bus, stream, durable, 0))),
                        }
                    },
                )
                .boxed())
            }
        }
    }
}

// ---- the serial gate ----

/// Wake-up channels of a gate (keys hash into them).
const WAKE_BUCKETS: usize = 64;

/// Serial execution per key across replicas: a lock lease on KV plus "oldest first".
///
/// A message runs only while its replica holds the key's lease *and* it is the oldest message
/// of its subject still in the (work-queue) stream. The lease keeps two replicas off one key
/// (also when a slow delivery is redelivered elsewhere after `ack_wait`); the oldest-first
/// check keeps stream order when deliveries race or a message is retried. Waiting for a key
/// does not count as an attempt.
struct Gate {
    locks: KvBucket,
    attempts: KvBucket,
    key_token: usize,
    lock_prefix: String,
    owner: String,
    stream: String,
    durable: String,
    /// How the first look reads the oldest message of a key: the cheapest read the stream
    /// allows, even one that may lag on a replicated stream (it only decides whether to try).
    first_read: HeadRead,
    /// How the look under the lock reads it: a read that is always current.
    locked_read: HeadRead,
    /// Wake-ups on release, by key (hashed into a fixed set: a release wakes the waiters of its
    /// own key, not every waiter of every key).
    released: Vec<Notify>,
    waiting: Mutex<Waiting>,
    max_waiters: usize,
    max_waiters_per_key: usize,
}

#[derive(Default)]
struct Waiting {
    per_key: HashMap<String, usize>,
    total: usize,
}

enum Entry {
    Run(Lease),
    /// Busy for too long (or no room to wait here): hand it back to the server.
    Defer,
    /// Already settled by an earlier delivery (it left the work queue).
    Gone,
    /// The subject has no usable key: a publishing bug, dead letter.
    Unkeyed(String),
}

enum Look {
    Run(Lease),
    /// Not now. `head`: this message is the oldest of its key (it runs next, so it waits
    /// here rather than going back to the server).
    Busy {
        head: bool,
    },
    Gone,
}

/// How the serial gate reads a key's oldest message on a stream of this shape: (before the
/// lock, under the lock). Direct get wherever the stream allows it, except under the lock on a
/// replicated stream, where only the leader's answer is current.
fn head_reads(shape: StreamShape) -> (HeadRead, HeadRead) {
    match (shape.direct_get, shape.single_copy) {
        (false, _) => (HeadRead::Leader, HeadRead::Leader),
        (true, false) => (HeadRead::AnyReplica, HeadRead::Leader),
        (true, true) => (HeadRead::AnyReplica, HeadRead::AnyReplica),
    }
}

/// A place in the local waiting room, freed on drop.
struct WaitSlot<'a> {
    gate: &'a Gate,
    key: String,
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        let mut w = self.gate.waiting.lock();
        w.total = w.total.saturating_sub(1);
        if let Some(n) = w.per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                w.per_key.remove(&self.key);
            }
        }
    }
}

impl Gate {
    fn wait_slot(&self, key: &str, head: bool) -> Option<WaitSlot<'_>> {
        let mut w = self.waiting.lock();
        // A bounded share of the slots per key, and never every slot waiting: the rest go back
        // to the server so other keys keep moving. The oldest message of a key always waits:
        // it is the one that runs next, and handing it back would stall the whole key.
        let per_key = w.per_key.get(key).copied().unwrap_or(0);
        if !head && (w.total >= self.max_waiters || per_key >= self.max_waiters_per_key) {
            return None;
        }
        w.total += 1;
        *w.per_key.entry(key.to_owned()).or_default() += 1;
        Some(WaitSlot {
            gate: self,
            key: key.to_owned(),
        })
    }

    async fn release(&self, lease: Lease) {
        let key = lease.key().to_owned();
        if let Err(e) = lease.release().await {
            warn!(%key, error = %e, "lock release failed; it expires after its TTL");
        }
        self.wake(&key);
    }

    fn bell(&self, key: &str) -> &Notify {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        // `released` is never empty (built with WAKE_BUCKETS entries).
        let i = usize::try_from(h.finish() % self.released.len() as u64).unwrap_or(0);
        &self.released[i]
    }

    fn wake(&self, key: &str) {
        self.bell(key).notify_waiters();
    }

    /// The sequence of the oldest message of `subject`: with `first_read`, and again with
    /// `locked_read` when a lagging replica could have answered that the message is gone.
    async fn oldest(
        &self,
        bus: &Bus,
        subject: &str,
        sequence: u64,
    ) -> Result<Option<u64>, BusError> {
        let first = bus
            .head_sequence(&self.stream, subject, self.first_read)
            .await?;
        // A follower may not hold this message yet (or hold only newer ones): only the
        // leader can say it is gone. "Someone older is first" is safe to act on either way:
        // it only makes this message wait.
        match first {
            Some(head) if head <= sequence => Ok(first),
            _ if self.first_read != self.locked_read => {
                bus.head_sequence(&self.stream, subject, self.locked_read)
                    .await
            }
            _ => Ok(first),
        }
    }

    async fn look(&self, bus: &Bus, key: &str, subject: &str, sequence: u64) -> Look {
        // Order first (a cheap read): only the oldest message of the key may take the lock.
        match self.oldest(bus, subject, sequence).await {
            Ok(Some(head)) if head < sequence => return Look::Busy { head: false },
            Ok(Some(head)) if head == sequence => {}
            Ok(_) => return Look::Gone,
            Err(e) => {
                warn!(%subject, error = %e, "cannot read the stream to keep per-key order");
                return Look::Busy { head: false };
            }
        }
        let lease = match self.locks.try_acquire(key, &self.owner).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return Look::Busy { head: true },
            Err(e) => {
                warn!(%key, error = %e, "lock unavailable");
                return Look::Busy { head: true };
            }
        };
        // Under the lock, check again, with a current read: another delivery of this message
        // (redelivered to another replica) may have settled it meanwhile.
        match bus
            .head_sequence(&self.stream, subject, self.locked_read)
            .await
        {
            Ok(Some(head)) if head == sequence => Look::Run(lease),
            Ok(Some(head)) if head < sequence => {
                self.release(lease).await;
                Look::Busy { head: false }
            }
            Ok(_) => {
                self.release(lease).await;
                Look::Gone
            }
            Err(e) => {
                warn!(%subject, error = %e, "cannot read the stream to keep per-key order");
                self.release(lease).await;
                Look::Busy { head: true }
            }
        }
    }

    async fn enter(
        &self,
        bus: &Bus,
        subject: &str,
        sequence: u64,
        options: &ConsumeOptions,
    ) -> Entry {
        let Some(token) = Subjects::token(subject, self.key_token) else {
            return Entry::Unkeyed(format!(
                "subject {subject} has no token {} to serialise on",
                self.key_token
            ));
        };
        let key = format!("{}.{token}", self.lock_prefix);
        if !valid_key(&key) {
            return Entry::Unkeyed(format!("subject token `{token}` is not an escaped id"));
        }
        let head = match self.look(bus, &key, subject, sequence).await {
            Look::Run(lease) => return Entry::Run(lease),
            Look::Gone => return Entry::Gone,
            Look::Busy { head } => head,
        };
        let Some(_slot) = self.wait_slot(&key, head) else {
            return Entry::Defer;
        };
        let deadline = Instant::now() + options.gate_wait;
        let mut pause = Duration::from_millis(5);
        loop {
            // Register for the key's wake-up before looking, so a release that happens while
            // we look is not missed.
            let released = self.bell(&key).notified();
            tokio::pin!(released);
            released.as_mut().enable();
            tokio::select! {
                () = released => {}
                () = tokio::time::sleep(pause) => pause = (pause * 2).min(options.gate_poll),
            }
            match self.look(bus, &key, subject, sequence).await {
                Look::Run(lease) => return Entry::Run(lease),
                Look::Gone => return Entry::Gone,
                Look::Busy { .. } if Instant::now() >= deadline => return Entry::Defer,
                Look::Busy { .. } => {}
            }
        }
    }

    /// The number of this attempt of the message at `sequence`, on its `delivered`-th
    /// delivery (under its lock): the deliveries so far, less those handed back without
    /// running the handler ([`Gate::count_hand_back`]). A first delivery is the first attempt
    /// and reads nothing, so most messages cost no counter at all.
    async fn attempt(&self, sequence: u64, delivered: u32) -> Result<u32, String> {
        if delivered <= 1 {
            return Ok(1);
        }
        let handed_back = match self
            .attempts
            .get(&self.hand_back_key(sequence))
            .await
            .map_err(|e| e.to_string())?
        {
            Some(entry) => parse_count(&entry.value),
            None => 0,
        };
        Ok(delivered.saturating_sub(handed_back).max(1))
    }

    /// Records that this delivery of the message at `sequence` goes back to the server without
    /// running the handler, so that it is not counted as an attempt. Best effort: when the
    /// counter cannot be written, the hand-back counts as an attempt (never the reverse).
    async fn count_hand_back(&self, sequence: u64) {
        let key = self.hand_back_key(sequence);
        // Deliveries of one message follow each other, but a conditional write keeps a racing
        // one (a redelivery after `ack_wait`) from being lost.
        for _ in 0..3 {
            let written = match self.attempts.get(&key).await {
                Ok(None) => self.attempts.create(&key, Bytes::from_static(b"1")).await,
                Ok(Some(entry)) => {
                    let next = parse_count(&entry.value).saturating_add(1);
                    self.attempts
                        .update(&key, Bytes::from(next.to_string()), entry.revision)
                        .await
                }
                Err(e) => Err(e),
            };
            match written {
                Ok(_) => return,
                Err(
                    crate::error::KvError::AlreadyExists { .. }
                    | crate::error::KvError::WrongRevision { .. },
                ) => {}
                Err(e) => {
                    warn!(sequence, error = %e, "cannot record a hand-back; it will count as an attempt");
                    return;
                }
            }
        }
        warn!(
            sequence,
            "hand-back counter kept changing; it will count as an attempt"
        );
    }

    fn hand_back_key(&self, sequence: u64) -> String {
        format!("{}.{}.{sequence}.back", self.stream, self.durable)
    }
}

/// A counter's value; an unreadable one counts as zero.
pub(crate) fn parse_count(value: &[u8]) -> u32 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0)
}

// ---- the loop ----

struct Worker<H> {
    bus: Bus,
    def: ConsumerDef,
    options: ConsumeOptions,
    handler: H,
    gate: Option<Gate>,
}

impl Bus {
    /// Runs `handler` on the messages of `consumer` until `shutdown` is cancelled, then lets
    /// in-flight handlers finish (up to [`ConsumeOptions::drain_timeout`]) and returns.
    ///
    /// Every replica of a service calls this with the same definition; the server shares the
    /// messages among them. The handler must be idempotent: a message can arrive again after a
    /// crash, a lost ack or an `ack_wait` expiry.
    ///
    /// # Errors
    /// [`BusError::NotFound`] when the consumer (or a serial consumer's buckets) was not
    /// provisioned, [`BusError::InvalidDefinition`] for a serial consumer on a stream that is
    /// not a work queue, [`BusError::Unavailable`] when the server cannot be reached at start.
    /// Once running, server trouble is retried, not returned.
    ///
    /// # Example
    /// ```no_run
    /// # use jt_bus::{Bus, ConsumeOptions, Definitions, Incoming, Message, Namespace, Outcome, Subjects, SubjectError};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Intent { account: String }
    /// # impl Message for Intent {
    /// #     const TYPE: &'static str = "order-intent";
    /// #     const SCHEMA_VERSION: u32 = 1;
    /// #     fn subject(&self, s: &Subjects) -> Result<String, SubjectError> { s.order(&self.account) }
    /// # }
    /// # async fn run(bus: Bus, shutdown: tokio_util::sync::CancellationToken) -> Result<(), jt_bus::BusError> {
    /// let defs = Definitions::new(bus.namespace());
    /// bus.consume(&defs.execute, ConsumeOptions::default(), shutdown, |msg: Incoming<Intent>| async move {
    ///     // place the order with a client order id derived from msg.envelope.id …
    ///     Outcome::Ack
    /// })
    /// .await
    /// # }
    /// ```
    pub async fn consume<M, H, Fut>(
        &self,
        consumer: &ConsumerDef,
        options: ConsumeOptions,
        shutdown: CancellationToken,
        handler: H,
    ) -> Result<(), BusError>
    where
        M: Message,
        H: Fn(Incoming<M>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        if let Some(serial) = &consumer.serial
            && let Some(parts) = &serial.partitions
        {
            register_series(consumer);
            let _sampler = AbortOnDrop(tokio::spawn(sample_lag(
                self.clone(),
                consumer.clone(),
                shutdown.clone(),
            )));
            // Boxed: its state is large, and every other consumer's future would carry it.
            return Box::pin(crate::partition::consume(
                self, consumer, serial, parts, options, shutdown, handler,
            ))
            .await;
        }
        let puller = Puller::bind(self, &consumer.stream, &consumer.durable).await?;
        let gate = match &consumer.serial {
            None => None,
            Some(serial) => {
                let shape = self.stream_shape(&consumer.stream).await?;
                if shape.retention != Retention::WorkQueue {
                    return Err(BusError::InvalidDefinition(format!(
                        "serial consumer {} needs work-queue stream {}",
                        consumer.durable, consumer.stream
                    )));
                }
                Some(Gate {
                    locks: self.kv(&serial.locks).await.map_err(unbound_bucket)?,
                    attempts: self.kv(&serial.attempts).await.map_err(unbound_bucket)?,
                    key_token: serial.key_token,
                    lock_prefix: serial.lock_prefix.clone(),
                    owner: options.owner.clone(),
                    stream: consumer.stream.clone(),
                    durable: consumer.durable.clone(),
                    first_read: head_reads(shape).0,
                    locked_read: head_reads(shape).1,
                    released: (0..WAKE_BUCKETS).map(|_| Notify::new()).collect(),
                    waiting: Mutex::new(Waiting::default()),
                    max_waiters: (options.max_in_flight / 2).max(1),
                    max_waiters_per_key: (options.max_in_flight / 4).max(2),
                })
            }
        };
        let max_in_flight = options.max_in_flight.max(1);
        let worker = Arc::new(Worker {
            bus: self.clone(),
            def: consumer.clone(),
            options,
            handler,
            gate,
        });
        let slots = Arc::new(Semaphore::new(max_in_flight));
        let mut tasks = JoinSet::new();
        register_series(consumer);
        let _sampler = AbortOnDrop(tokio::spawn(sample_lag(
            self.clone(),
            consumer.clone(),
            shutdown.clone(),
        )));

        'pull: loop {
            while let Some(done) = tasks.try_join_next() {
                report_task_end(done);
            }
            let wanted = u32::try_from(slots.available_permits().max(1)).unwrap_or(1);
            let mut permits = tokio::select! {
                p = slots.clone().acquire_many_owned(wanted) => match p {
                    Ok(p) => p,
                    Err(_) => break 'pull,
                },
                () = shutdown.cancelled() => break 'pull,
            };
            let pulled = tokio::select! {
                b = puller.pull(permits.num_permits(), worker.options.pull_expiry) => b,
                () = shutdown.cancelled() => break 'pull,
            };
            let mut batch = match pulled {
                Ok(batch) => batch,
                Err(e) => {
                    warn!(consumer = %consumer.durable, error = %e, "pull failed; retrying");
                    drop(permits);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue 'pull,
                        () = shutdown.cancelled() => break 'pull,
                    }
                }
            };
            loop {
                let item = tokio::select! {
                    item = batch.next() => item,
                    () = shutdown.cancelled() => break 'pull,
                };
                match item {
                    Some(Ok(delivery)) => {
                        let Some(permit) = permits.split(1) else {
                            // More than asked for: cannot happen; hand it back right away.
                            delivery.nak(None).await;
                            continue;
                        };
                        let span = info_span!(
                            "bus.message",
                            consumer = %consumer.durable,
                            subject = %delivery.raw().subject,
                            seq = delivery.sequence(),
                            delivered = delivery.delivered(),
                        );
                        tasks.spawn(process(worker.clone(), delivery, permit).instrument(span));
                    }
                    Some(Err(e)) => {
                        debug!(consumer = %consumer.durable, error = %e, "pull ended early");
                        break;
                    }
                    None => break,
                }
            }
        }

        let drained = tokio::time::timeout(worker.options.drain_timeout, async {
            while let Some(done) = tasks.join_next().await {
                report_task_end(done);
            }
        })
        .await;
        if drained.is_err() {
            warn!(consumer = %consumer.durable, left = tasks.len(), "handlers still running at the drain deadline; their messages come back after ack_wait");
            tasks.abort_all();
        }
        Ok(())
    }
}

/// A KV bucket a consumer needs that could not be bound, as the consume loop's error.
pub(crate) fn unbound_bucket(e: crate::error::KvError) -> BusError {
    match e {
        crate::error::KvError::NoBucket(b) => BusError::NotFound(format!("KV bucket {b}")),
        other => BusError::unavailable("bind KV bucket", other),
    }
}

/// A handler's panic: a failed attempt, with the panic's message as the reason.
pub(crate) fn panicked(panic: Box<dyn std::any::Any + Send>) -> Outcome {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    Outcome::retry(format!("handler panicked: {what}"))
}

/// How often each replica reads its consumers' backlog for the lag gauges.
pub const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// Creates the consumer's counters at zero, so an alert on dead letters or redeliveries has a
/// series to compare with from the consumer's first second.
fn register_series(def: &ConsumerDef) {
    let labels = [
        ("stream", def.stream.clone()),
        ("consumer", def.durable.clone()),
    ];
    for name in [
        "jt_bus_dead_letters_total",
        "jt_bus_undecodable_total",
        "jt_bus_redeliveries_total",
    ] {
        metrics::counter!(name, &labels).increment(0);
    }
}

/// Samples the consumer's backlog every [`LAG_SAMPLE_EVERY`] into the `jt_bus_consumer_*`
/// gauges until `shutdown`. Every replica samples the same server-side consumer, so the gauges
/// agree across replicas: dashboards take their `max` by stream and consumer.
async fn sample_lag(bus: Bus, def: ConsumerDef, shutdown: CancellationToken) {
    let labels = [
        ("stream", def.stream.clone()),
        ("consumer", def.durable.clone()),
    ];
    let pending = metrics::gauge!("jt_bus_consumer_pending", &labels);
    let ack_pending = metrics::gauge!("jt_bus_consumer_ack_pending", &labels);
    let redelivered = metrics::gauge!("jt_bus_consumer_redelivered", &labels);
    let mut tick = tokio::time::interval(LAG_SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match bus.consumer_lag(&def).await {
            #[allow(clippy::cast_precision_loss)]
            Ok(lag) => {
                pending.set(lag.pending as f64);
                ack_pending.set(lag.ack_pending as f64);
                redelivered.set(lag.redelivered as f64);
            }
            // The gauges keep their last value; the bus's readiness check reports the outage.
            Err(e) => debug!(consumer = %def.durable, error = %e, "consumer lag not read"),
        }
    }
}

/// Aborts a background task when the consume loop that owns it returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn report_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        warn!(error = %e, "message task panicked outside the handler");
    }
}

/// Handles one delivery while telling the server it is in progress.
async fn process<M, H, Fut>(worker: Arc<Worker<H>>, delivery: Delivery, _slot: OwnedSemaphorePermit)
where
    M: Message,
    H: Fn(Incoming<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let every = (worker.def.ack_wait / 3).max(Duration::from_millis(10));
    let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let work = handle(&worker, &delivery);
    tokio::pin!(work);
    loop {
        tokio::select! {
            () = &mut work => return,
            _ = heartbeat.tick() => delivery.progress().await,
        }
    }
}

async fn handle<M, H, Fut>(worker: &Worker<H>, delivery: &Delivery)
where
    M: Message,
    H: Fn(Incoming<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let def = &worker.def;
    let raw = delivery.raw();
    let sequence = delivery.sequence();

    let mut lease = None;
    if let Some(gate) = &worker.gate {
        match gate
            .enter(&worker.bus, &raw.subject, sequence, &worker.options)
            .await
        {
            Entry::Run(l) => lease = Some(l),
            Entry::Defer => {
                gate.count_hand_back(sequence).await;
                // A short, constant delay: a key's backlog must keep flowing (a growing delay
                // would stall the key once its oldest message is among the handed-back ones).
                // The spread (by sequence) keeps returns from arriving as one herd.
                #[allow(clippy::cast_precision_loss)] // a value below 97
                let jitter = 0.8 + 0.4 * ((sequence % 97) as f64 / 96.0);
                let delay = worker.options.defer_delay.mul_f64(jitter);
                debug!(?delay, "key busy; handing the message back");
                delivery.nak(Some(delay)).await;
                return;
            }
            Entry::Gone => {
                debug!("already settled by an earlier delivery");
                let _ = delivery.ack().await;
                return;
            }
            Entry::Unkeyed(reason) => {
                dead_letter(worker, delivery, delivery.delivered(), &reason).await;
                return;
            }
        }
    }

    let attempt = match (&worker.gate, &lease) {
        (Some(gate), Some(_)) => match gate.attempt(sequence, delivery.delivered()).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "cannot count the attempt; retrying later");
                gate.count_hand_back(sequence).await;
                finish(worker, lease).await;
                delivery.nak(Some(Duration::from_secs(1))).await;
                return;
            }
        },
        _ => delivery.delivered(),
    };
    if attempt > 1 {
        // A retry of a failed (or crashed) attempt; hand-backs of a serial consumer are not.
        metrics::counter!("jt_bus_redeliveries_total", "stream" => def.stream.clone(), "consumer" => def.durable.clone())
            .increment(1);
    }

    if attempt > def.max_deliver {
        let reason = format!(
            "no attempt finished within max_deliver {}: the last one crashed or hung past ack_wait",
            def.max_deliver
        );
        dead_letter(worker, delivery, attempt - 1, &reason).await;
        finish(worker, lease).await;
        return;
    }

    // A message this build cannot read may come from a newer one (a rolling deploy): it is
    // retried like any failure — another replica may read it — and dead-lettered only after
    // its last attempt, with the reason. (Payloads ignore fields they do not know.)
    let envelope = match M::read_envelope(raw) {
        Ok(envelope) => envelope,
        Err(e) => {
            let reason = format!("undecodable: {e}");
            metrics::counter!("jt_bus_undecodable_total", "stream" => def.stream.clone(), "consumer" => def.durable.clone())
                .increment(1);
            if attempt >= def.max_deliver {
                let reason = format!("gave up after {attempt} attempts: {reason}");
                dead_letter(worker, delivery, attempt, &reason).await;
            } else {
                let delay = def.backoff_after(attempt);
                warn!(%reason, attempt, ?delay, "message cannot be read by this build; retrying (another replica may read it)");
                delivery.nak(Some(delay)).await;
            }
            finish(worker, lease).await;
            return;
        }
    };

    let lock_lost = CancellationToken::new();
    let incoming = Incoming {
        envelope,
        subject: raw.subject.clone(),
        stream_sequence: sequence,
        attempt,
        max_attempts: def.max_deliver,
        lock_lost: lock_lost.clone(),
    };
    let run = AssertUnwindSafe((worker.handler)(incoming)).catch_unwind();
    let result = match lease.as_mut() {
        Some(l) => l.hold_while(run, &lock_lost).await,
        None => run.await,
    };
    let outcome = result.unwrap_or_else(panicked);

    match outcome {
        Outcome::Ack => {
            if let Err(e) = delivery.ack().await {
                warn!(error = %e, "ack not confirmed; the message may come back and must be handled idempotently");
            }
        }
        Outcome::Retry { reason, after } => {
            if attempt >= def.max_deliver {
                let reason = format!("gave up after {attempt} attempts: {reason}");
                dead_letter(worker, delivery, attempt, &reason).await;
            } else {
                let delay = after.unwrap_or_else(|| def.backoff_after(attempt));
                debug!(%reason, ?delay, attempt, "retrying later");
                delivery.nak(Some(delay)).await;
            }
        }
        Outcome::Reject { reason } => dead_letter(worker, delivery, attempt, &reason).await,
        Outcome::Wait { reason, after } => {
            if let Some(gate) = &worker.gate {
                gate.count_hand_back(sequence).await;
            }
            debug!(%reason, ?after, attempt, "waiting; not an attempt");
            delivery.nak(Some(after)).await;
        }
    }
    finish(worker, lease).await;
}

/// Releases the key's lock after the message was settled (so the next one sees it gone).
async fn finish<H>(worker: &Worker<H>, lease: Option<Lease>) {
    if let (Some(gate), Some(lease)) = (&worker.gate, lease) {
        gate.release(lease).await;
    }
}

/// Publishes the dead letter, then acks the original. If the publish fails the original is
/// nakked and comes back: it is never dropped without a record.
async fn dead_letter<H>(worker: &Worker<H>, delivery: &Delivery, attempts: u32, reason: &str) {
    send_to_dead_letter(&worker.bus, &worker.def, delivery, attempts, reason).await;
}

/// [`dead_letter`] for any consume loop: `def` is the consumer as the letter names it.
pub(crate) async fn send_to_dead_letter(
    bus: &Bus,
    def: &ConsumerDef,
    delivery: &Delivery,
    attempts: u32,
    reason: &str,
) {
    let origin = Origin {
        stream: &def.stream,
        consumer: &def.durable,
        sequence: delivery.sequence(),
        attempts,
        reason,
    };
    let letter = dead_letter::build(&def.dead_letter_subject, delivery.raw(), &origin);
    match bus.publish_raw(&letter).await {
        Ok(_) => {
            // Never silent: operators list and retry them with `jt dead-letters`.
            metrics::counter!("jt_bus_dead_letters_total", "stream" => def.stream.clone(), "consumer" => def.durable.clone())
                .increment(1);
            error!(
                %reason,
                attempts,
                stream = %def.stream,
                consumer = %def.durable,
                sequence = delivery.sequence(),
                message_id = delivery.raw().message_id().unwrap_or_default(),
                "message dead-lettered: it was not handled; list and retry with `jt dead-letters`"
            );
            if let Err(e) = delivery.ack().await {
                warn!(error = %e, "ack after dead-lettering not confirmed; a redelivery stores the same dead letter once");
            }
        }
        Err(e) => {
            warn!(error = %e, %reason, "cannot publish the dead letter; retrying later");
            delivery.nak(Some(Duration::from_secs(5))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(direct_get: bool, single_copy: bool) -> StreamShape {
        StreamShape {
            retention: Retention::WorkQueue,
            direct_get,
            single_copy,
        }
    }

    #[test]
    fn the_gate_trusts_a_direct_get_under_the_lock_only_on_a_single_copy() {
        use HeadRead::{AnyReplica, Leader};
        // One replica: every read is current, both checks are direct gets.
        assert_eq!(head_reads(shape(true, true)), (AnyReplica, AnyReplica));
        // Replicated: a follower may lag; the check that decides runs through the leader.
        assert_eq!(head_reads(shape(true, false)), (AnyReplica, Leader));
        // No direct get on the stream (an older build created it): the leader, always.
        assert_eq!(head_reads(shape(false, true)), (Leader, Leader));
        assert_eq!(head_reads(shape(false, false)), (Leader, Leader));
    }
}
