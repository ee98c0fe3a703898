//! TradingView alert parsing: webhook body to a typed [`Signal`] or a typed, actionable
//! [`AlertError`] (DOMAIN.md §2), plus the two pure rules the ingest and executor apply to
//! a parsed alert: the de-duplication key ([`DedupKey`]) and staleness ([`check_freshness`],
//! with [`check_alert_time`] refusing a `time` from the future).
//!
//! The ingest calls [`parse_alert`] with the body bytes and the recorder's [`AlertContext`],
//! answers [`AlertError::http_status`] with the error's text on failure, and otherwise queues
//! the [`Signal`] on SIGNALS under the ids of [`Signal::dedup_key`]. The executor calls
//! [`Signal::freshness`] right before executing and [`Signal::retarget`] for a trader's
//! `custom_ticker`. Operators' documentation of the accepted fields: `docs/alerts.md`.
//!
//! This crate must stay pure: no I/O, no clock (every instant is an argument), no async, and
//! no panic for any input. Quantities and prices are exact decimals read from the JSON text,
//! never through `f64`; they are not rounded to tick here (the traded instrument is only
//! known after the trader's `custom_ticker`).

mod dedup;
mod error;
mod freshness;
mod json;
mod number;
mod parse;
mod position;
mod risk;
mod signal;

pub use dedup::{DUPLICATE_INTERVAL_MS, DedupKey};
pub use error::AlertError;
pub use freshness::{
    AgeFrom, DEFAULT_STALE_AFTER_SECS, Freshness, MAX_CLOCK_AHEAD_SECS, check_alert_time,
    check_freshness,
};
pub use parse::{AlertContext, MAX_BODY_BYTES, MAX_DELAY_SECS, MAX_LAG_LIMIT_SECS, parse_alert};
pub use signal::{
    AlertRisk, BreakEvenOverride, EntryKind, EntryOrderSpec, ExitLevel, MarketPosition,
    PositionChange, RiskSizing, Signal, StopOverride, TrailOverride,
};
