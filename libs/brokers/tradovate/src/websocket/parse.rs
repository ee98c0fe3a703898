//! Tradovate entities → broker-neutral reports (shared by REST reads and socket events).

use crate::common::entities as wire;
use crate::common::enums;
use jt_broker::model::{
    AccountId, CashBalanceReport, ContractId, FillId, FillReport, OrderId, OrderReport,
    PositionReport,
};

/// A position report.
#[must_use]
pub fn position(p: &wire::Position, symbol: Option<String>) -> PositionReport {
    PositionReport {
        account: AccountId::from(p.account_id),
        contract: ContractId::from(p.contract_id),
        symbol,
        net_qty: p.net_pos,
        avg_price: p
            .net_price
            .or(if p.net_pos == 0 { None } else { p.prev_price }),
        timestamp: p.timestamp,
    }
}

fn qty(n: Option<i64>) -> Option<u32> {
    n.and_then(|q| u32::try_from(q).ok())
}

/// An order report from the order and its latest version; `None` when the action is not
/// `Buy`/`Sell`.
#[must_use]
pub fn order(
    o: &wire::Order,
    version: Option<&wire::OrderVersion>,
    symbol: Option<String>,
    client_order_id: Option<String>,
) -> Option<OrderReport> {
    Some(OrderReport {
        id: OrderId::from(o.id),
        client_order_id,
        account: AccountId::from(o.account_id),
        contract: o.contract_id.map(ContractId::from),
        symbol,
        side: enums::side(&o.action)?,
        order_type: version
            .and_then(|v| v.order_type.as_deref())
            .map(enums::order_type),
        qty: version.and_then(|v| qty(v.order_qty)),
        price: version.and_then(|v| v.price),
        stop_price: version.and_then(|v| v.stop_price),
        status: enums::order_status(&o.ord_status),
        filled_qty: None,
        avg_fill_price: None,
        parent: o.parent_id.map(|p| p.to_string()),
        linked: o.linked_id.map(OrderId::from),
        reject_reason: None,
        timestamp: o.timestamp,
    })
}

/// A fill report for `account` (fills carry no account); `None` for a bad action or quantity.
#[must_use]
pub fn fill(
    f: &wire::Fill,
    account: AccountId,
    symbol: Option<String>,
    client_order_id: Option<String>,
) -> Option<FillReport> {
    Some(FillReport {
        id: FillId::from(f.id),
        order_id: OrderId::from(f.order_id),
        account,
        contract: ContractId::from(f.contract_id),
        symbol,
        side: enums::side(&f.action)?,
        qty: u32::try_from(f.qty).ok().filter(|q| *q > 0)?,
        price: f.price,
        timestamp: f.timestamp,
        trade_date: f.trade_date.and_then(wire::TradeDate::to_date),
        client_order_id,
    })
}

/// A cash balance report.
#[must_use]
pub fn cash_balance(c: &wire::CashBalance) -> CashBalanceReport {
    CashBalanceReport {
        account: AccountId::from(c.account_id),
        amount: c.amount,
        realized_pnl: c.realized_pnl,
        week_realized_pnl: c.week_realized_pnl,
        timestamp: c.timestamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_broker::model::{OrderStatus, OrderType};
    use jt_domain::types::Side;
    use rust_decimal_macros::dec;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/test_data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn positions_from_the_documented_shape() {
        let list: Vec<wire::Position> =
            serde_json::from_str(&fixture("position_list.json")).unwrap();
        let p = position(&list[0], Some("MNQZ5".into()));
        assert_eq!(p.account, AccountId::from(12345));
        assert_eq!(p.net_qty, 3);
        assert_eq!(p.avg_price, Some(dec!(22050.25)));
        assert_eq!(p.symbol.as_deref(), Some("MNQZ5"));
        let flat = position(&list[1], None);
        assert_eq!(flat.net_qty, 0);
    }

    #[test]
    fn orders_join_their_latest_version() {
        let orders: Vec<wire::Order> = serde_json::from_str(&fixture("order_list.json")).unwrap();
        let versions: Vec<wire::OrderVersion> =
            serde_json::from_str(&fixture("order_version_list.json")).unwrap();
        let latest = versions
            .iter()
            .filter(|v| v.order_id == orders[0].id)
            .max_by_key(|v| v.id);
        let o = order(&orders[0], latest, None, None).unwrap();
        assert_eq!(o.status, OrderStatus::Working);
        assert_eq!(o.side, Side::Sell);
        assert_eq!(o.order_type, Some(OrderType::Limit));
        assert_eq!(o.qty, Some(1));
        assert_eq!(o.price, Some(dec!(22200)));
    }

    #[test]
    fn fills_need_an_account_from_elsewhere() {
        let fills: Vec<wire::Fill> = serde_json::from_str(&fixture("fill_list.json")).unwrap();
        let f = fill(&fills[0], AccountId::from(12345), None, Some("jt-1".into())).unwrap();
        assert_eq!(f.price, dec!(22050.25));
        assert_eq!(f.qty, 1);
        assert_eq!(f.side, Side::Buy);
        assert_eq!(f.trade_date.unwrap().to_string(), "2025-12-08");
    }
}
