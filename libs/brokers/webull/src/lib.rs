//! The Webull OpenAPI adapter (BROKERS.md §3): futures over HMAC-SHA1 signed REST, behind
//! `jt-broker`'s traits and on `jt-net`'s call policy.
//!
//! - [`common`]: the request signature ([`common::signing`]), exactly as Webull documents it,
//!   and the translation between Webull's words and the platform's ([`common::convert`]);
//! - [`http`]: the wire models and [`http::client::WebullHttpClient`], every call signed afresh
//!   and run by `jt-net`'s call policy with Webull's error classes (retry, re-auth, rejected,
//!   unknown outcome) and exactly-once placement by client order id;
//! - [`broker`]: [`WebullBroker`], the `Broker` of one login, and its [`LoginRegistry`];
//! - [`brackets`]: brackets emulated by the platform (entry, then protection sized to the
//!   fill);
//! - [`events`]: the login's event side, polled (Webull's push is gRPC, not spoken), and
//!   [`oco`]: the one-cancels-other guard that runs on its polls — in the connection manager,
//!   which alone subscribes;
//! - [`config`]: the login's settings ([`WebullConfig`]).
//!
//! What this crate must not do: depend on another venue, hold a copy of the call policy or of
//! the raw error classification (they are `jt-net`'s), decide trading, re-send an order whose
//! outcome is unknown, send an entry whose protection it cannot place, or read a price through
//! a binary float.

pub mod brackets;
pub mod broker;
pub mod common;
pub mod config;
pub mod events;
pub mod http;
pub mod oco;

pub use broker::{EMULATED, LoginRegistry, WEBULL_CAPABILITIES, WebullBroker};
pub use config::{BracketConfig, EventsConfig, OcoConfig, PRODUCTION_URL, WebullConfig};
