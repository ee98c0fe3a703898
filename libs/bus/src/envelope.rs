//! Typed envelopes: what every message carries besides its payload, and how it travels.
//!
//! The payload is serde JSON in the message body; everything else is a NATS header so tools
//! (`nats stream view`, the dead-letter listing) can read it without knowing the payload type:
//!
//! | header | meaning |
//! |---|---|
//! | `Nats-Msg-Id` | the message id: JetStream de-duplicates on it |
//! | `Jt-Causation-Id` | the id of the message that caused this one (absent for roots) |
//! | `Jt-Created-At` | RFC 3339 UTC, milliseconds, when the producer created it |
//! | `Jt-Type` | the payload type ([`Message::TYPE`]) |
//! | `Jt-Schema-Version` | the payload's schema version ([`Message::SCHEMA_VERSION`]) |
//! | `traceparent`, `tracestate` | the W3C trace context of the producer's span |

use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Serialize, de::DeserializeOwned};

use crate::subject::{SubjectError, Subjects};

/// Header carrying the message id (JetStream's de-duplication key).
pub const HEADER_MESSAGE_ID: &str = "Nats-Msg-Id";
/// Header carrying the causing message's id.
pub const HEADER_CAUSATION_ID: &str = "Jt-Causation-Id";
/// Header carrying the creation time.
pub const HEADER_CREATED_AT: &str = "Jt-Created-At";
/// Header carrying the payload type.
pub const HEADER_TYPE: &str = "Jt-Type";
/// Header carrying the payload's schema version.
pub const HEADER_SCHEMA_VERSION: &str = "Jt-Schema-Version";
/// W3C trace context: the parent span.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// W3C trace context: vendor state.
pub const HEADER_TRACESTATE: &str = "tracestate";

/// Message headers in order; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing earlier values.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.0.push((name, value.into()));
    }

    /// The last value of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// All pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Total size in bytes of names and values (for stream byte limits).
    #[must_use]
    pub fn byte_len(&self) -> usize {
        self.0.iter().map(|(n, v)| n.len() + v.len()).sum()
    }
}

impl FromIterator<(String, String)> for Headers {
    fn from_iter<T: IntoIterator<Item = (String, String)>>(iter: T) -> Self {
        let mut h = Headers::new();
        for (n, v) in iter {
            h.0.push((n, v));
        }
        h
    }
}

/// A message as it travels: subject, headers, body. Backend-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The subject it was published on.
    pub subject: String,
    /// Its headers.
    pub headers: Headers,
    /// Its body.
    pub payload: Bytes,
}

impl RawMessage {
    /// The message id header, if any.
    #[must_use]
    pub fn message_id(&self) -> Option<&str> {
        self.headers.get(HEADER_MESSAGE_ID)
    }
}

/// A message id: the de-duplication key, derived by the producer from the message's content
/// (never random, or a retried publish would not be recognised).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    /// The longest id accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates a content-derived key as a message id.
    ///
    /// # Errors
    /// [`EnvelopeError::BadMessageId`] unless `key` is 1–256 printable ASCII characters without
    /// spaces (it travels in a header).
    pub fn new(key: impl Into<String>) -> Result<Self, EnvelopeError> {
        let key = key.into();
        let ok = !key.is_empty()
            && key.len() <= Self::MAX_LEN
            && key.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(key))
        } else {
            Err(EnvelopeError::BadMessageId(key))
        }
    }

    /// Joins content parts with `:` into an id, e.g. `["intent", signal_id, account]`.
    ///
    /// # Errors
    /// As [`MessageId::new`].
    pub fn from_parts(parts: &[&str]) -> Result<Self, EnvelopeError> {
        Self::new(parts.join(":"))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// W3C trace context carried in `traceparent` / `tracestate` headers.
///
/// `jt_runtime::telemetry::inject_context()` produces the pairs [`TraceContext::from_pairs`]
/// takes, and `extract_context` takes what [`TraceContext::to_pairs`] gives back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent`, e.g. `00-<trace-id>-<span-id>-01`.
    pub traceparent: Option<String>,
    /// `tracestate`, vendor-specific.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Picks `traceparent` / `tracestate` out of header pairs.
    #[must_use]
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let find = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Self {
            traceparent: find(HEADER_TRACEPARENT),
            tracestate: find(HEADER_TRACESTATE),
        }
    }

    /// The header pairs, empty when there is no context.
    #[must_use]
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(p) = &self.traceparent {
            out.push((HEADER_TRACEPARENT.to_owned(), p.clone()));
        }
        if let Some(s) = &self.tracestate {
            out.push((HEADER_TRACESTATE.to_owned(), s.clone()));
        }
        out
    }
}

/// A payload type that travels on the bus.
///
/// The type names itself ([`Message::TYPE`]), declares the schema version it writes, says which
/// subject an instance goes to, and decides which versions it can read.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// A stable name for the payload type, e.g. `order-intent`.
    const TYPE: &'static str;
    /// The schema version this code writes. Bump it on an incompatible change and teach
    /// [`Message::decode`] to read the old one (or let old messages go to dead letter).
    const SCHEMA_VERSION: u32;

    /// The subject this message is published on.
    ///
    /// # Errors
    /// When an id in the payload cannot be a subject token (empty or too long).
    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError>;

    /// Reads a payload written with `schema_version`. The default reads only
    /// [`Message::SCHEMA_VERSION`].
    ///
    /// # Errors
    /// [`DecodeError::UnknownSchemaVersion`] for any other version, [`DecodeError::Payload`]
    /// when the JSON does not fit the type.
    fn decode(schema_version: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        if schema_version != Self::SCHEMA_VERSION {
            return Err(DecodeError::UnknownSchemaVersion {
                message_type: Self::TYPE,
                found: schema_version,
                supported: Self::SCHEMA_VERSION,
            });
        }
        serde_json::from_slice(payload).map_err(|e| DecodeError::Payload(e.to_string()))
    }

    /// Reads a stored message into an envelope of this type (what a consumer calls). The
    /// default checks the type and schema headers ([`Envelope::decode`]); a type that reads
    /// stored messages of any type — a dead letter, [`crate::dead_letter::Letter`] — overrides
    /// it.
    ///
    /// # Errors
    /// As [`Envelope::decode`].
    fn read_envelope(raw: &RawMessage) -> Result<Envelope<Self>, DecodeError> {
        Envelope::decode(raw)
    }
}

/// A typed message with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<M> {
    /// The content-derived id (JetStream de-duplication key).
    pub id: MessageId,
    /// The id of the message that caused this one.
    pub causation_id: Option<MessageId>,
    /// When the producer created it (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// The producer's trace context.
    pub trace: TraceContext,
    /// The payload.
    pub payload: M,
}

impl<M: Message> Envelope<M> {
    /// An envelope created now, without causation or trace context.
    #[must_use]
    pub fn new(id: MessageId, payload: M) -> Self {
        Self {
            id,
            causation_id: None,
            created_at: now_millis(),
            trace: TraceContext::default(),
            payload,
        }
    }

    /// Marks this message as caused by `parent` (and continues its trace).
    #[must_use]
    pub fn caused_by<P>(mut self, parent: &Envelope<P>) -> Self {
        self.causation_id = Some(parent.id.clone());
        if self.trace == TraceContext::default() {
            self.trace = parent.trace.clone();
        }
        self
    }

    /// Sets the trace context (usually from `jt_runtime::telemetry::inject_context()`).
    #[must_use]
    pub fn with_trace(mut self, trace: TraceContext) -> Self {
        self.trace = trace;
        self
    }

    /// Encodes the envelope for publishing.
    ///
    /// # Errors
    /// [`EnvelopeError::Subject`] when the payload's subject cannot be built,
    /// [`EnvelopeError::Serialize`] when the payload does not serialise.
    pub fn encode(&self, subjects: &Subjects) -> Result<RawMessage, EnvelopeError> {
        let subject = self.payload.subject(subjects)?;
        let payload = serde_json::to_vec(&self.payload)
            .map_err(|e| EnvelopeError::Serialize(e.to_string()))?;
        let mut headers = Headers::new();
        headers.insert(HEADER_MESSAGE_ID, self.id.as_str());
        if let Some(c) = &self.causation_id {
            headers.insert(HEADER_CAUSATION_ID, c.as_str());
        }
        headers.insert(
            HEADER_CREATED_AT,
            self.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        );
        headers.insert(HEADER_TYPE, M::TYPE);
        headers.insert(HEADER_SCHEMA_VERSION, M::SCHEMA_VERSION.to_string());
        for (n, v) in self.trace.to_pairs() {
            headers.insert(n, v);
        }
        Ok(RawMessage {
            subject,
            headers,
            payload: Bytes::from(payload),
        })
    }

    /// Decodes a received message.
    ///
    /// # Errors
    /// A [`DecodeError`] naming what is missing or wrong: such a message goes to dead letter.
    pub fn decode(raw: &RawMessage) -> Result<Self, DecodeError> {
        let h = &raw.headers;
        let required = |name: &'static str| h.get(name).ok_or(DecodeError::MissingHeader(name));
        let found_type = required(HEADER_TYPE)?;
        if found_type != M::TYPE {
            return Err(DecodeError::WrongType {
                expected: M::TYPE,
                found: found_type.to_owned(),
            });
        }
        let version_text = required(HEADER_SCHEMA_VERSION)?;
        let version: u32 = version_text.parse().map_err(|_| DecodeError::BadHeader {
            name: HEADER_SCHEMA_VERSION,
            value: version_text.to_owned(),
        })?;
        let id =
            MessageId::new(required(HEADER_MESSAGE_ID)?).map_err(|_| DecodeError::BadHeader {
                name: HEADER_MESSAGE_ID,
                value: String::new(),
            })?;
        let causation_id = h
            .get(HEADER_CAUSATION_ID)
            .map(|c| {
                MessageId::new(c).map_err(|_| DecodeError::BadHeader {
                    name: HEADER_CAUSATION_ID,
                    value: c.to_owned(),
                })
            })
            .transpose()?;
        let created_text = required(HEADER_CREATED_AT)?;
        let created_at = DateTime::parse_from_rfc3339(created_text)
            .map_err(|_| DecodeError::BadHeader {
                name: HEADER_CREATED_AT,
                value: created_text.to_owned(),
            })?
            .with_timezone(&Utc);
        let trace = TraceContext {
            traceparent: h.get(HEADER_TRACEPARENT).map(str::to_owned),
            tracestate: h.get(HEADER_TRACESTATE).map(str::to_owned),
        };
        let payload = M::decode(version, &raw.payload)?;
        Ok(Self {
            id,
            causation_id,
            created_at,
            trace,
            payload,
        })
    }
}

fn now_millis() -> DateTime<Utc> {
    let ms = Utc::now().timestamp_millis();
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
}

/// Errors building an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The message id is unusable.
    #[error(
        "message id `{0}` must be 1-256 printable ASCII characters without spaces, derived from the content"
    )]
    BadMessageId(String),
    /// The payload's subject could not be built.
    #[error("cannot build the subject: {0}")]
    Subject(#[from] SubjectError),
    /// The payload did not serialise.
    #[error("payload does not serialise to JSON: {0}")]
    Serialize(String),
}

/// Why a received message could not be read. The consumer sends it to dead letter with this
/// reason instead of crashing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required header is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header has an unreadable value.
    #[error("header {name} has an unreadable value `{value}`")]
    BadHeader {
        /// The header.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The message is of another type than this consumer reads.
    #[error("message type `{found}` where `{expected}` was expected")]
    WrongType {
        /// What the consumer reads.
        expected: &'static str,
        /// What arrived.
        found: String,
    },
    /// The payload's schema version is not one this code reads.
    #[error(
        "unknown schema version {found} for `{message_type}` (this code reads version {supported})"
    )]
    UnknownSchemaVersion {
        /// The payload type.
        message_type: &'static str,
        /// The version that arrived.
        found: u32,
        /// The version this code reads.
        supported: u32,
    },
    /// The JSON body does not fit the payload type.
    #[error("payload does not decode: {0}")]
    Payload(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::Namespace;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Ping {
        account: String,
        n: u32,
    }

    impl Message for Ping {
        const TYPE: &'static str = "ping";
        const SCHEMA_VERSION: u32 = 2;
        fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
            subjects.order(&self.account)
        }
    }

    fn subjects() -> Subjects {
        Namespace::production().subjects()
    }

    #[test]
    fn round_trips_every_field() {
        let parent = Envelope::new(
            MessageId::new("sig:1").unwrap(),
            Ping {
                account: "a".into(),
                n: 0,
            },
        )
        .with_trace(TraceContext {
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tracestate: Some("jt=1".into()),
        });
        let child = Envelope::new(
            MessageId::from_parts(&["intent", "sig:1", "a.b"]).unwrap(),
            Ping {
                account: "a.b".into(),
                n: 7,
            },
        )
        .caused_by(&parent);
        let raw = child.encode(&subjects()).unwrap();
        let partition = crate::subject::partition_token(crate::subject::order_partition("a=2Eb"));
        assert_eq!(raw.subject, format!("jt.orders.{partition}.a=2Eb"));
        assert_eq!(raw.message_id(), Some("intent:sig:1:a.b"));
        assert_eq!(raw.headers.get("jt-schema-version"), Some("2"));
        let back = Envelope::<Ping>::decode(&raw).unwrap();
        assert_eq!(back, child);
        assert_eq!(back.trace, parent.trace);
        assert_eq!(back.causation_id.as_ref(), Some(&parent.id));
    }

    #[test]
    fn an_unknown_schema_version_is_a_reason_not_a_panic() {
        let mut raw = Envelope::new(
            MessageId::new("x").unwrap(),
            Ping {
                account: "a".into(),
                n: 1,
            },
        )
        .encode(&subjects())
        .unwrap();
        raw.headers.insert(HEADER_SCHEMA_VERSION, "3");
        let err = Envelope::<Ping>::decode(&raw).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownSchemaVersion {
                message_type: "ping",
                found: 3,
                supported: 2
            }
        );
        assert!(err.to_string().contains("unknown schema version 3"));
    }

    #[test]
    fn undecodable_messages_name_what_is_wrong() {
        let good = Envelope::new(
            MessageId::new("x").unwrap(),
            Ping {
                account: "a".into(),
                n: 1,
            },
        )
        .encode(&subjects())
        .unwrap();
        let mut no_type = good.clone();
        no_type.headers.remove(HEADER_TYPE);
        assert_eq!(
            Envelope::<Ping>::decode(&no_type).unwrap_err(),
            DecodeError::MissingHeader(HEADER_TYPE)
        );
        let mut other = good.clone();
        other.headers.insert(HEADER_TYPE, "pong");
        assert!(matches!(
            Envelope::<Ping>::decode(&other),
            Err(DecodeError::WrongType { .. })
        ));
        let mut garbage = good.clone();
        garbage.payload = Bytes::from_static(b"{not json");
        assert!(matches!(
            Envelope::<Ping>::decode(&garbage),
            Err(DecodeError::Payload(_))
        ));
        let mut bad_time = good;
        bad_time.headers.insert(HEADER_CREATED_AT, "yesterday");
        assert!(matches!(
            Envelope::<Ping>::decode(&bad_time),
            Err(DecodeError::BadHeader { .. })
        ));
    }

    #[test]
    fn message_ids_must_be_printable_and_bounded() {
        assert!(MessageId::new("").is_err());
        assert!(MessageId::new("has space").is_err());
        assert!(MessageId::new("line\nbreak").is_err());
        assert!(MessageId::new("x".repeat(257)).is_err());
        assert!(MessageId::new("sig:rec:2026-11-21T10:00:00Z:abc").is_ok());
    }

    #[test]
    fn trace_pairs_round_trip() {
        let pairs = vec![
            ("traceparent".to_owned(), "00-a-b-01".to_owned()),
            ("tracestate".to_owned(), "k=v".to_owned()),
        ];
        assert_eq!(TraceContext::from_pairs(&pairs).to_pairs(), pairs);
        assert!(TraceContext::default().to_pairs().is_empty());
    }
}
