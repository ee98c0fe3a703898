//! Live trade records: one row per life of a position on a (sub-account, contract), built from
//! the broker's fills (DOMAIN.md §9 "fill events close trade records hit by TP or SL").
//!
//! [`Trades::apply_fill`] records a fill and applies it to the records **in one transaction**:
//! the fill row is inserted first (once per broker fill id), so a fill is applied to the
//! records exactly when it is recorded as new — a redelivery finds it recorded and changes
//! nothing, and a crash between the two is impossible. Then, on PostgreSQL, a transaction
//! advisory lock on the (sub-account, contract) serialises that contract's fills across
//! replicas (READ COMMITTED: every later statement sees the previous holder's fills and
//! records); SQLite serialises writers anyway. The records read are locked (`FOR UPDATE`), and
//! at most one record per (sub-account, contract) can be open (a partial unique index): a
//! transaction that still loses a race is rolled back whole and retried.
//!
//! A fill older than the latest fill already applied to its contract's records (broker time,
//! ties by broker fill id: [`fill_order`]) **rebuilds** the records it lands among: their
//! stored fills and this one are replayed in the broker's order through [`step`]
//! ([`replay_fills`]), never across a record closed by reconciliation (docs/positions.md
//! "Ordering").
//!
//! The arithmetic is [`step`]: flat → opens; the same direction → adds; the opposite → reduces;
//! reaching 0 → closes, with the closing fill's order type as the exit reason; crossing 0 (a
//! flip) → closes, and opens a new record with the remainder. Entries and exits are exact sums,
//! so a record's averages and P&L do not depend on the order of its own fills.

use chrono::{DateTime, Utc};
use jt_domain::{Direction, Side};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Select, Statement, TransactionTrait,
};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashMap;
use uuid::Uuid;

use super::broker::{Fill, FillRecorded, fill_row};
use super::{ReadScope, at, now, to_u32};
use crate::Store;
use crate::decimal::DbDecimal;
use crate::entity::{
    StoredDirection, TradeExitReason, TradeStatus, broker_orders, fills, trade_records,
};
use crate::error::{StoreError, StoreResult};
use crate::ids::{SubAccountId, TradeRecordId, UserId};

/// Decimal places kept for the averages (exact sums are kept beside them).
const AVERAGE_DP: u32 = 10;

/// Attempts of [`Trades::apply_fill`] when another replica opened the record meanwhile.
const ATTEMPTS: usize = 5;

/// One life of a live position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeRecord {
    /// Id.
    pub id: TradeRecordId,
    /// The owner.
    pub owner: UserId,
    /// The sub-account.
    pub sub_account: SubAccountId,
    /// Broker contract (`MNQZ6`), as the fills name it.
    pub contract: String,
    /// Long or short.
    pub direction: Direction,
    /// Open or closed.
    pub status: TradeStatus,
    /// Contracts held now (0 once closed).
    pub quantity: u32,
    /// The most contracts held at once.
    pub max_quantity: u32,
    /// Contracts entered in all (the opening fill and every add).
    pub entered_quantity: u32,
    /// Contracts exited in all.
    pub exited_quantity: u32,
    /// Σ price × quantity of the entering fills.
    pub entry_value: Decimal,
    /// Σ price × quantity of the exiting fills.
    pub exit_value: Decimal,
    /// Volume-weighted entry price.
    pub average_entry: Decimal,
    /// Volume-weighted exit price (none before the first exit).
    pub average_exit: Option<Decimal>,
    /// Realised P&L in dollars, gross of commission: set when the record closes by fills and
    /// the contract's point value is known.
    pub realized_pnl: Option<Decimal>,
    /// Why it closed.
    pub exit_reason: Option<TradeExitReason>,
    /// The broker order of the closing fill.
    pub exit_order_id: Option<String>,
    /// The broker's id of the earliest fill.
    pub first_fill_id: String,
    /// The broker's id of the latest fill.
    pub last_fill_id: String,
    /// The broker's time of the latest fill.
    pub last_fill_at: DateTime<Utc>,
    /// Fills applied.
    pub fills: u32,
    /// The broker's time of the opening fill.
    pub opened_at: DateTime<Utc>,
    /// The broker's time of the closing fill (or of the reconciliation that closed it).
    pub closed_at: Option<DateTime<Utc>>,
    /// Last written.
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<trade_records::Model> for TradeRecord {
    type Error = StoreError;
    fn try_from(m: trade_records::Model) -> StoreResult<Self> {
        let q = |v: i64| to_u32("trade record", m.id, v);
        Ok(Self {
            quantity: q(m.quantity)?,
            max_quantity: q(m.max_quantity)?,
            entered_quantity: q(m.entered_quantity)?,
            exited_quantity: q(m.exited_quantity)?,
            fills: q(m.fills)?,
            id: TradeRecordId(m.id),
            owner: UserId(m.user_id),
            sub_account: SubAccountId(m.sub_account_id),
            contract: m.contract,
            direction: m.direction.into(),
            status: m.status,
            entry_value: m.entry_value.0,
            exit_value: m.exit_value.0,
            average_entry: m.average_entry.0,
            average_exit: m.average_exit.map(|d| d.0),
            realized_pnl: m.realized_pnl.map(|d| d.0),
            exit_reason: m.exit_reason,
            exit_order_id: m.exit_order_id,
            first_fill_id: m.first_fill_id,
            last_fill_id: m.last_fill_id,
            last_fill_at: m.last_fill_at,
            opened_at: m.opened_at,
            closed_at: m.closed_at,
            updated_at: m.updated_at,
        })
    }
}

fn record_row(r: &TradeRecord) -> trade_records::Model {
    trade_records::Model {
        id: r.id.0,
        user_id: r.owner.0,
        sub_account_id: r.sub_account.0,
        contract: r.contract.clone(),
        direction: StoredDirection::from(r.direction),
        status: r.status,
        quantity: i64::from(r.quantity),
        max_quantity: i64::from(r.max_quantity),
        entered_quantity: i64::from(r.entered_quantity),
        exited_quantity: i64::from(r.exited_quantity),
        entry_value: DbDecimal(r.entry_value),
        exit_value: DbDecimal(r.exit_value),
        average_entry: DbDecimal(r.average_entry),
        average_exit: r.average_exit.map(DbDecimal),
        realized_pnl: r.realized_pnl.map(DbDecimal),
        exit_reason: r.exit_reason,
        exit_order_id: r.exit_order_id.clone(),
        first_fill_id: r.first_fill_id.clone(),
        last_fill_id: r.last_fill_id.clone(),
        last_fill_at: at(r.last_fill_at),
        fills: i64::from(r.fills),
        opened_at: at(r.opened_at),
        closed_at: r.closed_at.map(at),
        updated_at: at(r.updated_at),
    }
}

/// How a fill's closing of a record is described: what its order was, and the contract's
/// dollar value of one point (`None`: no instrument is known for the contract, so no P&L).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillContext {
    /// The exit reason if this fill closes a record (its order's type).
    pub exit_reason: TradeExitReason,
    /// Dollars per point per contract.
    pub point_value: Option<Decimal>,
}

/// What one fill did to the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillApplied {
    /// New, or already recorded (then nothing changed).
    pub recorded: FillRecorded,
    /// The records written, in order: the one it continued, reduced or closed, then the one it
    /// opened (from flat, or a flip's remainder).
    pub records: Vec<TradeRecord>,
    /// The fill is older than the latest fill already applied to this contract's records (see
    /// `docs/positions.md` "Ordering"): the records it lands among were rebuilt, and
    /// `records` are the ones rewritten.
    pub out_of_order: bool,
    /// The fill is older than the last fill of a record closed by reconciliation: recorded,
    /// but no record changed (a rebuild does not reach across a reconciled close).
    pub absorbed: bool,
}

impl FillApplied {
    /// The record this fill closed, if any.
    #[must_use]
    pub fn closed(&self) -> Option<&TradeRecord> {
        self.records
            .iter()
            .find(|r| r.status == TradeStatus::Closed)
    }

    /// The record open after this fill, if any.
    #[must_use]
    pub fn open(&self) -> Option<&TradeRecord> {
        self.records.iter().find(|r| r.status == TradeStatus::Open)
    }
}

fn average(value: Decimal, qty: u32) -> Option<Decimal> {
    (qty > 0).then(|| {
        value
            .checked_div(Decimal::from(qty))
            .unwrap_or(Decimal::ZERO)
            .round_dp(AVERAGE_DP)
            .normalize()
    })
}

fn sign(d: Direction) -> Decimal {
    match d {
        Direction::Long => Decimal::ONE,
        Direction::Short => Decimal::NEGATIVE_ONE,
    }
}

fn direction_of(side: Side) -> Direction {
    match side {
        Side::Buy => Direction::Long,
        Side::Sell => Direction::Short,
    }
}

fn opened(owner: UserId, fill: &Fill, qty: u32, written: DateTime<Utc>) -> TradeRecord {
    let value = fill.price * Decimal::from(qty);
    TradeRecord {
        id: TradeRecordId(Uuid::now_v7()),
        owner,
        sub_account: fill.sub_account,
        contract: fill.contract.clone(),
        direction: direction_of(fill.side),
        status: TradeStatus::Open,
        quantity: qty,
        max_quantity: qty,
        entered_quantity: qty,
        exited_quantity: 0,
        entry_value: value,
        exit_value: Decimal::ZERO,
        average_entry: average(value, qty).unwrap_or(fill.price),
        average_exit: None,
        realized_pnl: None,
        exit_reason: None,
        exit_order_id: None,
        first_fill_id: fill.broker_fill_id.clone(),
        last_fill_id: fill.broker_fill_id.clone(),
        last_fill_at: fill.filled_at,
        fills: 1,
        opened_at: fill.filled_at,
        closed_at: None,
        updated_at: written,
    }
}

/// Applies one fill to the open record of its contract (`None`: flat): the records to write,
/// the continued / reduced / closed one first, then the one opened. Pure: no clock but
/// `written` (the rows' `updated_at`), no store.
#[must_use]
pub fn step(
    owner: UserId,
    open: Option<TradeRecord>,
    fill: &Fill,
    ctx: FillContext,
    written: DateTime<Utc>,
) -> Vec<TradeRecord> {
    if fill.quantity == 0 {
        return open.into_iter().collect();
    }
    let Some(mut r) = open else {
        return vec![opened(owner, fill, fill.quantity, written)];
    };
    r.fills += 1;
    r.updated_at = written;
    // The record's first and last fills by the broker's time, whatever order they came in.
    if fill.filled_at >= r.last_fill_at {
        r.last_fill_at = fill.filled_at;
        r.last_fill_id = fill.broker_fill_id.clone();
    }
    if fill.filled_at < r.opened_at {
        r.opened_at = fill.filled_at;
        r.first_fill_id = fill.broker_fill_id.clone();
    }
    if direction_of(fill.side) == r.direction {
        r.quantity += fill.quantity;
        r.max_quantity = r.max_quantity.max(r.quantity);
        r.entered_quantity += fill.quantity;
        r.entry_value += fill.price * Decimal::from(fill.quantity);
        r.average_entry = average(r.entry_value, r.entered_quantity).unwrap_or(r.average_entry);
        return vec![r];
    }
    let reduced = fill.quantity.min(r.quantity);
    r.quantity -= reduced;
    r.exited_quantity += reduced;
    r.exit_value += fill.price * Decimal::from(reduced);
    r.average_exit = average(r.exit_value, r.exited_quantity);
    if r.quantity > 0 {
        return vec![r];
    }
    r.status = TradeStatus::Closed;
    r.closed_at = Some(fill.filled_at);
    r.exit_reason = Some(ctx.exit_reason);
    r.exit_order_id = Some(fill.broker_order_id.clone());
    // Entered = exited once closed, so the whole record's P&L is the difference of the sums:
    // exact, and the same whatever order its fills came in.
    r.realized_pnl = ctx
        .point_value
        .map(|pv| ((r.exit_value - r.entry_value) * sign(r.direction) * pv).normalize());
    let remainder = fill.quantity - reduced;
    let mut out = vec![r];
    if remainder > 0 {
        out.push(opened(owner, fill, remainder, written));
    }
    out
}

/// The broker's order of two fills: by time, then by the broker's fill id (numerically when
/// both are numbers, as Tradovate's are, else as text).
#[must_use]
pub fn fill_order(a: (DateTime<Utc>, &str), b: (DateTime<Utc>, &str)) -> Ordering {
    a.0.cmp(&b.0)
        .then_with(|| match (a.1.parse::<u64>(), b.1.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.1.cmp(b.1),
        })
}

fn first_key(r: &TradeRecord) -> (DateTime<Utc>, &str) {
    (r.opened_at, r.first_fill_id.as_str())
}

fn last_key(r: &TradeRecord) -> (DateTime<Utc>, &str) {
    (r.last_fill_at, r.last_fill_id.as_str())
}

/// Replays fills (in the order given, from flat) through [`step`]: every record they make, in
/// the order opened, the last one possibly open. Pure.
#[must_use]
pub fn replay_fills(
    owner: UserId,
    fills: &[Fill],
    written: DateTime<Utc>,
    ctx: impl Fn(&Fill) -> FillContext,
) -> Vec<TradeRecord> {
    let mut out: Vec<TradeRecord> = Vec::new();
    for f in fills {
        let open = out
            .last()
            .is_some_and(|r| r.status == TradeStatus::Open)
            .then(|| out.pop())
            .flatten();
        out.extend(step(owner, open, f, ctx(f), written));
    }
    out
}

/// Gives each rebuilt record the id of the old record it continues (the same opening fill) and
/// drops the ones identical to their old version (not written again, `updated_at` kept).
/// Returns the records to write and the old ids to delete first.
fn keep_ids(
    rebuilt: Vec<TradeRecord>,
    old: &[TradeRecord],
) -> (Vec<TradeRecord>, Vec<TradeRecordId>) {
    let mut unchanged = Vec::new();
    let mut write = Vec::new();
    for mut r in rebuilt {
        if let Some(o) = old.iter().find(|o| o.first_fill_id == r.first_fill_id) {
            r.id = o.id;
            let written = r.updated_at;
            r.updated_at = o.updated_at;
            if r == *o {
                unchanged.push(o.id);
                continue;
            }
            r.updated_at = written;
        }
        write.push(r);
    }
    let stale = old
        .iter()
        .map(|o| o.id)
        .filter(|id| !unchanged.contains(id))
        .collect();
    (write, stale)
}

fn fill_of_row(m: fills::Model) -> StoreResult<Fill> {
    Ok(Fill {
        quantity: to_u32("fill", m.id, m.quantity)?,
        sub_account: SubAccountId(m.sub_account_id),
        broker_fill_id: m.broker_fill_id,
        broker_order_id: m.broker_order_id,
        client_order_id: m.client_order_id,
        contract: m.contract,
        side: m.side.into(),
        price: m.price.0,
        filled_at: m.filled_at,
        trading_day: m.trading_day,
    })
}

fn of_contract(owner: UserId, fill: &Fill) -> Select<trade_records::Entity> {
    trade_records::Entity::find()
        .filter(trade_records::Column::UserId.eq(owner.0))
        .filter(trade_records::Column::SubAccountId.eq(fill.sub_account.0))
        .filter(trade_records::Column::Contract.eq(fill.contract.as_str()))
}

/// Live trade records.
#[derive(Debug, Clone, Copy)]
pub struct Trades<'a> {
    pub(crate) store: &'a Store,
}

impl Trades<'_> {
    /// Records `fill` (once per sub-account and broker fill id) and, when it is new, applies it
    /// to the contract's trade record, in one transaction (see the module documentation).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the sub-account is not the owner's; database errors.
    pub async fn apply_fill(
        &self,
        owner: UserId,
        fill: Fill,
        ctx: FillContext,
    ) -> StoreResult<FillApplied> {
        // At the stored precision, so what is returned is what reads back.
        let fill = Fill {
            filled_at: at(fill.filled_at),
            ..fill
        };
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match self.try_apply(owner, &fill, ctx).await {
                // Another replica opened this contract's record meanwhile: everything of this
                // attempt was rolled back; the next one adds to that record.
                Err(e @ StoreError::Conflict { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| StoreError::invalid("trade record", "no attempt was made")))
    }

    async fn try_apply(
        &self,
        owner: UserId,
        fill: &Fill,
        ctx: FillContext,
    ) -> StoreResult<FillApplied> {
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        // The fill first: the transaction writes from its first statement (no read-to-write
        // upgrade on SQLite), and a fill already recorded is a fill already applied.
        let n = fills::Entity::insert(fill_row(owner, fill)?.into_active_model())
            .on_conflict(
                OnConflict::columns([fills::Column::SubAccountId, fills::Column::BrokerFillId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(|e| StoreError::db("fill", e))?;
        if n == 0 {
            txn.rollback().await.map_err(StoreError::from)?;
            return Ok(FillApplied {
                recorded: FillRecorded::AlreadySeen,
                records: Vec::new(),
                out_of_order: false,
                absorbed: false,
            });
        }
        if self.store.db().get_database_backend() == DbBackend::Postgres {
            // One contract's fills are applied one transaction after another (see the module
            // documentation): under READ COMMITTED every statement after this lock sees what
            // the previous holder committed — its fill rows and its records.
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [format!("jt.trades:{}:{}", fill.sub_account.0, fill.contract).into()],
            ))
            .await
            .map_err(|e| StoreError::db("trade record", e))?;
        }
        let applied = self.apply_recorded(&txn, owner, fill, ctx).await?;
        txn.commit().await.map_err(StoreError::from)?;
        Ok(applied)
    }

    /// Applies a fill just recorded in `txn`: to the open record when it is the contract's
    /// latest, else by rebuilding the records it lands among.
    async fn apply_recorded(
        &self,
        txn: &DatabaseTransaction,
        owner: UserId,
        fill: &Fill,
        ctx: FillContext,
    ) -> StoreResult<FillApplied> {
        let open = of_contract(owner, fill)
            .filter(trade_records::Column::Status.eq(TradeStatus::Open))
            .lock_exclusive()
            .one(txn)
            .await
            .map_err(|e| StoreError::db("trade record", e))?
            .map(TradeRecord::try_from)
            .transpose()?;
        let key = (fill.filled_at, fill.broker_fill_id.as_str());
        // Records holding a fill at or after this one's time: the ones it may land among.
        let later: Vec<TradeRecord> = of_contract(owner, fill)
            .filter(trade_records::Column::LastFillAt.gte(fill.filled_at))
            .order_by_asc(trade_records::Column::OpenedAt)
            .order_by_asc(trade_records::Column::Id)
            .lock_exclusive()
            .all(txn)
            .await
            .map_err(|e| StoreError::db("trade record", e))?
            .into_iter()
            .map(TradeRecord::try_from)
            .collect::<StoreResult<_>>()?;
        let out_of_order = later
            .iter()
            .any(|r| fill_order(key, last_key(r)) == Ordering::Less);
        if out_of_order {
            return self.rebuild(txn, owner, fill, ctx, later).await;
        }
        let existing = open.as_ref().map(|r| r.id);
        let records = step(owner, open, fill, ctx, now());
        for r in &records {
            let row = record_row(r);
            if Some(r.id) == existing {
                trade_records::Entity::update_many()
                    .set(row.into_active_model().reset_all())
                    .filter(trade_records::Column::Id.eq(r.id.0))
                    .filter(trade_records::Column::UserId.eq(owner.0))
                    .exec(txn)
                    .await
                    .map_err(|e| StoreError::db("trade record", e))?;
            } else {
                trade_records::Entity::insert(row.into_active_model())
                    .exec_without_returning(txn)
                    .await
                    .map_err(|e| StoreError::db("trade record", e))?;
            }
        }
        Ok(FillApplied {
            recorded: FillRecorded::New,
            records,
            out_of_order: false,
            absorbed: false,
        })
    }

    /// Rebuilds the records of the fill's contract from the first one whose fills it lands
    /// among (or before) up to now, replaying their stored fills and this one in the broker's
    /// order through [`step`] (docs/positions.md "Ordering"). `later` are the contract's
    /// records with a fill at or after this one's time, locked.
    async fn rebuild(
        &self,
        txn: &DatabaseTransaction,
        owner: UserId,
        fill: &Fill,
        ctx: FillContext,
        mut later: Vec<TradeRecord>,
    ) -> StoreResult<FillApplied> {
        let key = (fill.filled_at, fill.broker_fill_id.as_str());
        // A reconciled close is a wall: its closing fills were never seen, so no replay can
        // say what the position was across it. A fill older than its last fill is recorded
        // but changes no record (reconciliation already settled that life).
        let wall = of_contract(owner, fill)
            .filter(trade_records::Column::ExitReason.eq(TradeExitReason::Reconciled))
            .order_by_desc(trade_records::Column::LastFillAt)
            .order_by_desc(trade_records::Column::Id)
            .one(txn)
            .await
            .map_err(|e| StoreError::db("trade record", e))?
            .map(TradeRecord::try_from)
            .transpose()?;
        if let Some(w) = &wall
            && fill_order(key, last_key(w)) != Ordering::Greater
        {
            return Ok(FillApplied {
                recorded: FillRecorded::New,
                records: Vec::new(),
                out_of_order: true,
                absorbed: true,
            });
        }
        let after_wall = |r: &TradeRecord| {
            wall.as_ref()
                .is_none_or(|w| fill_order(first_key(r), last_key(w)) == Ordering::Greater)
        };
        // The records to rebuild: those holding a fill after this one, and every record whose
        // fills reach back to where they start (a record of the window is replayed whole).
        later.retain(|r| after_wall(r) && fill_order(key, last_key(r)) == Ordering::Less);
        loop {
            let start = later
                .iter()
                .map(|r| r.opened_at)
                .min()
                .unwrap_or(fill.filled_at);
            let reaching: Vec<TradeRecord> = of_contract(owner, fill)
                .filter(trade_records::Column::LastFillAt.gte(start))
                .lock_exclusive()
                .all(txn)
                .await
                .map_err(|e| StoreError::db("trade record", e))?
                .into_iter()
                .map(TradeRecord::try_from)
                .collect::<StoreResult<_>>()?;
            let before = later.len();
            for r in reaching {
                if after_wall(&r) && !later.iter().any(|l| l.id == r.id) {
                    later.push(r);
                }
            }
            if later.len() == before {
                break;
            }
        }
        later.sort_by(|a, b| fill_order(first_key(a), first_key(b)));
        let from = later
            .iter()
            .map(first_key)
            .chain([key])
            .min_by(|a, b| fill_order(*a, *b))
            .map_or((fill.filled_at, String::new()), |k| (k.0, k.1.to_owned()));
        let mut replay: Vec<Fill> = fills::Entity::find()
            .filter(fills::Column::UserId.eq(owner.0))
            .filter(fills::Column::SubAccountId.eq(fill.sub_account.0))
            .filter(fills::Column::Contract.eq(fill.contract.as_str()))
            .filter(fills::Column::FilledAt.gte(from.0))
            .all(txn)
            .await
            .map_err(|e| StoreError::db("fill", e))?
            .into_iter()
            .map(fill_of_row)
            .collect::<StoreResult<_>>()?;
        // From the window's first fill on: a fill of the same time but earlier belongs to the
        // record before the window, which is not rebuilt.
        replay.retain(|f| {
            let k = (f.filled_at, f.broker_fill_id.as_str());
            fill_order(k, (from.0, from.1.as_str())) != Ordering::Less
                && wall
                    .as_ref()
                    .is_none_or(|w| fill_order(k, last_key(w)) == Ordering::Greater)
        });
        replay.sort_by(|a, b| {
            fill_order(
                (a.filled_at, a.broker_fill_id.as_str()),
                (b.filled_at, b.broker_fill_id.as_str()),
            )
        });
        // Each closing fill's reason is its stored order's type, as when it was first applied;
        // the fill being applied keeps the caller's.
        let order_ids: Vec<&str> = replay.iter().map(|f| f.broker_order_id.as_str()).collect();
        let reasons: HashMap<String, TradeExitReason> = broker_orders::Entity::find()
            .filter(broker_orders::Column::UserId.eq(owner.0))
            .filter(broker_orders::Column::SubAccountId.eq(fill.sub_account.0))
            .filter(broker_orders::Column::BrokerOrderId.is_in(order_ids))
            .all(txn)
            .await
            .map_err(|e| StoreError::db("broker order", e))?
            .into_iter()
            .map(|o| (o.broker_order_id, TradeExitReason::of_order(o.order_type)))
            .collect();
        let written = now();
        let rebuilt = replay_fills(owner, &replay, written, |f| {
            if f.broker_fill_id == fill.broker_fill_id {
                ctx
            } else {
                FillContext {
                    exit_reason: reasons
                        .get(&f.broker_order_id)
                        .copied()
                        .unwrap_or(TradeExitReason::Unknown),
                    point_value: ctx.point_value,
                }
            }
        });
        let (rebuilt, stale) = keep_ids(rebuilt, &later);
        if !stale.is_empty() {
            trade_records::Entity::delete_many()
                .filter(trade_records::Column::UserId.eq(owner.0))
                .filter(trade_records::Column::Id.is_in(stale.iter().map(|id| id.0)))
                .exec(txn)
                .await
                .map_err(|e| StoreError::db("trade record", e))?;
        }
        for r in &rebuilt {
            trade_records::Entity::insert(record_row(r).into_active_model())
                .exec_without_returning(txn)
                .await
                .map_err(|e| StoreError::db("trade record", e))?;
        }
        Ok(FillApplied {
            recorded: FillRecorded::New,
            records: rebuilt,
            out_of_order: true,
            absorbed: false,
        })
    }

    /// Gives the records closed by a fill of `broker_order_id` whose order was not stored
    /// then (`unknown`) the reason its type gives, now that the order is known. The number of
    /// records changed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn resolve_exit_reason(
        &self,
        owner: UserId,
        sub_account: SubAccountId,
        broker_order_id: &str,
        reason: TradeExitReason,
    ) -> StoreResult<u64> {
        Ok(trade_records::Entity::update_many()
            .col_expr(trade_records::Column::ExitReason, Expr::value(reason))
            .col_expr(trade_records::Column::UpdatedAt, Expr::value(now()))
            .filter(trade_records::Column::UserId.eq(owner.0))
            .filter(trade_records::Column::SubAccountId.eq(sub_account.0))
            .filter(trade_records::Column::ExitOrderId.eq(broker_order_id))
            .filter(trade_records::Column::ExitReason.eq(TradeExitReason::Unknown))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("trade record", e))?
            .rows_affected)
    }

    /// Closes the open records of the sub-account whose contract the broker shows flat (not
    /// in `held`, as named by the store or by the broker) and that no fill moved since
    /// `before` (the broker snapshot's start: a record opened after it is not the snapshot's
    /// to judge). Reason `reconciled`, no exit price and no P&L: the fills that closed it were
    /// never seen. Returns the records closed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn close_flat(
        &self,
        owner: UserId,
        sub_account: SubAccountId,
        held: &[&str],
        before: DateTime<Utc>,
    ) -> StoreResult<Vec<TradeRecord>> {
        let open = trade_records::Entity::find()
            .filter(trade_records::Column::UserId.eq(owner.0))
            .filter(trade_records::Column::SubAccountId.eq(sub_account.0))
            .filter(trade_records::Column::Status.eq(TradeStatus::Open))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("trade record", e))?;
        let mut closed = Vec::new();
        for m in open {
            if held.contains(&m.contract.as_str()) || m.updated_at >= before {
                continue;
            }
            let t = now();
            let written = trade_records::Entity::update_many()
                .col_expr(
                    trade_records::Column::Status,
                    Expr::value(TradeStatus::Closed),
                )
                .col_expr(trade_records::Column::Quantity, Expr::value(0_i64))
                .col_expr(
                    trade_records::Column::ExitReason,
                    Expr::value(TradeExitReason::Reconciled),
                )
                .col_expr(trade_records::Column::ClosedAt, Expr::value(t))
                .col_expr(trade_records::Column::UpdatedAt, Expr::value(t))
                .filter(trade_records::Column::Id.eq(m.id))
                .filter(trade_records::Column::UserId.eq(owner.0))
                .filter(trade_records::Column::Status.eq(TradeStatus::Open))
                // Only the version read: a fill applied meanwhile wins.
                .filter(trade_records::Column::UpdatedAt.eq(m.updated_at))
                .exec(self.store.db())
                .await
                .map_err(|e| StoreError::db("trade record", e))?
                .rows_affected;
            if written == 1 {
                let mut r = TradeRecord::try_from(m)?;
                r.status = TradeStatus::Closed;
                r.quantity = 0;
                r.exit_reason = Some(TradeExitReason::Reconciled);
                r.closed_at = Some(t);
                r.updated_at = t;
                closed.push(r);
            }
        }
        Ok(closed)
    }

    /// A sub-account's records, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn for_sub_account(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
        limit: u64,
    ) -> StoreResult<Vec<TradeRecord>> {
        list(self.store.db(), scope.owner(), sub_account, limit).await
    }
}

async fn list(
    db: &impl ConnectionTrait,
    owner: UserId,
    sub_account: SubAccountId,
    limit: u64,
) -> StoreResult<Vec<TradeRecord>> {
    trade_records::Entity::find()
        .filter(trade_records::Column::UserId.eq(owner.0))
        .filter(trade_records::Column::SubAccountId.eq(sub_account.0))
        .order_by_desc(trade_records::Column::OpenedAt)
        .order_by_desc(trade_records::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(|e| StoreError::db("trade record", e))?
        .into_iter()
        .map(TradeRecord::try_from)
        .collect()
}

impl Store {
    /// Live trade records.
    #[must_use]
    pub fn trades(&self) -> Trades<'_> {
        Trades { store: self }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn fill(id: &str, side: Side, qty: u32, price: Decimal, s: i64) -> Fill {
        Fill {
            sub_account: SubAccountId(Uuid::nil()),
            broker_fill_id: id.into(),
            broker_order_id: format!("o-{id}"),
            client_order_id: None,
            contract: "MNQZ6".into(),
            side,
            quantity: qty,
            price,
            filled_at: t(s),
            trading_day: t(s).date_naive(),
        }
    }

    const MNQ: FillContext = FillContext {
        exit_reason: TradeExitReason::TakeProfit,
        point_value: Some(Decimal::TWO),
    };

    /// Applies fills in turn, returning every version written (the last of each id last).
    fn run(fills: &[Fill], ctx: FillContext) -> Vec<TradeRecord> {
        let owner = UserId(Uuid::nil());
        let mut open: Option<TradeRecord> = None;
        let mut closed = Vec::new();
        for f in fills {
            let out = step(owner, open.take(), f, ctx, t(100));
            for r in out {
                if r.status == TradeStatus::Open {
                    open = Some(r);
                } else {
                    closed.push(r);
                }
            }
        }
        closed.extend(open);
        closed
    }

    #[test]
    fn adds_move_the_average_and_a_full_exit_closes_with_the_exact_pnl() {
        let rs = run(
            &[
                fill("1", Side::Buy, 1, dec!(21000), 0),
                fill("2", Side::Buy, 2, dec!(21003.25), 1),
                fill("3", Side::Sell, 3, dec!(21010), 2),
            ],
            MNQ,
        );
        assert_eq!(rs.len(), 1);
        let r = &rs[0];
        assert_eq!(r.status, TradeStatus::Closed);
        assert_eq!(r.direction, Direction::Long);
        assert_eq!(r.entered_quantity, 3);
        assert_eq!(r.max_quantity, 3);
        assert_eq!(r.entry_value, dec!(63006.50));
        // (21000 + 2 × 21003.25) / 3 = 21002.1666…: rounded for display, the sums stay exact.
        assert_eq!(r.average_entry, dec!(21002.1666666667));
        assert_eq!(r.average_exit, Some(dec!(21010)));
        // (63030 − 63006.50) × $2.
        assert_eq!(r.realized_pnl, Some(dec!(47)));
        assert_eq!(r.exit_reason, Some(TradeExitReason::TakeProfit));
        assert_eq!(r.exit_order_id.as_deref(), Some("o-3"));
        assert_eq!(
            (r.first_fill_id.as_str(), r.last_fill_id.as_str()),
            ("1", "3")
        );
        assert_eq!(r.fills, 3);
        assert_eq!(r.closed_at, Some(t(2)));
    }

    #[test]
    fn partial_exits_keep_the_record_open_until_flat_and_a_short_gains_when_price_falls() {
        let ctx = FillContext {
            exit_reason: TradeExitReason::Stop,
            point_value: Some(dec!(50)),
        };
        let rs = run(
            &[
                fill("1", Side::Sell, 2, dec!(6000), 0),
                fill("2", Side::Buy, 1, dec!(5990.25), 1),
            ],
            ctx,
        );
        let r = &rs[0];
        assert_eq!(r.status, TradeStatus::Open);
        assert_eq!((r.quantity, r.exited_quantity), (1, 1));
        assert_eq!(r.average_exit, Some(dec!(5990.25)));
        assert_eq!(r.realized_pnl, None, "set when the record closes");
        let rs = run(
            &[
                fill("1", Side::Sell, 2, dec!(6000), 0),
                fill("2", Side::Buy, 1, dec!(5990.25), 1),
                fill("3", Side::Buy, 1, dec!(6002), 2),
            ],
            ctx,
        );
        let r = &rs[0];
        assert_eq!(r.status, TradeStatus::Closed);
        assert_eq!(r.average_exit, Some(dec!(5996.125)));
        // Short: (12000 − 11992.25) × $50.
        assert_eq!(r.realized_pnl, Some(dec!(387.5)));
        assert_eq!(r.exit_reason, Some(TradeExitReason::Stop));
    }

    #[test]
    fn a_flip_closes_the_record_and_opens_one_with_the_remainder() {
        let ctx = FillContext {
            exit_reason: TradeExitReason::Market,
            point_value: Some(Decimal::TWO),
        };
        let rs = run(
            &[
                fill("1", Side::Buy, 2, dec!(21000), 0),
                fill("2", Side::Sell, 5, dec!(20990.5), 1),
            ],
            ctx,
        );
        assert_eq!(rs.len(), 2);
        let (old, new) = (&rs[0], &rs[1]);
        assert_eq!(old.status, TradeStatus::Closed);
        assert_eq!(old.exited_quantity, 2);
        assert_eq!(old.realized_pnl, Some(dec!(-38)));
        assert_eq!(old.exit_reason, Some(TradeExitReason::Market));
        assert_eq!(new.status, TradeStatus::Open);
        assert_eq!(new.direction, Direction::Short);
        assert_eq!((new.quantity, new.entered_quantity), (3, 3));
        assert_eq!(new.average_entry, dec!(20990.5));
        assert_eq!(new.first_fill_id, "2");
        assert_ne!(old.id, new.id);
    }

    #[test]
    fn without_a_point_value_a_closed_record_has_no_pnl_and_the_fills_order_inside_a_record_does_not_matter()
     {
        let ctx = FillContext {
            exit_reason: TradeExitReason::Market,
            point_value: None,
        };
        let rs = run(
            &[
                fill("1", Side::Buy, 1, dec!(10), 0),
                fill("2", Side::Sell, 1, dec!(11), 1),
            ],
            ctx,
        );
        assert_eq!(rs[0].realized_pnl, None);
        assert_eq!(rs[0].average_exit, Some(dec!(11)));
        // An add delivered after a later partial exit: same sums, same result.
        let a = run(
            &[
                fill("1", Side::Buy, 2, dec!(100), 0),
                fill("2", Side::Buy, 1, dec!(103), 1),
                fill("3", Side::Sell, 1, dec!(110), 2),
                fill("4", Side::Sell, 2, dec!(104), 3),
            ],
            MNQ,
        );
        let b = run(
            &[
                fill("1", Side::Buy, 2, dec!(100), 0),
                fill("3", Side::Sell, 1, dec!(110), 2),
                fill("2", Side::Buy, 1, dec!(103), 1),
                fill("4", Side::Sell, 2, dec!(104), 3),
            ],
            MNQ,
        );
        assert_eq!(a[0].realized_pnl, Some(dec!(30)));
        assert_eq!(a[0].realized_pnl, b[0].realized_pnl);
        assert_eq!(a[0].average_entry, b[0].average_entry);
        assert_eq!(b[0].last_fill_id, "4");
        assert_eq!(b[0].max_quantity, 2, "the most held in the order applied");
    }
    #[test]
    fn the_broker_order_is_by_time_then_by_fill_id_numerically_when_both_are_numbers() {
        assert_eq!(fill_order((t(1), "9"), (t(0), "10")), Ordering::Greater);
        assert_eq!(fill_order((t(0), "9"), (t(0), "10")), Ordering::Less);
        assert_eq!(fill_order((t(0), "10"), (t(0), "10")), Ordering::Equal);
        // Not both numbers: as text.
        assert_eq!(fill_order((t(0), "b9"), (t(0), "b10")), Ordering::Greater);
    }
    #[test]
    fn a_replay_makes_every_record_of_the_fills_in_turn() {
        let owner = UserId(Uuid::nil());
        let fills = [
            fill("1", Side::Buy, 1, dec!(100), 0),
            fill("2", Side::Sell, 1, dec!(105), 1),
            fill("3", Side::Buy, 1, dec!(104), 2),
            fill("4", Side::Sell, 3, dec!(103), 3),
        ];
        let rs = replay_fills(owner, &fills, t(100), |f| FillContext {
            exit_reason: if f.broker_fill_id == "2" {
                TradeExitReason::TakeProfit
            } else {
                TradeExitReason::Market
            },
            point_value: Some(Decimal::TWO),
        });
        let summary: Vec<_> = rs
            .iter()
            .map(|r| {
                (
                    r.direction,
                    r.status,
                    r.quantity,
                    r.exit_reason,
                    r.realized_pnl,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    Direction::Long,
                    TradeStatus::Closed,
                    0,
                    Some(TradeExitReason::TakeProfit),
                    Some(dec!(10))
                ),
                (
                    Direction::Long,
                    TradeStatus::Closed,
                    0,
                    Some(TradeExitReason::Market),
                    Some(dec!(-2))
                ),
                (Direction::Short, TradeStatus::Open, 2, None, None),
            ]
        );
        // The flip's remainder opens the short at the flip's price.
        assert_eq!(
            rs.iter()
                .map(|r| r.first_fill_id.as_str())
                .collect::<Vec<_>>(),
            ["1", "3", "4"]
        );
        assert_eq!(
            (rs[2].average_entry, rs[2].entered_quantity),
            (dec!(103), 2)
        );
    }
}
