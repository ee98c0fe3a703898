//! Copy trading (DOMAIN.md §10): leaders, followers, contract mappings and the copy log.

use chrono::{DateTime, Utc};
use jt_domain::Side;
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use super::{ReadScope, at, now, optional_text, required_text, to_u32};
use crate::Store;
use crate::decimal::DbDecimal;
use crate::entity::{CopyStatus, CopyTrigger, contract_mappings, copy_log, followers, leaders};
use crate::error::{StoreError, StoreResult};
use crate::ids::{CopyLogId, FollowerId, IntentId, LeaderId, SubAccountId, UserId};

/// A leader sub-account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leader {
    /// Id.
    pub id: LeaderId,
    /// Owner.
    pub owner: UserId,
    /// The leader's sub-account.
    pub sub_account: SubAccountId,
    /// Name.
    pub label: Option<String>,
    /// Whether copying is on.
    pub enabled: bool,
    /// Copy the leader's own fills (automatic mode), not only manual API trades.
    pub auto_copy: bool,
}

impl From<leaders::Model> for Leader {
    fn from(m: leaders::Model) -> Self {
        Self {
            id: LeaderId(m.id),
            owner: UserId(m.user_id),
            sub_account: SubAccountId(m.sub_account_id),
            label: m.label,
            enabled: m.enabled,
            auto_copy: m.auto_copy,
        }
    }
}

/// A follower's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerSettings {
    /// Name.
    pub label: Option<String>,
    /// Quantity multiplier (> 0).
    pub multiplier: Decimal,
    /// Cap on the follower's position; `None` = no cap.
    pub max_position_size: Option<u32>,
    /// Whether copying to it is on.
    pub enabled: bool,
    /// Copy the leader's take-profit.
    pub copy_tp: bool,
    /// Copy the leader's stop.
    pub copy_sl: bool,
    /// Daily loss limit in dollars (locks the follower out).
    pub daily_loss_limit: Option<Decimal>,
    /// Maximum drawdown in dollars (locks the follower out).
    pub max_drawdown: Option<Decimal>,
    /// A position closed by hand at the follower's broker stays flat: auto-sync logs the
    /// drift and does not re-enter (until the leader's next entry from flat). Off: re-synced.
    pub closed_by_hand_stays_flat: bool,
}

impl Default for FollowerSettings {
    fn default() -> Self {
        Self {
            label: None,
            multiplier: Decimal::ONE,
            max_position_size: None,
            enabled: true,
            copy_tp: true,
            copy_sl: true,
            daily_loss_limit: None,
            max_drawdown: None,
            closed_by_hand_stays_flat: false,
        }
    }
}

/// A follower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Follower {
    /// Id.
    pub id: FollowerId,
    /// Owner.
    pub owner: UserId,
    /// Its leader.
    pub leader: LeaderId,
    /// Its sub-account.
    pub sub_account: SubAccountId,
    /// Name.
    pub label: Option<String>,
    /// Quantity multiplier.
    pub multiplier: Decimal,
    /// Position cap.
    pub max_position_size: Option<u32>,
    /// Whether copying to it is on.
    pub enabled: bool,
    /// Copy TP.
    pub copy_tp: bool,
    /// Copy SL.
    pub copy_sl: bool,
    /// Daily loss limit.
    pub daily_loss_limit: Option<Decimal>,
    /// Maximum drawdown.
    pub max_drawdown: Option<Decimal>,
    /// Locked out by a risk limit.
    pub locked_out: bool,
    /// Why.
    pub lockout_reason: Option<String>,
    /// A position closed by hand at the broker stays flat (no auto-sync re-entry).
    pub closed_by_hand_stays_flat: bool,
}

impl TryFrom<followers::Model> for Follower {
    type Error = StoreError;
    fn try_from(m: followers::Model) -> StoreResult<Self> {
        Ok(Self {
            max_position_size: m
                .max_position_size
                .map(|v| to_u32("follower", m.id, v))
                .transpose()?,
            id: FollowerId(m.id),
            owner: UserId(m.user_id),
            leader: LeaderId(m.leader_id),
            sub_account: SubAccountId(m.sub_account_id),
            label: m.label,
            multiplier: m.multiplier.0,
            enabled: m.enabled,
            copy_tp: m.copy_tp,
            copy_sl: m.copy_sl,
            daily_loss_limit: m.daily_loss_limit.map(|d| d.0),
            max_drawdown: m.max_drawdown.map(|d| d.0),
            locked_out: m.locked_out,
            lockout_reason: m.lockout_reason,
            closed_by_hand_stays_flat: m.closed_by_hand_stays_flat,
        })
    }
}

/// One contract mapping of a follower (NQ → MNQ, ×10 in quantity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractMapping {
    /// Leader's root.
    pub source_root: String,
    /// Follower's root.
    pub target_root: String,
    /// Quantity factor.
    pub quantity_ratio: Decimal,
}

/// A copy to record before the follower order is sent.
#[derive(Debug, Clone)]
pub struct NewCopy {
    /// Id.
    pub id: CopyLogId,
    /// Leader.
    pub leader: LeaderId,
    /// Follower.
    pub follower: FollowerId,
    /// Manual or automatic.
    pub trigger: CopyTrigger,
    /// The leader fill that caused it (automatic mode): copied at most once per follower.
    pub leader_fill_id: Option<String>,
    /// The leader's order id.
    pub leader_order_id: Option<String>,
    /// Leader symbol.
    pub leader_symbol: String,
    /// Follower symbol (after mapping).
    pub follower_symbol: String,
    /// Leader side.
    pub leader_side: Option<Side>,
    /// Follower side.
    pub follower_side: Option<Side>,
    /// Leader quantity.
    pub leader_quantity: u32,
    /// Follower quantity.
    pub follower_quantity: u32,
    /// Leader price.
    pub leader_price: Option<Decimal>,
    /// Initial status (`pending`, or `skipped` with a reason in `error`).
    pub status: CopyStatus,
    /// Reason or error.
    pub error: Option<String>,
}

/// The result of a copy, once known.
#[derive(Debug, Clone, Default)]
pub struct CopyUpdate {
    /// New status.
    pub status: Option<CopyStatus>,
    /// The follower intent.
    pub follower_intent: Option<IntentId>,
    /// The follower's broker order id.
    pub follower_order_id: Option<String>,
    /// The follower's fill price.
    pub follower_price: Option<Decimal>,
    /// Error text.
    pub error: Option<String>,
    /// Latency from the leader event to the follower answer.
    pub latency_ms: Option<i64>,
}

/// A copy log row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyLogEntry {
    /// Id.
    pub id: CopyLogId,
    /// Leader (detached if removed).
    pub leader: Option<LeaderId>,
    /// Follower (detached if removed).
    pub follower: Option<FollowerId>,
    /// Trigger.
    pub trigger: CopyTrigger,
    /// Leader fill id.
    pub leader_fill_id: Option<String>,
    /// Leader order id.
    pub leader_order_id: Option<String>,
    /// Follower intent.
    pub follower_intent: Option<IntentId>,
    /// Follower order id.
    pub follower_order_id: Option<String>,
    /// Leader symbol.
    pub leader_symbol: String,
    /// Follower symbol.
    pub follower_symbol: String,
    /// Leader side.
    pub leader_side: Option<Side>,
    /// Follower side.
    pub follower_side: Option<Side>,
    /// Leader quantity.
    pub leader_quantity: u32,
    /// Follower quantity.
    pub follower_quantity: u32,
    /// Leader price.
    pub leader_price: Option<Decimal>,
    /// Follower price.
    pub follower_price: Option<Decimal>,
    /// Status.
    pub status: CopyStatus,
    /// Error.
    pub error: Option<String>,
    /// Latency.
    pub latency_ms: Option<i64>,
    /// Time.
    pub created_at: DateTime<Utc>,
}

impl TryFrom<copy_log::Model> for CopyLogEntry {
    type Error = StoreError;
    fn try_from(m: copy_log::Model) -> StoreResult<Self> {
        Ok(Self {
            leader_quantity: to_u32("copy log", m.id, m.leader_quantity)?,
            follower_quantity: to_u32("copy log", m.id, m.follower_quantity)?,
            id: CopyLogId(m.id),
            leader: m.leader_id.map(LeaderId),
            follower: m.follower_id.map(FollowerId),
            trigger: m.trigger,
            leader_fill_id: m.leader_fill_id,
            leader_order_id: m.leader_order_id,
            follower_intent: m.follower_intent_id.map(IntentId),
            follower_order_id: m.follower_order_id,
            leader_symbol: m.leader_symbol,
            follower_symbol: m.follower_symbol,
            leader_side: m.leader_side.map(Side::from),
            follower_side: m.follower_side.map(Side::from),
            leader_price: m.leader_price.map(|d| d.0),
            follower_price: m.follower_price.map(|d| d.0),
            status: m.status,
            error: m.error,
            latency_ms: m.latency_ms,
            created_at: m.created_at,
        })
    }
}

/// Whether a copy was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyRecorded {
    /// Recorded now: send the follower order.
    New,
    /// This leader fill was already copied to this follower: send nothing.
    AlreadyCopied,
}

fn check_follower(s: &FollowerSettings) -> StoreResult<()> {
    if s.multiplier <= Decimal::ZERO {
        return Err(StoreError::invalid("multiplier", "must be greater than 0"));
    }
    if s.max_position_size == Some(0) {
        return Err(StoreError::invalid(
            "max_position_size",
            "must be at least 1 (or unset)",
        ));
    }
    for (name, v) in [
        ("daily_loss_limit", s.daily_loss_limit),
        ("max_drawdown", s.max_drawdown),
    ] {
        if v.is_some_and(|d| d <= Decimal::ZERO) {
            return Err(StoreError::invalid(
                name,
                "must be greater than 0 (or unset)",
            ));
        }
    }
    Ok(())
}

/// Copy trading records.
#[derive(Debug, Clone, Copy)]
pub struct Copying<'a> {
    pub(crate) store: &'a Store,
}

impl Copying<'_> {
    /// Makes one of the owner's sub-accounts a leader.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a sub-account that is not the owner's;
    /// [`StoreError::Conflict`] when it already leads.
    pub async fn create_leader(
        &self,
        owner: UserId,
        sub_account: SubAccountId,
        label: Option<&str>,
        auto_copy: bool,
    ) -> StoreResult<Leader> {
        self.store
            .accounts()
            .sub_account(owner, sub_account)
            .await?;
        let t = now();
        let m = leaders::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            sub_account_id: sub_account.0,
            label: optional_text(label),
            enabled: true,
            auto_copy,
            created_at: t,
            updated_at: t,
        };
        leaders::Entity::insert(m.clone().into_active_model())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("leader", e))?;
        Ok(m.into())
    }

    /// The owner's leaders.
    ///
    /// # Errors
    /// Database errors.
    pub async fn leaders(&self, scope: impl ReadScope) -> StoreResult<Vec<Leader>> {
        Ok(leaders::Entity::find()
            .filter(leaders::Column::UserId.eq(scope.owner().0))
            .order_by_asc(leaders::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("leader", e))?
            .into_iter()
            .map(Leader::from)
            .collect())
    }

    /// One leader.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn leader(&self, scope: impl ReadScope, id: LeaderId) -> StoreResult<Leader> {
        leaders::Entity::find_by_id(id.0)
            .filter(leaders::Column::UserId.eq(scope.owner().0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("leader", e))?
            .map(Leader::from)
            .ok_or_else(|| StoreError::not_found("leader", id))
    }

    /// The leader on a sub-account, if it leads (the copier, on a fill event).
    ///
    /// # Errors
    /// Database errors.
    pub async fn leader_of(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
    ) -> StoreResult<Option<Leader>> {
        Ok(leaders::Entity::find()
            .filter(leaders::Column::UserId.eq(scope.owner().0))
            .filter(leaders::Column::SubAccountId.eq(sub_account.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("leader", e))?
            .map(Leader::from))
    }

    /// Turns a leader on or off, and its automatic mode.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn update_leader(
        &self,
        owner: UserId,
        id: LeaderId,
        enabled: bool,
        auto_copy: bool,
    ) -> StoreResult<()> {
        let q = leaders::Entity::update_many()
            .col_expr(leaders::Column::Enabled, Expr::value(enabled))
            .col_expr(leaders::Column::AutoCopy, Expr::value(auto_copy))
            .col_expr(leaders::Column::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await
    }

    /// Removes a leader with its followers and mappings (the copy log stays, detached).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete_leader(&self, owner: UserId, id: LeaderId) -> StoreResult<()> {
        super::delete_owned::<leaders::Entity>(self.store, id, owner).await
    }

    /// Adds a follower. The follower's sub-account may not be the leader's own (an account is
    /// never both leader and follower in one group).
    ///
    /// # Errors
    /// [`StoreError::Invalid`]; [`StoreError::NotFound`]; [`StoreError::Conflict`] when it
    /// already follows this leader.
    pub async fn add_follower(
        &self,
        owner: UserId,
        leader: LeaderId,
        sub_account: SubAccountId,
        s: FollowerSettings,
    ) -> StoreResult<Follower> {
        check_follower(&s)?;
        let l = self.leader(owner, leader).await?;
        if l.sub_account == sub_account {
            return Err(StoreError::invalid(
                "follower",
                "an account cannot follow itself",
            ));
        }
        self.store
            .accounts()
            .sub_account(owner, sub_account)
            .await?;
        let t = now();
        let m = followers::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            leader_id: leader.0,
            sub_account_id: sub_account.0,
            label: optional_text(s.label.as_deref()),
            multiplier: DbDecimal(s.multiplier),
            max_position_size: s.max_position_size.map(i64::from),
            enabled: s.enabled,
            copy_tp: s.copy_tp,
            copy_sl: s.copy_sl,
            daily_loss_limit: s.daily_loss_limit.map(DbDecimal),
            max_drawdown: s.max_drawdown.map(DbDecimal),
            locked_out: false,
            lockout_reason: None,
            closed_by_hand_stays_flat: s.closed_by_hand_stays_flat,
            created_at: t,
            updated_at: t,
        };
        followers::Entity::insert(m.clone().into_active_model())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("follower", e))?;
        m.try_into()
    }

    /// The followers of a leader.
    ///
    /// # Errors
    /// Database errors.
    pub async fn followers(
        &self,
        scope: impl ReadScope,
        leader: LeaderId,
    ) -> StoreResult<Vec<Follower>> {
        followers::Entity::find()
            .filter(followers::Column::UserId.eq(scope.owner().0))
            .filter(followers::Column::LeaderId.eq(leader.0))
            .order_by_asc(followers::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("follower", e))?
            .into_iter()
            .map(Follower::try_from)
            .collect()
    }

    /// How many followers the owner has across all leaders (plan limits).
    ///
    /// # Errors
    /// Database errors.
    pub async fn follower_count(&self, scope: impl ReadScope) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait;
        followers::Entity::find()
            .filter(followers::Column::UserId.eq(scope.owner().0))
            .count(self.store.db())
            .await
            .map_err(|e| StoreError::db("follower", e))
    }

    /// One follower.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn follower(&self, scope: impl ReadScope, id: FollowerId) -> StoreResult<Follower> {
        followers::Entity::find_by_id(id.0)
            .filter(followers::Column::UserId.eq(scope.owner().0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("follower", e))?
            .ok_or_else(|| StoreError::not_found("follower", id))?
            .try_into()
    }

    /// Replaces a follower's settings.
    ///
    /// # Errors
    /// [`StoreError::Invalid`]; [`StoreError::NotFound`].
    pub async fn update_follower(
        &self,
        owner: UserId,
        id: FollowerId,
        s: FollowerSettings,
    ) -> StoreResult<()> {
        check_follower(&s)?;
        let q = followers::Entity::update_many()
            .col_expr(
                followers::Column::Label,
                Expr::value(optional_text(s.label.as_deref())),
            )
            .col_expr(
                followers::Column::Multiplier,
                Expr::value(DbDecimal(s.multiplier)),
            )
            .col_expr(
                followers::Column::MaxPositionSize,
                Expr::value(s.max_position_size.map(i64::from)),
            )
            .col_expr(followers::Column::Enabled, Expr::value(s.enabled))
            .col_expr(followers::Column::CopyTp, Expr::value(s.copy_tp))
            .col_expr(followers::Column::CopySl, Expr::value(s.copy_sl))
            .col_expr(
                followers::Column::DailyLossLimit,
                Expr::value(s.daily_loss_limit.map(DbDecimal)),
            )
            .col_expr(
                followers::Column::MaxDrawdown,
                Expr::value(s.max_drawdown.map(DbDecimal)),
            )
            .col_expr(
                followers::Column::ClosedByHandStaysFlat,
                Expr::value(s.closed_by_hand_stays_flat),
            );
        super::update_owned(
            self.store,
            q.col_expr(followers::Column::UpdatedAt, Expr::value(now())),
            id,
            owner,
        )
        .await
    }

    /// Locks a follower out (a risk limit hit), or lifts the lock (`None`).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn set_lockout(
        &self,
        owner: UserId,
        id: FollowerId,
        reason: Option<&str>,
    ) -> StoreResult<()> {
        let q = followers::Entity::update_many()
            .col_expr(followers::Column::LockedOut, Expr::value(reason.is_some()))
            .col_expr(
                followers::Column::LockoutReason,
                Expr::value(reason.map(str::to_string)),
            );
        super::update_owned(
            self.store,
            q.col_expr(followers::Column::UpdatedAt, Expr::value(now())),
            id,
            owner,
        )
        .await
    }

    /// Removes a follower (its copy log stays, detached).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn remove_follower(&self, owner: UserId, id: FollowerId) -> StoreResult<()> {
        super::delete_owned::<followers::Entity>(self.store, id, owner).await
    }

    /// Replaces a follower's contract mappings (one per source root).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a non-positive ratio or a root given twice;
    /// [`StoreError::NotFound`].
    pub async fn set_mappings(
        &self,
        owner: UserId,
        follower: FollowerId,
        mappings: &[ContractMapping],
    ) -> StoreResult<()> {
        let exists = followers::Entity::find_by_id(follower.0)
            .filter(followers::Column::UserId.eq(owner.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("follower", e))?;
        if exists.is_none() {
            return Err(StoreError::not_found("follower", follower));
        }
        let t = now();
        let mut rows = Vec::with_capacity(mappings.len());
        for m in mappings {
            if m.quantity_ratio <= Decimal::ZERO {
                return Err(StoreError::invalid(
                    "quantity_ratio",
                    "must be greater than 0",
                ));
            }
            rows.push(
                contract_mappings::Model {
                    id: Uuid::now_v7(),
                    user_id: owner.0,
                    follower_id: follower.0,
                    source_root: required_text("source_root", &m.source_root)?.to_uppercase(),
                    target_root: required_text("target_root", &m.target_root)?.to_uppercase(),
                    quantity_ratio: DbDecimal(m.quantity_ratio),
                    created_at: t,
                }
                .into_active_model(),
            );
        }
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        contract_mappings::Entity::delete_many()
            .filter(contract_mappings::Column::FollowerId.eq(follower.0))
            .filter(contract_mappings::Column::UserId.eq(owner.0))
            .exec(&txn)
            .await
            .map_err(|e| StoreError::db("contract mapping", e))?;
        if !rows.is_empty() {
            contract_mappings::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await
                .map_err(|e| StoreError::db("contract mapping", e))?;
        }
        txn.commit().await.map_err(StoreError::from)
    }

    /// A follower's contract mappings.
    ///
    /// # Errors
    /// Database errors.
    pub async fn mappings(
        &self,
        scope: impl ReadScope,
        follower: FollowerId,
    ) -> StoreResult<Vec<ContractMapping>> {
        Ok(contract_mappings::Entity::find()
            .filter(contract_mappings::Column::UserId.eq(scope.owner().0))
            .filter(contract_mappings::Column::FollowerId.eq(follower.0))
            .order_by_asc(contract_mappings::Column::SourceRoot)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("contract mapping", e))?
            .into_iter()
            .map(|m| ContractMapping {
                source_root: m.source_root,
                target_root: m.target_root,
                quantity_ratio: m.quantity_ratio.0,
            })
            .collect())
    }

    /// Records a copy before the follower order is sent; a leader fill already copied to this
    /// follower is refused as [`CopyRecorded::AlreadyCopied`] (replays, redeliveries).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a leader or follower that is not the owner's.
    pub async fn record_copy(&self, owner: UserId, c: NewCopy) -> StoreResult<CopyRecorded> {
        self.leader(owner, c.leader).await?;
        let t = now();
        let m = copy_log::Model {
            id: c.id.0,
            user_id: owner.0,
            leader_id: Some(c.leader.0),
            follower_id: Some(c.follower.0),
            trigger: c.trigger,
            leader_fill_id: c.leader_fill_id,
            leader_order_id: c.leader_order_id,
            follower_intent_id: None,
            follower_order_id: None,
            leader_symbol: required_text("leader_symbol", &c.leader_symbol)?,
            follower_symbol: required_text("follower_symbol", &c.follower_symbol)?,
            leader_side: c.leader_side.map(Into::into),
            follower_side: c.follower_side.map(Into::into),
            leader_quantity: i64::from(c.leader_quantity),
            follower_quantity: i64::from(c.follower_quantity),
            leader_price: c.leader_price.map(DbDecimal),
            follower_price: None,
            status: c.status,
            error: c.error,
            latency_ms: None,
            created_at: t,
            updated_at: t,
        };
        let follower_ok = followers::Entity::find_by_id(c.follower.0)
            .filter(followers::Column::UserId.eq(owner.0))
            .filter(followers::Column::LeaderId.eq(c.leader.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("follower", e))?;
        if follower_ok.is_none() {
            return Err(StoreError::not_found("follower", c.follower));
        }
        let n = copy_log::Entity::insert(m.into_active_model())
            .on_conflict(
                OnConflict::columns([copy_log::Column::FollowerId, copy_log::Column::LeaderFillId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("copy log", e))?;
        Ok(if n == 1 {
            CopyRecorded::New
        } else {
            CopyRecorded::AlreadyCopied
        })
    }

    /// The copy of one leader fill to one follower, if recorded (the copier, on a fill already
    /// copied: a row still `pending` was recorded but its intent perhaps never published).
    ///
    /// # Errors
    /// Database errors.
    pub async fn copy_of(
        &self,
        scope: impl ReadScope,
        follower: FollowerId,
        leader_fill_id: &str,
    ) -> StoreResult<Option<CopyLogEntry>> {
        copy_log::Entity::find()
            .filter(copy_log::Column::UserId.eq(scope.owner().0))
            .filter(copy_log::Column::FollowerId.eq(follower.0))
            .filter(copy_log::Column::LeaderFillId.eq(leader_fill_id))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("copy log", e))?
            .map(CopyLogEntry::try_from)
            .transpose()
    }

    /// Whether a copy to `follower` is still in flight (auto-sync waits for it): a row
    /// `pending` (recorded, its intent perhaps not yet published), or `accepted` with no
    /// follower intent yet (queued on ORDERS, the executor's outcome not recorded), updated at
    /// or after `since` — a row older than that is taken as lost, so it never blocks the
    /// follower's sync for good.
    ///
    /// # Errors
    /// Database errors.
    pub async fn copy_in_flight(
        &self,
        scope: impl ReadScope,
        follower: FollowerId,
        since: DateTime<Utc>,
    ) -> StoreResult<bool> {
        use sea_orm::Condition;
        let n = copy_log::Entity::find()
            .filter(copy_log::Column::UserId.eq(scope.owner().0))
            .filter(copy_log::Column::FollowerId.eq(follower.0))
            .filter(copy_log::Column::UpdatedAt.gte(at(since)))
            .filter(
                Condition::any()
                    .add(copy_log::Column::Status.eq(CopyStatus::Pending))
                    .add(
                        Condition::all()
                            .add(copy_log::Column::Status.eq(CopyStatus::Accepted))
                            .add(copy_log::Column::FollowerIntentId.is_null()),
                    ),
            )
            .count(self.store.db())
            .await
            .map_err(|e| StoreError::db("copy log", e))?;
        Ok(n > 0)
    }

    /// The copies to `follower` whose leader event id starts with `prefix`, oldest first
    /// (auto-sync: the corrections already made for one leader position state).
    ///
    /// # Errors
    /// Database errors.
    pub async fn copies_with_prefix(
        &self,
        scope: impl ReadScope,
        follower: FollowerId,
        prefix: &str,
    ) -> StoreResult<Vec<CopyLogEntry>> {
        copy_log::Entity::find()
            .filter(copy_log::Column::UserId.eq(scope.owner().0))
            .filter(copy_log::Column::FollowerId.eq(follower.0))
            .filter(copy_log::Column::LeaderFillId.starts_with(prefix))
            .order_by_asc(copy_log::Column::CreatedAt)
            .order_by_asc(copy_log::Column::Id)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("copy log", e))?
            .into_iter()
            .map(CopyLogEntry::try_from)
            .collect()
    }

    /// Marks a `pending` copy `accepted` (its intent is queued); a row already past pending
    /// (the executor's outcome recorded first) is left as it is. Whether it changed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn mark_copy_accepted(&self, owner: UserId, id: CopyLogId) -> StoreResult<bool> {
        let r = copy_log::Entity::update_many()
            .col_expr(copy_log::Column::Status, Expr::value(CopyStatus::Accepted))
            .col_expr(copy_log::Column::UpdatedAt, Expr::value(now()))
            .filter(copy_log::Column::Id.eq(id.0))
            .filter(copy_log::Column::UserId.eq(owner.0))
            .filter(copy_log::Column::Status.eq(CopyStatus::Pending))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("copy log", e))?;
        Ok(r.rows_affected == 1)
    }

    /// Completes a copy log row with the follower's result.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn update_copy(
        &self,
        owner: UserId,
        id: CopyLogId,
        u: CopyUpdate,
    ) -> StoreResult<()> {
        let mut q = copy_log::Entity::update_many()
            .col_expr(copy_log::Column::UpdatedAt, Expr::value(now()));
        if let Some(s) = u.status {
            q = q.col_expr(copy_log::Column::Status, Expr::value(s));
        }
        if let Some(i) = u.follower_intent {
            q = q.col_expr(copy_log::Column::FollowerIntentId, Expr::value(Some(i.0)));
        }
        if let Some(o) = u.follower_order_id {
            q = q.col_expr(copy_log::Column::FollowerOrderId, Expr::value(Some(o)));
        }
        if let Some(p) = u.follower_price {
            q = q.col_expr(
                copy_log::Column::FollowerPrice,
                Expr::value(Some(DbDecimal(p))),
            );
        }
        if let Some(e) = u.error {
            q = q.col_expr(copy_log::Column::Error, Expr::value(Some(e)));
        }
        if let Some(l) = u.latency_ms {
            q = q.col_expr(copy_log::Column::LatencyMs, Expr::value(Some(l)));
        }
        super::update_owned(self.store, q, id, owner).await
    }

    /// One page of the owner's copy log, newest first, ordered by (time, id) so a page
    /// boundary between two rows of the same instant loses neither (keyset pagination: stable
    /// while new copies arrive).
    ///
    /// # Errors
    /// Database errors.
    pub async fn copy_log(
        &self,
        scope: impl ReadScope,
        q: &CopyLogQuery,
    ) -> StoreResult<Vec<CopyLogEntry>> {
        use sea_orm::Condition;
        let mut sel = copy_log::Entity::find().filter(copy_log::Column::UserId.eq(scope.owner().0));
        if let Some(l) = q.leader {
            sel = sel.filter(copy_log::Column::LeaderId.eq(l.0));
        }
        if let Some(f) = q.follower {
            sel = sel.filter(copy_log::Column::FollowerId.eq(f.0));
        }
        if let Some(s) = q.status {
            sel = sel.filter(copy_log::Column::Status.eq(s));
        }
        if let Some((t, id)) = q.after {
            let t = at(t);
            sel = sel.filter(
                Condition::any().add(copy_log::Column::CreatedAt.lt(t)).add(
                    Condition::all()
                        .add(copy_log::Column::CreatedAt.eq(t))
                        .add(copy_log::Column::Id.lt(id.0)),
                ),
            );
        }
        sel.order_by_desc(copy_log::Column::CreatedAt)
            .order_by_desc(copy_log::Column::Id)
            .limit(q.limit.clamp(1, 500))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("copy log", e))?
            .into_iter()
            .map(CopyLogEntry::try_from)
            .collect()
    }
}

/// Which copy log rows a page shows: all filters optional, newest first.
#[derive(Debug, Clone, Default)]
pub struct CopyLogQuery {
    /// Only this leader's copies.
    pub leader: Option<LeaderId>,
    /// Only this follower's copies.
    pub follower: Option<FollowerId>,
    /// Only copies in this state.
    pub status: Option<CopyStatus>,
    /// Continue after this row (the last of the previous page): its time and id.
    pub after: Option<(DateTime<Utc>, CopyLogId)>,
    /// At most this many (1..=500).
    pub limit: u64,
}

impl Store {
    /// Copy trading: leaders, followers, mappings, copy log.
    #[must_use]
    pub fn copying(&self) -> Copying<'_> {
        Copying { store: self }
    }
}
