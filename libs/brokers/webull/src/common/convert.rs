//! Webull's words and the platform's: sides, order types, statuses, and the wire models turned
//! into `jt-broker`'s reports (and orders into Webull's `new_orders` element). Contracts are
//! named by their symbol (`MNQZ6`), which is also the [`ContractId`].

use jt_broker::{
    AccountId, BrokerError, ContractId, OrderId, OrderReport, OrderStatus, OrderType,
    PositionReport,
};
use jt_domain::order::{OrderKind, TimeInForce};
use jt_domain::types::{Contracts, Side};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::http::models::{WbNewOrder, WbOrder, WbPosition, WbStatus};

/// `BUY` / `SELL`.
#[must_use]
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// The side of `BUY` / `SELL` (any case).
///
/// # Errors
/// `Transport` for another word: an order is never read with a guessed side.
pub fn side(word: &str) -> Result<Side, BrokerError> {
    if word.eq_ignore_ascii_case("BUY") {
        Ok(Side::Buy)
    } else if word.eq_ignore_ascii_case("SELL") {
        Ok(Side::Sell)
    } else {
        Err(BrokerError::transport(format!(
            "unknown Webull side {word:?}"
        )))
    }
}

/// The platform's order type of Webull's word.
#[must_use]
pub fn order_type(word: &str) -> OrderType {
    match word.to_ascii_uppercase().as_str() {
        "MARKET" => OrderType::Market,
        "LIMIT" => OrderType::Limit,
        "STOP_LOSS" => OrderType::Stop,
        "STOP_LOSS_LIMIT" => OrderType::StopLimit,
        "TRAILING_STOP_LOSS" => OrderType::TrailingStop,
        _ => OrderType::Other,
    }
}

/// The platform's status of Webull's.
#[must_use]
pub fn status(s: WbStatus) -> OrderStatus {
    match s {
        WbStatus::Submitted | WbStatus::PartialFilled => OrderStatus::Working,
        WbStatus::Filled => OrderStatus::Filled,
        WbStatus::Cancelled => OrderStatus::Canceled,
        WbStatus::Failed => OrderStatus::Rejected,
    }
}

/// Whole contracts of a Webull quantity.
///
/// # Errors
/// `Transport` for a fraction or a negative number.
pub fn contracts(q: Decimal) -> Result<Contracts, BrokerError> {
    if q.fract().is_zero() {
        q.to_u32()
            .ok_or_else(|| BrokerError::transport(format!("quantity {q} is out of range")))
    } else {
        Err(BrokerError::transport(format!(
            "quantity {q} is not whole contracts"
        )))
    }
}

/// An order as the platform reports it.
///
/// # Errors
/// `Transport` when the order's side or quantities cannot be read.
pub fn order_report(account: &AccountId, o: &WbOrder) -> Result<OrderReport, BrokerError> {
    Ok(OrderReport {
        id: OrderId(o.order_id.clone()),
        client_order_id: o.client_order_id.clone(),
        account: account.clone(),
        contract: Some(ContractId(o.symbol.clone())),
        symbol: Some(o.symbol.clone()),
        side: side(&o.side)?,
        order_type: Some(order_type(&o.order_type)),
        qty: Some(contracts(o.quantity)?),
        price: o.limit_price,
        stop_price: o.stop_price,
        status: status(o.status),
        filled_qty: Some(contracts(o.filled_quantity)?),
        avg_fill_price: o.filled_price,
        parent: None,
        linked: None,
        reject_reason: None,
        timestamp: None,
    })
}

/// A position as the platform reports it.
///
/// # Errors
/// `Transport` when the quantity cannot be read.
pub fn position_report(account: &AccountId, p: &WbPosition) -> Result<PositionReport, BrokerError> {
    let net = p.net();
    let net_qty = if net.fract().is_zero() {
        net.to_i64()
    } else {
        None
    }
    .ok_or_else(|| BrokerError::transport(format!("position quantity {net} is not whole")))?;
    Ok(PositionReport {
        account: account.clone(),
        contract: ContractId(p.symbol.clone()),
        symbol: Some(p.symbol.clone()),
        net_qty,
        avg_price: p.cost_price,
        timestamp: None,
    })
}

/// Webull's `new_orders` element for one order on `symbol`.
#[must_use]
pub fn new_order(
    client_order_id: &str,
    symbol: &str,
    side: Side,
    qty: Contracts,
    kind: &OrderKind,
    time_in_force: TimeInForce,
) -> WbNewOrder {
    let (order_type, limit, stop) = match kind {
        OrderKind::Market => ("MARKET", None, None),
        OrderKind::Limit { price } => ("LIMIT", Some(price.value()), None),
        OrderKind::Stop { stop } => ("STOP_LOSS", None, Some(stop.value())),
        OrderKind::StopLimit { stop, price } => {
            ("STOP_LOSS_LIMIT", Some(price.value()), Some(stop.value()))
        }
    };
    WbNewOrder {
        client_order_id: client_order_id.to_string(),
        instrument_type: "FUTURES",
        symbol: symbol.to_string(),
        market: "US",
        side: side_name(side),
        order_type,
        quantity: qty.to_string(),
        limit_price: limit.map(|d| d.normalize().to_string()),
        stop_price: stop.map(|d| d.normalize().to_string()),
        time_in_force: match time_in_force {
            TimeInForce::Day => "DAY",
            TimeInForce::Gtc => "GTC",
        },
        entrust_type: "QTY",
    }
}

/// Webull's contract name for a month given as `MNQZ6`, `MNQZ26` or `MNQZ2026`
/// (root + month code + the year's last digit), or `None` when `symbol` names no month.
#[must_use]
pub fn contract_name(root: &str, symbol: &str) -> Option<String> {
    let t = symbol.trim().to_ascii_uppercase();
    let t = t.rsplit(':').next().unwrap_or(&t);
    let rest = t.strip_prefix(root)?;
    let mut chars = rest.chars();
    let month = chars.next()?;
    let year: String = chars.collect();
    if !"FGHJKMNQUVXZ".contains(month)
        || year.is_empty()
        || year.len() > 4
        || !year.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let last = year.chars().last()?;
    Some(format!("{root}{month}{last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_month_becomes_webulls_contract_name() {
        assert_eq!(contract_name("MNQ", "MNQZ6").as_deref(), Some("MNQZ6"));
        assert_eq!(contract_name("MNQ", "mnqz2026").as_deref(), Some("MNQZ6"));
        assert_eq!(
            contract_name("MNQ", "CME_MINI:MNQH27").as_deref(),
            Some("MNQH7")
        );
        assert_eq!(contract_name("MNQ", "MNQ1!"), None);
        assert_eq!(contract_name("MNQ", "MNQ"), None);
    }

    #[test]
    fn statuses_and_types_map_to_the_platforms() {
        assert_eq!(status(WbStatus::PartialFilled), OrderStatus::Working);
        assert_eq!(status(WbStatus::Failed), OrderStatus::Rejected);
        assert_eq!(order_type("STOP_LOSS"), OrderType::Stop);
        assert_eq!(order_type("whatever"), OrderType::Other);
        assert!(side("HOLD").is_err());
        assert!(contracts(Decimal::new(15, 1)).is_err());
    }
}
