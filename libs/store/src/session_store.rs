//! [`jt_broker::SessionStore`] for broker accounts: the processes that use one broker login
//! (executor replicas, the connection manager, daemons) share its session through the
//! account's row — sealed tokens with their times, the renewal/login claim, the
//! "needs re-authentication" mark and the captcha lock-out (`docs/brokers.md`, "Sessions
//! across processes").
//!
//! Layering: `jt-store` depends on the light `jt-broker` for the trait (never on a venue);
//! `jt-broker` never depends on `jt-store` (it knows only the trait), so there is no cycle.
//!
//! ```no_run
//! # async fn wire(store: jt_store::Store, account: jt_store::repo::accounts::BrokerAccount,
//! #     config: jt_tradovate::TradovateConfig) {
//! let config = config.with_session_store(jt_store::StoreSessions::for_account(&store, &account));
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jt_broker::{ClaimAttempt, ClaimHolder, SessionStore, SessionStoreError, StoredSession};

use crate::Store;
use crate::error::StoreError;
use crate::ids::{BrokerAccountId, UserId};
use crate::repo::accounts::BrokerAccount;
use crate::repo::broker_sessions::{BrokerSession, SessionSaved};
use crate::secret::Secret;

/// The session store of one broker account (one login).
#[derive(Clone)]
pub struct StoreSessions {
    store: Store,
    owner: UserId,
    account: BrokerAccountId,
}

impl std::fmt::Debug for StoreSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSessions")
            .field("owner", &self.owner)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl StoreSessions {
    /// The session store of `owner`'s broker account `account`.
    #[must_use]
    pub fn new(store: Store, owner: UserId, account: BrokerAccountId) -> Self {
        Self {
            store,
            owner,
            account,
        }
    }

    /// The session store of `account`, ready for `TradovateConfig::with_session_store` (or
    /// any adapter's equivalent).
    #[must_use]
    pub fn for_account(store: &Store, account: &BrokerAccount) -> Arc<dyn SessionStore> {
        Arc::new(Self::new(store.clone(), account.owner, account.id))
    }
}

fn store_error(e: StoreError) -> SessionStoreError {
    if e.is_transient() {
        SessionStoreError::Unavailable {
            detail: e.to_string(),
        }
    } else {
        SessionStoreError::Failed {
            detail: e.to_string(),
        }
    }
}

#[async_trait]
impl SessionStore for StoreSessions {
    async fn load(&self) -> Result<Option<StoredSession>, SessionStoreError> {
        let stored = self
            .store
            .broker_sessions()
            .load(self.owner, self.account)
            .await
            .map_err(store_error)?;
        Ok(stored.map(|s| StoredSession {
            access_token: s.access_token.expose().to_string(),
            md_access_token: s.md_access_token.map(|m| m.expose().to_string()),
            obtained_at: s.obtained_at,
            expires_at: s.expires_at,
            user_id: s.broker_user_id,
        }))
    }

    async fn save(&self, session: &StoredSession) -> Result<(), SessionStoreError> {
        let s = BrokerSession {
            access_token: Secret::new(session.access_token.clone()),
            md_access_token: session.md_access_token.clone().map(Secret::new),
            obtained_at: session.obtained_at,
            expires_at: session.expires_at,
            broker_user_id: session.user_id.clone(),
        };
        let saved = self
            .store
            .broker_sessions()
            .save(self.owner, self.account, &s)
            .await
            .map_err(store_error)?;
        if saved == SessionSaved::Superseded {
            tracing::debug!(account = %self.account, "a newer session was already stored; kept it");
        }
        Ok(())
    }

    async fn try_claim(
        &self,
        holder: &ClaimHolder,
        ttl: Duration,
    ) -> Result<ClaimAttempt, SessionStoreError> {
        self.store
            .broker_sessions()
            .try_claim(self.owner, self.account, holder.as_str(), ttl)
            .await
            .map_err(store_error)
    }

    async fn release(&self, holder: &ClaimHolder) -> Result<(), SessionStoreError> {
        self.store
            .broker_sessions()
            .release_claim(self.owner, self.account, holder.as_str())
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn report_auth_failure(&self, reason: &str) -> Result<(), SessionStoreError> {
        self.store
            .accounts()
            .mark_needs_reauth(self.owner, self.account, reason)
            .await
            .map_err(store_error)
    }

    async fn report_locked_out(
        &self,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), SessionStoreError> {
        self.store
            .accounts()
            .lock_until(self.owner, self.account, until, reason)
            .await
            .map_err(store_error)
    }
}
