//! The Tradovate adapter (NinjaTrader brokerage is the same adapter with its own hosts), laid
//! out like a nautilus_trader venue crate:
//!
//! - [`common`]: wire entities, enum strings, exact JSON numbers;
//! - [`http`]: [`http::raw::TradovateRawHttpClient`] (one method per endpoint, no policy) and
//!   [`http::client::TradovateHttpClient`] (domain types, rate limits, tokens, penalties,
//!   retries of reads, ambiguous writes looked up by client order id);
//! - [`websocket`]: the frame [`websocket::codec`], typed [`websocket::messages`],
//!   [`websocket::parse`] into neutral reports, the [`websocket::handler`] that joins and
//!   filters events, the [`websocket::client`] that keeps the socket alive by DOMAIN §8, and
//!   the process-wide [`websocket::gate`];
//! - [`config`]: everything configurable, with production defaults;
//! - [`broker`]: [`TradovateBroker`], the [`jt_broker::Broker`] of one login.

pub mod broker;
pub mod common;
pub mod config;
pub mod http;
pub mod websocket;

pub use broker::{LoginRegistry, TRADOVATE_CAPABILITIES, TradovateBroker};
pub use config::{Brand, Credentials, Environment, TradovateConfig};
