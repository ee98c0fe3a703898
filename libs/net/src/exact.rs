//! Exact JSON numbers: venues send and expect prices and money as JSON numbers. They are
//! read from the number's own text into a [`Decimal`] and written back as number text, never
//! through `f64` (serde_json's `raw_value`). Wire structs using these helpers must be decoded
//! straight from JSON text, not through `serde_json::Value` or untagged enums.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Parses the text of a JSON number (or a quoted number) into an exact decimal.
pub fn parse_number_text(text: &str) -> Result<Decimal, String> {
    let t = text.trim();
    let t = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(t);
    if t.contains(['e', 'E']) {
        Decimal::from_scientific(t).map_err(|e| format!("{t:?} is not a number: {e}"))
    } else {
        Decimal::from_str(t).map_err(|e| format!("{t:?} is not a number: {e}"))
    }
}

/// `#[serde(with = "exact")]` for a required [`Decimal`].
pub fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let raw = RawValue::from_string(value.normalize().to_string()).map_err(S::Error::custom)?;
    raw.serialize(s)
}

/// See [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let raw: &RawValue = Deserialize::deserialize(d)?;
    parse_number_text(raw.get()).map_err(D::Error::custom)
}

/// `#[serde(with = "exact::option", default)]` for an optional [`Decimal`] (absent or `null`
/// is `None`).
pub mod option {
    use super::{Decimal, Deserialize, Deserializer, RawValue, Serializer, parse_number_text};
    use serde::de::Error as _;

    /// Writes `Some` as exact number text, `None` as `null`.
    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// Reads absent or `null` as `None`, a number (or quoted number) exactly.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let raw: Option<&RawValue> = Deserialize::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(r) if r.get().trim() == "null" => Ok(None),
            Some(r) => parse_number_text(r.get())
                .map(Some)
                .map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct P {
        #[serde(with = "super")]
        price: Decimal,
        #[serde(
            with = "super::option",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        stop: Option<Decimal>,
    }

    #[rstest]
    #[case(r#"{"price":21500.25}"#, dec!(21500.25), None)]
    #[case(r#"{"price":0.1,"stop":null}"#, dec!(0.1), None)]
    #[case(r#"{"price":"1.0005","stop":2}"#, dec!(1.0005), Some(dec!(2)))]
    #[case(r#"{"price":1.5e2}"#, dec!(150), None)]
    // A value f64 cannot hold exactly stays exact.
    #[case(r#"{"price":12345678901234.0000001}"#, dec!(12345678901234.0000001), None)]
    fn numbers_are_read_exactly(
        #[case] json: &str,
        #[case] price: Decimal,
        #[case] stop: Option<Decimal>,
    ) {
        let p: P = serde_json::from_str(json).unwrap();
        assert_eq!(p, P { price, stop });
    }

    #[test]
    fn numbers_are_written_as_json_numbers() {
        let p = P {
            price: dec!(22000.50),
            stop: Some(dec!(-12.5)),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"price":22000.5,"stop":-12.5}"#
        );
    }
}
