//! The risk service: hard limits that hold after the order (DOMAIN.md §9).
//!
//! Today: the **max daily loss** and **prop-firm rules** monitor ([`monitor`]). Every account
//! with an enabled trader whose `max_daily_loss` is above zero, or with prop-firm rules, is
//! watched ([`watch`]); its P&L of the trading day is
//! the broker's realised figure plus its open positions marked to the newest quote
//! ([`book`]); at or past −limit the account is breached for the trading day (a row in
//! `risk_breaches`, which the executor reads to refuse new entries), flattened through ORDERS
//! (cancel working orders, close every position — serial with the account's other orders), and
//! its owner notified on the channels that subscribe to `max_loss` ([`notify`]). Its prop-firm
//! rules (DOMAIN.md §14) are judged on the same figures with the cash balance (equity =
//! balance + open): a rule reaching its safety buffer, the flat-by window or a flattening news
//! window breaches, flattens and locks the account the same way (`rule_breach`); the trailing
//! mark is kept and a limit close to its buffer warns once a day (`rule_warning`, [`prop`]).
//!
//! A follower (copy trading) whose own daily loss limit is reached is locked out (its copies
//! stop until the next trading day) and its account flattened the same way ([`watch`]); one
//! whose account's equity falls its `max_drawdown` below its own equity peak is locked out
//! until its owner unlocks it, and the account flattened ([`drawdown`]).
//!
//! A recorder's paper record (paper accounts: nothing at a broker) past its own
//! `max_daily_loss` — its paper trades closed in the day plus its open paper positions marked
//! to the same quotes — has its paper positions closed at the mark through the paper engine,
//! once, and takes no paper entries for the rest of the trading day ([`paper`]).
//!
//! Kill switches ([`kill`]) are carried out here: an engagement the API or a kill alert
//! recorded is turned into one flatten intent per covered account, once, even across restarts.
//!
//! One replica monitors at a time: the holder of [`MONITOR_LEASE`] on the `jt_leases` bucket.
//! Others wait and take over within the lease's life when it dies; the new holder rebuilds the
//! books from the store and the brokers and finishes any breach left half-done.
//!
//! Every replica also runs the notifier (`jt-notify`) and the `notify` consumer of
//! DEAD_LETTERS, which tells the operators (and the owner, when the subject names one) of every
//! message a consumer gave up on ([`dead_letters`]).
//!
//! What it must not do: place, change or cancel an order itself (it publishes intents), or hold
//! a broker event connection (it reads BROKER_EVENTS and quotes from the connection manager).

pub mod book;
pub mod dead_letters;
pub mod drawdown;
pub mod kill;
mod metrics;
pub mod monitor;
pub mod notify;
pub mod paper;
pub mod prop;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use jt_bus::{ConsumeOptions, Definitions};
use jt_runtime::config::{ConfigError, Env, optional, or_default};
use jt_runtime::health::Criticality;
use jt_service::{Context, Running};
use parking_lot::Mutex;
use rust_decimal::Decimal;

pub use monitor::{AccountStatus, MonitorStatus};

/// The lease key of the monitor on the `jt_leases` bucket.
pub const MONITOR_LEASE: &str = "risk.monitor";

/// The risk service's settings.
#[derive(Debug, Clone)]
pub struct RiskConfig {
    /// How often the broker's P&L of an account is read when the venue pushes no cash balance
    /// (ProjectX, Webull) or a held contract has no fresh quote (`JT_RISK_PNL_POLL_SECS`,
    /// default 5: DOMAIN §9's ProjectX poll).
    pub poll_every: Duration,
    /// How often otherwise — a venue that pushes realised P&L, every held contract quoted
    /// (`JT_RISK_PNL_RESYNC_SECS`, default 60).
    pub resync_every: Duration,
    /// How often the watched accounts, limits, stored positions and breaches are re-read
    /// (`JT_RISK_SURVEY_SECS`, default 10).
    pub survey_every: Duration,
    /// A quote older than this does not mark a position (`JT_RISK_QUOTE_MAX_AGE_SECS`,
    /// default 10): the broker's own open P&L is used instead.
    pub quote_max_age: Duration,
    /// A prop-firm money limit warns (`rule_warning`, once per account, rule and day) when what
    /// is left before the platform acts is below this many times the rule's buffer
    /// (`JT_RISK_WARN_BUFFERS`, default 2).
    pub warn_buffers: Decimal,
    /// How the BROKER_EVENTS consumer runs.
    pub consume: ConsumeOptions,
    /// This replica's name in the monitor's lease (`HOSTNAME`: the pod name).
    pub owner: String,
    /// The notifier this service runs (`JT_NOTIFY_*`, `JT_SMTP_URL`: `jt-notify`).
    pub notify: jt_notify::NotifyConfig,
    /// How often recorded kill switch engagements are looked for and carried out
    /// (`JT_RISK_KILL_POLL_MS`, default 250): the longest wait between a switch engaged and
    /// its flattens published.
    pub kill_every: Duration,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            poll_every: Duration::from_secs(5),
            resync_every: Duration::from_secs(60),
            survey_every: Duration::from_secs(10),
            quote_max_age: Duration::from_secs(10),
            warn_buffers: Decimal::TWO,
            consume: ConsumeOptions::default(),
            owner: ConsumeOptions::default().owner,
            notify: jt_notify::NotifyConfig::default(),
            kill_every: Duration::from_millis(250),
        }
    }
}

impl RiskConfig {
    /// Reads the settings from the environment, with defaults.
    ///
    /// # Errors
    /// A variable that is set but malformed, named in the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let secs = |name, default| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(or_default(env, name, default)?).max(Duration::from_secs(1)))
        };
        Ok(Self {
            poll_every: secs("JT_RISK_PNL_POLL_SECS", 5)?,
            resync_every: secs("JT_RISK_PNL_RESYNC_SECS", 60)?,
            survey_every: secs("JT_RISK_SURVEY_SECS", 10)?,
            quote_max_age: secs("JT_RISK_QUOTE_MAX_AGE_SECS", 10)?,
            warn_buffers: or_default(env, "JT_RISK_WARN_BUFFERS", Decimal::TWO)?.max(Decimal::ZERO),
            consume: ConsumeOptions::default(),
            owner: optional(env, "HOSTNAME")?.unwrap_or(ConsumeOptions::default().owner),
            notify: jt_notify::NotifyConfig::from_env(env)?,
            kill_every: Duration::from_millis(
                or_default(env, "JT_RISK_KILL_POLL_MS", 250_u64)?.max(10),
            ),
        })
    }
}

/// Starts the service on `ctx`: the monitor (on the lease holder) until `ctx.shutdown`.
/// Routes: `GET /risk/status`.
///
/// # Errors
/// The lease bucket cannot be opened (the topology is not provisioned).
pub async fn start(config: RiskConfig, ctx: &Context) -> anyhow::Result<Running> {
    ctx.register_core_health(Criticality::Required).await;
    metrics::register();
    let leases = ctx
        .bus
        .kv(&Definitions::new(ctx.bus.namespace()).leases)
        .await?;
    let status = Arc::new(Mutex::new(MonitorStatus::default()));
    let routes = {
        let status = status.clone();
        axum::Router::new().route(
            "/risk/status",
            get(move || {
                let status = status.clone();
                async move { Json(status.lock().clone()) }
            }),
        )
    };
    // The notifier: on every replica, on its own task (deliveries are claimed one by one).
    let notifier = jt_notify::spawn(
        config.notify.clone(),
        ctx.store.clone(),
        ctx.shutdown.clone(),
    )?;
    // Dead letters → `dead_letter` notifications: on every replica (a shared durable).
    let letters = {
        // Boxed: the consumer's future is large (clippy::large_futures).
        let run = Box::pin(dead_letters::run(
            ctx.store.clone(),
            ctx.bus.clone(),
            Definitions::new(ctx.bus.namespace()),
            config.consume.clone(),
            ctx.shutdown.clone(),
        ));
        tokio::spawn(async move {
            if let Err(e) = run.await {
                tracing::error!(error = %e, "the dead-letter notification consumer stopped: no dead_letter notifications from this replica");
            }
        })
    };
    let (store, bus, brokers, stop) = (
        ctx.store.clone(),
        ctx.bus.clone(),
        ctx.brokers.clone(),
        ctx.shutdown.clone(),
    );
    let task = tokio::spawn(async move {
        let owner = config.owner.clone();
        loop {
            match leases.try_acquire(MONITOR_LEASE, &owner).await {
                Ok(Some(mut lease)) => {
                    tracing::info!(%owner, "risk monitor lease taken: this replica watches the accounts");
                    let lost = stop.child_token();
                    // The monitor and the kill switches: one holder carries both out, so a
                    // kill switch is published by one replica (its ids would make a second
                    // publish harmless, but not free).
                    let work = {
                        let (store, bus, brokers, config, status, lost) = (
                            store.clone(),
                            bus.clone(),
                            brokers.clone(),
                            config.clone(),
                            status.clone(),
                            lost.clone(),
                        );
                        async move {
                            let kills = kill::run(
                                store.clone(),
                                bus.clone(),
                                config.kill_every,
                                lost.clone(),
                            );
                            let monitor =
                                monitor::Monitor::run(store, bus, brokers, config, status, lost);
                            tokio::select! {
                                () = monitor => {}
                                () = kills => {}
                            }
                        }
                    };
                    // Boxed: the monitor's future (its loop and the store calls it awaits
                    // inline) is too large to move around on the stack.
                    lease.hold_while(Box::pin(work), &lost).await;
                    if stop.is_cancelled() {
                        let _ = lease.release().await;
                        return Ok(());
                    }
                    tracing::warn!(%owner, "risk monitor stopped or lease lost: trying again");
                    let _ = lease.release().await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "the risk monitor lease cannot be read"),
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
    let task = tokio::spawn(async move {
        let done = task.await;
        let _ = notifier.await;
        let _ = letters.await;
        done?
    });
    Ok(Running::new("risk", routes, task))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_default_to_the_domains_poll_and_are_read_from_the_environment() {
        let c = RiskConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c.poll_every, Duration::from_secs(5));
        assert_eq!(c.resync_every, Duration::from_secs(60));
        assert_eq!(c.warn_buffers, Decimal::TWO);
        assert_eq!(c.kill_every, Duration::from_millis(250));
        let c = RiskConfig::from_env(&env(&[
            ("JT_RISK_PNL_POLL_SECS", "0"),
            ("JT_RISK_SURVEY_SECS", "2"),
            ("JT_RISK_WARN_BUFFERS", "1.5"),
            ("JT_RISK_KILL_POLL_MS", "100"),
        ]))
        .unwrap();
        assert_eq!(c.poll_every, Duration::from_secs(1), "at least a second");
        assert_eq!(c.survey_every, Duration::from_secs(2));
        assert_eq!(c.warn_buffers, Decimal::new(15, 1));
        assert_eq!(c.kill_every, Duration::from_millis(100));
        let e = RiskConfig::from_env(&env(&[("JT_RISK_QUOTE_MAX_AGE_SECS", "soon")])).unwrap_err();
        assert!(e.to_string().contains("JT_RISK_QUOTE_MAX_AGE_SECS"), "{e}");
    }
}
