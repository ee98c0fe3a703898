//! A parsed alert and the per-alert instructions it carries (DOMAIN.md §2): what the ingest
//! queues on SIGNALS, what the fan-out hands each trader in its intent and what the executor
//! applies ([`crate::overrides`]). `jt-alerts` produces these from a webhook body; this module
//! holds the data and its pure readings (staleness, words for operators), so the messages on
//! the bus need no parser.
//!
//! In JSON the decimals are numbers with every digit kept ([`crate::exact`]), the instrument is
//! its root and times are RFC 3339: the shapes queued on the bus before this module moved here
//! read unchanged.

use chrono::{DateTime, TimeDelta, Utc};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::freshness::{Freshness, check_freshness};
use crate::instrument::{Instrument, InstrumentError, resolve_ticker};
use crate::order::{OrderKind, TimeInForce};
use crate::settings::{PriceUnits, StopType};
use crate::signal::SignalAction;
use crate::types::{Direction, Price};

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
        #[serde(with = "crate::exact::decimal")]
        value: Decimal,
        /// Its units; `None` means the units configured for the trader (`tp_units` for a
        /// take-profit, `sl_units` for a stop).
        units: Option<PriceUnits>,
    },
    /// An absolute price (rounded to tick by the executor).
    Price {
        /// The price.
        #[serde(with = "crate::exact::decimal")]
        price: Decimal,
    },
    /// Dollars per contract (`dollar_tp`, `dollar_sl`): a distance of `amount ÷ tick value`
    /// ticks of the traded instrument, rounded down to whole ticks (at least one) by the
    /// executor — a dollar stop never risks more than the dollars given.
    Dollars {
        /// Dollars per contract.
        #[serde(with = "crate::exact::decimal")]
        amount: Decimal,
    },
}

/// How the strategy's position changed, as the alert's position fields tell it (its sizes
/// `position_size` / `prev_position_size`, or the market positions before and after).
///
/// Externally tagged in JSON (`{"partial_exit": {…}}`): an internally tagged enum buffers its
/// content, and the exact decimal reader cannot read from that buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionChange {
    /// From flat into a position.
    Entry {
        /// The new position's direction.
        direction: Direction,
    },
    /// A larger position in the same direction.
    Add {
        /// The position's direction.
        direction: Direction,
    },
    /// A smaller position in the same direction.
    PartialExit {
        /// The position's direction.
        direction: Direction,
        /// The fraction of its position the strategy sold (0 < fraction < 1).
        #[serde(with = "crate::exact::decimal")]
        fraction: Decimal,
    },
    /// From a position to flat.
    FullExit {
        /// The closed position's direction.
        direction: Direction,
    },
    /// From one direction to the other.
    Flip {
        /// The closed position's direction.
        from: Direction,
        /// The new position's direction.
        to: Direction,
    },
}

impl PositionChange {
    /// The same change seen from the other side (`inverse_strategy`).
    #[must_use]
    pub fn inverted(self) -> Self {
        match self {
            PositionChange::Entry { direction } => PositionChange::Entry {
                direction: direction.opposite(),
            },
            PositionChange::Add { direction } => PositionChange::Add {
                direction: direction.opposite(),
            },
            PositionChange::PartialExit {
                direction,
                fraction,
            } => PositionChange::PartialExit {
                direction: direction.opposite(),
                fraction,
            },
            PositionChange::FullExit { direction } => PositionChange::FullExit {
                direction: direction.opposite(),
            },
            PositionChange::Flip { from, to } => PositionChange::Flip {
                from: from.opposite(),
                to: to.opposite(),
            },
        }
    }

    /// In words: `entry long`, `add long`, `partial exit of 50% of the long`, `full exit of the
    /// long`, `flip long → short`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            PositionChange::Entry { direction } => format!("entry {direction}"),
            PositionChange::Add { direction } => format!("add {direction}"),
            PositionChange::PartialExit {
                direction,
                fraction,
            } => format!(
                "partial exit of {}% of the {direction}",
                (fraction * Decimal::ONE_HUNDRED).round_dp(2).normalize()
            ),
            PositionChange::FullExit { direction } => format!("full exit of the {direction}"),
            PositionChange::Flip { from, to } => format!("flip {from} → {to}"),
        }
    }
}

/// The kind of a non-market entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A limit order at `limit_price`.
    Limit,
    /// A stop (market) order triggered at `stop_price`.
    Stop,
    /// A stop-limit order: triggered at `stop_price`, then a limit at `limit_price`.
    StopLimit,
}

/// A resting entry the alert asks for (`orderType`/`order_type` limit, stop or stop-limit):
/// placed as such, with its protection attached when it fills, never converted to market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryOrderSpec {
    /// Limit, stop or stop-limit.
    pub kind: EntryKind,
    /// The limit price (limit, stop-limit), as sent (rounded to tick by the executor).
    #[serde(default, with = "crate::exact::optional_decimal")]
    pub limit_price: Option<Decimal>,
    /// The trigger price (stop, stop-limit), as sent (rounded to tick by the executor).
    #[serde(default, with = "crate::exact::optional_decimal")]
    pub stop_price: Option<Decimal>,
    /// How long it works when it does not fill (default: the trading day).
    #[serde(default)]
    pub time_in_force: TimeInForce,
}

impl EntryOrderSpec {
    /// The order kind of this resting entry on `instrument`, prices rounded to tick. For an
    /// `inverse_strategy` trader (`inverse`) the mirror of the order: a limit becomes a stop at
    /// the same price and a stop a limit, so the mirrored entry triggers when the original
    /// would fill (a stop-limit has no mirror and is refused).
    ///
    /// # Errors
    /// What to change, in the trader's words: a missing price, or a stop-limit to mirror.
    pub fn order_kind(&self, instrument: &Instrument, inverse: bool) -> Result<OrderKind, String> {
        let tick = |p: Option<Decimal>| p.map(|p| Price::on_tick(instrument, p));
        let missing = || "the resting entry has no price".to_string();
        Ok(match (self.kind, inverse) {
            (EntryKind::Limit, false) => OrderKind::Limit {
                price: tick(self.limit_price).ok_or_else(missing)?,
            },
            (EntryKind::Stop, false) => OrderKind::Stop {
                stop: tick(self.stop_price).ok_or_else(missing)?,
            },
            (EntryKind::StopLimit, false) => OrderKind::StopLimit {
                stop: tick(self.stop_price).ok_or_else(missing)?,
                price: tick(self.limit_price).ok_or_else(missing)?,
            },
            (EntryKind::Limit, true) => OrderKind::Stop {
                stop: tick(self.limit_price).ok_or_else(missing)?,
            },
            (EntryKind::Stop, true) => OrderKind::Limit {
                price: tick(self.stop_price).ok_or_else(missing)?,
            },
            (EntryKind::StopLimit, true) => {
                return Err(
                    "a stop-limit entry has no mirror for an inverse_strategy trader: send \
                        a limit or stop entry, or turn inverse_strategy off"
                        .into(),
                );
            }
        })
    }
}

/// A trailing stop asked by the alert (`trail`, `trail_stop`, `trail_trigger`, `trail_freq`):
/// the stop (the alert's or the trader's distance) trails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailOverride {
    /// Ticks of profit before trailing starts (`trail_trigger`); `None` = the trader's.
    #[serde(default, with = "crate::exact::optional_decimal")]
    pub trigger_ticks: Option<Decimal>,
    /// Trailing step in ticks (`trail_freq`); `None` = the trader's.
    #[serde(default, with = "crate::exact::optional_decimal")]
    pub step_ticks: Option<Decimal>,
}

/// A break-even move asked by the alert (`breakeven`, `breakeven_offset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakEvenOverride {
    /// Ticks of profit that move the stop (`breakeven`); `None` = the trader's.
    #[serde(default, with = "crate::exact::optional_decimal")]
    pub trigger_ticks: Option<Decimal>,
    /// Ticks beyond the entry where the stop goes (`breakeven_offset`); `None` = the trader's.
    #[serde(default, with = "crate::exact::optional_decimal")]
    pub offset_ticks: Option<Decimal>,
}

/// An entry sized by risk: quantity = risk ÷ (stop ticks × tick value), rounded down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskSizing {
    /// Dollars at risk (`risk_dollars`, `risk_amount`).
    Dollars {
        /// The dollars.
        #[serde(with = "crate::exact::decimal")]
        amount: Decimal,
    },
    /// A percentage of the account's balance as the broker reports it (`risk_percentage`,
    /// `risk`).
    Percent {
        /// The percentage (2 = 2 %).
        #[serde(with = "crate::exact::decimal")]
        percent: Decimal,
    },
}

/// The alert's risk instructions beside its take-profit and stop (`Signal::take_profit`,
/// `Signal::stop_loss`). Each one the alert sets is honoured for this signal, or the intent is
/// refused with the reason — never dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRisk {
    /// Make the stop trailing.
    #[serde(default)]
    pub trail: Option<TrailOverride>,
    /// Move the stop to break-even.
    #[serde(default)]
    pub break_even: Option<BreakEvenOverride>,
    /// Size the entry by risk.
    #[serde(default)]
    pub sizing: Option<RiskSizing>,
    /// `same_direction_ignore` for this signal.
    #[serde(default)]
    pub same_direction_ignore: Option<bool>,
}

impl AlertRisk {
    /// Whether the alert sets none of these.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == AlertRisk::default()
    }
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
    #[serde(rename = "root", with = "crate::exact::root")]
    pub instrument: Option<&'static Instrument>,
    /// Contracts the strategy traded (`contracts`/`quantity`/`qty`), never negative.
    #[serde(with = "crate::exact::optional_decimal")]
    pub quantity: Option<Decimal>,
    /// The price the alert reports, positive.
    #[serde(with = "crate::exact::optional_decimal")]
    pub price: Option<Decimal>,
    /// When the alert fired (`time`/`timenow`/`timestamp`/`date`), in UTC.
    pub time: Option<DateTime<Utc>>,
    /// The strategy's position after the order (after `inverse_strategy`).
    pub position: Option<MarketPosition>,
    /// The strategy's position before the order (after `inverse_strategy`).
    pub prev_position: Option<MarketPosition>,
    /// The alert's comment.
    pub comment: Option<String>,
    /// Seconds to wait before executing (0 to `jt_alerts::MAX_DELAY_SECS`).
    pub delay_secs: u32,
    /// This alert's staleness limit in seconds, replacing the trader's `stale_after_secs`.
    pub max_lag_secs: Option<u32>,
    /// Per-alert take-profit, replacing the trader's `tp_targets` for this signal.
    pub take_profit: Option<ExitLevel>,
    /// Per-alert stop, replacing the trader's stop distance for this signal.
    pub stop_loss: Option<StopOverride>,
    /// Whether `inverse_strategy` swapped the alert's direction.
    pub inverted: bool,
    /// The strategy's signed position size after the order (`position_size`, or
    /// `market_position_size` signed by `position`), after `inverse_strategy`.
    #[serde(default, with = "crate::exact::optional_decimal")]
    pub position_size: Option<Decimal>,
    /// The strategy's signed position size before the order (`prev_position_size`, …).
    #[serde(default, with = "crate::exact::optional_decimal")]
    pub prev_position_size: Option<Decimal>,
    /// How the strategy's position changed, when the alert's position fields tell it.
    #[serde(default)]
    pub change: Option<PositionChange>,
    /// For `reduce_long` / `reduce_short`: the fraction of its position the strategy sold.
    #[serde(default, with = "crate::exact::optional_decimal")]
    pub exit_fraction: Option<Decimal>,
    /// A resting entry (limit, stop, stop-limit); `None` = market.
    #[serde(default)]
    pub entry_order: Option<EntryOrderSpec>,
    /// Trailing, break-even, sizing and `same_direction_ignore` for this signal.
    #[serde(default)]
    pub risk: AlertRisk,
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

    /// What the signal asks, in words: the derived change when the alert's position fields
    /// tell it (`partial exit of 50% of the long`), else the action and how the executor reads
    /// it against each trader's broker position.
    #[must_use]
    pub fn describe_intent(&self) -> String {
        if let Some(change) = &self.change {
            return change.describe();
        }
        match self.action {
            SignalAction::Long | SignalAction::Short => format!(
                "{}: entry, add or flip, decided per trader from the broker's position",
                self.action.as_str()
            ),
            SignalAction::Close => "full exit of whatever is open".into(),
            SignalAction::CloseLong => "full exit of the long".into(),
            SignalAction::CloseShort => "full exit of the short".into(),
            SignalAction::ReduceLong | SignalAction::ReduceShort => format!(
                "partial exit of {}% of the {}",
                (self.exit_fraction.unwrap_or_default() * Decimal::ONE_HUNDRED)
                    .round_dp(2)
                    .normalize(),
                if self.action == SignalAction::ReduceLong {
                    "long"
                } else {
                    "short"
                }
            ),
            SignalAction::Cancel => "cancel working orders, keep the position".into(),
            SignalAction::Flatten => "flatten every trader of the recorder".into(),
            SignalAction::Kill => "kill switch: flatten and refuse entries until resumed".into(),
            SignalAction::Resume => "lift the kill switch".into(),
        }
    }

    /// Every per-alert override the signal carries, in words (`stop: 40 ticks, trailing after 8
    /// ticks`): what `jt alert parse` shows so a template can be checked before it trades.
    #[must_use]
    pub fn describe_overrides(&self) -> Vec<String> {
        let mut out = Vec::new();
        let level = |l: &ExitLevel| match *l {
            ExitLevel::Distance { value, units } => match units {
                Some(PriceUnits::Ticks) => format!("{value} ticks"),
                Some(PriceUnits::Points) => format!("{value} points"),
                Some(PriceUnits::Percent) => format!("{value}% of the entry price"),
                None => format!("{value} in the trader's units"),
            },
            ExitLevel::Price { price } => format!("at {price}"),
            ExitLevel::Dollars { amount } => format!("${amount} per contract"),
        };
        if let Some(tp) = &self.take_profit {
            out.push(format!("take-profit: {} (replaces tp_targets)", level(tp)));
        }
        if let Some(sl) = &self.stop_loss {
            let kind = match sl.stop_type {
                Some(StopType::Trailing) => ", trailing",
                Some(StopType::Fixed) => ", fixed",
                None => "",
            };
            out.push(format!("stop: {}{kind}", level(&sl.level)));
        }
        if let Some(t) = &self.risk.trail {
            let mut text = "trailing stop".to_string();
            if let Some(trigger) = t.trigger_ticks {
                text.push_str(&format!(", starts after {trigger} ticks of profit"));
            }
            if let Some(step) = t.step_ticks {
                text.push_str(&format!(", moves in steps of {step} ticks"));
            }
            out.push(text);
        }
        if let Some(be) = &self.risk.break_even {
            let trigger = be
                .trigger_ticks
                .map_or("the trader's trigger".to_string(), |t| format!("{t} ticks"));
            let offset = be
                .offset_ticks
                .map_or("the trader's offset".to_string(), |o| format!("{o} ticks"));
            out.push(format!(
                "break-even: stop to entry + {offset} after {trigger} of profit"
            ));
        }
        match self.risk.sizing {
            Some(RiskSizing::Dollars { amount }) => out.push(format!(
                "size: risk ${amount} ÷ (stop ticks × tick value), rounded down"
            )),
            Some(RiskSizing::Percent { percent }) => out.push(format!(
                "size: risk {percent}% of the account's balance ÷ (stop ticks × tick value), \
                 rounded down"
            )),
            None => {}
        }
        if let Some(ignore) = self.risk.same_direction_ignore {
            out.push(format!("same_direction_ignore: {ignore}"));
        }
        if let Some(o) = &self.entry_order {
            let price = |p: Option<Decimal>| p.map_or_else(String::new, |p| p.to_string());
            let what = match o.kind {
                EntryKind::Limit => format!("limit entry at {}", price(o.limit_price)),
                EntryKind::Stop => format!("stop entry at {}", price(o.stop_price)),
                EntryKind::StopLimit => format!(
                    "stop-limit entry: stop {}, limit {}",
                    price(o.stop_price),
                    price(o.limit_price)
                ),
            };
            out.push(format!(
                "{what}, working until {}",
                match o.time_in_force {
                    TimeInForce::Day => "the end of the trading day or the next signal",
                    TimeInForce::Gtc => "the next signal (good till cancelled)",
                }
            ));
        }
        if self.delay_secs > 0 {
            out.push(format!("delay: {} s", self.delay_secs));
        }
        if let Some(lag) = self.max_lag_secs {
            out.push(format!("max_lag: {lag} s (replaces stale_after_secs)"));
        }
        out
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
    /// [`InstrumentError`] when `symbol` has no known root.
    pub fn retarget(&self, symbol: &str) -> Result<Signal, InstrumentError> {
        if self.action.is_control() {
            return Ok(self.clone());
        }
        let instrument = resolve_ticker(symbol)?;
        Ok(Signal {
            symbol: Some(symbol.trim().to_string()),
            instrument: Some(instrument),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::by_root;
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
            position_size: Some(dec!(2)),
            prev_position_size: Some(dec!(0)),
            change: Some(PositionChange::Entry {
                direction: Direction::Long,
            }),
            exit_fraction: None,
            entry_order: None,
            risk: AlertRisk::default(),
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
    fn every_new_field_round_trips_through_json_exactly() {
        let signal = Signal {
            action: SignalAction::ReduceLong,
            change: Some(PositionChange::PartialExit {
                direction: Direction::Long,
                fraction: dec!(0.3333),
            }),
            exit_fraction: Some(dec!(0.3333)),
            position_size: Some(dec!(2)),
            prev_position_size: Some(dec!(3)),
            take_profit: Some(ExitLevel::Dollars {
                amount: dec!(50.50),
            }),
            entry_order: Some(EntryOrderSpec {
                kind: EntryKind::StopLimit,
                limit_price: Some(dec!(21001.25)),
                stop_price: Some(dec!(21000.00)),
                time_in_force: TimeInForce::Gtc,
            }),
            risk: AlertRisk {
                trail: Some(TrailOverride {
                    trigger_ticks: Some(dec!(8)),
                    step_ticks: None,
                }),
                break_even: Some(BreakEvenOverride {
                    trigger_ticks: Some(dec!(12)),
                    offset_ticks: Some(dec!(2)),
                }),
                sizing: Some(RiskSizing::Percent {
                    percent: dec!(1.50),
                }),
                same_direction_ignore: Some(true),
            },
            ..sample()
        };
        let json = serde_json::to_string(&signal).unwrap();
        assert!(json.contains(r#""fraction":0.3333"#), "{json}");
        assert!(json.contains(r#""percent":1.50"#), "{json}");
        let back: Signal = serde_json::from_str(&json).unwrap();
        assert_eq!(back, signal);
        // A signal queued before these fields existed still reads.
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in [
            "change",
            "exit_fraction",
            "position_size",
            "prev_position_size",
            "entry_order",
            "risk",
        ] {
            old.as_object_mut().unwrap().remove(key);
        }
        let back: Signal = serde_json::from_str(&old.to_string()).unwrap();
        assert_eq!(back.risk, AlertRisk::default());
        assert_eq!(back.change, None);
    }

    #[test]
    fn retarget_resolves_the_custom_ticker_and_keeps_the_alert_ticker() {
        let signal = sample().retarget("NQ1!").unwrap();
        assert_eq!(signal.instrument.map(|i| i.root), Some("NQ"));
        assert_eq!(signal.ticker.as_deref(), Some("MNQ1!"));
        assert_eq!(signal.symbol.as_deref(), Some("NQ1!"));
        assert!(matches!(
            sample().retarget("AAPL"),
            Err(InstrumentError::UnknownRoot { .. })
        ));
    }

    #[test]
    fn inverting_a_position_swaps_long_and_short_only() {
        assert_eq!(MarketPosition::Long.inverted(), MarketPosition::Short);
        assert_eq!(MarketPosition::Short.inverted(), MarketPosition::Long);
        assert_eq!(MarketPosition::Flat.inverted(), MarketPosition::Flat);
    }
}
