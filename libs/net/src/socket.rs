//! The life of a venue's event socket, shared by every venue (DOMAIN §8): wait for accounts to
//! serve, a random stagger before the first connection, then connect — through the fleet's
//! [`ConnectGate`] — serve until the connection ends, and reconnect with back-off 1, 2, 4 … 60 s
//! plus up to 10 % jitter (at once after a planned end; never after a fatal one).
//!
//! A venue supplies the connection itself ([`Connection::serve`]: its handshake, subscriptions,
//! heartbeats and message handling) and, if it wants, what to do while it waits to reconnect
//! (ProjectX polls REST). The [`Feed`] is what the rest of the adapter sees: the accounts
//! wanted, the connection state, and the [`EventHub`] subscribers read from.
//!
//! [`ConnectGate`]: crate::gate::ConnectGate

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jt_broker::{
    AccountId, BrokerEvent, ConnectionState, EventEnvelope, EventHub, EventOrigin,
    EventSubscription,
};
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A client WebSocket over TCP, TLS or not.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `url`.
///
/// # Errors
/// The connection or upgrade failure, as text (a refused upgrade names its HTTP status).
pub async fn connect(url: &str) -> Result<Ws, String> {
    // tungstenite's rustls has no bundled provider either: install ring once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| format!("connect: {e}"))
}

/// Reconnect timing (DOMAIN §8).
#[derive(Debug, Clone, PartialEq)]
pub struct Reconnect {
    /// First reconnect delay.
    pub initial: Duration,
    /// Longest reconnect delay.
    pub max: Duration,
    /// Up to this fraction of the delay is added at random.
    pub jitter: f64,
    /// A connection that stayed up this long resets the back-off.
    pub reset_after: Duration,
    /// Random delay 0..this before the first connection of a client.
    pub initial_stagger_max: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.10,
            reset_after: Duration::from_secs(60),
            initial_stagger_max: Duration::from_secs(30),
        }
    }
}

impl Reconnect {
    /// The delay after `attempt` consecutive failures: 1, 2, 4 … max, plus up to `jitter`.
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.max);
        let jitter = if self.jitter > 0.0 {
            base.mul_f64(rand::rng().random_range(0.0..=self.jitter))
        } else {
            Duration::ZERO
        };
        base + jitter
    }

    /// A random delay before the first connection.
    #[must_use]
    pub fn stagger(&self) -> Duration {
        if self.initial_stagger_max.is_zero() {
            Duration::ZERO
        } else {
            self.initial_stagger_max
                .mul_f64(rand::rng().random_range(0.0..1.0))
        }
    }
}

/// A venue's reasons for a connection to end (bounded metric labels).
pub trait EndReason: Copy + Send + Sync + 'static {
    /// A stable label.
    fn as_str(self) -> &'static str;

    /// Planned ends (token age, accounts added) reconnect at once, without back-off.
    fn is_planned(self) -> bool {
        false
    }
}

/// How one connection ended.
#[derive(Debug, Clone)]
pub struct Ended<R> {
    /// Why.
    pub reason: R,
    /// What happened.
    pub detail: String,
    /// How long it was serving (0 when it never was).
    pub healthy_for: Duration,
    /// Stop for good (the login needs re-authentication).
    pub fatal: bool,
    /// Do not try before this (a lock-out, a penalty).
    pub not_before: Option<Instant>,
}

impl<R> Ended<R> {
    /// An end for `reason`, not fatal, retried by the back-off alone.
    pub fn new(reason: R, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            healthy_for: Duration::ZERO,
            fatal: false,
            not_before: None,
        }
    }

    /// The same end after serving for `healthy_for`.
    #[must_use]
    pub fn after(self, healthy_for: Duration) -> Self {
        Self {
            healthy_for,
            ..self
        }
    }
}

/// What a venue's socket shares with the rest of its adapter: the accounts it should serve
/// (keyed by the venue's numeric ids), its connection state and the hub its events go out on.
pub struct Feed<K> {
    hub: Arc<EventHub>,
    wanted: Mutex<BTreeSet<K>>,
    changed: Notify,
    state: Mutex<ConnectionState>,
}

impl<K: std::fmt::Debug> std::fmt::Debug for Feed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("state", &*self.state.lock())
            .field("wanted", &*self.wanted.lock())
            .finish_non_exhaustive()
    }
}

impl<K: Ord + Clone> Feed<K> {
    /// A feed publishing on `hub`.
    #[must_use]
    pub fn new(hub: Arc<EventHub>) -> Self {
        Self {
            hub,
            wanted: Mutex::new(BTreeSet::new()),
            changed: Notify::new(),
            state: Mutex::new(ConnectionState::Connecting),
        }
    }

    /// The hub events go out on.
    #[must_use]
    pub fn hub(&self) -> &Arc<EventHub> {
        &self.hub
    }

    /// Adds accounts to serve; the connection is told when the set grew.
    pub fn add_accounts(&self, accounts: impl IntoIterator<Item = K>) {
        let mut wanted = self.wanted.lock();
        let before = wanted.len();
        wanted.extend(accounts);
        if wanted.len() != before {
            self.changed.notify_one();
        }
    }

    /// Replaces what to serve (a market-data connection's contracts, which also shrink); the
    /// connection is told when the set changed.
    pub fn set_wanted(&self, wanted: BTreeSet<K>) {
        let mut current = self.wanted.lock();
        if *current != wanted {
            *current = wanted;
            self.changed.notify_one();
        }
    }

    /// The accounts to serve now.
    #[must_use]
    pub fn wanted(&self) -> BTreeSet<K> {
        self.wanted.lock().clone()
    }

    /// Resolves when accounts were added since the last wake-up.
    pub async fn accounts_changed(&self) {
        self.changed.notified().await;
    }

    /// Subscribes to events of `accounts` (all when `None`).
    #[must_use]
    pub fn subscribe(&self, accounts: Option<HashSet<AccountId>>) -> EventSubscription {
        self.hub.subscribe(accounts)
    }

    /// Subscribes to the events of `accounts` and has the connection serve them (`ids`: the
    /// same accounts in the venue's numbering); a subscriber never misses an event of an
    /// account it asked for because it subscribed after the connection began serving it.
    #[must_use]
    pub fn serve(
        &self,
        accounts: &[AccountId],
        ids: impl IntoIterator<Item = K>,
    ) -> EventSubscription {
        let subscription = self.subscribe(Some(accounts.iter().cloned().collect()));
        self.add_accounts(ids);
        subscription
    }

    /// The connection state now.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        self.state.lock().clone()
    }

    /// Sets the state and tells every subscriber.
    pub fn set_state(&self, state: ConnectionState) {
        *self.state.lock() = state.clone();
        self.publish(EventEnvelope::now(
            EventOrigin::Adapter,
            BrokerEvent::Connection(state),
        ));
    }

    /// Delivers one event to every interested subscriber.
    pub fn publish(&self, envelope: EventEnvelope) {
        self.hub.publish(Arc::new(envelope));
    }

    /// Tells every subscriber it may have missed events and should reconcile.
    pub fn resync(&self, reason: impl Into<String>) {
        self.publish(EventEnvelope::now(
            EventOrigin::Adapter,
            BrokerEvent::Resync {
                reason: reason.into(),
            },
        ));
    }
}

/// One venue's connection, as [`keep_alive`] drives it.
#[async_trait]
pub trait Connection: Send {
    /// The venue's reasons for an end.
    type Reason: EndReason;

    /// One connection from token to end; `None` when `cancel` fired.
    async fn serve(&mut self, cancel: &CancellationToken) -> Option<Ended<Self::Reason>>;

    /// Records an end (statistics, the accounts no longer served).
    fn ended(&mut self, _ended: &Ended<Self::Reason>) {}

    /// Waits `delay` before the next attempt; `false` when `cancel` fired first.
    async fn wait(&mut self, delay: Duration, cancel: &CancellationToken) -> bool {
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

/// Keeps `connection` alive until `cancel` fires or it ends fatally: waits for a first account,
/// staggers, then serves and reconnects by `reconnect`, telling `feed`'s subscribers each
/// state.
pub async fn keep_alive<K, C>(
    venue: &'static str,
    feed: &Feed<K>,
    reconnect: &Reconnect,
    connection: &mut C,
    cancel: &CancellationToken,
) where
    K: Ord + Clone + Send + Sync,
    C: Connection,
{
    while feed.wanted.lock().is_empty() {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = feed.accounts_changed() => {}
        }
    }
    tokio::select! {
        () = cancel.cancelled() => return,
        () = tokio::time::sleep(reconnect.stagger()) => {}
    }
    let mut attempt: u32 = 0;
    while !cancel.is_cancelled() {
        feed.set_state(ConnectionState::Connecting);
        let Some(ended) = connection.serve(cancel).await else {
            break; // cancelled
        };
        connection.ended(&ended);
        let reason = ended.reason.as_str();
        metrics::counter!("jt_broker_ws_disconnects_total", "broker" => venue, "reason" => reason)
            .increment(1);
        if ended.fatal {
            tracing::error!(venue, reason, detail = %ended.detail, "broker socket stopped");
            feed.set_state(ConnectionState::Stopped {
                reason: ended.detail,
            });
            return;
        }
        let planned = ended.reason.is_planned();
        let delay = if planned {
            attempt = 0;
            Duration::ZERO
        } else {
            if ended.healthy_for >= reconnect.reset_after {
                attempt = 0;
            }
            let d = reconnect.delay(attempt);
            attempt = attempt.saturating_add(1);
            d
        };
        let delay = match ended.not_before {
            Some(t) => delay.max(t.saturating_duration_since(Instant::now())),
            None => delay,
        };
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(venue, reason, detail = %ended.detail, retry_in_ms, "broker socket ended; reconnecting");
        feed.set_state(ConnectionState::Reconnecting {
            reason: format!("{reason}: {}", ended.detail),
            attempt: if planned { 0 } else { attempt },
            retry_in_ms,
        });
        if !connection.wait(delay, cancel).await {
            break;
        }
    }
    feed.set_state(ConnectionState::Stopped {
        reason: "shut down".into(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let cfg = Reconnect::default();
        for (attempt, base) in [(0, 1), (1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (20, 60)] {
            for _ in 0..50 {
                let d = cfg.delay(attempt);
                let base = Duration::from_secs(base);
                assert!(
                    d >= base && d <= base.mul_f64(1.1),
                    "attempt {attempt}: {d:?}"
                );
            }
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Why {
        Lost,
        Planned,
        Fatal,
    }

    impl EndReason for Why {
        fn as_str(self) -> &'static str {
            match self {
                Self::Lost => "lost",
                Self::Planned => "planned",
                Self::Fatal => "fatal",
            }
        }
        fn is_planned(self) -> bool {
            self == Self::Planned
        }
    }

    /// Ends as scripted; records the delays it was asked to wait.
    struct Scripted {
        ends: Vec<Ended<Why>>,
        waits: Vec<Duration>,
    }

    #[async_trait]
    impl Connection for Scripted {
        type Reason = Why;
        async fn serve(&mut self, _cancel: &CancellationToken) -> Option<Ended<Why>> {
            if self.ends.is_empty() {
                None
            } else {
                Some(self.ends.remove(0))
            }
        }
        async fn wait(&mut self, delay: Duration, _cancel: &CancellationToken) -> bool {
            self.waits.push(delay);
            true
        }
    }

    #[tokio::test]
    async fn planned_ends_reconnect_at_once_failures_back_off_and_a_fatal_end_stops() {
        let feed: Feed<i64> = Feed::new(Arc::new(EventHub::new(64)));
        let mut states = feed.subscribe(None);
        feed.add_accounts([1]);
        let reconnect = Reconnect {
            jitter: 0.0,
            initial_stagger_max: Duration::ZERO,
            ..Reconnect::default()
        };
        let mut conn = Scripted {
            ends: vec![
                Ended::new(Why::Lost, "reset"),
                Ended::new(Why::Lost, "reset"),
                Ended::new(Why::Planned, "token age"),
                // A long healthy life resets the back-off.
                Ended::new(Why::Lost, "reset").after(Duration::from_secs(120)),
                Ended {
                    fatal: true,
                    ..Ended::new(Why::Fatal, "needs re-authentication")
                },
                Ended::new(Why::Lost, "never reached"),
            ],
            waits: Vec::new(),
        };
        keep_alive(
            "test",
            &feed,
            &reconnect,
            &mut conn,
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(
            conn.waits,
            [1, 2, 0, 1].map(Duration::from_secs).to_vec(),
            "back-off 1, 2; a planned end at once; reset after a healthy connection"
        );
        assert_eq!(conn.ends.len(), 1, "nothing is served after a fatal end");
        assert_eq!(
            feed.state(),
            ConnectionState::Stopped {
                reason: "needs re-authentication".into()
            }
        );
        let mut seen = Vec::new();
        while let Some(e) = states.try_recv() {
            if let BrokerEvent::Connection(ConnectionState::Reconnecting { attempt, .. }) = &e.event
            {
                seen.push(*attempt);
            }
        }
        assert_eq!(seen, vec![1, 2, 0, 1]);
    }
}
