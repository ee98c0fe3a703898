//! Order intents (with their guarded state machine) and execution attempts.

use chrono::{DateTime, NaiveDate, Utc};
use jt_domain::{Settings, Side};
use rust_decimal::Decimal;
use sea_orm::sea_query::{
    Alias, Asterisk, CommonTableExpression, Expr, Func, InsertStatement, OnConflict, Query,
    SelectStatement, SubQueryStatement, UpdateStatement, WithClause,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    Iterable, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use serde::Serialize;

use super::accounts::SubAccount;
use super::risk::{ExposureGates, exposure_gate_columns, read_exposure_gates};
use super::{ReadScope, at, from_json, from_json_tolerant, now, required_text, to_json, to_u32};
use crate::Store;
use crate::decimal::DbDecimal;
use crate::entity::{
    ExecutionOutcome, IntentKind, IntentSource, IntentStatus, StoredSide, executions, order_intents,
};
use crate::error::{StoreError, StoreResult};
use crate::ids::{ExecutionId, IntentId, SignalId, SubAccountId, TraderId, UserId};
use crate::text::{strip_nul, strip_nul_json_owned, strip_nul_opt};

/// An intent to record.
#[derive(Debug, Clone)]
pub struct NewIntent {
    /// Id made by the executor; the broker's client order id derives from it.
    pub id: IntentId,
    /// Owner of the account.
    pub owner: UserId,
    /// The sub-account to act on.
    pub sub_account: SubAccountId,
    /// The trader it is for (signal intents).
    pub trader: Option<TraderId>,
    /// The signal that caused it.
    pub signal: Option<SignalId>,
    /// What caused it.
    pub source: IntentSource,
    /// Unique key: the same key is the same intent (e.g. `"{signal}:{trader}"`), so a
    /// redelivered signal never creates a second intent.
    pub idempotency_key: String,
    /// What it does.
    pub kind: IntentKind,
    /// Symbol as traded (after `custom_ticker`).
    pub symbol: String,
    /// Broker contract, when resolved.
    pub contract: Option<String>,
    /// Side of the main order.
    pub side: Option<Side>,
    /// Quantity of the main order, in contracts.
    pub quantity: u32,
    /// The resolved settings it was decided with.
    pub settings: Settings,
    /// The order shapes to send (`jt_domain::order` types, serialized by the executor).
    pub plan: serde_json::Value,
    /// `Some(reason)` records the intent directly as `skipped` (a filter or rule said no).
    pub skip_reason: Option<String>,
}

/// A recorded intent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intent {
    /// Id.
    pub id: IntentId,
    /// Owner.
    pub owner: UserId,
    /// Sub-account.
    pub sub_account: SubAccountId,
    /// Trader.
    pub trader: Option<TraderId>,
    /// Signal.
    pub signal: Option<SignalId>,
    /// Cause.
    pub source: IntentSource,
    /// Idempotency key.
    pub idempotency_key: String,
    /// What it does.
    pub kind: IntentKind,
    /// Symbol.
    pub symbol: String,
    /// Broker contract.
    pub contract: Option<String>,
    /// Side.
    pub side: Option<Side>,
    /// Quantity.
    pub quantity: u32,
    /// Contracts filled so far.
    pub filled_quantity: u32,
    /// Average fill price so far.
    pub average_fill_price: Option<Decimal>,
    /// Resolved settings.
    pub settings: Settings,
    /// Order shapes.
    pub plan: serde_json::Value,
    /// State.
    pub status: IntentStatus,
    /// Why it is in that state (skip reason, rejection, failure).
    pub status_reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it was sent to the broker.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    pub completed_at: Option<DateTime<Utc>>,
}

impl TryFrom<order_intents::Model> for Intent {
    type Error = StoreError;
    fn try_from(m: order_intents::Model) -> StoreResult<Self> {
        Ok(Self {
            settings: from_json_tolerant("intent settings", m.id, m.settings)?,
            quantity: to_u32("intent", m.id, m.quantity)?,
            filled_quantity: to_u32("intent", m.id, m.filled_quantity)?,
            id: IntentId(m.id),
            owner: UserId(m.user_id),
            sub_account: SubAccountId(m.sub_account_id),
            trader: m.trader_id.map(TraderId),
            signal: m.signal_id.map(SignalId),
            source: m.source,
            idempotency_key: m.idempotency_key,
            kind: m.kind,
            symbol: m.symbol,
            contract: m.contract,
            side: m.side.map(Side::from),
            average_fill_price: m.average_fill_price.map(|d| d.0),
            plan: m.plan,
            status: m.status,
            status_reason: m.status_reason,
            created_at: m.created_at,
            updated_at: m.updated_at,
            sent_at: m.sent_at,
            completed_at: m.completed_at,
        })
    }
}

/// The result of [`Intents::create`].
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Recorded now.
    New(Intent),
    /// An intent with this idempotency key already exists: do not act twice; continue from
    /// its state.
    Existing(Intent),
}

impl Created {
    /// The intent, new or existing.
    #[must_use]
    pub fn intent(&self) -> &Intent {
        match self {
            Created::New(i) | Created::Existing(i) => i,
        }
    }
}

/// A state change, with what the broker reported.
#[derive(Debug, Clone, Default)]
pub struct IntentUpdate {
    /// Why (rejection text, failure reason).
    pub reason: Option<String>,
    /// Contracts filled so far, if known.
    pub filled_quantity: Option<u32>,
    /// Average fill price so far, if known.
    pub average_fill_price: Option<Decimal>,
    /// What the executor decided, written with the move to `sent` (or `skipped`) of an intent
    /// recorded as `pending` (one that waited; [`Intents::create_sent`] writes the others
    /// decided at once): the decision is stored before any order is sent, so a restarted
    /// executor resumes the same plan instead of deciding again.
    pub decided: Option<Decided>,
}

/// The executor's decision for an intent (see [`IntentUpdate::decided`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// What it does.
    pub kind: IntentKind,
    /// The broker contract.
    pub contract: Option<String>,
    /// Side of the main order.
    pub side: Option<Side>,
    /// Quantity of the main order.
    pub quantity: u32,
    /// The plan (`jt_domain` types, serialized by the executor).
    pub plan: serde_json::Value,
    /// The plan places a resting (limit, stop) entry: the trader's next signal on the
    /// contract cancels it first ([`TraderActivity::resting_entry`]).
    pub resting_entry: bool,
}

/// The result of [`Intents::transition`].
#[derive(Debug, Clone, PartialEq)]
pub enum Transitioned {
    /// The state changed.
    Applied(Intent),
    /// The intent was already in the requested state (a replayed event): nothing changed.
    AlreadyThere(Intent),
}

impl Transitioned {
    /// The intent after the call.
    #[must_use]
    pub fn intent(&self) -> &Intent {
        match self {
            Transitioned::Applied(i) | Transitioned::AlreadyThere(i) => i,
        }
    }
}

/// The result of [`Intents::advance`]: [`Transitioned`] without the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advanced {
    /// The state changed.
    Applied,
    /// The intent was already in the requested state (a replayed event): nothing changed.
    AlreadyThere,
}

/// The guarded `UPDATE` moving the owner's intent `id` to `to` with `u`, or `None` when no
/// state may precede `to` (nothing can move there).
fn guarded_update(
    owner: UserId,
    id: IntentId,
    to: IntentStatus,
    u: &IntentUpdate,
) -> Option<sea_orm::UpdateMany<order_intents::Entity>> {
    let from = to.predecessors();
    if from.is_empty() {
        return None;
    }
    let t = now();
    let mut q = order_intents::Entity::update_many()
        .col_expr(order_intents::Column::Status, Expr::value(to))
        .col_expr(order_intents::Column::UpdatedAt, Expr::value(t));
    if let Some(r) = &u.reason {
        q = q.col_expr(
            order_intents::Column::StatusReason,
            Expr::value(Some(strip_nul(r).into_owned())),
        );
    }
    if to == IntentStatus::Sent {
        q = q.col_expr(order_intents::Column::SentAt, Expr::value(Some(t)));
    }
    if to.is_terminal() {
        q = q.col_expr(order_intents::Column::CompletedAt, Expr::value(Some(t)));
    }
    if let Some(f) = u.filled_quantity {
        q = q.col_expr(
            order_intents::Column::FilledQuantity,
            Expr::value(i64::from(f)),
        );
    }
    if let Some(p) = u.average_fill_price {
        q = q.col_expr(
            order_intents::Column::AverageFillPrice,
            Expr::value(Some(DbDecimal(p))),
        );
    }
    if let Some(d) = &u.decided {
        q = q
            .col_expr(order_intents::Column::Kind, Expr::value(d.kind))
            .col_expr(
                order_intents::Column::Contract,
                Expr::value(d.contract.clone()),
            )
            .col_expr(
                order_intents::Column::Side,
                Expr::value(d.side.map(StoredSide::from)),
            )
            .col_expr(
                order_intents::Column::Quantity,
                Expr::value(i64::from(d.quantity)),
            )
            .col_expr(
                order_intents::Column::Plan,
                Expr::value(strip_nul_json_owned(d.plan.clone())),
            )
            .col_expr(
                order_intents::Column::RestingEntry,
                Expr::value(d.resting_entry),
            );
    }
    Some(
        q.filter(order_intents::Column::Id.eq(id.0))
            .filter(order_intents::Column::UserId.eq(owner.0))
            .filter(order_intents::Column::Status.is_in(from)),
    )
}

/// After a guarded move changed nothing: `Ok` when the intent `id` is already in `to` (a
/// replayed move), else the invalid transition from `current`.
fn already_there(id: IntentId, current: IntentStatus, to: IntentStatus) -> StoreResult<()> {
    if current == to {
        Ok(())
    } else {
        Err(StoreError::InvalidTransition {
            intent: id,
            from: current,
            to,
        })
    }
}

/// What a trader did recently: the input of cooldown, add-delay and per-session limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraderActivity {
    /// Signal intents sent to the broker since the session start.
    pub executed_since: u32,
    /// Creation time of the last signal intent that went to the broker.
    pub last_executed_at: Option<DateTime<Utc>>,
    /// Creation time of the last DCA add that went to the broker.
    pub last_add_at: Option<DateTime<Utc>>,
    /// The trader's last intent that went to the broker, when it placed a resting entry
    /// (limit, stop) that may still be working: the next signal cancels it first.
    pub resting_entry: Option<IntentId>,
}

/// An execution attempt to record.
#[derive(Debug, Clone)]
pub struct NewExecution {
    /// Id.
    pub id: ExecutionId,
    /// Owner.
    pub owner: UserId,
    /// The intent.
    pub intent: IntentId,
    /// Attempt number, from 1; recording the same attempt twice is harmless.
    pub attempt: u32,
    /// When the broker call started.
    pub started_at: DateTime<Utc>,
    /// When the answer came.
    pub finished_at: Option<DateTime<Utc>>,
    /// Outcome.
    pub outcome: ExecutionOutcome,
    /// Broker order ids produced.
    pub broker_order_ids: Vec<String>,
    /// Fill price, if filled.
    pub fill_price: Option<Decimal>,
    /// Contracts filled.
    pub filled_quantity: Option<u32>,
    /// Error category (`rate_limited`, `rejected`, `timeout`…).
    pub error_kind: Option<String>,
    /// Error text.
    pub failure_reason: Option<String>,
}

/// A recorded execution attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Execution {
    /// Id.
    pub id: ExecutionId,
    /// Intent.
    pub intent: IntentId,
    /// Attempt number.
    pub attempt: u32,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Broker round-trip latency.
    pub latency_ms: Option<i64>,
    /// Outcome.
    pub outcome: ExecutionOutcome,
    /// Broker order ids.
    pub broker_order_ids: Vec<String>,
    /// Fill price.
    pub fill_price: Option<Decimal>,
    /// Contracts filled.
    pub filled_quantity: Option<u32>,
    /// Error category.
    pub error_kind: Option<String>,
    /// Error text.
    pub failure_reason: Option<String>,
}

impl TryFrom<executions::Model> for Execution {
    type Error = StoreError;
    fn try_from(m: executions::Model) -> StoreResult<Self> {
        Ok(Self {
            broker_order_ids: from_json("execution", m.id, m.broker_order_ids)?,
            attempt: to_u32("execution", m.id, m.attempt)?,
            filled_quantity: m
                .filled_quantity
                .map(|q| to_u32("execution", m.id, q))
                .transpose()?,
            id: ExecutionId(m.id),
            intent: IntentId(m.intent_id),
            started_at: m.started_at,
            finished_at: m.finished_at,
            latency_ms: m.latency_ms,
            outcome: m.outcome,
            fill_price: m.fill_price.map(|d| d.0),
            error_kind: m.error_kind,
            failure_reason: m.failure_reason,
        })
    }
}

/// The `INSERT` of one execution row: `INSERT … SELECT <row> FROM order_intents WHERE id = …
/// AND user_id = …` inserts only for the owner's intent, so the ownership check costs no read of
/// its own; a repeated (intent, attempt) inserts nothing.
fn execution_insert(e: NewExecution) -> StoreResult<InsertStatement> {
    let started = at(e.started_at);
    let finished = e.finished_at.map(at);
    let (owner, intent) = (e.owner, e.intent);
    let model = executions::Model {
        id: e.id.0,
        user_id: owner.0,
        intent_id: intent.0,
        attempt: i64::from(e.attempt),
        started_at: started,
        finished_at: finished,
        latency_ms: finished.map(|f| (f - started).num_milliseconds()),
        outcome: e.outcome,
        broker_order_ids: to_json("broker_order_ids", &e.broker_order_ids)?,
        fill_price: e.fill_price.map(DbDecimal),
        filled_quantity: e.filled_quantity.map(i64::from),
        // Broker error texts are outside input too: see `crate::text`.
        error_kind: strip_nul_opt(e.error_kind),
        failure_reason: strip_nul_opt(e.failure_reason),
    };
    let row = model.into_active_model();
    let columns: Vec<executions::Column> = executions::Column::iter().collect();
    let mut select = Query::select();
    for c in &columns {
        let value = row
            .get(*c)
            .into_value()
            .ok_or_else(|| StoreError::Invalid {
                what: "execution",
                reason: format!("no value for column {c:?}"),
            })?;
        select.expr(Expr::val(value));
    }
    select
        .from(order_intents::Entity)
        .and_where(order_intents::Column::Id.eq(intent.0))
        .and_where(order_intents::Column::UserId.eq(owner.0));
    let mut insert = Query::insert();
    insert
        .into_table(executions::Entity)
        .columns(columns)
        .select_from(select)
        .map_err(|e| StoreError::Invalid {
            what: "execution",
            reason: e.to_string(),
        })?
        .on_conflict(
            OnConflict::columns([executions::Column::IntentId, executions::Column::Attempt])
                .do_nothing()
                .to_owned(),
        );
    Ok(insert)
}

/// The row of `new` as first written at `t`: `pending`, undecided (callers override the state
/// and the decision).
fn new_row(
    new: &NewIntent,
    key: &str,
    symbol: &str,
    t: DateTime<Utc>,
) -> StoreResult<order_intents::Model> {
    Ok(order_intents::Model {
        id: new.id.0,
        user_id: new.owner.0,
        sub_account_id: new.sub_account.0,
        trader_id: new.trader.map(|x| x.0),
        signal_id: new.signal.map(|x| x.0),
        source: new.source,
        idempotency_key: key.to_owned(),
        kind: new.kind,
        symbol: symbol.to_owned(),
        contract: strip_nul_opt(new.contract.clone()),
        side: new.side.map(Into::into),
        quantity: i64::from(new.quantity),
        filled_quantity: 0,
        average_fill_price: None,
        settings: to_json("settings", &new.settings)?,
        plan: strip_nul_json_owned(new.plan.clone()),
        status: IntentStatus::Pending,
        status_reason: None,
        created_at: t,
        updated_at: t,
        sent_at: None,
        completed_at: None,
        resting_entry: false,
    })
}

/// The trader-activity read: scalar subqueries over the trader's intents that went to the
/// broker. Only times are read: whole rows would decode every intent's settings and plan
/// (JSON), which was a visible share of the executor's CPU under load.
fn activity_statement(owner: UserId, trader: TraderId, since: DateTime<Utc>) -> SelectStatement {
    let base = || {
        order_intents::Entity::find()
            .select_only()
            .filter(order_intents::Column::UserId.eq(owner.0))
            .filter(order_intents::Column::TraderId.eq(trader.0))
            .filter(order_intents::Column::Source.eq(IntentSource::Signal))
            .filter(order_intents::Column::Status.is_in(EXECUTED))
    };
    let latest = |q: sea_orm::Select<order_intents::Entity>| {
        q.column(order_intents::Column::CreatedAt)
            .order_by_desc(order_intents::Column::CreatedAt)
            .limit(1)
    };
    let scalar = |q: sea_orm::Select<order_intents::Entity>| {
        Expr::SubQuery(None, Box::new(q.into_query().into()))
    };
    // Several reads on the execution's path to the broker, as scalar subqueries of one
    // statement: one round trip, and each keeps its own plan (a backward scan of the trader's
    // index for the latest times).
    let mut statement = Query::select();
    statement
        .expr_as(
            scalar(
                base()
                    .expr(Func::count(Expr::col(order_intents::Column::Id)))
                    .filter(order_intents::Column::CreatedAt.gte(at(since))),
            ),
            "executed_since",
        )
        .expr_as(scalar(latest(base())), "last_executed")
        .expr_as(
            scalar(latest(
                base().filter(order_intents::Column::Kind.eq(IntentKind::Add)),
            )),
            "last_add",
        )
        .expr_as(
            scalar(latest(
                base().filter(order_intents::Column::RestingEntry.eq(true)),
            )),
            "last_resting",
        )
        .expr_as(
            scalar(
                base()
                    .filter(order_intents::Column::RestingEntry.eq(true))
                    .column(order_intents::Column::Id)
                    .order_by_desc(order_intents::Column::CreatedAt)
                    .limit(1),
            ),
            "last_resting_id",
        );
    statement
}

/// The columns of [`activity_statement`], read from `row`.
fn read_activity(row: &sea_orm::QueryResult) -> StoreResult<TraderActivity> {
    let read = |e: sea_orm::DbErr| StoreError::db("intent", e);
    let executed_since: i64 = row.try_get("", "executed_since").map_err(read)?;
    let last: Option<DateTime<Utc>> = row.try_get("", "last_executed").map_err(read)?;
    let last_add: Option<DateTime<Utc>> = row.try_get("", "last_add").map_err(read)?;
    let last_resting: Option<DateTime<Utc>> = row.try_get("", "last_resting").map_err(read)?;
    let last_resting_id: Option<sea_orm::prelude::Uuid> =
        row.try_get("", "last_resting_id").map_err(read)?;
    // Only the latest intent's resting entry can still be working: every later one cancelled
    // it first.
    let resting_entry = match (last_resting, last, last_resting_id) {
        (Some(r), Some(l), Some(id)) if r == l => Some(IntentId(id)),
        _ => None,
    };
    Ok(TraderActivity {
        executed_since: u32::try_from(executed_since).unwrap_or(u32::MAX),
        last_executed_at: last,
        last_add_at: last_add,
        resting_entry,
    })
}

/// Intent states that count as "went to the broker".
const EXECUTED: [IntentStatus; 4] = [
    IntentStatus::Sent,
    IntentStatus::Unknown,
    IntentStatus::Accepted,
    IntentStatus::Filled,
];

/// Order intents and their executions.
#[derive(Debug, Clone, Copy)]
pub struct Intents<'a> {
    pub(crate) store: &'a Store,
}

impl Intents<'_> {
    /// Records an intent, once per idempotency key. A second call with the same key returns
    /// the existing intent unchanged, whatever its state.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the sub-account is not the owner's;
    /// [`StoreError::Conflict`] when the key belongs to another owner.
    pub async fn create(&self, new: NewIntent) -> StoreResult<Created> {
        let key = required_text("idempotency_key", &new.idempotency_key)?;
        let t = now();
        let (status, reason, completed_at) = match &new.skip_reason {
            Some(r) => (
                IntentStatus::Skipped,
                Some(strip_nul(r).into_owned()),
                Some(t),
            ),
            None => (IntentStatus::Pending, None, None),
        };
        let symbol = required_text("symbol", &new.symbol)?;
        let model = order_intents::Model {
            status,
            status_reason: reason.clone(),
            completed_at,
            ..new_row(&new, &key, &symbol, t)?
        };
        if !self.insert_once(model).await? {
            return self.existing(&new, &key).await;
        }
        // What was just written, from the caller's own values: the settings are not decoded
        // back from the JSON they were encoded to.
        Ok(Created::New(Intent {
            id: new.id,
            owner: new.owner,
            sub_account: new.sub_account,
            trader: new.trader,
            signal: new.signal,
            source: new.source,
            idempotency_key: key,
            kind: new.kind,
            symbol,
            contract: new.contract,
            side: new.side,
            quantity: new.quantity,
            filled_quantity: 0,
            average_fill_price: None,
            settings: new.settings,
            plan: new.plan,
            status,
            status_reason: reason,
            created_at: t,
            updated_at: t,
            sent_at: None,
            completed_at,
        }))
    }

    /// The intent already recorded under `new`'s key.
    async fn existing(&self, new: &NewIntent, key: &str) -> StoreResult<Created> {
        let existing = order_intents::Entity::find()
            .filter(order_intents::Column::IdempotencyKey.eq(key))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("intent", e))?
            .ok_or_else(|| StoreError::not_found("intent", key))?;
        if existing.user_id != new.owner.0 {
            return Err(StoreError::Conflict {
                entity: "intent",
                detail: "idempotency key in use".to_string(),
            });
        }
        Ok(Created::Existing(existing.try_into()?))
    }

    /// Inserts `row` unless an intent with its id or key exists; whether it did.
    async fn insert_once(&self, row: order_intents::Model) -> StoreResult<bool> {
        // No conflict target: two deliveries of one intent inserting at once (two replicas
        // both believing they own its partition) collide on the primary key as much as on the
        // idempotency key, and PostgreSQL answers a conflict outside the named target with an
        // error. The id derives from the same cause as the key, so either conflict means
        // "this intent exists".
        let n = order_intents::Entity::insert(row.into_active_model())
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("intent", e))?;
        Ok(n == 1)
    }

    /// Records an intent directly as `sent`, with the decision stored before its first broker
    /// call — the executor's one write before sending, for an intent no earlier delivery
    /// recorded. `true`: this call recorded it, and only its caller may send it. `false`: an
    /// intent with this id or key exists (another delivery recorded or concluded it first);
    /// nothing was written.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for an empty key or symbol; database errors.
    pub async fn create_sent(&self, new: &NewIntent, decided: Decided) -> StoreResult<bool> {
        let key = required_text("idempotency_key", &new.idempotency_key)?;
        let symbol = required_text("symbol", &new.symbol)?;
        let t = now();
        let model = order_intents::Model {
            status: IntentStatus::Sent,
            sent_at: Some(t),
            kind: decided.kind,
            contract: strip_nul_opt(decided.contract),
            side: decided.side.map(Into::into),
            quantity: i64::from(decided.quantity),
            plan: strip_nul_json_owned(decided.plan),
            resting_entry: decided.resting_entry,
            ..new_row(new, &key, &symbol, t)?
        };
        self.insert_once(model).await
    }

    /// Moves an intent to `to`, only from a state that may precede it (see
    /// [`IntentStatus::successors`]); the check and the change are one guarded `UPDATE`, so
    /// concurrent writers cannot both win. Requesting the state the intent is already in is
    /// a no-op ([`Transitioned::AlreadyThere`]), so replayed events are harmless.
    ///
    /// # Errors
    /// [`StoreError::InvalidTransition`] (e.g. a filled intent back to pending);
    /// [`StoreError::NotFound`].
    pub async fn transition(
        &self,
        owner: UserId,
        id: IntentId,
        to: IntentStatus,
        u: IntentUpdate,
    ) -> StoreResult<Transitioned> {
        if let Some(q) = guarded_update(owner, id, to, &u) {
            // `RETURNING` (PostgreSQL, SQLite ≥ 3.35): the changed row in the same round trip.
            let changed = q
                .exec_with_returning(self.store.db())
                .await
                .map_err(|e| StoreError::db("intent", e))?;
            if let Some(row) = changed.into_iter().next() {
                return Ok(Transitioned::Applied(row.try_into()?));
            }
        }
        let current = self.get(owner, id).await?;
        already_there(id, current.status, to)?;
        Ok(Transitioned::AlreadyThere(current))
    }

    /// [`Intents::transition`] for a caller that does not need the row back: the same
    /// guarded `UPDATE`, without reading and decoding the intent (its settings and plan are
    /// JSON) — the executor moves every intent two or three times on its hot path.
    ///
    /// # Errors
    /// As [`Intents::transition`].
    pub async fn advance(
        &self,
        owner: UserId,
        id: IntentId,
        to: IntentStatus,
        u: IntentUpdate,
    ) -> StoreResult<Advanced> {
        if let Some(q) = guarded_update(owner, id, to, &u) {
            let done = q
                .exec(self.store.db())
                .await
                .map_err(|e| StoreError::db("intent", e))?;
            if done.rows_affected > 0 {
                return Ok(Advanced::Applied);
            }
        }
        already_there(id, self.status(owner, id).await?, to)?;
        Ok(Advanced::AlreadyThere)
    }

    /// Records fill progress without changing the state (partial fills while accepted).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn record_fill_progress(
        &self,
        owner: UserId,
        id: IntentId,
        filled_quantity: u32,
        average_fill_price: Decimal,
    ) -> StoreResult<()> {
        let q = order_intents::Entity::update_many()
            .col_expr(
                order_intents::Column::FilledQuantity,
                Expr::value(i64::from(filled_quantity)),
            )
            .col_expr(
                order_intents::Column::AverageFillPrice,
                Expr::value(Some(DbDecimal(average_fill_price))),
            )
            .col_expr(order_intents::Column::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await
    }

    /// One intent.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn get(&self, scope: impl ReadScope, id: IntentId) -> StoreResult<Intent> {
        order_intents::Entity::find_by_id(id.0)
            .filter(order_intents::Column::UserId.eq(scope.owner().0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("intent", e))?
            .ok_or_else(|| StoreError::not_found("intent", id))?
            .try_into()
    }

    /// One intent, if the owner has it: where the executor starts (most intents are not in
    /// the store yet when their first delivery arrives).
    ///
    /// # Errors
    /// Database errors.
    pub async fn find(&self, scope: impl ReadScope, id: IntentId) -> StoreResult<Option<Intent>> {
        order_intents::Entity::find_by_id(id.0)
            .filter(order_intents::Column::UserId.eq(scope.owner().0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("intent", e))?
            .map(Intent::try_from)
            .transpose()
    }

    /// One intent's state only (no JSON decoded): what the executor's hot path needs when it
    /// concludes an attempt.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such intent of the owner's.
    pub async fn status(&self, scope: impl ReadScope, id: IntentId) -> StoreResult<IntentStatus> {
        order_intents::Entity::find_by_id(id.0)
            .select_only()
            .column(order_intents::Column::Status)
            .filter(order_intents::Column::UserId.eq(scope.owner().0))
            .into_tuple::<IntentStatus>()
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("intent", e))?
            .ok_or_else(|| StoreError::not_found("intent", id))
    }

    /// The latest intents of a sub-account, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn for_sub_account(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
        limit: u64,
    ) -> StoreResult<Vec<Intent>> {
        self.list(
            order_intents::Entity::find()
                .filter(order_intents::Column::UserId.eq(scope.owner().0))
                .filter(order_intents::Column::SubAccountId.eq(sub_account.0))
                .order_by_desc(order_intents::Column::CreatedAt)
                .limit(limit),
        )
        .await
    }

    /// The intents one signal produced.
    ///
    /// # Errors
    /// Database errors.
    pub async fn for_signal(
        &self,
        scope: impl ReadScope,
        signal: SignalId,
    ) -> StoreResult<Vec<Intent>> {
        self.list(
            order_intents::Entity::find()
                .filter(order_intents::Column::UserId.eq(scope.owner().0))
                .filter(order_intents::Column::SignalId.eq(signal.0))
                .order_by_asc(order_intents::Column::CreatedAt),
        )
        .await
    }

    /// Intents of a sub-account that are not finished: in particular `unknown` ones, which
    /// block further orders on that account and contract until reconciled.
    ///
    /// # Errors
    /// Database errors.
    pub async fn unfinished(
        &self,
        owner: UserId,
        sub_account: SubAccountId,
    ) -> StoreResult<Vec<Intent>> {
        self.list(
            order_intents::Entity::find()
                .filter(order_intents::Column::UserId.eq(owner.0))
                .filter(order_intents::Column::SubAccountId.eq(sub_account.0))
                .filter(order_intents::Column::Status.is_in([
                    IntentStatus::Pending,
                    IntentStatus::Sent,
                    IntentStatus::Unknown,
                    IntentStatus::Accepted,
                ]))
                .order_by_asc(order_intents::Column::CreatedAt),
        )
        .await
    }

    /// What a trader did since `since` (the session start): for cooldown, add delay and
    /// max signals per session.
    ///
    /// # Errors
    /// Database errors.
    pub async fn trader_activity(
        &self,
        owner: UserId,
        trader: TraderId,
        since: DateTime<Utc>,
    ) -> StoreResult<TraderActivity> {
        let row = super::one_row(
            self.store,
            &activity_statement(owner, trader, since),
            "trader activity",
            trader,
        )
        .await?;
        read_activity(&row)
    }

    /// [`Intents::trader_activity`] and [`crate::repo::risk::Risk::exposure_gates`] of `sub`
    /// on trading day `day`, in one statement: what a signal's intent is filtered by on its
    /// way to the broker.
    ///
    /// # Errors
    /// Database errors.
    pub async fn signal_filters(
        &self,
        trader: TraderId,
        since: DateTime<Utc>,
        sub: &SubAccount,
        day: NaiveDate,
    ) -> StoreResult<(TraderActivity, ExposureGates)> {
        let mut statement = activity_statement(sub.owner, trader, since);
        exposure_gate_columns(&mut statement, sub, day);
        let row = super::one_row(self.store, &statement, "trader activity", trader).await?;
        Ok((read_activity(&row)?, read_exposure_gates(&row)?))
    }

    /// Records one execution attempt (once per intent and attempt number).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the intent is not the owner's.
    pub async fn record_execution(&self, e: NewExecution) -> StoreResult<()> {
        let (owner, intent) = (e.owner, e.intent);
        let insert = execution_insert(e)?;
        let done = self
            .store
            .db()
            .execute(&insert)
            .await
            .map_err(|e| StoreError::db("execution", e))?;
        if done.rows_affected() == 0 {
            // Either recorded before (the same attempt again: fine) or not the owner's intent.
            self.status(owner, intent).await?;
        }
        Ok(())
    }

    /// The end of an attempt: moves the owner's intent to `to` (when given, as
    /// [`Intents::advance`]) and records the attempt's row (when given, as
    /// [`Intents::record_execution`]). Both writes are attempted whatever the other does: the
    /// attempt happened even when its move is refused. On PostgreSQL they are one statement (two
    /// data-modifying CTEs): the executor ends every intent this way, and a statement fewer per
    /// intent is a visible share of the database's work under load. SQLite has no
    /// data-modifying CTEs and runs the two writes one after the other.
    ///
    /// # Errors
    /// As [`Intents::advance`] and [`Intents::record_execution`]; `execution` must be for the
    /// same owner and intent.
    pub async fn settle(
        &self,
        owner: UserId,
        id: IntentId,
        to: Option<(IntentStatus, IntentUpdate)>,
        execution: Option<NewExecution>,
    ) -> StoreResult<()> {
        if let Some(e) = &execution
            && (e.owner != owner || e.intent != id)
        {
            return Err(StoreError::Invalid {
                what: "execution",
                reason: "settles another intent".into(),
            });
        }
        if to.is_none() && execution.is_none() {
            return Ok(());
        }
        if self.store.db().get_database_backend() != DbBackend::Postgres {
            // Both writes are attempted, as in the one statement below.
            let recorded = match execution {
                Some(e) => self.record_execution(e).await,
                None => Ok(()),
            };
            let moved = match to {
                Some((to, u)) => self.advance(owner, id, to, u).await.map(|_| ()),
                None => Ok(()),
            };
            return moved.and(recorded);
        }
        let moved = to
            .as_ref()
            .and_then(|(to, u)| guarded_update(owner, id, *to, u))
            .map(|q| {
                let mut q = q.into_query();
                q.returning_col(order_intents::Column::Id);
                q
            });
        let wants_record = execution.is_some();
        let recorded = match execution {
            Some(e) => {
                let mut q = execution_insert(e)?;
                q.returning_col(executions::Column::Id);
                Some(q)
            }
            None => None,
        };
        let (moved, recorded) = match (moved, recorded) {
            // A move nothing may precede (to `pending`) and no row: nothing to write.
            (None, None) => (0, 0),
            (moved, recorded) => self.settle_statement(id, moved, recorded).await?,
        };
        let move_missed = moved == 0 && to.is_some();
        let record_missed = recorded == 0 && wants_record;
        // Nothing moved: already there, or a move the state does not allow. Nothing recorded:
        // the same attempt again (fine), or not the owner's intent. One read answers both.
        if move_missed || record_missed {
            let current = self.status(owner, id).await?;
            if let Some((to, _)) = to.filter(|_| move_missed) {
                already_there(id, current, to)?;
            }
        }
        Ok(())
    }

    /// Runs `settle`'s writes (at least one) as one statement and returns how many rows
    /// each changed: `SELECT (SELECT count(*) FROM moved) AS moved, (…) AS recorded`. A CTE
    /// that changes data runs whether or not the main query reads it.
    async fn settle_statement(
        &self,
        id: IntentId,
        moved: Option<UpdateStatement>,
        recorded: Option<InsertStatement>,
    ) -> StoreResult<(i64, i64)> {
        let mut with = WithClause::new();
        let mut counts = Query::select();
        for (name, q) in [
            ("moved", moved.map(SubQueryStatement::from)),
            ("recorded", recorded.map(SubQueryStatement::from)),
        ] {
            let count = match q {
                Some(q) => {
                    with.cte(
                        CommonTableExpression::new()
                            .query(q)
                            .table_name(Alias::new(name))
                            .to_owned(),
                    );
                    Expr::SubQuery(
                        None,
                        Box::new(
                            Query::select()
                                .expr(Func::count(Expr::col(Asterisk)))
                                .from(Alias::new(name))
                                .to_owned()
                                .into(),
                        ),
                    )
                }
                None => Expr::val(0i64),
            };
            counts.expr_as(count, Alias::new(name));
        }
        let row = self
            .store
            .db()
            .query_one(&with.query(counts))
            .await
            .map_err(|e| StoreError::db("intent", e))?
            .ok_or_else(|| StoreError::not_found("intent", id))?;
        let read = |e: sea_orm::DbErr| StoreError::db("intent", e);
        Ok((
            row.try_get("", "moved").map_err(read)?,
            row.try_get("", "recorded").map_err(read)?,
        ))
    }

    /// The execution attempts of an intent, in order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn executions(
        &self,
        scope: impl ReadScope,
        intent: IntentId,
    ) -> StoreResult<Vec<Execution>> {
        executions::Entity::find()
            .filter(executions::Column::UserId.eq(scope.owner().0))
            .filter(executions::Column::IntentId.eq(intent.0))
            .order_by_asc(executions::Column::Attempt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("execution", e))?
            .into_iter()
            .map(Execution::try_from)
            .collect()
    }

    async fn list(&self, q: sea_orm::Select<order_intents::Entity>) -> StoreResult<Vec<Intent>> {
        q.all(self.store.db())
            .await
            .map_err(|e| StoreError::db("intent", e))?
            .into_iter()
            .map(Intent::try_from)
            .collect()
    }
}

impl Store {
    /// Order intents and execution attempts.
    #[must_use]
    pub fn intents(&self) -> Intents<'_> {
        Intents { store: self }
    }
}
