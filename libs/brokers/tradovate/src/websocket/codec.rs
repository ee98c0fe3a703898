//! The Tradovate WebSocket frame codec (BROKERS.md §1.6), SockJS-derived:
//!
//! | direction | text | meaning |
//! |---|---|---|
//! | server → client | `o` | open: authorize now |
//! | server → client | `h` | heartbeat |
//! | server → client | `a[…]` | a JSON array of messages (responses `{i,s,d}`, events `{e,d}`) |
//! | server → client | `c[code,"reason"]` | close |
//! | client → server | `[]` | heartbeat |
//! | client → server | `endpoint\nid\nquery\nbody` | a request (empty fields keep their newline) |

use serde::Deserialize;
use serde_json::value::RawValue;

/// The client heartbeat frame.
pub const CLIENT_HEARTBEAT: &str = "[]";

/// A frame that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// One message inside an `a[…]` frame, undecoded beyond its envelope.
#[derive(Debug, Clone)]
pub enum WsMessage {
    /// The answer to a request.
    Response {
        /// The request id it answers.
        id: i64,
        /// HTTP-like status.
        status: u16,
        /// Payload (JSON of the REST answer for 2xx, an error string otherwise), if any.
        data: Option<Box<RawValue>>,
    },
    /// A pushed event (`props`, `shutdown`, `md`, `chart`, `clock`).
    Event {
        /// The event name (`e`).
        name: String,
        /// Its payload (`d`).
        data: Option<Box<RawValue>>,
    },
}

/// A frame from the server.
#[derive(Debug, Clone)]
pub enum ServerFrame {
    /// `o`.
    Open,
    /// `h`.
    Heartbeat,
    /// `a[…]`.
    Messages(Vec<WsMessage>),
    /// `c[code,"reason"]`.
    Close {
        /// Close code, when given.
        code: Option<i64>,
        /// Reason, when given.
        reason: Option<String>,
    },
}

/// A frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `[]`.
    Heartbeat,
    /// `endpoint\nid\nquery\nbody`.
    Request(ClientRequest),
}

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    /// REST path without the leading `/`.
    pub endpoint: String,
    /// Request id, echoed in the response's `i`.
    pub id: i64,
    /// Query string (may be empty).
    pub query: String,
    /// Body: JSON, or the raw token for `authorize` (may be empty).
    pub body: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    i: Option<i64>,
    #[serde(default)]
    s: Option<u16>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    d: Option<Box<RawValue>>,
}

/// Decodes one server frame.
///
/// # Errors
/// A [`CodecError`] naming what is wrong.
pub fn decode_server_frame(text: &str) -> Result<ServerFrame, CodecError> {
    let Some(kind) = text.chars().next() else {
        return Err(CodecError("empty frame".into()));
    };
    let rest = &text[kind.len_utf8()..];
    match kind {
        'o' if rest.trim().is_empty() => Ok(ServerFrame::Open),
        'h' if rest.trim().is_empty() => Ok(ServerFrame::Heartbeat),
        'a' => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(rest)
                .map_err(|e| CodecError(format!("`a` frame is not a JSON array: {e}")))?;
            items
                .into_iter()
                .map(|item| {
                    let env: Envelope = serde_json::from_str(item.get()).map_err(|e| {
                        CodecError(format!("message is not an object ({e}): {}", item.get()))
                    })?;
                    match (env.e, env.i, env.s) {
                        (Some(name), _, _) => Ok(WsMessage::Event { name, data: env.d }),
                        (None, Some(id), Some(status)) => Ok(WsMessage::Response {
                            id,
                            status,
                            data: env.d,
                        }),
                        _ => Err(CodecError(format!(
                            "message is neither a response nor an event: {}",
                            item.get()
                        ))),
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(ServerFrame::Messages)
        }
        'c' => {
            if rest.trim().is_empty() {
                return Ok(ServerFrame::Close {
                    code: None,
                    reason: None,
                });
            }
            let parts: Vec<serde_json::Value> = serde_json::from_str(rest)
                .map_err(|e| CodecError(format!("`c` frame is not a JSON array: {e}")))?;
            Ok(ServerFrame::Close {
                code: parts.first().and_then(serde_json::Value::as_i64),
                reason: parts
                    .get(1)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string),
            })
        }
        _ => Err(CodecError(format!(
            "unknown frame type {kind:?} (expected o, h, a or c)"
        ))),
    }
}

/// Encodes a client request.
#[must_use]
pub fn encode_request(endpoint: &str, id: i64, query: &str, body: &str) -> String {
    format!("{endpoint}\n{id}\n{query}\n{body}")
}

/// Decodes a client frame (captured traffic).
///
/// # Errors
/// A [`CodecError`] when it is neither a heartbeat nor a four-field request.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, CodecError> {
    if text.trim() == CLIENT_HEARTBEAT {
        return Ok(ClientFrame::Heartbeat);
    }
    let mut parts = text.splitn(4, '\n');
    let endpoint = parts.next().unwrap_or_default();
    let (Some(id), Some(query), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CodecError(format!(
            "a request has four newline-separated fields (endpoint, id, query, body): {text:?}"
        )));
    };
    if endpoint.trim().is_empty() || endpoint.contains(char::is_whitespace) {
        return Err(CodecError(format!("bad endpoint {endpoint:?}")));
    }
    let id = id
        .trim()
        .parse()
        .map_err(|_| CodecError(format!("request id {id:?} is not an integer")))?;
    Ok(ClientFrame::Request(ClientRequest {
        endpoint: endpoint.to_string(),
        id,
        query: query.to_string(),
        body: body.to_string(),
    }))
}

/// The text of an error payload: `d` is a string, sometimes JSON-quoted once more.
#[must_use]
pub fn error_text(data: Option<&RawValue>) -> String {
    let Some(d) = data else {
        return String::new();
    };
    match serde_json::from_str::<String>(d.get()) {
        Ok(s) => match serde_json::from_str::<String>(&s) {
            Ok(inner) => inner,
            Err(_) => s,
        },
        Err(_) => d.get().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn kind(f: &ServerFrame) -> String {
        match f {
            ServerFrame::Open => "open".into(),
            ServerFrame::Heartbeat => "heartbeat".into(),
            ServerFrame::Close { code, reason } => format!("close {code:?} {reason:?}"),
            ServerFrame::Messages(m) => m
                .iter()
                .map(|m| match m {
                    WsMessage::Response { id, status, data } => format!(
                        "response {id} {status} {}",
                        data.as_ref().map_or("-", |d| d.get())
                    ),
                    WsMessage::Event { name, .. } => format!("event {name}"),
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    #[rstest]
    #[case("o", "open")]
    #[case("h", "heartbeat")]
    #[case(r#"a[{"s":200,"i":0}]"#, "response 0 200 -")]
    #[case(
        r#"a[{"i":3,"s":200,"d":{"ok":true}}]"#,
        r#"response 3 200 {"ok":true}"#
    )]
    #[case(
        r#"a[{"s":404,"i":1,"d":"\"Not found: quote/subscribe\""}]"#,
        r#"response 1 404 "\"Not found: quote/subscribe\"""#
    )]
    #[case(
        r#"a[{"e":"props","d":{}},{"i":2,"s":200,"d":[]}]"#,
        "event props; response 2 200 []"
    )]
    #[case(r#"c[3000,"Go away!"]"#, r#"close Some(3000) Some("Go away!")"#)]
    #[case("c", "close None None")]
    fn server_frames(#[case] text: &str, #[case] want: &str) {
        assert_eq!(kind(&decode_server_frame(text).unwrap()), want);
    }

    #[rstest]
    #[case("")]
    #[case("x")]
    #[case("oops")]
    #[case("a{}")]
    #[case("a[1]")]
    #[case(r#"a[{"d":1}]"#)]
    #[case("c{")]
    fn malformed_server_frames_are_errors(#[case] text: &str) {
        assert!(decode_server_frame(text).is_err(), "{text}");
    }

    #[rstest]
    #[case("[]", ClientFrame::Heartbeat)]
    #[case("authorize\n0\n\ntok", ClientFrame::Request(ClientRequest {
        endpoint: "authorize".into(), id: 0, query: String::new(), body: "tok".into() }))]
    #[case("executionReport/list\n4\n\n", ClientFrame::Request(ClientRequest {
        endpoint: "executionReport/list".into(), id: 4, query: String::new(), body: String::new() }))]
    #[case("tradingPermission/ldeps\n8\nmasterids=1\n", ClientFrame::Request(ClientRequest {
        endpoint: "tradingPermission/ldeps".into(), id: 8, query: "masterids=1".into(), body: String::new() }))]
    // A newline inside the body stays in the body.
    #[case("order/placeorder\n9\n\n{\"text\":\"a\nb\"}", ClientFrame::Request(ClientRequest {
        endpoint: "order/placeorder".into(), id: 9, query: String::new(), body: "{\"text\":\"a\nb\"}".into() }))]
    fn client_frames(#[case] text: &str, #[case] want: ClientFrame) {
        assert_eq!(decode_client_frame(text).unwrap(), want);
    }

    #[rstest]
    #[case("authorize")]
    #[case("authorize\nx\n\ntok")]
    #[case("\n1\n\n")]
    fn malformed_client_frames_are_errors(#[case] text: &str) {
        assert!(decode_client_frame(text).is_err());
    }

    #[test]
    fn requests_round_trip() {
        let text = encode_request("user/syncrequest", 1, "", r#"{"accounts":[33]}"#);
        assert_eq!(text, "user/syncrequest\n1\n\n{\"accounts\":[33]}");
        assert!(matches!(decode_client_frame(&text), Ok(ClientFrame::Request(r)) if r.id == 1));
    }

    #[test]
    fn error_payloads_are_unquoted() {
        let d = RawValue::from_string(r#""\"Not found: quote/subscribe\"""#.into()).unwrap();
        assert_eq!(error_text(Some(&d)), "Not found: quote/subscribe");
        let d = RawValue::from_string(r#""Access denied""#.into()).unwrap();
        assert_eq!(error_text(Some(&d)), "Access denied");
    }
}
