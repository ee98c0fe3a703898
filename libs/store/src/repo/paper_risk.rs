//! Paper accounts' daily loss (DOMAIN.md §9 "paper from prices"): what the risk service reads
//! to judge a recorder's paper record — its open paper positions and the P&L of the paper
//! trades it closed in the trading day — and the breach it records once per recorder and
//! trading day (`paper_breaches`), which the fan-out reads to refuse the recorder's paper
//! entries for the rest of the day.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect};
use serde::Serialize;
use uuid::Uuid;

use super::paper::{OpenPaper, PaperPosition};
use super::recorders::Recorder;
use super::risk::Risk;
use super::{ReadScope, at};
use crate::decimal::DbDecimal;
use crate::entity::{PaperStatus, paper_breaches, paper_positions, paper_trades, recorders};
use crate::error::{StoreError, StoreResult};
use crate::ids::{RecorderId, UserId};

/// A recorder's paper record as the risk service judges it.
#[derive(Debug, Clone)]
pub struct PaperBook {
    /// The recorder (its settings carry the `max_daily_loss`).
    pub recorder: Recorder,
    /// The net P&L of the paper trades it closed since the trading day began.
    pub realized: Decimal,
    /// Its open paper positions, each with the version a close is conditional on.
    pub open: Vec<OpenPaper>,
}

/// A paper breach to record.
#[derive(Debug, Clone)]
pub struct NewPaperBreach {
    /// The recorder.
    pub recorder: RecorderId,
    /// The trading day.
    pub trading_day: NaiveDate,
    /// The max daily loss, in dollars.
    pub loss_limit: Decimal,
    /// The day's realised paper P&L.
    pub realized_pnl: Decimal,
    /// The open paper P&L at the mark.
    pub unrealized_pnl: Decimal,
    /// When it was detected.
    pub breached_at: DateTime<Utc>,
    /// The numbers, in words.
    pub details: Option<String>,
}

/// A recorded paper breach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaperBreach {
    /// Id.
    pub id: Uuid,
    /// The recorder.
    pub recorder: RecorderId,
    /// The trading day.
    pub trading_day: NaiveDate,
    /// The max daily loss.
    pub loss_limit: Decimal,
    /// The day's realised paper P&L at the breach.
    pub realized_pnl: Decimal,
    /// The open paper P&L at the breach.
    pub unrealized_pnl: Decimal,
    /// Detected at.
    pub breached_at: DateTime<Utc>,
    /// When its open paper positions were closed (`None`: still to do).
    pub closed_at: Option<DateTime<Utc>>,
    /// Details.
    pub details: Option<String>,
}

impl From<paper_breaches::Model> for PaperBreach {
    fn from(m: paper_breaches::Model) -> Self {
        Self {
            id: m.id,
            recorder: RecorderId(m.recorder_id),
            trading_day: m.trading_day,
            loss_limit: m.loss_limit.0,
            realized_pnl: m.realized_pnl.0,
            unrealized_pnl: m.unrealized_pnl.0,
            breached_at: m.breached_at,
            closed_at: m.closed_at,
            details: m.details,
        }
    }
}

/// Whether a paper breach was new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaperBreachRecorded {
    /// The first of this recorder and day: close and refuse.
    New(PaperBreach),
    /// Already recorded (by this monitor before a restart, or another).
    Already(PaperBreach),
}

impl Risk<'_> {
    /// The paper records to judge now: every recorder with a `max_daily_loss` above zero and
    /// its paper record kept (`recording_enabled`) that holds an open paper position or closed
    /// a paper trade since `day_start`, with those figures.
    ///
    /// # Errors
    /// Database errors; a stored position or recorder this build cannot read.
    pub async fn paper_books(&self, day_start: DateTime<Utc>) -> StoreResult<Vec<PaperBook>> {
        let db = self.store.db();
        let open = paper_positions::Entity::find()
            .filter(paper_positions::Column::Status.eq(PaperStatus::Open))
            .all(db)
            .await
            .map_err(|e| StoreError::db("paper position", e))?;
        let closed: Vec<(Uuid, Option<DbDecimal>)> = paper_trades::Entity::find()
            .select_only()
            .column(paper_trades::Column::RecorderId)
            .column(paper_trades::Column::RealizedPnl)
            .filter(paper_trades::Column::Status.eq(PaperStatus::Closed))
            .filter(paper_trades::Column::ExitTime.gte(at(day_start)))
            .into_tuple()
            .all(db)
            .await
            .map_err(|e| StoreError::db("paper trade", e))?;
        let mut ids: BTreeSet<Uuid> = open.iter().map(|m| m.recorder_id).collect();
        ids.extend(closed.iter().map(|(r, _)| *r));
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut realized: HashMap<Uuid, Decimal> = HashMap::new();
        for (r, pnl) in closed {
            *realized.entry(r).or_default() += pnl.map_or(Decimal::ZERO, |p| p.0);
        }
        let mut positions: HashMap<Uuid, Vec<OpenPaper>> = HashMap::new();
        for m in open {
            let recorder = m.recorder_id;
            let version = m.updated_at;
            let position = PaperPosition::try_from(m)?;
            positions
                .entry(recorder)
                .or_default()
                .push(OpenPaper { position, version });
        }
        let mut books = Vec::new();
        for m in recorders::Entity::find()
            .filter(recorders::Column::Id.is_in(ids))
            .all(db)
            .await
            .map_err(|e| StoreError::db("recorder", e))?
        {
            let recorder = Recorder::try_from(m)?;
            if recorder.settings.max_daily_loss <= Decimal::ZERO
                || !recorder.settings.recording_enabled
            {
                continue;
            }
            books.push(PaperBook {
                realized: realized.remove(&recorder.id.0).unwrap_or_default(),
                open: positions.remove(&recorder.id.0).unwrap_or_default(),
                recorder,
            });
        }
        Ok(books)
    }

    /// The recorder's open paper positions now, each with its version (what a close at the
    /// mark is conditional on).
    ///
    /// # Errors
    /// Database errors; a stored position this build cannot read.
    pub async fn open_papers(
        &self,
        owner: UserId,
        recorder: RecorderId,
    ) -> StoreResult<Vec<OpenPaper>> {
        paper_positions::Entity::find()
            .filter(paper_positions::Column::UserId.eq(owner.0))
            .filter(paper_positions::Column::RecorderId.eq(recorder.0))
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

    /// Records a recorder's paper breach, once per recorder and trading day.
    ///
    /// # Errors
    /// Database errors (a recorder that is not the owner's: its foreign key).
    pub async fn record_paper_breach(
        &self,
        owner: UserId,
        b: NewPaperBreach,
    ) -> StoreResult<PaperBreachRecorded> {
        let m = paper_breaches::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            recorder_id: b.recorder.0,
            trading_day: b.trading_day,
            loss_limit: DbDecimal(b.loss_limit),
            realized_pnl: DbDecimal(b.realized_pnl),
            unrealized_pnl: DbDecimal(b.unrealized_pnl),
            breached_at: at(b.breached_at),
            closed_at: None,
            details: b.details,
        };
        let n = paper_breaches::Entity::insert(m.clone().into_active_model())
            .on_conflict(
                OnConflict::columns([
                    paper_breaches::Column::RecorderId,
                    paper_breaches::Column::TradingDay,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper breach", e))?;
        if n == 1 {
            return Ok(PaperBreachRecorded::New(m.into()));
        }
        self.paper_breach(owner, b.recorder, b.trading_day)
            .await?
            .map(PaperBreachRecorded::Already)
            .ok_or_else(|| StoreError::not_found("paper breach", b.recorder.0))
    }

    /// The recorder's paper breach of `day`, if any.
    ///
    /// # Errors
    /// Database errors.
    pub async fn paper_breach(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
        day: NaiveDate,
    ) -> StoreResult<Option<PaperBreach>> {
        Ok(paper_breaches::Entity::find()
            .filter(paper_breaches::Column::UserId.eq(scope.owner().0))
            .filter(paper_breaches::Column::RecorderId.eq(recorder.0))
            .filter(paper_breaches::Column::TradingDay.eq(day))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper breach", e))?
            .map(PaperBreach::from))
    }

    /// Records that the breach's open paper positions were closed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn mark_paper_closed(
        &self,
        owner: UserId,
        id: Uuid,
        closed_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        paper_breaches::Entity::update_many()
            .col_expr(
                paper_breaches::Column::ClosedAt,
                Expr::value(Some(at(closed_at))),
            )
            .filter(paper_breaches::Column::Id.eq(id))
            .filter(paper_breaches::Column::UserId.eq(owner.0))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper breach", e))?;
        Ok(())
    }
}
