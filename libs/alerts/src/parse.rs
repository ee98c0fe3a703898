//! Alert body → [`Signal`] (DOMAIN.md §2). The accepted fields, synonyms and mapping are
//! documented for operators in `docs/alerts.md`; keep the two in step.

use chrono::{DateTime, NaiveDateTime, Utc};
use jt_domain::signal::SignalAction;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::value::RawValue;

use crate::error::{AlertError, excerpt};
use crate::json::{Field, RawObject, json_type, placeholder_in_text};
use crate::position::{self, Reported, Verb, normalize_word};
use crate::risk;
use crate::signal::{MarketPosition, PositionChange, Signal, resolve_symbol};

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
/// The action: the first of these that is not empty.
const ACTION_FIELDS: &[&str] = &[
    "action",
    "order_action",
    "side",
    "signal",
    "direction",
    "data",
];
/// Read as the action only when their value is an action word (else `order_type` is the
/// entry's order type).
const ACTION_IF_WORD_FIELDS: &[&str] = &["order_type", "type"];
const TICKER_FIELDS: &[&str] = &["ticker", "symbol", "instrument", "tv_instrument"];
const QUANTITY_FIELDS: &[&str] = &["contracts", "quantity", "qty", "size", "order.amount"];
const PRICE_FIELDS: &[&str] = &["price", "close", "last", "signalPrice", "trigger_price"];
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
/// Signed (TradingView's `{{strategy.position_size}}`: > 0 long, < 0 short).
const POSITION_SIZE_FIELDS: &[&str] = &["position_size"];
const PREV_POSITION_SIZE_FIELDS: &[&str] = &["prev_position_size"];
/// Absolute (`{{strategy.market_position_size}}`), signed by the market position.
const MARKET_POSITION_SIZE_FIELDS: &[&str] =
    &["market_position_size", "strategy_info.market_position_size"];
const PREV_MARKET_POSITION_SIZE_FIELDS: &[&str] = &[
    "prev_market_position_size",
    "strategy_info.prev_market_position_size",
];
const TIME_FIELDS: &[&str] = &["time", "timenow", "timestamp", "date"];
const COMMENT_FIELDS: &[&str] = &["comment"];
const DELAY_FIELDS: &[&str] = &["delay"];
const MAX_LAG_FIELDS: &[&str] = &["max_lag"];
/// Every field a trade alert is read from (the unknown-field rule skips them at once).
const KNOWN_FIELDS: &[&[&str]] = &[
    ACTION_FIELDS,
    ACTION_IF_WORD_FIELDS,
    TICKER_FIELDS,
    QUANTITY_FIELDS,
    PRICE_FIELDS,
    POSITION_FIELDS,
    PREV_POSITION_FIELDS,
    POSITION_SIZE_FIELDS,
    PREV_POSITION_SIZE_FIELDS,
    MARKET_POSITION_SIZE_FIELDS,
    PREV_MARKET_POSITION_SIZE_FIELDS,
    TIME_FIELDS,
    COMMENT_FIELDS,
    DELAY_FIELDS,
    MAX_LAG_FIELDS,
    risk::TAKE_PROFIT_FIELDS,
    risk::TP_TICKS_FIELDS,
    risk::DOLLAR_TP_FIELDS,
    risk::PERCENT_TP_FIELDS,
    risk::STOP_LOSS_FIELDS,
    risk::SL_TICKS_FIELDS,
    risk::DOLLAR_SL_FIELDS,
    risk::PERCENT_SL_FIELDS,
    risk::TRAIL_STOP_FIELDS,
    risk::TRAIL_FIELDS,
    risk::TRAIL_TRIGGER_FIELDS,
    risk::TRAIL_FREQ_FIELDS,
    risk::BREAKEVEN_FIELDS,
    risk::BREAKEVEN_OFFSET_FIELDS,
    risk::RISK_DOLLARS_FIELDS,
    risk::RISK_PERCENT_FIELDS,
    risk::SAME_DIRECTION_IGNORE_FIELDS,
    risk::ORDER_TYPE_FIELDS,
    risk::LIMIT_PRICE_FIELDS,
    risk::STOP_PRICE_FIELDS,
    risk::TIME_IN_FORCE_FIELDS,
];

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
        position_size: None,
        prev_position_size: None,
        change: None,
        exit_fraction: None,
        entry_order: None,
        risk: crate::signal::AlertRisk::default(),
    })
}

fn trade_signal(object: &RawObject<'_>, ctx: &AlertContext<'_>) -> Result<Signal, AlertError> {
    let verb = read_verb(object)?;
    let position_field = object.first(POSITION_FIELDS)?;
    let position = position_field.as_ref().map(parse_position).transpose()?;
    let prev_field = object.first(PREV_POSITION_FIELDS)?;
    let prev_position = prev_field.as_ref().map(parse_position).transpose()?;
    let after = position::held(
        position,
        sized(object, POSITION_SIZE_FIELDS, parse_signed_size)?
            .as_ref()
            .map(|(d, p)| (*d, p.as_str())),
        sized(object, MARKET_POSITION_SIZE_FIELDS, parse_quantity)?
            .as_ref()
            .map(|(d, p)| (*d, p.as_str())),
        position_field
            .as_ref()
            .map_or("market_position", |f| f.path.as_str()),
    )?;
    let before = position::held(
        prev_position,
        sized(object, PREV_POSITION_SIZE_FIELDS, parse_signed_size)?
            .as_ref()
            .map(|(d, p)| (*d, p.as_str())),
        sized(object, PREV_MARKET_POSITION_SIZE_FIELDS, parse_quantity)?
            .as_ref()
            .map(|(d, p)| (*d, p.as_str())),
        prev_field
            .as_ref()
            .map_or("prev_market_position", |f| f.path.as_str()),
    )?;
    let quantity = optional(object, QUANTITY_FIELDS, parse_quantity)?;
    let interpreted = position::interpret(&Reported {
        verb: verb.as_ref().map(|(v, _)| *v),
        after,
        before,
        contracts: quantity,
    })?;
    let mut action = interpreted.action;
    let mut change = interpreted.change;
    let (mut size_after, mut size_before) = (interpreted.size_after, interpreted.size_before);
    if ctx.inverse {
        action = action.inverted();
        change = change.map(PositionChange::inverted);
        size_after = size_after.map(|s| -s);
        size_before = size_before.map(|s| -s);
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

    let take_profit = risk::take_profit(object)?;
    let (stop_loss, trail) = risk::stop_and_trail(object)?;
    let alert_risk = risk::alert_risk(object, trail)?;
    let entry_order = risk::entry_order(object, verb.as_ref().map(|(_, field)| field.as_str()))?;
    if entry_order.is_some() && action.entry_direction().is_none() {
        let field = object
            .first(risk::ORDER_TYPE_FIELDS)?
            .map_or_else(|| "orderType".to_string(), |f| f.path.clone());
        return Err(AlertError::InvalidField {
            field,
            value: format!("a resting order on a {} alert", action.as_str()),
            expected: "jt sends exits at market; a limit or stop order type applies to entries \
                       only: leave the order type out of exit alerts"
                .into(),
        });
    }
    risk::refuse_unknown_risk_fields(object, KNOWN_FIELDS)?;

    Ok(Signal {
        action,
        ticker,
        symbol: Some(symbol),
        instrument: Some(instrument),
        quantity,
        price: optional(object, PRICE_FIELDS, parse_price)?,
        time: optional(object, TIME_FIELDS, parse_time)?,
        position: position.map(invert),
        prev_position: prev_position.map(invert),
        comment: optional(object, COMMENT_FIELDS, |f| f.text())?,
        delay_secs: optional(object, DELAY_FIELDS, parse_delay)?.unwrap_or(0),
        max_lag_secs: optional(object, MAX_LAG_FIELDS, parse_max_lag)?,
        take_profit,
        stop_loss,
        inverted: ctx.inverse,
        position_size: size_after,
        prev_position_size: size_before,
        change,
        exit_fraction: interpreted.fraction,
        entry_order,
        risk: alert_risk,
    })
}

/// The action word: the first non-empty field of [`ACTION_FIELDS`], else an action word in
/// `order_type`/`type`; with the field it came from.
fn read_verb(object: &RawObject<'_>) -> Result<Option<(Verb, String)>, AlertError> {
    for name in ACTION_FIELDS {
        let Some(field) = object.first(&[name])? else {
            continue;
        };
        let word = field.text()?;
        if word.trim().is_empty() {
            continue;
        }
        return match Verb::from_word(&word) {
            Some(verb) => Ok(Some((verb, field.path))),
            None => Err(AlertError::UnknownAction {
                field: field.path.clone(),
                value: excerpt(&word),
            }),
        };
    }
    for name in ACTION_IF_WORD_FIELDS {
        if let Some(field) = object.first(&[name])?
            && let Ok(word) = field.text()
            && let Some(verb) = Verb::from_word(&word)
        {
            return Ok(Some((verb, field.path)));
        }
    }
    Ok(None)
}

/// A size field read with `read`, with its path.
fn sized(
    object: &RawObject<'_>,
    names: &[&str],
    read: fn(&Field<'_>) -> Result<Decimal, AlertError>,
) -> Result<Option<(Decimal, String)>, AlertError> {
    object
        .first(names)?
        .map(|f| Ok((read(&f)?, f.path.clone())))
        .transpose()
}

fn parse_signed_size(field: &Field<'_>) -> Result<Decimal, AlertError> {
    field.decimal(
        "the strategy's signed position size, such as 2, -1 or 0 (TradingView's \
         {{strategy.position_size}})",
    )
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

#[cfg(test)]
mod tests;
