//! The end-to-end harness: the whole platform on real infrastructure for black-box tests —
//! PostgreSQL (a fresh database on `DATABASE_URL`, or a private server), JetStream at
//! `NATS_URL` (an isolated namespace per test), the exchange simulator, the ingest on a real
//! TCP port reached over HTTP, and the executor either in this process or as a separate `jt
//! executor` process that a test can kill and restart.
//!
//! Tests assert on what the simulator received (its admin API), on the store and on HTTP
//! answers — never on internals. A test needing a server fails loudly when its variable is
//! unset (`make test` sets both).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test harness: failures must be loud

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jt_bus::{Bus, BusConfig, Definitions, Namespace};
use jt_domain::{Settings, SettingsOverrides};
use jt_ingest::{Ingest, IngestConfig, RateLimit};
use jt_sim::admin::{CreatedUser, NewUser as SimUser, OrderRecord};
use jt_sim::{Sim, SimConfig};
use jt_store::repo::accounts::{BrokerCredentials, BrokerSubAccount, NewBrokerAccount, SubAccount};
use jt_store::repo::auth::NewUser;
use jt_store::repo::intents::Intent;
use jt_store::repo::recorders::NewRecorder;
use jt_store::repo::traders::NewTrader;
use jt_store::{
    BrokerAccountId, BrokerKind, Environment, IntentStatus, RecorderId, Role, Secret, SecretKey,
    Store, StoreConfig, UserId,
};
use rust_decimal::Decimal;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod api;
pub mod live;
pub use jt_sim::admin;

/// The simulator login of every platform.
pub const SIM_LOGIN: &str = "e2e";
const SIM_PASSWORD: &str = "e2e-password";

/// The demo user's password ([`Platform::email`]).
pub const USER_PASSWORD: &str = "correct horse battery";

/// Where the database comes from.
pub enum Database {
    /// A fresh database on the harness's server (`DATABASE_URL`).
    Shared,
    /// A database on a private server the test can stop ([`jt_testkit::PgServer`]).
    Private(jt_testkit::PgServer),
}

/// How the executor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorMode {
    /// A task of this process.
    InProcess,
    /// A `jt executor` child process ([`Platform::kill_executor`], [`Platform::start_executor`]).
    Process,
}

/// Options of [`Platform::start`].
pub struct Options {
    /// Simulator accounts (and sub-accounts) to create.
    pub accounts: usize,
    /// Broker logins the accounts are spread over (Tradovate's request budget is per login:
    /// about 5,000 an hour).
    pub logins: usize,
    /// The executor.
    pub executor: ExecutorMode,
    /// The database.
    pub database: Database,
    /// The ingest's per-recorder rate limit.
    pub rate_limit: RateLimit,
    /// How long a broker login backs off after a 429 without `Retry-After` (the executor's
    /// `JT_BROKER_429_BACKOFF_SECS`; `None`: the adapter's minute).
    pub broker_429_backoff: Option<Duration>,
    /// Environment added to every `jt` child process ([`ExecutorMode::Process`],
    /// [`Platform::spawn_jt`]), e.g. where to export spans.
    pub child_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            accounts: 1,
            logins: 1,
            executor: ExecutorMode::InProcess,
            database: Database::Shared,
            rate_limit: RateLimit {
                per_second: 1000.try_into().unwrap(),
                burst: 1000.try_into().unwrap(),
            },
            broker_429_backoff: None,
            child_env: Vec::new(),
        }
    }
}

enum DbGuard {
    Shared(#[allow(dead_code)] jt_testkit::TestDatabase),
    Private(jt_testkit::PgServer),
}

/// A running platform.
pub struct Platform {
    /// The simulator.
    pub sim: Sim,
    /// The store (the test's database).
    pub store: Store,
    /// The bus (the test's namespace).
    pub bus: Bus,
    /// The demo user.
    pub user: UserId,
    /// The broker accounts (one per simulator login), in login order.
    pub broker_accounts: Vec<BrokerAccountId>,
    /// Sub-accounts, in creation order (names `ACC1`, `ACC2`, …).
    pub subs: Vec<SubAccount>,
    /// The ingest's base URL (`http://127.0.0.1:PORT`).
    pub ingest_url: String,
    http: reqwest::Client,
    namespace_tag: String,
    db_url: String,
    key: SecretKey,
    shutdown: CancellationToken,
    ingest: Option<(Ingest, JoinHandle<()>)>,
    executor_task: Option<(CancellationToken, JoinHandle<()>)>,
    executor_child: Option<ChildGuard>,
    mode: ExecutorMode,
    broker_429_backoff: Option<Duration>,
    child_env: Vec<(String, String)>,
    db: Option<DbGuard>,
    /// The simulator logins as created.
    pub sim_users: Vec<CreatedUser>,
}

impl Platform {
    /// The demo user's e-mail; its password is [`USER_PASSWORD`] (to log in to the API).
    #[must_use]
    pub fn email(&self) -> String {
        format!("{}@e2e.test", self.namespace_tag)
    }

    /// Starts everything and creates the user, the simulator login and its sub-accounts.
    pub async fn start(options: Options) -> Platform {
        jt_runtime::tls::install_crypto_provider();
        let _ = jt_runtime::metrics::install();
        let (db, db_url) = match options.database {
            Database::Shared => {
                let d = jt_testkit::TestDatabase::create().await;
                let url = d.url().to_string();
                (DbGuard::Shared(d), url)
            }
            Database::Private(server) => {
                let url = server.url();
                (DbGuard::Private(server), url)
            }
        };
        let key = SecretKey::generate();
        let mut config = StoreConfig::new(db_url.clone()).with_secret_key(key.clone());
        config.max_connections = 10;
        config.acquire_timeout = Duration::from_secs(2);
        let store = Store::connect(&config).await.expect("store connects");
        store.migrate().await.expect("migrations apply");

        let namespace_tag: String = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let bus = Bus::connect(BusConfig {
            nats_url: Some(jt_testkit::nats::nats_url()),
            namespace: Namespace::isolated(&namespace_tag).unwrap(),
            ..BusConfig::default()
        })
        .await
        .expect("bus connects");
        bus.provision(&Definitions::new(bus.namespace()).topology())
            .await
            .expect("provision");

        let sim = Sim::start(SimConfig::default())
            .await
            .expect("simulator starts");
        for root in ["MNQ", "MES", "NQ", "ES", "GC", "CL"] {
            let price: Decimal = match root {
                "GC" => "2400.0".parse().unwrap(),
                "CL" => "75.00".parse().unwrap(),
                "MES" | "ES" => "6000.00".parse().unwrap(),
                _ => "21000.00".parse().unwrap(),
            };
            sim.admin().set_price(root, price).unwrap();
        }
        let names: Vec<String> = (1..=options.accounts).map(|i| format!("ACC{i}")).collect();
        let logins = options.logins.clamp(1, options.accounts.max(1));
        let mut sim_users = Vec::new();
        for (l, chunk) in names
            .chunks(names.len().div_ceil(logins).max(1))
            .enumerate()
        {
            let login = if l == 0 {
                SIM_LOGIN.to_string()
            } else {
                format!("{SIM_LOGIN}-{l}")
            };
            sim_users.push(
                sim.admin()
                    .create_user(&SimUser {
                        name: login,
                        password: SIM_PASSWORD.into(),
                        accounts: chunk.to_vec(),
                        balance: Some(Decimal::from(1_000_000)),
                        ..SimUser::default()
                    })
                    .unwrap(),
            );
        }

        let user = store
            .users()
            .register(NewUser {
                email: format!("{namespace_tag}@e2e.test"),
                display_name: None,
                password: Secret::new(USER_PASSWORD),
                role: Role::User,
                approved: true,
            })
            .await
            .unwrap();
        let mut broker_accounts = Vec::new();
        let mut subs = Vec::new();
        for sim_user in &sim_users {
            let account = store
                .accounts()
                .create(
                    user.id,
                    NewBrokerAccount {
                        label: format!("simulator {}", sim_user.name),
                        broker: BrokerKind::Sim,
                        environment: Environment::Demo,
                        username: Some(sim_user.name.clone()),
                        credentials: BrokerCredentials {
                            password: Some(Secret::new(SIM_PASSWORD)),
                            ..BrokerCredentials::default()
                        },
                        require_brackets: false,
                    },
                )
                .await
                .unwrap();
            let listed: Vec<BrokerSubAccount> = sim_user
                .accounts
                .iter()
                .map(|a| BrokerSubAccount {
                    broker_sub_account_id: a.id.to_string(),
                    name: a.name.clone(),
                })
                .collect();
            subs.extend(
                store
                    .accounts()
                    .sync_sub_accounts(user.id, account.id, &listed)
                    .await
                    .unwrap(),
            );
            broker_accounts.push(account.id);
        }
        subs.sort_by_key(|s| names.iter().position(|n| *n == s.name));

        let shutdown = CancellationToken::new();
        let ingest_config = IngestConfig {
            rate_limit: options.rate_limit,
            ..IngestConfig::default()
        };
        let ingest = Ingest::start(&ingest_config, &store, bus.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = ingest.router();
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
        });

        let mut platform = Platform {
            sim,
            store,
            bus,
            user: user.id,
            broker_accounts,
            subs,
            ingest_url: format!("http://{addr}"),
            http: reqwest::Client::new(),
            namespace_tag,
            db_url,
            key,
            shutdown,
            ingest: Some((ingest, server)),
            executor_task: None,
            executor_child: None,
            mode: options.executor,
            broker_429_backoff: options.broker_429_backoff,
            child_env: options.child_env,
            db: Some(db),
            sim_users,
        };
        platform.start_executor();
        platform
    }

    /// Starts a `jt ingest` process on this platform's database and bus (beside the
    /// in-process ingest at [`Platform::ingest_url`]), with `env` added, and waits until it
    /// answers.
    pub async fn spawn_ingest(&self, env: &[(&str, &str)]) -> IngestProcess {
        self.spawn_jt("ingest", env).await
    }

    /// Starts `jt <command>` (a service: `ingest`, `copier`, …) on this platform's database
    /// and bus, with `env` added, and waits until it answers `/healthz`. Dropping the returned
    /// process kills it (SIGKILL).
    pub async fn spawn_jt(&self, jt_command: &str, env: &[(&str, &str)]) -> IngestProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(jt_binary());
        command
            .arg(jt_command)
            .env("NATS_URL", jt_testkit::nats::nats_url())
            .env("DATABASE_URL", &self.db_url)
            .env("JT_BUS_NAMESPACE", &self.namespace_tag)
            .env("JT_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "RUST_LOG",
                std::env::var("JT_E2E_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(if std::env::var_os("JT_E2E_CHILD_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit());
        for (k, v) in &self.child_env {
            command.env(k, v);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let child = ChildGuard(command.spawn().expect("jt starts"));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(format!("{url}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "jt {jt_command} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        IngestProcess { child, url }
    }

    /// Starts the executor (again).
    pub fn start_executor(&mut self) {
        match self.mode {
            ExecutorMode::InProcess => {
                let stop = CancellationToken::new();
                // A fresh context per start, as a restarted process would have: its own
                // broker access (logins, pools, gate) over the same store and bus.
                let access = jt_connect::AccessConfig {
                    too_many_requests_backoff: self.broker_429_backoff,
                    ..jt_connect::AccessConfig::default()
                }
                .with_sim_url(self.sim.base_url())
                .with_webull_url(self.sim.webull_url())
                .with_projectx_url(self.sim.base_url());
                let brokers =
                    std::sync::Arc::new(jt_connect::BrokerAccess::new(self.store.clone(), access));
                let ctx = jt_service::Context::new(self.store.clone(), self.bus.clone(), brokers)
                    .with_shutdown(stop.clone());
                let task = tokio::spawn(async move {
                    jt_executor::start(jt_executor::ExecutorConfig::default(), &ctx)
                        .await
                        .unwrap()
                        .wait()
                        .await
                        .unwrap();
                });
                self.executor_task = Some((stop, task));
            }
            ExecutorMode::Process => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let child = Command::new(jt_binary())
                    .arg("executor")
                    .env("NATS_URL", jt_testkit::nats::nats_url())
                    .env("DATABASE_URL", &self.db_url)
                    .env("JT_SECRET_KEY", self.key.to_hex())
                    .env("JT_SIM_URL", self.sim.base_url())
                    .env("JT_WEBULL_URL", self.sim.webull_url())
                    .env("JT_PROJECTX_URL", self.sim.base_url())
                    .env("JT_BUS_NAMESPACE", &self.namespace_tag)
                    .env(
                        "JT_BROKER_429_BACKOFF_SECS",
                        self.broker_429_backoff
                            .map(|d| d.as_secs().to_string())
                            .unwrap_or_default(),
                    )
                    .env("JT_HTTP_ADDR", format!("127.0.0.1:{port}"))
                    .env(
                        "RUST_LOG",
                        std::env::var("JT_E2E_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
                    )
                    // Services log to stdout; shown only when asked for (JT_E2E_CHILD_LOG).
                    .stdout(if std::env::var_os("JT_E2E_CHILD_LOG").is_some() {
                        Stdio::inherit()
                    } else {
                        Stdio::null()
                    })
                    .stderr(Stdio::inherit())
                    .envs(self.child_env.iter().map(|(k, v)| (k, v)))
                    .spawn()
                    .expect("jt executor starts");
                self.executor_child = Some(ChildGuard(child));
            }
        }
    }

    /// Kills the executor without warning (SIGKILL for a process, abort for a task).
    pub async fn kill_executor(&mut self) {
        if let Some(mut child) = self.executor_child.take() {
            child.0.kill().unwrap();
            child.0.wait().unwrap();
        }
        if let Some((_, task)) = self.executor_task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// A Webull login named `name` on the simulator's Webull surface with one account of the
    /// same name, stored as a `webull` broker account (its app key and secret sealed) reached
    /// through `JT_WEBULL_URL`; returns the new sub-account's index in [`Platform::subs`].
    pub async fn webull_account(&mut self, name: &str) -> usize {
        let secret = format!("{name}-secret");
        let created = self
            .sim
            .admin()
            .create_user(&SimUser {
                name: name.into(),
                password: secret.clone(),
                accounts: vec![name.into()],
                balance: Some(Decimal::from(1_000_000)),
                sec: Some(secret.clone()),
                protocol: jt_sim::core::model::Protocol::Webull,
                ..SimUser::default()
            })
            .unwrap();
        let account = self
            .store
            .accounts()
            .create(
                self.user,
                NewBrokerAccount {
                    label: format!("webull {name}"),
                    broker: BrokerKind::Webull,
                    environment: Environment::Demo,
                    username: None,
                    credentials: BrokerCredentials {
                        api_key: Some(Secret::new(created.api_key.clone().unwrap())),
                        api_secret: Some(Secret::new(secret)),
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
        let subs = self
            .store
            .accounts()
            .sync_sub_accounts(self.user, account.id, &listed)
            .await
            .unwrap();
        self.broker_accounts.push(account.id);
        self.subs.extend(subs);
        self.sim_users.push(created);
        self.subs.len() - 1
    }

    /// A ProjectX login named `name` on the simulator's ProjectX surface (its REST API and
    /// user hub, reached through `JT_PROJECTX_URL`) with one account of the same name, stored
    /// as a `projectx` broker account (user name and sealed API key, demo firm); returns the
    /// new sub-account's index in [`Platform::subs`]. Its broker sub-account id is the
    /// account's number, its contracts ProjectX contract ids (`CON.F.US.ENQ.Z26`).
    pub async fn projectx_account(&mut self, name: &str) -> usize {
        let created = self
            .sim
            .admin()
            .create_user(&SimUser {
                name: name.into(),
                password: format!("{name}-password"),
                accounts: vec![name.into()],
                balance: Some(Decimal::from(1_000_000)),
                protocol: jt_sim::core::model::Protocol::ProjectX,
                ..SimUser::default()
            })
            .unwrap();
        let account = self
            .store
            .accounts()
            .create(
                self.user,
                NewBrokerAccount {
                    label: format!("projectx {name}"),
                    broker: BrokerKind::ProjectX,
                    environment: Environment::Demo,
                    username: Some(name.into()),
                    credentials: BrokerCredentials {
                        api_key: Some(Secret::new(created.api_key.clone().unwrap())),
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
        let subs = self
            .store
            .accounts()
            .sync_sub_accounts(self.user, account.id, &listed)
            .await
            .unwrap();
        self.broker_accounts.push(account.id);
        self.subs.extend(subs);
        self.sim_users.push(created);
        self.subs.len() - 1
    }

    /// A recorder with `settings` and one trader per `(sub-account index, overrides)`.
    /// Returns the recorder and its webhook token.
    pub async fn recorder(
        &self,
        settings: Settings,
        traders: &[(usize, SettingsOverrides)],
    ) -> (RecorderId, String) {
        let (recorder, token) = self
            .store
            .recorders()
            .create(
                self.user,
                NewRecorder {
                    name: format!("recorder {}", uuid::Uuid::new_v4().simple()),
                    symbol: None,
                    settings,
                    commission_per_contract: Decimal::ZERO,
                },
            )
            .await
            .unwrap();
        for (index, overrides) in traders {
            self.store
                .traders()
                .create(
                    self.user,
                    NewTrader {
                        recorder: recorder.id,
                        sub_account: self.subs[*index].id,
                        enabled: true,
                        overrides: overrides.clone(),
                    },
                )
                .await
                .unwrap();
        }
        (recorder.id, token.expose().to_string())
    }

    /// Posts an alert body to the webhook; returns the HTTP status and JSON answer.
    pub async fn alert(&self, token: &str, body: &str) -> (u16, serde_json::Value) {
        let res = self
            .http
            .post(format!("{}/webhook/{token}", self.ingest_url))
            .header("content-type", "text/plain")
            .body(body.to_string())
            .send()
            .await
            .expect("webhook request");
        let status = res.status().as_u16();
        let json = res.json().await.unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// Posts an alert and asserts it was queued.
    pub async fn queued(&self, token: &str, body: &str) -> uuid::Uuid {
        let (status, answer) = self.alert(token, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "queued", "{answer}");
        answer["signal_id"].as_str().unwrap().parse().unwrap()
    }

    /// Every order the simulator received for sub-account `index`.
    pub fn orders(&self, index: usize) -> Vec<OrderRecord> {
        let mut orders = self
            .sim
            .admin()
            .orders(Some(&self.subs[index].name))
            .unwrap();
        orders.sort_by_key(|o| (o.received_us, o.id));
        orders
    }

    /// Waits until `done(orders)` holds for sub-account `index` (or panics after `timeout`).
    pub async fn wait_orders(
        &self,
        index: usize,
        timeout: Duration,
        done: impl Fn(&[OrderRecord]) -> bool,
    ) -> Vec<OrderRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let orders = self.orders(index);
            if done(&orders) {
                return orders;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for orders on {}: {:#?}",
                self.subs[index].name,
                orders
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The intents caused by `signal`, once every one of them reached a final state.
    pub async fn settled_intents(
        &self,
        signal: uuid::Uuid,
        expected: usize,
        timeout: Duration,
    ) -> Vec<Intent> {
        let deadline = Instant::now() + timeout;
        loop {
            let intents = self
                .store
                .intents()
                .for_signal(self.user, jt_store::SignalId(signal))
                .await
                .unwrap();
            let settled = intents
                .iter()
                .filter(|i| i.status.is_terminal() || i.status == IntentStatus::Accepted)
                .count();
            if intents.len() >= expected && settled == intents.len() {
                return intents;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {expected} settled intents of signal {signal}: {intents:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message BROKER_EVENTS holds for sub-account `index` and `entity` (`fill`,
    /// `order`, `position`, …): (message id, message), in stream order.
    pub async fn broker_events(
        &self,
        index: usize,
        entity: &str,
    ) -> Vec<(String, jt_connmgr::BrokerEventMessage)> {
        let subject = self
            .bus
            .subjects()
            .broker_event(&self.subs[index].id.to_string(), entity)
            .unwrap();
        let stream = self.bus.namespace().stream_name("BROKER_EVENTS");
        let mut out = Vec::new();
        let mut seq = 1;
        while let Some(stored) = self.bus.next_message(&stream, &subject, seq).await.unwrap() {
            seq = stored.sequence + 1;
            let env = jt_bus::Envelope::<jt_connmgr::BrokerEventMessage>::decode(&stored.message)
                .unwrap();
            out.push((env.id.as_str().to_string(), env.payload));
        }
        out
    }

    /// The broker of sub-account `index` and its id there, through a broker access of the
    /// test's own: what a person trading outside the platform (or another tool) would use.
    ///
    /// # Panics
    /// When the login cannot be read or reached.
    pub async fn by_hand(
        &self,
        index: usize,
    ) -> (std::sync::Arc<dyn jt_broker::Broker>, jt_broker::AccountId) {
        let login = self
            .store
            .accounts()
            .get(self.user, self.subs[index].broker_account)
            .await
            .expect("the sub-account's login");
        let access = jt_connect::AccessConfig::default().with_sim_url(self.sim.base_url());
        let broker = jt_connect::BrokerAccess::new(self.store.clone(), access)
            .for_account(&login)
            .await
            .expect("the login's broker");
        (
            broker,
            jt_broker::AccountId::from(self.subs[index].broker_sub_account_id.as_str()),
        )
    }

    /// The simulator's net position of sub-account `index`, over every contract.
    pub fn net_position(&self, index: usize) -> i64 {
        self.sim
            .admin()
            .positions(Some(&self.subs[index].name))
            .unwrap()
            .iter()
            .map(|x| x.net_pos)
            .sum()
    }

    /// Sets the simulator's price of a root's front month.
    pub fn price(&self, root: &str, price: &str) {
        self.sim
            .admin()
            .set_price(root, price.parse().unwrap())
            .unwrap();
    }

    /// The store's secret key, hex (`JT_SECRET_KEY` of a spawned service that reads sealed
    /// credentials).
    #[must_use]
    pub fn secret_key_hex(&self) -> String {
        self.key.to_hex()
    }

    /// The private database server, when the platform has one.
    pub fn db_server(&self) -> Option<&jt_testkit::PgServer> {
        match &self.db {
            Some(DbGuard::Private(s)) => Some(s),
            _ => None,
        }
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some((ingest, server)) = self.ingest.take() {
            let _ = server.await;
            ingest.stop().await;
        }
        if let Some((stop, task)) = self.executor_task.take() {
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(25), task).await;
        }
        self.kill_executor().await;
        self.sim.shutdown().await;
        let _ = self
            .bus
            .teardown(&Definitions::new(self.bus.namespace()).topology())
            .await;
    }
}

/// A `jt` service child process of a [`Platform`] ([`Platform::spawn_ingest`],
/// [`Platform::spawn_jt`]).
pub struct IngestProcess {
    child: ChildGuard,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl IngestProcess {
    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Its resident memory in KiB (Linux `/proc/<pid>/status`, `VmRSS`).
    #[must_use]
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status (Linux)");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .0
            .try_wait()
            .map(|s| s.is_none())
            .unwrap_or(false)
    }

    /// Stops it with SIGTERM (as Kubernetes does) and waits for it to exit; returns whether
    /// it exited successfully.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// A child process killed when dropped (a failing test never leaves an executor behind).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `jt` binary of this build (beside the test executable's `deps/` directory).
///
/// # Panics
/// When it has not been built (`cargo test --workspace` builds it; alone: `cargo build -p jt`).
#[must_use]
pub fn jt_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let jt = dir.join("jt");
    assert!(
        jt.exists(),
        "the jt binary is not built at {}: run `cargo build -p jt` (make test builds it)",
        jt.display()
    );
    jt
}

/// Whether the simulator still works `order` (not filled, cancelled or rejected).
#[must_use]
pub fn is_working(order: &OrderRecord) -> bool {
    matches!(
        format!("{:?}", order.status).as_str(),
        "Working" | "Suspended" | "PendingNew"
    )
}

/// Asserts the intent ended in `expected`, showing its recorded reason when it did not.
///
/// # Panics
/// When the status differs.
pub fn assert_status(intent: &Intent, expected: IntentStatus) {
    assert_eq!(
        intent.status, expected,
        "intent {:?}: {:?}",
        intent.id, intent.status_reason
    );
}

/// Polls `probe` every 100 ms until it returns something, for at most `timeout`.
///
/// # Panics
/// When `timeout` passes first, naming `what`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long until the wall clock next reads `millis` past a whole second (0..1000), strictly
/// later than now: to send alerts at chosen instants of a second (the ingest's message id
/// changes with the second).
#[must_use]
pub fn until_millisecond(millis: u32) -> Duration {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros());
    let target = millis * 1_000;
    let wait = if target > into {
        target - into
    } else {
        1_000_000 - into + target
    };
    Duration::from_micros(u64::from(wait))
}

/// An alert body.
#[must_use]
pub fn alert(action: &str, position: &str, extra: &str) -> String {
    format!(r#"{{"action":"{action}","ticker":"MNQ1!","position":"{position}"{extra}}}"#)
}

/// The connection manager running in the test's process on a platform's store and bus:
/// broker access to its simulator, no start stagger, a fast scan (of logins and of the contracts
/// quotes are wanted for).
pub struct ConnectionManager {
    /// Its context: start other services (positions, copier) on it with a child shutdown.
    pub ctx: jt_service::Context,
    /// Cancelled by [`ConnectionManager::stop`]; the parent of the services started on `ctx`.
    pub stop: CancellationToken,
    running: jt_service::Running,
}

impl ConnectionManager {
    /// Starts it and waits until the platform's first login is connected.
    ///
    /// # Panics
    /// When it cannot start, or the login does not connect within 30 s.
    pub async fn start(p: &Platform) -> Self {
        let access = jt_connect::AccessConfig::default()
            .with_sim_url(p.sim.base_url())
            .with_webull_url(p.sim.webull_url())
            .with_projectx_url(p.sim.base_url())
            .with_start_stagger(Duration::ZERO);
        let brokers = std::sync::Arc::new(jt_connect::BrokerAccess::new(p.store.clone(), access));
        let stop = CancellationToken::new();
        let ctx = jt_service::Context::new(p.store.clone(), p.bus.clone(), brokers)
            .with_shutdown(stop.clone());
        let running = jt_connmgr::start(
            jt_connmgr::ConnmgrConfig {
                scan_every: Duration::from_millis(500),
                quotes_every: Duration::from_millis(500),
                ..jt_connmgr::ConnmgrConfig::default()
            },
            &ctx,
        )
        .await
        .expect("the connection manager starts");
        let login = p.subs[0].broker_account;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = jt_connmgr::read_status(&p.bus, login)
                .await
                .expect("the lease bucket answers");
            if status.is_some_and(|s| s.state == jt_connmgr::LinkState::Connected) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the login to be connected"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { ctx, stop, running }
    }

    /// Stops it (and every service started on its context) and waits for it to end.
    ///
    /// # Panics
    /// When it ended with an error.
    pub async fn stop(self) {
        self.stop.cancel();
        self.running
            .wait()
            .await
            .expect("the connection manager stops cleanly");
    }
}

/// The positions service on a platform's store and bus, with broker access to its simulator:
/// it writes the store from the connection manager's events, reconciles, keeps the trade and
/// paper records. Stopped by [`PositionsService::stop`].
pub struct PositionsService {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl PositionsService {
    /// Starts it with `config`.
    ///
    /// # Panics
    /// (In its task) when it cannot start or ends with an error.
    #[must_use]
    pub fn start(p: &Platform, config: jt_positions::PositionsConfig) -> Self {
        let access = jt_connect::AccessConfig::default().with_sim_url(p.sim.base_url());
        let brokers = std::sync::Arc::new(jt_connect::BrokerAccess::new(p.store.clone(), access));
        let stop = CancellationToken::new();
        let ctx = jt_service::Context::new(p.store.clone(), p.bus.clone(), brokers)
            .with_shutdown(stop.clone());
        let task = tokio::spawn(async move {
            jt_positions::start(config, &ctx)
                .await
                .expect("the positions service starts")
                .wait()
                .await
                .expect("the positions service ends cleanly");
        });
        Self { stop, task }
    }

    /// Stops it and waits for it to end.
    ///
    /// # Panics
    /// When it does not stop within 25 s or ended with an error.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(25), self.task)
            .await
            .expect("the positions service stops")
            .expect("the positions service's task");
    }
}

/// The risk service on a platform's store and bus, with broker access to its simulator and no
/// connection manager: what carries kill switches out (`jt_risk::kill`). Tests that engage a
/// kill switch start it, as a deployment runs it; the risk tests that judge P&L run it on a
/// connection manager's context instead (`e2e/risk.rs`).
pub struct RiskService {
    stop: CancellationToken,
    running: jt_service::Running,
}

impl RiskService {
    /// Starts it; it carries a kill switch out within a quarter of a second of its engagement
    /// once it holds the monitor's lease (at once on a fresh namespace).
    ///
    /// # Panics
    /// When it cannot start.
    pub async fn start(p: &Platform) -> Self {
        let access = jt_connect::AccessConfig::default()
            .with_sim_url(p.sim.base_url())
            .with_webull_url(p.sim.webull_url())
            .with_projectx_url(p.sim.base_url());
        let brokers = std::sync::Arc::new(jt_connect::BrokerAccess::new(p.store.clone(), access));
        let stop = CancellationToken::new();
        let ctx = jt_service::Context::new(p.store.clone(), p.bus.clone(), brokers)
            .with_shutdown(stop.clone());
        let running = jt_risk::start(jt_risk::RiskConfig::default(), &ctx)
            .await
            .expect("the risk service starts");
        Self { stop, running }
    }

    /// Stops it and waits for it to end.
    ///
    /// # Panics
    /// When it ended with an error.
    pub async fn stop(self) {
        self.stop.cancel();
        self.running
            .wait()
            .await
            .expect("the risk service stops cleanly");
    }
}
