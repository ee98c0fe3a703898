//! `jt executor`: fan-out and execution on their own (`NATS_URL`, `DATABASE_URL`,
//! `JT_SECRET_KEY`, `JT_HTTP_ADDR` for health and metrics; brokers: `JT_SIM_URL`,
//! `JT_PROJECTX_URL`, `JT_WEBULL_URL`, `JT_BROKER_429_BACKOFF_SECS`).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;

use super::serve::{self, KeySource};

/// Options of `jt executor` (everything else comes from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the executor until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let config = jt_executor::ExecutorConfig::from_env(&ProcessEnv)?;
    // Broker credentials are sealed: the key is required.
    serve::run_service("executor", KeySource::Required, |ctx| async move {
        jt_executor::start(config, &ctx).await
    })
}
