//! The user-data WebSocket of one login, implementing every rule of DOMAIN §8 — the life of
//! the socket (stagger, gate, back-off) is [`jt_net::socket`]'s, shared with every venue; this
//! module is the Tradovate connection itself:
//!
//! - connection attempts pass a process-wide [`ConnectGate`] (2 in flight, 3 s apart) after an
//!   initial random stagger (0–30 s);
//! - a fresh token is read before each connection; the socket is closed and reopened before
//!   that token is 70 minutes old;
//! - heartbeat `[]` every 2.5 s; no frame from the server for 10 s → dead;
//! - a subscription without data for 10 consecutive 30 s windows while the market is open →
//!   reconnect; never for that reason while it is closed;
//! - reconnect back-off 1, 2, 4 … 60 s plus up to 10 % jitter;
//! - one `user/syncrequest` per socket, covering every account it serves; an account added
//!   later is served after a planned reconnect;
//! - each message is parsed once and handed to every subscriber through the [`EventHub`];
//! - replayed fills are filtered by fill id and connection start ([`Dispatcher`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use jt_broker::error::BrokerError;
use jt_broker::events::{ConnectionState, EventHub};
use jt_broker::model::BrokerKind;
use jt_net::gate::ConnectGate;
use jt_net::socket::{self, Connection, Ended, Feed, Ws};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::WsConfig;
use crate::http::client::TradovateHttpClient;
use crate::http::session::Token;

use super::codec::{self, ServerFrame, WsMessage};
use super::handler::Dispatcher;
use super::messages::{self, Shutdown};

/// Why a connection ended (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Could not connect or the server never said `o`.
    ConnectFailed,
    /// Authorization refused or unanswered.
    AuthFailed,
    /// The sync request was refused or unanswered.
    SyncFailed,
    /// No frame from the server for the silence timeout.
    ServerSilent,
    /// No data for the configured windows while the market was open.
    DeadSubscription,
    /// The server closed the socket (`c` frame, close message, EOF, error).
    ClosedByServer,
    /// The server announced a shutdown.
    ServerShutdown,
    /// Planned: the token reached the maximum socket age.
    TokenAge,
    /// Planned: accounts were added and must be in the sync request.
    AccountsAdded,
    /// No token could be had.
    NoToken,
}

impl EndReason {
    /// A stable label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectFailed => "connect_failed",
            Self::AuthFailed => "auth_failed",
            Self::SyncFailed => "sync_failed",
            Self::ServerSilent => "server_silent",
            Self::DeadSubscription => "dead_subscription",
            Self::ClosedByServer => "closed_by_server",
            Self::ServerShutdown => "server_shutdown",
            Self::TokenAge => "token_age",
            Self::AccountsAdded => "accounts_added",
            Self::NoToken => "no_token",
        }
    }

    /// Planned reconnects skip the back-off.
    #[must_use]
    pub fn is_planned(self) -> bool {
        matches!(self, Self::TokenAge | Self::AccountsAdded)
    }
}

impl socket::EndReason for EndReason {
    fn as_str(self) -> &'static str {
        EndReason::as_str(self)
    }

    fn is_planned(self) -> bool {
        EndReason::is_planned(self)
    }
}

/// What the socket has done (tests and status pages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Connections that reached the synchronised state.
    pub synced_connections: u64,
    /// Every connection end, in order, with its reason.
    pub ends: Vec<EndReason>,
    /// Sync requests sent.
    pub sync_requests: u64,
}

struct Shared {
    feed: Feed<i64>,
    served: Mutex<BTreeSet<i64>>,
    stats: Mutex<SocketStats>,
}

/// The socket of one login; cheap to share, stops when [`TradovateSocket::shutdown`] is called
/// or it is dropped.
pub struct TradovateSocket {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for TradovateSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradovateSocket")
            .field("state", &self.shared.feed.state())
            .field("served", &*self.shared.served.lock())
            .finish_non_exhaustive()
    }
}

impl Drop for TradovateSocket {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Everything a socket needs.
#[derive(Clone)]
pub struct SocketSetup {
    /// The user WebSocket URL.
    pub url: Url,
    /// Rules and timings.
    pub config: WsConfig,
    /// The connect gate (normally [`ConnectGate::process_wide`]).
    pub gate: Arc<ConnectGate>,
    /// Broker label.
    pub kind: BrokerKind,
}

impl TradovateSocket {
    /// Starts the socket task for `http`'s login. It connects once accounts are added.
    #[must_use]
    pub fn start(http: Arc<TradovateHttpClient>, setup: SocketSetup) -> Self {
        let shared = Arc::new(Shared {
            feed: Feed::new(Arc::new(EventHub::new(setup.config.subscriber_capacity))),
            served: Mutex::new(BTreeSet::new()),
            stats: Mutex::new(SocketStats::default()),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(http, setup, Arc::clone(&shared), cancel.clone()));
        Self {
            shared,
            cancel,
            task: Mutex::new(Some(task)),
        }
    }

    /// The accounts served, the connection state and the subscribers' hub.
    #[must_use]
    pub fn feed(&self) -> &Feed<i64> {
        &self.shared.feed
    }

    /// Accounts covered by the live connection's sync request.
    #[must_use]
    pub fn served(&self) -> BTreeSet<i64> {
        self.shared.served.lock().clone()
    }

    /// What the socket has done.
    #[must_use]
    pub fn stats(&self) -> SocketStats {
        self.shared.stats.lock().clone()
    }

    /// Stops the socket and waits for its task.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// One login's connection, as [`socket::keep_alive`] drives it.
struct Conn {
    http: Arc<TradovateHttpClient>,
    setup: SocketSetup,
    shared: Arc<Shared>,
    dispatcher: Dispatcher,
}

#[async_trait]
impl Connection for Conn {
    type Reason = EndReason;

    async fn serve(&mut self, cancel: &CancellationToken) -> Option<Ended<EndReason>> {
        connect_and_serve(
            &self.http,
            &self.setup,
            &self.shared,
            &mut self.dispatcher,
            cancel,
        )
        .await
    }

    fn ended(&mut self, ended: &Ended<EndReason>) {
        self.shared.served.lock().clear();
        self.shared.stats.lock().ends.push(ended.reason);
    }
}

async fn run(
    http: Arc<TradovateHttpClient>,
    setup: SocketSetup,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let kind = setup.kind;
    let reconnect = setup.config.reconnect.clone();
    let mut conn = Conn {
        dispatcher: Dispatcher::new(kind, setup.config.replay_skew),
        http,
        setup,
        shared: Arc::clone(&shared),
    };
    socket::keep_alive(kind.as_str(), &shared.feed, &reconnect, &mut conn, &cancel).await;
    // A cancelled connection leaves nothing served either.
    shared.served.lock().clear();
}

/// Reads the next text frame, skipping pings and binary frames.
pub(crate) async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_string()),
            Some(Ok(Message::Close(c))) => {
                return Err(format!("close message {c:?}"));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("end of stream".into()),
        }
    }
}

pub(crate) fn token_error(e: BrokerError) -> Ended<EndReason> {
    match e {
        BrokerError::NeedsReauth { reason } => Ended {
            fatal: true,
            ..Ended::new(
                EndReason::NoToken,
                format!("needs re-authentication: {reason}"),
            )
        },
        BrokerError::LockedOut { until } => Ended {
            not_before: Some(Instant::now() + (until - Utc::now()).to_std().unwrap_or_default()),
            ..Ended::new(
                EndReason::NoToken,
                format!("login locked out until {until}"),
            )
        },
        BrokerError::RateLimited { retry_after }
        | BrokerError::Penalty {
            wait: retry_after, ..
        } => Ended {
            not_before: Some(Instant::now() + retry_after),
            ..Ended::new(EndReason::NoToken, "rate limited while getting a token")
        },
        other => Ended::new(EndReason::NoToken, other.to_string()),
    }
}

/// Opens a socket at `url` through the connect gate, waits for `o` and authorizes with `bearer`
/// (the access token, or the market-data token on the md socket); `None` when cancelled. A 401
/// lets the session find out whether `token` is dead and replace it. Shared by the user socket
/// and the market-data socket ([`super::market`]).
pub(crate) async fn open_authorized(
    http: &Arc<TradovateHttpClient>,
    url: &Url,
    setup: &SocketSetup,
    token: &Token,
    bearer: &str,
    cancel: &CancellationToken,
) -> Option<Result<Ws, Ended<EndReason>>> {
    let cfg = &setup.config;
    let pass = tokio::select! {
        () = cancel.cancelled() => return None,
        pass = setup.gate.enter() => pass,
    };
    metrics::counter!("jt_broker_ws_connect_attempts_total", "broker" => setup.kind.as_str())
        .increment(1);
    let connected = tokio::time::timeout(cfg.connect_timeout, async {
        let mut ws = socket::connect(url.as_str()).await?;
        loop {
            let text = next_text(&mut ws).await?;
            match codec::decode_server_frame(&text) {
                Ok(ServerFrame::Open) => return Ok::<Ws, String>(ws),
                Ok(ServerFrame::Heartbeat) => {}
                Ok(other) => return Err(format!("expected `o`, got {other:?}")),
                Err(e) => return Err(format!("expected `o`: {e}")),
            }
        }
    })
    .await;
    let mut ws = match connected {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return Some(Err(Ended::new(EndReason::ConnectFailed, e))),
        Err(_) => {
            return Some(Err(Ended::new(EndReason::ConnectFailed, "no `o` in time")));
        }
    };
    if let Err(e) = ws
        .send(Message::Text(
            codec::encode_request("authorize", 0, "", bearer).into(),
        ))
        .await
    {
        return Some(Err(Ended::new(EndReason::AuthFailed, e.to_string())));
    }
    let auth = tokio::time::timeout(cfg.auth_timeout, async {
        loop {
            let text = next_text(&mut ws).await?;
            if let Ok(ServerFrame::Messages(ms)) = codec::decode_server_frame(&text) {
                for m in ms {
                    if let WsMessage::Response {
                        id: 0,
                        status,
                        data,
                    } = m
                    {
                        return Ok::<(u16, String), String>((
                            status,
                            codec::error_text(data.as_deref()),
                        ));
                    }
                }
            }
        }
    })
    .await;
    match auth {
        Ok(Ok((200, _))) => {}
        Ok(Ok((status, text))) => {
            drop(pass);
            if status == 401 {
                // The session may be gone (evicted): let the session find out and replace it.
                if let Err(e) = http.session().after_unauthorized(token).await {
                    return Some(Err(token_error(e)));
                }
            }
            return Some(Err(Ended::new(
                EndReason::AuthFailed,
                format!("authorize answered {status}: {text}"),
            )));
        }
        Ok(Err(e)) => return Some(Err(Ended::new(EndReason::AuthFailed, e))),
        Err(_) => {
            return Some(Err(Ended::new(
                EndReason::AuthFailed,
                "authorize unanswered",
            )));
        }
    }
    drop(pass);
    Some(Ok(ws))
}

/// One connection from token to end. `None` when cancelled.
#[allow(clippy::too_many_lines)] // one state machine, easier to follow in one place
async fn connect_and_serve(
    http: &Arc<TradovateHttpClient>,
    setup: &SocketSetup,
    shared: &Arc<Shared>,
    dispatcher: &mut Dispatcher,
    cancel: &CancellationToken,
) -> Option<Ended<EndReason>> {
    let cfg = &setup.config;
    let token: Token = match http
        .session()
        .socket_token(cfg.max_token_age, cfg.min_socket_life)
        .await
    {
        Ok(t) => t,
        Err(e) => return Some(token_error(e)),
    };
    let accounts: BTreeSet<i64> = shared.feed.wanted();

    // --- connect and authorize, inside the gate ---------------------------------------------
    let mut ws =
        match open_authorized(http, &setup.url, setup, &token, &token.access, cancel).await? {
            Ok(ws) => ws,
            Err(ended) => return Some(ended),
        };

    // --- one sync request covering every served account -----------------------------------
    let mut body = serde_json::json!({ "accounts": accounts.iter().collect::<Vec<_>>() });
    if let Some(types) = &cfg.entity_types {
        body["entityTypes"] = serde_json::json!(types);
    }
    let started_at = Utc::now();
    if let Err(e) = ws
        .send(Message::Text(
            codec::encode_request("user/syncrequest", 1, "", &body.to_string()).into(),
        ))
        .await
    {
        return Some(Ended::new(EndReason::SyncFailed, e.to_string()));
    }
    shared.stats.lock().sync_requests += 1;
    dispatcher.begin_connection(accounts.iter().copied().collect(), started_at);

    // --- serve ------------------------------------------------------------------------------
    let now = Instant::now();
    let mut last_send = now;
    let mut last_server_frame = now;
    let mut synced_at: Option<Instant> = None;
    let sync_deadline = now + cfg.sync_timeout;
    let mut window_start = now;
    let mut data_in_window = false;
    let mut silent_windows: u32 = 0;
    let token_deadline = now + cfg.max_token_age.saturating_sub(token.age(Utc::now()));
    let mut accounts_pending_since: Option<Instant> = None;
    let tick_every = (cfg.heartbeat_interval / 2)
        .min(cfg.server_silence_timeout / 4)
        .min(Duration::from_millis(500))
        .max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let healthy = |synced_at: Option<Instant>| synced_at.map_or(Duration::ZERO, |t| t.elapsed());

    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                let _ = ws.close(None).await;
                return None;
            }
            () = shared.feed.accounts_changed() => {
                let wanted = shared.feed.wanted();
                if !wanted.is_subset(&accounts) && accounts_pending_since.is_none() {
                    accounts_pending_since = Some(Instant::now());
                }
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                    Some(Ok(Message::Close(c))) => {
                        return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::ClosedByServer, format!("close message {c:?}")) });
                    }
                    Some(Ok(_)) => { last_server_frame = Instant::now(); continue; }
                    Some(Err(e)) => {
                        return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::ClosedByServer, e.to_string()) });
                    }
                    None => {
                        return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::ClosedByServer, "end of stream") });
                    }
                };
                last_server_frame = Instant::now();
                let frame = match codec::decode_server_frame(&text) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable frame from the broker; ignored");
                        continue;
                    }
                };
                match frame {
                    ServerFrame::Open | ServerFrame::Heartbeat => {}
                    ServerFrame::Close { code, reason } => {
                        return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::ClosedByServer, format!("c[{code:?},{reason:?}]")) });
                    }
                    ServerFrame::Messages(ms) => {
                        for m in ms {
                            match m {
                                WsMessage::Response { id: 1, status, data } if synced_at.is_none() => {
                                    if status != 200 {
                                        return Some(Ended::new(EndReason::SyncFailed, format!("sync answered {status}: {}", codec::error_text(data.as_deref()))));
                                    }
                                    if let Some(p) = data.as_deref().and_then(messages::penalty) {
                                        let secs = p.time.as_ref().and_then(serde_json::Number::as_u64).unwrap_or(60);
                                        let wait = if p.captcha == Some(true) { Duration::from_secs(3_600) } else { Duration::from_secs(secs) };
                                        return Some(Ended { not_before: Some(Instant::now() + wait), ..Ended::new(EndReason::SyncFailed, format!("sync answered with a penalty ticket: wait {wait:?}")) });
                                    }
                                    let Some(snap) = data.as_deref().and_then(messages::decode_sync) else {
                                        return Some(Ended::new(EndReason::SyncFailed, "sync answer without `users`"));
                                    };
                                    if !snap.undecoded.is_empty() {
                                        tracing::warn!(undecoded = ?snap.undecoded, "sync snapshot entities did not decode");
                                    }
                                    http.learn_contract_names(snap.contracts.iter().map(|c| (c.id, c.name.clone())));
                                    synced_at = Some(Instant::now());
                                    *shared.served.lock() = accounts.clone();
                                    shared.stats.lock().synced_connections += 1;
                                    shared.feed.set_state(ConnectionState::Connected);
                                    for e in dispatcher.on_sync(&snap) {
                                        shared.feed.publish(e);
                                    }
                                    data_in_window = true;
                                }
                                WsMessage::Response { .. } => {}
                                WsMessage::Event { name, data } => match (name.as_str(), data) {
                                    ("props", Some(d)) => {
                                        data_in_window = true;
                                        match messages::decode_props(&d) {
                                            Ok(props) => {
                                                let unknown = dispatcher.unknown_contracts(&props);
                                                if !unknown.is_empty() {
                                                    // Cached per login: one `contract/item` per new contract.
                                                    dispatcher.learn_contract_names(http.contract_names(unknown).await);
                                                }
                                                let (events, unattributed) = dispatcher.on_props(&props);
                                                for e in events {
                                                    shared.feed.publish(e);
                                                }
                                                for fill in unattributed {
                                                    attribute(http, dispatcher, shared, &fill).await;
                                                }
                                            }
                                            Err(e) => {
                                                tracing::warn!(error = %e, "props event did not decode");
                                                shared.feed.resync(format!("an event did not decode: {e}"));
                                            }
                                        }
                                    }
                                    ("shutdown", d) => {
                                        let why = d.and_then(|d| serde_json::from_str::<Shutdown>(d.get()).ok())
                                            .map_or_else(|| "unspecified".to_string(), |s| format!("{} {}", s.reason_code, s.reason.unwrap_or_default()));
                                        return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::ServerShutdown, why) });
                                    }
                                    _ => { data_in_window = true; }
                                },
                            }
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if now.duration_since(last_server_frame) >= cfg.server_silence_timeout {
                    return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::ServerSilent, format!("no frame from the server for {:?}", cfg.server_silence_timeout)) });
                }
                if synced_at.is_none() && now >= sync_deadline {
                    return Some(Ended::new(EndReason::SyncFailed, "sync request unanswered"));
                }
                if now.duration_since(last_send) >= cfg.heartbeat_interval {
                    if let Err(e) = ws.send(Message::Text(codec::CLIENT_HEARTBEAT.into())).await {
                        return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::ClosedByServer, format!("heartbeat: {e}")) });
                    }
                    last_send = now;
                }
                if synced_at.is_some() && now.duration_since(window_start) >= cfg.subscription_window {
                    window_start = now;
                    if data_in_window {
                        silent_windows = 0;
                    } else if (cfg.market_hours)(Utc::now()) {
                        silent_windows += 1;
                        if silent_windows >= cfg.dead_subscription_windows {
                            return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::DeadSubscription, format!("no data for {silent_windows} windows of {:?} while the market is open", cfg.subscription_window)) });
                        }
                    } else {
                        // A quiet market is not a dead subscription.
                        silent_windows = 0;
                    }
                    data_in_window = false;
                }
                if now >= token_deadline {
                    let _ = ws.close(None).await;
                    return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::TokenAge, format!("token reached {:?}", cfg.max_token_age)) });
                }
                if let Some(since) = accounts_pending_since
                    && now.duration_since(since) >= cfg.account_add_debounce
                {
                    let _ = ws.close(None).await;
                    return Some(Ended { healthy_for: healthy(synced_at), ..Ended::new(EndReason::AccountsAdded, "serving newly added accounts") });
                }
            }
        }
    }
}

/// Finds the account of a fill whose order the socket has not seen, through REST.
async fn attribute(
    http: &Arc<TradovateHttpClient>,
    dispatcher: &mut Dispatcher,
    shared: &Arc<Shared>,
    fill: &crate::common::entities::Fill,
) {
    match tokio::time::timeout(Duration::from_secs(5), http.order_owner(fill.order_id)).await {
        Ok(Ok(Some(order))) => {
            let account = order.account_id;
            dispatcher.learn_order(order);
            if let Some(e) = dispatcher.on_fill(fill, account) {
                shared.feed.publish(e);
            }
        }
        other => {
            tracing::error!(fill = fill.id, order = fill.order_id, result = ?other.map(|r| r.map(|o| o.map(|o| o.id))), "fill of an unknown order could not be attributed");
            shared.feed.resync(format!(
                "fill {} of order {} could not be attributed to an account",
                fill.id, fill.order_id
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let cfg = WsConfig::default();
        for (attempt, base) in [(0, 1), (1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (20, 60)] {
            for _ in 0..50 {
                let d = cfg.reconnect.delay(attempt);
                let base = Duration::from_secs(base);
                assert!(
                    d >= base && d <= base.mul_f64(1.1),
                    "attempt {attempt}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn planned_ends_are_told_apart() {
        assert!(EndReason::TokenAge.is_planned());
        assert!(EndReason::AccountsAdded.is_planned());
        assert!(!EndReason::DeadSubscription.is_planned());
        assert!(!EndReason::ServerSilent.is_planned());
    }
}
