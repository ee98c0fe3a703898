//! Signals: one parsed alert for one recorder, with what became of it.

use chrono::{DateTime, TimeDelta, Utc};
use jt_domain::SignalAction;
use jt_domain::signal::DUPLICATE_INTERVAL_MS;
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Iterable,
    QueryFilter, QueryOrder, QuerySelect,
};
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
    /// For an alert without `time`: the digest of its webhook token and body
    /// (`SignalMessage::body_digest`). A signal of the same recorder with the same digest
    /// received less than 1 s apart makes this one a `duplicate` ([`Signals::record`]).
    pub body_digest: Option<String>,
}

/// The reason recorded on a signal found to be a copy of one received less than 1 s apart.
pub const DUPLICATE_REASON: &str = "duplicate: the same alert body reached this recorder less than 1 s apart from a signal \
     already recorded (TradingView delivered it twice); nothing was executed for this copy";

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

/// Signals.
#[derive(Debug, Clone, Copy)]
pub struct Signals<'a> {
    pub(crate) store: &'a Store,
}

impl Signals<'_> {
    /// Records a signal once (by id), in one statement on both engines. With a body digest
    /// the row's outcome is conditional: `duplicate` (with [`DUPLICATE_REASON`]) when the
    /// recorder already has a signal with the same digest, not itself a duplicate, received
    /// less than [`DUPLICATE_INTERVAL_MS`] before or after it; the caller's outcome otherwise.
    ///
    /// ```sql
    /// INSERT INTO signals (…, outcome, outcome_reason, …, body_digest)
    /// VALUES (…, CASE WHEN EXISTS (SELECT 1 FROM signals WHERE recorder_id = $r
    ///               AND body_digest = $d AND outcome <> 'duplicate'
    ///               AND received_at > $t - 1 s AND received_at < $t + 1 s AND id <> $id)
    ///            THEN 'duplicate' ELSE $outcome END, CASE … END, …, $d)
    /// ON CONFLICT (id) DO UPDATE SET outcome = signals.outcome  -- a no-op, so that
    /// RETURNING outcome                                          -- a redelivery reads it back
    /// ```
    ///
    /// The check and the insert are not atomic against a concurrent insert of the same
    /// recorder (`READ COMMITTED`); they need not be: the fan-out records one recorder's
    /// signals one at a time across every replica (the bus's serial consumer). Both neighbours
    /// in time are compared, so a copy is caught whichever of the two is fanned out first (two
    /// ingest replicas may publish them out of receipt order). The window reads the
    /// recorder's signals of two seconds through the `(recorder_id, received_at)` index.
    ///
    /// Returns the outcome the signal is stored with: the caller's, or `duplicate`, or — for a
    /// signal recorded before (a redelivered message; nothing changes) — the outcome its first
    /// recording stored, so a redelivered duplicate stays one.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the recorder is not the owner's.
    pub async fn record(&self, s: NewSignal) -> StoreResult<SignalOutcome> {
        let received_at = at(s.received_at);
        let model = signals::Model {
            id: s.id.0,
            user_id: s.owner.0,
            recorder_id: s.recorder.0,
            received_at,
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
            body_digest: s.body_digest,
        };
        let same_body_nearby = model.body_digest.as_ref().map(|digest| {
            let window = TimeDelta::milliseconds(DUPLICATE_INTERVAL_MS);
            Expr::exists(
                Query::select()
                    .expr(Expr::val(1))
                    .from(signals::Entity)
                    .and_where(signals::Column::RecorderId.eq(model.recorder_id))
                    .and_where(signals::Column::BodyDigest.eq(digest.as_str()))
                    .and_where(signals::Column::Outcome.ne(SignalOutcome::Duplicate))
                    .and_where(signals::Column::ReceivedAt.gt(received_at - window))
                    .and_where(signals::Column::ReceivedAt.lt(received_at + window))
                    .and_where(signals::Column::Id.ne(model.id))
                    .to_owned(),
            )
        });
        let row = model.into_active_model();
        let columns: Vec<signals::Column> = signals::Column::iter().collect();
        let mut values = Vec::with_capacity(columns.len());
        for c in &columns {
            let value = row
                .get(*c)
                .into_value()
                .ok_or_else(|| StoreError::Invalid {
                    what: "signal",
                    reason: format!("no value for column {c:?}"),
                })?;
            let value = match (c, &same_body_nearby) {
                (signals::Column::Outcome, Some(nearby)) => {
                    Expr::case(nearby.clone(), Expr::val(SignalOutcome::Duplicate))
                        .finally(Expr::val(value))
                        .into()
                }
                (signals::Column::OutcomeReason, Some(nearby)) => {
                    Expr::case(nearby.clone(), Expr::val(DUPLICATE_REASON))
                        .finally(Expr::val(value))
                        .into()
                }
                _ => Expr::val(value),
            };
            values.push(value);
        }
        let mut insert = Query::insert();
        insert
            .into_table(signals::Entity)
            .columns(columns)
            .values(values)
            .map_err(|e| StoreError::Invalid {
                what: "signal",
                reason: e.to_string(),
            })?
            .on_conflict(
                // Not DO NOTHING: a conflict would then return no row, and a redelivered
                // duplicate must learn that it is one.
                OnConflict::column(signals::Column::Id)
                    .value(
                        signals::Column::Outcome,
                        Expr::col((signals::Entity, signals::Column::Outcome)),
                    )
                    .to_owned(),
            )
            .returning_col(signals::Column::Outcome);
        let returned = self
            .store
            .db()
            .query_one(&insert)
            .await
            .map_err(|e| StoreError::db("signal", e))?
            .ok_or_else(|| StoreError::not_found("signal", s.id))?;
        let stored: String = returned
            .try_get("", "outcome")
            .map_err(|e| StoreError::db("signal", e))?;
        stored
            .parse()
            .map_err(|e: String| StoreError::corrupt("signal", s.id, e))
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
