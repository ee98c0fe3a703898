//! Outbound notification channels (targets sealed: webhook URLs carry their own secret; a
//! webhook channel also has a sealed signing secret) and their delivery log: at least once,
//! one row per channel and event.
//!
//! The notifier (`jt-notify`) works on the [`System`](super::system::System) path: it lists due
//! deliveries, *claims* each before sending ([`System::claim_delivery`](super::system::System)),
//! and records the attempt. A claim is a conditional update that moves the row's next attempt
//! past the send's time-out, so two notifier replicas never send the same delivery at once,
//! and a replica that dies mid-send leaves the row due again when the claim runs out.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use uuid::Uuid;

use super::{ReadScope, at, from_json, now, required_text, to_json};
use crate::Store;
use crate::entity::{
    ChannelKind, DeliveryStatus, Role, notification_channels, notification_deliveries, recorders,
    sub_accounts, users,
};
use crate::error::{StoreError, StoreResult};
use crate::ids::{ChannelId, DeliveryId, UserId};
use crate::secret::{Secret, aad};

const TARGET: &str = "notification target";
const SIGNING: &str = "notification signing secret";

/// The prefix of a webhook channel's signing secret (the whole text, prefix included, is the
/// HMAC key).
pub const SIGNING_PREFIX: &str = "whsec_";

/// A fresh signing secret: the prefix and 256 random bits.
fn new_signing_secret() -> Secret {
    Secret::new(format!(
        "{SIGNING_PREFIX}{}",
        crate::auth::random_token().expose()
    ))
}

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
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl Channel {
    fn from_model(m: notification_channels::Model) -> StoreResult<Self> {
        Ok(Self {
            events: from_json("notification channel", m.id, m.events)?,
            id: ChannelId(m.id),
            kind: m.kind,
            label: m.label,
            enabled: m.enabled,
            created_at: m.created_at,
        })
    }
}

/// Changes to a channel: `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    /// New name.
    pub label: Option<String>,
    /// New target (URL or address; sealed).
    pub target: Option<Secret>,
    /// New event kinds.
    pub events: Option<Vec<String>>,
    /// On or off.
    pub enabled: Option<bool>,
}

/// A channel opened for sending: its target and signing secret in clear.
#[derive(Debug, Clone)]
pub struct OpenChannel {
    /// Kind.
    pub kind: ChannelKind,
    /// On or off.
    pub enabled: bool,
    /// URL or e-mail address.
    pub target: Secret,
    /// A webhook channel's signing secret.
    pub signing_secret: Option<Secret>,
}

/// One row of the delivery log, as the owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Id.
    pub id: DeliveryId,
    /// Channel.
    pub channel: ChannelId,
    /// Event kind.
    pub event_kind: String,
    /// De-duplication key of the event.
    pub dedup_key: String,
    /// Payload.
    pub payload: serde_json::Value,
    /// Pending, sent or failed.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: i64,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When the next attempt is due (pending).
    pub next_attempt_at: DateTime<Utc>,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Delivered.
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<notification_deliveries::Model> for Delivery {
    fn from(m: notification_deliveries::Model) -> Self {
        Self {
            id: DeliveryId(m.id),
            channel: ChannelId(m.channel_id),
            event_kind: m.event_kind,
            dedup_key: m.dedup_key,
            payload: m.payload,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
            next_attempt_at: m.next_attempt_at,
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}

/// Which deliveries a page of the log shows: filters optional, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Only this channel's.
    pub channel: Option<ChannelId>,
    /// Only in this state.
    pub status: Option<DeliveryStatus>,
    /// Continue after this row (the last of the previous page): its time and id.
    pub after: Option<(DateTime<Utc>, DeliveryId)>,
    /// At most this many (1..=500).
    pub limit: u64,
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
    /// De-duplication key of the event.
    pub dedup_key: String,
    /// Payload.
    pub payload: serde_json::Value,
    /// Attempts so far.
    pub attempts: i64,
    /// When the next attempt was due (what a claim compares against).
    pub next_attempt_at: DateTime<Utc>,
    /// Queued.
    pub created_at: DateTime<Utc>,
}

/// Notification channels and deliveries.
#[derive(Debug, Clone, Copy)]
pub struct Notifications<'a> {
    pub(crate) store: &'a Store,
}

impl Notifications<'_> {
    /// Adds a channel (a webhook channel gets a signing secret, readable once through
    /// [`Self::create_channel_with_secret`]).
    ///
    /// # Errors
    /// [`StoreError::Invalid`]; [`StoreError::Secret`] when the store has no key.
    pub async fn create_channel(&self, owner: UserId, c: NewChannel) -> StoreResult<Channel> {
        Ok(self.create_channel_with_secret(owner, c).await?.0)
    }

    /// Adds a channel and returns it with its signing secret (webhook channels only): the one
    /// time the secret is shown.
    ///
    /// # Errors
    /// [`StoreError::Invalid`]; [`StoreError::Secret`] when the store has no key.
    pub async fn create_channel_with_secret(
        &self,
        owner: UserId,
        c: NewChannel,
    ) -> StoreResult<(Channel, Option<Secret>)> {
        let id = Uuid::now_v7();
        if c.target.expose().trim().is_empty() {
            return Err(StoreError::invalid("target", "must not be empty"));
        }
        let cipher = self.store.cipher()?;
        let sealed =
            cipher.seal_secret(&aad("notification_channels", "target_enc", id), &c.target)?;
        let signing = (c.kind == ChannelKind::Webhook).then(new_signing_secret);
        let secret_enc = match &signing {
            Some(s) => {
                Some(cipher.seal_secret(&aad("notification_channels", "secret_enc", id), s)?)
            }
            None => None,
        };
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
            secret_enc,
        };
        let label = m.label.clone();
        notification_channels::Entity::insert(m.into_active_model())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification channel", e))?;
        Ok((
            Channel {
                id: ChannelId(id),
                kind: c.kind,
                label,
                events: c.events,
                enabled: true,
                created_at: t,
            },
            signing,
        ))
    }

    /// One channel of the owner.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn channel(&self, scope: impl ReadScope, id: ChannelId) -> StoreResult<Channel> {
        let m = notification_channels::Entity::find_by_id(id.0)
            .filter(notification_channels::Column::UserId.eq(scope.owner().0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification channel", e))?
            .ok_or_else(|| StoreError::not_found("notification channel", id))?;
        Channel::from_model(m)
    }

    /// Changes a channel.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Invalid`]; [`StoreError::Secret`].
    pub async fn update_channel(
        &self,
        owner: UserId,
        id: ChannelId,
        p: ChannelPatch,
    ) -> StoreResult<Channel> {
        use notification_channels::Column as C;
        let mut q =
            notification_channels::Entity::update_many().col_expr(C::UpdatedAt, Expr::value(now()));
        if let Some(label) = &p.label {
            q = q.col_expr(C::Label, Expr::value(required_text("label", label)?));
        }
        if let Some(events) = &p.events {
            q = q.col_expr(C::Events, Expr::value(to_json("events", events)?));
        }
        if let Some(enabled) = p.enabled {
            q = q.col_expr(C::Enabled, Expr::value(enabled));
        }
        if let Some(target) = &p.target {
            if target.expose().trim().is_empty() {
                return Err(StoreError::invalid("target", "must not be empty"));
            }
            let sealed = self
                .store
                .cipher()?
                .seal_secret(&aad("notification_channels", "target_enc", id.0), target)?;
            q = q.col_expr(C::TargetEnc, Expr::value(sealed));
        }
        super::update_owned(self.store, q, id, owner).await?;
        self.channel(owner, id).await
    }

    /// Replaces a webhook channel's signing secret with a new random one and returns it: the
    /// one time it is shown. The old secret stops signing at once (no grace period: a receiver
    /// updates its copy, and deliveries signed meanwhile are checked against the new one).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Conflict`] for a channel that is not a webhook
    /// (it has no signing secret); [`StoreError::Secret`].
    pub async fn rotate_signing_secret(&self, owner: UserId, id: ChannelId) -> StoreResult<Secret> {
        use notification_channels::Column as C;
        let channel = self.channel(owner, id).await?;
        if channel.kind != ChannelKind::Webhook {
            return Err(StoreError::Conflict {
                entity: "notification channel",
                detail: "only a webhook channel has a signing secret".into(),
            });
        }
        let signing = new_signing_secret();
        let sealed = self
            .store
            .cipher()?
            .seal_secret(&aad("notification_channels", "secret_enc", id.0), &signing)?;
        let q = notification_channels::Entity::update_many()
            .col_expr(C::SecretEnc, Expr::value(Some(sealed)))
            .col_expr(C::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await?;
        Ok(signing)
    }

    /// A channel opened for sending: target and signing secret in clear (the notifier's).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Secret`].
    pub async fn open(&self, owner: UserId, id: ChannelId) -> StoreResult<OpenChannel> {
        let m = notification_channels::Entity::find_by_id(id.0)
            .filter(notification_channels::Column::UserId.eq(owner.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification channel", e))?
            .ok_or_else(|| StoreError::not_found("notification channel", id))?;
        let cipher = self.store.cipher()?;
        let target = cipher.open_secret(
            TARGET,
            &aad("notification_channels", "target_enc", id.0),
            &m.target_enc,
        )?;
        let signing_secret = match &m.secret_enc {
            Some(enc) => Some(cipher.open_secret(
                SIGNING,
                &aad("notification_channels", "secret_enc", id.0),
                enc,
            )?),
            None => None,
        };
        Ok(OpenChannel {
            kind: m.kind,
            enabled: m.enabled,
            target,
            signing_secret,
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
            .map(Channel::from_model)
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
        let mut created = 0;
        for c in channels
            .iter()
            .filter(|c| c.enabled && c.events.iter().any(|e| e == event_kind))
        {
            created += self
                .insert_delivery(owner, c.id, event_kind, dedup_key, payload)
                .await?;
        }
        Ok(created)
    }

    /// The approved users with the admin role: who hears of platform-wide events
    /// (`dead_letter`), oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn admins(&self) -> StoreResult<Vec<UserId>> {
        let ids: Vec<Uuid> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::Role.eq(Role::Admin))
            .filter(users::Column::Approved.eq(true))
            .order_by_asc(users::Column::Id)
            .into_tuple()
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    /// The owner of a sub-account, if there is one with this id (a dead letter's subject names
    /// its sub-account).
    ///
    /// # Errors
    /// Database errors.
    pub async fn sub_account_owner(&self, id: Uuid) -> StoreResult<Option<UserId>> {
        let owner: Option<Uuid> = sub_accounts::Entity::find_by_id(id)
            .select_only()
            .column(sub_accounts::Column::UserId)
            .into_tuple()
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("sub-account", e))?;
        Ok(owner.map(UserId))
    }

    /// The owner of a recorder, if there is one with this id (a dead signal's subject names its
    /// recorder).
    ///
    /// # Errors
    /// Database errors.
    pub async fn recorder_owner(&self, id: Uuid) -> StoreResult<Option<UserId>> {
        let owner: Option<Uuid> = recorders::Entity::find_by_id(id)
            .select_only()
            .column(recorders::Column::UserId)
            .into_tuple()
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("recorder", e))?;
        Ok(owner.map(UserId))
    }

    /// Queues an event for one channel of the owner, whatever kinds it subscribes to (a test
    /// event). Returns whether the delivery is new (`false`: the key was queued before).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; database errors.
    pub async fn enqueue_to(
        &self,
        owner: UserId,
        channel: ChannelId,
        event_kind: &str,
        dedup_key: &str,
        payload: &serde_json::Value,
    ) -> StoreResult<bool> {
        self.channel(owner, channel).await?;
        Ok(self
            .insert_delivery(owner, channel, event_kind, dedup_key, payload)
            .await?
            == 1)
    }

    async fn insert_delivery(
        &self,
        owner: UserId,
        channel: ChannelId,
        event_kind: &str,
        dedup_key: &str,
        payload: &serde_json::Value,
    ) -> StoreResult<u64> {
        let t = now();
        let m = notification_deliveries::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            channel_id: channel.0,
            event_kind: required_text("event_kind", event_kind)?,
            dedup_key: required_text("dedup_key", dedup_key)?,
            payload: crate::text::strip_nul_json_owned(payload.clone()),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            next_attempt_at: t,
            created_at: t,
            sent_at: None,
        };
        notification_deliveries::Entity::insert(m.into_active_model())
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
            .map_err(|e| StoreError::db("notification delivery", e))
    }

    /// A page of the owner's delivery log, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn deliveries(
        &self,
        scope: impl ReadScope,
        q: &DeliveryQuery,
    ) -> StoreResult<Vec<Delivery>> {
        use notification_deliveries::Column as C;
        let mut sel = notification_deliveries::Entity::find().filter(C::UserId.eq(scope.owner().0));
        if let Some(c) = q.channel {
            sel = sel.filter(C::ChannelId.eq(c.0));
        }
        if let Some(s) = q.status {
            sel = sel.filter(C::Status.eq(s));
        }
        if let Some((t, id)) = q.after {
            let t = at(t);
            sel = sel.filter(
                Condition::any()
                    .add(C::CreatedAt.lt(t))
                    .add(Condition::all().add(C::CreatedAt.eq(t)).add(C::Id.lt(id.0))),
            );
        }
        Ok(sel
            .order_by_desc(C::CreatedAt)
            .order_by_desc(C::Id)
            .limit(q.limit.clamp(1, 500))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification delivery", e))?
            .into_iter()
            .map(Delivery::from)
            .collect())
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
                dedup_key: m.dedup_key,
                payload: m.payload,
                attempts: m.attempts,
                next_attempt_at: m.next_attempt_at,
                created_at: m.created_at,
            })
            .collect())
    }

    /// Claims a due delivery until `until`: moves its next attempt there if it is still
    /// pending and due at `now`. `true`: this caller holds it (send, then record the attempt);
    /// `false`: another notifier claimed it first, or it was sent or given up meanwhile. The
    /// same call defers a delivery (a rate-limited channel) without counting an attempt.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim_delivery(
        &self,
        id: DeliveryId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        use notification_deliveries::Column as C;
        let r = notification_deliveries::Entity::update_many()
            .col_expr(C::NextAttemptAt, Expr::value(at(until)))
            .filter(C::Id.eq(id.0))
            .filter(C::Status.eq(DeliveryStatus::Pending))
            .filter(C::NextAttemptAt.lte(at(now)))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification delivery", e))?;
        Ok(r.rows_affected == 1)
    }

    /// How many pending deliveries are due at `now` (the notifier's queue gauge).
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_due(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        use notification_deliveries::Column as C;
        notification_deliveries::Entity::find()
            .filter(C::Status.eq(DeliveryStatus::Pending))
            .filter(C::NextAttemptAt.lte(at(now)))
            .count(self.store.db())
            .await
            .map_err(|e| StoreError::db("notification delivery", e))
    }
}

impl Store {
    /// Notification channels and deliveries.
    #[must_use]
    pub fn notifications(&self) -> Notifications<'_> {
        Notifications { store: self }
    }
}
