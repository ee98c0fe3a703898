//! Tradovate's entity shapes of `shared/protocols/BROKERS.md` §1.4 for what the simulator
//! answers. Writers omit absent optional fields, as Tradovate does; the lenient readers and the
//! number writer are the simulator's shared [`crate::wire`].

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::core::catalog::{Catalog, Contract, Named, Product};
use crate::core::clock::iso;
use crate::core::model::{
    Account, CashBalance, Command, CommandReport, ExecutionReport, Fill, FillPair, Id, Order,
    OrderStrategy, OrderStrategyLink, OrderVersion, Position, TradeDate, User,
};
use crate::wire::{Obj, num};

fn enum_str<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// `TradeDate`.
#[must_use]
pub fn trade_date(t: TradeDate) -> Value {
    json!({"year": t.year, "month": t.month, "day": t.day})
}

/// `User`.
#[must_use]
pub fn user(u: &User) -> Value {
    Obj::new()
        .set("id", u.id)
        .set("name", u.name.clone())
        .set("timestamp", iso(u.timestamp_us))
        .set(
            "email",
            format!("{}@sim.invalid", u.name.to_ascii_lowercase()),
        )
        .set("status", "Active")
        .set("professional", false)
        .done()
}

/// `Account`.
#[must_use]
pub fn account(a: &Account) -> Value {
    Obj::new()
        .set("id", a.id)
        .set("name", a.name.clone())
        .set("userId", a.user_id)
        .set("accountType", "Customer")
        .set("active", a.active)
        .set("clearingHouseId", 1)
        .set("riskCategoryId", 1)
        .set("autoLiqProfileId", 1)
        .set("marginAccountType", "Speculator")
        .set("legalStatus", "Individual")
        .set("archived", false)
        .set("timestamp", iso(a.timestamp_us))
        .set("readonly", false)
        .done()
}

/// `AccountRiskStatus` (one per account, same id).
#[must_use]
pub fn account_risk_status(a: &Account) -> Value {
    Obj::new()
        .set("id", a.id)
        .set("adminAction", "Normal")
        .set("userTriggeredLiqOnly", false)
        .done()
}

/// `MarginSnapshot` (one per account, same id).
#[must_use]
pub fn margin_snapshot(a: &Account, initial: Decimal, maintenance: Decimal, now_us: i64) -> Value {
    Obj::new()
        .set("id", a.id)
        .set("timestamp", iso(now_us))
        .set("riskTimePeriodId", 1)
        .set("initialMargin", num(initial))
        .set("maintenanceMargin", num(maintenance))
        .set("totalUsedMargin", num(initial))
        .set("fullInitialMargin", num(initial))
        .done()
}

/// `UserAccountAutoLiq` (one per account, same id; no limits configured).
#[must_use]
pub fn user_account_auto_liq(a: &Account) -> Value {
    Obj::new()
        .set("id", a.id)
        .set("changesLocked", false)
        .set("doNotUnlock", false)
        .done()
}

/// `Contract`.
#[must_use]
pub fn contract(c: &Contract, p: &Product) -> Value {
    Obj::new()
        .set("id", c.id)
        .set("name", c.name.clone())
        .set("contractMaturityId", c.maturity_id)
        .set("status", "DefinitionChecked")
        .set("providerTickSize", num(p.instrument.tick_size))
        .done()
}

/// `ContractMaturity`.
#[must_use]
pub fn contract_maturity(c: &Contract, p: &Product) -> Value {
    Obj::new()
        .set("id", c.maturity_id)
        .set("productId", p.id)
        .set("expirationMonth", c.expiration_month)
        .set(
            "expirationDate",
            format!("{}T21:00:00.000Z", c.expiration_date.format("%Y-%m-%d")),
        )
        .set("isFront", c.is_front)
        .done()
}

/// `Product`.
#[must_use]
pub fn product(p: &Product) -> Value {
    Obj::new()
        .set("id", p.id)
        .set("name", p.name.clone())
        .set("currencyId", crate::core::catalog::USD)
        .set("productType", "Futures")
        .set("description", p.description.clone())
        .set("exchangeId", p.exchange_id)
        .set("exchangeChannelId", p.exchange_id)
        .set("contractGroupId", p.contract_group_id)
        .set("riskDiscountContractGroupId", p.contract_group_id)
        .set("status", "Verified")
        .set("months", p.months.clone())
        .set("isSecured", false)
        .set("valuePerPoint", num(p.value_per_point()))
        .set("priceFormatType", "Decimal")
        .set("priceFormat", p.price_format)
        .set("tickSize", num(p.instrument.tick_size))
        .set("allowProviderContractInfo", false)
        .set(
            "isMicro",
            p.instrument.partner.is_some_and(|x| !x.partner_is_micro),
        )
        .set("marketDataSource", "CQG")
        .done()
}

/// A named static entity.
#[must_use]
pub fn named(n: &Named) -> Value {
    json!({"id": n.id, "name": n.name})
}

/// `Currency`.
#[must_use]
pub fn currency(n: &Named) -> Value {
    json!({"id": n.id, "name": n.name, "symbol": "$"})
}

/// `OrderStrategyType`.
#[must_use]
pub fn order_strategy_type(n: &Named) -> Value {
    json!({"id": n.id, "name": n.name, "enabled": true})
}

/// `Order` (no price, quantity or type: those are on `OrderVersion`).
#[must_use]
pub fn order(o: &Order) -> Value {
    Obj::new()
        .set("id", o.id)
        .set("accountId", o.account_id)
        .set("contractId", o.contract_id)
        .set("timestamp", iso(o.timestamp_us))
        .set("action", o.action.as_str())
        .set("ordStatus", enum_str(&o.ord_status))
        .set("executionProviderId", 1)
        .opt("ocoId", o.oco_id)
        .opt("parentId", o.parent_id)
        .opt("linkedId", o.linked_id)
        .set("admin", o.admin)
        .done()
}

/// `OrderVersion`.
#[must_use]
pub fn order_version(v: &OrderVersion) -> Value {
    Obj::new()
        .set("id", v.id)
        .set("orderId", v.order_id)
        .set("orderQty", v.order_qty)
        .set("orderType", enum_str(&v.order_type))
        .dec("price", v.price)
        .dec("stopPrice", v.stop_price)
        .opt("maxShow", v.max_show)
        .dec("pegDifference", v.peg_difference)
        .opt("timeInForce", v.time_in_force.map(|t| enum_str(&t)))
        .opt("expireTime", v.expire_time.clone())
        .opt("text", v.text.clone())
        .done()
}

/// `Command`.
#[must_use]
pub fn command(c: &Command) -> Value {
    Obj::new()
        .set("id", c.id)
        .set("orderId", c.order_id)
        .set("timestamp", iso(c.timestamp_us))
        .opt("clOrdId", c.cl_ord_id.clone())
        .set("commandType", enum_str(&c.command_type))
        .set("commandStatus", enum_str(&c.command_status))
        .opt("senderId", c.sender_id)
        .opt("userSessionId", c.user_session_id)
        .opt("activationTime", c.activation_time.clone())
        .opt("customTag50", c.custom_tag50.clone())
        .set("isAutomated", c.is_automated)
        .done()
}

/// `CommandReport`.
#[must_use]
pub fn command_report(c: &CommandReport) -> Value {
    Obj::new()
        .set("id", c.id)
        .set("commandId", c.command_id)
        .set("timestamp", iso(c.timestamp_us))
        .set("commandStatus", enum_str(&c.command_status))
        .opt("rejectReason", c.reject_reason.map(|r| enum_str(&r)))
        .opt("text", c.text.clone())
        .opt("ordStatus", c.ord_status.map(|s| enum_str(&s)))
        .done()
}

/// `ExecutionReport`.
#[must_use]
pub fn execution_report(e: &ExecutionReport) -> Value {
    Obj::new()
        .set("id", e.id)
        .set("commandId", e.command_id)
        .set("name", e.id.to_string())
        .set("accountId", e.account_id)
        .set("contractId", e.contract_id)
        .set("timestamp", iso(e.timestamp_us))
        .set("tradeDate", trade_date(e.trade_date))
        .set("orderId", e.order_id)
        .set("execType", enum_str(&e.exec_type))
        .set("execRefId", e.id.to_string())
        .set("ordStatus", enum_str(&e.ord_status))
        .set("action", e.action.as_str())
        .set("cumQty", e.cum_qty)
        .dec("avgPx", e.avg_px)
        .opt("lastQty", e.last_qty)
        .dec("lastPx", e.last_px)
        .opt("rejectReason", e.reject_reason.map(|r| enum_str(&r)))
        .opt("text", e.text.clone())
        .set("exchangeOrderId", format!("SIM{}", e.order_id))
        .done()
}

/// `Fill` (no account id: join through the order).
#[must_use]
pub fn fill(f: &Fill) -> Value {
    Obj::new()
        .set("id", f.id)
        .set("orderId", f.order_id)
        .set("contractId", f.contract_id)
        .set("timestamp", iso(f.timestamp_us))
        .set("tradeDate", trade_date(f.trade_date))
        .set("action", f.action.as_str())
        .set("qty", f.qty)
        .set("price", num(f.price))
        .set("active", f.active)
        .set("finallyPaired", f.finally_paired)
        .done()
}

/// `FillPair`.
#[must_use]
pub fn fill_pair(p: &FillPair) -> Value {
    Obj::new()
        .set("id", p.id)
        .set("positionId", p.position_id)
        .set("buyFillId", p.buy_fill_id)
        .set("sellFillId", p.sell_fill_id)
        .set("qty", p.qty)
        .set("buyPrice", num(p.buy_price))
        .set("sellPrice", num(p.sell_price))
        .set("active", p.active)
        .done()
}

/// `Position`.
#[must_use]
pub fn position(p: &Position) -> Value {
    Obj::new()
        .set("id", p.id)
        .set("accountId", p.account_id)
        .set("contractId", p.contract_id)
        .set("timestamp", iso(p.timestamp_us))
        .set("tradeDate", trade_date(p.trade_date))
        .set("netPos", p.net_pos)
        .dec("netPrice", p.net_price)
        .set("bought", p.bought)
        .set("boughtValue", num(p.bought_value))
        .set("sold", p.sold)
        .set("soldValue", num(p.sold_value))
        .set("prevPos", p.prev_pos)
        .dec("prevPrice", p.prev_price)
        .done()
}

/// `CashBalance`.
#[must_use]
pub fn cash_balance(c: &CashBalance) -> Value {
    Obj::new()
        .set("id", c.id)
        .set("accountId", c.account_id)
        .set("timestamp", iso(c.timestamp_us))
        .set("tradeDate", trade_date(c.trade_date))
        .set("currencyId", c.currency_id)
        .set("amount", num(c.amount))
        .set("realizedPnL", num(c.realized_pnl))
        .set("weekRealizedPnL", num(c.week_realized_pnl))
        .done()
}

/// `OrderStrategy`.
#[must_use]
pub fn order_strategy(s: &OrderStrategy) -> Value {
    Obj::new()
        .set("id", s.id)
        .set("accountId", s.account_id)
        .set("timestamp", iso(s.timestamp_us))
        .set("contractId", s.contract_id)
        .set("orderStrategyTypeId", s.order_strategy_type_id)
        .opt("initiatorId", s.sender_id)
        .set("action", s.action.as_str())
        .set("params", s.params.clone())
        .opt("uuid", s.uuid.clone())
        .set("status", enum_str(&s.status))
        .opt("failureMessage", s.failure_message.clone())
        .opt("senderId", s.sender_id)
        .opt("customTag50", s.custom_tag50.clone())
        .opt("userSessionId", s.user_session_id)
        .done()
}

/// `OrderStrategyLink`.
#[must_use]
pub fn order_strategy_link(l: &OrderStrategyLink) -> Value {
    json!({
        "id": l.id,
        "orderStrategyId": l.order_strategy_id,
        "orderId": l.order_id,
        "label": l.label,
    })
}

/// A contract's JSON from the catalog.
#[must_use]
pub fn contract_by_id(cat: &Catalog, id: Id) -> Option<Value> {
    let c = cat.contract(id)?;
    Some(contract(c, cat.product_of(c)))
}
