//! The explicitly named platform-wide path: reads across all owners that daemons need
//! (token refresh, reconciliation, housekeeping). Every record returned carries its owner,
//! and follow-up calls go through the owner-scoped repositories.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::accounts::BrokerAccount;
use super::at;
use super::auth::{User, normalize_email};
use super::copy::Leader;
use super::webhooks::WebhookLogEntry;
use crate::Store;
use crate::entity::{
    BrokerOrderStatus, PaperStatus, broker_accounts, broker_orders, broker_positions, leaders,
    paper_positions, sub_accounts, users, webhook_log,
};
use crate::error::{StoreError, StoreResult};
use crate::ids::BrokerAccountId;

/// Platform-wide reads for daemons (not for anything a user's request reaches).
#[derive(Debug, Clone, Copy)]
pub struct System<'a> {
    pub(crate) store: &'a Store,
}

impl System<'_> {
    /// The user registered with `email` (compared as stored: trimmed, lower case), for
    /// operator commands (`jt api-token create --user …`) — never for a user's request.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a malformed e-mail; database errors.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = normalize_email(email)?;
        Ok(users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?
            .map(User::from))
    }

    /// Every enabled account with stored credentials: the reconciler's and connection
    /// manager's work list.
    ///
    /// # Errors
    /// Database errors.
    pub async fn active_accounts(&self) -> StoreResult<Vec<BrokerAccount>> {
        Ok(broker_accounts::Entity::find()
            .filter(broker_accounts::Column::Enabled.eq(true))
            .filter(broker_accounts::Column::CredentialsEnc.is_not_null())
            .order_by_asc(broker_accounts::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker account", e))?
            .into_iter()
            .map(BrokerAccount::from)
            .collect())
    }

    /// Every enabled leader in automatic mode, across owners, oldest first: the copier seeds
    /// their tracked positions when it starts (auto-sync from the start, not from each
    /// contract's next fill).
    ///
    /// # Errors
    /// Database errors.
    pub async fn copying_leaders(&self) -> StoreResult<Vec<Leader>> {
        Ok(leaders::Entity::find()
            .filter(leaders::Column::Enabled.eq(true))
            .filter(leaders::Column::AutoCopy.eq(true))
            .order_by_asc(leaders::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("leader", e))?
            .into_iter()
            .map(Leader::from)
            .collect())
    }

    /// Enabled accounts whose access token expires before `before` (token refresh: renew
    /// tokens expiring within 30 minutes). Accounts already marked for re-authentication are
    /// left out: retrying them cannot succeed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn tokens_expiring_before(
        &self,
        before: DateTime<Utc>,
    ) -> StoreResult<Vec<BrokerAccount>> {
        Ok(broker_accounts::Entity::find()
            .filter(broker_accounts::Column::Enabled.eq(true))
            .filter(broker_accounts::Column::NeedsReauth.eq(false))
            .filter(broker_accounts::Column::TokenExpiresAt.lt(at(before)))
            .order_by_asc(broker_accounts::Column::TokenExpiresAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker account", e))?
            .into_iter()
            .map(BrokerAccount::from)
            .collect())
    }

    /// The contracts the platform holds or trades at brokers, per login: every contract with a
    /// non-flat stored position or an open (pending or working) order, with the login
    /// (broker account) of its sub-account — what the connection manager subscribes quotes
    /// for. Distinct, sorted.
    ///
    /// # Errors
    /// Database errors.
    pub async fn held_contracts(&self) -> StoreResult<Vec<(BrokerAccountId, String)>> {
        let db = self.store.db();
        let positions: Vec<(uuid::Uuid, String)> = broker_positions::Entity::find()
            .select_only()
            .column(broker_positions::Column::SubAccountId)
            .column(broker_positions::Column::Contract)
            .filter(broker_positions::Column::NetQuantity.ne(0))
            .distinct()
            .into_tuple()
            .all(db)
            .await
            .map_err(|e| StoreError::db("broker position", e))?;
        let orders: Vec<(uuid::Uuid, String)> = broker_orders::Entity::find()
            .select_only()
            .column(broker_orders::Column::SubAccountId)
            .column(broker_orders::Column::Contract)
            .filter(
                broker_orders::Column::Status
                    .is_in([BrokerOrderStatus::Pending, BrokerOrderStatus::Working]),
            )
            .distinct()
            .into_tuple()
            .all(db)
            .await
            .map_err(|e| StoreError::db("broker order", e))?;
        let subs: std::collections::BTreeSet<uuid::Uuid> =
            positions.iter().chain(&orders).map(|(s, _)| *s).collect();
        if subs.is_empty() {
            return Ok(Vec::new());
        }
        let logins: std::collections::HashMap<uuid::Uuid, uuid::Uuid> =
            sub_accounts::Entity::find()
                .select_only()
                .column(sub_accounts::Column::Id)
                .column(sub_accounts::Column::BrokerAccountId)
                .filter(sub_accounts::Column::Id.is_in(subs))
                .into_tuple::<(uuid::Uuid, uuid::Uuid)>()
                .all(db)
                .await
                .map_err(|e| StoreError::db("sub-account", e))?
                .into_iter()
                .collect();
        let held: std::collections::BTreeSet<(uuid::Uuid, String)> = positions
            .into_iter()
            .chain(orders)
            .filter_map(|(sub, contract)| logins.get(&sub).map(|l| (*l, contract)))
            .collect();
        Ok(held
            .into_iter()
            .map(|(login, contract)| (BrokerAccountId(login), contract))
            .collect())
    }

    /// The symbols (instrument roots, `MNQ`) of every open paper position, distinct and
    /// sorted: the paper record's share of the contracts quotes are wanted for.
    ///
    /// # Errors
    /// Database errors.
    pub async fn open_paper_symbols(&self) -> StoreResult<Vec<String>> {
        paper_positions::Entity::find()
            .select_only()
            .column(paper_positions::Column::Symbol)
            .filter(paper_positions::Column::Status.eq(PaperStatus::Open))
            .distinct()
            .order_by_asc(paper_positions::Column::Symbol)
            .into_tuple()
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("paper position", e))
    }

    /// Accounts that need re-authentication (for the metric and operators' view).
    ///
    /// # Errors
    /// Database errors.
    pub async fn accounts_needing_reauth(&self) -> StoreResult<Vec<BrokerAccount>> {
        Ok(broker_accounts::Entity::find()
            .filter(broker_accounts::Column::NeedsReauth.eq(true))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker account", e))?
            .into_iter()
            .map(BrokerAccount::from)
            .collect())
    }

    /// The latest webhook log rows of the whole platform, newest first, including requests
    /// whose token was unknown (they belong to no owner): the operators' view of webhook
    /// activity and success rate.
    ///
    /// # Errors
    /// Database errors.
    pub async fn recent_webhook_log(&self, limit: u64) -> StoreResult<Vec<WebhookLogEntry>> {
        Ok(webhook_log::Entity::find()
            .order_by_desc(webhook_log::Column::ReceivedAt)
            .limit(limit)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("webhook log", e))?
            .into_iter()
            .map(WebhookLogEntry::from)
            .collect())
    }

    /// Deletes webhook log rows received before `before` (retention); returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune_webhook_log(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(webhook_log::Entity::delete_many()
            .filter(webhook_log::Column::ReceivedAt.lt(at(before)))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("webhook log", e))?
            .rows_affected)
    }
}

impl Store {
    /// Platform-wide reads for daemons; see [`System`].
    #[must_use]
    pub fn system(&self) -> System<'_> {
        System { store: self }
    }
}
