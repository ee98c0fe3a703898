//! Sharing one broker login's session between processes (DOMAIN §7–§9, BROKERS.md §1.2).
//!
//! Several processes use the same login at once (executor replicas, the connection manager,
//! daemons). Tradovate keeps at most two sessions per user and a third login evicts the oldest,
//! so processes that each logged in for themselves would evict each other's tokens in a loop.
//! A [`SessionStore`] is the place where the processes of one login meet:
//!
//! - [`SessionStore::load`] gives the latest token any of them obtained; a process adopts a
//!   live one instead of logging in;
//! - [`SessionStore::save`] is called after every successful login or renewal, never after a
//!   failure (a failed renewal must not replace a valid token);
//! - [`SessionStore::try_claim`] / [`SessionStore::release`] make renewals and logins
//!   exclusive across processes: one process renews or logs in, the others wait, re-load and
//!   adopt its token ([`claim_or_adopt`] is that loop, for every adapter);
//! - [`SessionStore::report_auth_failure`] and [`SessionStore::report_locked_out`] record what
//!   every process must know: the credentials were refused (needs re-authentication), or the
//!   broker demanded a captcha (no login attempt before `until`).
//!
//! The trait is broker-neutral (Tradovate and ProjectX use it alike) and object-safe
//! (`Arc<dyn SessionStore>`). [`MemorySessionStore`] serves one process (tests, tools); the
//! database-backed store for broker accounts is `jt_store::sessions` (see `docs/brokers.md`,
//! "Sessions across processes").

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rand::Rng;

/// A broker session as the processes of one login share it. `Debug` never shows the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The bearer token.
    pub access_token: String,
    /// The market-data token, when the broker issues one.
    pub md_access_token: Option<String>,
    /// When it was obtained (its age starts here, whichever process adopts it).
    pub obtained_at: DateTime<Utc>,
    /// When the broker said it expires.
    pub expires_at: DateTime<Utc>,
    /// The broker's user id, when it reports one.
    pub user_id: Option<String>,
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("access_token", &"<redacted>")
            .field(
                "md_access_token",
                &self.md_access_token.as_ref().map(|_| "<redacted>"),
            )
            .field("obtained_at", &self.obtained_at)
            .field("expires_at", &self.expires_at)
            .field("user_id", &self.user_id)
            .finish()
    }
}

impl StoredSession {
    /// Whether the broker still accepts it by the clock.
    #[must_use]
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    /// Whether it expires within `margin` of `now` (or already has): due for renewal.
    #[must_use]
    pub fn expires_within(&self, now: DateTime<Utc>, margin: Duration) -> bool {
        let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        now >= self.expires_at.checked_sub_signed(margin).unwrap_or(now)
    }
}

/// Why the store could not answer. The session then never logs in blind (that could evict
/// the other processes' session): a live token is kept, a missing one is an error to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionStoreError {
    /// The store cannot be reached now (database outage): retry later; nothing changed.
    #[error("session store unavailable: {detail}")]
    Unavailable {
        /// What failed.
        detail: String,
    },
    /// Any other failure (the record is gone, a stored token cannot be opened, …).
    #[error("session store failed: {detail}")]
    Failed {
        /// What failed.
        detail: String,
    },
}

/// Who holds a claim: unique per session object and process (`pid-<pid>-<random>`), so a
/// restarted process never mistakes an old claim for its own.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimHolder(String);

impl ClaimHolder {
    /// A new, unique holder.
    #[must_use]
    pub fn new() -> Self {
        let random: u64 = rand::rng().random();
        Self(format!("pid-{}-{random:016x}", std::process::id()))
    }

    /// The holder's text (what a store records).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClaimHolder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClaimHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ClaimHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What [`SessionStore::try_claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimAttempt {
    /// The caller holds the claim until `until` (it may renew or log in, then releases).
    Granted {
        /// When the claim lapses by itself (a crashed holder blocks the others at most this
        /// long).
        until: DateTime<Utc>,
    },
    /// Another holder has it until `until`: wait, re-load, adopt its token.
    Busy {
        /// When that claim lapses at the latest.
        until: DateTime<Utc>,
    },
    /// The broker locked the login out (captcha) until `until`: nobody may try.
    LockedOut {
        /// The earliest moment to try again.
        until: DateTime<Utc>,
    },
}

/// Where the processes of one broker login share its session; one value per login.
///
/// Implementations must make [`SessionStore::try_claim`] atomic across every process that
/// uses the login (a database row updated with a conditional `UPDATE`, …); a store that
/// cannot must say so in its docs, since two processes could then both log in.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// The latest stored session of this login, live or not; `None` when there is none.
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store cannot answer.
    async fn load(&self) -> Result<Option<StoredSession>, SessionStoreError>;

    /// Records a session just obtained by a successful login or renewal (never call it after
    /// a failure). A session obtained earlier than the stored one is ignored: the stored one
    /// is newer. A successful login also clears a "needs re-authentication" mark.
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store cannot record it.
    async fn save(&self, session: &StoredSession) -> Result<(), SessionStoreError>;

    /// Claims the right to renew or log in for `ttl`, unless another holder's claim is still
    /// running or the login is locked out. Claiming again while holding extends the claim.
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store cannot answer.
    async fn try_claim(
        &self,
        holder: &ClaimHolder,
        ttl: Duration,
    ) -> Result<ClaimAttempt, SessionStoreError>;

    /// Gives the claim back, if `holder` still holds it.
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store cannot answer (the claim then lapses by itself).
    async fn release(&self, holder: &ClaimHolder) -> Result<(), SessionStoreError>;

    /// The broker refused the credentials: the login needs re-authentication by a person
    /// (visible in the API and metrics).
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store cannot record it.
    async fn report_auth_failure(&self, reason: &str) -> Result<(), SessionStoreError>;

    /// The broker demanded a captcha: no process may try before `until`.
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store cannot record it.
    async fn report_locked_out(
        &self,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), SessionStoreError>;
}

/// How long claims hold and how a process waits for another's login.
#[derive(Debug, Clone)]
pub struct ClaimConfig {
    /// How long a claim holds. Longer than the longest renewal or login, penalty waits
    /// included; a crashed holder blocks the others at most this long.
    pub ttl: Duration,
    /// How often a waiting process re-reads the store.
    pub poll_interval: Duration,
    /// How long a process that has no live token waits for another's login before it gives
    /// up with an error (more than `ttl`, so a crashed holder's claim lapses first).
    pub max_wait: Duration,
}

impl Default for ClaimConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(90),
            poll_interval: Duration::from_millis(250),
            max_wait: Duration::from_secs(100),
        }
    }
}

/// A held claim. Release it with [`Claim::release`] once the new session is saved; a claim
/// dropped without that (a cancelled call) is released in the background, and lapses by
/// itself at `until` if even that fails.
pub struct Claim {
    store: Arc<dyn SessionStore>,
    holder: ClaimHolder,
    until: DateTime<Utc>,
    released: bool,
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("holder", &self.holder)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl Claim {
    /// When the claim lapses by itself.
    #[must_use]
    pub fn until(&self) -> DateTime<Utc> {
        self.until
    }

    /// Gives the claim back (a failure is logged: the claim lapses at `until`).
    pub async fn release(mut self) {
        self.released = true;
        if let Err(e) = self.store.release(&self.holder).await {
            tracing::warn!(error = %e, until = %self.until, "could not release the login claim; it lapses by itself");
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let store = Arc::clone(&self.store);
        let holder = self.holder.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.release(&holder).await {
                    tracing::warn!(error = %e, "could not release a dropped login claim; it lapses by itself");
                }
            });
        }
    }
}

/// What [`claim_or_adopt`] found.
#[derive(Debug)]
pub enum Acquired {
    /// Another process stored a session the caller accepts: adopt it, send nothing.
    Adopt(StoredSession),
    /// The caller holds the claim: renew or log in, [`SessionStore::save`], then
    /// [`Claim::release`]. `stored` is the latest stored session (the caller may renew it).
    Claimed {
        /// The held claim.
        claim: Claim,
        /// What the store held right after the claim was granted.
        stored: Option<StoredSession>,
    },
    /// Another process holds the claim (and, when waiting, kept it past `max_wait`).
    Busy {
        /// When its claim lapses.
        until: DateTime<Utc>,
    },
}

/// Why [`claim_or_adopt`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] SessionStoreError),
    /// The login is locked out (captcha) until `until`.
    #[error("login locked out until {until}")]
    LockedOut {
        /// The earliest moment to try again.
        until: DateTime<Utc>,
    },
}

/// The cross-process step before a renewal or login: load the store and adopt a session
/// `adoptable` accepts; otherwise claim. When another process holds the claim and `wait` is
/// set, poll (`config.poll_interval`) until its session appears (adopt), its claim lapses or is
/// released (claim), or `config.max_wait` passes (`Busy`); without `wait`, `Busy` at once (the
/// caller still has a live token). After a claim is granted the store is read again: the
/// previous holder may have saved between the first read and the claim.
///
/// # Errors
/// [`AcquireError::Store`] when the store cannot answer; [`AcquireError::LockedOut`] when the
/// store says the login is locked out.
pub async fn claim_or_adopt(
    store: &Arc<dyn SessionStore>,
    holder: &ClaimHolder,
    config: &ClaimConfig,
    wait: bool,
    adoptable: impl Fn(&StoredSession) -> bool + Send + Sync,
) -> Result<Acquired, AcquireError> {
    let deadline = tokio::time::Instant::now() + config.max_wait;
    loop {
        if let Some(s) = store.load().await?
            && adoptable(&s)
        {
            return Ok(Acquired::Adopt(s));
        }
        match store.try_claim(holder, config.ttl).await? {
            ClaimAttempt::Granted { until } => {
                let claim = Claim {
                    store: Arc::clone(store),
                    holder: holder.clone(),
                    until,
                    released: false,
                };
                let stored = match store.load().await {
                    Ok(s) => s,
                    Err(e) => {
                        claim.release().await;
                        return Err(e.into());
                    }
                };
                if let Some(s) = stored.as_ref().filter(|s| adoptable(s)) {
                    let s = s.clone();
                    claim.release().await;
                    return Ok(Acquired::Adopt(s));
                }
                return Ok(Acquired::Claimed { claim, stored });
            }
            ClaimAttempt::LockedOut { until } => return Err(AcquireError::LockedOut { until }),
            ClaimAttempt::Busy { until } => {
                if !wait || tokio::time::Instant::now() >= deadline {
                    return Ok(Acquired::Busy { until });
                }
                tokio::time::sleep(config.poll_interval).await;
            }
        }
    }
}

/// A [`SessionStore`] in memory: exclusive across the sessions of one process only (tests,
/// tools, a single-process `jt dev`). It keeps what was reported for inspection.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    session: Option<StoredSession>,
    claim: Option<(ClaimHolder, DateTime<Utc>)>,
    locked_until: Option<DateTime<Utc>>,
    needs_reauth: Option<String>,
    auth_failures: Vec<String>,
    saves: u64,
}

impl MemorySessionStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored session (what `load` would answer).
    #[must_use]
    pub fn stored(&self) -> Option<StoredSession> {
        self.state.lock().session.clone()
    }

    /// How many sessions were saved (ignored older ones included).
    #[must_use]
    pub fn saves(&self) -> u64 {
        self.state.lock().saves
    }

    /// Every reported authentication failure, oldest first.
    #[must_use]
    pub fn auth_failures(&self) -> Vec<String> {
        self.state.lock().auth_failures.clone()
    }

    /// The "needs re-authentication" mark: the last reported failure, cleared by a save.
    #[must_use]
    pub fn needs_reauth(&self) -> Option<String> {
        self.state.lock().needs_reauth.clone()
    }

    /// The reported lock-out, if any.
    #[must_use]
    pub fn locked_until(&self) -> Option<DateTime<Utc>> {
        self.state.lock().locked_until
    }

    /// The current claim's holder and expiry, if one runs.
    #[must_use]
    pub fn claim(&self) -> Option<(ClaimHolder, DateTime<Utc>)> {
        let state = self.state.lock();
        state.claim.clone().filter(|(_, until)| Utc::now() < *until)
    }
}

fn after(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::hours(1))
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn load(&self) -> Result<Option<StoredSession>, SessionStoreError> {
        Ok(self.stored())
    }

    async fn save(&self, session: &StoredSession) -> Result<(), SessionStoreError> {
        let mut state = self.state.lock();
        state.saves += 1;
        if state
            .session
            .as_ref()
            .is_none_or(|s| s.obtained_at <= session.obtained_at)
        {
            state.session = Some(session.clone());
        }
        state.needs_reauth = None;
        Ok(())
    }

    async fn try_claim(
        &self,
        holder: &ClaimHolder,
        ttl: Duration,
    ) -> Result<ClaimAttempt, SessionStoreError> {
        let now = Utc::now();
        let mut state = self.state.lock();
        if let Some(until) = state.locked_until.filter(|u| now < *u) {
            return Ok(ClaimAttempt::LockedOut { until });
        }
        match &state.claim {
            Some((other, until)) if other != holder && now < *until => {
                Ok(ClaimAttempt::Busy { until: *until })
            }
            _ => {
                let until = after(now, ttl);
                state.claim = Some((holder.clone(), until));
                Ok(ClaimAttempt::Granted { until })
            }
        }
    }

    async fn release(&self, holder: &ClaimHolder) -> Result<(), SessionStoreError> {
        let mut state = self.state.lock();
        if state.claim.as_ref().is_some_and(|(h, _)| h == holder) {
            state.claim = None;
        }
        Ok(())
    }

    async fn report_auth_failure(&self, reason: &str) -> Result<(), SessionStoreError> {
        let mut state = self.state.lock();
        state.auth_failures.push(reason.to_string());
        state.needs_reauth = Some(reason.to_string());
        Ok(())
    }

    async fn report_locked_out(
        &self,
        until: DateTime<Utc>,
        _reason: &str,
    ) -> Result<(), SessionStoreError> {
        let mut state = self.state.lock();
        if state.locked_until.is_none_or(|u| u < until) {
            state.locked_until = Some(until);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(token: &str, obtained_secs_ago: i64, lives_secs: i64) -> StoredSession {
        let now = Utc::now();
        StoredSession {
            access_token: token.into(),
            md_access_token: Some(format!("md-{token}")),
            obtained_at: now - chrono::Duration::seconds(obtained_secs_ago),
            expires_at: now + chrono::Duration::seconds(lives_secs),
            user_id: Some("7".into()),
        }
    }

    fn quick() -> ClaimConfig {
        ClaimConfig {
            ttl: Duration::from_millis(400),
            poll_interval: Duration::from_millis(10),
            max_wait: Duration::from_millis(600),
        }
    }

    fn store() -> (Arc<MemorySessionStore>, Arc<dyn SessionStore>) {
        let m = Arc::new(MemorySessionStore::new());
        let d: Arc<dyn SessionStore> = m.clone();
        (m, d)
    }

    #[test]
    fn debug_never_shows_tokens() {
        let s = session("secret-access", 0, 60);
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret-access"), "{shown}");
        assert!(shown.contains("expires_at"), "{shown}");
    }

    #[test]
    fn liveness_and_due_follow_the_expiry() {
        let now = Utc::now();
        let s = session("t", 0, 600);
        assert!(s.is_live(now));
        assert!(!s.expires_within(now, Duration::from_secs(300)));
        assert!(s.expires_within(now, Duration::from_secs(900)));
        let dead = session("t", 100, -1);
        assert!(!dead.is_live(now));
        assert!(dead.expires_within(now, Duration::ZERO));
    }

    #[test]
    fn holders_are_unique() {
        assert_ne!(ClaimHolder::new(), ClaimHolder::new());
        assert!(ClaimHolder::new().as_str().starts_with("pid-"));
    }

    #[tokio::test]
    async fn an_older_session_never_replaces_a_newer_one() {
        let (m, s) = store();
        s.save(&session("new", 10, 600)).await.unwrap();
        s.save(&session("old", 100, 900)).await.unwrap();
        assert_eq!(m.stored().unwrap().access_token, "new");
        assert_eq!(m.saves(), 2);
    }

    #[tokio::test]
    async fn a_live_stored_session_is_adopted_without_a_claim() {
        let (m, s) = store();
        s.save(&session("theirs", 5, 600)).await.unwrap();
        let a = ClaimHolder::new();
        let got = claim_or_adopt(&s, &a, &quick(), true, |x| x.is_live(Utc::now()))
            .await
            .unwrap();
        assert!(
            matches!(got, Acquired::Adopt(ref x) if x.access_token == "theirs"),
            "{got:?}"
        );
        assert!(m.claim().is_none(), "adopting claims nothing");
    }

    #[tokio::test]
    async fn with_nothing_stored_the_first_caller_claims_and_the_second_is_busy() {
        let (m, s) = store();
        let (a, b) = (ClaimHolder::new(), ClaimHolder::new());
        let got = claim_or_adopt(&s, &a, &quick(), true, |_| true)
            .await
            .unwrap();
        let Acquired::Claimed { claim, stored } = got else {
            panic!("expected a claim, got {got:?}");
        };
        assert!(stored.is_none());
        assert_eq!(m.claim().unwrap().0, a);
        // Without waiting, the second caller is told at once.
        let other = claim_or_adopt(&s, &b, &quick(), false, |_| true)
            .await
            .unwrap();
        assert!(
            matches!(other, Acquired::Busy { until } if until == claim.until()),
            "{other:?}"
        );
        claim.release().await;
        assert!(m.claim().is_none());
    }

    #[tokio::test]
    async fn a_waiting_caller_adopts_the_winners_session() {
        let (_, s) = store();
        let (a, b) = (ClaimHolder::new(), ClaimHolder::new());
        let Acquired::Claimed { claim, .. } = claim_or_adopt(&s, &a, &quick(), true, |_| true)
            .await
            .unwrap()
        else {
            panic!("the first caller claims");
        };
        let waiter = {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                claim_or_adopt(&s, &b, &quick(), true, |x| x.is_live(Utc::now())).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the waiter waits for the winner");
        s.save(&session("winner", 0, 600)).await.unwrap();
        claim.release().await;
        let got = waiter.await.unwrap().unwrap();
        assert!(
            matches!(got, Acquired::Adopt(ref x) if x.access_token == "winner"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_crashed_holders_claim_lapses_and_a_waiter_takes_over() {
        let (m, s) = store();
        let (a, b) = (ClaimHolder::new(), ClaimHolder::new());
        // The holder "crashes": its claim is neither released nor followed by a save.
        assert!(matches!(
            s.try_claim(&a, Duration::from_millis(100)).await.unwrap(),
            ClaimAttempt::Granted { .. }
        ));
        let started = std::time::Instant::now();
        let got = claim_or_adopt(&s, &b, &quick(), true, |_| true)
            .await
            .unwrap();
        assert!(matches!(got, Acquired::Claimed { .. }), "{got:?}");
        assert!(started.elapsed() >= Duration::from_millis(80));
        assert_eq!(m.claim().unwrap().0, b);
    }

    #[tokio::test]
    async fn waiting_gives_up_after_max_wait() {
        let (_, s) = store();
        let (a, b) = (ClaimHolder::new(), ClaimHolder::new());
        s.try_claim(&a, Duration::from_secs(30)).await.unwrap();
        let started = std::time::Instant::now();
        let got = claim_or_adopt(&s, &b, &quick(), true, |_| true)
            .await
            .unwrap();
        assert!(matches!(got, Acquired::Busy { .. }), "{got:?}");
        assert!(started.elapsed() >= quick().max_wait);
    }

    #[tokio::test]
    async fn a_session_saved_just_before_the_claim_is_adopted_and_the_claim_released() {
        // The race: nothing adoptable at the first read, the previous holder saves and
        // releases, our claim is granted: the second read must find the session.
        #[derive(Debug)]
        struct SavesOnClaim(MemorySessionStore);
        #[async_trait]
        impl SessionStore for SavesOnClaim {
            async fn load(&self) -> Result<Option<StoredSession>, SessionStoreError> {
                self.0.load().await
            }
            async fn save(&self, s: &StoredSession) -> Result<(), SessionStoreError> {
                self.0.save(s).await
            }
            async fn try_claim(
                &self,
                h: &ClaimHolder,
                ttl: Duration,
            ) -> Result<ClaimAttempt, SessionStoreError> {
                self.0.save(&session("raced", 0, 600)).await?;
                self.0.try_claim(h, ttl).await
            }
            async fn release(&self, h: &ClaimHolder) -> Result<(), SessionStoreError> {
                self.0.release(h).await
            }
            async fn report_auth_failure(&self, r: &str) -> Result<(), SessionStoreError> {
                self.0.report_auth_failure(r).await
            }
            async fn report_locked_out(
                &self,
                u: DateTime<Utc>,
                r: &str,
            ) -> Result<(), SessionStoreError> {
                self.0.report_locked_out(u, r).await
            }
        }
        let inner = Arc::new(SavesOnClaim(MemorySessionStore::new()));
        let s: Arc<dyn SessionStore> = inner.clone();
        let got = claim_or_adopt(&s, &ClaimHolder::new(), &quick(), true, |x| {
            x.is_live(Utc::now())
        })
        .await
        .unwrap();
        assert!(
            matches!(got, Acquired::Adopt(ref x) if x.access_token == "raced"),
            "{got:?}"
        );
        assert!(inner.0.claim().is_none(), "the claim was given back");
    }

    #[tokio::test]
    async fn a_lock_out_stops_every_claim() {
        let (_, s) = store();
        let until = Utc::now() + chrono::Duration::minutes(60);
        s.report_locked_out(until, "captcha").await.unwrap();
        let err = claim_or_adopt(&s, &ClaimHolder::new(), &quick(), true, |_| false)
            .await
            .unwrap_err();
        assert_eq!(err, AcquireError::LockedOut { until });
    }

    #[tokio::test]
    async fn a_store_failure_is_an_error_never_a_claim() {
        #[derive(Debug)]
        struct Down;
        #[async_trait]
        impl SessionStore for Down {
            async fn load(&self) -> Result<Option<StoredSession>, SessionStoreError> {
                Err(SessionStoreError::Unavailable {
                    detail: "database down".into(),
                })
            }
            async fn save(&self, _: &StoredSession) -> Result<(), SessionStoreError> {
                unreachable!("nothing is saved")
            }
            async fn try_claim(
                &self,
                _: &ClaimHolder,
                _: Duration,
            ) -> Result<ClaimAttempt, SessionStoreError> {
                unreachable!("no claim after a failed load")
            }
            async fn release(&self, _: &ClaimHolder) -> Result<(), SessionStoreError> {
                Ok(())
            }
            async fn report_auth_failure(&self, _: &str) -> Result<(), SessionStoreError> {
                Ok(())
            }
            async fn report_locked_out(
                &self,
                _: DateTime<Utc>,
                _: &str,
            ) -> Result<(), SessionStoreError> {
                Ok(())
            }
        }
        let s: Arc<dyn SessionStore> = Arc::new(Down);
        let err = claim_or_adopt(&s, &ClaimHolder::new(), &quick(), true, |_| true)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            AcquireError::Store(SessionStoreError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn a_dropped_claim_is_released_in_the_background() {
        let (m, s) = store();
        let Acquired::Claimed { claim, .. } =
            claim_or_adopt(&s, &ClaimHolder::new(), &quick(), true, |_| true)
                .await
                .unwrap()
        else {
            panic!("claims");
        };
        drop(claim);
        for _ in 0..50 {
            if m.claim().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the dropped claim was not released");
    }

    #[tokio::test]
    async fn claiming_again_extends_ones_own_claim_and_release_ignores_others() {
        let (m, s) = store();
        let (a, b) = (ClaimHolder::new(), ClaimHolder::new());
        let ClaimAttempt::Granted { until: first } =
            s.try_claim(&a, Duration::from_secs(1)).await.unwrap()
        else {
            panic!("granted");
        };
        let ClaimAttempt::Granted { until: second } =
            s.try_claim(&a, Duration::from_secs(5)).await.unwrap()
        else {
            panic!("granted again to its holder");
        };
        assert!(second > first);
        s.release(&b).await.unwrap();
        assert_eq!(m.claim().unwrap().0, a, "another holder cannot release it");
    }

    #[tokio::test]
    async fn a_successful_save_clears_the_needs_reauth_mark() {
        let (m, s) = store();
        s.report_auth_failure("Incorrect username or password")
            .await
            .unwrap();
        assert_eq!(
            m.needs_reauth().as_deref(),
            Some("Incorrect username or password")
        );
        s.save(&session("t", 0, 600)).await.unwrap();
        assert!(m.needs_reauth().is_none());
        assert_eq!(m.auth_failures().len(), 1, "the history stays");
    }
}
