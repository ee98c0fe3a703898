//! The ProjectX Gateway adapter (TopstepX and other prop firms; BROKERS.md §2), laid out like
//! a nautilus_trader venue crate:
//!
//! - [`common`]: the numeric enumerations and error codes in one place, and the wire models;
//! - [`http`]: [`http::raw::ProjectXRawHttpClient`] (one method per endpoint, no policy) and
//!   [`http::client::ProjectXHttpClient`] (domain types, the per-token budget, the token
//!   lifecycle with `Auth/validate` renewal, retries of reads, ambiguous writes looked up by
//!   `customTag`);
//! - [`brackets`]: one native bracket per entry plus the other take-profit legs sized to the
//!   fill;
//! - [`hub`]: the SignalR user hub (codec, typed messages, the handler joining hub and REST
//!   poll, the client keeping it alive, the exit guard);
//! - [`config`]: everything configurable, with production defaults;
//! - [`broker`]: [`ProjectXBroker`], the [`jt_broker::Broker`] of one login.

pub mod brackets;
pub mod broker;
pub mod common;
pub mod config;
pub mod http;
pub mod hub;

pub use broker::{LoginRegistry, NATIVE_TAKE_PROFIT_LEGS, PROJECTX_CAPABILITIES, ProjectXBroker};
pub use config::{Credentials, Firm, ProjectXConfig};
