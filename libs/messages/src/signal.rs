//! An accepted alert, as the ingest queues it on SIGNALS (`jt.signals.<recorder>`).

use chrono::{DateTime, Utc};
use jt_bus::{Message, SubjectError, Subjects};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One parsed alert for one recorder, queued by the ingest after its checks (known token, valid
/// body, not a duplicate in the same second). The executor's fan-out turns it into one intent per trader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalMessage {
    /// The signal's id, derived from the webhook's de-duplication key: a duplicate delivery
    /// and a redelivery carry the same id.
    pub signal_id: Uuid,
    /// The recorder the webhook token belongs to.
    pub recorder_id: Uuid,
    /// The recorder's owner.
    pub owner_id: Uuid,
    /// When the ingest received the request.
    pub received_at: DateTime<Utc>,
    /// The parsed alert (parsed without `inverse_strategy` and `custom_ticker`: those are
    /// per-trader settings applied by the fan-out).
    pub signal: jt_domain::Signal,
    /// For an alert without `time`: the digest of the webhook token and the exact body
    /// (`jt_alerts::DedupKey::body_digest`). The fan-out records the signal as a `duplicate`
    /// when the recorder has a signal with the same digest received less than 1 s apart — the
    /// copy across a second boundary that the message id (one per second) cannot catch.
    /// Absent from messages of ingests before it existed (then nothing is compared); an older
    /// executor ignores it, so the schema version stays 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_digest: Option<String>,
}

impl SignalMessage {
    /// The signal id for a webhook de-duplication key (the message id).
    #[must_use]
    pub fn id_for(msg_id: &str) -> Uuid {
        crate::derived_id("signal", &[msg_id])
    }
}

impl Message for SignalMessage {
    const TYPE: &'static str = "signal";
    const SCHEMA_VERSION: u32 = 1;

    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        subjects.signal(&self.recorder_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_alerts::{AlertContext, parse_alert};

    #[test]
    fn a_signal_message_round_trips_through_json_exactly() {
        let body = br#"{"action":"buy","ticker":"MNQ1!","contracts":"2","price":21433.25,"position":"long"}"#;
        let signal = parse_alert(body, &AlertContext::default()).unwrap();
        let msg = SignalMessage {
            signal_id: SignalMessage::id_for("k1"),
            recorder_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            received_at: Utc::now(),
            signal,
            body_digest: Some("jt1b-00".into()),
        };
        let json = serde_json::to_vec(&msg).unwrap();
        let back = SignalMessage::decode(1, &json).unwrap();
        assert_eq!(back, msg);
        assert_eq!(back.signal.price.unwrap().to_string(), "21433.25");
    }

    #[test]
    fn a_message_without_a_body_digest_from_an_older_ingest_still_reads() {
        let body = br#"{"action":"buy","ticker":"MNQ1!"}"#;
        let msg = SignalMessage {
            signal_id: SignalMessage::id_for("k1"),
            recorder_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            received_at: Utc::now(),
            signal: parse_alert(body, &AlertContext::default()).unwrap(),
            body_digest: None,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert!(json.get("body_digest").is_none(), "not written when absent");
        let back = SignalMessage::decode(1, &serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn the_signal_id_follows_the_message_id() {
        assert_eq!(SignalMessage::id_for("k1"), SignalMessage::id_for("k1"));
        assert_ne!(SignalMessage::id_for("k1"), SignalMessage::id_for("k2"));
    }
}
