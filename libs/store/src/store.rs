//! The [`Store`]: one connection pool, the migrations, readiness, and the repositories.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jt_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::config::{Backend, StoreConfig};
use crate::error::{StoreError, StoreResult, is_connection_error};
use crate::secret::{SecretCipher, SecretError};

/// The platform's records: cheap to clone (one shared pool), safe to share between tasks.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    backend: Backend,
    cipher: Option<Arc<SecretCipher>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("secrets", &self.cipher.is_some())
            .finish_non_exhaustive()
    }
}

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// The migration's name (its file name).
    pub name: String,
    /// Whether it is applied to this database.
    pub applied: bool,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// SQLite connections idle longer than this are checked before use (PostgreSQL likewise), so
/// a server restart is noticed without a round trip on every query.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

impl Store {
    /// Connects, retrying an unreachable database with exponential back-off (0.25 s doubling
    /// to 5 s) for up to `config.connect_retry_for`, so a service that starts before its
    /// database waits instead of crash-looping. SQLite files (and their directory) are created
    /// when missing, in WAL mode with a busy timeout and foreign keys enforced on every
    /// connection.
    ///
    /// After start-up the pool reconnects by itself: a query during an outage fails with
    /// [`StoreError::Unavailable`] (retry later) and [`Store::ping`] reports it for readiness.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a URL that names no supported engine;
    /// [`StoreError::Unavailable`] when the database stayed unreachable.
    pub async fn connect(config: &StoreConfig) -> StoreResult<Store> {
        let backend = config.backend().ok_or_else(|| {
            StoreError::invalid(
                "DATABASE_URL",
                format!(
                    "{} is neither postgres://… nor sqlite://…",
                    config.redacted_url()
                ),
            )
        })?;
        if backend == Backend::Sqlite {
            create_sqlite_dir(&config.database_url)?;
        }
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            match Database::connect(connect_options(config, backend)).await {
                Ok(db) => {
                    return Ok(Store {
                        db,
                        backend,
                        cipher: config
                            .secret_key
                            .as_ref()
                            .map(|k| Arc::new(SecretCipher::new(k))),
                    });
                }
                Err(err) if started.elapsed() + backoff <= config.connect_retry_for => {
                    tracing::warn!(
                        url = %config.redacted_url(),
                        error = %err,
                        retry_in_ms = backoff.as_millis() as u64,
                        "database unreachable; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(err) => {
                    return Err(if is_connection_error(&err) {
                        StoreError::Unavailable(err)
                    } else {
                        StoreError::Database(err)
                    });
                }
            }
        }
    }

    /// The engine in use.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The sea-orm connection, for migrations, tests and tools. Services use the repositories,
    /// which scope every read and write to its owner.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Readiness: one round trip to the database.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be reached.
    pub async fn ping(&self) -> StoreResult<()> {
        self.db
            .execute_unprepared("SELECT 1")
            .await
            .map(|_| ())
            .map_err(StoreError::Unavailable)
    }

    /// Applies every pending migration; returns the names applied now.
    ///
    /// # Errors
    /// The failing migration's error (each migration runs in a transaction on PostgreSQL).
    pub async fn migrate(&self) -> StoreResult<Vec<String>> {
        let pending: Vec<String> = self
            .migration_status()
            .await?
            .into_iter()
            .filter(|m| !m.applied)
            .map(|m| m.name)
            .collect();
        Migrator::up(&self.db, None)
            .await
            .map_err(StoreError::from)?;
        Ok(pending)
    }

    /// Every migration with its state, oldest first. Reads only (creates nothing).
    ///
    /// # Errors
    /// A database error, or an applied migration unknown to this build (a newer binary
    /// migrated this database).
    pub async fn migration_status(&self) -> StoreResult<Vec<MigrationState>> {
        Ok(Migrator::get_migration_with_status_read_only(&self.db)
            .await
            .map_err(StoreError::from)?
            .into_iter()
            .map(|m| MigrationState {
                name: m.name().to_string(),
                applied: m.status() == jt_migrations::MigrationStatus::Applied,
            })
            .collect())
    }

    /// Rolls back every migration (dropping every table and its data), then applies them all
    /// again. For development databases only: the `jt db reset` command refuses a database
    /// that is not on this machine.
    ///
    /// # Errors
    /// The failing migration's error.
    pub async fn reset(&self) -> StoreResult<()> {
        Migrator::down(&self.db, None)
            .await
            .map_err(StoreError::from)?;
        Migrator::up(&self.db, None).await.map_err(StoreError::from)
    }

    /// Rolls back every migration and leaves the database empty (tests of `down`).
    ///
    /// # Errors
    /// The failing migration's error.
    pub async fn migrate_down_all(&self) -> StoreResult<()> {
        Migrator::down(&self.db, None)
            .await
            .map_err(StoreError::from)
    }

    /// Closes the pool.
    ///
    /// # Errors
    /// A database error while closing.
    pub async fn close(self) -> StoreResult<()> {
        self.db.close().await.map_err(StoreError::from)
    }

    pub(crate) fn cipher(&self) -> StoreResult<&SecretCipher> {
        self.cipher
            .as_deref()
            .ok_or(StoreError::Secret(SecretError::NoKey))
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }
}

fn connect_options(config: &StoreConfig, backend: Backend) -> ConnectOptions {
    let mut opts = ConnectOptions::new(config.database_url.clone());
    opts.max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_timeout(config.acquire_timeout)
        .idle_timeout(Duration::from_secs(600))
        .test_before_acquire(false)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false);
    if backend == Backend::Sqlite {
        let busy = config.sqlite_busy_timeout;
        opts.map_sqlx_sqlite_opts(move |o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
        });
    }
    opts
}

/// Creates the directory of a SQLite file URL (`sqlite://./data/jt.db` → `./data`).
/// Prepares a SQLite database file: its directory is created (owner-only when it is new), and
/// the file and its WAL companions are readable by the owner only (0600): they hold the
/// platform's records, sealed credentials and webhook token hashes. SQLite gives the `-wal`
/// and `-shm` files the database file's permissions, so a new database is created here, empty
/// and private, before SQLite opens it.
fn create_sqlite_dir(url: &str) -> StoreResult<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(());
    }
    let path = std::path::Path::new(path);
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        create_private_dir(dir).map_err(|e| {
            StoreError::invalid(
                "DATABASE_URL",
                format!(
                    "cannot create the directory {} for SQLite: {e}",
                    dir.display()
                ),
            )
        })?;
    }
    make_private(path).map_err(|e| {
        StoreError::invalid(
            "DATABASE_URL",
            format!(
                "cannot make the SQLite file {} private: {e}",
                path.display()
            ),
        )
    })
}

#[cfg(unix)]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn make_private(db: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // An existing database (created before this rule, or copied in): tightened in place.
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::Path::new(&name);
        if let Ok(meta) = std::fs::metadata(file)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_db: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}
