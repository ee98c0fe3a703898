//! Reading an alert body's JSON without losing anything: values stay raw JSON text until a
//! field is used, so numbers are parsed exactly from their digits (never through `f64`) and a
//! placeholder is only an error in a field the alert actually uses.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{AlertError, excerpt};
pub(crate) use jt_domain::exact::parse_decimal;

/// A JSON object whose values are kept as raw JSON text, in the order sent.
pub(crate) struct RawObject<'a> {
    fields: Vec<(String, &'a RawValue)>,
    /// Where the object sits in the body (`takeProfit`), empty for the body itself: error
    /// messages name nested fields by their full path.
    path: String,
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(RawObject {
                    fields,
                    path: String::new(),
                })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// The JSON type of a raw value, from its first character (the text is valid JSON).
pub(crate) fn json_type(raw: &RawValue) -> &'static str {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

impl<'a> RawObject<'a> {
    /// Reads a JSON object; `raw` must hold an object.
    fn from_raw(raw: &'a RawValue, path: &str) -> Result<Self, AlertError> {
        let object: RawObject<'a> =
            serde_json::from_str(raw.get()).map_err(|_| AlertError::InvalidField {
                field: path.to_string(),
                value: excerpt(raw.get()),
                expected: "a JSON object".to_string(),
            })?;
        Ok(RawObject {
            path: path.to_string(),
            ..object
        })
    }

    /// Parses a whole body that is known to be a JSON object.
    pub(crate) fn parse(json: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The raw value of the field named `name` (matched without regard to ASCII case); `Err`
    /// when the name appears more than once. No allocation: most names looked up are absent.
    fn find(&self, name: &str) -> Result<Option<&'a RawValue>, ()> {
        let mut found = None;
        for (key, raw) in &self.fields {
            if key.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return Err(());
                }
                found = Some(*raw);
            }
        }
        Ok(found)
    }

    /// The first of `names` that is present and not `null`; a name may be a dotted path into
    /// nested objects (`strategy_info.market_position`).
    ///
    /// # Errors
    /// [`AlertError::DuplicateField`].
    pub(crate) fn first(&self, names: &[&str]) -> Result<Option<Field<'a>>, AlertError> {
        for name in names {
            if let Some(field) = self.lookup(name, &self.path)? {
                return Ok(Some(field));
            }
        }
        Ok(None)
    }

    /// Every present, non-null field of this object, in the order sent, named by its path.
    pub(crate) fn entries(&self) -> impl Iterator<Item = Field<'a>> + '_ {
        self.fields
            .iter()
            .filter(|(_, raw)| raw.get() != "null")
            .map(|(key, raw)| Field {
                path: join(&self.path, key),
                raw,
            })
    }

    /// The first present, non-null field whose name and value `pick` selects; only that one is
    /// given a path (scanning every field of a body allocates nothing).
    pub(crate) fn find_field(
        &self,
        mut pick: impl FnMut(&str, &RawValue) -> bool,
    ) -> Option<Field<'a>> {
        self.fields
            .iter()
            .find(|(key, raw)| raw.get() != "null" && pick(key, raw))
            .map(|(key, raw)| Field {
                path: join(&self.path, key),
                raw,
            })
    }

    fn lookup(&self, dotted: &str, prefix: &str) -> Result<Option<Field<'a>>, AlertError> {
        let (head, rest) = match dotted.split_once('.') {
            Some((head, rest)) => (head, Some(rest)),
            None => (dotted, None),
        };
        let raw = match self.find(head) {
            Err(()) => {
                return Err(AlertError::DuplicateField {
                    field: join(prefix, head),
                });
            }
            Ok(None) => return Ok(None),
            Ok(Some(raw)) if raw.get() == "null" => return Ok(None),
            Ok(Some(raw)) => raw,
        };
        let field = Field {
            path: join(prefix, head),
            raw,
        };
        match rest {
            None => Ok(Some(field)),
            // A parent that is not an object is some other platform's field of the same
            // name (`"order": "market"`): the nested synonym is simply absent.
            Some(_) if field.json_type() != "object" => Ok(None),
            Some(rest) => {
                let nested = field.object()?;
                nested.lookup(rest, &field.path)
            }
        }
    }
}

/// `prefix.name`, or `name` at the top level.
fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Whether a raw value says "not set": `false`, `0`, `""`, `"0"`, `"false"`, `"no"`, `"none"`,
/// `"off"`, `[]` or `{}` (templates of the peers send their unused fields so). Allocates only for
/// a string with escapes or an exponent: most bodies carry many such fields.
pub(crate) fn raw_is_unset(raw: &RawValue) -> bool {
    let text = raw.get().trim();
    match json_type(raw) {
        "boolean" => text == "false",
        "number" => is_zero_text(text),
        "string" => {
            let inner = &text[1..text.len().saturating_sub(1).max(1)];
            if inner.contains('\\') {
                return serde_json::from_str::<String>(text)
                    .is_ok_and(|s| unset_word(s.trim()) || is_zero_text(s.trim()));
            }
            let inner = inner.trim();
            unset_word(inner) || is_zero_text(inner)
        }
        "array" => text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim()
            .is_empty(),
        "object" => text
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim()
            .is_empty(),
        _ => true,
    }
}

fn unset_word(s: &str) -> bool {
    s.is_empty()
        || ["false", "no", "none", "off"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w))
}

/// Whether number text is zero (`0`, `0.0`, `-0`, `0e5`).
fn is_zero_text(t: &str) -> bool {
    if t.contains(['e', 'E']) {
        return parse_decimal(t).is_some_and(|d| d.is_zero());
    }
    let digits = t.trim_start_matches(['+', '-']);
    !digits.is_empty()
        && digits.bytes().any(|b| b == b'0')
        && digits.bytes().all(|b| b == b'0' || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
}

/// One present, non-null field of an alert, with its path for error messages.
pub(crate) struct Field<'a> {
    pub(crate) path: String,
    raw: &'a RawValue,
}

impl<'a> Field<'a> {
    fn invalid(&self, expected: impl Into<String>) -> AlertError {
        AlertError::InvalidField {
            field: self.path.clone(),
            value: excerpt(self.raw.get()),
            expected: expected.into(),
        }
    }

    /// The raw JSON type of the value.
    pub(crate) fn json_type(&self) -> &'static str {
        json_type(self.raw)
    }

    /// The last segment of the field's path (its own name, as sent).
    pub(crate) fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// Whether the value says "not set": `false`, `0`, `""`, `"0"`, `"false"`, `"no"`,
    /// `"none"`, `"off"`, `[]` or `{}` (templates of the peers send their unused fields so).
    pub(crate) fn is_unset(&self) -> bool {
        raw_is_unset(self.raw)
    }

    /// The string content when the value is a JSON string, checked for placeholders.
    fn string_content(&self) -> Result<Option<String>, AlertError> {
        if self.json_type() != "string" {
            return Ok(None);
        }
        let s: String =
            serde_json::from_str(self.raw.get()).map_err(|_| self.invalid("a JSON string"))?;
        if let Some(placeholder) = find_placeholder(&s) {
            return Err(AlertError::Placeholder {
                field: self.path.clone(),
                placeholder: excerpt(placeholder),
            });
        }
        Ok(Some(s))
    }

    /// The value as text: a string's content, or a number's or boolean's JSON text.
    ///
    /// # Errors
    /// [`AlertError::Placeholder`] for an unfilled placeholder; [`AlertError::InvalidField`]
    /// for an object or array.
    pub(crate) fn text(&self) -> Result<String, AlertError> {
        if let Some(s) = self.string_content()? {
            return Ok(s);
        }
        match self.json_type() {
            "number" | "boolean" => Ok(self.raw.get().to_string()),
            _ => Err(self.invalid("text")),
        }
    }

    /// The value as an exact decimal: a JSON number's digits, or a numeric string.
    ///
    /// # Errors
    /// [`AlertError::Placeholder`], or [`AlertError::InvalidField`] with `expected`.
    pub(crate) fn decimal(&self, expected: &str) -> Result<Decimal, AlertError> {
        let text = match self.string_content()? {
            Some(s) => s,
            None if self.json_type() == "number" => self.raw.get().to_string(),
            None => return Err(self.invalid(expected)),
        };
        parse_decimal(&text).ok_or_else(|| self.invalid(expected))
    }

    /// The value as a nested JSON object.
    ///
    /// # Errors
    /// [`AlertError::Placeholder`] when the value is a string holding a placeholder;
    /// [`AlertError::InvalidField`] when it is not an object.
    pub(crate) fn object(&self) -> Result<RawObject<'a>, AlertError> {
        self.string_content()?;
        if self.json_type() != "object" {
            return Err(self.invalid("a JSON object"));
        }
        RawObject::from_raw(self.raw, &self.path)
    }

    /// Builds an [`AlertError::InvalidField`] for this field.
    pub(crate) fn error(&self, expected: impl Into<String>) -> AlertError {
        self.invalid(expected)
    }
}

/// The first TradingView placeholder (`{{…}}`) in `s`, if any: from `{{` to the next `}}`,
/// or to the end when it is never closed.
pub(crate) fn find_placeholder(s: &str) -> Option<&str> {
    let start = s.find("{{")?;
    let rest = &s[start..];
    match rest[2..].find("}}") {
        Some(end) => Some(&rest[..end + 4]),
        None => Some(rest),
    }
}

/// For a body that is not valid JSON: the first placeholder in it and the field it stands
/// in, guessed from the nearest `"name":` before it. TradingView leaves unfilled
/// placeholders as they are, so `"contracts": {{strategy.order.contracts}}` on an alert that
/// is not on a strategy is not JSON at all.
pub(crate) fn placeholder_in_text(text: &str) -> Option<(String, String)> {
    let start = text.find("{{")?;
    let placeholder = find_placeholder(&text[start..])?;
    let before = text[..start].trim_end();
    let before = before.strip_suffix('"').unwrap_or(before).trim_end();
    let field = before
        .strip_suffix(':')
        .map(str::trim_end)
        .and_then(|b| b.strip_suffix('"'))
        .and_then(|b| b.rfind('"').map(|open| b[open + 1..].to_string()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "body".to_string());
    Some((field, excerpt(placeholder)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("{{ticker}}", Some("{{ticker}}"))]
    #[case("MNQ {{strategy.order.action}} now", Some("{{strategy.order.action}}"))]
    #[case("{{unclosed", Some("{{unclosed"))]
    #[case("buy", None)]
    #[case("{ticker}", None)]
    fn placeholders_are_found(#[case] s: &str, #[case] want: Option<&str>) {
        assert_eq!(find_placeholder(s), want);
    }

    #[rstest]
    #[case(
        r#"{"action": "buy", "contracts": {{strategy.order.contracts}}}"#,
        "contracts"
    )]
    #[case(r#"{"price":{{strategy.order.price}} }"#, "price")]
    #[case(r#"{"a": "x" {{oops}}"#, "body")]
    #[case(r#"{{strategy.order.alert_message}}"#, "body")]
    fn placeholder_in_broken_json_names_its_field(#[case] text: &str, #[case] field: &str) {
        let (found_field, placeholder) = placeholder_in_text(text).unwrap();
        assert_eq!(found_field, field);
        assert!(placeholder.starts_with("{{"));
    }

    #[test]
    fn field_names_match_without_regard_to_case_and_duplicates_are_refused() {
        let object = RawObject::parse(r#"{"Action": "buy", "TICKER": "MNQ1!"}"#).unwrap();
        assert_eq!(
            object.first(&["action"]).unwrap().unwrap().text().unwrap(),
            "buy"
        );
        let object = RawObject::parse(r#"{"action": "buy", "ACTION": "sell"}"#).unwrap();
        assert!(matches!(
            object.first(&["action"]),
            Err(AlertError::DuplicateField { .. })
        ));
    }

    #[test]
    fn null_counts_as_absent_and_the_next_synonym_is_used() {
        let object = RawObject::parse(r#"{"action": null, "data": "sell"}"#).unwrap();
        let field = object.first(&["action", "data"]).unwrap().unwrap();
        assert_eq!(field.path, "data");
    }

    #[test]
    fn dotted_paths_reach_nested_fields() {
        let object = RawObject::parse(r#"{"strategy_info": {"market_position": "flat"}}"#).unwrap();
        let field = object
            .first(&["strategy_info.market_position"])
            .unwrap()
            .unwrap();
        assert_eq!(field.path, "strategy_info.market_position");
        assert_eq!(field.text().unwrap(), "flat");
        let object = RawObject::parse(r#"{"strategy_info": "x"}"#).unwrap();
        assert!(
            object
                .first(&["strategy_info.market_position"])
                .unwrap()
                .is_none()
        );
    }

    #[rstest]
    #[case("false", true)]
    #[case("true", false)]
    #[case("0", true)]
    #[case("0.00", true)]
    #[case("-0", true)]
    #[case("0e3", true)]
    #[case("0.5", false)]
    #[case("10", false)]
    #[case(r#""""#, true)]
    #[case(r#"" 0 ""#, true)]
    #[case(r#""False""#, true)]
    #[case(r#""off""#, true)]
    #[case(r#""n\u006fne""#, true)]
    #[case(r#""0.0""#, true)]
    #[case(r#""yes""#, false)]
    #[case(r#""20""#, false)]
    #[case("[]", true)]
    #[case("[0]", false)]
    #[case("{ }", true)]
    #[case(r#"{"a":1}"#, false)]
    fn unset_values_are_recognised_without_reading_them(#[case] raw: &str, #[case] unset: bool) {
        let raw: Box<RawValue> = serde_json::from_str(raw).unwrap();
        assert_eq!(raw_is_unset(&raw), unset, "{}", raw.get());
    }
}
