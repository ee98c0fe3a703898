//! The chaos suite (issue 25): a burst of alerts × accounts while, in turn, every service is
//! killed with SIGKILL and started again, nats-server is restarted and PostgreSQL is restarted;
//! afterwards the simulator must hold exactly one entry per accepted alert and account — none
//! twice, none lost.
//!
//! Everything runs as it does in production, as separate processes of the built `jt` binary:
//! `jt sim`, `jt ingest`, two `jt executor` replicas, `jt connmgr`, `jt positions`, `jt risk`
//! and `jt copier`, on a private nats-server (JetStream on a store that survives its restart)
//! and a private PostgreSQL cluster (so both can be restarted; the harness's servers, if any,
//! are not used). One recorder has a trader on each of M simulator accounts; its alerts are
//! bracket entries (`buy`, far take-profit and stop, so nothing fills by itself) and every
//! alert carries its own `time`, which makes its signal id — and so every trader's intent id
//! and client order id — computable before the answer comes back (`jt_alerts::DedupKey`).
//!
//! An alert is *accepted* when the ingest answered 200 `queued`; its M entries must be at the
//! simulator exactly once each. An alert refused (503 while NATS or the ingest's checks were
//! down) or never answered (the ingest killed under it) is counted apart: its signal may or may
//! not have been queued before the failure, so either every account holds its entry once or
//! none does. Every order on the accounts must belong to an alert sent, and no client order id
//! may appear twice. With followers, the first account leads a copy group: each follower must
//! end at the leader's position through exactly one order per leader fill.
//!
//! Size and scenario come from the environment: `JT_CHAOS_SIGNALS` (default 20),
//! `JT_CHAOS_ACCOUNTS` (4), `JT_CHAOS_FOLLOWERS` (2), `JT_CHAOS_STEPS` (comma-separated,
//! default all, in order: `ingest,executor-a,executor-b,connmgr,positions,risk,copier,nats,
//! postgres`), `JT_CHAOS_GAP_MS` (time between two alerts, 100), `JT_CHAOS_NATS_DOWN_SECS`
//! (how long nats-server stays down, 2; past the ingest's 30 s publish deadline alerts are
//! answered 503), `JT_CHAOS_DRAIN_SECS` (how long the platform may take to go quiet after the
//! last step, 300). `make test` runs the default (short) version; `make chaos` runs 200 × 20
//! with 5 followers and NATS down 35 s, and prints the figures kept in `docs/reliability.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jt_domain::Settings;
use jt_domain::settings::{PriceUnits, StopType, TpTarget};
use jt_messages::{IntentMessage, SignalMessage};
use jt_store::repo::accounts::{BrokerCredentials, BrokerSubAccount, NewBrokerAccount};
use jt_store::repo::auth::NewUser;
use jt_store::repo::copy::FollowerSettings;
use jt_store::repo::recorders::NewRecorder;
use jt_store::repo::traders::NewTrader;
use jt_store::{
    BrokerKind, Environment, Role, Secret, SecretKey, SignalId, Store, StoreConfig, SubAccountId,
    TraderId, UserId,
};
use jt_testkit::PgServer;
use jt_testkit::nats::NatsServer;
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, Statement};
use serde::Deserialize;
use uuid::Uuid;

/// The services killed in turn, by their name in `JT_CHAOS_STEPS`, with their `jt` subcommand.
const SERVICES: &[(&str, &str)] = &[
    ("ingest", "ingest"),
    ("executor-a", "executor"),
    ("executor-b", "executor"),
    ("connmgr", "connmgr"),
    ("positions", "positions"),
    ("risk", "risk"),
    ("copier", "copier"),
];
const ALL_STEPS: &str = "ingest,executor-a,executor-b,connmgr,positions,risk,copier,nats,postgres";
const SIM_PASSWORD: &str = "chaos-password";
/// Accounts per simulator login (one broker account each, as a real login with sub-accounts).
const PER_LOGIN: usize = 5;

struct Config {
    signals: usize,
    accounts: usize,
    followers: usize,
    steps: Vec<String>,
    gap: Duration,
    drain: Duration,
    nats_down: Duration,
}

fn var(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        _ => default,
    }
}

impl Config {
    fn from_env() -> Self {
        let steps: Vec<String> = std::env::var("JT_CHAOS_STEPS")
            .unwrap_or_else(|_| ALL_STEPS.to_owned())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        for s in &steps {
            assert!(
                ALL_STEPS.split(',').any(|k| k == s),
                "JT_CHAOS_STEPS: unknown step {s:?} (known: {ALL_STEPS})"
            );
        }
        let config = Self {
            signals: usize::try_from(var("JT_CHAOS_SIGNALS", 20)).unwrap(),
            accounts: usize::try_from(var("JT_CHAOS_ACCOUNTS", 4)).unwrap(),
            // Copy traffic by default: the connection manager's kill leaves leader fills no
            // one published, which the copier must still copy (docs/reliability.md).
            followers: usize::try_from(var("JT_CHAOS_FOLLOWERS", 2)).unwrap(),
            steps,
            gap: Duration::from_millis(var("JT_CHAOS_GAP_MS", 100)),
            drain: Duration::from_secs(var("JT_CHAOS_DRAIN_SECS", 300)),
            nats_down: Duration::from_secs(var("JT_CHAOS_NATS_DOWN_SECS", 2)),
        };
        assert!(
            config.signals >= config.steps.len().max(1) && config.accounts > 0,
            "JT_CHAOS_SIGNALS must be at least the number of steps, JT_CHAOS_ACCOUNTS at least 1"
        );
        config
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

fn now_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One `jt` process: started, killed with SIGKILL, started again on the same address with
/// the same environment; its output goes to one log file across its lives.
struct Proc {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    addr: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Proc {
    fn new(name: &'static str, args: &[&str], env: Vec<(String, String)>, logs: &Path) -> Self {
        let addr = free_addr();
        let mut env = env;
        env.push(("JT_HTTP_ADDR".into(), addr.to_string()));
        Self {
            name,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env,
            addr,
            log: logs.join(format!("{name}.log")),
            child: None,
            starts: 0,
        }
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_jt"))
            .args(&self.args)
            // The harness's servers are not this test's: only its own are named.
            .env_remove("NATS_URL")
            .env_remove("DATABASE_URL")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting jt {}: {e}", self.name));
        self.child = Some(child);
        self.starts += 1;
    }

    /// SIGKILL: no shutdown, nothing flushed, leases and unacked messages left behind.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn assert_alive(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait().unwrap()
        {
            panic!(
                "jt {} exited ({status}); end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `GET path` answers 200, failing with the log when the process exits.
async fn wait_ready(client: &reqwest::Client, proc: &mut Proc, path: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let url = format!("http://{}{path}", proc.addr);
    loop {
        proc.assert_alive();
        if let Ok(r) = client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "jt {} not ready at {url} within {timeout:?}; end of {}:\n{}",
            proc.name,
            proc.log.display(),
            tail(&proc.log, 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the ingest answered one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// 200 `queued`: the signal is durable on SIGNALS.
    Accepted,
    /// Any other answer (503 while NATS is down, …), with the status.
    Refused(u16),
    /// No answer at all: the ingest was down or killed while answering.
    Unanswered,
}

struct Sent {
    step: usize,
    signal: Uuid,
    outcome: Outcome,
}

#[derive(Deserialize)]
struct Queued {
    status: String,
    signal_id: Uuid,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SimOrder {
    id: i64,
    account: String,
    parent_id: Option<i64>,
    cl_ord_id: Option<String>,
    strategy_uuid: Option<String>,
}

impl SimOrder {
    /// The client's id of an order placed by a request: its `clOrdId`, or for a multibracket
    /// strategy's entry the strategy's `uuid` (the platform sends its client order id there).
    fn client_id(&self) -> Option<&str> {
        if self.parent_id.is_some() {
            return self.cl_ord_id.as_deref();
        }
        self.cl_ord_id.as_deref().or(self.strategy_uuid.as_deref())
    }
}

/// One simulator account and its trader.
struct Account {
    name: String,
    trader: TraderId,
}

/// Far brackets (4,000 ticks, 1,000 points on MNQ) so no leg fills by itself: every entry
/// adds one contract and nothing else moves the position. Entries stay executable however
/// long the outage (the default 30 s would make the backlog behind a restart stale — skipped
/// by design, and then not an order the test can expect).
fn chaos_settings() -> Settings {
    Settings {
        initial_position_size: 1,
        tp_targets: vec![TpTarget {
            value: Decimal::from(4000),
            trim: Decimal::ONE,
        }],
        tp_units: PriceUnits::Ticks,
        sl_enabled: true,
        sl_amount: Decimal::from(4000),
        sl_units: PriceUnits::Ticks,
        sl_type: StopType::Fixed,
        stale_after_secs: 86_400,
        ..Settings::default()
    }
}

/// What the test created: the recorder's webhook token, its traders' accounts (the first
/// leads the copy group) and the followers' account names.
struct Seeded {
    token: String,
    accounts: Vec<Account>,
    followers: Vec<String>,
    /// The simulator's id of the leader's account.
    leader_sim_id: i64,
}

/// One simulator login with `names` for accounts, and its broker account with those
/// sub-accounts in the store.
async fn sim_login(
    store: &Store,
    client: &reqwest::Client,
    sim: SocketAddr,
    owner: UserId,
    username: &str,
    names: &[String],
) -> Vec<(String, SubAccountId, i64)> {
    #[derive(Deserialize)]
    struct CreatedLogin {
        accounts: Vec<CreatedAccount>,
    }
    #[derive(Deserialize)]
    struct CreatedAccount {
        id: i64,
        name: String,
    }
    let body = serde_json::json!({
        "name": username,
        "password": SIM_PASSWORD,
        "accounts": names,
        "balance": 100_000_000,
    });
    let r = client
        .post(format!("http://{sim}/sim/users"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "POST /sim/users: {}", r.status());
    let created: CreatedLogin = r.json().await.unwrap();
    let account = store
        .accounts()
        .create(
            owner,
            NewBrokerAccount {
                label: format!("Simulator {username}"),
                broker: BrokerKind::Sim,
                environment: Environment::Demo,
                username: Some(username.to_owned()),
                credentials: BrokerCredentials {
                    password: Some(Secret::new(SIM_PASSWORD)),
                    app_id: Some("jt-chaos".into()),
                    app_version: Some(env!("CARGO_PKG_VERSION").into()),
                    ..BrokerCredentials::default()
                },
                require_brackets: false,
            },
        )
        .await
        .unwrap();
    let listed: Vec<BrokerSubAccount> = created
        .accounts
        .iter()
        .map(|a| BrokerSubAccount {
            broker_sub_account_id: a.id.to_string(),
            name: a.name.clone(),
        })
        .collect();
    let subs = store
        .accounts()
        .sync_sub_accounts(owner, account.id, &listed)
        .await
        .unwrap();
    created
        .accounts
        .iter()
        .map(|a| {
            let sub = subs.iter().find(|s| s.name == a.name).unwrap();
            (a.name.clone(), sub.id, a.id)
        })
        .collect()
}

async fn seed(
    store: &Store,
    client: &reqwest::Client,
    sim: SocketAddr,
    accounts: usize,
    followers: usize,
) -> Seeded {
    let owner = store
        .users()
        .register(NewUser {
            email: format!("chaos+{}@jt.local", Uuid::new_v4().simple()),
            display_name: Some("Chaos".into()),
            password: Secret::new(Uuid::new_v4().to_string()),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap()
        .id;
    let (recorder, token) = store
        .recorders()
        .create(
            owner,
            NewRecorder {
                name: "chaos".into(),
                symbol: Some("MNQ1!".into()),
                settings: chaos_settings(),
                commission_per_contract: Decimal::ZERO,
            },
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut subs = Vec::new();
    let mut sim_ids = Vec::new();
    for login in 0..accounts.div_ceil(PER_LOGIN) {
        let names: Vec<String> = (0..PER_LOGIN)
            .map(|a| format!("CHAOS{login:03}{a:02}"))
            .take(accounts - login * PER_LOGIN)
            .collect();
        let username = format!("chaos{login:03}");
        for (name, sub, id) in sim_login(store, client, sim, owner, &username, &names).await {
            sim_ids.push(id);
            let trader = store
                .traders()
                .create(
                    owner,
                    NewTrader {
                        recorder: recorder.id,
                        sub_account: sub,
                        enabled: true,
                        overrides: jt_domain::SettingsOverrides::default(),
                    },
                )
                .await
                .unwrap();
            subs.push(sub);
            out.push(Account {
                name,
                trader: trader.id,
            });
        }
    }
    // Copy traffic: the first account leads (its own trader's fills are the leader's
    // trades), followers on a login of their own copy it one for one.
    let mut follower_names = Vec::new();
    if followers > 0 {
        let copying = store.copying();
        let leader = copying
            .create_leader(owner, subs[0], Some("chaos leader"), true)
            .await
            .unwrap();
        let names: Vec<String> = (0..followers).map(|f| format!("CHAOSF{f:02}")).collect();
        for (name, sub, _) in sim_login(store, client, sim, owner, "chaosf", &names).await {
            copying
                .add_follower(
                    owner,
                    leader.id,
                    sub,
                    // The leader's fills only: its brackets' legs stay the leader's.
                    FollowerSettings {
                        multiplier: Decimal::ONE,
                        copy_tp: false,
                        copy_sl: false,
                        ..FollowerSettings::default()
                    },
                )
                .await
                .unwrap();
            follower_names.push(name);
        }
    }
    Seeded {
        token: token.expose().to_owned(),
        accounts: out,
        followers: follower_names,
        leader_sim_id: sim_ids[0],
    }
}

/// The simulator's last MNQ front-month price (the alerts' reference for the brackets).
async fn sim_price(client: &reqwest::Client, sim: SocketAddr) -> String {
    #[derive(Deserialize)]
    struct Price {
        root: String,
        front: bool,
        price: serde_json::Value,
    }
    let prices: Vec<Price> = client
        .get(format!("http://{sim}/sim/prices"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = prices
        .into_iter()
        .find(|p| p.root == "MNQ" && p.front)
        .expect("the simulator has an MNQ front month");
    p.price.to_string().trim_matches('"').to_owned()
}

/// Sends one alert and classifies the answer. The signal id is derived from the body the way
/// the ingest derives it (the body has a `time`, so the id does not depend on the receipt).
async fn send(
    client: reqwest::Client,
    ingest: SocketAddr,
    token: String,
    body: String,
    signal: Uuid,
) -> Outcome {
    let answer = client
        .post(format!("http://{ingest}/webhook/{token}"))
        .header("content-type", "application/json")
        .body(body)
        // Longer than the ingest's own publish deadline (30 s): its answer, not ours, decides.
        .timeout(Duration::from_secs(90))
        .send()
        .await;
    let Ok(answer) = answer else {
        return Outcome::Unanswered;
    };
    let status = answer.status().as_u16();
    let Ok(bytes) = answer.bytes().await else {
        return Outcome::Unanswered;
    };
    if status == 200 {
        let q: Queued = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("a 200 without a signal ({e}): {bytes:?}"));
        assert_eq!(q.status, "queued", "{bytes:?}");
        assert_eq!(
            q.signal_id, signal,
            "the ingest's signal id is not the one derived from the body"
        );
        return Outcome::Accepted;
    }
    Outcome::Refused(status)
}

/// The platform under test.
struct World {
    client: reqwest::Client,
    nats: NatsServer,
    pg: PgServer,
    sim: Proc,
    services: BTreeMap<&'static str, Proc>,
}

impl World {
    async fn all_ready(&mut self, timeout: Duration) {
        let client = self.client.clone();
        for proc in self.services.values_mut() {
            wait_ready(&client, proc, "/readyz", timeout).await;
        }
    }

    fn assert_all_alive(&mut self) {
        self.sim.assert_alive();
        for proc in self.services.values_mut() {
            proc.assert_alive();
        }
    }

    /// Runs one disruption and waits until every service is ready again; returns what was
    /// done, for the report.
    async fn disrupt(&mut self, step: &str, nats_down: Duration) -> Duration {
        let began = Instant::now();
        match step {
            "nats" => {
                // Graceful stop (SIGTERM: the store is flushed), down for `nats_down` (past the
                // ingest's 30 s publish deadline, the alerts waiting on it are answered 503),
                // back on the same port.
                tokio::task::block_in_place(|| self.nats.stop());
                tokio::time::sleep(nats_down).await;
                tokio::task::block_in_place(|| self.nats.restart());
            }
            "postgres" => {
                tokio::task::block_in_place(|| self.pg.stop());
                tokio::time::sleep(Duration::from_secs(2)).await;
                tokio::task::block_in_place(|| self.pg.restart());
            }
            service => {
                let proc = self.services.get_mut(service).unwrap();
                proc.kill9();
                tokio::time::sleep(Duration::from_millis(500)).await;
                proc.spawn();
            }
        }
        self.all_ready(Duration::from_secs(120)).await;
        began.elapsed()
    }
}

/// Runs `sql`, retrying for a while: the pool's connections from before a PostgreSQL restart
/// fail once each.
async fn query(store: &Store, sql: &str) -> Vec<sea_orm::QueryResult> {
    let db = store.connection();
    let mut tries = 0;
    loop {
        match db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
        {
            Ok(rows) => return rows,
            Err(e) => {
                tries += 1;
                assert!(tries < 40, "{sql}: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    query(store, sql).await[0]
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// The order check, over the simulator's orders of the chaos accounts.
#[derive(Debug, Default)]
struct Check {
    /// (alert, account) pairs of accepted alerts without their entry.
    missing: Vec<(usize, String)>,
    /// Client order ids seen more than once, with how often.
    duplicated: Vec<(String, usize)>,
    /// Orders placed by a request that belong to no alert sent.
    strays: Vec<(i64, String, Option<String>)>,
    /// Entries found for accepted alerts.
    accepted_entries: usize,
    /// Entries found for alerts refused or never answered (queued before the failure).
    other_entries: usize,
    /// Refused or unanswered alerts executed on some accounts but not on all of them.
    partial: Vec<usize>,
    /// Every order of the accounts (entries and their bracket legs).
    orders: usize,
}

fn check(orders: &[SimOrder], sent: &[Sent], accounts: &[Account]) -> Check {
    let names: HashMap<&str, usize> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let mut expected: HashMap<String, (usize, usize)> = HashMap::new();
    for (i, s) in sent.iter().enumerate() {
        for (a, account) in accounts.iter().enumerate() {
            let intent = IntentMessage::id_for(SignalId(s.signal), account.trader);
            expected.insert(jt_messages::client_order_id(intent.0), (i, a));
        }
    }
    let mut c = Check::default();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut found: HashMap<(usize, usize), usize> = HashMap::new();
    for o in orders {
        let Some(&account) = names.get(o.account.as_str()) else {
            continue;
        };
        c.orders += 1;
        if let Some(id) = o.client_id() {
            *by_id.entry(id).or_default() += 1;
        }
        if o.parent_id.is_some() {
            // A bracket leg the exchange created with its entry.
            continue;
        }
        match o.client_id().and_then(|id| expected.get(id)) {
            Some(&(alert, a)) if a == account => {
                *found.entry((alert, a)).or_default() += 1;
            }
            _ => c
                .strays
                .push((o.id, o.account.clone(), o.client_id().map(str::to_owned))),
        }
    }
    c.duplicated = by_id
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, n)| (id.to_owned(), n))
        .collect();
    for (i, s) in sent.iter().enumerate() {
        let got: Vec<usize> = (0..accounts.len())
            .map(|a| found.get(&(i, a)).copied().unwrap_or(0))
            .collect();
        let entries: usize = got.iter().sum();
        if s.outcome == Outcome::Accepted {
            c.accepted_entries += entries;
            for (a, n) in got.iter().enumerate() {
                if *n == 0 {
                    c.missing.push((i, accounts[a].name.clone()));
                }
            }
        } else {
            c.other_entries += entries;
            if entries > 0 && got.contains(&0) {
                c.partial.push(i);
            }
        }
    }
    c
}

async fn sim_orders(client: &reqwest::Client, sim: SocketAddr) -> Vec<SimOrder> {
    client
        .get(format!("http://{sim}/sim/orders"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the simulator shows an open socket (the connection manager's) on `account`.
async fn wait_socket(client: &reqwest::Client, sim: SocketAddr, account: i64) {
    #[derive(Deserialize)]
    struct Socket {
        accounts: Vec<i64>,
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sockets: Vec<Socket> = get_json(client, sim, "/sim/sockets").await;
        if sockets.iter().any(|s| s.accounts.contains(&account)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the connection manager opened no socket on account {account} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    sim: SocketAddr,
    path: &str,
) -> T {
    client
        .get(format!("http://{sim}{path}"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SimPosition {
    net_pos: i64,
}

/// The copy check: every follower holds the leader's position, reached through one order per
/// leader fill (multiplier 1: each one-contract entry of the leader is a one-contract add),
/// no client order id twice.
#[derive(Debug, Default)]
struct CopyCheck {
    leader_net: i64,
    leader_fills: usize,
    /// Follower, its net position, its orders placed by a request.
    followers: Vec<(String, i64, usize)>,
    duplicated: Vec<(String, usize)>,
}

impl CopyCheck {
    fn done(&self) -> bool {
        self.duplicated.is_empty()
            && self
                .followers
                .iter()
                .all(|(_, net, orders)| *net == self.leader_net && *orders == self.leader_fills)
    }
}

async fn copy_check(
    client: &reqwest::Client,
    sim: SocketAddr,
    leader: &str,
    followers: &[String],
) -> CopyCheck {
    let net = async |account: &str| -> i64 {
        let positions: Vec<SimPosition> =
            get_json(client, sim, &format!("/sim/positions?account={account}")).await;
        positions.iter().map(|p| p.net_pos).sum()
    };
    let fills: Vec<serde_json::Value> =
        get_json(client, sim, &format!("/sim/fills?account={leader}")).await;
    let mut c = CopyCheck {
        leader_net: net(leader).await,
        leader_fills: fills.len(),
        ..CopyCheck::default()
    };
    for f in followers {
        let orders: Vec<SimOrder> =
            get_json(client, sim, &format!("/sim/orders?account={f}")).await;
        let mut by_id: HashMap<String, usize> = HashMap::new();
        for id in orders.iter().filter_map(|o| o.client_id()) {
            *by_id.entry(id.to_owned()).or_default() += 1;
        }
        c.duplicated
            .extend(by_id.into_iter().filter(|(_, n)| *n > 1));
        let placed = orders.iter().filter(|o| o.parent_id.is_none()).count();
        c.followers.push((f.clone(), net(f).await, placed));
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_alert_reaches_every_account_exactly_once_through_kills_and_restarts() {
    jt_runtime::tls::install_crypto_provider();
    let config = Config::from_env();
    let started = Instant::now();
    let logs = std::env::temp_dir().join(format!("jt-chaos-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&logs).unwrap();
    println!("chaos: service logs in {}", logs.display());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    let nats = tokio::task::block_in_place(NatsServer::start);
    let pg = tokio::task::block_in_place(PgServer::start);
    let key = SecretKey::generate();
    let store = Store::connect(&StoreConfig::new(pg.url()).with_secret_key(key.clone()))
        .await
        .unwrap();
    store.migrate().await.unwrap();

    let mut sim = Proc::new("sim", &[], Vec::new(), &logs);
    sim.args = vec!["sim".into(), "--listen".into(), sim.addr.to_string()];
    sim.spawn();
    wait_ready(&client, &mut sim, "/sim/health", Duration::from_secs(60)).await;

    let common = vec![
        ("NATS_URL".to_owned(), nats.url()),
        ("DATABASE_URL".to_owned(), pg.url()),
        ("JT_SIM_URL".to_owned(), format!("http://{}", sim.addr)),
        ("RUST_LOG".to_owned(), "info".to_owned()),
        // Reconnects while the database restarts are the services' own business; a start
        // that meets it down waits instead of failing.
        ("JT_DB_CONNECT_RETRY_SECS".to_owned(), "60".to_owned()),
    ];
    let mut services = BTreeMap::new();
    for (name, command) in SERVICES {
        let mut env = common.clone();
        env.push(("HOSTNAME".into(), format!("chaos-{name}")));
        if *command == "ingest" {
            // The burst is far above one recorder's everyday rate limit.
            env.push(("JT_INGEST_RATE_PER_SEC".into(), "100000".into()));
            env.push(("JT_INGEST_RATE_BURST".into(), "100000".into()));
        } else {
            env.push(("JT_SECRET_KEY".into(), key.to_hex()));
        }
        if *command == "connmgr" {
            // A fleet's logins are spread over up to 30 s; the test's handful connect at once.
            env.push(("JT_BROKER_START_STAGGER_SECS".into(), "0".into()));
            env.push(("JT_CONNMGR_SCAN_MS".into(), "500".into()));
        }
        if *command == "copier" {
            // Every fill is copied however late (a backlog behind a restart is not "late"
            // for this test), and no periodic sync may paper over a copy that was lost.
            env.push(("JT_COPY_MAX_LAG_SECS".into(), "0".into()));
            env.push(("JT_COPY_SYNC_SECS".into(), "0".into()));
        }
        let mut proc = Proc::new(name, &[command], env, &logs);
        proc.spawn();
        services.insert(*name, proc);
    }
    let mut world = World {
        client: client.clone(),
        nats,
        pg,
        sim,
        services,
    };
    world.all_ready(Duration::from_secs(120)).await;

    let seeded = seed(
        &store,
        &client,
        world.sim.addr,
        config.accounts,
        config.followers,
    )
    .await;
    let (token, accounts) = (seeded.token.clone(), &seeded.accounts);
    if config.followers > 0 {
        // The leader's fills reach the copier only through the connection manager's socket.
        wait_socket(&client, world.sim.addr, seeded.leader_sim_id).await;
    }
    let price = sim_price(&client, world.sim.addr).await;
    let ingest = world.services["ingest"].addr;
    let setup = started.elapsed();

    // The burst: each step gets its share of the alerts, sent `gap` apart from a moment
    // before the disruption to after it; the disruption starts a third of the way in.
    let steps = config.steps.len().max(1);
    let mut sent: Vec<Sent> = Vec::with_capacity(config.signals);
    let mut step_times = Vec::new();
    let burst = Instant::now();
    let run = Uuid::new_v4().simple().to_string();
    for k in 0..steps {
        let share = config.signals * (k + 1) / steps - config.signals * k / steps;
        let t0 = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(share);
        for j in 0..share {
            let index = sent.len() + j;
            let at = t0 + config.gap * u32::try_from(j).unwrap();
            let (client, token) = (client.clone(), token.clone());
            let time = now_ms()
                + i64::try_from((config.gap * u32::try_from(j).unwrap()).as_millis()).unwrap();
            let body = format!(
                r#"{{"action":"buy","ticker":"MNQ1!","contracts":1,"price":{price},"position":"long","time":"{time}","comment":"chaos {run} {index}"}}"#
            );
            let key = jt_alerts::DedupKey::new(&token, body.as_bytes(), true, chrono::Utc::now());
            let signal = SignalMessage::id_for(key.msg_id());
            tasks.push((
                signal,
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    send(client, ingest, token, body, signal).await
                }),
            ));
        }
        let step = config.steps.get(k).cloned();
        if let Some(step) = &step {
            let lead = (config.gap * u32::try_from(share).unwrap()) / 3;
            tokio::time::sleep_until(t0 + lead).await;
            let took = world.disrupt(step, config.nats_down).await;
            step_times.push((step.clone(), took));
        }
        for (signal, task) in tasks {
            let outcome = task.await.unwrap();
            sent.push(Sent {
                step: k,
                signal,
                outcome,
            });
        }
        world.assert_all_alive();
    }
    let burst_took = burst.elapsed();

    // Quiet: every accepted alert's entries are in, nothing is being executed, and the
    // simulator's order count has not moved for 10 s (a late duplicate would move it).
    let drain_began = Instant::now();
    let mut last_count = usize::MAX;
    let mut still_since = Instant::now();
    let mut result;
    let mut copies;
    loop {
        world.assert_all_alive();
        let orders = sim_orders(&client, world.sim.addr).await;
        result = check(&orders, &sent, accounts);
        if result.orders != last_count {
            last_count = result.orders;
            still_since = Instant::now();
        }
        copies = copy_check(
            &client,
            world.sim.addr,
            &accounts[0].name,
            &seeded.followers,
        )
        .await;
        let open = count(
            &store,
            "SELECT COUNT(*) FROM order_intents WHERE status IN ('pending', 'sent', 'unknown')",
        )
        .await;
        if result.missing.is_empty()
            && copies.done()
            && open == 0
            && still_since.elapsed() >= Duration::from_secs(10)
        {
            break;
        }
        if drain_began.elapsed() > config.drain {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let drain_took = drain_began
        .elapsed()
        .saturating_sub(Duration::from_secs(10));

    // The report; the simulator's orders are kept beside the logs for a failure's reader.
    let raw: serde_json::Value = get_json(&client, world.sim.addr, "/sim/orders").await;
    std::fs::write(
        logs.join("sim-orders.json"),
        serde_json::to_vec_pretty(&raw).unwrap(),
    )
    .unwrap();
    let accepted = sent
        .iter()
        .filter(|s| s.outcome == Outcome::Accepted)
        .count();
    let refused: BTreeMap<u16, usize> = sent.iter().fold(BTreeMap::new(), |mut m, s| {
        if let Outcome::Refused(code) = s.outcome {
            *m.entry(code).or_default() += 1;
        }
        m
    });
    let unanswered = sent
        .iter()
        .filter(|s| s.outcome == Outcome::Unanswered)
        .count();
    let statuses = {
        let rows = query(
            &store,
            "SELECT status, COUNT(*) FROM order_intents GROUP BY status ORDER BY status",
        )
        .await;
        rows.iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.try_get_by_index::<String>(0).unwrap(),
                    r.try_get_by_index::<i64>(1).unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "chaos: {} alerts × {} accounts, steps: {}",
        config.signals,
        config.accounts,
        config.steps.join(", ")
    );
    println!(
        "chaos: set-up {:.1} s, burst {:.1} s, drain {:.1} s, total {:.1} s",
        setup.as_secs_f64(),
        burst_took.as_secs_f64(),
        drain_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for (step, took) in &step_times {
        println!(
            "chaos:   {step}: down and back to all services ready in {:.1} s",
            took.as_secs_f64()
        );
    }
    for (k, step) in config.steps.iter().enumerate() {
        let of_step: Vec<&Sent> = sent.iter().filter(|s| s.step == k).collect();
        println!(
            "chaos:   alerts during {step}: {} sent, {} accepted, {} refused, {} unanswered",
            of_step.len(),
            of_step
                .iter()
                .filter(|s| s.outcome == Outcome::Accepted)
                .count(),
            of_step
                .iter()
                .filter(|s| matches!(s.outcome, Outcome::Refused(_)))
                .count(),
            of_step
                .iter()
                .filter(|s| s.outcome == Outcome::Unanswered)
                .count(),
        );
    }
    println!(
        "chaos: alerts accepted {accepted}, refused {refused:?}, unanswered {unanswered}; \
         entries for accepted alerts {} (expected {}), for the others {}; orders at the \
         simulator (entries and bracket legs) {}; missing {}, duplicated {}, strays {}, \
         refused alerts executed on some accounts only {}",
        result.accepted_entries,
        accepted * accounts.len(),
        result.other_entries,
        result.orders,
        result.missing.len(),
        result.duplicated.len(),
        result.strays.len(),
        result.partial.len(),
    );
    println!("chaos: intents by status: {statuses}");
    println!(
        "chaos: copy: leader {} fills, net {}; followers (net, orders): {:?}; duplicated {}",
        copies.leader_fills,
        copies.leader_net,
        copies.followers,
        copies.duplicated.len()
    );
    let restarts: Vec<String> = world
        .services
        .values()
        .map(|p| format!("{} {}", p.name, p.starts))
        .collect();
    println!("chaos: starts per service: {}", restarts.join(", "));

    assert!(accepted > 0, "no alert was accepted at all");
    assert!(
        result.missing.is_empty(),
        "accepted alerts without their entry (alert, account): {:?}; intents: {statuses}; logs in {}",
        &result.missing[..result.missing.len().min(20)],
        logs.display()
    );
    assert!(
        result.duplicated.is_empty(),
        "client order ids at the simulator more than once: {:?}; logs in {}",
        &result.duplicated[..result.duplicated.len().min(20)],
        logs.display()
    );
    assert!(
        result.strays.is_empty(),
        "orders that belong to no alert sent (id, account, client order id): {:?}",
        &result.strays[..result.strays.len().min(20)]
    );
    assert_eq!(result.accepted_entries, accepted * accounts.len());
    assert!(
        copies.done(),
        "the followers do not hold the leader's position through one order per leader fill, \
         or a client order id was used twice: {copies:?}; logs in {}",
        logs.display()
    );
    assert!(
        result.partial.is_empty(),
        "a signal reached some accounts and not others: alerts {:?}",
        result.partial
    );
    drop(world);
    store.close().await.ok();
    let _ = std::fs::remove_dir_all(&logs);
}
