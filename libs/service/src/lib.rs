//! The one service skeleton: what every service starts from and how services are served.
//!
//! A process builds one [`Context`] — store, bus, broker access, health checks, shutdown — and
//! hands it to each service's `start(config, &ctx) -> anyhow::Result<Running>` (vector's
//! `build(cx) -> (component, healthcheck)` is the model). A service registers its own readiness
//! checks on `ctx.health`, spawns its work (consumers, timers) as [`Running::task`], and offers
//! its HTTP routes as [`Running::routes`]. [`serve`] then merges the routes of one service
//! (`jt ingest`, `jt executor`, …) or of all of them (`jt dev`) on one listener beside
//! `/healthz`, `/readyz` and `/metrics`, waits for shutdown, lets the listener finish its
//! requests, and waits for every task.
//!
//! Adding a service is a crate of that shape plus one line in `jt`.
//!
//! What it must not do: know any service, hold a business rule, or read the environment for a
//! service (each service's config does that).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use jt_bus::Bus;
use jt_connect::BrokerAccess;
use jt_runtime::health::Health;
use jt_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What every service of a process shares; built once, cheap to clone.
#[derive(Clone)]
pub struct Context {
    /// The platform's database.
    pub store: Store,
    /// The message bus (JetStream, or the embedded bus in `jt dev`).
    pub bus: Bus,
    /// Stored broker accounts to ready brokers, with the process's shared logins.
    pub brokers: Arc<BrokerAccess>,
    /// The process's readiness checks (`/readyz`).
    pub health: Health,
    /// Cancelled when the process must stop (SIGINT/SIGTERM): stop taking new work.
    pub shutdown: CancellationToken,
    /// Cancelled by [`serve`] once the listener has stopped and finished its requests (always
    /// after `shutdown`): what the routes still use (a log writer) may close then.
    pub drained: CancellationToken,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("bus", &self.bus)
            .field("brokers", &self.brokers)
            .field("shutdown", &self.shutdown.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context over `store`, `bus` and `brokers`, with no readiness checks yet and fresh
    /// shutdown signals.
    #[must_use]
    pub fn new(store: Store, bus: Bus, brokers: Arc<BrokerAccess>) -> Self {
        Self {
            store,
            bus,
            brokers,
            health: Health::new(),
            shutdown: CancellationToken::new(),
            drained: CancellationToken::new(),
        }
    }

    /// The same context stopped by `shutdown` (a signal handler's token) instead of its own.
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Registers the bus as required for readiness and the store with `store` criticality
    /// (the ingest keeps answering alerts from its cache while the database is down; the
    /// executor cannot record an intent without it).
    pub async fn register_core_health(&self, store: jt_runtime::health::Criticality) {
        let bus = self.bus.clone();
        self.health
            .register("bus", move || {
                let bus = bus.clone();
                async move { bus.ping().await.map_err(|e| e.to_string()) }
            })
            .await;
        let db = self.store.clone();
        self.health
            .register_as("store", store, move || {
                let db = db.clone();
                async move { db.ping().await.map_err(|e| e.to_string()) }
            })
            .await;
    }
}

/// A started service: its routes and its work.
#[derive(Debug)]
pub struct Running {
    /// The service's name, in logs and errors (`ingest`, `executor`).
    pub name: &'static str,
    /// Its HTTP routes (empty for a service without any); merged on the process's listener.
    pub routes: Router,
    /// Its work, ending after `ctx.shutdown` (and, for work the routes use, `ctx.drained`).
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// A service with `routes` and `task`.
    #[must_use]
    pub fn new(name: &'static str, routes: Router, task: JoinHandle<anyhow::Result<()>>) -> Self {
        Self { name, routes, task }
    }

    /// Waits for the service's work to end.
    ///
    /// # Errors
    /// The task's error, or its panic, naming the service.
    pub async fn wait(self) -> anyhow::Result<()> {
        let name = self.name;
        self.task
            .await
            .with_context(|| format!("the {name} service's task panicked or was aborted"))?
            .with_context(|| format!("the {name} service failed"))
    }
}

/// Serves `services` on `listen` beside `/healthz`, `/readyz` and `/metrics` until
/// `ctx.shutdown`; then lets the listener finish its requests, cancels `ctx.drained`, and waits
/// for every service's task. A service whose task ends with an error before shutdown stops the
/// whole process (its error is returned): a half-running process would answer ready.
///
/// # Errors
/// When the listener cannot bind, or a service failed (the first error, naming the service).
pub async fn serve(
    ctx: &Context,
    listen: SocketAddr,
    services: Vec<Running>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding JT_HTTP_ADDR={listen}"))?;
    serve_on(ctx, listener, services).await
}

/// [`serve`] on a listener already bound (tests bind port 0 and read the address first).
///
/// # Errors
/// As [`serve`].
pub async fn serve_on(
    ctx: &Context,
    listener: tokio::net::TcpListener,
    services: Vec<Running>,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let names: Vec<&str> = services.iter().map(|s| s.name).collect();
    tracing::info!(%addr, services = ?names, "listening");
    let mut routes = Router::new();
    let mut tasks = Vec::with_capacity(services.len());
    for service in services {
        routes = routes.merge(service.routes);
        tasks.push((service.name, service.task));
    }
    // Every service request gets its HTTP server span (the root of an alert's trace);
    // probes and scrapes do not, or they would bury the traces worth reading.
    let app = jt_runtime::health::router(ctx.health.clone()).merge(routes.layer(
        axum::middleware::from_fn(jt_runtime::telemetry::http_server_span),
    ));

    // A task that fails before shutdown takes the process down with it.
    let failed = CancellationToken::new();
    let stop = ctx.shutdown.clone();
    let server = {
        let (stop, failed) = (stop.clone(), failed.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = failed.cancelled() => {}
                }
            })
            .await
        })
    };
    let watched: Vec<_> = tasks
        .into_iter()
        .map(|(name, task)| {
            let failed = failed.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let result = Running::new(name, Router::new(), task).wait().await;
                if let Err(e) = &result {
                    if !stop.is_cancelled() {
                        tracing::error!(service = name, error = %format!("{e:#}"), "service stopped: stopping the process");
                    }
                    failed.cancel();
                    stop.cancel();
                }
                result
            })
        })
        .collect();

    let served = server.await;
    ctx.drained.cancel();
    let mut first_error = match served {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(anyhow::Error::new(e).context("HTTP server")),
        Err(e) => Some(anyhow::Error::new(e).context("HTTP server task")),
    };
    for task in watched {
        let result = match task.await {
            Ok(result) => result,
            Err(e) => Err(anyhow::Error::new(e).context("service watcher")),
        };
        if let Err(e) = result
            && first_error.is_none()
        {
            first_error = Some(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
