//! Shared harness of the store's integration tests: every test runs twice, on SQLite (a file
//! in a temporary directory) and on PostgreSQL (a fresh `jt_test_*` database on the server of
//! `DATABASE_URL`; the test panics naming the variable when it is unset).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fixture;

use std::ops::Deref;

use jt_domain::{Settings, SettingsOverrides};
use jt_store::repo::accounts::{BrokerCredentials, BrokerSubAccount, NewBrokerAccount, SubAccount};
use jt_store::repo::auth::{NewUser, User};
use jt_store::repo::recorders::{NewRecorder, Recorder};
use jt_store::repo::traders::{NewTrader, Trader};
use jt_store::{
    BrokerAccountId, BrokerKind, Environment, RecorderId, Role, Secret, SecretKey, Store,
    StoreConfig, SubAccountId, UserId,
};
use jt_testkit::{TempSqlite, TestDatabase};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, Statement};

/// The two engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

enum Guard {
    Sqlite(TempSqlite),
    Postgres(TestDatabase),
}

/// A migrated store on a private database, removed when dropped.
pub struct TestStore {
    pub store: Store,
    pub engine: Engine,
    pub key: SecretKey,
    pub url: String,
    _guard: Guard,
}

impl Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl TestStore {
    /// A connected, migrated store with a random secret key.
    pub async fn new(engine: Engine) -> TestStore {
        let t = Self::unmigrated(engine).await;
        t.store.migrate().await.expect("migrations apply");
        t
    }

    /// A connected store on an empty database.
    pub async fn unmigrated(engine: Engine) -> TestStore {
        let (guard, url) = match engine {
            Engine::Sqlite => {
                let s = TempSqlite::new();
                let url = s.url().to_string();
                (Guard::Sqlite(s), url)
            }
            Engine::Postgres => {
                let d = TestDatabase::create().await;
                let url = d.url().to_string();
                (Guard::Postgres(d), url)
            }
        };
        let key = SecretKey::generate();
        let mut cfg = StoreConfig::new(url.clone()).with_secret_key(key.clone());
        cfg.max_connections = 4;
        let store = Store::connect(&cfg).await.expect("store connects");
        TestStore {
            store,
            engine,
            key,
            url,
            _guard: guard,
        }
    }

    /// Kills every server-side connection of the store's pool (PostgreSQL only).
    pub async fn terminate_connections(&self) {
        match &self._guard {
            Guard::Postgres(d) => d.terminate_connections().await,
            Guard::Sqlite(_) => panic!("terminate_connections is for PostgreSQL"),
        }
    }

    /// A second store on the same database with another key.
    pub async fn with_key(&self, key: SecretKey) -> Store {
        let mut cfg = StoreConfig::new(self.url.clone()).with_secret_key(key);
        cfg.max_connections = 2;
        Store::connect(&cfg).await.expect("store connects")
    }

    /// Runs a raw query returning one text column (tests only: reading what is really stored).
    pub async fn raw_strings(&self, sql: &str) -> Vec<String> {
        let db = self.store.connection();
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_string(),
        ))
        .await
        .expect("raw query")
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text column"))
        .collect()
    }

    /// Counts rows of `table` matching `filter` (SQL, tests only).
    pub async fn count(&self, table: &str, filter: &str) -> i64 {
        let db = self.store.connection();
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {filter}");
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("count query")
            .expect("one row");
        row.try_get_by_index::<i64>(0).expect("count")
    }

    /// A user.
    pub async fn user(&self, email: &str) -> User {
        self.users()
            .register(NewUser {
                email: email.to_string(),
                display_name: None,
                password: Secret::new("correct horse battery"),
                role: Role::User,
                approved: true,
            })
            .await
            .expect("register")
    }

    /// An admin.
    pub async fn admin_user(&self, email: &str) -> User {
        self.users()
            .register(NewUser {
                email: email.to_string(),
                display_name: None,
                password: Secret::new("correct horse battery"),
                role: Role::Admin,
                approved: true,
            })
            .await
            .expect("register admin")
    }

    /// A Tradovate demo account with one sub-account.
    pub async fn account(&self, owner: &User, name: &str) -> (BrokerAccountId, SubAccount) {
        let acc = self
            .accounts()
            .create(
                owner.id,
                NewBrokerAccount {
                    label: format!("{name} login"),
                    broker: BrokerKind::Tradovate,
                    environment: Environment::Demo,
                    username: Some(format!("{name}-user")),
                    credentials: BrokerCredentials {
                        password: Some(Secret::new(format!("{name}-password-plaintext"))),
                        ..BrokerCredentials::default()
                    },
                    require_brackets: false,
                },
            )
            .await
            .expect("account");
        let subs = self
            .accounts()
            .sync_sub_accounts(
                owner.id,
                acc.id,
                &[BrokerSubAccount {
                    broker_sub_account_id: format!("{}", 1000 + name.len()),
                    name: format!("DEMO-{name}"),
                }],
            )
            .await
            .expect("sub-accounts");
        (acc.id, subs.into_iter().next().expect("one sub-account"))
    }

    /// An enabled trader on `sub` following `recorder`, with no overrides.
    pub async fn trader(&self, owner: UserId, recorder: RecorderId, sub: SubAccountId) -> Trader {
        self.traders()
            .create(
                owner,
                NewTrader {
                    recorder,
                    sub_account: sub,
                    enabled: true,
                    overrides: SettingsOverrides::default(),
                },
            )
            .await
            .expect("trader")
    }

    /// A recorder with default settings.
    pub async fn recorder(&self, owner: &User, name: &str) -> (Recorder, Secret) {
        self.recorders()
            .create(
                owner.id,
                NewRecorder {
                    name: name.to_string(),
                    symbol: Some("MNQ1!".to_string()),
                    settings: Settings::default(),
                    commission_per_contract: Decimal::ZERO,
                },
            )
            .await
            .expect("recorder")
    }
}

/// Generates `mod <name> { sqlite, postgres }` tests calling `async fn <name>(&TestStore)`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::common::TestStore::new($crate::common::Engine::Sqlite).await;
                super::$name(&t).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = $crate::common::TestStore::new($crate::common::Engine::Postgres).await;
                super::$name(&t).await;
            }
        }
    )*};
}
