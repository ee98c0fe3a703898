//! The positions service: keeps the store's picture of what every broker account holds in step
//! with the brokers, and repairs what a broker account must not be left without (DOMAIN.md §9).
//!
//! Three pieces of work run in one service, every replica alike:
//!
//! - **Position sync** ([`apply`]): the durable consumer `positions` on BROKER_EVENTS (what the
//!   connection manager republishes) applies order, fill and position events to the store
//!   idempotently — the same event twice changes nothing; an event of a kind this build does
//!   not know is acknowledged and counted; a cancelled take-profit or stop of an open position
//!   is noted (logged, counted). Each new fill also moves its contract's live trade record
//!   (opened, added to, reduced, closed with the closing order's type as the exit reason, or
//!   flipped), in the transaction that records the fill: once per fill, ever.
//! - **Reconciliation** ([`reconcile`]) every [`PositionsConfig::reconcile_every`] over every
//!   active sub-account, spread over the interval: the broker's snapshot against the store —
//!   quantity and average corrected, positions (and trade records) the broker shows flat
//!   closed — and a
//!   [`jt_messages::RepairIntent`] on ORDERS for an open position missing the take-profit or
//!   stop its trader's settings give it, unless it is being handled. A failing account (no
//!   broker, a refused snapshot, a throttled login) is logged and counted and the pass goes on.
//! - **Auto-flat** ([`autoflat`]): at the end of a trader's enabled window with
//!   `auto_flat_after_cutoff`, a flatten of its sub-account on ORDERS, once per window end.
//! - **Token refresh** ([`tokens`]) every [`tokens::TokenConfig::every`]: the logins whose
//!   access token expires soon are renewed (or logged in again when renewal is impossible, or
//!   marked "needs re-authentication" when their credentials are refused), spread over the
//!   interval and within the brokers' per-IP limits.
//!
//! - **Paper record with prices** ([`paper`]): every quote on `jt.quotes.*` marks the open
//!   paper positions of its instrument — current, best and worst unrealized P&L, each trade's
//!   MFE/MAE — and closes the paper trades whose take-profit or stop it reaches, at the level.
//!   Every replica marks; the writes are conditional on the version read, so none is applied
//!   twice.
//!
//! Reconciliation and auto-flat run on one replica at a time, the holder of the
//! [`RECONCILER_LEASE`] on the `jt_leases` bucket; another replica takes over when it dies.
//! Token refresh likewise runs on the holder of [`TOKENS_LEASE`], so no two replicas renew the
//! same token.
//!
//! Repairs and flattens go through ORDERS, so they are serial with the account's other orders
//! and executed by the executor like any intent; their ids derive from what caused them, so a
//! repeated pass, a second replica or a restart publishes the same intent, executed once.
//!
//! What it must not do: place, change or cancel an order itself (it only publishes intents), or
//! hold a broker event connection (only the connection manager does).

pub mod apply;
pub mod autoflat;
mod metrics;
pub mod notify;
pub mod paper;
pub mod reconcile;
pub mod tokens;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use chrono::{DateTime, Utc};
use jt_bus::{ConsumeOptions, Definitions, Incoming, KvBucket};
use jt_domain::Settings;
use jt_messages::{BrokerEventMessage, ControlCause, ControlIntent, IntentMessage, derived_id};
use jt_runtime::config::{ConfigError, Env, optional, or_default};
use jt_runtime::health::Criticality;
use jt_service::{Context, Running};
use jt_store::repo::accounts::{BrokerAccount, SubAccount};
use jt_store::{BreachId, BrokerAccountId, Store, StoreError, SubAccountId, UserId};
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use reconcile::{Reconciled, Reconciler};

/// The positions service's settings.
#[derive(Debug, Clone)]
pub struct PositionsConfig {
    /// How often every active sub-account is reconciled (`JT_RECONCILE_SECS`, default 60).
    pub reconcile_every: Duration,
    /// An order event of a contract recorded less than this ago means its protection is being
    /// handled: no repair this pass (`JT_REPAIR_QUIET_SECS`, default 30).
    pub repair_quiet: Duration,
    /// How often auto-flat looks for a window that just ended (`JT_AUTOFLAT_CHECK_SECS`,
    /// default 5).
    pub autoflat_every: Duration,
    /// A window end older than this is not flattened any more (a service started long after
    /// it; `JT_AUTOFLAT_GRACE_SECS`, default 900).
    pub autoflat_grace: Duration,
    /// How the BROKER_EVENTS consumer runs.
    pub consume: ConsumeOptions,
    /// This replica's name in the reconciler's lease (`HOSTNAME`: the pod name).
    pub owner: String,
    /// The token refresher's settings.
    pub tokens: tokens::TokenConfig,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        Self {
            reconcile_every: Duration::from_secs(60),
            repair_quiet: Duration::from_secs(30),
            autoflat_every: Duration::from_secs(5),
            autoflat_grace: Duration::from_secs(900),
            consume: ConsumeOptions::default(),
            owner: ConsumeOptions::default().owner,
            tokens: tokens::TokenConfig::default(),
        }
    }
}

impl PositionsConfig {
    /// Reads the settings from the environment, with defaults.
    ///
    /// # Errors
    /// A variable that is set but malformed, named in the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let secs = |name, default| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(or_default(env, name, default)?))
        };
        Ok(Self {
            reconcile_every: secs("JT_RECONCILE_SECS", 60)?.max(Duration::from_secs(1)),
            repair_quiet: secs("JT_REPAIR_QUIET_SECS", 30)?,
            autoflat_every: secs("JT_AUTOFLAT_CHECK_SECS", 5)?.max(Duration::from_secs(1)),
            autoflat_grace: secs("JT_AUTOFLAT_GRACE_SECS", 900)?,
            consume: ConsumeOptions::default(),
            owner: optional(env, "HOSTNAME")?.unwrap_or(ConsumeOptions::default().owner),
            tokens: tokens::TokenConfig {
                every: secs("JT_TOKEN_REFRESH_SECS", 300)?.max(Duration::from_secs(1)),
                renew_before: secs("JT_TOKEN_RENEW_BEFORE_SECS", 1800)?,
                max_per_pass: or_default(env, "JT_TOKEN_RENEW_MAX_PER_PASS", 5)?,
                renewals_per_hour: or_default(env, "JT_TOKEN_RENEWALS_PER_HOUR", 15)?,
                logins_per_hour: or_default(env, "JT_TOKEN_LOGINS_PER_HOUR", 5)?,
            },
        })
    }
}

/// What the last reconciliation pass did (`GET /positions/status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassStatus {
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Passes since start.
    pub passes: u64,
    /// Sub-accounts reconciled in the last pass.
    pub accounts: usize,
    /// Of which failed.
    pub failed: usize,
    /// Stored positions corrected in the last pass.
    pub corrections: usize,
    /// Repairs published in the last pass.
    pub repairs: usize,
    /// Auto-flat intents published since start.
    pub flattens: u64,
    /// The token refresher (on this replica: zero when another replica holds its lease).
    pub tokens: tokens::TokenStatus,
}

/// A trader whose sub-account is flattened when its window ends.
#[derive(Debug, Clone)]
struct FlatTarget {
    owner: UserId,
    sub: SubAccountId,
    login: BrokerAccountId,
    settings: Settings,
}

#[derive(Clone)]
struct Shared {
    status: Arc<Mutex<PassStatus>>,
    tokens: Arc<Mutex<tokens::TokenStatus>>,
    flat_targets: Arc<Mutex<Option<Vec<FlatTarget>>>>,
}

/// Starts the service on `ctx`: the BROKER_EVENTS consumer, the reconciliation passes and the
/// auto-flat check, until `ctx.shutdown`. Routes: `GET /positions/status`.
///
/// # Errors
/// The lease bucket cannot be opened (the topology is not provisioned).
pub async fn start(config: PositionsConfig, ctx: &Context) -> anyhow::Result<Running> {
    ctx.register_core_health(Criticality::Required).await;
    let leases = ctx
        .bus
        .kv(&Definitions::new(ctx.bus.namespace()).leases)
        .await?;
    let shared = Shared {
        status: Arc::new(Mutex::new(PassStatus::default())),
        tokens: Arc::new(Mutex::new(tokens::TokenStatus::default())),
        flat_targets: Arc::new(Mutex::new(None)),
    };
    let routes = {
        let (status, token_status) = (shared.status.clone(), shared.tokens.clone());
        axum::Router::new().route(
            "/positions/status",
            get(move || {
                let (status, token_status) = (status.clone(), token_status.clone());
                async move {
                    let mut s = status.lock().clone();
                    s.tokens = token_status.lock().clone();
                    Json(s)
                }
            }),
        )
    };
    let reconciler = Reconciler {
        store: ctx.store.clone(),
        bus: ctx.bus.clone(),
        brokers: ctx.brokers.clone(),
        quiet: config.repair_quiet,
    };
    let refresher = tokens::Refresher::new(
        ctx.store.clone(),
        ctx.brokers.clone(),
        config.tokens.clone(),
    );
    let stop = ctx.shutdown.clone();
    let bus = ctx.bus.clone();
    let store = ctx.store.clone();
    let task = tokio::spawn(async move {
        let defs = Definitions::new(bus.namespace());
        let consumer = {
            let (bus, stop, store) = (bus.clone(), stop.clone(), store.clone());
            let options = config.consume.clone();
            tokio::spawn(async move {
                bus.consume(
                    &defs.positions,
                    options,
                    stop,
                    move |msg: Incoming<BrokerEventMessage>| apply::handle(store.clone(), msg),
                )
                .await
            })
        };
        let passes = tokio::spawn(reconcile_loop(
            reconciler.clone(),
            config.reconcile_every,
            shared.clone(),
            leases.clone(),
            config.owner.clone(),
            stop.clone(),
        ));
        let refreshes = tokio::spawn(token_loop(
            refresher,
            shared.tokens.clone(),
            leases,
            config.owner.clone(),
            stop.clone(),
        ));
        let marks = tokio::spawn(paper::run(store.clone(), bus.clone(), stop.clone()));
        let flats = tokio::spawn(autoflat_loop(
            bus.clone(),
            config.autoflat_every,
            chrono::Duration::from_std(config.autoflat_grace)
                .unwrap_or(chrono::Duration::minutes(15)),
            shared,
            stop.clone(),
        ));
        let consumed = consumer.await;
        // The consumer ends at shutdown or on a fatal error: stop the rest with it.
        stop.cancel();
        let _ = passes.await;
        let _ = flats.await;
        let _ = marks.await;
        let _ = refreshes.await;
        consumed??;
        Ok(())
    });
    Ok(Running::new("positions", routes, task))
}

/// One active sub-account and the login it is reached through.
type Work = Vec<(BrokerAccount, SubAccount)>;

/// The active sub-accounts (enabled logins with credentials, not waiting for re-authentication)
/// and the traders to flatten at their windows' ends.
async fn survey(store: &Store) -> Result<(Work, Vec<FlatTarget>), StoreError> {
    let accounts = store.system().active_accounts().await?;
    let mut work = Vec::new();
    let mut owners = HashSet::new();
    for account in accounts.into_iter().filter(|a| !a.needs_reauth) {
        owners.insert(account.owner);
        for sub in store
            .accounts()
            .sub_accounts(account.owner, account.id)
            .await?
            .into_iter()
            .filter(|s| s.active)
        {
            work.push((account.clone(), sub));
        }
    }
    let subs: HashMap<SubAccountId, BrokerAccountId> =
        work.iter().map(|(a, s)| (s.id, a.id)).collect();
    let mut flats = Vec::new();
    for owner in owners {
        let traders = store.traders().list(owner).await?;
        if !traders
            .iter()
            .any(|t| t.enabled && subs.contains_key(&t.sub_account))
        {
            continue;
        }
        let recorders: HashMap<_, _> = store
            .recorders()
            .list(owner)
            .await?
            .into_iter()
            .map(|r| (r.id, r.settings))
            .collect();
        for t in traders.into_iter().filter(|t| t.enabled) {
            let (Some(login), Some(settings)) =
                (subs.get(&t.sub_account), recorders.get(&t.recorder))
            else {
                continue;
            };
            let settings = settings.resolve(&t.overrides);
            if settings.auto_flat_after_cutoff {
                flats.push(FlatTarget {
                    owner,
                    sub: t.sub_account,
                    login: *login,
                    settings,
                });
            }
        }
    }
    Ok((work, flats))
}

/// The lease key of the reconciler on the `jt_leases` bucket.
pub const RECONCILER_LEASE: &str = "positions.reconciler";

/// Takes the reconciler's lease when nobody holds it (every few seconds) and runs the passes
/// while holding it: one replica reconciles (and publishes auto-flats) at a time; when it dies,
/// its lease expires within the bucket's TTL and another replica takes over.
async fn reconcile_loop(
    reconciler: Reconciler,
    every: Duration,
    shared: Shared,
    leases: KvBucket,
    owner: String,
    stop: CancellationToken,
) {
    let retry = every.min(Duration::from_secs(5));
    loop {
        match leases.try_acquire(RECONCILER_LEASE, &owner).await {
            Ok(Some(mut lease)) => {
                tracing::info!(%owner, "reconciler lease taken: this replica reconciles");
                let lost = stop.child_token();
                lease
                    .hold_while(passes(&reconciler, every, &shared, &lost), &lost)
                    .await;
                *shared.flat_targets.lock() = None;
                if stop.is_cancelled() {
                    let _ = lease.release().await;
                    return;
                }
                tracing::warn!(%owner, "reconciler lease lost: another replica reconciles");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the reconciler lease cannot be read"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

/// Reconciliation passes every `every` until `stop`.
async fn passes(
    reconciler: &Reconciler,
    every: Duration,
    shared: &Shared,
    stop: &CancellationToken,
) {
    // The first pass one interval after start: replicas restarted together by a deploy do not
    // read every account at once.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (work, flats) = match survey(&reconciler.store).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the accounts to reconcile: pass skipped");
                continue;
            }
        };
        *shared.flat_targets.lock() = Some(flats);
        // Spread the accounts over three quarters of the interval: the brokers see a steady
        // trickle, and the pass ends before the next one is due.
        let spacing = every
            .mul_f64(0.75)
            .checked_div(u32::try_from(work.len()).unwrap_or(u32::MAX).max(1))
            .unwrap_or_default();
        let mut pass = PassStatus::default();
        for (i, (account, sub)) in work.iter().enumerate() {
            if i > 0 {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(spacing) => {}
                }
            }
            pass.accounts += 1;
            match reconciler.account(account, sub).await {
                Ok(done) => {
                    metrics::account("ok");
                    pass.corrections += done.corrections;
                    pass.repairs += done.repairs;
                }
                Err(e) => {
                    metrics::account(e.label());
                    pass.failed += 1;
                    tracing::warn!(sub_account = %sub.id, login = %account.id, error = %e, "sub-account not reconciled");
                }
            }
        }
        metrics::pass(pass.accounts, pass.failed);
        let mut status = shared.status.lock();
        status.finished_at = Some(Utc::now());
        status.passes += 1;
        status.accounts = pass.accounts;
        status.failed = pass.failed;
        status.corrections = pass.corrections;
        status.repairs = pass.repairs;
    }
}

/// The lease key of the token refresher on the `jt_leases` bucket.
pub const TOKENS_LEASE: &str = "positions.tokens";

/// Takes the token refresher's lease when nobody holds it and runs its passes while holding
/// it: one replica renews tokens at a time (its requests leave from one address, within that
/// address's budget), and no two replicas renew the same token.
async fn token_loop(
    mut refresher: tokens::Refresher,
    status: Arc<Mutex<tokens::TokenStatus>>,
    leases: KvBucket,
    owner: String,
    stop: CancellationToken,
) {
    let every = refresher.config.every;
    let retry = every.min(Duration::from_secs(5));
    loop {
        match leases.try_acquire(TOKENS_LEASE, &owner).await {
            Ok(Some(mut lease)) => {
                tracing::info!(%owner, "token refresher lease taken: this replica renews tokens");
                let lost = stop.child_token();
                lease
                    .hold_while(token_passes(&mut refresher, &status, &lost), &lost)
                    .await;
                if stop.is_cancelled() {
                    let _ = lease.release().await;
                    return;
                }
                tracing::warn!(%owner, "token refresher lease lost: another replica renews tokens");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the token refresher lease cannot be read"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

/// Token refresh passes every interval until `stop`; the first one interval after the lease
/// was taken (replicas restarted together do not renew at once).
async fn token_passes(
    refresher: &mut tokens::Refresher,
    status: &Mutex<tokens::TokenStatus>,
    stop: &CancellationToken,
) {
    let every = refresher.config.every;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        refresher.pass(stop, status).await;
    }
}

/// The flatten of `sub` for the window end `cutoff`: its id derives from both.
#[must_use]
pub fn auto_flat_intent(
    owner: UserId,
    sub: SubAccountId,
    login: BrokerAccountId,
    cutoff: DateTime<Utc>,
) -> IntentMessage {
    let breach = BreachId(derived_id(
        "auto-flat-after-cutoff",
        &[&sub.to_string(), &cutoff.timestamp().to_string()],
    ));
    IntentMessage::control(
        owner,
        sub,
        login,
        Utc::now(),
        ControlIntent::flatten_account(ControlCause::RiskBreach {
            breach_id: breach,
            rule: "auto_flat_after_cutoff".into(),
        }),
    )
}

async fn autoflat_loop(
    bus: jt_bus::Bus,
    every: Duration,
    grace: chrono::Duration,
    shared: Shared,
    stop: CancellationToken,
) {
    let mut published: HashSet<(SubAccountId, DateTime<Utc>)> = HashSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(targets) = shared.flat_targets.lock().clone() else {
            continue;
        };
        let now = Utc::now();
        published.retain(|(_, cutoff)| now - *cutoff <= grace);
        for t in targets {
            let Some(cutoff) = autoflat::due(&t.settings, now, grace) else {
                continue;
            };
            if published.contains(&(t.sub, cutoff)) {
                continue;
            }
            match reconcile::publish(&bus, auto_flat_intent(t.owner, t.sub, t.login, cutoff)).await
            {
                Ok(duplicate) => {
                    published.insert((t.sub, cutoff));
                    metrics::flatten(if duplicate { "duplicate" } else { "published" });
                    if !duplicate {
                        shared.status.lock().flattens += 1;
                        tracing::info!(sub_account = %t.sub, %cutoff, "trading window ended: auto-flat published");
                    }
                }
                Err(e) => {
                    metrics::flatten("failed");
                    tracing::warn!(sub_account = %t.sub, error = %e, "auto-flat not published: next check retries");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn token_refresh_settings_default_to_the_brokers_per_ip_allowances() {
        let c = PositionsConfig::from_env(&env(&[])).unwrap().tokens;
        assert_eq!(c.every, Duration::from_secs(300));
        assert_eq!(c.renew_before, Duration::from_secs(1800));
        assert_eq!(c.max_per_pass, 5);
        assert_eq!(c.renewals_per_hour, 15);
        assert_eq!(c.logins_per_hour, 5);
    }

    #[test]
    fn token_refresh_settings_are_read_and_a_malformed_one_is_named() {
        let c = PositionsConfig::from_env(&env(&[
            ("JT_TOKEN_REFRESH_SECS", "0"),
            ("JT_TOKEN_RENEW_BEFORE_SECS", "900"),
            ("JT_TOKEN_RENEW_MAX_PER_PASS", "20"),
            ("JT_TOKEN_RENEWALS_PER_HOUR", "200"),
            ("JT_TOKEN_LOGINS_PER_HOUR", "10"),
        ]))
        .unwrap()
        .tokens;
        assert_eq!(c.every, Duration::from_secs(1), "at least a second");
        assert_eq!(c.renew_before, Duration::from_secs(900));
        assert_eq!(
            (c.max_per_pass, c.renewals_per_hour, c.logins_per_hour),
            (20, 200, 10)
        );
        let e =
            PositionsConfig::from_env(&env(&[("JT_TOKEN_RENEWALS_PER_HOUR", "lots")])).unwrap_err();
        assert!(e.to_string().contains("JT_TOKEN_RENEWALS_PER_HOUR"), "{e}");
    }
}
