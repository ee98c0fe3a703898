//! [`WebullConfig`]: everything one Webull login needs — where, which key pair, the call
//! policy's settings ([`WebullHttpConfig`]) and how the platform emulates the protective
//! orders Webull does not carry for futures ([`BracketConfig`], [`OcoConfig`]).

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

/// The platform's one-cancels-other watcher (see `crate::oco`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcoConfig {
    /// Whether the watcher runs. Without it a bracket with protection is refused
    /// (`Unsupported(NativeBracket)`): nothing is sent whose protection cannot be honoured.
    pub enabled: bool,
    /// How often a guarded account is read (2 s): two calls (positions, open orders) per
    /// guarded account per interval, from the login's budget of 600 per minute.
    pub poll_interval: Duration,
}

impl Default for OcoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// One Webull login.
#[derive(Debug, Clone)]
pub struct WebullConfig {
    /// The signed client's settings (base URL, key pair, timeouts, budget).
    pub http: WebullHttpConfig,
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
