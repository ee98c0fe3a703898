//! Exact decimals from text, and their JSON form in messages: a decimal is written as a JSON
//! number with every digit kept and read back the same way — through the raw JSON text, never
//! `f64` (the workspace's `rust_decimal` writes strings; operators and every service read
//! numbers in signals and intents). An instrument travels as its root (`"MNQ"`).
//!
//! The serde helpers expect `serde_json`, the wire format of every message.

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Parses a decimal number exactly: optional sign, digits with at most one point, optional
/// exponent (`1.5e2`), surrounding spaces allowed. No thousands separators, no `NaN`, no
/// underscores; more precision than a `Decimal` holds is refused, never rounded.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    const MAX_EXPONENT: i32 = 28;
    let t = text.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, mantissa),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return None;
    }
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let normalized = if frac_part.is_empty() {
        format!("{}{int_part}", if negative { "-" } else { "" })
    } else {
        format!("{}{int_part}.{frac_part}", if negative { "-" } else { "" })
    };
    let mut value = Decimal::from_str_exact(&normalized).ok()?;
    if let Some(exponent) = exponent {
        let exponent: i32 = exponent.parse().ok()?;
        if exponent.abs() > MAX_EXPONENT {
            return None;
        }
        if exponent >= 0 {
            let factor =
                Decimal::try_from_i128_with_scale(10_i128.pow(exponent.unsigned_abs()), 0).ok()?;
            value = value.checked_mul(factor)?;
        } else {
            let scale = value.scale() + exponent.unsigned_abs();
            if scale > 28 {
                return None;
            }
            value.set_scale(scale).ok()?;
        }
    }
    Some(value)
}

fn to_raw(value: &Decimal) -> Result<Box<RawValue>, serde_json::Error> {
    RawValue::from_string(value.to_string())
}

fn from_raw(raw: &RawValue) -> Result<Decimal, String> {
    let text = raw.get();
    let digits = if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(|e| e.to_string())?
    } else {
        text.to_string()
    };
    parse_decimal(&digits).ok_or_else(|| format!("{text} is not an exact decimal number"))
}

/// A `Decimal` as a JSON number (a numeric string is accepted when reading).
pub mod decimal {
    use super::*;

    /// Writes the value (see the module).
    ///
    /// # Errors
    /// As the serializer.
    pub fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        to_raw(value).map_err(S::Error::custom)?.serialize(s)
    }

    /// Reads the value (see the module).
    ///
    /// # Errors
    /// A value that is not what the module reads.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        from_raw(&raw).map_err(D::Error::custom)
    }
}

/// An optional `Decimal` as a JSON number or `null`.
pub mod optional_decimal {
    use super::*;

    /// Writes the value (see the module).
    ///
    /// # Errors
    /// As the serializer.
    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => to_raw(v).map_err(S::Error::custom)?.serialize(s),
            None => s.serialize_none(),
        }
    }

    /// Reads the value (see the module).
    ///
    /// # Errors
    /// A value that is not what the module reads.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Option::<Box<RawValue>>::deserialize(d)?
            .map(|raw| from_raw(&raw).map_err(D::Error::custom))
            .transpose()
    }
}

/// An optional instrument as its root (`"MNQ"`), looked up in the table when read.
pub mod root {
    use crate::instrument::{Instrument, by_root};

    use super::*;

    /// Writes the value (see the module).
    ///
    /// # Errors
    /// As the serializer.
    pub fn serialize<S: Serializer>(
        value: &Option<&'static Instrument>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.map(|i| i.root).serialize(s)
    }

    /// Reads the value (see the module).
    ///
    /// # Errors
    /// A value that is not what the module reads.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<&'static Instrument>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|root| by_root(&root).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    #[rstest]
    #[case("2", Some(dec!(2)))]
    #[case(" 2 ", Some(dec!(2)))]
    #[case("+2", Some(dec!(2)))]
    #[case("-1.5", Some(dec!(-1.5)))]
    #[case("21433.25", Some(dec!(21433.25)))]
    #[case("0.1", Some(dec!(0.1)))]
    #[case(".5", Some(dec!(0.5)))]
    #[case("5.", Some(dec!(5)))]
    #[case("1e2", Some(dec!(100)))]
    #[case("1.5E-3", Some(dec!(0.0015)))]
    #[case("2.5e+1", Some(dec!(25)))]
    #[case("123456789012345678901234567.8", Some(dec!(123456789012345678901234567.8)))]
    #[case("", None)]
    #[case(".", None)]
    #[case("-", None)]
    #[case("1,000", None)]
    #[case("1_000", None)]
    #[case("NaN", None)]
    #[case("inf", None)]
    #[case("0x10", None)]
    #[case("1e", None)]
    #[case("1e999999999999", None)]
    #[case("1e-40", None)]
    #[case("1e29", None)]
    #[case("99999999999999999999999999999999", None)]
    #[case("1.2.3", None)]
    fn decimals_are_parsed_exactly_or_refused(#[case] text: &str, #[case] want: Option<Decimal>) {
        assert_eq!(parse_decimal(text), want);
    }

    #[test]
    fn decimal_keeps_every_digit_a_float_would_lose() {
        // 0.1 + 0.2 style: the digits sent are the digits kept.
        assert_eq!(
            parse_decimal("21433.333333333333333").map(|d| d.to_string()),
            Some("21433.333333333333333".to_string())
        );
    }
}
