//! The max daily loss under load (issue 23): A accounts watched by the risk service, each
//! holding one long MNQ contract opened by hand at the simulator and each with its own
//! `max_daily_loss` (a trader's override), staggered so that every price tick crosses exactly
//! one more account's limit — and every breach happens once per account and day. The real
//! services run as separate processes: `jt sim` (its admin API moves the price), `jt connmgr`
//! (the accounts' events and the simulator's quotes on `jt.quotes.<contract>`), `jt positions`
//! (the positions in the store), `jt risk` (judges every account on every quote, records the
//! breach, publishes the flatten) and `jt executor` (the flatten at the simulator), on JetStream
//! (`NATS_URL`) and a fresh PostgreSQL database on the server of `DATABASE_URL`.
//!
//! Measured per tick: the price set at the simulator (the moment the admin request left) →
//! the first flatten order of the account it crossed at the simulator (`receivedUs`), p50/p99
//! over the ticks, with the stages on the way: the quote published by the connection manager
//! (a core subscriber in this process), the breach recorded (`risk_breaches.breached_at`), the
//! flatten intent recorded by the executor (`order_intents.created_at`); CPU per tick by
//! process. Afterwards every crossed account must be breached once and flat, and no other
//! account breached.
//!
//! Limits: account i (0-based) has `max_daily_loss` = (i + 1) × step − step / 2, where step is
//! one tick's loss on one MNQ (`JT_BENCH_TICK_POINTS` × $2); tick k (1-based) sets the price
//! k × `JT_BENCH_TICK_POINTS` below the entry, so the day's loss of every account is k × step
//! (plus the entry's commission, under half a step): account k − 1 is crossed, account k not.
//!
//! Knobs: `JT_BENCH_ACCOUNTS` (watched accounts, default 500), `JT_BENCH_TICKS` (ticks, each
//! crossing one account, default 50; at most the accounts), `JT_BENCH_TICK_MS` (between ticks,
//! default 500), `JT_BENCH_TICK_POINTS` (default 5), `JT_BENCH_ACCOUNTS_PER_LOGIN` (default 20:
//! a prop-firm trader's many accounts under one login; the connection manager opens one socket
//! per login, 3 s apart — the process's connect gate, DOMAIN §8 —, so fewer logins start faster),
//! `JT_BENCH_KEEP_DB=1`.
//!
//! `scripts/test-services -- cargo bench -p jt --bench risk` (part of `make bench`). Results go
//! to `docs/benchmarks.md` by hand.

#[path = "../pipeline/cpu.rs"]
mod cpu;
// Shared with the other benchmark of the copy/risk pair; each uses part of it.
#[allow(dead_code)]
#[path = "../common/fleet.rs"]
mod fleet;
#[path = "../pipeline/http.rs"]
mod http;
// Shared with the pipeline benchmark; this one uses only part of them.
#[allow(dead_code)]
#[path = "../pipeline/load.rs"]
mod load;
#[path = "../pipeline/procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../pipeline/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../pipeline/seed.rs"]
mod seed;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use jt_domain::{Settings, Side};
use jt_store::repo::recorders::NewRecorder;
use jt_store::repo::traders::NewTrader;
use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::task::JoinSet;

use crate::fleet::{Fleet, Hand, Observer};
use crate::load::histogram;
use crate::report::{Table, max, mib, pct};

/// The entry price every account opens at (MNQ).
const ENTRY: i64 = 21_000;
/// MNQ: dollars per point.
const POINT_VALUE: i64 = 2;

struct Config {
    accounts: usize,
    ticks: usize,
    tick_ms: u64,
    tick_points: Decimal,
    per_login: usize,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        let accounts: usize = fleet::var("JT_BENCH_ACCOUNTS", 500)?;
        let ticks: usize = fleet::var("JT_BENCH_TICKS", 50)?;
        anyhow::ensure!(
            accounts > 0 && ticks > 0 && ticks <= accounts,
            "JT_BENCH_TICKS must be between 1 and JT_BENCH_ACCOUNTS"
        );
        Ok(Self {
            accounts,
            ticks,
            tick_ms: fleet::var("JT_BENCH_TICK_MS", 500)?,
            tick_points: fleet::var("JT_BENCH_TICK_POINTS", Decimal::from(5))?,
            per_login: fleet::var("JT_BENCH_ACCOUNTS_PER_LOGIN", 20)?,
        })
    }

    /// One tick's loss on one contract, dollars.
    fn step(&self) -> Decimal {
        self.tick_points * Decimal::from(POINT_VALUE)
    }

    /// Account `i`'s limit: crossed by tick `i + 1`, not by tick `i`.
    fn limit(&self, i: usize) -> Decimal {
        self.step() * Decimal::from(i + 1) - self.step() / Decimal::TWO
    }

    /// The price of tick `k` (1-based; 0 is the entry).
    fn price(&self, k: usize) -> Decimal {
        Decimal::from(ENTRY) - self.tick_points * Decimal::from(k)
    }
}

fn main() -> anyhow::Result<()> {
    jt_runtime::tls::install_crypto_provider();
    let config = Config::from_env()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(Box::pin(run(&config)))
}

#[derive(Deserialize)]
struct RiskStatus {
    active: bool,
    accounts: Vec<WatchedAccount>,
}

#[derive(Deserialize)]
struct WatchedAccount {
    account: String,
    distance: Option<serde_json::Value>,
    breached: bool,
}

async fn run(config: &Config) -> anyhow::Result<()> {
    let mut fleet = Fleet::start("risk").await?;
    let owner = seed::user(&fleet.store).await?;
    let t = Instant::now();
    let accounts = seed::accounts_named(
        &fleet.store,
        fleet.sim_addr,
        owner,
        "risk",
        config.accounts,
        config.per_login,
    )
    .await?;
    let logins = config.accounts.div_ceil(config.per_login.max(1));
    // One trader per account (the recorder never gets an alert): its max daily loss is what
    // the risk service watches.
    let (recorder, _) = fleet
        .store
        .recorders()
        .create(
            owner,
            NewRecorder {
                name: "risk bench".into(),
                symbol: Some("MNQ1!".into()),
                settings: Settings::default(),
                commission_per_contract: Decimal::ZERO,
            },
        )
        .await?;
    for (c, chunk) in accounts.chunks(64).enumerate() {
        let mut tasks = JoinSet::new();
        for (j, a) in chunk.iter().enumerate() {
            let store = fleet.store.clone();
            let sub = a.sub_account;
            let limit = config.limit(c * 64 + j);
            tasks.spawn(async move {
                store
                    .traders()
                    .create(
                        owner,
                        NewTrader {
                            recorder: recorder.id,
                            sub_account: sub,
                            enabled: true,
                            overrides: jt_domain::SettingsOverrides {
                                max_daily_loss: Some(limit),
                                ..jt_domain::SettingsOverrides::default()
                            },
                        },
                    )
                    .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
    }
    // Every account opens one long contract at the entry price, by hand at the broker.
    fleet.set_price("MNQ", &ENTRY.to_string()).await?;
    let access = fleet::access(&fleet);
    let mut tasks = JoinSet::new();
    for chunk in accounts.chunks(config.per_login.max(1)) {
        let (access, store) = (access.clone(), fleet.store.clone());
        let subs: Vec<_> = chunk.iter().map(|a| a.sub_account).collect();
        tasks.spawn(async move {
            for sub in subs {
                Hand::new(&access, &store, owner, sub, "MNQ")
                    .await?
                    .trade(Side::Buy, 1)
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    println!(
        "seeded {} accounts on {} logins, each long 1 MNQ at {ENTRY}, in {:.1} s",
        accounts.len(),
        logins,
        t.elapsed().as_secs_f64()
    );

    fleet.spawn("executor", "executor", &[]).await?;
    fleet.spawn("positions", "positions", &[]).await?;
    // The risk service as deployed (its default survey every 10 s, reads every 60 s).
    let risk = fleet.spawn("risk", "risk", &[]).await?;
    fleet
        .spawn(
            "connmgr",
            "connmgr",
            &[
                ("JT_BROKER_START_STAGGER_SECS", "0".into()),
                ("JT_CONNMGR_SCAN_MS", "500".into()),
                ("JT_CONNMGR_QUOTES_EVERY_MS", "500".into()),
            ],
        )
        .await?;
    let subs: Vec<_> = accounts.iter().map(|a| a.sub_account).collect();
    // The connect gate opens one socket every 3 s.
    fleet
        .wait_sockets(owner, &subs, fleet::connect_time(logins))
        .await?;
    // Every account watched with its figures known (the position seen, a quote or the
    // broker's read), none breached. A quote moves the price by a tick and back so the
    // marks are fresh.
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut nudge = 0u32;
    loop {
        fleet.check_alive()?;
        let status = risk_status(risk).await?;
        let known = status
            .accounts
            .iter()
            .filter(|a| a.distance.as_ref().is_some_and(|d| !d.is_null()))
            .count();
        let breached: Vec<&str> = status
            .accounts
            .iter()
            .filter(|a| a.breached)
            .map(|a| a.account.as_str())
            .collect();
        if !breached.is_empty() {
            bail!("accounts breached before the first tick: {breached:?}");
        }
        if status.active && known == config.accounts {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "the risk service watches {} accounts, {known} with known figures (of {}) after \
                 180 s",
                status.accounts.len(),
                config.accounts
            );
        }
        nudge += 1;
        let price = if nudge % 2 == 1 {
            Decimal::from(ENTRY) + Decimal::new(25, 2)
        } else {
            Decimal::from(ENTRY)
        };
        fleet.set_price("MNQ", &price.to_string()).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    fleet.set_price("MNQ", &ENTRY.to_string()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "the risk service watches all {} accounts ({:.1} s after the services started)",
        config.accounts,
        t.elapsed().as_secs_f64()
    );

    // The ticks.
    let observer = Observer::start(&fleet, |s| Ok(s.one_level("quotes"))).await?;
    let cpu_before = fleet.cpu();
    let spacing = Duration::from_millis(config.tick_ms);
    let mut ticks = Vec::with_capacity(config.ticks);
    let start = Instant::now();
    for k in 1..=config.ticks {
        tokio::time::sleep_until((start + spacing * u32::try_from(k - 1)?).into()).await;
        ticks.push(fleet.set_price("MNQ", &config.price(k).to_string()).await?);
    }
    // Every crossed account's flatten at the simulator, or 30 s.
    let index: HashMap<&str, usize> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let begin = ticks[0];
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_orders = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        fleet.check_alive()?;
        let mut first: HashMap<usize, i64> = HashMap::new();
        for o in fleet.sim_orders().await? {
            if let Some(&i) = index.get(o.account.as_str())
                && o.received_us >= begin
            {
                let e = first.entry(i).or_insert(o.received_us);
                *e = (*e).min(o.received_us);
            }
        }
        if (0..config.ticks).all(|i| first.contains_key(&i)) || Instant::now() >= deadline {
            break first;
        }
    };
    let used = fleet.cpu().since(&cpu_before);
    let quotes: Vec<i64> = observer.take().into_iter().map(|(at, _, _)| at).collect();
    drop(observer);

    // The breaches and the flatten intents, by account.
    let names: HashMap<String, usize> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.sub_account.to_string(), i))
        .collect();
    let mut breached_at: HashMap<usize, Vec<i64>> = HashMap::new();
    for row in fleet
        .query(
            "SELECT sub_account_id::text, \
                    (EXTRACT(EPOCH FROM breached_at) * 1000000)::bigint \
             FROM risk_breaches",
        )
        .await?
    {
        let sub: String = row.try_get_by_index(0)?;
        let at: i64 = row.try_get_by_index(1)?;
        if let Some(&i) = names.get(&sub) {
            breached_at.entry(i).or_default().push(at);
        }
    }
    let mut intent_at: HashMap<usize, i64> = HashMap::new();
    for row in fleet
        .query(&format!(
            "SELECT sub_account_id::text, \
                    MIN((EXTRACT(EPOCH FROM created_at) * 1000000)::bigint) \
             FROM order_intents \
             WHERE created_at >= to_timestamp({}) GROUP BY sub_account_id",
            begin as f64 / 1e6
        ))
        .await?
    {
        let sub: String = row.try_get_by_index(0)?;
        let at: Option<i64> = row.try_get_by_index(1)?;
        if let (Some(&i), Some(at)) = (names.get(&sub), at) {
            intent_at.insert(i, at);
        }
    }

    let mut to_order = histogram()?;
    let (mut to_quote, mut to_breach, mut to_intent) = (histogram()?, histogram()?, histogram()?);
    let mut missing = 0;
    for (k, at) in ticks.iter().enumerate() {
        let account = k; // tick k + 1 crosses account k
        let us = |t: i64| u64::try_from(t - at).unwrap_or(0).max(1);
        if let Some(q) = quotes.iter().find(|q| **q >= *at) {
            to_quote.record(us(*q))?;
        }
        if let Some(b) = breached_at.get(&account).and_then(|b| b.first()) {
            to_breach.record(us(*b))?;
        }
        if let Some(i) = intent_at.get(&account) {
            to_intent.record(us(*i))?;
        }
        match first_orders.get(&account) {
            Some(o) => {
                to_order.record(us(*o))?;
                // The slow ticks by name: which tick (the first, a periodic one) and which
                // stage made the tail.
                if us(*o) > 100_000 {
                    println!(
                        "slow tick {}: quote +{} ms, order +{} ms",
                        k + 1,
                        quotes
                            .iter()
                            .find(|q| **q >= *at)
                            .map_or(-1, |q| (q - at) / 1000),
                        (o - at) / 1000
                    );
                }
            }
            None => missing += 1,
        }
    }
    // Correctness: the crossed accounts breached once each and flat; no other account touched.
    let twice = breached_at.values().filter(|b| b.len() > 1).count();
    let wrong: Vec<usize> = breached_at
        .keys()
        .copied()
        .filter(|i| *i >= config.ticks)
        .collect();
    let mut not_flat = 0;
    for a in &accounts[..config.ticks] {
        if fleet.sim_net(&a.name).await? != 0 {
            not_flat += 1;
        }
    }
    let untouched_orders = first_orders.keys().filter(|i| **i >= config.ticks).count();
    fleet.check_alive()?;

    let mut table = Table::new(&[
        "accounts watched",
        "ticks",
        "spacing",
        "tick → flatten order p50",
        "p99",
        "max",
        "missing",
    ]);
    table.row(vec![
        config.accounts.to_string(),
        ticks.len().to_string(),
        format!("{} ms", config.tick_ms),
        pct(&to_order, 50.0),
        pct(&to_order, 99.0),
        max(&to_order),
        missing.to_string(),
    ]);
    table.print(
        "Price tick → first flatten order of the crossed account at the simulator (the tick's \
         admin request sent → the order's arrival, one machine clock)",
    );
    let mut stages = Table::new(&["stage (from the tick)", "n", "p50", "p99", "max"]);
    for (name, h) in [
        ("quote published (connmgr)", &to_quote),
        ("breach recorded (risk)", &to_breach),
        ("flatten intent recorded (executor)", &to_intent),
        ("flatten order at the simulator", &to_order),
    ] {
        stages.row(vec![
            name.into(),
            h.len().to_string(),
            pct(h, 50.0),
            pct(h, 99.0),
            max(h),
        ]);
    }
    stages.print("Where the time goes");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut cpu_table = Table::new(&["process", "CPU per tick"]);
    let n = ticks.len().max(1) as f64;
    for name in fleet.names().into_iter().chain(["postgres", "nats-server"]) {
        cpu_table.row(vec![
            name.into(),
            format!("{:.1} ms", used.of(name) * 1000.0 / n),
        ]);
    }
    cpu_table.row(vec![
        "all".into(),
        format!("{:.1} ms", used.total() * 1000.0 / n),
    ]);
    cpu_table.row(vec![
        "all ÷ cores".into(),
        format!("{:.1} ms", used.total() * 1000.0 / n / cores as f64),
    ]);
    cpu_table.print(&format!(
        "CPU per tick by process, from the first tick to the last flatten ({cores} cores)"
    ));
    println!(
        "\ncheck: {} of {} crossed accounts breached, {twice} breached twice, {} accounts \
         breached that no tick crossed {wrong:?}, {not_flat} crossed accounts not flat, \
         {untouched_orders} uncrossed accounts with an order",
        (0..config.ticks)
            .filter(|i| breached_at.contains_key(i))
            .count(),
        config.ticks,
        wrong.len()
    );
    let mut mem = Table::new(&["service", "peak RSS (VmHWM)"]);
    for (name, kib) in fleet.peak_rss() {
        mem.row(vec![name.to_string(), mib(kib)]);
    }
    mem.print("Peak resident memory");
    fleet.finish().await;
    if missing > 0 || twice > 0 || !wrong.is_empty() || not_flat > 0 || untouched_orders > 0 {
        bail!("the risk benchmark's check failed (above)");
    }
    Ok(())
}

async fn risk_status(addr: SocketAddr) -> anyhow::Result<RiskStatus> {
    serde_json::from_slice(&http::call_ok(addr, "GET", "/risk/status", b"").await?)
        .context("reading /risk/status")
}
