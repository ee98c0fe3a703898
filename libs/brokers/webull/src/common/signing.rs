//! Webull's request signature (BROKERS.md §3; developer.webull.com "Signature"; the official
//! SDK's `default_signature_composer`).
//!
//! 1. The signing headers (`x-app-key`, `x-timestamp`, `x-signature-algorithm`,
//!    `x-signature-version`, `x-signature-nonce`) and `host`, lower-case, and every query
//!    parameter go into one map (a query key that is also a header key joins the two values
//!    with `&`); sorted by key and joined `k=v` with `&`, values not encoded: `s1`.
//! 2. A request with a body: `s2` = the upper-case hex MD5 of the exact body bytes sent.
//! 3. `s3 = uri + "&" + s1 [+ "&" + s2]`.
//! 4. `signature = base64(HMAC-SHA1(key = app_secret + "&", msg = percent-encode(s3)))`, every
//!    byte but `A–Z a–z 0–9 - . _ ~` encoded as `%XX` (upper-case hex).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

/// `x-signature-algorithm`.
pub const ALGORITHM: &str = "HMAC-SHA1";
/// `x-signature-version`.
pub const VERSION: &str = "1.0";

/// Header names, as sent and as signed.
pub mod headers {
    /// The app key.
    pub const APP_KEY: &str = "x-app-key";
    /// ISO-8601 UTC, seconds (`2026-12-06T07:30:00Z`).
    pub const TIMESTAMP: &str = "x-timestamp";
    /// `HMAC-SHA1`.
    pub const ALGORITHM: &str = "x-signature-algorithm";
    /// `1.0`.
    pub const VERSION: &str = "x-signature-version";
    /// New for every request.
    pub const NONCE: &str = "x-signature-nonce";
    /// The signature.
    pub const SIGNATURE: &str = "x-signature";
    /// Signed, never sent as an extra header (the HTTP `Host` carries it).
    pub const HOST: &str = "host";
}

/// What one request is signed with besides its path, query and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignParams<'a> {
    /// `x-app-key`.
    pub app_key: &'a str,
    /// `x-timestamp`.
    pub timestamp: &'a str,
    /// `x-signature-nonce`.
    pub nonce: &'a str,
    /// The `Host` the request is sent to (with `:port` when not the scheme's default).
    pub host: &'a str,
}

/// Step 1–3: the string to sign, before encoding.
#[must_use]
pub fn string_to_sign(
    uri: &str,
    query: &[(&str, &str)],
    params: &SignParams<'_>,
    body: Option<&[u8]>,
) -> String {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    map.insert(headers::APP_KEY.into(), params.app_key.into());
    map.insert(headers::TIMESTAMP.into(), params.timestamp.into());
    map.insert(headers::ALGORITHM.into(), ALGORITHM.into());
    map.insert(headers::VERSION.into(), VERSION.into());
    map.insert(headers::NONCE.into(), params.nonce.into());
    map.insert(headers::HOST.into(), params.host.into());
    for (k, v) in query {
        map.entry((*k).to_string())
            .and_modify(|cur| {
                cur.push('&');
                cur.push_str(v);
            })
            .or_insert_with(|| (*v).to_string());
    }
    let mut s = String::from(uri);
    for (k, v) in &map {
        if !s.is_empty() {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        s.push('&');
        s.push_str(&body_digest(body));
    }
    s
}

/// Step 2: upper-case hex MD5 of the body.
#[must_use]
pub fn body_digest(body: &[u8]) -> String {
    let digest = Md5::digest(body);
    let mut out = String::with_capacity(32);
    for b in digest {
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// Step 4's encoding: every byte but the unreserved ones as `%XX`.
#[must_use]
pub fn percent_encode(s: &str) -> String {
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

/// Step 4: the signature of `string_to_sign` with `app_secret`.
#[must_use]
pub fn sign(app_secret: &str, string_to_sign: &str) -> String {
    let key = format!("{app_secret}&");
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(percent_encode(string_to_sign).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The signature of a whole request.
#[must_use]
pub fn signature(
    app_secret: &str,
    uri: &str,
    query: &[(&str, &str)],
    params: &SignParams<'_>,
    body: Option<&[u8]>,
) -> String {
    sign(app_secret, &string_to_sign(uri, query, params, body))
}

/// `x-timestamp` for a Unix time in seconds: `YYYY-MM-DDTHH:MM:SSZ`.
#[must_use]
pub fn timestamp(unix_secs: i64) -> String {
    chrono::DateTime::from_timestamp(unix_secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers, derived by hand from the documented algorithm (and checked with Python's
    // standard library: hashlib.md5, urllib.parse.quote(s, safe=''), hmac.new(.., sha1),
    // base64.b64encode), never with this module:
    //
    // app key `a1b2c3d4e5`, secret `s3cr3t`, nonce `0f8d1c2e-5b7a-4c3d-9e1f-2a3b4c5d6e7f`,
    // timestamp `2026-12-06T07:30:00Z`, host `api.webull.com`, query `account_id=ACC123`.
    //
    // s1 (sorted: account_id < host < x-app-key < x-signature-algorithm < x-signature-nonce <
    // x-signature-version < x-timestamp):
    //   account_id=ACC123&host=api.webull.com&x-app-key=a1b2c3d4e5&
    //   x-signature-algorithm=HMAC-SHA1&x-signature-nonce=0f8d…6e7f&x-signature-version=1.0&
    //   x-timestamp=2026-12-06T07:30:00Z
    // GET /openapi/account/positions (no body): s3 = "/openapi/account/positions&" + s1;
    //   encoded: %2Fopenapi%2Faccount%2Fpositions%26account_id%3DACC123%26host%3D… (`/`, `&`,
    //   `=`, `:` encoded; `-`, `.`, `_` kept); HMAC-SHA1 with key "s3cr3t&", base64:
    //   +LgR0QnZi3a4cxYJxcMDdLsvRlM=
    // POST /openapi/account/orders/place with body
    //   {"new_orders":[{"client_order_id":"jt-1","symbol":"MNQZ6","quantity":"1"}]}:
    //   MD5 upper hex 0913DE1E3C1F6B73A75A89586988891D appended as "&0913…891D";
    //   signature uYYuCNEu/udC3nuDQPEHTy4VTKk=
    const NONCE: &str = "0f8d1c2e-5b7a-4c3d-9e1f-2a3b4c5d6e7f";

    fn params() -> SignParams<'static> {
        SignParams {
            app_key: "a1b2c3d4e5",
            timestamp: "2026-12-06T07:30:00Z",
            nonce: NONCE,
            host: "api.webull.com",
        }
    }

    #[test]
    fn a_read_signs_the_sorted_headers_and_query() {
        let q = [("account_id", "ACC123")];
        let s = string_to_sign("/openapi/account/positions", &q, &params(), None);
        assert_eq!(
            s,
            format!(
                "/openapi/account/positions&account_id=ACC123&host=api.webull.com&x-app-key=a1b2c3d4e5&x-signature-algorithm=HMAC-SHA1&x-signature-nonce={NONCE}&x-signature-version=1.0&x-timestamp=2026-12-06T07:30:00Z"
            )
        );
        assert!(percent_encode(&s).starts_with(
            "%2Fopenapi%2Faccount%2Fpositions%26account_id%3DACC123%26host%3Dapi.webull.com%26"
        ));
        assert!(percent_encode(&s).ends_with("x-timestamp%3D2026-12-06T07%3A30%3A00Z"));
        assert_eq!(sign("s3cr3t", &s), "+LgR0QnZi3a4cxYJxcMDdLsvRlM=");
    }

    #[test]
    fn a_write_signs_the_body_digest_too() {
        let body =
            br#"{"new_orders":[{"client_order_id":"jt-1","symbol":"MNQZ6","quantity":"1"}]}"#;
        assert_eq!(body_digest(body), "0913DE1E3C1F6B73A75A89586988891D");
        let q = [("account_id", "ACC123")];
        let s = string_to_sign("/openapi/account/orders/place", &q, &params(), Some(body));
        assert!(s.ends_with("&x-timestamp=2026-12-06T07:30:00Z&0913DE1E3C1F6B73A75A89586988891D"));
        assert_eq!(
            signature(
                "s3cr3t",
                "/openapi/account/orders/place",
                &q,
                &params(),
                Some(body)
            ),
            "uYYuCNEu/udC3nuDQPEHTy4VTKk="
        );
    }

    #[test]
    fn anything_changed_changes_the_signature() {
        let q = [("account_id", "ACC123")];
        let good = signature("s3cr3t", "/openapi/account/positions", &q, &params(), None);
        let other_secret = signature("s3cr3T", "/openapi/account/positions", &q, &params(), None);
        let other_query = signature(
            "s3cr3t",
            "/openapi/account/positions",
            &[("account_id", "ACC124")],
            &params(),
            None,
        );
        let mut p = params();
        p.nonce = "another";
        let other_nonce = signature("s3cr3t", "/openapi/account/positions", &q, &p, None);
        assert_ne!(good, other_secret);
        assert_ne!(good, other_query);
        assert_ne!(good, other_nonce);
    }

    #[test]
    fn a_query_key_equal_to_a_header_joins_both_values() {
        let q = [("host", "x")];
        let s = string_to_sign("/u", &q, &params(), None);
        assert!(s.contains("&host=api.webull.com&x&"), "{s}");
    }

    #[test]
    fn encoding_keeps_only_unreserved_bytes() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode("/ &=+:é"), "%2F%20%26%3D%2B%3A%C3%A9");
    }

    #[test]
    fn timestamps_are_iso_8601_utc_seconds() {
        assert_eq!(timestamp(1_796_542_200), "2026-12-06T07:30:00Z");
    }
}
