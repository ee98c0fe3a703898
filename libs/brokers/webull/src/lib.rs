//! The Webull OpenAPI adapter (BROKERS.md §3): futures over HMAC-SHA1 signed REST, behind
//! `jt-broker`'s traits and on `jt-net`'s call policy.
//!
//! - [`common`]: the request signature ([`common::signing`]), exactly as Webull documents it;
//! - [`http`]: the wire models and [`http::client::WebullHttpClient`], every call signed afresh
//!   and run by `jt-net`'s call policy with Webull's error classes (retry, re-auth, rejected,
//!   unknown outcome) and exactly-once placement by client order id.
//!
//! What this crate must not do: depend on another venue, hold a copy of the call policy or of
//! the raw error classification (they are `jt-net`'s), decide trading, re-send an order whose
//! outcome is unknown, send an entry whose protection it cannot place, or read a price through
//! a binary float.

pub mod common;
pub mod http;
