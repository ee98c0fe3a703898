//! The signal pipeline under load (issue 8): the real services as separate processes — `jt sim`,
//! `jt ingest`, `jt executor` — on JetStream (`NATS_URL`) and a fresh PostgreSQL database on the
//! server of `DATABASE_URL` (`make bench` starts both), driven over HTTP by a load generator in
//! this process.
//!
//! Scenarios (`JT_BENCH_SCENARIOS`, comma-separated, default all, in this order):
//!
//! - `floor`: a trivial axum server (this binary re-executed) answering 200 with no work, at
//!   64 connections back to back: the most HTTP this machine serves.
//! - `orders`: one recorder with T traders (`JT_BENCH_TRADERS`, default `1,50,500`), each on
//!   its own simulator account (`JT_BENCH_ACCOUNTS_PER_LOGIN` accounts to a login, default 5),
//!   entries with a bracket and closes alternating, one alert every `JT_BENCH_SPACING_MS`
//!   (default: 100 ms + 4 ms × T); `JT_BENCH_ALERTS` alerts per T (default 40). Reports ingest
//!   answer latency, alert → first order and alert → last order at the simulator.
//! - `ingest`: alerts at `JT_BENCH_RATE`/s (default 500) for `JT_BENCH_INGEST_SECS` (default
//!   10) on 16 connections over `JT_BENCH_RECORDERS` recorders without traders (default 1000),
//!   open loop, with the executor running, then again with the executor stopped.
//! - `throughput`: 64 connections (`JT_BENCH_CONNECTIONS`) back to back for
//!   `JT_BENCH_THROUGHPUT_SECS` (default 10) over the same recorders, executor stopped; then an
//!   open-loop sweep (`JT_BENCH_SWEEP`, alerts/s, default `5000,10000,15000,20000,25000`,
//!   `JT_BENCH_STEP_SECS` each, default 4) to find where latency degrades.
//!
//! `JT_BENCH_KEEP_DB=1` keeps the database for inspection. `JT_BENCH_BROKER_LATENCY_MS`
//! (default 0) adds the simulator's `latency` fault to every
//! broker request. Peak RSS (`VmHWM`) of every service is read after each scenario, and the
//! orders scenario reports CPU per alert by process (the services, nats-server, postgres).
//!
//! `scripts/test-services -- cargo bench -p jt --bench pipeline` (part of `make bench`).
//! Results, with the machine and versions, go to `docs/benchmarks.md` by hand.

mod cpu;
mod http;
mod load;
mod orders;
mod procs;
mod report;
mod seed;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jt_store::{SecretKey, Store, StoreConfig};

use crate::load::{LoadResult, Requests};
use crate::orders::Kind;
use crate::procs::Service;
use crate::report::{Table, max, mib, pct};

/// Set (to a listen address) when this binary is re-executed as the floor server.
const FLOOR_ENV: &str = "JT_BENCH_FLOOR_ADDR";

struct Config {
    scenarios: Vec<String>,
    traders: Vec<usize>,
    alerts: usize,
    spacing_ms: Option<u64>,
    per_login: usize,
    broker_latency_ms: u64,
    rate: f64,
    ingest_secs: u64,
    recorders: usize,
    connections: usize,
    throughput_secs: u64,
    sweep: Vec<f64>,
    step_secs: u64,
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not valid")),
        _ => Ok(default),
    }
}

fn list<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<Vec<T>> {
    let raw = std::env::var(name).unwrap_or_else(|_| default.to_string());
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| anyhow::anyhow!("{name}: {s:?} is not valid"))
        })
        .collect()
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            scenarios: list("JT_BENCH_SCENARIOS", "floor,orders,ingest,throughput")?,
            traders: list("JT_BENCH_TRADERS", "1,50,500")?,
            alerts: var("JT_BENCH_ALERTS", 40)?,
            spacing_ms: std::env::var("JT_BENCH_SPACING_MS")
                .ok()
                .map(|v| v.trim().parse())
                .transpose()
                .context("JT_BENCH_SPACING_MS")?,
            per_login: var("JT_BENCH_ACCOUNTS_PER_LOGIN", 5)?,
            broker_latency_ms: var("JT_BENCH_BROKER_LATENCY_MS", 0)?,
            rate: var("JT_BENCH_RATE", 500.0)?,
            ingest_secs: var("JT_BENCH_INGEST_SECS", 10)?,
            recorders: var("JT_BENCH_RECORDERS", 1000)?,
            connections: var("JT_BENCH_CONNECTIONS", 64)?,
            throughput_secs: var("JT_BENCH_THROUGHPUT_SECS", 10)?,
            sweep: list("JT_BENCH_SWEEP", "5000,10000,15000,20000,25000")?,
            step_secs: var("JT_BENCH_STEP_SECS", 4)?,
        })
    }

    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }

    fn spacing(&self, traders: usize) -> Duration {
        Duration::from_millis(
            self.spacing_ms
                .unwrap_or(100 + 4 * u64::try_from(traders).unwrap_or(u64::MAX / 8)),
        )
    }
}

fn main() -> anyhow::Result<()> {
    if let Ok(addr) = std::env::var(FLOOR_ENV) {
        return floor_server(addr.parse().context(FLOOR_ENV)?);
    }
    let config = Config::from_env()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(&config))
}

/// The floor: axum answering every webhook with a fixed 200 and no work.
fn floor_server(addr: SocketAddr) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let app = axum::Router::new().route(
                "/webhook/{token}",
                axum::routing::post(|_body: axum::body::Bytes| async {
                    (
                        [("content-type", "application/json")],
                        r#"{"status":"queued","signal_id":"00000000-0000-0000-0000-000000000000"}"#,
                    )
                }),
            );
            let listener = tokio::net::TcpListener::bind(addr).await?;
            axum::serve(listener, app).await?;
            anyhow::Ok(())
        })
}

fn jt_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_jt"))
}

/// Peak RSS (KiB) of one service, by name; `None` when it could not be read.
type PeakRss = (String, Option<u64>);

/// Peak RSS of each running service, after a scenario.
struct Memory {
    rows: Vec<(String, Vec<PeakRss>)>,
}

impl Memory {
    fn read(&mut self, after: &str, services: &[&Service]) {
        self.rows.push((
            after.to_string(),
            services
                .iter()
                .map(|s| (s.name.to_string(), s.peak_rss_kib()))
                .collect(),
        ));
    }
}

async fn run(config: &Config) -> anyhow::Result<()> {
    let logs = tempdir()?;
    println!(
        "signal pipeline benchmark; service logs in {}",
        logs.display()
    );
    let mut memory = Memory { rows: Vec::new() };

    if config.wants("floor") {
        floor(config, &logs).await?;
    }
    if !(config.wants("orders") || config.wants("ingest") || config.wants("throughput")) {
        return Ok(());
    }

    let nats_url = jt_testkit::nats::nats_url();
    let database = jt_testkit::TestDatabase::create().await;
    let key = SecretKey::generate();
    let store = Store::connect(&StoreConfig::new(database.url()).with_secret_key(key.clone()))
        .await
        .context("connecting to the benchmark's database")?;
    store.migrate().await.context("migrating")?;

    let sim_addr = procs::free_addr()?;
    let ingest_addr = procs::free_addr()?;
    let executor_addr = procs::free_addr()?;
    let jt = jt_binary();
    let mut sim = Service::start(
        "sim",
        &jt,
        &["sim", "--listen", &sim_addr.to_string()],
        &[],
        &logs,
    )?;
    procs::wait_ready(&mut sim, sim_addr, "/sim/health", Duration::from_secs(30)).await?;
    let common = vec![
        ("NATS_URL", nats_url.clone()),
        ("DATABASE_URL", database.url().to_string()),
    ];
    let mut ingest_env = common.clone();
    ingest_env.extend([
        ("JT_HTTP_ADDR", ingest_addr.to_string()),
        // The per-recorder limit stays in the path (checked on every request) but high enough
        // that the load is never refused for it.
        ("JT_INGEST_RATE_PER_SEC", "1000000".to_string()),
        ("JT_INGEST_RATE_BURST", "1000000".to_string()),
    ]);
    let mut ingest = Service::start("ingest", &jt, &["ingest"], &ingest_env, &logs)?;
    let mut executor_env = common.clone();
    executor_env.extend([
        ("JT_HTTP_ADDR", executor_addr.to_string()),
        ("JT_SECRET_KEY", key.to_hex()),
        ("JT_SIM_URL", format!("http://{sim_addr}")),
    ]);
    let mut executor = Service::start("executor", &jt, &["executor"], &executor_env, &logs)?;
    procs::wait_ready(&mut ingest, ingest_addr, "/readyz", Duration::from_secs(60)).await?;
    procs::wait_ready(
        &mut executor,
        executor_addr,
        "/readyz",
        Duration::from_secs(60),
    )
    .await?;
    memory.read("start", &[&sim, &ingest, &executor]);

    if config.broker_latency_ms > 0 {
        let fault = serde_json::json!({"kind": "latency", "ms": config.broker_latency_ms});
        http::call_ok(
            sim_addr,
            "POST",
            "/sim/faults",
            fault.to_string().as_bytes(),
        )
        .await?;
    }

    let owner = seed::user(&store).await?;
    if config.wants("orders") {
        orders_scenarios(
            config,
            &store,
            owner,
            sim_addr,
            ingest_addr,
            &mut [&mut sim, &mut ingest, &mut executor],
            &mut memory,
        )
        .await?;
    }

    let wants_ingest = config.wants("ingest") || config.wants("throughput");
    let tokens = if wants_ingest {
        let t = std::time::Instant::now();
        let tokens = Arc::new(seed::bare_recorders(&store, owner, config.recorders).await?);
        println!(
            "seeded {} recorders without traders in {:.1} s",
            tokens.len(),
            t.elapsed().as_secs_f64()
        );
        tokens
    } else {
        Arc::new(Vec::new())
    };
    let mut ingest_table = Table::new(&[
        "scenario",
        "alerts/s offered",
        "alerts/s answered",
        "p50",
        "p99",
        "p99.9",
        "max",
        "non-200",
        "sender late p99",
    ]);
    if config.wants("ingest") {
        let result = ingest_rate(config, ingest_addr, &tokens, config.rate).await?;
        ingest_row(
            &mut ingest_table,
            "open loop, executor running",
            config.rate,
            &result,
        );
        check(&mut [&mut sim, &mut ingest, &mut executor])?;
        memory.read("ingest (executor running)", &[&sim, &ingest, &executor]);
    }
    // Measure the ingest alone from here: the executor cannot drain 20,000 signals/s on this
    // machine and would take the CPU the ingest is measured on.
    memory.read("before stopping the executor", &[&executor]);
    executor.stop(Duration::from_secs(25));
    if config.wants("ingest") {
        let result = ingest_rate(config, ingest_addr, &tokens, config.rate).await?;
        ingest_row(
            &mut ingest_table,
            "open loop, executor stopped",
            config.rate,
            &result,
        );
        check(&mut [&mut sim, &mut ingest])?;
        memory.read("ingest (executor stopped)", &[&ingest]);
    }
    if config.wants("throughput") {
        let requests = webhook_requests(&tokens);
        let result = load::closed_loop(
            ingest_addr,
            config.connections,
            Duration::from_secs(2),
            Duration::from_secs(config.throughput_secs),
            requests,
        )
        .await?;
        ingest_row(
            &mut ingest_table,
            &format!("closed loop, {} connections", config.connections),
            f64::NAN,
            &result,
        );
        check(&mut [&mut sim, &mut ingest])?;
        for rate in &config.sweep {
            let requests = webhook_requests(&tokens);
            let result = load::open_loop(
                ingest_addr,
                config.connections,
                *rate,
                Duration::from_secs(config.step_secs),
                requests,
            )
            .await?;
            ingest_row(
                &mut ingest_table,
                &format!("open loop, {} connections", config.connections),
                *rate,
                &result,
            );
            check(&mut [&mut sim, &mut ingest])?;
        }
        memory.read("throughput", &[&ingest]);
    }
    if wants_ingest {
        ingest_table.print("Ingest answer latency (POST /webhook → 200 after the PubAck)");
    }

    let mut mem = Table::new(&["after", "service", "peak RSS (VmHWM)"]);
    for (after, services) in &memory.rows {
        for (name, kib) in services {
            mem.row(vec![after.clone(), name.clone(), mib(*kib)]);
        }
    }
    mem.print("Peak resident memory of the service processes");

    drop(executor);
    drop(ingest);
    drop(sim);
    store.close().await.ok();
    if std::env::var_os("JT_BENCH_KEEP_DB").is_some() {
        // For looking at the database afterwards (statistics, rows): not dropped.
        println!("database kept: {}", database.url());
        std::mem::forget(database);
    } else {
        drop(database);
    }
    Ok(())
}

fn check(services: &mut [&mut Service]) -> anyhow::Result<()> {
    for s in services.iter_mut() {
        s.check_alive()?;
    }
    Ok(())
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "jt-bench-pipeline-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn floor(config: &Config, logs: &Path) -> anyhow::Result<()> {
    let addr = procs::free_addr()?;
    let exe = std::env::current_exe()?;
    let mut server = Service::start("floor", &exe, &[], &[(FLOOR_ENV, addr.to_string())], logs)?;
    // The floor server has no readiness route: wait until it accepts connections.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        server.check_alive()?;
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the floor server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tokens = Arc::new(vec!["floor".to_string()]);
    let result = load::closed_loop(
        addr,
        config.connections,
        Duration::from_secs(2),
        Duration::from_secs(config.throughput_secs),
        webhook_requests(&tokens),
    )
    .await?;
    let mut table = Table::new(&[
        "server",
        "connections",
        "answers/s",
        "p50",
        "p99",
        "max",
        "peak RSS",
    ]);
    table.row(vec![
        "axum, fixed 200, no work".into(),
        config.connections.to_string(),
        format!("{:.0}", result.per_second()),
        pct(&result.latency, 50.0),
        pct(&result.latency, 99.0),
        max(&result.latency),
        mib(server.peak_rss_kib()),
    ]);
    table.print("Floor: the same load generator against a trivial axum server");
    server.stop(Duration::from_secs(5));
    Ok(())
}

/// Alert `n` to recorder `n % recorders`; every body distinct (a `comment` with `n`), without
/// `time` — the ingest's heavier path (de-duplication guard, then the signal).
fn webhook_requests(tokens: &Arc<Vec<String>>) -> Requests {
    let tokens = tokens.clone();
    let run = uuid::Uuid::new_v4().simple().to_string();
    Arc::new(move |n: u64| {
        let token = &tokens[usize::try_from(n).unwrap_or(0) % tokens.len()];
        (
            format!("/webhook/{token}"),
            format!(
                r#"{{"action":"buy","ticker":"MNQ1!","contracts":1,"price":21000.25,"position":"long","comment":"{run} {n}"}}"#
            )
            .into_bytes(),
        )
    })
}

async fn ingest_rate(
    config: &Config,
    ingest: SocketAddr,
    tokens: &Arc<Vec<String>>,
    rate: f64,
) -> anyhow::Result<LoadResult> {
    load::open_loop(
        ingest,
        16,
        rate,
        Duration::from_secs(config.ingest_secs),
        webhook_requests(tokens),
    )
    .await
}

fn ingest_row(table: &mut Table, scenario: &str, offered: f64, r: &LoadResult) {
    table.row(vec![
        scenario.to_string(),
        if offered.is_nan() {
            "-".into()
        } else {
            format!("{offered:.0}")
        },
        format!("{:.0}", r.per_second()),
        pct(&r.latency, 50.0),
        pct(&r.latency, 99.0),
        pct(&r.latency, 99.9),
        max(&r.latency),
        r.not_ok().to_string(),
        if r.lateness.is_empty() {
            "-".into()
        } else {
            pct(&r.lateness, 99.0)
        },
    ]);
}

async fn orders_scenarios(
    config: &Config,
    store: &Store,
    owner: jt_store::UserId,
    sim: SocketAddr,
    ingest: SocketAddr,
    services: &mut [&mut Service; 3],
    memory: &mut Memory,
) -> anyhow::Result<()> {
    let most = config.traders.iter().copied().max().unwrap_or(1);
    let t = std::time::Instant::now();
    let accounts = seed::accounts(store, sim, owner, most, config.per_login).await?;
    let mut recorders = Vec::new();
    for traders in &config.traders {
        recorders.push(
            seed::recorder(
                store,
                owner,
                format!("bench T={traders}"),
                seed::bracket_settings(),
                &accounts[..*traders],
            )
            .await?,
        );
    }
    println!(
        "seeded {} simulator accounts on {} logins and {} recorders in {:.1} s",
        accounts.len(),
        most.div_ceil(config.per_login.max(1)),
        recorders.len(),
        t.elapsed().as_secs_f64()
    );
    let price = orders::sim_price(sim, "MNQ").await?;

    // Warm-up on the largest recorder: every broker login signs in, contracts and accounts
    // are cached; not measured.
    if let Some(largest) = config
        .traders
        .iter()
        .position(|t| *t == most)
        .map(|i| &recorders[i])
    {
        let warm = orders::run(
            ingest,
            sim,
            largest,
            2,
            config.spacing(most) * 2,
            Duration::from_secs(60),
            &price,
        )
        .await?;
        println!(
            "warm-up: {} alerts to T={most}, {} orders missing",
            warm.alerts, warm.missing
        );
    }

    let mut table = Table::new(&[
        "T",
        "alerts",
        "spacing",
        "ingest p50",
        "ingest p99",
        "ingest max",
        "first order p50",
        "first order p99",
        "last order p50",
        "last order p99",
        "last order max",
        "missing",
        "overlapped",
    ]);
    let mut entries = Table::new(&[
        "T",
        "kind",
        "first p50",
        "first p99",
        "last p50",
        "last p99",
        "last max",
    ]);
    let mut cpu_table = Table::new(&[
        "T",
        "executor",
        "postgres",
        "nats-server",
        "sim",
        "ingest",
        "all",
        "all ÷ cores",
    ]);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut matched = Vec::new();
    for (traders, recorder) in config.traders.iter().zip(&recorders) {
        let spacing = config.spacing(*traders);
        let cpu_before = {
            let [sim, ingest, executor] = &*services;
            cpu::CpuTimes::read(&[&**sim, &**ingest, &**executor])
        };
        let r = orders::run(
            ingest,
            sim,
            recorder,
            config.alerts,
            spacing,
            Duration::from_secs(60),
            &price,
        )
        .await?;
        for s in services.iter_mut() {
            s.check_alive()?;
        }
        let used = {
            let [sim, ingest, executor] = &*services;
            cpu::CpuTimes::read(&[&**sim, &**ingest, &**executor]).since(&cpu_before)
        };
        let per_alert = |secs: f64| format!("{:.1} ms", secs * 1000.0 / r.alerts.max(1) as f64);
        cpu_table.row(vec![
            r.traders.to_string(),
            per_alert(used.of("executor")),
            per_alert(used.of("postgres")),
            per_alert(used.of("nats-server")),
            per_alert(used.of("sim")),
            per_alert(used.of("ingest")),
            per_alert(used.total()),
            per_alert(used.total() / cores as f64),
        ]);
        let first = orders::OrdersResult::all(&r.first)?;
        let last = orders::OrdersResult::all(&r.last)?;
        table.row(vec![
            r.traders.to_string(),
            r.alerts.to_string(),
            format!("{} ms", spacing.as_millis()),
            pct(&r.ingest, 50.0),
            pct(&r.ingest, 99.0),
            max(&r.ingest),
            pct(&first, 50.0),
            pct(&first, 99.0),
            pct(&last, 50.0),
            pct(&last, 99.0),
            max(&last),
            r.missing.to_string(),
            r.overlapped.to_string(),
        ]);
        for (kind, name) in [(Kind::Entry, "entry + bracket"), (Kind::Close, "close")] {
            if let (Some(f), Some(l)) = (r.first.get(&kind), r.last.get(&kind)) {
                entries.row(vec![
                    r.traders.to_string(),
                    name.into(),
                    pct(f, 50.0),
                    pct(f, 99.0),
                    pct(l, 50.0),
                    pct(l, 99.0),
                    max(l),
                ]);
            }
        }
        matched.push((r.traders, r.by_client_id, r.by_sequence, r.by_window));
        let [sim, ingest, executor] = services;
        memory.read(
            &format!("orders T={traders}"),
            &[&**sim, &**ingest, &**executor],
        );
    }
    table.print(&format!(
        "Alert → orders at the simulator (broker latency {} ms; entries with a bracket and closes alternating)",
        config.broker_latency_ms
    ));
    entries.print("The same, by alert kind");
    cpu_table.print(&format!(
        "CPU per alert by process, over each T's alerts ({cores} cores; `all ÷ cores` is the \
         shortest time the machine can do one alert's work in)"
    ));
    for (t, by_id, by_sequence, by_window) in matched {
        println!(
            "  T={t}: orders matched to alerts by client order id {by_id}, by order sequence \
             {by_sequence}, by time {by_window}"
        );
    }
    Ok(())
}
