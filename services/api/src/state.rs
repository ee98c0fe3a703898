//! What every handler reaches: the store, the bus, the broker probe, the mailer, the settings,
//! the login rate limiters and the live update feeds.

use std::net::IpAddr;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota};
use jt_bus::Bus;
use jt_store::Store;

use crate::config::{ApiConfig, LoginLimit};
use crate::events::EventHub;
use crate::mailer::Mailer;
use crate::probe::AccountProbe;

/// The API's shared state (cheap to clone).
#[derive(Clone)]
pub struct ApiState {
    /// The records.
    pub store: Store,
    /// Where controls and manual trades are published (ORDERS).
    pub bus: Bus,
    /// Logs broker accounts in for `POST /broker-accounts/{id}/test`.
    pub brokers: Arc<dyn AccountProbe>,
    /// Outgoing e-mail (password resets).
    pub mailer: Arc<dyn Mailer>,
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// The live update feeds (`GET /api/v1/events`).
    pub events: Arc<EventHub>,
    pub(crate) limits: Arc<LoginLimits>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state of one API instance.
    #[must_use]
    pub fn new(
        config: ApiConfig,
        store: Store,
        bus: Bus,
        brokers: Arc<dyn AccountProbe>,
        mailer: Arc<dyn Mailer>,
    ) -> Self {
        let limits = Arc::new(LoginLimits::new(&config));
        let events = EventHub::new(
            store.clone(),
            bus.clone(),
            config.event_streams_per_user,
            tokio_util::sync::CancellationToken::new(),
        );
        Self {
            events,
            store,
            bus,
            brokers,
            mailer,
            config: Arc::new(config),
            limits,
        }
    }
}

/// In-memory login limiters (per replica: a fleet of N replicas allows N times the rate,
/// which still stops password guessing; the Argon2 cost bounds the rest).
pub(crate) struct LoginLimits {
    pub(crate) per_address: DefaultKeyedRateLimiter<String>,
    pub(crate) per_source: DefaultKeyedRateLimiter<Option<IpAddr>>,
}

fn quota(l: LoginLimit) -> Quota {
    Quota::per_minute(l.per_minute).allow_burst(l.burst)
}

impl LoginLimits {
    fn new(config: &ApiConfig) -> Self {
        Self {
            per_address: DefaultKeyedRateLimiter::keyed(quota(config.login_per_address)),
            per_source: DefaultKeyedRateLimiter::keyed(quota(config.login_per_source)),
        }
    }
}
