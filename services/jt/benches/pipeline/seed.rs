//! The records a load run needs, created the way `jt dev` creates its demo (through `jt_store`
//! and the simulator's admin API), at scale: simulator logins with their accounts, one broker
//! account per login with its sub-accounts synced from the simulator's ids, recorders with
//! settings, and traders.

use std::net::SocketAddr;

use anyhow::Context as _;
use jt_domain::Settings;
use jt_domain::settings::{PriceUnits, StopType, TpTarget};
use jt_store::repo::accounts::{BrokerCredentials, BrokerSubAccount, NewBrokerAccount};
use jt_store::repo::auth::NewUser;
use jt_store::repo::recorders::NewRecorder;
use jt_store::repo::traders::NewTrader;
use jt_store::{BrokerKind, Environment, Role, Secret, Store, SubAccountId, TraderId, UserId};
use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::task::JoinSet;

use crate::http;

const SIM_PASSWORD: &str = "bench-password";

/// A simulator account and the sub-account that stands for it in the store.
#[derive(Debug, Clone)]
pub struct Account {
    /// The simulator's account name (what `/sim/orders` reports).
    pub name: String,
    /// The store's sub-account.
    pub sub_account: SubAccountId,
}

/// A recorder the load generator sends alerts to.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Its webhook token (the path segment of `POST /webhook/{token}`).
    pub token: String,
    /// Its traders and their accounts, in account order.
    pub traders: Vec<(TraderId, Account)>,
}

#[derive(Deserialize)]
struct CreatedLogin {
    accounts: Vec<CreatedAccount>,
}

#[derive(Deserialize)]
struct CreatedAccount {
    id: i64,
    name: String,
}

/// The owner of everything the benchmark creates.
pub async fn user(store: &Store) -> anyhow::Result<UserId> {
    let user = store
        .users()
        .register(NewUser {
            email: format!("bench+{}@jt.local", uuid::Uuid::new_v4().simple()),
            display_name: Some("Load generator".into()),
            password: Secret::new(uuid::Uuid::new_v4().to_string()),
            role: Role::User,
            approved: true,
        })
        .await
        .context("creating the benchmark's user")?;
    Ok(user.id)
}

/// `count` simulator accounts, `per_login` to a login: each login becomes one `sim` broker
/// account of `owner` (one session and one rate budget in the executor, as a real login).
pub async fn accounts(
    store: &Store,
    sim: SocketAddr,
    owner: UserId,
    count: usize,
    per_login: usize,
) -> anyhow::Result<Vec<Account>> {
    accounts_named(store, sim, owner, "bench", count, per_login).await
}

/// Like [`accounts`], with logins named `<prefix>NNNN` and accounts `<PREFIX>NNNNAAA` (a
/// benchmark that seeds several groups gives each its own prefix; names are unique at the
/// simulator).
pub async fn accounts_named(
    store: &Store,
    sim: SocketAddr,
    owner: UserId,
    prefix: &str,
    count: usize,
    per_login: usize,
) -> anyhow::Result<Vec<Account>> {
    let per_login = per_login.max(1);
    let logins = count.div_ceil(per_login);
    let mut tasks = JoinSet::new();
    for login in 0..logins {
        let store = store.clone();
        let upper = prefix.to_uppercase();
        let names: Vec<String> = (0..per_login)
            .map(|a| format!("{upper}{login:04}{a:03}"))
            .take(count - login * per_login)
            .collect();
        let username = format!("{prefix}{login:04}");
        tasks.spawn(async move { one_login(&store, sim, owner, login, username, names).await });
    }
    let mut by_login = Vec::new();
    while let Some(done) = tasks.join_next().await {
        by_login.push(done??);
    }
    by_login.sort_by_key(|(login, _)| *login);
    Ok(by_login.into_iter().flat_map(|(_, a)| a).collect())
}

async fn one_login(
    store: &Store,
    sim: SocketAddr,
    owner: UserId,
    login: usize,
    username: String,
    names: Vec<String>,
) -> anyhow::Result<(usize, Vec<Account>)> {
    let body = serde_json::json!({
        "name": username,
        "password": SIM_PASSWORD,
        "accounts": names,
        "balance": 1_000_000,
    });
    let created: CreatedLogin = serde_json::from_slice(
        &http::call_ok(sim, "POST", "/sim/users", body.to_string().as_bytes()).await?,
    )
    .context("reading the simulator's new login")?;
    let account = store
        .accounts()
        .create(
            owner,
            NewBrokerAccount {
                label: format!("Simulator {username}"),
                broker: BrokerKind::Sim,
                environment: Environment::Demo,
                username: Some(username.clone()),
                credentials: BrokerCredentials {
                    password: Some(Secret::new(SIM_PASSWORD)),
                    app_id: Some("jt-bench".into()),
                    app_version: Some(env!("CARGO_PKG_VERSION").into()),
                    ..BrokerCredentials::default()
                },
                require_brackets: false,
            },
        )
        .await?;
    let listed: Vec<BrokerSubAccount> = created
        .accounts
        .iter()
        .map(|a| BrokerSubAccount {
            broker_sub_account_id: a.id.to_string(),
            name: a.name.clone(),
        })
        .collect();
    let subs = store
        .accounts()
        .sync_sub_accounts(owner, account.id, &listed)
        .await?;
    let mut out = Vec::new();
    for a in &created.accounts {
        let sub = subs
            .iter()
            .find(|s| s.name == a.name)
            .with_context(|| format!("sub-account {} not synced", a.name))?;
        out.push(Account {
            name: a.name.clone(),
            sub_account: sub.id,
        });
    }
    Ok((login, out))
}

/// A bracket on every entry: one contract, a take-profit 20 ticks away and a fixed stop 30
/// ticks away (the most common configuration).
pub fn bracket_settings() -> Settings {
    Settings {
        initial_position_size: 1,
        tp_targets: vec![TpTarget {
            value: Decimal::from(20),
            trim: Decimal::ONE,
        }],
        tp_units: PriceUnits::Ticks,
        sl_enabled: true,
        sl_amount: Decimal::from(30),
        sl_units: PriceUnits::Ticks,
        sl_type: StopType::Fixed,
        ..Settings::default()
    }
}

/// A recorder with one enabled trader on each of `accounts`.
pub async fn recorder(
    store: &Store,
    owner: UserId,
    name: String,
    settings: Settings,
    accounts: &[Account],
) -> anyhow::Result<Recorder> {
    let (recorder, token) = store
        .recorders()
        .create(
            owner,
            NewRecorder {
                name,
                symbol: Some("MNQ1!".into()),
                settings,
                commission_per_contract: Decimal::new(62, 2),
            },
        )
        .await?;
    let mut traders = Vec::with_capacity(accounts.len());
    for chunk in accounts.chunks(64) {
        let mut tasks = JoinSet::new();
        for (i, account) in chunk.iter().enumerate() {
            let (store, account) = (store.clone(), account.clone());
            tasks.spawn(async move {
                let trader = store
                    .traders()
                    .create(
                        owner,
                        NewTrader {
                            recorder: recorder.id,
                            sub_account: account.sub_account,
                            enabled: true,
                            overrides: jt_domain::SettingsOverrides::default(),
                        },
                    )
                    .await?;
                anyhow::Ok((i, trader.id, account))
            });
        }
        let mut made = Vec::new();
        while let Some(done) = tasks.join_next().await {
            made.push(done??);
        }
        made.sort_by_key(|(i, _, _)| *i);
        traders.extend(made.into_iter().map(|(_, t, a)| (t, a)));
    }
    Ok(Recorder {
        token: token.expose().to_string(),
        traders,
    })
}

/// `count` recorders without traders (ingest load: the fan-out records each signal and finds
/// nobody to send it to).
pub async fn bare_recorders(
    store: &Store,
    owner: UserId,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(count);
    let indices: Vec<usize> = (0..count).collect();
    for chunk in indices.chunks(64) {
        let mut tasks = JoinSet::new();
        for i in chunk {
            let store = store.clone();
            let i = *i;
            tasks.spawn(async move {
                let (_, token) = store
                    .recorders()
                    .create(
                        owner,
                        NewRecorder {
                            name: format!("ingest load {i}"),
                            symbol: Some("MNQ1!".into()),
                            settings: Settings::default(),
                            commission_per_contract: Decimal::ZERO,
                        },
                    )
                    .await?;
                anyhow::Ok(token.expose().to_string())
            });
        }
        while let Some(done) = tasks.join_next().await {
            tokens.push(done??);
        }
    }
    Ok(tokens)
}
