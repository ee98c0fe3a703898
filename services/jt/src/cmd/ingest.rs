//! `jt ingest`: the webhook ingest on its own (`JT_HTTP_ADDR`, `NATS_URL`, `DATABASE_URL`).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;

use super::serve::{self, KeySource};

/// Options of `jt ingest` (everything else comes from the environment; see docs/operations.md).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the ingest until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let config = jt_ingest::IngestConfig::from_env(&ProcessEnv)?;
    // The ingest opens no secret: webhook tokens are looked up by their hash.
    serve::run_service("ingest", KeySource::None, |ctx| async move {
        jt_ingest::start(config, &ctx).await
    })
}
