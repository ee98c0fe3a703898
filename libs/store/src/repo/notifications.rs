//! Outbound notification channels (targets sealed: webhook URLs carry their own secret) and
//! their delivery log: at least once, one row per channel and event.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use uuid::Uuid;

use super::{ReadScope, at, from_json, now, required_text, to_json};
use crate::Store;
use crate::entity::{ChannelKind, DeliveryStatus, notification_channels, notification_deliveries};
use crate::error::{StoreError, StoreResult};
use crate::ids::{ChannelId, DeliveryId, UserId};
use crate::secret::{Secret, aad};

const TARGET: &str = "notification target";

/// A new channel.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// Kind.
    pub kind: ChannelKind,
    /// The user's name for it.
    pub label: String,
    /// URL or e-mail address (sealed).
    pub target: Secret,
    /// Event kinds to deliver (`execution_failed`, `unprotected_position`, `max_loss`,
    /// `needs_reauth`, `kill_switch`…).
    pub events: Vec<String>,
}

/// A channel as listed (the target is not shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// Id.
    pub id: ChannelId,
    /// Kind.
    pub kind: ChannelKind,
    /// Name.
    pub label: String,
    /// Event kinds delivered.
    pub events: Vec<String>,
    /// On or off.
    pub enabled: bool,
}

/// A delivery that is due.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    /// Id.
    pub id: DeliveryId,
    /// Owner.
    pub owner: UserId,
    /// Channel.
    pub channel: ChannelId,
    /// Event kind.
    pub event_kind: String,
    /// Payload.
    pub payload: serde_json::Value,
    /// Attempts so far.
    pub attempts: i64,
}

/// Notification channels and deliveries.
#[derive(Debug, Clone, Copy)]
pub struct Notifications<'a> {
    pub(crate) store: &'a Store,
}

impl Notifications<'_> {
    /// Adds a channel.
    ///
    /// # Errors
    /// [`StoreError::Invalid`]; [`StoreError::Secret`] when the store has no key.
    pub async fn create_channel(&self, owner: UserId, c: NewChannel) -> StoreResult<Channel> {
        let id = Uuid::now_v7();
        if c.target.expose().trim().is_empty() {
            return Err(StoreError::invalid("target", "must not be empty"));
        }
        let sealed = self
            .store
            .cipher()?
            .seal_secret(&aad("notification_channels", "target_enc", id), &c.target)?;
        let t = now();
        let m = notification_channels::Model {
            id,
            user_id: owner.0,
            kind: c.kind,
            label: required_text("label", &c.label)?,
            target_enc: sealed,
            events: to_json("events", &c.events)?,
            enabled: true,
            created_at: t,
            updated_at: t,
        };
        notification_channels::Entity::insert(m.into_active_model())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification channel", e))?;
        Ok(Channel {
            id: ChannelId(id),
            kind: c.kind,
            label: c.label.trim().to_string(),
            events: c.events,
            enabled: true,
        })
    }

    /// The owner's channels.
    ///
    /// # Errors
    /// Database errors.
    pub async fn channels(&self, scope: impl ReadScope) -> StoreResult<Vec<Channel>> {
        notification_channels::Entity::find()
            .filter(notification_channels::Column::UserId.eq(scope.owner().0))
            .order_by_asc(notification_channels::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification channel", e))?
            .into_iter()
            .map(|m| {
                Ok(Channel {
                    events: from_json("notification channel", m.id, m.events)?,
                    id: ChannelId(m.id),
                    kind: m.kind,
                    label: m.label,
                    enabled: m.enabled,
                })
            })
            .collect()
    }

    /// A channel's target, opened (for the notifier).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Secret`].
    pub async fn target(&self, owner: UserId, id: ChannelId) -> StoreResult<Secret> {
        let m = notification_channels::Entity::find_by_id(id.0)
            .filter(notification_channels::Column::UserId.eq(owner.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification channel", e))?
            .ok_or_else(|| StoreError::not_found("notification channel", id))?;
        Ok(self.store.cipher()?.open_secret(
            TARGET,
            &aad("notification_channels", "target_enc", id.0),
            &m.target_enc,
        )?)
    }

    /// Removes a channel with its deliveries.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete_channel(&self, owner: UserId, id: ChannelId) -> StoreResult<()> {
        super::delete_owned::<notification_channels::Entity>(self.store, id, owner).await
    }

    /// Queues an event for every enabled channel of the owner that subscribes to its kind;
    /// the same `dedup_key` is queued once per channel. Returns how many deliveries were new.
    ///
    /// # Errors
    /// Database errors.
    pub async fn enqueue(
        &self,
        owner: UserId,
        event_kind: &str,
        dedup_key: &str,
        payload: &serde_json::Value,
    ) -> StoreResult<u64> {
        let channels = self.channels(owner).await?;
        let t = now();
        let mut created = 0;
        for c in channels
            .iter()
            .filter(|c| c.enabled && c.events.iter().any(|e| e == event_kind))
        {
            let m = notification_deliveries::Model {
                id: Uuid::now_v7(),
                user_id: owner.0,
                channel_id: c.id.0,
                event_kind: event_kind.to_string(),
                dedup_key: required_text("dedup_key", dedup_key)?,
                payload: payload.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                last_error: None,
                next_attempt_at: t,
                created_at: t,
                sent_at: None,
            };
            created += notification_deliveries::Entity::insert(m.into_active_model())
                .on_conflict(
                    OnConflict::columns([
                        notification_deliveries::Column::ChannelId,
                        notification_deliveries::Column::DedupKey,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(self.store.db())
                .await
                .map_err(|e| StoreError::db("notification delivery", e))?;
        }
        Ok(created)
    }

    /// Records a delivery attempt: delivered, or failed with the next attempt time (`None` =
    /// give up).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn record_attempt(
        &self,
        owner: UserId,
        id: DeliveryId,
        result: Result<(), (&str, Option<DateTime<Utc>>)>,
    ) -> StoreResult<()> {
        use notification_deliveries::Column as C;
        let t = now();
        let mut q = notification_deliveries::Entity::update_many()
            .col_expr(C::Attempts, Expr::col(C::Attempts).add(1));
        q = match result {
            Ok(()) => q
                .col_expr(C::Status, Expr::value(DeliveryStatus::Sent))
                .col_expr(C::SentAt, Expr::value(Some(t))),
            Err((error, next)) => q
                .col_expr(C::LastError, Expr::value(Some(error.to_string())))
                .col_expr(
                    C::Status,
                    Expr::value(if next.is_some() {
                        DeliveryStatus::Pending
                    } else {
                        DeliveryStatus::Failed
                    }),
                )
                .col_expr(C::NextAttemptAt, Expr::value(next.map_or(t, at))),
        };
        super::update_owned(self.store, q, id, owner).await
    }
}

impl super::system::System<'_> {
    /// Pending deliveries due at `now`, oldest first (the notifier's work list).
    ///
    /// # Errors
    /// Database errors.
    pub async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<DueDelivery>> {
        use notification_deliveries::Column as C;
        Ok(notification_deliveries::Entity::find()
            .filter(C::Status.eq(DeliveryStatus::Pending))
            .filter(C::NextAttemptAt.lte(at(now)))
            .order_by_asc(C::NextAttemptAt)
            .limit(limit)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification delivery", e))?
            .into_iter()
            .map(|m| DueDelivery {
                id: DeliveryId(m.id),
                owner: UserId(m.user_id),
                channel: ChannelId(m.channel_id),
                event_kind: m.event_kind,
                payload: m.payload,
                attempts: m.attempts,
            })
            .collect())
    }
}

impl Store {
    /// Notification channels and deliveries.
    #[must_use]
    pub fn notifications(&self) -> Notifications<'_> {
        Notifications { store: self }
    }
}
