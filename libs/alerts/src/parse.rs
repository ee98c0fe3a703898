//! Alert body → [`Signal`] (DOMAIN.md §2). The accepted fields, synonyms and mapping are
//! documented for operators in `docs/alerts.md`; keep the two in step.

use chrono::{DateTime, NaiveDateTime, Utc};
use jt_domain::settings::{PriceUnits, StopType};
use jt_domain::signal::SignalAction;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::value::RawValue;

use crate::error::{AlertError, excerpt};
use crate::json::{Field, RawObject, json_type, placeholder_in_text};
use crate::signal::{ExitLevel, MarketPosition, Signal, StopOverride, resolve_symbol};

/// The largest body accepted (64 KiB); larger bodies are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest per-alert `delay`, in seconds.
pub const MAX_DELAY_SECS: u32 = 60;
/// The longest per-alert `max_lag`, in seconds (one day).
pub const MAX_LAG_LIMIT_SECS: u32 = 86_400;

/// What the ingest knows about the recorder an alert was sent to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertContext<'a> {
    /// The recorder's symbol: used when the alert has no ticker.
    pub recorder_symbol: Option<&'a str>,
    /// The recorder's `custom_ticker`: traded instead of the alert's ticker, which then need
    /// not be a known instrument (a trader's own `custom_ticker` is applied later with
    /// [`Signal::retarget`]).
    pub custom_ticker: Option<&'a str>,
    /// The recorder's `inverse_strategy`: swap buy ↔ sell and long ↔ short.
    pub inverse: bool,
}

const COMMAND_FIELDS: &[&str] = &["command"];
const ACTION_FIELDS: &[&str] = &["action", "data"];
const TICKER_FIELDS: &[&str] = &["ticker", "symbol", "tv_instrument"];
const QUANTITY_FIELDS: &[&str] = &["contracts", "quantity", "qty", "order.amount"];
const PRICE_FIELDS: &[&str] = &["price", "signalPrice", "trigger_price"];
const POSITION_FIELDS: &[&str] = &[
    "position",
    "market_position",
    "sentiment",
    "strategy_info.market_position",
];
const PREV_POSITION_FIELDS: &[&str] = &[
    "prev_position",
    "prev_market_position",
    "strategy_info.prev_market_position",
];
const TIME_FIELDS: &[&str] = &["time", "timenow", "timestamp", "date"];
const COMMENT_FIELDS: &[&str] = &["comment"];
const DELAY_FIELDS: &[&str] = &["delay"];
const MAX_LAG_FIELDS: &[&str] = &["max_lag"];
const TAKE_PROFIT_FIELDS: &[&str] = &["tp", "take_profit", "takeProfit"];
const STOP_LOSS_FIELDS: &[&str] = &["sl", "stop_loss", "stopLoss"];

/// Parses a webhook body into a [`Signal`].
///
/// Accepts JSON whatever the content type said, the synonyms of TradingView templates and of
/// TradersPost, 3Commas and PickMyTrade, any case in words and field names; ignores unknown
/// fields; never panics, whatever the bytes.
///
/// # Errors
/// An [`AlertError`] whose [`AlertError::http_status`] is the webhook's answer and whose text
/// tells the sender what to fix.
pub fn parse_alert(body: &[u8], ctx: &AlertContext<'_>) -> Result<Signal, AlertError> {
    let text = read_body(body)?;
    let object = RawObject::parse(text).map_err(|e| invalid_json(&e))?;
    if let Some(command) = object.first(COMMAND_FIELDS)? {
        return control_signal(&object, &command);
    }
    trade_signal(&object, ctx)
}

/// Size, encoding and JSON checks: the text of a body that is one JSON object.
fn read_body(body: &[u8]) -> Result<&str, AlertError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(AlertError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let (skipped, body) = match body.strip_prefix(BOM) {
        Some(rest) => (BOM.len(), rest),
        None => (0, body),
    };
    let text = std::str::from_utf8(body).map_err(|e| AlertError::NotUtf8 {
        offset: skipped + e.valid_up_to(),
    })?;
    if text.trim().is_empty() {
        return Err(AlertError::InvalidJson {
            detail: "the body is empty".to_string(),
            line: 0,
            column: 0,
        });
    }
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) if json_type(raw) == "object" => Ok(text),
        Ok(raw) => Err(AlertError::NotAnObject {
            found: json_type(raw),
        }),
        Err(e) => Err(match placeholder_in_text(text) {
            Some((field, placeholder)) => AlertError::Placeholder { field, placeholder },
            None => invalid_json(&e),
        }),
    }
}

fn invalid_json(e: &serde_json::Error) -> AlertError {
    AlertError::InvalidJson {
        detail: e.to_string(),
        line: e.line(),
        column: e.column(),
    }
}

/// `{"command": "flatten" | "kill" | "resume"}`.
fn control_signal(object: &RawObject<'_>, command: &Field<'_>) -> Result<Signal, AlertError> {
    let word = command.text()?;
    let action = match normalize_word(&word).as_str() {
        "flatten" => SignalAction::Flatten,
        "kill" => SignalAction::Kill,
        "resume" => SignalAction::Resume,
        _ => {
            return Err(AlertError::UnknownCommand {
                value: excerpt(&word),
            });
        }
    };
    Ok(Signal {
        action,
        ticker: None,
        symbol: None,
        instrument: None,
        quantity: None,
        price: None,
        time: optional(object, TIME_FIELDS, parse_time)?,
        position: None,
        prev_position: None,
        comment: optional(object, COMMENT_FIELDS, |f| f.text())?,
        delay_secs: 0,
        max_lag_secs: optional(object, MAX_LAG_FIELDS, parse_max_lag)?,
        take_profit: None,
        stop_loss: None,
        inverted: false,
    })
}

fn trade_signal(object: &RawObject<'_>, ctx: &AlertContext<'_>) -> Result<Signal, AlertError> {
    let action_field = object
        .first(ACTION_FIELDS)?
        .ok_or(AlertError::MissingAction)?;
    let word = action_field.text()?;
    let verb = Verb::from_word(&word).ok_or_else(|| AlertError::UnknownAction {
        field: action_field.path.clone(),
        value: excerpt(&word),
    })?;
    let position = optional(object, POSITION_FIELDS, parse_position)?;
    let prev_position = optional(object, PREV_POSITION_FIELDS, parse_position)?;
    let mut action = verb.interpret(position)?;
    if ctx.inverse {
        action = action.inverted();
    }
    let invert = |p: MarketPosition| if ctx.inverse { p.inverted() } else { p };

    let ticker = optional(object, TICKER_FIELDS, |f| f.text())?
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let symbol = non_empty(ctx.custom_ticker)
        .or(ticker.as_deref())
        .or(non_empty(ctx.recorder_symbol))
        .ok_or(AlertError::MissingTicker)?
        .to_string();
    let instrument = resolve_symbol(&symbol)?;

    Ok(Signal {
        action,
        ticker,
        symbol: Some(symbol),
        instrument: Some(instrument),
        quantity: optional(object, QUANTITY_FIELDS, parse_quantity)?,
        price: optional(object, PRICE_FIELDS, parse_price)?,
        time: optional(object, TIME_FIELDS, parse_time)?,
        position: position.map(invert),
        prev_position: prev_position.map(invert),
        comment: optional(object, COMMENT_FIELDS, |f| f.text())?,
        delay_secs: optional(object, DELAY_FIELDS, parse_delay)?.unwrap_or(0),
        max_lag_secs: optional(object, MAX_LAG_FIELDS, parse_max_lag)?,
        take_profit: optional(object, TAKE_PROFIT_FIELDS, |f| {
            parse_exit(f, Exit::TakeProfit)
        })?
        .flatten()
        .map(|(level, _)| level),
        stop_loss: optional(object, STOP_LOSS_FIELDS, |f| parse_exit(f, Exit::StopLoss))?
            .flatten()
            .map(|(level, stop_type)| StopOverride { level, stop_type }),
        inverted: ctx.inverse,
    })
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Reads the first present synonym of `names` with `read`.
fn optional<T>(
    object: &RawObject<'_>,
    names: &[&str],
    read: impl FnOnce(&Field<'_>) -> Result<T, AlertError>,
) -> Result<Option<T>, AlertError> {
    object.first(names)?.map(|f| read(&f)).transpose()
}

/// Lower case, trimmed, spaces and dashes as underscores: `Close Long` → `close_long`.
fn normalize_word(word: &str) -> String {
    word.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

/// What the alert's action word asks, before the position field is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Buy,
    Sell,
    Close,
    CloseLong,
    CloseShort,
    Cancel,
    Add,
}

impl Verb {
    fn from_word(word: &str) -> Option<Self> {
        Some(match normalize_word(word).as_str() {
            "buy" | "long" | "enter_long" => Verb::Buy,
            "sell" | "short" | "enter_short" => Verb::Sell,
            "close" | "exit" | "flatten" => Verb::Close,
            "close_long" | "exit_long" => Verb::CloseLong,
            "close_short" | "exit_short" => Verb::CloseShort,
            "cancel" => Verb::Cancel,
            "add" => Verb::Add,
            _ => return None,
        })
    }

    /// The position → action mapping of DOMAIN.md §2 (before `inverse_strategy`).
    fn interpret(self, position: Option<MarketPosition>) -> Result<SignalAction, AlertError> {
        use MarketPosition::{Flat, Long, Short};
        Ok(match (self, position) {
            (Verb::Buy, None | Some(Long)) => SignalAction::Long,
            (Verb::Sell, None | Some(Short)) => SignalAction::Short,
            (Verb::Buy, Some(Flat)) => SignalAction::CloseShort,
            (Verb::Sell, Some(Flat)) => SignalAction::CloseLong,
            (Verb::Buy, Some(Short)) => {
                return Err(AlertError::PartialExit {
                    action: "buy",
                    position: "short",
                });
            }
            (Verb::Sell, Some(Long)) => {
                return Err(AlertError::PartialExit {
                    action: "sell",
                    position: "long",
                });
            }
            (Verb::Close, _) => SignalAction::Close,
            (Verb::CloseLong, _) => SignalAction::CloseLong,
            (Verb::CloseShort, _) => SignalAction::CloseShort,
            (Verb::Cancel, _) => SignalAction::Cancel,
            (Verb::Add, Some(Long)) => SignalAction::Long,
            (Verb::Add, Some(Short)) => SignalAction::Short,
            (Verb::Add, None | Some(Flat)) => return Err(AlertError::AddWithoutDirection),
        })
    }
}

fn parse_position(field: &Field<'_>) -> Result<MarketPosition, AlertError> {
    let word = field.text()?;
    match normalize_word(&word).as_str() {
        "long" | "bullish" => Ok(MarketPosition::Long),
        "short" | "bearish" => Ok(MarketPosition::Short),
        "flat" => Ok(MarketPosition::Flat),
        _ => Err(AlertError::UnknownPosition {
            field: field.path.clone(),
            value: excerpt(&word),
        }),
    }
}

fn parse_quantity(field: &Field<'_>) -> Result<Decimal, AlertError> {
    const EXPECTED: &str = "a number of contracts of 0 or more, such as 2 or \"2\"";
    let quantity = field.decimal(EXPECTED)?;
    if quantity.is_sign_negative() && !quantity.is_zero() {
        return Err(field.error(EXPECTED));
    }
    Ok(quantity.abs())
}

fn parse_price(field: &Field<'_>) -> Result<Decimal, AlertError> {
    const EXPECTED: &str = "a positive price such as 21433.25 or \"21433.25\"";
    let price = field.decimal(EXPECTED)?;
    if price <= Decimal::ZERO {
        return Err(field.error(EXPECTED));
    }
    Ok(price)
}

/// A whole number of seconds in `range`, as a number or numeric string.
fn parse_seconds(
    field: &Field<'_>,
    range: std::ops::RangeInclusive<u32>,
    expected: &str,
) -> Result<u32, AlertError> {
    let value = field.decimal(expected)?;
    value
        .fract()
        .is_zero()
        .then(|| value.to_u32())
        .flatten()
        .filter(|s| range.contains(s))
        .ok_or_else(|| field.error(expected))
}

fn parse_delay(field: &Field<'_>) -> Result<u32, AlertError> {
    parse_seconds(
        field,
        0..=MAX_DELAY_SECS,
        "whole seconds from 0 to 60 to wait before executing",
    )
}

fn parse_max_lag(field: &Field<'_>) -> Result<u32, AlertError> {
    parse_seconds(
        field,
        1..=MAX_LAG_LIMIT_SECS,
        "whole seconds from 1 to 86400: how old the alert may be when it executes",
    )
}

/// ISO-8601 (RFC 3339 with `Z` or an offset; without a zone it is taken as UTC), or Unix
/// seconds / milliseconds.
fn parse_time(field: &Field<'_>) -> Result<DateTime<Utc>, AlertError> {
    const EXPECTED: &str = "an ISO-8601 UTC time such as 2026-01-05T14:30:00Z (TradingView's \
                            {{timenow}}), or Unix seconds or milliseconds";
    let text = field.text()?;
    let t = text.trim();
    let invalid = || field.error(EXPECTED);
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t.parse().map_err(|_| invalid())?;
        // Eleven digits of seconds reach the year 5138; more digits are milliseconds.
        let time = if t.len() <= 11 {
            DateTime::from_timestamp(n, 0)
        } else {
            DateTime::from_timestamp_millis(n)
        };
        return time.ok_or_else(invalid);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        return Ok(time.to_utc());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(time) = DateTime::parse_from_str(t, format) {
            return Ok(time.to_utc());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(time.and_utc());
        }
    }
    Err(invalid())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    TakeProfit,
    StopLoss,
}

/// A per-alert take-profit or stop: a number (a distance in the trader's units) or an object
/// (ours: `ticks`/`points`/`percent`/`price`/`value`+`units`; TradersPost's: `limitPrice`,
/// `stopPrice`, `amount`, `percent`, `trailAmount`, `trailPercent`, `type`). A value of 0
/// means "not set": the trader's settings apply (PickMyTrade templates send `"tp": 0`).
fn parse_exit(
    field: &Field<'_>,
    exit: Exit,
) -> Result<Option<(ExitLevel, Option<StopType>)>, AlertError> {
    if field.json_type() != "object" {
        let value = field.decimal(
            "a distance of 0 or more in your configured units, or an object such as \
             {\"ticks\": 20}",
        )?;
        return Ok(non_negative(field, value)?
            .map(|value| (ExitLevel::Distance { value, units: None }, None::<StopType>)));
    }
    let object = field.object()?;
    let stop_type = match exit {
        Exit::StopLoss => object
            .first(&["type"])?
            .map(|f| parse_stop_type(&f))
            .transpose()?,
        Exit::TakeProfit => None,
    };
    if exit == Exit::TakeProfit
        && let Some(pnl) = object.first(&["pnlAmount"])?
    {
        return Err(pnl.error(
            "not supported: give the take-profit as ticks, points (amount), percent or price",
        ));
    }
    let units = object
        .first(&["units", "unit"])?
        .map(|f| parse_units(&f))
        .transpose()?;
    let mut table = vec![
        ("ticks", Level::Distance(Some(PriceUnits::Ticks)), false),
        ("points", Level::Distance(Some(PriceUnits::Points)), false),
        ("amount", Level::Distance(Some(PriceUnits::Points)), false),
        ("percent", Level::Distance(Some(PriceUnits::Percent)), false),
        ("value", Level::Distance(units), false),
        ("price", Level::Price, false),
    ];
    match exit {
        Exit::TakeProfit => table.push(("limitPrice", Level::Price, false)),
        Exit::StopLoss => table.extend([
            ("stopPrice", Level::Price, false),
            (
                "trailAmount",
                Level::Distance(Some(PriceUnits::Points)),
                true,
            ),
            (
                "trailPercent",
                Level::Distance(Some(PriceUnits::Percent)),
                true,
            ),
        ]),
    }
    let mut given = Vec::new();
    for (name, level, trailing) in table {
        if let Some(f) = object.first(&[name])? {
            given.push((f, level, trailing));
        }
    }
    let what = match exit {
        Exit::TakeProfit => "take-profit",
        Exit::StopLoss => "stop",
    };
    if given.len() > 1 {
        let names: Vec<_> = given.iter().map(|(f, _, _)| f.path.as_str()).collect();
        return Err(field.error(format!(
            "the {what} gives {}: give exactly one",
            names.join(" and ")
        )));
    }
    let Some((level_field, level, trailing)) = given.pop() else {
        return Err(field.error(format!(
            "the {what} needs one of ticks, points, amount, percent, value (with units) or price"
        )));
    };
    let value = level_field.decimal("a number of 0 or more, such as 20 or \"20\"")?;
    let Some(value) = non_negative(&level_field, value)? else {
        return Ok(None);
    };
    let level = match level {
        Level::Distance(units) => ExitLevel::Distance { value, units },
        Level::Price => ExitLevel::Price { price: value },
    };
    let stop_type = if trailing {
        Some(StopType::Trailing)
    } else {
        stop_type
    };
    Ok(Some((level, stop_type)))
}

/// The kind of value an exit field gives.
#[derive(Debug, Clone, Copy)]
enum Level {
    Distance(Option<PriceUnits>),
    Price,
}

/// `Some(value)` for a positive value, `None` for 0 ("not set"), an error when negative.
fn non_negative(field: &Field<'_>, value: Decimal) -> Result<Option<Decimal>, AlertError> {
    if value.is_zero() {
        Ok(None)
    } else if value.is_sign_negative() {
        Err(field.error("a number of 0 or more (0 = use the trader's settings)"))
    } else {
        Ok(Some(value))
    }
}

fn parse_units(field: &Field<'_>) -> Result<PriceUnits, AlertError> {
    match normalize_word(&field.text()?).as_str() {
        "ticks" | "tick" => Ok(PriceUnits::Ticks),
        "points" | "point" => Ok(PriceUnits::Points),
        "percent" | "%" => Ok(PriceUnits::Percent),
        _ => Err(field.error("ticks, points or percent")),
    }
}

fn parse_stop_type(field: &Field<'_>) -> Result<StopType, AlertError> {
    match normalize_word(&field.text()?).as_str() {
        // A stop-limit is placed as a plain stop: a stop that may not fill is no protection.
        "stop" | "fixed" | "stop_limit" => Ok(StopType::Fixed),
        "trailing" | "trailing_stop" | "trail" => Ok(StopType::Trailing),
        _ => Err(field.error("stop, fixed, stop_limit, trailing or trailing_stop")),
    }
}

#[cfg(test)]
mod tests;
