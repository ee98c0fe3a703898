//! The connection manager: the one service that holds broker event connections (DOMAIN.md §8).
//!
//! Every replica scans the store for active logins (a broker account with its sub-accounts)
//! every [`ConnmgrConfig::scan_every`] and claims the ones nobody holds with a lease on the
//! `jt_leases` KV bucket (`login.<broker account id>`), renewed every third of the bucket's TTL.
//! A login is therefore held by at most one replica; when a replica dies its leases expire
//! within the TTL and the next scan of another replica takes them over. A new, changed or
//! deleted account is picked up by the next scan, without a restart.
//!
//! For each login it holds, it subscribes to the events of the login's sub-accounts through
//! broker access ([`jt_connect::BrokerAccess::events_for`]: the venue's socket or hub, with its
//! connect gate, stagger, heartbeats, back-off and replay filter) and republishes each event
//! once on BROKER_EVENTS as a [`BrokerEventMessage`], whose message id derives from the broker's
//! own identity of the event: a reconnect's snapshot or a take-over never publishes a message a
//! consumer would act on twice. Subscribing also runs what the adapters do on their stream
//! (ProjectX's exit guard): broker access opens no event connection itself.
//!
//! Each held login's status — connected or not, since when, last event, reconnects, why it is
//! disconnected — is in metrics and in the lease bucket as `status.<broker account id>`
//! ([`read_status`]), rewritten every renewal and gone within the TTL of its holder's death.
//!
//! It also feeds the fleet's prices ([`quotes`]): the replica holding the `quotes` lease opens
//! one market-data feed per venue for the contracts the platform holds or trades and publishes
//! their quotes on `jt.quotes.<contract>`.
//!
//! What it must not do: act on an event (positions, risk and the copier read BROKER_EVENTS),
//! place or change an order, or hold a login without its lease.

mod login;
mod metrics;
pub mod quotes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use jt_bus::{Bus, ConsumeOptions, Definitions, KvBucket, KvError};
use jt_connect::BrokerAccess;
use jt_runtime::config::{ConfigError, Env, optional, or_default};
use jt_runtime::health::Criticality;
use jt_service::{Context, Running};
use jt_store::{BrokerAccountId, Store};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use jt_messages::{BrokerEventMessage, ReportedEvent};

/// The connection manager's settings.
#[derive(Debug, Clone)]
pub struct ConnmgrConfig {
    /// This replica's name in leases (`HOSTNAME`: the pod name in Kubernetes).
    pub owner: String,
    /// How often the store is scanned for logins to claim or drop (`JT_CONNMGR_SCAN_MS`,
    /// default 2,000).
    pub scan_every: Duration,
    /// How often a held login re-reads its sub-accounts and subscribes new ones
    /// (`JT_CONNMGR_ACCOUNTS_EVERY_SECS`, default 30).
    pub accounts_every: Duration,
    /// How often the contracts wanted for quotes are re-read and the feeds brought in line
    /// (`JT_CONNMGR_QUOTES_EVERY_MS`, default 5,000). See [`quotes`].
    pub quotes_every: Duration,
}

impl Default for ConnmgrConfig {
    fn default() -> Self {
        Self {
            owner: ConsumeOptions::default().owner,
            scan_every: Duration::from_secs(2),
            accounts_every: Duration::from_secs(30),
            quotes_every: Duration::from_secs(5),
        }
    }
}

impl ConnmgrConfig {
    /// Reads the settings from the environment, with defaults.
    ///
    /// # Errors
    /// A variable that is set but malformed, named in the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            owner: optional(env, "HOSTNAME")?.unwrap_or(d.owner),
            scan_every: Duration::from_millis(or_default(env, "JT_CONNMGR_SCAN_MS", 2_000u64)?),
            accounts_every: Duration::from_secs(or_default(
                env,
                "JT_CONNMGR_ACCOUNTS_EVERY_SECS",
                30u64,
            )?),
            quotes_every: Duration::from_millis(or_default(
                env,
                "JT_CONNMGR_QUOTES_EVERY_MS",
                5_000u64,
            )?),
        })
    }
}

pub use jt_messages::login_status::{
    LinkState, LoginStatus, holder, lease_key, read_status, status_key,
};

/// The statuses of the logins this replica holds.
pub(crate) type Statuses = Arc<Mutex<HashMap<BrokerAccountId, LoginStatus>>>;

/// What every login task of a replica shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub store: Store,
    pub bus: Bus,
    pub brokers: Arc<BrokerAccess>,
    pub leases: KvBucket,
    pub owner: String,
    pub accounts_every: Duration,
    pub statuses: Statuses,
}

impl Shared {
    /// Writes `status` locally and to the bucket (best effort: the next renewal rewrites it).
    pub async fn put_status(&self, status: &LoginStatus) {
        self.statuses
            .lock()
            .insert(status.broker_account_id, status.clone());
        match serde_json::to_vec(status) {
            Ok(bytes) => {
                if let Err(e) = self
                    .leases
                    .put(&status_key(status.broker_account_id), Bytes::from(bytes))
                    .await
                {
                    tracing::debug!(error = %e, "login status not written");
                }
            }
            Err(e) => tracing::warn!(error = %e, "login status not encoded"),
        }
        metrics::connected(&self.statuses);
    }

    /// Forgets the status of a login given up.
    pub async fn drop_status(&self, login: BrokerAccountId) {
        self.statuses.lock().remove(&login);
        let _ = self.leases.delete(&status_key(login), None).await;
        metrics::connected(&self.statuses);
    }
}

struct Held {
    updated_at: DateTime<Utc>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The login tasks of a replica. They die with the scan's task: a replica whose task is
/// aborted (or a process killed) renews nothing, and its leases expire for another to take.
#[derive(Default)]
struct HeldLogins(HashMap<BrokerAccountId, Held>);

impl Drop for HeldLogins {
    fn drop(&mut self) {
        for h in self.0.values() {
            h.task.abort();
        }
    }
}

/// Starts the connection manager on `ctx`: the scan that claims logins and a task per login
/// held, until `ctx.shutdown` (then every connection is closed and its lease released, so
/// another replica takes over at once). Routes: `GET /connmgr/logins`, this replica's logins
/// and their status.
///
/// # Errors
/// The lease bucket cannot be opened (the topology is not provisioned).
pub async fn start(config: ConnmgrConfig, ctx: &Context) -> anyhow::Result<Running> {
    ctx.register_core_health(Criticality::Required).await;
    let defs = Definitions::new(ctx.bus.namespace());
    let leases = ctx.bus.kv(&defs.leases).await?;
    let shared = Shared {
        store: ctx.store.clone(),
        bus: ctx.bus.clone(),
        brokers: ctx.brokers.clone(),
        leases,
        owner: config.owner.clone(),
        accounts_every: config.accounts_every,
        statuses: Arc::new(Mutex::new(HashMap::new())),
    };
    let routes = {
        let statuses = shared.statuses.clone();
        axum::Router::new().route(
            "/connmgr/logins",
            get(move || {
                let statuses = statuses.clone();
                async move {
                    let mut all: Vec<LoginStatus> = statuses.lock().values().cloned().collect();
                    all.sort_by_key(|s| s.broker_account_id);
                    Json(all)
                }
            }),
        )
    };
    let stop = ctx.shutdown.clone();
    let task = tokio::spawn(async move {
        // In this task, not spawned: a replica whose task is aborted holds no feed either.
        tokio::join!(
            quotes::run(
                shared.clone(),
                config.quotes_every,
                config.scan_every,
                stop.clone(),
            ),
            run(shared, config.scan_every, stop),
        );
        Ok(())
    });
    Ok(Running::new("connmgr", routes, task))
}

async fn run(shared: Shared, scan_every: Duration, stop: CancellationToken) {
    let mut logins = HeldLogins::default();
    let held = &mut logins.0;
    let mut tick = tokio::time::interval(scan_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        held.retain(|_, h| !h.task.is_finished());
        let accounts = match shared.store.system().active_accounts().await {
            Ok(accounts) => accounts,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the logins: keeping the ones held");
                continue;
            }
        };
        let wanted: HashMap<BrokerAccountId, _> = accounts
            .into_iter()
            .filter(|a| !a.needs_reauth)
            .map(|a| (a.id, a))
            .collect();
        metrics::wanted(wanted.len());
        // Deleted, disabled or changed: let go (a changed one is claimed again with its new
        // settings once its task has ended and released the lease).
        for (id, h) in held.iter() {
            let current = wanted.get(id);
            if current.is_none_or(|a| a.updated_at != h.updated_at) {
                h.stop.cancel();
            }
        }
        for (id, account) in wanted {
            if held.contains_key(&id) {
                continue;
            }
            match shared
                .leases
                .try_acquire(&lease_key(id), &shared.owner)
                .await
            {
                Ok(Some(lease)) => {
                    tracing::info!(login = %id, owner = %shared.owner, "login claimed");
                    metrics::claimed();
                    let stop = stop.child_token();
                    let task = tokio::spawn(login::run(
                        shared.clone(),
                        account.clone(),
                        lease,
                        stop.clone(),
                    ));
                    held.insert(
                        id,
                        Held {
                            updated_at: account.updated_at,
                            stop,
                            task,
                        },
                    );
                }
                Ok(None) => {}
                Err(KvError::Unavailable { .. }) => {
                    tracing::warn!("the lease bucket is unavailable: no login claimed");
                    break;
                }
                Err(e) => tracing::warn!(login = %id, error = %e, "lease not taken"),
            }
        }
        metrics::held(held.len());
    }
    for h in held.values() {
        h.stop.cancel();
    }
    for (_, h) in held.drain() {
        let _ = h.task.await;
    }
    metrics::held(0);
}
