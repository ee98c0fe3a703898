//! The broker session of a broker account as every process using the login shares it: the
//! sealed access and market-data tokens with their times, and the renewal/login claim that
//! makes one process renew or log in while the others wait and adopt its token
//! (`docs/brokers.md`, "Sessions across processes"; `docs/store.md`).
//!
//! The claim is one conditional `UPDATE` of the account's row (`login_claimed_by`,
//! `login_claimed_until`): it succeeds only when no other holder's claim is running and the
//! login is not locked out, so concurrent claimants cannot both win — PostgreSQL re-checks the
//! condition on the row a concurrent winner just changed, SQLite serialises writers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jt_broker::ClaimAttempt;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{at, now, optional_text};
use crate::Store;
use crate::entity::broker_accounts;
use crate::error::{StoreError, StoreResult};
use crate::ids::{BrokerAccountId, UserId};
use crate::secret::{Secret, aad};

use super::accounts::ACCESS_TOKEN;

const MD_ACCESS_TOKEN: &str = "broker market-data token";
const ENTITY: &str = "broker account";

/// A broker session as stored. `Debug` shows no token (they are [`Secret`]s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSession {
    /// The bearer token.
    pub access_token: Secret,
    /// The market-data token, when the broker issued one.
    pub md_access_token: Option<Secret>,
    /// When it was obtained.
    pub obtained_at: DateTime<Utc>,
    /// When the broker said it expires.
    pub expires_at: DateTime<Utc>,
    /// The broker's user id.
    pub broker_user_id: Option<String>,
}

/// What [`BrokerSessions::save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSaved {
    /// The session is now the stored one.
    Stored,
    /// The stored session was obtained later than this one: it stays.
    Superseded,
}

/// Shared broker sessions, per broker account (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct BrokerSessions<'a> {
    pub(crate) store: &'a Store,
}

fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::hours(1))
}

impl BrokerSessions<'_> {
    /// The stored session of the account; `None` when none is stored (or it lacks the times a
    /// session needs, e.g. a token stored before these columns existed).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such account; [`StoreError::Secret`]
    /// for a wrong key or a damaged value.
    pub async fn load(
        &self,
        owner: UserId,
        account: BrokerAccountId,
    ) -> StoreResult<Option<BrokerSession>> {
        let m = self.model(owner, account).await?;
        let (Some(sealed), Some(obtained_at), Some(expires_at)) =
            (m.access_token_enc, m.token_obtained_at, m.token_expires_at)
        else {
            return Ok(None);
        };
        let cipher = self.store.cipher()?;
        let access_token = cipher.open_secret(
            ACCESS_TOKEN,
            &aad("broker_accounts", "access_token_enc", account.0),
            &sealed,
        )?;
        let md_access_token = m
            .md_access_token_enc
            .map(|md| {
                cipher.open_secret(
                    MD_ACCESS_TOKEN,
                    &aad("broker_accounts", "md_access_token_enc", account.0),
                    &md,
                )
            })
            .transpose()?;
        Ok(Some(BrokerSession {
            access_token,
            md_access_token,
            obtained_at,
            expires_at,
            broker_user_id: m.broker_user_id,
        }))
    }

    /// Stores a session just obtained by a successful login or renewal (never after a
    /// failure) and clears "needs re-authentication": the credentials worked. A session
    /// obtained earlier than the stored one leaves the stored one in place. The account's
    /// `updated_at` is not touched: a new token is not a change of the account.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Secret`] when the store has no key.
    pub async fn save(
        &self,
        owner: UserId,
        account: BrokerAccountId,
        session: &BrokerSession,
    ) -> StoreResult<SessionSaved> {
        let cipher = self.store.cipher()?;
        let access = cipher.seal_secret(
            &aad("broker_accounts", "access_token_enc", account.0),
            &session.access_token,
        )?;
        let md = session
            .md_access_token
            .as_ref()
            .map(|md| {
                cipher.seal_secret(
                    &aad("broker_accounts", "md_access_token_enc", account.0),
                    md,
                )
            })
            .transpose()?;
        let obtained_at = at(session.obtained_at);
        let r = broker_accounts::Entity::update_many()
            .col_expr(
                broker_accounts::Column::AccessTokenEnc,
                Expr::value(Some(access)),
            )
            .col_expr(broker_accounts::Column::MdAccessTokenEnc, Expr::value(md))
            .col_expr(
                broker_accounts::Column::TokenObtainedAt,
                Expr::value(Some(obtained_at)),
            )
            .col_expr(
                broker_accounts::Column::TokenExpiresAt,
                Expr::value(Some(at(session.expires_at))),
            )
            .col_expr(
                broker_accounts::Column::BrokerUserId,
                Expr::value(optional_text(session.broker_user_id.as_deref())),
            )
            .col_expr(broker_accounts::Column::NeedsReauth, Expr::value(false))
            .col_expr(
                broker_accounts::Column::ReauthReason,
                Expr::value(Option::<String>::None),
            )
            .filter(broker_accounts::Column::Id.eq(account.0))
            .filter(broker_accounts::Column::UserId.eq(owner.0))
            .filter(
                Condition::any()
                    .add(broker_accounts::Column::TokenObtainedAt.is_null())
                    .add(broker_accounts::Column::TokenObtainedAt.lte(obtained_at)),
            )
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db(ENTITY, e))?;
        if r.rows_affected == 1 {
            return Ok(SessionSaved::Stored);
        }
        // Either no such account, or a newer session is stored.
        self.model(owner, account).await?;
        Ok(SessionSaved::Superseded)
    }

    /// Claims the right to renew or log in for `ttl`: granted when no other holder's claim
    /// runs (none, lapsed, or `holder`'s own, which is extended) and the login is not locked
    /// out. Times are the callers' clocks; claims last tens of seconds, so clock skew of a few
    /// seconds between machines only shortens or lengthens a claim by as much.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such account; database errors.
    pub async fn try_claim(
        &self,
        owner: UserId,
        account: BrokerAccountId,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<ClaimAttempt> {
        // Twice at most: a claim that lapses between the UPDATE and the read is retried once.
        for _ in 0..2 {
            let t = now();
            let until = at(plus(t, ttl));
            let r = broker_accounts::Entity::update_many()
                .col_expr(
                    broker_accounts::Column::LoginClaimedBy,
                    Expr::value(Some(holder.to_string())),
                )
                .col_expr(
                    broker_accounts::Column::LoginClaimedUntil,
                    Expr::value(Some(until)),
                )
                .filter(broker_accounts::Column::Id.eq(account.0))
                .filter(broker_accounts::Column::UserId.eq(owner.0))
                .filter(
                    Condition::any()
                        .add(broker_accounts::Column::LoginClaimedUntil.is_null())
                        .add(broker_accounts::Column::LoginClaimedUntil.lte(t))
                        .add(broker_accounts::Column::LoginClaimedBy.eq(holder)),
                )
                .filter(
                    Condition::any()
                        .add(broker_accounts::Column::LockedUntil.is_null())
                        .add(broker_accounts::Column::LockedUntil.lte(t)),
                )
                .exec(self.store.db())
                .await
                .map_err(|e| StoreError::db(ENTITY, e))?;
            if r.rows_affected == 1 {
                return Ok(ClaimAttempt::Granted { until });
            }
            let m = self.model(owner, account).await?;
            let t = now();
            if let Some(until) = m.locked_until.filter(|u| *u > t) {
                return Ok(ClaimAttempt::LockedOut { until });
            }
            if let Some(until) = m.login_claimed_until.filter(|u| *u > t)
                && m.login_claimed_by.as_deref() != Some(holder)
            {
                return Ok(ClaimAttempt::Busy { until });
            }
        }
        // The claim changed hands twice under us: someone holds it now; poll again.
        Ok(ClaimAttempt::Busy { until: now() })
    }

    /// Gives the claim back if `holder` still holds it; `false` when it did not (lapsed and
    /// taken by another, or never held).
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_claim(
        &self,
        owner: UserId,
        account: BrokerAccountId,
        holder: &str,
    ) -> StoreResult<bool> {
        let r = broker_accounts::Entity::update_many()
            .col_expr(
                broker_accounts::Column::LoginClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                broker_accounts::Column::LoginClaimedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(broker_accounts::Column::Id.eq(account.0))
            .filter(broker_accounts::Column::UserId.eq(owner.0))
            .filter(broker_accounts::Column::LoginClaimedBy.eq(holder))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db(ENTITY, e))?;
        Ok(r.rows_affected == 1)
    }

    async fn model(
        &self,
        owner: UserId,
        account: BrokerAccountId,
    ) -> StoreResult<broker_accounts::Model> {
        broker_accounts::Entity::find_by_id(account.0)
            .filter(broker_accounts::Column::UserId.eq(owner.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db(ENTITY, e))?
            .ok_or_else(|| StoreError::not_found(ENTITY, account))
    }
}

impl Store {
    /// Broker sessions shared by the processes of one login.
    #[must_use]
    pub fn broker_sessions(&self) -> BrokerSessions<'_> {
        BrokerSessions { store: self }
    }
}
