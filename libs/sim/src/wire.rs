//! The simulator's JSON and query-string readers and its number writer, shared by every
//! protocol surface (each surface's entity shapes live in its own module).
//!
//! Readers accept both forms clients use in practice (numbers or strings for ids, `cid` and
//! prices) and ignore unknown fields. Prices are written as JSON numbers: a decimal becomes the
//! nearest binary double, whose shortest representation is the same decimal for every price
//! with at most 15 significant digits, so nothing is lost on the wire.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value};

/// A decimal as a JSON number.
#[must_use]
pub fn num(d: Decimal) -> Value {
    d.normalize()
        .to_f64()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// Reads a decimal from a JSON number or string.
#[must_use]
pub fn dec(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            let s = n.to_string();
            s.parse::<Decimal>()
                .ok()
                .or_else(|| Decimal::from_scientific(&s).ok())
        }
        Value::String(s) => {
            let s = s.trim();
            s.parse::<Decimal>()
                .ok()
                .or_else(|| Decimal::from_scientific(s).ok())
        }
        _ => None,
    }
}

/// Reads an integer from a JSON number or string.
#[must_use]
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .and_then(|f| f.to_i64())
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a string from a JSON string or number.
#[must_use]
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads a boolean from a JSON bool, number or string.
#[must_use]
pub fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Field readers over a JSON object (absent and `null` read as `None`).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a>(pub &'a Value);

impl Fields<'_> {
    fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }
    /// A decimal field.
    #[must_use]
    pub fn dec(&self, k: &str) -> Option<Decimal> {
        self.get(k).and_then(dec)
    }
    /// An integer field.
    #[must_use]
    pub fn int(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(int)
    }
    /// A string field (numbers are accepted and rendered as text).
    #[must_use]
    pub fn text(&self, k: &str) -> Option<String> {
        self.get(k).and_then(text)
    }
    /// A boolean field.
    #[must_use]
    pub fn bool(&self, k: &str) -> Option<bool> {
        self.get(k).and_then(boolean)
    }
    /// Whether the field is present (and not null).
    #[must_use]
    pub fn has(&self, k: &str) -> bool {
        self.get(k).is_some()
    }
    /// A nested value.
    #[must_use]
    pub fn value(&self, k: &str) -> Option<&Value> {
        self.get(k)
    }
}

/// A JSON object under construction.
#[derive(Debug, Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    /// An empty object.
    #[must_use]
    pub fn new() -> Self {
        Obj(Map::new())
    }
    /// Sets a field.
    #[must_use]
    pub fn set(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.0.insert(k.to_string(), v.into());
        self
    }
    /// Sets a field when present.
    #[must_use]
    pub fn opt(self, k: &str, v: Option<impl Into<Value>>) -> Self {
        match v {
            Some(v) => self.set(k, v),
            None => self,
        }
    }
    /// Sets a decimal field when present.
    #[must_use]
    pub fn dec(self, k: &str, v: Option<Decimal>) -> Self {
        match v {
            Some(d) => self.set(k, num(d)),
            None => self,
        }
    }
    /// Finishes the object.
    #[must_use]
    pub fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// Parses `a=1&b=x%2Cy`.
#[must_use]
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    #[test]
    fn decimals_cross_as_numbers_without_loss() {
        for d in [
            dec!(21000.25),
            dec!(0.0000005),
            dec!(106.015625),
            dec!(1.0825),
            dec!(4.5005),
            dec!(-12.5),
        ] {
            let v = num(d);
            assert!(v.is_number());
            assert_eq!(super::dec(&v), Some(d), "{d}");
            let text = serde_json::to_string(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(super::dec(&back), Some(d), "{text}");
        }
    }

    #[test]
    fn readers_accept_numbers_and_strings() {
        let v =
            json!({"cid": 8, "sec": "x", "accountId": "123", "price": "4150.25", "flag": "true"});
        let f = Fields(&v);
        assert_eq!(f.text("cid").as_deref(), Some("8"));
        assert_eq!(f.int("accountId"), Some(123));
        assert_eq!(f.dec("price"), Some(dec!(4150.25)));
        assert_eq!(f.bool("flag"), Some(true));
        assert_eq!(f.int("missing"), None);
    }

    #[test]
    fn query_strings_decode() {
        let q = parse_query("ids=840972%2C840944&name=MNQ+Z6&t=");
        assert_eq!(q[0], ("ids".into(), "840972,840944".into()));
        assert_eq!(q[1], ("name".into(), "MNQ Z6".into()));
        assert_eq!(q[2], ("t".into(), String::new()));
        assert_eq!(percent_decode("100%"), "100%");
    }
}
