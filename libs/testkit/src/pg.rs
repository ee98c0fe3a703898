//! A fresh PostgreSQL database per test: `jt_test_<unix seconds>_<random>` on the server of
//! `DATABASE_URL`, dropped when the [`TestDatabase`] is dropped, so parallel tests (and
//! parallel test runs of several people on one server) never see each other's rows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// The variable naming the PostgreSQL server for tests.
pub const DATABASE_URL_VAR: &str = "DATABASE_URL";
/// Databases left behind by a killed test run are dropped once older than this.
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);
const PREFIX: &str = "jt_test_";

/// The PostgreSQL URL of the test server; panics naming `DATABASE_URL` when it is unset or is
/// not a PostgreSQL URL.
///
/// # Panics
/// When `DATABASE_URL` is unset, empty or not `postgres://…`.
#[must_use]
pub fn database_url() -> String {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
        Ok(other) if !other.trim().is_empty() => panic!(
            "{DATABASE_URL_VAR}={other:?} is not a PostgreSQL URL; the PostgreSQL tests need \
             postgres://… (run them through `scripts/test-services -- cargo test …`)"
        ),
        _ => panic!(
            "{DATABASE_URL_VAR} is not set: the PostgreSQL tests need a server. Run them through \
             `scripts/test-services -- cargo test …` (what `make test` does), or set \
             {DATABASE_URL_VAR}=postgres://postgres@127.0.0.1:5432/test"
        ),
    }
}

/// A private database on the test server, dropped (with any open connections) on drop.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates `jt_test_<secs>_<random>` on the server of `DATABASE_URL`.
    ///
    /// # Panics
    /// When `DATABASE_URL` is unset or the server refuses (a test cannot run without it).
    pub async fn create() -> TestDatabase {
        let admin_url = database_url();
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let rand = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{PREFIX}{secs}_{}", &rand[..12]);
        let admin = connect(&admin_url).await;
        drop_stale(&admin, secs).await;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| {
                panic!("cannot create test database {name} on {DATABASE_URL_VAR}: {e}")
            });
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|e| panic!("{DATABASE_URL_VAR} is not a valid URL: {e}"));
        url.set_path(&format!("/{name}"));
        TestDatabase {
            name,
            url: url.to_string(),
            admin_url,
        }
    }

    /// The URL of the private database.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with
        // its own small runtime, and wait for it so the database is gone when the test ends.
        let name = self.name.clone();
        let admin_url = self.admin_url.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(options(&admin_url)).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

fn options(url: &str) -> ConnectOptions {
    let mut o = ConnectOptions::new(url.to_string());
    o.max_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    o
}

async fn connect(url: &str) -> DatabaseConnection {
    Database::connect(options(url)).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to {DATABASE_URL_VAR} ({}): {e}",
            redact(url)
        )
    })
}

/// Drops test databases older than [`STALE_AFTER`] (left by killed runs). Best effort.
async fn drop_stale(admin: &DatabaseConnection, now_secs: u64) {
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'"),
        ))
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|c| now_secs.saturating_sub(c) > STALE_AFTER.as_secs()) {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl TestDatabase {
    /// Terminates every open connection to the database (as a server restart or a network
    /// cut would), to test that pools reconnect.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn terminate_connections(&self) {
        let admin = connect(&self.admin_url).await;
        admin
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                self.name
            ))
            .await
            .unwrap_or_else(|e| panic!("cannot terminate connections to {}: {e}", self.name));
        let _ = admin.close().await;
    }
}
