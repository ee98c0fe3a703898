//! `jt`: the platform's one binary. Each subcommand lives in its own module under `cmd/`.

use clap::{Parser, Subcommand};

mod catalog;
mod cmd;

/// Just Trades: TradingView alerts to broker orders, on every linked account.
#[derive(Debug, Parser)]
#[command(name = "jt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the instrument table (tick size, tick value, exchange, micro/mini partner).
    Instruments(cmd::instruments::Args),
    /// Alert tools: `jt alert parse` reads an alert body the way the webhook does.
    Alert(cmd::alert::Args),
    /// Tradovate tools: `jt tradovate decode` reads captured WebSocket frames.
    Tradovate(cmd::tradovate::Args),
    /// Run the exchange simulator (Tradovate REST + WebSockets, admin API under /sim/).
    Sim(cmd::sim::Args),
    /// Database schema: `jt db migrate`, `jt db status`, `jt db reset --yes` (development).
    Db(cmd::db::Args),
    /// The whole platform in one process on embedded defaults (what `make run` starts).
    Dev(cmd::dev::Args),
    /// Run the webhook ingest service.
    Ingest(cmd::ingest::Args),
    /// Run the executor service (fan-out and execution).
    Executor(cmd::executor::Args),
    /// Run the connection manager (broker event connections → BROKER_EVENTS).
    Connmgr(cmd::connmgr::Args),
    /// Run the positions service (position sync, reconciliation and repair, auto-flat).
    Positions(cmd::positions::Args),
    /// Run the copier (a leader's fills copied to its followers as intents on ORDERS).
    Copier(cmd::copier::Args),
    /// Run the risk service (max daily loss: breach → flatten through ORDERS → notify).
    Risk(cmd::risk::Args),
    /// Messages the services gave up on: `jt dead-letters list`, `jt dead-letters retry`.
    DeadLetters(cmd::dead_letters::Args),
    /// Run the REST API service (`/api/v1`, `/api/openapi.json`).
    Api(cmd::api::Args),
    /// Operator commands: `jt admin create-user --email … [--admin]` (bootstrap a fresh install).
    Admin(cmd::admin::AdminArgs),
    /// API tokens for scripts: `jt api-token create --user <email>` (printed once).
    ApiToken(cmd::admin::TokenArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Instruments(args) => cmd::instruments::run(&args),
        Command::Alert(args) => cmd::alert::run(&args),
        Command::Tradovate(args) => cmd::tradovate::run(&args),
        Command::Sim(args) => cmd::sim::run(&args),
        Command::Db(args) => cmd::db::run(&args),
        Command::Dev(args) => cmd::dev::run(&args),
        Command::Ingest(args) => cmd::ingest::run(&args),
        Command::Executor(args) => cmd::executor::run(&args),
        Command::Connmgr(args) => cmd::connmgr::run(&args),
        Command::Positions(args) => cmd::positions::run(&args),
        Command::Copier(args) => cmd::copier::run(&args),
        Command::Risk(args) => cmd::risk::run(&args),
        Command::DeadLetters(args) => cmd::dead_letters::run(&args),
        Command::Api(args) => cmd::api::run(&args),
        Command::Admin(args) => cmd::admin::run_admin(&args),
        Command::ApiToken(args) => cmd::admin::run_token(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
