//! Every ProjectX REST endpoint (BROKERS.md §2.2–§2.5): all `POST` with JSON bodies under
//! `/api/`, matched case-insensitively, plus `GET /api/Status/ping`.
//!
//! A request goes through, in order: the bearer token (HTTP 401 with an empty body when it is
//! missing, unknown, expired or logged out), injected faults, the per-token rate limits (HTTP
//! 429, empty body), then the handler. Business outcomes are HTTP 200 with the envelope
//! `{success, errorCode, errorMessage}` and the endpoint's payload (explicit `null`s on
//! failure); a body that does not fit the endpoint's model is HTTP 400 with an ASP.NET-style
//! validation problem.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::Shared;
use crate::core::account::OrderSpec;
use crate::core::clock::now_us;
use crate::core::model::{Action, CommandStatus, Id, OrderType, Protocol, User};
use crate::core::strategy::{BracketSpec, EntrySpec, StrategySpec};
use crate::core::{AccountCell, Ctx};
use crate::faults::{AmbiguousMode, FaultKind, Point};

use super::auth::{Identity, TokenError};
use super::enums::{
    self, bar_unit, bars_error, close_error, login_error, order_change_error, order_type,
    place_error, session_error,
};
use super::limits::Bucket;
use super::models::{
    BadField, Body, Nulls, OrderView, PositionView, TradeView, account_model, contract_model,
    order_model, position_model, trade_model, ts,
};

/// Most contracts `Contract/search` returns.
const SEARCH_LIMIT: usize = 20;
/// Most bars one `History/retrieveBars` returns.
const MAX_BARS: i64 = 20_000;

/// A response.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// JSON with a status.
    Json(u16, Value),
    /// A status and no body (401, 404, 405, 429).
    Empty(u16),
    /// Plain text (`Status/ping`, injected errors).
    Text(u16, String),
}

impl Reply {
    fn problem(bad: &BadField) -> Self {
        let mut errors = Map::new();
        errors.insert(bad.field.clone(), json!([bad.message]));
        Reply::Json(
            400,
            json!({
                "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                "title": "One or more validation errors occurred.",
                "status": 400,
                "errors": errors,
            }),
        )
    }
}

impl From<BadField> for Reply {
    fn from(b: BadField) -> Self {
        Reply::problem(&b)
    }
}

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

/// `{payload…, success: true, errorCode: 0, errorMessage: null}`.
fn ok(payload: Value) -> Reply {
    let mut m = match payload {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.insert("success".into(), json!(true));
    m.insert("errorCode".into(), json!(0));
    m.insert("errorMessage".into(), Value::Null);
    Reply::Json(200, Value::Object(m))
}

/// `{payload fields: null…, success: false, errorCode, errorMessage}`.
fn fail(code: i64, message: impl Into<String>, payload: &[&str]) -> Reply {
    let mut m = Map::new();
    for k in payload {
        m.insert((*k).to_string(), Value::Null);
    }
    m.insert("success".into(), json!(false));
    m.insert("errorCode".into(), json!(code));
    m.insert("errorMessage".into(), json!(message.into()));
    Reply::Json(200, Value::Object(m))
}

/// Handles one `/api/…` request; `endpoint` is the lower-case path after `/api/`.
pub(crate) async fn dispatch(
    sh: &Shared,
    endpoint: &str,
    method_is_post: bool,
    token: Option<&str>,
    body: &str,
    received_us: i64,
) -> (Reply, After) {
    let ep = endpoint.trim_matches('/');
    sh.requests.count("projectx", ep);
    if ep == "status/ping" {
        return (Reply::Text(200, "pong".into()), After::Respond);
    }
    if !method_is_post {
        return (Reply::Empty(405), After::Respond);
    }
    let value: Value = if body.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    Reply::problem(&BadField {
                        field: "$".into(),
                        message: format!("The request body is not valid JSON: {e}"),
                    }),
                    After::Respond,
                );
            }
        }
    };
    let b = Body(&value);
    match ep {
        "auth/loginkey" | "auth/loginapp" => {
            let name = b.text("userName").ok().flatten().unwrap_or_default();
            let user = sh.ex.user_by_name(&name);
            let point = Point {
                user_id: user.as_ref().map(|u| u.id),
                account_id: None,
                endpoint: ep,
            };
            if let Err(r) = apply_faults(sh, &point).await {
                return (r, After::Respond);
            }
            let reply = if ep == "auth/loginkey" {
                login_key(sh, b, user)
            } else {
                login_app(sh, b, user)
            };
            return (reply.unwrap_or_else(Reply::from), After::Respond);
        }
        "auth/validate" | "auth/logout" => {
            let Some(token) = token else {
                return (Reply::Empty(401), After::Respond);
            };
            let user_id = sh.px.tokens.validate(token).ok().map(|i| i.user_id);
            let point = Point {
                user_id,
                account_id: None,
                endpoint: ep,
            };
            let after = match apply_faults(sh, &point).await {
                Ok(a) => a,
                Err(r) => return (r, After::Respond),
            };
            let reply = if ep == "auth/validate" {
                validate(sh, token)
            } else {
                logout(sh, token)
            };
            return (reply, after);
        }
        _ => {}
    }
    let identity = match token.map(|t| sh.px.tokens.validate(t)) {
        Some(Ok(i)) => i,
        Some(Err(_)) | None => return (Reply::Empty(401), After::Respond),
    };
    let Some(user) = sh
        .ex
        .user(identity.user_id)
        .filter(|u| u.protocol == Protocol::ProjectX)
    else {
        return (Reply::Empty(401), After::Respond);
    };
    let account_id = b.int("accountId").ok().flatten().or_else(|| {
        b.int("orderId")
            .ok()
            .flatten()
            .and_then(|o| sh.ex.order_account(o))
    });
    let point = Point {
        user_id: Some(user.id),
        account_id,
        endpoint: ep,
    };
    let after = match apply_faults(sh, &point).await {
        Ok(a) => a,
        Err(r) => return (r, After::Respond),
    };
    let bucket = if ep == "history/retrievebars" {
        Bucket::Bars
    } else {
        Bucket::General
    };
    if !sh.px.limits.admit(token.unwrap_or_default(), bucket) {
        return (Reply::Empty(429), After::Respond);
    }
    let ctx = Ctx {
        user_id: Some(user.id),
        session_id: Some(identity.session_id),
        received_us,
    };
    let reply = route(sh, &user, &ctx, ep, b).unwrap_or_else(Reply::from);
    (reply, after)
}

/// Applies the injected request faults matching `point` (Tradovate-only kinds — penalty
/// tickets, captcha — do not apply here).
///
/// # Errors
/// The reply that ends the request.
pub(crate) async fn apply_faults(sh: &Shared, point: &Point<'_>) -> Result<After, Reply> {
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
                return Err(Reply::Text(status, format!("Injected error {status}")));
            }
            FaultKind::TooManyRequests => return Err(Reply::Empty(429)),
            FaultKind::Locked => return Err(Reply::Empty(423)),
            FaultKind::Positions401 => return Err(Reply::Empty(401)),
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

fn route(sh: &Shared, user: &User, ctx: &Ctx, ep: &str, b: Body<'_>) -> Result<Reply, BadField> {
    match ep {
        "account/search" => account_search(sh, user, b),
        "contract/search" => contract_search(sh, b),
        "contract/searchbyid" => contract_by_id(sh, b),
        "contract/available" => Ok(ok(json!({
            "contracts": sh.ex.catalog.contracts.iter()
                .map(|c| contract_model(&sh.ex.catalog, &sh.px.ids, c))
                .collect::<Vec<_>>()
        }))),
        "history/retrievebars" => retrieve_bars(sh, b),
        "order/search" => order_search(sh, user, b, false),
        "order/searchopen" => order_search(sh, user, b, true),
        "order/place" => place_order(sh, user, ctx, b),
        "order/cancel" => cancel_order(sh, user, ctx, b),
        "order/modify" => modify_order(sh, user, ctx, b),
        "position/searchopen" => position_search(sh, user, b),
        "position/closecontract" => close_position(sh, user, ctx, b, false),
        "position/partialclosecontract" => close_position(sh, user, ctx, b, true),
        "trade/search" => trade_search(sh, user, b),
        _ => Ok(Reply::Empty(404)),
    }
}

// ------------------------------------------------------------------------------------ auth

/// The login named by a login request, if it exists and is served through ProjectX.
fn login_user(user: Option<User>) -> Result<User, Reply> {
    let fields = &["token"];
    match user {
        None => Err(fail(login_error::USER_NOT_FOUND, "User not found", fields)),
        Some(u) if u.protocol != Protocol::ProjectX => Err(fail(
            login_error::API_SUBSCRIPTION_NOT_FOUND,
            "No API subscription for this user",
            fields,
        )),
        Some(u) => Ok(u),
    }
}

fn login_key(sh: &Shared, b: Body<'_>, user: Option<User>) -> Result<Reply, BadField> {
    b.need_text("userName")?;
    let key = b.need_text("apiKey")?;
    let fields = &["token"];
    let user = match login_user(user) {
        Ok(u) => u,
        Err(r) => return Ok(r),
    };
    if sh.px.keys.get(&user.id).is_none_or(|k| *k != key) {
        return Ok(fail(
            login_error::INVALID_CREDENTIALS,
            "Invalid credentials",
            fields,
        ));
    }
    let issued = sh.px.tokens.login(user.id, &user.name);
    Ok(ok(json!({"token": issued.token})))
}

fn login_app(sh: &Shared, b: Body<'_>, user: Option<User>) -> Result<Reply, BadField> {
    b.need_text("userName")?;
    let password = b.need_text("password")?;
    let device = b.need_text("deviceId")?;
    let app = b.need_text("appId")?;
    let verify = b.need_text("verifyKey")?;
    let fields = &["token"];
    let user = match login_user(user) {
        Ok(u) => u,
        Err(r) => return Ok(r),
    };
    if user.password != password {
        return Ok(fail(
            login_error::PASSWORD_VERIFICATION_FAILED,
            "Password verification failed",
            fields,
        ));
    }
    // The simulator registers no applications: any non-empty app id and key are accepted.
    if app.trim().is_empty() {
        return Ok(fail(login_error::APP_NOT_FOUND, "App not found", fields));
    }
    if verify.trim().is_empty() {
        return Ok(fail(
            login_error::APP_VERIFICATION_FAILED,
            "App verification failed",
            fields,
        ));
    }
    if device.trim().is_empty() {
        return Ok(fail(login_error::INVALID_DEVICE, "Invalid device", fields));
    }
    let issued = sh.px.tokens.login(user.id, &user.name);
    Ok(ok(json!({"token": issued.token})))
}

fn session_failure(e: TokenError) -> (i64, &'static str) {
    match e {
        TokenError::Expired => (session_error::EXPIRED_TOKEN, "Expired token"),
        TokenError::LoggedOut => (session_error::SESSION_NOT_FOUND, "Session not found"),
        TokenError::Missing | TokenError::Invalid => {
            (session_error::INVALID_SESSION, "Invalid session")
        }
    }
}

fn validate(sh: &Shared, token: &str) -> Reply {
    let name = sh
        .px
        .tokens
        .validate(token)
        .ok()
        .and_then(|i| sh.ex.user(i.user_id))
        .map(|u| u.name)
        .unwrap_or_default();
    match sh.px.tokens.renew(token, &name) {
        Ok(issued) => ok(json!({"newToken": issued.token})),
        Err(e) => {
            let (code, text) = session_failure(e);
            fail(code, text, &["newToken"])
        }
    }
}

fn logout(sh: &Shared, token: &str) -> Reply {
    match sh.px.tokens.logout(token) {
        Ok(Identity { session_id, .. }) => {
            sh.sockets
                .close_session(session_id, "LoggedOut", "The session was logged out");
            ok(json!({}))
        }
        Err(e) => {
            let (code, text) = session_failure(e);
            fail(code, text, &[])
        }
    }
}

// -------------------------------------------------------------------------------- accounts

fn own_account(sh: &Shared, user: &User, id: i64) -> Option<Arc<AccountCell>> {
    sh.ex.account(id).filter(|a| a.account.user_id == user.id)
}

/// The caller's account, or the endpoint's `AccountNotFound` (1 everywhere) with `payload`
/// fields `null`.
fn account_or_fail(
    sh: &Shared,
    user: &User,
    id: i64,
    payload: &[&str],
) -> Result<Arc<AccountCell>, Reply> {
    own_account(sh, user, id).ok_or_else(|| fail(1, format!("Account {id} not found"), payload))
}

fn account_search(sh: &Shared, user: &User, b: Body<'_>) -> Result<Reply, BadField> {
    let only_active = b.bool("onlyActiveAccounts")?.unwrap_or(false);
    let accounts: Vec<Value> = sh
        .ex
        .accounts_of(user.id)
        .iter()
        .filter(|a| !only_active || a.account.active)
        .map(|a| {
            let balance = a.state.lock().cash.amount;
            account_model(a.account.id, &a.account.name, balance, a.account.active)
        })
        .collect();
    Ok(ok(json!({ "accounts": accounts })))
}

// ------------------------------------------------------------------------------- contracts

fn contract_search(sh: &Shared, b: Body<'_>) -> Result<Reply, BadField> {
    let text = b
        .text("searchText")?
        .unwrap_or_default()
        .to_ascii_uppercase();
    let text = text.trim();
    let cat = &sh.ex.catalog;
    // Only the active contract of each product, as the Gateway's documented search answers;
    // other months are reached by id (`Contract/searchById`).
    let contracts: Vec<Value> = cat
        .contracts
        .iter()
        .filter(|c| c.is_front)
        .filter(|c| {
            let p = cat.product_of(c);
            text.is_empty()
                || c.name.to_ascii_uppercase().contains(text)
                || p.name.to_ascii_uppercase().contains(text)
                || p.description.to_ascii_uppercase().contains(text)
                || sh.px.ids.id_of(c.index).contains(text)
        })
        .take(SEARCH_LIMIT)
        .map(|c| contract_model(cat, &sh.px.ids, c))
        .collect();
    Ok(ok(json!({ "contracts": contracts })))
}

fn contract_by_id(sh: &Shared, b: Body<'_>) -> Result<Reply, BadField> {
    let id = b.need_text("contractId")?;
    Ok(match sh.px.ids.index_of(&id) {
        Some(ci) => ok(json!({
            "contract": contract_model(&sh.ex.catalog, &sh.px.ids, &sh.ex.catalog.contracts[ci])
        })),
        None => fail(1, format!("Contract {id} not found"), &["contract"]),
    })
}

fn bucket_start(t: i64, unit: i64, n: i64) -> i64 {
    use chrono::{Datelike, TimeZone, Utc};
    const MIN: i64 = 60_000_000;
    let day = |t: i64| t - t.rem_euclid(1440 * MIN);
    match unit {
        bar_unit::MINUTE => t - t.rem_euclid(n * MIN),
        bar_unit::HOUR => t - t.rem_euclid(n * 60 * MIN),
        bar_unit::DAY => t - t.rem_euclid(n * 1440 * MIN),
        bar_unit::WEEK => {
            // Weeks start on Monday; 1970-01-05 was one.
            let monday = 4 * 1440 * MIN;
            let w = 7 * 1440 * MIN * n;
            monday + (day(t) - monday).div_euclid(w) * w
        }
        _ => {
            let d = Utc.timestamp_micros(t).single().unwrap_or_default();
            let months = i64::from(d.year()) * 12 + i64::from(d.month0());
            let start = months - months.rem_euclid(n);
            let y = i32::try_from(start.div_euclid(12)).unwrap_or(1970);
            let m = u32::try_from(start.rem_euclid(12)).unwrap_or(0) + 1;
            Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                .single()
                .map_or(t, |s| s.timestamp_micros())
        }
    }
}

fn retrieve_bars(sh: &Shared, b: Body<'_>) -> Result<Reply, BadField> {
    let id = b.need_text("contractId")?;
    let start = b
        .ts("startTime")?
        .ok_or_else(|| BadField::missing("startTime"))?;
    let end = b
        .ts("endTime")?
        .ok_or_else(|| BadField::missing("endTime"))?;
    let unit = b.need_int("unit")?;
    let n = b.need_int("unitNumber")?;
    let limit = b.need_int("limit")?;
    let partial = b.bool("includePartialBar")?.unwrap_or(false);
    let fields = &["bars"];
    let Some(ci) = sh.px.ids.index_of(&id) else {
        return Ok(fail(
            bars_error::CONTRACT_NOT_FOUND,
            format!("Contract {id} not found"),
            fields,
        ));
    };
    if !(bar_unit::MINUTE..=bar_unit::MONTH).contains(&unit) {
        let why = if unit == bar_unit::SECOND {
            "the simulator keeps minute bars: units of a minute or more only".to_string()
        } else {
            format!("unit {unit} is not an AggregateBarUnit")
        };
        return Ok(fail(bars_error::UNIT_INVALID, why, fields));
    }
    if n < 1 {
        return Ok(fail(
            bars_error::UNIT_NUMBER_INVALID,
            "unitNumber must be at least 1",
            fields,
        ));
    }
    if !(1..=MAX_BARS).contains(&limit) {
        return Ok(fail(
            bars_error::LIMIT_INVALID,
            format!("limit must be between 1 and {MAX_BARS}"),
            fields,
        ));
    }
    let now = now_us();
    let current = bucket_start(now, unit, n);
    let mut bars: Vec<(i64, Decimal, Decimal, Decimal, Decimal, u64)> = Vec::new();
    for m in sh.ex.market(ci).bars(Some(start), usize::MAX) {
        if m.timestamp_us >= end {
            break;
        }
        let t = bucket_start(m.timestamp_us, unit, n);
        let v = m.up_volume + m.down_volume;
        match bars.last_mut() {
            Some(last) if last.0 == t => {
                last.2 = last.2.max(m.high);
                last.3 = last.3.min(m.low);
                last.4 = m.close;
                last.5 += v;
            }
            _ => bars.push((t, m.open, m.high, m.low, m.close, v)),
        }
    }
    if !partial {
        bars.retain(|bar| bar.0 != current);
    }
    let out: Vec<Value> = bars
        .iter()
        .rev()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|(t, o, h, l, c, v)| {
            json!({"t": ts(*t), "o": crate::wire::num(*o), "h": crate::wire::num(*h),
                "l": crate::wire::num(*l), "c": crate::wire::num(*c), "v": v})
        })
        .collect();
    Ok(ok(json!({ "bars": out })))
}

// ---------------------------------------------------------------------------------- orders

fn order_search(sh: &Shared, user: &User, b: Body<'_>, open_only: bool) -> Result<Reply, BadField> {
    let account_id = b.need_int("accountId")?;
    let (start, end) = if open_only {
        (i64::MIN, i64::MAX)
    } else {
        (
            b.ts("startTimestamp")?
                .ok_or_else(|| BadField::missing("startTimestamp"))?,
            b.ts("endTimestamp")?.unwrap_or(i64::MAX),
        )
    };
    let cell = match account_or_fail(sh, user, account_id, &["orders"]) {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let cat = &sh.ex.catalog;
    let st = cell.state.lock();
    let orders: Vec<Value> = st
        .orders
        .values()
        .filter(|o| !open_only || st.live_ids.contains(&o.order.id))
        .filter(|o| (start..=end).contains(&o.order.timestamp_us))
        .filter_map(|o| {
            let c = cat.contract(o.order.contract_id)?;
            Some(order_model(
                cat,
                &sh.px.ids,
                &OrderView::of(o, c.index),
                Nulls::Explicit,
            ))
        })
        .collect();
    Ok(ok(json!({ "orders": orders })))
}

/// A bracket as sent: `{ticks, type}`.
struct Bracket {
    ticks: i64,
    kind: i64,
}

fn bracket(b: Body<'_>, key: &str) -> Result<Option<Bracket>, BadField> {
    let Some(v) = b.value(key) else {
        return Ok(None);
    };
    let inner = Body(v);
    let ticks = inner.int("ticks")?.ok_or_else(|| BadField {
        field: format!("{key}.ticks"),
        message: format!("The {key}.ticks field is required."),
    })?;
    let kind = inner.int("type")?.ok_or_else(|| BadField {
        field: format!("{key}.type"),
        message: format!("The {key}.type field is required."),
    })?;
    Ok(Some(Bracket { ticks, kind }))
}

/// The signed core offset of a bracket: `sign` is +1 for the winning side of the entry.
/// Both tick conventions seen in the wild are read: unsigned (`ticks` > 0 is the bracket's
/// own side) and signed (a long's stop negative, a short's target negative); a sign that fits
/// neither is refused.
fn bracket_offset(
    br: &Bracket,
    action: Action,
    take_profit: bool,
    tick: Decimal,
) -> Result<Decimal, String> {
    let what = if take_profit {
        "takeProfitBracket"
    } else {
        "stopLossBracket"
    };
    if br.ticks == 0 {
        return Err(format!("{what}.ticks must not be 0"));
    }
    let dir = Decimal::from(action.sign());
    // Negative ticks are the signed convention's side of a long's stop and a short's target.
    let negative_ok = match (action, take_profit) {
        (Action::Buy, false) | (Action::Sell, true) => true,
        (Action::Buy, true) | (Action::Sell, false) => false,
    };
    if br.ticks < 0 && !negative_ok {
        return Err(format!(
            "{what}.ticks {} is on the wrong side for a {} entry",
            br.ticks,
            if action == Action::Buy { "buy" } else { "sell" }
        ));
    }
    let distance = Decimal::from(br.ticks.unsigned_abs()) * tick;
    Ok(if take_profit {
        dir * distance
    } else {
        -dir * distance
    })
}

fn place_order(sh: &Shared, user: &User, ctx: &Ctx, b: Body<'_>) -> Result<Reply, BadField> {
    let account_id = b.need_int("accountId")?;
    let contract_id = b.need_text("contractId")?;
    let t = b.need_int("type")?;
    let side = b.need_int("side")?;
    let size = b.need_int("size")?;
    let limit = b.dec("limitPrice")?;
    let stop = b.dec("stopPrice")?;
    let trail = b.dec("trailPrice")?;
    let tag = b.text("customTag")?.filter(|t| !t.trim().is_empty());
    let sl = bracket(b, "stopLossBracket")?;
    let tp = bracket(b, "takeProfitBracket")?;
    let fields = &["orderId"];
    let rejected = |text: String| Ok(fail(place_error::ORDER_REJECTED, text, fields));
    let cell = match account_or_fail(sh, user, account_id, fields) {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let Some(ci) = sh.px.ids.index_of(&contract_id) else {
        return Ok(fail(
            place_error::CONTRACT_NOT_FOUND,
            format!("Contract {contract_id} not found"),
            fields,
        ));
    };
    if !cell.account.active {
        return Ok(fail(
            place_error::ACCOUNT_VIOLATION,
            "The account cannot trade",
            fields,
        ));
    }
    if !sh.ex.is_open(now_us()) {
        return Ok(fail(
            place_error::OUTSIDE_TRADING_HOURS,
            "The market is closed",
            fields,
        ));
    }
    let Some(action) = enums::action_of(side) else {
        return rejected(format!("Invalid side {side}: 0 (Bid) or 1 (Ask)"));
    };
    let Ok(qty) = u32::try_from(size) else {
        return rejected(format!("Invalid size {size}"));
    };
    if qty == 0 {
        return rejected("Invalid size 0".into());
    }
    let market = sh.ex.market(ci);
    let (core_type, price, stop_price) = match t {
        order_type::LIMIT => (OrderType::Limit, limit, None),
        order_type::MARKET => (OrderType::Market, None, None),
        order_type::STOP_LIMIT => (OrderType::StopLimit, limit, stop),
        order_type::STOP => (OrderType::Stop, None, stop),
        // The starting stop level, an absolute price (`trailPrice`, else `stopPrice`); the
        // stop trails by its distance from the last price.
        order_type::TRAILING_STOP => (OrderType::TrailingStop, None, trail.or(stop)),
        // The book is locked at the last price: joining the bid or the ask is a limit there.
        order_type::JOIN_BID | order_type::JOIN_ASK => {
            (OrderType::Limit, Some(market.price()), None)
        }
        other => return rejected(format!("Invalid order type {other}")),
    };
    let tick = market.tick_size;
    let auto_brackets = !sh.px.manual_brackets.contains_key(&cell.account.id);
    let brackets = match (&sl, &tp) {
        (None, None) => None,
        // The account's "Auto OCO Brackets" is off: the fields are ignored.
        _ if !auto_brackets => None,
        _ => {
            if !matches!(
                core_type,
                OrderType::Market | OrderType::Limit | OrderType::Stop | OrderType::StopLimit
            ) {
                return rejected("Brackets need a market, limit or stop entry".into());
            }
            let mut spec = BracketSpec {
                qty,
                profit_target: None,
                stop_loss: None,
                trailing_stop: false,
                auto_trail: None,
                break_even: None,
            };
            if let Some(br) = &sl {
                match br.kind {
                    order_type::STOP => {}
                    order_type::TRAILING_STOP => spec.trailing_stop = true,
                    other => {
                        return rejected(format!(
                            "stopLossBracket.type {other}: 4 (Stop) or 5 (TrailingStop); a limit on the losing side would fill at once"
                        ));
                    }
                }
                match bracket_offset(br, action, false, tick) {
                    Ok(o) => spec.stop_loss = Some(o),
                    Err(e) => return rejected(e),
                }
            }
            if let Some(br) = &tp {
                if br.kind != order_type::LIMIT {
                    return rejected(format!(
                        "takeProfitBracket.type {}: 1 (Limit) only",
                        br.kind
                    ));
                }
                match bracket_offset(br, action, true, tick) {
                    Ok(o) => spec.profit_target = Some(o),
                    Err(e) => return rejected(e),
                }
            }
            Some(spec)
        }
    };
    let params = json!({
        "stopLossBracket": sl.as_ref().map(|b| json!({"ticks": b.ticks, "type": b.kind})),
        "takeProfitBracket": tp.as_ref().map(|b| json!({"ticks": b.ticks, "type": b.kind})),
    })
    .to_string();
    let placed: Result<Id, String> = sh.ex.run(&cell, ctx, |op| {
        if let Some(tag) = &tag
            && op
                .st
                .orders
                .values()
                .any(|o| o.cl_ord_id.as_deref() == Some(tag.as_str()))
        {
            return Err(format!(
                "customTag '{tag}' is already used by an order of this account"
            ));
        }
        op.check_terms(ci, core_type, price, stop_price, None)
            .map_err(|r| r.text)?;
        match brackets {
            Some(b) => {
                let spec = StrategySpec {
                    action,
                    entry: EntrySpec {
                        qty,
                        order_type: core_type,
                        price,
                        stop_price,
                        tif: None,
                        cl_ord_id: tag.clone(),
                    },
                    brackets: vec![b],
                };
                spec.validate(tick)?;
                let s = op.start_strategy(ci, spec, params, None, None, true);
                op.st
                    .strategies
                    .get(&s.id)
                    .map(|r| r.entry_id)
                    .ok_or_else(|| "the bracket could not be started".to_string())
            }
            None => {
                let spec = OrderSpec {
                    action: Some(action),
                    qty,
                    order_type: Some(core_type),
                    price,
                    stop_price,
                    cl_ord_id: tag.clone(),
                    is_automated: true,
                    ..OrderSpec::default()
                };
                let id = op.create_order(ci, &spec, false, None, false);
                op.match_contract(ci);
                Ok(id)
            }
        }
    });
    Ok(match placed {
        Ok(id) => ok(json!({ "orderId": id })),
        Err(text) => fail(place_error::ORDER_REJECTED, text, fields),
    })
}

/// The account and order of a cancel or modify, both the caller's.
fn owned_order(
    sh: &Shared,
    user: &User,
    b: Body<'_>,
) -> Result<Result<(Arc<AccountCell>, Id), Reply>, BadField> {
    let account_id = b.need_int("accountId")?;
    let order_id = b.need_int("orderId")?;
    let cell = match account_or_fail(sh, user, account_id, &[]) {
        Ok(c) => c,
        Err(r) => return Ok(Err(r)),
    };
    if sh.ex.order_account(order_id) != Some(account_id) {
        return Ok(Err(fail(
            order_change_error::ORDER_NOT_FOUND,
            format!("Order {order_id} not found"),
            &[],
        )));
    }
    Ok(Ok((cell, order_id)))
}

fn not_working(st: &crate::core::account::AccountState, order_id: Id) -> Option<Reply> {
    if st.live_ids.contains(&order_id) {
        return None;
    }
    let status = st
        .orders
        .get(&order_id)
        .map(|o| format!("{:?}", o.order.ord_status))
        .unwrap_or_default();
    Some(fail(
        order_change_error::REJECTED,
        format!("Order {order_id} is not working (status {status})"),
        &[],
    ))
}

fn cancel_order(sh: &Shared, user: &User, ctx: &Ctx, b: Body<'_>) -> Result<Reply, BadField> {
    let (cell, order_id) = match owned_order(sh, user, b)? {
        Ok(t) => t,
        Err(r) => return Ok(r),
    };
    Ok(sh.ex.run(&cell, ctx, |op| {
        if let Some(r) = not_working(op.st, order_id) {
            return r;
        }
        op.client_cancel(order_id, None, true, None);
        ok(json!({}))
    }))
}

fn modify_order(sh: &Shared, user: &User, ctx: &Ctx, b: Body<'_>) -> Result<Reply, BadField> {
    let size = b.int("size")?;
    let limit = b.dec("limitPrice")?;
    let stop = b.dec("stopPrice")?;
    let trail = b.dec("trailPrice")?;
    let (cell, order_id) = match owned_order(sh, user, b)? {
        Ok(t) => t,
        Err(r) => return Ok(r),
    };
    if !sh.ex.is_open(now_us()) {
        return Ok(fail(
            order_change_error::REJECTED,
            "The market is closed",
            &[],
        ));
    }
    let qty = match size.map(u32::try_from) {
        None => None,
        Some(Ok(q)) if q > 0 => Some(q),
        Some(_) => {
            return Ok(fail(
                order_change_error::REJECTED,
                format!("Invalid size {}", size.unwrap_or_default()),
                &[],
            ));
        }
    };
    Ok(sh.ex.run(&cell, ctx, |op| {
        if let Some(r) = not_working(op.st, order_id) {
            return r;
        }
        let Some(current) = op.st.orders.get(&order_id).map(|o| o.version.clone()) else {
            return fail(order_change_error::ORDER_NOT_FOUND, "Order not found", &[]);
        };
        let spec = crate::core::account::ModifySpec {
            qty: qty.unwrap_or(current.order_qty),
            price: limit,
            // A trailing stop's level is its stop price.
            stop_price: stop.or(trail),
            is_automated: true,
            ..crate::core::account::ModifySpec::default()
        };
        match op.client_modify(order_id, &spec) {
            Err(r) => fail(order_change_error::REJECTED, r.text, &[]),
            Ok(command_id) => {
                let rejected = op
                    .st
                    .command_reports
                    .iter()
                    .rev()
                    .find(|r| r.command_id == command_id)
                    .filter(|r| r.command_status == CommandStatus::ExecutionRejected);
                match rejected {
                    Some(r) => fail(
                        order_change_error::REJECTED,
                        r.text.clone().unwrap_or_else(|| "modify rejected".into()),
                        &[],
                    ),
                    None => ok(json!({})),
                }
            }
        }
    }))
}

// ------------------------------------------------------------------------------- positions

fn position_search(sh: &Shared, user: &User, b: Body<'_>) -> Result<Reply, BadField> {
    let account_id = b.need_int("accountId")?;
    let cell = match account_or_fail(sh, user, account_id, &["positions"]) {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let cat = &sh.ex.catalog;
    let st = cell.state.lock();
    let positions: Vec<Value> = st
        .positions
        .values()
        .filter(|p| p.pos.net_pos != 0)
        .filter_map(|p| {
            let c = cat.contract(p.pos.contract_id)?;
            let view = PositionView {
                id: p.pos.id,
                account_id,
                contract_index: c.index,
                created_us: p.pos.timestamp_us,
                position_type: enums::position_type_of(p.pos.net_pos)?,
                size: p.pos.net_pos.unsigned_abs(),
                average_price: p.pos.net_price.unwrap_or_default(),
            };
            Some(position_model(cat, &sh.px.ids, &view, Nulls::Explicit))
        })
        .collect();
    Ok(ok(json!({ "positions": positions })))
}

fn close_position(
    sh: &Shared,
    user: &User,
    ctx: &Ctx,
    b: Body<'_>,
    partial: bool,
) -> Result<Reply, BadField> {
    let account_id = b.need_int("accountId")?;
    let contract_id = b.need_text("contractId")?;
    let size = if partial {
        Some(b.need_int("size")?)
    } else {
        None
    };
    let cell = match account_or_fail(sh, user, account_id, &[]) {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let Some(ci) = sh.px.ids.index_of(&contract_id) else {
        return Ok(fail(
            close_error::CONTRACT_NOT_FOUND,
            format!("Contract {contract_id} not found"),
            &[],
        ));
    };
    let order_rejected = if partial {
        close_error::PARTIAL_ORDER_REJECTED
    } else {
        close_error::CLOSE_ORDER_REJECTED
    };
    if !sh.ex.is_open(now_us()) || !cell.account.active {
        return Ok(fail(
            order_rejected,
            "The market is closed or the account cannot trade",
            &[],
        ));
    }
    let core_contract = sh.ex.catalog.contracts[ci].id;
    Ok(sh.ex.run(&cell, ctx, |op| {
        let net = op.net_pos(core_contract);
        if net == 0 {
            return fail(
                close_error::POSITION_NOT_FOUND,
                format!("No open position in {contract_id}"),
                &[],
            );
        }
        let open = net.unsigned_abs();
        let qty = match size {
            None => open,
            Some(s) if s >= 1 && s.unsigned_abs() <= open => s.unsigned_abs(),
            Some(s) => {
                return fail(
                    close_error::INVALID_CLOSE_SIZE,
                    format!("Close size {s} must be between 1 and {open}"),
                    &[],
                );
            }
        };
        let spec = OrderSpec {
            action: Some(if net > 0 { Action::Sell } else { Action::Buy }),
            qty: u32::try_from(qty).unwrap_or(u32::MAX),
            order_type: Some(OrderType::Market),
            is_automated: true,
            text: Some(if partial {
                "partial close".into()
            } else {
                "close position".into()
            }),
            ..OrderSpec::default()
        };
        op.create_order(ci, &spec, false, None, false);
        op.match_contract(ci);
        ok(json!({}))
    }))
}

// ---------------------------------------------------------------------------------- trades

fn trade_search(sh: &Shared, user: &User, b: Body<'_>) -> Result<Reply, BadField> {
    let account_id = b.need_int("accountId")?;
    let start = b.ts("startTimestamp")?.unwrap_or(i64::MIN);
    let end = b.ts("endTimestamp")?.unwrap_or(i64::MAX);
    let cell = match account_or_fail(sh, user, account_id, &["trades"]) {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let cat = &sh.ex.catalog;
    let st = cell.state.lock();
    let trades: Vec<Value> = st
        .fills
        .iter()
        .filter(|f| (start..=end).contains(&f.timestamp_us))
        .filter_map(|f| {
            let c = cat.contract(f.contract_id)?;
            let vpp = cat.product_of(c).value_per_point();
            // A fill's realized P&L: the pairs it closed (it is the later of the two fills).
            let pairs: Vec<_> = st
                .fill_pairs
                .iter()
                .filter(|p| p.buy_fill_id.max(p.sell_fill_id) == f.id)
                .collect();
            let pnl = (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|p| (p.sell_price - p.buy_price) * Decimal::from(p.qty) * vpp)
                    .sum::<Decimal>()
            });
            let view = TradeView {
                id: f.id,
                account_id,
                contract_index: c.index,
                created_us: f.timestamp_us,
                price: f.price,
                profit_and_loss: pnl,
                fees: f.commission,
                action: f.action,
                size: f.qty,
                order_id: f.order_id,
            };
            Some(trade_model(&sh.px.ids, &view, Nulls::Explicit))
        })
        .collect();
    Ok(ok(json!({ "trades": trades })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn both_bracket_tick_conventions_are_read_and_wrong_signs_refused() {
        let t = dec!(0.25);
        let br = |ticks| Bracket { ticks, kind: 4 };
        // A buy: stop below (negative offset) from +10 (unsigned) or −10 (signed).
        assert_eq!(
            bracket_offset(&br(10), Action::Buy, false, t),
            Ok(dec!(-2.5))
        );
        assert_eq!(
            bracket_offset(&br(-10), Action::Buy, false, t),
            Ok(dec!(-2.5))
        );
        assert_eq!(bracket_offset(&br(20), Action::Buy, true, t), Ok(dec!(5)));
        assert!(bracket_offset(&br(-20), Action::Buy, true, t).is_err());
        // A sell: stop above, target below.
        assert_eq!(
            bracket_offset(&br(10), Action::Sell, false, t),
            Ok(dec!(2.5))
        );
        assert!(bracket_offset(&br(-10), Action::Sell, false, t).is_err());
        assert_eq!(
            bracket_offset(&br(-20), Action::Sell, true, t),
            Ok(dec!(-5))
        );
        assert_eq!(bracket_offset(&br(20), Action::Sell, true, t), Ok(dec!(-5)));
        assert!(bracket_offset(&br(0), Action::Sell, true, t).is_err());
    }

    #[test]
    fn bar_buckets() {
        let min = 60_000_000;
        assert_eq!(bucket_start(7 * min + 5, bar_unit::MINUTE, 5), 5 * min);
        assert_eq!(bucket_start(90 * min, bar_unit::HOUR, 1), 60 * min);
        // 1970-01-08 (Thursday) belongs to the week of Monday 1970-01-05.
        assert_eq!(
            bucket_start(7 * 1440 * min + 3, bar_unit::WEEK, 1),
            4 * 1440 * min
        );
        assert_eq!(
            bucket_start(40 * 1440 * min, bar_unit::MONTH, 1),
            31 * 1440 * min
        );
    }
}
