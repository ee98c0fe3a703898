//! Broker accounts (credentials sealed at rest, token state, health flags) and their
//! sub-accounts.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, EntityTrait, FromQueryResult, IntoActiveModel, JoinType, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, RelationDef,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ReadScope, at, now, optional_text, required_text};
use crate::Store;
use jt_broker::BrokerKind;

use crate::entity::{Environment, IntentStatus, broker_accounts, order_intents, sub_accounts};
use crate::error::{StoreError, StoreResult};
use crate::ids::{BrokerAccountId, IntentId, SubAccountId, UserId};
use crate::secret::{Secret, SecretError, aad};

/// Everything needed to log in at a broker. Which fields a broker uses: Tradovate /
/// NinjaTrader credential login `username` + `password` + `app_id` + `app_version` +
/// `client_id` (cid) + `client_secret` (sec) + `device_id`, or OAuth `refresh_token`;
/// ProjectX `username` + `api_key`; Webull `api_key` (app key) + `api_secret`. The secret
/// fields are [`Secret`]s, so this type can be logged or serialized without leaking them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerCredentials {
    /// Login password.
    pub password: Option<Secret>,
    /// API key (ProjectX) or app key (Webull).
    pub api_key: Option<Secret>,
    /// App secret (Webull).
    pub api_secret: Option<Secret>,
    /// Application id (Tradovate `appId`).
    pub app_id: Option<String>,
    /// Application version (Tradovate `appVersion`).
    pub app_version: Option<String>,
    /// Client id (Tradovate `cid`).
    pub client_id: Option<String>,
    /// Client secret (Tradovate `sec`).
    pub client_secret: Option<Secret>,
    /// Device id (Tradovate `deviceId`).
    pub device_id: Option<String>,
    /// OAuth refresh token.
    pub refresh_token: Option<Secret>,
}

/// The plaintext form that is sealed (kept private: it is the one place secrets are
/// serialized in clear, straight into the cipher).
#[derive(Serialize, Deserialize)]
#[serde(default)]
#[derive(Default)]
struct CredentialsPlain {
    password: Option<String>,
    api_key: Option<String>,
    api_secret: Option<String>,
    app_id: Option<String>,
    app_version: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    device_id: Option<String>,
    refresh_token: Option<String>,
}

impl From<&BrokerCredentials> for CredentialsPlain {
    fn from(c: &BrokerCredentials) -> Self {
        let s = |v: &Option<Secret>| v.as_ref().map(|x| x.expose().to_string());
        Self {
            password: s(&c.password),
            api_key: s(&c.api_key),
            api_secret: s(&c.api_secret),
            app_id: c.app_id.clone(),
            app_version: c.app_version.clone(),
            client_id: c.client_id.clone(),
            client_secret: s(&c.client_secret),
            device_id: c.device_id.clone(),
            refresh_token: s(&c.refresh_token),
        }
    }
}

impl From<CredentialsPlain> for BrokerCredentials {
    fn from(p: CredentialsPlain) -> Self {
        Self {
            password: p.password.map(Secret::new),
            api_key: p.api_key.map(Secret::new),
            api_secret: p.api_secret.map(Secret::new),
            app_id: p.app_id,
            app_version: p.app_version,
            client_id: p.client_id,
            client_secret: p.client_secret.map(Secret::new),
            device_id: p.device_id,
            refresh_token: p.refresh_token.map(Secret::new),
        }
    }
}

const CREDENTIALS: &str = "broker account credentials";
pub(super) const ACCESS_TOKEN: &str = "broker access token";

/// A new broker account.
#[derive(Debug, Clone)]
pub struct NewBrokerAccount {
    /// The user's name for it.
    pub label: String,
    /// The broker.
    pub broker: BrokerKind,
    /// Demo or live.
    pub environment: Environment,
    /// Login name (not secret).
    pub username: Option<String>,
    /// Login secrets (sealed before storage).
    pub credentials: BrokerCredentials,
    /// Refuse any entry that would lack a stop or a target (prop-firm rule, DOMAIN.md §7).
    pub require_brackets: bool,
}

/// A broker account as services and the API see it: no secrets, only whether they exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerAccount {
    /// Id.
    pub id: BrokerAccountId,
    /// Owner.
    pub owner: UserId,
    /// The user's name for it.
    pub label: String,
    /// The broker.
    pub broker: BrokerKind,
    /// Demo or live.
    pub environment: Environment,
    /// Login name.
    pub username: Option<String>,
    /// Whether login secrets are stored.
    pub has_credentials: bool,
    /// Whether an access token is stored.
    pub has_access_token: bool,
    /// When the stored access token expires (from the broker's response).
    pub token_expires_at: Option<DateTime<Utc>>,
    /// Token renewal and re-login failed: the user must enter credentials again.
    pub needs_reauth: bool,
    /// Why re-authentication is needed.
    pub reauth_reason: Option<String>,
    /// No login attempt before this instant (captcha lock-out).
    pub locked_until: Option<DateTime<Utc>>,
    /// The last error talking to the broker.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Refuse entries without both a stop and a target.
    pub require_brackets: bool,
    /// Whether the account trades at all.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<broker_accounts::Model> for BrokerAccount {
    fn from(m: broker_accounts::Model) -> Self {
        Self {
            id: BrokerAccountId(m.id),
            owner: UserId(m.user_id),
            label: m.label,
            broker: m.broker,
            environment: m.environment,
            username: m.username,
            has_credentials: m.credentials_enc.is_some(),
            has_access_token: m.access_token_enc.is_some(),
            token_expires_at: m.token_expires_at,
            needs_reauth: m.needs_reauth,
            reauth_reason: m.reauth_reason,
            locked_until: m.locked_until,
            last_error: m.last_error,
            last_error_at: m.last_error_at,
            require_brackets: m.require_brackets,
            enabled: m.enabled,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A stored access token and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token.
    pub token: Secret,
    /// Its expiry as the broker reported it.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Changes to an account's plain fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    /// New label.
    pub label: Option<String>,
    /// New login name (`Some(None)` clears it).
    pub username: Option<Option<String>>,
    /// New `require_brackets`.
    pub require_brackets: Option<bool>,
    /// Enable or disable trading on the account.
    pub enabled: Option<bool>,
}

/// A broker sub-account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubAccount {
    /// Id.
    pub id: SubAccountId,
    /// Owner.
    pub owner: UserId,
    /// The broker account it is reached through.
    pub broker_account: BrokerAccountId,
    /// The broker's own id of it.
    pub broker_sub_account_id: String,
    /// Its name at the broker (e.g. `DEMO6385596`).
    pub name: String,
    /// Whether the broker still lists it.
    pub active: bool,
    /// The user's switch: a disabled sub-account gets no new entries (exits still go).
    pub enabled: bool,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<sub_accounts::Model> for SubAccount {
    fn from(m: sub_accounts::Model) -> Self {
        Self {
            id: SubAccountId(m.id),
            owner: UserId(m.user_id),
            broker_account: BrokerAccountId(m.broker_account_id),
            broker_sub_account_id: m.broker_sub_account_id,
            name: m.name,
            active: m.active,
            enabled: m.enabled,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A sub-account as the broker lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSubAccount {
    /// The broker's id.
    pub broker_sub_account_id: String,
    /// Its name.
    pub name: String,
}

/// Broker accounts and sub-accounts of one owner.
#[derive(Debug, Clone, Copy)]
pub struct Accounts<'a> {
    pub(crate) store: &'a Store,
}

impl Accounts<'_> {
    /// Stores a new account with its credentials sealed.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for an empty label; [`StoreError::Secret`] when the store has
    /// no key.
    pub async fn create(&self, owner: UserId, new: NewBrokerAccount) -> StoreResult<BrokerAccount> {
        let label = required_text("label", &new.label)?;
        let id = Uuid::now_v7();
        let creds = self.seal_credentials(id, &new.credentials)?;
        let t = now();
        let model = broker_accounts::Model {
            id,
            user_id: owner.0,
            label,
            broker: new.broker,
            environment: new.environment,
            username: optional_text(new.username.as_deref()),
            credentials_enc: Some(creds),
            access_token_enc: None,
            token_expires_at: None,
            needs_reauth: false,
            reauth_reason: None,
            locked_until: None,
            last_error: None,
            last_error_at: None,
            require_brackets: new.require_brackets,
            enabled: true,
            created_at: t,
            updated_at: t,
            md_access_token_enc: None,
            token_obtained_at: None,
            broker_user_id: None,
            login_claimed_by: None,
            login_claimed_until: None,
        };
        broker_accounts::Entity::insert(model.clone().into_active_model())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker account", e))?;
        Ok(model.into())
    }

    /// One of the owner's accounts.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such account.
    pub async fn get(
        &self,
        scope: impl ReadScope,
        id: BrokerAccountId,
    ) -> StoreResult<BrokerAccount> {
        self.model(scope.owner(), id).await.map(BrokerAccount::from)
    }

    /// The owner's accounts, oldest first.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn list(&self, scope: impl ReadScope) -> StoreResult<Vec<BrokerAccount>> {
        Ok(broker_accounts::Entity::find()
            .filter(broker_accounts::Column::UserId.eq(scope.owner().0))
            .order_by_asc(broker_accounts::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker account", e))?
            .into_iter()
            .map(BrokerAccount::from)
            .collect())
    }

    /// Changes plain fields.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such account.
    pub async fn update(
        &self,
        owner: UserId,
        id: BrokerAccountId,
        u: AccountUpdate,
    ) -> StoreResult<BrokerAccount> {
        let mut q = broker_accounts::Entity::update_many()
            .col_expr(broker_accounts::Column::UpdatedAt, Expr::value(now()));
        if let Some(l) = &u.label {
            q = q.col_expr(
                broker_accounts::Column::Label,
                Expr::value(required_text("label", l)?),
            );
        }
        if let Some(name) = &u.username {
            q = q.col_expr(
                broker_accounts::Column::Username,
                Expr::value(optional_text(name.as_deref())),
            );
        }
        if let Some(b) = u.require_brackets {
            q = q.col_expr(broker_accounts::Column::RequireBrackets, Expr::value(b));
        }
        if let Some(e) = u.enabled {
            q = q.col_expr(broker_accounts::Column::Enabled, Expr::value(e));
        }
        super::update_owned(self.store, q, id, owner).await?;
        self.get(owner, id).await
    }

    /// Replaces the login secrets (the user entered them again): clears `needs_reauth`, the
    /// lock-out and the stored session (access and market-data tokens).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Secret`] when the store has no key.
    pub async fn set_credentials(
        &self,
        owner: UserId,
        id: BrokerAccountId,
        creds: &BrokerCredentials,
    ) -> StoreResult<()> {
        let sealed = self.seal_credentials(id.0, creds)?;
        let q = broker_accounts::Entity::update_many()
            .col_expr(
                broker_accounts::Column::CredentialsEnc,
                Expr::value(Some(sealed)),
            )
            .col_expr(
                broker_accounts::Column::AccessTokenEnc,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .col_expr(
                broker_accounts::Column::TokenExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                broker_accounts::Column::MdAccessTokenEnc,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .col_expr(
                broker_accounts::Column::TokenObtainedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(broker_accounts::Column::NeedsReauth, Expr::value(false))
            .col_expr(
                broker_accounts::Column::ReauthReason,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                broker_accounts::Column::LockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(broker_accounts::Column::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await
    }

    /// The login secrets, opened. For the broker adapters only.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such account or it has no credentials;
    /// [`StoreError::Secret`] for a wrong key or a damaged value.
    pub async fn credentials(
        &self,
        owner: UserId,
        id: BrokerAccountId,
    ) -> StoreResult<BrokerCredentials> {
        let m = self.model(owner, id).await?;
        let sealed = m
            .credentials_enc
            .ok_or_else(|| StoreError::not_found("broker account credentials", id))?;
        let plain = self.store.cipher()?.open(
            CREDENTIALS,
            &aad("broker_accounts", "credentials_enc", id.0),
            &sealed,
        )?;
        let p: CredentialsPlain = serde_json::from_slice(&plain)
            .map_err(|_| StoreError::Secret(SecretError::Undecryptable { what: CREDENTIALS }))?;
        Ok(p.into())
    }

    /// Stores a fresh access token and its expiry (from the broker's response, never an
    /// assumed constant); clears `needs_reauth`. Call only after an explicit success: a failed
    /// renewal must not overwrite a valid token.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Secret`] when the store has no key.
    pub async fn store_access_token(
        &self,
        owner: UserId,
        id: BrokerAccountId,
        token: &Secret,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let sealed = self
            .store
            .cipher()?
            .seal_secret(&aad("broker_accounts", "access_token_enc", id.0), token)?;
        let q = broker_accounts::Entity::update_many()
            .col_expr(
                broker_accounts::Column::AccessTokenEnc,
                Expr::value(Some(sealed)),
            )
            .col_expr(
                broker_accounts::Column::TokenExpiresAt,
                Expr::value(expires_at.map(at)),
            )
            // The shared session's other columns belonged to the previous token.
            .col_expr(
                broker_accounts::Column::TokenObtainedAt,
                Expr::value(Some(now())),
            )
            .col_expr(
                broker_accounts::Column::MdAccessTokenEnc,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .col_expr(broker_accounts::Column::NeedsReauth, Expr::value(false))
            .col_expr(
                broker_accounts::Column::ReauthReason,
                Expr::value(Option::<String>::None),
            )
            .col_expr(broker_accounts::Column::UpdatedAt, Expr::value(now()));
        super::update_owned(self.store, q, id, owner).await
    }

    /// The stored access token, opened; `None` when there is none.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Secret`] for a wrong key or damaged value.
    pub async fn access_token(
        &self,
        owner: UserId,
        id: BrokerAccountId,
    ) -> StoreResult<Option<AccessToken>> {
        let m = self.model(owner, id).await?;
        let Some(sealed) = m.access_token_enc else {
            return Ok(None);
        };
        let token = self.store.cipher()?.open_secret(
            ACCESS_TOKEN,
            &aad("broker_accounts", "access_token_enc", id.0),
            &sealed,
        )?;
        Ok(Some(AccessToken {
            token,
            expires_at: m.token_expires_at,
        }))
    }

    /// Marks the account as needing re-authentication (renewal and re-login failed).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn mark_needs_reauth(
        &self,
        owner: UserId,
        id: BrokerAccountId,
        reason: &str,
    ) -> StoreResult<()> {
        let t = now();
        let q = broker_accounts::Entity::update_many()
            .col_expr(broker_accounts::Column::NeedsReauth, Expr::value(true))
            .col_expr(
                broker_accounts::Column::ReauthReason,
                Expr::value(Some(reason.to_string())),
            )
            .col_expr(
                broker_accounts::Column::LastError,
                Expr::value(Some(reason.to_string())),
            )
            .col_expr(broker_accounts::Column::LastErrorAt, Expr::value(Some(t)))
            .col_expr(broker_accounts::Column::UpdatedAt, Expr::value(t));
        super::update_owned(self.store, q, id, owner).await
    }

    /// Records the last error talking to the broker.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn record_error(
        &self,
        owner: UserId,
        id: BrokerAccountId,
        error: &str,
    ) -> StoreResult<()> {
        let t = now();
        let q = broker_accounts::Entity::update_many()
            .col_expr(
                broker_accounts::Column::LastError,
                Expr::value(Some(error.to_string())),
            )
            .col_expr(broker_accounts::Column::LastErrorAt, Expr::value(Some(t)))
            .col_expr(broker_accounts::Column::UpdatedAt, Expr::value(t));
        super::update_owned(self.store, q, id, owner).await
    }

    /// Locks logins out until `until` (a captcha demand: stop trying for an hour).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn lock_until(
        &self,
        owner: UserId,
        id: BrokerAccountId,
        until: DateTime<Utc>,
        reason: &str,
    ) -> StoreResult<()> {
        let t = now();
        let q = broker_accounts::Entity::update_many()
            .col_expr(
                broker_accounts::Column::LockedUntil,
                Expr::value(Some(at(until))),
            )
            .col_expr(
                broker_accounts::Column::LastError,
                Expr::value(Some(reason.to_string())),
            )
            .col_expr(broker_accounts::Column::LastErrorAt, Expr::value(Some(t)))
            .col_expr(broker_accounts::Column::UpdatedAt, Expr::value(t));
        super::update_owned(self.store, q, id, owner).await
    }

    /// Deletes the account; its sub-accounts, traders, intents, orders, fills, positions,
    /// leaders, followers and breaches go with it (foreign keys, see `docs/store.md`).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete(&self, owner: UserId, id: BrokerAccountId) -> StoreResult<()> {
        super::delete_owned::<broker_accounts::Entity>(self.store, id, owner).await
    }

    /// Brings the stored sub-accounts in line with the broker's list: new ones are added,
    /// known ones renamed and re-activated, missing ones marked inactive (never deleted: their
    /// history stays). Idempotent. Returns the account's sub-accounts.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such account.
    pub async fn sync_sub_accounts(
        &self,
        owner: UserId,
        account: BrokerAccountId,
        listed: &[BrokerSubAccount],
    ) -> StoreResult<Vec<SubAccount>> {
        self.model(owner, account).await?;
        let t = now();
        for s in listed {
            let model = sub_accounts::Model {
                id: Uuid::now_v7(),
                user_id: owner.0,
                broker_account_id: account.0,
                broker_sub_account_id: required_text(
                    "broker sub-account id",
                    &s.broker_sub_account_id,
                )?,
                name: required_text("sub-account name", &s.name)?,
                active: true,
                enabled: true,
                created_at: t,
                updated_at: t,
            };
            sub_accounts::Entity::insert(model.into_active_model())
                .on_conflict(
                    OnConflict::columns([
                        sub_accounts::Column::BrokerAccountId,
                        sub_accounts::Column::BrokerSubAccountId,
                    ])
                    .update_columns([
                        sub_accounts::Column::Name,
                        sub_accounts::Column::Active,
                        sub_accounts::Column::UpdatedAt,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(self.store.db())
                .await
                .map_err(|e| StoreError::db("sub-account", e))?;
        }
        let listed_ids: HashSet<&str> = listed
            .iter()
            .map(|s| s.broker_sub_account_id.trim())
            .collect();
        let existing = self.sub_accounts(owner, account).await?;
        for s in existing
            .iter()
            .filter(|s| s.active && !listed_ids.contains(s.broker_sub_account_id.as_str()))
        {
            sub_accounts::Entity::update_many()
                .col_expr(sub_accounts::Column::Active, Expr::value(false))
                .col_expr(sub_accounts::Column::UpdatedAt, Expr::value(t))
                .filter(sub_accounts::Column::Id.eq(s.id.0))
                .filter(sub_accounts::Column::UserId.eq(owner.0))
                .exec(self.store.db())
                .await
                .map_err(|e| StoreError::db("sub-account", e))?;
        }
        self.sub_accounts(owner, account).await
    }

    /// The sub-accounts of one of the owner's accounts.
    ///
    /// # Errors
    /// Database errors only (an unknown account has none).
    pub async fn sub_accounts(
        &self,
        scope: impl ReadScope,
        account: BrokerAccountId,
    ) -> StoreResult<Vec<SubAccount>> {
        Ok(sub_accounts::Entity::find()
            .filter(sub_accounts::Column::UserId.eq(scope.owner().0))
            .filter(sub_accounts::Column::BrokerAccountId.eq(account.0))
            .order_by_asc(sub_accounts::Column::Name)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("sub-account", e))?
            .into_iter()
            .map(SubAccount::from)
            .collect())
    }

    /// One sub-account.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such sub-account.
    pub async fn sub_account(
        &self,
        scope: impl ReadScope,
        id: SubAccountId,
    ) -> StoreResult<SubAccount> {
        sub_accounts::Entity::find_by_id(id.0)
            .filter(sub_accounts::Column::UserId.eq(scope.owner().0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("sub-account", e))?
            .map(SubAccount::from)
            .ok_or_else(|| StoreError::not_found("sub-account", id))
    }

    /// Turns one of the owner's sub-accounts on or off (new entries; exits always go).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such sub-account.
    pub async fn set_sub_account_enabled(
        &self,
        owner: UserId,
        id: SubAccountId,
        enabled: bool,
    ) -> StoreResult<SubAccount> {
        let r = sub_accounts::Entity::update_many()
            .col_expr(sub_accounts::Column::Enabled, Expr::value(enabled))
            .col_expr(sub_accounts::Column::UpdatedAt, Expr::value(now()))
            .filter(sub_accounts::Column::Id.eq(id.0))
            .filter(sub_accounts::Column::UserId.eq(owner.0))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("sub-account", e))?;
        if r.rows_affected == 0 {
            return Err(StoreError::not_found("sub-account", id));
        }
        self.sub_account(owner, id).await
    }

    /// A sub-account with the account it is reached through.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn sub_account_with_account(
        &self,
        scope: impl ReadScope,
        id: SubAccountId,
    ) -> StoreResult<(SubAccount, BrokerAccount)> {
        let found = with_account(scope.owner(), id)
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("sub-account", e))?;
        match found {
            Some((sub, Some(account))) => Ok((SubAccount::from(sub), BrokerAccount::from(account))),
            _ => Err(StoreError::not_found("sub-account", id)),
        }
    }

    /// [`Accounts::sub_account_with_account`] and the state of the owner's intent `intent`
    /// (`None`: not recorded), in one statement: where the executor starts every intent.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the sub-account is not the owner's.
    pub async fn sub_account_for_intent(
        &self,
        scope: impl ReadScope,
        id: SubAccountId,
        intent: IntentId,
    ) -> StoreResult<(SubAccount, BrokerAccount, Option<IntentStatus>)> {
        let owner = scope.owner();
        // Found by its id alone, its owner checked in the answer (`CASE WHEN user_id = …`).
        // With `user_id` in the subquery's `WHERE` this statement took 8.8 ms a call in the
        // pipeline benchmark (20,000 intents of one owner; `pg_stat_statements`) against
        // 0.07 ms without, though a generic plan of the subquery alone reads the primary key
        // either way: keep it by id (`docs/benchmarks.md`).
        let status = order_intents::Entity::find_by_id(intent.0)
            .select_only()
            .expr(
                Expr::case(
                    order_intents::Column::UserId.eq(owner.0),
                    Expr::col(order_intents::Column::Status),
                )
                .finally(Expr::null()),
            )
            .into_query();
        let statement = with_account(owner, id)
            .expr_as(
                Expr::SubQuery(None, Box::new(status.into())),
                "intent_status",
            )
            .into_query();
        let row = super::one_row(self.store, &statement, "sub-account", id).await?;
        let read = |e: sea_orm::DbErr| StoreError::db("sub-account", e);
        // The prefixes `select_also` gives the two entities' columns.
        let sub = sub_accounts::Model::from_query_result(&row, "A_").map_err(read)?;
        let account = broker_accounts::Model::from_query_result(&row, "B_").map_err(read)?;
        let status: Option<IntentStatus> = row.try_get("", "intent_status").map_err(read)?;
        Ok((SubAccount::from(sub), BrokerAccount::from(account), status))
    }

    async fn model(
        &self,
        owner: UserId,
        id: BrokerAccountId,
    ) -> StoreResult<broker_accounts::Model> {
        broker_accounts::Entity::find_by_id(id.0)
            .filter(broker_accounts::Column::UserId.eq(owner.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker account", e))?
            .ok_or_else(|| StoreError::not_found("broker account", id))
    }

    fn seal_credentials(&self, id: Uuid, creds: &BrokerCredentials) -> StoreResult<Vec<u8>> {
        let plain = serde_json::to_vec(&CredentialsPlain::from(creds))
            .map_err(|e| StoreError::invalid("credentials", e.to_string()))?;
        Ok(self
            .store
            .cipher()?
            .seal(&aad("broker_accounts", "credentials_enc", id), &plain)?)
    }
}

impl Store {
    /// Broker accounts and sub-accounts.
    #[must_use]
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts { store: self }
    }
}

/// The owner's sub-account `id` joined to its account, both under the owner's scope: one
/// statement (the execution reads it for every intent).
fn with_account(
    owner: UserId,
    id: SubAccountId,
) -> sea_orm::SelectTwo<sub_accounts::Entity, broker_accounts::Entity> {
    let to_account: RelationDef = sub_accounts::Entity::belongs_to(broker_accounts::Entity)
        .from(sub_accounts::Column::BrokerAccountId)
        .to(broker_accounts::Column::Id)
        .into();
    sub_accounts::Entity::find_by_id(id.0)
        .filter(sub_accounts::Column::UserId.eq(owner.0))
        .join(JoinType::InnerJoin, to_account)
        .filter(broker_accounts::Column::UserId.eq(owner.0))
        .select_also(broker_accounts::Entity)
}
