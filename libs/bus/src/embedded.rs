//! The embedded backend: JetStream's contract in process memory, for one machine (`jt dev`).
//!
//! It implements what the platform relies on — subject-matched streams with limits or
//! work-queue retention, de-duplication inside the window, durable consumers shared by any
//! number of pullers with explicit ack, nak with delay, in-progress acks, redelivery after
//! `ack_wait`, `max_ack_pending`, stream order, and KV buckets with TTL and conditional writes —
//! and nothing else (no mirrors, no clustering). It keeps nothing across restarts: when the
//! process stops, every message, consumer position and KV value is gone.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::envelope::RawMessage;
use crate::error::{BusError, KvError, PublishError};
use crate::kv::valid_key;
use crate::raw::{ConsumerLag, KvEntry, PublishReceipt, StoredMessage, StreamShape, StreamStats};
use crate::subject::subject_matches;
use crate::topology::{ConsumerDef, Discard, KvDef, Retention, StreamDef};

/// The in-process bus. Clones share one state.
#[derive(Clone, Default)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBus").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    /// Woken on every change that could make a delivery possible.
    changed: Notify,
    /// Core (unstored) subjects.
    core: crate::core::EmbeddedCore,
}

#[derive(Default)]
struct State {
    streams: BTreeMap<String, Stream>,
    buckets: BTreeMap<String, Bucket>,
}

struct Stream {
    def: StreamDef,
    messages: BTreeMap<u64, Stored>,
    last_seq: u64,
    bytes: u64,
    dedup: HashMap<String, u64>,
    dedup_order: VecDeque<(Instant, String)>,
    consumers: BTreeMap<String, Consumer>,
}

struct Stored {
    message: RawMessage,
    at: Instant,
    size: u64,
}

struct Consumer {
    def: ConsumerDef,
    /// The next stream sequence to consider for a first delivery.
    cursor: u64,
    pending: BTreeMap<u64, Pending>,
}

struct Pending {
    delivered: u32,
    /// When the delivery may go out again (ack deadline, or the end of a nak delay).
    due: Instant,
}

struct Bucket {
    def: KvDef,
    revision: u64,
    records: HashMap<String, Record>,
}

struct Record {
    value: Bytes,
    revision: u64,
    deleted: bool,
    at: Instant,
}

impl Stream {
    fn new(def: StreamDef) -> Self {
        Self {
            def,
            messages: BTreeMap::new(),
            last_seq: 0,
            bytes: 0,
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            consumers: BTreeMap::new(),
        }
    }

    fn captures(&self, subject: &str) -> bool {
        self.def
            .subjects
            .iter()
            .any(|f| subject_matches(f, subject))
    }

    fn expire(&mut self, now: Instant) {
        if let Some(max_age) = self.def.max_age {
            while let Some((&seq, m)) = self.messages.first_key_value() {
                if m.at + max_age > now {
                    break;
                }
                self.remove(seq);
            }
        }
        while let Some((at, _)) = self.dedup_order.front() {
            if *at + self.def.duplicate_window > now {
                break;
            }
            if let Some((_, id)) = self.dedup_order.pop_front() {
                self.dedup.remove(&id);
            }
        }
    }

    fn remove(&mut self, seq: u64) {
        if let Some(m) = self.messages.remove(&seq) {
            self.bytes = self.bytes.saturating_sub(m.size);
        }
    }

    fn over_limits(&self, extra_bytes: u64, extra_msgs: u64) -> bool {
        let count = self.messages.len() as u64 + extra_msgs;
        let over_msgs = self
            .def
            .max_msgs
            .is_some_and(|m| count > u64::try_from(m).unwrap_or(0));
        let over_bytes =
            self.bytes + extra_bytes > u64::try_from(self.def.max_bytes).unwrap_or(u64::MAX);
        over_msgs || over_bytes
    }
}

impl State {
    /// A stream, with aged-out messages and expired de-duplication ids already dropped.
    fn stream(&mut self, name: &str) -> Result<&mut Stream, BusError> {
        let stream = self
            .streams
            .get_mut(name)
            .ok_or_else(|| BusError::NotFound(format!("stream {name}")))?;
        stream.expire(Instant::now());
        Ok(stream)
    }
}

impl Stream {
    /// The stream's messages and one of its consumers, whose pending list no longer names
    /// messages that left the stream (aged out, discarded).
    fn consumer(
        &mut self,
        durable: &str,
    ) -> Result<(&BTreeMap<u64, Stored>, &mut Consumer), BusError> {
        let Stream {
            messages,
            consumers,
            def,
            ..
        } = self;
        let consumer = consumers
            .get_mut(durable)
            .ok_or_else(|| BusError::NotFound(format!("consumer {durable} on {}", def.name)))?;
        consumer.pending.retain(|seq, _| messages.contains_key(seq));
        Ok((messages, consumer))
    }
}

fn filters_match(filters: &[String], subject: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| subject_matches(f, subject))
}

fn filters_overlap(a: &[String], b: &[String]) -> bool {
    if a.is_empty() || b.is_empty() {
        return true;
    }
    a.iter().any(|x| {
        b.iter()
            .any(|y| subject_matches(x, y) || subject_matches(y, x))
    })
}

impl Bucket {
    fn live(&self, key: &str, now: Instant) -> Option<&Record> {
        self.records
            .get(key)
            .filter(|r| self.def.ttl.is_none_or(|ttl| r.at + ttl > now))
    }

    fn current_revision(&self, key: &str, now: Instant) -> u64 {
        self.live(key, now).map_or(0, |r| r.revision)
    }

    fn write(&mut self, key: &str, value: Bytes, deleted: bool, now: Instant) -> u64 {
        self.revision += 1;
        let revision = self.revision;
        self.records.insert(
            key.to_owned(),
            Record {
                value,
                revision,
                deleted,
                at: now,
            },
        );
        revision
    }
}

impl EmbeddedBus {
    /// A new, empty bus.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn core(&self) -> &crate::core::EmbeddedCore {
        &self.inner.core
    }

    fn changed(&self) {
        self.inner.changed.notify_waiters();
    }

    pub(crate) fn provision_stream(&self, def: &StreamDef) -> Result<(), BusError> {
        let mut st = self.inner.state.lock();
        for (name, other) in &st.streams {
            if name != &def.name && filters_overlap(&other.def.subjects, &def.subjects) {
                return Err(BusError::Provision {
                    what: format!("stream {}", def.name),
                    reason: format!("subjects overlap with stream {name}"),
                });
            }
        }
        match st.streams.get_mut(&def.name) {
            Some(existing) if existing.def.retention != def.retention => Err(BusError::Provision {
                what: format!("stream {}", def.name),
                reason: "retention policy cannot be changed".to_owned(),
            }),
            Some(existing) => {
                existing.def = def.clone();
                Ok(())
            }
            None => {
                st.streams
                    .insert(def.name.clone(), Stream::new(def.clone()));
                Ok(())
            }
        }
    }

    pub(crate) fn provision_consumer(&self, def: &ConsumerDef) -> Result<(), BusError> {
        let mut st = self.inner.state.lock();
        let stream = st
            .streams
            .get_mut(&def.stream)
            .ok_or_else(|| BusError::NotFound(format!("stream {}", def.stream)))?;
        if stream.def.retention == Retention::WorkQueue {
            let overlapping = stream.consumers.iter().find(|(name, c)| {
                *name != &def.durable
                    && filters_overlap(&c.def.filter_subjects, &def.filter_subjects)
            });
            if let Some((name, _)) = overlapping {
                return Err(BusError::Provision {
                    what: format!("consumer {}", def.durable),
                    reason: format!(
                        "work-queue stream {} already has overlapping consumer {name}",
                        def.stream
                    ),
                });
            }
        }
        match stream.consumers.get_mut(&def.durable) {
            Some(c) => c.def = def.clone(),
            None => {
                let cursor = stream
                    .messages
                    .first_key_value()
                    .map_or(stream.last_seq + 1, |(s, _)| *s);
                stream.consumers.insert(
                    def.durable.clone(),
                    Consumer {
                        def: def.clone(),
                        cursor,
                        pending: BTreeMap::new(),
                    },
                );
            }
        }
        Ok(())
    }

    pub(crate) fn provision_bucket(&self, def: &KvDef) {
        let mut st = self.inner.state.lock();
        match st.buckets.get_mut(&def.bucket) {
            Some(b) => b.def = def.clone(),
            None => {
                st.buckets.insert(
                    def.bucket.clone(),
                    Bucket {
                        def: def.clone(),
                        revision: 0,
                        records: HashMap::new(),
                    },
                );
            }
        }
    }

    pub(crate) fn delete_stream(&self, name: &str) {
        self.inner.state.lock().streams.remove(name);
    }

    pub(crate) fn delete_bucket(&self, name: &str) {
        self.inner.state.lock().buckets.remove(name);
    }

    pub(crate) fn stream_shape(&self, name: &str) -> Result<StreamShape, BusError> {
        let st = self.inner.state.lock();
        st.streams
            .get(name)
            .map(|s| StreamShape {
                retention: s.def.retention,
                direct_get: false,
                single_copy: true,
            })
            .ok_or_else(|| BusError::NotFound(format!("stream {name}")))
    }

    /// The sequence of the oldest message on `subject` (a literal subject) in `stream`.
    pub(crate) fn head_sequence(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<Option<u64>, BusError> {
        let mut st = self.inner.state.lock();
        Ok(st
            .stream(stream)?
            .messages
            .iter()
            .find(|(_, m)| m.message.subject == subject)
            .map(|(seq, _)| *seq))
    }

    pub(crate) fn publish(&self, message: &RawMessage) -> Result<PublishReceipt, PublishError> {
        let now = Instant::now();
        let receipt = {
            let mut st = self.inner.state.lock();
            let stream = st
                .streams
                .values_mut()
                .find(|s| s.captures(&message.subject))
                .ok_or_else(|| PublishError::NoStream {
                    subject: message.subject.clone(),
                })?;
            stream.expire(now);
            let id = message.message_id().map(str::to_owned);
            if let Some(seq) = id.as_ref().and_then(|id| stream.dedup.get(id)) {
                return Ok(PublishReceipt {
                    stream: stream.def.name.clone(),
                    sequence: *seq,
                    duplicate: true,
                    retried_unconfirmed: false,
                });
            }
            let size =
                (message.subject.len() + message.headers.byte_len() + message.payload.len()) as u64;
            if stream.over_limits(size, 1) {
                match stream.def.discard {
                    Discard::New => {
                        return Err(PublishError::Rejected {
                            message_id: id.unwrap_or_default(),
                            subject: message.subject.clone(),
                            reason: "maximum messages or bytes exceeded".to_owned(),
                        });
                    }
                    Discard::Old => {
                        while stream.over_limits(size, 1) {
                            let Some((&oldest, _)) = stream.messages.first_key_value() else {
                                break;
                            };
                            stream.remove(oldest);
                        }
                    }
                }
            }
            stream.last_seq += 1;
            let seq = stream.last_seq;
            stream.messages.insert(
                seq,
                Stored {
                    message: message.clone(),
                    at: now,
                    size,
                },
            );
            stream.bytes += size;
            if let Some(id) = id {
                stream.dedup.insert(id.clone(), seq);
                stream.dedup_order.push_back((now, id));
            }
            PublishReceipt {
                stream: stream.def.name.clone(),
                sequence: seq,
                duplicate: false,
                retried_unconfirmed: false,
            }
        };
        self.changed();
        Ok(receipt)
    }

    pub(crate) fn stream_stats(&self, name: &str) -> Result<StreamStats, BusError> {
        let mut st = self.inner.state.lock();
        let stream = st.stream(name)?;
        Ok(StreamStats {
            messages: stream.messages.len() as u64,
            bytes: stream.bytes,
            first_sequence: stream.messages.first_key_value().map_or(0, |(s, _)| *s),
            last_sequence: stream.last_seq,
        })
    }

    pub(crate) fn next_for_subject(
        &self,
        stream: &str,
        filter: &str,
        from_seq: u64,
    ) -> Result<Option<StoredMessage>, BusError> {
        let mut st = self.inner.state.lock();
        Ok(st
            .stream(stream)?
            .messages
            .range(from_seq.max(1)..)
            .find(|(_, m)| subject_matches(filter, &m.message.subject))
            .map(|(seq, m)| StoredMessage {
                sequence: *seq,
                message: m.message.clone(),
            }))
    }

    pub(crate) fn delete_message(&self, stream: &str, seq: u64) -> Result<bool, BusError> {
        let mut st = self.inner.state.lock();
        let stream = st.stream(stream)?;
        let existed = stream.messages.contains_key(&seq);
        stream.remove(seq);
        Ok(existed)
    }

    /// What a consumer has handed out; `None` when it does not exist.
    pub(crate) fn handed_out(
        &self,
        stream: &str,
        durable: &str,
    ) -> Result<Option<crate::raw::HandedOut>, BusError> {
        let mut st = self.inner.state.lock();
        let stream = st.stream(stream)?;
        Ok(stream
            .consumers
            .get(durable)
            .map(|c| crate::raw::HandedOut {
                last_delivered: c.cursor.saturating_sub(1),
                ack_pending: c.pending.len() as u64,
            }))
    }

    /// Deletes a consumer (its messages stay in the stream); `false` when it did not exist.
    pub(crate) fn delete_consumer(&self, stream: &str, durable: &str) -> Result<bool, BusError> {
        let mut st = self.inner.state.lock();
        let removed = st.stream(stream)?.consumers.remove(durable).is_some();
        drop(st);
        self.changed();
        Ok(removed)
    }

    pub(crate) fn lag(&self, stream: &str, durable: &str) -> Result<ConsumerLag, BusError> {
        let mut st = self.inner.state.lock();
        let (messages, consumer) = st.stream(stream)?.consumer(durable)?;
        let pending = messages
            .range(consumer.cursor..)
            .filter(|(_, m)| filters_match(&consumer.def.filter_subjects, &m.message.subject))
            .count() as u64;
        Ok(ConsumerLag {
            pending,
            ack_pending: consumer.pending.len() as u64,
            redelivered: consumer
                .pending
                .values()
                .filter(|p| p.delivered > 1)
                .count() as u64,
            waiting: 0,
        })
    }

    /// Waits until `deadline` for the next delivery of a consumer.
    pub(crate) async fn next_delivery(
        &self,
        stream: &str,
        durable: &str,
        deadline: Instant,
    ) -> Result<Option<EmbeddedDelivery>, BusError> {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            // Register before looking, so a change between the look and the wait wakes us.
            notified.as_mut().enable();
            let wake_at = match self.try_deliver(stream, durable)? {
                Ok(delivery) => return Ok(Some(delivery)),
                Err(next_due) => next_due.map_or(deadline, |due| due.min(deadline)),
            };
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// A delivery, or when the earliest pending redelivery falls due.
    fn try_deliver(
        &self,
        stream_name: &str,
        durable: &str,
    ) -> Result<Result<EmbeddedDelivery, Option<Instant>>, BusError> {
        let now = Instant::now();
        let mut st = self.inner.state.lock();
        let (messages, consumer) = st.stream(stream_name)?.consumer(durable)?;
        let ack_wait = consumer.def.ack_wait;
        let make = |seq: u64, delivered: u32, m: &Stored| EmbeddedDelivery {
            bus: self.clone(),
            stream: stream_name.to_owned(),
            durable: durable.to_owned(),
            sequence: seq,
            delivered,
            message: m.message.clone(),
        };
        // Redeliveries first, oldest first, as JetStream does.
        if let Some((&seq, p)) = consumer.pending.iter_mut().find(|(_, p)| p.due <= now) {
            p.delivered += 1;
            p.due = now + ack_wait;
            let delivered = p.delivered;
            if let Some(m) = messages.get(&seq) {
                return Ok(Ok(make(seq, delivered, m)));
            }
        }
        let room = consumer.def.max_ack_pending <= 0
            || (consumer.pending.len() as u64)
                < u64::try_from(consumer.def.max_ack_pending).unwrap_or(0);
        if room {
            let next = messages
                .range(consumer.cursor..)
                .find(|(_, m)| filters_match(&consumer.def.filter_subjects, &m.message.subject))
                .map(|(seq, _)| *seq);
            match next {
                Some(seq) => {
                    consumer.cursor = seq + 1;
                    consumer.pending.insert(
                        seq,
                        Pending {
                            delivered: 1,
                            due: now + ack_wait,
                        },
                    );
                    if let Some(m) = messages.get(&seq) {
                        return Ok(Ok(make(seq, 1, m)));
                    }
                }
                None => {
                    consumer.cursor = messages
                        .last_key_value()
                        .map_or(consumer.cursor, |(s, _)| (*s + 1).max(consumer.cursor));
                }
            }
        }
        Ok(Err(consumer.pending.values().map(|p| p.due).min()))
    }

    fn settle(&self, stream: &str, durable: &str, seq: u64, how: Settle) {
        {
            let now = Instant::now();
            let mut st = self.inner.state.lock();
            let Some(s) = st.streams.get_mut(stream) else {
                return;
            };
            let retention = s.def.retention;
            let Some(c) = s.consumers.get_mut(durable) else {
                return;
            };
            let ack_wait = c.def.ack_wait;
            match how {
                Settle::Ack => {
                    if c.pending.remove(&seq).is_some() && retention == Retention::WorkQueue {
                        s.remove(seq);
                    }
                }
                Settle::Nak(delay) => {
                    if let Some(p) = c.pending.get_mut(&seq) {
                        p.due = now + delay;
                    }
                }
                Settle::Progress => {
                    if let Some(p) = c.pending.get_mut(&seq) {
                        p.due = now + ack_wait;
                    }
                }
            }
        }
        self.changed();
    }

    // ---- KV ----

    fn with_bucket<T>(
        &self,
        bucket: &str,
        key: &str,
        f: impl FnOnce(&mut Bucket, Instant) -> Result<T, KvError>,
    ) -> Result<T, KvError> {
        if !valid_key(key) {
            return Err(KvError::InvalidKey(key.to_owned()));
        }
        let mut st = self.inner.state.lock();
        let b = st
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| KvError::NoBucket(bucket.to_owned()))?;
        f(b, Instant::now())
    }

    pub(crate) fn kv_exists(&self, bucket: &str) -> bool {
        self.inner.state.lock().buckets.contains_key(bucket)
    }

    pub(crate) fn kv_get(&self, bucket: &str, key: &str) -> Result<Option<KvEntry>, KvError> {
        self.with_bucket(bucket, key, |b, now| {
            Ok(b.live(key, now).filter(|r| !r.deleted).map(|r| KvEntry {
                key: key.to_owned(),
                value: r.value.clone(),
                revision: r.revision,
            }))
        })
    }

    pub(crate) fn kv_put(&self, bucket: &str, key: &str, value: Bytes) -> Result<u64, KvError> {
        self.with_bucket(bucket, key, |b, now| Ok(b.write(key, value, false, now)))
    }

    pub(crate) fn kv_create(&self, bucket: &str, key: &str, value: Bytes) -> Result<u64, KvError> {
        self.with_bucket(bucket, key, |b, now| {
            if b.live(key, now).is_some_and(|r| !r.deleted) {
                return Err(KvError::AlreadyExists {
                    bucket: b.def.bucket.clone(),
                    key: key.to_owned(),
                });
            }
            Ok(b.write(key, value, false, now))
        })
    }

    pub(crate) fn kv_update(
        &self,
        bucket: &str,
        key: &str,
        value: Bytes,
        expected: u64,
    ) -> Result<u64, KvError> {
        self.with_bucket(bucket, key, |b, now| {
            if b.current_revision(key, now) != expected {
                return Err(KvError::WrongRevision {
                    bucket: b.def.bucket.clone(),
                    key: key.to_owned(),
                    expected,
                });
            }
            Ok(b.write(key, value, false, now))
        })
    }

    pub(crate) fn kv_delete(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<u64>,
    ) -> Result<(), KvError> {
        self.with_bucket(bucket, key, |b, now| {
            if let Some(expected) = expected
                && b.current_revision(key, now) != expected
            {
                return Err(KvError::WrongRevision {
                    bucket: b.def.bucket.clone(),
                    key: key.to_owned(),
                    expected,
                });
            }
            b.write(key, Bytes::new(), true, now);
            Ok(())
        })
    }

    pub(crate) fn kv_keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        let st = self.inner.state.lock();
        let b = st
            .buckets
            .get(bucket)
            .ok_or_else(|| KvError::NoBucket(bucket.to_owned()))?;
        let now = Instant::now();
        let mut keys: Vec<String> = b
            .records
            .keys()
            .filter(|k| b.live(k, now).is_some_and(|r| !r.deleted))
            .cloned()
            .collect();
        keys.sort();
        Ok(keys)
    }
}

enum Settle {
    Ack,
    Nak(Duration),
    Progress,
}

/// One delivery of a message to a puller of an embedded consumer.
pub(crate) struct EmbeddedDelivery {
    bus: EmbeddedBus,
    stream: String,
    durable: String,
    pub(crate) sequence: u64,
    pub(crate) delivered: u32,
    pub(crate) message: RawMessage,
}

impl EmbeddedDelivery {
    pub(crate) fn ack(&self) {
        self.bus
            .settle(&self.stream, &self.durable, self.sequence, Settle::Ack);
    }

    pub(crate) fn nak(&self, delay: Option<Duration>) {
        self.bus.settle(
            &self.stream,
            &self.durable,
            self.sequence,
            Settle::Nak(delay.unwrap_or_default()),
        );
    }

    pub(crate) fn progress(&self) {
        self.bus
            .settle(&self.stream, &self.durable, self.sequence, Settle::Progress);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{HEADER_MESSAGE_ID, Headers};
    use crate::subject::Namespace;
    use crate::topology::Definitions;

    fn message(subject: &str, id: &str) -> RawMessage {
        let mut headers = Headers::new();
        headers.insert(HEADER_MESSAGE_ID, id);
        RawMessage {
            subject: subject.to_owned(),
            headers,
            payload: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limits_streams_age_out_and_dedup_forgets_after_the_window() {
        let d = Definitions::new(&Namespace::production());
        let mut def = d.broker_events.clone();
        def.max_age = Some(Duration::from_secs(10));
        def.duplicate_window = Duration::from_secs(5);
        let bus = EmbeddedBus::new();
        bus.provision_stream(&def).unwrap();
        let first = bus.publish(&message("jt.broker.a.fill", "m1")).unwrap();
        assert!(!first.duplicate);
        assert!(
            bus.publish(&message("jt.broker.a.fill", "m1"))
                .unwrap()
                .duplicate
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        let again = bus.publish(&message("jt.broker.a.fill", "m1")).unwrap();
        assert!(!again.duplicate, "outside the window the same id is new");
        assert_eq!(bus.stream_stats(&def.name).unwrap().messages, 2);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            bus.stream_stats(&def.name).unwrap().messages,
            1,
            "the first aged out"
        );
    }

    #[tokio::test]
    async fn a_full_work_queue_refuses_instead_of_dropping() {
        let d = Definitions::new(&Namespace::production());
        let mut def = d.orders.clone();
        def.max_msgs = Some(1);
        let bus = EmbeddedBus::new();
        bus.provision_stream(&def).unwrap();
        bus.publish(&message("jt.orders.a", "1")).unwrap();
        let err = bus.publish(&message("jt.orders.a", "2")).unwrap_err();
        assert!(matches!(err, PublishError::Rejected { .. }), "{err}");
        assert_eq!(bus.stream_stats(&def.name).unwrap().messages, 1);
    }

    #[tokio::test]
    async fn a_limits_stream_drops_its_oldest_when_full() {
        let d = Definitions::new(&Namespace::production());
        let mut def = d.executions.clone();
        def.max_msgs = Some(2);
        let bus = EmbeddedBus::new();
        bus.provision_stream(&def).unwrap();
        for i in 0..3 {
            bus.publish(&message("jt.executions.r", &i.to_string()))
                .unwrap();
        }
        let stats = bus.stream_stats(&def.name).unwrap();
        assert_eq!(
            (stats.messages, stats.first_sequence, stats.last_sequence),
            (2, 2, 3)
        );
    }

    #[test]
    fn overlapping_work_queue_consumers_are_refused() {
        let d = Definitions::new(&Namespace::production());
        let bus = EmbeddedBus::new();
        bus.provision_stream(&d.orders).unwrap();
        bus.provision_consumer(&d.execute).unwrap();
        let mut other = d.execute.clone();
        other.durable = "other".into();
        assert!(bus.provision_consumer(&other).is_err());
        bus.provision_consumer(&d.execute).unwrap();
    }
}
