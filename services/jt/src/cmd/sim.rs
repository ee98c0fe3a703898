//! `jt sim`: the exchange simulator on its own, speaking Tradovate's REST and WebSocket
//! protocols plus the `/sim/` admin API, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use jt_runtime::telemetry::{LogFormat, TelemetryConfig};
use jt_sim::admin::NewUser;
use jt_sim::core::SessionMode;
use jt_sim::feed::{PriceFeed, PriceSource};
use jt_sim::{Sim, SimConfig};
use rust_decimal::Decimal;

/// Options of `jt sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to serve everything on (REST, both sockets, admin API).
    #[arg(long, env = "JT_SIM_ADDR", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Follow CME Globex hours (daily halt 16:00–17:00 CT, weekend closed) instead of staying
    /// open; orders are then refused with `SessionClosed` while closed.
    #[arg(long)]
    real_hours: bool,
    /// Lifetime of access tokens, in minutes.
    #[arg(long, default_value_t = 90)]
    token_minutes: u64,
    /// Create a login at start: `NAME:PASSWORD[:ACCOUNT,ACCOUNT…]` (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD[:ACCOUNTS]")]
    users: Vec<String>,
    /// Starting cash of the accounts created with `--user`.
    #[arg(long, default_value = "50000")]
    balance: Decimal,
    /// Move every front month by a seeded random walk, one step every this many milliseconds.
    #[arg(long, value_name = "MS")]
    walk_ms: Option<u64>,
    /// Seed of the random walks (the same seed replays the same prices).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn parse_user(spec: &str, balance: Decimal) -> anyhow::Result<NewUser> {
    let mut parts = spec.splitn(3, ':');
    let name = parts.next().unwrap_or_default().trim();
    let password = parts
        .next()
        .with_context(|| format!("--user {spec:?}: expected NAME:PASSWORD[:ACCOUNTS]"))?;
    anyhow::ensure!(!name.is_empty(), "--user {spec:?}: the name is empty");
    let accounts = parts
        .next()
        .map(|a| {
            a.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(NewUser {
        name: name.to_string(),
        password: password.to_string(),
        accounts,
        balance: Some(balance),
        ..NewUser::default()
    })
}

/// Runs the simulator until a shutdown signal.
///
/// # Errors
/// Bad options, an address that cannot be bound.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let _telemetry = jt_runtime::telemetry::init(&TelemetryConfig {
        service_name: "jt-sim".into(),
        format: LogFormat::Pretty,
        default_filter: "info".into(),
        otlp_endpoint: None,
    })?;
    let users = args
        .users
        .iter()
        .map(|u| parse_user(u, args.balance))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let prices = match args.walk_ms {
        Some(ms) => jt_domain::instrument::instruments()
            .iter()
            .enumerate()
            .map(|(i, inst)| PriceFeed {
                symbol: inst.root.to_string(),
                source: PriceSource::RandomWalk {
                    seed: args.seed.wrapping_add(i as u64),
                    interval: Duration::from_millis(ms.max(1)),
                    max_step_ticks: 2,
                },
            })
            .collect(),
        None => Vec::new(),
    };
    let config = SimConfig {
        listen: args.listen,
        token_lifetime: Duration::from_secs(args.token_minutes.max(1) * 60),
        session_mode: if args.real_hours {
            SessionMode::Exchange
        } else {
            SessionMode::AlwaysOpen
        },
        prices,
        users,
        ..SimConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let sim = Sim::start(config.clone()).await?;
        let base = sim.base_url();
        println!("jt sim: Tradovate exchange simulator on {}", sim.addr());
        println!("  REST (Tradovate)   {base}/v1");
        println!("  user socket        {}", sim.ws_url());
        println!("  market-data socket {}", sim.md_ws_url());
        println!(
            "  admin API          {base}/sim/  (users, prices, orders, fills, positions, faults, …)"
        );
        println!(
            "  session            {}",
            if args.real_hours {
                "CME Globex hours"
            } else {
                "always open"
            }
        );
        println!("  token lifetime     {} min", args.token_minutes);
        let admin = sim.admin();
        for u in &config.users {
            let names: Vec<String> = admin
                .accounts_of_user(&u.name)
                .into_iter()
                .map(|a| a.name)
                .collect();
            println!(
                "  login              {} / {} ({})",
                u.name,
                u.password,
                names.join(", ")
            );
        }
        if let Some(ms) = args.walk_ms {
            println!(
                "  prices             random walk every {ms} ms (seed {})",
                args.seed
            );
        }
        let stop = jt_runtime::shutdown::on_signal();
        stop.cancelled().await;
        sim.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_specs_parse() {
        let u = parse_user("alice:pw:DEMO1, DEMO2", Decimal::from(1000)).unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.password, "pw");
        assert_eq!(u.accounts, vec!["DEMO1".to_string(), "DEMO2".to_string()]);
        let u = parse_user("bob:secret", Decimal::from(1000)).unwrap();
        assert!(u.accounts.is_empty());
        assert!(parse_user("nopassword", Decimal::from(1)).is_err());
    }
}
