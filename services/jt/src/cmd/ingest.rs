//! `jt ingest`: the webhook ingest on its own (`JT_HTTP_ADDR`, `NATS_URL`, `DATABASE_URL`).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;
use jt_runtime::health::Health;
use jt_runtime::telemetry::LogFormat;

use super::serve::{self, KeySource};

/// Options of `jt ingest` (everything else comes from the environment; see docs/operations.md).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the ingest until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let _telemetry = serve::telemetry("jt-ingest", LogFormat::Json)?;
    serve::require_service_env("ingest", &ProcessEnv)?;
    let config = jt_ingest::IngestConfig::from_env(&ProcessEnv)?;
    serve::runtime()?.block_on(async move {
        jt_runtime::metrics::install()?;
        // The ingest opens no secret: webhook tokens are looked up by their hash.
        let store = serve::store(KeySource::None, false, None).await?;
        let bus = serve::bus(serve::Embedded::Refused).await?;
        let shutdown = jt_runtime::shutdown::on_signal();
        jt_ingest::run(config, store, bus, Health::new(), shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}
