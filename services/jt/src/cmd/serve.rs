//! Start-up plumbing shared by the service subcommands (`jt ingest`, `jt executor`, `jt dev`):
//! the runtime, telemetry, the store, the bus and broker access from the environment — the
//! service skeleton's [`Context`] — and [`run_service`], which runs one service of the skeleton
//! on its own.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use jt_bus::{Bus, BusConfig, Definitions, Namespace};
use jt_connect::{AccessConfig, BrokerAccess};
use jt_runtime::config::{Env, ProcessEnv, optional, or_default};
use jt_runtime::telemetry::{LogFormat, TelemetryConfig, TelemetryGuard};
use jt_service::{Context, Running};
use jt_store::{SecretKey, Store, StoreConfig};

/// A multi-threaded Tokio runtime.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs (JSON for services, human-readable for `jt dev`) and, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry spans.
pub fn telemetry(service: &str, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    jt_runtime::telemetry::init(&TelemetryConfig {
        service_name: service.to_string(),
        format,
        default_filter: "info,sqlx=warn,sea_orm=warn,async_nats=warn".into(),
        otlp_endpoint: optional(&ProcessEnv, "OTEL_EXPORTER_OTLP_ENDPOINT")?,
    })
}

/// Runs the service `name` on its own until SIGINT/SIGTERM: JSON logs, the required
/// environment (`DATABASE_URL`, `NATS_URL`; the secret key when `key` says so), the context,
/// then `start` and the skeleton's listener on `JT_HTTP_ADDR` (default 127.0.0.1:8080) with
/// `/healthz`, `/readyz` and `/metrics`. The schema must be current (`jt db migrate`).
///
/// # Errors
/// A missing or malformed variable, an unreachable store or bus, or the service's failure.
pub fn run_service<S, Fut>(name: &'static str, key: KeySource, start: S) -> anyhow::Result<ExitCode>
where
    S: FnOnce(Context) -> Fut,
    Fut: Future<Output = anyhow::Result<Running>>,
{
    let _telemetry = telemetry(&format!("jt-{name}"), LogFormat::Json)?;
    require_service_env(name, &ProcessEnv)?;
    let listen: SocketAddr = or_default(
        &ProcessEnv,
        "JT_HTTP_ADDR",
        SocketAddr::from(([127, 0, 0, 1], 8080)),
    )?;
    let access = AccessConfig::from_env(&ProcessEnv)?;
    runtime()?.block_on(async move {
        jt_runtime::metrics::install()?;
        crate::catalog::register(&[name]);
        let store = store(key, false, None).await?;
        let bus = bus(Embedded::Refused).await?;
        let ctx = context(store, bus, access).with_shutdown(jt_runtime::shutdown::on_signal());
        let running = start(ctx.clone()).await?;
        jt_service::serve(&ctx, listen, vec![running]).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The skeleton's context over `store` and `bus`, with broker access configured by `access`
/// and the logins' request budgets shared with the rest of the fleet through `bus` (the caller
/// sets its shutdown signal).
pub fn context(store: Store, bus: Bus, access: AccessConfig) -> Context {
    let access = access.with_shared_budgets(jt_connect::BusBudgets::new(&bus));
    let brokers = Arc::new(BrokerAccess::new(store.clone(), access));
    Context::new(store, bus, brokers)
}

/// Where the secret key comes from.
pub enum KeySource {
    /// `JT_SECRET_KEY` is required (services).
    Required,
    /// `JT_SECRET_KEY` when set, else a development key kept in a file (`jt dev`).
    DevFile(std::path::PathBuf),
    /// Not needed (the service never opens a secret).
    None,
}

/// Refuses to start a service without the variables it needs, naming every missing one at
/// once. Only `jt dev` runs on embedded defaults (SQLite under `./data`, the in-process bus): a
/// service that fell back to them would report ready and answer 200 to alerts that no other
/// process ever sees.
///
/// # Errors
/// Which variables are missing, what each is for, and that `jt dev` is the command without them.
pub fn require_service_env(command: &str, env: &impl Env) -> anyhow::Result<()> {
    let missing: Vec<String> = [
        (
            "DATABASE_URL",
            "the platform's database, e.g. postgres://jt:password@db:5432/jt",
        ),
        (
            "NATS_URL",
            "the NATS JetStream server (2.10 or newer), e.g. nats://nats:4222",
        ),
    ]
    .into_iter()
    .filter(|(name, _)| env.get(name).is_none())
    .map(|(name, what)| format!("{name} is not set ({what})"))
    .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "`jt {command}` cannot start: {}. Only `jt dev` runs without them, on SQLite under \
         ./data and an in-process bus that no other process can reach",
        missing.join("; ")
    );
    Ok(())
}

/// Connects the store of `DATABASE_URL` (when unset: `default_url` — `jt dev` only; services
/// check [`require_service_env`] first) and logs which one is in use.
///
/// `migrate`: apply pending migrations (one machine); otherwise refuse to start on a schema
/// that is behind, naming the command that fixes it.
pub async fn store(
    key: KeySource,
    migrate: bool,
    default_url: Option<&str>,
) -> anyhow::Result<Store> {
    if default_url.is_none() {
        require_var("DATABASE_URL")?;
    }
    let mut config = StoreConfig::from_lookup(|n| match (ProcessEnv.get(n), n, default_url) {
        (None, "DATABASE_URL", Some(default)) => Some(default.to_string()),
        (value, _, _) => value,
    })?;
    match key {
        KeySource::Required => {
            config = config.with_secret_key(SecretKey::from_lookup(|n| ProcessEnv.get(n))?);
        }
        KeySource::DevFile(path) => {
            let key = match ProcessEnv.get("JT_SECRET_KEY") {
                Some(_) => SecretKey::from_lookup(|n| ProcessEnv.get(n))?,
                None => SecretKey::load_or_create_dev(&path)?,
            };
            config = config.with_secret_key(key);
        }
        KeySource::None => {}
    }
    let store = Store::connect(&config)
        .await
        .with_context(|| format!("connecting to DATABASE_URL={}", config.redacted_url()))?;
    tracing::info!(
        database = %config.redacted_url(),
        engine = ?store.backend(),
        "store in use"
    );
    if migrate {
        store.migrate().await.context("applying migrations")?;
    } else {
        let pending: Vec<String> = store
            .migration_status()
            .await
            .context("reading the schema version")?
            .into_iter()
            .filter(|m| !m.applied)
            .map(|m| m.name)
            .collect();
        anyhow::ensure!(
            pending.is_empty(),
            "the database schema is behind ({} pending migrations, e.g. {}): run `jt db migrate`",
            pending.len(),
            pending[0]
        );
    }
    Ok(store)
}

fn require_var(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        ProcessEnv.get(name).is_some(),
        "{name} is not set: only `jt dev` runs without it"
    );
    Ok(())
}

/// Whether a command may run on the embedded bus when `NATS_URL` is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedded {
    /// `jt dev`: yes.
    Allowed,
    /// Services: no, `NATS_URL` is required.
    Refused,
}

/// The bus: JetStream at `NATS_URL` (a server older than 2.10 is refused with its version),
/// or — `jt dev` only — the embedded bus when it is unset; provisioned (idempotent, every
/// start) and logged. `JT_BUS_NAMESPACE` puts every stream, consumer and bucket under its own
/// prefix (a second platform on one NATS server; tests).
pub async fn bus(embedded: Embedded) -> anyhow::Result<Bus> {
    if embedded == Embedded::Refused {
        require_var("NATS_URL")?;
    }
    let nats_url: Option<String> = optional(&ProcessEnv, "NATS_URL")?;
    let namespace = match optional::<String>(&ProcessEnv, "JT_BUS_NAMESPACE")? {
        Some(tag) => Namespace::isolated(&tag)
            .map_err(|e| anyhow::anyhow!("JT_BUS_NAMESPACE={tag:?} is invalid: {e}"))?,
        None => Namespace::production(),
    };
    let described = nats_url.clone().unwrap_or_else(|| "embedded".into());
    let (jetstream, replicas) = bus_options(&ProcessEnv)?;
    let bus = Bus::connect(BusConfig {
        nats_url,
        namespace,
        jetstream,
    })
    .await
    .with_context(|| format!("connecting to the bus ({described})"))?;
    bus.provision(
        &Definitions::new(bus.namespace())
            .with_replicas(replicas)
            .topology(),
    )
    .await
    .context("provisioning streams, consumers and buckets")?;
    tracing::info!(
        bus = %bus.describe(),
        url = %jt_store::config::redact_url(&described),
        namespace = %bus.namespace().root(),
        "bus in use"
    );
    Ok(bus)
}

/// The most stream replicas JetStream allows.
const MAX_REPLICAS: usize = 5;

/// The JetStream connection's authentication and TLS, and the replicas of every stream and
/// bucket, from the environment:
///
/// - `NATS_CREDS`: a credentials file (user JWT and NKey seed). User and password or a token go
///   in `NATS_URL` (`nats://user:pass@host:4222`).
/// - `NATS_TLS_CA`: the CA file that signed the server's certificate; `NATS_TLS_CERT` and
///   `NATS_TLS_KEY`: this client's certificate and key (mutual TLS, both or neither);
///   `NATS_TLS=true`: TLS with the system's roots. Any of them makes TLS required.
/// - `JT_BUS_REPLICAS`: replicas of every stream and KV bucket (default 1; 3 on a 3-node
///   cluster; at most 5). Provisioning updates existing streams to it.
///
/// # Errors
/// A malformed value, a certificate without its key (or the reverse), replicas out of range.
pub fn bus_options(env: &impl Env) -> anyhow::Result<(jt_bus::JetStreamOptions, usize)> {
    let replicas: usize = or_default(env, "JT_BUS_REPLICAS", 1)?;
    anyhow::ensure!(
        (1..=MAX_REPLICAS).contains(&replicas),
        "JT_BUS_REPLICAS={replicas} is invalid: JetStream keeps 1 to {MAX_REPLICAS} replicas (3 on a 3-node cluster)"
    );
    let path = |name: &str| -> anyhow::Result<Option<std::path::PathBuf>> {
        Ok(optional::<std::path::PathBuf>(env, name)?)
    };
    let credentials_file = path("NATS_CREDS")?;
    let ca_file = path("NATS_TLS_CA")?;
    let client_cert = match (path("NATS_TLS_CERT")?, path("NATS_TLS_KEY")?) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => anyhow::bail!("NATS_TLS_CERT is set without NATS_TLS_KEY (its key)"),
        (None, Some(_)) => {
            anyhow::bail!("NATS_TLS_KEY is set without NATS_TLS_CERT (its certificate)")
        }
    };
    let tls_on: bool = or_default(env, "NATS_TLS", false)?;
    let tls =
        (tls_on || ca_file.is_some() || client_cert.is_some()).then_some(jt_bus::TlsOptions {
            ca_file,
            client_cert,
        });
    Ok((
        jt_bus::JetStreamOptions {
            credentials_file,
            tls,
            ..jt_bus::JetStreamOptions::default()
        },
        replicas,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn bus_options_read_credentials_tls_and_replicas_and_refuse_half_a_client_certificate() {
        let (options, replicas) = bus_options(&env(&[])).unwrap();
        assert_eq!(replicas, 1);
        assert_eq!(options.credentials_file, None);
        assert_eq!(options.tls, None);

        let (options, replicas) = bus_options(&env(&[
            ("JT_BUS_REPLICAS", "3"),
            ("NATS_CREDS", "/var/run/nats/jt.creds"),
            ("NATS_TLS_CA", "/etc/nats/ca.pem"),
            ("NATS_TLS_CERT", "/etc/nats/tls.crt"),
            ("NATS_TLS_KEY", "/etc/nats/tls.key"),
        ]))
        .unwrap();
        assert_eq!(replicas, 3);
        assert_eq!(
            options.credentials_file.as_deref(),
            Some(std::path::Path::new("/var/run/nats/jt.creds"))
        );
        let tls = options.tls.unwrap();
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/nats/ca.pem"))
        );
        assert!(tls.client_cert.is_some());

        let (options, _) = bus_options(&env(&[("NATS_TLS", "true")])).unwrap();
        assert_eq!(options.tls, Some(jt_bus::TlsOptions::default()));

        let err = bus_options(&env(&[("NATS_TLS_CERT", "/c.pem")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("NATS_TLS_KEY"), "{err}");
        for bad in ["0", "6", "three"] {
            let err = bus_options(&env(&[("JT_BUS_REPLICAS", bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("JT_BUS_REPLICAS"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_service_without_its_bus_or_database_names_what_is_missing() {
        let err = require_service_env("ingest", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DATABASE_URL is not set") && err.contains("NATS_URL is not set"),
            "{err}"
        );
        assert!(err.contains("jt dev"), "{err}");
        let err = require_service_env("executor", &env(&[("DATABASE_URL", "postgres://x/y")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("NATS_URL") && !err.contains("DATABASE_URL"),
            "{err}"
        );
        assert!(
            require_service_env(
                "ingest",
                &env(&[
                    ("DATABASE_URL", "postgres://x/y"),
                    ("NATS_URL", "nats://n:4222")
                ])
            )
            .is_ok()
        );
    }
}
