//! An exchange simulator that speaks brokers' wire protocols — Tradovate's (REST, the user
//! WebSocket and the market-data WebSocket), ProjectX Gateway's (REST and the SignalR
//! hubs) and Webull OpenAPI's (HMAC-signed REST, futures) — faithfully enough that a client written from the public documentation works
//! against it unchanged, plus an admin and fault API under `/sim/`.
//!
//! It is the broker of `make run`, of the integration tests and of the benchmarks. Layout:
//! [`core`] is the exchange (accounts, matching, positions, P&L) and knows no wire format;
//! [`tradovate`], [`projectx`] and [`webull`] are the protocol surfaces over that one core (a login, and so
//! its accounts, is served through one of them) and share the venue-neutral [`wire`] readers
//! and the [`sockets`] registry — a surface never imports another surface; [`admin`] and
//! [`faults`] are the simulator's own controls.
//!
//! It must not be used as a model of anything but a broker's observable behaviour: fills are
//! simulated against a single price per contract, there is no order book depth.
//!
//! ```no_run
//! # async fn demo() -> Result<(), jt_sim::SimError> {
//! let sim = jt_sim::Sim::start(jt_sim::SimConfig::default()).await?;
//! let admin = sim.admin();
//! admin.create_user(&jt_sim::admin::NewUser {
//!     name: "alice".into(),
//!     password: "secret".into(),
//!     accounts: vec!["DEMO1".into()],
//!     ..Default::default()
//! })?;
//! println!("Tradovate REST at {}/v1", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod core;
pub mod faults;
pub mod feed;
mod net;
pub mod projectx;
mod requests;
pub mod sockets;
pub mod tradovate;
pub mod webull;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use dashmap::DashMap;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::core::model::Id;
use crate::core::{Exchange, MatchingSettings, SessionMode};
use crate::faults::Faults;
use crate::feed::{Feeds, PriceFeed};
use crate::projectx::{ProjectX, ProjectXConfig};
use crate::sockets::Sockets;
use crate::tradovate::auth::Auth;
use crate::tradovate::limits::{Limits, LimitsConfig};
use crate::webull::{Webull, WebullConfig};

pub use admin::Admin;

/// Failures of [`Sim::start`].
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listen address could not be bound (in use, not local…): choose another.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A seed user or price in the configuration is invalid.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// An admin call failed.
    #[error(transparent)]
    Admin(#[from] crate::core::AdminError),
}

/// Everything the simulator can be told at start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to bind (default `127.0.0.1:0`: a free port).
    pub listen: SocketAddr,
    /// Lifetime of access tokens (default 90 minutes).
    pub token_lifetime: Duration,
    /// Concurrent login sessions per user (default 2; one more closes the oldest).
    pub max_sessions_per_user: usize,
    /// Always open (default) or CME hours.
    pub session_mode: SessionMode,
    /// Matching knobs.
    pub matching: MatchingSettings,
    /// Request limits and penalties (default: none).
    pub limits: LimitsConfig,
    /// The server sends `h` after this long without another frame (2.5 s).
    pub heartbeat_interval: Duration,
    /// A client silent this long is dropped (10 s).
    pub client_timeout: Duration,
    /// A socket not authorized this long after opening is closed (30 s).
    pub auth_timeout: Duration,
    /// Per-socket queue of event batches; a client that lets it fill is disconnected.
    pub event_queue: usize,
    /// How long an "ambiguous timeout" fault holds a response before dropping the connection.
    pub ambiguous_hang: Duration,
    /// Price sources applied at start.
    pub prices: Vec<PriceFeed>,
    /// Logins created at start.
    pub users: Vec<admin::NewUser>,
    /// The ProjectX surface: token lifetime, request limits, hub timings.
    pub projectx: ProjectXConfig,
    /// The Webull surface: timestamp window, request limit.
    pub webull: WebullConfig,
    /// The trading day the listed contracts (front and next month) are computed for; `None`:
    /// today's. Tests stand on either side of a roll with it; nothing else changes with it.
    pub catalog_date: Option<chrono::NaiveDate>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_lifetime: Duration::from_secs(90 * 60),
            max_sessions_per_user: 2,
            session_mode: SessionMode::AlwaysOpen,
            matching: MatchingSettings::default(),
            limits: LimitsConfig::default(),
            heartbeat_interval: Duration::from_millis(2500),
            client_timeout: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(30),
            event_queue: 4096,
            ambiguous_hang: Duration::from_secs(120),
            prices: Vec::new(),
            users: Vec::new(),
            projectx: ProjectXConfig::default(),
            webull: WebullConfig::default(),
            catalog_date: None,
        }
    }
}

/// State shared by every surface and task.
pub(crate) struct Shared {
    pub(crate) ex: Arc<Exchange>,
    pub(crate) auth: Auth,
    pub(crate) limits: Limits,
    pub(crate) faults: Faults,
    pub(crate) sockets: Sockets,
    pub(crate) feeds: Feeds,
    pub(crate) oauth_codes: DashMap<String, Id>,
    pub(crate) px: ProjectX,
    pub(crate) wb: Webull,
    pub(crate) config: SimConfig,
    pub(crate) shutdown: CancellationToken,
    pub(crate) requests: requests::RequestCounts,
}

/// A running simulator.
pub struct Sim {
    addr: SocketAddr,
    sh: Arc<Shared>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn router(sh: Arc<Shared>) -> Router {
    Router::new()
        .nest("/sim", admin::router())
        .fallback(surface)
        .with_state(sh)
}

/// Routes a request to the protocol surface its path belongs to.
async fn surface(
    State(sh): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<net::ConnHandle>,
    req: Request,
) -> Response {
    let path = req.uri().path().to_ascii_lowercase();
    if projectx::owns(&path) {
        projectx::handle(sh, conn, req).await
    } else if webull::owns(&path) {
        webull::handle(sh, conn, req).await
    } else {
        tradovate::handle(State(sh), ConnectInfo(conn), req).await
    }
}

impl Sim {
    /// Binds `config.listen` and serves until [`Sim::shutdown`].
    ///
    /// # Errors
    /// [`SimError::Bind`] when the address cannot be bound, [`SimError::Config`] for a bad seed
    /// user or price.
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let today = config
            .catalog_date
            .unwrap_or_else(|| core::clock::trade_date_of(core::clock::now_us()));
        let ex = Arc::new(Exchange::new(today, config.matching, config.session_mode));
        let px = ProjectX::new(&ex.catalog, &config.projectx);
        let sh = Arc::new(Shared {
            ex,
            px,
            wb: Webull::new(&config.webull),
            auth: Auth::new(config.token_lifetime, config.max_sessions_per_user),
            limits: Limits::new(config.limits.clone()),
            faults: Faults::new(),
            sockets: Sockets::default(),
            feeds: Feeds::default(),
            oauth_codes: DashMap::new(),
            config: config.clone(),
            shutdown: CancellationToken::new(),
            requests: requests::RequestCounts::default(),
        });
        let admin = Admin { sh: sh.clone() };
        for u in &config.users {
            admin.create_user(u)?;
        }
        for p in &config.prices {
            admin
                .set_price_source(&p.symbol, &p.source)
                .map_err(|e| SimError::Config(e.to_string()))?;
        }
        let app = router(sh.clone()).into_make_service_with_connect_info::<net::ConnHandle>();
        let token = sh.shutdown.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(net::KillableListener(listener), app)
                .with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(%e, "simulator server stopped");
            }
        });
        tracing::info!(%addr, "exchange simulator listening");
        Ok(Sim { addr, sh, server })
    }

    /// The address actually bound.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: Tradovate REST is at `{base}/v1`, the admin API at `{base}/sim/`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/v1/websocket`: the user/trading socket.
    #[must_use]
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/websocket", self.addr)
    }

    /// `ws://127.0.0.1:PORT/md/v1/websocket`: the market-data socket.
    #[must_use]
    pub fn md_ws_url(&self) -> String {
        format!("ws://{}/md/v1/websocket", self.addr)
    }

    /// `http://127.0.0.1:PORT/api`: ProjectX REST.
    #[must_use]
    pub fn projectx_api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// `ws://127.0.0.1:PORT/hubs/user`: the ProjectX user hub (add `?access_token=`).
    #[must_use]
    pub fn projectx_user_hub_url(&self) -> String {
        format!("ws://{}/hubs/user", self.addr)
    }

    /// `ws://127.0.0.1:PORT/hubs/market`: the ProjectX market hub (add `?access_token=`).
    #[must_use]
    pub fn projectx_market_hub_url(&self) -> String {
        format!("ws://{}/hubs/market", self.addr)
    }

    /// `http://127.0.0.1:PORT`: Webull OpenAPI (`/openapi/…`), signed with a Webull login's
    /// app key and secret.
    #[must_use]
    pub fn webull_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The typed admin handle.
    #[must_use]
    pub fn admin(&self) -> Admin {
        Admin {
            sh: self.sh.clone(),
        }
    }

    /// The exchange core (for in-process benchmarks and tests).
    #[must_use]
    pub fn exchange(&self) -> Arc<Exchange> {
        self.sh.ex.clone()
    }

    /// Closes every socket with a `shutdown` event and a close frame, stops price feeds and
    /// the server.
    pub async fn shutdown(self) {
        self.sh.shutdown.cancel();
        self.sh.feeds.stop_all();
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}
