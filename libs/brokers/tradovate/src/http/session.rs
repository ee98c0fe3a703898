//! The token lifecycle of one login (DOMAIN §7, §9; BROKERS.md §1.2):
//!
//! - expiry comes from the response's `expirationTime`, never an assumed lifetime;
//! - a token due for renewal is renewed through `auth/renewaccesstoken`, which extends the
//!   session instead of creating one — a second credential login while a session lives would
//!   count against the two-session limit and may evict the user's own session;
//! - a credential login happens only when there is no live session (none yet, expired, or the
//!   broker confirmed it dead); when renewal and login both fail the login `NeedsReauth`;
//! - a response counts as a token only when it explicitly carries one with a future expiry:
//!   a failed renewal never replaces a valid token;
//! - with a [`SessionStore`] the session is shared by every process of the login: a stored
//!   live token is adopted instead of logging in, renewals and logins are claimed (one process
//!   makes them, the others wait and adopt), every new token is saved, refused credentials and
//!   captcha lock-outs are reported; without the store reachable no login is made blind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jt_net::http::RawError;
use jt_net::limits::{Lane, LoginLimits};
use jt_net::policy::{AfterUnauthorized, Authority};
use parking_lot::RwLock;

use crate::config::{Credentials, RateLimitConfig, SessionConfig};
use jt_broker::error::BrokerError;
use jt_broker::model::{BrokerKind, SessionInfo, SessionOutcome};
use jt_broker::session_store::{
    AcquireError, Acquired, ClaimHolder, SessionStore, StoredSession, claim_or_adopt,
};

use super::models::{AccessTokenRequest, AccessTokenResponse};
use super::raw::TradovateRawHttpClient;

/// A usable access token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The bearer token.
    pub access: String,
    /// The market-data token, when the broker sent one.
    pub md_access: Option<String>,
    /// When we obtained it (its age starts here).
    pub obtained_at: DateTime<Utc>,
    /// When the broker says it expires.
    pub expires_at: DateTime<Utc>,
    /// The broker's user id.
    pub user_id: Option<i64>,
    /// Increases with every new token of this login.
    pub generation: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("access", &"<redacted>")
            .field("obtained_at", &self.obtained_at)
            .field("expires_at", &self.expires_at)
            .field("user_id", &self.user_id)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Token {
    /// Whether the broker still accepts it by the clock.
    #[must_use]
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    /// How old it is.
    #[must_use]
    pub fn age(&self, now: DateTime<Utc>) -> Duration {
        (now - self.obtained_at).to_std().unwrap_or_default()
    }

    fn info(&self, outcome: SessionOutcome) -> SessionInfo {
        SessionInfo {
            outcome,
            obtained_at: self.obtained_at,
            expires_at: self.expires_at,
            user_id: self.user_id.map(|u| u.to_string()),
        }
    }
}

/// What a renewal attempt found.
enum RenewFailure {
    /// The broker says the session is gone: a login is allowed.
    SessionDead(String),
    /// Anything else: the current token stays.
    Transient(BrokerError),
}

/// The session of one login, shared by every account, call and socket of it.
pub struct Session {
    kind: BrokerKind,
    raw: TradovateRawHttpClient,
    credentials: Credentials,
    config: SessionConfig,
    limits: Arc<LoginLimits>,
    /// Back-offs and penalty patience of the token requests.
    rate: RateLimitConfig,
    /// Where the processes of this login share the session (`None`: this process alone).
    store: Option<Arc<dyn SessionStore>>,
    /// This session's name in the store's claims.
    holder: ClaimHolder,
    /// After another process was found renewing, the store is not asked again before this
    /// (our token still lives; a crashed renewer's claim must not cost two queries per call).
    quiet_until: parking_lot::Mutex<Option<std::time::Instant>>,
    current: RwLock<Option<Token>>,
    auth: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    /// A penalty ticket of the token request handed back to the caller, for the next attempt.
    login_ticket: parking_lot::Mutex<Option<String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.credentials.name)
            .field("current", &*self.current.read())
            .field("shared", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

fn record(kind: BrokerKind, op: &'static str, outcome: &'static str) {
    metrics::counter!("jt_broker_auth_total", "broker" => kind.as_str(), "op" => op, "outcome" => outcome)
        .increment(1);
}

fn record_store(kind: BrokerKind, op: &'static str, outcome: &'static str) {
    metrics::counter!("jt_broker_session_store_total", "broker" => kind.as_str(), "op" => op, "outcome" => outcome)
        .increment(1);
}

fn looks_like_auth_failure(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "access is denied",
        "access denied",
        "expired",
        "unauthorized",
        "invalid token",
        "not authorized",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// Whether a token obtained at `obtained_at` and expiring at `expires_at` leaves a socket that
/// must close before the token is `max_age` old at least `min_life`.
fn lasts_for_socket(
    obtained_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    max_age: Duration,
    min_life: Duration,
) -> bool {
    let now = Utc::now();
    let age = (now - obtained_at).to_std().unwrap_or_default();
    let expiry_left = (expires_at - now).to_std().unwrap_or_default();
    max_age.saturating_sub(age) >= min_life && expiry_left >= min_life
}

/// The error of a session that needs a login while its store cannot be asked: logging in
/// blind could evict the session the other processes use.
fn no_blind_login(why: &str) -> BrokerError {
    BrokerError::transport(format!(
        "{why}, and the session store cannot be reached: not logging in without it \
         (another process may hold the login's session); retry later"
    ))
}

impl Session {
    /// A session for `credentials` (no call is made until a token is needed). With `store`,
    /// the session is shared with every process using the login (see `docs/brokers.md`,
    /// "Sessions across processes").
    #[must_use]
    pub fn new(
        kind: BrokerKind,
        raw: TradovateRawHttpClient,
        credentials: Credentials,
        config: SessionConfig,
        limits: Arc<LoginLimits>,
        rate: RateLimitConfig,
        store: Option<Arc<dyn SessionStore>>,
    ) -> Self {
        Self {
            kind,
            raw,
            credentials,
            config,
            limits,
            rate,
            store,
            holder: ClaimHolder::new(),
            quiet_until: parking_lot::Mutex::new(None),
            current: RwLock::new(None),
            auth: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            login_ticket: parking_lot::Mutex::new(None),
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

    fn due(&self, token: &Token, now: DateTime<Utc>) -> bool {
        let margin = chrono::Duration::from_std(self.config.renew_before_expiry)
            .unwrap_or_else(|_| chrono::Duration::minutes(15));
        now >= token.expires_at - margin
    }

    fn stored_due(&self, s: &StoredSession, now: DateTime<Utc>) -> bool {
        s.expires_within(now, self.config.renew_before_expiry)
    }

    /// A token for a REST call: the current one, renewed first when due, or a fresh login when
    /// there is no live session. A renewal that fails while the token is still live keeps it.
    /// With a session store, a token another process stored is adopted before any renewal or
    /// login, and renewals and logins are claimed so only one process makes them.
    ///
    /// # Errors
    /// The login's errors when there is no live session and none can be made.
    pub async fn token(&self) -> Result<Token, BrokerError> {
        if let Some(t) = self.current()
            && !self.due(&t, Utc::now())
        {
            return Ok(t);
        }
        let _guard = self.auth.lock().await;
        self.ensure_locked().await.map(|(t, _)| t)
    }

    /// Ensures a session (see [`jt_broker::Broker::login`]).
    ///
    /// # Errors
    /// The login's errors.
    pub async fn login(&self) -> Result<SessionInfo, BrokerError> {
        let _guard = self.auth.lock().await;
        self.ensure_locked().await.map(|(t, o)| t.info(o))
    }

    async fn ensure_locked(&self) -> Result<(Token, SessionOutcome), BrokerError> {
        match self.current() {
            Some(t) if !self.due(&t, Utc::now()) => Ok((t, SessionOutcome::Reused)),
            Some(t) => self.renew_due_locked(t).await,
            None => self.start_locked(None).await,
        }
    }

    /// No live token here: adopt the store's live one, or log in — with a store only while
    /// holding the claim, waiting for another process's login (and adopting its token) when
    /// that process holds it. `dead` is a token the broker just refused: never adopted.
    async fn start_locked(
        &self,
        dead: Option<&str>,
    ) -> Result<(Token, SessionOutcome), BrokerError> {
        let Some(store) = &self.store else {
            return Ok((self.login_locked().await?, SessionOutcome::LoggedIn));
        };
        let acquired = claim_or_adopt(store, &self.holder, &self.config.claim, true, |s| {
            s.is_live(Utc::now()) && Some(s.access_token.as_str()) != dead
        })
        .await
        .map_err(|e| self.acquire_error(e, "no live session"))?;
        match acquired {
            Acquired::Adopt(s) => {
                let t = self.adopt(s);
                if self.due(&t, Utc::now()) {
                    // Renewal keeps the session; a login would start another one.
                    return self.renew_due_locked(t).await;
                }
                Ok((t, SessionOutcome::Reused))
            }
            Acquired::Claimed { claim, .. } => {
                let result = self.login_locked().await;
                claim.release().await;
                result.map(|t| (t, SessionOutcome::LoggedIn))
            }
            Acquired::Busy { until } => Err(BrokerError::transport(format!(
                "another process has been logging this user in for longer than {} s (its claim \
                 runs until {until}); retry later",
                self.config.claim.max_wait.as_secs()
            ))),
        }
    }

    /// The live token `t` is due: adopt a fresher stored one, or renew (with a store: only
    /// while holding the claim; when another process holds it, `t` serves until it saves).
    async fn renew_due_locked(&self, t: Token) -> Result<(Token, SessionOutcome), BrokerError> {
        let mut claim = None;
        let mut may_log_in = true;
        if let Some(store) = &self.store {
            if self
                .quiet_until
                .lock()
                .is_some_and(|q| std::time::Instant::now() < q)
            {
                return Ok((t, SessionOutcome::Reused));
            }
            let fresher = |s: &StoredSession| {
                let now = Utc::now();
                s.access_token != t.access && s.is_live(now) && !self.stored_due(s, now)
            };
            match claim_or_adopt(store, &self.holder, &self.config.claim, false, fresher).await {
                Ok(Acquired::Adopt(s)) => return Ok((self.adopt(s), SessionOutcome::Reused)),
                Ok(Acquired::Busy { .. }) => {
                    *self.quiet_until.lock() =
                        Some(std::time::Instant::now() + self.config.claim.poll_interval);
                    return Ok((t, SessionOutcome::Reused));
                }
                Ok(Acquired::Claimed { claim: c, .. }) => claim = Some(c),
                Err(AcquireError::LockedOut { until }) => {
                    self.limits.lock_out_until(until);
                    return Ok((t, SessionOutcome::Reused));
                }
                Err(AcquireError::Store(e)) => {
                    // A renewal never creates a session: safe without the claim. A login is not.
                    tracing::warn!(error = %e, "session store unreadable; renewing without the claim");
                    record_store(self.kind, "claim", "unavailable");
                    may_log_in = false;
                }
            }
        }
        let result = match self.renew_locked(&t).await {
            Ok(new) => Ok((new, SessionOutcome::Renewed)),
            Err(RenewFailure::Transient(e)) => {
                tracing::warn!(error = %e, expires_at = %t.expires_at, "token renewal failed; keeping the live token");
                Ok((t, SessionOutcome::Reused))
            }
            Err(RenewFailure::SessionDead(why)) if may_log_in => {
                tracing::warn!(reason = %why, "session is gone; logging in again");
                self.login_locked()
                    .await
                    .map(|n| (n, SessionOutcome::LoggedIn))
            }
            Err(RenewFailure::SessionDead(why)) => {
                Err(no_blind_login(&format!("the session is gone ({why})")))
            }
        };
        if let Some(c) = claim {
            c.release().await;
        }
        result
    }

    /// Renews now (see [`jt_broker::Broker::renew`]). With a session store, a token another
    /// process obtained since this call started is adopted instead (one renewal for all).
    ///
    /// # Errors
    /// `NeedsReauth` when renewal and login both fail; the renewal's transient error when the
    /// live token was kept.
    pub async fn renew(&self) -> Result<SessionInfo, BrokerError> {
        let started = Utc::now();
        let _guard = self.auth.lock().await;
        self.renew_now_locked(|s| s.obtained_at >= started)
            .await
            .map(|(t, o)| t.info(o))
    }

    /// Renews the live token now (logs in when there is none or the session is dead). With a
    /// store: a stored token `good_enough` accepts is adopted instead; otherwise the claim is
    /// taken (waiting for another process's renewal), and the freshest token renewed.
    async fn renew_now_locked(
        &self,
        good_enough: impl Fn(&StoredSession) -> bool + Send + Sync,
    ) -> Result<(Token, SessionOutcome), BrokerError> {
        let mut base = self.current();
        let mut claim = None;
        let mut may_log_in = true;
        if let Some(store) = &self.store {
            let ours = base.as_ref().map(|t| t.access.clone());
            let acquired = claim_or_adopt(store, &self.holder, &self.config.claim, true, |s| {
                s.is_live(Utc::now()) && Some(&s.access_token) != ours.as_ref() && good_enough(s)
            })
            .await;
            match acquired {
                Ok(Acquired::Adopt(s)) => return Ok((self.adopt(s), SessionOutcome::Reused)),
                Ok(Acquired::Claimed { claim: c, stored }) => {
                    claim = Some(c);
                    // A process that has no token yet (a daemon) renews the stored one; a
                    // newer stored token is the one to renew.
                    let now = Utc::now();
                    if let Some(s) = stored.filter(|s| {
                        s.is_live(now)
                            && base.as_ref().is_none_or(|b| {
                                s.access_token != b.access && s.expires_at > b.expires_at
                            })
                    }) {
                        base = Some(self.adopt(s));
                    }
                }
                Ok(Acquired::Busy { until }) => {
                    return Err(BrokerError::transport(format!(
                        "another process has been renewing this login for longer than {} s \
                         (its claim runs until {until}); retry later",
                        self.config.claim.max_wait.as_secs()
                    )));
                }
                Err(AcquireError::LockedOut { until }) => {
                    self.limits.lock_out_until(until);
                    return Err(BrokerError::LockedOut { until });
                }
                Err(AcquireError::Store(e)) => {
                    tracing::warn!(error = %e, "session store unreadable; renewing without the claim");
                    record_store(self.kind, "claim", "unavailable");
                    may_log_in = false;
                }
            }
        }
        let result = match base {
            None if may_log_in => self
                .login_locked()
                .await
                .map(|t| (t, SessionOutcome::LoggedIn))
                .map_err(|e| self.reauth(&e, "no live session to renew")),
            None => Err(no_blind_login("no live session to renew")),
            Some(t) => match self.renew_locked(&t).await {
                Ok(new) => Ok((new, SessionOutcome::Renewed)),
                Err(RenewFailure::Transient(e)) => Err(e),
                Err(RenewFailure::SessionDead(why)) if may_log_in => self
                    .login_locked()
                    .await
                    .map(|t| (t, SessionOutcome::LoggedIn))
                    .map_err(|e| self.reauth(&e, &format!("renewal failed ({why})"))),
                Err(RenewFailure::SessionDead(why)) => {
                    Err(no_blind_login(&format!("renewal failed ({why})")))
                }
            },
        };
        if let Some(c) = claim {
            c.release().await;
        }
        result
    }

    fn reauth(&self, login_error: &BrokerError, before: &str) -> BrokerError {
        match login_error {
            // These say "wait", not "the credentials are wrong".
            BrokerError::LockedOut { .. }
            | BrokerError::RateLimited { .. }
            | BrokerError::Penalty { .. }
            | BrokerError::Transport { .. } => login_error.clone(),
            BrokerError::NeedsReauth { reason } => BrokerError::NeedsReauth {
                reason: format!("{before}; login failed: {reason}"),
            },
            other => BrokerError::NeedsReauth {
                reason: format!("{before}; login failed: {other}"),
            },
        }
    }

    fn acquire_error(&self, e: AcquireError, why: &str) -> BrokerError {
        match e {
            AcquireError::LockedOut { until } => {
                self.limits.lock_out_until(until);
                BrokerError::LockedOut { until }
            }
            AcquireError::Store(e) => {
                tracing::warn!(error = %e, "session store unreadable");
                record_store(self.kind, "claim", "unavailable");
                no_blind_login(&format!("{why} ({e})"))
            }
        }
    }

    /// A token for a WebSocket that must close before the token is `max_age` old: renews
    /// first when the current one would leave the socket less than `min_life`.
    ///
    /// # Errors
    /// The renewal's or login's errors when no token with enough life can be had.
    pub async fn socket_token(
        &self,
        max_age: Duration,
        min_life: Duration,
    ) -> Result<Token, BrokerError> {
        let t = self.token().await?;
        if lasts_for_socket(t.obtained_at, t.expires_at, max_age, min_life) {
            return Ok(t);
        }
        let _guard = self.auth.lock().await;
        if let Some(cur) = self.current()
            && cur.generation != t.generation
        {
            return Ok(cur);
        }
        self.renew_now_locked(|s| lasts_for_socket(s.obtained_at, s.expires_at, max_age, min_life))
            .await
            .map(|(t, _)| t)
    }

    /// A call with `token` was refused with 401: find out whether the session is dead (then
    /// log in again, allowed because no session lives) or the refusal was about the request.
    /// With a session store, a token another process stored since is adopted first, and the
    /// login is claimed (one process logs in, the others adopt its token).
    ///
    /// # Errors
    /// The login's errors when the session is dead and cannot be replaced.
    pub async fn after_unauthorized(
        &self,
        token: &Token,
    ) -> Result<AfterUnauthorized, BrokerError> {
        let _guard = self.auth.lock().await;
        if let Some(cur) = self.current()
            && cur.generation != token.generation
        {
            return Ok(AfterUnauthorized::Replaced);
        }
        if let Some(store) = &self.store {
            match store.load().await {
                Ok(Some(s)) if s.access_token != token.access && s.is_live(Utc::now()) => {
                    self.adopt(s);
                    return Ok(AfterUnauthorized::Replaced);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "session store unreadable after a 401"),
            }
        }
        if token.is_live(Utc::now()) {
            self.limits.admit(Lane::MAIN).await?;
            match self.raw.auth_me(&token.access).await {
                Ok(_) => return Ok(AfterUnauthorized::SessionAlive),
                Err(RawError::Status { status: 401, .. }) => {}
                Err(RawError::Decode { body, .. }) if looks_like_auth_failure(&body) => {}
                Err(other) => {
                    return Err(BrokerError::transport(format!(
                        "could not check the session after a 401: {other}"
                    )));
                }
            }
        }
        tracing::warn!("broker refused the session (evicted or expired); logging in again");
        self.drop_token(token);
        self.start_locked(Some(&token.access)).await?;
        Ok(AfterUnauthorized::Replaced)
    }

    fn drop_token(&self, token: &Token) {
        let mut cur = self.current.write();
        if cur
            .as_ref()
            .is_some_and(|c| c.generation == token.generation)
        {
            *cur = None;
        }
    }

    /// Takes a session another process stored as ours.
    fn adopt(&self, s: StoredSession) -> Token {
        let token = Token {
            access: s.access_token,
            md_access: s.md_access_token,
            obtained_at: s.obtained_at,
            expires_at: s.expires_at,
            user_id: s.user_id.as_deref().and_then(|u| u.parse().ok()),
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        *self.current.write() = Some(token.clone());
        *self.quiet_until.lock() = None;
        record_store(self.kind, "adopt", "ok");
        tracing::info!(expires_at = %token.expires_at, obtained_at = %token.obtained_at, "adopted the session another process stored");
        token
    }

    /// Tells the other processes about a token just obtained (never called after a failure).
    async fn publish(&self, token: &Token) {
        let Some(store) = &self.store else { return };
        let stored = StoredSession {
            access_token: token.access.clone(),
            md_access_token: token.md_access.clone(),
            obtained_at: token.obtained_at,
            expires_at: token.expires_at,
            user_id: token.user_id.map(|u| u.to_string()),
        };
        match store.save(&stored).await {
            Ok(()) => record_store(self.kind, "save", "ok"),
            Err(e) => {
                record_store(self.kind, "save", "failed");
                tracing::warn!(error = %e, "could not store the new session; other processes will not see it");
            }
        }
    }

    /// Tells the other processes what stops every login attempt.
    async fn report(&self, error: &BrokerError) {
        let Some(store) = &self.store else { return };
        let result = match error {
            BrokerError::NeedsReauth { reason } => store.report_auth_failure(reason).await,
            BrokerError::LockedOut { until } => {
                store
                    .report_locked_out(*until, "the broker demanded a captcha")
                    .await
            }
            _ => return,
        };
        if let Err(e) = result {
            record_store(self.kind, "report", "failed");
            tracing::warn!(error = %e, "could not record the login failure in the session store");
        }
    }

    fn accept(&self, resp: AccessTokenResponse) -> Result<Token, String> {
        if let Some(text) = resp.error_text.as_deref().filter(|t| !t.trim().is_empty()) {
            return Err(text.to_string());
        }
        let access = resp
            .access_token
            .filter(|a| !a.trim().is_empty())
            .ok_or("the answer carries no accessToken")?;
        let expires_at = resp
            .expiration_time
            .ok_or("the answer carries no expirationTime")?;
        let now = Utc::now();
        if expires_at <= now {
            return Err(format!(
                "the answer's expirationTime {expires_at} is not in the future"
            ));
        }
        let token = Token {
            access,
            md_access: resp.md_access_token,
            obtained_at: now,
            expires_at,
            user_id: resp.user_id,
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        *self.current.write() = Some(token.clone());
        Ok(token)
    }

    /// One renewal; a new token is saved to the store, a captcha reported.
    async fn renew_locked(&self, token: &Token) -> Result<Token, RenewFailure> {
        let result = self.renew_once(token).await;
        match &result {
            Ok(new) => self.publish(new).await,
            Err(RenewFailure::Transient(e)) => self.report(e).await,
            Err(RenewFailure::SessionDead(_)) => {}
        }
        result
    }

    /// One credential login; a new token is saved to the store, refused credentials and a
    /// captcha reported.
    async fn login_locked(&self) -> Result<Token, BrokerError> {
        let result = self.login_once().await;
        match &result {
            Ok(new) => self.publish(new).await,
            Err(e) => self.report(e).await,
        }
        result
    }

    async fn renew_once(&self, token: &Token) -> Result<Token, RenewFailure> {
        self.limits
            .admit(Lane::MAIN)
            .await
            .map_err(RenewFailure::Transient)?;
        let result = self.raw.renew_access_token(&token.access).await;
        let failure = match result {
            Ok(resp) => match self.accept(resp) {
                Ok(new) => {
                    record(self.kind, "renew", "ok");
                    tracing::info!(expires_at = %new.expires_at, "access token renewed");
                    return Ok(new);
                }
                Err(why) => why,
            },
            Err(RawError::Status {
                status: 401, body, ..
            }) => {
                record(self.kind, "renew", "session_dead");
                return Err(RenewFailure::SessionDead(format!("HTTP 401 {body}")));
            }
            Err(RawError::Penalty { captcha: true, .. }) => {
                let until = self.limits.lock_out();
                record(self.kind, "renew", "locked_out");
                return Err(RenewFailure::Transient(BrokerError::LockedOut { until }));
            }
            Err(RawError::Status {
                status: 429 | 423,
                retry_after,
                ..
            }) => {
                let wait = retry_after.unwrap_or(self.rate.too_many_requests_backoff);
                self.limits.cool_down(wait);
                record(self.kind, "renew", "rate_limited");
                return Err(RenewFailure::Transient(BrokerError::RateLimited {
                    retry_after: wait,
                }));
            }
            Err(other) => {
                record(self.kind, "renew", "transient");
                return Err(RenewFailure::Transient(BrokerError::transport(format!(
                    "renewal: {other}"
                ))));
            }
        };
        // The broker answered without a usable token. Whether the session still lives decides
        // whether a login is allowed: ask it.
        record(self.kind, "renew", "refused");
        if self.limits.admit(Lane::MAIN).await.is_ok() {
            match self.raw.auth_me(&token.access).await {
                Ok(_) => {
                    return Err(RenewFailure::Transient(BrokerError::transport(format!(
                        "renewal refused ({failure}) but the session lives; keeping the token"
                    ))));
                }
                Err(RawError::Status { status: 401, .. }) => {}
                Err(RawError::Decode { body, .. }) if looks_like_auth_failure(&body) => {}
                Err(other) => {
                    return Err(RenewFailure::Transient(BrokerError::transport(format!(
                        "renewal refused ({failure}); session check failed: {other}"
                    ))));
                }
            }
        }
        Err(RenewFailure::SessionDead(failure))
    }

    async fn login_once(&self) -> Result<Token, BrokerError> {
        let body = AccessTokenRequest::new(&self.credentials);
        let mut ticket: Option<String> = self.login_ticket.lock().take();
        let mut rounds = 0;
        loop {
            self.limits.admit(Lane::MAIN).await?;
            let result = self
                .raw
                .access_token_request(&body, ticket.as_deref())
                .await;
            match result {
                Ok(resp) => {
                    return match self.accept(resp) {
                        Ok(t) => {
                            record(self.kind, "login", "ok");
                            tracing::info!(expires_at = %t.expires_at, "logged in");
                            Ok(t)
                        }
                        Err(reason) => {
                            record(self.kind, "login", "refused");
                            Err(BrokerError::NeedsReauth { reason })
                        }
                    };
                }
                Err(RawError::Penalty { captcha: true, .. }) => {
                    record(self.kind, "login", "locked_out");
                    return Err(BrokerError::LockedOut {
                        until: self.limits.lock_out(),
                    });
                }
                Err(RawError::Penalty {
                    ticket: t, wait, ..
                }) => {
                    rounds += 1;
                    metrics::counter!("jt_broker_penalties_total", "broker" => self.kind.as_str())
                        .increment(1);
                    let cfg = &self.rate;
                    if rounds > cfg.max_penalty_rounds || wait > cfg.max_inline_penalty_wait {
                        record(self.kind, "login", "penalty");
                        let t = t.unwrap_or_default();
                        if !t.is_empty() {
                            *self.login_ticket.lock() = Some(t.clone());
                        }
                        return Err(BrokerError::Penalty { ticket: t, wait });
                    }
                    tokio::time::sleep(wait).await;
                    ticket = t;
                }
                Err(RawError::Status {
                    status: 401 | 403,
                    body,
                    ..
                }) => {
                    record(self.kind, "login", "refused");
                    return Err(BrokerError::NeedsReauth {
                        reason: format!("credentials refused: {body}"),
                    });
                }
                Err(RawError::Status {
                    status: 429 | 423,
                    retry_after,
                    ..
                }) => {
                    let wait = retry_after.unwrap_or(self.rate.too_many_requests_backoff);
                    self.limits.cool_down(wait);
                    record(self.kind, "login", "rate_limited");
                    return Err(BrokerError::RateLimited { retry_after: wait });
                }
                Err(other) => {
                    record(self.kind, "login", "transient");
                    return Err(BrokerError::transport(format!("login: {other}")));
                }
            }
        }
    }
}

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
        Session::after_unauthorized(self, token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_failures_are_recognised_in_text() {
        assert!(looks_like_auth_failure("Access is denied"));
        assert!(looks_like_auth_failure("Expired Access Token"));
        assert!(!looks_like_auth_failure("Invalid price"));
    }
}
