//! Typed WebSocket messages: `props` entity events, the sync snapshot, `shutdown`, and the
//! readable form of whole frames that `jt tradovate decode` prints.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::common::entities as wire;

use super::codec::{self, ClientFrame, CodecError, ServerFrame, WsMessage};

/// A decoded entity of a `props` event or a sync snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "entity_type", content = "entity", rename_all = "camelCase")]
pub enum Entity {
    /// `account`.
    Account(wire::Account),
    /// `position`.
    Position(wire::Position),
    /// `order`.
    Order(wire::Order),
    /// `orderVersion`.
    OrderVersion(wire::OrderVersion),
    /// `command`.
    Command(wire::Command),
    /// `fill`.
    Fill(wire::Fill),
    /// `cashBalance`.
    CashBalance(wire::CashBalance),
    /// `contract`.
    Contract(wire::Contract),
    /// `executionReport`.
    ExecutionReport(wire::ExecutionReport),
    /// `orderStrategy`.
    OrderStrategy(wire::OrderStrategy),
    /// `orderStrategyLink`.
    OrderStrategyLink(wire::OrderStrategyLink),
    /// Any other entity type, kept as sent.
    Other {
        /// Its `entityType`.
        name: String,
        /// Its JSON.
        raw: RawJson,
    },
}

/// JSON kept exactly as sent (compared by its text).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct RawJson(pub Box<RawValue>);

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for RawJson {}

fn typed<T: for<'de> Deserialize<'de>>(name: &str, raw: &RawValue) -> Result<T, CodecError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        CodecError(format!(
            "{name} entity does not decode ({e}): {}",
            raw.get()
        ))
    })
}

/// Decodes one entity of type `entity_type`.
///
/// # Errors
/// When a known entity type does not have its schema's shape.
pub fn decode_entity(entity_type: &str, raw: &RawValue) -> Result<Entity, CodecError> {
    Ok(match entity_type {
        "account" => Entity::Account(typed(entity_type, raw)?),
        "position" => Entity::Position(typed(entity_type, raw)?),
        "order" => Entity::Order(typed(entity_type, raw)?),
        "orderVersion" => Entity::OrderVersion(typed(entity_type, raw)?),
        "command" => Entity::Command(typed(entity_type, raw)?),
        "fill" => Entity::Fill(typed(entity_type, raw)?),
        "cashBalance" => Entity::CashBalance(typed(entity_type, raw)?),
        "contract" => Entity::Contract(typed(entity_type, raw)?),
        "executionReport" => Entity::ExecutionReport(typed(entity_type, raw)?),
        "orderStrategy" => Entity::OrderStrategy(typed(entity_type, raw)?),
        "orderStrategyLink" => Entity::OrderStrategyLink(typed(entity_type, raw)?),
        other => Entity::Other {
            name: other.to_string(),
            raw: RawJson(raw.to_owned()),
        },
    })
}

/// `Created`, `Updated`, `Deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PropsEventType {
    /// Created.
    Created,
    /// Updated.
    Updated,
    /// Deleted.
    Deleted,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PropsRaw {
    entity_type: String,
    event_type: PropsEventType,
    entity: Box<RawValue>,
}

/// A `props` event: one or several entities created, updated or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropsEvent {
    /// What happened.
    pub event_type: PropsEventType,
    /// The entities (`entity` may be an object or an array).
    pub entities: Vec<Entity>,
}

/// Decodes the `d` of a `props` event.
///
/// # Errors
/// When the payload does not have the documented shape.
pub fn decode_props(data: &RawValue) -> Result<PropsEvent, CodecError> {
    let p: PropsRaw = serde_json::from_str(data.get()).map_err(|e| {
        CodecError(format!(
            "props payload does not decode ({e}): {}",
            data.get()
        ))
    })?;
    let raws: Vec<Box<RawValue>> = if p.entity.get().trim_start().starts_with('[') {
        serde_json::from_str(p.entity.get())
            .map_err(|e| CodecError(format!("props entity array does not decode: {e}")))?
    } else {
        vec![p.entity]
    };
    let entities = raws
        .iter()
        .map(|r| decode_entity(&p.entity_type, r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PropsEvent {
        event_type: p.event_type,
        entities,
    })
}

/// `shutdown`: the server is about to close the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shutdown {
    /// `Maintenance`, `ConnectionQuotaReached`, `IPQuotaReached`.
    pub reason_code: String,
    /// Text, when given.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SyncRaw {
    #[serde(default)]
    users: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    accounts: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    positions: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    orders: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    order_versions: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    commands: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    fills: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    cash_balances: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    contracts: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    order_strategies: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    order_strategy_links: Option<Vec<Box<RawValue>>>,
}

/// The initial answer of `user/syncrequest` (arrays may be absent or null).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncSnapshot {
    /// Number of users in it.
    pub users: usize,
    /// Accounts.
    pub accounts: Vec<wire::Account>,
    /// Positions.
    pub positions: Vec<wire::Position>,
    /// Orders.
    pub orders: Vec<wire::Order>,
    /// Order versions.
    pub order_versions: Vec<wire::OrderVersion>,
    /// Commands.
    pub commands: Vec<wire::Command>,
    /// Fills.
    pub fills: Vec<wire::Fill>,
    /// Cash balances.
    pub cash_balances: Vec<wire::CashBalance>,
    /// Contracts.
    pub contracts: Vec<wire::Contract>,
    /// Order strategies.
    pub order_strategies: Vec<wire::OrderStrategy>,
    /// Order strategy links.
    pub order_strategy_links: Vec<wire::OrderStrategyLink>,
    /// Entities that did not decode (kept out, reported).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undecoded: Vec<String>,
}

fn list<T: for<'de> Deserialize<'de>>(
    name: &str,
    raws: Option<Vec<Box<RawValue>>>,
    undecoded: &mut Vec<String>,
) -> Vec<T> {
    raws.unwrap_or_default()
        .iter()
        .filter_map(|r| match serde_json::from_str(r.get()) {
            Ok(v) => Some(v),
            Err(e) => {
                undecoded.push(format!("{name}: {e}"));
                None
            }
        })
        .collect()
}

/// Decodes a sync answer when `data` is one (it has `users`); `None` otherwise.
#[must_use]
pub fn decode_sync(data: &RawValue) -> Option<SyncSnapshot> {
    if !data.get().trim_start().starts_with('{') {
        return None;
    }
    let raw: SyncRaw = serde_json::from_str(data.get()).ok()?;
    let users = raw.users.as_ref()?.len();
    let mut undecoded = Vec::new();
    Some(SyncSnapshot {
        users,
        accounts: list("accounts", raw.accounts, &mut undecoded),
        positions: list("positions", raw.positions, &mut undecoded),
        orders: list("orders", raw.orders, &mut undecoded),
        order_versions: list("orderVersions", raw.order_versions, &mut undecoded),
        commands: list("commands", raw.commands, &mut undecoded),
        fills: list("fills", raw.fills, &mut undecoded),
        cash_balances: list("cashBalances", raw.cash_balances, &mut undecoded),
        contracts: list("contracts", raw.contracts, &mut undecoded),
        order_strategies: list("orderStrategies", raw.order_strategies, &mut undecoded),
        order_strategy_links: list(
            "orderStrategyLinks",
            raw.order_strategy_links,
            &mut undecoded,
        ),
        undecoded,
    })
}

/// A penalty inside a 200 response (`{"p-ticket","p-time","p-captcha"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PenaltyPayload {
    /// Ticket.
    #[serde(rename = "p-ticket", default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Seconds to wait.
    #[serde(rename = "p-time", default, skip_serializing_if = "Option::is_none")]
    pub time: Option<serde_json::Number>,
    /// Captcha demanded.
    #[serde(rename = "p-captcha", default, skip_serializing_if = "Option::is_none")]
    pub captcha: Option<bool>,
}

/// One price level of a market-data quote (`entries.Bid`, `entries.Offer`, `entries.Trade`…):
/// either field may be absent (BROKERS.md §1.9).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MdEntry {
    /// The price.
    #[serde(with = "jt_net::exact::option", default)]
    pub price: Option<rust_decimal::Decimal>,
}

/// The entries of a quote this platform reads; the others (volume, open, high, low,
/// settlement, open interest) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MdEntries {
    /// Best bid.
    #[serde(rename = "Bid", default)]
    pub bid: Option<MdEntry>,
    /// Best offer (ask).
    #[serde(rename = "Offer", default)]
    pub offer: Option<MdEntry>,
    /// Last trade.
    #[serde(rename = "Trade", default)]
    pub trade: Option<MdEntry>,
}

/// One quote of an `md` event: the contract by id only (names come from `contract/find`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MdQuote {
    /// The exchange's time.
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// The contract id.
    pub contract_id: i64,
    /// Bid, offer, trade.
    #[serde(default)]
    pub entries: MdEntries,
}

#[derive(Deserialize)]
struct MdRaw {
    #[serde(default)]
    quotes: Vec<MdQuote>,
}

/// The quotes of an `md` event's payload (empty for DOM, histogram or chart payloads).
///
/// # Errors
/// When the payload, or a quote in it, does not have the documented shape.
pub fn decode_md_quotes(data: &RawValue) -> Result<Vec<MdQuote>, CodecError> {
    serde_json::from_str::<MdRaw>(data.get())
        .map(|m| m.quotes)
        .map_err(|e| CodecError(format!("md payload does not decode ({e}): {}", data.get())))
}

/// The penalty a 200 payload carries instead of an answer, if it is one.
#[must_use]
pub fn penalty(data: &RawValue) -> Option<PenaltyPayload> {
    let t = data.get();
    if !t.contains("p-ticket") && !t.contains("p-captcha") {
        return None;
    }
    serde_json::from_str(t).ok()
}

/// A readable, typed message of an `a[…]` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReadableMessage {
    /// A response.
    Response {
        /// Request id.
        id: i64,
        /// Status.
        status: u16,
        /// The sync snapshot, when this answers a sync request.
        #[serde(skip_serializing_if = "Option::is_none")]
        sync: Option<Box<SyncSnapshot>>,
        /// A penalty, when the 200 carries one.
        #[serde(skip_serializing_if = "Option::is_none")]
        penalty: Option<PenaltyPayload>,
        /// Any other payload of a 2xx, as sent.
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<RawJson>,
        /// The error text of a non-2xx.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A `props` event.
    Props(PropsEvent),
    /// A `shutdown` event.
    Shutdown(Shutdown),
    /// Any other event (`md`, `chart`, `clock`), as sent.
    Event {
        /// Its name.
        name: String,
        /// Its payload.
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<RawJson>,
    },
}

/// Makes one message readable.
///
/// # Errors
/// When a `props` or `shutdown` payload does not have its documented shape.
pub fn readable_message(message: WsMessage) -> Result<ReadableMessage, CodecError> {
    Ok(match message {
        WsMessage::Response { id, status, data } => {
            if (200..300).contains(&status) {
                let sync = data.as_deref().and_then(decode_sync).map(Box::new);
                let pen = data.as_deref().and_then(penalty);
                let data = if sync.is_some() || pen.is_some() {
                    None
                } else {
                    data.map(RawJson)
                };
                ReadableMessage::Response {
                    id,
                    status,
                    sync,
                    penalty: pen,
                    data,
                    error: None,
                }
            } else {
                ReadableMessage::Response {
                    id,
                    status,
                    sync: None,
                    penalty: None,
                    data: None,
                    error: Some(codec::error_text(data.as_deref())),
                }
            }
        }
        WsMessage::Event { name, data } => match (name.as_str(), data) {
            ("props", Some(d)) => ReadableMessage::Props(decode_props(&d)?),
            ("shutdown", Some(d)) => ReadableMessage::Shutdown(
                serde_json::from_str(d.get())
                    .map_err(|e| CodecError(format!("shutdown payload does not decode: {e}")))?,
            ),
            (_, data) => ReadableMessage::Event {
                name,
                data: data.map(RawJson),
            },
        },
    })
}

/// Which side sent a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    /// The server (`h`).
    Server,
    /// The client (`[]`).
    Client,
}

/// One frame of captured traffic, decoded for reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReadableFrame {
    /// `o`.
    Open,
    /// `h` or `[]`.
    Heartbeat {
        /// Who sent it.
        from: Sender,
    },
    /// `c[…]`.
    Close {
        /// Code.
        code: Option<i64>,
        /// Reason.
        reason: Option<String>,
    },
    /// `a[…]`.
    Messages {
        /// The messages.
        messages: Vec<ReadableMessage>,
    },
    /// A client request.
    Request {
        /// Endpoint.
        endpoint: String,
        /// Request id.
        id: i64,
        /// Query string.
        query: String,
        /// Body: JSON when it parses, else the text (the `authorize` token).
        body: RequestBody,
    },
}

/// A request body as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RequestBody {
    /// No body.
    Empty,
    /// A JSON body.
    Json(RawJson),
    /// A non-JSON body (a raw token).
    Text(String),
}

/// Decodes one line of captured traffic: a server frame, or a client frame in which the two
/// characters `\n` stand for the request's newlines.
///
/// # Errors
/// A [`CodecError`] naming what is wrong.
pub fn decode_line(line: &str) -> Result<ReadableFrame, CodecError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.contains("\\n") && !line.starts_with("a[") && !line.starts_with("c[") {
        let text = line.replacen("\\n", "\n", 3);
        return client_readable(decode_client_frame_checked(&text)?);
    }
    if line.trim() == codec::CLIENT_HEARTBEAT {
        return Ok(ReadableFrame::Heartbeat {
            from: Sender::Client,
        });
    }
    match codec::decode_server_frame(line)? {
        ServerFrame::Open => Ok(ReadableFrame::Open),
        ServerFrame::Heartbeat => Ok(ReadableFrame::Heartbeat {
            from: Sender::Server,
        }),
        ServerFrame::Close { code, reason } => Ok(ReadableFrame::Close { code, reason }),
        ServerFrame::Messages(ms) => Ok(ReadableFrame::Messages {
            messages: ms
                .into_iter()
                .map(readable_message)
                .collect::<Result<Vec<_>, _>>()?,
        }),
    }
}

fn decode_client_frame_checked(text: &str) -> Result<ClientFrame, CodecError> {
    codec::decode_client_frame(text)
}

fn client_readable(frame: ClientFrame) -> Result<ReadableFrame, CodecError> {
    Ok(match frame {
        ClientFrame::Heartbeat => ReadableFrame::Heartbeat {
            from: Sender::Client,
        },
        ClientFrame::Request(r) => {
            let body = if r.body.trim().is_empty() {
                RequestBody::Empty
            } else {
                match serde_json::from_str::<Box<RawValue>>(&r.body) {
                    Ok(json) => RequestBody::Json(RawJson(json)),
                    Err(_) => RequestBody::Text(r.body.clone()),
                }
            };
            ReadableFrame::Request {
                endpoint: r.endpoint,
                id: r.id,
                query: r.query,
                body,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    fn out(line: &str) -> String {
        serde_json::to_string(&decode_line(line).unwrap()).unwrap()
    }

    #[rstest]
    #[case("o", r#"{"kind":"open"}"#)]
    #[case("h", r#"{"kind":"heartbeat","from":"server"}"#)]
    #[case("[]", r#"{"kind":"heartbeat","from":"client"}"#)]
    #[case(
        r#"c[3000,"Go away!"]"#,
        r#"{"kind":"close","code":3000,"reason":"Go away!"}"#
    )]
    #[case(
        r#"a[{"s":200,"i":0}]"#,
        r#"{"kind":"messages","messages":[{"type":"response","id":0,"status":200}]}"#
    )]
    #[case(r#"a[{"s":404,"i":1,"d":"\"Not found: quote/subscribe\""}]"#,
           r#"{"kind":"messages","messages":[{"type":"response","id":1,"status":404,"error":"Not found: quote/subscribe"}]}"#)]
    #[case(r#"a[{"i":5,"s":200,"d":{"p-ticket":"abc","p-time":5}}]"#,
           r#"{"kind":"messages","messages":[{"type":"response","id":5,"status":200,"penalty":{"p-ticket":"abc","p-time":5}}]}"#)]
    #[case(r#"a[{"e":"shutdown","d":{"reasonCode":"Maintenance"}}]"#,
           r#"{"kind":"messages","messages":[{"type":"shutdown","reasonCode":"Maintenance","reason":null}]}"#)]
    #[case(r#"a[{"e":"clock","d":"{\"t\":\"2019-08-26T16:43:08.599Z\",\"s\":20}"}]"#,
           r#"{"kind":"messages","messages":[{"type":"event","name":"clock","data":"{\"t\":\"2019-08-26T16:43:08.599Z\",\"s\":20}"}]}"#)]
    #[case(
        r"authorize\n0\n\nmy-token",
        r#"{"kind":"request","endpoint":"authorize","id":0,"query":"","body":"my-token"}"#
    )]
    #[case(r#"user/syncrequest\n1\n\n{"accounts":[33]}"#,
           r#"{"kind":"request","endpoint":"user/syncrequest","id":1,"query":"","body":{"accounts":[33]}}"#)]
    #[case(
        r"position/deps\n7\nmasterid=33\n",
        r#"{"kind":"request","endpoint":"position/deps","id":7,"query":"masterid=33","body":null}"#
    )]
    fn frames_read_as_documented(#[case] line: &str, #[case] want: &str) {
        assert_eq!(out(line), want);
    }

    #[test]
    fn props_entities_are_typed_and_may_be_arrays() {
        let line = r#"a[{"e":"props","d":{"entityType":"fill","eventType":"Created","entity":[{"id":901,"orderId":210,"contractId":65543,"timestamp":"2025-12-08T15:30:00.125Z","action":"Buy","qty":2,"price":21500.25,"active":true}]}}]"#;
        let ReadableFrame::Messages { messages } = decode_line(line).unwrap() else {
            panic!()
        };
        let ReadableMessage::Props(p) = &messages[0] else {
            panic!()
        };
        assert_eq!(p.event_type, PropsEventType::Created);
        let Entity::Fill(f) = &p.entities[0] else {
            panic!()
        };
        assert_eq!(f.price, dec!(21500.25));
        assert!(out(line).contains(r#""entity_type":"fill","entity":{"id":901"#));
        assert!(out(line).contains(r#""price":21500.25"#));
    }

    #[test]
    fn a_sync_answer_is_decoded_and_null_arrays_are_empty() {
        let line = r#"a[{"i":1,"s":200,"d":{"users":[{"id":90}],"accounts":[{"id":33,"name":"X0314","active":true}],"positions":null,"orders":[],"cashBalances":[{"accountId":33,"amount":50000.5,"realizedPnL":12.5}]}}]"#;
        let ReadableFrame::Messages { messages } = decode_line(line).unwrap() else {
            panic!()
        };
        let ReadableMessage::Response { sync: Some(s), .. } = &messages[0] else {
            panic!("{messages:?}")
        };
        assert_eq!(s.users, 1);
        assert_eq!(s.accounts[0].name, "X0314");
        assert!(s.positions.is_empty());
        assert_eq!(s.cash_balances[0].realized_pnl, Some(dec!(12.5)));
    }

    #[rstest]
    #[case("")]
    #[case("hello")]
    #[case(
        r#"a[{"e":"props","d":{"entityType":"fill","eventType":"Created","entity":{"id":"x"}}}]"#
    )]
    #[case(r#"a[{"e":"props","d":{"entityType":"order","eventType":"Exploded","entity":{}}}]"#)]
    #[case(r"authorize\nzero\n\ntok")]
    fn bad_lines_are_errors(#[case] line: &str) {
        assert!(decode_line(line).is_err(), "{line}");
    }
}
