//! Broker access: turning a stored broker account into a ready `Arc<dyn Broker>` — credentials
//! unsealed, the venue's adapter built, the login shared — for every service that talks to a
//! broker (executor, API, risk, reconciler, copier).
//!
//! One [`BrokerAccess`] per process, passed in (the service skeleton's context holds it): it
//! owns the process's connection pools, connect gate and per-venue login registries, so every
//! sub-account of one login uses one session and one rate-limit budget (DOMAIN.md §7), and two
//! services of one process (`jt dev`) share them too. Sessions are shared across processes
//! through the store (`jt_store::StoreSessions`), so replicas never log each other out, and
//! request budgets across processes through the bus ([`BusBudgets`], set with
//! [`AccessConfig::with_shared_budgets`]), so replicas together never pass a login's limits;
//! the same store holds the fleet's connect gate, so replicas together never make more socket
//! connection attempts than DOMAIN §8 allows.
//!
//! A broker is rebuilt when its account changes (new credentials, environment): the cache is
//! keyed by the account's `updated_at`. Endpoint overrides — `JT_SIM_URL` for the built-in
//! simulator (`sim` accounts, reached with the Tradovate adapter), `JT_PROJECTX_URL` for
//! ProjectX, `JT_WEBULL_URL` for Webull — are this library's configuration ([`AccessConfig`]).
//!
//! What it must not do: hold a trading rule, keep a process-wide static, or open an event
//! connection: [`BrokerAccess::events_for`] hands out the adapter's event side, and only the
//! connection manager subscribes to it (which also keeps ProjectX's exit guard running).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use jt_broker::{AccountInfo, BrokerError};
use jt_broker::{Broker, BrokerEvents};
use jt_net::budget::{self, BudgetStore};
use jt_net::gate::{ConnectGate, GateConfig};
use jt_net::registry::Plumbing;
use jt_projectx::{Credentials as PxCredentials, Firm, ProjectXBroker, ProjectXConfig};
use jt_runtime::config::{ConfigError, Env, optional, or_default};
use jt_store::repo::accounts::BrokerAccount;
use jt_store::{BrokerAccountId, BrokerKind, Environment, Store, StoreError};
use jt_tradovate::{
    Brand, Credentials, Environment as TvEnvironment, TradovateBroker, TradovateConfig,
};
use jt_webull::{WebullBroker, WebullConfig};
use parking_lot::Mutex;

/// Why no broker could be built for an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
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
    /// The broker refused or failed a call made to check the account (log-in, account list).
    #[error("the broker answered: {0}")]
    Broker(BrokerError),
}

impl AccessError {
    /// Whether retrying later can help (a store outage), as opposed to a configuration problem.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, AccessError::Store(_))
    }
}

struct Cached {
    updated_at: DateTime<Utc>,
    broker: Arc<dyn Broker>,
    /// The same adapter as its event stream: opened only when someone subscribes (the
    /// connection manager).
    events: Arc<dyn BrokerEvents>,
}

/// A built adapter, as commands and as an event stream.
type Built = (Arc<dyn Broker>, Arc<dyn BrokerEvents>);

/// Where broker access reaches the brokers, and how their logins behave.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// Base address of the built-in simulator (`http://127.0.0.1:8081`), for `sim` accounts
    /// (`JT_SIM_URL`).
    pub sim_url: Option<String>,
    /// Base address for ProjectX accounts instead of the firms' hosts (`JT_PROJECTX_URL`; the
    /// simulator's ProjectX surface in tests).
    pub projectx_url: Option<String>,
    /// Base address for Webull accounts instead of Webull's hosts (`JT_WEBULL_URL`; the
    /// simulator's Webull surface in tests and `jt dev`).
    pub webull_url: Option<String>,
    /// How long a login backs off after an HTTP 429 that names no wait
    /// (`JT_BROKER_429_BACKOFF_SECS`; unset: each adapter's default, 60 s for Tradovate).
    pub too_many_requests_backoff: Option<std::time::Duration>,
    /// The longest random delay before a login's event connection first connects
    /// (`JT_BROKER_START_STAGGER_SECS`; unset: each adapter's default, 30 s), so a fleet
    /// starting at once does not connect at once. Tests set zero.
    pub start_stagger: Option<std::time::Duration>,
    /// The connect gate: socket connection attempts in flight and their spacing — the
    /// fleet's when [`AccessConfig::budgets`] is set (its store holds the gate's ledger too),
    /// else this process's.
    pub gate: GateConfig,
    /// Calls a login may make per budget window, below the venue's own (Tradovate: 5,000 an
    /// hour; ProjectX: 200 a minute) to keep headroom for other tools on the login
    /// (`JT_BROKER_REQUEST_BUDGET`; unset: the venue's). Tests set a small one.
    pub request_budget: Option<u32>,
    /// Where the fleet shares the logins' request budgets (the services: the bus, see
    /// [`BusBudgets`]); `None`: each process keeps to its own limits only.
    pub budgets: Option<Arc<dyn BudgetStore>>,
}

impl AccessConfig {
    /// Reads the settings from the environment, with defaults.
    ///
    /// # Errors
    /// A variable that is set but malformed, named in the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            sim_url: optional(env, "JT_SIM_URL")?,
            projectx_url: optional(env, "JT_PROJECTX_URL")?,
            webull_url: optional(env, "JT_WEBULL_URL")?,
            too_many_requests_backoff: optional::<u64>(env, "JT_BROKER_429_BACKOFF_SECS")?
                .map(std::time::Duration::from_secs),
            start_stagger: optional::<u64>(env, "JT_BROKER_START_STAGGER_SECS")?
                .map(std::time::Duration::from_secs),
            gate: gate_from_env(env)?,
            request_budget: match optional::<u32>(env, "JT_BROKER_REQUEST_BUDGET")? {
                // Zero would refuse every broker call of every login: never what is meant.
                Some(0) => {
                    return Err(ConfigError::Invalid {
                        name: "JT_BROKER_REQUEST_BUDGET".into(),
                        value: "0".into(),
                        reason: "a login's request budget must be at least 1 call per window \
                                 (unset: the venue's own)"
                            .into(),
                    });
                }
                b => b,
            },
            budgets: None,
        })
    }

    /// Socket connection attempts in flight at once and the least time between their starts.
    #[must_use]
    pub fn with_gate(mut self, gate: GateConfig) -> Self {
        self.gate = gate;
        self
    }

    /// The logins' request budgets, and the connect gate, shared by the fleet through
    /// `budgets` (the gate's ledger is one more key in the same store).
    #[must_use]
    pub fn with_shared_budgets(mut self, budgets: Arc<dyn BudgetStore>) -> Self {
        self.budgets = Some(budgets);
        self
    }

    /// At most `calls` per budget window per login (Tradovate: an hour; ProjectX: its window).
    #[must_use]
    pub fn with_request_budget(mut self, calls: u32) -> Self {
        self.request_budget = Some(calls);
        self
    }

    /// Event connections start within `max` (zero: at once).
    #[must_use]
    pub fn with_start_stagger(mut self, max: std::time::Duration) -> Self {
        self.start_stagger = Some(max);
        self
    }

    /// `base` for ProjectX accounts (the simulator's ProjectX surface: REST under `/api`, the
    /// hubs under `/hubs`).
    #[must_use]
    pub fn with_projectx_url(mut self, base: impl Into<String>) -> Self {
        self.projectx_url = Some(base.into());
        self
    }

    /// `base` for Webull accounts (the simulator's Webull surface).
    #[must_use]
    pub fn with_webull_url(mut self, base: impl Into<String>) -> Self {
        self.webull_url = Some(base.into());
        self
    }

    /// The simulator at `base` for `sim` accounts.
    #[must_use]
    pub fn with_sim_url(mut self, base: impl Into<String>) -> Self {
        self.sim_url = Some(base.into());
        self
    }
}

/// The connect gate from `JT_BROKER_CONNECTS_IN_FLIGHT` (default 2) and
/// `JT_BROKER_CONNECT_SPACING_MS` (default 3,000): DOMAIN §8's numbers, which ended the replaced
/// platform's 429 storms. Raising them is for a venue that allows more; zero in flight is refused.
fn gate_from_env(env: &impl Env) -> Result<GateConfig, ConfigError> {
    let d = GateConfig::default();
    let max_in_flight = or_default(env, "JT_BROKER_CONNECTS_IN_FLIGHT", d.max_in_flight)?;
    if max_in_flight == 0 {
        return Err(ConfigError::Invalid {
            name: "JT_BROKER_CONNECTS_IN_FLIGHT".into(),
            value: "0".into(),
            reason: "at least one socket connection attempt must be allowed".into(),
        });
    }
    let spacing = or_default(
        env,
        "JT_BROKER_CONNECT_SPACING_MS",
        u64::try_from(d.spacing.as_millis()).unwrap_or(3_000),
    )?;
    Ok(GateConfig {
        max_in_flight,
        spacing: std::time::Duration::from_millis(spacing),
    })
}

/// Builds and caches brokers per broker account, over the process's own pools, connect gate
/// and login registries (never process-wide statics).
pub struct BrokerAccess {
    store: Store,
    config: AccessConfig,
    tradovate: Arc<jt_tradovate::LoginRegistry>,
    projectx: Arc<jt_projectx::LoginRegistry>,
    webull: Arc<jt_webull::LoginRegistry>,
    cache: Mutex<HashMap<BrokerAccountId, Cached>>,
}

impl std::fmt::Debug for BrokerAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAccess")
            .field("sim_url", &self.config.sim_url)
            .field("projectx_url", &self.config.projectx_url)
            .field("webull_url", &self.config.webull_url)
            .field("brokers", &self.cache.lock().len())
            .finish_non_exhaustive()
    }
}

impl BrokerAccess {
    /// Broker access reading credentials from `store`, with pools, a connect gate and login
    /// registries of its own (one per process: share the value, do not build a second).
    #[must_use]
    pub fn new(store: Store, config: AccessConfig) -> Self {
        let mut plumbing = Plumbing::new(&config.gate).with_budgets(config.budgets.clone());
        // The store that shares the budgets shares the connect gate too (DOMAIN §8 counts the
        // fleet's attempts, not a replica's): every service that opens sockets gets it.
        if let Some(store) = &config.budgets {
            plumbing = plumbing.with_gate(ConnectGate::shared(&config.gate, Arc::clone(store)));
        }
        Self {
            store,
            tradovate: jt_tradovate::LoginRegistry::new(plumbing.clone()),
            projectx: jt_projectx::LoginRegistry::new(plumbing.clone()),
            webull: jt_webull::LoginRegistry::new(plumbing),
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Its settings.
    #[must_use]
    pub fn config(&self) -> &AccessConfig {
        &self.config
    }

    /// Logs in to `account`'s broker and lists the accounts (sub-accounts) the login sees:
    /// what a user checks after entering credentials. Uses the cached broker when there is one,
    /// so a check never opens a second session of a login in use.
    ///
    /// # Errors
    /// [`AccessError`]; the broker's refusal (wrong password, locked out) as
    /// [`AccessError::Broker`] with its reason.
    pub async fn probe(&self, account: &BrokerAccount) -> Result<Vec<AccountInfo>, AccessError> {
        let broker = self.for_account(account).await?;
        broker.login().await.map_err(AccessError::Broker)?;
        broker.accounts().await.map_err(AccessError::Broker)
    }

    /// The broker of `account`, built on first use and rebuilt when the account changed.
    ///
    /// # Errors
    /// [`AccessError`] when the account cannot be reached (see each variant).
    pub async fn for_account(
        &self,
        account: &BrokerAccount,
    ) -> Result<Arc<dyn Broker>, AccessError> {
        Ok(self.built(account).await?.0)
    }

    /// The event side of `account`'s broker (the same adapter and login as
    /// [`BrokerAccess::for_account`]): the connection manager's only way to a login's events.
    /// Nothing is opened until it subscribes.
    ///
    /// # Errors
    /// As [`BrokerAccess::for_account`].
    pub async fn events_for(
        &self,
        account: &BrokerAccount,
    ) -> Result<Arc<dyn BrokerEvents>, AccessError> {
        Ok(self.built(account).await?.1)
    }

    async fn built(&self, account: &BrokerAccount) -> Result<Built, AccessError> {
        if let Some(c) = self.cache.lock().get(&account.id)
            && c.updated_at == account.updated_at
        {
            return Ok((Arc::clone(&c.broker), Arc::clone(&c.events)));
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
                events: Arc::clone(&events),
            },
        );
        Ok((broker, events))
    }

    async fn build(&self, account: &BrokerAccount) -> Result<Built, AccessError> {
        match account.broker {
            BrokerKind::ProjectX => return self.build_projectx(account).await,
            BrokerKind::Webull => return self.build_webull(account).await,
            _ => {}
        }
        let (brand, base_url) = match account.broker {
            BrokerKind::Tradovate => (Brand::Tradovate, None),
            BrokerKind::NinjaTrader => (Brand::NinjaTrader, None),
            BrokerKind::Sim => (
                Brand::Tradovate,
                Some(
                    self.config
                        .sim_url
                        .clone()
                        .ok_or(AccessError::NoSimulator)?,
                ),
            ),
            other => {
                return Err(AccessError::Unsupported {
                    broker: other.to_string(),
                });
            }
        };
        if !account.has_credentials {
            return Err(AccessError::NoCredentials);
        }
        let creds = self
            .store
            .accounts()
            .credentials(account.owner, account.id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => AccessError::NoCredentials,
                other => AccessError::Store(other.to_string()),
            })?;
        // A login without a password is never attempted: each refused login counts towards the
        // broker's lock-out.
        let password = creds
            .password
            .map(|p| p.expose().to_string())
            .filter(|p| !p.is_empty())
            .ok_or(AccessError::NoCredentials)?;
        let credentials = Credentials {
            name: account.username.clone().unwrap_or_default(),
            password,
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
        if let Some(wait) = self.config.too_many_requests_backoff {
            config.limits.too_many_requests_backoff = wait;
        }
        if let Some(calls) = self.config.request_budget {
            config.limits.per_hour = config.limits.per_hour.min(calls);
        }
        if let Some(stagger) = self.config.start_stagger {
            config.ws.reconnect.initial_stagger_max = stagger;
        }
        if let Some(base) = base_url {
            config = config.with_base_url(&base).map_err(AccessError::Adapter)?;
        }
        let broker = Arc::new(
            TradovateBroker::with(config, &self.tradovate)
                .map_err(|e| AccessError::Adapter(e.to_string()))?,
        );
        Ok((broker.clone(), broker))
    }

    /// ProjectX: the entry carries one native take-profit and stop; the adapter places the
    /// other legs itself, and its exit guard (which runs on the login's user hub) shrinks the
    /// native stop as legs fill, so the stop can never reverse the position. The hub runs where
    /// the login's events are subscribed: in the connection manager, never here.
    async fn build_projectx(&self, account: &BrokerAccount) -> Result<Built, AccessError> {
        if !account.has_credentials {
            return Err(AccessError::NoCredentials);
        }
        let creds = self
            .store
            .accounts()
            .credentials(account.owner, account.id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => AccessError::NoCredentials,
                other => AccessError::Store(other.to_string()),
            })?;
        let api_key = creds.api_key.ok_or(AccessError::NoCredentials)?;
        let credentials = PxCredentials {
            user_name: account.username.clone().unwrap_or_default(),
            api_key: api_key.expose().to_string(),
        };
        let firm = match account.environment {
            Environment::Live => Firm::TopstepX,
            _ => Firm::Demo,
        };
        let mut config = ProjectXConfig::new(firm, credentials);
        if let Some(wait) = self.config.too_many_requests_backoff {
            config.limits.too_many_requests_backoff = wait;
        }
        if let Some(calls) = self.config.request_budget {
            config.limits.requests = config.limits.requests.min(calls);
        }
        if let Some(stagger) = self.config.start_stagger {
            config.hub.reconnect.initial_stagger_max = stagger;
        }
        if let Some(base) = &self.config.projectx_url {
            config = config.with_base_url(base).map_err(AccessError::Adapter)?;
        }
        config.session.store = Some(jt_store::StoreSessions::for_account(&self.store, account));
        let projectx = Arc::new(
            ProjectXBroker::with(config, &self.projectx)
                .map_err(|e| AccessError::Adapter(e.to_string()))?,
        );
        Ok((projectx.clone(), projectx))
    }

    /// Webull: a key pair (app key, app secret), no session — every request is signed. The
    /// entry's protection is placed by the adapter after the fill; the one-cancels-other link
    /// is the guard on the login's polled event side, which only the connection manager
    /// subscribes to (`events_for`).
    async fn build_webull(&self, account: &BrokerAccount) -> Result<Built, AccessError> {
        if !account.has_credentials {
            return Err(AccessError::NoCredentials);
        }
        let creds = self
            .store
            .accounts()
            .credentials(account.owner, account.id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => AccessError::NoCredentials,
                other => AccessError::Store(other.to_string()),
            })?;
        let (Some(key), Some(secret)) = (creds.api_key, creds.api_secret) else {
            return Err(AccessError::NoCredentials);
        };
        let base = match (&self.config.webull_url, account.environment) {
            (Some(url), _) => url.clone(),
            (None, Environment::Live) => jt_webull::PRODUCTION_URL.to_string(),
            (None, _) => jt_webull::config::TEST_URL.to_string(),
        };
        let base = url::Url::parse(&base)
            .map_err(|e| AccessError::Adapter(format!("Webull address {base:?}: {e}")))?;
        let mut config = WebullConfig::new(base, key.expose(), secret.expose());
        if let Some(wait) = self.config.too_many_requests_backoff {
            config.http.too_many_requests_backoff = wait;
        }
        let webull = Arc::new(
            WebullBroker::with(config, &self.webull)
                .map_err(|e| AccessError::Adapter(e.to_string()))?,
        );
        Ok((webull.clone(), webull))
    }
}

/// The logins' shared request budgets in the bus's `jt_broker_budgets` KV bucket: a ledger per
/// login, written by compare-and-set on its revision (`jt_net::budget`).
#[derive(Debug, Clone)]
pub struct BusBudgets {
    bus: jt_bus::Bus,
    def: jt_bus::KvDef,
    bucket: Arc<tokio::sync::OnceCell<jt_bus::KvBucket>>,
}

impl BusBudgets {
    /// The budgets in `bus`'s namespace (the bucket is provisioned with the topology).
    #[must_use]
    pub fn new(bus: &jt_bus::Bus) -> Arc<Self> {
        Arc::new(Self {
            def: jt_bus::Definitions::new(bus.namespace()).broker_budgets,
            bus: bus.clone(),
            bucket: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    async fn bucket(&self) -> Result<&jt_bus::KvBucket, budget::StoreError> {
        self.bucket
            .get_or_try_init(|| self.bus.kv(&self.def))
            .await
            .map_err(|e| budget::StoreError(e.to_string()))
    }
}

#[async_trait::async_trait]
impl BudgetStore for BusBudgets {
    async fn load(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, budget::StoreError> {
        let entry = self
            .bucket()
            .await?
            .get(key)
            .await
            .map_err(|e| budget::StoreError(e.to_string()))?;
        Ok(entry.map(|e| (e.value.to_vec(), e.revision)))
    }

    async fn store(
        &self,
        key: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<bool, budget::StoreError> {
        let bucket = self.bucket().await?;
        // A key with no value (never written, expired or deleted) is created, so that two
        // processes creating it at once cannot both win.
        let written = if revision == 0 {
            bucket.create(key, value.into()).await
        } else {
            bucket.update(key, value.into(), revision).await
        };
        match written {
            Ok(_) => Ok(true),
            Err(jt_bus::KvError::AlreadyExists { .. } | jt_bus::KvError::WrongRevision { .. }) => {
                Ok(false)
            }
            Err(e) => Err(budget::StoreError(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn a_request_budget_is_read_and_zero_or_garbage_is_refused_by_name() {
        let c = AccessConfig::from_env(&env(&[("JT_BROKER_REQUEST_BUDGET", "40")])).unwrap();
        assert_eq!(c.request_budget, Some(40));
        assert_eq!(
            AccessConfig::from_env(&env(&[])).unwrap().request_budget,
            None
        );
        for bad in ["0", "-1", "lots"] {
            let e = AccessConfig::from_env(&env(&[("JT_BROKER_REQUEST_BUDGET", bad)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("JT_BROKER_REQUEST_BUDGET"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_connect_gate_defaults_to_two_in_flight_three_seconds_apart_and_is_read() {
        let d = AccessConfig::from_env(&env(&[])).unwrap().gate;
        assert_eq!(d.max_in_flight, 2);
        assert_eq!(d.spacing, std::time::Duration::from_secs(3));
        let c = AccessConfig::from_env(&env(&[
            ("JT_BROKER_CONNECTS_IN_FLIGHT", "4"),
            ("JT_BROKER_CONNECT_SPACING_MS", "250"),
        ]))
        .unwrap()
        .gate;
        assert_eq!(c.max_in_flight, 4);
        assert_eq!(c.spacing, std::time::Duration::from_millis(250));
        for (name, bad) in [
            ("JT_BROKER_CONNECTS_IN_FLIGHT", "0"),
            ("JT_BROKER_CONNECTS_IN_FLIGHT", "two"),
            ("JT_BROKER_CONNECT_SPACING_MS", "-5"),
        ] {
            let e = AccessConfig::from_env(&env(&[(name, bad)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(name), "{name}={bad}: {e}");
        }
    }
}
