//! Users, passwords, login sessions, API tokens and password-reset tokens.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use super::{ReadScope, now, optional_text};
use crate::Store;
use crate::auth::{hash_password, random_token, token_hash, verify_password};
use crate::entity::{Role, api_tokens, login_sessions, password_reset_tokens, users};
use crate::error::{StoreError, StoreResult};
use crate::ids::{ApiTokenId, SessionId, UserId};
use crate::secret::Secret;

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 8;
/// How long a password-reset token stays valid (DOMAIN.md §11).
pub const RESET_TOKEN_TTL: Duration = Duration::hours(1);
/// `last_seen_at` / `last_used_at` are refreshed at most this often (no write per request).
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// A user as the API shows them (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Login e-mail, lower case.
    pub email: String,
    /// Name shown in the UI.
    pub display_name: Option<String>,
    /// `user` or `admin`.
    pub role: Role,
    /// Whether an admin approved the account.
    pub approved: bool,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<users::Model> for User {
    fn from(m: users::Model) -> Self {
        Self {
            id: UserId(m.id),
            email: m.email,
            display_name: m.display_name,
            role: m.role,
            approved: m.approved,
            created_at: m.created_at,
            last_login_at: m.last_login_at,
        }
    }
}

/// A registration.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login e-mail (stored lower case, unique).
    pub email: String,
    /// Name shown in the UI.
    pub display_name: Option<String>,
    /// The password (hashed with Argon2id before it is stored).
    pub password: Secret,
    /// Role.
    pub role: Role,
    /// Approved at once (first admin, demo user) or waiting for an admin.
    pub approved: bool,
}

/// The row of a new user: e-mail normalised, password checked and hashed (Argon2id, off the
/// async threads).
pub(crate) async fn user_row(new: NewUser) -> StoreResult<users::Model> {
    let email = normalize_email(&new.email)?;
    check_password(&new.password)?;
    let hash = hash_blocking(&new.password).await?;
    let t = now();
    Ok(users::Model {
        id: Uuid::now_v7(),
        email,
        display_name: optional_text(new.display_name.as_deref()),
        password_hash: hash,
        role: new.role,
        approved: new.approved,
        created_at: t,
        updated_at: t,
        last_login_at: None,
    })
}

/// Inserts a new user's row; a taken e-mail is a conflict that says so.
pub(crate) async fn insert_user<C: sea_orm::ConnectionTrait>(
    db: &C,
    model: &users::Model,
) -> StoreResult<()> {
    users::Entity::insert(model.clone().into_active_model())
        .exec_without_returning(db)
        .await
        .map_err(|e| match StoreError::db("user", e) {
            StoreError::Conflict { entity, .. } => StoreError::Conflict {
                entity,
                detail: "this e-mail is already registered".to_string(),
            },
            other => other,
        })?;
    Ok(())
}

/// The user behind a valid session or API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The user.
    pub user: User,
    /// The session, when authenticated by session token.
    pub session: Option<SessionId>,
    /// The API token, when authenticated by API token.
    pub api_token: Option<ApiTokenId>,
}

/// An API token as listed (never the token).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    /// Id.
    pub id: ApiTokenId,
    /// The user's name for it.
    pub name: String,
    /// Its first characters, to tell tokens apart.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_tokens::Model> for ApiToken {
    fn from(m: api_tokens::Model) -> Self {
        Self {
            id: ApiTokenId(m.id),
            name: m.name,
            prefix: m.token_prefix,
            created_at: m.created_at,
            expires_at: m.expires_at,
            last_used_at: m.last_used_at,
            revoked_at: m.revoked_at,
        }
    }
}

pub(crate) fn normalize_email(email: &str) -> StoreResult<String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !e.contains(char::is_whitespace);
    if !valid {
        return Err(StoreError::invalid("email", "not an e-mail address"));
    }
    Ok(e)
}

fn check_password(p: &Secret) -> StoreResult<()> {
    if p.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(StoreError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

async fn hash_blocking(password: &Secret) -> StoreResult<String> {
    let p = password.clone();
    tokio::task::spawn_blocking(move || hash_password(p.expose()))
        .await
        .map_err(|e| StoreError::invalid("password", e.to_string()))?
        .map_err(|e| StoreError::invalid("password", e.to_string()))
}

async fn verify_blocking(password: &Secret, hash: String) -> bool {
    let p = password.clone();
    tokio::task::spawn_blocking(move || verify_password(p.expose(), &hash))
        .await
        .unwrap_or(false)
}

/// A well-formed Argon2id hash of a random password: verifying against it when the e-mail is
/// unknown makes a failed login take as long as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(random_token().expose()).unwrap_or_default());

/// Users and their credentials.
#[derive(Debug, Clone, Copy)]
pub struct Users<'a> {
    pub(crate) store: &'a Store,
}

impl Users<'_> {
    /// Registers a user.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a malformed e-mail or a short password,
    /// [`StoreError::Conflict`] when the e-mail is taken.
    pub async fn register(&self, new: NewUser) -> StoreResult<User> {
        let model = user_row(new).await?;
        insert_user(self.store.db(), &model).await?;
        Ok(model.into())
    }

    /// The user's own profile.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user does not exist.
    pub async fn get(&self, scope: impl ReadScope) -> StoreResult<User> {
        let id = scope.owner();
        users::Entity::find_by_id(id.0)
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?
            .map(User::from)
            .ok_or_else(|| StoreError::not_found("user", id))
    }

    /// Checks an e-mail and password; `None` for an unknown e-mail or a wrong password (the
    /// two take the same time and are not told apart). Records the login time on success.
    /// Whether an unapproved user may log in is the caller's decision (`User::approved`).
    ///
    /// # Errors
    /// Database errors only.
    pub async fn authenticate(&self, email: &str, password: &Secret) -> StoreResult<Option<User>> {
        let email = email.trim().to_lowercase();
        let found = users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?;
        let Some(model) = found else {
            let _ = verify_blocking(password, DUMMY_HASH.clone()).await;
            return Ok(None);
        };
        if !verify_blocking(password, model.password_hash.clone()).await {
            return Ok(None);
        }
        let t = now();
        users::Entity::update_many()
            .col_expr(users::Column::LastLoginAt, Expr::value(Some(t)))
            .filter(users::Column::Id.eq(model.id))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?;
        let mut user = User::from(model);
        user.last_login_at = Some(t);
        Ok(Some(user))
    }

    /// Changes the owner's password after checking the current one; revokes every other
    /// session of the user.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when the current password is wrong or the new one too short.
    pub async fn change_password(
        &self,
        owner: UserId,
        current: &Secret,
        new: &Secret,
        keep_session: Option<SessionId>,
    ) -> StoreResult<()> {
        check_password(new)?;
        let model = users::Entity::find_by_id(owner.0)
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?
            .ok_or_else(|| StoreError::not_found("user", owner))?;
        if !verify_blocking(current, model.password_hash).await {
            return Err(StoreError::invalid(
                "password",
                "the current password is wrong",
            ));
        }
        let hash = hash_blocking(new).await?;
        set_password_hash(self.store, owner, hash).await?;
        revoke_sessions_except(self.store, owner, keep_session).await
    }

    /// Starts a password reset: a single-use token valid for one hour, or `None` when no user
    /// has this e-mail. The caller e-mails the token and answers the same way in both cases.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn start_password_reset(&self, email: &str) -> StoreResult<Option<Secret>> {
        let email = email.trim().to_lowercase();
        let Some(user) = users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?
        else {
            return Ok(None);
        };
        let token = random_token();
        let t = now();
        password_reset_tokens::Entity::insert(
            password_reset_tokens::Model {
                id: Uuid::now_v7(),
                user_id: user.id,
                token_hash: token_hash(token.expose()),
                created_at: t,
                expires_at: t + RESET_TOKEN_TTL,
                used_at: None,
            }
            .into_active_model(),
        )
        .exec_without_returning(self.store.db())
        .await
        .map_err(|e| StoreError::db("password reset", e))?;
        Ok(Some(token))
    }

    /// Completes a password reset: consumes the token (once, before it expires), sets the
    /// new password and revokes every session of the user.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for an unknown, used or expired token or a short password.
    pub async fn finish_password_reset(&self, token: &Secret, new: &Secret) -> StoreResult<UserId> {
        check_password(new)?;
        let hash = hash_blocking(new).await?;
        let t = now();
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        let row = password_reset_tokens::Entity::find()
            .filter(password_reset_tokens::Column::TokenHash.eq(token_hash(token.expose())))
            .one(&txn)
            .await
            .map_err(|e| StoreError::db("password reset", e))?;
        let invalid = || StoreError::invalid("reset token", "unknown, already used or expired");
        let row = row.ok_or_else(invalid)?;
        // Consume with a guarded update, so two concurrent uses cannot both succeed.
        let consumed = password_reset_tokens::Entity::update_many()
            .col_expr(password_reset_tokens::Column::UsedAt, Expr::value(Some(t)))
            .filter(password_reset_tokens::Column::Id.eq(row.id))
            .filter(password_reset_tokens::Column::UsedAt.is_null())
            .filter(password_reset_tokens::Column::ExpiresAt.gt(t))
            .exec(&txn)
            .await
            .map_err(|e| StoreError::db("password reset", e))?;
        if consumed.rows_affected != 1 {
            return Err(invalid());
        }
        let user = UserId(row.user_id);
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(hash))
            .col_expr(users::Column::UpdatedAt, Expr::value(t))
            .filter(users::Column::Id.eq(user.0))
            .exec(&txn)
            .await
            .map_err(|e| StoreError::db("user", e))?;
        login_sessions::Entity::update_many()
            .col_expr(login_sessions::Column::RevokedAt, Expr::value(Some(t)))
            .filter(login_sessions::Column::UserId.eq(user.0))
            .filter(login_sessions::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(|e| StoreError::db("session", e))?;
        txn.commit().await.map_err(StoreError::from)?;
        Ok(user)
    }

    /// Updates the owner's display name.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user does not exist.
    pub async fn set_display_name(&self, owner: UserId, name: Option<&str>) -> StoreResult<()> {
        let r = users::Entity::update_many()
            .col_expr(users::Column::DisplayName, Expr::value(optional_text(name)))
            .col_expr(users::Column::UpdatedAt, Expr::value(now()))
            .filter(users::Column::Id.eq(owner.0))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?;
        if r.rows_affected == 0 {
            return Err(StoreError::not_found("user", owner));
        }
        Ok(())
    }
}

async fn set_password_hash(store: &Store, owner: UserId, hash: String) -> StoreResult<()> {
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(hash))
        .col_expr(users::Column::UpdatedAt, Expr::value(now()))
        .filter(users::Column::Id.eq(owner.0))
        .exec(store.db())
        .await
        .map_err(|e| StoreError::db("user", e))?;
    Ok(())
}

async fn revoke_sessions_except(
    store: &Store,
    owner: UserId,
    keep: Option<SessionId>,
) -> StoreResult<()> {
    let mut q = login_sessions::Entity::update_many()
        .col_expr(login_sessions::Column::RevokedAt, Expr::value(Some(now())))
        .filter(login_sessions::Column::UserId.eq(owner.0))
        .filter(login_sessions::Column::RevokedAt.is_null());
    if let Some(k) = keep {
        q = q.filter(login_sessions::Column::Id.ne(k.0));
    }
    q.exec(store.db())
        .await
        .map_err(|e| StoreError::db("session", e))?;
    Ok(())
}

/// Login sessions (browser logins), stored as token hashes.
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'a> {
    pub(crate) store: &'a Store,
}

impl Sessions<'_> {
    /// Opens a session for an authenticated user; returns its id and the token (shown to the
    /// browser once, stored only as a hash).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user does not exist.
    pub async fn create(
        &self,
        owner: UserId,
        ttl: Duration,
        user_agent: Option<&str>,
        source_ip: Option<&str>,
    ) -> StoreResult<(SessionId, Secret)> {
        let token = random_token();
        let t = now();
        let id = SessionId::new();
        login_sessions::Entity::insert(
            login_sessions::Model {
                id: id.0,
                user_id: owner.0,
                token_hash: token_hash(token.expose()),
                created_at: t,
                expires_at: t + ttl,
                last_seen_at: t,
                revoked_at: None,
                user_agent: optional_text(user_agent),
                source_ip: optional_text(source_ip),
            }
            .into_active_model(),
        )
        .exec_without_returning(self.store.db())
        .await
        .map_err(|e| StoreError::db("session", e))?;
        Ok((id, token))
    }

    /// The user behind a session token, if the session is valid (not revoked, not expired).
    ///
    /// # Errors
    /// Database errors only.
    pub async fn resolve(&self, token: &str) -> StoreResult<Option<Authenticated>> {
        let t = now();
        let Some(s) = login_sessions::Entity::find()
            .filter(login_sessions::Column::TokenHash.eq(token_hash(token)))
            .filter(login_sessions::Column::RevokedAt.is_null())
            .filter(login_sessions::Column::ExpiresAt.gt(t))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("session", e))?
        else {
            return Ok(None);
        };
        if s.last_seen_at + TOUCH_EVERY < t {
            login_sessions::Entity::update_many()
                .col_expr(login_sessions::Column::LastSeenAt, Expr::value(t))
                .filter(login_sessions::Column::Id.eq(s.id))
                .exec(self.store.db())
                .await
                .map_err(|e| StoreError::db("session", e))?;
        }
        let user = Users { store: self.store }.get(UserId(s.user_id)).await?;
        Ok(Some(Authenticated {
            user,
            session: Some(SessionId(s.id)),
            api_token: None,
        }))
    }

    /// Ends one session of the owner (logout).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such open session.
    pub async fn revoke(&self, owner: UserId, session: SessionId) -> StoreResult<()> {
        let q = login_sessions::Entity::update_many()
            .col_expr(login_sessions::Column::RevokedAt, Expr::value(Some(now())))
            .filter(login_sessions::Column::RevokedAt.is_null());
        super::update_owned(self.store, q, session, owner).await
    }

    /// Ends every session of the owner (log out everywhere).
    ///
    /// # Errors
    /// Database errors only.
    pub async fn revoke_all(&self, owner: UserId) -> StoreResult<()> {
        revoke_sessions_except(self.store, owner, None).await
    }
}

/// Personal API tokens, stored as hashes.
#[derive(Debug, Clone, Copy)]
pub struct ApiTokens<'a> {
    pub(crate) store: &'a Store,
}

/// Prefix of every API token, so secret scanners and people recognise one.
pub const API_TOKEN_PREFIX: &str = "jt_";

impl ApiTokens<'_> {
    /// Creates a token; the returned secret is shown to the user once.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for an empty name; [`StoreError::NotFound`] for an unknown user.
    pub async fn create(
        &self,
        owner: UserId,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<(ApiToken, Secret)> {
        let name = super::required_text("token name", name)?;
        let token = Secret::new(format!("{API_TOKEN_PREFIX}{}", random_token().expose()));
        let model = api_tokens::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            token_hash: token_hash(token.expose()),
            created_at: now(),
            name,
            token_prefix: token.expose().chars().take(10).collect(),
            expires_at: expires_at.map(super::at),
            last_used_at: None,
            revoked_at: None,
        };
        api_tokens::Entity::insert(model.clone().into_active_model())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("api token", e))?;
        Ok((model.into(), token))
    }

    /// The user behind an API token, if it is valid.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn resolve(&self, token: &str) -> StoreResult<Option<Authenticated>> {
        let t = now();
        let Some(row) = api_tokens::Entity::find()
            .filter(api_tokens::Column::TokenHash.eq(token_hash(token)))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("api token", e))?
        else {
            return Ok(None);
        };
        if row.expires_at.is_some_and(|e| e <= t) {
            return Ok(None);
        }
        if row.last_used_at.is_none_or(|u| u + TOUCH_EVERY < t) {
            api_tokens::Entity::update_many()
                .col_expr(api_tokens::Column::LastUsedAt, Expr::value(Some(t)))
                .filter(api_tokens::Column::Id.eq(row.id))
                .exec(self.store.db())
                .await
                .map_err(|e| StoreError::db("api token", e))?;
        }
        let user = Users { store: self.store }.get(UserId(row.user_id)).await?;
        Ok(Some(Authenticated {
            user,
            session: None,
            api_token: Some(ApiTokenId(row.id)),
        }))
    }

    /// The owner's tokens, newest first.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn list(&self, scope: impl ReadScope) -> StoreResult<Vec<ApiToken>> {
        Ok(api_tokens::Entity::find()
            .filter(api_tokens::Column::UserId.eq(scope.owner().0))
            .order_by_desc(api_tokens::Column::CreatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("api token", e))?
            .into_iter()
            .map(ApiToken::from)
            .collect())
    }

    /// Revokes one of the owner's tokens.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such token.
    pub async fn revoke(&self, owner: UserId, id: ApiTokenId) -> StoreResult<()> {
        let q = api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::RevokedAt, Expr::value(Some(now())))
            .filter(api_tokens::Column::RevokedAt.is_null());
        super::update_owned(self.store, q, id, owner).await
    }
}

impl Store {
    /// Users, passwords and password resets.
    #[must_use]
    pub fn users(&self) -> Users<'_> {
        Users { store: self }
    }

    /// Login sessions.
    #[must_use]
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { store: self }
    }

    /// API tokens.
    #[must_use]
    pub fn api_tokens(&self) -> ApiTokens<'_> {
        ApiTokens { store: self }
    }
}
