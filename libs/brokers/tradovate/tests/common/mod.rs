//! Shared set-up of the simulator integration tests: a real `jt-sim` on loopback, users made
//! through its admin handle, and adapter configurations with test-sized timings.

#![allow(dead_code)] // each test binary uses a different part
#![allow(clippy::expect_used)] // test set-up: a failure must stop the test loudly

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jt_broker::{AccountId, BrokerEvent, EventEnvelope, EventSubscription};
use jt_net::gate::{ConnectGate, GateConfig};
use jt_net::registry::Plumbing;
use jt_net::socket::Reconnect;
use jt_sim::admin::{CreatedUser, NewUser};
use jt_sim::faults::{FaultKind, FaultSpec};
use jt_sim::{Sim, SimConfig};
use jt_tradovate::config::{HttpConfig, RateLimitConfig, WsConfig};
use jt_tradovate::{
    Brand, Credentials, Environment, LoginRegistry, TradovateBroker, TradovateConfig,
};
use rust_decimal::Decimal;

/// Starts a simulator; fails loudly when it cannot.
pub async fn start_sim(config: SimConfig) -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sim::start(config)
        .await
        .expect("the simulator (jt-sim) must start on loopback for these tests")
}

/// A simulator with default settings.
pub async fn sim() -> Sim {
    start_sim(SimConfig::default()).await
}

/// Creates a login with `accounts`.
pub fn user(sim: &Sim, name: &str, accounts: &[&str]) -> CreatedUser {
    sim.admin()
        .create_user(&NewUser {
            name: name.into(),
            password: format!("{name}-pw"),
            accounts: accounts.iter().map(|a| (*a).to_string()).collect(),
            ..NewUser::default()
        })
        .expect("the simulator creates the user")
}

/// Sets a price (root = front month, or a contract name).
pub fn price(sim: &Sim, symbol: &str, price: Decimal) {
    sim.admin()
        .set_price(symbol, price)
        .expect("the simulator sets the price");
}

/// Adds a fault rule or action.
pub fn fault(
    sim: &Sim,
    kind: FaultKind,
    user: Option<&str>,
    endpoint: Option<&str>,
    count: Option<u32>,
) {
    sim.admin()
        .add_fault(FaultSpec {
            kind,
            user: user.map(str::to_string),
            account: None,
            endpoint: endpoint.map(str::to_string),
            count,
        })
        .expect("the simulator accepts the fault");
}

/// An adapter configuration for `name` on `sim`, with test-sized timings.
pub fn config(sim: &Sim, name: &str) -> TradovateConfig {
    let mut c = TradovateConfig::new(
        Brand::Tradovate,
        Environment::Demo,
        Credentials {
            name: name.into(),
            password: format!("{name}-pw"),
            app_id: Some("jt-tests".into()),
            app_version: Some("1".into()),
            ..Credentials::default()
        },
    )
    .with_base_url(&sim.base_url())
    .expect("the simulator's base URL is http");
    c.http = HttpConfig {
        auth_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(2),
        read_retry_backoff: Duration::from_millis(20),
        lookup_interval: Duration::from_millis(100),
        ..HttpConfig::default()
    };
    c.limits = RateLimitConfig {
        too_many_requests_backoff: Duration::from_millis(400),
        locked_warning_backoff: Duration::from_millis(200),
        max_inline_penalty_wait: Duration::from_secs(3),
        ..RateLimitConfig::default()
    };
    c.ws = WsConfig {
        reconnect: Reconnect {
            initial_stagger_max: Duration::ZERO,
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
            ..Reconnect::default()
        },
        account_add_debounce: Duration::from_millis(100),
        market_hours: Arc::new(|_| true),
        ..WsConfig::default()
    };
    c
}

/// A gate sized for tests (2 in flight, 5 ms apart).
pub fn gate() -> Arc<ConnectGate> {
    ConnectGate::new(&GateConfig {
        max_in_flight: 2,
        spacing: Duration::from_millis(5),
    })
}

/// A registry of its own over a test-sized gate (no sharing with other tests).
pub fn registry() -> Arc<LoginRegistry> {
    LoginRegistry::new(Plumbing::process_wide().with_gate(gate()))
}

/// A broker in its own registry (no sharing with other tests).
pub fn broker(config: TradovateConfig) -> TradovateBroker {
    TradovateBroker::with(config, &registry()).expect("the adapter builds")
}

/// The first account of a created user.
pub fn account(u: &CreatedUser) -> AccountId {
    AccountId::from(u.accounts[0].id)
}

/// Waits for an event matching `pred`, up to `within`.
pub async fn next_event(
    sub: &mut EventSubscription,
    within: Duration,
    pred: impl Fn(&BrokerEvent) -> bool,
) -> Option<Arc<EventEnvelope>> {
    tokio::time::timeout(within, async {
        while let Some(e) = sub.recv().await {
            if pred(&e.event) {
                return Some(e);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Collects every event for `during`.
pub async fn collect(sub: &mut EventSubscription, during: Duration) -> Vec<Arc<EventEnvelope>> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(during, async {
        while let Some(e) = sub.recv().await {
            out.push(e);
        }
    })
    .await;
    out
}

/// Polls `check` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
