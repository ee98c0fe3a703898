//! The ProjectX models REST answers and hub events carry (BROKERS.md §2.5–§2.6), read
//! leniently: unknown fields are ignored (real hub payloads add `commissions`,
//! `contractDisplayName`), absent optional fields are `None` (hub payloads omit nulls), prices
//! and money are read exactly from the JSON number's text. Decode them straight from JSON text
//! (never through `serde_json::Value`), or the exact numbers are lost.

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use jt_net::exact;

/// Reads a ProjectX timestamp (`2026-05-06T13:36:03.4962794+00:00`; without an offset, UTC).
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// `#[serde(deserialize_with = "timestamp", default)]` for an optional timestamp.
///
/// # Errors
/// When the field is a string that is not a timestamp.
pub fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) => parse_timestamp(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a timestamp"))),
    }
}

/// `TradingAccountModel`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TradingAccount {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Balance.
    #[serde(with = "exact")]
    pub balance: Decimal,
    /// Whether the account may trade.
    #[serde(default)]
    pub can_trade: bool,
    /// Visible in the platform.
    #[serde(default)]
    pub is_visible: bool,
    /// A simulated (evaluation/practice) account.
    #[serde(default)]
    pub simulated: bool,
}

/// `ContractModel`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractModel {
    /// `CON.F.US.MNQ.Z25`.
    pub id: String,
    /// `MNQZ5` (older docs: `ENQH25`).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Tick size.
    #[serde(with = "exact")]
    pub tick_size: Decimal,
    /// Dollars per tick.
    #[serde(with = "exact")]
    pub tick_value: Decimal,
    /// The contract currently traded for its product (the front month).
    #[serde(default)]
    pub active_contract: bool,
    /// `F.US.MNQ`.
    #[serde(default)]
    pub symbol_id: Option<String>,
}

/// `OrderModel`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderModel {
    /// Id.
    pub id: i64,
    /// Account.
    pub account_id: i64,
    /// Contract id.
    pub contract_id: String,
    /// Symbol id.
    #[serde(default)]
    pub symbol_id: Option<String>,
    /// Created.
    #[serde(default, deserialize_with = "timestamp")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// Last change.
    #[serde(default, deserialize_with = "timestamp")]
    pub update_timestamp: Option<DateTime<Utc>>,
    /// `OrderStatus`.
    pub status: i32,
    /// `OrderType`.
    #[serde(rename = "type")]
    pub order_type: i32,
    /// `OrderSide`.
    pub side: i32,
    /// Quantity.
    pub size: i64,
    /// Limit price.
    #[serde(default, with = "exact::option")]
    pub limit_price: Option<Decimal>,
    /// Stop price.
    #[serde(default, with = "exact::option")]
    pub stop_price: Option<Decimal>,
    /// Filled quantity.
    #[serde(default)]
    pub fill_volume: i64,
    /// Average fill price.
    #[serde(default, with = "exact::option")]
    pub filled_price: Option<Decimal>,
    /// The `customTag` sent with it.
    #[serde(default)]
    pub custom_tag: Option<String>,
}

/// `PositionModel`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionModel {
    /// Id.
    pub id: i64,
    /// Account.
    pub account_id: i64,
    /// Contract id.
    pub contract_id: String,
    /// Contract name, on hub events (`MYMM26`).
    #[serde(default)]
    pub contract_display_name: Option<String>,
    /// Created.
    #[serde(default, deserialize_with = "timestamp")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// `PositionType`: the direction.
    #[serde(rename = "type")]
    pub position_type: i32,
    /// Size, never negative.
    pub size: i64,
    /// Average price.
    #[serde(default, with = "exact::option")]
    pub average_price: Option<Decimal>,
}

/// `HalfTradeModel`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HalfTrade {
    /// Id.
    pub id: i64,
    /// Account.
    pub account_id: i64,
    /// Contract id.
    pub contract_id: String,
    /// Time.
    #[serde(default, deserialize_with = "timestamp")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// Price.
    #[serde(with = "exact")]
    pub price: Decimal,
    /// Realized P&L; absent for an opening half-turn.
    #[serde(default, with = "exact::option")]
    pub profit_and_loss: Option<Decimal>,
    /// Fees.
    #[serde(default, with = "exact::option")]
    pub fees: Option<Decimal>,
    /// `OrderSide`.
    pub side: i32,
    /// Size.
    pub size: i64,
    /// Busted.
    #[serde(default)]
    pub voided: bool,
    /// Order.
    pub order_id: i64,
}

/// `AggregateBarModel`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Bar {
    /// Start of the bar.
    #[serde(default, deserialize_with = "timestamp")]
    pub t: Option<DateTime<Utc>>,
    /// Open.
    #[serde(with = "exact")]
    pub o: Decimal,
    /// High.
    #[serde(with = "exact")]
    pub h: Decimal,
    /// Low.
    #[serde(with = "exact")]
    pub l: Decimal,
    /// Close.
    #[serde(with = "exact")]
    pub c: Decimal,
    /// Volume.
    #[serde(default)]
    pub v: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn timestamps_with_seven_digits_and_without_offsets() {
        let t = parse_timestamp("2026-05-06T13:36:03.4962794+00:00").unwrap();
        assert_eq!(t.timestamp_subsec_nanos(), 496_279_400);
        assert!(parse_timestamp("2025-01-21T16:13:52.523293").is_some());
        assert!(parse_timestamp("nope").is_none());
    }

    #[test]
    fn documented_shapes_decode_exactly() {
        let t: HalfTrade = serde_json::from_str(
            r#"{"id":8604,"accountId":203,"contractId":"CON.F.US.EP.H25","creationTimestamp":"2025-01-21T16:13:52.523293+00:00","price":6065.250000000,"profitAndLoss":50.000000000,"fees":1.4000,"side":1,"size":1,"voided":false,"orderId":14328}"#,
        )
        .unwrap();
        assert_eq!(t.price, dec!(6065.25));
        assert_eq!(t.fees, Some(dec!(1.4)));
        let o: OrderModel = serde_json::from_str(
            r#"{"id":26060,"accountId":545,"contractId":"CON.F.US.EP.M25","creationTimestamp":"2025-04-14T17:49:10.142532+00:00","updateTimestamp":null,"status":2,"type":2,"side":0,"size":1,"limitPrice":null,"stopPrice":null}"#,
        )
        .unwrap();
        assert_eq!(
            (o.fill_volume, o.filled_price, o.custom_tag),
            (0, None, None)
        );
    }
}
