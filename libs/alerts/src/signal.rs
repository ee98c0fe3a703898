//! The parsed alert: what the ingest queues on SIGNALS and the executor acts on.

use chrono::{DateTime, TimeDelta, Utc};
use jt_domain::instrument::{Instrument, resolve_ticker};
use jt_domain::settings::{PriceUnits, StopType};
use jt_domain::signal::SignalAction;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::dedup::DedupKey;
use crate::error::AlertError;
use crate::freshness::{Freshness, check_freshness};

/// The strategy's market position as an alert reports it (`{{strategy.market_position}}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketPosition {
    /// Long.
    Long,
    /// Short.
    Short,
    /// No position.
    Flat,
}

impl MarketPosition {
    /// Swaps long ↔ short (`inverse_strategy`); flat stays flat.
    #[must_use]
    pub fn inverted(self) -> Self {
        match self {
            MarketPosition::Long => MarketPosition::Short,
            MarketPosition::Short => MarketPosition::Long,
            MarketPosition::Flat => MarketPosition::Flat,
        }
    }

    /// The wire name (`long`, `short`, `flat`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MarketPosition::Long => "long",
            MarketPosition::Short => "short",
            MarketPosition::Flat => "flat",
        }
    }
}

/// Where a per-alert take-profit or stop goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitLevel {
    /// A distance from the entry price (always positive; the side follows the position).
    Distance {
        /// The distance.
        #[serde(with = "crate::number::decimal")]
        value: Decimal,
        /// Its units; `None` means the units configured for the trader (`tp_units` for a
        /// take-profit, `sl_units` for a stop).
        units: Option<PriceUnits>,
    },
    /// An absolute price (rounded to tick by the executor).
    Price {
        /// The price.
        #[serde(with = "crate::number::decimal")]
        price: Decimal,
    },
}

/// A per-alert stop: where, and optionally which kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopOverride {
    /// Where the stop goes.
    pub level: ExitLevel,
    /// Fixed or trailing; `None` means the trader's `sl_type`.
    pub stop_type: Option<StopType>,
}

/// A parsed alert, after `inverse_strategy` and the position → action mapping of DOMAIN.md §2.
///
/// Numbers are exact decimals as sent (not yet rounded to tick: that needs the trader's
/// instrument after `custom_ticker`). In JSON the decimals are numbers, `root` is the
/// instrument root and `time` is RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// What to do.
    pub action: SignalAction,
    /// The alert's ticker as sent (`None` when the alert has none, and for control alerts).
    pub ticker: Option<String>,
    /// The symbol to trade: the context's `custom_ticker`, else the alert's ticker, else the
    /// recorder's symbol. `None` only for control alerts.
    pub symbol: Option<String>,
    /// The instrument of `symbol`. `None` only for control alerts.
    #[serde(rename = "root", with = "crate::number::root")]
    pub instrument: Option<&'static Instrument>,
    /// Contracts the strategy traded (`contracts`/`quantity`/`qty`), never negative.
    #[serde(with = "crate::number::optional_decimal")]
    pub quantity: Option<Decimal>,
    /// The price the alert reports, positive.
    #[serde(with = "crate::number::optional_decimal")]
    pub price: Option<Decimal>,
    /// When the alert fired (`time`/`timenow`/`timestamp`/`date`), in UTC.
    pub time: Option<DateTime<Utc>>,
    /// The strategy's position after the order (after `inverse_strategy`).
    pub position: Option<MarketPosition>,
    /// The strategy's position before the order (after `inverse_strategy`).
    pub prev_position: Option<MarketPosition>,
    /// The alert's comment.
    pub comment: Option<String>,
    /// Seconds to wait before executing (0 to [`crate::MAX_DELAY_SECS`]).
    pub delay_secs: u32,
    /// This alert's staleness limit in seconds, replacing the trader's `stale_after_secs`.
    pub max_lag_secs: Option<u32>,
    /// Per-alert take-profit, replacing the trader's `tp_targets` for this signal.
    pub take_profit: Option<ExitLevel>,
    /// Per-alert stop, replacing the trader's stop distance for this signal.
    pub stop_loss: Option<StopOverride>,
    /// Whether `inverse_strategy` swapped the alert's direction.
    pub inverted: bool,
}

impl Signal {
    /// Whether the signal, received at `received_at`, is stale at `now` (DOMAIN.md §2): see
    /// [`check_freshness`]. Call it again right before executing, not only at receipt.
    #[must_use]
    pub fn freshness(
        &self,
        stale_after_secs: u32,
        received_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Freshness {
        check_freshness(
            self.time,
            received_at,
            self.delay_secs,
            self.max_lag_secs,
            stale_after_secs,
            now,
        )
    }

    /// The JetStream message ids of this signal's delivery: `body` as received for `token`
    /// at `received_at` (see [`DedupKey`]).
    #[must_use]
    pub fn dedup_key(&self, token: &str, body: &[u8], received_at: DateTime<Utc>) -> DedupKey {
        DedupKey::new(token, body, self.time.is_some(), received_at)
    }

    /// How long to wait before executing.
    #[must_use]
    pub fn delay(&self) -> TimeDelta {
        TimeDelta::seconds(i64::from(self.delay_secs))
    }

    /// The same signal on another symbol (a trader's `custom_ticker`). Control signals are
    /// returned unchanged: they have no symbol.
    ///
    /// # Errors
    /// [`AlertError::UnknownInstrument`] when `symbol` has no known root.
    pub fn retarget(&self, symbol: &str) -> Result<Signal, AlertError> {
        if self.action.is_control() {
            return Ok(self.clone());
        }
        let instrument = resolve_symbol(symbol)?;
        Ok(Signal {
            symbol: Some(symbol.trim().to_string()),
            instrument: Some(instrument),
            ..self.clone()
        })
    }
}

/// Resolves a ticker through the instrument table, as an alert error.
pub(crate) fn resolve_symbol(symbol: &str) -> Result<&'static Instrument, AlertError> {
    resolve_ticker(symbol).map_err(|_| AlertError::UnknownInstrument {
        ticker: crate::error::excerpt(symbol.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_domain::instrument::by_root;
    use rust_decimal_macros::dec;

    fn sample() -> Signal {
        Signal {
            action: SignalAction::Long,
            ticker: Some("MNQ1!".into()),
            symbol: Some("MNQ1!".into()),
            instrument: by_root("MNQ").ok(),
            quantity: Some(dec!(2)),
            price: Some(dec!(21433.250)),
            time: "2026-01-05T14:30:00Z".parse().ok(),
            position: Some(MarketPosition::Long),
            prev_position: Some(MarketPosition::Flat),
            comment: Some("entry".into()),
            delay_secs: 0,
            max_lag_secs: Some(300),
            take_profit: Some(ExitLevel::Distance {
                value: dec!(20),
                units: Some(PriceUnits::Ticks),
            }),
            stop_loss: Some(StopOverride {
                level: ExitLevel::Price {
                    price: dec!(21400.5),
                },
                stop_type: Some(StopType::Trailing),
            }),
            inverted: false,
        }
    }

    #[test]
    fn signal_json_has_numbers_root_and_rfc3339_time_and_round_trips() {
        let signal = sample();
        let json = serde_json::to_string(&signal).unwrap();
        assert!(json.contains(r#""quantity":2,"#), "{json}");
        assert!(json.contains(r#""price":21433.250,"#), "{json}");
        assert!(json.contains(r#""root":"MNQ""#), "{json}");
        assert!(json.contains(r#""time":"2026-01-05T14:30:00Z""#), "{json}");
        assert!(json.contains(r#""action":"long""#), "{json}");
        let back: Signal = serde_json::from_str(&json).unwrap();
        assert_eq!(back, signal);
    }

    #[test]
    fn retarget_resolves_the_custom_ticker_and_keeps_the_alert_ticker() {
        let signal = sample().retarget("NQ1!").unwrap();
        assert_eq!(signal.instrument.map(|i| i.root), Some("NQ"));
        assert_eq!(signal.ticker.as_deref(), Some("MNQ1!"));
        assert_eq!(signal.symbol.as_deref(), Some("NQ1!"));
        assert!(matches!(
            sample().retarget("AAPL"),
            Err(AlertError::UnknownInstrument { .. })
        ));
    }

    #[test]
    fn inverting_a_position_swaps_long_and_short_only() {
        assert_eq!(MarketPosition::Long.inverted(), MarketPosition::Short);
        assert_eq!(MarketPosition::Short.inverted(), MarketPosition::Long);
        assert_eq!(MarketPosition::Flat.inverted(), MarketPosition::Flat);
    }
}
