//! The user hub's events (`GatewayUserAccount/Order/Position/Trade`) decoded into typed
//! models and turned into broker-neutral events.
//!
//! Real servers send one argument `{"action": 0|1|2, "data": {…}}` with null fields left out
//! and extra fields (`commissions`, `contractDisplayName`); the docs show the bare model.
//! Both are read. A position's direction is its `type`; `size` is never negative and 0 means
//! flat (the type and average then repeat the last ones).

use chrono::Utc;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::common::enums::{self, action};
use crate::common::models::{HalfTrade, OrderModel, PositionModel, TradingAccount};
use crate::http::client::order_report;
use jt_broker::events::BrokerEvent;
use jt_broker::model::{
    AccountId, CashBalanceReport, ContractId, FillId, FillReport, OrderId, PositionReport,
};

/// One decoded user-hub event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// `GatewayUserAccount`.
    Account(i32, TradingAccount),
    /// `GatewayUserOrder`.
    Order(i32, OrderModel),
    /// `GatewayUserPosition`.
    Position(i32, PositionModel),
    /// `GatewayUserTrade`.
    Trade(i32, HalfTrade),
    /// `GatewayLogout`: the server ended the session.
    Logout,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    action: Option<i32>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// Decodes a user-hub invocation; `Ok(None)` for a target the adapter does not use.
///
/// # Errors
/// A text when the payload does not fit the target's model.
pub fn decode(target: &str, arguments: &[&RawValue]) -> Result<Option<GatewayEvent>, String> {
    if target.eq_ignore_ascii_case("GatewayLogout") {
        return Ok(Some(GatewayEvent::Logout));
    }
    let Some(first) = arguments.first() else {
        return Err(format!("{target} without arguments"));
    };
    let env: Envelope<'_> =
        serde_json::from_str(first.get()).map_err(|e| format!("{target}: {e}"))?;
    let (act, data) = match env.data {
        Some(d) => (env.action.unwrap_or(action::UPDATE), d.get()),
        None => (action::UPDATE, first.get()),
    };
    let err = |e: serde_json::Error| format!("{target}: {e}: {data}");
    Ok(Some(match target {
        "GatewayUserAccount" => {
            GatewayEvent::Account(act, serde_json::from_str(data).map_err(err)?)
        }
        "GatewayUserOrder" => GatewayEvent::Order(act, serde_json::from_str(data).map_err(err)?),
        "GatewayUserPosition" => {
            GatewayEvent::Position(act, serde_json::from_str(data).map_err(err)?)
        }
        "GatewayUserTrade" => GatewayEvent::Trade(act, serde_json::from_str(data).map_err(err)?),
        _ => return Ok(None),
    }))
}

/// The neutral position of a ProjectX position.
///
/// # Errors
/// A text for a non-flat position without a direction (never guessed from the size).
pub fn position_report(
    p: &PositionModel,
    symbol: Option<String>,
) -> Result<PositionReport, String> {
    let net = match (p.size, enums::direction(p.position_type)) {
        (0, _) => 0,
        (size, Some(jt_domain::types::Direction::Long)) => size,
        (size, Some(_)) => -size,
        (size, None) => {
            return Err(format!(
                "position {} of {} has size {size} and type {}",
                p.id, p.contract_id, p.position_type
            ));
        }
    };
    Ok(PositionReport {
        account: AccountId::from(p.account_id),
        contract: ContractId::from(p.contract_id.as_str()),
        symbol: p.contract_display_name.clone().or(symbol),
        net_qty: net,
        avg_price: p.average_price,
        timestamp: p.creation_timestamp,
    })
}

/// The neutral fill of a half-turn trade (`None` for a voided or malformed one).
#[must_use]
pub fn fill_report(
    t: &HalfTrade,
    symbol: Option<String>,
    tag: Option<String>,
) -> Option<FillReport> {
    if t.voided {
        return None;
    }
    let timestamp = t.creation_timestamp.unwrap_or_else(Utc::now);
    Some(FillReport {
        id: FillId::from(t.id),
        order_id: OrderId::from(t.order_id),
        account: AccountId::from(t.account_id),
        contract: ContractId::from(t.contract_id.as_str()),
        symbol,
        side: enums::side(t.side)?,
        qty: u32::try_from(t.size).ok().filter(|q| *q > 0)?,
        price: t.price,
        timestamp,
        trade_date: Some(jt_broker::clock::trading_day(timestamp)),
        client_order_id: tag,
    })
}

/// The cash of an account event.
#[must_use]
pub fn cash_report(a: &TradingAccount) -> CashBalanceReport {
    CashBalanceReport {
        account: AccountId::from(a.id),
        amount: a.balance,
        realized_pnl: None,
        week_realized_pnl: None,
        timestamp: None,
    }
}

/// The neutral event of an order.
#[must_use]
pub fn order_event(o: &OrderModel, symbol: Option<String>) -> Option<BrokerEvent> {
    order_report(o, symbol).map(BrokerEvent::Order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn the_real_envelope_and_the_documented_bare_object_both_decode() {
        let real = raw(
            r#"{"action":1,"data":{"id":9,"accountId":7,"contractId":"CON.F.US.MNQ.Z25","creationTimestamp":"2026-05-06T13:36:03.4962794+00:00","type":1,"size":15,"averagePrice":49909.0,"contractDisplayName":"MYMM26"}}"#,
        );
        match decode("GatewayUserPosition", &[&real]).unwrap() {
            Some(GatewayEvent::Position(1, p)) => {
                let r = position_report(&p, None).unwrap();
                assert_eq!((r.net_qty, r.avg_price), (15, Some(dec!(49909))));
                assert_eq!(r.symbol.as_deref(), Some("MYMM26"));
            }
            other => panic!("{other:?}"),
        }
        let bare = raw(
            r#"{"id":9,"accountId":7,"contractId":"C","type":2,"size":3,"averagePrice":100.25}"#,
        );
        match decode("GatewayUserPosition", &[&bare]).unwrap() {
            Some(GatewayEvent::Position(act, p)) => {
                assert_eq!(act, action::UPDATE);
                assert_eq!(
                    position_report(&p, None).unwrap().net_qty,
                    -3,
                    "direction from type"
                );
            }
            other => panic!("{other:?}"),
        }
        let flat = raw(
            r#"{"action":1,"data":{"id":9,"accountId":7,"contractId":"C","type":1,"size":0,"averagePrice":1}}"#,
        );
        let Ok(Some(GatewayEvent::Position(_, p))) = decode("GatewayUserPosition", &[&flat]) else {
            panic!()
        };
        assert_eq!(position_report(&p, None).unwrap().net_qty, 0);
        let nodir =
            raw(r#"{"id":9,"accountId":7,"contractId":"C","type":0,"size":2,"averagePrice":1}"#);
        let Ok(Some(GatewayEvent::Position(_, p))) = decode("GatewayUserPosition", &[&nodir])
        else {
            panic!()
        };
        assert!(
            position_report(&p, None).is_err(),
            "never guessed from the size"
        );
        assert_eq!(decode("GatewayOther", &[&bare]).unwrap(), None);
        assert_eq!(
            decode("GatewayLogout", &[]).unwrap(),
            Some(GatewayEvent::Logout)
        );
    }

    #[test]
    fn trades_without_pnl_and_with_extra_fields() {
        let t = raw(
            r#"{"action":0,"data":{"id":5,"accountId":7,"contractId":"C","creationTimestamp":"2026-05-06T13:36:03.4962794+00:00","price":21000.25,"fees":0.37,"commissions":0.5,"side":0,"size":2,"voided":false,"orderId":4}}"#,
        );
        let Ok(Some(GatewayEvent::Trade(0, t))) = decode("GatewayUserTrade", &[&t]) else {
            panic!()
        };
        assert_eq!(t.profit_and_loss, None);
        let f = fill_report(&t, None, Some("jt-1".into())).unwrap();
        assert_eq!(
            (f.qty, f.price, f.client_order_id.as_deref()),
            (2, dec!(21000.25), Some("jt-1"))
        );
    }
}
