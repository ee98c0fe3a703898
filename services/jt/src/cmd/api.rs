//! `jt api`: the REST API on its own (`NATS_URL`, `DATABASE_URL`, `JT_SECRET_KEY`,
//! `JT_HTTP_ADDR`, `JT_PUBLIC_URL`, `JT_MAIL_DIR`; broker logins for account tests:
//! `JT_SIM_URL`, `JT_PROJECTX_URL`, `JT_WEBULL_URL`; see docs/api.md).

use std::process::ExitCode;

use jt_runtime::config::ProcessEnv;

use super::serve::{self, KeySource};

/// Options of `jt api` (everything else comes from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the API until SIGINT/SIGTERM.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    let config = jt_api::ApiConfig::from_env(&ProcessEnv)?;
    // Broker credentials and webhook tokens are sealed: the key is required.
    serve::run_service("api", KeySource::Required, |ctx| async move {
        jt_api::start(config, &ctx).await
    })
}
