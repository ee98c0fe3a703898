//! Process plumbing shared by every service: environment configuration helpers, telemetry
//! (structured logs, OpenTelemetry traces), Prometheus metrics, health and readiness endpoints,
//! the TLS crypto provider, graceful shutdown and the client's address behind trusted proxies.
//!
//! Nothing here knows about trading, brokers or messages: services depend on this crate, never
//! the other way round. Only binaries call [`telemetry::init`] and read the environment through
//! [`config`]; libraries just emit `tracing` events and `metrics`.

pub mod client;
pub mod config;
pub mod health;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
