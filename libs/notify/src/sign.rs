//! The webhook signature: how a receiver knows a notification came from this platform and was
//! not replayed.
//!
//! `X-JT-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is the lower-case hex of
//! HMAC-SHA256, keyed with the channel's signing secret (the whole `whsec_…` text as UTF-8
//! bytes), over the bytes `<t>.<body>` — the timestamp as written in the header, a dot, then the
//! request body exactly as received. A receiver recomputes it, compares in constant time, and
//! refuses a timestamp too far from its clock (five minutes is usual) so a captured request
//! cannot be replayed later. `docs/notifications.md` shows a receiver.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The signature header.
pub const HEADER: &str = "x-jt-signature";

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-JT-Signature` value of `body` sent at `timestamp` (unix seconds).
#[must_use]
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a received `X-JT-Signature` value against `body`: the signature must match and its
/// timestamp be within `tolerance_secs` of `now` (unix seconds). For receivers written in Rust
/// and for the tests; the algorithm is the module's.
#[must_use]
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    sigs.iter()
        .any(|s| mac(secret, t, body).verify_slice(s).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_body_and_time() {
        let body = br#"{"id":"1","event":"test"}"#;
        let h = signature("whsec_abc", 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="), "{h}");
        assert!(verify("whsec_abc", &h, body, 1_700_000_100, 300));
        assert!(
            !verify("whsec_abd", &h, body, 1_700_000_100, 300),
            "other secret"
        );
        assert!(
            !verify("whsec_abc", &h, b"{}", 1_700_000_100, 300),
            "other body"
        );
        assert!(
            !verify("whsec_abc", &h, body, 1_700_001_000, 300),
            "replayed late"
        );
        assert!(
            !verify("whsec_abc", "v1=00", body, 1_700_000_000, 300),
            "no time"
        );
    }

    #[test]
    fn the_signature_matches_a_vector_computed_outside_rust() {
        // python3: hmac.new(b"whsec_test", b'1700000000.{"event":"test"}', sha256).hexdigest()
        assert_eq!(
            signature("whsec_test", 1_700_000_000, br#"{"event":"test"}"#),
            "t=1700000000,v1=21d2d3606ebbdbf9307ee15e83085df2b83c83dd87cc2e6d2ea6b1cb61afdc3c"
        );
    }
}
