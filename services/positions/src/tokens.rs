//! Token refresh (DOMAIN §7, issue #20): renews the broker logins' access tokens before they
//! expire, so that after a quiet period the next signal finds a live token instead of every
//! login logging in again at once from one IP.
//!
//! Every [`TokenConfig::every`] a pass lists the enabled logins whose stored token expires
//! within [`TokenConfig::renew_before`] (soonest first; logins waiting for re-authentication are
//! left out by the store) and renews them one after another, spread over three quarters of the
//! interval, through broker access — the same adapter, login registry and session store the
//! executor uses: the renewed token is saved with the account, and the next signal adopts it.
//!
//! - **Renewal first** (`Broker::renew`): Tradovate `auth/renewaccesstoken`, ProjectX
//!   `Auth/validate`. The session store's claim makes it exclusive across processes: an executor
//!   renewing the same login at that moment is waited for and its token adopted.
//! - **Then a login**: a renewal the broker refuses because the session is gone (401, expired,
//!   evicted) falls back to a credential login inside the adapter (`relogin`).
//! - **Then "needs re-authentication"**: when that login is refused for its credentials
//!   (`BrokerError::NeedsReauth`), the account is marked with the broker's reason (the adapter
//!   reports it through the session store too; marking again is harmless). The store leaves such
//!   accounts out of every later pass until the user enters credentials again.
//! - **Anything else** (network, 429/423, penalty tickets, 5xx, a captcha lock-out, the store
//!   down) is counted as a failure and retried next pass; nothing is marked. A login locked out
//!   (`locked_until` in the future) is skipped until then.
//!
//! **Per-IP limits.** Every pass runs on one replica (the lease holder), so its requests leave
//! from one address. Tradovate allows about 15 renewals and 5 access-token requests per IP and
//! rolling hour (DOMAIN §7): the refresher keeps its own rolling-hour budgets
//! ([`TokenConfig::renewals_per_hour`], [`TokenConfig::logins_per_hour`]) and never makes more
//! than [`TokenConfig::max_per_pass`] attempts in a pass. What does not fit is left for the next
//! pass (soonest expiry first); a login the executor needs meanwhile renews its token itself, as
//! before the daemon existed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::Utc;
use jt_broker::{BrokerError, SessionOutcome};
use jt_store::Store;
use jt_store::repo::accounts::BrokerAccount;
use serde::Serialize;

use crate::metrics;

/// The refresher's settings.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// How often a pass runs (`JT_TOKEN_REFRESH_SECS`, default 300).
    pub every: Duration,
    /// A token expiring within this is renewed (`JT_TOKEN_RENEW_BEFORE_SECS`, default 1800).
    pub renew_before: Duration,
    /// At most this many logins are renewed in one pass (`JT_TOKEN_RENEW_MAX_PER_PASS`,
    /// default 5).
    pub max_per_pass: usize,
    /// At most this many renewal attempts in any rolling hour (`JT_TOKEN_RENEWALS_PER_HOUR`,
    /// default 15: Tradovate's per-IP allowance).
    pub renewals_per_hour: usize,
    /// At most this many credential logins in any rolling hour (`JT_TOKEN_LOGINS_PER_HOUR`,
    /// default 5: Tradovate's per-IP allowance of access-token requests).
    pub logins_per_hour: usize,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(300),
            renew_before: Duration::from_secs(1800),
            max_per_pass: 5,
            renewals_per_hour: 15,
            logins_per_hour: 5,
        }
    }
}

/// What the refresher did (`GET /positions/status`, `tokens`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenStatus {
    /// When the last pass ended.
    pub finished_at: Option<chrono::DateTime<Utc>>,
    /// Passes since start.
    pub passes: u64,
    /// Logins due in the last pass.
    pub due: usize,
    /// Of which left for a later pass (the per-pass or per-hour budget was spent).
    pub deferred: usize,
    /// Tokens renewed since start.
    pub renewed: u64,
    /// Logins made since start (renewal impossible).
    pub relogins: u64,
    /// Accounts marked "needs re-authentication" since start.
    pub reauth_marked: u64,
    /// Failed attempts since start (retried next pass).
    pub failures: u64,
    /// Accounts waiting for re-authentication (the whole platform), at the last pass.
    pub needing_reauth: usize,
}

/// What one login's refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The token was renewed.
    Renewed,
    /// The session was gone: logged in again with the stored credentials.
    LoggedIn,
    /// Another process had already renewed it: its token was adopted, nothing sent.
    Adopted,
    /// Not due any more (renewed elsewhere since the pass listed it), disabled, or locked out.
    Skipped,
    /// The credentials were refused: the account is marked "needs re-authentication".
    MarkedReauth(String),
    /// Failed for now; the next pass retries.
    Failed(String),
}

/// A rolling-hour allowance of attempts.
#[derive(Debug)]
pub struct HourBudget {
    limit: usize,
    window: Duration,
    used: VecDeque<Instant>,
}

impl HourBudget {
    /// `limit` attempts per rolling hour.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self::with_window(limit, Duration::from_secs(3600))
    }

    /// `limit` attempts per rolling `window`.
    #[must_use]
    pub fn with_window(limit: usize, window: Duration) -> Self {
        Self {
            limit,
            window,
            used: VecDeque::new(),
        }
    }

    /// Attempts left now.
    pub fn left(&mut self, now: Instant) -> usize {
        while self
            .used
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.used.pop_front();
        }
        self.limit.saturating_sub(self.used.len())
    }

    /// Records an attempt at `now`.
    pub fn spend(&mut self, now: Instant) {
        self.used.push_back(now);
    }
}

/// The token refresher: one per lease holder.
pub struct Refresher {
    pub(crate) store: Store,
    pub(crate) brokers: std::sync::Arc<jt_connect::BrokerAccess>,
    pub(crate) config: TokenConfig,
    renewals: HourBudget,
    logins: HourBudget,
}

impl Refresher {
    /// A refresher over `store` and `brokers`, with fresh hourly budgets.
    #[must_use]
    pub fn new(
        store: Store,
        brokers: std::sync::Arc<jt_connect::BrokerAccess>,
        config: TokenConfig,
    ) -> Self {
        Self {
            renewals: HourBudget::new(config.renewals_per_hour),
            logins: HourBudget::new(config.logins_per_hour),
            store,
            brokers,
            config,
        }
    }

    fn horizon(&self) -> chrono::DateTime<Utc> {
        Utc::now()
            + chrono::Duration::from_std(self.config.renew_before)
                .unwrap_or_else(|_| chrono::Duration::minutes(30))
    }

    /// The logins due now, soonest expiry first.
    ///
    /// # Errors
    /// The store's.
    pub async fn due(&self) -> Result<Vec<BrokerAccount>, jt_store::StoreError> {
        self.store
            .system()
            .tokens_expiring_before(self.horizon())
            .await
    }

    /// Whether the budgets allow one more attempt on `account` now (a login is certain when its
    /// token has already expired).
    fn admits(&mut self, account: &BrokerAccount, now: Instant) -> bool {
        let expired = account.token_expires_at.is_none_or(|t| t <= Utc::now());
        self.renewals.left(now) > 0 && (!expired || self.logins.left(now) > 0)
    }

    /// Renews `listed` (as the pass found it), logging in again when renewal is impossible and
    /// marking the account when its credentials are refused.
    pub async fn refresh(&mut self, listed: &BrokerAccount) -> Refreshed {
        // Read the account again: the pass is spread over minutes, and another process (an
        // executor, another replica during a partition) may have renewed it meanwhile.
        let account = match self.store.accounts().get(listed.owner, listed.id).await {
            Ok(a) => a,
            Err(e) => return Refreshed::Failed(format!("the account cannot be read: {e}")),
        };
        let now = Utc::now();
        if !account.enabled
            || account.needs_reauth
            || account.locked_until.is_some_and(|t| t > now)
            || account.token_expires_at.is_none_or(|t| t >= self.horizon())
        {
            return Refreshed::Skipped;
        }
        let broker = match self.brokers.for_account(&account).await {
            Ok(b) => b,
            Err(e) => return Refreshed::Failed(e.to_string()),
        };
        let at = Instant::now();
        self.renewals.spend(at);
        if account.token_expires_at.is_some_and(|t| t <= now) {
            // Expired: the adapter cannot renew it and logs in.
            self.logins.spend(at);
        }
        match broker.renew().await {
            Ok(info) => match info.outcome {
                SessionOutcome::Renewed => Refreshed::Renewed,
                SessionOutcome::LoggedIn => {
                    if account.token_expires_at.is_some_and(|t| t > now) {
                        self.logins.spend(at);
                    }
                    Refreshed::LoggedIn
                }
                SessionOutcome::Reused => Refreshed::Adopted,
            },
            Err(BrokerError::NeedsReauth { reason }) => {
                if account.token_expires_at.is_some_and(|t| t > now) {
                    self.logins.spend(at);
                }
                // The adapter reported it through the session store already; marking again is
                // idempotent and covers a report that could not be written.
                if let Err(e) = self
                    .store
                    .accounts()
                    .mark_needs_reauth(account.owner, account.id, &reason)
                    .await
                {
                    return Refreshed::Failed(format!(
                        "the credentials were refused ({reason}) but the mark could not be \
                         stored: {e}"
                    ));
                }
                crate::notify::needs_reauth(
                    &self.store,
                    account.owner,
                    account.id,
                    &account.label,
                    &account.broker.to_string(),
                    &reason,
                )
                .await;
                Refreshed::MarkedReauth(reason)
            }
            Err(e) => Refreshed::Failed(e.to_string()),
        }
    }

    /// One pass over the due logins, spread over three quarters of the interval; `stop` ends it
    /// early.
    pub async fn pass(
        &mut self,
        stop: &tokio_util::sync::CancellationToken,
        status: &parking_lot::Mutex<TokenStatus>,
    ) {
        let due = match self.due().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the tokens to renew: pass skipped");
                metrics::token_failure("store");
                return;
            }
        };
        let count = due.len().min(self.config.max_per_pass);
        let spacing = self
            .config
            .every
            .mul_f64(0.75)
            .checked_div(u32::try_from(count).unwrap_or(u32::MAX).max(1))
            .unwrap_or_default();
        let mut attempted = 0;
        let mut deferred = 0;
        for account in &due {
            if attempted >= self.config.max_per_pass || !self.admits(account, Instant::now()) {
                deferred += 1;
                continue;
            }
            if attempted > 0 {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(spacing) => {}
                }
            }
            attempted += 1;
            let outcome = self.refresh(account).await;
            let mut s = status.lock();
            match &outcome {
                Refreshed::Renewed => {
                    metrics::token_renewed();
                    s.renewed += 1;
                    tracing::info!(login = %account.id, "access token renewed before expiry");
                }
                Refreshed::LoggedIn => {
                    metrics::token_relogin();
                    s.relogins += 1;
                    tracing::info!(login = %account.id, "renewal impossible: logged in again with the stored credentials");
                }
                Refreshed::Adopted | Refreshed::Skipped => {
                    // Nothing sent (or nothing left to do): does not use up the pass.
                    attempted -= 1;
                    tracing::debug!(login = %account.id, ?outcome, "token not renewed by this pass");
                }
                Refreshed::MarkedReauth(reason) => {
                    metrics::token_reauth_marked();
                    s.reauth_marked += 1;
                    tracing::warn!(login = %account.id, %reason, "credentials refused: account marked \"needs re-authentication\"");
                }
                Refreshed::Failed(why) => {
                    metrics::token_failure("broker");
                    s.failures += 1;
                    tracing::warn!(login = %account.id, error = %why, "token not renewed: next pass retries");
                }
            }
        }
        let needing = self
            .store
            .system()
            .accounts_needing_reauth()
            .await
            .map(|a| a.len());
        let mut s = status.lock();
        if let Ok(n) = needing {
            metrics::needing_reauth(n);
            s.needing_reauth = n;
        }
        metrics::token_pass(due.len(), deferred);
        s.finished_at = Some(Utc::now());
        s.passes += 1;
        s.due = due.len();
        s.deferred = deferred;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hour_budget_refills_as_attempts_age_out() {
        let mut b = HourBudget::with_window(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(b.left(t0), 2);
        b.spend(t0);
        b.spend(t0 + Duration::from_secs(4));
        assert_eq!(b.left(t0 + Duration::from_secs(5)), 0);
        assert_eq!(b.left(t0 + Duration::from_secs(10)), 1);
        assert_eq!(b.left(t0 + Duration::from_secs(14)), 2);
    }

    #[test]
    fn a_zero_budget_admits_nothing() {
        let mut b = HourBudget::new(0);
        assert_eq!(b.left(Instant::now()), 0);
    }
}
