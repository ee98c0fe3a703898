//! Everything configurable about the Tradovate adapter, with the production defaults of
//! DOMAIN §7–§8 and BROKERS.md §1. Tests shrink the timings; production keeps the defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jt_net::socket::Reconnect;
use url::Url;

pub use jt_net::http::HttpConfig;

use jt_broker::clock::{MarketHours, default_market_hours};
use jt_broker::model::BrokerKind;
use jt_broker::session_store::{ClaimConfig, SessionStore};

/// Which brand the login belongs to (NinjaTrader brokerage runs on the Tradovate backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Brand {
    /// Tradovate.
    Tradovate,
    /// NinjaTrader brokerage.
    NinjaTrader,
}

impl Brand {
    /// The broker kind reported by the adapter (metric label).
    #[must_use]
    pub fn kind(self) -> BrokerKind {
        match self {
            Self::Tradovate => BrokerKind::Tradovate,
            Self::NinjaTrader => BrokerKind::NinjaTrader,
        }
    }
}

/// Demo (simulated fills, real market data) or live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// `demo.tradovateapi.com`.
    Demo,
    /// `live.tradovateapi.com`.
    Live,
}

/// The credentials of one login. `Debug` never prints the password or the secret.
#[derive(Clone, Default)]
pub struct Credentials {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Application name shown to the user.
    pub app_id: Option<String>,
    /// Application version.
    pub app_version: Option<String>,
    /// Stable per-device id (live checks it strictly).
    pub device_id: Option<String>,
    /// API key client id; sent as a JSON number when it is one (official examples do).
    pub cid: Option<String>,
    /// API key secret.
    pub sec: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("app_id", &self.app_id)
            .field("app_version", &self.app_version)
            .field("device_id", &self.device_id)
            .field("cid", &self.cid)
            .field("sec", &self.sec.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Rate limits and penalties (per login: every account on the token shares them).
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Sustained requests per second (governor; calls wait for a slot).
    pub per_second: u32,
    /// Burst size above the sustained rate.
    pub burst: u32,
    /// Requests per rolling hour (Tradovate: about 5,000 per user); beyond it calls fail fast
    /// with `RateLimited` instead of waiting for minutes.
    pub per_hour: u32,
    /// A penalty wait up to this long is waited out inside the call; a longer one is returned
    /// as `Penalty` to the caller.
    pub max_inline_penalty_wait: Duration,
    /// Penalty rounds inside one call before giving up with `Penalty`.
    pub max_penalty_rounds: u32,
    /// How long a captcha demand locks the login out (Tradovate: about an hour).
    pub captcha_lockout: Duration,
    /// Back-off after HTTP 429 when the answer gives no `Retry-After`.
    pub too_many_requests_backoff: Duration,
    /// Back-off after HTTP 423 ("about to be locked out").
    pub locked_warning_backoff: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: 50,
            burst: 100,
            per_hour: 5_000,
            max_inline_penalty_wait: Duration::from_secs(10),
            max_penalty_rounds: 3,
            captcha_lockout: Duration::from_secs(3_600),
            too_many_requests_backoff: Duration::from_secs(60),
            locked_warning_backoff: Duration::from_secs(10),
        }
    }
}

/// Token lifecycle.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Renew when the token expires within this (Tradovate advises about 15 minutes).
    pub renew_before_expiry: Duration,
    /// With a session store: how long a renewal/login claim holds and how a process waits
    /// for another's login.
    pub claim: ClaimConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            renew_before_expiry: Duration::from_secs(15 * 60),
            claim: ClaimConfig::default(),
        }
    }
}

/// WebSocket rules (DOMAIN §8).
#[derive(Clone)]
pub struct WsConfig {
    /// Client heartbeat `[]` whenever this long has passed since the last send.
    pub heartbeat_interval: Duration,
    /// No frame from the server for this long: the socket is dead.
    pub server_silence_timeout: Duration,
    /// Length of one subscription-liveness window.
    pub subscription_window: Duration,
    /// Consecutive data-less windows while the market is open before reconnecting.
    pub dead_subscription_windows: u32,
    /// Reconnect back-off and the initial stagger.
    pub reconnect: Reconnect,
    /// Close and reopen before the socket's token is this old.
    pub max_token_age: Duration,
    /// Renew first when the token would leave the socket less than this to live.
    pub min_socket_life: Duration,
    /// Connect, wait for `o`, within this.
    pub connect_timeout: Duration,
    /// Authorization answered within this.
    pub auth_timeout: Duration,
    /// Sync request answered within this.
    pub sync_timeout: Duration,
    /// Accounts added within this are served by one planned reconnect.
    pub account_add_debounce: Duration,
    /// Queue length of each subscriber.
    pub subscriber_capacity: usize,
    /// `entityTypes` of the sync request (`None` sends none: the server's default).
    pub entity_types: Option<Vec<String>>,
    /// A fill this much older than the connection start is still accepted (clock skew);
    /// duplicates are caught by fill id.
    pub replay_skew: Duration,
    /// "Is the market open?" for dead-subscription detection.
    pub market_hours: MarketHours,
}

impl fmt::Debug for WsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsConfig")
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("server_silence_timeout", &self.server_silence_timeout)
            .field("subscription_window", &self.subscription_window)
            .field("dead_subscription_windows", &self.dead_subscription_windows)
            .field("reconnect", &self.reconnect)
            .field("max_token_age", &self.max_token_age)
            .finish_non_exhaustive()
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(2_500),
            server_silence_timeout: Duration::from_secs(10),
            subscription_window: Duration::from_secs(30),
            dead_subscription_windows: 10,
            reconnect: Reconnect::default(),
            max_token_age: Duration::from_secs(70 * 60),
            min_socket_life: Duration::from_secs(5 * 60),
            connect_timeout: Duration::from_secs(15),
            auth_timeout: Duration::from_secs(10),
            sync_timeout: Duration::from_secs(30),
            account_add_debounce: Duration::from_secs(1),
            subscriber_capacity: 4_096,
            entity_types: Some(
                [
                    "account",
                    "position",
                    "order",
                    "orderVersion",
                    "command",
                    "fill",
                    "cashBalance",
                    "contract",
                    "executionReport",
                    "orderStrategy",
                    "orderStrategyLink",
                ]
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
            ),
            replay_skew: Duration::from_secs(2),
            market_hours: default_market_hours(),
        }
    }
}

/// One Tradovate (or NinjaTrader) login.
#[derive(Debug, Clone)]
pub struct TradovateConfig {
    /// Brand (metric label, defaults of hosts).
    pub brand: Brand,
    /// REST base, ending in `/v1`.
    pub rest_url: Url,
    /// Trading/user WebSocket.
    pub ws_url: Url,
    /// Market-data WebSocket (one host for live and demo).
    pub md_url: Url,
    /// The login.
    pub credentials: Credentials,
    /// Timeouts and retries.
    pub http: HttpConfig,
    /// Rate limits and penalties.
    pub limits: RateLimitConfig,
    /// Token lifecycle.
    pub session: SessionConfig,
    /// WebSocket rules.
    pub ws: WsConfig,
    /// Where the processes using this login share its session (`None`: this process keeps
    /// its own session, as a single process may). See `docs/brokers.md`, "Sessions across
    /// processes".
    pub session_store: Option<Arc<dyn SessionStore>>,
}

/// A URL that is known to parse.
fn url(s: &str) -> Url {
    // The literals below are valid URLs; parsing cannot fail.
    #[allow(clippy::expect_used)]
    Url::parse(s).expect("static URL")
}

impl TradovateConfig {
    /// The public hosts of `brand` in `environment` (BROKERS.md §1.1; NinjaTrader brokerage
    /// documents the same hosts — override them with [`TradovateConfig::with_base_url`]).
    #[must_use]
    pub fn new(brand: Brand, environment: Environment, credentials: Credentials) -> Self {
        let (rest, ws) = match environment {
            Environment::Demo => (
                "https://demo.tradovateapi.com/v1",
                "wss://demo.tradovateapi.com/v1/websocket",
            ),
            Environment::Live => (
                "https://live.tradovateapi.com/v1",
                "wss://live.tradovateapi.com/v1/websocket",
            ),
        };
        Self {
            brand,
            rest_url: url(rest),
            ws_url: url(ws),
            md_url: url("wss://md.tradovateapi.com/v1/websocket"),
            credentials,
            http: HttpConfig::default(),
            limits: RateLimitConfig::default(),
            session: SessionConfig::default(),
            ws: WsConfig::default(),
            session_store: None,
        }
    }

    /// Shares the login's session with the other processes using `store` (executor replicas,
    /// the connection manager, daemons): one login for all of them.
    #[must_use]
    pub fn with_session_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.session_store = Some(store);
        self
    }

    /// Points REST at `{base}/v1`, the socket at `{base as ws(s)}/v1/websocket` and market
    /// data at `{base as ws(s)}/md/v1/websocket` (the simulator's layout; a partner staging
    /// host's md host is set in [`TradovateConfig::md_url`] after this).
    ///
    /// # Errors
    /// When `base` is not an `http`/`https` URL.
    pub fn with_base_url(mut self, base: &str) -> Result<Self, String> {
        let base = base.trim_end_matches('/');
        let rest = Url::parse(&format!("{base}/v1")).map_err(|e| format!("{base}: {e}"))?;
        let ws_scheme = match rest.scheme() {
            "http" => "ws",
            "https" => "wss",
            other => return Err(format!("{base}: scheme {other} is not http or https")),
        };
        let rest_str = rest.as_str().trim_end_matches('/');
        let ws = Url::parse(&format!(
            "{ws_scheme}{}/websocket",
            &rest_str[rest.scheme().len()..]
        ))
        .map_err(|e| format!("{base}: {e}"))?;
        self.md_url = crate::websocket::market::md_url_beside(&rest)?;
        self.rest_url = rest;
        self.ws_url = ws;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_map_to_rest_and_socket() {
        let c = TradovateConfig::new(Brand::Tradovate, Environment::Demo, Credentials::default())
            .with_base_url("http://127.0.0.1:8081/")
            .unwrap();
        assert_eq!(c.rest_url.as_str(), "http://127.0.0.1:8081/v1");
        assert_eq!(c.ws_url.as_str(), "ws://127.0.0.1:8081/v1/websocket");
        assert_eq!(c.md_url.as_str(), "ws://127.0.0.1:8081/md/v1/websocket");
        assert!(
            TradovateConfig::new(Brand::Tradovate, Environment::Demo, Credentials::default())
                .with_base_url("ftp://x")
                .is_err()
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = Credentials {
            name: "u".into(),
            password: "hunter2".into(),
            sec: Some("s3cret".into()),
            ..Credentials::default()
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
