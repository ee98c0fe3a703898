//! Every Tradovate endpoint, shared by REST and the WebSocket (`endpoint\nid\nquery\nbody`).
//!
//! A request goes through, in order: authentication (a bearer token, or the identity of an
//! authorized socket), injected faults, rate limits and penalties, then the handler. Business
//! failures are HTTP 200 bodies (`errorText`, `failureReason`/`failureText`, `violations`);
//! HTTP errors are 400 (malformed), 401 (token), 404 (unknown endpoint or entity), 423 and
//! 429. Error bodies are JSON strings, which the socket carries as its `d` text.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::Shared;
use crate::core::account::{ModifySpec, OrderSpec};
use crate::core::clock::{iso, now_us};
use crate::core::model::{Action, FailureReason, Id, OrderType, Protocol, TimeInForce, User};
use crate::core::strategy::{AutoTrail, BracketSpec, BreakEven, EntrySpec, StrategySpec};
use crate::core::{AccountCell, Ctx, Rejection};
use crate::faults::{AmbiguousMode, FaultKind, Point};

use super::auth::{AuthError, Identity, Issued};
use super::entities::{self, Kind};
use super::limits::Verdict;
use crate::wire::{Fields, Obj, num, parse_query};

/// Who sends a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Source address.
    pub ip: IpAddr,
    /// Bearer token (REST).
    pub token: Option<String>,
    /// Identity of the authorized socket (WebSocket requests).
    pub socket: Option<Identity>,
    /// Arrival (µs).
    pub received_us: i64,
}

/// A response body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// JSON.
    Json(Value),
    /// An error text, sent as a JSON string.
    Text(String),
    /// Nothing (429).
    Empty,
}

/// A response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Body,
}

impl Reply {
    fn ok(v: Value) -> Self {
        Reply {
            status: 200,
            body: Body::Json(v),
        }
    }
    fn text(status: u16, s: impl Into<String>) -> Self {
        Reply {
            status,
            body: Body::Text(s.into()),
        }
    }
    fn empty(status: u16) -> Self {
        Reply {
            status,
            body: Body::Empty,
        }
    }

    /// The body as the text a REST client reads.
    #[must_use]
    pub fn body_text(&self) -> String {
        match &self.body {
            Body::Json(v) => v.to_string(),
            Body::Text(t) => Value::String(t.clone()).to_string(),
            Body::Empty => String::new(),
        }
    }
}

/// What to do after handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Send the reply.
    Respond,
    /// Drop the connection without a reply (ambiguous failure).
    Drop,
    /// Never reply (ambiguous failure: the client times out).
    Hang,
}

/// A handled request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The reply.
    pub reply: Reply,
    /// What to do with it.
    pub after: After,
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        Outcome {
            reply,
            after: After::Respond,
        }
    }
}

fn penalty(ticket: &str, secs: u64, captcha: bool) -> Reply {
    let mut o = Obj::new().set("p-ticket", ticket).set("p-time", secs);
    if captcha {
        o = o.set("p-captcha", true);
    }
    Reply::ok(o.done())
}

fn verdict_reply(v: Verdict) -> Option<Reply> {
    match v {
        Verdict::Proceed => None,
        Verdict::Penalty {
            ticket,
            secs,
            captcha,
        } => Some(penalty(&ticket, secs, captcha)),
        Verdict::Locked => Some(Reply::text(
            423,
            "Too many requests: you are about to be locked out",
        )),
        Verdict::TooMany => Some(Reply::empty(429)),
    }
}

fn violation(field: &str, value: Option<&Value>, description: &str) -> Reply {
    Reply::ok(json!({
        "violations": [{
            "constraint": field,
            "value": value.cloned().unwrap_or(Value::Null),
            "description": description,
        }]
    }))
}

fn failure(r: &Rejection) -> Reply {
    Reply::ok(json!({"failureReason": r.reason, "failureText": r.text}))
}

fn failure_of(reason: FailureReason, text: impl Into<String>) -> Reply {
    failure(&Rejection::new(reason, text))
}

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
    fn ids(&self, k: &str) -> Option<Vec<Id>> {
        self.get(k)
            .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
    }
}

/// Handles one request.
pub(crate) async fn dispatch(
    sh: &Shared,
    caller: &Caller,
    endpoint: &str,
    query: &str,
    body: &str,
) -> Outcome {
    let ep = endpoint.trim().trim_matches('/').to_ascii_lowercase();
    let ep = ep.strip_prefix("v1/").unwrap_or(&ep).to_string();
    sh.requests.count("tradovate", &ep);
    let q = Query(parse_query(query));
    let body_value: Value = if body.trim().is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return Reply::text(400, format!("Malformed JSON body: {e}")).into(),
        }
    };
    let ticket = Fields(&body_value)
        .text("p-ticket")
        .or_else(|| q.get("p-ticket").map(str::to_string));

    if ep == "auth/accesstokenrequest" {
        return access_token_request(sh, caller, &body_value, ticket.as_deref())
            .await
            .into();
    }
    if ep == "auth/oauthtoken" {
        return oauth_token(sh, &body_value).into();
    }

    let passed = match gate(sh, caller, &ep, &body_value, ticket.as_deref()).await {
        Ok(p) => p,
        Err(reply) => return reply.into(),
    };
    let ctx = Ctx {
        user_id: Some(passed.user.id),
        session_id: Some(passed.identity.session_id),
        received_us: caller.received_us,
    };
    let reply = route(sh, caller, &passed.user, &ctx, &ep, &q, &body_value);
    Outcome {
        reply,
        after: passed.after,
    }
}

/// A request that passed authentication, faults and limits.
#[derive(Debug, Clone)]
pub struct Passed {
    /// Token identity.
    pub identity: Identity,
    /// The user.
    pub user: User,
    /// What to do after handling (ambiguous faults).
    pub after: After,
}

/// Authentication, injected faults and limits, in that order.
///
/// # Errors
/// The reply that ends the request (401, fault, penalty, 423, 429).
pub(crate) async fn gate(
    sh: &Shared,
    caller: &Caller,
    ep: &str,
    body: &Value,
    ticket: Option<&str>,
) -> Result<Passed, Reply> {
    let identity = match (&caller.socket, &caller.token) {
        (Some(id), _) => {
            if sh.auth.session_alive(id.session_id, id.user_id) {
                Ok(*id)
            } else {
                Err(AuthError::Revoked)
            }
        }
        (None, Some(t)) => sh.auth.validate(t),
        (None, None) => Err(AuthError::Missing),
    };
    let identity = identity.map_err(|e| Reply::text(401, e.to_string()))?;
    let Some(user) = sh.ex.user(identity.user_id) else {
        return Err(Reply::text(401, "Access is denied"));
    };
    let account_id = request_account(sh, &user, body);
    let point = Point {
        user_id: Some(user.id),
        account_id,
        endpoint: ep,
    };
    let after = apply_faults(sh, &point, None).await?;
    if let Some(r) = verdict_reply(sh.limits.check(Some(user.id), caller.ip, None, ticket)) {
        return Err(r);
    }
    Ok(Passed {
        identity,
        user,
        after,
    })
}

/// Applies the injected request faults matching `point`: waits out latency, answers error,
/// penalty, 423, 429 and empty-position faults, and says what to do after handling
/// (ambiguous faults). `login` is the name of a token request: its penalties demand a captcha
/// and the `captcha` fault applies to it only.
async fn apply_faults(sh: &Shared, point: &Point<'_>, login: Option<&str>) -> Result<After, Reply> {
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
                return Err(Reply::text(status, format!("Injected error {status}")));
            }
            FaultKind::PTicket { p_time } => {
                if let Some(r) = verdict_reply(sh.limits.issue(p_time, login.is_some())) {
                    return Err(r);
                }
            }
            FaultKind::Captcha => {
                if let Some(name) = login {
                    sh.limits.force_captcha(name);
                }
            }
            FaultKind::TooManyRequests => return Err(Reply::empty(429)),
            FaultKind::Locked => {
                return Err(Reply::text(
                    423,
                    "Too many requests: you are about to be locked out",
                ));
            }
            FaultKind::Positions401 => {
                return Err(Reply {
                    status: 401,
                    body: Body::Json(json!([])),
                });
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

/// The account a request is about, for fault scopes.
fn request_account(sh: &Shared, user: &User, body: &Value) -> Option<Id> {
    let f = Fields(body);
    if let Some(id) = f.int("accountId") {
        return Some(id);
    }
    if let Some(spec) = f.text("accountSpec") {
        if let Some(a) = sh.ex.account_by_name(&spec) {
            return Some(a.account.id);
        }
        if spec.eq_ignore_ascii_case(&user.name) && user.account_ids.len() == 1 {
            return user.account_ids.first().copied();
        }
    }
    if let Some(order) = f.int("orderId") {
        return sh.ex.order_account(order);
    }
    if let Some(s) = f.int("orderStrategyId") {
        return sh.ex.strategy_account(s);
    }
    None
}

fn route(
    sh: &Shared,
    caller: &Caller,
    user: &User,
    ctx: &Ctx,
    ep: &str,
    q: &Query,
    body: &Value,
) -> Reply {
    match ep {
        "auth/renewaccesstoken" => renew(sh, caller, user),
        "auth/me" => Reply::ok(json!({
            "userId": user.id,
            "name": user.name,
            "fullName": user.name,
            "email": format!("{}@sim.invalid", user.name.to_ascii_lowercase()),
            "emailVerified": true,
            "isTrial": false,
        })),
        "user/syncrequest" => Reply::ok(sync_snapshot(sh, user, body, None).0),
        "order/placeorder" => place_order(sh, user, ctx, body),
        "order/placeoso" => place_oso(sh, user, ctx, body),
        "order/placeoco" => place_oco(sh, user, ctx, body),
        "order/modifyorder" => modify_order(sh, user, ctx, body),
        "order/cancelorder" => cancel_order(sh, user, ctx, body),
        "order/liquidateposition" => liquidate(sh, user, ctx, body),
        "orderstrategy/startorderstrategy" => start_strategy(sh, user, ctx, body),
        "orderstrategy/interruptorderstrategy" => interrupt_strategy(sh, user, ctx, body),
        "orderstrategy/modifyorderstrategy" => Reply::ok(json!({
            "errorText": "modifyorderstrategy is not supported by the simulator; cancel and replace the strategy's orders instead"
        })),
        "cashbalance/getcashbalancesnapshot" => cash_snapshot(sh, user, body),
        _ => {
            let Some((entity, op)) = ep.split_once('/') else {
                return Reply::text(404, format!("Not found: {ep}"));
            };
            match Kind::parse(entity) {
                Some(kind) => entity_op(sh, user, kind, op, q, ep),
                None => Reply::text(404, format!("Not found: {ep}")),
            }
        }
    }
}

// ------------------------------------------------------------------------ auth

fn token_response(issued: &Issued, user: &User) -> Value {
    json!({
        "accessToken": issued.access_token,
        "mdAccessToken": issued.md_access_token,
        "expirationTime": iso(issued.expires_us),
        "passwordExpirationTime": iso(issued.expires_us + 365 * 86_400_000_000),
        "userStatus": "Active",
        "userId": user.id,
        "name": user.name,
        "hasLive": false,
        "outdatedTaC": false,
        "hasFunded": false,
        "hasMarketData": true,
        "outdatedLiquidationPolicy": false,
    })
}

async fn access_token_request(
    sh: &Shared,
    caller: &Caller,
    body: &Value,
    ticket: Option<&str>,
) -> Reply {
    let f = Fields(body);
    let name = f.text("name").unwrap_or_default();
    let user = sh.ex.user_by_name(&name);
    let point = Point {
        user_id: user.as_ref().map(|u| u.id),
        account_id: None,
        endpoint: "auth/accesstokenrequest",
    };
    if let Err(r) = apply_faults(sh, &point, Some(&name)).await {
        return r;
    }
    if let Some(r) = verdict_reply(sh.limits.check(None, caller.ip, Some(&name), ticket)) {
        return r;
    }
    if name.is_empty() {
        return violation("name", f.value("name"), "name is required");
    }
    let Some(password) = f.text("password") else {
        return violation("password", None, "password is required");
    };
    let bad = || {
        sh.limits.failed_login(&name, caller.ip);
        Reply::ok(json!({
            "errorText": "Incorrect username or password. Please try again, noting that passwords are case-sensitive."
        }))
    };
    let Some(user) = user else {
        return bad();
    };
    // A login configured for another protocol (ProjectX) is not reachable through this one.
    if user.protocol != Protocol::Tradovate || user.password != password {
        return bad();
    }
    if let Some(sec) = &user.sec
        && f.text("sec").as_deref() != Some(sec.as_str())
    {
        return bad();
    }
    if let Some(cid) = &user.cid
        && f.text("cid").as_deref() != Some(cid.as_str())
    {
        return bad();
    }
    let issued = sh.auth.login(user.id);
    for s in &issued.evicted {
        sh.sockets.close_session(
            *s,
            "ConnectionQuotaReached",
            "Session closed: the user opened a newer session",
        );
    }
    Reply::ok(token_response(&issued, &user))
}

fn renew(sh: &Shared, caller: &Caller, user: &User) -> Reply {
    let token = match &caller.token {
        Some(t) => t.clone(),
        None => {
            // A socket renews the token it was authorized with; it has no bearer header.
            return Reply::ok(
                json!({"errorText": "renew the token over REST with its Authorization header"}),
            );
        }
    };
    match sh.auth.renew(&token) {
        Ok(issued) => Reply::ok(token_response(&issued, user)),
        Err(e) => Reply::text(401, e.to_string()),
    }
}

fn oauth_token(sh: &Shared, body: &Value) -> Reply {
    let f = Fields(body);
    let code = f.text("code").unwrap_or_default();
    let served = |id: Id| {
        sh.ex
            .user(id)
            .is_some_and(|u| u.protocol == Protocol::Tradovate)
    };
    let Some((_, user_id)) = sh.oauth_codes.remove(&code).filter(|(_, id)| served(*id)) else {
        return Reply::ok(json!({
            "error": "invalid_grant",
            "error_description": "unknown or used authorization code",
        }));
    };
    let issued = sh.auth.login(user_id);
    for s in &issued.evicted {
        sh.sockets.close_session(
            *s,
            "ConnectionQuotaReached",
            "Session closed: the user opened a newer session",
        );
    }
    let secs = (issued.expires_us - now_us()) / 1_000_000;
    Reply::ok(json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": secs,
    }))
}

// ------------------------------------------------------------------------ orders

fn resolve_account(sh: &Shared, user: &User, f: Fields<'_>) -> Result<Arc<AccountCell>, Reply> {
    if let Some(id) = f.int("accountId") {
        return match sh.ex.account(id) {
            Some(a) if a.account.user_id == user.id => Ok(a),
            _ => Err(failure_of(
                FailureReason::UnknownReason,
                format!("Account {id} is not an account of user {}", user.name),
            )),
        };
    }
    if let Some(spec) = f.text("accountSpec").or_else(|| f.text("accountName")) {
        if let Some(a) = sh.ex.account_by_name(&spec)
            && a.account.user_id == user.id
        {
            return Ok(a);
        }
        // Tradovate's examples put the user name in accountSpec: it names the user's only
        // account.
        if spec.eq_ignore_ascii_case(&user.name)
            && let [only] = user.account_ids.as_slice()
            && let Some(a) = sh.ex.account(*only)
        {
            return Ok(a);
        }
        return Err(failure_of(
            FailureReason::UnknownReason,
            format!("Account {spec} is not an account of user {}", user.name),
        ));
    }
    Err(violation(
        "accountId",
        None,
        "accountId or accountSpec is required",
    ))
}

fn resolve_contract(sh: &Shared, f: Fields<'_>) -> Result<usize, Reply> {
    let Some(symbol) = f.text("symbol") else {
        return Err(violation("symbol", None, "symbol is required"));
    };
    let c = sh.ex.catalog.contract_by_name(&symbol).or_else(|| {
        symbol
            .trim()
            .parse::<Id>()
            .ok()
            .and_then(|id| sh.ex.catalog.contract(id))
    });
    c.map(|c| c.index).ok_or_else(|| {
        failure_of(
            FailureReason::InvalidContract,
            format!("Unknown contract symbol {symbol}"),
        )
    })
}

/// The account and contract (catalog index) an order names.
fn target(sh: &Shared, user: &User, f: Fields<'_>) -> Result<(Arc<AccountCell>, usize), Reply> {
    Ok((resolve_account(sh, user, f)?, resolve_contract(sh, f)?))
}

/// Reads the order fields shared by PlaceOrder, its brackets and ModifyOrder.
fn order_fields(f: Fields<'_>, need_qty: bool) -> Result<OrderSpec, Reply> {
    let action =
        match f.text("action") {
            Some(a) => Some(Action::parse(&a).ok_or_else(|| {
                violation("action", f.value("action"), "action must be Buy or Sell")
            })?),
            None => return Err(violation("action", None, "action is required")),
        };
    let order_type = match f.text("orderType") {
        Some(t) => Some(OrderType::parse(&t).ok_or_else(|| {
            violation(
                "orderType",
                f.value("orderType"),
                "orderType must be one of Limit, MIT, Market, QTS, Stop, StopLimit, TrailingStop, TrailingStopLimit",
            )
        })?),
        None => return Err(violation("orderType", None, "orderType is required")),
    };
    let qty = if need_qty {
        match f.int("orderQty") {
            Some(q) if q >= 1 => u32::try_from(q).unwrap_or(u32::MAX),
            Some(_) => {
                return Err(violation(
                    "orderQty",
                    f.value("orderQty"),
                    "orderQty must be at least 1",
                ));
            }
            None => return Err(violation("orderQty", None, "orderQty is required")),
        }
    } else {
        0
    };
    let tif = match f.text("timeInForce") {
        Some(t) => Some(TimeInForce::parse(&t).ok_or_else(|| {
            violation(
                "timeInForce",
                f.value("timeInForce"),
                "timeInForce must be one of Day, FOK, GTC, GTD, IOC",
            )
        })?),
        None => None,
    };
    Ok(OrderSpec {
        action,
        qty,
        order_type,
        price: f.dec("price"),
        stop_price: f.dec("stopPrice"),
        peg_difference: f.dec("pegDifference"),
        max_show: f.int("maxShow").and_then(|v| u32::try_from(v).ok()),
        tif,
        expire_time: f.text("expireTime"),
        text: f.text("text"),
        cl_ord_id: f.text("clOrdId"),
        activation_time: f.text("activationTime"),
        custom_tag50: f.text("customTag50"),
        is_automated: f.bool("isAutomated").unwrap_or(false),
    })
}

fn place_order(sh: &Shared, user: &User, ctx: &Ctx, body: &Value) -> Reply {
    let f = Fields(body);
    let spec = match order_fields(f, true) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (cell, ci) = match target(sh, user, f) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match sh.ex.place_order(ctx, cell.account.id, ci, &spec) {
        Ok(id) => Reply::ok(json!({"orderId": id})),
        Err(r) => failure(&r),
    }
}

fn bracket_fields(f: Fields<'_>, key: &str, entry: &OrderSpec) -> Result<Option<OrderSpec>, Reply> {
    let Some(v) = f.value(key) else {
        return Ok(None);
    };
    let b = Fields(v);
    let mut spec = order_fields(b, false)
        .map_err(|_| violation(key, Some(v), "a bracket needs action and orderType"))?;
    spec.qty = entry.qty;
    spec.is_automated = entry.is_automated;
    Ok(Some(spec))
}

fn place_oso(sh: &Shared, user: &User, ctx: &Ctx, body: &Value) -> Reply {
    let f = Fields(body);
    let spec = match order_fields(f, true) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut brackets = Vec::new();
    for key in ["bracket1", "bracket2"] {
        match bracket_fields(f, key, &spec) {
            Ok(Some(b)) => brackets.push(b),
            Ok(None) => {}
            Err(r) => return r,
        }
    }
    if !f.has("bracket1") {
        return violation("bracket1", None, "bracket1 is required");
    }
    let (cell, ci) = match target(sh, user, f) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match sh.ex.place_oso(ctx, cell.account.id, ci, &spec, &brackets) {
        Ok((id, ids)) => Reply::ok(
            Obj::new()
                .set("orderId", id)
                .opt("oso1Id", ids.first().copied())
                .opt("oso2Id", ids.get(1).copied())
                .done(),
        ),
        Err(r) => failure(&r),
    }
}

fn place_oco(sh: &Shared, user: &User, ctx: &Ctx, body: &Value) -> Reply {
    let f = Fields(body);
    let spec = match order_fields(f, true) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let other = match bracket_fields(f, "other", &spec) {
        Ok(Some(o)) => o,
        Ok(None) => return violation("other", None, "other is required"),
        Err(r) => return r,
    };
    let (cell, ci) = match target(sh, user, f) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match sh.ex.place_oco(ctx, cell.account.id, ci, &spec, &other) {
        Ok((id, oco)) => Reply::ok(json!({"orderId": id, "ocoId": oco})),
        Err(r) => failure(&r),
    }
}

fn owned_order(sh: &Shared, user: &User, f: Fields<'_>) -> Result<Id, Reply> {
    let Some(order_id) = f.int("orderId") else {
        return Err(violation("orderId", None, "orderId is required"));
    };
    match sh.ex.order_account(order_id) {
        Some(a) if user.account_ids.contains(&a) => Ok(order_id),
        _ => Err(failure_of(
            FailureReason::UnknownReason,
            format!("Unknown order {order_id}"),
        )),
    }
}

fn modify_order(sh: &Shared, user: &User, ctx: &Ctx, body: &Value) -> Reply {
    let f = Fields(body);
    let order_id = match owned_order(sh, user, f) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(qty) = f.int("orderQty") else {
        return violation("orderQty", None, "orderQty is required");
    };
    let Some(t) = f.text("orderType") else {
        return violation("orderType", None, "orderType is required");
    };
    let Some(order_type) = OrderType::parse(&t) else {
        return violation("orderType", f.value("orderType"), "unknown orderType");
    };
    let spec = ModifySpec {
        qty: u32::try_from(qty.max(0)).unwrap_or(0),
        order_type: Some(order_type),
        price: f.dec("price"),
        stop_price: f.dec("stopPrice"),
        peg_difference: f.dec("pegDifference"),
        tif: f.text("timeInForce").and_then(|t| TimeInForce::parse(&t)),
        cl_ord_id: f.text("clOrdId"),
        text: f.text("text"),
        custom_tag50: f.text("customTag50"),
        activation_time: f.text("activationTime"),
        is_automated: f.bool("isAutomated").unwrap_or(false),
    };
    match sh.ex.modify_order(ctx, order_id, &spec) {
        Ok(cmd) => Reply::ok(json!({"commandId": cmd})),
        Err(r) => failure(&r),
    }
}

fn cancel_order(sh: &Shared, user: &User, ctx: &Ctx, body: &Value) -> Reply {
    let f = Fields(body);
    let order_id = match owned_order(sh, user, f) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match sh.ex.cancel_order(
        ctx,
        order_id,
        f.text("clOrdId"),
        f.bool("isAutomated").unwrap_or(false),
        f.text("customTag50"),
    ) {
        Ok(cmd) => Reply::ok(json!({"commandId": cmd})),
        Err(r) => failure(&r),
    }
}

fn liquidate(sh: &Shared, user: &User, ctx: &Ctx, body: &Value) -> Reply {
    let f = Fields(body);
    let Some(account_id) = f.int("accountId") else {
        return violation("accountId", None, "accountId is required");
    };
    let Some(contract_id) = f.int("contractId") else {
        return violation("contractId", None, "contractId is required");
    };
    if !user.account_ids.contains(&account_id) {
        return failure_of(
            FailureReason::UnknownReason,
            format!(
                "Account {account_id} is not an account of user {}",
                user.name
            ),
        );
    }
    match sh.ex.liquidate(
        ctx,
        account_id,
        contract_id,
        f.bool("admin").unwrap_or(false),
    ) {
        Ok(Some(id)) => Reply::ok(json!({"orderId": id})),
        // Flat already: the working orders were canceled and there is nothing to close.
        Ok(None) => Reply::ok(json!({})),
        Err(r) => failure(&r),
    }
}

// ------------------------------------------------------------------------ strategies

fn strategy_error(text: impl Into<String>) -> Reply {
    Reply::ok(json!({"errorText": text.into()}))
}

/// Reads the decoded `params` of a multibracket strategy.
///
/// # Errors
/// A text for `errorText`.
pub fn parse_params(action: Action, params: &Value) -> Result<StrategySpec, String> {
    let p = Fields(params);
    let entry = p
        .value("entryVersion")
        .ok_or("params.entryVersion is required")?;
    let e = Fields(entry);
    let qty = e
        .int("orderQty")
        .filter(|q| *q >= 1)
        .ok_or("params.entryVersion.orderQty must be at least 1")?;
    let order_type = e
        .text("orderType")
        .and_then(|t| OrderType::parse(&t))
        .ok_or("params.entryVersion.orderType is required (Market, Limit, Stop, StopLimit)")?;
    let entry = EntrySpec {
        qty: u32::try_from(qty).unwrap_or(u32::MAX),
        order_type,
        price: e.dec("price"),
        stop_price: e.dec("stopPrice"),
        tif: e.text("timeInForce").and_then(|t| TimeInForce::parse(&t)),
        cl_ord_id: None,
    };
    let be_of = |v: Option<&Value>| -> Option<BreakEven> {
        let v = v?;
        let b = Fields(v);
        Some(BreakEven {
            trigger: b.dec("trigger")?,
            offset: b
                .dec("offset")
                .or_else(|| b.dec("plus"))
                .unwrap_or(Decimal::ZERO),
        })
    };
    let default_be = be_of(p.value("breakEven").or_else(|| p.value("breakeven")));
    let mut brackets = Vec::new();
    if let Some(list) = p.value("brackets") {
        let Some(list) = list.as_array() else {
            return Err("params.brackets must be an array".into());
        };
        for (i, b) in list.iter().enumerate() {
            let bf = Fields(b);
            let qty = bf
                .int("qty")
                .ok_or_else(|| format!("params.brackets[{i}].qty is required"))?;
            let auto_trail = match bf.value("autoTrail") {
                Some(t) => {
                    let t = Fields(t);
                    Some(AutoTrail {
                        distance: t.dec("stopLoss").map(|d| d.abs()).ok_or_else(|| {
                            format!("params.brackets[{i}].autoTrail.stopLoss is required")
                        })?,
                        trigger: t.dec("trigger").unwrap_or(Decimal::ZERO).abs(),
                        freq: t.dec("freq").unwrap_or(Decimal::ZERO).abs(),
                    })
                }
                None => None,
            };
            brackets.push(BracketSpec {
                qty: u32::try_from(qty.max(0)).unwrap_or(0),
                profit_target: bf.dec("profitTarget").filter(|d| !d.is_zero()),
                stop_loss: bf.dec("stopLoss").filter(|d| !d.is_zero()),
                trailing_stop: bf.bool("trailingStop").unwrap_or(false),
                auto_trail,
                break_even: be_of(bf.value("breakEven").or_else(|| bf.value("breakeven")))
                    .or(default_be),
            });
        }
    }
    Ok(StrategySpec {
        action,
        entry,
        brackets,
    })
}

fn start_strategy(sh: &Shared, user: &User, ctx: &Ctx, body: &Value) -> Reply {
    let f = Fields(body);
    let Some(type_id) = f.int("orderStrategyTypeId") else {
        return violation(
            "orderStrategyTypeId",
            None,
            "orderStrategyTypeId is required",
        );
    };
    if type_id != 2 {
        return strategy_error(format!(
            "Unknown order strategy type {type_id}: 2 (multibracket) is the only one"
        ));
    }
    let Some(action) = f.text("action").and_then(|a| Action::parse(&a)) else {
        return violation("action", f.value("action"), "action must be Buy or Sell");
    };
    let (cell, ci) = match target(sh, user, f) {
        Ok(t) => t,
        Err(r) => return r,
    };
    // `params` is a JSON string; an object is accepted too.
    let (params_text, params) = match f.value("params") {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => (s.clone(), v),
            Err(e) => return strategy_error(format!("params is not valid JSON: {e}")),
        },
        Some(v @ Value::Object(_)) => (v.to_string(), v.clone()),
        _ => return strategy_error("Invalid or missed parameters: params is required"),
    };
    let spec = match parse_params(action, &params) {
        Ok(s) => s,
        Err(e) => return strategy_error(e),
    };
    match sh.ex.start_strategy(
        ctx,
        cell.account.id,
        ci,
        spec,
        params_text,
        f.text("uuid"),
        f.text("customTag50"),
        true,
    ) {
        Ok(s) => Reply::ok(json!({"orderStrategy": super::wire::order_strategy(&s)})),
        Err(e) => strategy_error(e),
    }
}

fn interrupt_strategy(sh: &Shared, user: &User, ctx: &Ctx, body: &Value) -> Reply {
    let f = Fields(body);
    let Some(id) = f.int("orderStrategyId") else {
        return violation("orderStrategyId", None, "orderStrategyId is required");
    };
    if !sh
        .ex
        .strategy_account(id)
        .is_some_and(|a| user.account_ids.contains(&a))
    {
        return strategy_error(format!("unknown order strategy {id}"));
    }
    match sh.ex.interrupt_strategy(ctx, id) {
        Ok(s) => Reply::ok(json!({"orderStrategy": super::wire::order_strategy(&s)})),
        Err(e) => strategy_error(e),
    }
}

fn cash_snapshot(sh: &Shared, user: &User, body: &Value) -> Reply {
    let f = Fields(body);
    let Some(account_id) = f.int("accountId") else {
        return violation("accountId", None, "accountId is required");
    };
    if !user.account_ids.contains(&account_id) {
        return Reply::ok(
            json!({"errorText": format!("Account {account_id} is not an account of user {}", user.name)}),
        );
    }
    match sh.ex.cash_snapshot(account_id) {
        Some(s) => Reply::ok(json!({
            "totalCashValue": num(s.total_cash_value),
            "totalPnL": num(s.total_pnl),
            "initialMargin": num(s.initial_margin),
            "maintenanceMargin": num(s.maintenance_margin),
            "netLiq": num(s.net_liq),
            "openPnL": num(s.open_pnl),
            "realizedPnL": num(s.realized_pnl),
            "weekRealizedPnL": num(s.week_realized_pnl),
        })),
        None => Reply::ok(json!({"errorText": "unknown account"})),
    }
}

// ------------------------------------------------------------------------ entities and sync

fn entity_op(sh: &Shared, user: &User, kind: Kind, op: &str, q: &Query, ep: &str) -> Reply {
    let ex = &sh.ex;
    let arr = |rows: Vec<entities::Row>| {
        Reply::ok(Value::Array(rows.into_iter().map(|r| r.json).collect()))
    };
    match op {
        "list" => arr(entities::rows(ex, kind, user, None)),
        "item" => {
            let Some(id) = q.get("id").and_then(|v| v.trim().parse::<Id>().ok()) else {
                return Reply::text(400, "Missing or invalid parameter: id");
            };
            match entities::rows_by_id(ex, kind, user, &[id])
                .into_iter()
                .next()
            {
                Some(r) => Reply::ok(r.json),
                None => Reply::text(404, format!("Not found: {} {id}", kind.names().0)),
            }
        }
        "items" => {
            let Some(ids) = q.ids("ids") else {
                return Reply::text(400, "Missing parameter: ids");
            };
            arr(entities::rows_by_id(ex, kind, user, &ids))
        }
        "find" => {
            let Some(name) = q.get("name") else {
                return Reply::text(400, "Missing parameter: name");
            };
            let found = entities::rows(ex, kind, user, None).into_iter().find(|r| {
                r.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name.trim()))
            });
            match found {
                Some(r) => Reply::ok(r.json),
                None => Reply::text(404, format!("Not found: {} {name}", kind.names().0)),
            }
        }
        "deps" => {
            let Some(master) = q.get("masterid").and_then(|v| v.trim().parse::<Id>().ok()) else {
                return Reply::text(400, "Missing or invalid parameter: masterid");
            };
            arr(entities::rows_by_master(ex, kind, user, &[master]))
        }
        "ldeps" => {
            let Some(masters) = q.ids("masterids") else {
                return Reply::text(400, "Missing parameter: masterids");
            };
            arr(entities::rows_by_master(ex, kind, user, &masters))
        }
        "suggest" => {
            let t = q
                .get("t")
                .or_else(|| q.get("name"))
                .unwrap_or("")
                .to_ascii_lowercase();
            let l = q
                .get("l")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            let rows: Vec<_> = entities::rows(ex, kind, user, None)
                .into_iter()
                .filter(|r| {
                    r.name
                        .as_deref()
                        .is_some_and(|n| n.to_ascii_lowercase().contains(&t))
                })
                .take(l)
                .collect();
            arr(rows)
        }
        _ => Reply::text(404, format!("Not found: {ep}")),
    }
}

/// Which accounts a sync request covers and which entity types it wants.
#[must_use]
pub fn sync_scope(user: &User, body: &Value) -> (Vec<Id>, Option<BTreeSet<String>>) {
    let f = Fields(body);
    let list = |k: &str| -> Vec<Id> {
        f.value(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(crate::wire::int).collect())
            .unwrap_or_default()
    };
    let accounts = list("accounts");
    let users = list("users");
    let mut scope: Vec<Id> = if accounts.is_empty() || users.contains(&user.id) {
        user.account_ids.clone()
    } else {
        accounts
            .into_iter()
            .filter(|a| user.account_ids.contains(a))
            .collect()
    };
    scope.sort_unstable();
    scope.dedup();
    let types: Option<BTreeSet<String>> = f
        .value("entityTypes")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    (scope, types)
}

/// Builds the sync snapshot; with a sink, subscribes it to each account atomically with that
/// account's part of the snapshot.
pub(crate) fn sync_snapshot(
    sh: &Shared,
    user: &User,
    body: &Value,
    sink: Option<Arc<dyn crate::core::EventSink>>,
) -> (Value, Vec<Id>, Option<BTreeSet<String>>) {
    let (scope, types) = sync_scope(user, body);
    let mut snaps = Vec::new();
    for account_id in &scope {
        let snap = match &sink {
            Some(s) => sh.ex.subscribe(*account_id, s.clone(), |st| {
                sh.ex.account(*account_id).map(|c| {
                    (
                        c.account.clone(),
                        entities::account_snapshot(&sh.ex, &c.account, st),
                    )
                })
            }),
            None => sh.ex.read(*account_id, |cell, st| {
                Some((
                    cell.account.clone(),
                    entities::account_snapshot(&sh.ex, &cell.account, st),
                ))
            }),
        };
        if let Some(Some(s)) = snap {
            snaps.push(s);
        }
    }
    let msg = entities::sync_message(&sh.ex, user, &snaps, types.as_ref());
    (msg, scope, types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_with_auto_trail_and_break_even() {
        let v: Value = serde_json::from_str(
            r#"{"entryVersion":{"orderQty":15,"orderType":"Market","timeInForce":"Day"},
                "brackets":[
                  {"qty":5,"profitTarget":5.0,"stopLoss":-12.5,"trailingStop":false},
                  {"qty":5,"profitTarget":12.5,"stopLoss":-12.5,"trailingStop":false,"breakEven":{"trigger":5,"offset":0.25}},
                  {"qty":5,"profitTarget":25.0,"stopLoss":-12.5,"trailingStop":false,
                   "autoTrail":{"stopLoss":5.0,"trigger":7.5,"freq":0.25}}]}"#,
        )
        .unwrap();
        let s = parse_params(Action::Buy, &v).unwrap();
        assert_eq!(s.entry.qty, 15);
        assert_eq!(s.brackets.len(), 3);
        assert!(s.brackets[1].break_even.is_some());
        let t = s.brackets[2].auto_trail.unwrap();
        assert_eq!(t.distance.to_string(), "5.0");
        assert!(s.validate(Decimal::new(25, 2)).is_ok());
    }
}
