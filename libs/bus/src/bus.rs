//! [`Bus`]: the one handle services hold, over either backend.

use crate::dead_letter::{DeadLetter, DeadLetterQuery};
use crate::embedded::EmbeddedBus;
use crate::envelope::{Envelope, EnvelopeError, Message, RawMessage};
use crate::error::{BusError, KvError, PublishError};
use crate::jetstream::{JetStreamBus, JetStreamOptions};
use crate::kv::KvBucket;
use crate::raw::{ConsumerLag, HeadRead, PublishReceipt, StoredMessage, StreamShape, StreamStats};
use crate::subject::{Namespace, Subjects};
use crate::topology::{ConsumerDef, KvDef, StreamDef, Topology};

/// Which backend a [`Bus`] runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// NATS JetStream (production, integration tests).
    JetStream(JetStreamBus),
    /// In-process (one machine, `jt dev`); keeps nothing across restarts.
    Embedded(EmbeddedBus),
}

/// How to reach the bus. Only binaries read the environment: they fill `nats_url` from
/// `NATS_URL`.
#[derive(Debug, Clone, Default)]
pub struct BusConfig {
    /// The NATS URL; `None` selects the embedded bus.
    pub nats_url: Option<String>,
    /// The namespace (production unless a test isolates itself).
    pub namespace: Namespace,
    /// JetStream client settings.
    pub jetstream: JetStreamOptions,
}

/// The message bus. Cheap to clone; clones share the connection (or the embedded state).
#[derive(Debug, Clone)]
pub struct Bus {
    namespace: Namespace,
    backend: Backend,
}

impl Bus {
    /// JetStream when `config.nats_url` is set, the embedded bus otherwise.
    ///
    /// # Errors
    /// [`BusError::Connect`] when NATS cannot be reached, [`BusError::UnsupportedServer`] when
    /// it is older than [`crate::jetstream::MIN_SERVER_VERSION`].
    pub async fn connect(config: BusConfig) -> Result<Self, BusError> {
        match &config.nats_url {
            Some(url) => Self::jetstream(url, config.namespace, config.jetstream).await,
            None => Ok(Self::embedded(config.namespace)),
        }
    }

    /// A bus on NATS JetStream at `url`.
    ///
    /// # Errors
    /// [`BusError::Connect`] when NATS cannot be reached, [`BusError::UnsupportedServer`] when
    /// it is older than [`crate::jetstream::MIN_SERVER_VERSION`].
    pub async fn jetstream(
        url: &str,
        namespace: Namespace,
        options: JetStreamOptions,
    ) -> Result<Self, BusError> {
        let js = JetStreamBus::connect(url, options).await?;
        Ok(Self {
            namespace,
            backend: Backend::JetStream(js),
        })
    }

    /// A fresh in-process bus (nothing survives the process).
    #[must_use]
    pub fn embedded(namespace: Namespace) -> Self {
        Self {
            namespace,
            backend: Backend::Embedded(EmbeddedBus::new()),
        }
    }

    /// Another handle on the same embedded state or the same NATS connection, in another
    /// namespace.
    #[must_use]
    pub fn with_namespace(&self, namespace: Namespace) -> Self {
        Self {
            namespace,
            backend: self.backend.clone(),
        }
    }

    /// What this bus runs on, for the start-up log: the JetStream server's version, or that
    /// it is the in-process bus.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::JetStream(js) => format!("NATS JetStream {}", js.server_version()),
            Backend::Embedded(_) => {
                "the embedded in-process bus (nothing survives the process)".to_owned()
            }
        }
    }

    /// The namespace.
    #[must_use]
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The subject builders of this bus's namespace.
    #[must_use]
    pub fn subjects(&self) -> Subjects {
        self.namespace.subjects()
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Creates or updates streams, KV buckets (including serial consumers' lock and attempt
    /// buckets) and consumers to match `topology`. Safe to run at every start, by every replica.
    ///
    /// # Errors
    /// [`BusError::InvalidDefinition`] when the topology is inconsistent,
    /// [`BusError::Provision`] when the server refuses a change (e.g. a retention change on an
    /// existing stream: that needs an operator).
    pub async fn provision(&self, topology: &Topology) -> Result<(), BusError> {
        topology.validate().map_err(BusError::InvalidDefinition)?;
        for s in &topology.streams {
            self.provision_stream(s).await?;
        }
        let mut buckets: Vec<&KvDef> = topology.buckets.iter().collect();
        for c in &topology.consumers {
            if let Some(serial) = &c.serial {
                buckets.push(&serial.locks);
                buckets.push(&serial.attempts);
                if let Some(parts) = &serial.partitions {
                    buckets.push(&parts.leases);
                }
            }
        }
        buckets.sort_by(|a, b| a.bucket.cmp(&b.bucket));
        buckets.dedup_by(|a, b| a.bucket == b.bucket);
        for b in buckets {
            self.provision_bucket(b).await?;
        }
        for c in &topology.consumers {
            let parts = c.server_consumers();
            if parts.len() > 1 || parts[0].durable != c.durable {
                self.retire_unpartitioned(c).await?;
            }
            for part in &parts {
                self.provision_consumer(part).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn provision_consumer(&self, def: &ConsumerDef) -> Result<(), BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.provision_consumer(def).await,
            Backend::Embedded(e) => e.provision_consumer(def),
        }
    }

    /// A partitioned consumer's predecessor: the one consumer under its plain name that an
    /// older build read the whole stream with. Work-queue consumers must not overlap, so it
    /// goes — but only once it holds nothing: its messages sit on subjects no partition reads.
    async fn retire_unpartitioned(&self, def: &ConsumerDef) -> Result<(), BusError> {
        let Some(out) = self.handed_out(&def.stream, &def.durable).await? else {
            return Ok(());
        };
        let lag = self.consumer_lag_of(&def.stream, &def.durable).await?;
        if lag.pending > 0 || out.ack_pending > 0 {
            return Err(BusError::Provision {
                what: format!("consumer {} on {}", def.durable, def.stream),
                reason: format!(
                    "the unpartitioned consumer of an older build still holds {} messages: let \
                     the older replicas finish them (or scale them down once it is empty) \
                     before starting this build (docs/operations.md, \"Upgrading to partition-owned ORDERS\")",
                    lag.pending + out.ack_pending
                ),
            });
        }
        tracing::info!(consumer = %def.durable, stream = %def.stream, "retiring the empty unpartitioned consumer");
        self.delete_consumer(&def.stream, &def.durable).await?;
        Ok(())
    }

    pub(crate) async fn handed_out(
        &self,
        stream: &str,
        durable: &str,
    ) -> Result<Option<crate::raw::HandedOut>, BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.handed_out(stream, durable).await,
            Backend::Embedded(e) => e.handed_out(stream, durable),
        }
    }

    pub(crate) async fn delete_consumer(
        &self,
        stream: &str,
        durable: &str,
    ) -> Result<bool, BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.delete_consumer(stream, durable).await,
            Backend::Embedded(e) => e.delete_consumer(stream, durable),
        }
    }

    async fn consumer_lag_of(&self, stream: &str, durable: &str) -> Result<ConsumerLag, BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.lag(stream, durable).await,
            Backend::Embedded(e) => e.lag(stream, durable),
        }
    }

    async fn provision_stream(&self, def: &StreamDef) -> Result<(), BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.provision_stream(def).await,
            Backend::Embedded(e) => e.provision_stream(def),
        }
    }

    async fn provision_bucket(&self, def: &KvDef) -> Result<(), BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.provision_bucket(def).await,
            Backend::Embedded(e) => {
                e.provision_bucket(def);
                Ok(())
            }
        }
    }

    /// Deletes the streams (with their consumers) and buckets of `topology`: for tests and
    /// tooling, never for a running platform.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the server refuses.
    pub async fn teardown(&self, topology: &Topology) -> Result<(), BusError> {
        let mut buckets: Vec<&str> = topology.buckets.iter().map(|b| b.bucket.as_str()).collect();
        for c in &topology.consumers {
            if let Some(s) = &c.serial {
                buckets.push(&s.locks.bucket);
                buckets.push(&s.attempts.bucket);
                if let Some(parts) = &s.partitions {
                    buckets.push(&parts.leases.bucket);
                }
            }
        }
        buckets.sort_unstable();
        buckets.dedup();
        for b in buckets {
            match &self.backend {
                Backend::JetStream(js) => js.delete_bucket(b).await?,
                Backend::Embedded(e) => e.delete_bucket(b),
            }
        }
        for s in &topology.streams {
            match &self.backend {
                Backend::JetStream(js) => js.delete_stream(&s.name).await?,
                Backend::Embedded(e) => e.delete_stream(&s.name),
            }
        }
        Ok(())
    }

    /// Publishes a typed message and waits for the stream to store it.
    ///
    /// The envelope's id is the de-duplication key: publishing the same id again within the
    /// stream's window stores nothing and returns `duplicate: true`. On JetStream a timeout or
    /// a broken connection is retried with the same id until the publish deadline.
    ///
    /// # Errors
    /// [`PublishError::Unconfirmed`] (outcome unknown: publish again with the same id),
    /// [`PublishError::Rejected`], [`PublishError::NoStream`] or [`PublishError::Envelope`].
    pub async fn publish<M: Message>(
        &self,
        envelope: &Envelope<M>,
    ) -> Result<PublishReceipt, PublishError> {
        let raw = envelope.encode(&self.subjects())?;
        self.publish_raw(&raw).await
    }

    /// Publishes a message that already carries its headers (dead letters, requeues, tools).
    ///
    /// # Errors
    /// As [`Bus::publish`]; a message without `Nats-Msg-Id` is refused
    /// ([`EnvelopeError::BadMessageId`]): every message on this bus is de-duplicable.
    pub async fn publish_raw(&self, message: &RawMessage) -> Result<PublishReceipt, PublishError> {
        if message.message_id().is_none_or(str::is_empty) {
            return Err(PublishError::Envelope(EnvelopeError::BadMessageId(
                String::new(),
            )));
        }
        match &self.backend {
            Backend::JetStream(js) => js.publish(message).await,
            Backend::Embedded(e) => e.publish(message),
        }
    }

    /// Publishes on a core subject: not stored, not acknowledged, lost when no one listens
    /// (quotes; see [`crate::core`]).
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the connection refuses it.
    pub async fn publish_core(
        &self,
        subject: String,
        payload: bytes::Bytes,
    ) -> Result<(), BusError> {
        let message = crate::core::CoreMessage { subject, payload };
        match &self.backend {
            Backend::JetStream(js) => crate::core::nats_publish(js.client(), message).await,
            Backend::Embedded(e) => {
                e.core().publish(message);
                Ok(())
            }
        }
    }

    /// Subscribes to core subjects matching `filter` from now on.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the server refuses it.
    pub async fn subscribe_core(
        &self,
        filter: String,
    ) -> Result<crate::core::CoreSubscription, BusError> {
        match &self.backend {
            Backend::JetStream(js) => crate::core::nats_subscribe(js.client(), filter).await,
            Backend::Embedded(e) => Ok(e.core().subscribe(filter)),
        }
    }

    /// Readiness: whether the bus can take messages now (JetStream answers an account query;
    /// the embedded bus always can).
    ///
    /// # Errors
    /// [`BusError::Unavailable`] with the reason.
    pub async fn ping(&self) -> Result<(), BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.ping().await,
            Backend::Embedded(_) => Ok(()),
        }
    }

    /// A stream's size.
    ///
    /// # Errors
    /// [`BusError::NotFound`] or [`BusError::Unavailable`].
    pub async fn stream_stats(&self, stream: &str) -> Result<StreamStats, BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.stream_stats(stream).await,
            Backend::Embedded(e) => e.stream_stats(stream),
        }
    }

    pub(crate) async fn stream_shape(&self, stream: &str) -> Result<StreamShape, BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.stream_shape(stream).await,
            Backend::Embedded(e) => e.stream_shape(stream),
        }
    }

    /// The sequence of the oldest message on `subject` (a literal subject) still in `stream`,
    /// read as `read` says; the embedded bus has one copy and ignores it.
    pub(crate) async fn head_sequence(
        &self,
        stream: &str,
        subject: &str,
        read: HeadRead,
    ) -> Result<Option<u64>, BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.head_sequence(stream, subject, read).await,
            Backend::Embedded(e) => e.head_sequence(stream, subject),
        }
    }

    /// The first message at or after `from_seq` in `stream` whose subject matches `filter`.
    ///
    /// # Errors
    /// [`BusError::NotFound`] or [`BusError::Unavailable`].
    pub async fn next_message(
        &self,
        stream: &str,
        filter: &str,
        from_seq: u64,
    ) -> Result<Option<StoredMessage>, BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.next_for_subject(stream, filter, from_seq).await,
            Backend::Embedded(e) => e.next_for_subject(stream, filter, from_seq),
        }
    }

    /// A consumer's backlog (`pending`, `ack_pending`, `redelivered`), for metrics and
    /// autoscaling. KEDA's lag is [`ConsumerLag::total`].
    ///
    /// # Errors
    /// [`BusError::NotFound`] or [`BusError::Unavailable`].
    ///
    /// A partitioned consumer's lag is the sum over its partitions.
    pub async fn consumer_lag(&self, consumer: &ConsumerDef) -> Result<ConsumerLag, BusError> {
        let mut sum = ConsumerLag::default();
        for part in consumer.server_consumers() {
            let lag = self.consumer_lag_of(&part.stream, &part.durable).await?;
            sum.pending += lag.pending;
            sum.ack_pending += lag.ack_pending;
            sum.redelivered += lag.redelivered;
            sum.waiting += lag.waiting;
        }
        Ok(sum)
    }

    /// A handle on a provisioned KV bucket.
    ///
    /// # Errors
    /// [`KvError::NoBucket`] when it was not provisioned, [`KvError::Unavailable`].
    pub async fn kv(&self, def: &KvDef) -> Result<KvBucket, KvError> {
        match &self.backend {
            Backend::JetStream(js) => js.kv(def).await,
            Backend::Embedded(e) => {
                if e.kv_exists(&def.bucket) {
                    Ok(KvBucket::embedded(def.bucket.clone(), def.ttl, e.clone()))
                } else {
                    Err(KvError::NoBucket(def.bucket.clone()))
                }
            }
        }
    }

    /// Lists dead letters from the dead-letter stream, oldest first.
    ///
    /// # Errors
    /// [`BusError::NotFound`] or [`BusError::Unavailable`].
    pub async fn dead_letters(
        &self,
        dead_letters: &StreamDef,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let root = self.namespace.root();
        let filter = format!(
            "{root}.dlq.{}.{}",
            query.stream.as_deref().unwrap_or("*"),
            query.consumer.as_deref().unwrap_or("*")
        );
        let mut out = Vec::new();
        let mut from = query.after + 1;
        while out.len() < query.limit {
            let Some(stored) = self.next_message(&dead_letters.name, &filter, from).await? else {
                break;
            };
            from = stored.sequence + 1;
            out.push(DeadLetter::from_stored(&stored));
        }
        Ok(out)
    }

    /// One dead letter by its sequence.
    ///
    /// # Errors
    /// [`BusError::NotFound`] or [`BusError::Unavailable`].
    pub async fn dead_letter(
        &self,
        dead_letters: &StreamDef,
        sequence: u64,
    ) -> Result<Option<DeadLetter>, BusError> {
        let filter = format!("{}.dlq.>", self.namespace.root());
        Ok(self
            .next_message(&dead_letters.name, &filter, sequence)
            .await?
            .filter(|s| s.sequence == sequence)
            .map(|s| DeadLetter::from_stored(&s)))
    }

    /// Publishes a dead letter's original message again (same subject, headers and message
    /// id, so handlers stay idempotent) and removes the dead letter once stored. Inside the
    /// original's de-duplication window the stream refuses it as a duplicate
    /// (`duplicate: true`, dead letter kept): try again after the window.
    ///
    /// # Errors
    /// [`BusError::NotFound`] when there is no such dead letter; publish failures as
    /// [`BusError::Unavailable`].
    pub async fn requeue_dead_letter(
        &self,
        dead_letters: &StreamDef,
        sequence: u64,
    ) -> Result<PublishReceipt, BusError> {
        let dl = self
            .dead_letter(dead_letters, sequence)
            .await?
            .ok_or_else(|| BusError::NotFound(format!("dead letter {sequence}")))?;
        let receipt = self
            .publish_raw(&dl.original)
            .await
            .map_err(|e| BusError::unavailable("requeue", e))?;
        if !receipt.duplicate {
            self.delete_message(&dead_letters.name, sequence).await?;
        }
        Ok(receipt)
    }

    /// Puts a dead letter's message back where it came from now, for an operator who fixed the
    /// cause: as [`Bus::requeue_dead_letter`], and when the stream still remembers the original
    /// id (inside its de-duplication window) under a retry id derived from it and the dead
    /// letter (`<id>:retry:<sequence>`), so retrying the same dead letter twice still stores
    /// it once. Handlers are idempotent on their payload's own ids, not on the message id.
    /// Returns the message id it went back under.
    ///
    /// # Errors
    /// As [`Bus::requeue_dead_letter`].
    pub async fn retry_dead_letter(
        &self,
        dead_letters: &StreamDef,
        sequence: u64,
    ) -> Result<String, BusError> {
        let dl = self
            .dead_letter(dead_letters, sequence)
            .await?
            .ok_or_else(|| BusError::NotFound(format!("dead letter {sequence}")))?;
        let original = dl.original.message_id().unwrap_or_default().to_owned();
        let receipt = self
            .publish_raw(&dl.original)
            .await
            .map_err(|e| BusError::unavailable("retry dead letter", e))?;
        let id = if receipt.duplicate {
            let mut again = dl.original.clone();
            let mut id = format!("{original}:retry:{sequence}");
            if id.len() > crate::envelope::MessageId::MAX_LEN {
                id = format!("retry:{}:{sequence}", dead_letters.name);
            }
            again
                .headers
                .insert(crate::envelope::HEADER_MESSAGE_ID, id.as_str());
            self.publish_raw(&again)
                .await
                .map_err(|e| BusError::unavailable("retry dead letter", e))?;
            id
        } else {
            original
        };
        self.delete_message(&dead_letters.name, sequence).await?;
        Ok(id)
    }

    /// Deletes one message from a stream (an operator discarding a dead letter).
    ///
    /// # Errors
    /// [`BusError::NotFound`] or [`BusError::Unavailable`].
    pub async fn delete_message(&self, stream: &str, sequence: u64) -> Result<bool, BusError> {
        match &self.backend {
            Backend::JetStream(js) => js.delete_message(stream, sequence).await,
            Backend::Embedded(e) => e.delete_message(stream, sequence),
        }
    }
}
