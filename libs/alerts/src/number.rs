//! Serde helpers for the signal's JSON form: decimals as JSON numbers with every digit kept
//! (written and read through raw JSON text, never `f64`), instruments as their root.
//!
//! The workspace's `rust_decimal` writes decimals as strings; operators and the executor
//! read numbers here, so the signal spells its decimals out as numbers itself. These helpers
//! expect `serde_json` (the wire format of every message).

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::json::parse_decimal;

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
pub(crate) mod decimal {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        to_raw(value).map_err(S::Error::custom)?.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        from_raw(&raw).map_err(D::Error::custom)
    }
}

/// An optional `Decimal` as a JSON number or `null`.
pub(crate) mod optional_decimal {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => to_raw(v).map_err(S::Error::custom)?.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Decimal>, D::Error> {
        Option::<Box<RawValue>>::deserialize(d)?
            .map(|raw| from_raw(&raw).map_err(D::Error::custom))
            .transpose()
    }
}

/// An optional instrument as its root (`"MNQ"`), looked up in the table when read.
pub(crate) mod root {
    use jt_domain::instrument::{Instrument, by_root};

    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<&'static Instrument>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.map(|i| i.root).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<&'static Instrument>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|root| by_root(&root).map_err(D::Error::custom))
            .transpose()
    }
}
