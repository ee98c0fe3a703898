//! `jt db`: the database schema. `migrate` applies pending migrations, `status` lists them,
//! `reset --yes` drops everything and re-creates the schema (development databases only).
//!
//! The database is `DATABASE_URL` (default `sqlite://./data/jt.db`, created when missing).

use std::process::ExitCode;

use anyhow::Context as _;
use jt_runtime::telemetry::{LogFormat, TelemetryConfig};
use jt_store::{Store, StoreConfig};

/// Options of `jt db`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DbCommand {
    /// Apply every pending migration.
    Migrate,
    /// List the migrations and whether each is applied.
    Status,
    /// Drop every table with its data and re-create the schema. Development only: refused
    /// unless the database is on this machine (SQLite, or PostgreSQL on localhost).
    Reset {
        /// Confirm that every table and all data may be deleted.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs the subcommand.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let _telemetry = jt_runtime::telemetry::init(&TelemetryConfig {
        service_name: "jt-db".into(),
        format: LogFormat::Pretty,
        default_filter: "warn".into(),
        otlp_endpoint: None,
    })?;
    let config = StoreConfig::from_lookup(|name| std::env::var(name).ok())?;
    if let DbCommand::Reset { yes } = args.command {
        anyhow::ensure!(
            yes,
            "`jt db reset` deletes every table and all data in {}; run it again with --yes",
            config.redacted_url()
        );
        anyhow::ensure!(
            config.is_local(),
            "`jt db reset` is for development databases only; {} is not on this machine",
            config.redacted_url()
        );
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_async(&args.command, &config))
}

async fn run_async(command: &DbCommand, config: &StoreConfig) -> anyhow::Result<ExitCode> {
    let url = config.redacted_url();
    let store = Store::connect(config)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    match command {
        DbCommand::Migrate => {
            let applied = store.migrate().await.context("applying migrations")?;
            if applied.is_empty() {
                println!("{url}: schema up to date");
            }
            for name in &applied {
                println!("applied  {name}");
            }
        }
        DbCommand::Status => {
            let states = store
                .migration_status()
                .await
                .context("reading migrations")?;
            let pending = states.iter().filter(|m| !m.applied).count();
            for m in &states {
                println!(
                    "{}  {}",
                    if m.applied { "applied" } else { "pending" },
                    m.name
                );
            }
            println!(
                "{url}: {} applied, {pending} pending",
                states.len() - pending
            );
        }
        DbCommand::Reset { .. } => {
            store.reset().await.context("resetting the schema")?;
            println!("{url}: every table dropped and the schema re-created");
        }
    }
    store.close().await.ok();
    Ok(ExitCode::SUCCESS)
}
