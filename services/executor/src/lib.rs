//! The executor: the platform's main job, a TradingView alert becoming correct orders on every
//! linked account (DOMAIN.md §5).
//!
//! Two durable consumers, shared by any number of replicas:
//!
//! - [`fanout`] (SIGNALS, serial per recorder): the signal's paper record and one order intent
//!   per enabled trader, with the trader's resolved settings, on ORDERS.
//! - [`execute`] (ORDERS, serial per sub-account): intents from every source (signal, copy,
//!   manual, control, repair) through one lifecycle — staleness, throttling, the source's
//!   decision against the broker's real position, the broker calls, and the outcome in the
//!   store and on EXECUTIONS — acknowledged only once recorded.
//!
//! The trading rules are `jt-domain`'s; the order choreography (sequences of broker calls,
//! resumable) is `jt-trading`'s; the broker wire protocols are the venue crates' (`jt-tradovate`,
//! `jt-projectx`, behind `jt-broker`'s traits). This crate decides what each source's intent
//! comes to and keeps the intent's life in the store. It must not hold a trading rule of its
//! own, nor acknowledge a message before its effect is durable.

pub mod brokers;
pub mod execute;
pub mod fanout;
mod metrics;
mod plan;
mod record;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use jt_bus::{Bus, ConsumeOptions, Definitions};
use jt_runtime::config::{ConfigError, Env, optional, or_default};
use jt_runtime::health::Health;
use jt_store::Store;
use tokio_util::sync::CancellationToken;

pub use brokers::BrokerRegistry;
pub use execute::{Execute, ExecuteConfig};
pub use fanout::Fanout;

/// The executor's settings.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Base address of the built-in simulator, for `sim` broker accounts (`JT_SIM_URL`).
    pub sim_url: Option<String>,
    /// Base address for ProjectX accounts instead of the firms' hosts (`JT_PROJECTX_URL`; the
    /// simulator's ProjectX surface in tests).
    pub projectx_url: Option<String>,
    /// Signals this replica fans out at once (`JT_FANOUT_IN_FLIGHT`).
    pub fanout_in_flight: usize,
    /// Intents this replica executes at once, for different sub-accounts
    /// (`JT_EXECUTE_IN_FLIGHT`).
    pub execute_in_flight: usize,
    /// This replica's name in locks (`HOSTNAME`: the pod name in Kubernetes).
    pub owner: String,
    /// Execution timings.
    pub execute: ExecuteConfig,
    /// Where `run` serves `/healthz`, `/readyz` and `/metrics` (`JT_HTTP_ADDR`); `None` when
    /// another service of the process serves them (`jt dev`).
    pub listen: Option<SocketAddr>,
    /// How long a broker login backs off after an HTTP 429 that names no wait
    /// (`JT_BROKER_429_BACKOFF_SECS`; unset: the adapter's default, 60 s for Tradovate).
    pub too_many_requests_backoff: Option<std::time::Duration>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            sim_url: None,
            projectx_url: None,
            fanout_in_flight: 64,
            execute_in_flight: 256,
            owner: ConsumeOptions::default().owner,
            execute: ExecuteConfig::default(),
            listen: None,
            too_many_requests_backoff: None,
        }
    }
}

impl ExecutorConfig {
    /// Reads the settings from the environment, with defaults.
    ///
    /// # Errors
    /// A variable that is set but malformed, named in the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            sim_url: optional(env, "JT_SIM_URL")?,
            projectx_url: optional(env, "JT_PROJECTX_URL")?,
            fanout_in_flight: or_default(env, "JT_FANOUT_IN_FLIGHT", d.fanout_in_flight)?,
            execute_in_flight: or_default(env, "JT_EXECUTE_IN_FLIGHT", d.execute_in_flight)?,
            owner: optional(env, "HOSTNAME")?.unwrap_or(d.owner),
            too_many_requests_backoff: optional::<u64>(env, "JT_BROKER_429_BACKOFF_SECS")?
                .map(std::time::Duration::from_secs),
            listen: Some(or_default(
                env,
                "JT_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?),
            ..d
        })
    }
}

/// Registers the executor's readiness checks: both the bus and the store are required (an
/// intent cannot be recorded without the store).
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
        .register("store", move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
        .await;
}

/// Runs the fan-out and execution consumers until `shutdown` is cancelled, then lets in-flight
/// work finish (what does not finish in time comes back by redelivery).
///
/// # Errors
/// When a consumer cannot start (streams not provisioned) or the health listener cannot bind.
pub async fn run(
    config: ExecutorConfig,
    store: Store,
    bus: Bus,
    health: Health,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    register_health(&health, &store, &bus).await;
    let defs = Definitions::new(bus.namespace());
    let brokers = Arc::new(
        BrokerRegistry::new(store.clone(), config.sim_url.clone())
            .with_projectx_url(config.projectx_url.clone())
            .with_too_many_requests_backoff(config.too_many_requests_backoff),
    );
    let fanout = Fanout::new(store.clone(), bus.clone());
    let execute = Execute::new(store.clone(), bus.clone(), brokers, config.execute.clone());

    let options = |in_flight: usize| ConsumeOptions {
        max_in_flight: in_flight,
        owner: config.owner.clone(),
        ..ConsumeOptions::default()
    };
    let fanout_task = {
        let bus = bus.clone();
        let def = defs.fanout.clone();
        let opts = options(config.fanout_in_flight);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            bus.consume(&def, opts, stop, move |m| {
                let f = fanout.clone();
                async move { f.handle(m).await }
            })
            .await
        })
    };
    let execute_task = {
        let bus = bus.clone();
        let def = defs.execute.clone();
        let opts = options(config.execute_in_flight);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            bus.consume(&def, opts, stop, move |m| {
                let e = execute.clone();
                async move { e.handle(m).await }
            })
            .await
        })
    };
    let http = match config.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding JT_HTTP_ADDR={addr}"))?;
            tracing::info!(%addr, "executor health and metrics listening");
            let app = jt_runtime::health::router(health);
            let stop = shutdown.clone();
            Some(tokio::spawn(async move {
                axum_serve(listener, app, stop).await
            }))
        }
        None => None,
    };
    let (f, e) = tokio::join!(fanout_task, execute_task);
    f.context("fan-out task")?.context("fan-out consumer")?;
    e.context("execute task")?.context("execute consumer")?;
    if let Some(h) = http {
        h.await.context("health server task")??;
    }
    Ok(())
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .context("executor HTTP server")
}
