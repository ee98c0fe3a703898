//! Prometheus metrics: one recorder per process (shared by every service of `jt dev`), rendered
//! by the `/metrics` route of [`crate::health::router`].
//!
//! Metric names are `jt_<area>_<what>_<unit>`; labels are few and bounded (service, broker,
//! outcome, reason) — never an account id, token or user id, whose cardinality is unbounded.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets for latencies in seconds: 100 µs to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Installs the Prometheus recorder (once per process) and returns the handle that renders it.
///
/// Histograms whose name ends in `_seconds` get [`LATENCY_BUCKETS`]. Call it from a Tokio
/// runtime: it spawns the periodic upkeep that keeps histograms bounded.
///
/// # Errors
/// When a different global `metrics` recorder was installed by someone else.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The installed handle, if [`install`] has run.
#[must_use]
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned()
}
