//! The broker event side (issue 20): a fill at the simulator → the position in the store, and
//! the events one connection manager sustains. The real services run as separate processes:
//! `jt sim`, `jt connmgr` (one socket per login, the accounts' events republished on
//! BROKER_EVENTS) and `jt positions` (the store kept in step with them), on JetStream
//! (`NATS_URL`) and a fresh PostgreSQL database on the server of `DATABASE_URL`.
//!
//! Two phases:
//!
//! 1. **Latency**: `JT_BENCH_FILLS` fills one at a time (`JT_BENCH_GAP_MS` apart), each a market
//!    order placed by hand at the simulator on the next account (buy from flat, sell back to
//!    flat). Measured per fill from the simulator's fill time (`timestampUs`, one machine
//!    clock): the fill's row in the store (`fills.recorded_at`) and the account's stored
//!    position showing the new quantity (the benchmark polls the store every millisecond, so
//!    this stage is an upper bound by about a millisecond).
//! 2. **Throughput**: every account trades `JT_BENCH_ROUNDS` times as fast as one hand per
//!    login can (market orders, alternating sides): the broker events the connection manager
//!    published per second while the burst lasted (a core subscriber sees every BROKER_EVENTS
//!    message), and how long after the last fill the store showed every account's final
//!    position. CPU per event by process.
//!
//! Knobs: `JT_BENCH_ACCOUNTS` (default 100), `JT_BENCH_ACCOUNTS_PER_LOGIN` (default 10),
//! `JT_BENCH_FILLS` (default 100), `JT_BENCH_GAP_MS` (default 50), `JT_BENCH_ROUNDS` (default
//! 10), `JT_BENCH_KEEP_DB=1`.
//!
//! `scripts/test-services -- cargo bench -p jt --bench events` (part of `make bench`). Results
//! go to `docs/benchmarks.md` by hand.

#[path = "../pipeline/cpu.rs"]
mod cpu;
// Shared with the other benchmarks of the copy/risk/events set; each uses part of it.
#[allow(dead_code)]
#[path = "../common/fleet.rs"]
mod fleet;
#[allow(dead_code)]
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

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use jt_domain::Side;
use tokio::task::JoinSet;

use crate::fleet::{Fleet, Hand, Observer, now_us};
use crate::load::histogram;
use crate::report::{Table, max, mib, pct};

struct Config {
    accounts: usize,
    per_login: usize,
    fills: usize,
    gap_ms: u64,
    rounds: usize,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        let accounts: usize = fleet::var("JT_BENCH_ACCOUNTS", 100)?;
        anyhow::ensure!(accounts > 0, "JT_BENCH_ACCOUNTS must be above 0");
        Ok(Self {
            accounts,
            per_login: fleet::var("JT_BENCH_ACCOUNTS_PER_LOGIN", 10)?,
            fills: fleet::var("JT_BENCH_FILLS", 100)?,
            gap_ms: fleet::var("JT_BENCH_GAP_MS", 50)?,
            rounds: fleet::var("JT_BENCH_ROUNDS", 10)?,
        })
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

/// The stored net quantity of `sub`'s positions (0 without a row).
async fn stored_net(fleet: &Fleet, sub: &str) -> anyhow::Result<i64> {
    let rows = fleet
        .query(&format!(
            "SELECT COALESCE(SUM(net_quantity), 0)::bigint FROM broker_positions \
             WHERE sub_account_id = '{sub}'"
        ))
        .await?;
    let row = rows.first().context("no row")?;
    Ok(row.try_get_by_index(0)?)
}

/// Every account's stored net quantity, by sub-account id (an account without a row is flat).
async fn stored_nets(fleet: &Fleet) -> anyhow::Result<std::collections::HashMap<String, i64>> {
    let mut nets = std::collections::HashMap::new();
    for row in fleet
        .query(
            "SELECT sub_account_id::text, SUM(net_quantity)::bigint FROM broker_positions \
             GROUP BY sub_account_id",
        )
        .await?
    {
        nets.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    }
    Ok(nets)
}

#[allow(clippy::too_many_lines)]
async fn run(config: &Config) -> anyhow::Result<()> {
    let mut fleet = Fleet::start("events").await?;
    let owner = seed::user(&fleet.store).await?;
    let accounts = seed::accounts_named(
        &fleet.store,
        fleet.sim_addr,
        owner,
        "events",
        config.accounts,
        config.per_login,
    )
    .await?;
    let logins = config.accounts.div_ceil(config.per_login.max(1));
    fleet.set_price("MNQ", "21000").await?;
    fleet.spawn("positions", "positions", &[]).await?;
    fleet
        .spawn(
            "connmgr",
            "connmgr",
            &[
                ("JT_BROKER_START_STAGGER_SECS", "0".into()),
                ("JT_CONNMGR_SCAN_MS", "500".into()),
            ],
        )
        .await?;
    let subs: Vec<_> = accounts.iter().map(|a| a.sub_account).collect();
    // The connect gate opens one socket every 3 s.
    fleet
        .wait_sockets(owner, &subs, fleet::connect_time(logins))
        .await?;
    println!(
        "{} accounts on {logins} logins, every socket open",
        accounts.len()
    );
    let access = fleet::access(&fleet);
    let mut hands = Vec::with_capacity(accounts.len());
    for a in &accounts {
        hands.push(Hand::new(&access, &fleet.store, owner, a.sub_account, "MNQ").await?);
    }

    // Phase 1: one fill at a time.
    let (mut to_row, mut to_position) = (histogram()?, histogram()?);
    let mut held = vec![0i64; accounts.len()];
    let mut slow = 0usize;
    for k in 0..config.fills {
        let i = k % accounts.len();
        let (side, next) = if held[i] == 0 {
            (Side::Buy, 1)
        } else {
            (Side::Sell, 0)
        };
        hands[i].trade(side, 1).await?;
        held[i] = next;
        let fill = fleet
            .sim_fills(&accounts[i].name)
            .await?
            .into_iter()
            .max_by_key(|f| f.timestamp_us)
            .context("the trade's fill at the simulator")?;
        let sub = accounts[i].sub_account.to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        let seen = loop {
            if stored_net(&fleet, &sub).await? == next {
                break now_us();
            }
            if Instant::now() >= deadline {
                bail!("fill {k}: the stored position of account {i} is not {next} after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let us = |t: i64| u64::try_from(t - fill.timestamp_us).unwrap_or(0).max(1);
        to_position.record(us(seen))?;
        if us(seen) > 100_000 {
            slow += 1;
        }
        for row in fleet
            .query(&format!(
                "SELECT (EXTRACT(EPOCH FROM recorded_at) * 1000000)::bigint FROM fills \
                 WHERE sub_account_id = '{sub}' AND broker_fill_id = '{}'",
                fill.id
            ))
            .await?
        {
            let at: i64 = row.try_get_by_index(0)?;
            to_row.record(us(at))?;
        }
        tokio::time::sleep(Duration::from_millis(config.gap_ms)).await;
    }
    let mut latency = Table::new(&[
        "stage (from the fill at the simulator)",
        "n",
        "p50",
        "p99",
        "max",
    ]);
    for (name, h) in [
        ("fill row in the store (positions)", &to_row),
        ("position in the store (positions)", &to_position),
    ] {
        latency.row(vec![
            name.into(),
            h.len().to_string(),
            pct(h, 50.0),
            pct(h, 99.0),
            max(h),
        ]);
    }
    latency.print(&format!(
        "Fill at the simulator → the store, one fill at a time ({} fills, {} ms apart; {slow} over 100 ms)",
        config.fills, config.gap_ms
    ));

    // Phase 2: every account trades `rounds` times, one hand per login.
    let observer = Observer::start(&fleet, |s| Ok(format!("{}.*", s.one_level("broker")))).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu_before = fleet.cpu();
    let start = now_us();
    let mut tasks = JoinSet::new();
    let mut owned: Vec<(usize, Hand, i64)> = hands
        .into_iter()
        .zip(held)
        .enumerate()
        .map(|(i, (h, n))| (i, h, n))
        .collect();
    while !owned.is_empty() {
        let chunk: Vec<(usize, Hand, i64)> =
            owned.drain(..config.per_login.min(owned.len())).collect();
        let rounds = config.rounds;
        tasks.spawn(async move {
            let mut chunk = chunk;
            for _ in 0..rounds {
                for (_, hand, net) in &mut chunk {
                    let side = if *net == 0 { Side::Buy } else { Side::Sell };
                    hand.trade(side, 1).await?;
                    *net = 1 - *net;
                }
            }
            anyhow::Ok(
                chunk
                    .into_iter()
                    .map(|(i, _, n)| (i, n))
                    .collect::<Vec<(usize, i64)>>(),
            )
        });
    }
    let mut finals = vec![0i64; accounts.len()];
    while let Some(done) = tasks.join_next().await {
        for (i, n) in done?? {
            finals[i] = n;
        }
    }
    let placed = now_us();
    // The store caught up: every account's stored position is where its last trade left it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let caught_up = loop {
        let nets = stored_nets(&fleet).await?;
        let behind = accounts
            .iter()
            .zip(&finals)
            .filter(|(a, want)| {
                nets.get(&a.sub_account.to_string()).copied().unwrap_or(0) != **want
            })
            .count();
        if behind == 0 {
            break now_us();
        }
        if Instant::now() >= deadline {
            bail!(
                "{behind} accounts' stored positions are not their last trade's 120 s after the burst"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let used = fleet.cpu().since(&cpu_before);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen: Vec<i64> = observer
        .take()
        .into_iter()
        .map(|(at, _, _)| at)
        .filter(|at| *at >= start)
        .collect();
    drop(observer);
    let fills = accounts.len() * config.rounds;
    let (first, last) = (
        seen.first().copied().unwrap_or(start),
        seen.last().copied().unwrap_or(start),
    );
    let secs = |a: i64, b: i64| (b - a).max(1) as f64 / 1e6;
    let mut burst = Table::new(&[
        "fills",
        "placed in",
        "fills/s offered",
        "events published",
        "events/s (first → last event)",
        "store caught up after the last fill",
    ]);
    burst.row(vec![
        fills.to_string(),
        format!("{:.2} s", secs(start, placed)),
        format!("{:.0}", fills as f64 / secs(start, placed)),
        seen.len().to_string(),
        format!("{:.0}", seen.len() as f64 / secs(first, last)),
        format!("{:.0} ms", secs(placed, caught_up) * 1000.0),
    ]);
    burst.print(&format!(
        "Burst: {} accounts × {} trades, one hand per login ({logins} logins)",
        accounts.len(),
        config.rounds
    ));
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let n = seen.len().max(1) as f64;
    let mut cpu_table = Table::new(&["process", "CPU per event"]);
    for name in fleet.names().into_iter().chain(["postgres", "nats-server"]) {
        cpu_table.row(vec![
            name.into(),
            format!("{:.0} µs", used.of(name) * 1e6 / n),
        ]);
    }
    cpu_table.row(vec![
        "all".into(),
        format!("{:.0} µs", used.total() * 1e6 / n),
    ]);
    cpu_table.print(&format!(
        "CPU per published event during the burst, by process ({cores} cores; the simulator's \
         own work for the orders included)"
    ));
    let mut mem = Table::new(&["service", "peak RSS (VmHWM)"]);
    for (name, kib) in fleet.peak_rss() {
        mem.row(vec![name.to_string(), mib(kib)]);
    }
    mem.print("Peak resident memory");
    fleet.check_alive()?;
    fleet.finish().await;
    Ok(())
}
