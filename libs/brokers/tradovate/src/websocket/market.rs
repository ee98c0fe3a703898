//! The market-data socket of one login (`md/subscribeQuote`, BROKERS.md §1.9), behind the
//! broker-neutral [`QuoteFeed`]. It is the user socket's machinery pointed at the md host: the
//! same frame codec, the same gated connect and `authorize` (with the md access token when the
//! login has one, else the access token: the server accepts either), heartbeats, server-silence
//! detection, planned reconnect before the token ages out, and [`jt_net::socket::keep_alive`]'s
//! stagger and back-off.
//!
//! The contracts to carry are the feed's wanted set ([`QuoteFeed::watch`]), by name or by the
//! broker's id (the store keys a position by id when its name was not known): on the live
//! socket an added contract is resolved to its id (quote events name the contract by id only)
//! and subscribed by id, a removed one unsubscribed; after a reconnect every wanted contract is
//! subscribed again. Quotes are reported under the key that was watched. Each `md` event's quotes are decoded once, exactly (no binary floats), and
//! handed to the feed's reader without waiting for it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use jt_broker::events::ConnectionState;
use jt_broker::market::{Quote, QuoteFeed};
use jt_net::quote_feed::{self, QuoteShell as Shared};
use jt_net::socket::{self, Connection, Ended, Ws};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::http::client::TradovateHttpClient;

use super::client::{EndReason, SocketSetup, open_authorized, token_error};
use super::codec::{self, ServerFrame, WsMessage};
use super::messages::{self, MdQuote, Shutdown};

/// Starts a market-data connection for `http`'s login at `setup.url` (the md socket); it
/// connects once contracts are watched and closes when the feed is dropped.
#[must_use]
pub fn start(http: Arc<TradovateHttpClient>, setup: SocketSetup) -> QuoteFeed {
    let (shared, cancel, feed) =
        quote_feed::start(setup.kind.as_str(), setup.config.subscriber_capacity);
    let reconnect = setup.config.reconnect.clone();
    let kind = setup.kind;
    tokio::spawn(async move {
        let mut conn = MdConn {
            http,
            setup,
            shared: Arc::clone(&shared),
        };
        socket::keep_alive(kind.as_str(), &shared.feed, &reconnect, &mut conn, &cancel).await;
        shared.set_subscribed(BTreeSet::new());
    });
    feed
}

struct MdConn {
    http: Arc<TradovateHttpClient>,
    setup: SocketSetup,
    shared: Arc<Shared>,
}

#[async_trait]
impl Connection for MdConn {
    type Reason = EndReason;

    async fn serve(&mut self, cancel: &CancellationToken) -> Option<Ended<EndReason>> {
        serve(&self.http, &self.setup, &self.shared, cancel).await
    }

    fn ended(&mut self, _ended: &Ended<EndReason>) {
        self.shared.set_subscribed(BTreeSet::new());
    }
}

/// The subscriptions of one connection. A watched contract is a name (`MNQZ6`) or, where the
/// store keys a position by the broker's id because its name was not known, that id
/// (`3000036`); both may name one contract, which is subscribed once (by id) and reported under
/// every key watching it.
#[derive(Default)]
struct Subscriptions {
    /// Watched key → contract id.
    keys: HashMap<String, i64>,
    /// Contract ids subscribed (answered 200) or being subscribed.
    live: HashMap<i64, bool>,
    /// Request id → the contract id it subscribes.
    pending: HashMap<i64, i64>,
    next_request: i64,
}

impl Subscriptions {
    /// Subscribes the wanted contracts not subscribed and unsubscribes the others.
    async fn sync(
        &mut self,
        ws: &mut Ws,
        http: &TradovateHttpClient,
        shared: &Shared,
    ) -> Result<(), String> {
        let wanted = shared.feed.wanted();
        self.keys.retain(|k, _| wanted.contains(k));
        let gone: Vec<i64> = self
            .live
            .keys()
            .filter(|id| !self.keys.values().any(|v| v == *id))
            .copied()
            .collect();
        for id in gone {
            self.live.remove(&id);
            self.send(ws, "md/unsubscribeQuote", id).await?;
        }
        for key in wanted {
            if self.keys.contains_key(&key) {
                continue;
            }
            let id = if let Ok(id) = key.parse::<i64>() {
                id
            } else {
                // Quote events name the contract by id: learn it (cached per trading day).
                match http.resolve_contract(&key).await {
                    Ok(contract) => match contract.id.0.parse::<i64>() {
                        Ok(id) => id,
                        Err(_) => {
                            tracing::warn!(contract = %key, id = %contract.id, "contract id is not numeric; not subscribed");
                            continue;
                        }
                    },
                    Err(e) => {
                        tracing::warn!(contract = %key, error = %e, "contract not resolved; no quotes for it");
                        continue;
                    }
                }
            };
            self.keys.insert(key, id);
            if let std::collections::hash_map::Entry::Vacant(e) = self.live.entry(id) {
                e.insert(false);
                let request = self.send(ws, "md/subscribeQuote", id).await?;
                self.pending.insert(request, id);
            }
        }
        self.publish_subscribed(shared);
        Ok(())
    }

    async fn send(&mut self, ws: &mut Ws, endpoint: &str, id: i64) -> Result<i64, String> {
        self.next_request += 1;
        let body = serde_json::json!({ "symbol": id }).to_string();
        ws.send(Message::Text(
            codec::encode_request(endpoint, self.next_request, "", &body).into(),
        ))
        .await
        .map_err(|e| format!("{endpoint}: {e}"))?;
        Ok(self.next_request)
    }

    fn answered(
        &mut self,
        request: i64,
        status: u16,
        data: Option<&serde_json::value::RawValue>,
        shared: &Shared,
    ) {
        let Some(id) = self.pending.remove(&request) else {
            return;
        };
        if status == 200 && data.and_then(messages::penalty).is_none() {
            if let Some(live) = self.live.get_mut(&id) {
                *live = true;
            }
        } else {
            tracing::warn!(contract = id, status, answer = %codec::error_text(data), "quote subscription refused");
            self.live.remove(&id);
            self.keys.retain(|_, v| *v != id);
        }
        self.publish_subscribed(shared);
    }

    fn publish_subscribed(&self, shared: &Shared) {
        shared.set_subscribed(
            self.keys
                .iter()
                .filter(|(_, id)| self.live.get(id).copied().unwrap_or(false))
                .map(|(k, _)| k.clone())
                .collect(),
        );
    }

    /// The quote under every key watching its contract.
    fn quotes(&self, q: &MdQuote) -> Vec<Quote> {
        let price = |e: &Option<messages::MdEntry>| e.as_ref().and_then(|e| e.price);
        self.keys
            .iter()
            .filter(|(_, id)| **id == q.contract_id)
            .map(|(key, _)| Quote {
                contract: key.clone(),
                bid: price(&q.entries.bid),
                ask: price(&q.entries.offer),
                last: price(&q.entries.trade),
                at: q.timestamp,
            })
            .collect()
    }
}

/// One market-data connection from token to end; `None` when cancelled.
async fn serve(
    http: &Arc<TradovateHttpClient>,
    setup: &SocketSetup,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Option<Ended<EndReason>> {
    let cfg = &setup.config;
    let token = match http
        .session()
        .socket_token(cfg.max_token_age, cfg.min_socket_life)
        .await
    {
        Ok(t) => t,
        Err(e) => return Some(token_error(e)),
    };
    let bearer = token
        .md_access
        .clone()
        .unwrap_or_else(|| token.access.clone());
    let mut ws = match open_authorized(http, &setup.url, setup, &token, &bearer, cancel).await? {
        Ok(ws) => ws,
        Err(ended) => return Some(ended),
    };
    let started = Instant::now();
    let healthy = || started.elapsed();
    let mut subs = Subscriptions::default();
    if let Err(e) = subs.sync(&mut ws, http, shared).await {
        return Some(Ended::new(EndReason::ClosedByServer, e));
    }
    shared.feed.set_state(ConnectionState::Connected);
    let mut last_send = Instant::now();
    let mut last_server_frame = Instant::now();
    let token_deadline = Instant::now() + cfg.max_token_age.saturating_sub(token.age(Utc::now()));
    let tick_every = (cfg.heartbeat_interval / 2)
        .min(cfg.server_silence_timeout / 4)
        .min(Duration::from_millis(500))
        .max(Duration::from_millis(10));
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
                    return Some(Ended::new(EndReason::ClosedByServer, e).after(healthy()));
                }
                last_send = Instant::now();
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                    Some(Ok(Message::Close(c))) => {
                        return Some(Ended::new(EndReason::ClosedByServer, format!("close message {c:?}")).after(healthy()));
                    }
                    Some(Ok(_)) => { last_server_frame = Instant::now(); continue; }
                    Some(Err(e)) => return Some(Ended::new(EndReason::ClosedByServer, e.to_string()).after(healthy())),
                    None => return Some(Ended::new(EndReason::ClosedByServer, "end of stream").after(healthy())),
                };
                last_server_frame = Instant::now();
                let messages = match codec::decode_server_frame(&text) {
                    Ok(ServerFrame::Messages(ms)) => ms,
                    Ok(ServerFrame::Close { code, reason }) => {
                        return Some(Ended::new(EndReason::ClosedByServer, format!("c[{code:?},{reason:?}]")).after(healthy()));
                    }
                    Ok(ServerFrame::Open | ServerFrame::Heartbeat) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable market-data frame; ignored");
                        continue;
                    }
                };
                for m in messages {
                    match m {
                        WsMessage::Response { id, status, data } => subs.answered(id, status, data.as_deref(), shared),
                        WsMessage::Event { name, data } => match (name.as_str(), data) {
                            ("md", Some(d)) => match messages::decode_md_quotes(&d) {
                                Ok(quotes) => {
                                    for q in quotes.iter().flat_map(|q| subs.quotes(q)) {
                                        shared.send(q);
                                    }
                                }
                                Err(e) => tracing::warn!(error = %e, "market-data event did not decode"),
                            },
                            ("shutdown", d) => {
                                let why = d.and_then(|d| serde_json::from_str::<Shutdown>(d.get()).ok())
                                    .map_or_else(|| "unspecified".to_string(), |s| format!("{} {}", s.reason_code, s.reason.unwrap_or_default()));
                                return Some(Ended::new(EndReason::ServerShutdown, why).after(healthy()));
                            }
                            _ => {}
                        },
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if now.duration_since(last_server_frame) >= cfg.server_silence_timeout {
                    return Some(Ended::new(EndReason::ServerSilent, format!("no frame from the server for {:?}", cfg.server_silence_timeout)).after(healthy()));
                }
                if now.duration_since(last_send) >= cfg.heartbeat_interval {
                    if let Err(e) = ws.send(Message::Text(codec::CLIENT_HEARTBEAT.into())).await {
                        return Some(Ended::new(EndReason::ClosedByServer, format!("heartbeat: {e}")).after(healthy()));
                    }
                    last_send = now;
                }
                if now >= token_deadline {
                    let _ = ws.close(None).await;
                    return Some(Ended::new(EndReason::TokenAge, format!("token reached {:?}", cfg.max_token_age)).after(healthy()));
                }
            }
        }
    }
}

/// The md socket's URL for a login whose REST base is `rest` (`…/v1`) when no md host is
/// configured: the simulator's layout, `{scheme}://{host}/md/v1/websocket`.
pub(crate) fn md_url_beside(rest: &Url) -> Result<Url, String> {
    let scheme = match rest.scheme() {
        "http" => "ws",
        "https" => "wss",
        other => return Err(format!("{rest}: scheme {other} is not http or https")),
    };
    let host = rest.host_str().ok_or_else(|| format!("{rest}: no host"))?;
    let port = rest.port().map(|p| format!(":{p}")).unwrap_or_default();
    Url::parse(&format!("{scheme}://{host}{port}/md/v1/websocket")).map_err(|e| e.to_string())
}
