//! `jt connmgr`: the connection manager on its own (`NATS_URL`, `DATABASE_URL`,
//! `JT_SECRET_KEY`, `JT_HTTP_ADDR` for health and metrics; `HOSTNAME` names the replica in its
//! leases; `JT_CONNMGR_SCAN_MS`, `JT_CONNMGR_ACCOUNTS_EVERY_SECS`; brokers: `JT_SIM_URL`,
//! `JT_PROJECTX_URL`, `JT_WEBULL_URL`, `JT_BROKER_429_BACKOFF_SECS`,
//! `JT_BROKER_START_STAGGER_SECS`).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;

use super::serve::{self, KeySource};

/// Options of `jt connmgr` (everything else comes from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the connection manager until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let config = jt_connmgr::ConnmgrConfig::from_env(&ProcessEnv)?;
    // Broker credentials are sealed: the key is required.
    serve::run_service("connmgr", KeySource::Required, |ctx| async move {
        jt_connmgr::start(config, &ctx).await
    })
}
