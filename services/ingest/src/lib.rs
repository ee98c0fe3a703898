//! The webhook ingest: `POST /webhook/{token}` → a parsed, de-duplicated signal on SIGNALS,
//! answered only after the stream acknowledged it (DOMAIN.md §2).
//!
//! The ingest is thin and stateless (any number of replicas): it resolves the token through a
//! cache ([`directory`]), limits each recorder's rate, parses the body with `jt-alerts`,
//! publishes with a content-derived message id (JetStream drops the duplicate delivery), and
//! logs every request to the raw webhook log without waiting for the database
//! ([`log_writer`]). It does no trading: the executor's fan-out turns signals into intents.
//!
//! What it must not do: wait for the database on the hot path (a known recorder keeps
//! receiving alerts while the database is down), answer 200 before the bus has the signal, or
//! answer 500 to any body.

/// The client's address behind trusted proxies (shared with the API: `jt_runtime::client`).
pub use jt_runtime::client;
pub mod directory;
pub mod log_writer;
mod metrics;
pub mod strangers;
pub mod webhook;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, post};
use jt_bus::Bus;
use jt_runtime::config::{ConfigError, Env, or_default};
use jt_runtime::health::{Criticality, Health};
use jt_service::{Context, Running};
use jt_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use client::TrustedProxies;
pub use directory::{Directory, DirectoryConfig};
pub use log_writer::LogWriterConfig;
pub use webhook::{Guards, RateLimit, WebhookState};

/// The ingest's settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Per-recorder rate limit (`JT_INGEST_RATE_PER_SEC`, `JT_INGEST_RATE_BURST`).
    pub rate_limit: RateLimit,
    /// Token cache.
    pub directory: DirectoryConfig,
    /// Raw webhook log writer.
    pub log: LogWriterConfig,
    /// Requests without a known token, proxies, body read timeout.
    pub guards: Guards,
    /// How often the rows of requests without a known token are written (one per address).
    pub strangers_log_every: Duration,
    /// How long webhook log rows are kept (`JT_WEBHOOK_LOG_RETENTION_DAYS`, 30 days); older
    /// rows are deleted by a periodic task.
    pub log_retention: Duration,
    /// How often the retention task runs.
    pub prune_every: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            rate_limit: RateLimit::default(),
            directory: DirectoryConfig::default(),
            log: LogWriterConfig::default(),
            guards: Guards::default(),
            strangers_log_every: Duration::from_secs(60),
            log_retention: Duration::from_secs(30 * 86_400),
            prune_every: Duration::from_secs(3600),
        }
    }
}

impl IngestConfig {
    /// Reads the settings from the environment, with defaults.
    ///
    /// # Errors
    /// A variable that is set but malformed, named in the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let per_second: NonZeroU32 =
            or_default(env, "JT_INGEST_RATE_PER_SEC", d.rate_limit.per_second)?;
        let burst: NonZeroU32 = or_default(env, "JT_INGEST_RATE_BURST", d.rate_limit.burst)?;
        let unknown_limit = RateLimit {
            per_second: or_default(
                env,
                "JT_INGEST_UNKNOWN_RATE_PER_SEC",
                d.guards.unknown_limit.per_second,
            )?,
            burst: or_default(
                env,
                "JT_INGEST_UNKNOWN_RATE_BURST",
                d.guards.unknown_limit.burst,
            )?,
        };
        let retention_days: NonZeroU32 = or_default(
            env,
            "JT_WEBHOOK_LOG_RETENTION_DAYS",
            NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN),
        )?;
        Ok(Self {
            rate_limit: RateLimit { per_second, burst },
            guards: Guards {
                unknown_limit,
                trusted_proxies: or_default(
                    env,
                    "JT_TRUSTED_PROXIES",
                    d.guards.trusted_proxies.clone(),
                )?,
                body_timeout: Duration::from_secs(or_default(
                    env,
                    "JT_INGEST_BODY_TIMEOUT_SECS",
                    d.guards.body_timeout.as_secs(),
                )?),
            },
            log_retention: Duration::from_secs(u64::from(retention_days.get()) * 86_400),
            ..d
        })
    }
}

/// A started ingest: its handler state and the background tasks behind it.
#[derive(Debug)]
pub struct Ingest {
    state: WebhookState,
    log_task: JoinHandle<()>,
    background: CancellationToken,
}

impl Ingest {
    /// Starts the log writer and the housekeeping: rate-limit pruning, token revalidation, the
    /// aggregated rows of requests without a known token, the webhook log's retention.
    pub fn start(config: &IngestConfig, store: &Store, bus: Bus) -> Self {
        let background = CancellationToken::new();
        let (log, log_task) = log_writer::spawn(
            Arc::new(store.clone()),
            config.log.clone(),
            background.clone(),
        );
        let directory = Directory::new(Arc::new(store.clone()), config.directory.clone());
        let state = WebhookState::new(directory, bus, log, config.rate_limit, &config.guards);
        every(&background, Duration::from_secs(60), {
            let state = state.clone();
            move || {
                let state = state.clone();
                async move { state.prune_rate_limits() }
            }
        });
        every(&background, config.strangers_log_every, {
            let state = state.clone();
            move || {
                let state = state.clone();
                async move { state.log_strangers() }
            }
        });
        let retention = config.log_retention;
        every(&background, config.prune_every, {
            let store = store.clone();
            move || {
                let store = store.clone();
                async move { prune_webhook_log(&store, retention).await }
            }
        });
        // The recorders' token hashes: at once, then every minute.
        let directory = state.directory.clone();
        let stop = background.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(reason) = directory.refresh_known().await {
                            tracing::warn!(%reason, "recorders' token hashes could not be reloaded");
                        }
                    }
                }
            }
        });
        let directory = state.directory.clone();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        every(&background, config.directory.revalidate_every, move || {
            let (directory, failing) = (directory.clone(), failing.clone());
            async move {
                use std::sync::atomic::Ordering;
                match directory.revalidate().await {
                    Ok(_) => failing.store(false, Ordering::Relaxed),
                    // Logged once per outage: the hot path's own look-ups say the rest.
                    Err(reason) => {
                        if !failing.swap(true, Ordering::Relaxed) {
                            tracing::warn!(%reason, "webhook tokens could not be revalidated");
                        }
                    }
                }
            }
        });
        Self {
            state,
            log_task,
            background,
        }
    }

    /// The webhook route (`POST /webhook/{token}`), to serve alone or merged with others. Every
    /// other method there, and every path nothing else serves, answers in JSON too.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/webhook/{token}",
                post(webhook::handle).fallback(webhook::wrong_method),
            )
            .route("/webhook", any(webhook::no_such_path))
            .fallback(webhook::no_such_path)
            .with_state(self.state.clone())
    }

    /// Registers the webhook log writer's readiness check: degraded (reported, the ingest stays
    /// ready) when its writes have been failing for a while.
    pub async fn register_health(&self, health: &Health) {
        let log = self.state.log.clone();
        health
            .register_as("webhook_log", Criticality::Degraded, move || {
                let result = log.health();
                async move { result }
            })
            .await;
    }

    /// Stops the background tasks once the HTTP server has stopped, flushing the webhook log
    /// (with the aggregated rows of requests without a known token).
    pub async fn stop(self) {
        self.state.log_strangers();
        drop(self.state);
        self.background.cancel();
        if let Err(err) = self.log_task.await {
            tracing::error!(%err, "webhook log writer failed at shutdown");
        }
    }
}

/// Runs `task` every `period` until `stop` (the first run after one period).
fn every<F, Fut>(stop: &CancellationToken, period: Duration, task: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + period,
            period.max(Duration::from_millis(1)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => task().await,
            }
        }
    });
}

/// Deletes webhook log rows older than `retention` (every replica may run it: deleting twice
/// is harmless).
async fn prune_webhook_log(store: &Store, retention: Duration) {
    let Ok(age) = chrono::Duration::from_std(retention) else {
        return;
    };
    match store
        .system()
        .prune_webhook_log(chrono::Utc::now() - age)
        .await
    {
        Ok(0) => {}
        Ok(n) => {
            ::metrics::counter!("jt_ingest_log_pruned_total").increment(n);
            tracing::info!(
                rows = n,
                days = retention.as_secs() / 86_400,
                "webhook log rows past retention deleted"
            );
        }
        Err(e) => tracing::warn!(error = %e, "webhook log retention could not run; retried later"),
    }
}

/// Starts the ingest on `ctx`: its webhook routes, its log writer and timers. Readiness needs
/// the bus; the store is only `Degraded` (known recorders keep being served from the cache while
/// the database is down). The log writer closes once the listener has drained
/// (`ctx.drained`), so every answered request is logged.
///
/// # Errors
/// None today (kept for the skeleton's uniform shape).
pub async fn start(config: IngestConfig, ctx: &Context) -> anyhow::Result<Running> {
    ctx.register_core_health(Criticality::Degraded).await;
    let ingest = Ingest::start(&config, &ctx.store, ctx.bus.clone());
    ingest.register_health(&ctx.health).await;
    let routes = ingest.router();
    let drained = ctx.drained.clone();
    let task = tokio::spawn(async move {
        drained.cancelled().await;
        ingest.stop().await;
        Ok(())
    });
    Ok(Running::new("ingest", routes, task))
}
