//! History: signals with each trader's decision (executed, skipped with the rule and reason,
//! failed with the broker's reason) and a timeline per intent (received, queued, sent, broker
//! answered, done) so a user sees where the milliseconds went; a sub-account's executions and
//! its live trade records (built from the broker's fills); a recorder's paper record and P&L.

use axum::extract::State;
use chrono::{DateTime, Utc};
use jt_store::repo::intents::{Execution, Intent};
use jt_store::repo::paper::{PaperPosition, PaperTrade};
use jt_store::repo::signals::{Signal, SignalQuery};
use jt_store::repo::trades::TradeRecord;
use jt_store::{
    IntentId, IntentStatus, PaperStatus, RecorderId, SignalId, SignalOutcome, SubAccountId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Json, Path, Query};
use crate::routes::paging;
use crate::routes::views::{Page, dec, word};
use crate::state::ApiState;

/// One step of an intent's life.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelineStep {
    /// `received` (the alert or request reached the platform), `queued` (the intent was
    /// recorded and queued for its account), `attempt_started` / `attempt_finished` (a broker
    /// call sequence, with its outcome), `sent`, `completed` (a final state).
    pub stage: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Milliseconds since `received`.
    pub ms_since_received: i64,
    /// What happened at this step (an attempt's outcome, the final status).
    pub detail: Option<String>,
}

/// One execution attempt at the broker.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecutionView {
    /// Attempt number (1, 2, …).
    pub attempt: u32,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Duration in ms.
    pub latency_ms: Option<i64>,
    /// Outcome.
    pub outcome: String,
    /// Orders the broker created.
    pub broker_order_ids: Vec<String>,
    /// Fill price.
    pub fill_price: Option<String>,
    /// Filled contracts.
    pub filled_quantity: Option<u32>,
    /// Error class.
    pub error_kind: Option<String>,
    /// The broker's reason for a failure.
    pub failure_reason: Option<String>,
}

impl From<Execution> for ExecutionView {
    fn from(e: Execution) -> Self {
        Self {
            attempt: e.attempt,
            started_at: e.started_at,
            finished_at: e.finished_at,
            latency_ms: e.latency_ms,
            outcome: word(&e.outcome),
            broker_order_ids: e.broker_order_ids,
            fill_price: e.fill_price.map(dec),
            filled_quantity: e.filled_quantity,
            error_kind: e.error_kind,
            failure_reason: e.failure_reason,
        }
    }
}

/// What one trader (or one manual or control request) did about a signal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    /// The intent.
    pub intent_id: Uuid,
    /// The trader (signal intents).
    pub trader_id: Option<Uuid>,
    /// The sub-account.
    pub sub_account_id: Uuid,
    /// The signal that caused it, if any.
    pub signal_id: Option<Uuid>,
    /// `signal`, `manual`, `control`, `copy`, `reconcile`.
    pub source: String,
    /// `executed` (at the broker: filled or working), `skipped` (a rule said no: `reason`
    /// names it), `failed` or `rejected` (the broker's or the platform's reason), `pending`
    /// (not finished yet), `unknown` (an ambiguous broker answer being reconciled),
    /// `cancelled`.
    pub decision: String,
    /// The intent's state.
    pub status: String,
    /// Why (the rule and its words for a skip, the broker's reason for a failure).
    pub reason: Option<String>,
    /// `entry`, `add`, `close`, `flip`, `flatten`, …
    pub kind: String,
    /// Symbol.
    pub symbol: String,
    /// The broker's contract.
    pub contract: Option<String>,
    /// `buy` or `sell`.
    pub side: Option<String>,
    /// Contracts.
    pub quantity: u32,
    /// Contracts filled so far.
    pub filled_quantity: u32,
    /// Average fill price.
    pub average_fill_price: Option<String>,
    /// The intent's steps in time.
    pub timeline: Vec<TimelineStep>,
    /// Its broker attempts.
    pub executions: Vec<ExecutionView>,
}

fn decision_word(s: IntentStatus) -> &'static str {
    match s {
        IntentStatus::Filled | IntentStatus::Accepted => "executed",
        IntentStatus::Skipped => "skipped",
        IntentStatus::Failed => "failed",
        IntentStatus::Rejected => "rejected",
        IntentStatus::Cancelled => "cancelled",
        IntentStatus::Unknown => "unknown",
        IntentStatus::Pending | IntentStatus::Sent => "pending",
    }
}

fn timeline(received: DateTime<Utc>, i: &Intent, execs: &[Execution]) -> Vec<TimelineStep> {
    let step = |stage: &str, at: DateTime<Utc>, detail: Option<String>| TimelineStep {
        stage: stage.to_string(),
        at,
        ms_since_received: (at - received).num_milliseconds(),
        detail,
    };
    let mut out = vec![
        step("received", received, None),
        step(
            "queued",
            i.created_at,
            Some(format!("{} {}", word(&i.source), word(&i.kind))),
        ),
    ];
    if let Some(t) = i.sent_at {
        out.push(step("sent", t, None));
    }
    for e in execs {
        out.push(step(
            "attempt_started",
            e.started_at,
            Some(format!("attempt {}", e.attempt)),
        ));
        if let Some(t) = e.finished_at {
            let detail = match &e.failure_reason {
                Some(r) => format!("{}: {r}", word(&e.outcome)),
                None => word(&e.outcome),
            };
            out.push(step("attempt_finished", t, Some(detail)));
        }
    }
    if let Some(t) = i.completed_at {
        out.push(step("completed", t, Some(word(&i.status))));
    }
    out.sort_by_key(|s| s.at);
    out
}

async fn decision(
    state: &ApiState,
    caller: &Caller,
    received: Option<DateTime<Utc>>,
    i: Intent,
) -> ApiResult<DecisionView> {
    let execs = state
        .store
        .intents()
        .executions(caller.owner(), i.id)
        .await?;
    let received = match (received, i.signal) {
        (Some(r), _) => r,
        (None, Some(s)) => match state.store.signals().get(caller.owner(), s).await {
            Ok(sig) => sig.received_at,
            Err(_) => i.created_at,
        },
        (None, None) => i.created_at,
    };
    Ok(DecisionView {
        timeline: timeline(received, &i, &execs),
        executions: execs.into_iter().map(Into::into).collect(),
        intent_id: i.id.0,
        trader_id: i.trader.map(|t| t.0),
        sub_account_id: i.sub_account.0,
        signal_id: i.signal.map(|s| s.0),
        source: word(&i.source),
        decision: decision_word(i.status).to_string(),
        status: word(&i.status),
        reason: i.status_reason,
        kind: word(&i.kind),
        symbol: i.symbol,
        contract: i.contract,
        side: i.side.map(|s| word(&s)),
        quantity: i.quantity,
        filled_quantity: i.filled_quantity,
        average_fill_price: i.average_fill_price.map(dec),
    })
}

/// A signal with what each trader did about it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignalView {
    /// Id.
    pub id: Uuid,
    /// The recorder.
    pub recorder_id: Uuid,
    /// When the webhook received it.
    pub received_at: DateTime<Utc>,
    /// The alert's own time.
    pub alert_time: Option<DateTime<Utc>>,
    /// What it asked for (`long`, `short`, `close`, …).
    pub action: String,
    /// Ticker as sent.
    pub ticker: Option<String>,
    /// Quantity as sent.
    pub quantity: Option<String>,
    /// Price as sent.
    pub price: Option<String>,
    /// Position field as sent.
    pub market_position: Option<String>,
    /// `accepted`, `duplicate`, `stale`, `filtered`, `rejected`.
    pub outcome: String,
    /// Why, for anything but `accepted`.
    pub outcome_reason: Option<String>,
    /// Age when judged, ms.
    pub age_ms: Option<i64>,
    /// The parsed alert.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// One per trader (and control) the signal reached.
    pub decisions: Vec<DecisionView>,
}

async fn signal_view(state: &ApiState, caller: &Caller, s: Signal) -> ApiResult<SignalView> {
    let mut decisions = Vec::new();
    for i in state
        .store
        .intents()
        .for_signal(caller.owner(), s.id)
        .await?
    {
        decisions.push(decision(state, caller, Some(s.received_at), i).await?);
    }
    Ok(SignalView {
        id: s.id.0,
        recorder_id: s.recorder.0,
        received_at: s.received_at,
        alert_time: s.alert_time,
        action: word(&s.action),
        ticker: s.ticker,
        quantity: s.quantity.map(dec),
        price: s.price.map(dec),
        market_position: s.market_position,
        outcome: word(&s.outcome),
        outcome_reason: s.outcome_reason,
        age_ms: s.age_ms,
        payload: s.payload,
        decisions,
    })
}

/// Filters of the signal history.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignalFilter {
    /// Only this recorder's signals.
    pub recorder_id: Option<Uuid>,
    /// Received at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Received before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Only this outcome: accepted, duplicate, stale, filtered, rejected.
    pub outcome: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

/// The caller's signals, newest first, each with every trader's decision and timeline.
#[utoipa::path(
    get,
    path = "/signals",
    tag = "history",
    params(SignalFilter),
    responses(
        (status = 200, description = "A page of signals", body = Page<SignalView>),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn signals(
    State(state): State<ApiState>,
    caller: Caller,
    Query(f): Query<SignalFilter>,
) -> ApiResult<Json<Page<SignalView>>> {
    let limit = paging::limit(f.limit, 50, 100)?;
    let outcome = f
        .outcome
        .as_deref()
        .map(|o| {
            o.parse::<SignalOutcome>()
                .map_err(|e| paging::bad_query("outcome", e))
        })
        .transpose()?;
    let after = f
        .cursor
        .as_deref()
        .map(paging::decode_cursor)
        .transpose()?
        .map(|(t, id)| (t, SignalId(id)));
    let q = SignalQuery {
        recorder: f.recorder_id.map(RecorderId),
        since: f.since,
        until: f.until,
        outcome,
        after,
        limit,
    };
    let page = state.store.signals().page(caller.owner(), &q).await?;
    let next_cursor = (page.len() as u64 == limit)
        .then(|| {
            page.last()
                .map(|s| paging::encode_cursor(s.received_at, s.id.0))
        })
        .flatten();
    let mut items = Vec::with_capacity(page.len());
    for s in page {
        items.push(signal_view(&state, &caller, s).await?);
    }
    Ok(Json(Page { items, next_cursor }))
}

/// One signal with every trader's decision and timeline.
#[utoipa::path(
    get,
    path = "/signals/{signal_id}",
    tag = "history",
    params(("signal_id" = uuid::Uuid, Path, description = "The signal")),
    responses(
        (status = 200, description = "The signal", body = SignalView),
        (status = 404, description = "No such signal", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn signal(
    State(state): State<ApiState>,
    caller: Caller,
    Path(signal_id): Path<SignalId>,
) -> ApiResult<Json<SignalView>> {
    let s = state.store.signals().get(caller.owner(), signal_id).await?;
    Ok(Json(signal_view(&state, &caller, s).await?))
}

/// One intent (of any source) with its timeline and attempts.
#[utoipa::path(
    get,
    path = "/intents/{intent_id}",
    tag = "history",
    params(("intent_id" = uuid::Uuid, Path, description = "The intent")),
    responses(
        (status = 200, description = "The intent", body = DecisionView),
        (status = 404, description = "No such intent", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn intent(
    State(state): State<ApiState>,
    caller: Caller,
    Path(intent_id): Path<IntentId>,
) -> ApiResult<Json<DecisionView>> {
    let i = state.store.intents().get(caller.owner(), intent_id).await?;
    Ok(Json(decision(&state, &caller, None, i).await?))
}

/// How many of the latest intents to show.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitFilter {
    /// 1 to 200 (default 50).
    pub limit: Option<u64>,
}

/// A sub-account's latest intents (every source) with their attempts at the broker.
#[utoipa::path(
    get,
    path = "/sub-accounts/{sub_account_id}/executions",
    tag = "history",
    params(("sub_account_id" = uuid::Uuid, Path, description = "The sub-account"), LimitFilter),
    responses(
        (status = 200, description = "Intents, newest first", body = Vec<DecisionView>),
        (status = 404, description = "No such sub-account", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn executions(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sub_account_id): Path<SubAccountId>,
    Query(f): Query<LimitFilter>,
) -> ApiResult<Json<Vec<DecisionView>>> {
    let limit = paging::limit(f.limit, 50, 200)?;
    state
        .store
        .accounts()
        .sub_account(caller.owner(), sub_account_id)
        .await?;
    let mut out = Vec::new();
    for i in state
        .store
        .intents()
        .for_sub_account(caller.owner(), sub_account_id, limit)
        .await?
    {
        out.push(decision(&state, &caller, None, i).await?);
    }
    Ok(Json(out))
}

/// A live trade record: one life of a position on a sub-account and contract, from the fill
/// that opened it to the fill that closed it, built from the broker's fills.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TradeRecordView {
    /// Id.
    pub id: Uuid,
    /// Broker contract (`MNQZ6`).
    pub contract: String,
    /// `long` or `short`.
    pub direction: String,
    /// `open` or `closed`.
    pub status: String,
    /// Contracts held now (0 once closed).
    pub quantity: u32,
    /// The most contracts held at once.
    pub max_quantity: u32,
    /// Contracts entered in all (the opening fill and every add).
    pub entered_quantity: u32,
    /// Contracts exited in all.
    pub exited_quantity: u32,
    /// Volume-weighted entry price (exact decimal).
    pub average_entry: String,
    /// Volume-weighted exit price; `null` before the first exit.
    pub average_exit: Option<String>,
    /// Realised P&L in dollars, gross of commission: set when the record closed by fills on a
    /// contract of a known instrument; `null` while open and for a `reconciled` close.
    pub realized_pnl: Option<String>,
    /// `take_profit` (a limit order's fill), `stop` (stop, stop-limit, trailing), `market`
    /// (a signal's close or flip, a flatten, by hand), `unknown` (the order is not known),
    /// `reconciled` (the broker showed the contract flat; no exit price); `null` while open.
    pub exit_reason: Option<String>,
    /// The broker order whose fill closed it.
    pub exit_order_id: Option<String>,
    /// The broker's ids of the first and last fills.
    pub first_fill_id: String,
    /// See `first_fill_id`.
    pub last_fill_id: String,
    /// Fills applied.
    pub fills: u32,
    /// The opening fill's time.
    pub opened_at: DateTime<Utc>,
    /// The closing fill's time (or the reconciliation's).
    pub closed_at: Option<DateTime<Utc>>,
}

impl From<TradeRecord> for TradeRecordView {
    fn from(r: TradeRecord) -> Self {
        Self {
            id: r.id.0,
            contract: r.contract,
            direction: word(&r.direction).to_lowercase(),
            status: r.status.as_str().to_owned(),
            quantity: r.quantity,
            max_quantity: r.max_quantity,
            entered_quantity: r.entered_quantity,
            exited_quantity: r.exited_quantity,
            average_entry: dec(r.average_entry),
            average_exit: r.average_exit.map(dec),
            realized_pnl: r.realized_pnl.map(dec),
            exit_reason: r.exit_reason.map(|x| x.as_str().to_owned()),
            exit_order_id: r.exit_order_id,
            first_fill_id: r.first_fill_id,
            last_fill_id: r.last_fill_id,
            fills: r.fills,
            opened_at: r.opened_at,
            closed_at: r.closed_at,
        }
    }
}

/// A sub-account's live trade records (read-only), newest first.
#[utoipa::path(
    get,
    path = "/sub-accounts/{sub_account_id}/trades",
    tag = "history",
    params(("sub_account_id" = uuid::Uuid, Path, description = "The sub-account"), LimitFilter),
    responses(
        (status = 200, description = "Trade records, newest first", body = Vec<TradeRecordView>),
        (status = 404, description = "No such sub-account", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn trades(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sub_account_id): Path<SubAccountId>,
    Query(f): Query<LimitFilter>,
) -> ApiResult<Json<Vec<TradeRecordView>>> {
    let limit = paging::limit(f.limit, 50, 200)?;
    state
        .store
        .accounts()
        .sub_account(caller.owner(), sub_account_id)
        .await?;
    Ok(Json(
        state
            .store
            .trades()
            .for_sub_account(caller.owner(), sub_account_id, limit)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// A paper position.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaperPositionView {
    /// Id.
    pub id: Uuid,
    /// Symbol.
    pub symbol: String,
    /// `long` or `short`.
    pub direction: String,
    /// Contracts.
    pub quantity: u32,
    /// Exact average entry.
    pub average_entry: String,
    /// Last price seen.
    pub current_price: Option<String>,
    /// Open P&L, dollars.
    pub unrealized_pnl: String,
    /// Worst open P&L.
    pub worst_unrealized_pnl: String,
    /// Best open P&L.
    pub best_unrealized_pnl: String,
    /// Realized P&L, dollars.
    pub realized_pnl: String,
    /// `open` or `closed`.
    pub status: String,
    /// Opened.
    pub opened_at: DateTime<Utc>,
    /// Closed.
    pub closed_at: Option<DateTime<Utc>>,
}

impl From<PaperPosition> for PaperPositionView {
    fn from(p: PaperPosition) -> Self {
        Self {
            id: p.id.0,
            symbol: p.symbol,
            direction: word(&p.direction).to_lowercase(),
            quantity: p.quantity,
            average_entry: dec(p.average_entry),
            current_price: p.current_price.map(dec),
            unrealized_pnl: dec(p.unrealized_pnl),
            worst_unrealized_pnl: dec(p.worst_unrealized_pnl),
            best_unrealized_pnl: dec(p.best_unrealized_pnl),
            realized_pnl: dec(p.realized_pnl),
            status: word(&p.status),
            opened_at: p.opened_at,
            closed_at: p.closed_at,
        }
    }
}

/// A paper trade.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaperTradeView {
    /// Id.
    pub id: Uuid,
    /// The signal that opened it.
    pub signal_id: Option<Uuid>,
    /// Symbol.
    pub symbol: String,
    /// `long` or `short`.
    pub direction: String,
    /// Contracts.
    pub quantity: u32,
    /// Entry price.
    pub entry_price: String,
    /// Entry time.
    pub entry_time: DateTime<Utc>,
    /// Exit price.
    pub exit_price: Option<String>,
    /// Exit time.
    pub exit_time: Option<DateTime<Utc>>,
    /// Why it closed.
    pub exit_reason: Option<String>,
    /// Take-profit price.
    pub tp_price: Option<String>,
    /// Stop price.
    pub sl_price: Option<String>,
    /// Maximum favourable excursion.
    pub max_favorable_excursion: String,
    /// Maximum adverse excursion.
    pub max_adverse_excursion: String,
    /// Realized P&L, dollars (after commission).
    pub realized_pnl: Option<String>,
    /// Realized P&L, ticks.
    pub realized_ticks: Option<String>,
    /// Commission.
    pub commission: String,
    /// `open` or `closed`.
    pub status: String,
}

impl From<PaperTrade> for PaperTradeView {
    fn from(t: PaperTrade) -> Self {
        Self {
            id: t.id.0,
            signal_id: t.signal.map(|s| s.0),
            symbol: t.symbol,
            direction: word(&t.direction).to_lowercase(),
            quantity: t.quantity,
            entry_price: dec(t.entry_price),
            entry_time: t.entry_time,
            exit_price: t.exit_price.map(dec),
            exit_time: t.exit_time,
            exit_reason: t.exit_reason.map(|r| word(&r)),
            tp_price: t.tp_price.map(dec),
            sl_price: t.sl_price.map(dec),
            max_favorable_excursion: dec(t.max_favorable_excursion),
            max_adverse_excursion: dec(t.max_adverse_excursion),
            realized_pnl: t.realized_pnl.map(dec),
            realized_ticks: t.realized_ticks.map(dec),
            commission: dec(t.commission),
            status: word(&t.status),
        }
    }
}

/// A recorder's paper record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaperView {
    /// Latest positions, newest first.
    pub positions: Vec<PaperPositionView>,
    /// Latest trades, newest first.
    pub trades: Vec<PaperTradeView>,
    /// Sum of the listed closed trades' realized P&L, dollars.
    pub realized_pnl: String,
    /// Sum of the open positions' unrealized P&L, dollars.
    pub unrealized_pnl: String,
    /// Closed trades listed.
    pub closed_trades: u32,
    /// Of which with a positive P&L.
    pub winning_trades: u32,
}

/// A recorder's paper record: positions, trades and P&L.
#[utoipa::path(
    get,
    path = "/recorders/{recorder_id}/paper",
    tag = "history",
    params(("recorder_id" = uuid::Uuid, Path, description = "The recorder"), LimitFilter),
    responses(
        (status = 200, description = "The paper record", body = PaperView),
        (status = 404, description = "No such recorder", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn paper(
    State(state): State<ApiState>,
    caller: Caller,
    Path(recorder_id): Path<RecorderId>,
    Query(f): Query<LimitFilter>,
) -> ApiResult<Json<PaperView>> {
    let limit = paging::limit(f.limit, 50, 200)?;
    state
        .store
        .recorders()
        .get(caller.owner(), recorder_id)
        .await?;
    let paper = state.store.paper();
    let positions = paper.positions(caller.owner(), recorder_id, limit).await?;
    let trades = paper.trades(caller.owner(), recorder_id, limit).await?;
    let closed: Vec<&PaperTrade> = trades
        .iter()
        .filter(|t| t.status == PaperStatus::Closed)
        .collect();
    let realized: Decimal = closed.iter().filter_map(|t| t.realized_pnl).sum();
    let unrealized: Decimal = positions
        .iter()
        .filter(|p| p.status == PaperStatus::Open)
        .map(|p| p.unrealized_pnl)
        .sum();
    let winning = closed
        .iter()
        .filter(|t| t.realized_pnl.is_some_and(|p| p > Decimal::ZERO))
        .count();
    Ok(Json(PaperView {
        closed_trades: u32::try_from(closed.len()).unwrap_or(u32::MAX),
        winning_trades: u32::try_from(winning).unwrap_or(u32::MAX),
        realized_pnl: dec(realized),
        unrealized_pnl: dec(unrealized),
        positions: positions.into_iter().map(Into::into).collect(),
        trades: trades.into_iter().map(Into::into).collect(),
    }))
}
