//! The market hub of one login (`/hubs/market`, BROKERS.md §2.6) behind the broker-neutral
//! [`QuoteFeed`]: the user hub's opening (token, gated connect, optional negotiation,
//! handshake), its pings and server-silence detection, and [`jt_net::socket::keep_alive`]'s
//! stagger and back-off, with `SubscribeContractQuotes(contractId)` per watched contract —
//! again after every reconnect, as the server forgets subscriptions.
//!
//! The contracts to carry are the feed's wanted set ([`QuoteFeed::watch`]), by name (`MNQZ6`)
//! or by the broker's id (`CON.F.US.MNQ.Z26`: the store keys a position by id when its name was
//! not known): a name is resolved to its id (quote events name the contract by id only). Quotes
//! are reported under every key watching the contract.
//!
//! `GatewayQuote(contractId, data)` may carry only the fields that changed (real servers send
//! partial quotes; the simulator sends every field first, then the changes), so the last value
//! of each field is kept per contract and every quote reported is whole. Prices are decoded
//! exactly (no binary floats). A quote without a `timestamp` (or `lastUpdated`) is dated by its
//! receipt. A slow reader loses quotes rather than holding up the hub.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use jt_broker::events::ConnectionState;
use jt_broker::market::{Quote, QuoteFeed};
use jt_net::gate::ConnectGate;
use jt_net::quote_feed::{self, QuoteShell as Shared};
use jt_net::socket::{self, Connection, Ended, Ws};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::HubConfig;
use crate::http::client::ProjectXHttpClient;

use super::client::{EndReason, negotiator, open};
use super::codec::{self, ServerMessage};

/// The prefix of ProjectX contract ids (`CON.F.US.MNQ.Z26`); any other key is a name.
const CONTRACT_ID_PREFIX: &str = "CON.";

/// Starts the market hub of `http`'s login at `url`; it connects once contracts are watched
/// and closes when the feed is dropped.
#[must_use]
pub fn start(
    http: Arc<ProjectXHttpClient>,
    url: Url,
    config: HubConfig,
    gate: Arc<ConnectGate>,
) -> QuoteFeed {
    let (shared, cancel, feed) = quote_feed::start("projectx", config.subscriber_capacity);
    tokio::spawn(async move {
        let reconnect = config.reconnect.clone();
        let mut conn = MarketConn {
            negotiator: negotiator(&config),
            http,
            url,
            config,
            gate,
            shared: Arc::clone(&shared),
        };
        socket::keep_alive("projectx", &shared.feed, &reconnect, &mut conn, &cancel).await;
        shared.set_subscribed(BTreeSet::new());
    });
    feed
}

struct MarketConn {
    http: Arc<ProjectXHttpClient>,
    url: Url,
    config: HubConfig,
    gate: Arc<ConnectGate>,
    negotiator: Option<reqwest::Client>,
    shared: Arc<Shared>,
}

#[async_trait]
impl Connection for MarketConn {
    type Reason = EndReason;

    async fn serve(&mut self, cancel: &CancellationToken) -> Option<Ended<EndReason>> {
        serve(self, cancel).await
    }

    fn ended(&mut self, _ended: &Ended<EndReason>) {
        self.shared.set_subscribed(BTreeSet::new());
    }
}

/// A quote's fields as `GatewayQuote` sends them (any of them may be left out).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuoteFields {
    #[serde(default)]
    best_bid: Option<Decimal>,
    #[serde(default)]
    best_ask: Option<Decimal>,
    #[serde(default)]
    last_price: Option<Decimal>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    last_updated: Option<String>,
}

/// The last value of each field of one contract.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Book {
    bid: Option<Decimal>,
    ask: Option<Decimal>,
    last: Option<Decimal>,
}

/// Decodes `GatewayQuote(contractId, data)` into the contract id and its fields.
fn decode_quote(arguments: &[&RawValue]) -> Result<(String, QuoteFields), String> {
    let [id, data, ..] = arguments else {
        return Err(format!(
            "GatewayQuote with {} arguments, not 2",
            arguments.len()
        ));
    };
    let id: String = serde_json::from_str(id.get()).map_err(|e| format!("contract id: {e}"))?;
    let fields: QuoteFields =
        serde_json::from_str(data.get()).map_err(|e| format!("GatewayQuote {id}: {e}"))?;
    Ok((id, fields))
}

/// The quote's own time, else its receipt.
fn quote_time(fields: &QuoteFields, received: DateTime<Utc>) -> DateTime<Utc> {
    fields
        .timestamp
        .as_deref()
        .or(fields.last_updated.as_deref())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(received, |t| t.with_timezone(&Utc))
}

/// The subscriptions of one connection and the books of its contracts.
#[derive(Default)]
struct Subscriptions {
    /// Watched key → contract id.
    keys: HashMap<String, String>,
    /// Contract ids subscribed (completed without error: `true`) or being subscribed.
    live: HashMap<String, bool>,
    /// Invocation id → the contract id it subscribes (`None`: an unsubscription).
    pending: HashMap<String, Option<String>>,
    /// The last fields of each contract.
    books: HashMap<String, Book>,
    next_invocation: u64,
}

impl Subscriptions {
    /// Subscribes the wanted contracts not subscribed and unsubscribes the others.
    async fn sync(
        &mut self,
        ws: &mut Ws,
        http: &ProjectXHttpClient,
        shared: &Shared,
    ) -> Result<(), String> {
        let wanted = shared.feed.wanted();
        self.keys.retain(|k, _| wanted.contains(k));
        let gone: Vec<String> = self
            .live
            .keys()
            .filter(|id| !self.keys.values().any(|v| v == *id))
            .cloned()
            .collect();
        for id in gone {
            self.live.remove(&id);
            self.books.remove(&id);
            self.invoke(ws, "UnsubscribeContractQuotes", &id, None)
                .await?;
        }
        for key in wanted {
            if self.keys.contains_key(&key) {
                continue;
            }
            let id = if key.starts_with(CONTRACT_ID_PREFIX) {
                key.clone()
            } else {
                // Quote events name the contract by id: learn it (cached by the client).
                match http.resolve_contract(&key).await {
                    Ok(contract) => contract.id.0,
                    Err(e) => {
                        tracing::warn!(contract = %key, error = %e, "contract not resolved; no quotes for it");
                        continue;
                    }
                }
            };
            self.keys.insert(key, id.clone());
            if let std::collections::hash_map::Entry::Vacant(e) = self.live.entry(id.clone()) {
                e.insert(false);
                self.invoke(ws, "SubscribeContractQuotes", &id, Some(id.clone()))
                    .await?;
            }
        }
        self.publish_subscribed(shared);
        Ok(())
    }

    async fn invoke(
        &mut self,
        ws: &mut Ws,
        target: &str,
        contract: &str,
        subscribes: Option<String>,
    ) -> Result<(), String> {
        self.next_invocation += 1;
        let id = self.next_invocation;
        self.pending.insert(id.to_string(), subscribes);
        ws.send(Message::Text(
            codec::invocation(id, target, &[serde_json::json!(contract)]).into(),
        ))
        .await
        .map_err(|e| format!("{target}: {e}"))
    }

    /// A completion: a refused subscription is dropped (and logged), an accepted one is live.
    fn completed(&mut self, invocation: &str, error: Option<String>, shared: &Shared) {
        let Some(Some(id)) = self.pending.remove(invocation) else {
            return;
        };
        match error {
            None => {
                if let Some(live) = self.live.get_mut(&id) {
                    *live = true;
                }
            }
            Some(e) => {
                tracing::warn!(contract = %id, error = %e, "quote subscription refused");
                self.live.remove(&id);
                self.keys.retain(|_, v| *v != id);
            }
        }
        self.publish_subscribed(shared);
    }

    fn publish_subscribed(&self, shared: &Shared) {
        shared.set_subscribed(
            self.keys
                .iter()
                .filter(|(_, id)| self.live.get(*id).copied().unwrap_or(false))
                .map(|(k, _)| k.clone())
                .collect(),
        );
    }

    /// Folds a (possibly partial) quote into its contract's book and reports the whole quote
    /// under every key watching the contract (none for a contract no longer watched).
    fn quotes(&mut self, id: &str, fields: &QuoteFields, received: DateTime<Utc>) -> Vec<Quote> {
        if !self.live.contains_key(id) {
            return Vec::new();
        }
        let book = self.books.entry(id.to_string()).or_default();
        if fields.best_bid.is_some() {
            book.bid = fields.best_bid;
        }
        if fields.best_ask.is_some() {
            book.ask = fields.best_ask;
        }
        if fields.last_price.is_some() {
            book.last = fields.last_price;
        }
        let book = book.clone();
        let at = quote_time(fields, received);
        self.keys
            .iter()
            .filter(|(_, v)| v.as_str() == id)
            .map(|(key, _)| Quote {
                contract: key.clone(),
                bid: book.bid,
                ask: book.ask,
                last: book.last,
                at,
            })
            .collect()
    }
}

/// One market-hub connection from token to end; `None` when cancelled.
async fn serve(conn: &MarketConn, cancel: &CancellationToken) -> Option<Ended<EndReason>> {
    let MarketConn {
        http,
        url,
        config,
        gate,
        negotiator,
        shared,
    } = conn;
    let mut ws = match open(http, url, config, gate, negotiator.as_ref(), cancel).await? {
        Ok(ws) => ws,
        Err(ended) => return Some(ended),
    };
    let started = Instant::now();
    let healthy = || started.elapsed();
    let mut subs = Subscriptions::default();
    if let Err(e) = subs.sync(&mut ws, http, shared).await {
        return Some(Ended::new(EndReason::SubscribeFailed, e));
    }
    shared.feed.set_state(ConnectionState::Connected);
    let mut last_send = Instant::now();
    let mut last_recv = Instant::now();
    let tick_every = (config.keep_alive / 4)
        .min(config.server_timeout / 4)
        .clamp(Duration::from_millis(10), Duration::from_millis(500));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                let _ = ws.close(None).await;
                return None;
            }
            () = shared.feed.accounts_changed() => {
                if let Err(e) = subs.sync(&mut ws, http, shared).await {
                    return Some(Ended::new(EndReason::SubscribeFailed, e).after(healthy()));
                }
                last_send = Instant::now();
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Close(f))) => {
                        return Some(Ended::new(EndReason::ClosedByServer, format!("close frame {f:?}")).after(healthy()));
                    }
                    Some(Ok(_)) => { last_recv = Instant::now(); continue; }
                    Some(Err(e)) => return Some(Ended::new(EndReason::ClosedByServer, e.to_string()).after(healthy())),
                    None => return Some(Ended::new(EndReason::ClosedByServer, "end of stream").after(healthy())),
                };
                last_recv = Instant::now();
                let received = Utc::now();
                for record in codec::records(&text) {
                    match codec::decode(record) {
                        Ok(ServerMessage::Invocation { target, arguments }) if target == "GatewayQuote" => {
                            match decode_quote(&arguments) {
                                Ok((id, fields)) => {
                                    for q in subs.quotes(&id, &fields, received) {
                                        shared.send(q);
                                    }
                                }
                                Err(e) => tracing::warn!(error = %e, "market hub quote did not decode"),
                            }
                        }
                        Ok(ServerMessage::Invocation { .. } | ServerMessage::Ping | ServerMessage::Handshake { .. } | ServerMessage::Other(_)) => {}
                        Ok(ServerMessage::Completion { invocation_id, error }) => {
                            subs.completed(&invocation_id, error, shared);
                        }
                        Ok(ServerMessage::Close { error, allow_reconnect }) => {
                            return Some(Ended::new(EndReason::ClosedByServer, format!("close message: {} (reconnect allowed: {allow_reconnect})", error.unwrap_or_default())).after(healthy()));
                        }
                        Err(e) => tracing::warn!(error = %e, "undecodable market hub message; ignored"),
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if now.duration_since(last_recv) >= config.server_timeout {
                    return Some(Ended::new(EndReason::ServerSilent, format!("nothing from the market hub for {:?}", config.server_timeout)).after(healthy()));
                }
                if now.duration_since(last_send) >= config.keep_alive {
                    if let Err(e) = ws.send(Message::Text(codec::ping().into())).await {
                        return Some(Ended::new(EndReason::ClosedByServer, format!("ping: {e}")).after(healthy()));
                    }
                    last_send = now;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use rust_decimal_macros::dec;

    use super::*;

    fn args(text: &str) -> Vec<Box<RawValue>> {
        let v: Vec<Box<RawValue>> = serde_json::from_str(text).unwrap();
        v
    }

    #[test]
    fn partial_quotes_are_folded_into_whole_ones_under_every_key_exactly() {
        let mut subs = Subscriptions::default();
        subs.keys.insert("MNQZ6".into(), "CON.F.US.MNQ.Z26".into());
        subs.keys
            .insert("CON.F.US.MNQ.Z26".into(), "CON.F.US.MNQ.Z26".into());
        subs.live.insert("CON.F.US.MNQ.Z26".into(), true);
        let received = Utc::now();

        let first = args(
            r#"["CON.F.US.MNQ.Z26",{"symbol":"F.US.MNQ","lastPrice":25139.25,"bestBid":25138.75,"bestAsk":25139.25,"volume":246796,"timestamp":"2026-05-06T13:36:03.4962794+00:00"}]"#,
        );
        let refs: Vec<&RawValue> = first.iter().map(AsRef::as_ref).collect();
        let (id, fields) = decode_quote(&refs).unwrap();
        let mut quotes = subs.quotes(&id, &fields, received);
        quotes.sort_by(|a, b| a.contract.cmp(&b.contract));
        assert_eq!(quotes.len(), 2, "one quote per key watching the contract");
        assert_eq!(quotes[1].contract, "MNQZ6");
        assert_eq!(quotes[1].bid, Some(dec!(25138.75)));
        assert_eq!(quotes[1].ask, Some(dec!(25139.25)));
        assert_eq!(quotes[1].last, Some(dec!(25139.25)));
        assert_eq!(
            quotes[1].at,
            DateTime::parse_from_rfc3339("2026-05-06T13:36:03.4962794Z").unwrap()
        );

        // Only the bid changed: the rest of the quote is the last one's, dated by receipt.
        let partial = args(r#"["CON.F.US.MNQ.Z26",{"bestBid":25139.00}]"#);
        let refs: Vec<&RawValue> = partial.iter().map(AsRef::as_ref).collect();
        let (id, fields) = decode_quote(&refs).unwrap();
        let quotes = subs.quotes(&id, &fields, received);
        assert_eq!(quotes.len(), 2);
        for q in &quotes {
            assert_eq!(q.bid, Some(dec!(25139.00)));
            assert_eq!(q.ask, Some(dec!(25139.25)));
            assert_eq!(q.last, Some(dec!(25139.25)));
            assert_eq!(q.at, received);
        }

        // A contract not subscribed (any more) reports nothing.
        let other = args(r#"["CON.F.US.ENQ.Z26",{"bestBid":1}]"#);
        let refs: Vec<&RawValue> = other.iter().map(AsRef::as_ref).collect();
        let (id, fields) = decode_quote(&refs).unwrap();
        assert!(subs.quotes(&id, &fields, received).is_empty());
    }

    #[test]
    fn malformed_quotes_are_refused_with_what_is_wrong() {
        let one = args(r#"["CON.F.US.MNQ.Z26"]"#);
        let refs: Vec<&RawValue> = one.iter().map(AsRef::as_ref).collect();
        assert!(decode_quote(&refs).unwrap_err().contains("1 arguments"));
        let bad = args(r#"["CON.F.US.MNQ.Z26",{"bestBid":"x"}]"#);
        let refs: Vec<&RawValue> = bad.iter().map(AsRef::as_ref).collect();
        assert!(
            decode_quote(&refs)
                .unwrap_err()
                .contains("CON.F.US.MNQ.Z26")
        );
    }

    #[tokio::test]
    async fn a_refused_subscription_is_dropped_and_an_accepted_one_reported() {
        let (shared, _cancel, feed) = quote_feed::start("projectx", 8);
        let mut subs = Subscriptions::default();
        for (key, id, invocation) in [("MNQZ6", "CON.A", "1"), ("ESZ6", "CON.B", "2")] {
            subs.keys.insert(key.into(), id.into());
            subs.live.insert(id.into(), false);
            subs.pending.insert(invocation.into(), Some(id.into()));
        }
        subs.completed("1", None, &shared);
        subs.completed("2", Some("unknown contract".into()), &shared);
        assert_eq!(feed.subscribed(), BTreeSet::from(["MNQZ6".to_string()]));
        assert!(!subs.keys.contains_key("ESZ6"));
    }
}
