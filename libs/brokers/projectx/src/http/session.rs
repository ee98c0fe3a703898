//! The token lifecycle of one ProjectX login (BROKERS.md §2.2, DOMAIN §7, §9):
//!
//! - login with the API key (`Auth/loginKey`); a response counts as a token only when
//!   `success` is explicitly true and a non-empty `token` is present — a failed renewal never
//!   replaces a valid token;
//! - the expiry is the token's own `exp` claim (ProjectX tokens are JWTs); only a token
//!   without a readable claim is assumed to live `assumed_lifetime` (24 h, as documented);
//! - a token due for renewal is renewed with `Auth/validate`, which answers `newToken`; a
//!   transient failure keeps the live token, an answer that the session is gone
//!   (`InvalidSession`, `SessionNotFound`, `ExpiredToken`, HTTP 401) logs in again;
//! - a call refused with 401 logs in again once (ProjectX caps no sessions per user, so a
//!   fresh login cannot evict anyone) and retries;
//! - with a [`jt_broker::SessionStore`], the processes of the login share one token: a live stored token
//!   is adopted instead of logging in, renewals and logins are claimed, and every new token is
//!   saved.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use jt_net::http::RawError;
use jt_net::limits::LoginLimits;
use jt_net::policy::{AfterUnauthorized, Authority};
use parking_lot::RwLock;

use crate::common::enums::{Endpoint, error_name};
use crate::config::{Credentials, RateLimitConfig, SessionConfig};
use jt_broker::error::BrokerError;
use jt_broker::model::{SessionInfo, SessionOutcome};
use jt_broker::session_store::{Acquired, ClaimHolder, StoredSession, claim_or_adopt};

use super::limits::Bucket;
use super::models::{Envelope, LoginKeyRequest};
use super::raw::ProjectXRawHttpClient;

/// A usable token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The bearer token.
    pub access: String,
    /// When it was obtained.
    pub obtained_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Increases with every new token of this login in this process.
    pub generation: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("access", &"<redacted>")
            .field("obtained_at", &self.obtained_at)
            .field("expires_at", &self.expires_at)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Token {
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    fn info(&self, outcome: SessionOutcome) -> SessionInfo {
        SessionInfo {
            outcome,
            obtained_at: self.obtained_at,
            expires_at: self.expires_at,
            user_id: None,
        }
    }
}

/// The `exp` claim of a JWT, if the token is one.
#[must_use]
pub fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    Utc.timestamp_opt(exp, 0).single()
}

/// What a renewal found.
enum RenewFailure {
    /// The broker says the session is gone: log in.
    SessionDead(String),
    /// Anything else: keep the live token.
    Transient(BrokerError),
}

/// The session of one login, shared by every account and call of it.
pub struct Session {
    raw: ProjectXRawHttpClient,
    credentials: Credentials,
    config: SessionConfig,
    limits: Arc<LoginLimits>,
    /// Back-offs of the token requests.
    rate: RateLimitConfig,
    current: RwLock<Option<Token>>,
    auth: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    holder: ClaimHolder,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.credentials.user_name)
            .field("current", &*self.current.read())
            .finish_non_exhaustive()
    }
}

fn record(op: &'static str, outcome: &'static str) {
    metrics::counter!("jt_broker_auth_total", "broker" => "projectx", "op" => op, "outcome" => outcome)
        .increment(1);
}

impl Session {
    /// A session for `credentials` (nothing is sent until a token is needed).
    #[must_use]
    pub fn new(
        raw: ProjectXRawHttpClient,
        credentials: Credentials,
        config: SessionConfig,
        limits: Arc<LoginLimits>,
        rate: RateLimitConfig,
    ) -> Self {
        Self {
            raw,
            credentials,
            config,
            limits,
            rate,
            current: RwLock::new(None),
            auth: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            holder: ClaimHolder::new(),
        }
    }

    /// The current token if it is live by the clock.
    #[must_use]
    pub fn current(&self) -> Option<Token> {
        self.current
            .read()
            .clone()
            .filter(|t| t.is_live(Utc::now()))
    }

    fn due(&self, t: &Token) -> bool {
        let margin = chrono::Duration::from_std(self.config.renew_before_expiry)
            .unwrap_or_else(|_| chrono::Duration::hours(1));
        Utc::now() >= t.expires_at - margin
    }

    fn install(&self, access: String, obtained_at: DateTime<Utc>) -> Token {
        let expires_at = jwt_expiry(&access).unwrap_or_else(|| {
            obtained_at
                + chrono::Duration::from_std(self.config.assumed_lifetime)
                    .unwrap_or_else(|_| chrono::Duration::hours(24))
        });
        let token = Token {
            access,
            obtained_at,
            expires_at,
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        *self.current.write() = Some(token.clone());
        token
    }

    /// A token for a call: the current one, renewed first when due, or a login when there is
    /// none. A renewal that fails while the token lives keeps it.
    ///
    /// # Errors
    /// The login's errors when there is no live token and none can be had.
    pub async fn token(&self) -> Result<Token, BrokerError> {
        if let Some(t) = self.current()
            && !self.due(&t)
        {
            return Ok(t);
        }
        let _guard = self.auth.lock().await;
        Ok(self.refresh_locked(false).await?.0)
    }

    /// Ensures a session (see [`jt_broker::Broker::login`]).
    ///
    /// # Errors
    /// The login's errors.
    pub async fn login(&self) -> Result<SessionInfo, BrokerError> {
        let _guard = self.auth.lock().await;
        let (t, outcome) = self.refresh_locked(false).await?;
        Ok(t.info(outcome))
    }

    /// Renews now (see [`jt_broker::Broker::renew`]).
    ///
    /// # Errors
    /// `NeedsReauth` when renewal and login both fail; the renewal's transient error when the
    /// live token was kept.
    pub async fn renew(&self) -> Result<SessionInfo, BrokerError> {
        let _guard = self.auth.lock().await;
        let (t, outcome) = self.refresh_locked(true).await?;
        Ok(t.info(outcome))
    }

    /// A call with `token` was refused with 401: log in again unless another call already
    /// replaced the token.
    ///
    /// # Errors
    /// The login's errors.
    pub async fn after_unauthorized(&self, token: &Token) -> Result<(), BrokerError> {
        let _guard = self.auth.lock().await;
        if self
            .current
            .read()
            .as_ref()
            .is_some_and(|c| c.generation != token.generation)
        {
            return Ok(());
        }
        tracing::warn!("ProjectX refused the token; logging in again");
        *self.current.write() = None;
        self.refresh_locked(false).await.map(|_| ())
    }

    /// Renews or logs in as needed, under the auth lock. `force` renews a live token that is
    /// not yet due.
    async fn refresh_locked(&self, force: bool) -> Result<(Token, SessionOutcome), BrokerError> {
        let now = Utc::now();
        let current = self.current();
        if let Some(t) = &current
            && !force
            && !self.due(t)
        {
            return Ok((t.clone(), SessionOutcome::Reused));
        }
        let Some(store) = self.config.store.clone() else {
            return self.refresh_alone(current, force).await;
        };
        // Another process may already hold a fresher token: adopt it; otherwise claim.
        let margin = self.config.renew_before_expiry;
        let ours = current.as_ref().map(|t| t.access.clone());
        let adoptable = move |s: &StoredSession| {
            s.is_live(Utc::now())
                && !s.expires_within(Utc::now(), margin)
                && (!force || ours.as_deref() != Some(s.access_token.as_str()))
        };
        let wait = current.is_none();
        match claim_or_adopt(&store, &self.holder, &self.config.claim, wait, adoptable).await {
            Ok(Acquired::Adopt(s)) => {
                let t = self.install(s.access_token, s.obtained_at);
                Ok((t, SessionOutcome::Reused))
            }
            Ok(Acquired::Claimed { claim, stored }) => {
                let base = current.or_else(|| {
                    stored
                        .filter(|s| s.is_live(now))
                        .map(|s| self.install(s.access_token, s.obtained_at))
                });
                let result = self.refresh_alone(base, force).await;
                if let Ok((t, outcome)) = &result
                    && *outcome != SessionOutcome::Reused
                {
                    let saved = StoredSession {
                        access_token: t.access.clone(),
                        md_access_token: None,
                        obtained_at: t.obtained_at,
                        expires_at: t.expires_at,
                        user_id: None,
                    };
                    if let Err(e) = store.save(&saved).await {
                        tracing::warn!(error = %e, "could not share the new ProjectX token");
                    }
                }
                if let Err(BrokerError::NeedsReauth { reason }) = &result
                    && let Err(e) = store.report_auth_failure(reason).await
                {
                    tracing::warn!(error = %e, "could not record the refused credentials");
                }
                claim.release().await;
                result
            }
            Ok(Acquired::Busy { until }) => match current {
                Some(t) => Ok((t, SessionOutcome::Reused)),
                None => Err(BrokerError::transport(format!(
                    "another process is logging this ProjectX login in (until {until})"
                ))),
            },
            Err(e) => match current {
                Some(t) => Ok((t, SessionOutcome::Reused)),
                None => Err(BrokerError::transport(format!("session store: {e}"))),
            },
        }
    }

    async fn refresh_alone(
        &self,
        current: Option<Token>,
        force: bool,
    ) -> Result<(Token, SessionOutcome), BrokerError> {
        let Some(t) = current else {
            return self
                .login_locked()
                .await
                .map(|t| (t, SessionOutcome::LoggedIn));
        };
        if !force && !self.due(&t) {
            return Ok((t, SessionOutcome::Reused));
        }
        match self.renew_locked(&t).await {
            Ok(new) => Ok((new, SessionOutcome::Renewed)),
            Err(RenewFailure::Transient(e)) if force => Err(e),
            Err(RenewFailure::Transient(e)) => {
                tracing::warn!(error = %e, expires_at = %t.expires_at, "ProjectX token renewal failed; keeping the live token");
                Ok((t, SessionOutcome::Reused))
            }
            Err(RenewFailure::SessionDead(why)) => {
                tracing::warn!(reason = %why, "ProjectX session is gone; logging in again");
                self.login_locked()
                    .await
                    .map(|t| (t, SessionOutcome::LoggedIn))
                    .map_err(|e| match e {
                        BrokerError::NeedsReauth { reason } => BrokerError::NeedsReauth {
                            reason: format!("renewal failed ({why}); login failed: {reason}"),
                        },
                        other => other,
                    })
            }
        }
    }

    async fn renew_locked(&self, t: &Token) -> Result<Token, RenewFailure> {
        self.limits
            .admit(Bucket::General)
            .await
            .map_err(RenewFailure::Transient)?;
        let obtained_at = Utc::now();
        match self.raw.auth_validate(&t.access).await {
            Ok(r) if r.success() && r.error_code() == 0 => match r.new_token {
                Some(new) if !new.trim().is_empty() => {
                    record("renew", "ok");
                    Ok(self.install(new, obtained_at))
                }
                // Success without a new token: the presented one stays valid.
                _ => {
                    record("renew", "kept");
                    Ok(t.clone())
                }
            },
            Ok(r) => {
                record("renew", "session_dead");
                Err(RenewFailure::SessionDead(format!(
                    "{} ({})",
                    error_name(Endpoint::Validate, r.error_code()),
                    r.error_message().unwrap_or_default()
                )))
            }
            Err(RawError::Status { status: 401, .. }) => {
                record("renew", "session_dead");
                Err(RenewFailure::SessionDead("HTTP 401".into()))
            }
            Err(RawError::Status {
                status: 429,
                retry_after,
                ..
            }) => {
                let wait = retry_after.unwrap_or(self.rate.too_many_requests_backoff);
                self.limits.cool_down(wait);
                record("renew", "rate_limited");
                Err(RenewFailure::Transient(BrokerError::RateLimited {
                    retry_after: wait,
                }))
            }
            Err(other) => {
                record("renew", "transient");
                Err(RenewFailure::Transient(BrokerError::transport(format!(
                    "renewal: {other}"
                ))))
            }
        }
    }

    async fn login_locked(&self) -> Result<Token, BrokerError> {
        self.limits.admit(Bucket::General).await?;
        let body = LoginKeyRequest {
            user_name: &self.credentials.user_name,
            api_key: &self.credentials.api_key,
        };
        let obtained_at = Utc::now();
        match self.raw.auth_login_key(&body).await {
            Ok(r) if r.success() && r.error_code() == 0 => match r.token {
                Some(token) if !token.trim().is_empty() => {
                    record("login", "ok");
                    let t = self.install(token, obtained_at);
                    tracing::info!(expires_at = %t.expires_at, "logged in to ProjectX");
                    Ok(t)
                }
                _ => {
                    record("login", "refused");
                    Err(BrokerError::NeedsReauth {
                        reason: "loginKey succeeded without a token".into(),
                    })
                }
            },
            Ok(r) => {
                record("login", "refused");
                Err(BrokerError::NeedsReauth {
                    reason: format!(
                        "loginKey refused: {} ({})",
                        error_name(Endpoint::Login, r.error_code()),
                        r.error_message().unwrap_or_default()
                    ),
                })
            }
            Err(RawError::Status {
                status: 401 | 403,
                body,
                ..
            }) => {
                record("login", "refused");
                Err(BrokerError::NeedsReauth {
                    reason: format!("credentials refused: {body}"),
                })
            }
            Err(RawError::Status {
                status: 429,
                retry_after,
                ..
            }) => {
                let wait = retry_after.unwrap_or(self.rate.too_many_requests_backoff);
                self.limits.cool_down(wait);
                record("login", "rate_limited");
                Err(BrokerError::RateLimited { retry_after: wait })
            }
            Err(other) => {
                record("login", "transient");
                Err(BrokerError::transport(format!("login: {other}")))
            }
        }
    }

    /// How long until the current token is due for renewal (zero when it is, or there is none).
    #[must_use]
    pub fn due_in(&self) -> Duration {
        self.current()
            .map(|t| {
                let margin = chrono::Duration::from_std(self.config.renew_before_expiry)
                    .unwrap_or_else(|_| chrono::Duration::hours(1));
                (t.expires_at - margin - Utc::now())
                    .to_std()
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }
}

/// ProjectX caps no sessions per user: a refused token is always replaced by a new login, so
/// the call is retried once with it.
#[async_trait]
impl Authority for Session {
    type Token = Token;

    async fn token(&self) -> Result<Token, BrokerError> {
        Session::token(self).await
    }

    fn bearer(token: &Token) -> &str {
        &token.access
    }

    async fn after_unauthorized(&self, token: &Token) -> Result<AfterUnauthorized, BrokerError> {
        Session::after_unauthorized(self, token).await?;
        Ok(AfterUnauthorized::Replaced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_is_read_from_the_jwt() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"1","exp":1893456000}"#);
        let token = format!("eyJhbGciOiJIUzI1NiJ9.{payload}.sig");
        assert_eq!(
            jwt_expiry(&token),
            Utc.timestamp_opt(1_893_456_000, 0).single()
        );
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry("a.b.c"), None);
    }
}
