//! Everything configurable about the ProjectX adapter, with the defaults of BROKERS.md §2 and
//! DOMAIN §7–§9. Tests shrink the timings; production keeps the defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jt_net::socket::Reconnect;
use url::Url;

use jt_broker::session_store::{ClaimConfig, SessionStore};
pub use jt_net::http::HttpConfig;

/// A ProjectX firm's public hosts (each prop firm runs its own gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Firm {
    /// TopstepX: `api.topstepx.com`, `rtc.topstepx.com`.
    TopstepX,
    /// ProjectX's demo gateway: `gateway-api-demo.s2f.projectx.com`.
    Demo,
}

/// The API-key login. `Debug` never prints the key.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The ProjectX user name.
    pub user_name: String,
    /// The API key (ProjectX settings → API).
    pub api_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user_name", &self.user_name)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// The request budget (per token, shared by every account of the login: BROKERS.md §2.7).
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Requests per `window` on every endpoint but the bars (ProjectX: 200 per 60 s).
    pub requests: u32,
    /// Window of `requests`.
    pub window: Duration,
    /// `History/retrieveBars` requests per `bars_window` (current docs: 30 per 30 s; an older
    /// copy says 50 — the smaller is the default).
    pub bars_requests: u32,
    /// Window of `bars_requests`.
    pub bars_window: Duration,
    /// A call that would wait longer than this for a slot fails with `RateLimited` instead.
    pub max_wait: Duration,
    /// Back-off after HTTP 429 (no `Retry-After` is documented; one is honoured if sent).
    pub too_many_requests_backoff: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            requests: 200,
            window: Duration::from_secs(60),
            bars_requests: 30,
            bars_window: Duration::from_secs(30),
            max_wait: Duration::from_secs(10),
            too_many_requests_backoff: Duration::from_secs(30),
        }
    }
}

/// Token lifecycle.
#[derive(Clone)]
pub struct SessionConfig {
    /// Renew through `Auth/validate` when the token expires within this.
    pub renew_before_expiry: Duration,
    /// The lifetime assumed when a token carries no readable `exp` claim (ProjectX documents
    /// 24 h).
    pub assumed_lifetime: Duration,
    /// Where the processes of this login share its token (`None`: this process only).
    pub store: Option<Arc<dyn SessionStore>>,
    /// Claims on that store.
    pub claim: ClaimConfig,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("renew_before_expiry", &self.renew_before_expiry)
            .field("assumed_lifetime", &self.assumed_lifetime)
            .field("store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            renew_before_expiry: Duration::from_secs(3_600),
            assumed_lifetime: Duration::from_secs(24 * 3_600),
            store: None,
            claim: ClaimConfig::default(),
        }
    }
}

/// The user hub and its fallback (DOMAIN §8, BROKERS.md §2.6).
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Client ping whenever this long passed since our last message (SignalR's 15 s).
    pub keep_alive: Duration,
    /// Nothing from the server for this long: the hub is dead (SignalR's 30 s).
    pub server_timeout: Duration,
    /// Connect and handshake within this.
    pub connect_timeout: Duration,
    /// Each subscription invocation completed within this.
    pub invoke_timeout: Duration,
    /// Reconnect back-off and the initial stagger (DOMAIN §8: 1, 2, 4 … 60 s plus up to
    /// 10 %; 0–30 s before the first connection).
    pub reconnect: Reconnect,
    /// While the hub is down, positions, open orders, trades and balances are polled this
    /// often (DOMAIN §9: 5 s).
    pub poll_interval: Duration,
    /// Queue length of each subscriber.
    pub subscriber_capacity: usize,
    /// Keep every exit order of a position within its size (see `docs/brokers.md`).
    pub exit_guard: bool,
    /// Negotiate each connection first (`POST {hub}/negotiate?negotiateVersion=1`, then the
    /// upgrade with its `id`), as SignalR clients do by default; off: straight to the
    /// WebSocket, as ProjectX's own example does (`skipNegotiation`), one request fewer.
    pub negotiate: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            server_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            invoke_timeout: Duration::from_secs(10),
            reconnect: Reconnect::default(),
            poll_interval: Duration::from_secs(5),
            subscriber_capacity: 4_096,
            exit_guard: true,
            negotiate: false,
        }
    }
}

/// How a bracket's entry is followed up.
#[derive(Debug, Clone)]
pub struct BracketConfig {
    /// A market entry must be filled within this for its extra take-profit legs to be sized.
    pub fill_wait: Duration,
    /// The server's protective children must appear within this after the fill (real servers
    /// send them 200–300 ms later); missing ones are then placed by the adapter.
    pub children_wait: Duration,
    /// How often the entry and its children are looked up while waiting.
    pub poll_interval: Duration,
}

impl Default for BracketConfig {
    fn default() -> Self {
        Self {
            fill_wait: Duration::from_secs(5),
            children_wait: Duration::from_secs(3),
            poll_interval: Duration::from_millis(150),
        }
    }
}

/// One ProjectX login (user name + API key) at one firm.
#[derive(Debug, Clone)]
pub struct ProjectXConfig {
    /// REST base, ending in `/api`.
    pub api_url: Url,
    /// The user hub (`…/hubs/user`).
    pub user_hub_url: Url,
    /// The market hub (`…/hubs/market`), beside the user hub.
    pub market_hub_url: Url,
    /// The login.
    pub credentials: Credentials,
    /// Timeouts, retries of reads, look-ups after ambiguous writes.
    pub http: HttpConfig,
    /// The per-token request budget.
    pub limits: RateLimitConfig,
    /// Token lifecycle.
    pub session: SessionConfig,
    /// The user hub.
    pub hub: HubConfig,
    /// Brackets.
    pub brackets: BracketConfig,
}

/// A URL that is known to parse.
fn url(s: &str) -> Url {
    // The literals below are valid URLs; parsing cannot fail.
    #[allow(clippy::expect_used)]
    Url::parse(s).expect("static URL")
}

impl ProjectXConfig {
    /// The public hosts of `firm` (BROKERS.md §2.1); other firms: [`ProjectXConfig::with_hosts`].
    #[must_use]
    pub fn new(firm: Firm, credentials: Credentials) -> Self {
        let (api, hub, market) = match firm {
            Firm::TopstepX => (
                "https://api.topstepx.com/api",
                "wss://rtc.topstepx.com/hubs/user",
                "wss://rtc.topstepx.com/hubs/market",
            ),
            Firm::Demo => (
                "https://gateway-api-demo.s2f.projectx.com/api",
                "wss://gateway-rtc-demo.s2f.projectx.com/hubs/user",
                "wss://gateway-rtc-demo.s2f.projectx.com/hubs/market",
            ),
        };
        Self {
            api_url: url(api),
            user_hub_url: url(hub),
            market_hub_url: url(market),
            credentials,
            http: HttpConfig::default(),
            limits: RateLimitConfig::default(),
            session: SessionConfig::default(),
            hub: HubConfig::default(),
            brackets: BracketConfig::default(),
        }
    }

    /// A firm's own hosts: REST at `{api}/api`, the hubs at `{rtc as ws(s)}/hubs/user` and
    /// `…/hubs/market`.
    ///
    /// # Errors
    /// When a base is not an `http`/`https` URL.
    pub fn with_hosts(mut self, api: &str, rtc: &str) -> Result<Self, String> {
        let api = api.trim_end_matches('/');
        let rtc = rtc.trim_end_matches('/');
        let api_url = Url::parse(&format!("{api}/api")).map_err(|e| format!("{api}: {e}"))?;
        let rtc_url = Url::parse(rtc).map_err(|e| format!("{rtc}: {e}"))?;
        let scheme = match rtc_url.scheme() {
            "http" | "ws" => "ws",
            "https" | "wss" => "wss",
            other => return Err(format!("{rtc}: scheme {other} is not http(s) or ws(s)")),
        };
        if !matches!(api_url.scheme(), "http" | "https") {
            return Err(format!("{api}: not an http(s) URL"));
        }
        let rest = &rtc[rtc_url.scheme().len()..];
        self.user_hub_url =
            Url::parse(&format!("{scheme}{rest}/hubs/user")).map_err(|e| format!("{rtc}: {e}"))?;
        self.market_hub_url = Url::parse(&format!("{scheme}{rest}/hubs/market"))
            .map_err(|e| format!("{rtc}: {e}"))?;
        self.api_url = api_url;
        Ok(self)
    }

    /// REST and hubs on one base (the simulator).
    ///
    /// # Errors
    /// When `base` is not an `http`/`https` URL.
    pub fn with_base_url(self, base: &str) -> Result<Self, String> {
        self.with_hosts(base, base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_map_to_rest_and_hub() {
        let c = ProjectXConfig::new(Firm::TopstepX, Credentials::default())
            .with_base_url("http://127.0.0.1:8081/")
            .unwrap();
        assert_eq!(c.api_url.as_str(), "http://127.0.0.1:8081/api");
        assert_eq!(c.user_hub_url.as_str(), "ws://127.0.0.1:8081/hubs/user");
        assert_eq!(c.market_hub_url.as_str(), "ws://127.0.0.1:8081/hubs/market");
        let c = ProjectXConfig::new(Firm::Demo, Credentials::default())
            .with_hosts("https://api.x.projectx.com", "https://rtc.x.projectx.com")
            .unwrap();
        assert_eq!(
            c.user_hub_url.as_str(),
            "wss://rtc.x.projectx.com/hubs/user"
        );
        assert!(
            ProjectXConfig::new(Firm::Demo, Credentials::default())
                .with_base_url("ftp://x")
                .is_err()
        );
    }

    #[test]
    fn the_key_is_not_printed() {
        let c = Credentials {
            user_name: "u".into(),
            api_key: "k3y-s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
