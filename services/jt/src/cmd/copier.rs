//! `jt copier`: copy trading on its own — a leader's fills on BROKER_EVENTS copied to its
//! followers as intents on ORDERS (`NATS_URL`, `DATABASE_URL`, `JT_SECRET_KEY`, `JT_HTTP_ADDR`
//! for health and metrics; `JT_COPY_MAX_LAG_SECS`, `JT_COPY_SYNC_SECS`; brokers, to name a
//! contract a fill gives only by id and to read positions for auto-sync: `JT_SIM_URL`,
//! `JT_PROJECTX_URL`, `JT_BROKER_429_BACKOFF_SECS`).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;

use super::serve::{self, KeySource};

/// Options of `jt copier` (everything else comes from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the copier until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let config = jt_copier::CopierConfig::from_env(&ProcessEnv)?;
    // Naming a contract a fill gives only by id reads the leader's positions at the broker
    // with the sealed credentials: the key is required.
    serve::run_service("copier", KeySource::Required, |ctx| async move {
        jt_copier::start(config, &ctx).await
    })
}
