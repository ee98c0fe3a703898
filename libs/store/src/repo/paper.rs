//! The recorder's paper record (DOMAIN.md §6). The paper engine (`jt_domain::paper`) computes
//! the positions and trades; the store saves them whole and idempotently (by id).
//!
//! A signal's effect goes through two calls: [`Paper::start`] reads where the symbol's record
//! stands (the engine's position to continue from, whether this signal was applied already, the
//! instant to apply it at), and [`Paper::apply`] writes what the engine made of it — the trades
//! it closed and the position rows — mapping the engine's types to rows here, once.

use chrono::{DateTime, SubsecRound, Utc};
use jt_domain::paper::{self as engine};
use jt_domain::{Direction, Price};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::{ReadScope, at, from_json, now, required_text, to_json, to_u32};
use crate::Store;
use crate::decimal::DbDecimal;
use crate::entity::{ExitReason, PaperStatus, paper_positions, paper_trades};
use crate::error::{StoreError, StoreResult};
use crate::ids::{PaperPositionId, PaperTradeId, RecorderId, SignalId, UserId};

/// Where a recorder's paper record of one symbol stands before a signal is applied
/// ([`Paper::start`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PaperStart {
    /// The symbol's latest position: the open one, or the last closed.
    latest: Option<PaperPosition>,
    /// The latest row's version (`updated_at`) as read: [`Paper::apply`] writes only over it.
    version: Option<DateTime<Utc>>,
}

impl PaperStart {
    /// Whether `signal` was applied already (a redelivery finds itself here: the fan-out
    /// handles a recorder's signals one at a time and in order).
    #[must_use]
    pub fn applied(&self, signal: SignalId) -> bool {
        self.latest
            .as_ref()
            .is_some_and(|l| l.last_signal == Some(signal))
    }

    /// The open position's row, if any.
    #[must_use]
    pub fn open(&self) -> Option<&PaperPosition> {
        self.latest
            .as_ref()
            .filter(|l| l.status == PaperStatus::Open)
    }

    /// The engine's position to continue from: the open row's engine state. An open row whose
    /// state cannot be read starts afresh (logged): the paper record never blocks trading.
    #[must_use]
    pub fn engine(&self) -> Option<engine::PaperPosition> {
        let open = self.open()?;
        match open
            .engine_state
            .clone()
            .map(serde_json::from_value::<engine::PaperPosition>)
        {
            Some(Ok(state)) => Some(state),
            _ => {
                tracing::warn!(
                    position = %open.id,
                    "paper position has no readable engine state; starting afresh"
                );
                None
            }
        }
    }

    /// The instant to apply a signal received at `received_at` at. The store keeps times to
    /// the microsecond, so the engine works at that precision too: the position read back next
    /// time is the one computed now. And a new position must open after the symbol's latest one
    /// (`opened_at` orders them, which is how the next signal finds it): ingest replicas'
    /// clocks may disagree by a little.
    #[must_use]
    pub fn time_for(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        paper_time(received_at, self.latest.as_ref().map(|l| l.opened_at))
    }
}

fn paper_time(received_at: DateTime<Utc>, latest_opened: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let at = received_at.trunc_subsecs(6);
    match latest_opened {
        Some(latest) if at <= latest => latest.trunc_subsecs(6) + chrono::Duration::microseconds(1),
        _ => at,
    }
}

/// What the paper engine made of one signal ([`Paper::apply`]).
#[derive(Debug, Clone, Copy)]
pub struct PaperApplied<'a> {
    /// The owner.
    pub owner: UserId,
    /// The recorder.
    pub recorder: RecorderId,
    /// The signal applied.
    pub signal: SignalId,
    /// Where the record stood ([`Paper::start`]).
    pub start: &'a PaperStart,
    /// The engine's position after the signal (`None`: flat).
    pub position: Option<&'a engine::PaperPosition>,
    /// The trades the signal closed.
    pub closed: &'a [engine::ClosedTrade],
    /// The signal's price on tick (a closed position's exit price).
    pub price: Price,
    /// The instant it was applied at ([`PaperStart::time_for`]).
    pub at: DateTime<Utc>,
}

/// The id of the position a signal opens (stable: a retried signal rewrites the same row).
fn paper_position_id(signal: SignalId) -> PaperPositionId {
    PaperPositionId(jt_ids::derived_id("paper-position", &[&signal.to_string()]))
}

/// The id of the `index`th trade a signal closes.
fn paper_trade_id(signal: SignalId, index: usize) -> PaperTradeId {
    PaperTradeId(jt_ids::derived_id(
        "paper-trade",
        &[&signal.to_string(), &index.to_string()],
    ))
}

fn open_row(
    id: PaperPositionId,
    owner: UserId,
    recorder: RecorderId,
    p: &engine::PaperPosition,
    previous: Option<&PaperPosition>,
    signal: SignalId,
) -> StoreResult<PaperPosition> {
    Ok(PaperPosition {
        id,
        owner,
        recorder,
        symbol: p.root.clone(),
        direction: p.direction,
        quantity: p.qty(),
        average_entry: p.average_entry(),
        entries: p
            .lots
            .iter()
            .map(|l| PaperEntry {
                price: l.entry_price.value(),
                qty: l.qty,
                time: l.opened_at,
            })
            .collect(),
        current_price: previous.and_then(|s| s.current_price),
        unrealized_pnl: p.unrealized.current,
        worst_unrealized_pnl: p.unrealized.worst,
        best_unrealized_pnl: p.unrealized.best,
        realized_pnl: previous.map_or(Decimal::ZERO, |s| s.realized_pnl),
        exit_price: None,
        status: PaperStatus::Open,
        opened_at: p.opened_at,
        closed_at: None,
        last_signal: Some(signal),
        engine_state: Some(to_json("paper engine state", p)?),
    })
}

fn closed_trade_row(
    id: PaperTradeId,
    owner: UserId,
    recorder: RecorderId,
    position: Option<&PaperPosition>,
    t: &engine::ClosedTrade,
) -> PaperTrade {
    PaperTrade {
        id,
        owner,
        recorder,
        position: position.map(|p| p.id),
        signal: None,
        symbol: t.root.clone(),
        direction: t.direction,
        quantity: t.qty,
        entry_price: t.entry_price.value(),
        entry_time: t.opened_at,
        exit_price: Some(t.exit_price.value()),
        exit_time: Some(t.closed_at),
        exit_reason: Some(stored_exit_reason(t.exit_reason)),
        tp_price: None,
        sl_price: None,
        max_favorable_excursion: t.mfe_points,
        max_adverse_excursion: t.mae_points,
        realized_pnl: Some(t.net_pnl),
        realized_ticks: Some(t.ticks),
        commission: t.commission,
        status: PaperStatus::Closed,
    }
}

fn stored_exit_reason(r: engine::ExitReason) -> ExitReason {
    match r {
        engine::ExitReason::TakeProfit => ExitReason::TakeProfit,
        engine::ExitReason::StopLoss => ExitReason::StopLoss,
        engine::ExitReason::Signal => ExitReason::Signal,
        engine::ExitReason::Flip => ExitReason::Flip,
    }
}

/// An open paper position as read for marking it with a price ([`Paper::open_on`]): the row
/// and its version (the row's `updated_at`), which [`Paper::mark`]'s write is conditional on.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenPaper {
    /// The row.
    pub position: PaperPosition,
    /// Its version when read.
    pub version: DateTime<Utc>,
}

impl OpenPaper {
    /// The engine's position to mark (`None` for a row without a readable engine state).
    #[must_use]
    pub fn engine(&self) -> Option<engine::PaperPosition> {
        self.position
            .engine_state
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
    }
}

/// What the paper engine made of one price for one open position ([`Paper::mark`]).
#[derive(Debug, Clone, Copy)]
pub struct PaperMarked<'a> {
    /// The position as read.
    pub open: &'a OpenPaper,
    /// The engine's position after the price (`None`: the price closed it).
    pub position: Option<&'a engine::PaperPosition>,
    /// The trades the price closed (take-profits, the stop).
    pub closed: &'a [engine::ClosedTrade],
    /// The unrealized P&L at the price, with its extremes (for a position the price closed:
    /// the last one, computed before the close).
    pub unrealized: engine::UnrealizedPnl,
    /// The price, on tick.
    pub price: Price,
    /// The quote's instant (a closed position's exit time).
    pub at: DateTime<Utc>,
}

/// The id of the `index`th trade a price closed on a position in the version it was read at
/// (stable: two replicas marking the same state derive the same ids, and only one write wins).
fn marked_trade_id(
    position: PaperPositionId,
    version: DateTime<Utc>,
    index: usize,
) -> PaperTradeId {
    PaperTradeId(jt_ids::derived_id(
        "paper-trade-price",
        &[
            &position.to_string(),
            &version.timestamp_micros().to_string(),
            &index.to_string(),
        ],
    ))
}

/// One fill that built a paper position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperEntry {
    /// Fill price.
    pub price: Decimal,
    /// Contracts.
    pub qty: u32,
    /// Time.
    pub time: DateTime<Utc>,
}

/// A recorder's aggregated paper position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaperPosition {
    /// Id.
    pub id: PaperPositionId,
    /// Owner.
    pub owner: UserId,
    /// Recorder.
    pub recorder: RecorderId,
    /// Symbol.
    pub symbol: String,
    /// Direction.
    pub direction: Direction,
    /// Contracts open.
    pub quantity: u32,
    /// Weighted average entry (exact, not on tick: 2 @ 21400 + 1 @ 21500 = 21433.33…).
    pub average_entry: Decimal,
    /// The fills that built it.
    pub entries: Vec<PaperEntry>,
    /// Last market price seen.
    pub current_price: Option<Decimal>,
    /// Current unrealized P&L in dollars.
    pub unrealized_pnl: Decimal,
    /// Worst unrealized P&L seen.
    pub worst_unrealized_pnl: Decimal,
    /// Best unrealized P&L seen.
    pub best_unrealized_pnl: Decimal,
    /// Realized P&L in dollars.
    pub realized_pnl: Decimal,
    /// Exit price once closed.
    pub exit_price: Option<Decimal>,
    /// Open or closed.
    pub status: PaperStatus,
    /// Opened.
    pub opened_at: DateTime<Utc>,
    /// Closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// The last signal applied to it: a redelivered signal finds itself here and is not
    /// applied twice ([`Paper::latest_position`]).
    pub last_signal: Option<SignalId>,
    /// The paper engine's whole position (`jt_domain::paper::PaperPosition` as JSON: lots with
    /// their excursions, targets, stop), so the engine resumes exactly; the columns above are
    /// its summary for reading.
    pub engine_state: Option<serde_json::Value>,
}

/// A recorder's paper trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaperTrade {
    /// Id.
    pub id: PaperTradeId,
    /// Owner.
    pub owner: UserId,
    /// Recorder.
    pub recorder: RecorderId,
    /// The position it belongs to.
    pub position: Option<PaperPositionId>,
    /// The signal that opened it.
    pub signal: Option<SignalId>,
    /// Symbol.
    pub symbol: String,
    /// Direction.
    pub direction: Direction,
    /// Contracts.
    pub quantity: u32,
    /// Entry price.
    pub entry_price: Decimal,
    /// Entry time.
    pub entry_time: DateTime<Utc>,
    /// Exit price.
    pub exit_price: Option<Decimal>,
    /// Exit time.
    pub exit_time: Option<DateTime<Utc>>,
    /// Why it closed.
    pub exit_reason: Option<ExitReason>,
    /// Take-profit price.
    pub tp_price: Option<Decimal>,
    /// Stop price.
    pub sl_price: Option<Decimal>,
    /// Maximum favourable excursion, in points.
    pub max_favorable_excursion: Decimal,
    /// Maximum adverse excursion, in points.
    pub max_adverse_excursion: Decimal,
    /// Realized P&L in dollars.
    pub realized_pnl: Option<Decimal>,
    /// Realized P&L in ticks.
    pub realized_ticks: Option<Decimal>,
    /// Commission in dollars.
    pub commission: Decimal,
    /// Open or closed.
    pub status: PaperStatus,
}

fn position_row(p: &PaperPosition) -> StoreResult<paper_positions::Model> {
    Ok(paper_positions::Model {
        id: p.id.0,
        user_id: p.owner.0,
        recorder_id: p.recorder.0,
        symbol: required_text("symbol", &p.symbol)?,
        direction: p.direction.into(),
        quantity: i64::from(p.quantity),
        average_entry: DbDecimal(p.average_entry),
        entries: to_json("entries", &p.entries)?,
        current_price: p.current_price.map(DbDecimal),
        unrealized_pnl: DbDecimal(p.unrealized_pnl),
        worst_unrealized_pnl: DbDecimal(p.worst_unrealized_pnl),
        best_unrealized_pnl: DbDecimal(p.best_unrealized_pnl),
        realized_pnl: DbDecimal(p.realized_pnl),
        exit_price: p.exit_price.map(DbDecimal),
        status: p.status,
        opened_at: at(p.opened_at),
        closed_at: p.closed_at.map(at),
        updated_at: now(),
        last_signal_id: p.last_signal.map(|s| s.0),
        engine_state: p.engine_state.clone(),
    })
}

impl TryFrom<paper_positions::Model> for PaperPosition {
    type Error = StoreError;
    fn try_from(m: paper_positions::Model) -> StoreResult<Self> {
        Ok(Self {
            entries: from_json("paper position", m.id, m.entries)?,
            quantity: to_u32("paper position", m.id, m.quantity)?,
            id: PaperPositionId(m.id),
            owner: UserId(m.user_id),
            recorder: RecorderId(m.recorder_id),
            symbol: m.symbol,
            direction: m.direction.into(),
            average_entry: m.average_entry.0,
            current_price: m.current_price.map(|d| d.0),
            unrealized_pnl: m.unrealized_pnl.0,
            worst_unrealized_pnl: m.worst_unrealized_pnl.0,
            best_unrealized_pnl: m.best_unrealized_pnl.0,
            realized_pnl: m.realized_pnl.0,
            exit_price: m.exit_price.map(|d| d.0),
            status: m.status,
            opened_at: m.opened_at,
            closed_at: m.closed_at,
            last_signal: m.last_signal_id.map(SignalId),
            engine_state: m.engine_state,
        })
    }
}

fn trade_row(t: &PaperTrade) -> StoreResult<paper_trades::Model> {
    let stamp = now();
    Ok(paper_trades::Model {
        id: t.id.0,
        user_id: t.owner.0,
        recorder_id: t.recorder.0,
        paper_position_id: t.position.map(|p| p.0),
        signal_id: t.signal.map(|s| s.0),
        symbol: required_text("symbol", &t.symbol)?,
        direction: t.direction.into(),
        quantity: i64::from(t.quantity),
        entry_price: DbDecimal(t.entry_price),
        entry_time: at(t.entry_time),
        exit_price: t.exit_price.map(DbDecimal),
        exit_time: t.exit_time.map(at),
        exit_reason: t.exit_reason,
        tp_price: t.tp_price.map(DbDecimal),
        sl_price: t.sl_price.map(DbDecimal),
        max_favorable_excursion: DbDecimal(t.max_favorable_excursion),
        max_adverse_excursion: DbDecimal(t.max_adverse_excursion),
        realized_pnl: t.realized_pnl.map(DbDecimal),
        realized_ticks: t.realized_ticks.map(DbDecimal),
        commission: DbDecimal(t.commission),
        status: t.status,
        created_at: stamp,
        updated_at: stamp,
    })
}

impl TryFrom<paper_trades::Model> for PaperTrade {
    type Error = StoreError;
    fn try_from(m: paper_trades::Model) -> StoreResult<Self> {
        Ok(Self {
            quantity: to_u32("paper trade", m.id, m.quantity)?,
            id: PaperTradeId(m.id),
            owner: UserId(m.user_id),
            recorder: RecorderId(m.recorder_id),
            position: m.paper_position_id.map(PaperPositionId),
            signal: m.signal_id.map(SignalId),
            symbol: m.symbol,
            direction: m.direction.into(),
            entry_price: m.entry_price.0,
            entry_time: m.entry_time,
            exit_price: m.exit_price.map(|d| d.0),
            exit_time: m.exit_time,
            exit_reason: m.exit_reason,
            tp_price: m.tp_price.map(|d| d.0),
            sl_price: m.sl_price.map(|d| d.0),
            max_favorable_excursion: m.max_favorable_excursion.0,
            max_adverse_excursion: m.max_adverse_excursion.0,
            realized_pnl: m.realized_pnl.map(|d| d.0),
            realized_ticks: m.realized_ticks.map(|d| d.0),
            commission: m.commission.0,
            status: m.status,
        })
    }
}

/// The owner guard of an upsert by id: the stored row must have the writer's owner.
fn same_owner(table: impl sea_orm::sea_query::IntoIden) -> Expr {
    Expr::col((table, Alias::new("user_id")))
        .eq(Expr::col((Alias::new("excluded"), Alias::new("user_id"))))
}

/// Paper positions and trades.
#[derive(Debug, Clone, Copy)]
pub struct Paper<'a> {
    pub(crate) store: &'a Store,
}

impl Paper<'_> {
    /// Where the recorder's record of `symbol` (an instrument root) stands: one read, however
    /// long the history ([`Paper::latest_position`]).
    ///
    /// # Errors
    /// Database errors.
    pub async fn start(
        &self,
        owner: UserId,
        recorder: RecorderId,
        symbol: &str,
    ) -> StoreResult<PaperStart> {
        let latest = self.latest_row(owner, recorder, symbol).await?;
        let version = latest.as_ref().map(|m| m.updated_at);
        Ok(PaperStart {
            latest: latest.map(PaperPosition::try_from).transpose()?,
            version,
        })
    }

    /// Writes what the paper engine made of one signal: the trades it closed first (ids derived
    /// from the signal: a retry rewrites the same rows), then the positions in one write — the
    /// old one closed when the signal ended or flipped it, the new or continued one open — whose
    /// `last_signal` marks the signal as applied.
    ///
    /// In one transaction, and **only if the open position is still the version `start` read**:
    /// `false` when a price mark (the positions service: a stop or take-profit hit, a new
    /// unrealized figure) changed it meanwhile — nothing is written, and the caller reads the
    /// record again and applies the signal to what it has become. A mark racing the other way
    /// loses in turn ([`Paper::mark`]), so neither overwrites the other.
    ///
    /// # Errors
    /// As [`Paper::save_trade`] and [`Paper::save_positions`].
    pub async fn apply(&self, applied: PaperApplied<'_>) -> StoreResult<bool> {
        let PaperApplied {
            owner,
            recorder,
            signal,
            start,
            position,
            closed,
            price,
            at,
        } = applied;
        let stored = start.open();
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        // The new version: after the one read, even within its microsecond or behind a skewed
        // clock, so a mark conditional on the old one can never pass afterwards.
        let floor = start.version.map(|v| v + chrono::Duration::microseconds(1));
        if let (Some(open), Some(version), Some(floor)) = (stored, start.version, floor) {
            let claimed = paper_positions::Entity::update_many()
                .col_expr(
                    paper_positions::Column::UpdatedAt,
                    Expr::value(std::cmp::max(now(), floor)),
                )
                .filter(paper_positions::Column::Id.eq(open.id.0))
                .filter(paper_positions::Column::UserId.eq(owner.0))
                .filter(paper_positions::Column::UpdatedAt.eq(version))
                .exec(&txn)
                .await
                .map_err(|e| StoreError::db("paper position", e))?
                .rows_affected;
            if claimed == 0 {
                txn.rollback().await.map_err(StoreError::from)?;
                return Ok(false);
            }
        }
        for (i, trade) in closed.iter().enumerate() {
            save_trade_on(
                &txn,
                owner,
                &closed_trade_row(paper_trade_id(signal, i), owner, recorder, stored, trade),
            )
            .await?;
        }
        // Compared at the store's precision: rows written before the engine worked in whole
        // microseconds carry nanoseconds in their engine state only.
        let continues = position.zip(stored).is_some_and(|(p, s)| {
            p.direction == s.direction
                && p.opened_at.trunc_subsecs(6) == s.opened_at.trunc_subsecs(6)
        });
        let mut rows = Vec::with_capacity(2);
        if let Some(old) = stored
            && !continues
        {
            let mut closed_row = old.clone();
            closed_row.status = PaperStatus::Closed;
            closed_row.quantity = 0;
            closed_row.exit_price = Some(price.value());
            closed_row.closed_at = Some(at);
            closed_row.realized_pnl =
                old.realized_pnl + closed.iter().map(|t| t.net_pnl).sum::<Decimal>();
            closed_row.last_signal = Some(signal);
            rows.push(closed_row);
        }
        if let Some(p) = position {
            let id = match stored {
                Some(s) if continues => s.id,
                _ => paper_position_id(signal),
            };
            rows.push(open_row(
                id,
                owner,
                recorder,
                p,
                stored.filter(|_| continues),
                signal,
            )?);
        }
        save_positions_on(&txn, owner, &rows.iter().collect::<Vec<_>>(), floor).await?;
        txn.commit().await.map_err(StoreError::from)?;
        Ok(true)
    }

    /// Saves a position whole (insert or replace by id). At most one open position per
    /// recorder and symbol exists (a unique partial index).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a recorder that is not the owner's;
    /// [`StoreError::Conflict`] for a second open position on the same symbol.
    pub async fn save_position(&self, owner: UserId, p: &PaperPosition) -> StoreResult<()> {
        self.save_positions(owner, &[p]).await
    }

    /// Saves positions whole, in order, in one statement: closing a position and opening its
    /// successor (a flip) is one write, so no crash can leave the closed one marked with the
    /// signal (see [`Paper::latest_position`]) and its successor missing. Rows are written in
    /// the order given: the close before the open that the unique index would otherwise
    /// refuse.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a recorder, or a stored row, that is not the owner's (the
    /// other rows are written); [`StoreError::Conflict`] for a second open position on the
    /// same symbol (nothing is written); [`StoreError::Invalid`] for one position given twice
    /// (nothing is written: one statement cannot write a row twice).
    pub async fn save_positions(
        &self,
        owner: UserId,
        positions: &[&PaperPosition],
    ) -> StoreResult<()> {
        save_positions_on(self.store.db(), owner, positions, None).await
    }

    /// Saves a trade whole (insert or replace by id).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a recorder that is not the owner's.
    pub async fn save_trade(&self, owner: UserId, t: &PaperTrade) -> StoreResult<()> {
        save_trade_on(self.store.db(), owner, t).await
    }

    /// Every open paper position on `symbol` (an instrument root), across owners, with its
    /// version: what the positions service marks with the symbol's quotes.
    ///
    /// # Errors
    /// Database errors.
    pub async fn open_on(&self, symbol: &str) -> StoreResult<Vec<OpenPaper>> {
        paper_positions::Entity::find()
            .filter(paper_positions::Column::Symbol.eq(symbol))
            .filter(paper_positions::Column::Status.eq(PaperStatus::Open))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper position", e))?
            .into_iter()
            .map(|m| {
                let version = m.updated_at;
                PaperPosition::try_from(m).map(|position| OpenPaper { position, version })
            })
            .collect()
    }

    /// Writes what a price did to an open position — its current price, unrealized P&L and
    /// extremes, engine state (lots' excursions, targets, stop) and, when the price filled the
    /// stop or take-profits, the closed trades and the position closed or reduced — in one
    /// transaction, **only if the row is still the version read** and open. `false` when it
    /// changed meanwhile (another replica marked it, a signal moved it): nothing is written and
    /// the next quote marks the new state. Safe with any number of replicas.
    ///
    /// # Errors
    /// Database errors.
    pub async fn mark(&self, m: PaperMarked<'_>) -> StoreResult<bool> {
        let before = &m.open.position;
        let realized = before.realized_pnl + m.closed.iter().map(|t| t.net_pnl).sum::<Decimal>();
        let mut row = before.clone();
        row.current_price = Some(m.price.value());
        row.unrealized_pnl = m.unrealized.current;
        row.worst_unrealized_pnl = m.unrealized.worst;
        row.best_unrealized_pnl = m.unrealized.best;
        row.realized_pnl = realized;
        match m.position {
            Some(p) => {
                row.quantity = p.qty();
                row.average_entry = p.average_entry();
                row.entries = p
                    .lots
                    .iter()
                    .map(|l| PaperEntry {
                        price: l.entry_price.value(),
                        qty: l.qty,
                        time: l.opened_at,
                    })
                    .collect();
                row.engine_state = Some(to_json("paper engine state", p)?);
            }
            None => {
                row.status = PaperStatus::Closed;
                row.quantity = 0;
                // Where it was filled: a take-profit at its level, a stop at the price seen.
                row.exit_price = Some(
                    m.closed
                        .last()
                        .map_or(m.price.value(), |t| t.exit_price.value()),
                );
                row.closed_at = Some(at(m.at));
            }
        }
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        let mut model = position_row(&row)?;
        // A new version, always after the one read (even within the same microsecond), so a
        // write conditional on the old one can never pass again.
        model.updated_at = std::cmp::max(
            model.updated_at,
            m.open.version + chrono::Duration::microseconds(1),
        );
        // Every column written (a model's own active form would set none).
        let written = paper_positions::Entity::update_many()
            .set(model.into_active_model().reset_all())
            .filter(paper_positions::Column::Id.eq(before.id.0))
            .filter(paper_positions::Column::UserId.eq(before.owner.0))
            .filter(paper_positions::Column::Status.eq(PaperStatus::Open))
            .filter(paper_positions::Column::UpdatedAt.eq(m.open.version))
            .exec(&txn)
            .await
            .map_err(|e| StoreError::db("paper position", e))?
            .rows_affected;
        if written == 0 {
            txn.rollback().await.map_err(StoreError::from)?;
            return Ok(false);
        }
        for (i, t) in m.closed.iter().enumerate() {
            let trade = closed_trade_row(
                marked_trade_id(before.id, m.open.version, i),
                before.owner,
                before.recorder,
                Some(before),
                t,
            );
            paper_trades::Entity::insert(trade_row(&trade)?.into_active_model())
                .on_conflict(
                    OnConflict::column(paper_trades::Column::Id)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(|e| StoreError::db("paper trade", e))?;
        }
        txn.commit().await.map_err(StoreError::from)?;
        Ok(true)
    }

    /// The open position of a recorder on a symbol.
    ///
    /// # Errors
    /// Database errors.
    pub async fn open_position(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
        symbol: &str,
    ) -> StoreResult<Option<PaperPosition>> {
        paper_positions::Entity::find()
            .filter(paper_positions::Column::UserId.eq(scope.owner().0))
            .filter(paper_positions::Column::RecorderId.eq(recorder.0))
            .filter(paper_positions::Column::Symbol.eq(symbol))
            .filter(paper_positions::Column::Status.eq(PaperStatus::Open))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper position", e))?
            .map(PaperPosition::try_from)
            .transpose()
    }

    /// The recorder's most recently opened position on a symbol: the open one when there is
    /// one (a position opens only after its predecessor closed, later), else the last closed.
    ///
    /// It carries the last signal that changed this symbol's record (`last_signal`): the
    /// fan-out handles a recorder's signals one at a time and in order, so a redelivered
    /// signal that was applied finds itself here, and one that was not finds an older one.
    /// One index-backed read, however long the recorder's history.
    ///
    /// # Errors
    /// Database errors.
    pub async fn latest_position(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
        symbol: &str,
    ) -> StoreResult<Option<PaperPosition>> {
        self.latest_row(scope, recorder, symbol)
            .await?
            .map(PaperPosition::try_from)
            .transpose()
    }

    async fn latest_row(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
        symbol: &str,
    ) -> StoreResult<Option<paper_positions::Model>> {
        paper_positions::Entity::find()
            .filter(paper_positions::Column::UserId.eq(scope.owner().0))
            .filter(paper_positions::Column::RecorderId.eq(recorder.0))
            .filter(paper_positions::Column::Symbol.eq(symbol))
            .order_by_desc(paper_positions::Column::OpenedAt)
            .limit(1)
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper position", e))
    }

    /// The recorder's positions, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn positions(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
        limit: u64,
    ) -> StoreResult<Vec<PaperPosition>> {
        paper_positions::Entity::find()
            .filter(paper_positions::Column::UserId.eq(scope.owner().0))
            .filter(paper_positions::Column::RecorderId.eq(recorder.0))
            .order_by_desc(paper_positions::Column::OpenedAt)
            .limit(limit)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper position", e))?
            .into_iter()
            .map(PaperPosition::try_from)
            .collect()
    }

    /// The recorder's open trades on a symbol (the paper engine closes them on TP/SL hits).
    ///
    /// # Errors
    /// Database errors.
    pub async fn open_trades(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
        symbol: &str,
    ) -> StoreResult<Vec<PaperTrade>> {
        paper_trades::Entity::find()
            .filter(paper_trades::Column::UserId.eq(scope.owner().0))
            .filter(paper_trades::Column::RecorderId.eq(recorder.0))
            .filter(paper_trades::Column::Symbol.eq(symbol))
            .filter(paper_trades::Column::Status.eq(PaperStatus::Open))
            .order_by_asc(paper_trades::Column::EntryTime)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper trade", e))?
            .into_iter()
            .map(PaperTrade::try_from)
            .collect()
    }

    /// The recorder's trades, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn trades(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
        limit: u64,
    ) -> StoreResult<Vec<PaperTrade>> {
        paper_trades::Entity::find()
            .filter(paper_trades::Column::UserId.eq(scope.owner().0))
            .filter(paper_trades::Column::RecorderId.eq(recorder.0))
            .order_by_desc(paper_trades::Column::EntryTime)
            .limit(limit)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper trade", e))?
            .into_iter()
            .map(PaperTrade::try_from)
            .collect()
    }
}

impl Store {
    /// The recorders' paper record.
    #[must_use]
    pub fn paper(&self) -> Paper<'_> {
        Paper { store: self }
    }
}

/// [`Paper::save_positions`] on `db` (the pool or a transaction); every row's `updated_at` at
/// least `floor`.
async fn save_positions_on(
    db: &impl sea_orm::ConnectionTrait,
    owner: UserId,
    positions: &[&PaperPosition],
    floor: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    let Some(first) = positions.first() else {
        return Ok(());
    };
    if let Some(p) = positions.iter().find(|p| p.owner != owner) {
        return Err(StoreError::not_found("paper position", p.id));
    }
    if let Some((i, p)) = positions
        .iter()
        .enumerate()
        .find(|(i, p)| positions[..*i].iter().any(|q| q.id == p.id))
    {
        return Err(StoreError::invalid(
            "positions",
            format!("position {} is given twice (at {i})", p.id),
        ));
    }
    use paper_positions::Column as C;
    let mut oc = OnConflict::column(C::Id);
    oc.update_columns([
        C::Symbol,
        C::Direction,
        C::Quantity,
        C::AverageEntry,
        C::Entries,
        C::CurrentPrice,
        C::UnrealizedPnl,
        C::WorstUnrealizedPnl,
        C::BestUnrealizedPnl,
        C::RealizedPnl,
        C::ExitPrice,
        C::Status,
        C::ClosedAt,
        C::UpdatedAt,
        C::LastSignalId,
        C::EngineState,
    ])
    .action_and_where(same_owner(paper_positions::Entity));
    let rows = positions
        .iter()
        .map(|p| {
            position_row(p).map(|mut m| {
                if let Some(floor) = floor {
                    m.updated_at = std::cmp::max(m.updated_at, floor);
                }
                m.into_active_model()
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let n = paper_positions::Entity::insert_many(rows)
        .on_conflict(oc)
        .exec_without_returning(db)
        .await
        .map_err(|e| StoreError::db("paper position", e))?;
    if n < positions.len() as u64 {
        return Err(StoreError::not_found("paper position", first.id));
    }
    Ok(())
}

/// [`Paper::save_trade`] on `db` (the pool or a transaction).
async fn save_trade_on(
    db: &impl sea_orm::ConnectionTrait,
    owner: UserId,
    t: &PaperTrade,
) -> StoreResult<()> {
    if t.owner != owner {
        return Err(StoreError::not_found("paper trade", t.id));
    }
    use paper_trades::Column as C;
    let mut oc = OnConflict::column(C::Id);
    oc.update_columns([
        C::PaperPositionId,
        C::Quantity,
        C::ExitPrice,
        C::ExitTime,
        C::ExitReason,
        C::TpPrice,
        C::SlPrice,
        C::MaxFavorableExcursion,
        C::MaxAdverseExcursion,
        C::RealizedPnl,
        C::RealizedTicks,
        C::Commission,
        C::Status,
        C::UpdatedAt,
    ])
    .action_and_where(same_owner(paper_trades::Entity));
    let n = paper_trades::Entity::insert(trade_row(t)?.into_active_model())
        .on_conflict(oc)
        .exec_without_returning(db)
        .await
        .map_err(|e| StoreError::db("paper trade", e))?;
    if n == 0 {
        return Err(StoreError::not_found("paper trade", t.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(micros: i64, nanos_extra: i64) -> DateTime<Utc> {
        Utc.timestamp_micros(1_795_000_000_000_000 + micros)
            .unwrap()
            + chrono::Duration::nanoseconds(nanos_extra)
    }

    #[test]
    fn paper_times_are_whole_microseconds_and_after_the_latest_position() {
        // Nanoseconds dropped: what the store keeps.
        assert_eq!(paper_time(t(10, 688), None), t(10, 0));
        assert_eq!(paper_time(t(10, 688), Some(t(5, 0))), t(10, 0));
        // A replica whose clock is behind: just after the latest position, never before it.
        assert_eq!(paper_time(t(10, 0), Some(t(10, 0))), t(11, 0));
        assert_eq!(paper_time(t(3, 999), Some(t(10, 0))), t(11, 0));
    }
}
