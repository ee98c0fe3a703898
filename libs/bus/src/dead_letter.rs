//! Dead letters: messages a consumer gave up on, kept with the reason and inspectable.
//!
//! A dead letter is the original body published on `jt.dlq.<stream>.<consumer>` with the
//! original headers (except the `Nats-*` ones) and `Jt-Dlq-*` headers saying where it came
//! from and why. Its message id is `dlq:<stream>:<consumer>:<sequence>`, so dead-lettering the
//! same delivery twice (a crash between the publish and the ack) stores it once.
//!
//! A consumer of the dead-letter stream reads them as [`Letter`]s: where each came from, why,
//! and what the original was (type, id, subject) without its body.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{
    DecodeError, Envelope, HEADER_MESSAGE_ID, HEADER_TYPE, Headers, Message, MessageId, RawMessage,
    TraceContext,
};
use crate::raw::StoredMessage;
use crate::subject::{SubjectError, Subjects};

/// Why it was given up on.
pub const HEADER_REASON: &str = "Jt-Dlq-Reason";
/// The stream it was read from.
pub const HEADER_STREAM: &str = "Jt-Dlq-Stream";
/// The consumer that gave up.
pub const HEADER_CONSUMER: &str = "Jt-Dlq-Consumer";
/// Its original subject.
pub const HEADER_SUBJECT: &str = "Jt-Dlq-Subject";
/// Its sequence in the original stream.
pub const HEADER_SEQUENCE: &str = "Jt-Dlq-Sequence";
/// Attempts made.
pub const HEADER_ATTEMPTS: &str = "Jt-Dlq-Attempts";
/// Its original message id.
pub const HEADER_ORIGINAL_ID: &str = "Jt-Dlq-Message-Id";
/// When it was dead-lettered.
pub const HEADER_AT: &str = "Jt-Dlq-At";

const MAX_REASON_LEN: usize = 1024;

/// Where a dead letter came from and why.
pub(crate) struct Origin<'a> {
    pub stream: &'a str,
    pub consumer: &'a str,
    pub sequence: u64,
    pub attempts: u32,
    pub reason: &'a str,
}

/// Builds the dead letter of `original` for publishing on `subject`.
pub(crate) fn build(subject: &str, original: &RawMessage, origin: &Origin<'_>) -> RawMessage {
    let mut headers = Headers::new();
    for (n, v) in original.headers.iter() {
        if !n.to_ascii_lowercase().starts_with("nats-")
            && !n.to_ascii_lowercase().starts_with("jt-dlq-")
        {
            headers.insert(n, v);
        }
    }
    headers.insert(
        HEADER_MESSAGE_ID,
        format!(
            "dlq:{}:{}:{}",
            origin.stream, origin.consumer, origin.sequence
        ),
    );
    headers.insert(HEADER_REASON, header_safe(origin.reason));
    headers.insert(HEADER_STREAM, origin.stream);
    headers.insert(HEADER_CONSUMER, origin.consumer);
    headers.insert(HEADER_SUBJECT, original.subject.as_str());
    headers.insert(HEADER_SEQUENCE, origin.sequence.to_string());
    headers.insert(HEADER_ATTEMPTS, origin.attempts.to_string());
    if let Some(id) = original.message_id() {
        headers.insert(HEADER_ORIGINAL_ID, id);
    }
    headers.insert(
        HEADER_AT,
        Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    RawMessage {
        subject: subject.to_owned(),
        headers,
        payload: original.payload.clone(),
    }
}

/// Header values cannot hold line breaks, and the reason should stay readable in a listing.
fn header_safe(reason: &str) -> String {
    let mut s: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned();
    if s.len() > MAX_REASON_LEN {
        let mut cut = MAX_REASON_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    if s.is_empty() {
        "unspecified".to_owned()
    } else {
        s
    }
}

/// A dead letter as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream (the cursor for paging and requeueing).
    pub sequence: u64,
    /// The stream it was read from.
    pub stream: String,
    /// The consumer that gave up.
    pub consumer: String,
    /// Why.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// Its sequence in the original stream.
    pub original_sequence: u64,
    /// When it was dead-lettered.
    pub dead_at: Option<DateTime<Utc>>,
    /// The original message: subject, headers (with its message id restored) and body.
    pub original: RawMessage,
}

impl DeadLetter {
    /// Reads a stored dead letter.
    #[must_use]
    pub fn from_stored(stored: &StoredMessage) -> Self {
        let h = &stored.message.headers;
        let text = |name: &str| h.get(name).unwrap_or_default().to_owned();
        let mut original_headers = Headers::new();
        for (n, v) in h.iter() {
            let lower = n.to_ascii_lowercase();
            if !lower.starts_with("jt-dlq-") && !lower.starts_with("nats-") {
                original_headers.insert(n, v);
            }
        }
        if let Some(id) = h.get(HEADER_ORIGINAL_ID) {
            original_headers.insert(HEADER_MESSAGE_ID, id);
        }
        Self {
            sequence: stored.sequence,
            stream: text(HEADER_STREAM),
            consumer: text(HEADER_CONSUMER),
            reason: text(HEADER_REASON),
            attempts: h
                .get(HEADER_ATTEMPTS)
                .and_then(|a| a.parse().ok())
                .unwrap_or_default(),
            original_sequence: h
                .get(HEADER_SEQUENCE)
                .and_then(|s| s.parse().ok())
                .unwrap_or_default(),
            dead_at: h
                .get(HEADER_AT)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            original: RawMessage {
                subject: text(HEADER_SUBJECT),
                headers: original_headers,
                payload: stored.message.payload.clone(),
            },
        }
    }
}

/// A dead letter as a consumer of the dead-letter stream reads it: its `Jt-Dlq-*` headers and
/// the original's type, id and subject. The body is not read: whatever the original was, a
/// letter decodes (its envelope id is the letter's own, `dlq:<stream>:<consumer>:<sequence>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    /// The stream the original was read from.
    pub stream: String,
    /// The consumer that gave up.
    pub consumer: String,
    /// Why.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// The original's sequence in its stream.
    pub original_sequence: u64,
    /// The original's subject (its tokens name the recorder or sub-account).
    pub original_subject: String,
    /// The original's payload type (`order-intent`, …), if it had one.
    pub original_type: Option<String>,
    /// The original's message id, if it had one.
    pub original_id: Option<String>,
}

impl Message for Letter {
    const TYPE: &'static str = "dead-letter";
    const SCHEMA_VERSION: u32 = 1;

    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        Ok(subjects.dead_letter(&self.stream, &self.consumer))
    }

    fn read_envelope(raw: &RawMessage) -> Result<Envelope<Self>, DecodeError> {
        let h = &raw.headers;
        let required = |name: &'static str| h.get(name).ok_or(DecodeError::MissingHeader(name));
        let number = |name: &'static str| -> Result<u64, DecodeError> {
            let text = required(name)?;
            text.parse().map_err(|_| DecodeError::BadHeader {
                name,
                value: text.to_owned(),
            })
        };
        let id_text = required(HEADER_MESSAGE_ID)?;
        let id = MessageId::new(id_text).map_err(|_| DecodeError::BadHeader {
            name: HEADER_MESSAGE_ID,
            value: id_text.to_owned(),
        })?;
        let letter = Self {
            stream: required(HEADER_STREAM)?.to_owned(),
            consumer: required(HEADER_CONSUMER)?.to_owned(),
            reason: h.get(HEADER_REASON).unwrap_or("unspecified").to_owned(),
            attempts: u32::try_from(number(HEADER_ATTEMPTS)?).unwrap_or(u32::MAX),
            original_sequence: number(HEADER_SEQUENCE)?,
            original_subject: h.get(HEADER_SUBJECT).unwrap_or_default().to_owned(),
            original_type: h.get(HEADER_TYPE).map(str::to_owned),
            original_id: h.get(HEADER_ORIGINAL_ID).map(str::to_owned),
        };
        Ok(Envelope {
            id,
            causation_id: None,
            created_at: h
                .get(HEADER_AT)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
            trace: TraceContext::default(),
            payload: letter,
        })
    }
}

/// Which dead letters to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterQuery {
    /// Only those from this stream.
    pub stream: Option<String>,
    /// Only those from this consumer.
    pub consumer: Option<String>,
    /// Only those after this dead-letter sequence (0 from the start; pass the last sequence
    /// of a page to get the next one).
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

impl Default for DeadLetterQuery {
    fn default() -> Self {
        Self {
            stream: None,
            consumer: None,
            after: 0,
            limit: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_dead_letter_keeps_the_original_and_says_why() {
        let mut headers = Headers::new();
        headers.insert(HEADER_MESSAGE_ID, "intent:1");
        headers.insert("Jt-Type", "order-intent");
        headers.insert("Nats-Expected-Stream", "ORDERS");
        let original = RawMessage {
            subject: "jt.orders.7".into(),
            headers,
            payload: Bytes::from_static(b"{\"qty\":1}"),
        };
        let origin = Origin {
            stream: "ORDERS",
            consumer: "execute",
            sequence: 42,
            attempts: 5,
            reason: "broker said no\r\nsecond line",
        };
        let dl = build("jt.dlq.ORDERS.execute", &original, &origin);
        assert_eq!(dl.message_id(), Some("dlq:ORDERS:execute:42"));
        assert_eq!(
            dl.headers.get(HEADER_REASON),
            Some("broker said no  second line")
        );
        assert_eq!(dl.headers.get("Nats-Expected-Stream"), None);
        let read = DeadLetter::from_stored(&StoredMessage {
            sequence: 3,
            message: dl,
        });
        assert_eq!(read.sequence, 3);
        assert_eq!(
            (read.stream.as_str(), read.consumer.as_str()),
            ("ORDERS", "execute")
        );
        assert_eq!((read.attempts, read.original_sequence), (5, 42));
        assert!(read.dead_at.is_some());
        assert_eq!(read.original.subject, "jt.orders.7");
        assert_eq!(read.original.message_id(), Some("intent:1"));
        assert_eq!(read.original.headers.get("Jt-Type"), Some("order-intent"));
        assert_eq!(read.original.payload, original.payload);
    }

    #[test]
    fn a_letter_reads_whatever_the_original_was_without_its_body() {
        let mut headers = Headers::new();
        headers.insert(HEADER_MESSAGE_ID, "intent:9");
        headers.insert(HEADER_TYPE, "order-intent");
        let original = RawMessage {
            subject: "jt.orders.s1".into(),
            headers,
            payload: Bytes::from_static(b"{\"secret\":\"x\"}"),
        };
        let origin = Origin {
            stream: "ORDERS",
            consumer: "execute",
            sequence: 7,
            attempts: 3,
            reason: "refused",
        };
        let dl = build("jt.dlq.ORDERS.execute", &original, &origin);
        let read = Letter::read_envelope(&dl).unwrap();
        assert_eq!(read.id.as_str(), "dlq:ORDERS:execute:7");
        let l = read.payload;
        assert_eq!(
            (l.stream.as_str(), l.consumer.as_str()),
            ("ORDERS", "execute")
        );
        assert_eq!((l.attempts, l.original_sequence), (3, 7));
        assert_eq!(l.reason, "refused");
        assert_eq!(l.original_subject, "jt.orders.s1");
        assert_eq!(l.original_type.as_deref(), Some("order-intent"));
        assert_eq!(l.original_id.as_deref(), Some("intent:9"));
        // Not a dead letter: refused by name.
        let e = Letter::read_envelope(&original).unwrap_err();
        assert!(e.to_string().contains(HEADER_STREAM), "{e}");
    }

    #[test]
    fn reasons_are_bounded_and_never_empty() {
        assert_eq!(header_safe("  "), "unspecified");
        let long = "é".repeat(2000);
        assert!(header_safe(&long).len() <= MAX_REASON_LEN + '…'.len_utf8());
    }
}
