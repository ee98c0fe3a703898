//! The copier: copy trading (DOMAIN.md §10, issue #22). A leader's fills, seen on BROKER_EVENTS
//! (what the connection manager republishes), are copied to the leader's followers as
//! [`jt_messages::CopyIntent`]s on ORDERS, exactly once.
//!
//! - **Automatic mode**: the durable consumer `copier` on BROKER_EVENTS reads every fill; a
//!   fill of a sub-account that leads (`leaders` row, `enabled` and `auto_copy`, read on every
//!   fill: toggling needs no restart) is copied. Fills are handled one at a time in stream
//!   order (`max_in_flight` 1): the leader's position before and after each fill is tracked
//!   per (sub-account, contract) from the fills themselves ([`engine::Positions`]), seeded from
//!   the store's broker positions the first time a contract is seen — or, at start, from the
//!   leader's broker when its newest fills are already copied (`sync.rs`).
//! - **Fills no one published**: a leader fill made while no connection manager held the
//!   login never reaches the bus; a leader position in a connection's snapshot makes the copier
//!   read the leader's fills at the broker and copy the ones it has not handled
//!   (`Copier::catch_up`).
//! - **Per follower**, the DOMAIN §10 table through `jt_domain::copy::copy_delta` (multiplier,
//!   rounding, `max_position_size`, the contract mapping NQ → MNQ ×10): entry, close, add and
//!   trim by the difference, reversal as close then entry. Skipped, with the reason in the copy
//!   log: a disabled or locked-out follower, a follower whose sub-account has its own enabled
//!   webhook trader (it would be filled twice), an account that would be leader and follower
//!   in one group, a change that does not move the follower.
//! - **Exactly once**: the copy log row (follower + leader fill id, unique) is recorded
//!   *before* the intent is published; a fill already copied to a follower publishes nothing
//!   (a redelivery, a reconnect's snapshot, the session-end replay). A row left `pending` (a
//!   crash between recording and publishing) is published again on the redelivery: the
//!   intent's id derives from the leader fill and the follower, so JetStream's duplicate
//!   window and the executor's idempotency key make a second publish harmless. After the
//!   publish the row is `accepted` (queued on ORDERS).
//! - **Loop prevention**: a fill of one of our own orders (client order id
//!   `jt` + intent id, [`jt_messages::intent::client_order_id`]) on a leader that itself
//!   follows another leader is a copy arriving, never copied on.
//!
//! - **Outcomes** ([`executions`]): the consumer `copier` on EXECUTIONS writes the executor's
//!   outcome of each copy intent back to its copy log row (intent, order id, price, status,
//!   latency from the leader's fill received).
//!
//! What it must not do: place an order itself (followers' orders are intents, executed by the
//! executor serially with the follower account's other orders), or hold a broker connection.

pub mod engine;
pub mod executions;
mod metrics;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt;
use jt_broker::{BrokerEvent, EventOrigin, FillReport, OrderReport, PositionReport};
use jt_bus::{Bus, ConsumeOptions, Definitions, Envelope, Incoming, MessageId, Outcome};
use jt_connect::BrokerAccess;
use jt_domain::Direction;
use jt_domain::copy::CopyAction;
use jt_messages::{
    BrokerEventMessage, CopyIntent, CopyProtection, ExecutionMessage, IntentMessage, LeaderChange,
    ProtectionKind, ReportedEvent,
};
use jt_runtime::config::{ConfigError, Env, or_default};
use jt_runtime::health::Criticality;
use jt_service::{Context, Running};
use jt_store::repo::copy::CopyRecorded;
use jt_store::repo::copy::{Follower, Leader, NewCopy};
use jt_store::{
    BrokerAccountId, CopyLogId, CopyStatus, CopyTrigger, FollowerId, IntentId, IntentKind,
    IntentSource, Store, StoreError, SubAccountId, UserId,
};
use parking_lot::Mutex;
use tracing::Instrument;

use engine::{Change, Positions, Tracked};

/// The copier's settings.
#[derive(Debug, Clone)]
pub struct CopierConfig {
    /// Seconds after the leader's fill was received past which a copied *entry* is not sent
    /// (`JT_COPY_MAX_LAG_SECS`, default 60; 0 = never too late). Exits are always executed.
    /// Above the consumer's ack wait (30 s): a fill held by a copier that crashed comes back
    /// after it, and its entries must still be copied.
    pub max_lag_secs: Option<u32>,
    /// How the BROKER_EVENTS consumer runs (one message at a time: fills in order).
    pub consume: ConsumeOptions,
    /// How often every tracked leader position is compared with its followers' positions at
    /// their brokers (auto-sync; `JT_COPY_SYNC_SECS`, default 30; 0 = never). A check also
    /// runs after every leader fill.
    pub sync_every: Option<std::time::Duration>,
}

impl Default for CopierConfig {
    fn default() -> Self {
        Self {
            max_lag_secs: Some(60),
            consume: ConsumeOptions {
                max_in_flight: 1,
                ..ConsumeOptions::default()
            },
            sync_every: Some(std::time::Duration::from_secs(30)),
        }
    }
}

impl CopierConfig {
    /// Reads the settings from the environment, with defaults.
    ///
    /// # Errors
    /// A variable that is set but malformed, named in the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let lag: u32 = or_default(env, "JT_COPY_MAX_LAG_SECS", 60)?;
        let sync: u64 = or_default(env, "JT_COPY_SYNC_SECS", 30)?;
        Ok(Self {
            max_lag_secs: (lag > 0).then_some(lag),
            sync_every: (sync > 0).then(|| std::time::Duration::from_secs(sync)),
            ..Self::default()
        })
    }
}

/// Starts the copier on `ctx`: the BROKER_EVENTS consumer `copier`, until `ctx.shutdown`.
///
/// # Errors
/// None today (the consumer's own errors end the returned task).
pub async fn start(config: CopierConfig, ctx: &Context) -> anyhow::Result<Running> {
    ctx.register_core_health(Criticality::Required).await;
    let copier = Copier {
        store: ctx.store.clone(),
        bus: ctx.bus.clone(),
        positions: Arc::new(Mutex::new(Positions::default())),
        brokers: ctx.brokers.clone(),
        names: Arc::new(Mutex::new(HashMap::new())),
        max_lag_secs: config.max_lag_secs,
        leaders: Arc::new(Mutex::new(HashMap::new())),
        gate: Arc::new(tokio::sync::Mutex::new(())),
        nudge: Arc::new(tokio::sync::Notify::new()),
        carried: Arc::new(Mutex::new(HashMap::new())),
    };
    let syncing = config.sync_every.map(|every| {
        let (copier, stop) = (copier.clone(), ctx.shutdown.clone());
        tokio::spawn(async move { copier.sync_loop(every, stop).await })
    });
    let bus = ctx.bus.clone();
    let stop = ctx.shutdown.clone();
    let mut options = config.consume;
    options.max_in_flight = 1;
    let store = ctx.store.clone();
    let task = tokio::spawn(async move {
        let defs = Definitions::new(bus.namespace());
        let outcomes = {
            let (bus, stop, defs) = (bus.clone(), stop.clone(), defs.clone());
            tokio::spawn(async move {
                bus.consume(
                    &defs.copier_executions,
                    ConsumeOptions::default(),
                    stop,
                    move |msg: Incoming<ExecutionMessage>| executions::handle(store.clone(), msg),
                )
                .await
            })
        };
        let copied = bus
            .consume(
                &defs.copier_events,
                options,
                stop.clone(),
                move |msg: Incoming<BrokerEventMessage>| {
                    let copier = copier.clone();
                    async move { copier.handle(msg).await }
                },
            )
            .await;
        // One consumer ending (shutdown, or a fatal error) ends the other.
        stop.cancel();
        let recorded = outcomes.await;
        if let Some(syncing) = syncing {
            syncing.await?;
        }
        copied?;
        recorded??;
        Ok(())
    });
    Ok(Running::new("copier", axum::Router::new(), task))
}

/// A leader fill without a client order id is a manual close's when it comes at most this
/// long after the manual intent was recorded (the executor's round trip and the broker's)…
const MANUAL_CLOSE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// …or this long before it (clocks of the broker and of this platform differ a little).
const MANUAL_CLOSE_EARLY: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// How many (follower, leader order) protection prices are remembered.
const CARRIED_MAX: usize = 100_000;

/// Followers copied at once for one leader fill.
const PARALLEL_FOLLOWERS: usize = 16;

/// Why a fill could not be handled now.
#[derive(Debug)]
enum Failure {
    Store(StoreError),
    Publish(String),
    Broker(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(e) => write!(f, "store: {e}"),
            Self::Publish(e) => write!(f, "publish: {e}"),
            Self::Broker(e) => write!(f, "contract name: {e}"),
        }
    }
}

#[derive(Clone)]
struct Copier {
    store: Store,
    bus: Bus,
    positions: Arc<Mutex<Positions>>,
    brokers: Arc<BrokerAccess>,
    /// Contract names by (login, broker contract id), for fills that carry only the id.
    names: Arc<Mutex<HashMap<(BrokerAccountId, String), String>>>,
    max_lag_secs: Option<u32>,
    /// The leaders whose fills were tracked, with their owner: auto-sync checks their
    /// followers.
    leaders: Arc<Mutex<HashMap<SubAccountId, UserId>>>,
    /// Held while a fill is handled and while a leader's followers are synced: a sync never
    /// reads a leader position that a fill is changing, nor corrects a follower whose copy of
    /// that fill is being recorded.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// Wakes auto-sync after a leader fill.
    nudge: Arc<tokio::sync::Notify>,
    /// The leader price each leader protective order was last copied to a follower at (by an
    /// entry that carried it, or a protection copy): (follower, leader order id) → price. An
    /// order event at that price publishes nothing (an optimisation over the copy log, which
    /// does not see what an entry carried: after a restart such an event publishes a set the
    /// executor finds done).
    carried: Arc<Mutex<HashMap<(FollowerId, String), rust_decimal::Decimal>>>,
}

/// A follower's outcome before anything is recorded.
enum Decision {
    Skip(&'static str, String),
    /// The step, and the follower's login.
    Copy(CopyAction, BrokerAccountId),
}

impl Copier {
    async fn handle(&self, msg: Incoming<BrokerEventMessage>) -> Outcome {
        let event = &msg.envelope.payload;
        if let ReportedEvent::Known(BrokerEvent::Position(position)) = &event.event
            && event.origin == EventOrigin::Snapshot
        {
            return self.snapshot(event, position).await;
        }
        if let ReportedEvent::Known(BrokerEvent::Order(order)) = &event.event {
            return self
                .order(event, order, &msg.envelope.trace.to_pairs())
                .await;
        }
        let ReportedEvent::Known(BrokerEvent::Fill(fill)) = &event.event else {
            return Outcome::Ack;
        };
        // The leader's fill continues the trace connmgr started for it; the follower intents
        // carry this span on to their executions.
        let span = tracing::info_span!(
            "copy",
            otel.kind = "consumer",
            leader_sub_account = %event.sub_account_id,
            fill = %fill.id,
        );
        jt_runtime::telemetry::extract_context(&span, &msg.envelope.trace.to_pairs());
        let handled = async {
            let _gate = self.gate.lock().await;
            self.fill(event, fill).await
        }
        .instrument(span)
        .await;
        match handled {
            Ok(outcome) => {
                metrics::leader_event(outcome);
                // A replayed (`old`) fill changes nothing: no reason to check.
                if matches!(outcome, "copied" | "manual") {
                    self.leaders
                        .lock()
                        .insert(event.sub_account_id, event.owner_id);
                    self.nudge.notify_one();
                }
                Outcome::Ack
            }
            Err(Failure::Store(StoreError::NotFound { entity, id })) => {
                metrics::leader_event("failed");
                tracing::info!(sub_account = %event.sub_account_id, "leader fill for a {entity} that is gone ({id}): dropped");
                Outcome::Ack
            }
            Err(Failure::Store(e @ (StoreError::Invalid { .. } | StoreError::Corrupt { .. }))) => {
                metrics::leader_event("failed");
                Outcome::reject(format!("the copy cannot be recorded: {e}"))
            }
            Err(e) => {
                metrics::leader_event("failed");
                tracing::warn!(sub_account = %event.sub_account_id, fill = %fill.id, error = %e, "leader fill not copied yet: retried");
                Outcome::retry(format!("copying the fill failed: {e}"))
            }
        }
    }

    /// A leader's position from a connection's sync snapshot: a connection manager took the
    /// login over or reconnected. Fills the leader made while no one held the login never
    /// reach BROKER_EVENTS (the snapshot takes the day's fills as history), so they are read
    /// at the broker here and handled as if they had come on the bus, oldest first.
    async fn snapshot(&self, event: &BrokerEventMessage, position: &PositionReport) -> Outcome {
        let handled = async {
            let _gate = self.gate.lock().await;
            self.catch_up(event, position).await
        }
        .await;
        match handled {
            Ok(0) => Outcome::Ack,
            Ok(n) => {
                tracing::info!(sub_account = %event.sub_account_id, contract = %position.contract, fills = n, "leader fills missed while no one held the login: copied");
                self.leaders
                    .lock()
                    .insert(event.sub_account_id, event.owner_id);
                self.nudge.notify_one();
                Outcome::Ack
            }
            Err(Failure::Store(StoreError::NotFound { entity, id })) => {
                tracing::info!(sub_account = %event.sub_account_id, "leader snapshot for a {entity} that is gone ({id}): dropped");
                Outcome::Ack
            }
            Err(e) => {
                tracing::warn!(sub_account = %event.sub_account_id, error = %e, "leader fills missed while no one held the login: not read yet, retried");
                Outcome::retry(format!("catching up the leader's fills failed: {e}"))
            }
        }
    }

    /// The fills of `position`'s contract at the broker that the copier has not handled,
    /// handled now through [`Copier::fill`] (the copy log keeps each copy once): for a tracked
    /// contract those the tracking has not applied and that are not older than it; for an
    /// untracked one (the copier restarted too) those after the newest fill the copy log has
    /// rows for, from the "before" the broker's position and fills give (its net now less
    /// them). A contract with no copied fill at all is left to the next fill (nothing tells
    /// which of the day's fills were the leader's before it led). Returns the fills handled.
    async fn catch_up(
        &self,
        event: &BrokerEventMessage,
        position: &PositionReport,
    ) -> Result<usize, Failure> {
        let owner = event.owner_id;
        let copying = self.store.copying();
        let Some(leader) = copying.leader_of(owner, event.sub_account_id).await? else {
            return Ok(0);
        };
        if !leader.enabled || !leader.auto_copy {
            return Ok(0);
        }
        let sub = event.sub_account_id.to_string();
        let named = position.symbol.clone().filter(|s| !s.is_empty());
        if let Some(name) = &named
            && self.positions.lock().net(&sub, name) == Some(position.net_qty)
        {
            // The tracking is where the broker is: nothing was missed.
            return Ok(0);
        }
        let login = self
            .store
            .accounts()
            .get(owner, event.broker_account_id)
            .await?;
        let broker = self
            .brokers
            .for_account(&login)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let read_fills = async || -> Result<Vec<FillReport>, Failure> {
            let mut fills: Vec<FillReport> = broker
                .fills(&event.account)
                .await
                .map_err(|e| Failure::Broker(e.to_string()))?
                .into_iter()
                .filter(|f| f.contract == position.contract)
                .collect();
            fills.sort_by_key(|f| (f.timestamp, f.id.to_string()));
            Ok(fills)
        };
        let fills = read_fills().await?;
        let Some(first) = fills.first() else {
            return Ok(0);
        };
        let contract = self.contract_name(event, first).await?;
        let known = self.positions.lock().knows(&sub, &contract);
        let missed: Vec<FillReport> = if known {
            let positions = self.positions.lock();
            fills
                .into_iter()
                .filter(|f| positions.is_new(&sub, &contract, &f.id.to_string(), f.timestamp))
                .collect()
        } else {
            let copied: HashSet<String> = copying
                .copy_log(
                    owner,
                    &jt_store::repo::copy::CopyLogQuery {
                        leader: Some(leader.id),
                        limit: 500,
                        ..jt_store::repo::copy::CopyLogQuery::default()
                    },
                )
                .await?
                .into_iter()
                .filter_map(|r| r.leader_fill_id)
                .collect();
            let Some(last) = fills
                .iter()
                .rposition(|f| copied.contains(&f.id.to_string()))
            else {
                return Ok(0);
            };
            let missed = fills[last + 1..].to_vec();
            let last_at = fills[last].timestamp;
            let handled: Vec<(String, i64)> = fills[..=last]
                .iter()
                .filter(|f| f.timestamp == last_at)
                .map(|f| (f.id.to_string(), engine::signed(f.side, f.qty)))
                .collect();
            // The broker's net now, read between two reads of its fills that agree (no fill
            // in between), less the missed fills: the net after the last handled fill (the
            // tracking starts there even when nothing was missed: the broker's picture is
            // exact, the store's may lag).
            let net: i64 = broker
                .positions(&event.account)
                .await
                .map_err(|e| Failure::Broker(e.to_string()))?
                .iter()
                .filter(|p| p.contract == position.contract)
                .map(|p| p.net_qty)
                .sum();
            if read_fills().await?.len() != last + 1 + missed.len() {
                return Err(Failure::Broker(
                    "the leader filled while its fills were read: read again".into(),
                ));
            }
            let after: i64 = missed.iter().map(|f| engine::signed(f.side, f.qty)).sum();
            let mut positions = self.positions.lock();
            if !positions.knows(&sub, &contract) {
                positions.seed_handled(&sub, &contract, net - after, last_at, &handled);
            }
            missed
        };
        let mut handled = 0;
        for fill in &missed {
            let carried = BrokerEventMessage {
                event: ReportedEvent::Known(BrokerEvent::Fill(fill.clone())),
                ..event.clone()
            };
            self.fill(&carried, fill).await?;
            handled += 1;
        }
        Ok(handled)
    }

    /// A leader's order event: when it is a protective order of the leader's position (placed,
    /// moved, cancelled), the followers' take-profit or stop follows (`Copier::protection`).
    async fn order(
        &self,
        event: &BrokerEventMessage,
        order: &OrderReport,
        trace: &[(String, String)],
    ) -> Outcome {
        let span = tracing::info_span!(
            "copy protection",
            otel.kind = "consumer",
            leader_sub_account = %event.sub_account_id,
            order = %order.id,
        );
        jt_runtime::telemetry::extract_context(&span, trace);
        let handled = async {
            let _gate = self.gate.lock().await;
            self.protection(event, order).await
        }
        .instrument(span)
        .await;
        match handled {
            Ok(()) => Outcome::Ack,
            Err(Failure::Store(StoreError::NotFound { entity, id })) => {
                tracing::info!(sub_account = %event.sub_account_id, "leader order for a {entity} that is gone ({id}): dropped");
                Outcome::Ack
            }
            Err(Failure::Store(e @ (StoreError::Invalid { .. } | StoreError::Corrupt { .. }))) => {
                metrics::protection("failed");
                Outcome::reject(format!("the protection copy cannot be recorded: {e}"))
            }
            Err(e) => {
                metrics::protection("failed");
                tracing::warn!(sub_account = %event.sub_account_id, order = %order.id, error = %e, "leader protection not copied yet: retried");
                Outcome::retry(format!("copying the leader's protection failed: {e}"))
            }
        }
    }

    /// The leader's take-profit and stop of its `direction` position on `contract`, read from
    /// its working orders at the broker.
    async fn leader_protection(
        &self,
        event: &BrokerEventMessage,
        contract: &jt_broker::ContractId,
        direction: Direction,
    ) -> Result<engine::LeaderProtection, Failure> {
        let broker = self.broker_of(event).await?;
        let working = broker
            .working_orders(&event.account)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        Ok(engine::leader_protection(&working, contract, direction))
    }

    /// Remembers that `follower`'s protection is at the leader order's `price` (bounded: past
    /// [`CARRIED_MAX`] entries the memory starts afresh; the copy log still keeps each change
    /// once).
    fn remember(&self, follower: FollowerId, leader_order: String, price: rust_decimal::Decimal) {
        let mut carried = self.carried.lock();
        if carried.len() >= CARRIED_MAX {
            carried.clear();
        }
        carried.insert((follower, leader_order), price);
    }

    /// The broker login of the event's account.
    async fn broker_of(
        &self,
        event: &BrokerEventMessage,
    ) -> Result<Arc<dyn jt_broker::Broker>, Failure> {
        let login = self
            .store
            .accounts()
            .get(event.owner_id, event.broker_account_id)
            .await?;
        self.brokers
            .for_account(&login)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))
    }

    /// Copies a change of the leader's protection (issue #22, "copy protection changes"): on
    /// an order event of a take-profit or stop kind, the leader's position and working orders
    /// are read at the broker (the truth now, whatever order the events come in: a replayed
    /// or redelivered event finds what is there now), and each follower that copies that kind
    /// gets the leader's outermost one, mapped onto its instrument and tick, as a protection
    /// [`CopyIntent`] (moved in place by the executor, or placed when it has none). A follower
    /// already set to that leader order's price gets nothing. When the leader holds a
    /// position and no longer has any order of that kind (it cancelled its stop), the
    /// followers **keep** theirs: a row per follower says so (`skipped`).
    async fn protection(
        &self,
        event: &BrokerEventMessage,
        order: &OrderReport,
    ) -> Result<(), Failure> {
        use jt_broker::OrderType as T;
        let Some(contract) = order.contract.clone() else {
            return Ok(());
        };
        if !matches!(
            order.order_type,
            Some(T::Limit | T::Stop | T::StopLimit | T::TrailingStop | T::TrailingStopLimit)
        ) {
            return Ok(());
        }
        let owner = event.owner_id;
        let copying = self.store.copying();
        let Some(leader) = copying.leader_of(owner, event.sub_account_id).await? else {
            return Ok(());
        };
        if !leader.enabled || !leader.auto_copy {
            return Ok(());
        }
        let followers = copying.followers(owner, leader.id).await?;
        if !followers.iter().any(|f| f.copy_tp || f.copy_sl) {
            return Ok(());
        }
        if engine::is_ours(order.client_order_id.as_deref())
            && self.follows(owner, event.sub_account_id).await?
        {
            // Our copy of another leader's protection on a leader that follows: not copied on
            // (as its fills are not).
            return Ok(());
        }
        let broker = self.broker_of(event).await?;
        let net: i64 = broker
            .positions(&event.account)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?
            .iter()
            .filter(|p| p.contract == contract)
            .map(|p| p.net_qty)
            .sum();
        // A flat leader has nothing to protect: an exit order left after its position closed
        // (the other leg of a bracket, cancelled) or a resting entry is not protection.
        let Some(direction) = Direction::of_net(net) else {
            return Ok(());
        };
        let Some(kind) = engine::protection_kind(order, direction) else {
            return Ok(());
        };
        let working = broker
            .working_orders(&event.account)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let protection = engine::leader_protection(&working, &contract, direction);
        let name = self
            .name_of(event, order.symbol.as_deref(), &contract)
            .await?;
        let traders = self.traded_accounts(owner).await?;
        let level = protection.of(kind);
        if level.is_none() && order.status != jt_broker::OrderStatus::Canceled {
            // Working yet without a price, or filled (the fill is copied as a trim): nothing
            // to copy here.
            return Ok(());
        }
        for follower in &followers {
            let wanted = match kind {
                ProtectionKind::TakeProfit => follower.copy_tp,
                ProtectionKind::Stop => follower.copy_sl,
            };
            if !wanted
                || follower.sub_account == leader.sub_account
                || !follower.enabled
                || follower.locked_out
                || traders.contains(&follower.sub_account)
            {
                // A follower the copy skips (or one that does not copy this kind) is left
                // alone: its position was not copied either.
                continue;
            }
            let done = match level {
                Some(level) => {
                    self.protect(event, &leader, &name, direction, kind, level, follower)
                        .await
                }
                None => {
                    self.keep(event, &leader, &name, direction, kind, order, follower)
                        .await
                }
            };
            match done {
                Ok(()) => {}
                Err(Failure::Store(StoreError::NotFound { entity, id })) => {
                    tracing::info!(follower = %follower.id, order = %order.id, "follower's protection not copied: its {entity} is gone ({id})");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One follower's take-profit or stop set to the leader's `level`: a copy log row
    /// (`protect:<leader order>:<n>`, recorded before the intent is published) and a
    /// protection [`CopyIntent`] — unless the follower's last row for that leader order is at
    /// that price already (a redelivery, a replay, the other kind's event), or its entry carried
    /// it.
    #[allow(clippy::too_many_arguments)]
    async fn protect(
        &self,
        event: &BrokerEventMessage,
        leader: &Leader,
        contract: &str,
        direction: Direction,
        kind: ProtectionKind,
        level: &engine::Level,
        follower: &Follower,
    ) -> Result<(), Failure> {
        let owner = event.owner_id;
        let leader_order = level.order.id.to_string();
        if self
            .carried
            .lock()
            .get(&(follower.id, leader_order.clone()))
            == Some(&level.price)
        {
            metrics::protection("unchanged");
            return Ok(());
        }
        let copying = self.store.copying();
        let prefix = format!("protect:{leader_order}:");
        let made = copying
            .copies_with_prefix(owner, follower.id, &prefix)
            .await?;
        let sub = match self
            .store
            .accounts()
            .sub_account(owner, follower.sub_account)
            .await
        {
            Ok(sub) if sub.enabled => sub,
            Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mappings = copying.mappings(owner, follower.id).await?;
        let target = engine::target(follower, &mappings, contract);
        let Some(price) = engine::mapped_price(&target.symbol, direction, kind, level.price) else {
            tracing::warn!(follower = %follower.id, symbol = %target.symbol, "the leader's {} cannot be put on the follower's instrument (unknown)", kind.name());
            return Ok(());
        };
        let event_id = match made.last() {
            Some(last) if last.leader_price == Some(level.price) => {
                if last.status != CopyStatus::Pending {
                    metrics::protection("unchanged");
                    return Ok(());
                }
                // Recorded by a copier that stopped before publishing: the same intent again.
                last.leader_fill_id.clone().unwrap_or_default()
            }
            _ => {
                let event_id = format!("{prefix}{}", made.len());
                copying
                    .record_copy(
                        owner,
                        NewCopy {
                            id: CopyLogId::new(),
                            leader: leader.id,
                            follower: follower.id,
                            trigger: CopyTrigger::Auto,
                            leader_fill_id: Some(event_id.clone()),
                            leader_order_id: Some(leader_order.clone()),
                            leader_symbol: contract.to_owned(),
                            follower_symbol: target.symbol.clone(),
                            leader_side: Some(level.order.side),
                            follower_side: Some(direction.exit_side()),
                            leader_quantity: level.order.qty.unwrap_or(0),
                            follower_quantity: 0,
                            leader_price: Some(level.price),
                            status: CopyStatus::Pending,
                            error: Some(format!(
                                "protection: the leader's {} at {}, the follower's set to {}",
                                kind.name(),
                                level.price.normalize(),
                                price.normalize()
                            )),
                        },
                    )
                    .await?;
                event_id
            }
        };
        let intent = IntentMessage::copy(
            owner,
            follower.sub_account,
            sub.broker_account,
            event.received_at,
            CopyIntent {
                leader_sub_account_id: leader.sub_account,
                leader_event_id: event_id.clone(),
                follower_id: follower.id,
                symbol: target.symbol.clone(),
                leader: LeaderChange {
                    symbol: contract.to_owned(),
                    prev_net: 0,
                    new_net: 0,
                    price: Some(level.price),
                },
                step: CopyAction::Nothing,
                take_profit: None,
                stop_loss: None,
                max_lag_secs: None,
                protection: Some(CopyProtection {
                    direction,
                    kind,
                    price,
                }),
            },
        );
        self.send(intent).await?;
        self.accepted(owner, follower.id, &event_id).await?;
        // The follower's protection is now at this price: the next event at it is no news.
        self.remember(follower.id, leader_order.clone(), level.price);
        metrics::protection("published");
        tracing::info!(follower = %follower.id, order = %leader_order, kind = kind.name(), %price, "protection copy published");
        Ok(())
    }

    /// The leader cancelled its only order of `kind` while holding a position: the follower
    /// keeps its own (a stop is never removed on a copy: the cancel may be the first half of a
    /// cancel-and-replace, and a follower left without a stop is the worse mistake). One
    /// `skipped` row per follower says so (`unprotect:<leader order>`, once).
    #[allow(clippy::too_many_arguments)]
    async fn keep(
        &self,
        event: &BrokerEventMessage,
        leader: &Leader,
        contract: &str,
        direction: Direction,
        kind: ProtectionKind,
        order: &OrderReport,
        follower: &Follower,
    ) -> Result<(), Failure> {
        let owner = event.owner_id;
        let copying = self.store.copying();
        let mappings = copying.mappings(owner, follower.id).await?;
        let target = engine::target(follower, &mappings, contract);
        let recorded = copying
            .record_copy(
                owner,
                NewCopy {
                    id: CopyLogId::new(),
                    leader: leader.id,
                    follower: follower.id,
                    trigger: CopyTrigger::Auto,
                    leader_fill_id: Some(format!("unprotect:{}", order.id)),
                    leader_order_id: Some(order.id.to_string()),
                    leader_symbol: contract.to_owned(),
                    follower_symbol: target.symbol,
                    leader_side: Some(order.side),
                    follower_side: Some(direction.exit_side()),
                    leader_quantity: order.qty.unwrap_or(0),
                    follower_quantity: 0,
                    leader_price: None,
                    status: CopyStatus::Skipped,
                    error: Some(format!(
                        "the leader cancelled its {}: the follower keeps its own",
                        kind.name()
                    )),
                },
            )
            .await?;
        if recorded == CopyRecorded::New {
            metrics::protection("kept");
        }
        Ok(())
    }

    /// Tracks one fill and copies it when its sub-account leads in automatic mode.
    async fn fill(
        &self,
        event: &BrokerEventMessage,
        fill: &FillReport,
    ) -> Result<&'static str, Failure> {
        let owner = event.owner_id;
        let copying = self.store.copying();
        let Some(leader) = copying.leader_of(owner, event.sub_account_id).await? else {
            return Ok("not_leader");
        };
        let contract = self.contract_name(event, fill).await?;
        let sub = event.sub_account_id.to_string();
        let known = self.positions.lock().knows(&sub, &contract);
        if !known {
            let (net, at) = self
                .seed(owner, event.sub_account_id, &contract, fill)
                .await?;
            let mut positions = self.positions.lock();
            if !positions.knows(&sub, &contract) {
                positions.seed(&sub, &contract, net, at);
            }
        }
        let tracked = self.positions.lock().apply(
            &sub,
            &contract,
            &fill.id.to_string(),
            engine::signed(fill.side, fill.qty),
            fill.timestamp,
        );
        let Tracked::Change(change) = tracked else {
            tracing::debug!(fill = %fill.id, "a replayed leader fill older than the tracked position: not copied");
            return Ok("old");
        };
        // The manual-trade trigger: the leader's fill of a manual trade placed through the API
        // on it is copied with trigger `manual`, in automatic mode or not — and only here, so
        // it is copied once.
        let manual = self
            .manual_trade(owner, event.sub_account_id, &contract, fill)
            .await?;
        if !leader.enabled || !(leader.auto_copy || manual) {
            return Ok("leader_off");
        }
        let trigger = if manual {
            CopyTrigger::Manual
        } else {
            CopyTrigger::Auto
        };
        if !manual
            && engine::is_ours(fill.client_order_id.as_deref())
            && self.follows(owner, event.sub_account_id).await?
        {
            tracing::debug!(fill = %fill.id, "a fill of our own copy order on a following leader: not copied on");
            return Ok("own_copy");
        }
        let followers = copying.followers(owner, leader.id).await?;
        let outcome = if manual { "manual" } else { "copied" };
        if followers.is_empty() {
            return Ok(outcome);
        }
        let traders = self.traded_accounts(owner).await?;
        // A fill that opens a position (an entry, a flip's new side): the leader's take-profit
        // and stop working at the broker now go with the followers' entries. Legs the broker
        // shows only after the fill reach the followers through their order events
        // (`Copier::order`).
        let protection = match Direction::of_net(change.new) {
            Some(d)
                if Direction::of_net(change.prev) != Some(d)
                    && followers.iter().any(|f| f.copy_tp || f.copy_sl) =>
            {
                self.leader_protection(event, &fill.contract, d).await?
            }
            _ => engine::LeaderProtection::default(),
        };
        // Every follower at once (bounded: each copy is a few store round trips and a
        // publish). A failure retries the whole fill: the copies already accepted are
        // recognised, the rest are made.
        let (leader_ref, contract_ref, traders_ref) = (&leader, &contract, &traders);
        let protection_ref = &protection;
        let mut copies: Vec<futures_util::future::BoxFuture<'_, (&Follower, Result<(), Failure>)>> =
            Vec::with_capacity(followers.len());
        for follower in &followers {
            copies.push(Box::pin(async move {
                let done = self
                    .copy_to(
                        event,
                        fill,
                        leader_ref,
                        contract_ref,
                        change,
                        follower,
                        traders_ref,
                        trigger,
                        protection_ref,
                    )
                    .await;
                (follower, done)
            }));
        }
        let results: Vec<(&Follower, Result<(), Failure>)> = futures_util::stream::iter(copies)
            .buffer_unordered(PARALLEL_FOLLOWERS)
            .collect()
            .await;
        let mut failed = None;
        for (follower, done) in results {
            match done {
                Ok(()) => {}
                // Removed meanwhile: the others are still copied.
                Err(Failure::Store(StoreError::NotFound { entity, id })) => {
                    metrics::skipped("gone");
                    tracing::info!(follower = %follower.id, fill = %fill.id, "follower not copied: its {entity} is gone ({id})");
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        tracing::info!(leader = %leader.id, fill = %fill.id, prev = change.prev, new = change.new, followers = followers.len(), ?trigger, "leader fill copied");
        Ok(outcome)
    }

    /// The leader's position on `contract` before `fill`, from the store's picture (the
    /// positions service's): when the stored state is as new as the fill it includes it.
    async fn seed(
        &self,
        owner: UserId,
        sub: SubAccountId,
        contract: &str,
        fill: &FillReport,
    ) -> Result<(i64, Option<chrono::DateTime<chrono::Utc>>), StoreError> {
        let id = fill.contract.to_string();
        let ours = |c: &str| c == contract || c == id;
        let broker = self.store.broker();
        let held = broker
            .positions(owner, sub)
            .await?
            .into_iter()
            .find(|p| ours(&p.contract));
        let mut included = 0;
        if let Some(p) = held
            .as_ref()
            .filter(|p| p.broker_updated_at >= fill.timestamp)
        {
            let day = fill
                .trade_date
                .unwrap_or_else(|| jt_domain::session::trading_day(fill.timestamp));
            let recorded: Vec<(String, i64, chrono::DateTime<chrono::Utc>)> = broker
                .fills_of_day(owner, sub, day)
                .await?
                .into_iter()
                .filter(|f| ours(&f.contract))
                .map(|f| {
                    (
                        f.broker_fill_id,
                        engine::signed(f.side, f.quantity),
                        f.filled_at,
                    )
                })
                .collect();
            included = engine::included_since(
                (
                    &fill.id.to_string(),
                    engine::signed(fill.side, fill.qty),
                    fill.timestamp,
                ),
                &recorded,
                p.broker_updated_at,
            );
        }
        Ok(engine::seed_before(
            held.map(|p| (p.net_quantity, p.broker_updated_at)),
            included,
            fill.timestamp,
        ))
    }

    /// The fill's contract name (`NQZ6`: what a follower trades, mapped or not). A fill that
    /// carries only the broker's contract id is named from the leader's positions at the broker,
    /// or else from its fills of the day (reads per login and contract, then remembered); a
    /// contract neither names keeps its id.
    async fn contract_name(
        &self,
        event: &BrokerEventMessage,
        fill: &FillReport,
    ) -> Result<String, Failure> {
        self.name_of(event, fill.symbol.as_deref(), &fill.contract)
            .await
    }

    /// The contract name of `contract` (an order's or a fill's), from `symbol` when the event
    /// carries one: see [`Copier::contract_name`].
    async fn name_of(
        &self,
        event: &BrokerEventMessage,
        symbol: Option<&str>,
        contract: &jt_broker::ContractId,
    ) -> Result<String, Failure> {
        if let Some(name) = symbol.filter(|s| !s.is_empty()) {
            return Ok(name.to_owned());
        }
        let id = contract.to_string();
        let key = (event.broker_account_id, id.clone());
        if let Some(name) = self.names.lock().get(&key) {
            return Ok(name.clone());
        }
        let login = self
            .store
            .accounts()
            .get(event.owner_id, event.broker_account_id)
            .await?;
        let broker = self
            .brokers
            .for_account(&login)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let held = broker
            .positions(&event.account)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let mut learnt: Vec<(String, String)> = held
            .into_iter()
            .filter_map(|p| Some((p.contract.to_string(), p.symbol.filter(|s| !s.is_empty())?)))
            .collect();
        if !learnt.iter().any(|(c, _)| *c == id) {
            // A fill that left the leader flat: its contract may be gone from the positions;
            // the day's fills name it.
            let fills = broker
                .fills(&event.account)
                .await
                .map_err(|e| Failure::Broker(e.to_string()))?;
            learnt.extend(fills.into_iter().filter_map(|f| {
                Some((f.contract.to_string(), f.symbol.filter(|s| !s.is_empty())?))
            }));
        }
        let mut names = self.names.lock();
        for (contract, name) in learnt {
            names.insert((event.broker_account_id, contract), name);
        }
        Ok(names.get(&key).cloned().unwrap_or(id))
    }

    /// Whether `fill` is of a manual trade placed through the API on the leader `sub`: its
    /// client order id names a manual intent of that sub-account (the executor records the
    /// intent before it places the order), or, for a fill without one, a manual close
    /// recorded just before it on the same instrument.
    async fn manual_trade(
        &self,
        owner: UserId,
        sub: SubAccountId,
        contract: &str,
        fill: &FillReport,
    ) -> Result<bool, StoreError> {
        let intents = self.store.intents();
        if let Some(id) = engine::intent_of(fill.client_order_id.as_deref()) {
            return match intents.get(owner, IntentId(id)).await {
                Ok(intent) => {
                    Ok(intent.source == IntentSource::Manual && intent.sub_account == sub)
                }
                Err(StoreError::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            };
        }
        if fill.client_order_id.is_some() {
            return Ok(false);
        }
        // A close sent through the broker's close/liquidate call carries no client order id:
        // the fill is a manual exit's when a manual close or flatten of the leader on the
        // same instrument was recorded shortly before it.
        let root = |s: &str| {
            jt_domain::instrument::resolve_ticker(s)
                .ok()
                .map(|i| i.root)
        };
        let Some(traded) = root(contract) else {
            return Ok(false);
        };
        Ok(intents
            .for_sub_account(owner, sub, 20)
            .await?
            .iter()
            .any(|i| {
                i.source == IntentSource::Manual
                    && matches!(i.kind, IntentKind::Close | IntentKind::Flatten)
                    && (root(&i.symbol) == Some(traded)
                        || i.contract.as_deref().and_then(root) == Some(traded))
                    && fill.timestamp >= i.created_at - MANUAL_CLOSE_EARLY
                    && fill.timestamp <= i.created_at + MANUAL_CLOSE_WINDOW
            }))
    }

    /// Whether `sub` follows any of the owner's leaders.
    async fn follows(&self, owner: UserId, sub: SubAccountId) -> Result<bool, StoreError> {
        let copying = self.store.copying();
        for leader in copying.leaders(owner).await? {
            if copying
                .followers(owner, leader.id)
                .await?
                .iter()
                .any(|f| f.sub_account == sub)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_to(
        &self,
        event: &BrokerEventMessage,
        fill: &FillReport,
        leader: &Leader,
        contract: &str,
        change: Change,
        follower: &Follower,
        traders: &HashSet<SubAccountId>,
        trigger: CopyTrigger,
        protection: &engine::LeaderProtection,
    ) -> Result<(), Failure> {
        let owner = event.owner_id;
        let copying = self.store.copying();
        let mappings = copying.mappings(owner, follower.id).await?;
        let target = engine::target(follower, &mappings, contract);
        let decision = if follower.sub_account == leader.sub_account {
            Decision::Skip(
                "same_account",
                "an account is never leader and follower in one group".into(),
            )
        } else if !follower.enabled {
            Decision::Skip("disabled", "the follower is disabled".into())
        } else if follower.locked_out {
            Decision::Skip(
                "locked_out",
                format!(
                    "the follower is locked out: {}",
                    follower.lockout_reason.as_deref().unwrap_or("a risk limit")
                ),
            )
        } else if traders.contains(&follower.sub_account) {
            Decision::Skip(
                "own_trader",
                "the follower's sub-account has its own enabled webhook trader: a copy would \
                 fill it twice"
                    .into(),
            )
        } else {
            match engine::step(change, &target) {
                Err(e) => Decision::Skip("invalid", format!("the follower's sizing: {e}")),
                Ok(CopyAction::Nothing) => Decision::Skip(
                    "no_change",
                    "the leader's change does not move this follower (its size is unchanged)"
                        .into(),
                ),
                Ok(step) => {
                    match self
                        .store
                        .accounts()
                        .sub_account(owner, follower.sub_account)
                        .await
                    {
                        Ok(sub) if sub.enabled => Decision::Copy(step, sub.broker_account),
                        Ok(_) => Decision::Skip(
                            "disabled",
                            "the follower's sub-account is disabled".into(),
                        ),
                        Err(StoreError::NotFound { .. }) => Decision::Skip(
                            "gone",
                            "the follower's sub-account no longer exists".into(),
                        ),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        };
        let order = match &decision {
            Decision::Copy(step, _) => engine::order_of(step),
            Decision::Skip(..) => None,
        };
        let fill_id = fill.id.to_string();
        let recorded = copying
            .record_copy(
                owner,
                NewCopy {
                    id: CopyLogId::new(),
                    leader: leader.id,
                    follower: follower.id,
                    trigger,
                    leader_fill_id: Some(fill_id.clone()),
                    leader_order_id: Some(fill.order_id.to_string()),
                    leader_symbol: contract.to_owned(),
                    follower_symbol: target.symbol.clone(),
                    leader_side: Some(fill.side),
                    follower_side: order.map(|(side, _)| side),
                    leader_quantity: fill.qty,
                    follower_quantity: order.map_or(0, |(_, qty)| qty),
                    leader_price: Some(fill.price),
                    status: match decision {
                        Decision::Copy(..) => CopyStatus::Pending,
                        Decision::Skip(..) => CopyStatus::Skipped,
                    },
                    error: match &decision {
                        Decision::Skip(_, why) => Some(why.clone()),
                        Decision::Copy(..) => None,
                    },
                },
            )
            .await?;
        let (step, login) = match (decision, recorded) {
            (Decision::Skip(reason, why), CopyRecorded::New) => {
                metrics::skipped(reason);
                tracing::info!(follower = %follower.id, fill = %fill_id, reason = %why, "follower skipped");
                return Ok(());
            }
            (Decision::Skip(..), CopyRecorded::AlreadyCopied) => {
                metrics::already_copied();
                return Ok(());
            }
            (Decision::Copy(step, login), CopyRecorded::New) => (step, login),
            (Decision::Copy(step, login), CopyRecorded::AlreadyCopied) => {
                // Published already, unless the row is still pending (a crash between
                // recording and publishing): then publish again — the same intent id.
                let row = copying.copy_of(owner, follower.id, &fill_id).await?;
                match row {
                    Some(row) if row.status == CopyStatus::Pending => {
                        self.publish(
                            event, fill, leader, contract, change, follower, &target, step, login,
                            protection,
                        )
                        .await?;
                        copying.mark_copy_accepted(owner, row.id).await?;
                    }
                    _ => metrics::already_copied(),
                }
                return Ok(());
            }
        };
        self.publish(
            event, fill, leader, contract, change, follower, &target, step, login, protection,
        )
        .await?;
        self.accepted(owner, follower.id, &fill_id).await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish(
        &self,
        event: &BrokerEventMessage,
        fill: &FillReport,
        leader: &Leader,
        contract: &str,
        change: Change,
        follower: &Follower,
        target: &engine::Target,
        step: CopyAction,
        login: BrokerAccountId,
        protection: &engine::LeaderProtection,
    ) -> Result<(), Failure> {
        // The leader's protection goes with a step that opens the follower's position, on the
        // follower's instrument and tick, for what the follower copies (`copy_tp`, `copy_sl`).
        let opens = match step {
            CopyAction::Entry { side, .. } => Some(side.opens()),
            CopyAction::Reverse { entry_side, .. } => Some(entry_side.opens()),
            _ => None,
        };
        let level = |kind: ProtectionKind, wanted: bool| {
            let direction = opens.filter(|_| wanted)?;
            let l = protection.of(kind)?;
            let price = engine::mapped_price(&target.symbol, direction, kind, l.price);
            if price.is_some() {
                self.remember(follower.id, l.order.id.to_string(), l.price);
            } else {
                tracing::warn!(follower = %follower.id, symbol = %target.symbol, "the leader's {} cannot be put on the follower's instrument (unknown): the entry goes without it", kind.name());
            }
            price
        };
        let (take_profit, stop_loss) = (
            level(ProtectionKind::TakeProfit, follower.copy_tp),
            level(ProtectionKind::Stop, follower.copy_sl),
        );
        let intent = IntentMessage::copy(
            event.owner_id,
            follower.sub_account,
            login,
            event.received_at,
            CopyIntent {
                leader_sub_account_id: leader.sub_account,
                leader_event_id: fill.id.to_string(),
                follower_id: follower.id,
                symbol: target.symbol.clone(),
                leader: LeaderChange {
                    symbol: contract.to_owned(),
                    prev_net: change.prev,
                    new_net: change.new,
                    price: Some(fill.price),
                },
                step,
                take_profit,
                stop_loss,
                max_lag_secs: self.max_lag_secs,
                protection: None,
            },
        );
        self.send(intent).await?;
        tracing::info!(follower = %follower.id, fill = %fill.id, symbol = %target.symbol, ?step, "copy intent published");
        Ok(())
    }

    /// The sub-accounts with an enabled webhook trader of `owner`: a follower among them is
    /// skipped (its own strategy trades it; a copy would double its fills).
    async fn traded_accounts(&self, owner: UserId) -> Result<HashSet<SubAccountId>, Failure> {
        Ok(self
            .store
            .traders()
            .list(owner)
            .await?
            .into_iter()
            .filter(|t| t.enabled)
            .map(|t| t.sub_account)
            .collect())
    }

    /// Marks `follower`'s copy row of `event_id` accepted, once its intent is on ORDERS.
    async fn accepted(
        &self,
        owner: UserId,
        follower: FollowerId,
        event_id: &str,
    ) -> Result<(), Failure> {
        let copying = self.store.copying();
        if let Some(row) = copying.copy_of(owner, follower, event_id).await? {
            copying.mark_copy_accepted(owner, row.id).await?;
        }
        Ok(())
    }

    /// Publishes a copy intent on ORDERS under its derived id (a second publish of the same
    /// intent is dropped by the stream's duplicate window).
    async fn send(&self, intent: IntentMessage) -> Result<(), Failure> {
        let id =
            MessageId::new(intent.message_id()).map_err(|e| Failure::Publish(e.to_string()))?;
        let receipt = self
            .bus
            .publish(
                &Envelope::new(id, intent).with_trace(jt_bus::TraceContext::from_pairs(
                    &jt_runtime::telemetry::inject_context(),
                )),
            )
            .await
            .map_err(|e| Failure::Publish(e.to_string()))?;
        metrics::published(receipt.duplicate);
        Ok(())
    }
}
