//! Plans (limits on features and counts) and subscriptions, as the payment provider reports
//! them through signed webhooks and a periodic sync.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use super::admin::{Admin, AuditRecord, write_audit};
use super::{ReadScope, at, now, required_text};
use crate::Store;
use crate::entity::{SubscriptionStatus, plans, subscriptions};
use crate::error::{StoreError, StoreResult};
use crate::ids::{PlanId, SubscriptionId, UserId};

/// A plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Id.
    pub id: PlanId,
    /// Stable code (`basic`, `pro`), also the provider's product mapping.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Most broker accounts; `None` = unlimited.
    pub max_broker_accounts: Option<u32>,
    /// Most recorders (strategies); `None` = unlimited.
    pub max_recorders: Option<u32>,
    /// Most copy-trading followers; `None` = unlimited.
    pub max_followers: Option<u32>,
    /// Feature flags (`copy_trading`, `live_accounts`…).
    pub features: Vec<String>,
}

impl TryFrom<plans::Model> for Plan {
    type Error = StoreError;
    fn try_from(m: plans::Model) -> StoreResult<Self> {
        let limit = |v: Option<i64>| v.map(|x| super::to_u32("plan", m.id, x)).transpose();
        Ok(Self {
            max_broker_accounts: limit(m.max_broker_accounts)?,
            max_recorders: limit(m.max_recorders)?,
            max_followers: limit(m.max_followers)?,
            features: super::from_json("plan", m.id, m.features)?,
            id: PlanId(m.id),
            code: m.code,
            name: m.name,
        })
    }
}

/// A plan definition (created or replaced by code).
#[derive(Debug, Clone)]
pub struct PlanSpec {
    /// Stable code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Most broker accounts.
    pub max_broker_accounts: Option<u32>,
    /// Most recorders.
    pub max_recorders: Option<u32>,
    /// Most followers.
    pub max_followers: Option<u32>,
    /// Feature flags.
    pub features: Vec<String>,
}

/// A subscription state from the provider.
#[derive(Debug, Clone)]
pub struct ProviderSubscription {
    /// The user it belongs to (resolved by the webhook handler).
    pub user: UserId,
    /// The plan's code.
    pub plan_code: String,
    /// Provider name (`whop`).
    pub provider: String,
    /// The provider's subscription id.
    pub provider_subscription_id: String,
    /// State.
    pub status: SubscriptionStatus,
    /// End of the paid period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// The provider's event time: an older event never overwrites a newer state.
    pub provider_updated_at: DateTime<Utc>,
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// Id.
    pub id: SubscriptionId,
    /// Plan.
    pub plan: PlanId,
    /// Provider.
    pub provider: String,
    /// Provider's id.
    pub provider_subscription_id: String,
    /// State.
    pub status: SubscriptionStatus,
    /// End of the paid period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Provider's event time.
    pub provider_updated_at: DateTime<Utc>,
}

impl From<subscriptions::Model> for Subscription {
    fn from(m: subscriptions::Model) -> Self {
        Self {
            id: SubscriptionId(m.id),
            plan: PlanId(m.plan_id),
            provider: m.provider,
            provider_subscription_id: m.provider_subscription_id,
            status: m.status,
            current_period_end: m.current_period_end,
            provider_updated_at: m.provider_updated_at,
        }
    }
}

/// Plans and subscriptions.
#[derive(Debug, Clone, Copy)]
pub struct Plans<'a> {
    pub(crate) store: &'a Store,
}

impl Plans<'_> {
    /// Every plan.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list(&self) -> StoreResult<Vec<Plan>> {
        plans::Entity::find()
            .order_by_asc(plans::Column::Code)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("plan", e))?
            .into_iter()
            .map(Plan::try_from)
            .collect()
    }

    /// A plan by code.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn by_code(&self, code: &str) -> StoreResult<Plan> {
        plans::Entity::find()
            .filter(plans::Column::Code.eq(code))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("plan", e))?
            .ok_or_else(|| StoreError::not_found("plan", code))?
            .try_into()
    }

    /// Applies a subscription state from the provider (webhook or sync), idempotently: keyed
    /// by (provider, provider subscription id); an event older than the stored one is ignored.
    /// Returns whether it was applied.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown plan code or user.
    pub async fn apply_subscription(&self, s: ProviderSubscription) -> StoreResult<bool> {
        use subscriptions::Column as C;
        let plan = self.by_code(&s.plan_code).await?;
        let t = now();
        let m = subscriptions::Model {
            id: Uuid::now_v7(),
            user_id: s.user.0,
            plan_id: plan.id.0,
            provider: required_text("provider", &s.provider)?,
            provider_subscription_id: required_text(
                "provider_subscription_id",
                &s.provider_subscription_id,
            )?,
            status: s.status,
            current_period_end: s.current_period_end.map(at),
            provider_updated_at: at(s.provider_updated_at),
            created_at: t,
            updated_at: t,
        };
        let mut oc = OnConflict::columns([C::Provider, C::ProviderSubscriptionId]);
        oc.update_columns([
            C::PlanId,
            C::Status,
            C::CurrentPeriodEnd,
            C::ProviderUpdatedAt,
            C::UpdatedAt,
        ])
        .action_and_where(
            Expr::col((subscriptions::Entity, C::ProviderUpdatedAt))
                .lte(Expr::col((Alias::new("excluded"), C::ProviderUpdatedAt)))
                .and(
                    Expr::col((subscriptions::Entity, C::UserId))
                        .eq(Expr::col((Alias::new("excluded"), C::UserId))),
                ),
        );
        let n = subscriptions::Entity::insert(m.into_active_model())
            .on_conflict(oc)
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("subscription", e))?;
        Ok(n == 1)
    }

    /// The owner's current subscription: the most recently updated one that is trialing,
    /// active or past due.
    ///
    /// # Errors
    /// Database errors.
    pub async fn current_subscription(
        &self,
        scope: impl ReadScope,
    ) -> StoreResult<Option<Subscription>> {
        Ok(subscriptions::Entity::find()
            .filter(subscriptions::Column::UserId.eq(scope.owner().0))
            .filter(subscriptions::Column::Status.is_in([
                SubscriptionStatus::Trialing,
                SubscriptionStatus::Active,
                SubscriptionStatus::PastDue,
            ]))
            .order_by_desc(subscriptions::Column::ProviderUpdatedAt)
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("subscription", e))?
            .map(Subscription::from))
    }
}

impl Admin<'_> {
    /// Creates or replaces a plan by code. Audited.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for an empty code or name.
    pub async fn upsert_plan(&self, p: PlanSpec) -> StoreResult<Plan> {
        use plans::Column as C;
        let t = now();
        let code = required_text("code", &p.code)?;
        let m = plans::Model {
            id: Uuid::now_v7(),
            code: code.clone(),
            name: required_text("name", &p.name)?,
            max_broker_accounts: p.max_broker_accounts.map(i64::from),
            max_recorders: p.max_recorders.map(i64::from),
            max_followers: p.max_followers.map(i64::from),
            features: super::to_json("features", &p.features)?,
            created_at: t,
            updated_at: t,
        };
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        plans::Entity::insert(m.into_active_model())
            .on_conflict(
                OnConflict::column(C::Code)
                    .update_columns([
                        C::Name,
                        C::MaxBrokerAccounts,
                        C::MaxRecorders,
                        C::MaxFollowers,
                        C::Features,
                        C::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(|e| StoreError::db("plan", e))?;
        write_audit(
            &txn,
            self.scope,
            AuditRecord {
                action: "plan.upsert",
                target_type: "plan",
                target_id: Some(code.clone()),
                target_user: None,
                details: serde_json::json!({ "name": p.name, "features": p.features }),
            },
        )
        .await?;
        txn.commit().await.map_err(StoreError::from)?;
        self.store.plans().by_code(&code).await
    }
}

impl Store {
    /// Plans and subscriptions.
    #[must_use]
    pub fn plans(&self) -> Plans<'_> {
        Plans { store: self }
    }
}
