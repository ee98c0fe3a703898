//! `jt executor`: fan-out and execution on their own (`NATS_URL`, `DATABASE_URL`,
//! `JT_SECRET_KEY`, `JT_HTTP_ADDR` for health and metrics).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;
use jt_runtime::health::Health;
use jt_runtime::telemetry::LogFormat;

use super::serve::{self, KeySource};

/// Options of `jt executor` (everything else comes from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the executor until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let _telemetry = serve::telemetry("jt-executor", LogFormat::Json)?;
    serve::require_service_env("executor", &ProcessEnv)?;
    let config = jt_executor::ExecutorConfig::from_env(&ProcessEnv)?;
    serve::runtime()?.block_on(async move {
        jt_runtime::metrics::install()?;
        // Broker credentials are sealed: the key is required.
        let store = serve::store(KeySource::Required, false, None).await?;
        let bus = serve::bus(serve::Embedded::Refused).await?;
        let shutdown = jt_runtime::shutdown::on_signal();
        jt_executor::run(config, store, bus, Health::new(), shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}
