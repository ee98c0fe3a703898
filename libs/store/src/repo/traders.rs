//! Traders: one sub-account following one recorder, with nullable overrides of every setting,
//! and the executor's one-call view of everything a signal needs per trader.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jt_domain::{Settings, SettingsOverrides};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use super::accounts::{BrokerAccount, SubAccount};
use super::recorders::{Recorder, Recorders};
use super::{ReadScope, from_json, now, to_json};
use crate::Store;
use crate::entity::{broker_accounts, sub_accounts, traders};
use crate::error::{StoreError, StoreResult};
use crate::ids::{RecorderId, SubAccountId, TraderId, UserId};

/// A trader.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trader {
    /// Id.
    pub id: TraderId,
    /// Owner.
    pub owner: UserId,
    /// The recorder it follows.
    pub recorder: RecorderId,
    /// The sub-account it trades.
    pub sub_account: SubAccountId,
    /// Whether it executes signals.
    pub enabled: bool,
    /// Its overrides; `None` fields inherit the recorder's value.
    pub overrides: SettingsOverrides,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<traders::Model> for Trader {
    type Error = StoreError;
    fn try_from(m: traders::Model) -> StoreResult<Self> {
        Ok(Self {
            overrides: from_json("trader overrides", m.id, m.overrides)?,
            id: TraderId(m.id),
            owner: UserId(m.user_id),
            recorder: RecorderId(m.recorder_id),
            sub_account: SubAccountId(m.sub_account_id),
            enabled: m.enabled,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// A new trader.
#[derive(Debug, Clone)]
pub struct NewTrader {
    /// The recorder to follow (the owner's).
    pub recorder: RecorderId,
    /// The sub-account to trade (the owner's).
    pub sub_account: SubAccountId,
    /// Whether it executes signals.
    pub enabled: bool,
    /// Overrides of the recorder's settings.
    pub overrides: SettingsOverrides,
}

/// Everything the executor needs to act on one trader for one signal, read in one call so
/// that no trader is ever executed with half its settings or without its account (the
/// replaced platform's 40 % failure).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionTarget {
    /// The trader.
    pub trader: Trader,
    /// The recorder's settings resolved with the trader's overrides.
    pub settings: Settings,
    /// The sub-account to trade.
    pub sub_account: SubAccount,
    /// The broker account it is reached through (flags: enabled, needs re-auth, lock-out,
    /// `require_brackets`). Credentials are fetched separately by the adapter.
    pub account: BrokerAccount,
}

fn resolved(recorder: &Recorder, overrides: &SettingsOverrides) -> StoreResult<Settings> {
    let s = recorder.settings.resolve(overrides);
    s.validate().map_err(|e| {
        StoreError::invalid("settings", format!("with this trader's overrides, {e}"))
    })?;
    Ok(s)
}

/// Traders of one owner.
#[derive(Debug, Clone, Copy)]
pub struct Traders<'a> {
    pub(crate) store: &'a Store,
}

impl Traders<'_> {
    /// Links a sub-account to a recorder. Both must be the owner's (checked here, and by the
    /// database's composite foreign keys); the resolved settings must be valid.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a recorder or sub-account the owner does not have;
    /// [`StoreError::Conflict`] when the pair is already linked; [`StoreError::Invalid`].
    pub async fn create(&self, owner: UserId, new: NewTrader) -> StoreResult<Trader> {
        let recorder = Recorders { store: self.store }
            .get(owner, new.recorder)
            .await?;
        self.store
            .accounts()
            .sub_account(owner, new.sub_account)
            .await?;
        resolved(&recorder, &new.overrides)?;
        let t = now();
        let model = traders::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            recorder_id: new.recorder.0,
            sub_account_id: new.sub_account.0,
            enabled: new.enabled,
            overrides: to_json("overrides", &new.overrides)?,
            created_at: t,
            updated_at: t,
        };
        traders::Entity::insert(model.clone().into_active_model())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("trader", e))?;
        model.try_into()
    }

    /// One trader.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn get(&self, scope: impl ReadScope, id: TraderId) -> StoreResult<Trader> {
        self.model(scope.owner(), id).await?.try_into()
    }

    /// The owner's traders, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for unreadable overrides.
    pub async fn list(&self, scope: impl ReadScope) -> StoreResult<Vec<Trader>> {
        self.query(scope.owner(), None).await
    }

    /// The traders of one recorder.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for unreadable overrides.
    pub async fn for_recorder(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
    ) -> StoreResult<Vec<Trader>> {
        self.query(scope.owner(), Some(recorder)).await
    }

    /// A trader with its effective settings (for showing which values are inherited).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn effective_settings(
        &self,
        scope: impl ReadScope,
        id: TraderId,
    ) -> StoreResult<(Trader, Settings)> {
        let trader = self.get(scope, id).await?;
        let recorder = Recorders { store: self.store }
            .get(scope, trader.recorder)
            .await?;
        let settings = recorder.settings.resolve(&trader.overrides);
        Ok((trader, settings))
    }

    /// Replaces the overrides (every value given is stored explicitly; `None` inherits).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when the resolved settings are out of range;
    /// [`StoreError::NotFound`].
    pub async fn update_overrides(
        &self,
        owner: UserId,
        id: TraderId,
        overrides: &SettingsOverrides,
    ) -> StoreResult<Trader> {
        let trader = self.get(owner, id).await?;
        let recorder = Recorders { store: self.store }
            .get(owner, trader.recorder)
            .await?;
        resolved(&recorder, overrides)?;
        let q = traders::Entity::update_many()
            .col_expr(
                traders::Column::Overrides,
                Expr::value(to_json("overrides", overrides)?),
            )
            .col_expr(traders::Column::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await?;
        self.get(owner, id).await
    }

    /// Enables or disables the trader.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn set_enabled(&self, owner: UserId, id: TraderId, enabled: bool) -> StoreResult<()> {
        let q = traders::Entity::update_many()
            .col_expr(traders::Column::Enabled, Expr::value(enabled))
            .col_expr(traders::Column::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await
    }

    /// Unlinks the trader (its intents stay, detached).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete(&self, owner: UserId, id: TraderId) -> StoreResult<()> {
        super::delete_owned::<traders::Entity>(self.store, id, owner).await
    }

    /// Every enabled trader of the recorder with its resolved settings, sub-account and broker
    /// account: the executor's fan-out input. Three queries regardless of the number of
    /// traders. Traders whose account is disabled or needs re-authentication are included
    /// (with those flags) so the executor can record why it skipped them.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown recorder; [`StoreError::Corrupt`] for an
    /// unreadable setting (never silently defaulted).
    pub async fn execution_targets(
        &self,
        owner: UserId,
        recorder: RecorderId,
    ) -> StoreResult<Vec<ExecutionTarget>> {
        let recorder = Recorders { store: self.store }.get(owner, recorder).await?;
        self.execution_targets_of(&recorder).await
    }

    /// [`Self::execution_targets`] of a recorder already read under its owner's scope (the
    /// fan-out has it: one query fewer per signal).
    ///
    /// # Errors
    /// As [`Self::execution_targets`], without the unknown-recorder case.
    pub async fn execution_targets_of(
        &self,
        recorder: &Recorder,
    ) -> StoreResult<Vec<ExecutionTarget>> {
        let owner = recorder.owner;
        let traders: Vec<Trader> = traders::Entity::find()
            .filter(traders::Column::UserId.eq(owner.0))
            .filter(traders::Column::RecorderId.eq(recorder.id.0))
            .filter(traders::Column::Enabled.eq(true))
            .order_by_asc(traders::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("trader", e))?
            .into_iter()
            .map(Trader::try_from)
            .collect::<StoreResult<_>>()?;
        if traders.is_empty() {
            return Ok(Vec::new());
        }
        let subs: HashMap<Uuid, SubAccount> = sub_accounts::Entity::find()
            .filter(sub_accounts::Column::UserId.eq(owner.0))
            .filter(sub_accounts::Column::Id.is_in(traders.iter().map(|t| t.sub_account.0)))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("sub-account", e))?
            .into_iter()
            .map(|m| (m.id, SubAccount::from(m)))
            .collect();
        let accounts: HashMap<Uuid, BrokerAccount> = broker_accounts::Entity::find()
            .filter(broker_accounts::Column::UserId.eq(owner.0))
            .filter(broker_accounts::Column::Id.is_in(subs.values().map(|s| s.broker_account.0)))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker account", e))?
            .into_iter()
            .map(|m| (m.id, BrokerAccount::from(m)))
            .collect();
        traders
            .into_iter()
            .map(|trader| {
                // The foreign keys make both lookups total; a miss means a concurrent delete.
                let sub = subs
                    .get(&trader.sub_account.0)
                    .cloned()
                    .ok_or_else(|| StoreError::not_found("sub-account", trader.sub_account))?;
                let account = accounts
                    .get(&sub.broker_account.0)
                    .cloned()
                    .ok_or_else(|| StoreError::not_found("broker account", sub.broker_account))?;
                Ok(ExecutionTarget {
                    settings: recorder.settings.resolve(&trader.overrides),
                    trader,
                    sub_account: sub,
                    account,
                })
            })
            .collect()
    }

    async fn query(&self, owner: UserId, recorder: Option<RecorderId>) -> StoreResult<Vec<Trader>> {
        let mut q = traders::Entity::find().filter(traders::Column::UserId.eq(owner.0));
        if let Some(r) = recorder {
            q = q.filter(traders::Column::RecorderId.eq(r.0));
        }
        q.order_by_asc(traders::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("trader", e))?
            .into_iter()
            .map(Trader::try_from)
            .collect()
    }

    async fn model(&self, owner: UserId, id: TraderId) -> StoreResult<traders::Model> {
        traders::Entity::find_by_id(id.0)
            .filter(traders::Column::UserId.eq(owner.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("trader", e))?
            .ok_or_else(|| StoreError::not_found("trader", id))
    }
}

impl Store {
    /// Traders.
    #[must_use]
    pub fn traders(&self) -> Traders<'_> {
        Traders { store: self }
    }
}
