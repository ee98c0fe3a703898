//! The user hub of one login: the event stream of its accounts, kept alive by DOMAIN §8 and
//! backed by REST polling while it is down.
//!
//! - connects straight to the WebSocket with `?access_token=` (no negotiation, as ProjectX's
//!   own example does) or, with `negotiate`, negotiates first and connects with the `id` it
//!   gave ([`super::negotiate`]); sends the handshake and waits for `{}`;
//! - subscribes `SubscribeAccounts` and, per account, `SubscribeOrders`, `SubscribePositions`
//!   and `SubscribeTrades`, each awaited by its completion — again after every reconnect (the
//!   server forgets subscriptions); an account added later is subscribed on the live
//!   connection;
//! - pings every `keep_alive` (15 s); nothing from the server for `server_timeout` (30 s) or a
//!   close message ends the connection;
//! - reconnects with back-off 1, 2, 4 … 60 s plus up to 10 % jitter, a fresh token each time;
//! - while it is down, and once after each (re)connection to cover the gap, polls positions,
//!   open and recent orders, the day's trades and balances every `poll_interval` (5 s) and
//!   delivers what changed; the [`Dispatcher`] keeps hub and poll from repeating each other;
//! - positions that shrink go to the exit guard.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use jt_broker::error::BrokerError;
use jt_broker::events::{ConnectionState, EventEnvelope, EventHub};
use jt_broker::model::AccountId;
use jt_net::gate::ConnectGate;
use jt_net::socket::{self, Connection, Ended, Feed, Ws};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::HubConfig;
use crate::http::client::ProjectXHttpClient;

use super::codec::{self, ServerMessage};
use super::guard;
use super::handler::{Dispatcher, Polled, Shrunk};
use super::messages::{self, GatewayEvent};
use super::negotiate;

/// Why a connection ended (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Could not connect, or the handshake failed.
    ConnectFailed,
    /// A subscription was refused or unanswered.
    SubscribeFailed,
    /// Nothing from the server for the timeout.
    ServerSilent,
    /// The server closed the connection (close message, close frame, error, end).
    ClosedByServer,
    /// No token could be had.
    NoToken,
}

impl socket::EndReason for EndReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::ConnectFailed => "connect_failed",
            Self::SubscribeFailed => "subscribe_failed",
            Self::ServerSilent => "server_silent",
            Self::ClosedByServer => "closed_by_server",
            Self::NoToken => "no_token",
        }
    }
}

/// What the hub has done (tests and status pages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Connections that completed their subscriptions.
    pub connections: u64,
    /// Subscription invocations sent (all kinds).
    pub subscribe_calls: u64,
    /// REST polls (one per account) while the hub was down or catching up.
    pub polls: u64,
    /// Every connection end, in order.
    pub ends: Vec<EndReason>,
}

struct Shared {
    feed: Feed<i64>,
    stats: Mutex<HubStats>,
    dispatcher: Mutex<Dispatcher>,
    guard: Option<mpsc::UnboundedSender<Shrunk>>,
    /// Per account, the open orders the last poll saw (id, status, size, filled).
    open_sets: Mutex<HashMap<i64, OpenSet>>,
}

/// (id, status, size, filled) of each open order, sorted.
type OpenSet = Vec<(i64, i32, i64, i64)>;

fn fingerprint(open: &[crate::common::models::OrderModel]) -> OpenSet {
    let mut v: Vec<_> = open
        .iter()
        .map(|o| (o.id, o.status, o.size, o.fill_volume))
        .collect();
    v.sort_unstable();
    v
}

impl Shared {
    fn deliver(&self, events: Vec<EventEnvelope>, shrunk: Vec<Shrunk>) {
        for e in events {
            self.feed.publish(e);
        }
        if let Some(g) = &self.guard {
            for s in shrunk {
                let _ = g.send(s);
            }
        }
    }
}

/// The user hub of one login; stops when [`ProjectXHub::shutdown`] is called or it is
/// dropped.
pub struct ProjectXHub {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for ProjectXHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectXHub")
            .field("feed", &self.shared.feed)
            .finish_non_exhaustive()
    }
}

impl Drop for ProjectXHub {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl ProjectXHub {
    /// Starts the hub task for `http`'s login (it connects once accounts are added) and, when
    /// configured, the exit guard.
    #[must_use]
    pub fn start(
        http: Arc<ProjectXHttpClient>,
        url: Url,
        config: HubConfig,
        gate: Arc<ConnectGate>,
    ) -> Self {
        let hub = Arc::new(EventHub::new(config.subscriber_capacity));
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let guard_tx = if config.exit_guard {
            let (tx, rx) = mpsc::unbounded_channel();
            tasks.push(tokio::spawn(guard::run(
                Arc::clone(&http),
                Arc::clone(&hub),
                rx,
                cancel.clone(),
            )));
            Some(tx)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            feed: Feed::new(hub),
            stats: Mutex::new(HubStats::default()),
            dispatcher: Mutex::new(Dispatcher::new()),
            guard: guard_tx,
            open_sets: Mutex::new(HashMap::new()),
        });
        tasks.push(tokio::spawn(run(
            http,
            url,
            config,
            gate,
            Arc::clone(&shared),
            cancel.clone(),
        )));
        Self {
            shared,
            cancel,
            tasks: Mutex::new(tasks),
        }
    }

    /// The accounts served, the connection state and the subscribers' hub.
    #[must_use]
    pub fn feed(&self) -> &Feed<i64> {
        &self.shared.feed
    }

    /// What the hub has done.
    #[must_use]
    pub fn stats(&self) -> HubStats {
        self.shared.stats.lock().clone()
    }

    /// Stops the hub (and the guard) and waits for their tasks.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// One REST poll of every served account; returns whether every read succeeded.
async fn poll_once(http: &ProjectXHttpClient, shared: &Shared) -> bool {
    let accounts: Vec<i64> = shared.feed.wanted().into_iter().collect();
    let balances = match http.balances().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "ProjectX poll: balances");
            return false;
        }
    };
    let since = crate::http::client::trading_day_start();
    let mut ok = true;
    for id in accounts {
        let account = AccountId::from(id);
        let read = async {
            let positions = http.position_models(&account).await?;
            let open = http.open_order_models(&account).await?;
            let trades = http.trade_models(&account, since).await?;
            // Orders that left the open set (filled, canceled) are read only when that set
            // changed: the budget is 200 calls per 60 s for every account of the token.
            let print = fingerprint(&open);
            let changed = shared.open_sets.lock().insert(id, print.clone()) != Some(print);
            let recent = if changed {
                http.orders_since(&account, since).await?
            } else {
                Vec::new()
            };
            Ok::<_, BrokerError>((positions, open, recent, trades))
        };
        match read.await {
            Ok((positions, open, recent, trades)) => {
                shared.stats.lock().polls += 1;
                let mut shrunk = Vec::new();
                let polled = Polled {
                    positions: &positions,
                    open_orders: &open,
                    recent_orders: &recent,
                    trades: &trades,
                    balance: balances.iter().find(|b| b.id == id),
                };
                let events = shared
                    .dispatcher
                    .lock()
                    .on_poll(&account, &polled, &mut shrunk);
                shared.deliver(events, shrunk);
            }
            Err(e) => {
                ok = false;
                // Read everything again next time.
                shared.open_sets.lock().remove(&id);
                tracing::warn!(account = id, error = %e, "ProjectX poll failed");
                shared
                    .feed
                    .resync(format!("the REST poll of account {id} failed: {e}"));
            }
        }
    }
    ok
}

/// Polls every `poll_interval` until `delay` has passed (at least once).
async fn poll_while_down(
    http: &ProjectXHttpClient,
    shared: &Shared,
    config: &HubConfig,
    delay: Duration,
    cancel: &CancellationToken,
) -> bool {
    let until = Instant::now() + delay;
    loop {
        poll_once(http, shared).await;
        let next = Instant::now() + config.poll_interval;
        if next >= until {
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep_until(until) => return true,
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

/// One login's hub connection, as [`socket::keep_alive`] drives it; while it is down, REST
/// polls stand in for it.
struct HubConnection {
    http: Arc<ProjectXHttpClient>,
    url: Url,
    config: HubConfig,
    gate: Arc<ConnectGate>,
    /// One HTTP client for every negotiation of this hub (none when it does not negotiate).
    negotiator: Option<reqwest::Client>,
    shared: Arc<Shared>,
}

#[async_trait]
impl Connection for HubConnection {
    type Reason = EndReason;

    async fn serve(&mut self, cancel: &CancellationToken) -> Option<Ended<EndReason>> {
        connect_and_serve(self, cancel).await
    }

    fn ended(&mut self, ended: &Ended<EndReason>) {
        self.shared.stats.lock().ends.push(ended.reason);
    }

    /// Polls REST every `poll_interval` while the hub is down.
    async fn wait(&mut self, delay: Duration, cancel: &CancellationToken) -> bool {
        poll_while_down(&self.http, &self.shared, &self.config, delay, cancel).await
    }
}

async fn run(
    http: Arc<ProjectXHttpClient>,
    url: Url,
    config: HubConfig,
    gate: Arc<ConnectGate>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let negotiator = negotiator(&config);
    let reconnect = config.reconnect.clone();
    let mut conn = HubConnection {
        http,
        url,
        config,
        gate,
        negotiator,
        shared: Arc::clone(&shared),
    };
    socket::keep_alive("projectx", &shared.feed, &reconnect, &mut conn, &cancel).await;
}

struct Conn {
    ws: Ws,
    next_id: u64,
    pending: HashMap<String, &'static str>,
    last_send: Instant,
    last_recv: Instant,
}

impl Conn {
    async fn send(&mut self, text: String) -> Result<(), String> {
        self.last_send = Instant::now();
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| e.to_string())
    }

    async fn invoke(
        &mut self,
        target: &'static str,
        args: &[serde_json::Value],
    ) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id.to_string(), target);
        self.send(codec::invocation(id, target, args)).await
    }
}

/// Invocations that subscribe an account.
fn account_subscriptions(account: i64) -> [(&'static str, serde_json::Value); 3] {
    [
        ("SubscribeOrders", serde_json::json!(account)),
        ("SubscribePositions", serde_json::json!(account)),
        ("SubscribeTrades", serde_json::json!(account)),
    ]
}

/// An HTTP client for the negotiations of one hub, when `config` negotiates.
pub(super) fn negotiator(config: &HubConfig) -> Option<reqwest::Client> {
    if !config.negotiate {
        return None;
    }
    match reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .build()
    {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "ProjectX hub: no HTTP client to negotiate with");
            None
        }
    }
}

/// Opens a hub connection, the part the user and market hubs share: a token, then inside the
/// fleet's connect gate the WebSocket (after a negotiation when configured) and the SignalR
/// handshake, answered within `connect_timeout`. A 401 makes the session log in afresh before
/// the next attempt. `None` when cancelled.
pub(super) async fn open(
    http: &ProjectXHttpClient,
    url: &Url,
    config: &HubConfig,
    gate: &Arc<ConnectGate>,
    negotiator: Option<&reqwest::Client>,
    cancel: &CancellationToken,
) -> Option<Result<Ws, Ended<EndReason>>> {
    let token = match http.session().token().await {
        Ok(t) => t,
        Err(e) => return Some(Err(Ended::new(EndReason::NoToken, e.to_string()))),
    };
    // Connect and handshake inside the fleet's gate, as every venue's sockets do.
    let pass = tokio::select! {
        () = cancel.cancelled() => return None,
        pass = gate.enter() => pass,
    };
    metrics::counter!("jt_broker_ws_connect_attempts_total", "broker" => "projectx").increment(1);
    let connected = tokio::time::timeout(config.connect_timeout, async {
        let mut target = url.clone();
        if config.negotiate {
            let client = negotiator.ok_or("no HTTP client to negotiate with")?;
            let id =
                negotiate::negotiate(client, url, &token.access, config.connect_timeout).await?;
            target.query_pairs_mut().append_pair("id", &id);
        }
        target
            .query_pairs_mut()
            .append_pair("access_token", &token.access);
        let mut ws = socket::connect(target.as_str()).await?;
        ws.send(Message::Text(codec::handshake().into()))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if let Some(first) = codec::records(t.as_str()).first() {
                        return match codec::decode(first) {
                            Ok(ServerMessage::Handshake { error: None }) => Ok(ws),
                            Ok(ServerMessage::Handshake { error: Some(e) }) => {
                                Err(format!("handshake refused: {e}"))
                            }
                            other => Err(format!("expected the handshake answer, got {other:?}")),
                        };
                    }
                }
                Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("end of stream".into()),
            }
        }
    })
    .await;
    drop(pass);
    Some(match connected {
        Ok(Ok(ws)) => Ok(ws),
        Ok(Err(e)) => {
            if e.contains("401")
                && let Err(err) = http.session().after_unauthorized(&token).await
            {
                return Some(Err(Ended::new(EndReason::NoToken, err.to_string())));
            }
            Err(Ended::new(EndReason::ConnectFailed, e))
        }
        Err(_) => Err(Ended::new(
            EndReason::ConnectFailed,
            "no handshake answer in time",
        )),
    })
}

/// One connection from token to end; `None` when cancelled.
#[allow(clippy::too_many_lines)] // one state machine, easier to follow in one place
async fn connect_and_serve(
    conn: &HubConnection,
    cancel: &CancellationToken,
) -> Option<Ended<EndReason>> {
    let HubConnection {
        http,
        url,
        config,
        gate,
        negotiator,
        shared,
    } = conn;
    let ws = match open(http, url, config, gate, negotiator.as_ref(), cancel).await? {
        Ok(ws) => ws,
        Err(ended) => return Some(ended),
    };
    let now = Instant::now();
    let mut c = Conn {
        ws,
        next_id: 1,
        pending: HashMap::new(),
        last_send: now,
        last_recv: now,
    };
    // Subscribe everything wanted; the subscriptions are confirmed by their completions.
    let mut served: BTreeSet<i64> = shared.feed.wanted();
    let mut calls: Vec<(&'static str, Vec<serde_json::Value>)> =
        vec![("SubscribeAccounts", vec![])];
    for a in &served {
        calls.extend(
            account_subscriptions(*a)
                .into_iter()
                .map(|(t, v)| (t, vec![v])),
        );
    }
    for (t, args) in &calls {
        if let Err(e) = c.invoke(t, args).await {
            return Some(Ended::new(EndReason::SubscribeFailed, e));
        }
    }
    shared.stats.lock().subscribe_calls += calls.len() as u64;
    let subscribe_deadline = Instant::now() + config.invoke_timeout;
    let mut synced_at: Option<Instant> = None;
    let healthy = |s: Option<Instant>| s.map_or(Duration::ZERO, |t| t.elapsed());
    let tick_every = (config.keep_alive / 4)
        .min(config.server_timeout / 4)
        .clamp(Duration::from_millis(10), Duration::from_millis(500));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                let _ = c.ws.close(None).await;
                return None;
            }
            () = shared.feed.accounts_changed() => {
                let wanted = shared.feed.wanted();
                for a in wanted.difference(&served).copied().collect::<Vec<_>>() {
                    for (t, v) in account_subscriptions(a) {
                        if let Err(e) = c.invoke(t, &[v]).await {
                            return Some(Ended::new(EndReason::SubscribeFailed, e).after(healthy(synced_at)));
                        }
                        shared.stats.lock().subscribe_calls += 1;
                    }
                    served.insert(a);
                }
            }
            frame = c.ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Close(f))) => {
                        return Some(Ended::new(EndReason::ClosedByServer, format!("close frame {f:?}")).after(healthy(synced_at)));
                    }
                    Some(Ok(_)) => { c.last_recv = Instant::now(); continue; }
                    Some(Err(e)) => return Some(Ended::new(EndReason::ClosedByServer, e.to_string()).after(healthy(synced_at))),
                    None => return Some(Ended::new(EndReason::ClosedByServer, "end of stream").after(healthy(synced_at))),
                };
                c.last_recv = Instant::now();
                for record in codec::records(&text) {
                    let message = match codec::decode(record) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "undecodable hub message; ignored");
                            continue;
                        }
                    };
                    match message {
                        ServerMessage::Invocation { target, arguments } => {
                            match messages::decode(&target, &arguments) {
                                Ok(Some(GatewayEvent::Logout)) => {
                                    return Some(Ended::new(EndReason::ClosedByServer, "GatewayLogout").after(healthy(synced_at)));
                                }
                                Ok(Some(event)) => {
                                    let mut shrunk = Vec::new();
                                    let events = shared.dispatcher.lock().on_hub(&event, &mut shrunk);
                                    shared.deliver(events, shrunk);
                                }
                                Ok(None) => tracing::debug!(%target, "hub event not used"),
                                Err(e) => {
                                    tracing::warn!(error = %e, "hub event did not decode");
                                    shared.feed.resync(format!("an event did not decode: {e}"));
                                }
                            }
                        }
                        ServerMessage::Completion { invocation_id, error } => {
                            let method = c.pending.remove(&invocation_id);
                            if let Some(e) = error {
                                return Some(Ended::new(EndReason::SubscribeFailed, format!("{} refused: {e}", method.unwrap_or("?"))).after(healthy(synced_at)));
                            }
                            if synced_at.is_none() && c.pending.is_empty() {
                                // Cover what happened while we were away, then say so.
                                poll_once(http, shared).await;
                                synced_at = Some(Instant::now());
                                shared.stats.lock().connections += 1;
                                shared.feed.set_state(ConnectionState::Connected);
                            }
                        }
                        ServerMessage::Close { error, allow_reconnect } => {
                            return Some(Ended::new(EndReason::ClosedByServer, format!("close message: {} (reconnect allowed: {allow_reconnect})", error.unwrap_or_default())).after(healthy(synced_at)));
                        }
                        ServerMessage::Ping | ServerMessage::Other(_) | ServerMessage::Handshake { .. } => {}
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if now.duration_since(c.last_recv) >= config.server_timeout {
                    return Some(Ended::new(EndReason::ServerSilent, format!("nothing from the hub for {:?}", config.server_timeout)).after(healthy(synced_at)));
                }
                if synced_at.is_none() && now >= subscribe_deadline {
                    return Some(Ended::new(EndReason::SubscribeFailed, "subscriptions unanswered"));
                }
                if now.duration_since(c.last_send) >= config.keep_alive
                    && let Err(e) = c.send(codec::ping()).await
                {
                    return Some(Ended::new(EndReason::ClosedByServer, format!("ping: {e}")).after(healthy(synced_at)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let cfg = HubConfig::default();
        for (attempt, base) in [(0, 1), (1, 2), (2, 4), (5, 32), (6, 60), (20, 60)] {
            let d = cfg.reconnect.delay(attempt);
            let base = Duration::from_secs(base);
            assert!(
                d >= base && d <= base.mul_f64(1.1),
                "attempt {attempt}: {d:?}"
            );
        }
    }
}
