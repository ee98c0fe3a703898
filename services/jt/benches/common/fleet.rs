//! The platform as processes for the copy and risk benchmarks (issues 22 and 23): a fresh
//! PostgreSQL database on the server of `DATABASE_URL`, `jt sim`, and the services a benchmark
//! names (`jt connmgr`, `jt positions`, `jt executor`, `jt copier`, `jt risk`), each its own
//! process on JetStream (`NATS_URL`) — and what both benchmarks need around them: a person
//! trading at the simulator through the broker's REST (not through the platform), the
//! simulator's sockets, SQL reads of the benchmark's database, and an observer of core NATS
//! subjects that timestamps what the services publish.
//!
//! The pipeline benchmark's modules (`procs`, `http`, `cpu`, `seed`, `report`) are shared, not
//! copied: each benchmark includes them with `#[path]`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use jt_broker::{AccountId, Broker, Contract};
use jt_domain::Side;
use jt_domain::order::{OrderKind, OrderRequest};
use jt_store::{SecretKey, Store, StoreConfig, SubAccountId, UserId};
use sea_orm::{ConnectionTrait as _, Statement};
use serde::Deserialize;

use crate::cpu::CpuTimes;
use crate::http;
use crate::procs::{self, Service};

/// Microseconds since the epoch, the simulator's clock (same machine).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// A whole-number setting from the environment, or `default`.
pub fn var<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not valid")),
        _ => Ok(default),
    }
}

/// A comma-separated list from the environment, or `default`.
pub fn list<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<Vec<T>> {
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

/// How long a connection manager may take to open `logins` sockets: its connect gate starts
/// one attempt every 3 s (DOMAIN §8), plus a minute.
pub fn connect_time(logins: usize) -> Duration {
    Duration::from_secs(60 + 4 * u64::try_from(logins).unwrap_or(u64::MAX / 8))
}

/// A service process with its listener (health, readiness, metrics, its own routes).
pub struct Running {
    /// The process.
    pub service: Service,
    /// Its `JT_HTTP_ADDR`.
    pub addr: SocketAddr,
}

/// The database, the simulator and the services of one benchmark run.
pub struct Fleet {
    /// Where every process writes its log.
    pub logs: PathBuf,
    /// The benchmark's own handle on the database (seeding, reading timestamps).
    pub store: Store,
    /// The key that opens the stored broker credentials (every service gets it).
    pub key: SecretKey,
    /// NATS, as the services reach it.
    pub nats_url: String,
    /// The simulator's listener.
    pub sim_addr: SocketAddr,
    sim: Service,
    services: Vec<Running>,
    database: Option<jt_testkit::TestDatabase>,
}

impl Fleet {
    /// A fresh database (migrated) and `jt sim`, ready.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let logs =
            std::env::temp_dir().join(format!("jt-bench-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&logs)?;
        println!("{name} benchmark; service logs in {}", logs.display());
        let nats_url = jt_testkit::nats::nats_url();
        let database = jt_testkit::TestDatabase::create().await;
        let key = SecretKey::generate();
        let store = Store::connect(&StoreConfig::new(database.url()).with_secret_key(key.clone()))
            .await
            .context("connecting to the benchmark's database")?;
        store.migrate().await.context("migrating")?;
        let sim_addr = procs::free_addr()?;
        let mut sim = Service::start(
            "sim",
            &jt_binary(),
            &["sim", "--listen", &sim_addr.to_string()],
            &[],
            &logs,
        )?;
        procs::wait_ready(&mut sim, sim_addr, "/sim/health", Duration::from_secs(30)).await?;
        Ok(Self {
            logs,
            store,
            key,
            nats_url,
            sim_addr,
            sim,
            services: Vec::new(),
            database: Some(database),
        })
    }

    /// Starts `jt <command>` as `name` with the common environment (bus, database, key,
    /// simulator, listener) plus `env`; returns once `/readyz` answers 200.
    pub async fn spawn(
        &mut self,
        name: &'static str,
        command: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<SocketAddr> {
        let addr = procs::free_addr()?;
        let mut all = vec![
            ("NATS_URL", self.nats_url.clone()),
            ("DATABASE_URL", self.database_url().to_string()),
            ("JT_SECRET_KEY", self.key.to_hex()),
            ("JT_SIM_URL", format!("http://{}", self.sim_addr)),
            ("JT_HTTP_ADDR", addr.to_string()),
            ("HOSTNAME", format!("bench-{name}")),
        ];
        all.extend(env.iter().cloned());
        let mut service = Service::start(name, &jt_binary(), &[command], &all, &self.logs)?;
        procs::wait_ready(&mut service, addr, "/readyz", Duration::from_secs(60)).await?;
        self.services.push(Running { service, addr });
        Ok(addr)
    }

    fn database_url(&self) -> &str {
        self.database.as_ref().map_or("", |d| d.url())
    }

    /// Fails with the end of its log when any process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.sim.check_alive()?;
        for r in &mut self.services {
            r.service.check_alive()?;
        }
        Ok(())
    }

    /// CPU seconds so far of the simulator, the services and the servers under them.
    pub fn cpu(&self) -> CpuTimes {
        let mut all: Vec<&Service> = vec![&self.sim];
        all.extend(self.services.iter().map(|r| &r.service));
        CpuTimes::read(&all)
    }

    /// Names of the processes, in start order (the simulator first).
    pub fn names(&self) -> Vec<&'static str> {
        std::iter::once(self.sim.name)
            .chain(self.services.iter().map(|r| r.service.name))
            .collect()
    }

    /// Peak RSS of every process, MiB, by name.
    pub fn peak_rss(&self) -> Vec<(&'static str, Option<u64>)> {
        std::iter::once(&self.sim)
            .chain(self.services.iter().map(|r| &r.service))
            .map(|s| (s.name, s.peak_rss_kib()))
            .collect()
    }

    /// Stops every process (services first) and drops the database unless
    /// `JT_BENCH_KEEP_DB` is set.
    pub async fn finish(mut self) {
        for r in self.services.iter_mut().rev() {
            r.service.stop(Duration::from_secs(10));
        }
        self.sim.stop(Duration::from_secs(5));
        self.store.close().await.ok();
        if let Some(database) = self.database.take() {
            if std::env::var_os("JT_BENCH_KEEP_DB").is_some() {
                println!("database kept: {}", database.url());
                std::mem::forget(database);
            } else {
                drop(database);
            }
        }
    }

    /// Rows of a query on the benchmark's database.
    pub async fn query(&self, sql: &str) -> anyhow::Result<Vec<sea_orm::QueryResult>> {
        let db = self.store.connection();
        Ok(db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                sql.to_owned(),
            ))
            .await?)
    }

    /// Waits until the simulator shows an open user socket synced over each of `subs` (the
    /// connection manager holds their logins: their events reach the bus).
    pub async fn wait_sockets(
        &mut self,
        owner: UserId,
        subs: &[SubAccountId],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        #[derive(Deserialize)]
        struct Socket {
            kind: String,
            accounts: Vec<i64>,
        }
        let mut wanted = Vec::with_capacity(subs.len());
        for sub in subs {
            let sub = self.store.accounts().sub_account(owner, *sub).await?;
            wanted.push(
                sub.broker_sub_account_id
                    .parse::<i64>()
                    .context("a simulator account id")?,
            );
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let sockets: Vec<Socket> = serde_json::from_slice(
                &http::call_ok(self.sim_addr, "GET", "/sim/sockets", b"").await?,
            )
            .context("reading /sim/sockets")?;
            let open: std::collections::HashSet<i64> = sockets
                .iter()
                .filter(|s| s.kind == "user")
                .flat_map(|s| s.accounts.iter().copied())
                .collect();
            let missing = wanted.iter().filter(|a| !open.contains(a)).count();
            if missing == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{missing} of {} accounts have no socket at the simulator after {timeout:?}",
                    wanted.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Sets `root`'s front month (and every listed month) to `price` at the simulator (a fixed
    /// price: any feed stops); returns when the simulator answered, and the moment (µs) the
    /// request was sent.
    pub async fn set_price(&self, root: &str, price: &str) -> anyhow::Result<i64> {
        let body = format!(r#"{{"symbol":"{root}","price":{price}}}"#);
        let at = now_us();
        http::call_ok(self.sim_addr, "POST", "/sim/prices", body.as_bytes()).await?;
        Ok(at)
    }

    /// The simulator's orders (every account).
    pub async fn sim_orders(&self) -> anyhow::Result<Vec<SimOrder>> {
        serde_json::from_slice(&http::call_ok(self.sim_addr, "GET", "/sim/orders", b"").await?)
            .context("reading /sim/orders")
    }

    /// The simulator's fills of one account.
    pub async fn sim_fills(&self, account: &str) -> anyhow::Result<Vec<SimFill>> {
        serde_json::from_slice(
            &http::call_ok(
                self.sim_addr,
                "GET",
                &format!("/sim/fills?account={account}"),
                b"",
            )
            .await?,
        )
        .context("reading /sim/fills")
    }

    /// The net position of one account at the simulator (every contract).
    pub async fn sim_net(&self, account: &str) -> anyhow::Result<i64> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Position {
            net_pos: i64,
        }
        let positions: Vec<Position> = serde_json::from_slice(
            &http::call_ok(
                self.sim_addr,
                "GET",
                &format!("/sim/positions?account={account}"),
                b"",
            )
            .await?,
        )?;
        Ok(positions.iter().map(|p| p.net_pos).sum())
    }

    /// The requests the simulator received, by `"<protocol>:<endpoint>"`.
    pub async fn sim_requests(&self) -> anyhow::Result<HashMap<String, u64>> {
        Ok(serde_json::from_slice(
            &http::call_ok(self.sim_addr, "GET", "/sim/requests", b"").await?,
        )?)
    }

    /// Starts the request counts from zero.
    pub async fn reset_sim_requests(&self) -> anyhow::Result<()> {
        http::call_ok(self.sim_addr, "DELETE", "/sim/requests", b"").await?;
        Ok(())
    }
}

fn jt_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_jt"))
}

/// An order as the simulator's admin API shows it (what the benchmarks read of it).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimOrder {
    /// The simulator's id.
    pub id: i64,
    /// Account name.
    pub account: String,
    /// Set on the legs the exchange creates (brackets): not placed by a request.
    pub parent_id: Option<i64>,
    /// Client order id.
    pub cl_ord_id: Option<String>,
    /// Arrival of the request that created it (µs).
    pub received_us: i64,
}

/// A fill as the simulator's admin API shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimFill {
    /// Fill id.
    pub id: i64,
    /// Its order.
    pub order_id: i64,
    /// Fill time (µs).
    pub timestamp_us: i64,
}

/// A person trading an account at the broker (the simulator's Tradovate REST under the
/// account's own login), not through the platform: what the connection manager then reports
/// as the account's own fills.
pub struct Hand {
    broker: Arc<dyn Broker>,
    account: AccountId,
    contract: Contract,
    n: u32,
}

impl Hand {
    /// Signs in as the login of `sub` (once per login through `access`) and resolves `root`.
    pub async fn new(
        access: &jt_connect::BrokerAccess,
        store: &Store,
        owner: UserId,
        sub: SubAccountId,
        root: &str,
    ) -> anyhow::Result<Self> {
        let (sub, login) = store
            .accounts()
            .sub_account_with_account(owner, sub)
            .await?;
        let broker = access.for_account(&login).await?;
        let contract = broker.resolve_contract(root).await?;
        Ok(Self {
            broker,
            account: AccountId::from(sub.broker_sub_account_id.as_str()),
            contract,
            n: 0,
        })
    }

    /// A market order; returns when the broker acknowledged it (it fills on arrival).
    pub async fn trade(&mut self, side: Side, qty: u32) -> anyhow::Result<()> {
        self.n += 1;
        self.broker
            .place_order(
                &self.account,
                &self.contract,
                &OrderRequest {
                    client_order_id: format!("by-hand-{}-{}", self.account, self.n),
                    side,
                    qty,
                    kind: OrderKind::Market,
                },
            )
            .await?;
        Ok(())
    }
}

/// Broker access for the benchmark's own hands (the simulator only).
pub fn access(fleet: &Fleet) -> Arc<jt_connect::BrokerAccess> {
    Arc::new(jt_connect::BrokerAccess::new(
        fleet.store.clone(),
        jt_connect::AccessConfig::default().with_sim_url(format!("http://{}", fleet.sim_addr)),
    ))
}

/// One message an [`Observer`] saw: its arrival (µs), subject and payload.
pub type Seen = (i64, String, Vec<u8>);

/// Arrival times (µs) of core NATS messages on a subject filter, as a passive subscriber
/// sees them: when a service published them (plus one hop on loopback).
pub struct Observer {
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Subscribes to `filter` (a subject with wildcards, without the namespace root: the
    /// production namespace the services use is prepended).
    pub async fn start(
        fleet: &Fleet,
        filter: impl FnOnce(&jt_bus::Subjects) -> anyhow::Result<String>,
    ) -> anyhow::Result<Self> {
        let bus = jt_bus::Bus::connect(jt_bus::BusConfig {
            nats_url: Some(fleet.nats_url.clone()),
            ..jt_bus::BusConfig::default()
        })
        .await?;
        let mut sub = bus.subscribe_core(filter(&bus.subjects())?).await?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let task = tokio::spawn(async move {
            // The bus must live as long as the subscription.
            let _bus = bus;
            while let Some(m) = sub.next().await {
                let at = now_us();
                if let Ok(mut seen) = into.lock() {
                    seen.push((at, m.subject, m.payload.to_vec()));
                }
            }
        });
        Ok(Self { seen, task })
    }

    /// Everything seen so far, in arrival order: (µs, subject, payload).
    pub fn take(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
