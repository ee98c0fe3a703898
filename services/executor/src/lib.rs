//! The executor: the platform's main job, a TradingView alert becoming correct orders on every
//! linked account (DOMAIN.md §5).
//!
//! Two durable consumers, shared by any number of replicas:
//!
//! - [`fanout`] (SIGNALS, serial per recorder): the signal's paper record and one order intent
//!   per enabled trader, with the trader's resolved settings, on ORDERS.
//! - [`execute`] (ORDERS, serial per sub-account; each of ORDERS' 32 partitions run by one
//!   replica at a time, `docs/bus.md`): intents from every source (signal, copy,
//!   manual, control, repair) through one lifecycle — staleness, throttling, the source's
//!   decision against the broker's real position, the broker calls, and the outcome in the
//!   store and on EXECUTIONS — acknowledged only once recorded.
//!
//! The trading rules are `jt-domain`'s; the order choreography (sequences of broker calls,
//! resumable) is `jt-trading`'s; the broker wire protocols are the venue crates' (`jt-tradovate`,
//! `jt-projectx`, behind `jt-broker`'s traits). This crate decides what each source's intent
//! comes to and keeps the intent's life in the store. It must not hold a trading rule of its
//! own, nor acknowledge a message before its effect is durable.

pub mod execute;
pub mod fanout;
mod metrics;
pub mod notify;
mod plan;
mod record;
pub mod throttle;

use jt_bus::{ConsumeOptions, Definitions};
use jt_runtime::config::{ConfigError, Env, optional, or_default};
use jt_runtime::health::Criticality;
use jt_service::{Context, Running};

pub use execute::{Execute, ExecuteConfig};
pub use fanout::Fanout;

/// The executor's settings (where brokers are reached is broker access's:
/// `jt_connect::AccessConfig`).
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Signals this replica fans out at once (`JT_FANOUT_IN_FLIGHT`).
    pub fanout_in_flight: usize,
    /// Intents this replica executes at once, for different sub-accounts
    /// (`JT_EXECUTE_IN_FLIGHT`).
    pub execute_in_flight: usize,
    /// This replica's name in locks and partition leases (`HOSTNAME`: the pod name in
    /// Kubernetes).
    pub owner: String,
    /// Execution timings.
    pub execute: ExecuteConfig,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            fanout_in_flight: 64,
            execute_in_flight: 256,
            owner: ConsumeOptions::default().owner,
            execute: ExecuteConfig::default(),
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
            fanout_in_flight: or_default(env, "JT_FANOUT_IN_FLIGHT", d.fanout_in_flight)?,
            execute_in_flight: or_default(env, "JT_EXECUTE_IN_FLIGHT", d.execute_in_flight)?,
            owner: optional(env, "HOSTNAME")?.unwrap_or(d.owner),
            ..d
        })
    }
}

/// Starts the fan-out and execution consumers on `ctx`; they run until `ctx.shutdown`, then let
/// in-flight work finish (what does not finish in time comes back by redelivery). Readiness
/// needs both the bus and the store (an intent cannot be recorded without the store). The
/// executor has no routes of its own.
///
/// # Errors
/// None today; the consumers' own start-up errors (streams not provisioned) end the task.
pub async fn start(config: ExecutorConfig, ctx: &Context) -> anyhow::Result<Running> {
    ctx.register_core_health(Criticality::Required).await;
    let defs = Definitions::new(ctx.bus.namespace());
    let fanout = Fanout::new(ctx.store.clone(), ctx.bus.clone());
    let execute = Execute::new(
        ctx.store.clone(),
        ctx.bus.clone(),
        ctx.brokers.clone(),
        config.execute.clone(),
    );
    let options = |in_flight: usize| ConsumeOptions {
        max_in_flight: in_flight,
        owner: config.owner.clone(),
        ..ConsumeOptions::default()
    };
    let fanout_task = {
        let bus = ctx.bus.clone();
        let def = defs.fanout.clone();
        let opts = options(config.fanout_in_flight);
        let stop = ctx.shutdown.clone();
        tokio::spawn(async move {
            bus.consume(&def, opts, stop, move |m| {
                let f = fanout.clone();
                async move { f.handle(m).await }
            })
            .await
        })
    };
    let execute_task = {
        let bus = ctx.bus.clone();
        let def = defs.execute.clone();
        let opts = options(config.execute_in_flight);
        let stop = ctx.shutdown.clone();
        tokio::spawn(async move {
            bus.consume(&def, opts, stop, move |m| {
                let e = execute.clone();
                async move { e.handle(m).await }
            })
            .await
        })
    };
    let task = tokio::spawn(async move {
        use anyhow::Context as _;
        let (f, e) = tokio::join!(fanout_task, execute_task);
        f.context("fan-out task")?.context("fan-out consumer")?;
        e.context("execute task")?.context("execute consumer")?;
        Ok(())
    });
    Ok(Running::new("executor", axum::Router::new(), task))
}
