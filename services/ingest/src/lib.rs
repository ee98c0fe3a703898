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

pub mod directory;
pub mod log_writer;
mod metrics;
pub mod webhook;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::post;
use jt_bus::Bus;
use jt_runtime::config::{ConfigError, Env, or_default};
use jt_runtime::health::{Criticality, Health};
use jt_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use directory::{Directory, DirectoryConfig};
pub use log_writer::LogWriterConfig;
pub use webhook::{RateLimit, WebhookState};

/// The ingest's settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Where `run` listens (`JT_HTTP_ADDR`, default 127.0.0.1:8080).
    pub listen: SocketAddr,
    /// Per-recorder rate limit (`JT_INGEST_RATE_PER_SEC`, `JT_INGEST_RATE_BURST`).
    pub rate_limit: RateLimit,
    /// Token cache.
    pub directory: DirectoryConfig,
    /// Raw webhook log writer.
    pub log: LogWriterConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            rate_limit: RateLimit::default(),
            directory: DirectoryConfig::default(),
            log: LogWriterConfig::default(),
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
        Ok(Self {
            listen: or_default(env, "JT_HTTP_ADDR", d.listen)?,
            rate_limit: RateLimit { per_second, burst },
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
    /// Starts the log writer and the rate-limit housekeeping.
    pub fn start(config: &IngestConfig, store: &Store, bus: Bus) -> Self {
        let background = CancellationToken::new();
        let (log, log_task) = log_writer::spawn(
            Arc::new(store.clone()),
            config.log.clone(),
            background.clone(),
        );
        let directory = Directory::new(Arc::new(store.clone()), config.directory.clone());
        let state = WebhookState::new(directory, bus, log, config.rate_limit);
        let pruned = state.clone();
        let stop = background.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => pruned.prune_rate_limits(),
                }
            }
        });
        let directory = state.directory.clone();
        let every = config.directory.revalidate_every;
        let stop = background.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => match directory.revalidate().await {
                        Ok(_) => failing = false,
                        // Logged once per outage: the hot path's own look-ups say the rest.
                        Err(reason) if !failing => {
                            failing = true;
                            tracing::warn!(%reason, "webhook tokens could not be revalidated");
                        }
                        Err(_) => {}
                    },
                }
            }
        });
        Self {
            state,
            log_task,
            background,
        }
    }

    /// The webhook route (`POST /webhook/{token}`), to serve alone or merged with others.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhook/{token}", post(webhook::handle))
            .with_state(self.state.clone())
    }

    /// Stops the background tasks once the HTTP server has stopped, flushing the webhook log.
    pub async fn stop(self) {
        drop(self.state);
        self.background.cancel();
        if let Err(err) = self.log_task.await {
            tracing::error!(%err, "webhook log writer failed at shutdown");
        }
    }
}

/// Registers the ingest's readiness checks: the bus is required (no signal can be queued
/// without it); the store is reported but not required (known recorders keep being served
/// from the cache while the database is down).
pub async fn register_health(health: &Health, store: &Store, bus: &Bus) {
    let bus = bus.clone();
    health
        .register("bus", move || {
            let bus = bus.clone();
            async move { bus.ping().await.map_err(|e| e.to_string()) }
        })
        .await;
    let store = store.clone();
    health
        .register_as("store", Criticality::Degraded, move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
        .await;
}

/// Runs the ingest alone: `/webhook/{token}`, `/healthz`, `/readyz`, `/metrics` on
/// `config.listen`, until `shutdown` is cancelled; then drains requests and flushes the log.
///
/// # Errors
/// When the listener cannot be bound or the server fails.
pub async fn run(
    config: IngestConfig,
    store: Store,
    bus: Bus,
    health: Health,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    register_health(&health, &store, &bus).await;
    let ingest = Ingest::start(&config, &store, bus);
    let app = ingest.router().merge(jt_runtime::health::router(health));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding JT_HTTP_ADDR={}", config.listen))?;
    tracing::info!(addr = %config.listen, "ingest listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
    .context("ingest HTTP server")?;
    ingest.stop().await;
    Ok(())
}
