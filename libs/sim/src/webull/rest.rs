//! The Webull trading endpoints (the official SDKs' v2 paths; shapes chosen where the public
//! material is silent, see docs/brokers.md "Webull"):
//!
//! | request | answer |
//! |---|---|
//! | `GET /openapi/account/list` | `[{account_id, account_number, account_type: "FUTURES", account_status}]` |
//! | `POST /openapi/account/orders/place?account_id=` `{new_orders: [order]}` (one order) | `{client_order_id, order_id}` |
//! | `POST /openapi/account/orders/replace?account_id=` `{modify_orders: [{client_order_id, quantity?, limit_price?, stop_price?}]}` | `{client_order_id, order_id}` |
//! | `POST /openapi/account/orders/cancel?account_id=` `{client_order_id}` | `{client_order_id, order_id}` |
//! | `GET /openapi/account/orders/list-open?account_id=` | `[order view]` |
//! | `GET /openapi/account/orders/detail?account_id=&client_order_id=` | order view, or 404 `ORDER_NOT_FOUND` |
//! | `GET /openapi/account/orders/history?account_id=&page_size=&last_client_order_id=` | `[order view]`: every order of the account (working or finished), sorted by client order id, the page after `last_client_order_id`, at most `page_size` (100, at most 100) |
//! | `GET /openapi/account/positions?account_id=` | `[{symbol, instrument_type, position_side: LONG/SHORT, quantity, cost_price}]` |
//! | `GET /openapi/account/balance?account_id=` | `{account_id, currency: "USD", total_cash_balance}` |
//! | `GET /openapi/instrument/futures/list?code=MNQ` | `[{symbol, code, instrument_type, expire_date}]`, the listed months, nearest first |
//!
//! An order: `{client_order_id, instrument_type: "FUTURES", symbol (a contract, `MNQZ6`),
//! side: BUY/SELL, order_type: MARKET/LIMIT/STOP_LOSS/STOP_LOSS_LIMIT, quantity, limit_price,
//! stop_price, time_in_force: DAY/GTC}`; numbers as strings or numbers. Its view adds
//! `order_id`, `filled_quantity`, `filled_price` and `status`
//! (`SUBMITTED`, `PARTIAL_FILLED`, `FILLED`, `CANCELLED`, `FAILED`). Refusals are 400
//! `INVALID_PARAMETER` (the body does not fit), 400 `ORDER_REJECTED` (the exchange refused
//! it), 400 `DUPLICATE_CLIENT_ORDER_ID`, 400 `ORDER_NOT_WORKING` (replace or cancel of a
//! finished order), 404 `ACCOUNT_NOT_FOUND` / `ORDER_NOT_FOUND`, 404 `NOT_FOUND` (no such
//! endpoint), 405 `METHOD_NOT_ALLOWED`.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::Shared;
use crate::core::account::{AccountState, ModifySpec, OrderRec, OrderSpec};
use crate::core::clock::now_us;
use crate::core::model::{Action, CommandStatus, Id, OrdStatus, OrderType, Protocol, TimeInForce};
use crate::core::{AccountCell, Ctx};
use crate::faults::{AmbiguousMode, FaultKind, Point};

use super::Reply;

/// What to do after handling (ambiguous faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Send the reply.
    Respond,
    /// Drop the connection without a reply.
    Drop,
    /// Hold the reply until the client gives up, then drop the connection.
    Hang,
}

/// One authenticated request.
#[derive(Debug)]
pub struct Request<'a> {
    /// The caller.
    pub user_id: Id,
    /// Its app key (the limit's key).
    pub app_key: &'a str,
    /// The lower-case path without the leading `/`.
    pub endpoint: &'a str,
    /// `POST` (else `GET`).
    pub is_post: bool,
    /// Decoded query.
    pub query: &'a [(String, String)],
    /// Body bytes.
    pub body: &'a [u8],
    /// Arrival (µs).
    pub received_us: i64,
}

fn bad(message: impl Into<String>) -> Reply {
    Reply::error(400, "INVALID_PARAMETER", message)
}

fn q<'a>(r: &'a Request<'_>, k: &str) -> Option<&'a str> {
    r.query
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

/// Handles a signed request of a Webull login.
pub(crate) async fn dispatch(sh: &Arc<Shared>, r: Request<'_>) -> (Reply, After) {
    let Some(user) = sh
        .ex
        .user(r.user_id)
        .filter(|u| u.protocol == Protocol::Webull)
    else {
        return (
            Reply::error(401, "INVALID_APP_KEY", "not a Webull login"),
            After::Respond,
        );
    };
    let ep = r.endpoint.strip_prefix("openapi/").unwrap_or(r.endpoint);
    let account_id = q(&r, "account_id").and_then(|a| a.parse::<Id>().ok());
    let point = Point {
        user_id: Some(user.id),
        account_id,
        endpoint: ep,
    };
    let after = match apply_faults(sh, &point).await {
        Ok(a) => a,
        Err(reply) => return (reply, After::Respond),
    };
    if !sh.wb.admit(r.app_key, now_us()) {
        return (
            Reply::error(429, "TOO_MANY_REQUESTS", "too many requests"),
            After::Respond,
        );
    }
    let (want_post, known) = match ep {
        "account/list"
        | "account/orders/list-open"
        | "account/orders/detail"
        | "account/orders/history"
        | "account/positions"
        | "account/balance"
        | "instrument/futures/list" => (false, true),
        "account/orders/place" | "account/orders/replace" | "account/orders/cancel" => (true, true),
        _ => (false, false),
    };
    if !known {
        return (
            Reply::error(404, "NOT_FOUND", format!("no endpoint /{}", r.endpoint)),
            After::Respond,
        );
    }
    if want_post != r.is_post {
        return (
            Reply::error(405, "METHOD_NOT_ALLOWED", "method not allowed"),
            After::Respond,
        );
    }
    if ep == "account/list" {
        return (account_list(sh, user.id), after);
    }
    if ep == "instrument/futures/list" {
        return (futures_list(sh, q(&r, "code")), after);
    }
    let Some(cell) = account_id
        .and_then(|a| sh.ex.account(a))
        .filter(|c| c.account.user_id == user.id)
    else {
        return (
            Reply::error(
                404,
                "ACCOUNT_NOT_FOUND",
                "account_id is not an account of this app key",
            ),
            After::Respond,
        );
    };
    let body: Value = if r.body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(r.body) {
            Ok(v) => v,
            Err(e) => return (bad(format!("the body is not JSON: {e}")), After::Respond),
        }
    };
    let ctx = Ctx {
        user_id: Some(user.id),
        session_id: None,
        received_us: r.received_us,
    };
    let reply = match ep {
        "account/orders/list-open" => open_orders(sh, &cell),
        "account/orders/detail" => match q(&r, "client_order_id") {
            Some(id) => order_detail(sh, &cell, id),
            None => bad("client_order_id is required"),
        },
        "account/orders/history" => match q(&r, "page_size").map(str::parse::<usize>).transpose() {
            Ok(size) => order_history(
                sh,
                &cell,
                size.unwrap_or(HISTORY_PAGE).clamp(1, HISTORY_PAGE),
                q(&r, "last_client_order_id"),
            ),
            Err(_) => bad("page_size is not a number"),
        },
        "account/positions" => positions(sh, &cell),
        "account/balance" => balance(&cell),
        "account/orders/place" => place(sh, &cell, &ctx, &body),
        "account/orders/replace" => replace(sh, &cell, &ctx, &body),
        _ => cancel(sh, &cell, &ctx, &body),
    };
    (reply, after)
}

/// Applies the injected request faults matching `point`.
async fn apply_faults(sh: &Shared, point: &Point<'_>) -> Result<After, Reply> {
    let mut after = After::Respond;
    for f in sh.faults.take(point) {
        match f {
            FaultKind::Latency { ms } => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    () = sh.shutdown.cancelled() => {}
                }
            }
            FaultKind::Error { status, .. } => {
                let code = if status == 503 {
                    "SERVICE_NOT_AVAILABLE"
                } else {
                    "INTERNAL_ERROR"
                };
                return Err(Reply::error(
                    status,
                    code,
                    format!("injected error {status}"),
                ));
            }
            FaultKind::TooManyRequests => {
                return Err(Reply::error(429, "TOO_MANY_REQUESTS", "too many requests"));
            }
            FaultKind::Ambiguous { mode } => {
                after = match mode {
                    AmbiguousMode::Drop => After::Drop,
                    AmbiguousMode::Timeout => After::Hang,
                };
            }
            _ => {}
        }
    }
    Ok(after)
}

fn account_list(sh: &Shared, user_id: Id) -> Reply {
    let accounts: Vec<Value> = sh
        .ex
        .accounts_of(user_id)
        .iter()
        .map(|a| {
            json!({
                "account_id": a.account.id.to_string(),
                "account_number": a.account.name,
                "account_type": "FUTURES",
                "account_status": if a.account.active { "ACTIVE" } else { "INACTIVE" },
            })
        })
        .collect();
    Reply::ok(Value::Array(accounts))
}

/// The listed months of a product code (`MNQ`, or a ticker such as `MNQ1!`), nearest expiry
/// first; every listed month without a code.
fn futures_list(sh: &Shared, code: Option<&str>) -> Reply {
    let cat = &sh.ex.catalog;
    let root = code.map(|c| {
        jt_domain::instrument::resolve_ticker(c)
            .map_or_else(|_| c.trim().to_ascii_uppercase(), |i| i.root.to_string())
    });
    let mut list: Vec<_> = cat
        .contracts
        .iter()
        .filter(|c| root.as_deref().is_none_or(|r| cat.product_of(c).name == r))
        .collect();
    list.sort_by_key(|c| (c.product_index, c.expiration_date));
    Reply::ok(Value::Array(
        list.into_iter()
            .map(|c| {
                json!({
                    "symbol": c.name,
                    "code": cat.product_of(c).name,
                    "instrument_type": "FUTURES",
                    "expire_date": c.expiration_date.to_string(),
                })
            })
            .collect(),
    ))
}

fn balance(cell: &AccountCell) -> Reply {
    let amount = cell.state.lock().cash.amount;
    Reply::ok(json!({
        "account_id": cell.account.id.to_string(),
        "currency": "USD",
        "total_cash_balance": amount.normalize().to_string(),
    }))
}

fn text(d: Option<Decimal>) -> Value {
    d.map_or(Value::Null, |d| json!(d.normalize().to_string()))
}

fn status_of(o: &OrderRec) -> &'static str {
    match o.order.ord_status {
        OrdStatus::Filled | OrdStatus::Completed => "FILLED",
        OrdStatus::Canceled | OrdStatus::Expired => "CANCELLED",
        OrdStatus::Rejected => "FAILED",
        _ if o.cum_qty > 0 => "PARTIAL_FILLED",
        _ => "SUBMITTED",
    }
}

fn type_name(t: OrderType) -> &'static str {
    match t {
        OrderType::Market => "MARKET",
        OrderType::Limit => "LIMIT",
        OrderType::Stop => "STOP_LOSS",
        OrderType::StopLimit => "STOP_LOSS_LIMIT",
        OrderType::TrailingStop | OrderType::TrailingStopLimit => "TRAILING_STOP_LOSS",
        OrderType::Mit | OrderType::Qts => "LIMIT",
    }
}

fn order_view(sh: &Shared, o: &OrderRec) -> Value {
    let symbol = sh
        .ex
        .catalog
        .contract(o.order.contract_id)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    json!({
        "client_order_id": o.cl_ord_id,
        "order_id": o.order.id.to_string(),
        "instrument_type": "FUTURES",
        "symbol": symbol,
        "side": match o.order.action { Action::Buy => "BUY", Action::Sell => "SELL" },
        "order_type": type_name(o.version.order_type),
        "quantity": o.version.order_qty.to_string(),
        "limit_price": text(o.version.price),
        "stop_price": text(o.version.stop_price),
        "time_in_force": match o.version.time_in_force { Some(TimeInForce::Gtc) => "GTC", _ => "DAY" },
        "filled_quantity": o.cum_qty.to_string(),
        "filled_price": text(o.avg_px()),
        "status": status_of(o),
        "place_time": chrono::DateTime::from_timestamp_micros(o.order.timestamp_us)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

fn by_client_id<'a>(st: &'a AccountState, id: &str) -> Option<&'a OrderRec> {
    st.orders
        .values()
        .find(|o| o.cl_ord_id.as_deref() == Some(id))
}

fn open_orders(sh: &Shared, cell: &AccountCell) -> Reply {
    let st = cell.state.lock();
    let mut orders: Vec<&OrderRec> = st
        .orders
        .values()
        .filter(|o| st.live_ids.contains(&o.order.id))
        .collect();
    orders.sort_by_key(|o| o.order.id);
    Reply::ok(Value::Array(
        orders.into_iter().map(|o| order_view(sh, o)).collect(),
    ))
}

/// The longest page of `orders/history` (*chosen*, as Webull's documented default and limit).
const HISTORY_PAGE: usize = 100;

/// Webull's "Order History" (*chosen* path on the account surface; Webull documents the
/// endpoint with `page_size` and `last_client_order_id` paging and results sorted by client
/// order id): every order of the account, working or finished — the simulator keeps a
/// session's orders, Webull the last 7 days by default.
fn order_history(sh: &Shared, cell: &AccountCell, size: usize, after: Option<&str>) -> Reply {
    let st = cell.state.lock();
    let mut orders: Vec<(&str, &OrderRec)> = st
        .orders
        .values()
        .filter_map(|o| o.cl_ord_id.as_deref().map(|id| (id, o)))
        .filter(|(id, _)| after.is_none_or(|a| *id > a))
        .collect();
    orders.sort_by(|a, b| a.0.cmp(b.0));
    Reply::ok(Value::Array(
        orders
            .into_iter()
            .take(size)
            .map(|(_, o)| order_view(sh, o))
            .collect(),
    ))
}

fn order_detail(sh: &Shared, cell: &AccountCell, id: &str) -> Reply {
    let st = cell.state.lock();
    match by_client_id(&st, id) {
        Some(o) => Reply::ok(order_view(sh, o)),
        None => Reply::error(404, "ORDER_NOT_FOUND", format!("no order {id}")),
    }
}

fn positions(sh: &Shared, cell: &AccountCell) -> Reply {
    let st = cell.state.lock();
    let list: Vec<Value> = st
        .positions
        .values()
        .filter(|p| p.pos.net_pos != 0)
        .filter_map(|p| {
            let c = sh.ex.catalog.contract(p.pos.contract_id)?;
            Some(json!({
                "symbol": c.name,
                "instrument_type": "FUTURES",
                "position_side": if p.pos.net_pos > 0 { "LONG" } else { "SHORT" },
                "quantity": p.pos.net_pos.unsigned_abs().to_string(),
                "cost_price": text(p.pos.net_price),
            }))
        })
        .collect();
    Reply::ok(Value::Array(list))
}

fn field_text(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(crate::wire::text)
        .filter(|s| !s.trim().is_empty())
}

fn field_dec(v: &Value, k: &str) -> Result<Option<Decimal>, Reply> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => crate::wire::dec(x)
            .map(Some)
            .ok_or_else(|| bad(format!("{k} is not a number"))),
    }
}

fn field_qty(v: &Value) -> Result<Option<u32>, Reply> {
    match field_dec(v, "quantity")? {
        None => Ok(None),
        Some(d) if d > Decimal::ZERO && d.fract().is_zero() => {
            u32::try_from(d.mantissa() / 10i128.pow(d.scale()))
                .map(Some)
                .map_err(|_| bad("quantity is too large"))
        }
        Some(d) => Err(bad(format!("quantity {d} must be a positive whole number"))),
    }
}

/// The one order of a `{key: [order]}` body.
fn one_order<'a>(body: &'a Value, key: &str) -> Result<&'a Value, Reply> {
    match body.get(key).and_then(Value::as_array).map(Vec::as_slice) {
        Some([o]) => Ok(o),
        Some([]) | None => Err(bad(format!("{key} must hold one order"))),
        Some(_) => Err(bad(format!(
            "{key} holds more than one order: combinations are not offered for futures"
        ))),
    }
}

fn placed(id: &str, order_id: Id) -> Reply {
    Reply::ok(json!({"client_order_id": id, "order_id": order_id.to_string()}))
}

fn place(sh: &Shared, cell: &Arc<AccountCell>, ctx: &Ctx, body: &Value) -> Reply {
    match place_checked(sh, cell, ctx, body) {
        Ok(r) | Err(r) => r,
    }
}

fn place_checked(
    sh: &Shared,
    cell: &Arc<AccountCell>,
    ctx: &Ctx,
    body: &Value,
) -> Result<Reply, Reply> {
    let o = one_order(body, "new_orders")?;
    let id = field_text(o, "client_order_id").ok_or_else(|| bad("client_order_id is required"))?;
    if id.len() > 40 {
        return Err(bad("client_order_id is longer than 40 characters"));
    }
    let instrument = field_text(o, "instrument_type").unwrap_or_else(|| "FUTURES".into());
    if !instrument.eq_ignore_ascii_case("FUTURES") {
        return Err(bad(format!(
            "instrument_type {instrument}: this simulator trades FUTURES"
        )));
    }
    let symbol = field_text(o, "symbol").ok_or_else(|| bad("symbol is required"))?;
    let ci = sh
        .ex
        .catalog
        .contract_by_name(&symbol)
        .map(|c| c.index)
        .ok_or_else(|| bad(format!("unknown futures contract {symbol}")))?;
    let action = match field_text(o, "side").as_deref() {
        Some("BUY") => Action::Buy,
        Some("SELL") => Action::Sell,
        other => return Err(bad(format!("side {other:?}: BUY or SELL"))),
    };
    let qty = field_qty(o)?.ok_or_else(|| bad("quantity is required"))?;
    let limit = field_dec(o, "limit_price")?;
    let stop = field_dec(o, "stop_price")?;
    let (order_type, price, stop_price) = match field_text(o, "order_type").as_deref() {
        Some("MARKET") => (OrderType::Market, None, None),
        Some("LIMIT") => (OrderType::Limit, limit, None),
        Some("STOP_LOSS") => (OrderType::Stop, None, stop),
        Some("STOP_LOSS_LIMIT") => (OrderType::StopLimit, limit, stop),
        other => {
            return Err(bad(format!(
                "order_type {other:?}: MARKET, LIMIT, STOP_LOSS or STOP_LOSS_LIMIT"
            )));
        }
    };
    let tif = match field_text(o, "time_in_force").as_deref() {
        None | Some("DAY") => TimeInForce::Day,
        Some("GTC") => TimeInForce::Gtc,
        Some(other) => return Err(bad(format!("time_in_force {other}: DAY or GTC"))),
    };
    if !cell.account.active {
        return Err(Reply::error(
            400,
            "ORDER_REJECTED",
            "the account cannot trade",
        ));
    }
    if !sh.ex.is_open(now_us()) {
        return Err(Reply::error(400, "ORDER_REJECTED", "the market is closed"));
    }
    sh.ex.run(cell, ctx, |op| {
        if by_client_id(op.st, &id).is_some() {
            return Err(Reply::error(
                400,
                "DUPLICATE_CLIENT_ORDER_ID",
                format!("client_order_id {id} is already used"),
            ));
        }
        op.check_terms(ci, order_type, price, stop_price, None)
            .map_err(|r| Reply::error(400, "ORDER_REJECTED", r.text))?;
        let spec = OrderSpec {
            action: Some(action),
            qty,
            order_type: Some(order_type),
            price,
            stop_price,
            tif: Some(tif),
            cl_ord_id: Some(id.clone()),
            is_automated: true,
            ..OrderSpec::default()
        };
        let order_id = op.create_order(ci, &spec, false, None, false);
        op.match_contract(ci);
        Ok(placed(&id, order_id))
    })
}

/// The working order named by `client_order_id`.
fn working(st: &AccountState, id: &str) -> Result<Id, Reply> {
    let o = by_client_id(st, id)
        .ok_or_else(|| Reply::error(404, "ORDER_NOT_FOUND", format!("no order {id}")))?;
    if !st.live_ids.contains(&o.order.id) {
        return Err(Reply::error(
            400,
            "ORDER_NOT_WORKING",
            format!("order {id} is {}", status_of(o)),
        ));
    }
    Ok(o.order.id)
}

fn cancel(sh: &Shared, cell: &Arc<AccountCell>, ctx: &Ctx, body: &Value) -> Reply {
    let Some(id) = field_text(body, "client_order_id") else {
        return bad("client_order_id is required");
    };
    sh.ex.run(cell, ctx, |op| match working(op.st, &id) {
        Err(r) => r,
        Ok(order_id) => {
            op.client_cancel(order_id, None, true, None);
            placed(&id, order_id)
        }
    })
}

fn replace(sh: &Shared, cell: &Arc<AccountCell>, ctx: &Ctx, body: &Value) -> Reply {
    let parsed = (|| {
        let o = one_order(body, "modify_orders")?;
        let id =
            field_text(o, "client_order_id").ok_or_else(|| bad("client_order_id is required"))?;
        Ok::<_, Reply>((
            id,
            field_qty(o)?,
            field_dec(o, "limit_price")?,
            field_dec(o, "stop_price")?,
        ))
    })();
    let (id, qty, limit, stop) = match parsed {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !sh.ex.is_open(now_us()) {
        return Reply::error(400, "ORDER_REJECTED", "the market is closed");
    }
    sh.ex.run(cell, ctx, |op| {
        let order_id = match working(op.st, &id) {
            Ok(o) => o,
            Err(r) => return r,
        };
        let Some(current) = op.st.orders.get(&order_id).map(|o| o.version.clone()) else {
            return Reply::error(404, "ORDER_NOT_FOUND", format!("no order {id}"));
        };
        let spec = ModifySpec {
            qty: qty.unwrap_or(current.order_qty),
            price: limit.or(current.price),
            stop_price: stop.or(current.stop_price),
            is_automated: true,
            ..ModifySpec::default()
        };
        match op.client_modify(order_id, &spec) {
            Err(r) => Reply::error(400, "ORDER_REJECTED", r.text),
            Ok(command_id) => {
                let rejected = op
                    .st
                    .command_reports
                    .iter()
                    .rev()
                    .find(|r| r.command_id == command_id)
                    .filter(|r| r.command_status == CommandStatus::ExecutionRejected);
                match rejected {
                    Some(r) => Reply::error(
                        400,
                        "ORDER_REJECTED",
                        r.text.clone().unwrap_or_else(|| "replace rejected".into()),
                    ),
                    None => placed(&id, order_id),
                }
            }
        }
    })
}
