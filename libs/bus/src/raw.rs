//! Backend-neutral results: publish receipts, stored messages, stream and consumer state, KV
//! entries.

use bytes::Bytes;

use crate::envelope::RawMessage;
use crate::topology::Retention;

/// What the stream said about a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReceipt {
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence in the stream (the original's sequence for a duplicate).
    pub sequence: u64,
    /// True when the stream already had a message with this id inside its de-duplication
    /// window: nothing new was stored.
    pub duplicate: bool,
    /// True when an earlier attempt of this same publish call timed out or lost its connection
    /// after sending, so the message may have been stored by that attempt: a `duplicate` may
    /// then be this call's own message rather than someone else's.
    pub retried_unconfirmed: bool,
}

/// A message read from a stream by sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its stream sequence.
    pub sequence: u64,
    /// The message.
    pub message: RawMessage,
}

/// A stream's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// Messages stored.
    pub messages: u64,
    /// Bytes stored (as the backend counts them).
    pub bytes: u64,
    /// Sequence of the oldest stored message (0 when empty).
    pub first_sequence: u64,
    /// Sequence of the newest message ever stored.
    pub last_sequence: u64,
}

/// A consumer's backlog, for metrics and autoscaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsumerLag {
    /// Messages matching the consumer not yet delivered.
    pub pending: u64,
    /// Delivered, not yet acknowledged (in progress or waiting for redelivery).
    pub ack_pending: u64,
    /// Of those awaiting ack, how many have been delivered more than once.
    pub redelivered: u64,
    /// Pull requests waiting at the server (JetStream only; 0 on the embedded bus).
    pub waiting: u64,
}

/// What a consumer has handed out so far (for a partition's takeover).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HandedOut {
    /// The highest stream sequence delivered at least once.
    pub last_delivered: u64,
    /// Deliveries awaiting their ack (in progress at some replica, or waiting to come back).
    pub ack_pending: u64,
}

impl ConsumerLag {
    /// The lag KEDA's `nats-jetstream` scaler computes: `pending + ack_pending`.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.pending + self.ack_pending
    }
}

/// A live KV value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// Its revision (pass it to conditional updates and deletes).
    pub revision: u64,
}

/// What the consume loop needs to know of a stream before serving a consumer on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamShape {
    pub(crate) retention: Retention,
    /// Single messages can be read with JetStream's direct get (`allow_direct`).
    pub(crate) direct_get: bool,
    /// The stream has one copy, so every read sees the latest state.
    pub(crate) single_copy: bool,
}

/// How `Bus::head_sequence` reads a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadRead {
    /// Through the stream's leader (`STREAM.MSG.GET`): always current, but the answer is the
    /// whole message, JSON-wrapped and base64-encoded.
    Leader,
    /// JetStream's direct get: the message as it is, from any replica. On a replicated
    /// stream a follower may lag the leader (miss a message just stored, still hold one just
    /// removed).
    AnyReplica,
}
