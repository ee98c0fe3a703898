//! `jt risk`: the max-daily-loss monitor on its own (`NATS_URL`, `DATABASE_URL`,
//! `JT_SECRET_KEY`, `JT_HTTP_ADDR` for health and metrics; `JT_RISK_PNL_POLL_SECS`,
//! `JT_RISK_PNL_RESYNC_SECS`, `JT_RISK_SURVEY_SECS`, `JT_RISK_QUOTE_MAX_AGE_SECS`; brokers:
//! `JT_SIM_URL`, `JT_PROJECTX_URL`, `JT_WEBULL_URL`, `JT_BROKER_429_BACKOFF_SECS`).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;

use super::serve::{self, KeySource};

/// Options of `jt risk` (everything else comes from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the risk service until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let config = jt_risk::RiskConfig::from_env(&ProcessEnv)?;
    // The broker's P&L of an account is read with the sealed credentials: the key is required.
    serve::run_service("risk", KeySource::Required, |ctx| async move {
        jt_risk::start(config, &ctx).await
    })
}
