//! `jt api`: the REST API on its own (`NATS_URL`, `DATABASE_URL`, `JT_SECRET_KEY`,
//! `JT_HTTP_ADDR`, `JT_PUBLIC_URL`, `JT_MAIL_DIR`; see docs/api.md).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;
use jt_runtime::health::Health;
use jt_runtime::telemetry::LogFormat;

use super::serve::{self, KeySource};

/// Options of `jt api` (everything else comes from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the API until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let _telemetry = serve::telemetry("jt-api", LogFormat::Json)?;
    serve::require_service_env("api", &ProcessEnv)?;
    let config = jt_api::ApiConfig::from_env(&ProcessEnv)?;
    serve::runtime()?.block_on(async move {
        jt_runtime::metrics::install()?;
        // Broker credentials and webhook tokens are sealed: the key is required.
        let store = serve::store(KeySource::Required, false, None).await?;
        let bus = serve::bus(serve::Embedded::Refused).await?;
        let shutdown = jt_runtime::shutdown::on_signal();
        jt_api::run(config, store, bus, Health::new(), shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}
