//! Live updates for the dashboard: `GET /api/v1/events`, Server-Sent Events of the caller's
//! own changes — `signal` (a new signal, or an outcome or decision of one changed: its id),
//! `positions` (stored positions or working orders of their sub-accounts changed: protection
//! may have changed), `pnl` (a paper position or trade changed, or the risk monitor's figures
//! of a sub-account changed) — and a heartbeat comment every 15 s.
//!
//! **Source.** One feed per user per replica polls the store once a second for what changed
//! ([`jt_store::repo::dashboard::Dashboard::changes`], a few indexed reads bounded to the
//! user's recent rows) and the risk figures the monitor shares (`jt_risk_status` KV); every
//! stream of that user on this replica shares the feed, so ten open tabs cost one poll. Why
//! the store and not the bus: the rows are written by the ingest, the executor, the positions
//! service and the paper engine — in other processes, on both backends (SQLite with the
//! embedded bus in `jt dev`, PostgreSQL with JetStream) — and the store is where all of them
//! meet; the embedded bus does not deliver stream messages to core subscribers, and a
//! JetStream consumer per replica would see every user's events to find one user's. A second
//! of delay is what a page needs.
//!
//! **Resources.** A stream holds a broadcast receiver; a dropped client drops it (the response
//! body is dropped), and a feed with no receivers left stops at its next tick and leaves the
//! hub. A user may hold [`crate::ApiConfig::event_streams_per_user`] streams per replica; one
//! more is refused with 429. Streams end at shutdown (the listener's graceful shutdown would
//! otherwise wait for them forever).
//!
//! The route is not in the OpenAPI document: a response that never ends would hang the
//! tenancy walk (which reads every body to its end) and Schemathesis. It is documented in
//! `docs/api.md` and tested by its own tests.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use jt_bus::Bus;
use jt_messages::risk_status;
use jt_store::{Store, SubAccountId, UserId};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ApiState;

/// How often a feed polls.
const TICK: Duration = Duration::from_secs(1);

/// How far behind its newest change a feed re-reads, so a row committed late with an earlier
/// time (two writers racing) is still seen; what was already sent is remembered, not resent.
const LOOKBACK: chrono::Duration = chrono::Duration::seconds(5);

/// Rows of each kind read per poll.
const ROWS: u64 = 200;

/// A heartbeat comment this often keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// How long a new stream waits for its feed's first read before answering 503.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Events a slow stream may fall behind by before it is told to reload (`lagged`).
const BACKLOG: usize = 256;

/// One event of a user's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    /// `signal`, `positions`, `pnl`.
    pub kind: &'static str,
    /// The JSON data line.
    pub data: serde_json::Value,
}

struct Feed {
    tx: broadcast::Sender<LiveEvent>,
    primed: watch::Receiver<bool>,
}

/// Every user's feed on this replica.
pub struct EventHub {
    feeds: Mutex<HashMap<UserId, Arc<Feed>>>,
    store: Store,
    bus: Bus,
    per_user: usize,
    stop: CancellationToken,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("users", &self.feeds.lock().len())
            .finish_non_exhaustive()
    }
}

/// A stream's subscription: the feed's events, and whether the feed has read its starting
/// point (a change made after that is sent).
pub struct Subscription {
    /// The feed's events.
    pub events: broadcast::Receiver<LiveEvent>,
    /// `true` once the feed has its starting point.
    pub primed: watch::Receiver<bool>,
}

impl EventHub {
    /// A hub over `store` and `bus`; its streams end when `stop` is cancelled.
    #[must_use]
    pub fn new(store: Store, bus: Bus, per_user: usize, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            feeds: Mutex::new(HashMap::new()),
            store,
            bus,
            per_user: per_user.max(1),
            stop,
        })
    }

    /// Ends every stream and feed (shutdown).
    pub fn close(&self) {
        self.stop.cancel();
    }

    /// Users with a running feed.
    #[must_use]
    pub fn users(&self) -> usize {
        self.feeds.lock().len()
    }

    /// Open streams of `user` on this replica.
    #[must_use]
    pub fn streams(&self, user: UserId) -> usize {
        self.feeds
            .lock()
            .get(&user)
            .map_or(0, |f| f.tx.receiver_count())
    }

    /// A new stream of `user`'s events, starting their feed if none runs.
    ///
    /// # Errors
    /// 429 when the user already holds the most streams allowed.
    pub fn subscribe(self: &Arc<Self>, user: UserId) -> Result<Subscription, ApiError> {
        let mut feeds = self.feeds.lock();
        if let Some(f) = feeds.get(&user) {
            if f.tx.receiver_count() >= self.per_user {
                return Err(ApiError::rate_limited(
                    format!(
                        "at most {} live update streams per user are open at once: close another tab",
                        self.per_user
                    ),
                    5,
                ));
            }
            return Ok(Subscription {
                events: f.tx.subscribe(),
                primed: f.primed.clone(),
            });
        }
        let (tx, events) = broadcast::channel(BACKLOG);
        let (primed_tx, primed) = watch::channel(false);
        feeds.insert(
            user,
            Arc::new(Feed {
                tx: tx.clone(),
                primed: primed.clone(),
            }),
        );
        let hub = self.clone();
        tokio::spawn(async move { hub.run(user, tx, primed_tx).await });
        Ok(Subscription { events, primed })
    }

    /// Whether the feed of `user` should stop: no stream left. Decided under the hub's lock,
    /// so a stream subscribing at the same moment either finds this feed still listed (and
    /// keeps it alive) or starts a new one.
    fn retire(&self, user: UserId, tx: &broadcast::Sender<LiveEvent>) -> bool {
        let mut feeds = self.feeds.lock();
        if tx.receiver_count() > 0 && !self.stop.is_cancelled() {
            return false;
        }
        if feeds.get(&user).is_some_and(|f| f.tx.same_channel(tx)) {
            feeds.remove(&user);
        }
        true
    }

    async fn run(
        self: Arc<Self>,
        user: UserId,
        tx: broadcast::Sender<LiveEvent>,
        primed: watch::Sender<bool>,
    ) {
        let mut state = FeedState::default();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => {}
                _ = tick.tick() => {}
            }
            if self.retire(user, &tx) {
                return;
            }
            match self.poll(user, &mut state).await {
                Ok(events) => {
                    if state.primed {
                        for e in events {
                            // No receiver left: the next tick retires the feed.
                            let _ = tx.send(e);
                        }
                    } else {
                        // The first read is the starting point: what was there before the
                        // page loaded is in the page already.
                        state.primed = true;
                        let _ = primed.send(true);
                    }
                }
                Err(e) => tracing::debug!(%user, error = %e, "live feed poll failed: next tick"),
            }
        }
    }

    async fn poll(&self, user: UserId, s: &mut FeedState) -> Result<Vec<LiveEvent>, String> {
        let since = s.newest.unwrap_or_else(Utc::now) - LOOKBACK;
        let changes = self
            .store
            .dashboard()
            .changes(user, since, ROWS)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (id, at) in changes.signals {
            if s.seen(format!("s{}", id.0), at) {
                out.push(LiveEvent {
                    kind: "signal",
                    data: json!({"id": id.0, "at": at}),
                });
            }
        }
        let mut positions: BTreeSet<Uuid> = BTreeSet::new();
        for (sub, at) in changes.positions {
            if s.seen(format!("p{}", sub.0), at) {
                positions.insert(sub.0);
            }
        }
        let working: HashMap<Uuid, (SubAccountId, DateTime<Utc>)> = changes
            .working_orders
            .into_iter()
            .map(|(id, sub, at)| (id, (sub, at)))
            .collect();
        for (id, (sub, at)) in &working {
            if s.working.get(id).is_none_or(|(_, t)| t != at) {
                positions.insert(sub.0);
            }
            s.newest = s.newest.max(Some(*at));
        }
        for (id, (sub, _)) in &s.working {
            if !working.contains_key(id) {
                positions.insert(sub.0);
            }
        }
        s.working = working;
        if !positions.is_empty() {
            out.push(LiveEvent {
                kind: "positions",
                data: json!({"sub_account_ids": positions}),
            });
        }
        let mut recorders: BTreeSet<Uuid> = BTreeSet::new();
        for (recorder, at) in changes.paper {
            if s.seen(format!("r{}", recorder.0), at) {
                recorders.insert(recorder.0);
            }
        }
        let mut risk: BTreeSet<Uuid> = BTreeSet::new();
        for sub in &changes.sub_accounts {
            // A bus that does not answer hides the figures' changes, not the rest of the feed.
            let Ok(Some(snap)) = risk_status::read(&self.bus, *sub).await else {
                continue;
            };
            if snap.owner != user {
                continue;
            }
            if s.risk.get(sub) != Some(&snap.changed_at) {
                s.risk.insert(*sub, snap.changed_at);
                risk.insert(sub.0);
            }
        }
        if !recorders.is_empty() || !risk.is_empty() {
            out.push(LiveEvent {
                kind: "pnl",
                data: json!({"recorder_ids": recorders, "sub_account_ids": risk}),
            });
        }
        s.forget_before(since - LOOKBACK);
        Ok(out)
    }
}

/// What a feed has sent, so a re-read row is not sent twice.
#[derive(Default)]
struct FeedState {
    primed: bool,
    /// The newest change time seen (the next read starts [`LOOKBACK`] before it).
    newest: Option<DateTime<Utc>>,
    /// Row key → newest change time sent.
    sent: HashMap<String, DateTime<Utc>>,
    /// Working orders at the last poll.
    working: HashMap<Uuid, (SubAccountId, DateTime<Utc>)>,
    /// Each sub-account's risk figures' change time at the last poll.
    risk: HashMap<SubAccountId, DateTime<Utc>>,
}

impl FeedState {
    /// Whether `key` changed at `at` is news (and remembers it).
    fn seen(&mut self, key: String, at: DateTime<Utc>) -> bool {
        self.newest = self.newest.max(Some(at));
        match self.sent.get(&key) {
            Some(t) if *t >= at => false,
            _ => {
                self.sent.insert(key, at);
                true
            }
        }
    }

    fn forget_before(&mut self, t: DateTime<Utc>) {
        self.sent.retain(|_, at| *at >= t);
    }
}

/// `GET /api/v1/events`: the caller's live updates (Server-Sent Events). Not in the OpenAPI
/// document (see the module's documentation).
///
/// The first event is `ready` (the feed has its starting point: reload the page's data once,
/// then follow the events); `lagged` tells a stream that fell behind to reload.
pub async fn stream(State(state): State<ApiState>, caller: Caller) -> Response {
    let sub = match state.events.subscribe(caller.owner()) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Subscription { events, mut primed } = sub;
    // The receiver exists from here on: whatever the feed sends after its starting point
    // reaches this stream.
    let ready = matches!(
        tokio::time::timeout(READY_WAIT, primed.wait_for(|p| *p)).await,
        Ok(Ok(_))
    );
    if !ready {
        return ApiError::unavailable("live updates cannot read the records now: try again")
            .into_response();
    }
    let events = live(events, state.events.stop.clone());
    let first = futures_util::stream::once(async {
        Ok::<Event, Infallible>(Event::default().event("ready").data("{}"))
    });
    Sse::new(futures_util::StreamExt::chain(first, events))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response()
}

/// A receiver as an SSE stream that ends at `stop`.
fn live(
    rx: broadcast::Receiver<LiveEvent>,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((rx, stop), |(mut rx, stop)| async move {
        let next = tokio::select! {
            () = stop.cancelled() => return None,
            r = rx.recv() => r,
        };
        let event = match next {
            Ok(e) => Event::default().event(e.kind).data(e.data.to_string()),
            Err(broadcast::error::RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(json!({"missed": n}).to_string()),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), (rx, stop)))
    })
}

/// Takes the next named event (name, data) out of `buf`, the text of a stream read so far;
/// comment blocks (the heartbeat) are dropped, and `None` means no whole event is in `buf` yet.
/// The reading half of this module's wire format, for clients of the stream (the tests').
pub fn take_event(buf: &mut String) -> Option<(String, String)> {
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let mut name = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim());
            }
        }
        if let Some(name) = name {
            return Some((name, data));
        }
    }
    None
}

#[cfg(test)]
mod wire_tests {
    use super::take_event;

    #[test]
    fn events_are_taken_whole_and_comments_dropped() {
        let mut buf =
            String::from(": heartbeat\n\nevent: signal\ndata: {\"id\":1}\n\nevent: pnl\nda");
        assert_eq!(
            take_event(&mut buf),
            Some(("signal".to_string(), "{\"id\":1}".to_string()))
        );
        // Half an event waits for the rest.
        assert_eq!(take_event(&mut buf), None);
        buf.push_str("ta: {}\n\n");
        assert_eq!(
            take_event(&mut buf),
            Some(("pnl".to_string(), "{}".to_string()))
        );
        assert!(buf.is_empty());
    }
}
