//! The alert's risk instructions and order type: take-profit and stop in every dialect (ticks,
//! the trader's units, dollars, percent, price levels), trailing, break-even, risk sizing,
//! `same_direction_ignore`, limit / stop / stop-limit entries — and the rule for fields we do
//! not understand: a field whose name says it is a risk instruction is honoured or refused
//! (422, naming it and what to write instead), never silently dropped.
//!
//! A value of 0 (or `false`, `""`) means "not set" everywhere: the peers' templates send every
//! field they know, unused ones as 0 (PickMyTrade: `"dollar_tp": 0`).

use jt_domain::order::TimeInForce;
use jt_domain::settings::{PriceUnits, StopType};
use rust_decimal::Decimal;

use crate::error::AlertError;
use crate::json::{Field, RawObject, raw_is_unset};
use crate::position::normalize_word;
use crate::signal::{
    AlertRisk, BreakEvenOverride, EntryKind, EntryOrderSpec, ExitLevel, RiskSizing, StopOverride,
    TrailOverride,
};

/// Take-profit in the trader's units (a number) or an object (`{"ticks": 20}`, TradersPost's
/// `{"limitPrice": …}`).
pub(crate) const TAKE_PROFIT_FIELDS: &[&str] = &["tp", "take_profit", "takeProfit"];
/// Take-profit in ticks.
pub(crate) const TP_TICKS_FIELDS: &[&str] = &["tp_ticks"];
/// Take-profit in dollars per contract.
pub(crate) const DOLLAR_TP_FIELDS: &[&str] = &["dollar_tp", "tp_dollar", "tp_dollars"];
/// Take-profit in percent of the entry price.
pub(crate) const PERCENT_TP_FIELDS: &[&str] = &["percentage_tp", "tp_percent", "tp_percentage"];
/// Stop in the trader's units or an object.
pub(crate) const STOP_LOSS_FIELDS: &[&str] = &["sl", "stop_loss", "stopLoss"];
/// Stop in ticks.
pub(crate) const SL_TICKS_FIELDS: &[&str] = &["sl_ticks"];
/// Stop in dollars per contract.
pub(crate) const DOLLAR_SL_FIELDS: &[&str] = &["dollar_sl", "sl_dollar", "sl_dollars"];
/// Stop in percent of the entry price.
pub(crate) const PERCENT_SL_FIELDS: &[&str] = &["percentage_sl", "sl_percent", "sl_percentage"];
/// A trailing stop's distance in ticks (PickMyTrade).
pub(crate) const TRAIL_STOP_FIELDS: &[&str] = &["trail_stop"];
/// Trailing on/off.
pub(crate) const TRAIL_FIELDS: &[&str] = &["trail"];
/// Ticks of profit before trailing starts.
pub(crate) const TRAIL_TRIGGER_FIELDS: &[&str] = &["trail_trigger"];
/// Trailing step in ticks.
pub(crate) const TRAIL_FREQ_FIELDS: &[&str] = &["trail_freq", "trail_frequency"];
/// Break-even trigger in ticks.
pub(crate) const BREAKEVEN_FIELDS: &[&str] = &[
    "breakeven",
    "break_even",
    "breakeven_ticks",
    "break_even_ticks",
];
/// Break-even offset in ticks.
pub(crate) const BREAKEVEN_OFFSET_FIELDS: &[&str] =
    &["breakeven_offset", "break_even_offset", "breakevenOffset"];
/// Dollars at risk.
pub(crate) const RISK_DOLLARS_FIELDS: &[&str] = &["risk_dollars", "risk_amount"];
/// Percent of the balance at risk.
pub(crate) const RISK_PERCENT_FIELDS: &[&str] = &["risk_percentage", "risk", "risk_percent"];
/// `same_direction_ignore` for this alert.
pub(crate) const SAME_DIRECTION_IGNORE_FIELDS: &[&str] = &["same_direction_ignore"];
/// The entry's order type (an action word in `order_type`/`type` is the action instead).
pub(crate) const ORDER_TYPE_FIELDS: &[&str] = &["orderType", "order_type", "type"];
/// A limit entry's price.
pub(crate) const LIMIT_PRICE_FIELDS: &[&str] = &["limitPrice", "limit_price"];
/// A stop entry's trigger.
pub(crate) const STOP_PRICE_FIELDS: &[&str] = &["stopPrice", "stop_price"];
/// A resting entry's time in force.
pub(crate) const TIME_IN_FORCE_FIELDS: &[&str] = &["timeInForce", "time_in_force", "tif"];

/// Reads the first present synonym of `names` with `read`.
fn optional<T>(
    object: &RawObject<'_>,
    names: &[&str],
    read: impl FnOnce(&Field<'_>) -> Result<T, AlertError>,
) -> Result<Option<T>, AlertError> {
    object.first(names)?.map(|f| read(&f)).transpose()
}

/// A positive decimal, `None` for 0 ("not set"), refused when negative or not a number.
fn positive(field: &Field<'_>, expected: &str) -> Result<Option<Decimal>, AlertError> {
    if field.is_unset() {
        return Ok(None);
    }
    let value = field.decimal(expected)?;
    if value <= Decimal::ZERO {
        return Err(field.error(expected));
    }
    Ok(Some(value))
}

/// A positive whole number of ticks, `None` for 0.
fn ticks(field: &Field<'_>) -> Result<Option<Decimal>, AlertError> {
    const EXPECTED: &str = "whole ticks of 0 or more, such as 8 (0 = the trader's setting)";
    let value = positive(field, EXPECTED)?;
    match value {
        Some(v) if !v.fract().is_zero() => Err(field.error(EXPECTED)),
        other => Ok(other),
    }
}

/// On/off: `true`/`false`, `1`/`0`, `"yes"`/`"no"`, `"on"`/`"off"`.
pub(crate) fn switch(field: &Field<'_>) -> Result<bool, AlertError> {
    const EXPECTED: &str = "true or false (1 or 0)";
    let text = field.text()?;
    match normalize_word(&text).as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(field.error(EXPECTED)),
    }
}

/// The first of `candidates` that is set, refusing two at once.
fn one_of<T>(
    what: &str,
    candidates: Vec<Option<(String, T)>>,
) -> Result<Option<(String, T)>, AlertError> {
    let mut set: Vec<(String, T)> = candidates.into_iter().flatten().collect();
    if set.len() > 1 {
        let names: Vec<&str> = set.iter().map(|(n, _)| n.as_str()).collect();
        return Err(AlertError::InvalidField {
            field: names.join(", "),
            value: "several values".into(),
            expected: format!("give one {what}: {} are all set", names.join(" and ")),
        });
    }
    Ok(set.pop())
}

/// A field read as `read` when present and set, with its path.
fn named<T>(
    object: &RawObject<'_>,
    names: &[&str],
    read: impl FnOnce(&Field<'_>) -> Result<Option<T>, AlertError>,
) -> Result<Option<(String, T)>, AlertError> {
    match object.first(names)? {
        Some(f) => Ok(read(&f)?.map(|v| (f.path.clone(), v))),
        None => Ok(None),
    }
}

fn dollars(field: &Field<'_>) -> Result<Option<ExitLevel>, AlertError> {
    Ok(
        positive(field, "dollars per contract, 0 or more, such as 50")?
            .map(|amount| ExitLevel::Dollars { amount }),
    )
}

fn percent(field: &Field<'_>) -> Result<Option<ExitLevel>, AlertError> {
    Ok(positive(
        field,
        "a percentage of the entry price, 0 or more, such as 0.5",
    )?
    .map(|value| ExitLevel::Distance {
        value,
        units: Some(PriceUnits::Percent),
    }))
}

fn tick_level(field: &Field<'_>) -> Result<Option<ExitLevel>, AlertError> {
    Ok(
        positive(field, "ticks, 0 or more, such as 20")?.map(|value| ExitLevel::Distance {
            value,
            units: Some(PriceUnits::Ticks),
        }),
    )
}

/// The take-profit, whichever dialect gives it (one at most).
///
/// # Errors
/// An unreadable value, or two take-profits at once.
pub(crate) fn take_profit(object: &RawObject<'_>) -> Result<Option<ExitLevel>, AlertError> {
    let candidates = vec![
        named(object, TAKE_PROFIT_FIELDS, |f| {
            Ok(parse_exit(f, Exit::TakeProfit)?.map(|(level, _)| level))
        })?,
        named(object, TP_TICKS_FIELDS, tick_level)?,
        named(object, DOLLAR_TP_FIELDS, dollars)?,
        named(object, PERCENT_TP_FIELDS, percent)?,
    ];
    Ok(one_of("take-profit", candidates)?.map(|(_, level)| level))
}

/// The stop and the trailing instructions, whichever dialect gives them.
///
/// # Errors
/// An unreadable value, or two stops at once.
pub(crate) fn stop_and_trail(
    object: &RawObject<'_>,
) -> Result<(Option<StopOverride>, Option<TrailOverride>), AlertError> {
    let candidates = vec![
        named(object, STOP_LOSS_FIELDS, |f| parse_exit(f, Exit::StopLoss))?,
        named(object, SL_TICKS_FIELDS, |f| {
            Ok(tick_level(f)?.map(|level| (level, None)))
        })?,
        named(object, DOLLAR_SL_FIELDS, |f| {
            Ok(dollars(f)?.map(|level| (level, None)))
        })?,
        named(object, PERCENT_SL_FIELDS, |f| {
            Ok(percent(f)?.map(|level| (level, None)))
        })?,
        named(object, TRAIL_STOP_FIELDS, |f| {
            Ok(tick_level(f)?.map(|level| (level, Some(StopType::Trailing))))
        })?,
    ];
    let stop = one_of("stop", candidates)?
        .map(|(_, (level, stop_type))| StopOverride { level, stop_type });
    let trail_on = optional(object, TRAIL_FIELDS, |f| {
        if f.is_unset() {
            return Ok(false);
        }
        switch(f).map_err(|_| {
            f.error(
                "1 (true) to make the stop trail, 0 to leave it as the trader has it; put the \
                 trailing distance in sl (or trail_stop), the trigger in trail_trigger",
            )
        })
    })?
    .unwrap_or(false);
    let trigger = optional(object, TRAIL_TRIGGER_FIELDS, ticks)?.flatten();
    let step = optional(object, TRAIL_FREQ_FIELDS, ticks)?.flatten();
    let trailing_stop = stop.is_some_and(|s| s.stop_type == Some(StopType::Trailing));
    let trail = (trail_on || trigger.is_some() || step.is_some() || trailing_stop).then_some(
        TrailOverride {
            trigger_ticks: trigger,
            step_ticks: step,
        },
    );
    // A trailing instruction makes the alert's stop (if it gives one) trailing too.
    let stop = stop.map(|s| StopOverride {
        stop_type: if trail.is_some() {
            Some(StopType::Trailing)
        } else {
            s.stop_type
        },
        ..s
    });
    Ok((stop, trail))
}

/// Break-even, risk sizing and `same_direction_ignore`.
///
/// # Errors
/// An unreadable value, or both risk forms at once.
pub(crate) fn alert_risk(
    object: &RawObject<'_>,
    trail: Option<TrailOverride>,
) -> Result<AlertRisk, AlertError> {
    let trigger = optional(object, BREAKEVEN_FIELDS, |f| {
        if f.json_type() == "boolean" {
            return Err(f.error(
                "the ticks of profit that move the stop to break-even, such as 20 (0 = the \
                 trader's setting)",
            ));
        }
        ticks(f)
    })?
    .flatten();
    let offset = optional(object, BREAKEVEN_OFFSET_FIELDS, ticks)?.flatten();
    let break_even = (trigger.is_some() || offset.is_some()).then_some(BreakEvenOverride {
        trigger_ticks: trigger,
        offset_ticks: offset,
    });
    let sizing = one_of(
        "risk size",
        vec![
            named(object, RISK_DOLLARS_FIELDS, |f| {
                Ok(positive(f, "dollars to risk on the entry, such as 200")?
                    .map(|amount| RiskSizing::Dollars { amount }))
            })?,
            named(object, RISK_PERCENT_FIELDS, |f| {
                const EXPECTED: &str =
                    "a percentage of the account balance to risk, above 0 and at most 100, \
                     such as 1.5";
                let p = positive(f, EXPECTED)?;
                if p.is_some_and(|p| p > Decimal::ONE_HUNDRED) {
                    return Err(f.error(EXPECTED));
                }
                Ok(p.map(|percent| RiskSizing::Percent { percent }))
            })?,
        ],
    )?
    .map(|(_, s)| s);
    let same_direction_ignore = optional(object, SAME_DIRECTION_IGNORE_FIELDS, switch)?;
    Ok(AlertRisk {
        trail,
        break_even,
        sizing,
        same_direction_ignore,
    })
}

/// The entry's order type, `None` for market. `verb_field` is the field the action was read
/// from (an action word in `order_type` is not an order type).
///
/// # Errors
/// An unknown order type, a missing or unreadable price, a market order with a price, or an
/// unknown time in force.
pub(crate) fn entry_order(
    object: &RawObject<'_>,
    verb_field: Option<&str>,
) -> Result<Option<EntryOrderSpec>, AlertError> {
    const PRICE: &str = "a positive price such as 21000.25";
    let mut kind_field = None;
    for name in ORDER_TYPE_FIELDS {
        if let Some(f) = object.first(&[name])?
            && Some(f.path.as_str()) != verb_field
        {
            kind_field = Some(f);
            break;
        }
    }
    let kind = match &kind_field {
        None => None,
        Some(f) => {
            let word = f.text()?;
            match normalize_word(&word).replace('_', "").as_str() {
                // An action word here is the action (read by the parser), not an order type.
                _ if crate::position::Verb::from_word(&word).is_some() => None,
                "market" | "mkt" | "" => Some(None),
                "limit" | "lmt" => Some(Some(EntryKind::Limit)),
                "stop" | "stp" | "stopmarket" => Some(Some(EntryKind::Stop)),
                "stoplimit" | "stplmt" => Some(Some(EntryKind::StopLimit)),
                // `type` is a common word on other platforms: an unknown value there is not an
                // order type.
                _ if f.name().eq_ignore_ascii_case("type") => None,
                _ => {
                    return Err(f.error(
                        "market, limit, stop or stop_limit (MKT, LMT and STP are read too)",
                    ));
                }
            }
        }
    };
    let limit = object.first(LIMIT_PRICE_FIELDS)?;
    let stop = object.first(STOP_PRICE_FIELDS)?;
    let limit_price = limit
        .as_ref()
        .map(|f| positive(f, PRICE))
        .transpose()?
        .flatten();
    let stop_price = stop
        .as_ref()
        .map(|f| positive(f, PRICE))
        .transpose()?
        .flatten();
    let kind = match kind {
        Some(k) => k,
        // No order type: the prices say which (a price is never ignored).
        None => match (limit_price, stop_price) {
            (None, None) => None,
            (Some(_), None) => Some(EntryKind::Limit),
            (None, Some(_)) => Some(EntryKind::Stop),
            (Some(_), Some(_)) => Some(EntryKind::StopLimit),
        },
    };
    let Some(kind) = kind else {
        if let Some(f) = limit.iter().chain(stop.iter()).find(|f| !f.is_unset()) {
            return Err(f.error(
                "no price on a market entry: set orderType to limit, stop or stop_limit, or \
                 remove the price (a stop-loss is sl / stop_loss)",
            ));
        }
        return Ok(None);
    };
    let need = |price: Option<Decimal>, names: &[&str]| {
        price.ok_or_else(|| AlertError::InvalidField {
            field: names[0].to_string(),
            value: "missing".into(),
            expected: format!(
                "the {} order needs {}",
                match kind {
                    EntryKind::Limit => "limit",
                    EntryKind::Stop => "stop",
                    EntryKind::StopLimit => "stop-limit",
                },
                names.join(" or ")
            ),
        })
    };
    let (limit_price, stop_price) = match kind {
        EntryKind::Limit => (Some(need(limit_price, LIMIT_PRICE_FIELDS)?), None),
        EntryKind::Stop => (None, Some(need(stop_price, STOP_PRICE_FIELDS)?)),
        EntryKind::StopLimit => (
            Some(need(limit_price, LIMIT_PRICE_FIELDS)?),
            Some(need(stop_price, STOP_PRICE_FIELDS)?),
        ),
    };
    let time_in_force = optional(object, TIME_IN_FORCE_FIELDS, |f| {
        match normalize_word(&f.text()?).as_str() {
            "day" | "" => Ok(TimeInForce::Day),
            "gtc" | "good_till_cancelled" | "good_till_canceled" => Ok(TimeInForce::Gtc),
            _ => Err(f.error(
                "day (until the end of the trading day, the default) or gtc (until the next \
                 signal); IOC, FOK and GTD entries are not supported",
            )),
        }
    })?
    .unwrap_or_default();
    Ok(Some(EntryOrderSpec {
        kind,
        limit_price,
        stop_price,
        time_in_force,
    }))
}

/// Whether a field's name says it is a risk instruction: take-profit, stop, trailing,
/// break-even, profit target or sizing, in any spelling (`takeProfit2`, `update_sl`,
/// `trailing_stop`, `max_loss`). No allocation: every unknown field of a body is asked.
fn looks_like_risk(name: &str) -> bool {
    // The name's letters and digits, lower case (names are short; a longer one is cut).
    let mut squashed = [0u8; 64];
    let mut n = 0;
    for b in name.bytes().filter(u8::is_ascii_alphanumeric) {
        if n == squashed.len() {
            break;
        }
        squashed[n] = b.to_ascii_lowercase();
        n += 1;
    }
    let squashed = &squashed[..n];
    let contains = |w: &[u8]| squashed.windows(w.len()).any(|x| x == w);
    if [
        &b"takeprofit"[..],
        b"stoploss",
        b"profittarget",
        b"trail",
        b"breakeven",
        b"risk",
    ]
    .iter()
    .any(|w| contains(w))
    {
        return true;
    }
    let mut risky = false;
    for_each_word(name, |w| {
        risky |= ["tp", "sl", "stop", "target", "profit", "loss"]
            .iter()
            .any(|r| w.eq_ignore_ascii_case(r));
    });
    risky
}

/// Calls `f` with each word of a field name: `takeProfit2` → `take`, `Profit`, `2`;
/// `update_sl` → `update`, `sl` (separators, case changes and digit runs split words).
fn for_each_word(name: &str, mut f: impl FnMut(&str)) {
    let bytes = name.as_bytes();
    let mut start = None;
    for (i, &c) in bytes.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if let Some(s) = start.take() {
                f(&name[s..i]);
            }
            continue;
        }
        if let Some(s) = start
            && i > 0
        {
            let p = bytes[i - 1];
            if (c.is_ascii_uppercase() && p.is_ascii_lowercase())
                || (c.is_ascii_digit() != p.is_ascii_digit())
            {
                f(&name[s..i]);
                start = Some(i);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        f(&name[s..]);
    }
}

/// The words of a field name, lower case (for the advice).
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(name, |w| out.push(w.to_ascii_lowercase()));
    out
}

/// What to write instead of an unknown risk field.
fn advice(name: &str) -> String {
    let w = words(name);
    let has = |x: &str| w.iter().any(|y| y == x);
    if has("update") {
        return "jt does not move an open position's take-profit or stop from an alert: send a \
                new entry with tp/sl, or change the trader's settings"
            .into();
    }
    if w.iter().any(|x| x.chars().all(|c| c.is_ascii_digit()))
        && (has("tp") || has("profit") || has("target"))
    {
        return "an alert carries one take-profit (tp, dollar_tp or percentage_tp): configure \
                several take-profit legs on the trader (tp_targets)"
            .into();
    }
    "write the take-profit as tp (or tp_ticks, dollar_tp, percentage_tp, takeProfit), the stop \
     as sl (or sl_ticks, dollar_sl, percentage_sl, stopLoss), trailing as trail with \
     trail_trigger and trail_freq (ticks), break-even as breakeven and breakeven_offset (ticks), \
     sizing as risk_dollars or risk_percentage — or remove the field (docs/alerts.md lists every \
     field)"
        .into()
}

/// The rule for fields we do not understand: unknown fields are ignored, except a field whose
/// name says it is a risk instruction and whose value is set — that is refused, never dropped.
/// `known` lists every field name the parser reads (any case).
///
/// # Errors
/// [`AlertError::UnsupportedRiskField`] naming the first such field.
pub(crate) fn refuse_unknown_risk_fields(
    object: &RawObject<'_>,
    known: &[&[&str]],
) -> Result<(), AlertError> {
    // Cheapest test first: most fields of a peer's template are unset or not risk-looking.
    let refused = object.find_field(|name, raw| {
        !raw_is_unset(raw)
            && looks_like_risk(name)
            && !known.iter().any(|list| {
                list.iter().any(|k| {
                    k.split('.')
                        .next()
                        .is_some_and(|head| head.eq_ignore_ascii_case(name))
                })
            })
    });
    if let Some(field) = refused {
        return Err(AlertError::UnsupportedRiskField {
            field: field.path.clone(),
            advice: advice(field.name()),
        });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    TakeProfit,
    StopLoss,
}

/// The kind of value an exit field gives.
#[derive(Debug, Clone, Copy)]
enum Level {
    Distance(Option<PriceUnits>),
    Price,
    Dollars,
}

/// A per-alert take-profit or stop: a number (a distance in the trader's units) or an object
/// (ours: `ticks`/`points`/`percent`/`dollars`/`price`/`value`+`units`; TradersPost's:
/// `limitPrice`, `stopPrice`, `amount`, `percent`, `trailAmount`, `trailPercent`, `type`). A
/// value of 0 means "not set": the trader's settings apply (PickMyTrade templates send
/// `"tp": 0`). A key the object does not know is refused (a risk instruction is never
/// dropped).
pub(crate) fn parse_exit(
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
    if let Some(pnl) = object.first(&["pnlAmount"])? {
        return Err(pnl.error(
            "not supported: give the level as ticks, points (amount), percent, dollars (per \
             contract) or price",
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
        ("dollars", Level::Dollars, false),
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
    let what = match exit {
        Exit::TakeProfit => "take-profit",
        Exit::StopLoss => "stop",
    };
    for key in object.entries() {
        let name = key.name();
        let known = table.iter().any(|(k, _, _)| k.eq_ignore_ascii_case(name))
            || ["units", "unit"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(name))
            // TradersPost's stop-limit stop carries a limitPrice: the stop is placed as a plain
            // stop (a stop that may not fill is no protection), so the limit is not used.
            || (exit == Exit::StopLoss
                && (name.eq_ignore_ascii_case("type") || name.eq_ignore_ascii_case("limitPrice")));
        if !known {
            return Err(key.error(format!(
                "not a {what} field jt knows: use ticks, points, amount, percent, dollars, \
                 value (with units) or price{}",
                match exit {
                    Exit::TakeProfit => ", or TradersPost's limitPrice",
                    Exit::StopLoss =>
                        ", TradersPost's stopPrice, trailAmount or trailPercent, and type",
                }
            )));
        }
    }
    let mut given = Vec::new();
    for (name, level, trailing) in table {
        if let Some(f) = object.first(&[name])? {
            given.push((f, level, trailing));
        }
    }
    if given.len() > 1 {
        let names: Vec<_> = given.iter().map(|(f, _, _)| f.path.as_str()).collect();
        return Err(field.error(format!(
            "the {what} gives {}: give exactly one",
            names.join(" and ")
        )));
    }
    let Some((level_field, level, trailing)) = given.pop() else {
        return Err(field.error(format!(
            "the {what} needs one of ticks, points, amount, percent, dollars, value (with \
             units) or price"
        )));
    };
    let value = level_field.decimal("a number of 0 or more, such as 20 or \"20\"")?;
    let Some(value) = non_negative(&level_field, value)? else {
        return Ok(None);
    };
    let level = match level {
        Level::Distance(units) => ExitLevel::Distance { value, units },
        Level::Price => ExitLevel::Price { price: value },
        Level::Dollars => ExitLevel::Dollars { amount: value },
    };
    let stop_type = if trailing {
        Some(StopType::Trailing)
    } else {
        stop_type
    };
    Ok(Some((level, stop_type)))
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
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("takeProfit2", true)]
    #[case("tp1", true)]
    #[case("update_sl", true)]
    #[case("trailing_stop", true)]
    #[case("TrailStop", true)]
    #[case("max_daily_loss", true)]
    #[case("breakEvenTicks", true)]
    #[case("riskReward", true)]
    #[case("profit_target", true)]
    #[case("interval", false)]
    #[case("bot_uuid", false)]
    #[case("comment", false)]
    #[case("pyramid", false)]
    #[case("http_status", false)]
    #[case("slippage", false)]
    #[case("strategy", false)]
    fn risk_looking_names_are_recognised(#[case] name: &str, #[case] want: bool) {
        assert_eq!(looks_like_risk(name), want, "{name}: {:?}", words(name));
    }
}
