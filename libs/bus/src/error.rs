//! The bus's errors, each saying what the caller should do.

use std::time::Duration;

use crate::envelope::EnvelopeError;

/// Publishing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The message could not be built (bad id, subject or payload): a bug in the caller.
    #[error("cannot publish: {0}")]
    Envelope(#[from] EnvelopeError),
    /// No stream captures the subject: provision the topology first.
    #[error("no stream captures subject {subject}: provision the topology before publishing")]
    NoStream {
        /// The subject.
        subject: String,
    },
    /// The stream refused the message (full with discard-new, too large, …). Publishing the same
    /// message again will fail the same way until an operator acts.
    #[error("stream refused message {message_id} on {subject}: {reason}")]
    Rejected {
        /// The message id.
        message_id: String,
        /// The subject.
        subject: String,
        /// The server's reason.
        reason: String,
    },
    /// No acknowledgement arrived before the publish deadline: the message may or may not be
    /// stored. Publish again **with the same message id** (de-duplication makes that safe within
    /// the stream's window); never with a new id.
    #[error(
        "publish of {message_id} on {subject} unconfirmed after {waited:?} ({last_error}); outcome unknown, publish again with the same id"
    )]
    Unconfirmed {
        /// The message id.
        message_id: String,
        /// The subject.
        subject: String,
        /// How long the bus kept retrying.
        waited: Duration,
        /// The last error seen.
        last_error: String,
    },
}

/// A KV operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// `create` found a live value: someone else holds the key.
    #[error("key {key} already exists in {bucket}")]
    AlreadyExists {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// A conditional write or delete found another revision: someone else changed the key.
    #[error("key {key} in {bucket} is no longer at revision {expected}")]
    WrongRevision {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: u64,
    },
    /// The key is not a valid KV key (`[-/_=.a-zA-Z0-9]`, no leading or trailing `.`).
    #[error("`{0}` is not a valid KV key; escape ids with SubjectToken")]
    InvalidKey(String),
    /// The bucket does not exist: provision the topology first.
    #[error("KV bucket {0} does not exist: provision the topology first")]
    NoBucket(String),
    /// The server could not be reached or answered with an error; retry later.
    #[error("KV {op} on {bucket} failed: {reason}")]
    Unavailable {
        /// The operation.
        op: &'static str,
        /// The bucket.
        bucket: String,
        /// What went wrong.
        reason: String,
    },
}

/// Connecting, provisioning, consuming and reading state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The NATS server could not be reached at start.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The URL (without credentials).
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The NATS server is older than the features the bus relies on (key-value buckets, several
    /// filter subjects per consumer, direct gets): upgrade it.
    #[error(
        "the NATS server at {url} is version {found}; the bus needs {needed} or newer (key-value \
         buckets, consumers with several filter subjects, direct gets): upgrade the server"
    )]
    UnsupportedServer {
        /// The URL (without credentials).
        url: String,
        /// The version the server reported.
        found: String,
        /// The oldest version that works.
        needed: &'static str,
    },
    /// The definitions are inconsistent: a bug in the code that built them.
    #[error("invalid definitions: {0}")]
    InvalidDefinition(String),
    /// The server refused a definition (e.g. an update it cannot apply to an existing stream).
    #[error("cannot provision {what}: {reason}")]
    Provision {
        /// The stream, consumer or bucket.
        what: String,
        /// The server's reason.
        reason: String,
    },
    /// A stream or consumer does not exist: provision the topology first.
    #[error("{0} does not exist: provision the topology first")]
    NotFound(String),
    /// The server could not be reached or answered with an error; retry later.
    #[error("{op} failed: {reason}")]
    Unavailable {
        /// The operation.
        op: &'static str,
        /// What went wrong.
        reason: String,
    },
}

impl BusError {
    pub(crate) fn unavailable(op: &'static str, reason: impl ToString) -> Self {
        Self::Unavailable {
            op,
            reason: reason.to_string(),
        }
    }
}

impl KvError {
    pub(crate) fn unavailable(op: &'static str, bucket: &str, reason: impl ToString) -> Self {
        Self::Unavailable {
            op,
            bucket: bucket.to_owned(),
            reason: reason.to_string(),
        }
    }
}
