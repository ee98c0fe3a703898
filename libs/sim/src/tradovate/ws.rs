//! The user/trading socket (`/v1/websocket`) and the market-data socket (`/md/v1/websocket`),
//! in Tradovate's SockJS-derived framing (BROKERS.md §1.6).
//!
//! Server frames: `o` on connect, `h` after 2.5 s without any other frame, `a[…]` for
//! responses and events, `c[code,"reason"]` before a planned close. Client frames: `[]`
//! (heartbeat) or `endpoint\nid\nquery\nbody`. A client silent for `client_timeout` (10 s) is
//! dropped; one that does not authorize within `auth_timeout` too.
//!
//! Each socket is one task. Account changes arrive through a bounded queue filled with
//! `try_send` by the exchange: a client too slow to drain it is closed (it resynchronizes on
//! reconnect), so it can never hold up matching.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Shared;
use crate::core::EventSink;
use crate::core::clock::{iso, now_us, trade_date_of};
use crate::core::market::MarketUpdate;
use crate::core::model::{Change, ChangeKind, Entity, Id};

use super::auth::Identity;
use super::entities::Kind;
use super::limits::ConnectPass;
use super::rest::{self, After, Body, Caller};
use super::wire;
use crate::sockets::{AccountSink, Control, Entry, QuoteSink, SocketInfo, SocketKind};
use crate::wire::{Fields, num};

struct Chart {
    historical_id: i64,
    realtime_id: i64,
    contract_index: usize,
    minutes: i64,
}

#[derive(Default)]
struct MdSubs {
    quotes: HashSet<usize>,
    doms: HashSet<usize>,
    histograms: HashSet<usize>,
    charts: Vec<Chart>,
}

impl MdSubs {
    fn uses(&self, ci: usize) -> bool {
        self.quotes.contains(&ci)
            || self.doms.contains(&ci)
            || self.histograms.contains(&ci)
            || self.charts.iter().any(|c| c.contract_index == ci)
    }
}

struct Session {
    sh: Arc<Shared>,
    id: u64,
    kind: SocketKind,
    ip: IpAddr,
    info: Arc<Mutex<SocketInfo>>,
    identity: Option<Identity>,
    sink: Arc<AccountSink>,
    md_sink: Arc<QuoteSink>,
    entity_types: Option<BTreeSet<String>>,
    synced: bool,
    accounts: Vec<Id>,
    md: MdSubs,
    next_chart: i64,
    last_sent: Instant,
    /// The connection attempt, counted by the socket limits until `authorize` is answered.
    connect: ConnectPass,
}

type Tx = futures_util::stream::SplitSink<WebSocket, Message>;

enum Flow {
    Continue,
    Close,
    Drop,
}

/// Serves one socket until it closes.
pub(crate) async fn serve(
    sh: Arc<Shared>,
    ws: WebSocket,
    ip: IpAddr,
    kind: SocketKind,
    connect: ConnectPass,
) {
    let id = sh.sockets.next.fetch_add(1, Ordering::Relaxed) + 1;
    let (ev_tx, mut ev_rx) = mpsc::channel::<(Id, Arc<[Change]>)>(sh.config.event_queue.max(16));
    let (md_tx, mut md_rx) = mpsc::channel::<Arc<MarketUpdate>>(1024);
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<Control>();
    let info = Arc::new(Mutex::new(SocketInfo {
        id,
        kind,
        ip,
        user_id: None,
        session_id: None,
        accounts: Vec::new(),
        connected_us: now_us(),
    }));
    sh.sockets.map.insert(
        id,
        Entry {
            info: info.clone(),
            control: ctl_tx.clone(),
        },
    );
    let sink_id = sh.ex.next_sink_id();
    let mut s = Session {
        sh: sh.clone(),
        id,
        kind,
        ip,
        info,
        identity: None,
        sink: Arc::new(AccountSink {
            id: sink_id,
            tx: ev_tx,
            control: ctl_tx,
            overflow_code: 3000,
        }),
        md_sink: Arc::new(QuoteSink {
            id: sink_id,
            tx: md_tx,
        }),
        entity_types: None,
        synced: false,
        accounts: Vec::new(),
        md: MdSubs::default(),
        next_chart: 1,
        last_sent: Instant::now(),
        connect,
    };
    let (mut tx, mut rx) = ws.split();
    let connected = Instant::now();
    let mut last_recv = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut drop_now = s.send(&mut tx, "o".to_string()).await.is_err();
    while !drop_now {
        if s.frozen() {
            tokio::select! {
                c = ctl_rx.recv() => {
                    if matches!(c, Some(Control::Drop) | None) { drop_now = true; }
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = sh.shutdown.cancelled() => { drop_now = true; }
            }
            continue;
        }
        let flow = tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    last_recv = Instant::now();
                    s.on_text(&mut tx, t.as_str()).await
                }
                Some(Ok(Message::Binary(b))) => {
                    last_recv = Instant::now();
                    let t = String::from_utf8_lossy(&b).into_owned();
                    s.on_text(&mut tx, &t).await
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    last_recv = Instant::now();
                    Flow::Continue
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => Flow::Drop,
            },
            Some(out) = ev_rx.recv() => s.on_events(&mut tx, out).await,
            Some(update) = md_rx.recv() => s.on_market(&mut tx, &update).await,
            Some(c) = ctl_rx.recv() => s.on_control(&mut tx, c).await,
            _ = ticker.tick() => {
                if last_recv.elapsed() >= sh.config.client_timeout {
                    tracing::debug!(socket = id, "client heartbeat timeout: dropping");
                    Flow::Close
                } else if s.identity.is_none() && connected.elapsed() >= sh.config.auth_timeout {
                    Flow::Close
                } else if s.last_sent.elapsed() >= sh.config.heartbeat_interval {
                    if s.send(&mut tx, "h".to_string()).await.is_err() { Flow::Drop } else { Flow::Continue }
                } else {
                    Flow::Continue
                }
            }
            () = sh.shutdown.cancelled() => {
                s.planned_close(&mut tx, 1000, "Server shutdown", Some("Maintenance")).await;
                Flow::Close
            }
        };
        match flow {
            Flow::Continue => {}
            Flow::Close => {
                let _ = tx
                    .send(Message::Close(Some(CloseFrame {
                        code: 1000,
                        reason: Utf8Bytes::from_static(""),
                    })))
                    .await;
                break;
            }
            Flow::Drop => drop_now = true,
        }
    }
    s.cleanup();
}

impl Session {
    fn frozen(&self) -> bool {
        self.sh
            .faults
            .frozen(self.identity.map(|i| i.user_id), &self.accounts)
    }

    async fn send(&mut self, tx: &mut Tx, frame: String) -> Result<(), axum::Error> {
        self.last_sent = Instant::now();
        tx.send(Message::Text(frame.into())).await
    }

    async fn respond(&mut self, tx: &mut Tx, id: i64, status: u16, d: Option<Value>) -> Flow {
        let mut m = serde_json::Map::new();
        m.insert("s".into(), json!(status));
        m.insert("i".into(), json!(id));
        if let Some(d) = d {
            m.insert("d".into(), d);
        }
        let frame = format!("a[{}]", Value::Object(m));
        if self.send(tx, frame).await.is_err() {
            Flow::Drop
        } else {
            Flow::Continue
        }
    }

    async fn planned_close(
        &mut self,
        tx: &mut Tx,
        code: u16,
        reason: &str,
        shutdown: Option<&str>,
    ) {
        if let Some(rc) = shutdown {
            let ev = json!([{"e": "shutdown", "d": {"reasonCode": rc, "reason": reason}}]);
            let _ = self.send(tx, format!("a{ev}")).await;
        }
        let _ = self
            .send(
                tx,
                format!("c[{code},{}]", Value::String(reason.to_string())),
            )
            .await;
    }

    async fn on_control(&mut self, tx: &mut Tx, c: Control) -> Flow {
        match c {
            Control::Close {
                code,
                reason,
                shutdown,
            } => {
                self.planned_close(tx, code, &reason, shutdown.as_deref())
                    .await;
                Flow::Close
            }
            Control::Drop => Flow::Drop,
        }
    }

    async fn on_text(&mut self, tx: &mut Tx, text: &str) -> Flow {
        let received_us = now_us();
        if text.trim() == "[]" {
            return Flow::Continue;
        }
        let mut parts = text.splitn(4, '\n');
        let endpoint = parts.next().unwrap_or("").trim().to_string();
        let Some(id) = parts.next().and_then(|i| i.trim().parse::<i64>().ok()) else {
            tracing::debug!(socket = self.id, "ignoring a malformed frame");
            return Flow::Continue;
        };
        let query = parts.next().unwrap_or("").trim().to_string();
        let body = parts.next().unwrap_or("").to_string();
        let ep = endpoint.trim_matches('/').to_ascii_lowercase();
        if ep == "authorize" {
            return self.authorize(tx, id, &body).await;
        }
        let Some(identity) = self.identity else {
            return self
                .respond(
                    tx,
                    id,
                    401,
                    Some(Value::String("\"Access is denied\"".into())),
                )
                .await;
        };
        match (self.kind, ep.as_str()) {
            (SocketKind::Md, e) if e.starts_with("md/") => self.md_request(tx, id, e, &body).await,
            (SocketKind::User, "user/syncrequest") => {
                self.sync(tx, id, identity, &body, received_us).await
            }
            _ if ep.starts_with("md/") || self.kind == SocketKind::Md => {
                self.respond(
                    tx,
                    id,
                    404,
                    Some(Value::String(format!("\"Not found: {endpoint}\""))),
                )
                .await
            }
            _ => {
                let caller = Caller {
                    ip: self.ip,
                    token: None,
                    socket: Some(identity),
                    received_us,
                };
                let out = rest::dispatch(&self.sh, &caller, &ep, &query, &body).await;
                match out.after {
                    After::Drop => return Flow::Drop,
                    After::Hang => return Flow::Continue,
                    After::Respond => {}
                }
                let status = out.reply.status;
                let d = match out.reply.body {
                    Body::Empty => None,
                    Body::Json(v) if (200..300).contains(&status) => Some(v),
                    other => Some(Value::String(
                        rest::Reply {
                            status,
                            body: other,
                        }
                        .body_text(),
                    )),
                };
                self.respond(tx, id, status, d).await
            }
        }
    }

    async fn authorize(&mut self, tx: &mut Tx, id: i64, body: &str) -> Flow {
        let raw = body.trim();
        // Official docs send the raw token; the official JS helper JSON-quotes it.
        let token = serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string());
        // Answered either way: the connection attempt is over.
        self.connect.opened();
        match self.sh.auth.validate(&token) {
            Ok(identity) if self.identity.is_some_and(|i| i.user_id != identity.user_id) => {
                // The socket's subscriptions belong to the first user: no switching users.
                let text = Value::String("Already authorized for another user".into()).to_string();
                self.respond(tx, id, 400, Some(Value::String(text))).await
            }
            Ok(identity) => {
                self.identity = Some(identity);
                {
                    let mut info = self.info.lock();
                    info.user_id = Some(identity.user_id);
                    info.session_id = Some(identity.session_id);
                }
                self.respond(tx, id, 200, None).await
            }
            Err(e) => {
                self.respond(
                    tx,
                    id,
                    401,
                    Some(Value::String(Value::String(e.to_string()).to_string())),
                )
                .await
            }
        }
    }

    async fn sync(
        &mut self,
        tx: &mut Tx,
        id: i64,
        identity: Identity,
        body: &str,
        received_us: i64,
    ) -> Flow {
        let body_value: Value = if body.trim().is_empty() {
            json!({})
        } else {
            match serde_json::from_str(body) {
                Ok(v) => v,
                Err(e) => {
                    return self
                        .respond(
                            tx,
                            id,
                            400,
                            Some(Value::String(
                                Value::String(format!("Malformed JSON body: {e}")).to_string(),
                            )),
                        )
                        .await;
                }
            }
        };
        // Faults and limits apply to sync requests like to any other request.
        let caller = Caller {
            ip: self.ip,
            token: None,
            socket: Some(identity),
            received_us,
        };
        let ticket = Fields(&body_value).text("p-ticket");
        let user = match rest::gate(
            &self.sh,
            &caller,
            "user/syncrequest",
            &body_value,
            ticket.as_deref(),
        )
        .await
        {
            Ok(p) => p.user,
            Err(reply) => {
                let status = reply.status;
                let d = match reply.body {
                    Body::Empty => None,
                    Body::Json(v) if status == 200 => Some(v),
                    other => Some(Value::String(
                        rest::Reply {
                            status,
                            body: other,
                        }
                        .body_text(),
                    )),
                };
                return self.respond(tx, id, status, d).await;
            }
        };
        let sink: Arc<dyn EventSink> = self.sink.clone();
        let (msg, scope, types) = rest::sync_snapshot(&self.sh, &user, &body_value, Some(sink));
        for a in scope {
            if !self.accounts.contains(&a) {
                self.accounts.push(a);
            }
        }
        // A second sync request on the same socket widens the filter (none = everything).
        self.entity_types = match (self.synced, self.entity_types.take(), types) {
            (false, _, t) => t,
            (true, Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            (true, _, _) => None,
        };
        self.synced = true;
        self.info.lock().accounts.clone_from(&self.accounts);
        self.respond(tx, id, 200, Some(msg)).await
    }

    fn wants(&self, entity: &str, array: &str) -> bool {
        self.entity_types
            .as_ref()
            .is_none_or(|t| t.contains(entity) || t.contains(array))
    }

    async fn on_events(&mut self, tx: &mut Tx, (account_id, batch): (Id, Arc<[Change]>)) -> Flow {
        if let Some(identity) = self.identity
            && self.sh.faults.suppressed(identity.user_id, account_id)
        {
            return Flow::Continue;
        }
        let mut items = Vec::with_capacity(batch.len());
        for c in batch.iter() {
            let (kind, json) = entity_json(&c.entity);
            let (entity, array) = kind.names();
            if !self.wants(entity, array) {
                continue;
            }
            let event_type = match c.kind {
                ChangeKind::Created => "Created",
                ChangeKind::Updated => "Updated",
                ChangeKind::Deleted => "Deleted",
            };
            items.push(json!({
                "e": "props",
                "d": {"entityType": entity, "eventType": event_type, "entity": json},
            }));
        }
        if items.is_empty() {
            return Flow::Continue;
        }
        let frame = format!("a{}", Value::Array(items));
        if self.send(tx, frame).await.is_err() {
            Flow::Drop
        } else {
            Flow::Continue
        }
    }

    // -------------------------------------------------------------------- market data

    fn contract_of(&self, symbol: Option<&Value>) -> Option<usize> {
        let cat = &self.sh.ex.catalog;
        match symbol? {
            Value::Number(n) => n.as_i64().and_then(|id| cat.contract(id)).map(|c| c.index),
            Value::String(s) => cat
                .contract_by_name(s)
                .or_else(|| s.trim().parse::<Id>().ok().and_then(|id| cat.contract(id)))
                .map(|c| c.index),
            _ => None,
        }
    }

    async fn md_request(&mut self, tx: &mut Tx, id: i64, ep: &str, body: &str) -> Flow {
        let v: Value = serde_json::from_str(body).unwrap_or_else(|_| json!({}));
        let f = Fields(&v);
        let op = ep.trim_start_matches("md/");
        if op == "cancelchart" {
            let sub = f.int("subscriptionId");
            let before = self.md.charts.len();
            let mut freed = Vec::new();
            self.md.charts.retain(|c| {
                let hit = sub == Some(c.historical_id) || sub == Some(c.realtime_id);
                if hit {
                    freed.push(c.contract_index);
                }
                !hit
            });
            for ci in freed {
                self.release_market(ci);
            }
            return if self.md.charts.len() < before {
                self.respond(tx, id, 200, Some(json!({}))).await
            } else {
                self.respond(
                    tx,
                    id,
                    404,
                    Some(Value::String(format!(
                        "\"Not found: chart subscription {}\"",
                        sub.unwrap_or(0)
                    ))),
                )
                .await
            };
        }
        let Some(ci) = self.contract_of(f.value("symbol")) else {
            let text = format!(
                "\"Unknown symbol: {}\"",
                f.value("symbol").map(Value::to_string).unwrap_or_default()
            );
            return self.respond(tx, id, 404, Some(Value::String(text))).await;
        };
        let now = now_us();
        match op {
            "subscribequote" | "subscribedom" | "subscribehistogram" => {
                match op {
                    "subscribequote" => self.md.quotes.insert(ci),
                    "subscribedom" => self.md.doms.insert(ci),
                    _ => self.md.histograms.insert(ci),
                };
                self.sh.ex.market(ci).subscribe(self.md_sink.clone());
                if let Flow::Drop = self.respond(tx, id, 200, Some(json!({}))).await {
                    return Flow::Drop;
                }
                let snap = self.sh.ex.market(ci).snapshot(now);
                let d = match op {
                    "subscribequote" => json!({"quotes": [quote_json(&snap)]}),
                    "subscribedom" => json!({"doms": [dom_json(&snap)]}),
                    _ => json!({"histograms": [histogram_json(&snap)]}),
                };
                self.send_event(tx, "md", d).await
            }
            "unsubscribequote" | "unsubscribedom" | "unsubscribehistogram" => {
                match op {
                    "unsubscribequote" => self.md.quotes.remove(&ci),
                    "unsubscribedom" => self.md.doms.remove(&ci),
                    _ => self.md.histograms.remove(&ci),
                };
                self.release_market(ci);
                self.respond(tx, id, 200, Some(json!({}))).await
            }
            "getchart" => self.get_chart(tx, id, ci, &v).await,
            _ => {
                self.respond(
                    tx,
                    id,
                    404,
                    Some(Value::String(format!("\"Not found: {ep}\""))),
                )
                .await
            }
        }
    }

    fn release_market(&self, ci: usize) {
        if !self.md.uses(ci) {
            self.sh.ex.market(ci).unsubscribe(self.md_sink.id);
        }
    }

    async fn get_chart(&mut self, tx: &mut Tx, id: i64, ci: usize, v: &Value) -> Flow {
        let desc = v
            .get("chartDescription")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let d = Fields(&desc);
        let underlying = d
            .text("underlyingType")
            .unwrap_or_else(|| "MinuteBar".into());
        let minutes = match underlying.to_ascii_lowercase().as_str() {
            "minutebar" => d.int("elementSize").unwrap_or(1).max(1),
            "dailybar" => 1440,
            other => {
                let text = format!(
                    "\"Unsupported chart type {other}: the simulator serves MinuteBar and DailyBar\""
                );
                return self.respond(tx, id, 400, Some(Value::String(text))).await;
            }
        };
        let range = v.get("timeRange").cloned().unwrap_or_else(|| json!({}));
        let r = Fields(&range);
        let limit = r
            .int("asMuchAsElements")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(500);
        let from = r
            .text("asFarAsTimestamp")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.timestamp_micros());
        let historical_id = self.next_chart;
        let realtime_id = self.next_chart + 1;
        self.next_chart += 2;
        self.md.charts.push(Chart {
            historical_id,
            realtime_id,
            contract_index: ci,
            minutes,
        });
        if let Flow::Drop = self
            .respond(
                tx,
                id,
                200,
                Some(json!({"historicalId": historical_id, "realtimeId": realtime_id})),
            )
            .await
        {
            return Flow::Drop;
        }
        let sh = self.sh.clone();
        let market = sh.ex.market(ci);
        let bars = aggregate(&market.bars(from, usize::MAX), minutes);
        let skip = bars.len().saturating_sub(limit);
        let bars: Vec<Value> = bars.into_iter().skip(skip).collect();
        let td = td_number(now_us());
        if let Flow::Drop = self
            .send_chart(
                tx,
                json!({"charts": [{"id": historical_id, "td": td, "bars": bars}]}),
            )
            .await
        {
            return Flow::Drop;
        }
        if let Flow::Drop = self
            .send_chart(tx, json!({"charts": [{"id": historical_id, "eoh": true}]}))
            .await
        {
            return Flow::Drop;
        }
        market.subscribe(self.md_sink.clone());
        Flow::Continue
    }

    async fn send_event(&mut self, tx: &mut Tx, e: &str, d: Value) -> Flow {
        let frame = format!("a{}", json!([{"e": e, "d": d}]));
        if self.send(tx, frame).await.is_err() {
            Flow::Drop
        } else {
            Flow::Continue
        }
    }

    async fn send_chart(&mut self, tx: &mut Tx, d: Value) -> Flow {
        self.send_event(tx, "chart", d).await
    }

    async fn on_market(&mut self, tx: &mut Tx, u: &Arc<MarketUpdate>) -> Flow {
        let Some(c) = self.sh.ex.catalog.contract(u.quote.contract_id) else {
            return Flow::Continue;
        };
        let ci = c.index;
        let mut events = Vec::new();
        let mut md = serde_json::Map::new();
        if self.md.quotes.contains(&ci) {
            md.insert("quotes".into(), json!([quote_json(u)]));
        }
        if self.md.doms.contains(&ci) {
            md.insert("doms".into(), json!([dom_json(u)]));
        }
        if self.md.histograms.contains(&ci) {
            md.insert("histograms".into(), json!([histogram_json(u)]));
        }
        if !md.is_empty() {
            events.push(json!({"e": "md", "d": Value::Object(md)}));
        }
        let charts: Vec<Value> = self
            .md
            .charts
            .iter()
            .filter(|ch| ch.contract_index == ci)
            .map(|ch| {
                let from =
                    u.bar.timestamp_us - u.bar.timestamp_us.rem_euclid(ch.minutes * 60_000_000);
                let bars = aggregate(
                    &self.sh.ex.market(ci).bars(Some(from), usize::MAX),
                    ch.minutes,
                );
                json!({"id": ch.realtime_id, "td": td_number(u.quote.timestamp_us), "bars": bars})
            })
            .collect();
        if !charts.is_empty() {
            events.push(json!({"e": "chart", "d": {"charts": charts}}));
        }
        if events.is_empty() {
            return Flow::Continue;
        }
        let frame = format!("a{}", Value::Array(events));
        if self.send(tx, frame).await.is_err() {
            Flow::Drop
        } else {
            Flow::Continue
        }
    }

    fn cleanup(&mut self) {
        for a in &self.accounts {
            self.sh.ex.unsubscribe(*a, self.sink.id);
        }
        let cis: HashSet<usize> = self
            .md
            .quotes
            .iter()
            .chain(self.md.doms.iter())
            .chain(self.md.histograms.iter())
            .copied()
            .chain(self.md.charts.iter().map(|c| c.contract_index))
            .collect();
        for ci in cis {
            self.sh.ex.market(ci).unsubscribe(self.md_sink.id);
        }
        self.sh.sockets.map.remove(&self.id);
    }
}

/// The `props` entity type and JSON of a change.
fn entity_json(e: &Entity) -> (Kind, Value) {
    match e {
        Entity::Account(a) => (Kind::Account, wire::account(a)),
        Entity::Order(o) => (Kind::Order, wire::order(o)),
        Entity::OrderVersion(v) => (Kind::OrderVersion, wire::order_version(v)),
        Entity::Command(c) => (Kind::Command, wire::command(c)),
        Entity::CommandReport(c) => (Kind::CommandReport, wire::command_report(c)),
        Entity::ExecutionReport(x) => (Kind::ExecutionReport, wire::execution_report(x)),
        Entity::Fill(f) => (Kind::Fill, wire::fill(f)),
        Entity::FillPair(p) => (Kind::FillPair, wire::fill_pair(p)),
        Entity::Position(p) => (Kind::Position, wire::position(p)),
        Entity::CashBalance(c) => (Kind::CashBalance, wire::cash_balance(c)),
        Entity::OrderStrategy(s) => (Kind::OrderStrategy, wire::order_strategy(s)),
        Entity::OrderStrategyLink(l) => (Kind::OrderStrategyLink, wire::order_strategy_link(l)),
    }
}

fn td_number(us: i64) -> i64 {
    let d = trade_date_of(us);
    i64::from(chrono::Datelike::year(&d)) * 10_000
        + i64::from(chrono::Datelike::month(&d)) * 100
        + i64::from(chrono::Datelike::day(&d))
}

fn quote_json(u: &MarketUpdate) -> Value {
    let q = &u.quote;
    json!({
        "timestamp": iso(q.timestamp_us),
        "contractId": q.contract_id,
        "entries": {
            "Bid": {"price": num(q.bid), "size": q.size},
            "Offer": {"price": num(q.offer), "size": q.size},
            "Trade": {"price": num(q.trade), "size": 1},
            "TotalTradeVolume": {"size": q.volume},
            "OpeningPrice": {"price": num(q.open)},
            "HighPrice": {"price": num(q.high)},
            "LowPrice": {"price": num(q.low)},
            "SettlementPrice": {"price": num(q.open)},
            "OpenInterest": {"size": 0},
        }
    })
}

fn dom_json(u: &MarketUpdate) -> Value {
    let q = &u.quote;
    let level = |k: i64, sign: i64| {
        json!({
            "price": num(q.trade + rust_decimal::Decimal::from(sign * k) * u.tick_size),
            "size": q.size + u64::try_from(k).unwrap_or(0) * 5,
        })
    };
    json!({
        "contractId": q.contract_id,
        "timestamp": iso(q.timestamp_us),
        "bids": (0..10).map(|k| level(k, -1)).collect::<Vec<_>>(),
        "offers": (0..10).map(|k| level(k, 1)).collect::<Vec<_>>(),
    })
}

fn histogram_json(u: &MarketUpdate) -> Value {
    let d = trade_date_of(u.quote.timestamp_us);
    json!({
        "contractId": u.quote.contract_id,
        "timestamp": iso(u.quote.timestamp_us),
        "tradeDate": {"year": chrono::Datelike::year(&d), "month": chrono::Datelike::month(&d), "day": chrono::Datelike::day(&d)},
        "base": num(u.quote.trade),
        "items": {"0": u.quote.volume},
        "refresh": false,
    })
}

/// Minute bars grouped into `minutes`-minute bars, as chart JSON.
fn aggregate(bars: &[crate::core::market::Bar], minutes: i64) -> Vec<Value> {
    let span = minutes * 60_000_000;
    let mut groups: Vec<(i64, crate::core::market::Bar)> = Vec::new();
    for b in bars {
        let start = b.timestamp_us - b.timestamp_us.rem_euclid(span);
        match groups.last_mut() {
            Some((s, g)) if *s == start => {
                g.high = g.high.max(b.high);
                g.low = g.low.min(b.low);
                g.close = b.close;
                g.up_volume += b.up_volume;
                g.down_volume += b.down_volume;
                g.up_ticks += b.up_ticks;
                g.down_ticks += b.down_ticks;
            }
            _ => groups.push((start, b.clone())),
        }
    }
    groups
        .into_iter()
        .map(|(start, b)| {
            json!({
                "timestamp": iso(start),
                "open": num(b.open),
                "high": num(b.high),
                "low": num(b.low),
                "close": num(b.close),
                "upVolume": b.up_volume,
                "downVolume": b.down_volume,
                "upTicks": b.up_ticks,
                "downTicks": b.down_ticks,
                "bidVolume": b.down_volume,
                "offerVolume": b.up_volume,
            })
        })
        .collect()
}
