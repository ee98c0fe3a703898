//! The SignalR JSON hub protocol over a WebSocket, server side (BROKERS.md §2.6).
//!
//! Every message is a JSON object followed by the record separator `0x1E`; a frame may hold
//! several. The client opens with the handshake `{"protocol":"json","version":1}`, answered
//! with `{}` (or `{"error":…}` and a close). Then: invocations `{"type":1, "invocationId"?,
//! "target", "arguments"}` both ways, completions `{"type":3, "invocationId", "result"|"error"}`
//! for client invocations that carry an id, pings `{"type":6}` both ways, and
//! `{"type":7, "error"?, "allowReconnect"?}` before a close.

use serde_json::{Value, json};

/// The record separator that ends every message.
pub const RS: char = '\u{1e}';

/// Message types.
pub mod kind {
    /// An invocation.
    pub const INVOCATION: i64 = 1;
    /// A stream item (not used by ProjectX).
    pub const STREAM_ITEM: i64 = 2;
    /// The completion of an invocation.
    pub const COMPLETION: i64 = 3;
    /// A streaming invocation (not used by ProjectX).
    pub const STREAM_INVOCATION: i64 = 4;
    /// Cancels a stream (not used by ProjectX).
    pub const CANCEL_INVOCATION: i64 = 5;
    /// A keep-alive.
    pub const PING: i64 = 6;
    /// The connection is closing.
    pub const CLOSE: i64 = 7;
}

/// Splits a frame into its messages (empty records are skipped).
#[must_use]
pub fn records(frame: &str) -> Vec<&str> {
    frame
        .split(RS)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect()
}

/// One message as the text to send (with its separator).
#[must_use]
pub fn frame(message: &Value) -> String {
    format!("{message}{RS}")
}

/// What the handshake asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// JSON, version 1: accepted.
    Json,
    /// Anything else: the answer is this error.
    Refused(String),
}

/// Reads the handshake request.
#[must_use]
pub fn handshake(record: &str) -> Handshake {
    let Ok(v) = serde_json::from_str::<Value>(record) else {
        return Handshake::Refused("Handshake request is not valid JSON.".into());
    };
    let protocol = v.get("protocol").and_then(Value::as_str).unwrap_or("");
    let version = v.get("version").and_then(Value::as_i64).unwrap_or(-1);
    if !protocol.eq_ignore_ascii_case("json") {
        return Handshake::Refused(format!(
            "The protocol '{protocol}' is not supported: this hub speaks 'json'."
        ));
    }
    if version != 1 {
        return Handshake::Refused(format!(
            "The server does not support version {version} of the 'json' protocol."
        ));
    }
    Handshake::Json
}

/// A message from the client, after the handshake.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// A hub method call.
    Invocation {
        /// Present when the client waits for a completion.
        invocation_id: Option<String>,
        /// Method name.
        target: String,
        /// Arguments.
        arguments: Vec<Value>,
    },
    /// A streaming call (answered with an error completion).
    StreamInvocation {
        /// Its id.
        invocation_id: Option<String>,
        /// Method name.
        target: String,
    },
    /// A keep-alive.
    Ping,
    /// The client is closing.
    Close,
    /// Another type the hub ignores (completions, stream items, cancels).
    Other(i64),
}

/// Reads one client message.
///
/// # Errors
/// A text for the close message when the record is not a SignalR message.
pub fn client_message(record: &str) -> Result<ClientMessage, String> {
    let v: Value = serde_json::from_str(record).map_err(|e| format!("Invalid message: {e}"))?;
    let t = v
        .get("type")
        .and_then(Value::as_i64)
        .ok_or("Invalid message: no integer 'type'")?;
    let invocation_id = v.get("invocationId").and_then(|i| match i {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let target = || {
        v.get("target")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or("Invalid invocation: no 'target'")
    };
    Ok(match t {
        kind::INVOCATION => ClientMessage::Invocation {
            invocation_id,
            target: target()?,
            arguments: v
                .get("arguments")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        },
        kind::STREAM_INVOCATION => ClientMessage::StreamInvocation {
            invocation_id,
            target: target()?,
        },
        kind::PING => ClientMessage::Ping,
        kind::CLOSE => ClientMessage::Close,
        other => ClientMessage::Other(other),
    })
}

/// A server invocation of a client method.
#[must_use]
pub fn invocation(target: &str, arguments: Vec<Value>) -> Value {
    json!({"type": kind::INVOCATION, "target": target, "arguments": arguments})
}

/// A completion without a result.
#[must_use]
pub fn completion(invocation_id: &str) -> Value {
    json!({"type": kind::COMPLETION, "invocationId": invocation_id, "result": null})
}

/// A completion carrying a hub error.
#[must_use]
pub fn completion_error(invocation_id: &str, error: &str) -> Value {
    json!({"type": kind::COMPLETION, "invocationId": invocation_id, "error": error})
}

/// A keep-alive.
#[must_use]
pub fn ping() -> Value {
    json!({"type": kind::PING})
}

/// The close message.
#[must_use]
pub fn close(error: Option<&str>, allow_reconnect: bool) -> Value {
    match error {
        Some(e) => json!({"type": kind::CLOSE, "error": e, "allowReconnect": allow_reconnect}),
        None => json!({"type": kind::CLOSE}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_on_the_record_separator() {
        let f = format!("{}{}", frame(&ping()), frame(&json!({"type": 7})));
        assert_eq!(records(&f), vec![r#"{"type":6}"#, r#"{"type":7}"#]);
        assert!(records("\u{1e}\u{1e}").is_empty());
    }

    #[test]
    fn handshake_accepts_json_version_1_only() {
        assert_eq!(
            handshake(r#"{"protocol":"json","version":1}"#),
            Handshake::Json
        );
        assert!(matches!(
            handshake(r#"{"protocol":"messagepack","version":1}"#),
            Handshake::Refused(_)
        ));
        assert!(matches!(
            handshake(r#"{"protocol":"json","version":2}"#),
            Handshake::Refused(_)
        ));
        assert!(matches!(handshake("nope"), Handshake::Refused(_)));
    }

    #[test]
    fn client_messages_decode() {
        assert_eq!(
            client_message(
                r#"{"type":1,"invocationId":"3","target":"SubscribeOrders","arguments":[7]}"#
            ),
            Ok(ClientMessage::Invocation {
                invocation_id: Some("3".into()),
                target: "SubscribeOrders".into(),
                arguments: vec![json!(7)],
            })
        );
        assert_eq!(
            client_message(r#"{"type":1,"target":"SubscribeAccounts","arguments":[]}"#),
            Ok(ClientMessage::Invocation {
                invocation_id: None,
                target: "SubscribeAccounts".into(),
                arguments: vec![],
            })
        );
        assert_eq!(client_message(r#"{"type":6}"#), Ok(ClientMessage::Ping));
        assert!(client_message(r#"{"type":1}"#).is_err());
        assert!(client_message("[]").is_err());
    }
}
