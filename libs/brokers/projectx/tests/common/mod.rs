//! Shared set-up of the simulator integration tests: a real `jt-sim` on loopback, faults and
//! prices through its admin handle, and waiting for events.

#![allow(dead_code)] // each test binary uses a different part
#![allow(clippy::expect_used)] // test set-up: a failure must stop the test loudly

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jt_broker::{BrokerEvent, EventEnvelope, EventSubscription};
use jt_sim::faults::{FaultKind, FaultSpec};
use jt_sim::{Sim, SimConfig};
use rust_decimal::Decimal;

/// Starts a simulator; fails loudly when it cannot.
pub async fn start_sim(config: SimConfig) -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sim::start(config)
        .await
        .expect("the simulator (jt-sim) must start on loopback for these tests")
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
