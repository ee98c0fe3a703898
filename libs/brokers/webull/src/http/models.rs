//! Webull wire models (the official SDKs' v2 trading paths; fields the public material does
//! not show are chosen and listed in docs/brokers.md "Webull"). Prices and quantities travel as
//! decimal strings, never through a binary float.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One account of `GET /openapi/account/list`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WbAccount {
    /// The id every trading call names (`?account_id=`).
    pub account_id: String,
    /// The account number shown to the user.
    pub account_number: String,
    /// `FUTURES`, …
    #[serde(default)]
    pub account_type: Option<String>,
    /// `ACTIVE` or not.
    #[serde(default)]
    pub account_status: Option<String>,
}

/// A new order (one element of `new_orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WbNewOrder {
    /// Our id, unique per account; every later call names the order by it.
    pub client_order_id: String,
    /// `FUTURES`.
    pub instrument_type: &'static str,
    /// The contract (`MNQZ6`).
    pub symbol: String,
    /// `US`.
    pub market: &'static str,
    /// `BUY` or `SELL`.
    pub side: &'static str,
    /// `MARKET`, `LIMIT`, `STOP_LOSS`, `STOP_LOSS_LIMIT`.
    pub order_type: &'static str,
    /// Contracts, as text.
    pub quantity: String,
    /// Limit price, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    /// Stop price, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<String>,
    /// `DAY` or `GTC`.
    pub time_in_force: &'static str,
    /// `QTY`.
    pub entrust_type: &'static str,
}

/// A change of a working order (one element of `modify_orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WbModify {
    /// The order.
    pub client_order_id: String,
    /// New quantity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
    /// New limit price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    /// New stop price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<String>,
}

/// The answer of place, replace and cancel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WbPlaced {
    /// Ours.
    pub client_order_id: String,
    /// Webull's.
    pub order_id: String,
}

/// Webull's order status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WbStatus {
    /// Working, nothing filled.
    Submitted,
    /// Working, partly filled.
    PartialFilled,
    /// Completely filled.
    Filled,
    /// Cancelled (by us, by expiry).
    Cancelled,
    /// Refused.
    Failed,
}

impl WbStatus {
    /// Still working at the broker.
    #[must_use]
    pub fn is_working(self) -> bool {
        matches!(self, Self::Submitted | Self::PartialFilled)
    }
}

/// An order as `orders/detail` and `orders/list-open` answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WbOrder {
    /// Ours.
    pub client_order_id: Option<String>,
    /// Webull's.
    pub order_id: String,
    /// The contract.
    pub symbol: String,
    /// `BUY` or `SELL`.
    pub side: String,
    /// `MARKET`, `LIMIT`, `STOP_LOSS`, `STOP_LOSS_LIMIT`.
    pub order_type: String,
    /// Ordered.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Filled so far.
    #[serde(with = "rust_decimal::serde::str")]
    pub filled_quantity: Decimal,
    /// Limit price.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub limit_price: Option<Decimal>,
    /// Stop price.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub stop_price: Option<Decimal>,
    /// Average fill price.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub filled_price: Option<Decimal>,
    /// Status.
    pub status: WbStatus,
}

/// A position of `GET /openapi/account/positions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WbPosition {
    /// The contract.
    pub symbol: String,
    /// `LONG` or `SHORT`.
    pub position_side: String,
    /// Contracts held (unsigned).
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Average price.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub cost_price: Option<Decimal>,
}

impl WbPosition {
    /// Signed contracts: > 0 long, < 0 short.
    #[must_use]
    pub fn net(&self) -> Decimal {
        if self.position_side.eq_ignore_ascii_case("SHORT") {
            -self.quantity
        } else {
            self.quantity
        }
    }
}

/// Webull's error body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WbError {
    /// `INVALID_SIGNATURE`, `TOO_MANY_REQUESTS`, …
    pub error_code: String,
    /// Text.
    #[serde(default)]
    pub message: String,
}

/// A listed futures contract of `GET /openapi/instrument/futures/list` (*chosen* path and
/// shape: Webull documents a "Futures Contracts" endpoint; the simulator answers this).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WbInstrument {
    /// The contract (`MNQZ6`): what orders name.
    pub symbol: String,
    /// The product code (`MNQ`).
    pub code: String,
    /// The last trading day (`2026-12-18`), when given.
    #[serde(default)]
    pub expire_date: Option<String>,
}

/// The cash of `GET /openapi/account/balance` (*chosen* shape).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WbBalance {
    /// The account.
    pub account_id: String,
    /// Cash, as text (never through a float).
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub total_cash_balance: Option<Decimal>,
}
