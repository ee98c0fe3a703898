//! Signals: one parsed alert for one recorder, with what became of it.

use chrono::{DateTime, Utc};
use jt_domain::SignalAction;
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use super::{ReadScope, at, now, to_json};
use crate::Store;
use crate::decimal::DbDecimal;
use crate::entity::{SignalOutcome, signals};
use crate::error::{StoreError, StoreResult};
use crate::ids::{RecorderId, SignalId, UserId};
use crate::text::{strip_nul, strip_nul_json_owned, strip_nul_opt};

/// A signal to record.
#[derive(Debug, Clone)]
pub struct NewSignal {
    /// Id made by the ingest (the bus message id): recording twice is harmless.
    pub id: SignalId,
    /// The recorder's owner.
    pub owner: UserId,
    /// The recorder.
    pub recorder: RecorderId,
    /// Arrival time.
    pub received_at: DateTime<Utc>,
    /// The alert's own time, if it carried one.
    pub alert_time: Option<DateTime<Utc>>,
    /// The interpreted action.
    pub action: SignalAction,
    /// The alert's ticker.
    pub ticker: Option<String>,
    /// The alert's quantity.
    pub quantity: Option<Decimal>,
    /// The alert's price.
    pub price: Option<Decimal>,
    /// `position` / `market_position`.
    pub market_position: Option<String>,
    /// `prev_position` / `prev_market_position`.
    pub prev_market_position: Option<String>,
    /// The parsed signal as the alert parser produced it.
    pub payload: serde_json::Value,
    /// Its outcome so far.
    pub outcome: SignalOutcome,
    /// Why (filter name, duplicate of, age…).
    pub outcome_reason: Option<String>,
    /// Age in milliseconds when the outcome was decided.
    pub age_ms: Option<i64>,
}

/// A recorded signal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// Id.
    pub id: SignalId,
    /// Owner.
    pub owner: UserId,
    /// Recorder.
    pub recorder: RecorderId,
    /// Arrival time.
    pub received_at: DateTime<Utc>,
    /// The alert's own time.
    pub alert_time: Option<DateTime<Utc>>,
    /// The interpreted action.
    pub action: SignalAction,
    /// Ticker.
    pub ticker: Option<String>,
    /// Quantity.
    pub quantity: Option<Decimal>,
    /// Price.
    pub price: Option<Decimal>,
    /// Market position.
    pub market_position: Option<String>,
    /// Previous market position.
    pub prev_market_position: Option<String>,
    /// Parsed payload.
    pub payload: serde_json::Value,
    /// Outcome.
    pub outcome: SignalOutcome,
    /// Reason.
    pub outcome_reason: Option<String>,
    /// Age when decided.
    pub age_ms: Option<i64>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn action_text(a: SignalAction) -> StoreResult<String> {
    match to_json("action", &a)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(StoreError::invalid(
            "action",
            format!("unexpected form {other}"),
        )),
    }
}

impl TryFrom<signals::Model> for Signal {
    type Error = StoreError;
    fn try_from(m: signals::Model) -> StoreResult<Self> {
        let action: SignalAction =
            serde_json::from_value(serde_json::Value::String(m.action.clone()))
                .map_err(|e| StoreError::corrupt("signal", m.id, e))?;
        Ok(Self {
            id: SignalId(m.id),
            owner: UserId(m.user_id),
            recorder: RecorderId(m.recorder_id),
            received_at: m.received_at,
            alert_time: m.alert_time,
            action,
            ticker: m.ticker,
            quantity: m.quantity.map(|d| d.0),
            price: m.price.map(|d| d.0),
            market_position: m.market_position,
            prev_market_position: m.prev_market_position,
            payload: m.payload,
            outcome: m.outcome,
            outcome_reason: m.outcome_reason,
            age_ms: m.age_ms,
            updated_at: m.updated_at,
        })
    }
}

/// Whether a signal was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored now.
    New,
    /// Already stored (a redelivered message): nothing changed.
    AlreadyRecorded,
}

/// Signals.
#[derive(Debug, Clone, Copy)]
pub struct Signals<'a> {
    pub(crate) store: &'a Store,
}

impl Signals<'_> {
    /// Records a signal once (by id).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the recorder is not the owner's.
    pub async fn record(&self, s: NewSignal) -> StoreResult<Recorded> {
        let model = signals::Model {
            id: s.id.0,
            user_id: s.owner.0,
            recorder_id: s.recorder.0,
            received_at: at(s.received_at),
            alert_time: s.alert_time.map(at),
            action: action_text(s.action)?,
            // Alert text (ticker, comment in the payload…) may carry NUL: see `crate::text`.
            ticker: strip_nul_opt(s.ticker),
            quantity: s.quantity.map(DbDecimal),
            price: s.price.map(DbDecimal),
            market_position: strip_nul_opt(s.market_position),
            prev_market_position: strip_nul_opt(s.prev_market_position),
            payload: strip_nul_json_owned(s.payload),
            outcome: s.outcome,
            outcome_reason: strip_nul_opt(s.outcome_reason),
            age_ms: s.age_ms,
            updated_at: now(),
        };
        let n = signals::Entity::insert(model.into_active_model())
            .on_conflict(
                OnConflict::column(signals::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("signal", e))?;
        Ok(if n == 1 {
            Recorded::New
        } else {
            Recorded::AlreadyRecorded
        })
    }

    /// Sets the outcome decided later (e.g. `stale` at execution time, with its age).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn set_outcome(
        &self,
        owner: UserId,
        id: SignalId,
        outcome: SignalOutcome,
        reason: Option<&str>,
        age_ms: Option<i64>,
    ) -> StoreResult<()> {
        let q = signals::Entity::update_many()
            .col_expr(signals::Column::Outcome, Expr::value(outcome))
            .col_expr(
                signals::Column::OutcomeReason,
                Expr::value(reason.map(|r| strip_nul(r).into_owned())),
            )
            .col_expr(signals::Column::AgeMs, Expr::value(age_ms))
            .col_expr(signals::Column::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await
    }

    /// One signal.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn get(&self, scope: impl ReadScope, id: SignalId) -> StoreResult<Signal> {
        signals::Entity::find_by_id(id.0)
            .filter(signals::Column::UserId.eq(scope.owner().0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("signal", e))?
            .ok_or_else(|| StoreError::not_found("signal", id))?
            .try_into()
    }

    /// The latest signals of a recorder, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn for_recorder(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
        limit: u64,
    ) -> StoreResult<Vec<Signal>> {
        signals::Entity::find()
            .filter(signals::Column::UserId.eq(scope.owner().0))
            .filter(signals::Column::RecorderId.eq(recorder.0))
            .order_by_desc(signals::Column::ReceivedAt)
            .limit(limit)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("signal", e))?
            .into_iter()
            .map(Signal::try_from)
            .collect()
    }
}

/// Which signals a history page shows: all filters optional, newest first.
#[derive(Debug, Clone, Default)]
pub struct SignalQuery {
    /// Only this recorder's.
    pub recorder: Option<RecorderId>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
    /// Only with this outcome.
    pub outcome: Option<SignalOutcome>,
    /// Continue after this signal (the last of the previous page): its receipt time and id.
    pub after: Option<(DateTime<Utc>, SignalId)>,
    /// At most this many (1..=500).
    pub limit: u64,
}

impl Signals<'_> {
    /// One page of the owner's signals, newest first, ordered by (receipt time, id) so a
    /// page boundary between two signals of the same instant loses neither (keyset
    /// pagination: stable while new signals arrive).
    ///
    /// # Errors
    /// Database errors.
    pub async fn page(&self, scope: impl ReadScope, q: &SignalQuery) -> StoreResult<Vec<Signal>> {
        use sea_orm::Condition;
        let mut sel = signals::Entity::find().filter(signals::Column::UserId.eq(scope.owner().0));
        if let Some(r) = q.recorder {
            sel = sel.filter(signals::Column::RecorderId.eq(r.0));
        }
        if let Some(t) = q.since {
            sel = sel.filter(signals::Column::ReceivedAt.gte(at(t)));
        }
        if let Some(t) = q.until {
            sel = sel.filter(signals::Column::ReceivedAt.lt(at(t)));
        }
        if let Some(o) = q.outcome {
            sel = sel.filter(signals::Column::Outcome.eq(o));
        }
        if let Some((t, id)) = q.after {
            let t = at(t);
            sel = sel.filter(
                Condition::any().add(signals::Column::ReceivedAt.lt(t)).add(
                    Condition::all()
                        .add(signals::Column::ReceivedAt.eq(t))
                        .add(signals::Column::Id.lt(id.0)),
                ),
            );
        }
        sel.order_by_desc(signals::Column::ReceivedAt)
            .order_by_desc(signals::Column::Id)
            .limit(q.limit.clamp(1, 500))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("signal", e))?
            .into_iter()
            .map(Signal::try_from)
            .collect()
    }
}

impl Store {
    /// Signals.
    #[must_use]
    pub fn signals(&self) -> Signals<'_> {
        Signals { store: self }
    }
}
