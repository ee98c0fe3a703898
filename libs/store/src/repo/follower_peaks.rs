//! Followers' equity peaks (their max drawdown is measured from them): kept by the risk
//! service while a follower with a `max_drawdown` is watched, restarted when its owner unlocks
//! it through the API.
//!
//! A row's id names one tracking. [`Risk::raise_follower_peak`] only raises the peak of the
//! tracking it names, so a write the risk service started before an unlock (a peak of the old
//! tracking) changes nothing, and two writers can never lower a peak.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use super::risk::Risk;
use super::{at, now};
use crate::decimal::DbDecimal;
use crate::entity::{follower_peaks, followers};
use crate::error::{StoreError, StoreResult};
use crate::ids::{FollowerId, UserId};

/// A follower's equity peak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowerPeak {
    /// The tracking (changes at each unlock).
    pub tracking: Uuid,
    /// The follower.
    pub follower: FollowerId,
    /// The highest equity (balance + open P&L) seen since `started_at`; `None` until one is
    /// known.
    pub peak: Option<Decimal>,
    /// When it was seen.
    pub peak_at: Option<DateTime<Utc>>,
    /// When this tracking began: the first watch of the follower's max drawdown, or its last
    /// unlock.
    pub started_at: DateTime<Utc>,
}

impl From<follower_peaks::Model> for FollowerPeak {
    fn from(m: follower_peaks::Model) -> Self {
        Self {
            tracking: m.id,
            follower: FollowerId(m.follower_id),
            peak: m.peak.map(|p| p.0),
            peak_at: m.peak_at,
            started_at: m.started_at,
        }
    }
}

fn fresh(owner: UserId, follower: FollowerId) -> follower_peaks::Model {
    let t = now();
    follower_peaks::Model {
        id: Uuid::now_v7(),
        user_id: owner.0,
        follower_id: follower.0,
        peak: None,
        peak_at: None,
        started_at: t,
        updated_at: t,
    }
}

impl Risk<'_> {
    /// The follower's current peak tracking, started now (without a peak) when it has none.
    ///
    /// # Errors
    /// Database errors (a follower that is not the owner's: its foreign key).
    pub async fn follower_peak(
        &self,
        owner: UserId,
        follower: FollowerId,
    ) -> StoreResult<FollowerPeak> {
        follower_peaks::Entity::insert(fresh(owner, follower).into_active_model())
            .on_conflict(
                OnConflict::column(follower_peaks::Column::FollowerId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("follower peak", e))?;
        follower_peaks::Entity::find()
            .filter(follower_peaks::Column::FollowerId.eq(follower.0))
            .filter(follower_peaks::Column::UserId.eq(owner.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("follower peak", e))?
            .map(FollowerPeak::from)
            .ok_or_else(|| StoreError::not_found("follower peak", follower.0))
    }

    /// Raises the peak of tracking `tracking` to `peak` (seen at `seen_at`) when it is higher;
    /// a lower value, or a tracking an unlock replaced, changes nothing.
    ///
    /// # Errors
    /// Database errors.
    pub async fn raise_follower_peak(
        &self,
        tracking: Uuid,
        peak: Decimal,
        seen_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        use follower_peaks::Column as C;
        follower_peaks::Entity::update_many()
            .col_expr(C::Peak, Expr::value(Some(DbDecimal(peak))))
            .col_expr(C::PeakAt, Expr::value(Some(at(seen_at))))
            .col_expr(C::UpdatedAt, Expr::value(now()))
            .filter(C::Id.eq(tracking))
            .filter(C::Peak.is_null().or(C::Peak.lt(DbDecimal(peak))))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("follower peak", e))?;
        Ok(())
    }

    /// Lifts a follower's lockout (whatever locked it) and starts its equity peak afresh, in
    /// one transaction: its max drawdown is measured from the equity the risk service sees
    /// next, not from the peak that locked it. The owner's call (the API).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a follower that is not the owner's.
    pub async fn unlock_follower(&self, owner: UserId, follower: FollowerId) -> StoreResult<()> {
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        let r = followers::Entity::update_many()
            .col_expr(followers::Column::LockedOut, Expr::value(false))
            .col_expr(
                followers::Column::LockoutReason,
                Expr::value(Option::<String>::None),
            )
            .col_expr(followers::Column::UpdatedAt, Expr::value(now()))
            .filter(followers::Column::Id.eq(follower.0))
            .filter(followers::Column::UserId.eq(owner.0))
            .exec(&txn)
            .await
            .map_err(|e| StoreError::db("follower", e))?;
        if r.rows_affected == 0 {
            return Err(StoreError::not_found("follower", follower.0));
        }
        follower_peaks::Entity::delete_many()
            .filter(follower_peaks::Column::FollowerId.eq(follower.0))
            .exec(&txn)
            .await
            .map_err(|e| StoreError::db("follower peak", e))?;
        follower_peaks::Entity::insert(fresh(owner, follower).into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(|e| StoreError::db("follower peak", e))?;
        txn.commit().await.map_err(StoreError::from)
    }
}
