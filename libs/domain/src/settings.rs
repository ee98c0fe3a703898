//! Recorder settings, trader overrides and their resolution (DOMAIN.md §4).
//!
//! Every setting is declared once, in the `settings!` invocation below. The macro generates
//! the concrete [`Settings`] (recorder defaults, and the resolved value stored with an intent),
//! the all-optional [`SettingsOverrides`] (a trader's overrides; `None` = inherit) and the
//! resolution between them. A setting added here therefore reaches every trader and every
//! account by construction: the replaced platform lost 40 % of its trades when a per-account
//! copy of the settings missed fields.
//!
//! One name per setting everywhere (API, database, UI): the field names below are those names.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Units of a take-profit or stop distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PriceUnits {
    /// Instrument ticks.
    #[default]
    #[serde(alias = "ticks", alias = "TICKS")]
    Ticks,
    /// Price points.
    #[serde(alias = "points", alias = "POINTS")]
    Points,
    /// Percent of the entry price.
    #[serde(alias = "percent", alias = "PERCENT")]
    Percent,
}

/// Units of a take-profit leg's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TrimUnits {
    /// Contracts (scaled by the trader's multiplier).
    #[default]
    #[serde(alias = "contracts", alias = "CONTRACTS")]
    Contracts,
    /// Percent of the entry quantity.
    #[serde(alias = "percent", alias = "PERCENT")]
    Percent,
}

/// Kind of protective stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StopType {
    /// A fixed stop at entry ∓ distance.
    #[default]
    #[serde(alias = "fixed", alias = "FIXED")]
    Fixed,
    /// A trailing stop (optionally starting after `trail_trigger` ticks of profit).
    #[serde(
        alias = "trailing",
        alias = "TRAILING",
        alias = "Trail",
        alias = "trail"
    )]
    Trailing,
}

/// Which entry directions a trader takes. Closes always pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectionFilter {
    /// Long and short entries.
    #[default]
    Both,
    /// Long entries only.
    #[serde(alias = "long", alias = "LongOnly")]
    LongOnly,
    /// Short entries only.
    #[serde(alias = "short", alias = "ShortOnly")]
    ShortOnly,
}

/// One take-profit leg: distance `value` (in `tp_units`) and size `trim` (in `trim_units`).
///
/// A value of 0 means "no take-profit order: the strategy exits by signal".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpTarget {
    /// Distance from the entry price, in the recorder's `tp_units`. `ticks` is accepted.
    #[serde(alias = "ticks")]
    pub value: Decimal,
    /// Size of the leg, in `trim_units`. Missing = the whole (remaining) position.
    #[serde(default)]
    pub trim: Decimal,
}

/// A wall-clock time of day (`HH:MM` or `HH:MM:SS`) in the recorder's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(pub NaiveTime);

impl ClockTime {
    /// Builds a time from hours and minutes; `None` when out of range.
    #[must_use]
    pub fn hm(hour: u32, minute: u32) -> Option<Self> {
        NaiveTime::from_hms_opt(hour, minute, 0).map(Self)
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%H:%M:%S"))
    }
}

impl FromStr for ClockTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        NaiveTime::parse_from_str(s, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
            .map(Self)
            .map_err(|_| format!("time of day {s:?} is not HH:MM or HH:MM:SS (24-hour clock)"))
    }
}

impl Serialize for ClockTime {
    /// `HH:MM` for a whole minute (the form users write), `HH:MM:SS` otherwise — a stored
    /// window keeps the second it was given (09:47:30 must not become 09:47).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use chrono::Timelike as _;
        if self.0.second() == 0 {
            s.collect_str(&self.0.format("%H:%M"))
        } else {
            s.collect_str(&self.0.format("%H:%M:%S"))
        }
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A trading window `{enabled, start, stop}` in the recorder's time zone. `stop < start`
/// means the window crosses midnight (e.g. 18:00–02:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    /// Whether the window is in force.
    #[serde(default)]
    pub enabled: bool,
    /// Start of the window (inclusive).
    pub start: ClockTime,
    /// End of the window (exclusive).
    pub stop: ClockTime,
}

impl Default for TimeWindow {
    #[allow(clippy::unwrap_used)] // constant, valid times
    fn default() -> Self {
        Self {
            enabled: false,
            start: ClockTime::hm(0, 0).unwrap(),
            stop: ClockTime::hm(0, 0).unwrap(),
        }
    }
}

/// An IANA time zone name, validated on construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeZone(pub chrono_tz::Tz);

impl Default for TimeZone {
    fn default() -> Self {
        Self(chrono_tz::America::New_York)
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl FromStr for TimeZone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| format!("{s:?} is not an IANA time zone name (e.g. America/New_York)"))
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Declares every setting once; see the module documentation.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:expr ; )+) => {
        /// Every setting of DOMAIN.md §4 with a concrete value: a recorder's defaults, or the
        /// fully resolved settings of one trader, stored with each intent.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for Settings {
            fn default() -> Self {
                Self { $( $name: $default, )+ }
            }
        }

        /// A trader's overrides of its recorder's settings: `None` (JSON `null` or absent)
        /// means "inherit the recorder's value".
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct SettingsOverrides {
            $( $(#[doc = $doc])+ pub $name: Option<$ty>, )+
        }

        impl Settings {
            /// The name of every setting, in declaration order.
            pub const NAMES: &'static [&'static str] = &[ $( stringify!($name), )+ ];

            /// Resolves a trader's settings: each override that is set replaces the recorder's
            /// value; every other setting is inherited.
            #[must_use]
            pub fn resolve(&self, overrides: &SettingsOverrides) -> Settings {
                Settings {
                    $( $name: match &overrides.$name {
                        Some(v) => v.clone(),
                        None => self.$name.clone(),
                    }, )+
                }
            }
        }

        impl SettingsOverrides {
            /// Names of the settings this trader inherits from its recorder.
            #[must_use]
            pub fn inherited(&self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $( if self.$name.is_none() { out.push(stringify!($name)); } )+
                out
            }

            /// Names of the settings this trader overrides.
            #[must_use]
            pub fn overridden(&self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $( if self.$name.is_some() { out.push(stringify!($name)); } )+
                out
            }
        }
    };
}

settings! {
    /// Scales every contract quantity of this trader (decimal, > 0).
    multiplier: Decimal = Decimal::ONE;
    /// Cap on total position size in contracts; 0 = no cap.
    max_contracts: u32 = 0;
    /// Contracts for an entry from flat (before the multiplier).
    initial_position_size: u32 = 1;
    /// Contracts for a DCA add (before the multiplier).
    add_position_size: u32 = 1;
    /// Take-profit legs. Empty = no take-profit.
    tp_targets: Vec<TpTarget> = Vec::new();
    /// Units of the take-profit distances.
    tp_units: PriceUnits = PriceUnits::Ticks;
    /// Units of the take-profit leg sizes.
    trim_units: TrimUnits = TrimUnits::Contracts;
    /// Whether a protective stop is placed.
    sl_enabled: bool = false;
    /// Stop distance, in `sl_units`.
    sl_amount: Decimal = Decimal::ZERO;
    /// Units of the stop distance.
    sl_units: PriceUnits = PriceUnits::Ticks;
    /// Fixed or trailing stop.
    sl_type: StopType = StopType::Fixed;
    /// Ticks of profit before a trailing stop starts trailing; 0 = trail at once.
    trail_trigger: Decimal = Decimal::ZERO;
    /// Trailing step in ticks; 0 = the broker's finest step.
    trail_freq: Decimal = Decimal::ZERO;
    /// Whether the stop moves to break-even.
    break_even_enabled: bool = false;
    /// Ticks of profit that trigger the break-even move.
    break_even_ticks: Decimal = Decimal::ZERO;
    /// Ticks beyond the entry (in the profit direction) where the break-even stop is placed.
    break_even_offset: Decimal = Decimal::ZERO;
    /// Same-direction signals add to the position (averaging in).
    dca_enabled: bool = false;
    /// Minimum seconds between two DCA adds.
    add_delay: u32 = 1;
    /// Minimum seconds between two executed signals.
    signal_cooldown: u32 = 0;
    /// Maximum executed signals per trading day (session); 0 = unlimited.
    max_signals_per_session: u32 = 0;
    /// Maximum daily loss in dollars; 0 = off.
    max_daily_loss: Decimal = Decimal::ZERO;
    /// First trading window.
    time_filter_1: TimeWindow = TimeWindow::default();
    /// Second trading window.
    time_filter_2: TimeWindow = TimeWindow::default();
    /// IANA time zone of the trading windows.
    time_zone: TimeZone = TimeZone::default();
    /// Flatten when an enabled window closes.
    auto_flat_after_cutoff: bool = false;
    /// Trade this symbol instead of the alert's.
    custom_ticker: Option<String> = None;
    /// Swap buy and sell.
    inverse_strategy: bool = false;
    /// Keep the recorder's paper record.
    recording_enabled: bool = true;
    /// Paper only: never send orders to brokers.
    simulation_mode: bool = false;
    /// A signal older than this many seconds when it is about to execute is not executed.
    stale_after_secs: u32 = 30;
    /// Entries against this direction are skipped (closes pass).
    direction_filter: DirectionFilter = DirectionFilter::Both;
    /// Cap on one entry's quantity in contracts; 0 = none.
    max_contracts_per_trade: u32 = 0;
    /// Same-direction signals while in a position are skipped (not added, not re-entered).
    same_direction_ignore: bool = false;
}

/// A setting whose value is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("setting `{setting}`: {reason}")]
pub struct SettingsError {
    /// The setting's name.
    pub setting: &'static str,
    /// What is wrong and what is expected.
    pub reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError {
        setting,
        reason: reason.into(),
    }
}

impl Settings {
    /// Checks every value's range. Run by the API before storing and by the executor before
    /// acting, so a bad value is refused with its name instead of producing a wrong order.
    ///
    /// # Errors
    /// The first setting that is out of range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let hundred = Decimal::ONE_HUNDRED;
        if self.multiplier <= Decimal::ZERO {
            return Err(invalid("multiplier", "must be greater than 0"));
        }
        for (i, t) in self.tp_targets.iter().enumerate() {
            if t.value < Decimal::ZERO {
                return Err(invalid(
                    "tp_targets",
                    format!("leg {}: value must be >= 0", i + 1),
                ));
            }
            if t.trim < Decimal::ZERO {
                return Err(invalid(
                    "tp_targets",
                    format!("leg {}: trim must be >= 0", i + 1),
                ));
            }
            if self.trim_units == TrimUnits::Percent && t.trim > hundred {
                return Err(invalid(
                    "tp_targets",
                    format!("leg {}: trim is a percent and must be <= 100", i + 1),
                ));
            }
            if self.tp_units == PriceUnits::Percent && t.value >= hundred {
                return Err(invalid(
                    "tp_targets",
                    format!("leg {}: a percent distance must be < 100", i + 1),
                ));
            }
        }
        if self.sl_amount < Decimal::ZERO {
            return Err(invalid("sl_amount", "must be >= 0"));
        }
        if self.sl_enabled && self.sl_amount.is_zero() {
            return Err(invalid("sl_amount", "must be > 0 when sl_enabled is on"));
        }
        if self.sl_units == PriceUnits::Percent && self.sl_amount >= hundred {
            return Err(invalid("sl_amount", "a percent distance must be < 100"));
        }
        for (name, v) in [
            ("trail_trigger", self.trail_trigger),
            ("trail_freq", self.trail_freq),
            ("break_even_ticks", self.break_even_ticks),
            ("break_even_offset", self.break_even_offset),
            ("max_daily_loss", self.max_daily_loss),
        ] {
            if v < Decimal::ZERO {
                return Err(invalid(name, "must be >= 0"));
            }
        }
        if self.break_even_enabled && self.break_even_ticks.is_zero() {
            return Err(invalid(
                "break_even_ticks",
                "must be > 0 when break_even_enabled is on",
            ));
        }
        if self.break_even_enabled && self.break_even_offset >= self.break_even_ticks {
            return Err(invalid(
                "break_even_offset",
                "must be smaller than break_even_ticks (the stop would be placed at or through \
                 the market)",
            ));
        }
        if self.initial_position_size == 0 {
            return Err(invalid("initial_position_size", "must be at least 1"));
        }
        if self.add_position_size == 0 {
            return Err(invalid("add_position_size", "must be at least 1"));
        }
        if let Some(t) = &self.custom_ticker
            && t.trim().is_empty()
        {
            return Err(invalid(
                "custom_ticker",
                "must not be blank (leave it unset instead)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_clock_time_keeps_its_seconds_through_serde() {
        for text in ["09:47", "09:47:30", "00:00", "23:59:59"] {
            let t: ClockTime = text.parse().unwrap();
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<ClockTime>(&json).unwrap(), t);
        }
        // A whole minute written with seconds is stored in the short form, same time.
        let t: ClockTime = "09:47:00".parse().unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"09:47\"");
    }

    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn defaults_match_the_settings_table() {
        let s = Settings::default();
        assert_eq!(s.multiplier, dec!(1));
        assert_eq!(s.max_contracts, 0);
        assert_eq!(s.initial_position_size, 1);
        assert_eq!(s.add_position_size, 1);
        assert!(s.tp_targets.is_empty());
        assert_eq!(s.tp_units, PriceUnits::Ticks);
        assert_eq!(s.trim_units, TrimUnits::Contracts);
        assert!(!s.sl_enabled);
        assert_eq!(s.sl_type, StopType::Fixed);
        assert_eq!((s.trail_trigger, s.trail_freq), (dec!(0), dec!(0)));
        assert!(!s.break_even_enabled);
        assert!(!s.dca_enabled);
        assert_eq!(s.add_delay, 1);
        assert_eq!(s.signal_cooldown, 0);
        assert_eq!(s.max_signals_per_session, 0);
        assert_eq!(s.max_daily_loss, dec!(0));
        assert!(!s.time_filter_1.enabled && !s.time_filter_2.enabled);
        assert_eq!(s.time_zone.to_string(), "America/New_York");
        assert!(!s.auto_flat_after_cutoff);
        assert_eq!(s.custom_ticker, None);
        assert!(!s.inverse_strategy);
        assert!(s.recording_enabled);
        assert!(!s.simulation_mode);
        assert_eq!(s.stale_after_secs, 30);
        assert_eq!(s.direction_filter, DirectionFilter::Both);
        assert_eq!(s.max_contracts_per_trade, 0);
        assert!(!s.same_direction_ignore);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn unset_override_inherits_and_set_override_wins() {
        let recorder = Settings {
            dca_enabled: true,
            max_contracts: 10,
            ..Settings::default()
        };
        let overrides = SettingsOverrides {
            multiplier: Some(dec!(2.5)),
            dca_enabled: Some(false),
            ..SettingsOverrides::default()
        };
        let r = recorder.resolve(&overrides);
        assert_eq!(r.multiplier, dec!(2.5));
        assert!(!r.dca_enabled);
        assert_eq!(r.max_contracts, 10, "inherited");
        assert_eq!(overrides.overridden(), vec!["multiplier", "dca_enabled"]);
        assert_eq!(overrides.inherited().len(), Settings::NAMES.len() - 2);
    }

    #[test]
    fn every_setting_can_be_overridden() {
        // Serialize a non-default value for every field through the overrides type: a field
        // missing from SettingsOverrides would fail deny_unknown_fields here.
        let custom = Settings {
            multiplier: dec!(3),
            custom_ticker: Some("MES1!".into()),
            ..Settings::default()
        };
        let json = serde_json::to_value(&custom).unwrap();
        let overrides: SettingsOverrides = serde_json::from_value(json).unwrap();
        assert!(overrides.inherited().is_empty());
        assert_eq!(Settings::default().resolve(&overrides), custom);
    }

    #[test]
    fn null_override_means_inherit() {
        let o: SettingsOverrides =
            serde_json::from_str(r#"{"multiplier": null, "max_contracts": 4}"#).unwrap();
        assert_eq!(o.multiplier, None);
        assert_eq!(o.max_contracts, Some(4));
    }

    #[test]
    fn unknown_setting_names_are_refused() {
        // Regression: the UI sent `avg_down_enabled`, the server read `dca_enabled`, and DCA
        // was silently always off.
        let err = serde_json::from_str::<SettingsOverrides>(r#"{"avg_down_enabled": true}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("avg_down_enabled"), "{err}");
        assert!(serde_json::from_str::<Settings>(r#"{"avg_down_enabled": true}"#).is_err());
    }

    #[test]
    fn tp_target_accepts_ticks_as_value() {
        let t: TpTarget = serde_json::from_str(r#"{"ticks": 20, "trim": 1}"#).unwrap();
        assert_eq!(
            t,
            TpTarget {
                value: dec!(20),
                trim: dec!(1)
            }
        );
    }

    #[test]
    fn settings_round_trip_through_json() {
        let s = Settings {
            tp_targets: vec![TpTarget {
                value: dec!(10),
                trim: dec!(1),
            }],
            time_filter_1: TimeWindow {
                enabled: true,
                start: "09:30".parse().unwrap(),
                stop: "16:00:00".parse().unwrap(),
            },
            time_zone: "Europe/London".parse().unwrap(),
            sl_enabled: true,
            sl_amount: dec!(12.5),
            ..Settings::default()
        };
        let back: Settings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn validation_names_the_setting() {
        let bad = Settings {
            multiplier: dec!(0),
            ..Settings::default()
        };
        assert_eq!(bad.validate().unwrap_err().setting, "multiplier");
        let bad = Settings {
            sl_enabled: true,
            ..Settings::default()
        };
        assert_eq!(bad.validate().unwrap_err().setting, "sl_amount");
        let bad = Settings {
            trim_units: TrimUnits::Percent,
            tp_targets: vec![TpTarget {
                value: dec!(5),
                trim: dec!(150),
            }],
            ..Settings::default()
        };
        assert_eq!(bad.validate().unwrap_err().setting, "tp_targets");
        let bad = Settings {
            break_even_enabled: true,
            break_even_ticks: dec!(8),
            break_even_offset: dec!(8),
            ..Settings::default()
        };
        assert_eq!(bad.validate().unwrap_err().setting, "break_even_offset");
        assert!("Mars/Olympus".parse::<TimeZone>().is_err());
        assert!("25:00".parse::<ClockTime>().is_err());
    }
}
