//! Copy trading under load (issue 22): a leader trading by hand at the simulator (its broker's
//! REST under the leader's own login, as a person would) and N followers copying it in
//! automatic mode, through the real services as separate processes — `jt sim`, `jt connmgr`
//! (the leader's fills from the simulator's event socket to BROKER_EVENTS), `jt positions`,
//! `jt copier` (fills → one copy intent per follower on ORDERS) and `jt executor` (the
//! followers' orders at the simulator) — on JetStream (`NATS_URL`) and a fresh PostgreSQL
//! database on the server of `DATABASE_URL` (`make bench` starts both).
//!
//! Measured from the simulator's own clock: the leader fill's time (`timestampUs` of
//! `/sim/fills`) → the arrival of each follower's order (`receivedUs` of `/sim/orders`); per
//! leader fill the first and the last follower, p50/p99 over the fills. Where the time goes,
//! per fill, from timestamps on the way: the fill event published on BROKER_EVENTS (a core
//! subscriber in this process), the copy log rows the copier records before publishing each
//! follower's intent (`copy_log.created_at`), the intents the executor records
//! (`order_intents.created_at`, `sent_at`), then the orders at the simulator; CPU per leader
//! fill by process; the broker requests per follower copy (`/sim/requests`).
//!
//! Knobs: `JT_BENCH_FOLLOWERS` (comma-separated group sizes, default `20,200`; each group is
//! its own leader login and its own follower accounts), `JT_BENCH_FILLS` (leader fills per
//! group, default 20: buy 1 and sell 1 alternating, so followers enter and close),
//! `JT_BENCH_SPACING_MS` (between two leader trades; default 500 ms + 5 ms × N),
//! `JT_BENCH_ACCOUNTS_PER_LOGIN` (follower accounts to a simulator login, default 10: the
//! connection manager opens one socket per login, 3 s apart — DOMAIN §8's connect gate),
//! `JT_BENCH_EXECUTORS` (executor replicas, default 1), `JT_BENCH_BROKER_LATENCY_MS` (the
//! simulator's `latency` fault on every request, default 0), `JT_BENCH_KEEP_DB=1`.
//!
//! `scripts/test-services -- cargo bench -p jt --bench copy` (part of `make bench`). Results,
//! with the machine and the load, go to `docs/benchmarks.md` by hand.

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

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use jt_domain::Side;
use jt_store::repo::copy::FollowerSettings;
use rust_decimal::Decimal;

use crate::fleet::{Fleet, Hand, Observer, SimFill, SimOrder};
use crate::load::histogram;
use crate::report::{Table, max, mib, pct};

struct Config {
    groups: Vec<usize>,
    fills: usize,
    spacing_ms: Option<u64>,
    per_login: usize,
    executors: usize,
    broker_latency_ms: u64,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            groups: fleet::list("JT_BENCH_FOLLOWERS", "20,200")?,
            fills: fleet::var("JT_BENCH_FILLS", 20)?,
            spacing_ms: std::env::var("JT_BENCH_SPACING_MS")
                .ok()
                .map(|v| v.trim().parse())
                .transpose()
                .context("JT_BENCH_SPACING_MS")?,
            per_login: fleet::var("JT_BENCH_ACCOUNTS_PER_LOGIN", 10)?,
            executors: fleet::var("JT_BENCH_EXECUTORS", 1)?,
            broker_latency_ms: fleet::var("JT_BENCH_BROKER_LATENCY_MS", 0)?,
        })
    }

    fn spacing(&self, followers: usize) -> Duration {
        Duration::from_millis(
            self.spacing_ms
                .unwrap_or(500 + 5 * u64::try_from(followers).unwrap_or(u64::MAX / 8)),
        )
    }
}

/// One copy group: a leader on its own login and its followers.
struct Group {
    followers: usize,
    leader: seed::Account,
    /// Follower accounts, by simulator account name.
    accounts: Vec<seed::Account>,
}

fn main() -> anyhow::Result<()> {
    jt_runtime::tls::install_crypto_provider();
    let config = Config::from_env()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(Box::pin(run(&config)))
}

async fn run(config: &Config) -> anyhow::Result<()> {
    let mut fleet = Fleet::start("copy").await?;
    let owner = seed::user(&fleet.store).await?;
    let t = Instant::now();
    let mut groups = Vec::new();
    let mut subs = Vec::new();
    let mut logins = 0;
    for (g, n) in config.groups.iter().enumerate() {
        let leader_prefix = format!("lead{g}x");
        let leader =
            seed::accounts_named(&fleet.store, fleet.sim_addr, owner, &leader_prefix, 1, 1)
                .await?
                .remove(0);
        let prefix = format!("fol{g}x");
        let accounts = seed::accounts_named(
            &fleet.store,
            fleet.sim_addr,
            owner,
            &prefix,
            *n,
            config.per_login,
        )
        .await?;
        logins += 1 + n.div_ceil(config.per_login.max(1));
        subs.push(leader.sub_account);
        subs.extend(accounts.iter().map(|a| a.sub_account));
        let copying = fleet.store.copying();
        let row = copying
            .create_leader(
                owner,
                leader.sub_account,
                Some(format!("bench leader of {n}").as_str()),
                true,
            )
            .await?;
        for a in &accounts {
            copying
                .add_follower(
                    owner,
                    row.id,
                    a.sub_account,
                    FollowerSettings {
                        multiplier: Decimal::ONE,
                        ..FollowerSettings::default()
                    },
                )
                .await?;
        }
        groups.push(Group {
            followers: *n,
            leader,
            accounts,
        });
    }
    println!(
        "seeded {} copy groups ({} follower accounts) in {:.1} s",
        groups.len(),
        groups.iter().map(|g| g.followers).sum::<usize>(),
        t.elapsed().as_secs_f64()
    );

    // Consumers first, then the connection manager (whose sockets bring the fills).
    for i in 0..config.executors.max(1) {
        let name: &'static str = if i == 0 { "executor" } else { "executor-2" };
        fleet.spawn(name, "executor", &[]).await?;
    }
    fleet.spawn("positions", "positions", &[]).await?;
    fleet.spawn("copier", "copier", &[]).await?;
    fleet
        .spawn(
            "connmgr",
            "connmgr",
            &[
                // The benchmark's logins connect at once (a fleet spreads them over 30 s).
                ("JT_BROKER_START_STAGGER_SECS", "0".into()),
                ("JT_CONNMGR_SCAN_MS", "500".into()),
            ],
        )
        .await?;
    fleet
        .wait_sockets(owner, &subs, fleet::connect_time(logins))
        .await?;
    if config.broker_latency_ms > 0 {
        let fault = serde_json::json!({"kind": "latency", "ms": config.broker_latency_ms});
        http::call_ok(
            fleet.sim_addr,
            "POST",
            "/sim/faults",
            fault.to_string().as_bytes(),
        )
        .await?;
    }
    let access = fleet::access(&fleet);

    let mut latency = Table::new(&[
        "followers",
        "leader fills",
        "spacing",
        "first follower p50",
        "first p99",
        "last follower p50",
        "last p99",
        "last max",
        "missing",
        "overlapped",
    ]);
    let mut stages = Table::new(&[
        "followers",
        "stage (from the leader's fill)",
        "first p50",
        "first p99",
        "last p50",
        "last p99",
    ]);
    let mut cpu_table = Table::new(&[
        "followers",
        "executor",
        "copier",
        "connmgr",
        "positions",
        "postgres",
        "nats-server",
        "sim",
        "all",
        "all ÷ cores",
    ]);
    let mut calls = Table::new(&["followers", "request", "count", "per follower copy"]);
    let mut outcomes = Table::new(&["followers", "copy log status", "rows"]);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);

    for group in &groups {
        let mut hand = Hand::new(
            &access,
            &fleet.store,
            owner,
            group.leader.sub_account,
            "MNQ",
        )
        .await?;
        let spacing = config.spacing(group.followers);
        // Warm-up, not measured: every follower login signs in at the executor, contracts
        // are resolved and cached.
        let warm = trade(&mut fleet, &mut hand, group, 2, spacing).await?;
        println!(
            "warm-up: {} leader fills to {} followers, {} follower orders missing",
            warm.fills.len(),
            group.followers,
            warm.missing
        );
        fleet.reset_sim_requests().await?;
        let cpu_before = fleet.cpu();
        let r = trade(&mut fleet, &mut hand, group, config.fills, spacing).await?;
        let used = fleet.cpu().since(&cpu_before);
        let requests = fleet.sim_requests().await?;
        fleet.check_alive()?;

        latency.row(vec![
            group.followers.to_string(),
            r.fills.len().to_string(),
            format!("{} ms", spacing.as_millis()),
            pct(&r.first, 50.0),
            pct(&r.first, 99.0),
            pct(&r.last, 50.0),
            pct(&r.last, 99.0),
            max(&r.last),
            r.missing.to_string(),
            r.overlapped.to_string(),
        ]);
        let breakdown = stages_of(&fleet, group, &r).await?;
        for (name, first, last) in &breakdown {
            stages.row(vec![
                group.followers.to_string(),
                (*name).to_string(),
                pct(first, 50.0),
                pct(first, 99.0),
                pct(last, 50.0),
                pct(last, 99.0),
            ]);
        }
        let fills = r.fills.len().max(1) as f64;
        let per_fill = |secs: f64| format!("{:.1} ms", secs * 1000.0 / fills);
        cpu_table.row(vec![
            group.followers.to_string(),
            per_fill(used.of("executor") + used.of("executor-2")),
            per_fill(used.of("copier")),
            per_fill(used.of("connmgr")),
            per_fill(used.of("positions")),
            per_fill(used.of("postgres")),
            per_fill(used.of("nats-server")),
            per_fill(used.of("sim")),
            per_fill(used.total()),
            per_fill(used.total() / cores as f64),
        ]);
        let copies = (r.fills.len() * group.followers).max(1) as f64;
        let mut by_name: BTreeMap<&String, &u64> = requests.iter().collect();
        by_name.retain(|_, n| **n > 0);
        for (name, n) in by_name {
            calls.row(vec![
                group.followers.to_string(),
                name.clone(),
                n.to_string(),
                format!("{:.2}", *n as f64 / copies),
            ]);
        }
        for (status, n) in copy_statuses(&fleet, group).await? {
            outcomes.row(vec![group.followers.to_string(), status, n.to_string()]);
        }
    }

    latency.print(&format!(
        "Leader fill → follower orders at the simulator (broker latency {} ms; the simulator's \
         own clock: the fill's time → each follower order's arrival)",
        config.broker_latency_ms
    ));
    stages.print(
        "Where the time goes, per leader fill (from the fill's time at the simulator; \"first\" \
         and \"last\" over the followers)",
    );
    cpu_table.print(&format!(
        "CPU per leader fill by process, over the measured fills ({cores} cores; `all ÷ cores` \
         is the shortest time the machine can do one fill's work in)"
    ));
    calls.print(
        "Broker requests at the simulator during the measured fills (the leader's own included)",
    );
    outcomes.print("Copy log rows by status (warm-up included)");
    let mut mem = Table::new(&["service", "peak RSS (VmHWM)"]);
    for (name, kib) in fleet.peak_rss() {
        mem.row(vec![name.to_string(), mib(kib)]);
    }
    mem.print("Peak resident memory");
    fleet.finish().await;
    Ok(())
}

/// What one run of leader trades saw.
struct Traded {
    /// The leader's fills of the run, in order.
    fills: Vec<SimFill>,
    /// When each fill's event was seen on BROKER_EVENTS (µs), when it was.
    published: Vec<Option<i64>>,
    /// Per fill, per follower (index into the group's accounts): its order's arrival (µs).
    orders: Vec<Vec<Option<i64>>>,
    /// Fill → first follower order, µs.
    first: Histogram<u64>,
    /// Fill → last follower order, µs.
    last: Histogram<u64>,
    /// (fill, follower) pairs without an order after the drain.
    missing: usize,
    /// Fills whose last follower order arrived after the next leader fill.
    overlapped: usize,
}

/// The leader trades `fills` times, `spacing` apart (buy 1, sell 1, …), then waits up to
/// 60 s for every follower's order of every fill and measures.
async fn trade(
    fleet: &mut Fleet,
    hand: &mut Hand,
    group: &Group,
    fills: usize,
    spacing: Duration,
) -> anyhow::Result<Traded> {
    let leader_sub = group.leader.sub_account.to_string();
    let observer = Observer::start(fleet, |s| Ok(s.broker_event(&leader_sub, "fill")?)).await?;
    let begin = fleet::now_us();
    let start = Instant::now();
    for i in 0..fills {
        tokio::time::sleep_until((start + spacing * u32::try_from(i)?).into()).await;
        let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
        hand.trade(side, 1).await?;
    }
    let account_index: HashMap<&str, usize> = group
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (leader_fills, per_account) = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        fleet.check_alive()?;
        let mut leader_fills: Vec<SimFill> = fleet
            .sim_fills(&group.leader.name)
            .await?
            .into_iter()
            .filter(|f| f.timestamp_us >= begin)
            .collect();
        leader_fills.sort_by_key(|f| f.id);
        let orders = fleet.sim_orders().await?;
        let mut per_account: Vec<Vec<SimOrder>> = vec![Vec::new(); group.accounts.len()];
        for o in orders {
            if let Some(&i) = account_index.get(o.account.as_str())
                && o.parent_id.is_none()
                && o.received_us >= begin
            {
                per_account[i].push(o);
            }
        }
        for list in &mut per_account {
            list.sort_by_key(|o| o.id);
        }
        let complete = leader_fills.len() >= fills
            && per_account.iter().all(|l| l.len() >= leader_fills.len());
        if complete || Instant::now() >= deadline {
            break (leader_fills, per_account);
        }
    };
    let published: Vec<i64> = observer.take().into_iter().map(|(at, _, _)| at).collect();
    drop(observer);

    // Orders of one follower are serial and in the leader's fill order (one copy intent per
    // fill, executed one at a time per account): when an account has exactly one order per
    // fill the k-th belongs to the k-th fill; otherwise an order belongs to the last fill
    // made before it arrived.
    let mut orders = vec![vec![None; group.accounts.len()]; leader_fills.len()];
    for (a, list) in per_account.iter().enumerate() {
        if list.len() == leader_fills.len() {
            for (k, o) in list.iter().enumerate() {
                orders[k][a] = Some(o.received_us);
            }
        } else {
            for o in list {
                let k = leader_fills
                    .partition_point(|f| f.timestamp_us <= o.received_us)
                    .saturating_sub(1);
                if let Some(slot) = orders.get_mut(k).and_then(|row| row.get_mut(a))
                    && slot.is_none()
                {
                    *slot = Some(o.received_us);
                }
            }
        }
    }
    let mut first = histogram()?;
    let mut last = histogram()?;
    let mut missing = 0;
    let mut overlapped = 0;
    for (k, f) in leader_fills.iter().enumerate() {
        let arrived: Vec<i64> = orders[k].iter().flatten().copied().collect();
        missing += group.accounts.len() - arrived.len();
        let us = |t: i64| u64::try_from(t - f.timestamp_us).unwrap_or(0).max(1);
        if let (Some(min), Some(max)) = (arrived.iter().min(), arrived.iter().max()) {
            first.record(us(*min))?;
            last.record(us(*max))?;
            if leader_fills
                .get(k + 1)
                .is_some_and(|next| *max > next.timestamp_us)
            {
                overlapped += 1;
            }
        }
    }
    let published = (0..leader_fills.len())
        .map(|k| published.get(k).copied())
        .collect();
    Ok(Traded {
        fills: leader_fills,
        published,
        orders,
        first,
        last,
        missing,
        overlapped,
    })
}

/// Per stage, the first and the last follower's time from the leader's fill, over the run's
/// fills: the fill on BROKER_EVENTS (one per fill: first = last), the copy log rows (copier),
/// the intents recorded and sent (executor), the orders at the simulator.
async fn stages_of(
    fleet: &Fleet,
    group: &Group,
    r: &Traded,
) -> anyhow::Result<Vec<(&'static str, Histogram<u64>, Histogram<u64>)>> {
    let fill_ids: HashMap<String, usize> = r
        .fills
        .iter()
        .enumerate()
        .map(|(k, f)| (f.id.to_string(), k))
        .collect();
    let rows = fleet
        .query(&format!(
            "SELECT c.leader_fill_id, \
                    (EXTRACT(EPOCH FROM c.created_at) * 1000000)::bigint, \
                    (EXTRACT(EPOCH FROM i.created_at) * 1000000)::bigint, \
                    (EXTRACT(EPOCH FROM i.sent_at) * 1000000)::bigint \
             FROM copy_log c \
             JOIN leaders l ON l.id = c.leader_id \
             LEFT JOIN order_intents i ON i.id = c.follower_intent_id \
             WHERE l.sub_account_id = '{}'",
            group.leader.sub_account
        ))
        .await?;
    // Per fill: the copy rows', intents' and sends' times.
    let mut per_fill: Vec<[Vec<i64>; 3]> =
        vec![[Vec::new(), Vec::new(), Vec::new()]; r.fills.len()];
    let mut unmatched = 0;
    for row in rows {
        let fill: Option<String> = row.try_get_by_index(0)?;
        let Some(&k) = fill.as_deref().and_then(|f| fill_ids.get(f)) else {
            unmatched += 1;
            continue;
        };
        for (stage, column) in [(0, 1), (1, 2), (2, 3)] {
            let at: Option<i64> = row.try_get_by_index(column)?;
            if let Some(at) = at {
                per_fill[k][stage].push(at);
            }
        }
    }
    if per_fill.iter().all(|s| s[0].is_empty()) && !r.fills.is_empty() {
        println!(
            "  note: no copy log row names the measured fills by the simulator's fill id \
             ({unmatched} rows of other fills)"
        );
    }
    let mut out = Vec::new();
    let mut published_h = histogram()?;
    for (k, f) in r.fills.iter().enumerate() {
        if let Some(Some(at)) = r.published.get(k) {
            published_h.record(u64::try_from(at - f.timestamp_us).unwrap_or(0).max(1))?;
        }
    }
    out.push((
        "fill event on BROKER_EVENTS (connmgr)",
        published_h.clone(),
        published_h,
    ));
    for (stage, name) in [
        (0, "copy log row recorded (copier)"),
        (1, "intent recorded (executor)"),
        (2, "intent sent to the broker (executor)"),
    ] {
        let (mut first, mut last) = (histogram()?, histogram()?);
        for (k, f) in r.fills.iter().enumerate() {
            let times = &per_fill[k][stage];
            let us = |t: i64| u64::try_from(t - f.timestamp_us).unwrap_or(0).max(1);
            if let (Some(min), Some(max)) = (times.iter().min(), times.iter().max()) {
                first.record(us(*min))?;
                last.record(us(*max))?;
            }
        }
        out.push((name, first, last));
    }
    let (mut first, mut last) = (histogram()?, histogram()?);
    for (k, f) in r.fills.iter().enumerate() {
        let arrived: Vec<i64> = r.orders[k].iter().flatten().copied().collect();
        let us = |t: i64| u64::try_from(t - f.timestamp_us).unwrap_or(0).max(1);
        if let (Some(min), Some(max)) = (arrived.iter().min(), arrived.iter().max()) {
            first.record(us(*min))?;
            last.record(us(*max))?;
        }
    }
    out.push(("order at the simulator", first, last));
    Ok(out)
}

/// The group's copy log rows by status (with the reason of the first row of each kind that
/// was not copied).
async fn copy_statuses(fleet: &Fleet, group: &Group) -> anyhow::Result<Vec<(String, i64)>> {
    let rows = fleet
        .query(&format!(
            "SELECT c.status::text, COUNT(*), MIN(c.error) FROM copy_log c \
             JOIN leaders l ON l.id = c.leader_id \
             WHERE l.sub_account_id = '{}' GROUP BY c.status ORDER BY c.status",
            group.leader.sub_account
        ))
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let status: String = row.try_get_by_index(0)?;
        let n: i64 = row.try_get_by_index(1)?;
        let error: Option<String> = row.try_get_by_index(2)?;
        out.push((
            match error {
                Some(e) if status != "filled" && status != "accepted" => format!("{status} ({e})"),
                _ => status,
            },
            n,
        ));
    }
    Ok(out)
}
