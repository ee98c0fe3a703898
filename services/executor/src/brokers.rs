//! The executor's brokers: one `Arc<dyn Broker>` per broker login, built from the account's
//! stored (sealed) credentials and shared by every sub-account of that login, so all of them
//! use one session and one rate-limit budget (DOMAIN.md §7).
//!
//! A broker is rebuilt when the account changes (new credentials, environment): the cache is
//! keyed by the account's `updated_at`. Sessions are shared across processes through the store
//! (`jt_store::StoreSessions`), so executor replicas never log each other out. The built-in simulator (`sim` accounts) is reached with
//! the Tradovate adapter at the simulator's address; that is also how `jt dev` runs.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use jt_broker::{AccountId, Broker, BrokerEvents};
use jt_projectx::{Credentials as PxCredentials, Firm, ProjectXBroker, ProjectXConfig};
use jt_store::repo::accounts::BrokerAccount;
use jt_store::{BrokerAccountId, BrokerKind, Environment, Store, StoreError};
use jt_tradovate::{
    Brand, Credentials, Environment as TvEnvironment, TradovateBroker, TradovateConfig,
};
use parking_lot::Mutex;

/// Why no broker could be built for an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The account's broker has no adapter in this build.
    #[error("{broker} accounts are not supported yet")]
    Unsupported {
        /// The broker.
        broker: String,
    },
    /// The account has no stored credentials.
    #[error("the broker account has no credentials stored: enter them in the account settings")]
    NoCredentials,
    /// A `sim` account without a simulator address.
    #[error("simulator accounts need JT_SIM_URL (the simulator's address)")]
    NoSimulator,
    /// The store could not answer (retry).
    #[error("could not read the broker account: {0}")]
    Store(String),
    /// The adapter could not be built.
    #[error("could not set up the broker client: {0}")]
    Adapter(String),
}

impl RegistryError {
    /// Whether retrying later can help (a store outage), as opposed to a configuration problem.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Store(_))
    }
}

struct Cached {
    updated_at: DateTime<Utc>,
    broker: Arc<dyn Broker>,
    /// For brokers whose multi-leg exits are kept consistent by their own event handler
    /// (ProjectX's exit guard), the subscription that keeps it running; dropped with the entry.
    _events: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Cached {
    fn drop(&mut self) {
        if let Some(task) = &self._events {
            task.abort();
        }
    }
}

/// Builds and caches brokers per broker account.
pub struct BrokerRegistry {
    store: Store,
    sim_url: Option<String>,
    /// Base address for ProjectX accounts instead of the firms' hosts (the simulator).
    projectx_url: Option<String>,
    /// How long a login backs off after an HTTP 429 without `Retry-After` (`None`: each
    /// adapter's default).
    too_many_requests_backoff: Option<std::time::Duration>,
    cache: Mutex<HashMap<BrokerAccountId, Cached>>,
}

impl std::fmt::Debug for BrokerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerRegistry")
            .field("sim_url", &self.sim_url)
            .field("brokers", &self.cache.lock().len())
            .finish_non_exhaustive()
    }
}

impl BrokerRegistry {
    /// A registry reading credentials from `store`; `sim_url` is the simulator's base address
    /// (`http://127.0.0.1:8081`) for `sim` accounts.
    #[must_use]
    pub fn new(store: Store, sim_url: Option<String>) -> Self {
        Self {
            store,
            sim_url,
            projectx_url: None,
            too_many_requests_backoff: None,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Sets how long a login backs off after an HTTP 429 that names no wait (`None`: the
    /// adapters' defaults, a minute for Tradovate).
    #[must_use]
    pub fn with_too_many_requests_backoff(mut self, wait: Option<std::time::Duration>) -> Self {
        self.too_many_requests_backoff = wait;
        self
    }

    /// Reaches ProjectX accounts at `base` (the simulator's ProjectX surface) instead of the
    /// firms' hosts.
    #[must_use]
    pub fn with_projectx_url(mut self, base: Option<String>) -> Self {
        self.projectx_url = base;
        self
    }

    /// The broker of `account`, built on first use and rebuilt when the account changed.
    ///
    /// # Errors
    /// [`RegistryError`] when the account cannot be reached (see each variant).
    pub async fn broker(&self, account: &BrokerAccount) -> Result<Arc<dyn Broker>, RegistryError> {
        if let Some(c) = self.cache.lock().get(&account.id)
            && c.updated_at == account.updated_at
        {
            return Ok(Arc::clone(&c.broker));
        }
        // Forget the old broker first: a login is shared in this process only while a broker
        // of it lives, and a changed account must get a login with its new credentials.
        self.cache.lock().remove(&account.id);
        let (broker, events) = self.build(account).await?;
        self.cache.lock().insert(
            account.id,
            Cached {
                updated_at: account.updated_at,
                broker: Arc::clone(&broker),
                _events: events,
            },
        );
        Ok(broker)
    }

    async fn build(
        &self,
        account: &BrokerAccount,
    ) -> Result<(Arc<dyn Broker>, Option<tokio::task::JoinHandle<()>>), RegistryError> {
        if account.broker == BrokerKind::ProjectX {
            return self.build_projectx(account).await;
        }
        let (brand, base_url) = match account.broker {
            BrokerKind::Tradovate => (Brand::Tradovate, None),
            BrokerKind::NinjaTrader => (Brand::NinjaTrader, None),
            BrokerKind::Sim => (
                Brand::Tradovate,
                Some(self.sim_url.clone().ok_or(RegistryError::NoSimulator)?),
            ),
            other => {
                return Err(RegistryError::Unsupported {
                    broker: other.to_string(),
                });
            }
        };
        if !account.has_credentials {
            return Err(RegistryError::NoCredentials);
        }
        let creds = self
            .store
            .accounts()
            .credentials(account.owner, account.id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => RegistryError::NoCredentials,
                other => RegistryError::Store(other.to_string()),
            })?;
        let credentials = Credentials {
            name: account.username.clone().unwrap_or_default(),
            password: creds
                .password
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
            app_id: creds.app_id,
            app_version: creds.app_version,
            device_id: creds.device_id,
            cid: creds.client_id,
            sec: creds.client_secret.map(|s| s.expose().to_string()),
        };
        let environment = match account.environment {
            Environment::Live => TvEnvironment::Live,
            _ => TvEnvironment::Demo,
        };
        // The session (token) is shared with every other process using this login through the
        // store: replicas adopt one token instead of each logging in (Tradovate allows two
        // sessions per user; a third login revokes the oldest).
        let mut config = TradovateConfig::new(brand, environment, credentials)
            .with_session_store(jt_store::StoreSessions::for_account(&self.store, account));
        if let Some(wait) = self.too_many_requests_backoff {
            config.limits.too_many_requests_backoff = wait;
        }
        if let Some(base) = base_url {
            config = config
                .with_base_url(&base)
                .map_err(RegistryError::Adapter)?;
        }
        let broker =
            TradovateBroker::new(config).map_err(|e| RegistryError::Adapter(e.to_string()))?;
        Ok((Arc::new(broker), None))
    }

    /// ProjectX: the entry carries one native take-profit and stop; the adapter places the
    /// other legs itself, and its exit guard (which runs on the account's event stream) shrinks
    /// the native stop as legs fill, so the stop can never reverse the position. The registry
    /// therefore keeps an event subscription on the login's sub-accounts for as long as it
    /// keeps the broker.
    async fn build_projectx(
        &self,
        account: &BrokerAccount,
    ) -> Result<(Arc<dyn Broker>, Option<tokio::task::JoinHandle<()>>), RegistryError> {
        if !account.has_credentials {
            return Err(RegistryError::NoCredentials);
        }
        let creds = self
            .store
            .accounts()
            .credentials(account.owner, account.id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => RegistryError::NoCredentials,
                other => RegistryError::Store(other.to_string()),
            })?;
        let api_key = creds.api_key.ok_or(RegistryError::NoCredentials)?;
        let credentials = PxCredentials {
            user_name: account.username.clone().unwrap_or_default(),
            api_key: api_key.expose().to_string(),
        };
        let firm = match account.environment {
            Environment::Live => Firm::TopstepX,
            _ => Firm::Demo,
        };
        let mut config = ProjectXConfig::new(firm, credentials);
        if let Some(wait) = self.too_many_requests_backoff {
            config.limits.too_many_requests_backoff = wait;
        }
        if let Some(base) = &self.projectx_url {
            config = config.with_base_url(base).map_err(RegistryError::Adapter)?;
        }
        config.session.store = Some(jt_store::StoreSessions::for_account(&self.store, account));
        let projectx =
            ProjectXBroker::new(config).map_err(|e| RegistryError::Adapter(e.to_string()))?;
        let subs = self
            .store
            .accounts()
            .sub_accounts(account.owner, account.id)
            .await
            .map_err(|e| RegistryError::Store(e.to_string()))?;
        let ids: Vec<AccountId> = subs
            .into_iter()
            .map(|s| AccountId(s.broker_sub_account_id))
            .collect();
        let events = match projectx.subscribe(&ids).await {
            Ok(mut subscription) => Some(tokio::spawn(async move {
                // The guard acts inside the adapter; this task only keeps the stream open.
                while subscription.recv().await.is_some() {}
            })),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "ProjectX event stream not started: extra take-profit legs cannot be guarded"
                );
                None
            }
        };
        Ok((Arc::new(projectx), events))
    }
}
