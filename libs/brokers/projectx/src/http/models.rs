//! Request and response bodies of ProjectX's REST endpoints (the server's swagger models,
//! BROKERS.md §2.5). Requests serialise exactly what the docs show (numbers as number text,
//! never through `f64`); responses carry the envelope `{success, errorCode, errorMessage}`
//! explicitly (a flattened envelope would lose the exact numbers).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::common::models::{
    Bar, ContractModel, HalfTrade, OrderModel, PositionModel, TradingAccount,
};
use jt_net::exact;

/// The envelope every response carries: checked explicitly, never for truthiness.
pub trait Envelope {
    /// `success`.
    fn success(&self) -> bool;
    /// `errorCode` (0 on success).
    fn error_code(&self) -> i32;
    /// `errorMessage`.
    fn error_message(&self) -> Option<&str>;
}

macro_rules! response {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Whether the call succeeded.
            #[serde(default)]
            pub success: bool,
            /// The endpoint's error code (0 = success).
            #[serde(default)]
            pub error_code: i32,
            /// The error text.
            #[serde(default)]
            pub error_message: Option<String>,
            $($(#[$fdoc])* #[serde(default)] pub $field: $ty,)*
        }

        impl Envelope for $name {
            fn success(&self) -> bool {
                self.success
            }
            fn error_code(&self) -> i32 {
                self.error_code
            }
            fn error_message(&self) -> Option<&str> {
                self.error_message.as_deref()
            }
        }
    };
}

response!(
    /// `Auth/loginKey`, `Auth/loginApp`.
    LoginResponse { /// The session token.
    token: Option<String> }
);
response!(
    /// `Auth/validate`.
    ValidateResponse { /// A fresh token in the same session.
    new_token: Option<String> }
);
response!(
    /// `Auth/logout`, `Order/cancel`, `Order/modify`, `Position/closeContract`,
    /// `Position/partialCloseContract`.
    EmptyResponse {}
);
response!(
    /// `Account/search`.
    AccountsResponse { /// Accounts.
    accounts: Option<Vec<TradingAccount>> }
);
response!(
    /// `Contract/search`, `Contract/available`.
    ContractsResponse { /// Contracts.
    contracts: Option<Vec<ContractModel>> }
);
response!(
    /// `Contract/searchById`.
    ContractResponse { /// The contract.
    contract: Option<ContractModel> }
);
response!(
    /// `History/retrieveBars`.
    BarsResponse { /// Bars, newest first.
    bars: Option<Vec<Bar>> }
);
response!(
    /// `Order/search`, `Order/searchOpen`.
    OrdersResponse { /// Orders.
    orders: Option<Vec<OrderModel>> }
);
response!(
    /// `Order/place`.
    PlaceOrderResponse { /// The new order's id.
    order_id: Option<i64> }
);
response!(
    /// `Position/searchOpen`.
    PositionsResponse { /// Open positions.
    positions: Option<Vec<PositionModel>> }
);
response!(
    /// `Trade/search`.
    TradesResponse { /// Half-turn trades.
    trades: Option<Vec<HalfTrade>> }
);

/// `Auth/loginKey`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginKeyRequest<'a> {
    /// User name.
    pub user_name: &'a str,
    /// API key.
    pub api_key: &'a str,
}

/// `{accountId}` (`Order/searchOpen`, `Position/searchOpen`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRequest {
    /// Account.
    pub account_id: i64,
}

/// `Account/search`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSearchRequest {
    /// Only accounts that may trade.
    pub only_active_accounts: bool,
}

/// `Contract/search`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractSearchRequest<'a> {
    /// Search text.
    pub search_text: &'a str,
    /// Live data subscription (false: delayed/sim).
    pub live: bool,
}

/// `Contract/searchById`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractByIdRequest<'a> {
    /// Contract id.
    pub contract_id: &'a str,
}

/// `Order/search`, `Trade/search`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeRangeRequest {
    /// Account.
    pub account_id: i64,
    /// From (ISO-8601).
    pub start_timestamp: String,
    /// Until (ISO-8601), when bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<String>,
}

/// `PlaceOrderBracket`: `ticks` from the fill (signed: a long's stop negative) and the
/// child's order type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlaceOrderBracket {
    /// Signed ticks from the entry fill.
    pub ticks: i32,
    /// `OrderType` of the child.
    #[serde(rename = "type")]
    pub order_type: i32,
}

/// `Order/place`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrderRequest {
    /// Account.
    pub account_id: i64,
    /// Contract id.
    pub contract_id: String,
    /// `OrderType`.
    #[serde(rename = "type")]
    pub order_type: i32,
    /// `OrderSide`.
    pub side: i32,
    /// Quantity.
    pub size: i64,
    /// Limit price.
    #[serde(with = "exact::option", skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Decimal>,
    /// Stop price.
    #[serde(with = "exact::option", skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Decimal>,
    /// Client order id: unique per account; orders are looked up by it.
    pub custom_tag: String,
    /// Protective stop child.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_loss_bracket: Option<PlaceOrderBracket>,
    /// Take-profit child.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_profit_bracket: Option<PlaceOrderBracket>,
}

/// `Order/cancel`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelOrderRequest {
    /// Account.
    pub account_id: i64,
    /// Order.
    pub order_id: i64,
}

/// `Order/modify` (only the fields given change).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyOrderRequest {
    /// Account.
    pub account_id: i64,
    /// Order.
    pub order_id: i64,
    /// New total quantity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// New limit price.
    #[serde(with = "exact::option", skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Decimal>,
    /// New stop price.
    #[serde(with = "exact::option", skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Decimal>,
}

/// `Position/closeContract`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseContractRequest<'a> {
    /// Account.
    pub account_id: i64,
    /// Contract id.
    pub contract_id: &'a str,
}

/// `History/retrieveBars`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrieveBarsRequest<'a> {
    /// Contract id.
    pub contract_id: &'a str,
    /// Live data.
    pub live: bool,
    /// From (ISO-8601).
    pub start_time: String,
    /// Until (ISO-8601).
    pub end_time: String,
    /// `AggregateBarUnit`.
    pub unit: i32,
    /// Units per bar.
    pub unit_number: i32,
    /// Most bars.
    pub limit: i32,
    /// Include the bar in progress.
    pub include_partial_bar: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn a_bracketed_market_order_serialises_like_the_docs() {
        let body = PlaceOrderRequest {
            account_id: 465,
            contract_id: "CON.F.US.DA6.M25".into(),
            order_type: 2,
            side: 0,
            size: 1,
            limit_price: None,
            stop_price: None,
            custom_tag: "jt-1".into(),
            stop_loss_bracket: Some(PlaceOrderBracket {
                ticks: -10,
                order_type: 4,
            }),
            take_profit_bracket: Some(PlaceOrderBracket {
                ticks: 20,
                order_type: 1,
            }),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"accountId":465,"contractId":"CON.F.US.DA6.M25","type":2,"side":0,"size":1,"customTag":"jt-1","stopLossBracket":{"ticks":-10,"type":4},"takeProfitBracket":{"ticks":20,"type":1}}"#
        );
        let limit = PlaceOrderRequest {
            order_type: 1,
            limit_price: Some(dec!(21000.25)),
            stop_loss_bracket: None,
            take_profit_bracket: None,
            ..body
        };
        assert!(
            serde_json::to_string(&limit)
                .unwrap()
                .contains(r#""limitPrice":21000.25"#)
        );
    }

    #[test]
    fn envelopes_decode_with_explicit_nulls() {
        let r: PlaceOrderResponse = serde_json::from_str(
            r#"{"orderId":null,"success":false,"errorCode":2,"errorMessage":"Invalid price"}"#,
        )
        .unwrap();
        assert!(!r.success());
        assert_eq!((r.error_code(), r.order_id), (2, None));
    }
}
