//! Connection settings of the store, read from the environment by the binary.

use std::time::Duration;

use crate::secret::SecretKey;

/// The variable naming the database.
pub const DATABASE_URL_VAR: &str = "DATABASE_URL";
/// The database used when `DATABASE_URL` is unset: a SQLite file under `./data`, created on
/// first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/jt.db";
/// Pool size variable.
pub const MAX_CONNECTIONS_VAR: &str = "JT_DB_MAX_CONNECTIONS";
/// How long start-up keeps retrying an unreachable database, in seconds.
pub const CONNECT_RETRY_VAR: &str = "JT_DB_CONNECT_RETRY_SECS";

/// A configuration value that is malformed; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is invalid: {reason}")]
pub struct StoreConfigError {
    /// The variable.
    pub name: &'static str,
    /// The value found (never a secret: URLs are shown without their password).
    pub value: String,
    /// What is expected.
    pub reason: String,
}

/// How to reach the database and how to size the pool.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://…` or `sqlite://path` (`sqlite::memory:` for a private in-memory database).
    pub database_url: String,
    /// Most connections the pool opens (`JT_DB_MAX_CONNECTIONS`, default 10).
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before failing as unavailable.
    pub acquire_timeout: Duration,
    /// How long [`crate::Store::connect`] retries an unreachable database before giving up
    /// (`JT_DB_CONNECT_RETRY_SECS`, default 60; 0 = one attempt).
    pub connect_retry_for: Duration,
    /// SQLite: how long a writer waits for the database lock.
    pub sqlite_busy_timeout: Duration,
    /// The key that seals broker secrets; `None` for tools that never touch secrets
    /// (`jt db`). Services must set it (see [`SecretKey::from_lookup`]).
    pub secret_key: Option<SecretKey>,
}

impl StoreConfig {
    /// Defaults for `database_url`.
    #[must_use]
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            connect_retry_for: Duration::from_secs(60),
            sqlite_busy_timeout: Duration::from_secs(5),
            secret_key: None,
        }
    }

    /// Sets the secret key.
    #[must_use]
    pub fn with_secret_key(mut self, key: SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// Reads `DATABASE_URL` (default [`DEFAULT_DATABASE_URL`]), `JT_DB_MAX_CONNECTIONS` and
    /// `JT_DB_CONNECT_RETRY_SECS` through `lookup`. The secret key is read separately
    /// ([`SecretKey::from_lookup`]) because only services that handle secrets require it.
    ///
    /// # Errors
    /// [`StoreConfigError`] naming the malformed variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, StoreConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let url = get(DATABASE_URL_VAR).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        Backend::of_url(&url).ok_or_else(|| StoreConfigError {
            name: DATABASE_URL_VAR,
            value: redact_url(&url),
            reason: "expected postgres://user@host/db or sqlite://path".to_string(),
        })?;
        let mut cfg = Self::new(url.trim());
        if let Some(v) = get(MAX_CONNECTIONS_VAR) {
            cfg.max_connections =
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| StoreConfigError {
                        name: MAX_CONNECTIONS_VAR,
                        value: v.clone(),
                        reason: "expected a whole number of connections, at least 1".to_string(),
                    })?;
        }
        if let Some(v) = get(CONNECT_RETRY_VAR) {
            cfg.connect_retry_for =
                Duration::from_secs(v.trim().parse::<u64>().map_err(|_| StoreConfigError {
                    name: CONNECT_RETRY_VAR,
                    value: v.clone(),
                    reason: "expected whole seconds".to_string(),
                })?);
        }
        Ok(cfg)
    }

    /// The engine named by the URL.
    #[must_use]
    pub fn backend(&self) -> Option<Backend> {
        Backend::of_url(&self.database_url)
    }

    /// The URL without its password, for logs and messages.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact_url(&self.database_url)
    }

    /// Whether the database is on this machine (SQLite, or PostgreSQL on a loopback address or
    /// a Unix socket): the condition under which `jt db reset` is allowed.
    #[must_use]
    pub fn is_local(&self) -> bool {
        match self.backend() {
            Some(Backend::Sqlite) => true,
            Some(Backend::Postgres) => match url::Url::parse(&self.database_url) {
                Ok(u) => match u.host_str() {
                    None | Some("") => true,
                    Some(h) => {
                        let h = h.trim_start_matches('[').trim_end_matches(']');
                        h == "localhost"
                            || h.parse::<std::net::IpAddr>()
                                .is_ok_and(|ip| ip.is_loopback())
                    }
                },
                Err(_) => false,
            },
            None => false,
        }
    }
}

/// The two engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (production, integration tests).
    Postgres,
    /// SQLite (one machine, `jt dev`).
    Sqlite,
}

impl Backend {
    /// The engine of a database URL, `None` for anything else.
    #[must_use]
    pub fn of_url(url: &str) -> Option<Self> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

/// `url` with any password replaced by `***`.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_to_sqlite_under_data() {
        let cfg = StoreConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(cfg.database_url, "sqlite://./data/jt.db");
        assert_eq!(cfg.backend(), Some(Backend::Sqlite));
        assert_eq!(cfg.max_connections, 10);
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let err = StoreConfig::from_lookup(lookup(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(err.name, "DATABASE_URL");
        let err = StoreConfig::from_lookup(lookup(&[("JT_DB_MAX_CONNECTIONS", "0")])).unwrap_err();
        assert!(
            err.to_string().starts_with("JT_DB_MAX_CONNECTIONS=\"0\""),
            "{err}"
        );
    }

    #[test]
    fn passwords_never_reach_messages() {
        let cfg = StoreConfig::new("postgres://jt:s3cret@db.internal:5432/jt");
        assert!(!cfg.redacted_url().contains("s3cret"));
        assert!(!cfg.is_local());
        assert!(StoreConfig::new("postgres://postgres@127.0.0.1:5432/test").is_local());
        assert!(StoreConfig::new("postgres://postgres@localhost/test").is_local());
        assert!(StoreConfig::new("sqlite://./data/jt.db").is_local());
    }
}
