//! The two ProjectX hubs over WebSocket: the user hub (`/hubs/user`: accounts, orders,
//! positions, trades) and the market hub (`/hubs/market`: quotes, trades, depth).
//!
//! Clients connect straight to the WebSocket with `?access_token=<token>` (as ProjectX's own
//! example does with `skipNegotiation`), or negotiate first (`POST {hub}/negotiate`, see
//! [`super::negotiate`]) and connect with the `id` it gave; an `Authorization: Bearer` header
//! is read too. A missing or refused token answers HTTP 401 before the upgrade. After the
//! handshake the server pings every `keep_alive` (15 s), closes a client silent for
//! `client_timeout` (30 s) with a close message, and a client that does not complete the
//! handshake within `handshake_timeout` (15 s). The token is checked at connect only: an open
//! hub outlives its token's expiry (ASP.NET's default), but a logout closes the session's hubs.
//!
//! There is no snapshot on subscribe: a client reads the REST state after subscribing. Each
//! hub is registered with the simulator's socket registry, so socket faults (drop, freeze,
//! shutdown) and `GET /sim/sockets` reach it; `suppressEvents` silences an account's events.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::Shared;
use crate::core::EventSink;
use crate::core::clock::now_us;
use crate::core::market::MarketUpdate;
use crate::core::model::{Change, Id};
use crate::sockets::{AccountSink, Control, QuoteSink, SocketInfo, SocketKind};
use crate::wire::num;

use super::auth::Identity;
use super::enums::{dom_type, trade_log_type};
use super::events::{Mirror, Topic};
use super::models::{symbol_id, ts};
use super::signalr::{self, ClientMessage, Handshake};

/// Which hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubKind {
    /// `/hubs/user`.
    User,
    /// `/hubs/market`.
    Market,
}

/// What a user hub connection is subscribed to.
#[derive(Default)]
struct UserSubs {
    accounts: bool,
    orders: BTreeSet<Id>,
    positions: BTreeSet<Id>,
    trades: BTreeSet<Id>,
}

impl UserSubs {
    fn wants(&self, topic: Topic, account: Id) -> bool {
        match topic {
            Topic::Account => self.accounts,
            Topic::Order => self.orders.contains(&account),
            Topic::Position => self.positions.contains(&account),
            Topic::Trade => self.trades.contains(&account),
        }
    }
}

/// What a market hub connection is subscribed to, per contract (catalog index).
#[derive(Default)]
struct MarketSubs {
    quotes: HashSet<usize>,
    trades: HashSet<usize>,
    depth: HashSet<usize>,
    /// The last quote fields sent, to send only what changed.
    sent: HashMap<usize, Map<String, Value>>,
    last_price: HashMap<usize, Decimal>,
}

impl MarketSubs {
    fn uses(&self, ci: usize) -> bool {
        self.quotes.contains(&ci) || self.trades.contains(&ci) || self.depth.contains(&ci)
    }
}

struct Conn {
    sh: Arc<Shared>,
    kind: HubKind,
    identity: Identity,
    info: Arc<parking_lot::Mutex<SocketInfo>>,
    sink: Arc<AccountSink>,
    quote_sink: Arc<QuoteSink>,
    user: UserSubs,
    mirrors: HashMap<Id, Mirror>,
    market: MarketSubs,
    last_sent: Instant,
}

type Tx = futures_util::stream::SplitSink<WebSocket, Message>;

enum Flow {
    Continue,
    /// Send a close message (with an error when given), then a close frame.
    Close(Option<String>),
    Drop,
}

/// Serves one hub connection until it closes.
pub(crate) async fn serve(
    sh: Arc<Shared>,
    ws: WebSocket,
    ip: IpAddr,
    kind: HubKind,
    identity: Identity,
) {
    let (id, info, mut control) = sh.sockets.register(SocketInfo {
        id: 0,
        kind: match kind {
            HubKind::User => SocketKind::ProjectXUser,
            HubKind::Market => SocketKind::ProjectXMarket,
        },
        ip,
        user_id: Some(identity.user_id),
        session_id: Some(identity.session_id),
        accounts: Vec::new(),
        connected_us: now_us(),
    });
    let (ev_tx, mut ev_rx) = mpsc::channel(sh.config.event_queue.max(16));
    let (md_tx, mut md_rx) = mpsc::channel(1024);
    let (overflow_tx, mut overflow_rx) = mpsc::unbounded_channel();
    let sink_id = sh.ex.next_sink_id();
    let mut c = Conn {
        sh: sh.clone(),
        kind,
        identity,
        info,
        sink: Arc::new(AccountSink {
            id: sink_id,
            tx: ev_tx,
            control: overflow_tx,
            overflow_code: 1011,
        }),
        quote_sink: Arc::new(QuoteSink {
            id: sink_id,
            tx: md_tx,
        }),
        user: UserSubs::default(),
        mirrors: HashMap::new(),
        market: MarketSubs::default(),
        last_sent: Instant::now(),
    };
    let (mut tx, mut rx) = ws.split();
    let cfg = sh.config.projectx.clone();
    let connected = Instant::now();
    let mut last_recv = Instant::now();
    let mut shaken = false;
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        if sh
            .faults
            .frozen(Some(identity.user_id), &c.info.lock().accounts)
        {
            tokio::select! {
                ctl = control.recv() => {
                    if matches!(ctl, Some(Control::Drop) | None) { break; }
                }
                () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                () = sh.shutdown.cancelled() => break,
            }
            continue;
        }
        let flow = tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    last_recv = Instant::now();
                    c.on_text(&mut tx, t.as_str(), &mut shaken).await
                }
                Some(Ok(Message::Binary(b))) => {
                    last_recv = Instant::now();
                    let t = String::from_utf8_lossy(&b).into_owned();
                    c.on_text(&mut tx, &t, &mut shaken).await
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    last_recv = Instant::now();
                    Flow::Continue
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => Flow::Drop,
            },
            Some((account, batch)) = ev_rx.recv() => c.on_events(&mut tx, account, &batch).await,
            Some(update) = md_rx.recv() => c.on_market(&mut tx, &update).await,
            Some(ctl) = control.recv() => c.on_control(ctl),
            Some(ctl) = overflow_rx.recv() => c.on_control(ctl),
            _ = ticker.tick() => {
                if !shaken {
                    if connected.elapsed() >= cfg.handshake_timeout {
                        Flow::Drop
                    } else {
                        Flow::Continue
                    }
                } else if last_recv.elapsed() >= cfg.client_timeout {
                    Flow::Close(Some("Server timeout elapsed without receiving a message from the client.".into()))
                } else if c.last_sent.elapsed() >= cfg.keep_alive {
                    c.send(&mut tx, &[signalr::ping()]).await
                } else {
                    Flow::Continue
                }
            }
            () = sh.shutdown.cancelled() => Flow::Close(Some("Server is shutting down.".into())),
        };
        match flow {
            Flow::Continue => {}
            Flow::Close(error) => {
                if shaken {
                    let _ = c
                        .send(&mut tx, &[signalr::close(error.as_deref(), true)])
                        .await;
                }
                let _ = tx
                    .send(Message::Close(Some(CloseFrame {
                        code: 1000,
                        reason: Utf8Bytes::from_static(""),
                    })))
                    .await;
                break;
            }
            Flow::Drop => break,
        }
    }
    c.cleanup();
    sh.sockets.unregister(id);
}

impl Conn {
    async fn send(&mut self, tx: &mut Tx, messages: &[Value]) -> Flow {
        if messages.is_empty() {
            return Flow::Continue;
        }
        let text: String = messages.iter().map(signalr::frame).collect();
        self.last_sent = Instant::now();
        match tx.send(Message::Text(text.into())).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Drop,
        }
    }

    fn on_control(&mut self, c: Control) -> Flow {
        match c {
            Control::Close { reason, .. } => Flow::Close(Some(reason)),
            Control::Drop => Flow::Drop,
        }
    }

    async fn on_text(&mut self, tx: &mut Tx, text: &str, shaken: &mut bool) -> Flow {
        let mut replies = Vec::new();
        for record in signalr::records(text) {
            if !*shaken {
                match signalr::handshake(record) {
                    Handshake::Json => {
                        *shaken = true;
                        // The handshake answer is `{}` alone, before anything else.
                        if let Flow::Drop = self.send(tx, &[json!({})]).await {
                            return Flow::Drop;
                        }
                    }
                    Handshake::Refused(e) => {
                        let _ = self.send(tx, &[json!({ "error": e })]).await;
                        return Flow::Drop;
                    }
                }
                continue;
            }
            match signalr::client_message(record) {
                Ok(ClientMessage::Invocation {
                    invocation_id,
                    target,
                    arguments,
                }) => {
                    let (result, events) = self.invoke(&target, &arguments);
                    if let Some(id) = invocation_id {
                        replies.push(match result {
                            Ok(()) => signalr::completion(&id),
                            Err(e) => signalr::completion_error(&id, &e),
                        });
                    }
                    replies.extend(events);
                }
                Ok(ClientMessage::StreamInvocation {
                    invocation_id: Some(id),
                    target,
                }) => replies.push(signalr::completion_error(
                    &id,
                    &format!("'{target}' is not a streaming method."),
                )),
                Ok(ClientMessage::Close) => return Flow::Drop,
                Ok(
                    ClientMessage::Ping
                    | ClientMessage::Other(_)
                    | ClientMessage::StreamInvocation { .. },
                ) => {}
                Err(e) => return Flow::Close(Some(e)),
            }
        }
        self.send(tx, &replies).await
    }

    /// Runs a hub method; returns its outcome and the messages it sends right away.
    fn invoke(&mut self, target: &str, args: &[Value]) -> (Result<(), String>, Vec<Value>) {
        let method = target.to_ascii_lowercase();
        match self.kind {
            HubKind::User => (self.invoke_user(&method, target, args), Vec::new()),
            HubKind::Market => self.invoke_market(&method, target, args),
        }
    }

    fn account_arg(&self, target: &str, args: &[Value]) -> Result<Id, String> {
        let v = args
            .first()
            .ok_or_else(|| format!("'{target}' needs the account id"))?;
        let id =
            crate::wire::int(v).ok_or_else(|| format!("'{target}': {v} is not an account id"))?;
        let owned = self
            .sh
            .ex
            .account(id)
            .is_some_and(|a| a.account.user_id == self.identity.user_id);
        if owned {
            Ok(id)
        } else {
            Err(format!("Account {id} not found"))
        }
    }

    fn invoke_user(&mut self, method: &str, target: &str, args: &[Value]) -> Result<(), String> {
        match method {
            "subscribeaccounts" => {
                self.user.accounts = true;
                for a in self.sh.ex.accounts_of(self.identity.user_id) {
                    self.watch(a.account.id);
                }
            }
            "unsubscribeaccounts" => self.user.accounts = false,
            "subscribeorders" | "subscribepositions" | "subscribetrades" => {
                let id = self.account_arg(target, args)?;
                let set = match method {
                    "subscribeorders" => &mut self.user.orders,
                    "subscribepositions" => &mut self.user.positions,
                    _ => &mut self.user.trades,
                };
                set.insert(id);
                self.watch(id);
            }
            "unsubscribeorders" | "unsubscribepositions" | "unsubscribetrades" => {
                let id = self.account_arg(target, args)?;
                match method {
                    "unsubscribeorders" => self.user.orders.remove(&id),
                    "unsubscribepositions" => self.user.positions.remove(&id),
                    _ => self.user.trades.remove(&id),
                };
            }
            _ => return Err(format!("Method '{target}' does not exist.")),
        }
        self.unwatch_unused();
        Ok(())
    }

    /// Starts listening to an account, with a mirror taken atomically with the subscription.
    fn watch(&mut self, account_id: Id) {
        if self.mirrors.contains_key(&account_id) {
            return;
        }
        let Some(cell) = self.sh.ex.account(account_id) else {
            return;
        };
        let sink: Arc<dyn EventSink> = self.sink.clone();
        let catalog = &self.sh.ex.catalog;
        let mirror = self.sh.ex.subscribe(account_id, sink, |st| {
            Mirror::new(
                catalog,
                account_id,
                &cell.account.name,
                cell.account.active,
                st,
            )
        });
        if let Some(m) = mirror {
            self.mirrors.insert(account_id, m);
        }
        self.info.lock().accounts = self.mirrors.keys().copied().collect();
    }

    fn unwatch_unused(&mut self) {
        let all: BTreeSet<Id> = if self.user.accounts {
            self.mirrors.keys().copied().collect()
        } else {
            BTreeSet::new()
        };
        let wanted: BTreeSet<Id> = all
            .iter()
            .chain(&self.user.orders)
            .chain(&self.user.positions)
            .chain(&self.user.trades)
            .copied()
            .collect();
        let gone: Vec<Id> = self
            .mirrors
            .keys()
            .filter(|a| !wanted.contains(a))
            .copied()
            .collect();
        for a in gone {
            self.sh.ex.unsubscribe(a, self.sink.id);
            self.mirrors.remove(&a);
        }
        self.info.lock().accounts = self.mirrors.keys().copied().collect();
    }

    async fn on_events(&mut self, tx: &mut Tx, account: Id, batch: &[Change]) -> Flow {
        if self.sh.faults.suppressed(self.identity.user_id, account) {
            return Flow::Continue;
        }
        let Some(mirror) = self.mirrors.get_mut(&account) else {
            return Flow::Continue;
        };
        let events = mirror.translate(&self.sh.ex.catalog, &self.sh.px.ids, batch);
        let messages: Vec<Value> = events
            .into_iter()
            .filter(|e| self.user.wants(e.topic, account))
            .map(|e| signalr::invocation(e.topic.target(), vec![e.argument]))
            .collect();
        self.send(tx, &messages).await
    }

    // ------------------------------------------------------------------------ market hub

    fn contract_arg(&self, target: &str, args: &[Value]) -> Result<usize, String> {
        let id = args
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| format!("'{target}' needs the contract id"))?;
        self.sh
            .px
            .ids
            .index_of(id)
            .ok_or_else(|| format!("Contract {id} not found"))
    }

    fn invoke_market(
        &mut self,
        method: &str,
        target: &str,
        args: &[Value],
    ) -> (Result<(), String>, Vec<Value>) {
        let ci = match self.contract_arg(target, args) {
            Ok(ci) => ci,
            Err(e) => {
                let known = matches!(
                    method,
                    "subscribecontractquotes"
                        | "subscribecontracttrades"
                        | "subscribecontractmarketdepth"
                        | "unsubscribecontractquotes"
                        | "unsubscribecontracttrades"
                        | "unsubscribecontractmarketdepth"
                );
                let e = if known {
                    e
                } else {
                    format!("Method '{target}' does not exist.")
                };
                return (Err(e), Vec::new());
            }
        };
        let was_used = self.market.uses(ci);
        let mut out = Vec::new();
        let snapshot = self.sh.ex.market(ci).snapshot(now_us());
        match method {
            "subscribecontractquotes" => {
                self.market.quotes.insert(ci);
                self.market.sent.remove(&ci);
                out.extend(self.quote_message(ci, &snapshot));
            }
            "subscribecontracttrades" => {
                self.market.trades.insert(ci);
            }
            "subscribecontractmarketdepth" => {
                self.market.depth.insert(ci);
                out.push(self.depth_message(ci, &snapshot));
            }
            "unsubscribecontractquotes" => {
                self.market.quotes.remove(&ci);
            }
            "unsubscribecontracttrades" => {
                self.market.trades.remove(&ci);
            }
            "unsubscribecontractmarketdepth" => {
                self.market.depth.remove(&ci);
            }
            _ => {
                return (
                    Err(format!("Method '{target}' does not exist.")),
                    Vec::new(),
                );
            }
        }
        let market = self.sh.ex.market(ci);
        match (was_used, self.market.uses(ci)) {
            (false, true) => {
                self.market.last_price.insert(ci, market.price());
                market.subscribe(self.quote_sink.clone());
            }
            (true, false) => market.unsubscribe(self.quote_sink.id),
            _ => {}
        }
        (Ok(()), out)
    }

    /// `GatewayQuote(contractId, quote)`: every field the first time, then only what changed.
    fn quote_message(&mut self, ci: usize, u: &MarketUpdate) -> Option<Value> {
        let q = &u.quote;
        let catalog = &self.sh.ex.catalog;
        let c = &catalog.contracts[ci];
        let change = q.trade - q.open;
        let pct = if q.open.is_zero() {
            Decimal::ZERO
        } else {
            (change / q.open * Decimal::from(100)).round_dp(4)
        };
        let mut fields = Map::new();
        for (k, v) in [
            ("symbol", json!(symbol_id(catalog, c))),
            (
                "symbolName",
                json!(format!("/{}", catalog.product_of(c).name)),
            ),
            ("lastPrice", num(q.trade)),
            ("bestBid", num(q.bid)),
            ("bestAsk", num(q.offer)),
            ("change", num(change)),
            ("changePercent", num(pct)),
            ("open", num(q.open)),
            ("high", num(q.high)),
            ("low", num(q.low)),
            ("volume", json!(q.volume)),
        ] {
            fields.insert(k.to_string(), v);
        }
        let previous = self.market.sent.insert(ci, fields.clone());
        let mut data: Map<String, Value> = match previous {
            None => {
                let mut all = fields;
                all.insert("lastUpdated".into(), json!(ts(q.timestamp_us)));
                all.insert("timestamp".into(), json!(ts(q.timestamp_us)));
                all
            }
            Some(prev) => fields
                .into_iter()
                .filter(|(k, v)| prev.get(k) != Some(v))
                .collect(),
        };
        if data.is_empty() {
            return None;
        }
        data.retain(|_, v| !v.is_null());
        Some(signalr::invocation(
            "GatewayQuote",
            vec![json!(self.sh.px.ids.id_of(ci)), Value::Object(data)],
        ))
    }

    /// `GatewayDepth(contractId, [entries])`: a reset, then ten levels each side.
    fn depth_message(&self, ci: usize, u: &MarketUpdate) -> Value {
        let q = &u.quote;
        let t = json!(ts(q.timestamp_us));
        let tick = u.tick_size;
        let size = json!(q.size);
        let mut entries = vec![
            json!({"timestamp": t, "type": dom_type::RESET, "price": 0, "volume": 0, "currentVolume": 0}),
            json!({"timestamp": t, "type": dom_type::BEST_BID, "price": num(q.bid), "volume": size, "currentVolume": size}),
            json!({"timestamp": t, "type": dom_type::BEST_ASK, "price": num(q.offer), "volume": size, "currentVolume": size}),
        ];
        for i in 1..=10 {
            let off = tick * Decimal::from(i);
            entries.push(json!({"timestamp": t, "type": dom_type::BID, "price": num(q.bid - off), "volume": size, "currentVolume": size}));
            entries.push(json!({"timestamp": t, "type": dom_type::ASK, "price": num(q.offer + off), "volume": size, "currentVolume": size}));
        }
        signalr::invocation(
            "GatewayDepth",
            vec![json!(self.sh.px.ids.id_of(ci)), Value::Array(entries)],
        )
    }

    async fn on_market(&mut self, tx: &mut Tx, u: &MarketUpdate) -> Flow {
        let sh = self.sh.clone();
        let Some(c) = sh.ex.catalog.contract(u.quote.contract_id) else {
            return Flow::Continue;
        };
        let ci = c.index;
        let mut out = Vec::new();
        if self.market.quotes.contains(&ci)
            && let Some(m) = self.quote_message(ci, u)
        {
            out.push(m);
        }
        let price = u.quote.trade;
        let before = self.market.last_price.insert(ci, price);
        if self.market.trades.contains(&ci) && before != Some(price) {
            let kind = if before.is_some_and(|b| price < b) {
                trade_log_type::SELL
            } else {
                trade_log_type::BUY
            };
            out.push(signalr::invocation(
                "GatewayTrade",
                vec![
                    json!(self.sh.px.ids.id_of(ci)),
                    json!([{
                        "symbolId": symbol_id(&sh.ex.catalog, c),
                        "price": num(price),
                        "timestamp": ts(u.quote.timestamp_us),
                        "type": kind,
                        "volume": 1,
                    }]),
                ],
            ));
        }
        if self.market.depth.contains(&ci) {
            out.push(self.depth_message(ci, u));
        }
        self.send(tx, &out).await
    }

    fn cleanup(&mut self) {
        for a in self.mirrors.keys() {
            self.sh.ex.unsubscribe(*a, self.sink.id);
        }
        let cis: HashSet<usize> = self
            .market
            .quotes
            .iter()
            .chain(&self.market.trades)
            .chain(&self.market.depth)
            .copied()
            .collect();
        for ci in cis {
            self.sh.ex.market(ci).unsubscribe(self.quote_sink.id);
        }
    }
}

/// The token of a hub request: `?access_token=` (what browser clients and ProjectX's example
/// send) or an `Authorization: Bearer` header.
#[must_use]
pub fn hub_token(query: &[(String, String)], header: Option<&str>) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("access_token"))
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
        .or_else(|| header.map(str::to_string))
}

/// What a request to a hub path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubRequest {
    /// `{hub}/negotiate`.
    Negotiate,
    /// `{hub}` itself: the WebSocket upgrade.
    Connect,
}

/// The hub a lower-case request path names, and whether it is the negotiation, if any.
#[must_use]
pub fn hub_route(path: &str) -> Option<(HubKind, HubRequest)> {
    let path = path.trim_end_matches('/');
    let (path, request) = match path.strip_suffix("/negotiate") {
        Some(hub) => (hub, HubRequest::Negotiate),
        None => (path, HubRequest::Connect),
    };
    let kind = match path {
        "/hubs/user" => HubKind::User,
        "/hubs/market" => HubKind::Market,
        _ => return None,
    };
    Some((kind, request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_paths_route_to_the_upgrade_or_the_negotiation() {
        assert_eq!(
            hub_route("/hubs/user"),
            Some((HubKind::User, HubRequest::Connect))
        );
        assert_eq!(
            hub_route("/hubs/market/"),
            Some((HubKind::Market, HubRequest::Connect))
        );
        assert_eq!(
            hub_route("/hubs/user/negotiate"),
            Some((HubKind::User, HubRequest::Negotiate))
        );
        assert_eq!(
            hub_route("/hubs/market/negotiate/"),
            Some((HubKind::Market, HubRequest::Negotiate))
        );
        assert_eq!(hub_route("/hubs/negotiate"), None);
        assert_eq!(hub_route("/hubs/user/other"), None);
    }
}
