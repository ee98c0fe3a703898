//! Recorders: signal sources with their default settings and webhook token.

use chrono::{DateTime, Utc};
use jt_domain::Settings;
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use super::{ReadScope, from_json, now, optional_text, required_text, to_json};
use crate::Store;
use crate::auth::{random_token, token_hash};
use crate::decimal::DbDecimal;
use crate::entity::recorders;
use crate::error::{StoreError, StoreResult};
use crate::ids::{RecorderId, UserId};
use crate::secret::{Secret, aad};

const WEBHOOK_TOKEN: &str = "recorder webhook token";

/// A recorder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorder {
    /// Id.
    pub id: RecorderId,
    /// Owner.
    pub owner: UserId,
    /// The user's name for it.
    pub name: String,
    /// Default ticker when an alert carries none.
    pub symbol: Option<String>,
    /// Every setting of DOMAIN.md §4 (the traders' defaults).
    pub settings: Settings,
    /// Paper record: commission per contract, in dollars.
    pub commission_per_contract: Decimal,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Reads the settings column: every field of `jt_domain::Settings`, unknown names refused
/// (a renamed setting needs a data migration, never a silent default).
pub(crate) fn settings_of(id: Uuid, v: serde_json::Value) -> StoreResult<Settings> {
    from_json("recorder settings", id, v)
}

impl TryFrom<recorders::Model> for Recorder {
    type Error = StoreError;
    fn try_from(m: recorders::Model) -> StoreResult<Self> {
        Ok(Self {
            settings: settings_of(m.id, m.settings)?,
            id: RecorderId(m.id),
            owner: UserId(m.user_id),
            name: m.name,
            symbol: m.symbol,
            commission_per_contract: m.commission_per_contract.0,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// A new recorder.
#[derive(Debug, Clone)]
pub struct NewRecorder {
    /// The user's name for it.
    pub name: String,
    /// Default ticker.
    pub symbol: Option<String>,
    /// Its settings (validated before storage).
    pub settings: Settings,
    /// Paper commission per contract.
    pub commission_per_contract: Decimal,
}

/// Changes to a recorder's plain fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RecorderUpdate {
    /// New name.
    pub name: Option<String>,
    /// New default ticker (`Some(None)` clears it).
    pub symbol: Option<Option<String>>,
    /// New paper commission.
    pub commission_per_contract: Option<Decimal>,
}

fn validated(settings: &Settings) -> StoreResult<serde_json::Value> {
    settings
        .validate()
        .map_err(|e| StoreError::invalid("settings", e.to_string()))?;
    to_json("settings", settings)
}

/// Recorders of one owner.
#[derive(Debug, Clone, Copy)]
pub struct Recorders<'a> {
    pub(crate) store: &'a Store,
}

impl Recorders<'_> {
    /// Creates a recorder with a fresh webhook token, returned once here (and later through
    /// [`Recorders::webhook_token`] to its owner).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for an empty name or an invalid setting (named);
    /// [`StoreError::Secret`] when the store has no key.
    pub async fn create(&self, owner: UserId, new: NewRecorder) -> StoreResult<(Recorder, Secret)> {
        let id = Uuid::now_v7();
        let token = random_token();
        let t = now();
        let model = recorders::Model {
            id,
            user_id: owner.0,
            name: required_text("name", &new.name)?,
            symbol: optional_text(new.symbol.as_deref()),
            webhook_token_hash: token_hash(token.expose()),
            webhook_token_enc: self.seal_token(id, &token)?,
            settings: validated(&new.settings)?,
            commission_per_contract: DbDecimal(non_negative(new.commission_per_contract)?),
            created_at: t,
            updated_at: t,
        };
        recorders::Entity::insert(model.clone().into_active_model())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("recorder", e))?;
        Ok((Recorder::try_from(model)?, token))
    }

    /// One of the owner's recorders.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn get(&self, scope: impl ReadScope, id: RecorderId) -> StoreResult<Recorder> {
        self.model(scope.owner(), id).await?.try_into()
    }

    /// The owner's recorders, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for unreadable settings.
    pub async fn list(&self, scope: impl ReadScope) -> StoreResult<Vec<Recorder>> {
        recorders::Entity::find()
            .filter(recorders::Column::UserId.eq(scope.owner().0))
            .order_by_asc(recorders::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("recorder", e))?
            .into_iter()
            .map(Recorder::try_from)
            .collect()
    }

    /// Replaces the recorder's settings (every setting is stored as given).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming the setting out of range; [`StoreError::NotFound`].
    pub async fn update_settings(
        &self,
        owner: UserId,
        id: RecorderId,
        settings: &Settings,
    ) -> StoreResult<Recorder> {
        let q = recorders::Entity::update_many()
            .col_expr(
                recorders::Column::Settings,
                Expr::value(validated(settings)?),
            )
            .col_expr(recorders::Column::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await?;
        self.get(owner, id).await
    }

    /// Changes plain fields.
    ///
    /// # Errors
    /// [`StoreError::Invalid`]; [`StoreError::NotFound`].
    pub async fn update(
        &self,
        owner: UserId,
        id: RecorderId,
        u: RecorderUpdate,
    ) -> StoreResult<Recorder> {
        let mut q = recorders::Entity::update_many()
            .col_expr(recorders::Column::UpdatedAt, Expr::value(now()));
        if let Some(n) = &u.name {
            q = q.col_expr(
                recorders::Column::Name,
                Expr::value(required_text("name", n)?),
            );
        }
        if let Some(s) = &u.symbol {
            q = q.col_expr(
                recorders::Column::Symbol,
                Expr::value(optional_text(s.as_deref())),
            );
        }
        if let Some(c) = u.commission_per_contract {
            q = q.col_expr(
                recorders::Column::CommissionPerContract,
                Expr::value(DbDecimal(non_negative(c)?)),
            );
        }
        super::update_owned(self.store, q, id, owner).await?;
        self.get(owner, id).await
    }

    /// The webhook token, for showing the owner their webhook URL.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Secret`] for a wrong key.
    pub async fn webhook_token(&self, owner: UserId, id: RecorderId) -> StoreResult<Secret> {
        let m = self.model(owner, id).await?;
        Ok(self.store.cipher()?.open_secret(
            WEBHOOK_TOKEN,
            &aad("recorders", "webhook_token_enc", id.0),
            &m.webhook_token_enc,
        )?)
    }

    /// Replaces the webhook token (the old URL stops working at once); returns the new one.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Secret`] when the store has no key.
    pub async fn rotate_webhook_token(&self, owner: UserId, id: RecorderId) -> StoreResult<Secret> {
        let token = random_token();
        let q = recorders::Entity::update_many()
            .col_expr(
                recorders::Column::WebhookTokenHash,
                Expr::value(token_hash(token.expose())),
            )
            .col_expr(
                recorders::Column::WebhookTokenEnc,
                Expr::value(self.seal_token(id.0, &token)?),
            )
            .col_expr(recorders::Column::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await?;
        Ok(token)
    }

    /// Deletes the recorder with its traders, signals, webhook log and paper record.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete(&self, owner: UserId, id: RecorderId) -> StoreResult<()> {
        super::delete_owned::<recorders::Entity>(self.store, id, owner).await
    }

    pub(crate) async fn model(
        &self,
        owner: UserId,
        id: RecorderId,
    ) -> StoreResult<recorders::Model> {
        recorders::Entity::find_by_id(id.0)
            .filter(recorders::Column::UserId.eq(owner.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("recorder", e))?
            .ok_or_else(|| StoreError::not_found("recorder", id))
    }

    fn seal_token(&self, id: Uuid, token: &Secret) -> StoreResult<Vec<u8>> {
        Ok(self
            .store
            .cipher()?
            .seal_secret(&aad("recorders", "webhook_token_enc", id), token)?)
    }
}

fn non_negative(d: Decimal) -> StoreResult<Decimal> {
    if d < Decimal::ZERO {
        return Err(StoreError::invalid(
            "commission_per_contract",
            "must be >= 0",
        ));
    }
    Ok(d)
}

impl Store {
    /// Recorders.
    #[must_use]
    pub fn recorders(&self) -> Recorders<'_> {
        Recorders { store: self }
    }
}
