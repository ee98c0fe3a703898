//! De-duplication keys for JetStream's `Nats-Msg-Id` and the fan-out's duplicate check
//! (DOMAIN.md §2).
//!
//! The rules: the same token and a byte-identical body within 1 s is one signal (TradingView
//! sometimes delivers an alert twice, about a millisecond apart); identical bodies 1 s or more
//! apart without a `time` field are separate signals (DCA adds); a body with `time` is the
//! same alert for the whole duplicate window of the SIGNALS stream.
//!
//! Keys come from the content only (never a random id), so a second delivery, a second
//! ingest replica or a retried publish all compute the same key and JetStream drops the copy.
//!
//! * Body with `time`: `msg_id = H(token, body)`. The body carries its own instant, so
//!   identical bytes are the same alert for the whole duplicate window.
//! * Body without `time`: the receive time must be part of the key, in whole seconds:
//!   `msg_id = H(token, body, ⌊t⌋)`. One id per message cannot implement "within 1 s"
//!   exactly: being merged by equal ids is transitive, "less than 1 s apart" is not, so any
//!   bucketing splits some pairs that are 1 ms apart — a duplicate that straddles a second
//!   boundary. The ingest publishes once, under `msg_id` (one acknowledged publish per alert);
//!   a copy in the same second is dropped by JetStream. A copy across a second boundary reaches
//!   the executor's fan-out, which runs serially per recorder and records every signal with
//!   `body_digest = H(token, body)`: one conditional insert records the later one as
//!   `duplicate` (and fans nothing out) when a signal of the recorder with the same digest,
//!   not itself a duplicate, was received less than 1 s before or after it
//!   (`jt_store::repo::signals::Signals::record`). Guarantees (tested below with that rule):
//!   - deliveries less than 1 s apart are always one signal;
//!   - deliveries 1 s or more apart are always separate signals;
//!   - a copy of a copy is compared with the signal that was kept, not with the copy: three
//!     deliveries 0.9 s apart are two signals, as the half-second guard grid this replaced
//!     made them.
//!
//!   A retried publish of the same request reuses the same id and is acknowledged as a
//!   duplicate of its own earlier attempt; the ingest treats that as queued.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub use jt_domain::signal::DUPLICATE_INTERVAL_MS;

/// The JetStream message id of one received alert and, for an alert without `time`, the digest
/// the fan-out compares across a second boundary. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey {
    msg_id: String,
    body_digest: Option<String>,
}

impl DedupKey {
    /// The key of `body` received for `token` at `received_at`; `has_time` says whether the
    /// parsed alert carries its own `time` ([`crate::Signal::time`] is `Some`).
    #[must_use]
    pub fn new(token: &str, body: &[u8], has_time: bool, received_at: DateTime<Utc>) -> Self {
        if has_time {
            return DedupKey {
                msg_id: digest("jt1t", token, body, None),
                body_digest: None,
            };
        }
        let second = received_at
            .timestamp_millis()
            .div_euclid(DUPLICATE_INTERVAL_MS);
        DedupKey {
            msg_id: digest("jt1s", token, body, Some(second)),
            body_digest: Some(digest("jt1b", token, body, None)),
        }
    }

    /// The key of a parsed `signal`'s delivery: `body` as received for `token` at
    /// `received_at`.
    #[must_use]
    pub fn for_signal(
        signal: &crate::Signal,
        token: &str,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Self {
        Self::new(token, body, signal.time.is_some(), received_at)
    }

    /// The `Nats-Msg-Id` of the signal message.
    #[must_use]
    pub fn msg_id(&self) -> &str {
        &self.msg_id
    }

    /// For an alert without `time`: the digest of token and body (no time) that the fan-out
    /// compares with the recorder's signals of the surrounding second
    /// (`SignalMessage::body_digest`).
    #[must_use]
    pub fn body_digest(&self) -> Option<&str> {
        self.body_digest.as_deref()
    }

    /// The digest, owned (for the message that carries it).
    #[must_use]
    pub fn into_body_digest(self) -> Option<String> {
        self.body_digest
    }
}

/// `tag-<hex SHA-256>` over the tag, the length-prefixed token and body, and the bucket.
fn digest(tag: &str, token: &str, body: &[u8], bucket: Option<i64>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tag.as_bytes());
    hasher.update((token.len() as u64).to_be_bytes());
    hasher.update(token.as_bytes());
    hasher.update((body.len() as u64).to_be_bytes());
    hasher.update(body);
    if let Some(bucket) = bucket {
        hasher.update(bucket.to_be_bytes());
    }
    format!("{tag}-{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: &str = "tok_3f9a";
    const BODY: &[u8] = br#"{"action":"buy","ticker":"MNQ1!","contracts":1}"#;

    fn at_ms(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    /// 2026-01-05T14:30:00.000Z, on a whole second.
    const T0: i64 = 1_767_623_400_000;

    fn untimed(ms: i64) -> DedupKey {
        DedupKey::new(TOKEN, BODY, false, at_ms(ms))
    }

    /// The whole protocol over deliveries of one body at `times` (ms, in arrival order): the
    /// ingest publishes under `msg_id` (JetStream drops a repeated id), the fan-out records a
    /// published one as a duplicate when a kept signal with its digest is less than 1 s away
    /// (the conditional insert of `Signals::record`). The receive times of the kept signals.
    fn kept(times: &[i64]) -> Vec<i64> {
        let mut published: Vec<DedupKey> = Vec::new();
        let mut kept: Vec<(i64, DedupKey)> = Vec::new();
        for &t in times {
            let key = untimed(t);
            if published.iter().any(|p| p.msg_id() == key.msg_id()) {
                continue;
            }
            published.push(key.clone());
            let duplicate = kept.iter().any(|(at, k)| {
                k.body_digest().is_some()
                    && k.body_digest() == key.body_digest()
                    && (t - at).abs() < DUPLICATE_INTERVAL_MS
            });
            if !duplicate {
                kept.push((t, key));
            }
        }
        kept.into_iter().map(|(t, _)| t).collect()
    }

    fn one_signal(a: i64, b: i64) -> bool {
        kept(&[a, b]).len() == 1
    }

    #[test]
    fn same_token_and_identical_body_in_the_same_second_is_one_message_id() {
        assert_eq!(untimed(T0 + 100), untimed(T0 + 101));
        assert_eq!(untimed(T0), untimed(T0 + 999));
    }

    #[test]
    fn a_duplicate_straddling_a_second_boundary_is_caught_by_the_digest() {
        let first = untimed(T0 - 1); // …:59.999
        let second = untimed(T0); // …:00.000
        assert_ne!(first.msg_id(), second.msg_id(), "different second buckets");
        assert_eq!(first.body_digest(), second.body_digest());
        assert!(one_signal(T0 - 1, T0));
        assert!(one_signal(T0 - 100, T0 + 100));
    }

    #[test]
    fn deliveries_less_than_a_second_apart_are_one_signal_wherever_they_fall() {
        for start in (0..2_000).step_by(7) {
            for gap in [0, 1, 2, 50, 250, 499, 500, 750, 999] {
                assert!(
                    one_signal(T0 + start, T0 + start + gap),
                    "start {start} ms, gap {gap} ms"
                );
            }
        }
    }

    #[test]
    fn identical_bodies_a_second_or_more_apart_are_separate_signals() {
        for start in (0..2_000).step_by(7) {
            for gap in [1_000, 1_001, 1_500, 2_000, 60_000] {
                assert!(
                    !one_signal(T0 + start, T0 + start + gap),
                    "start {start} ms, gap {gap} ms"
                );
            }
        }
    }

    #[test]
    fn a_copy_of_a_copy_is_compared_with_the_signal_kept() {
        // 0.9 s apart each: the second is a copy of the first; the third is 1.8 s after the
        // kept one, so it is a signal of its own.
        assert_eq!(kept(&[T0, T0 + 900, T0 + 1_800]), [T0, T0 + 1_800]);
    }

    #[test]
    fn a_body_with_time_is_the_same_alert_for_the_whole_duplicate_window() {
        let a = DedupKey::new(TOKEN, BODY, true, at_ms(T0));
        let b = DedupKey::new(TOKEN, BODY, true, at_ms(T0 + 119_000));
        assert_eq!(a, b);
        assert_eq!(a.body_digest(), None, "its message id is enough");
        assert_ne!(a.msg_id(), untimed(T0).msg_id());
    }

    #[test]
    fn token_and_every_body_byte_are_part_of_the_key() {
        let base = untimed(T0);
        let other_token = DedupKey::new("other", BODY, false, at_ms(T0));
        assert_ne!(other_token.msg_id(), base.msg_id());
        assert_ne!(other_token.body_digest(), base.body_digest());
        let mut body = BODY.to_vec();
        body.push(b' ');
        let other_body = DedupKey::new(TOKEN, &body, false, at_ms(T0));
        assert_ne!(other_body.msg_id(), base.msg_id());
        assert_ne!(other_body.body_digest(), base.body_digest());
        // Length prefixes keep token/body boundaries apart.
        assert_ne!(
            DedupKey::new("ab", b"c", true, at_ms(T0)),
            DedupKey::new("a", b"bc", true, at_ms(T0))
        );
    }

    #[test]
    fn keys_are_deterministic_printable_ids() {
        let key = untimed(T0);
        assert_eq!(key, untimed(T0));
        assert!(key.msg_id().starts_with("jt1s-"));
        assert_eq!(key.msg_id().len(), 5 + 64);
        let digest = key.body_digest().unwrap();
        assert!(digest.starts_with("jt1b-"));
        assert_eq!(digest.len(), 5 + 64);
        assert_eq!(
            untimed(T0 + 5_000).body_digest(),
            Some(digest),
            "no time in it"
        );
        assert!(key.msg_id().bytes().all(|b| b.is_ascii_graphic()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn pairs_under_a_second_merge_and_pairs_of_a_second_or_more_never_do(
            start in -10_000_000_000_000_i64..10_000_000_000_000,
            gap in 0_i64..5_000,
        ) {
            prop_assert_eq!(one_signal(start, start + gap), gap < DUPLICATE_INTERVAL_MS);
        }
    }
}
