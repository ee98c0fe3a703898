//! Why an alert body was refused: one typed error, its HTTP status and a message a person can
//! act on (DOMAIN.md §2: "Bad input gets a 4xx with a message a person can act on").

use serde::Serialize;

/// Every reason the webhook refuses an alert body.
///
/// The `Display` text is the message for the person who wrote the alert template: it says
/// what is wrong and what to send instead. [`AlertError::http_status`] is the one place that
/// maps an error to its HTTP status; [`AlertError::kind`] is a short, bounded name for logs
/// and metric labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertError {
    /// The body is larger than [`crate::MAX_BODY_BYTES`].
    #[error(
        "the alert body is {size} bytes, over the limit of {limit} bytes: send only the fields \
         of the alert template"
    )]
    TooLarge {
        /// Size of the body in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not UTF-8 text.
    #[error(
        "the alert body is not UTF-8 text (invalid byte at offset {offset}): the alert message \
         must be JSON text"
    )]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The body is not valid JSON (and holds no unfilled placeholder that would explain it).
    #[error(
        "the alert body is not valid JSON ({detail}): the alert message must be a JSON object \
         such as {{\"action\": \"buy\", \"ticker\": \"MNQ1!\", \"contracts\": 1}}"
    )]
    InvalidJson {
        /// What the JSON parser found, with its position.
        detail: String,
        /// Line of the error (1-based; 0 when the body is empty).
        line: usize,
        /// Column of the error (1-based; 0 when the body is empty).
        column: usize,
    },
    /// The body is valid JSON but not an object.
    #[error(
        "the alert body is a JSON {found}, not an object: the alert message must be a JSON \
         object such as {{\"action\": \"buy\", \"ticker\": \"MNQ1!\"}}"
    )]
    NotAnObject {
        /// The JSON type found (`array`, `string`, `number`, `boolean`, `null`).
        found: &'static str,
    },
    /// A TradingView placeholder was left unsubstituted in a field the alert needs.
    #[error(
        "field `{field}` holds {placeholder}, a placeholder TradingView did not fill in: the \
         alert is not on a strategy, or the placeholder is misspelled"
    )]
    Placeholder {
        /// The field holding it (`body` when the JSON could not be read around it).
        field: String,
        /// The placeholder as found, e.g. `{{strategy.order.action}}`.
        placeholder: String,
    },
    /// Neither `action` nor `data` (nor `command`) is present.
    #[error(
        "the alert has no action: add \"action\": \"{{{{strategy.order.action}}}}\" (or buy, \
         sell, close), or the strategy's position (\"market_position\", \"position_size\"), or \
         send a control alert such as {{\"command\": \"flatten\"}}"
    )]
    MissingAction,
    /// The action is not one of the accepted words.
    #[error(
        "unknown action {value:?} in field `{field}`: use buy, sell, long, short, close, exit, \
         flatten, close_long, close_short, cancel or add (any case)"
    )]
    UnknownAction {
        /// The field it came from (`action` or `data`).
        field: String,
        /// The value as sent (shortened when long).
        value: String,
    },
    /// The `command` of a control alert is not one of the accepted words.
    #[error(
        "unknown command {value:?}: a control alert is {{\"command\": \"flatten\"}}, \
         {{\"command\": \"kill\"}} or {{\"command\": \"resume\"}}"
    )]
    UnknownCommand {
        /// The value as sent (shortened when long).
        value: String,
    },
    /// A position field holds something other than long, short or flat.
    #[error(
        "unknown position {value:?} in field `{field}`: use long, short or flat (TradingView's \
         {{{{strategy.market_position}}}}); bullish and bearish are accepted too"
    )]
    UnknownPosition {
        /// The field it came from.
        field: String,
        /// The value as sent (shortened when long).
        value: String,
    },
    /// A buy that leaves the strategy short, or a sell that leaves it long — a partial exit —
    /// without the position sizes that say how much of the position was sold.
    #[error(
        "the alert says {action} while the strategy stays {position}: a partial exit. jt reduces \
         each trader by the fraction of its position the strategy sold, and needs the sizes for \
         it: add \"position_size\": {{{{strategy.position_size}}}} (with \"contracts\": \
         {{{{strategy.order.contracts}}}}, or \"prev_position_size\"), or send the full exit \
         (action \"close\")"
    )]
    PartialExit {
        /// `buy` or `sell`.
        action: &'static str,
        /// `long` or `short`.
        position: &'static str,
    },
    /// The action contradicts the position fields (or the position fields contradict each
    /// other): executing either reading could trade the wrong way.
    #[error(
        "{detail}. Send the strategy's own placeholders unchanged — \"action\": \
         \"{{{{strategy.order.action}}}}\", \"position_size\": {{{{strategy.position_size}}}}, \
         \"market_position\": \"{{{{strategy.market_position}}}}\" — or leave the position fields \
         out"
    )]
    PositionContradiction {
        /// What contradicts what, with the values sent.
        detail: String,
    },
    /// A field whose name says it is a risk instruction (take-profit, stop, trailing,
    /// break-even, sizing) that jt does not carry out: refused rather than dropped.
    #[error("field `{field}` looks like a risk instruction jt does not carry out: {advice}")]
    UnsupportedRiskField {
        /// The field as sent.
        field: String,
        /// What to write instead.
        advice: String,
    },
    /// TradersPost's `add` without a direction to add to.
    #[error(
        "action \"add\" needs the direction to add to: add \"sentiment\": \"long\" or \
         \"short\" (or \"position\")"
    )]
    AddWithoutDirection,
    /// No ticker in the alert and no symbol on the recorder.
    #[error(
        "the alert has no ticker and the recorder has no symbol: add \"ticker\": \
         \"{{{{ticker}}}}\" to the alert, or set the recorder's symbol"
    )]
    MissingTicker,
    /// The ticker's root is not in the instrument table.
    #[error(
        "unknown instrument in ticker {ticker:?}: its root is not in the instrument table (see \
         `jt instruments`); if the chart's symbol is not the traded contract, set custom_ticker"
    )]
    UnknownInstrument {
        /// The ticker that could not be resolved.
        ticker: String,
    },
    /// A field is present but its value is unusable.
    #[error("field `{field}` is {value}: {expected}")]
    InvalidField {
        /// The field (a dotted path for nested fields, e.g. `takeProfit.percent`).
        field: String,
        /// The value as sent, JSON-quoted when text (shortened when long).
        value: String,
        /// What the field must hold.
        expected: String,
    },
    /// One field name appears twice (names match without regard to case).
    #[error(
        "field `{field}` appears more than once (field names are matched without regard to \
         case): keep one"
    )]
    DuplicateField {
        /// The field name.
        field: String,
    },
    /// The alert's `time` is further ahead of the platform's clock than clock drift explains.
    #[error(
        "the alert's time {time} is {ahead_secs} s ahead of the platform's clock (at most \
         {tolerance_secs} s is accepted): send TradingView's {{{{timenow}}}} or a UTC time such as \
         2026-01-05T14:30:00Z, and check the sender's clock and time zone"
    )]
    FutureTime {
        /// The time as read (UTC).
        time: String,
        /// How far ahead of the ingest's clock it is, in seconds.
        ahead_secs: i64,
        /// The tolerance ([`crate::MAX_CLOCK_AHEAD_SECS`]).
        tolerance_secs: u32,
    },
}

impl AlertError {
    /// The HTTP status the webhook answers with (DOMAIN.md §2): 413 for a body over the size
    /// limit, 400 for a body that is not a JSON object, 422 for everything else.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            AlertError::TooLarge { .. } => 413,
            AlertError::NotUtf8 { .. }
            | AlertError::InvalidJson { .. }
            | AlertError::NotAnObject { .. } => 400,
            AlertError::Placeholder { .. }
            | AlertError::MissingAction
            | AlertError::UnknownAction { .. }
            | AlertError::UnknownCommand { .. }
            | AlertError::UnknownPosition { .. }
            | AlertError::PartialExit { .. }
            | AlertError::PositionContradiction { .. }
            | AlertError::UnsupportedRiskField { .. }
            | AlertError::AddWithoutDirection
            | AlertError::MissingTicker
            | AlertError::UnknownInstrument { .. }
            | AlertError::InvalidField { .. }
            | AlertError::DuplicateField { .. }
            | AlertError::FutureTime { .. } => 422,
        }
    }

    /// A short, fixed name of the error kind (bounded: fit for a metric label).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            AlertError::TooLarge { .. } => "too_large",
            AlertError::NotUtf8 { .. } => "not_utf8",
            AlertError::InvalidJson { .. } => "invalid_json",
            AlertError::NotAnObject { .. } => "not_an_object",
            AlertError::Placeholder { .. } => "placeholder",
            AlertError::MissingAction => "missing_action",
            AlertError::UnknownAction { .. } => "unknown_action",
            AlertError::UnknownCommand { .. } => "unknown_command",
            AlertError::UnknownPosition { .. } => "unknown_position",
            AlertError::PartialExit { .. } => "partial_exit",
            AlertError::PositionContradiction { .. } => "position_contradiction",
            AlertError::UnsupportedRiskField { .. } => "unsupported_risk_field",
            AlertError::AddWithoutDirection => "add_without_direction",
            AlertError::MissingTicker => "missing_ticker",
            AlertError::UnknownInstrument { .. } => "unknown_instrument",
            AlertError::InvalidField { .. } => "invalid_field",
            AlertError::DuplicateField { .. } => "duplicate_field",
            AlertError::FutureTime { .. } => "future_time",
        }
    }

    /// The webhook's error answer, one line of JSON:
    /// `{"status": <HTTP status>, "error": "<message>"}`.
    #[must_use]
    pub fn response_json(&self) -> String {
        // `Value::String`'s Display is infallible JSON string escaping.
        let message = serde_json::Value::String(self.to_string());
        format!(r#"{{"status":{},"error":{message}}}"#, self.http_status())
    }
}

/// Shortens a value quoted in an error message, so a 60 KiB field does not become a 60 KiB
/// message.
pub(crate) fn excerpt(value: &str) -> String {
    const MAX_CHARS: usize = 80;
    if value.chars().count() <= MAX_CHARS {
        return value.to_string();
    }
    let mut out: String = value.chars().take(MAX_CHARS).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(AlertError::TooLarge { size: 70_000, limit: 65_536 }, 413)]
    #[case(AlertError::NotUtf8 { offset: 3 }, 400)]
    #[case(AlertError::InvalidJson { detail: "x".into(), line: 1, column: 2 }, 400)]
    #[case(AlertError::NotAnObject { found: "array" }, 400)]
    #[case(AlertError::Placeholder { field: "action".into(), placeholder: "{{x}}".into() }, 422)]
    #[case(AlertError::MissingAction, 422)]
    #[case(AlertError::UnknownAction { field: "action".into(), value: "hold".into() }, 422)]
    #[case(AlertError::UnknownCommand { value: "stop".into() }, 422)]
    #[case(AlertError::UnknownPosition { field: "position".into(), value: "x".into() }, 422)]
    #[case(AlertError::PartialExit { action: "sell", position: "long" }, 422)]
    #[case(AlertError::PositionContradiction { detail: "x".into() }, 422)]
    #[case(AlertError::UnsupportedRiskField { field: "update_tp".into(), advice: "y".into() }, 422)]
    #[case(AlertError::AddWithoutDirection, 422)]
    #[case(AlertError::MissingTicker, 422)]
    #[case(AlertError::UnknownInstrument { ticker: "AAPL".into() }, 422)]
    #[case(AlertError::InvalidField { field: "qty".into(), value: "x".into(), expected: "y".into() }, 422)]
    #[case(AlertError::DuplicateField { field: "action".into() }, 422)]
    fn every_error_maps_to_the_status_of_domain_section_2(
        #[case] error: AlertError,
        #[case] status: u16,
    ) {
        assert_eq!(error.http_status(), status);
        let response: serde_json::Value = serde_json::from_str(&error.response_json()).unwrap();
        assert!(error.response_json().starts_with(r#"{"status":"#));
        assert_eq!(response["status"], status);
        assert_eq!(response["error"], error.to_string());
        assert!(!error.kind().is_empty());
    }

    #[test]
    fn placeholder_message_says_what_to_fix() {
        let e = AlertError::Placeholder {
            field: "action".into(),
            placeholder: "{{strategy.order.action}}".into(),
        };
        assert_eq!(
            e.to_string(),
            "field `action` holds {{strategy.order.action}}, a placeholder TradingView did not \
             fill in: the alert is not on a strategy, or the placeholder is misspelled"
        );
    }

    #[test]
    fn missing_ticker_message_shows_the_template_field() {
        assert!(
            AlertError::MissingTicker
                .to_string()
                .contains("\"ticker\": \"{{ticker}}\"")
        );
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(10_000);
        let short = excerpt(&long);
        assert_eq!(short.chars().count(), 81);
        assert_eq!(excerpt("buy"), "buy");
    }
}
