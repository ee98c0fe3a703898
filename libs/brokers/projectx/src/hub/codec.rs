//! The SignalR JSON hub protocol, client side (BROKERS.md §2.6): the handshake
//! `{"protocol":"json","version":1}` answered by `{}`, messages as JSON records ended by
//! `0x1E` (a frame may hold several), invocations (type 1), completions (3), pings (6) and the
//! close message (7). Records are decoded with their arguments left as raw JSON text, so the
//! models inside keep their exact numbers.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The record separator.
pub const RS: char = '\u{1e}';

/// The handshake request.
#[must_use]
pub fn handshake() -> String {
    format!("{{\"protocol\":\"json\",\"version\":1}}{RS}")
}

/// A keep-alive.
#[must_use]
pub fn ping() -> String {
    format!("{{\"type\":6}}{RS}")
}

/// An invocation of a hub method that expects a completion.
#[must_use]
pub fn invocation(id: u64, target: &str, arguments: &[serde_json::Value]) -> String {
    let v = serde_json::json!({
        "type": 1,
        "invocationId": id.to_string(),
        "target": target,
        "arguments": arguments,
    });
    format!("{v}{RS}")
}

/// The records of a frame.
#[must_use]
pub fn records(frame: &str) -> Vec<&str> {
    frame
        .split(RS)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe<'a> {
    #[serde(rename = "type", default)]
    kind: Option<i64>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default, borrow)]
    arguments: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    invocation_id: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    allow_reconnect: Option<bool>,
}

/// One message from the server.
#[derive(Debug)]
pub enum ServerMessage<'a> {
    /// The handshake answer (`{}`, or `{"error"}`).
    Handshake {
        /// The refusal, if any.
        error: Option<String>,
    },
    /// A client method invoked by the server, with its raw arguments.
    Invocation {
        /// Method (`GatewayUserOrder`, …).
        target: String,
        /// Arguments as raw JSON.
        arguments: Vec<&'a RawValue>,
    },
    /// The completion of one of our invocations.
    Completion {
        /// Its id.
        invocation_id: String,
        /// The hub's error, if the invocation failed.
        error: Option<String>,
    },
    /// A keep-alive.
    Ping,
    /// The server closes the connection.
    Close {
        /// Why.
        error: Option<String>,
        /// Whether it invites a reconnect.
        allow_reconnect: bool,
    },
    /// Anything else (stream items…).
    Other(i64),
}

/// Decodes one record.
///
/// # Errors
/// A text when the record is not JSON.
pub fn decode(record: &str) -> Result<ServerMessage<'_>, String> {
    let p: Probe<'_> = serde_json::from_str(record).map_err(|e| format!("{e}: {record}"))?;
    Ok(match p.kind {
        None => ServerMessage::Handshake { error: p.error },
        Some(1) => ServerMessage::Invocation {
            target: p.target.unwrap_or_default(),
            arguments: p.arguments.unwrap_or_default(),
        },
        Some(3) => ServerMessage::Completion {
            invocation_id: p.invocation_id.unwrap_or_default(),
            error: p.error,
        },
        Some(6) => ServerMessage::Ping,
        Some(7) => ServerMessage::Close {
            error: p.error,
            allow_reconnect: p.allow_reconnect.unwrap_or(false),
        },
        Some(other) => ServerMessage::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode_with_raw_arguments() {
        let frame = format!(
            "{{}}{RS}{{\"type\":1,\"target\":\"GatewayUserOrder\",\"arguments\":[{{\"action\":1,\"data\":{{\"id\":1,\"limitPrice\":21000.25}}}}]}}{RS}{{\"type\":6}}{RS}"
        );
        let rs = records(&frame);
        assert_eq!(rs.len(), 3);
        assert!(matches!(
            decode(rs[0]).unwrap(),
            ServerMessage::Handshake { error: None }
        ));
        match decode(rs[1]).unwrap() {
            ServerMessage::Invocation { target, arguments } => {
                assert_eq!(target, "GatewayUserOrder");
                assert!(arguments[0].get().contains("21000.25"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode(rs[2]).unwrap(), ServerMessage::Ping));
        let close = decode(r#"{"type":7,"error":"bye","allowReconnect":true}"#).unwrap();
        assert!(matches!(
            close,
            ServerMessage::Close {
                allow_reconnect: true,
                ..
            }
        ));
        let done = decode(r#"{"type":3,"invocationId":"4","result":null}"#).unwrap();
        assert!(matches!(
            done,
            ServerMessage::Completion { error: None, .. }
        ));
        assert!(decode("nope").is_err());
        assert!(invocation(3, "SubscribeOrders", &[serde_json::json!(7)]).ends_with(RS));
    }
}
