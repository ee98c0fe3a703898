//! The parsed alert's types live in the domain (`jt_domain::alert`), so the messages that
//! carry them need no parser; this crate produces them. What stays here is the parser's own
//! reading of a symbol, as an alert error.

use jt_domain::instrument::{Instrument, resolve_ticker};

use crate::error::AlertError;

pub use jt_domain::alert::{
    AlertRisk, BreakEvenOverride, EntryKind, EntryOrderSpec, ExitLevel, MarketPosition,
    PositionChange, RiskSizing, Signal, StopOverride, TrailOverride,
};

/// Resolves a ticker through the instrument table, as an alert error.
pub(crate) fn resolve_symbol(symbol: &str) -> Result<&'static Instrument, AlertError> {
    resolve_ticker(symbol).map_err(|_| AlertError::UnknownInstrument {
        ticker: crate::error::excerpt(symbol.trim()),
    })
}
