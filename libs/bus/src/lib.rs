//! The message bus: subjects, streams, consumers, KV buckets and typed envelopes, on NATS
//! JetStream or an embedded in-process backend.
//!
//! This crate is the only place that knows subject names, stream and consumer definitions and
//! KV buckets. Services hold a [`Bus`], publish typed [`Envelope`]s ([`Bus::publish`]), run
//! durable consumers ([`Bus::consume`]), take leases on KV ([`KvBucket::try_acquire`]) and read
//! consumer lag ([`Bus::consumer_lag`]). [`Definitions`] is the platform's topology;
//! [`Bus::provision`] applies it idempotently at start.
//!
//! Delivery is at least once. Correctness comes from content-derived message ids
//! (de-duplication on publish), acks only after the effect is durable, and idempotent
//! handlers. Read `docs/bus.md` for the design, the serial-execution scheme and the embedded
//! backend's limits.
//!
//! What it must not do: know payload semantics (orders, signals: those types implement
//! [`Message`] in their own crates), read the environment (binaries fill [`BusConfig`]), or
//! buffer messages beyond what a replica works on.

mod bus;
mod consume;
pub mod core;
pub mod dead_letter;
pub mod embedded;
pub mod envelope;
pub mod error;
pub mod jetstream;
pub mod kv;
mod partition;
pub mod raw;
pub mod subject;
pub mod topology;

pub use bus::{Backend, Bus, BusConfig};
pub use consume::{ConsumeOptions, Incoming, LAG_SAMPLE_EVERY, Outcome};
pub use core::{CoreMessage, CoreSubscription};
pub use dead_letter::{DeadLetter, DeadLetterQuery, Letter};
pub use embedded::EmbeddedBus;
pub use envelope::{Envelope, Headers, Message, MessageId, RawMessage, TraceContext};
pub use error::{BusError, KvError, PublishError};
pub use jetstream::{JetStreamBus, JetStreamOptions, TlsOptions};
pub use kv::{KvBucket, Lease};
pub use raw::{ConsumerLag, KvEntry, PublishReceipt, StoredMessage, StreamStats};
pub use subject::{
    Namespace, ORDER_PARTITIONS, SubjectError, SubjectToken, Subjects, order_partition,
    partition_token,
};
pub use topology::{
    ConsumerDef, Definitions, Discard, KvDef, PartitionsDef, Retention, SerialDef, StreamDef,
    Topology,
};
