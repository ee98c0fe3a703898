//! What every list route shares: the 400 of a bad query parameter, the page-size check, and
//! keyset cursors — `(time, id)` of the last item of a page, opaque to the caller (URL-safe
//! base64), so a page boundary between two items of the same instant loses neither.

use axum::http::StatusCode;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// A query parameter that breaks its rule: 400 naming it.
pub fn bad_query(field: &str, rule: impl Into<String>) -> ApiError {
    let rule = rule.into();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid",
        format!("{field}: {rule}"),
    )
    .field(field)
}

/// A filter naming one of an enum's values (its serde name: `status=pending`), or `None` when
/// absent.
///
/// # Errors
/// 400 naming `field` and `allowed` when the value is not one of them.
pub fn one_of<T: serde::de::DeserializeOwned>(
    field: &str,
    value: Option<&str>,
    allowed: &str,
) -> ApiResult<Option<T>> {
    value
        .map(|v| {
            serde_json::from_value::<T>(serde_json::Value::String(v.to_owned()))
                .map_err(|_| bad_query(field, format!("must be one of {allowed}")))
        })
        .transpose()
}

/// The page size asked for (`default` when absent), within `1..=max`.
///
/// # Errors
/// 400 on `limit` outside the range.
pub fn limit(asked: Option<u64>, default: u64, max: u64) -> ApiResult<u64> {
    let limit = asked.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(bad_query("limit", format!("must be between 1 and {max}")))
    }
}

/// The cursor after an item.
#[must_use]
pub fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}|{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    ))
}

/// The `(time, id)` a cursor stands for.
///
/// # Errors
/// 400 on `cursor` for anything this API did not hand out.
pub fn decode_cursor(c: &str) -> ApiResult<(DateTime<Utc>, Uuid)> {
    let bad = || {
        bad_query(
            "cursor",
            "not a cursor of this list; pass next_cursor as given",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (t, id) = text.split_once('|').ok_or_else(bad)?;
    let t = DateTime::parse_from_rfc3339(t)
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    let id = id.parse::<Uuid>().map_err(|_| bad())?;
    Ok((t, id))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_filter_value_is_one_of_the_enums_names_or_a_400_naming_them() {
        use jt_store::entity::DeliveryStatus;
        assert_eq!(
            one_of::<DeliveryStatus>("status", Some("sent"), "pending, sent, failed").unwrap(),
            Some(DeliveryStatus::Sent)
        );
        assert_eq!(
            one_of::<DeliveryStatus>("status", None, "pending, sent, failed").unwrap(),
            None
        );
        let e =
            one_of::<DeliveryStatus>("status", Some("lost"), "pending, sent, failed").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("status"));
        assert_eq!(e.message, "status: must be one of pending, sent, failed");
    }

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_a_400_on_cursor() {
        let at = DateTime::parse_from_rfc3339("2026-12-06T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)).unwrap(), (at, id));
        for bad in ["nope", "", "bm9wZQ", "MjAyNnx4"] {
            let e = decode_cursor(bad).unwrap_err();
            assert_eq!(e.body().error.field.as_deref(), Some("cursor"), "{bad}");
        }
        assert_eq!(limit(None, 50, 200).unwrap(), 50);
        assert!(limit(Some(0), 50, 200).is_err());
        assert!(limit(Some(201), 50, 200).is_err());
    }
}
