//! ProjectX's JSON: lenient, case-insensitive readers for what clients send (ASP.NET reads
//! property names case-insensitively and numbers from strings), and the models of
//! BROKERS.md §2.5 for what the simulator answers.
//!
//! REST answers carry every field, absent ones as explicit `null` (as the documented examples
//! do); hub events omit absent fields (as captured real payloads do) — [`Nulls`] says which.
//! Timestamps are written as real servers write them: seven fractional digits and `+00:00`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::core::account::OrderRec;
use crate::core::catalog::{Catalog, Contract};
use crate::core::model::{Action, Id, OrdStatus, OrderType};
use crate::wire::{boolean, dec, int, num, text};

use super::enums;

/// Whether absent fields are written as `null` (REST) or left out (hub events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// `"limitPrice": null`.
    Explicit,
    /// Field left out.
    Omitted,
}

/// Builds a JSON object in field order.
#[derive(Debug)]
pub struct Model {
    map: Map<String, Value>,
    nulls: Nulls,
}

impl Model {
    /// An empty model.
    #[must_use]
    pub fn new(nulls: Nulls) -> Self {
        Model {
            map: Map::new(),
            nulls,
        }
    }

    /// A field.
    #[must_use]
    pub fn set(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.map.insert(k.to_string(), v.into());
        self
    }

    /// An optional field.
    #[must_use]
    pub fn opt(self, k: &str, v: Option<impl Into<Value>>) -> Self {
        match (v, self.nulls) {
            (Some(v), _) => self.set(k, v),
            (None, Nulls::Explicit) => self.set(k, Value::Null),
            (None, Nulls::Omitted) => self,
        }
    }

    /// A decimal field (a JSON number).
    #[must_use]
    pub fn dec(self, k: &str, v: Decimal) -> Self {
        self.set(k, num(v))
    }

    /// An optional decimal field.
    #[must_use]
    pub fn opt_dec(self, k: &str, v: Option<Decimal>) -> Self {
        self.opt(k, v.map(num))
    }

    /// The object.
    #[must_use]
    pub fn done(self) -> Value {
        Value::Object(self.map)
    }
}

/// A timestamp as ProjectX writes it: `2026-05-06T13:36:03.4962790+00:00`.
#[must_use]
pub fn ts(us: i64) -> String {
    match Utc.timestamp_micros(us).single() {
        Some(t) => format!("{}0+00:00", t.format("%Y-%m-%dT%H:%M:%S%.6f")),
        None => "1970-01-01T00:00:00.0000000+00:00".to_string(),
    }
}

/// Reads a request timestamp (RFC 3339; without an offset it is UTC) as µs.
#[must_use]
pub fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc().timestamp_micros())
}

/// A field that is present but cannot be read as the type the endpoint expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadField {
    /// Field name as the endpoint spells it.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl BadField {
    /// A required field is missing.
    #[must_use]
    pub fn missing(field: &str) -> Self {
        BadField {
            field: field.to_string(),
            message: format!("The {field} field is required."),
        }
    }
}

/// Case-insensitive readers over a JSON request body (absent and `null` read as `None`).
#[derive(Debug, Clone, Copy)]
pub struct Body<'a>(pub &'a Value);

impl Body<'_> {
    fn get(&self, k: &str) -> Option<&Value> {
        let obj = self.0.as_object()?;
        obj.get(k)
            .or_else(|| {
                obj.iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v)
            })
            .filter(|v| !v.is_null())
    }

    fn read<T>(
        &self,
        k: &str,
        what: &str,
        f: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>, BadField> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| BadField {
                field: k.to_string(),
                message: format!("The JSON value {v} could not be converted to {what}."),
            }),
        }
    }

    /// The raw value of a field.
    #[must_use]
    pub fn value(&self, k: &str) -> Option<&Value> {
        self.get(k)
    }

    /// An integer field.
    ///
    /// # Errors
    /// The field is present but not an integer.
    pub fn int(&self, k: &str) -> Result<Option<i64>, BadField> {
        self.read(k, "an integer", int)
    }

    /// A decimal field (number or numeric string).
    ///
    /// # Errors
    /// The field is present but not a number.
    pub fn dec(&self, k: &str) -> Result<Option<Decimal>, BadField> {
        self.read(k, "a decimal", dec)
    }

    /// A string field.
    ///
    /// # Errors
    /// The field is present but not a string.
    pub fn text(&self, k: &str) -> Result<Option<String>, BadField> {
        self.read(k, "a string", |v| match v {
            Value::String(_) => text(v),
            _ => None,
        })
    }

    /// A boolean field.
    ///
    /// # Errors
    /// The field is present but not a boolean.
    pub fn bool(&self, k: &str) -> Result<Option<bool>, BadField> {
        self.read(k, "a boolean", boolean)
    }

    /// A timestamp field, as µs.
    ///
    /// # Errors
    /// The field is present but not a date and time.
    pub fn ts(&self, k: &str) -> Result<Option<i64>, BadField> {
        self.read(k, "a DateTime", |v| v.as_str().and_then(parse_ts))
    }

    /// A required integer field.
    ///
    /// # Errors
    /// Missing or not an integer.
    pub fn need_int(&self, k: &str) -> Result<i64, BadField> {
        self.int(k)?.ok_or_else(|| BadField::missing(k))
    }

    /// A required string field.
    ///
    /// # Errors
    /// Missing or not a string.
    pub fn need_text(&self, k: &str) -> Result<String, BadField> {
        self.text(k)?.ok_or_else(|| BadField::missing(k))
    }
}

// ------------------------------------------------------------------------------- contracts

/// The product code ProjectX uses in contract ids where it differs from the CME root
/// (documented examples: `CON.F.US.EP.U25` for ES, `CON.F.US.ENQ.U25` for NQ); every other
/// root is used as it is.
fn symbol_code(root: &str) -> &str {
    match root {
        "ES" => "EP",
        "NQ" => "ENQ",
        other => other,
    }
}

/// The ProjectX ids of the simulator's contracts.
#[derive(Debug)]
pub struct ContractIds {
    ids: Vec<String>,
    by_id: HashMap<String, usize>,
}

impl ContractIds {
    /// Ids for every contract of `catalog`: `CON.F.US.<code>.<month code><yy>`.
    #[must_use]
    pub fn build(catalog: &Catalog) -> Self {
        let ids: Vec<String> = catalog
            .contracts
            .iter()
            .map(|c| {
                let root = &catalog.product_of(c).name;
                let month = usize::try_from(c.expiration_month % 100).unwrap_or(1);
                let code = ['F', 'G', 'H', 'J', 'K', 'M', 'N', 'Q', 'U', 'V', 'X', 'Z']
                    [month.clamp(1, 12) - 1];
                format!(
                    "CON.F.US.{}.{code}{:02}",
                    symbol_code(root),
                    c.expiration_month / 100
                )
            })
            .collect();
        let by_id = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.to_ascii_uppercase(), i))
            .collect();
        ContractIds { ids, by_id }
    }

    /// The ProjectX id of a contract (by catalog index).
    #[must_use]
    pub fn id_of(&self, contract_index: usize) -> &str {
        self.ids.get(contract_index).map_or("", String::as_str)
    }

    /// The catalog index of a ProjectX contract id (any case).
    #[must_use]
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(&id.trim().to_ascii_uppercase()).copied()
    }
}

/// `F.US.<code>`: the symbol id of a contract's product.
#[must_use]
pub fn symbol_id(catalog: &Catalog, c: &Contract) -> String {
    format!("F.US.{}", symbol_code(&catalog.product_of(c).name))
}

/// `ContractModel`.
#[must_use]
pub fn contract_model(catalog: &Catalog, ids: &ContractIds, c: &Contract) -> Value {
    let p = catalog.product_of(c);
    let tick = p.instrument.tick_size;
    json!({
        "id": ids.id_of(c.index),
        "name": c.name,
        "description": p.description,
        "tickSize": num(tick),
        "tickValue": num(tick * p.value_per_point()),
        "activeContract": c.is_front,
        "symbolId": symbol_id(catalog, c),
    })
}

// --------------------------------------------------------------------------------- entities

/// `TradingAccountModel`.
#[must_use]
pub fn account_model(id: Id, name: &str, balance: Decimal, can_trade: bool) -> Value {
    json!({
        "id": id,
        "name": name,
        "balance": num(balance),
        "canTrade": can_trade,
        "isVisible": true,
        "simulated": true,
    })
}

/// What an `OrderModel` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderView {
    /// Order id.
    pub id: Id,
    /// Account.
    pub account_id: Id,
    /// Contract (catalog index).
    pub contract_index: usize,
    /// Creation (µs).
    pub created_us: i64,
    /// Last change (µs).
    pub updated_us: i64,
    /// Core status.
    pub status: OrdStatus,
    /// Core type.
    pub order_type: OrderType,
    /// Side.
    pub action: Action,
    /// Quantity.
    pub size: u32,
    /// Limit price.
    pub limit_price: Option<Decimal>,
    /// Stop price (the current level of a trailing stop).
    pub stop_price: Option<Decimal>,
    /// Filled quantity.
    pub fill_volume: u32,
    /// Average fill price.
    pub filled_price: Option<Decimal>,
    /// `customTag` as sent.
    pub custom_tag: Option<String>,
    /// The entry whose bracket this order is (not on the wire: the event order needs it).
    pub parent_id: Option<Id>,
}

impl OrderView {
    /// The view of an order record.
    #[must_use]
    pub fn of(rec: &OrderRec, contract_index: usize) -> Self {
        OrderView {
            id: rec.order.id,
            account_id: rec.order.account_id,
            contract_index,
            created_us: rec.order.timestamp_us,
            updated_us: rec.updated_us,
            status: rec.order.ord_status,
            order_type: rec.version.order_type,
            action: rec.order.action,
            size: rec.version.order_qty,
            limit_price: rec.version.price,
            stop_price: rec.version.stop_price,
            fill_volume: rec.cum_qty,
            filled_price: rec.avg_px(),
            custom_tag: rec.cl_ord_id.clone(),
            parent_id: rec.order.parent_id,
        }
    }
}

/// `OrderModel`.
#[must_use]
pub fn order_model(catalog: &Catalog, ids: &ContractIds, o: &OrderView, nulls: Nulls) -> Value {
    let c = &catalog.contracts[o.contract_index];
    Model::new(nulls)
        .set("id", o.id)
        .set("accountId", o.account_id)
        .set("contractId", ids.id_of(o.contract_index))
        .set("symbolId", symbol_id(catalog, c))
        .set("creationTimestamp", ts(o.created_us))
        .set("updateTimestamp", ts(o.updated_us))
        .set("status", enums::status_of(o.status))
        .set("type", enums::type_of(o.order_type))
        .set("side", enums::side_of(o.action))
        .set("size", o.size)
        .opt_dec("limitPrice", o.limit_price)
        .opt_dec("stopPrice", o.stop_price)
        .set("fillVolume", o.fill_volume)
        .opt_dec("filledPrice", o.filled_price)
        .opt("customTag", o.custom_tag.clone())
        .done()
}

/// What a `PositionModel` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionView {
    /// Position id.
    pub id: Id,
    /// Account.
    pub account_id: Id,
    /// Contract (catalog index).
    pub contract_index: usize,
    /// Creation (µs).
    pub created_us: i64,
    /// `PositionType` (kept when flat).
    pub position_type: i64,
    /// Size (never negative: the direction is the type).
    pub size: u64,
    /// Average price (the last one when flat).
    pub average_price: Decimal,
}

/// `PositionModel`; hub events add `contractDisplayName` as real servers do.
#[must_use]
pub fn position_model(
    catalog: &Catalog,
    ids: &ContractIds,
    p: &PositionView,
    nulls: Nulls,
) -> Value {
    let mut m = Model::new(nulls)
        .set("id", p.id)
        .set("accountId", p.account_id)
        .set("contractId", ids.id_of(p.contract_index));
    if nulls == Nulls::Omitted {
        m = m.set(
            "contractDisplayName",
            catalog.contracts[p.contract_index].name.clone(),
        );
    }
    m.set("creationTimestamp", ts(p.created_us))
        .set("type", p.position_type)
        .set("size", p.size)
        .dec("averagePrice", p.average_price)
        .done()
}

/// What a `HalfTradeModel` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeView {
    /// Fill id.
    pub id: Id,
    /// Account.
    pub account_id: Id,
    /// Contract (catalog index).
    pub contract_index: usize,
    /// Time (µs).
    pub created_us: i64,
    /// Price.
    pub price: Decimal,
    /// Realized P&L of this half-turn; `None` for an opening fill.
    pub profit_and_loss: Option<Decimal>,
    /// Fees.
    pub fees: Decimal,
    /// Side.
    pub action: Action,
    /// Size.
    pub size: u32,
    /// Order.
    pub order_id: Id,
}

/// `HalfTradeModel`; hub events add `commissions` as real servers do.
#[must_use]
pub fn trade_model(ids: &ContractIds, t: &TradeView, nulls: Nulls) -> Value {
    let mut m = Model::new(nulls)
        .set("id", t.id)
        .set("accountId", t.account_id)
        .set("contractId", ids.id_of(t.contract_index))
        .set("creationTimestamp", ts(t.created_us))
        .dec("price", t.price)
        .opt_dec("profitAndLoss", t.profit_and_loss)
        .dec("fees", t.fees);
    if nulls == Nulls::Omitted {
        // The simulator books its one per-contract charge as fees.
        m = m.dec("commissions", Decimal::ZERO);
    }
    m.set("side", enums::side_of(t.action))
        .set("size", t.size)
        .set("voided", false)
        .set("orderId", t.order_id)
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn timestamps_have_seven_digits_and_an_offset() {
        let us = 1_778_074_563_496_279;
        assert_eq!(ts(us), "2026-05-06T13:36:03.4962790+00:00");
        assert_eq!(parse_ts("2026-05-06T13:36:03.4962790+00:00"), Some(us));
        assert_eq!(parse_ts("2026-05-06T13:36:03.496279Z"), Some(us));
        assert_eq!(parse_ts("2026-05-06T13:36:03.496279"), Some(us));
        assert_eq!(parse_ts("yesterday"), None);
    }

    #[test]
    fn bodies_are_read_case_insensitively_and_leniently() {
        let v = json!({"AccountId": "12", "size": 3, "limitPrice": "21000.25", "live": false,
            "customTag": 5, "missing": null});
        let b = Body(&v);
        assert_eq!(b.int("accountId"), Ok(Some(12)));
        assert_eq!(b.dec("limitPrice"), Ok(Some(dec!(21000.25))));
        assert_eq!(b.bool("live"), Ok(Some(false)));
        assert!(b.text("customTag").is_err(), "a number is not a string");
        assert_eq!(b.int("missing"), Ok(None));
        assert_eq!(b.need_int("nope"), Err(BadField::missing("nope")));
    }

    #[test]
    fn contract_ids_follow_projectx_naming() {
        let catalog = Catalog::build(chrono::NaiveDate::from_ymd_opt(2025, 7, 1).unwrap());
        let ids = ContractIds::build(&catalog);
        let nq = catalog.front("NQ").unwrap();
        assert_eq!(ids.id_of(nq.index), "CON.F.US.ENQ.U25");
        assert_eq!(ids.index_of("con.f.us.enq.u25"), Some(nq.index));
        let mnq = catalog.front("MNQ").unwrap();
        let m = contract_model(&catalog, &ids, mnq);
        assert_eq!(m["id"], "CON.F.US.MNQ.U25");
        assert_eq!(m["name"], "MNQU5");
        assert_eq!(m["symbolId"], "F.US.MNQ");
        assert_eq!(m["tickSize"], json!(0.25));
        assert_eq!(m["tickValue"], json!(0.5));
        assert_eq!(m["activeContract"], true);
    }
}
