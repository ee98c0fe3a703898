//! [`WebullConfig`]: everything one Webull login needs — where, which key pair, the call
//! policy's settings ([`WebullHttpConfig`]), how its events are polled ([`EventsConfig`]) and
//! how the platform emulates the protective orders Webull does not carry for futures
//! ([`BracketConfig`], [`OcoConfig`]).

use std::time::Duration;

use url::Url;

use crate::http::client::WebullHttpConfig;

/// Webull's production REST host.
pub const PRODUCTION_URL: &str = "https://api.webull.com";

/// Webull's test (UAT) REST host, for demo accounts (BROKERS.md §3).
pub const TEST_URL: &str = "http://us-openapi-alb.uat.webullbroker.com";

/// The entry of an emulated bracket: how long `place_bracket` waits for its fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BracketConfig {
    /// How long the entry may take to fill (5 s). A market entry not completely filled by
    /// then has its rest canceled, and the protection is sized to what filled.
    pub fill_wait: Duration,
    /// How often the entry is read while waiting (150 ms).
    pub poll_interval: Duration,
}

impl Default for BracketConfig {
    fn default() -> Self {
        Self {
            fill_wait: Duration::from_secs(5),
            poll_interval: Duration::from_millis(150),
        }
    }
}

/// The login's polled event side (`crate::events`): what the connection manager subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// How often each subscribed account is read (2 s): open orders and positions, two calls,
    /// plus the order history when either changed — 60 to 90 calls per account per minute of
    /// the login's 600.
    pub poll_interval: Duration,
    /// Events each subscriber may have queued before it is told to resync (1,024).
    pub subscriber_capacity: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            subscriber_capacity: 1_024,
        }
    }
}

/// The platform's one-cancels-other guard (see `crate::oco`), run on every poll of the event
/// side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcoConfig {
    /// Whether the guard runs. Without it a bracket with more than one exit order is refused
    /// (`Unsupported(NativeBracket)`): nothing is sent whose protection cannot be honoured.
    pub enabled: bool,
    /// How long an exit order must have been seen working by the poller before the guard acts
    /// on it (1 s; with 2 s polls: seen on an earlier pass). Protection placed a moment ago
    /// next to a position read that does not show its entry yet is left alone.
    pub grace: Duration,
}

impl Default for OcoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            grace: Duration::from_secs(1),
        }
    }
}

/// One Webull login.
#[derive(Debug, Clone)]
pub struct WebullConfig {
    /// The signed client's settings (base URL, key pair, timeouts, budget).
    pub http: WebullHttpConfig,
    /// The polled event side.
    pub events: EventsConfig,
    /// The emulated bracket's entry.
    pub brackets: BracketConfig,
    /// The emulated one-cancels-other.
    pub oco: OcoConfig,
}

impl WebullConfig {
    /// A login at `base_url` (production: [`PRODUCTION_URL`]) with its key pair, defaults
    /// elsewhere.
    #[must_use]
    pub fn new(base_url: Url, app_key: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self {
            http: WebullHttpConfig::new(base_url, app_key, app_secret),
            events: EventsConfig::default(),
            brackets: BracketConfig::default(),
            oco: OcoConfig::default(),
        }
    }

    /// A production login.
    ///
    /// # Panics
    /// Never: the production URL is a constant that parses.
    #[must_use]
    pub fn production(app_key: impl Into<String>, app_secret: impl Into<String>) -> Self {
        #[allow(clippy::expect_used)] // a constant that parses
        let url = Url::parse(PRODUCTION_URL).expect("the production URL parses");
        Self::new(url, app_key, app_secret)
    }
}
