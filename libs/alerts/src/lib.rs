//! TradingView alert parsing: webhook body to a typed [`Signal`] or a typed, actionable
//! [`AlertError`] (DOMAIN.md §2), plus the two pure rules the ingest and executor apply to
//! a parsed alert: the de-duplication key ([`DedupKey`]) and staleness ([`check_freshness`],
//! with [`check_alert_time`] refusing a `time` from the future).
//!
//! The ingest calls [`parse_alert`] with the body bytes and the recorder's [`AlertContext`],
//! answers [`AlertError::http_status`] with the error's text on failure, and otherwise queues
//! the [`Signal`] on SIGNALS under the ids of [`DedupKey::for_signal`]. The executor calls
//! [`Signal::freshness`] right before executing. Operators' documentation of the accepted
//! fields: `docs/alerts.md`.
//!
//! The parsed alert's types ([`Signal`], [`ExitLevel`], [`EntryOrderSpec`], [`AlertRisk`], …)
//! and the staleness rule are the domain's (`jt_domain::alert`, `jt_domain::freshness`),
//! re-exported here: the messages that carry a signal or an intent depend on the domain, never
//! on this parser.
//!
//! This crate must stay pure: no I/O, no clock (every instant is an argument), no async, and
//! no panic for any input. Quantities and prices are exact decimals read from the JSON text,
//! never through `f64`; they are not rounded to tick here (the traded instrument is only
//! known after the trader's `custom_ticker`).

mod dedup;
mod error;
mod freshness;
mod json;
mod parse;
mod position;
mod risk;
mod signal;

pub use dedup::{DUPLICATE_INTERVAL_MS, DedupKey};
pub use error::AlertError;
pub use freshness::{MAX_CLOCK_AHEAD_SECS, check_alert_time};
pub use jt_domain::freshness::{AgeFrom, DEFAULT_STALE_AFTER_SECS, Freshness, check_freshness};
pub use parse::{AlertContext, MAX_BODY_BYTES, MAX_DELAY_SECS, MAX_LAG_LIMIT_SECS, parse_alert};
pub use signal::{
    AlertRisk, BreakEvenOverride, EntryKind, EntryOrderSpec, ExitLevel, MarketPosition,
    PositionChange, RiskSizing, Signal, StopOverride, TrailOverride,
};
