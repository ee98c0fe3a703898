//! Request and response bodies of the Tradovate REST endpoints (BROKERS.md §1.2, §1.5), and the
//! builders that turn the domain's order shapes into them.

use chrono::{DateTime, Utc};
use jt_domain::bracket::StopOrder;
use jt_domain::instrument::Instrument;
use jt_domain::order::{BracketOrder, OrderKind, OrderRequest, StopKind};
use jt_domain::types::Side;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::common::entities::{OrderStrategy, TradeDate};
use crate::common::enums;
use crate::config::Credentials;
use jt_broker::error::BrokerError;
use jt_net::exact;

/// `POST auth/accesstokenrequest`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenRequest {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Application name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Application version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Device id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Client id: a number when it is one (official examples), else a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<serde_json::Value>,
    /// API secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sec: Option<String>,
}

impl AccessTokenRequest {
    /// The request for `credentials`.
    #[must_use]
    pub fn new(credentials: &Credentials) -> Self {
        Self {
            name: credentials.name.clone(),
            password: credentials.password.clone(),
            app_id: credentials.app_id.clone(),
            app_version: credentials.app_version.clone(),
            device_id: credentials.device_id.clone(),
            cid: credentials.cid.as_ref().map(|c| {
                c.trim().parse::<i64>().map_or_else(
                    |_| serde_json::Value::String(c.clone()),
                    serde_json::Value::from,
                )
            }),
            sec: credentials.sec.clone(),
        }
    }
}

/// `AccessTokenResponse` (of both the token request and the renewal).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenResponse {
    /// Non-empty when the request failed.
    #[serde(default)]
    pub error_text: Option<String>,
    /// The token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// The market-data token.
    #[serde(default)]
    pub md_access_token: Option<String>,
    /// When the token expires.
    #[serde(default)]
    pub expiration_time: Option<DateTime<Utc>>,
    /// `Active`, `TemporaryLocked`, …
    #[serde(default)]
    pub user_status: Option<String>,
    /// User id.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// User name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST order/placeorder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrder {
    /// Account name.
    pub account_spec: String,
    /// Account id.
    pub account_id: i64,
    /// Our client order id.
    pub cl_ord_id: String,
    /// `Buy` / `Sell`.
    pub action: &'static str,
    /// Contract name.
    pub symbol: String,
    /// Quantity.
    pub order_qty: u32,
    /// `Market`, `Limit`, `Stop`, `StopLimit`.
    pub order_type: &'static str,
    /// Limit price.
    #[serde(with = "exact::option", skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// Stop price.
    #[serde(with = "exact::option", skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Decimal>,
    /// Trailing distance of a `TrailingStop`, in points.
    #[serde(with = "exact::option", skip_serializing_if = "Option::is_none")]
    pub peg_difference: Option<Decimal>,
    /// Time in force (resting orders stay until canceled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<&'static str>,
    /// Always `true`: exchange policy for non-human orders.
    pub is_automated: bool,
}

/// Where an order goes: the account's id and name, the contract name.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Account id.
    pub account_id: i64,
    /// Account name (`accountSpec`).
    pub account_spec: &'a str,
    /// Contract name.
    pub symbol: &'a str,
}

fn checked_qty(qty: u32) -> Result<u32, BrokerError> {
    if qty == 0 {
        Err(BrokerError::invalid("order quantity is 0"))
    } else {
        Ok(qty)
    }
}

/// Builds the placeorder body of one plain order.
///
/// # Errors
/// `InvalidRequest` for a zero quantity or an empty client order id.
pub fn place_order(target: Target<'_>, order: &OrderRequest) -> Result<PlaceOrder, BrokerError> {
    if order.client_order_id.trim().is_empty() {
        return Err(BrokerError::invalid("client order id is empty"));
    }
    let (order_type, price, stop_price, tif) = match order.kind {
        OrderKind::Market => ("Market", None, None, None),
        OrderKind::Limit { price } => ("Limit", Some(price.value()), None, Some("GTC")),
        OrderKind::Stop { stop } => ("Stop", None, Some(stop.value()), Some("GTC")),
        OrderKind::StopLimit { stop, price } => (
            "StopLimit",
            Some(price.value()),
            Some(stop.value()),
            Some("GTC"),
        ),
    };
    Ok(PlaceOrder {
        account_spec: target.account_spec.to_string(),
        account_id: target.account_id,
        cl_ord_id: order.client_order_id.clone(),
        action: enums::action(order.side),
        symbol: target.symbol.to_string(),
        order_qty: checked_qty(order.qty)?,
        order_type,
        price,
        stop_price,
        peg_difference: None,
        time_in_force: tif,
        is_automated: true,
    })
}

/// Builds the placeorder body of a standalone protective stop (the replacement stop after a
/// DCA add): `Stop` for a fixed stop, `TrailingStop` with `pegDifference` for one that trails
/// from the start. A trailing stop that waits for a profit trigger exists only inside an order
/// strategy (`autoTrail`), so it is refused, never placed as something else.
///
/// # Errors
/// `Unsupported` for a trailing trigger; `InvalidRequest` for a zero quantity, an empty client
/// order id or an off-tick distance.
pub fn place_stop(
    target: Target<'_>,
    instrument: &Instrument,
    stop: &StopOrder,
) -> Result<PlaceOrder, BrokerError> {
    if stop.client_order_id.trim().is_empty() {
        return Err(BrokerError::invalid("client order id is empty"));
    }
    let (order_type, peg_difference) = match stop.kind {
        StopKind::Fixed => ("Stop", None),
        StopKind::Trailing { trigger, .. } if !trigger.is_zero() => {
            return Err(BrokerError::Unsupported {
                feature: jt_broker::capabilities::Feature::StandaloneTrailingTrigger,
            });
        }
        StopKind::Trailing { .. } => (
            "TrailingStop",
            Some(on_tick(instrument, "trailing distance", stop.distance)?),
        ),
    };
    Ok(PlaceOrder {
        account_spec: target.account_spec.to_string(),
        account_id: target.account_id,
        cl_ord_id: stop.client_order_id.clone(),
        action: enums::action(stop.side),
        symbol: target.symbol.to_string(),
        order_qty: checked_qty(stop.qty)?,
        order_type,
        price: None,
        stop_price: Some(stop.stop.value()),
        peg_difference,
        time_in_force: Some("GTC"),
        is_automated: true,
    })
}

/// `PlaceOrderResult`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrderResult {
    /// Why it failed (`Success` or absent when it did not).
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Failure text.
    #[serde(default)]
    pub failure_text: Option<String>,
    /// The order id.
    #[serde(default)]
    pub order_id: Option<i64>,
}

/// `POST order/cancelorder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelOrder {
    /// Order to cancel.
    pub order_id: i64,
    /// Always `true`.
    pub is_automated: bool,
}

/// `POST order/modifyorder` (`orderQty` and `orderType` are required even when only the
/// quantity changes; the prices are sent as they are, so they do not move).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyOrder {
    /// Order to change.
    pub order_id: i64,
    /// New total quantity.
    pub order_qty: u32,
    /// The order's type, unchanged.
    pub order_type: &'static str,
    /// The limit price, unchanged.
    #[serde(with = "exact::option", skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// The stop price, unchanged (never sent for a trailing stop: only its quantity may
    /// change, `TrailingStopNonOrderQtyModify`).
    #[serde(with = "exact::option", skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Decimal>,
    /// Always `true`.
    pub is_automated: bool,
}

/// The modifyorder body that changes `order`'s quantity to `qty` and nothing else.
///
/// # Errors
/// `InvalidRequest` for a zero quantity, a foreign id, or an order type that cannot be named.
pub fn modify_order_qty(
    order: &jt_broker::model::OrderReport,
    qty: u32,
) -> Result<ModifyOrder, BrokerError> {
    use jt_broker::model::OrderType as T;
    let order_id: i64 = order.id.as_str().parse().map_err(|_| {
        BrokerError::invalid(format!("order id {} is not a Tradovate id", order.id))
    })?;
    let (order_type, price, stop_price) = match order.order_type {
        Some(T::Market) => ("Market", None, None),
        Some(T::Limit) => ("Limit", order.price, None),
        Some(T::Stop) => ("Stop", None, order.stop_price),
        Some(T::StopLimit) => ("StopLimit", order.price, order.stop_price),
        Some(T::TrailingStop) => ("TrailingStop", None, None),
        Some(T::TrailingStopLimit) => ("TrailingStopLimit", None, None),
        Some(T::Other) | None => {
            return Err(BrokerError::invalid(format!(
                "order {} has no type the modify call can name",
                order.id
            )));
        }
    };
    Ok(ModifyOrder {
        order_id,
        order_qty: checked_qty(qty)?,
        order_type,
        price,
        stop_price,
        is_automated: true,
    })
}

/// The modifyorder body that moves `order`'s price to `price` and nothing else
/// ([`jt_broker::broker::moved_prices`]). The quantity is sent as it is (`orderQty` is
/// required).
///
/// # Errors
/// `InvalidRequest` for a foreign id, an order without quantity, a trailing stop (it trails:
/// only its quantity may change) or a type without a price.
pub fn modify_order_price(
    order: &jt_broker::model::OrderReport,
    price: Decimal,
) -> Result<ModifyOrder, BrokerError> {
    use jt_broker::model::OrderType as T;
    let order_id: i64 = order.id.as_str().parse().map_err(|_| {
        BrokerError::invalid(format!("order id {} is not a Tradovate id", order.id))
    })?;
    let qty = order
        .qty
        .ok_or_else(|| BrokerError::invalid(format!("order {} has no quantity", order.id)))?;
    let (limit, stop_price) = jt_broker::broker::moved_prices(order, price)?;
    let order_type = match order.order_type {
        Some(T::Limit) => "Limit",
        Some(T::Stop) => "Stop",
        _ => "StopLimit",
    };
    Ok(ModifyOrder {
        order_id,
        order_qty: checked_qty(qty)?,
        order_type,
        price: limit,
        stop_price,
        is_automated: true,
    })
}

/// `CommandResult`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    /// Why it failed.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Failure text.
    #[serde(default)]
    pub failure_text: Option<String>,
    /// The command id.
    #[serde(default)]
    pub command_id: Option<i64>,
}

/// `POST order/liquidateposition` (the body carries no `customTag50`: reported to 404).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiquidatePosition {
    /// Account.
    pub account_id: i64,
    /// Contract.
    pub contract_id: i64,
    /// Not an administrator action.
    pub admin: bool,
}

/// `POST cashBalance/getcashbalancesnapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CashBalanceSnapshotRequest {
    /// Account.
    pub account_id: i64,
}

/// `CashBalanceSnapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CashBalanceSnapshot {
    /// Non-empty when the request failed.
    #[serde(default)]
    pub error_text: Option<String>,
    /// Total cash.
    #[serde(with = "exact::option", default)]
    pub total_cash_value: Option<Decimal>,
    /// Total P&L.
    #[serde(rename = "totalPnL", with = "exact::option", default)]
    pub total_pnl: Option<Decimal>,
    /// Net liquidation value.
    #[serde(with = "exact::option", default)]
    pub net_liq: Option<Decimal>,
    /// Open P&L.
    #[serde(rename = "openPnL", with = "exact::option", default)]
    pub open_pnl: Option<Decimal>,
    /// Realized P&L of the day.
    #[serde(rename = "realizedPnL", with = "exact::option", default)]
    pub realized_pnl: Option<Decimal>,
    /// Realized P&L of the week.
    #[serde(rename = "weekRealizedPnL", with = "exact::option", default)]
    pub week_realized_pnl: Option<Decimal>,
    /// Trading date, when sent.
    #[serde(default)]
    pub trade_date: Option<TradeDate>,
}

/// `POST orderStrategy/startorderstrategy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartOrderStrategy {
    /// Account id.
    pub account_id: i64,
    /// Account name.
    pub account_spec: String,
    /// Contract name.
    pub symbol: String,
    /// 2 = multibracket.
    pub order_strategy_type_id: i64,
    /// Entry side.
    pub action: &'static str,
    /// [`BracketParams`] as a JSON string.
    pub params: String,
    /// Our id: the entry's client order id (looked up after an ambiguous outcome).
    pub uuid: String,
    /// Always `true`: the orders the strategy places are not a human's.
    pub is_automated: bool,
}

/// The multibracket strategy type.
pub const MULTIBRACKET: i64 = 2;

/// The decoded `params` of a multibracket strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BracketParams {
    /// The entry.
    pub entry_version: EntryVersion,
    /// One exit leg per entry (take-profit and/or stop, OCO-linked by the broker).
    pub brackets: Vec<BracketLeg>,
}

/// The entry of a multibracket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryVersion {
    /// Quantity.
    pub order_qty: u32,
    /// `Market`, `Limit`, `Stop`, `StopLimit`.
    pub order_type: String,
    /// Limit price.
    #[serde(
        with = "exact::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub price: Option<Decimal>,
    /// Stop price.
    #[serde(
        with = "exact::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_price: Option<Decimal>,
    /// Time in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<String>,
}

/// One exit leg: offsets in points from the entry fill, signed by direction (long: target
/// positive, stop negative; short: the reverse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BracketLeg {
    /// Contracts this leg closes.
    pub qty: u32,
    /// Signed take-profit offset; absent for a stop-only (runner) leg.
    #[serde(
        with = "exact::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub profit_target: Option<Decimal>,
    /// Signed stop offset; absent when the bracket has no stop.
    #[serde(
        with = "exact::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_loss: Option<Decimal>,
    /// Trail the stop from the start.
    pub trailing_stop: bool,
    /// Trail the stop once `trigger` points in profit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_trail: Option<AutoTrail>,
    /// Move the stop to entry ± offset once in profit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_even: Option<BreakEvenParams>,
}

/// `autoTrail` of a leg: unsigned point distances (community-documented field, \[L\] in
/// BROKERS.md §1.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoTrail {
    /// Trailing distance.
    #[serde(with = "exact")]
    pub stop_loss: Decimal,
    /// Profit before trailing starts.
    #[serde(with = "exact")]
    pub trigger: Decimal,
    /// Trailing step.
    #[serde(with = "exact")]
    pub freq: Decimal,
}

/// `breakEven` of a leg: unsigned point distances. Not in Tradovate's published schema (community
/// sources report it, and the server's refusal of it with a trailing stop: "Stop and Stop/Limit
/// breakeven supported only"); the simulator accepts this spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakEvenParams {
    /// Profit that triggers the move.
    #[serde(with = "exact")]
    pub trigger: Decimal,
    /// Points beyond the entry, in the profit direction, where the stop goes.
    #[serde(with = "exact")]
    pub offset: Decimal,
}

fn on_tick(instrument: &Instrument, what: &str, value: Decimal) -> Result<Decimal, BrokerError> {
    if value <= Decimal::ZERO {
        return Err(BrokerError::invalid(format!(
            "{what} must be > 0, got {value}"
        )));
    }
    if !instrument.is_on_tick(value) {
        return Err(BrokerError::invalid(format!(
            "{what} {value} is not on the {} tick of {}",
            instrument.tick_size, instrument.root
        )));
    }
    Ok(value)
}

/// Builds the multibracket `params` of `bracket` for `instrument`: one leg per take-profit,
/// plus a stop-only leg for contracts no take-profit closes, every leg carrying the stop; or a
/// single stop-only leg when there is no take-profit. Offsets are signed by the entry side.
///
/// # Errors
/// `InvalidRequest` when the bracket breaks its invariants or a distance is off tick;
/// `Unsupported` for break-even together with a trailing stop (the server refuses it).
pub fn bracket_params(
    instrument: &Instrument,
    bracket: &BracketOrder,
) -> Result<BracketParams, BrokerError> {
    bracket
        .validate()
        .map_err(|e| BrokerError::invalid(e.to_string()))?;
    let sign = match bracket.side {
        Side::Buy => Decimal::ONE,
        Side::Sell => Decimal::NEGATIVE_ONE,
    };
    let (order_type, price, stop_price) = match bracket.entry {
        OrderKind::Market => ("Market", None, None),
        OrderKind::Limit { price } => ("Limit", Some(price.value()), None),
        OrderKind::Stop { stop } => ("Stop", None, Some(stop.value())),
        OrderKind::StopLimit { stop, price } => {
            ("StopLimit", Some(price.value()), Some(stop.value()))
        }
    };
    let mut stop_loss = None;
    let mut trailing_stop = false;
    let mut auto_trail = None;
    if let Some(stop) = &bracket.stop {
        let distance = on_tick(instrument, "stop distance", stop.distance)?;
        stop_loss = Some(-sign * distance);
        if let StopKind::Trailing { trigger, step } = stop.kind {
            let freq = if step.is_zero() {
                instrument.tick_size
            } else {
                on_tick(instrument, "trailing step", step)?
            };
            if trigger.is_zero() {
                trailing_stop = true;
            } else {
                auto_trail = Some(AutoTrail {
                    stop_loss: distance,
                    trigger: on_tick(instrument, "trailing trigger", trigger)?,
                    freq,
                });
            }
        }
    }
    let breakeven = match &bracket.break_even {
        None => None,
        Some(_) if trailing_stop || auto_trail.is_some() => {
            return Err(BrokerError::Unsupported {
                feature: jt_broker::capabilities::Feature::BreakEvenWithTrailingStop,
            });
        }
        Some(_) if bracket.stop.is_none() => {
            return Err(BrokerError::invalid("break-even needs a stop to move"));
        }
        Some(be) => Some(BreakEvenParams {
            trigger: on_tick(instrument, "break-even trigger", be.trigger)?,
            offset: if be.offset.is_zero() {
                Decimal::ZERO
            } else {
                on_tick(instrument, "break-even offset", be.offset)?
            },
        }),
    };
    let leg = |qty: u32, profit_target: Option<Decimal>| BracketLeg {
        qty,
        profit_target,
        stop_loss,
        trailing_stop,
        auto_trail: auto_trail.clone(),
        break_even: breakeven.clone(),
    };
    let mut brackets = Vec::with_capacity(bracket.take_profits.len() + 1);
    let mut covered: u32 = 0;
    for (i, tp) in bracket.take_profits.iter().enumerate() {
        let distance = on_tick(
            instrument,
            &format!("take-profit {} distance", i + 1),
            tp.distance,
        )?;
        brackets.push(leg(tp.qty, Some(sign * distance)));
        covered += tp.qty;
    }
    let runner = bracket.qty - covered;
    if runner > 0 && stop_loss.is_some() {
        brackets.push(leg(runner, None));
    }
    Ok(BracketParams {
        entry_version: EntryVersion {
            order_qty: checked_qty(bracket.qty)?,
            order_type: order_type.to_string(),
            price,
            stop_price,
            time_in_force: None,
        },
        brackets,
    })
}

/// Builds the startorderstrategy body of `bracket`.
///
/// # Errors
/// As [`bracket_params`]; `InvalidRequest` when the bracket has no protective order or an
/// empty client order id (a plain order is the right call then).
pub fn start_order_strategy(
    target: Target<'_>,
    instrument: &Instrument,
    bracket: &BracketOrder,
) -> Result<StartOrderStrategy, BrokerError> {
    start_order_strategy_with_tif(target, instrument, bracket, None)
}

/// [`start_order_strategy`] whose entry carries `time_in_force` (`Day`, `GTC`): a resting
/// entry that expires.
///
/// # Errors
/// As [`start_order_strategy`].
pub fn start_order_strategy_with_tif(
    target: Target<'_>,
    instrument: &Instrument,
    bracket: &BracketOrder,
    time_in_force: Option<&'static str>,
) -> Result<StartOrderStrategy, BrokerError> {
    if bracket.client_order_id.trim().is_empty() {
        return Err(BrokerError::invalid("client order id is empty"));
    }
    if !bracket.is_protected() {
        return Err(BrokerError::invalid(
            "a bracket without take-profit or stop is a plain order; use place_order",
        ));
    }
    let mut params = bracket_params(instrument, bracket)?;
    params.entry_version.time_in_force = time_in_force.map(str::to_string);
    let params = serde_json::to_string(&params)
        .map_err(|e| BrokerError::invalid(format!("bracket params do not serialise: {e}")))?;
    Ok(StartOrderStrategy {
        account_id: target.account_id,
        account_spec: target.account_spec.to_string(),
        symbol: target.symbol.to_string(),
        order_strategy_type_id: MULTIBRACKET,
        action: enums::action(bracket.side),
        params,
        uuid: bracket.client_order_id.clone(),
        is_automated: true,
    })
}

/// `OrderStrategyStatusResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderStrategyStatusResponse {
    /// Non-empty when the request failed.
    #[serde(default)]
    pub error_text: Option<String>,
    /// The started strategy.
    #[serde(default)]
    pub order_strategy: Option<OrderStrategy>,
}

/// `SimpleResponse`-style failure bodies (`errorText`, `violations`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureProbe {
    /// `errorText`.
    #[serde(default)]
    pub error_text: Option<String>,
    /// `failureReason`.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// `failureText`.
    #[serde(default)]
    pub failure_text: Option<String>,
    /// `violations`.
    #[serde(default)]
    pub violations: Option<Vec<serde_json::Value>>,
}

impl FailureProbe {
    /// The failure the body reports, if any.
    #[must_use]
    pub fn failure(&self) -> Option<(String, Option<String>)> {
        if let Some(text) = self.error_text.as_deref().filter(|t| !t.trim().is_empty()) {
            return Some((text.to_string(), None));
        }
        if let Some(reason) = self
            .failure_reason
            .as_deref()
            .filter(|r| !r.is_empty() && *r != "Success")
        {
            let text = self
                .failure_text
                .clone()
                .unwrap_or_else(|| reason.to_string());
            return Some((text, Some(reason.to_string())));
        }
        if let Some(v) = self.violations.as_ref().filter(|v| !v.is_empty()) {
            return Some((
                format!("violations: {}", serde_json::Value::Array(v.clone())),
                Some("Violation".into()),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_domain::instrument::by_root;
    use jt_domain::order::{BreakEven, StopSpec, TakeProfitLeg};
    use jt_domain::types::Price;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    fn target() -> Target<'static> {
        Target {
            account_id: 33,
            account_spec: "DEMO12345",
            symbol: "MNQZ5",
        }
    }

    fn bracket(side: Side, legs: &[(u32, Decimal)], stop: Option<StopSpec>) -> BracketOrder {
        BracketOrder {
            client_order_id: "jt-abc".into(),
            side,
            qty: legs.iter().map(|l| l.0).sum::<u32>().max(1),
            entry: OrderKind::Market,
            take_profits: legs
                .iter()
                .map(|(qty, distance)| TakeProfitLeg {
                    qty: *qty,
                    distance: *distance,
                })
                .collect(),
            stop,
            break_even: None,
        }
    }

    fn fixed(d: Decimal) -> Option<StopSpec> {
        Some(StopSpec {
            distance: d,
            kind: StopKind::Fixed,
        })
    }

    #[test]
    fn a_market_order_is_automated_and_has_no_price() {
        let order = OrderRequest {
            client_order_id: "jt-1".into(),
            side: Side::Buy,
            qty: 2,
            kind: OrderKind::Market,
        };
        let body = serde_json::to_value(place_order(target(), &order).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "accountSpec": "DEMO12345", "accountId": 33, "clOrdId": "jt-1", "action": "Buy",
                "symbol": "MNQZ5", "orderQty": 2, "orderType": "Market", "isAutomated": true
            })
        );
    }

    #[rstest]
    #[case(OrderKind::Limit { price: Price::on_tick(by_root("MNQ").unwrap(), dec!(21500.25)) },
           r#""orderType":"Limit","price":21500.25,"timeInForce":"GTC""#)]
    #[case(OrderKind::Stop { stop: Price::on_tick(by_root("MNQ").unwrap(), dec!(21400)) },
           r#""orderType":"Stop","stopPrice":21400,"timeInForce":"GTC""#)]
    #[case(OrderKind::StopLimit {
               stop: Price::on_tick(by_root("MNQ").unwrap(), dec!(21400)),
               price: Price::on_tick(by_root("MNQ").unwrap(), dec!(21399.75)) },
           r#""orderType":"StopLimit","price":21399.75,"stopPrice":21400,"timeInForce":"GTC""#)]
    fn resting_orders_carry_exact_prices(#[case] kind: OrderKind, #[case] fragment: &str) {
        let order = OrderRequest {
            client_order_id: "jt-2".into(),
            side: Side::Sell,
            qty: 1,
            kind,
        };
        let text = serde_json::to_string(&place_order(target(), &order).unwrap()).unwrap();
        assert!(text.contains(fragment), "{text}");
        assert!(text.contains(r#""isAutomated":true"#));
    }

    #[test]
    fn replacement_stops_are_fixed_or_trailing_from_the_start_and_never_silently_changed() {
        let mnq = by_root("MNQ").unwrap();
        let mut stop = StopOrder {
            client_order_id: "jt-1-sl".into(),
            side: Side::Sell,
            qty: 3,
            stop: Price::on_tick(mnq, dec!(20990.25)),
            distance: dec!(10),
            kind: StopKind::Fixed,
        };
        let text = serde_json::to_string(&place_stop(target(), mnq, &stop).unwrap()).unwrap();
        assert!(
            text.contains(
                r#""orderType":"Stop","stopPrice":20990.25,"timeInForce":"GTC","isAutomated":true"#
            ),
            "{text}"
        );
        stop.kind = StopKind::Trailing {
            trigger: dec!(0),
            step: dec!(0),
        };
        let text = serde_json::to_string(&place_stop(target(), mnq, &stop).unwrap()).unwrap();
        assert!(
            text.contains(r#""orderType":"TrailingStop","stopPrice":20990.25,"pegDifference":10"#),
            "{text}"
        );
        stop.kind = StopKind::Trailing {
            trigger: dec!(5),
            step: dec!(0),
        };
        assert!(matches!(
            place_stop(target(), mnq, &stop),
            Err(BrokerError::Unsupported { .. })
        ));
    }

    #[test]
    fn zero_quantities_and_empty_ids_are_refused() {
        let mut order = OrderRequest {
            client_order_id: "jt-1".into(),
            side: Side::Buy,
            qty: 0,
            kind: OrderKind::Market,
        };
        assert!(place_order(target(), &order).is_err());
        order.qty = 1;
        order.client_order_id = " ".into();
        assert!(place_order(target(), &order).is_err());
    }

    /// The FAQ example: Buy, target +75, stop −33 (BROKERS.md §1.5); the PT example: Sell,
    /// target −30, stop +15.
    #[rstest]
    #[case(Side::Buy, dec!(75), dec!(33), dec!(75), dec!(-33))]
    #[case(Side::Sell, dec!(30), dec!(15), dec!(-30), dec!(15))]
    fn offsets_are_signed_by_direction(
        #[case] side: Side,
        #[case] tp: Decimal,
        #[case] sl: Decimal,
        #[case] want_tp: Decimal,
        #[case] want_sl: Decimal,
    ) {
        let es = by_root("ES").unwrap();
        let p = bracket_params(es, &bracket(side, &[(1, tp)], fixed(sl))).unwrap();
        assert_eq!(p.brackets.len(), 1);
        assert_eq!(p.brackets[0].profit_target, Some(want_tp));
        assert_eq!(p.brackets[0].stop_loss, Some(want_sl));
        assert!(!p.brackets[0].trailing_stop);
    }

    #[test]
    fn three_legs_each_carry_the_stop_and_a_runner_gets_its_own_stop_leg() {
        let mnq = by_root("MNQ").unwrap();
        let mut b = bracket(
            Side::Buy,
            &[(5, dec!(5)), (5, dec!(12.5)), (3, dec!(25))],
            fixed(dec!(12.5)),
        );
        b.qty = 15;
        let p = bracket_params(mnq, &b).unwrap();
        let legs: Vec<_> = p
            .brackets
            .iter()
            .map(|l| (l.qty, l.profit_target, l.stop_loss))
            .collect();
        assert_eq!(
            legs,
            vec![
                (5, Some(dec!(5)), Some(dec!(-12.5))),
                (5, Some(dec!(12.5)), Some(dec!(-12.5))),
                (3, Some(dec!(25)), Some(dec!(-12.5))),
                (2, None, Some(dec!(-12.5))),
            ]
        );
        assert_eq!(p.entry_version.order_qty, 15);
        assert_eq!(p.entry_version.order_type, "Market");
    }

    #[test]
    fn trailing_from_the_start_and_after_a_trigger() {
        let mnq = by_root("MNQ").unwrap();
        let trail = |trigger, step| {
            Some(StopSpec {
                distance: dec!(5),
                kind: StopKind::Trailing { trigger, step },
            })
        };
        let p = bracket_params(
            mnq,
            &bracket(Side::Sell, &[(1, dec!(10))], trail(dec!(0), dec!(0))),
        )
        .unwrap();
        assert!(p.brackets[0].trailing_stop);
        assert_eq!(p.brackets[0].stop_loss, Some(dec!(5)));
        assert_eq!(p.brackets[0].auto_trail, None);

        let p = bracket_params(
            mnq,
            &bracket(Side::Buy, &[(1, dec!(25))], trail(dec!(7.5), dec!(0))),
        )
        .unwrap();
        assert!(!p.brackets[0].trailing_stop);
        assert_eq!(
            p.brackets[0].auto_trail,
            Some(AutoTrail {
                stop_loss: dec!(5),
                trigger: dec!(7.5),
                freq: dec!(0.25)
            })
        );
        let text = serde_json::to_string(&p).unwrap();
        assert!(
            text.contains(r#""autoTrail":{"stopLoss":5,"trigger":7.5,"freq":0.25}"#),
            "{text}"
        );
    }

    #[test]
    fn break_even_is_sent_with_a_fixed_stop_and_refused_with_a_trailing_one() {
        let gc = by_root("GC").unwrap();
        let mut b = bracket(Side::Buy, &[(1, dec!(5))], fixed(dec!(3)));
        b.break_even = Some(BreakEven {
            trigger: dec!(2),
            offset: dec!(0.1),
        });
        let p = bracket_params(gc, &b).unwrap();
        assert_eq!(
            p.brackets[0].break_even,
            Some(BreakEvenParams {
                trigger: dec!(2),
                offset: dec!(0.1)
            })
        );
        let text = serde_json::to_string(&p).unwrap();
        assert!(
            text.contains(r#""breakEven":{"trigger":2,"offset":0.1}"#),
            "{text}"
        );
        b.stop = Some(StopSpec {
            distance: dec!(3),
            kind: StopKind::Trailing {
                trigger: dec!(0),
                step: dec!(0),
            },
        });
        assert!(matches!(
            bracket_params(gc, &b),
            Err(BrokerError::Unsupported { .. })
        ));
    }

    #[test]
    fn off_tick_distances_are_refused_not_rounded() {
        // GC ticks are 0.10: a 0.25 stop is the bug the old platform shipped.
        let gc = by_root("GC").unwrap();
        let b = bracket(Side::Buy, &[(1, dec!(5))], fixed(dec!(0.25)));
        let err = bracket_params(gc, &b).unwrap_err();
        assert!(err.to_string().contains("not on the 0.10 tick"), "{err}");
    }

    #[test]
    fn the_strategy_body_carries_params_as_a_json_string() {
        let mnq = by_root("MNQ").unwrap();
        let b = bracket(Side::Buy, &[(1, dec!(10))], fixed(dec!(5)));
        let body = start_order_strategy(target(), mnq, &b).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["orderStrategyTypeId"], 2);
        assert_eq!(json["action"], "Buy");
        assert_eq!(json["uuid"], "jt-abc");
        assert_eq!(json["isAutomated"], true);
        let params = json["params"].as_str().unwrap();
        assert_eq!(
            params,
            r#"{"entryVersion":{"orderQty":1,"orderType":"Market"},"brackets":[{"qty":1,"profitTarget":10,"stopLoss":-5,"trailingStop":false}]}"#
        );
        let unprotected = bracket(Side::Buy, &[], None);
        assert!(start_order_strategy(target(), mnq, &unprotected).is_err());
    }

    #[test]
    fn failures_inside_200_bodies_are_found() {
        let probe: FailureProbe =
            serde_json::from_str(r#"{"failureReason":"InvalidPrice","failureText":"off tick"}"#)
                .unwrap();
        assert_eq!(
            probe.failure(),
            Some(("off tick".into(), Some("InvalidPrice".into())))
        );
        let ok: FailureProbe =
            serde_json::from_str(r#"{"failureReason":"Success","orderId":1}"#).unwrap();
        assert_eq!(ok.failure(), None);
        let v: FailureProbe =
            serde_json::from_str(r#"{"violations":[{"constraint":"x"}]}"#).unwrap();
        assert!(v.failure().is_some());
    }
}
