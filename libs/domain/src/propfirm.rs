//! Prop-firm rules (DOMAIN.md §14): the limits a proprietary trading firm sets on an evaluation
//! or funded account, each with a **safety buffer** so the platform acts before the firm's
//! limit, not at it. Pure rules over numbers the caller gathers — no I/O — so the executor
//! (before an entry) and the risk service (while a position is open) judge the same way.
//!
//! Values are data: firms change them, and every value of a preset can be edited per account.
//! The presets below carry commonly published figures for 50K accounts and are a starting point
//! the user must check against their firm's current rules.

use chrono::{DateTime, Duration, NaiveTime, TimeZone as _, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::settings::{ClockTime, TimeZone};

/// How a trailing drawdown's high-water mark moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailingMode {
    /// The mark follows equity including open P&L, tick by tick (Apex-style).
    Intraday,
    /// The mark follows the balance at each trading day's close only (Topstep-style).
    EndOfDay,
}

/// A maximum drawdown below a trailing high-water mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailingDrawdown {
    /// How far below the mark the account may fall, in dollars.
    pub amount: Decimal,
    /// How the mark moves.
    pub mode: TrailingMode,
    /// The floor stops rising once it reaches the starting balance plus this (0: the starting
    /// balance); `None`: it trails forever.
    #[serde(default)]
    pub stops_at_offset: Option<Decimal>,
    /// Act this many dollars before the floor.
    #[serde(default)]
    pub buffer: Decimal,
}

/// A daily loss limit: realised + open P&L of the trading day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyLoss {
    /// The firm's limit, in dollars (positive).
    pub amount: Decimal,
    /// Act this many dollars before it.
    #[serde(default)]
    pub buffer: Decimal,
}

/// Contract limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxContracts {
    /// Largest position, in the firm's contracts.
    pub per_position: u32,
    /// Largest single order, when the firm limits it separately.
    #[serde(default)]
    pub per_order: Option<u32>,
    /// How many micros make one of the firm's contracts (10: a micro counts a tenth; 1: a
    /// micro counts as a full contract).
    pub micros_per_contract: u32,
}

/// No position after a clock time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlatBy {
    /// The firm's deadline.
    pub time: ClockTime,
    /// In this time zone.
    pub time_zone: TimeZone,
    /// Flatten (and refuse entries) this many minutes before it.
    #[serde(default)]
    pub minutes_before: u32,
}

/// No entries around listed news events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewsBlackout {
    /// Minutes before an event.
    pub minutes_before: u32,
    /// Minutes after.
    pub minutes_after: u32,
    /// Also flatten open positions when a window starts.
    #[serde(default)]
    pub flatten: bool,
}

/// A daily profit cap (consistency rules): no new entries once today's profit reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfitCap {
    /// Today's profit at which entries stop, in dollars.
    pub amount: Decimal,
}

/// One account's rules. Every rule is optional; automation is allowed unless said otherwise
/// (by default and when the field is absent from JSON alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    /// The preset it started from, if any (informative: values are the account's own).
    #[serde(default)]
    pub preset: Option<String>,
    /// The account's starting balance (the trailing floor's reference).
    #[serde(default)]
    pub starting_balance: Option<Decimal>,
    /// Trailing maximum drawdown.
    #[serde(default)]
    pub trailing_drawdown: Option<TrailingDrawdown>,
    /// Daily loss limit.
    #[serde(default)]
    pub daily_loss: Option<DailyLoss>,
    /// Contract limits.
    #[serde(default)]
    pub max_contracts: Option<MaxContracts>,
    /// Flat-by time.
    #[serde(default)]
    pub flat_by: Option<FlatBy>,
    /// News blackout windows.
    #[serde(default)]
    pub news_blackout: Option<NewsBlackout>,
    /// Daily profit cap.
    #[serde(default)]
    pub daily_profit_cap: Option<ProfitCap>,
    /// Whether the firm allows automated or copied trading on this account.
    #[serde(default = "yes")]
    pub automation_allowed: bool,
}

fn yes() -> bool {
    true
}

impl Default for RuleSet {
    fn default() -> Self {
        Self {
            preset: None,
            starting_balance: None,
            trailing_drawdown: None,
            daily_loss: None,
            max_contracts: None,
            flat_by: None,
            news_blackout: None,
            daily_profit_cap: None,
            automation_allowed: yes(),
        }
    }
}

/// Which rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// [`TrailingDrawdown`].
    TrailingDrawdown,
    /// [`DailyLoss`].
    DailyLoss,
    /// [`MaxContracts`] per position.
    MaxPosition,
    /// [`MaxContracts`] per order.
    MaxOrder,
    /// [`FlatBy`].
    FlatBy,
    /// [`NewsBlackout`].
    NewsBlackout,
    /// [`ProfitCap`].
    DailyProfitCap,
    /// Automation not allowed.
    Automation,
}

impl Rule {
    /// The rule's name in reasons and the API.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::TrailingDrawdown => "trailing_drawdown",
            Self::DailyLoss => "daily_loss",
            Self::MaxPosition => "max_contracts_per_position",
            Self::MaxOrder => "max_contracts_per_order",
            Self::FlatBy => "flat_by",
            Self::NewsBlackout => "news_blackout",
            Self::DailyProfitCap => "daily_profit_cap",
            Self::Automation => "automation_policy",
        }
    }
}

/// A listed news event (the operator's calendar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewsEvent {
    /// When it is released.
    pub at: DateTime<Utc>,
    /// What it is (`FOMC rate decision`).
    pub title: String,
}

/// What the account looks like now, gathered by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// Cash balance (realised, net of fees) now.
    pub balance: Decimal,
    /// Open P&L now.
    pub open_pnl: Decimal,
    /// P&L of the trading day (realised + open).
    pub day_pnl: Decimal,
    /// The trailing mark as kept so far: the highest equity (intraday) or end-of-day balance
    /// (end of day) seen; `None` before the first observation (the starting balance is used).
    pub high_water_mark: Option<Decimal>,
    /// Now.
    pub now: DateTime<Utc>,
}

impl AccountState {
    /// Balance plus open P&L.
    #[must_use]
    pub fn equity(&self) -> Decimal {
        self.balance + self.open_pnl
    }
}

/// An entry to judge before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryCheck {
    /// Whether the contract is a micro (`MNQ`, `MES`…).
    pub micro: bool,
    /// The order's quantity.
    pub quantity: u32,
    /// The signed position in that contract before the order (> 0 long).
    pub position_before: i64,
    /// Whether the order adds in the long direction.
    pub buy: bool,
    /// What the order would lose at its stop, in dollars (positive), when it has one.
    pub risk_to_stop: Option<Decimal>,
    /// Whether it comes from automation (a signal or a copy), not a person.
    pub automated: bool,
}

/// Why an entry is refused: the rule and the numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The rule.
    pub rule: Rule,
    /// The reason, with the numbers.
    pub reason: String,
}

/// What an open account must do now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// Why, with the numbers.
    pub reason: String,
}

/// How far an account is from one limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distance {
    /// The rule.
    pub rule: Rule,
    /// Where the platform acts (the firm's limit moved in by the buffer), in the rule's unit.
    pub acts_at: Decimal,
    /// The firm's limit.
    pub firm_limit: Decimal,
    /// The value now.
    pub current: Decimal,
    /// What is left before the platform acts (≤ 0: it acts).
    pub remaining: Decimal,
}

fn money(d: Decimal) -> String {
    let d = d.round_dp(2).normalize();
    if d.is_sign_negative() {
        format!("−${}", d.abs())
    } else {
        format!("${d}")
    }
}

impl RuleSet {
    /// The trailing floor now (the equity at which the firm closes the account).
    #[must_use]
    pub fn drawdown_floor(&self, state: &AccountState) -> Option<Decimal> {
        let t = self.trailing_drawdown.as_ref()?;
        let start = self.starting_balance?;
        let mark = state.high_water_mark.unwrap_or(start).max(start);
        let floor = mark - t.amount;
        Some(match t.stops_at_offset {
            Some(offset) => floor.min(start + offset),
            None => floor,
        })
    }

    /// The high-water mark after observing `state` (the caller stores it): intraday marks
    /// follow equity at every observation; end-of-day marks move only with `day_closed` (the
    /// balance at a trading day's close).
    #[must_use]
    pub fn next_mark(&self, state: &AccountState, day_closed: bool) -> Option<Decimal> {
        let t = self.trailing_drawdown.as_ref()?;
        let start = self.starting_balance?;
        let mark = state.high_water_mark.unwrap_or(start).max(start);
        Some(match t.mode {
            TrailingMode::Intraday => mark.max(state.equity()),
            TrailingMode::EndOfDay if day_closed => mark.max(state.balance),
            TrailingMode::EndOfDay => mark,
        })
    }

    /// The distance to every money and clock limit that applies.
    #[must_use]
    pub fn distances(&self, state: &AccountState) -> Vec<Distance> {
        let mut out = Vec::new();
        if let (Some(t), Some(floor)) = (&self.trailing_drawdown, self.drawdown_floor(state)) {
            let acts_at = floor + t.buffer;
            out.push(Distance {
                rule: Rule::TrailingDrawdown,
                acts_at,
                firm_limit: floor,
                current: state.equity(),
                remaining: state.equity() - acts_at,
            });
        }
        if let Some(d) = &self.daily_loss {
            let acts_at = -(d.amount - d.buffer).max(Decimal::ZERO);
            out.push(Distance {
                rule: Rule::DailyLoss,
                acts_at,
                firm_limit: -d.amount,
                current: state.day_pnl,
                remaining: state.day_pnl - acts_at,
            });
        }
        if let Some(c) = &self.daily_profit_cap {
            out.push(Distance {
                rule: Rule::DailyProfitCap,
                acts_at: c.amount,
                firm_limit: c.amount,
                current: state.day_pnl,
                remaining: c.amount - state.day_pnl,
            });
        }
        out
    }

    /// Whether an entry may be sent now; the first rule it would break (or land inside the
    /// buffer of) otherwise.
    ///
    /// # Errors
    /// The [`Refusal`] with the rule and the numbers.
    pub fn check_entry(
        &self,
        state: &AccountState,
        entry: &EntryCheck,
        news: &[NewsEvent],
    ) -> Result<(), Refusal> {
        let refuse = |rule: Rule, reason: String| Err(Refusal { rule, reason });
        if entry.automated && !self.automation_allowed {
            return refuse(
                Rule::Automation,
                "the firm does not allow automated or copied trading on this account".into(),
            );
        }
        if let Some(c) = &self.max_contracts {
            let weight = |n: i64| -> Decimal {
                let n = Decimal::from(n.abs());
                if entry.micro {
                    n / Decimal::from(c.micros_per_contract.max(1))
                } else {
                    n
                }
            };
            let order = weight(i64::from(entry.quantity));
            if let Some(max) = c.per_order
                && order > Decimal::from(max)
            {
                return refuse(
                    Rule::MaxOrder,
                    format!(
                        "the order counts {} contracts; the firm allows {max} per order",
                        order.normalize()
                    ),
                );
            }
            let signed = i64::from(entry.quantity) * if entry.buy { 1 } else { -1 };
            let after = weight(entry.position_before + signed);
            if after > Decimal::from(c.per_position) {
                return refuse(
                    Rule::MaxPosition,
                    format!(
                        "the position would count {} contracts; the firm allows {}",
                        after.normalize(),
                        c.per_position
                    ),
                );
            }
        }
        for d in self.distances(state) {
            let risk = entry.risk_to_stop.unwrap_or_default();
            match d.rule {
                Rule::TrailingDrawdown | Rule::DailyLoss if d.remaining - risk <= Decimal::ZERO => {
                    let what = if d.rule == Rule::DailyLoss {
                        format!("today's P&L {}", money(d.current))
                    } else {
                        format!("equity {}", money(d.current))
                    };
                    let stop = if risk > Decimal::ZERO && d.remaining > Decimal::ZERO {
                        format!(" after {} at the order's stop", money(-risk))
                    } else {
                        String::new()
                    };
                    return refuse(
                        d.rule,
                        format!(
                            "{what}{stop} would be within the safety buffer: the platform acts at {}, the firm's limit is {}",
                            money(d.acts_at),
                            money(d.firm_limit)
                        ),
                    );
                }
                Rule::DailyProfitCap if d.remaining <= Decimal::ZERO => {
                    return refuse(
                        d.rule,
                        format!(
                            "today's profit {} reached the daily cap {}: no new entries today",
                            money(d.current),
                            money(d.acts_at)
                        ),
                    );
                }
                _ => {}
            }
        }
        if let Some(f) = &self.flat_by
            && let Some(from) = flat_window_start(f, state.now)
            && state.now >= from
        {
            return refuse(
                Rule::FlatBy,
                format!(
                    "past {} {} ({} minutes before the firm's flat-by time): no new entries until the next session",
                    from.with_timezone(&f.time_zone.0).format("%H:%M"),
                    f.time_zone.0,
                    f.minutes_before
                ),
            );
        }
        if let Some(b) = &self.news_blackout
            && let Some(e) = in_blackout(b, news, state.now)
        {
            return refuse(
                Rule::NewsBlackout,
                format!(
                    "inside the news blackout of \"{}\" at {} ({} min before, {} min after)",
                    e.title,
                    e.at.format("%H:%M UTC"),
                    b.minutes_before,
                    b.minutes_after
                ),
            );
        }
        Ok(())
    }

    /// What an account holding positions must do now: flatten and lock for the rules returned
    /// (the money limits reached their buffer, the flat-by window began, a news window that
    /// flattens began).
    #[must_use]
    pub fn check_open(
        &self,
        state: &AccountState,
        holding: bool,
        news: &[NewsEvent],
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in self.distances(state) {
            if matches!(d.rule, Rule::TrailingDrawdown | Rule::DailyLoss)
                && d.remaining <= Decimal::ZERO
            {
                out.push(Finding {
                    rule: d.rule,
                    reason: format!(
                        "{} at {} reached the safety buffer (acts at {}, the firm's limit is {})",
                        if d.rule == Rule::DailyLoss {
                            "today's P&L"
                        } else {
                            "equity"
                        },
                        money(d.current),
                        money(d.acts_at),
                        money(d.firm_limit)
                    ),
                });
            }
        }
        if holding
            && let Some(f) = &self.flat_by
            && flat_window_start(f, state.now).is_some_and(|from| state.now >= from)
        {
            out.push(Finding {
                rule: Rule::FlatBy,
                reason: format!(
                    "{} minutes before the firm's flat-by time {} {}",
                    f.minutes_before,
                    f.time.0.format("%H:%M"),
                    f.time_zone.0
                ),
            });
        }
        if holding
            && let Some(b) = self.news_blackout.as_ref().filter(|b| b.flatten)
            && let Some(e) = in_blackout(b, news, state.now)
        {
            out.push(Finding {
                rule: Rule::NewsBlackout,
                reason: format!("the news blackout of \"{}\" began", e.title),
            });
        }
        out
    }
}

/// When today's flat-by window begins (flat-by time minus the buffer, in the firm's zone), if
/// `now` is on or after it within the same session — the window ends at the next session
/// open (17:00 Chicago), after which the account may trade again.
fn flat_window_start(f: &FlatBy, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = f.time_zone.0;
    let local = now.with_timezone(&tz);
    let deadline = tz
        .from_local_datetime(&local.date_naive().and_time(f.time.0))
        .earliest()?
        .with_timezone(&Utc);
    let from = deadline - Duration::minutes(i64::from(f.minutes_before));
    // The next session opens at 17:00 Chicago; a window that began before it (and after the
    // previous open) is the current one.
    let chicago = chrono_tz::America::Chicago;
    let open_today = chicago
        .from_local_datetime(
            &now.with_timezone(&chicago)
                .date_naive()
                .and_time(NaiveTime::from_hms_opt(17, 0, 0)?),
        )
        .earliest()?
        .with_timezone(&Utc);
    if now >= open_today && from < open_today {
        // A new session began today after the window: not flat-by time any more.
        return None;
    }
    Some(from)
}

fn in_blackout<'a>(
    b: &NewsBlackout,
    news: &'a [NewsEvent],
    now: DateTime<Utc>,
) -> Option<&'a NewsEvent> {
    news.iter().find(|e| {
        now >= e.at - Duration::minutes(i64::from(b.minutes_before))
            && now <= e.at + Duration::minutes(i64::from(b.minutes_after))
    })
}

/// The built-in presets: a starting point, every value editable per account. Figures as
/// commonly published for 50K accounts; firms change them — check your firm's current rules.
#[must_use]
pub fn presets() -> Vec<(&'static str, RuleSet)> {
    let d = |s: &str| s.parse::<Decimal>().unwrap_or_default();
    let eastern = TimeZone(chrono_tz::America::New_York);
    let central = TimeZone(chrono_tz::America::Chicago);
    let hm = |h, m| ClockTime::hm(h, m).unwrap_or(ClockTime(NaiveTime::MIN));
    vec![
        (
            "topstep-50k",
            RuleSet {
                preset: Some("topstep-50k".into()),
                starting_balance: Some(d("50000")),
                trailing_drawdown: Some(TrailingDrawdown {
                    amount: d("2000"),
                    mode: TrailingMode::EndOfDay,
                    stops_at_offset: Some(Decimal::ZERO),
                    buffer: d("200"),
                }),
                daily_loss: Some(DailyLoss {
                    amount: d("1000"),
                    buffer: d("100"),
                }),
                max_contracts: Some(MaxContracts {
                    per_position: 5,
                    per_order: None,
                    micros_per_contract: 10,
                }),
                flat_by: Some(FlatBy {
                    time: hm(15, 10),
                    time_zone: central,
                    minutes_before: 5,
                }),
                news_blackout: None,
                daily_profit_cap: None,
                automation_allowed: true,
            },
        ),
        (
            "apex-50k",
            RuleSet {
                preset: Some("apex-50k".into()),
                starting_balance: Some(d("50000")),
                trailing_drawdown: Some(TrailingDrawdown {
                    amount: d("2500"),
                    mode: TrailingMode::Intraday,
                    stops_at_offset: Some(d("100")),
                    buffer: d("250"),
                }),
                daily_loss: None,
                max_contracts: Some(MaxContracts {
                    per_position: 10,
                    per_order: None,
                    micros_per_contract: 10,
                }),
                flat_by: Some(FlatBy {
                    time: hm(16, 59),
                    time_zone: eastern,
                    minutes_before: 5,
                }),
                news_blackout: None,
                daily_profit_cap: None,
                automation_allowed: true,
            },
        ),
        (
            "tradeify-50k",
            RuleSet {
                preset: Some("tradeify-50k".into()),
                starting_balance: Some(d("50000")),
                trailing_drawdown: Some(TrailingDrawdown {
                    amount: d("2000"),
                    mode: TrailingMode::EndOfDay,
                    stops_at_offset: Some(d("100")),
                    buffer: d("200"),
                }),
                daily_loss: Some(DailyLoss {
                    amount: d("1250"),
                    buffer: d("125"),
                }),
                max_contracts: Some(MaxContracts {
                    per_position: 4,
                    per_order: None,
                    micros_per_contract: 10,
                }),
                flat_by: Some(FlatBy {
                    time: hm(16, 59),
                    time_zone: eastern,
                    minutes_before: 5,
                }),
                news_blackout: Some(NewsBlackout {
                    minutes_before: 1,
                    minutes_after: 1,
                    flatten: false,
                }),
                daily_profit_cap: None,
                automation_allowed: true,
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rust_decimal_macros::dec;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn state(balance: Decimal, open: Decimal, day: Decimal, mark: Option<Decimal>) -> AccountState {
        AccountState {
            balance,
            open_pnl: open,
            day_pnl: day,
            high_water_mark: mark,
            // Tuesday 10:00 Chicago.
            now: at("2026-12-08T16:00:00Z"),
        }
    }

    fn entry(qty: u32, before: i64) -> EntryCheck {
        EntryCheck {
            micro: false,
            quantity: qty,
            position_before: before,
            buy: true,
            risk_to_stop: None,
            automated: true,
        }
    }

    fn preset(name: &str) -> RuleSet {
        presets().into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn an_intraday_mark_follows_open_equity_and_an_end_of_day_mark_only_the_close() {
        let apex = preset("apex-50k");
        let s = state(dec!(50000), dec!(1200), dec!(1200), None);
        assert_eq!(apex.next_mark(&s, false), Some(dec!(51200)));
        let topstep = preset("topstep-50k");
        assert_eq!(
            topstep.next_mark(&s, false),
            Some(dec!(50000)),
            "open P&L does not move it"
        );
        let closed = state(dec!(51000), dec!(0), dec!(1000), None);
        assert_eq!(topstep.next_mark(&closed, true), Some(dec!(51000)));
    }

    #[test]
    fn the_floor_trails_the_mark_and_stops_at_the_firms_level() {
        let apex = preset("apex-50k");
        let s = state(dec!(50000), dec!(0), dec!(0), Some(dec!(51000)));
        assert_eq!(apex.drawdown_floor(&s), Some(dec!(48500)));
        // The floor never rises above start + 100.
        let s = state(dec!(55000), dec!(0), dec!(0), Some(dec!(56000)));
        assert_eq!(apex.drawdown_floor(&s), Some(dec!(50100)));
    }

    #[test]
    fn the_platform_acts_at_the_buffer_before_the_trailing_floor() {
        let apex = preset("apex-50k");
        // Mark 51,000 → floor 48,500, buffer 250 → acts at 48,750.
        let ok = state(dec!(50000), dec!(-1249), dec!(-1249), Some(dec!(51000)));
        assert!(apex.check_open(&ok, true, &[]).is_empty());
        let at_buffer = state(dec!(50000), dec!(-1250), dec!(-1250), Some(dec!(51000)));
        let f = apex.check_open(&at_buffer, true, &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, Rule::TrailingDrawdown);
        assert!(f[0].reason.contains("$48750"), "{}", f[0].reason);
        let d = apex.distances(&ok);
        assert_eq!(d[0].remaining, dec!(1));
    }

    #[test]
    fn the_daily_loss_acts_at_its_buffer_and_refuses_entries_inside_it() {
        let t = preset("topstep-50k");
        // Limit 1,000, buffer 100: acts at −900.
        let s = state(dec!(49100), dec!(0), dec!(-900), None);
        let f = t.check_open(&s, true, &[]);
        assert!(f.iter().any(|f| f.rule == Rule::DailyLoss), "{f:?}");
        let r = t.check_entry(&s, &entry(1, 0), &[]).unwrap_err();
        assert_eq!(r.rule, Rule::DailyLoss);
        assert!(
            r.reason.contains("−$900") && r.reason.contains("−$1000"),
            "{}",
            r.reason
        );
        let fine = state(dec!(49500), dec!(0), dec!(-500), None);
        assert!(t.check_entry(&fine, &entry(1, 0), &[]).is_ok());
    }

    #[test]
    fn an_entry_whose_stop_would_land_inside_the_buffer_is_refused() {
        let t = preset("topstep-50k");
        let s = state(dec!(49500), dec!(0), dec!(-500), None);
        let mut e = entry(1, 0);
        e.risk_to_stop = Some(dec!(450));
        let r = t.check_entry(&s, &e, &[]).unwrap_err();
        assert_eq!(r.rule, Rule::DailyLoss);
        assert!(r.reason.contains("at the order's stop"), "{}", r.reason);
        e.risk_to_stop = Some(dec!(350));
        assert!(t.check_entry(&s, &e, &[]).is_ok());
    }

    #[test]
    fn contracts_are_counted_as_the_firm_counts_micros() {
        let t = preset("topstep-50k"); // 5 contracts, 10 micros each.
        let s = state(dec!(50000), dec!(0), dec!(0), None);
        assert!(t.check_entry(&s, &entry(5, 0), &[]).is_ok());
        let r = t.check_entry(&s, &entry(2, 4), &[]).unwrap_err();
        assert_eq!(r.rule, Rule::MaxPosition);
        assert!(r.reason.contains("6 contracts"), "{}", r.reason);
        let mut micros = entry(50, 0);
        micros.micro = true;
        assert!(t.check_entry(&s, &micros, &[]).is_ok(), "50 micros = 5");
        micros.quantity = 51;
        assert_eq!(
            t.check_entry(&s, &micros, &[]).unwrap_err().rule,
            Rule::MaxPosition
        );
        // Reducing a position is never refused for size.
        let mut sell = entry(3, 5);
        sell.buy = false;
        assert!(t.check_entry(&s, &sell, &[]).is_ok());
    }

    #[test]
    fn flat_by_refuses_entries_and_flattens_from_its_buffer_until_the_next_session() {
        let t = preset("topstep-50k"); // 15:10 Chicago, 5 minutes before.
        let mut s = state(dec!(50000), dec!(0), dec!(0), None);
        s.now = at("2026-12-08T21:04:00Z"); // 15:04 Chicago (CST = UTC−6)
        assert!(t.check_entry(&s, &entry(1, 0), &[]).is_ok());
        assert!(t.check_open(&s, true, &[]).is_empty());
        s.now = at("2026-12-08T21:05:00Z"); // 15:05
        assert_eq!(
            t.check_entry(&s, &entry(1, 0), &[]).unwrap_err().rule,
            Rule::FlatBy
        );
        assert_eq!(t.check_open(&s, true, &[])[0].rule, Rule::FlatBy);
        assert!(
            t.check_open(&s, false, &[]).is_empty(),
            "nothing to flatten when flat"
        );
        s.now = at("2026-12-08T23:01:00Z"); // 17:01: the next session
        assert!(t.check_entry(&s, &entry(1, 0), &[]).is_ok());
    }

    #[test]
    fn an_entry_inside_a_news_window_is_refused_with_the_event() {
        let t = preset("tradeify-50k"); // 1 minute either side.
        let s = state(dec!(50000), dec!(0), dec!(0), None);
        let news = [NewsEvent {
            at: s.now + Duration::seconds(30),
            title: "CPI".into(),
        }];
        let r = t.check_entry(&s, &entry(1, 0), &news).unwrap_err();
        assert_eq!(r.rule, Rule::NewsBlackout);
        assert!(r.reason.contains("CPI"));
        let later = [NewsEvent {
            at: s.now + Duration::minutes(5),
            title: "CPI".into(),
        }];
        assert!(t.check_entry(&s, &entry(1, 0), &later).is_ok());
        assert!(
            t.check_open(&s, true, &news).is_empty(),
            "this preset does not flatten"
        );
    }

    #[test]
    fn the_profit_cap_stops_entries_and_automation_is_refused_when_the_firm_forbids_it() {
        let mut t = preset("topstep-50k");
        t.daily_profit_cap = Some(ProfitCap { amount: dec!(1500) });
        let s = state(dec!(51500), dec!(0), dec!(1500), None);
        assert_eq!(
            t.check_entry(&s, &entry(1, 0), &[]).unwrap_err().rule,
            Rule::DailyProfitCap
        );
        t.daily_profit_cap = None;
        t.automation_allowed = false;
        let r = t.check_entry(&s, &entry(1, 0), &[]).unwrap_err();
        assert_eq!(r.rule, Rule::Automation);
        let mut manual = entry(1, 0);
        manual.automated = false;
        assert!(t.check_entry(&s, &manual, &[]).is_ok());
    }

    #[test]
    fn a_rule_set_reads_back_from_json_with_defaults() {
        let t = preset("apex-50k");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<RuleSet>(&json).unwrap(), t);
        let empty: RuleSet = serde_json::from_str("{}").unwrap();
        assert!(
            empty.automation_allowed,
            "automation is allowed unless said otherwise"
        );
        assert!(
            empty
                .check_open(&state(dec!(0), dec!(0), dec!(0), None), true, &[])
                .is_empty()
        );
    }
}
