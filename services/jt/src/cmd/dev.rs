//! `jt dev` (what `make run` starts): the whole platform in one process on embedded defaults —
//! SQLite under `./data`, the in-process bus, the built-in exchange simulator as the broker —
//! with a demo user, recorder, three simulator accounts and traders created on first start.
//! `--webull` adds a Webull login on the simulator's Webull surface (signed REST, reached with
//! the Webull adapter through `JT_WEBULL_URL`) with one account, `WB1`, and its trader.
//!
//! The REST API is served on the same listener (`/api/v1`, and the dashboard at `/`); the demo
//! user's login (its password generated once and kept in `<data>/demo.json`) is printed beside
//! the webhook URL, and mail (password resets) is written as files under `<data>/mail`.
//!
//! `DATABASE_URL` and `NATS_URL` switch it to PostgreSQL and JetStream. Webhooks (and health and
//! metrics) listen on `JT_HTTP_ADDR` (default 127.0.0.1:8080), the simulator on `JT_SIM_ADDR`
//! (default 127.0.0.1:8081). Ctrl-C stops everything cleanly. The embedded bus keeps nothing
//! across restarts; the database does, and a second start reuses the demo records.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use jt_domain::Settings;
use jt_domain::settings::{PriceUnits, StopType, TpTarget, TrimUnits};
use jt_runtime::config::{ProcessEnv, or_default};
use jt_runtime::telemetry::LogFormat;
use jt_sim::admin::NewUser as SimUser;
use jt_sim::feed::{PriceFeed, PriceSource};
use jt_sim::{Sim, SimConfig};
use jt_store::repo::accounts::{BrokerCredentials, BrokerSubAccount, NewBrokerAccount};
use jt_store::repo::auth::NewUser;
use jt_store::repo::recorders::NewRecorder;
use jt_store::repo::traders::NewTrader;
use jt_store::{BrokerKind, Environment, RecorderId, Role, Secret, Store, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::serve::{self, KeySource};

/// Options of `jt dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of the SQLite database, the development secret key and the demo's ids.
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// Also add a Webull simulator account (`WB1`, the simulator's Webull surface) with a
    /// trader on the demo recorder.
    #[arg(long)]
    webull: bool,
}

const SIM_LOGIN: &str = "demo";
// The simulator's login lives only in this process: a fixed development password is fine.
const SIM_PASSWORD: &str = "demo-password";
const SIM_ACCOUNTS: [&str; 3] = ["DEMO1", "DEMO2", "DEMO3"];
const MULTIPLIERS: [&str; 3] = ["1", "2", "0.5"];
const WEBULL_LOGIN: &str = "demo-webull";
const WEBULL_ACCOUNT: &str = "WB1";
// The simulator's Webull key pair lives only in this process: fixed development values.
const WEBULL_APP_KEY: &str = "demo-webull-app-key";
const WEBULL_APP_SECRET: &str = "demo-webull-app-secret";

/// What the first start created, kept in `<data>/demo.json` for the next start.
#[derive(Debug, Serialize, Deserialize)]
struct Demo {
    user: UserId,
    recorder: RecorderId,
    broker_account: jt_store::BrokerAccountId,
    /// The demo user's password (generated once; a `demo.json` of an older build has none:
    /// one is set then).
    #[serde(default)]
    password: Option<String>,
    /// The Webull simulator account (`--webull`), once added.
    #[serde(default)]
    webull_account: Option<jt_store::BrokerAccountId>,
}

/// Runs the platform until Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let _telemetry = serve::telemetry("jt-dev", LogFormat::Pretty)?;
    let http: SocketAddr = or_default(
        &ProcessEnv,
        "JT_HTTP_ADDR",
        SocketAddr::from(([127, 0, 0, 1], 8080)),
    )?;
    let sim_addr: SocketAddr = or_default(
        &ProcessEnv,
        "JT_SIM_ADDR",
        SocketAddr::from(([127, 0, 0, 1], 8081)),
    )?;
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating the data directory {}", args.data.display()))?;
    serve::runtime()?.block_on(run_async(args.data.clone(), http, sim_addr, args.webull))?;
    Ok(ExitCode::SUCCESS)
}

async fn run_async(
    data: PathBuf,
    http: SocketAddr,
    sim_addr: SocketAddr,
    webull: bool,
) -> anyhow::Result<()> {
    jt_runtime::metrics::install()?;
    crate::catalog::register(crate::catalog::SERVICES);
    let shutdown = jt_runtime::shutdown::on_signal();

    let sim = Sim::start(SimConfig {
        listen: sim_addr,
        prices: price_walks(),
        ..SimConfig::default()
    })
    .await
    .with_context(|| format!("starting the simulator on JT_SIM_ADDR={sim_addr}"))?;
    let created = sim
        .admin()
        .create_user(&SimUser {
            name: SIM_LOGIN.into(),
            password: SIM_PASSWORD.into(),
            accounts: SIM_ACCOUNTS.iter().map(|s| (*s).to_string()).collect(),
            balance: Some(Decimal::from(50_000)),
            ..SimUser::default()
        })
        .map_err(|e| anyhow::anyhow!("creating the simulator's demo login: {e}"))?;

    let default_db = format!("sqlite://{}", data.join("jt.db").display());
    let store_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| default_db.clone());
    let store = serve::store(
        KeySource::DevFile(data.join("secret.key")),
        true,
        Some(&default_db),
    )
    .await?;
    let bus = serve::bus(serve::Embedded::Allowed).await?;
    let mut demo = demo(&store, &data, &created).await?;
    if webull {
        webull_account(&sim, &store, &data, &mut demo).await?;
    }
    let token = store
        .recorders()
        .webhook_token(demo.user, demo.recorder)
        .await?;

    let demo_email = store.users().get(demo.user).await?.email;

    // Every service on one context (one broker access: one session per login) and one
    // listener; the simulator stands in for the brokers.
    let ctx = serve::context(
        store.clone(),
        bus,
        jt_connect::AccessConfig::from_env(&ProcessEnv)?
            .with_sim_url(sim.base_url())
            .with_webull_url(sim.webull_url()),
    )
    .with_shutdown(shutdown.clone());
    let mail_dir = data.join("mail");
    // On one machine the user's own receivers are on loopback or the LAN: private notification
    // targets are allowed unless JT_NOTIFY_ALLOW_PRIVATE_TARGETS says otherwise.
    let allow_private: bool = or_default(&ProcessEnv, jt_notify::target::ALLOW_PRIVATE_ENV, true)?;
    let api_config = jt_api::ApiConfig {
        public_url: format!("http://{http}"),
        mail_dir: Some(mail_dir.clone()),
        allow_private_notify_targets: allow_private,
        ..jt_api::ApiConfig::from_env(&ProcessEnv)?
    };
    let mut risk_config = jt_risk::RiskConfig::from_env(&ProcessEnv)?;
    risk_config.notify.allow_private_targets = allow_private;
    let services = vec![
        jt_ingest::start(jt_ingest::IngestConfig::from_env(&ProcessEnv)?, &ctx).await?,
        jt_executor::start(jt_executor::ExecutorConfig::from_env(&ProcessEnv)?, &ctx).await?,
        jt_api::start(api_config, &ctx).await?,
        jt_connmgr::start(jt_connmgr::ConnmgrConfig::from_env(&ProcessEnv)?, &ctx).await?,
        jt_positions::start(jt_positions::PositionsConfig::from_env(&ProcessEnv)?, &ctx).await?,
        jt_copier::start(jt_copier::CopierConfig::from_env(&ProcessEnv)?, &ctx).await?,
        jt_risk::start(risk_config, &ctx).await?,
    ];
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("binding JT_HTTP_ADDR={http}"))?;
    let platform = {
        let ctx = ctx.clone();
        tokio::spawn(async move { jt_service::serve_on(&ctx, listener, services).await })
    };

    let url = format!("http://{http}/webhook/{}", token.expose());
    println!();
    println!("jt dev is running (Ctrl-C to stop)");
    println!("  webhook URL   {url}");
    println!(
        "  simulator     {} (Tradovate REST {}/v1, admin {}/sim/)",
        sim.addr(),
        sim.base_url(),
        sim.base_url()
    );
    println!("  dashboard     http://{http}/  (sign in with the demo login)");
    println!("  API           http://{http}/api/v1  (OpenAPI: http://{http}/api/openapi.json)");
    println!(
        "  demo login    {demo_email} / {}  (POST /api/v1/auth/login)",
        demo.password.as_deref().unwrap_or("?")
    );
    println!(
        "  mail          {} (password-reset mails)",
        mail_dir.display()
    );
    println!("  health        http://{http}/healthz  http://{http}/readyz  http://{http}/metrics");
    println!(
        "  store         {}",
        jt_store::config::redact_url(&store_url)
    );
    println!(
        "  bus           {}",
        if std::env::var_os("NATS_URL").is_some() {
            "NATS_URL (JetStream)"
        } else {
            "embedded (nothing kept across restarts)"
        }
    );
    println!(
        "  demo          recorder \"Demo MNQ\" → traders on {} at multipliers {}{}",
        SIM_ACCOUNTS.join(", "),
        MULTIPLIERS.join(", "),
        if webull {
            format!(", and on Webull {WEBULL_ACCOUNT} at 1")
        } else {
            String::new()
        }
    );
    println!();
    println!("Send an alert:");
    println!(
        "  curl -s -X POST '{url}' -H 'content-type: text/plain' \\\n    -d '{{\"action\":\"buy\",\"ticker\":\"MNQ1!\",\"contracts\":1,\"position\":\"long\"}}'"
    );
    println!(
        "The demo recorder's settings size the orders, not the alert's \"contracts\" (the strategy's \
         own count): 2 contracts, take-profits 20 and 40 ticks away, a 30-tick trailing stop."
    );
    println!(
        "Then see the orders: curl -s '{}/sim/orders' | head -c 2000",
        sim.base_url()
    );
    println!();

    shutdown.cancelled().await;
    println!("stopping…");
    match tokio::time::timeout(jt_runtime::shutdown::DRAIN_DEADLINE, platform).await {
        Ok(Ok(Err(e))) => eprintln!("error while stopping: {e:#}"),
        Ok(Err(e)) => eprintln!("error while stopping: {e}"),
        Ok(Ok(Ok(()))) | Err(_) => {}
    }
    sim.shutdown().await;
    store.close().await.ok();
    Ok(())
}

/// Moving prices, so that take-profits and stops of the demo can fill.
fn price_walks() -> Vec<PriceFeed> {
    jt_domain::instrument::instruments()
        .iter()
        .enumerate()
        .map(|(i, inst)| PriceFeed {
            symbol: inst.root.to_string(),
            source: PriceSource::RandomWalk {
                seed: 7 + i as u64,
                interval: Duration::from_millis(500),
                max_step_ticks: 2,
            },
        })
        .collect()
}

/// The demo records: reused when `<data>/demo.json` names records that still exist, created
/// otherwise. The simulator's accounts are new in every process; their ids are synced into
/// the broker account's sub-accounts.
async fn demo(
    store: &Store,
    data: &Path,
    sim: &jt_sim::admin::CreatedUser,
) -> anyhow::Result<Demo> {
    let path = data.join("demo.json");
    let listed: Vec<BrokerSubAccount> = sim
        .accounts
        .iter()
        .map(|a| BrokerSubAccount {
            broker_sub_account_id: a.id.to_string(),
            name: a.name.clone(),
        })
        .collect();
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(mut demo) = serde_json::from_str::<Demo>(&text)
        && store
            .recorders()
            .get(demo.user, demo.recorder)
            .await
            .is_ok()
    {
        store
            .accounts()
            .sync_sub_accounts(demo.user, demo.broker_account, &listed)
            .await?;
        if demo.password.is_none() {
            // A demo of an older build: its password was never kept. Set one through the
            // reset path (the only way to set a password without the current one).
            let email = store.users().get(demo.user).await?.email;
            let password = generated_password();
            let token = store
                .users()
                .start_password_reset(&email)
                .await?
                .context("the demo user has no e-mail")?;
            store
                .users()
                .finish_password_reset(&token, &password)
                .await?;
            demo.password = Some(password.expose().to_string());
            write_demo(&path, &demo)?;
        }
        return Ok(demo);
    }
    let password = generated_password();

    let user = store
        .users()
        .register(NewUser {
            email: format!("demo+{}@jt.local", uuid_suffix()),
            display_name: Some("Demo".into()),
            password: password.clone(),
            role: Role::User,
            approved: true,
        })
        .await
        .context("creating the demo user")?;
    let account = store
        .accounts()
        .create(
            user.id,
            NewBrokerAccount {
                label: "Simulator".into(),
                broker: BrokerKind::Sim,
                environment: Environment::Demo,
                username: Some(SIM_LOGIN.into()),
                credentials: BrokerCredentials {
                    password: Some(Secret::new(SIM_PASSWORD)),
                    app_id: Some("jt".into()),
                    app_version: Some(env!("CARGO_PKG_VERSION").into()),
                    ..BrokerCredentials::default()
                },
                require_brackets: false,
            },
        )
        .await?;
    let subs = store
        .accounts()
        .sync_sub_accounts(user.id, account.id, &listed)
        .await?;
    let settings = Settings {
        initial_position_size: 2,
        tp_targets: vec![
            TpTarget {
                value: Decimal::from(20),
                trim: Decimal::ONE,
            },
            TpTarget {
                value: Decimal::from(40),
                trim: Decimal::ONE,
            },
        ],
        tp_units: PriceUnits::Ticks,
        trim_units: TrimUnits::Contracts,
        sl_enabled: true,
        sl_amount: Decimal::from(30),
        sl_units: PriceUnits::Ticks,
        sl_type: StopType::Trailing,
        trail_trigger: Decimal::from(10),
        trail_freq: Decimal::from(2),
        // The risk service watches the demo accounts: a $1,000 day's loss flattens and locks one
        // (`GET /risk/status` shows the distance).
        max_daily_loss: Decimal::from(1000),
        ..Settings::default()
    };
    let (recorder, _token) = store
        .recorders()
        .create(
            user.id,
            NewRecorder {
                name: "Demo MNQ".into(),
                symbol: Some("MNQ1!".into()),
                settings,
                commission_per_contract: Decimal::new(62, 2),
            },
        )
        .await?;
    for name in SIM_ACCOUNTS {
        let sub = subs
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("simulator account {name} missing"))?;
        let multiplier: Decimal = MULTIPLIERS
            [SIM_ACCOUNTS.iter().position(|n| *n == name).unwrap_or(0)]
        .parse()
        .context("multiplier literal")?;
        store
            .traders()
            .create(
                user.id,
                NewTrader {
                    recorder: recorder.id,
                    sub_account: sub.id,
                    enabled: true,
                    overrides: jt_domain::SettingsOverrides {
                        multiplier: Some(multiplier),
                        ..Default::default()
                    },
                },
            )
            .await?;
    }
    let demo = Demo {
        user: user.id,
        recorder: recorder.id,
        broker_account: account.id,
        password: Some(password.expose().to_string()),
        webull_account: None,
    };
    write_demo(&path, &demo)?;
    Ok(demo)
}

/// `--webull`: a Webull login on the simulator (its key pair fixed for development), a
/// broker account of kind `webull` holding it (reached through `JT_WEBULL_URL`, set to the
/// simulator), its account synced, and a trader on the demo recorder — created once, the
/// account's id synced again on every start.
async fn webull_account(
    sim: &Sim,
    store: &Store,
    data: &Path,
    demo: &mut Demo,
) -> anyhow::Result<()> {
    let created = sim
        .admin()
        .create_user(&SimUser {
            name: WEBULL_LOGIN.into(),
            password: WEBULL_APP_SECRET.into(),
            accounts: vec![WEBULL_ACCOUNT.into()],
            balance: Some(Decimal::from(50_000)),
            sec: Some(WEBULL_APP_SECRET.into()),
            protocol: jt_sim::core::model::Protocol::Webull,
            api_key: Some(WEBULL_APP_KEY.into()),
            ..SimUser::default()
        })
        .map_err(|e| anyhow::anyhow!("creating the simulator's Webull login: {e}"))?;
    let listed: Vec<BrokerSubAccount> = created
        .accounts
        .iter()
        .map(|a| BrokerSubAccount {
            broker_sub_account_id: a.id.to_string(),
            name: a.name.clone(),
        })
        .collect();
    if let Some(id) = demo.webull_account
        && store.accounts().get(demo.user, id).await.is_ok()
    {
        store
            .accounts()
            .sync_sub_accounts(demo.user, id, &listed)
            .await?;
        return Ok(());
    }
    let account = store
        .accounts()
        .create(
            demo.user,
            NewBrokerAccount {
                label: "Webull (simulator)".into(),
                broker: BrokerKind::Webull,
                environment: Environment::Demo,
                username: None,
                credentials: BrokerCredentials {
                    api_key: Some(Secret::new(WEBULL_APP_KEY)),
                    api_secret: Some(Secret::new(WEBULL_APP_SECRET)),
                    ..BrokerCredentials::default()
                },
                require_brackets: false,
            },
        )
        .await
        .context("creating the Webull broker account")?;
    let subs = store
        .accounts()
        .sync_sub_accounts(demo.user, account.id, &listed)
        .await?;
    let sub = subs
        .iter()
        .find(|s| s.name == WEBULL_ACCOUNT)
        .with_context(|| format!("simulator account {WEBULL_ACCOUNT} missing"))?;
    store
        .traders()
        .create(
            demo.user,
            NewTrader {
                recorder: demo.recorder,
                sub_account: sub.id,
                enabled: true,
                // Webull carries no trailing stop: the demo's stop is fixed there.
                overrides: jt_domain::SettingsOverrides {
                    sl_type: Some(StopType::Fixed),
                    ..Default::default()
                },
            },
        )
        .await?;
    demo.webull_account = Some(account.id);
    write_demo(&data.join("demo.json"), demo)
}

/// Writes `demo.json`, readable by its owner only (it holds the demo user's password).
fn write_demo(path: &Path, demo: &Demo) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(demo)?)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
}

/// A random password of 24 URL-safe characters (144 bits).
fn generated_password() -> Secret {
    Secret::new(jt_store::auth::random_token().expose()[..24].to_string())
}

fn uuid_suffix() -> String {
    jt_store::UserId::new().to_string()[..8].to_string()
}
