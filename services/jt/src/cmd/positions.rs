//! `jt positions`: position sync, reconciliation with protection repair, auto-flat and token
//! refresh on its own (`NATS_URL`, `DATABASE_URL`, `JT_SECRET_KEY`, `JT_HTTP_ADDR` for health
//! and metrics; `JT_RECONCILE_SECS`, `JT_REPAIR_QUIET_SECS`, `JT_AUTOFLAT_CHECK_SECS`,
//! `JT_AUTOFLAT_GRACE_SECS`; `JT_TOKEN_REFRESH_SECS`, `JT_TOKEN_RENEW_BEFORE_SECS`,
//! `JT_TOKEN_RENEW_MAX_PER_PASS`, `JT_TOKEN_RENEWALS_PER_HOUR`, `JT_TOKEN_LOGINS_PER_HOUR`; brokers: `JT_SIM_URL`, `JT_PROJECTX_URL`,
//! `JT_BROKER_429_BACKOFF_SECS`).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;

use super::serve::{self, KeySource};

/// Options of `jt positions` (everything else comes from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the positions service until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let config = jt_positions::PositionsConfig::from_env(&ProcessEnv)?;
    // Reconciliation reads the brokers with the sealed credentials: the key is required.
    serve::run_service("positions", KeySource::Required, |ctx| async move {
        jt_positions::start(config, &ctx).await
    })
}
