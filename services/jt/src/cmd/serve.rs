//! Start-up plumbing shared by the service subcommands (`jt ingest`, `jt executor`, `jt dev`):
//! the runtime, telemetry, the store and the bus from the environment.

use anyhow::Context as _;
use jt_bus::{Bus, BusConfig, Definitions, Namespace};
use jt_runtime::config::{Env, ProcessEnv, optional};
use jt_runtime::telemetry::{LogFormat, TelemetryConfig, TelemetryGuard};
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

/// Where the secret key comes from.
pub enum KeySource {
    /// `JT_SECRET_KEY` is required (services).
    Required,
    /// `JT_SECRET_KEY` when set, else a development key kept in a file (`jt dev`).
    DevFile(std::path::PathBuf),
    /// Not needed (the service never opens a secret).
    None,
}

/// Connects the store of `DATABASE_URL` (when unset: `default_url`, else
/// `sqlite://./data/jt.db`).
///
/// `migrate`: apply pending migrations (one machine); otherwise refuse to start on a schema
/// that is behind, naming the command that fixes it.
pub async fn store(
    key: KeySource,
    migrate: bool,
    default_url: Option<&str>,
) -> anyhow::Result<Store> {
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

/// The bus: JetStream at `NATS_URL`, or the embedded bus when it is unset; provisioned
/// (idempotent, every start). `JT_BUS_NAMESPACE` puts every stream, consumer and bucket under
/// its own prefix (a second platform on one NATS server; tests).
pub async fn bus() -> anyhow::Result<Bus> {
    let nats_url: Option<String> = optional(&ProcessEnv, "NATS_URL")?;
    let namespace = match optional::<String>(&ProcessEnv, "JT_BUS_NAMESPACE")? {
        Some(tag) => Namespace::isolated(&tag)
            .map_err(|e| anyhow::anyhow!("JT_BUS_NAMESPACE={tag:?} is invalid: {e}"))?,
        None => Namespace::production(),
    };
    let described = nats_url.clone().unwrap_or_else(|| "embedded".into());
    let bus = Bus::connect(BusConfig {
        nats_url,
        namespace,
        ..BusConfig::default()
    })
    .await
    .with_context(|| format!("connecting to the bus ({described})"))?;
    bus.provision(&Definitions::new(bus.namespace()).topology())
        .await
        .context("provisioning streams, consumers and buckets")?;
    Ok(bus)
}
