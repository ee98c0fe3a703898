//! Why a signal was not executed for one trader: the rule that stopped it and the reason in
//! words a trader understands (DOMAIN.md §4 "a filter that skips a signal records which filter
//! and why", §5.3 skip-opposite).
//!
//! A [`SkipReason`] is plain data (`Clone`, serde; `kind` tags the variant) so the executor can
//! store it with the intent and the API can show it: [`SkipReason::rule`] names the setting or
//! rule (stable, for metrics and filtering), `Display` explains it in a trader's words, and the
//! fields carry the numbers behind the decision. Store all three.

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::settings::{DirectionFilter, TimeWindow, TimeZone};
use crate::signal::SignalAction;
use crate::types::{Contracts, Direction};

/// The rule that kept a signal from being executed, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// `time_filter_1` / `time_filter_2`: the entry came outside every enabled window.
    OutsideTimeWindows {
        /// Wall-clock time of the signal in the recorder's time zone.
        local_time: NaiveDateTime,
        /// The recorder's time zone.
        time_zone: TimeZone,
        /// The enabled windows, none of which contains `local_time`.
        windows: Vec<TimeWindow>,
    },
    /// `direction_filter`: the trader does not take entries in this direction.
    DirectionFilter {
        /// The trader's filter.
        filter: DirectionFilter,
        /// The direction the signal asked for.
        direction: Direction,
    },
    /// `signal_cooldown`: too soon after the previous executed signal.
    SignalCooldown {
        /// The configured cooldown in seconds.
        cooldown_secs: u32,
        /// Milliseconds since the previous executed signal.
        elapsed_ms: i64,
    },
    /// `max_signals_per_session`: the trading day's budget of signals is used up.
    MaxSignalsPerSession {
        /// The configured maximum.
        max: u32,
        /// Signals already executed in this trading day.
        executed: u32,
        /// The CME trading day.
        trading_day: NaiveDate,
    },
    /// `add_delay`: too soon after the previous order that increased this position.
    AddDelay {
        /// The configured delay in seconds.
        add_delay_secs: u32,
        /// Milliseconds since the previous entry or add.
        elapsed_ms: i64,
    },
    /// `max_daily_loss`: the account breached its daily loss limit for this trading day.
    DailyLossBreached {
        /// The configured limit in dollars.
        max_daily_loss: Decimal,
        /// The CME trading day of the breach.
        trading_day: NaiveDate,
    },
    /// The kill switch is engaged for this trader's owner, account or globally.
    KillSwitch,
    /// Opposite signal while DCA is on: the resting take-profit manages the exit (§5.3).
    OppositeWhileAveraging {
        /// The open position's direction.
        position: Direction,
        /// The direction the signal asked for.
        signal: Direction,
    },
    /// `same_direction_ignore`: a same-direction signal while already in a position.
    SameDirectionIgnored {
        /// The direction of both the position and the signal.
        direction: Direction,
    },
    /// `close_long` / `close_short` while the position is on the other side.
    NothingToClose {
        /// The action received.
        action: SignalAction,
        /// The position actually open at the broker.
        position: Direction,
    },
    /// `max_contracts`: the position is already at the cap, so nothing can be added.
    MaxContractsReached {
        /// The configured cap.
        max_contracts: Contracts,
        /// Contracts already open in the signal's direction.
        open: Contracts,
    },
    /// The account requires both a stop and a target on every position (`require_brackets`),
    /// and the resolved settings would leave one out.
    ProtectionRequired {
        /// The settings place no stop.
        missing_stop: bool,
        /// The settings place no take-profit.
        missing_target: bool,
    },
    /// A control command (`resume`) that places no order for a trader.
    ControlCommand {
        /// The action received.
        action: SignalAction,
    },
    /// A partial exit (`reduce_long` / `reduce_short`) while the account is flat.
    NothingToReduce {
        /// The action received.
        action: SignalAction,
    },
    /// The alert sizes the entry by risk, and one contract at its stop already risks more.
    RiskBelowOneContract {
        /// Dollars the alert allows this trader to risk (after the multiplier).
        risk: Decimal,
        /// Dollars one contract loses at the stop.
        per_contract: Decimal,
    },
}

impl SkipReason {
    /// The setting or rule that skipped the signal, as named in the settings table (stable;
    /// used as a metric label and in the API).
    #[must_use]
    pub fn rule(&self) -> &'static str {
        match self {
            SkipReason::OutsideTimeWindows { .. } => "time_filter",
            SkipReason::DirectionFilter { .. } => "direction_filter",
            SkipReason::SignalCooldown { .. } => "signal_cooldown",
            SkipReason::MaxSignalsPerSession { .. } => "max_signals_per_session",
            SkipReason::AddDelay { .. } => "add_delay",
            SkipReason::DailyLossBreached { .. } => "max_daily_loss",
            SkipReason::KillSwitch => "kill_switch",
            SkipReason::OppositeWhileAveraging { .. } => "dca_enabled",
            SkipReason::SameDirectionIgnored { .. } => "same_direction_ignore",
            SkipReason::NothingToClose { .. } => "close_side",
            SkipReason::MaxContractsReached { .. } => "max_contracts",
            SkipReason::ProtectionRequired { .. } => "require_brackets",
            SkipReason::ControlCommand { .. } => "control_command",
            SkipReason::NothingToReduce { .. } => "reduce_side",
            SkipReason::RiskBelowOneContract { .. } => "risk_sizing",
        }
    }
}

fn seconds(ms: i64) -> String {
    let d = Decimal::new(ms, 3).normalize();
    format!("{d} s")
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::OutsideTimeWindows {
                local_time,
                time_zone,
                windows,
            } => {
                write!(
                    f,
                    "entry outside the trading windows: it is {} in {time_zone}, and the enabled \
                     window{} ",
                    local_time.format("%H:%M:%S"),
                    if windows.len() == 1 { " is" } else { "s are" },
                )?;
                for (i, w) in windows.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    write!(f, "{}–{}", w.start, w.stop)?;
                }
                Ok(())
            }
            SkipReason::DirectionFilter { filter, direction } => {
                let allowed = match filter {
                    DirectionFilter::Both => "both directions",
                    DirectionFilter::LongOnly => "long entries only",
                    DirectionFilter::ShortOnly => "short entries only",
                };
                write!(
                    f,
                    "{direction} entry skipped: the direction filter allows {allowed}"
                )
            }
            SkipReason::SignalCooldown {
                cooldown_secs,
                elapsed_ms,
            } => write!(
                f,
                "signal cooldown: only {} since the previous executed signal, the cooldown is \
                 {cooldown_secs} s",
                seconds(*elapsed_ms)
            ),
            SkipReason::MaxSignalsPerSession {
                max,
                executed,
                trading_day,
            } => write!(
                f,
                "maximum signals per session reached: {executed} of {max} already executed in \
                 the trading day {trading_day}"
            ),
            SkipReason::AddDelay {
                add_delay_secs,
                elapsed_ms,
            } => write!(
                f,
                "add delay: only {} since the previous entry or add, the minimum is \
                 {add_delay_secs} s",
                seconds(*elapsed_ms)
            ),
            SkipReason::DailyLossBreached {
                max_daily_loss,
                trading_day,
            } => write!(
                f,
                "daily loss limit of ${} breached for the trading day {trading_day}: no new \
                 entries until the next session",
                max_daily_loss.normalize()
            ),
            SkipReason::KillSwitch => {
                f.write_str("the kill switch is engaged: no new entries until it is resumed")
            }
            SkipReason::OppositeWhileAveraging { position, signal } => write!(
                f,
                "opposite signal while averaging; the resting take-profit manages the exit \
                 ({signal} signal, {position} position, DCA on)"
            ),
            SkipReason::SameDirectionIgnored { direction } => write!(
                f,
                "already {direction}: same-direction signals are ignored while in a position \
                 (same_direction_ignore)"
            ),
            SkipReason::NothingToClose { action, position } => write!(
                f,
                "{} received but the position is {position}: nothing of that side to close",
                action.as_str()
            ),
            SkipReason::MaxContractsReached {
                max_contracts,
                open,
            } => write!(
                f,
                "maximum position reached: {open} contracts open, the cap is {max_contracts}"
            ),
            SkipReason::ProtectionRequired {
                missing_stop,
                missing_target,
            } => {
                let missing = match (missing_stop, missing_target) {
                    (true, true) => "neither a stop nor a take-profit",
                    (true, false) => "no stop",
                    _ => "no take-profit",
                };
                write!(
                    f,
                    "this account requires a stop and a take-profit on every position, and the \
                     settings place {missing}"
                )
            }
            SkipReason::ControlCommand { action } => write!(
                f,
                "{} is a control command: it places no order for a trader",
                action.as_str()
            ),
            SkipReason::NothingToReduce { action } => write!(
                f,
                "{} received but the account is flat: nothing to reduce",
                action.as_str()
            ),
            SkipReason::RiskBelowOneContract { risk, per_contract } => write!(
                f,
                "the alert risks ${risk}, and one contract at its stop risks ${per_contract}: \
                 not even one contract fits (risk sizing never rounds up)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ClockTime;

    #[test]
    fn every_reason_names_its_rule_and_explains_itself() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        let reasons = vec![
            SkipReason::OutsideTimeWindows {
                local_time: day.and_hms_opt(8, 15, 0).unwrap(),
                time_zone: TimeZone::default(),
                windows: vec![TimeWindow {
                    enabled: true,
                    start: ClockTime::hm(9, 30).unwrap(),
                    stop: ClockTime::hm(16, 0).unwrap(),
                }],
            },
            SkipReason::DirectionFilter {
                filter: DirectionFilter::LongOnly,
                direction: Direction::Short,
            },
            SkipReason::SignalCooldown {
                cooldown_secs: 60,
                elapsed_ms: 12_500,
            },
            SkipReason::MaxSignalsPerSession {
                max: 3,
                executed: 3,
                trading_day: day,
            },
            SkipReason::AddDelay {
                add_delay_secs: 1,
                elapsed_ms: 300,
            },
            SkipReason::DailyLossBreached {
                max_daily_loss: Decimal::new(400, 0),
                trading_day: day,
            },
            SkipReason::KillSwitch,
            SkipReason::OppositeWhileAveraging {
                position: Direction::Long,
                signal: Direction::Short,
            },
            SkipReason::SameDirectionIgnored {
                direction: Direction::Long,
            },
            SkipReason::NothingToClose {
                action: SignalAction::CloseLong,
                position: Direction::Short,
            },
            SkipReason::MaxContractsReached {
                max_contracts: 5,
                open: 5,
            },
            SkipReason::ProtectionRequired {
                missing_stop: true,
                missing_target: false,
            },
            SkipReason::ControlCommand {
                action: SignalAction::Resume,
            },
            SkipReason::NothingToReduce {
                action: SignalAction::ReduceLong,
            },
            SkipReason::RiskBelowOneContract {
                risk: Decimal::new(19, 0),
                per_contract: Decimal::new(20, 0),
            },
        ];
        let mut rules = std::collections::HashSet::new();
        for r in reasons {
            assert!(rules.insert(r.rule()), "rule names are distinct");
            let text = r.to_string();
            assert!(text.len() > 20, "{text}");
            let json = serde_json::to_value(&r).unwrap();
            assert!(json.get("kind").is_some());
            let back: SkipReason = serde_json::from_value(json).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn opposite_while_averaging_uses_the_words_of_the_rule() {
        let r = SkipReason::OppositeWhileAveraging {
            position: Direction::Long,
            signal: Direction::Short,
        };
        assert!(r.to_string().starts_with(
            "opposite signal while averaging; the resting take-profit manages the exit"
        ));
    }

    #[test]
    fn texts_show_the_figures() {
        let r = SkipReason::SignalCooldown {
            cooldown_secs: 60,
            elapsed_ms: 12_500,
        };
        assert!(r.to_string().contains("12.5 s"), "{r}");
        let r = SkipReason::ProtectionRequired {
            missing_stop: true,
            missing_target: true,
        };
        assert!(
            r.to_string()
                .ends_with("place neither a stop nor a take-profit"),
            "{r}"
        );
    }
}
