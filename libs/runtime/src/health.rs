//! Liveness, readiness and metrics endpoints shared by every service.
//!
//! - `GET /healthz`: the process is alive (always 200 while it can answer).
//! - `GET /readyz`: every registered dependency check passed (200) or not (503), with a JSON
//!   body naming each check, so Kubernetes stops routing to a replica whose database or bus is
//!   unreachable while the process stays up and keeps retrying (no crash loop).
//! - `GET /metrics`: the Prometheus text exposition of [`crate::metrics`], followed by the
//!   process families read from `/proc` at that moment.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::sync::RwLock;

/// The result of one readiness check: `Err` carries a reason an operator can read.
pub type CheckResult = Result<(), String>;

type CheckFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = CheckResult> + Send>> + Send + Sync>;

/// Whether a failing check makes the process unready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criticality {
    /// The process cannot do its job without this dependency: a failure makes it unready.
    Required,
    /// The process keeps working without it (degraded): a failure is reported, readiness stays.
    Degraded,
}

/// How long one readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The readiness checks of a process; cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<RwLock<BTreeMap<String, (Criticality, CheckFn)>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

/// The JSON body of `/readyz`.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// Whether every check passed.
    pub ready: bool,
    /// Each check by name: `"ok"`, the failure reason, or `"degraded: <reason>"` for a
    /// failing [`Criticality::Degraded`] check.
    pub checks: BTreeMap<String, String>,
}

impl Health {
    /// An empty set of checks (ready).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a named required dependency check, e.g. `"bus"`.
    pub async fn register<F, Fut>(&self, name: &str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        self.register_as(name, Criticality::Required, check).await;
    }

    /// Registers (or replaces) a named check with its criticality.
    pub async fn register_as<F, Fut>(&self, name: &str, criticality: Criticality, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        let f: CheckFn = Arc::new(move || Box::pin(check()));
        self.checks
            .write()
            .await
            .insert(name.to_string(), (criticality, f));
    }

    /// Runs every check concurrently, each bounded by [`CHECK_TIMEOUT`].
    pub async fn readiness(&self) -> Readiness {
        let checks: Vec<(String, Criticality, CheckFn)> = self
            .checks
            .read()
            .await
            .iter()
            .map(|(k, (c, f))| (k.clone(), *c, f.clone()))
            .collect();
        let mut handles = Vec::with_capacity(checks.len());
        for (name, criticality, check) in checks {
            handles.push(async move {
                let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(reason)) => Err(reason),
                    Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
                };
                (name, criticality, outcome)
            });
        }
        let mut out = BTreeMap::new();
        let mut ready = true;
        for (name, criticality, outcome) in futures_join_all(handles).await {
            match (outcome, criticality) {
                (Ok(()), _) => {
                    out.insert(name, "ok".to_string());
                }
                (Err(reason), Criticality::Required) => {
                    ready = false;
                    out.insert(name, reason);
                }
                (Err(reason), Criticality::Degraded) => {
                    out.insert(name, format!("degraded: {reason}"));
                }
            }
        }
        Readiness { ready, checks: out }
    }
}

/// Awaits futures concurrently without pulling in `futures` (few, short checks).
async fn futures_join_all<F: Future + Send + 'static>(futs: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(err) => tracing::error!(%err, "readiness check panicked"),
        }
    }
    out
}

/// The `/healthz`, `/readyz` and `/metrics` routes; merge them into a service's router.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(health): State<Health>) -> Response {
    let r = health.readiness().await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(r)).into_response()
}

async fn metrics() -> Response {
    match crate::metrics::handle() {
        Some(h) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render() + &crate::metrics::process_text(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_path(app: Router, path: &str) -> (StatusCode, String) {
        let res = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn ready_when_every_check_passes_and_503_naming_the_failure_otherwise() {
        let health = Health::new();
        health.register("store", || async { Ok(()) }).await;
        let (status, body) = get_path(router(health.clone()), "/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");

        health
            .register("bus", || async { Err("connection refused".to_string()) })
            .await;
        let (status, body) = get_path(router(health), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["checks"]["bus"], "connection refused");
        assert_eq!(v["checks"]["store"], "ok");
        assert_eq!(v["ready"], false);
    }

    #[tokio::test]
    async fn a_degraded_dependency_is_reported_without_making_the_process_unready() {
        let health = Health::new();
        health.register("bus", || async { Ok(()) }).await;
        health
            .register_as("store", Criticality::Degraded, || async {
                Err("refused".to_string())
            })
            .await;
        let r = health.readiness().await;
        assert!(r.ready);
        assert_eq!(r.checks["store"], "degraded: refused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_fails_after_the_timeout() {
        let health = Health::new();
        health
            .register("slow", || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .await;
        let r = health.readiness().await;
        assert!(!r.ready);
        assert!(r.checks["slow"].contains("no answer"));
    }

    #[tokio::test]
    async fn healthz_and_metrics_answer() {
        crate::metrics::install().unwrap();
        metrics::counter!("jt_test_events_total").increment(1);
        let (status, _) = get_path(router(Health::new()), "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = get_path(router(Health::new()), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("jt_test_events_total"), "{body}");
    }
}
