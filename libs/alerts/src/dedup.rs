//! De-duplication keys for JetStream's `Nats-Msg-Id` (DOMAIN.md §2).
//!
//! The rules: the same token and a byte-identical body within 1 s is one signal (TradingView
//! sometimes delivers an alert twice, about a millisecond apart); identical bodies more than
//! 1 s apart without a `time` field are separate signals (DCA adds); a body with `time` is the
//! same alert for the whole duplicate window of the SIGNALS stream.
//!
//! Keys come from the content only (never a random id), so a second delivery, a second
//! ingest replica or a retried publish all compute the same key and JetStream drops the copy.
//!
//! * Body with `time`: `msg_id = H(token, body)`. The body carries its own instant, so
//!   identical bytes are the same alert for the whole duplicate window.
//! * Body without `time`: the receive time must be part of the key, in whole seconds.
//!   One id per message cannot implement "within 1 s" exactly: being merged by equal ids is
//!   transitive, "less than 1 s apart" is not, so any bucketing splits some pairs that are
//!   1 ms apart — a duplicate that straddles a bucket boundary. We therefore use two ids on
//!   two grids of 1-second buckets offset by half a second:
//!   `msg_id = H(token, body, ⌊t⌋)` and `guard_id = H(token, body, ⌊t + 0.5 s⌋)`.
//!   The ingest first publishes an empty guard message with `guard_id` (on a subject the
//!   executor does not consume, in a stream with the same duplicate window), then the signal
//!   with `msg_id`; the alert is a duplicate when either publish is acknowledged as a
//!   duplicate. Guarantees (tested below):
//!   - deliveries less than 0.5 s apart are always one signal — the two grids' boundaries
//!     are 0.5 s apart, so such a pair can cross at most one of them;
//!   - deliveries 1 s or more apart are always separate signals — every bucket is 1 s wide;
//!   - between 0.5 s and 1 s they are usually one signal, depending on where the boundaries
//!     fall.
//!
//!   A retried publish of the same request reuses the same ids; the ingest must treat a
//!   duplicate acknowledgement of its *own* earlier guard publish (a retry after a timeout)
//!   as success, not as a duplicate alert.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The duplicate interval of DOMAIN.md §2, in milliseconds.
pub const DUPLICATE_INTERVAL_MS: i64 = 1_000;

/// The JetStream message ids of one received alert. See the module documentation for the
/// publish protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey {
    msg_id: String,
    guard_id: Option<String>,
}

impl DedupKey {
    /// The key of `body` received for `token` at `received_at`; `has_time` says whether the
    /// parsed alert carries its own `time` ([`crate::Signal::time`] is `Some`).
    #[must_use]
    pub fn new(token: &str, body: &[u8], has_time: bool, received_at: DateTime<Utc>) -> Self {
        if has_time {
            return DedupKey {
                msg_id: digest("jt1t", token, body, None),
                guard_id: None,
            };
        }
        let ms = received_at.timestamp_millis();
        let second = ms.div_euclid(DUPLICATE_INTERVAL_MS);
        let shifted = (ms + DUPLICATE_INTERVAL_MS / 2).div_euclid(DUPLICATE_INTERVAL_MS);
        DedupKey {
            msg_id: digest("jt1s", token, body, Some(second)),
            guard_id: Some(digest("jt1h", token, body, Some(shifted))),
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

    /// The `Nats-Msg-Id` of the guard message to publish first, for alerts without `time`.
    #[must_use]
    pub fn guard_id(&self) -> Option<&str> {
        self.guard_id.as_deref()
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

    /// The ingest protocol: the second delivery is dropped when its guard or its signal id
    /// was already published by the first.
    fn one_signal(first: &DedupKey, second: &DedupKey) -> bool {
        first.msg_id() == second.msg_id()
            || (first.guard_id().is_some() && first.guard_id() == second.guard_id())
    }

    fn untimed(ms: i64) -> DedupKey {
        DedupKey::new(TOKEN, BODY, false, at_ms(ms))
    }

    #[test]
    fn same_token_and_identical_body_in_the_same_second_is_one_signal() {
        assert_eq!(untimed(T0 + 100), untimed(T0 + 101));
    }

    #[test]
    fn a_duplicate_straddling_a_second_boundary_is_caught_by_the_guard() {
        let first = untimed(T0 - 1); // …:59.999
        let second = untimed(T0); // …:00.000
        assert_ne!(first.msg_id(), second.msg_id(), "different second buckets");
        assert_eq!(first.guard_id(), second.guard_id());
        assert!(one_signal(&first, &second));
    }

    #[test]
    fn a_duplicate_straddling_a_half_second_boundary_is_caught_by_the_signal_id() {
        let first = untimed(T0 + 499);
        let second = untimed(T0 + 500);
        assert_ne!(first.guard_id(), second.guard_id());
        assert_eq!(first.msg_id(), second.msg_id());
    }

    #[test]
    fn deliveries_less_than_half_a_second_apart_are_one_signal_wherever_they_fall() {
        for start in (0..2_000).step_by(7) {
            for gap in [0, 1, 2, 50, 250, 499] {
                let (a, b) = (untimed(T0 + start), untimed(T0 + start + gap));
                assert!(one_signal(&a, &b), "start {start} ms, gap {gap} ms");
            }
        }
    }

    #[test]
    fn identical_bodies_more_than_a_second_apart_are_separate_signals() {
        for start in (0..2_000).step_by(7) {
            for gap in [1_000, 1_001, 1_500, 2_000, 60_000] {
                let (a, b) = (untimed(T0 + start), untimed(T0 + start + gap));
                assert!(!one_signal(&a, &b), "start {start} ms, gap {gap} ms");
            }
        }
    }

    #[test]
    fn between_half_a_second_and_a_second_it_depends_on_the_boundaries() {
        // 0.7 s apart, no boundary of either grid between them → one signal.
        assert!(one_signal(&untimed(T0 + 10), &untimed(T0 + 710)));
        // 0.7 s apart across both a half-second and a whole-second boundary → two signals.
        assert!(!one_signal(&untimed(T0 + 450), &untimed(T0 + 1_150)));
    }

    #[test]
    fn a_body_with_time_is_the_same_alert_for_the_whole_duplicate_window() {
        let a = DedupKey::new(TOKEN, BODY, true, at_ms(T0));
        let b = DedupKey::new(TOKEN, BODY, true, at_ms(T0 + 119_000));
        assert_eq!(a, b);
        assert_eq!(a.guard_id(), None);
        assert_ne!(a.msg_id(), untimed(T0).msg_id());
    }

    #[test]
    fn token_and_every_body_byte_are_part_of_the_key() {
        let base = untimed(T0);
        assert_ne!(
            DedupKey::new("other", BODY, false, at_ms(T0)).msg_id(),
            base.msg_id()
        );
        let mut body = BODY.to_vec();
        body.push(b' ');
        assert_ne!(
            DedupKey::new(TOKEN, &body, false, at_ms(T0)).msg_id(),
            base.msg_id()
        );
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
        assert!(key.guard_id().unwrap().starts_with("jt1h-"));
        assert!(key.msg_id().bytes().all(|b| b.is_ascii_graphic()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn pairs_under_half_a_second_merge_and_pairs_of_a_second_or_more_never_do(
            start in -10_000_000_000_000_i64..10_000_000_000_000,
            gap in 0_i64..5_000,
        ) {
            let a = untimed(start);
            let b = untimed(start + gap);
            if gap < DUPLICATE_INTERVAL_MS / 2 {
                prop_assert!(one_signal(&a, &b));
            }
            if gap >= DUPLICATE_INTERVAL_MS {
                prop_assert!(!one_signal(&a, &b));
            }
        }
    }
}
