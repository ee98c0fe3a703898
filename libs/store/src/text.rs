//! Text bound for the database, made storable on both engines.
//!
//! PostgreSQL refuses the NUL character (U+0000) in `text` columns ("invalid byte sequence for
//! encoding UTF8: 0x00") and in `jsonb` strings ("unsupported Unicode escape sequence"), so one
//! NUL in a webhook body, an alert's comment or a broker's error text would make the whole
//! statement fail — and a batch that fails is retried forever. Every string that comes from
//! outside (bodies, comments, reasons, tickers, any user or broker text) goes through these
//! functions before it is written. SQLite would store the NUL, but both engines must hold the
//! same thing, so the rule is the same everywhere:
//!
//! - [`escape_nul`] for raw bodies kept as evidence (the webhook log): each NUL becomes the six
//!   characters `\u0000`, so the log still shows that one was sent;
//! - [`strip_nul`] / [`strip_nul_json`] for everything else: the NUL is removed (it carries no
//!   meaning in a comment, a reason or a symbol).

use std::borrow::Cow;

/// The text without NUL characters (borrowed when there was none, which is nearly always).
#[must_use]
pub fn strip_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`strip_nul`] for an owned string (no copy when there was no NUL).
#[must_use]
pub fn strip_nul_owned(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s
    }
}

/// [`strip_nul_owned`] for an optional string.
#[must_use]
pub fn strip_nul_opt(s: Option<String>) -> Option<String> {
    s.map(strip_nul_owned)
}

/// The text with each NUL written as the six characters `\u0000` (raw bodies: the evidence of
/// what was sent stays readable).
#[must_use]
pub fn escape_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\\u0000"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Removes NUL from every string and object key of a JSON value, in place.
pub fn strip_nul_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if s.contains('\0') {
                *s = s.replace('\0', "");
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nul_json),
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries: Vec<(String, serde_json::Value)> =
                    std::mem::take(map).into_iter().collect();
                for (k, val) in entries {
                    map.insert(strip_nul_owned(k), val);
                }
            }
            map.values_mut().for_each(strip_nul_json);
        }
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {}
    }
}

/// [`strip_nul_json`] on an owned value.
#[must_use]
pub fn strip_nul_json_owned(mut v: serde_json::Value) -> serde_json::Value {
    strip_nul_json(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_removed_or_escaped_and_other_text_is_untouched() {
        assert_eq!(strip_nul("buy\0"), "buy");
        assert!(matches!(strip_nul("buy"), Cow::Borrowed(_)));
        assert_eq!(strip_nul_owned("a\0b\0".into()), "ab");
        assert_eq!(escape_nul("{\"a\":\"b\0\"}"), "{\"a\":\"b\\u0000\"}");
        assert_eq!(escape_nul("tab\tand é"), "tab\tand é");
        assert_eq!(strip_nul_opt(Some("x\0".into())), Some("x".into()));
    }

    #[test]
    fn json_strings_and_keys_lose_their_nul_at_any_depth() {
        let mut v = json!({"comment": "a\u{0}b", "k\u{0}": [ "x\u{0}", 1, {"deep": "\u{0}"} ]});
        strip_nul_json(&mut v);
        assert_eq!(v, json!({"comment": "ab", "k": ["x", 1, {"deep": ""}]}));
        assert!(!v.to_string().contains("\\u0000"));
    }
}
