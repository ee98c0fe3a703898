//! Tradovate entities as REST returns them and `props` events carry them (BROKERS.md §1.4).
//! Unknown fields are ignored (real servers send more than the schema); fields the schema marks
//! optional are `Option`; numbers that are prices or money are exact decimals.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use jt_net::exact;

/// `{year, month, day}` as Tradovate spells a trading date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeDate {
    /// Year.
    pub year: i32,
    /// Month 1–12.
    pub month: u32,
    /// Day 1–31.
    pub day: u32,
}

impl TradeDate {
    /// As a calendar date, when valid.
    #[must_use]
    pub fn to_date(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, self.day)
    }
}

/// `Account`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Id.
    pub id: i64,
    /// Name (`accountSpec` in orders).
    pub name: String,
    /// Owning user.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// Active.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// `Contract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    /// Id.
    pub id: i64,
    /// Name, e.g. `MNQZ5`.
    pub name: String,
    /// Maturity.
    #[serde(default)]
    pub contract_maturity_id: Option<i64>,
}

/// `ContractMaturity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractMaturity {
    /// Id.
    pub id: i64,
    /// Product.
    #[serde(default)]
    pub product_id: Option<i64>,
    /// `YYMM` as an integer.
    #[serde(default)]
    pub expiration_month: Option<i64>,
    /// Expiration instant.
    #[serde(default)]
    pub expiration_date: Option<DateTime<Utc>>,
    /// Whether this is the front month.
    #[serde(default)]
    pub is_front: bool,
}

/// `Product`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// Id.
    pub id: i64,
    /// Root, e.g. `MNQ`.
    pub name: String,
    /// Tick size.
    #[serde(with = "exact::option", default)]
    pub tick_size: Option<Decimal>,
    /// Dollar value of one point.
    #[serde(with = "exact::option", default)]
    pub value_per_point: Option<Decimal>,
}

/// `Position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// Id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Account.
    pub account_id: i64,
    /// Contract.
    pub contract_id: i64,
    /// Last change.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// Trading date.
    #[serde(default)]
    pub trade_date: Option<TradeDate>,
    /// Signed net position.
    pub net_pos: i64,
    /// Average price of the net position.
    #[serde(with = "exact::option", default)]
    pub net_price: Option<Decimal>,
    /// Contracts bought today.
    #[serde(default)]
    pub bought: Option<i64>,
    /// Contracts sold today.
    #[serde(default)]
    pub sold: Option<i64>,
    /// Position carried from the previous day.
    #[serde(default)]
    pub prev_pos: Option<i64>,
    /// Its price.
    #[serde(with = "exact::option", default)]
    pub prev_price: Option<Decimal>,
}

/// `Order` (no price, quantity or type: those live on [`OrderVersion`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Id.
    pub id: i64,
    /// Account.
    pub account_id: i64,
    /// Contract.
    #[serde(default)]
    pub contract_id: Option<i64>,
    /// Create time.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// `Buy` or `Sell`.
    pub action: String,
    /// Status.
    pub ord_status: String,
    /// OCO partner.
    #[serde(default)]
    pub oco_id: Option<i64>,
    /// Parent order (bracket legs).
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// Linked order.
    #[serde(default)]
    pub linked_id: Option<i64>,
    /// Placed by an administrator.
    #[serde(default)]
    pub admin: Option<bool>,
}

/// `OrderVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderVersion {
    /// Id.
    pub id: i64,
    /// Order.
    pub order_id: i64,
    /// Quantity.
    #[serde(default)]
    pub order_qty: Option<i64>,
    /// Type.
    #[serde(default)]
    pub order_type: Option<String>,
    /// Limit price.
    #[serde(with = "exact::option", default)]
    pub price: Option<Decimal>,
    /// Stop price.
    #[serde(with = "exact::option", default)]
    pub stop_price: Option<Decimal>,
    /// Time in force.
    #[serde(default)]
    pub time_in_force: Option<String>,
}

/// `Command` (carries the `clOrdId` we sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    /// Id.
    pub id: i64,
    /// Order.
    pub order_id: i64,
    /// When.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// Our client order id.
    #[serde(default)]
    pub cl_ord_id: Option<String>,
    /// `New`, `Cancel`, `Modify`.
    #[serde(default)]
    pub command_type: Option<String>,
    /// Status.
    #[serde(default)]
    pub command_status: Option<String>,
    /// Automated flag as sent.
    #[serde(default)]
    pub is_automated: Option<bool>,
}

/// `Fill` (no account: join through the order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fill {
    /// Id.
    pub id: i64,
    /// Order.
    pub order_id: i64,
    /// Contract.
    pub contract_id: i64,
    /// When.
    pub timestamp: DateTime<Utc>,
    /// Trading date.
    #[serde(default)]
    pub trade_date: Option<TradeDate>,
    /// `Buy` or `Sell`.
    pub action: String,
    /// Quantity.
    pub qty: i64,
    /// Price.
    #[serde(with = "exact")]
    pub price: Decimal,
    /// Active (false once busted).
    #[serde(default = "yes")]
    pub active: bool,
}

/// `CashBalance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CashBalance {
    /// Id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Account.
    pub account_id: i64,
    /// When.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// Trading date.
    #[serde(default)]
    pub trade_date: Option<TradeDate>,
    /// Currency.
    #[serde(default)]
    pub currency_id: Option<i64>,
    /// Amount.
    #[serde(with = "exact")]
    pub amount: Decimal,
    /// Realized P&L of the day.
    #[serde(rename = "realizedPnL", with = "exact::option", default)]
    pub realized_pnl: Option<Decimal>,
    /// Realized P&L of the week.
    #[serde(rename = "weekRealizedPnL", with = "exact::option", default)]
    pub week_realized_pnl: Option<Decimal>,
}

/// `ExecutionReport`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionReport {
    /// Id.
    pub id: i64,
    /// Order.
    pub order_id: i64,
    /// Account.
    pub account_id: i64,
    /// Contract.
    #[serde(default)]
    pub contract_id: Option<i64>,
    /// When.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// Execution type (`New`, `Trade`, `Rejected`, …).
    pub exec_type: String,
    /// Order status after it.
    #[serde(default)]
    pub ord_status: Option<String>,
    /// `Buy` or `Sell`.
    #[serde(default)]
    pub action: Option<String>,
    /// Cumulative filled quantity.
    #[serde(default)]
    pub cum_qty: Option<i64>,
    /// Average fill price.
    #[serde(with = "exact::option", default)]
    pub avg_px: Option<Decimal>,
    /// Reject reason.
    #[serde(default)]
    pub reject_reason: Option<String>,
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
}

/// `OrderStrategy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderStrategy {
    /// Id.
    pub id: i64,
    /// Account.
    #[serde(default)]
    pub account_id: Option<i64>,
    /// Contract.
    #[serde(default)]
    pub contract_id: Option<i64>,
    /// `Buy` or `Sell`.
    #[serde(default)]
    pub action: Option<String>,
    /// The parameters, a JSON string.
    #[serde(default)]
    pub params: Option<String>,
    /// Our id for it (the entry's client order id).
    #[serde(default)]
    pub uuid: Option<String>,
    /// Status.
    #[serde(default)]
    pub status: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub failure_message: Option<String>,
    /// When.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `OrderStrategyLink`: which orders a strategy created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderStrategyLink {
    /// Id.
    pub id: i64,
    /// Strategy.
    pub order_strategy_id: i64,
    /// Order.
    pub order_id: i64,
    /// Role label.
    #[serde(default)]
    pub label: Option<String>,
}
