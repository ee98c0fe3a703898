//! Tolerant reading of data written by another build: fields this build does not know are
//! dropped instead of failing the whole value.
//!
//! [`crate::Settings`] and [`crate::SettingsOverrides`] refuse unknown fields, on purpose: at the
//! API and in configuration a misspelt setting must be an error, not silently ignored. But a
//! value that another build wrote — an order intent on the bus, an intent or recorder row in
//! the database — may carry a setting that build added and this one does not know yet (a
//! rolling deploy). Refusing it there would dead-letter the intent and its order would never be
//! placed. Those readers use [`from_value`] (or [`deserialize`] in a `#[serde(deserialize_with)]`)
//! and get the value without the unknown fields; every dropped field is logged by the caller's
//! choice through [`from_value_reporting`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_path_to_error::Segment;

/// At most this many unknown fields are dropped from one value (a bound on the work).
const MAX_DROPPED: usize = 64;

/// Reads `value` as `T`, dropping any field `T` — or a type nested in it — does not know.
///
/// # Errors
/// Any other mismatch (a missing field, a wrong type), as `serde_json` reports it.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    from_value_reporting(value).map(|(v, _)| v)
}

/// [`from_value`], also returning the path of each dropped field (`tp_targets[0].colour`).
///
/// # Errors
/// As [`from_value`].
pub fn from_value_reporting<T: DeserializeOwned>(
    mut value: Value,
) -> Result<(T, Vec<String>), serde_json::Error> {
    let mut dropped = Vec::new();
    loop {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(v) => return Ok((v, dropped)),
            Err(e) => e,
        };
        let inner = err.inner().to_string();
        let Some(field) = unknown_field(&inner) else {
            return Err(err.into_inner());
        };
        if dropped.len() >= MAX_DROPPED {
            return Err(err.into_inner());
        }
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        // The error's path ends at the object holding the field, or at the field itself.
        let removed = remove_at(&mut value, &segments, field)
            || (!segments.is_empty()
                && remove_at(&mut value, &segments[..segments.len() - 1], field));
        if !removed {
            return Err(err.into_inner());
        }
        let path = err.path().to_string();
        let names_field = matches!(segments.last(), Some(Segment::Map { key }) if key == field);
        dropped.push(if names_field {
            path
        } else if path == "." {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        });
    }
}

/// For `#[serde(deserialize_with = "jt_domain::tolerant::deserialize")]` on a field written by
/// another build.
///
/// # Errors
/// As [`from_value`].
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    from_value(value).map_err(serde::de::Error::custom)
}

/// The field named by serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Removes `field` from the object at `path` in `value`; whether it was there.
fn remove_at(value: &mut Value, path: &[Segment], field: &str) -> bool {
    let mut at = value;
    for segment in path {
        at = match (segment, at) {
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match at {
        Value::Object(map) => map.remove(field).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Settings, SettingsOverrides};
    use serde_json::json;

    #[test]
    fn settings_from_a_newer_build_keep_every_known_value_and_drop_the_rest() {
        let mut written = serde_json::to_value(Settings {
            initial_position_size: 3,
            stale_after_secs: 45,
            tp_targets: vec![crate::settings::TpTarget {
                value: 20.into(),
                trim: 1.into(),
            }],
            ..Settings::default()
        })
        .unwrap();
        written["a_setting_added_later"] = json!(true);
        written["tp_targets"][0]["colour"] = json!("green");
        written["time_filter_1"]["label"] = json!("morning");
        // Strict where strictness belongs (the API, configuration)…
        assert!(serde_json::from_value::<Settings>(written.clone()).is_err());
        // …tolerant for what another build wrote.
        let (read, dropped): (Settings, _) = from_value_reporting(written).unwrap();
        assert_eq!(read.initial_position_size, 3);
        assert_eq!(read.stale_after_secs, 45);
        assert_eq!(read.tp_targets[0].value, 20.into());
        let mut dropped = dropped;
        dropped.sort();
        assert_eq!(
            dropped,
            vec![
                "a_setting_added_later",
                "time_filter_1.label",
                "tp_targets[0].colour"
            ]
        );
    }

    #[test]
    fn other_mismatches_are_still_errors() {
        let mut written = serde_json::to_value(Settings::default()).unwrap();
        written["initial_position_size"] = json!("three");
        assert!(from_value::<Settings>(written).is_err());
        let mut overrides = serde_json::to_value(SettingsOverrides::default()).unwrap();
        overrides["new_one"] = json!(1);
        assert_eq!(
            from_value::<SettingsOverrides>(overrides).unwrap(),
            SettingsOverrides::default()
        );
    }
}
