//! The ProjectX Gateway adapter (TopstepX and other prop firms; BROKERS.md §2): one venue
//! crate implementing `jt-broker`'s [`jt_broker::Broker`] and [`jt_broker::BrokerEvents`] over
//! `jt-net`, laid out like a nautilus_trader venue crate:
//!
//! - [`common`]: the numeric enumerations and error codes in one place, and the wire models;
//! - [`http`]: [`http::raw::ProjectXRawHttpClient`] (one method per endpoint, no policy),
//!   [`http::client::ProjectXHttpClient`] (domain types over `jt-net`'s call policy, the
//!   envelope checked explicitly, ambiguous writes looked up by `customTag`), the token
//!   lifecycle with `Auth/validate` renewal ([`http::session`]) and the per-token budget
//!   ([`http::limits`]);
//! - [`brackets`]: one native bracket per entry plus the other take-profit legs sized to the
//!   fill;
//! - [`hub`]: the SignalR user hub (codec, typed messages, the handler joining hub and REST
//!   poll, the connection and its REST fallback — its life is `jt-net`'s — and the exit guard);
//! - [`config`]: everything configurable, with production defaults;
//! - [`broker`]: [`ProjectXBroker`], the broker of one login, and its [`LoginRegistry`].
//!
//! What this crate must not do: depend on another venue (Tradovate included), hold a copy of
//! the call policy, raw error classification or socket life (they are `jt-net`'s), decide
//! trading, re-send an order whose outcome is unknown, or read a price through a binary float.

pub mod brackets;
pub mod broker;
pub mod common;
pub mod config;
pub mod http;
pub mod hub;

pub use broker::{LoginRegistry, NATIVE_TAKE_PROFIT_LEGS, PROJECTX_CAPABILITIES, ProjectXBroker};
pub use config::{Credentials, Firm, ProjectXConfig};
