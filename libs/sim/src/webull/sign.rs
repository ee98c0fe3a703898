//! Webull's request signature, checked as the documentation describes it (BROKERS.md §3;
//! developer.webull.com "Signature"): the signing headers, `host` and the query in one sorted
//! map, the upper-case hex MD5 of the body, `uri&s1[&s2]` percent-encoded (every byte but
//! `A–Z a–z 0–9 - . _ ~`), HMAC-SHA1 keyed with `app_secret + "&"`, base64.
//!
//! Written here from the documentation, independently of the adapter's signer, so each checks
//! the other.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

/// The signed header values of a request.
#[derive(Debug, Clone, Default)]
pub struct Signed {
    /// `x-app-key`.
    pub app_key: String,
    /// `x-timestamp`.
    pub timestamp: String,
    /// `x-signature-algorithm`.
    pub algorithm: String,
    /// `x-signature-version`.
    pub version: String,
    /// `x-signature-nonce`.
    pub nonce: String,
    /// `host` (the HTTP `Host` header).
    pub host: String,
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The expected `x-signature` of a request.
#[must_use]
pub fn expected(
    secret: &str,
    uri: &str,
    query: &[(String, String)],
    h: &Signed,
    body: &[u8],
) -> String {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in [
        ("x-app-key", &h.app_key),
        ("x-timestamp", &h.timestamp),
        ("x-signature-algorithm", &h.algorithm),
        ("x-signature-version", &h.version),
        ("x-signature-nonce", &h.nonce),
        ("host", &h.host),
    ] {
        map.insert(k.to_string(), v.clone());
    }
    for (k, v) in query {
        map.entry(k.clone())
            .and_modify(|cur| {
                cur.push('&');
                cur.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    let s1: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut s3 = format!("{uri}&{}", s1.join("&"));
    if !body.is_empty() {
        s3.push('&');
        for b in Md5::digest(body) {
            let _ = write!(s3, "{b:02X}");
        }
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()) else {
        return String::new();
    };
    mac.update(encode(&s3).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time-enough comparison for a simulator: equal length and bytes.
#[must_use]
pub fn matches(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The adapter's known-answer vector (jt-webull `common::signing`), derived by hand.
    #[test]
    fn the_documented_vector_verifies() {
        let h = Signed {
            app_key: "a1b2c3d4e5".into(),
            timestamp: "2026-12-06T07:30:00Z".into(),
            algorithm: "HMAC-SHA1".into(),
            version: "1.0".into(),
            nonce: "0f8d1c2e-5b7a-4c3d-9e1f-2a3b4c5d6e7f".into(),
            host: "api.webull.com".into(),
        };
        let q = vec![("account_id".to_string(), "ACC123".to_string())];
        assert_eq!(
            expected("s3cr3t", "/openapi/account/positions", &q, &h, b""),
            "+LgR0QnZi3a4cxYJxcMDdLsvRlM="
        );
        let body =
            br#"{"new_orders":[{"client_order_id":"jt-1","symbol":"MNQZ6","quantity":"1"}]}"#;
        assert_eq!(
            expected("s3cr3t", "/openapi/account/orders/place", &q, &h, body),
            "uYYuCNEu/udC3nuDQPEHTy4VTKk="
        );
        assert!(matches("abc", "abc"));
        assert!(!matches("abc", "abd"));
        assert!(!matches("abc", "ab"));
    }
}
