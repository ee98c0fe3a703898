//! ProjectX Gateway's protocol surface (TopstepX and other prop firms; BROKERS.md §2): REST
//! under `/api/` (all `POST`, paths matched case-insensitively, `GET /api/Status/ping`) and
//! the SignalR hubs at `/hubs/user` and `/hubs/market` (reached straight or after
//! `…/negotiate`), served on the same port as the Tradovate surface and over the same exchange
//! core.
//!
//! A login created with `"protocol": "projectx"` (admin API) is reachable here only, with an
//! API key (`Auth/loginKey`) or its password (`Auth/loginApp`); a Tradovate login is refused
//! here and a ProjectX login is refused by the Tradovate surface. Matching, positions, P&L and
//! fills are the core's: this module only translates. Bracket entries (`stopLossBracket`,
//! `takeProfitBracket` in ticks) run as a one-bracket core strategy, so their children appear
//! when the entry fills, sized to the filled quantity, and are one-cancels-other.

pub mod auth;
pub mod enums;
pub mod events;
pub mod hubs;
pub mod limits;
pub mod models;
pub mod negotiate;
pub mod rest;
pub mod signalr;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::Shared;
use crate::core::catalog::Catalog;
use crate::core::clock::now_us;
use crate::core::model::{Id, Protocol};
use crate::faults::Point;
use crate::net::ConnHandle;

use auth::{Identity, Tokens};
use limits::{Limiter, ProjectXLimits};
use models::ContractIds;
use negotiate::{Negotiations, Refused};
use rest::{After, Reply};

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;

/// ProjectX settings of the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectXConfig {
    /// Lifetime of session tokens (24 h, as ProjectX documents).
    pub token_lifetime: Duration,
    /// Request limits per token (200 / 60 s, bars 30 / 30 s).
    pub limits: ProjectXLimits,
    /// The hubs ping a connection silent this long from our side (SignalR's 15 s).
    pub keep_alive: Duration,
    /// A hub client that sends nothing this long is closed (SignalR's 30 s).
    pub client_timeout: Duration,
    /// The handshake must arrive within this (SignalR's 15 s).
    pub handshake_timeout: Duration,
    /// A negotiated connection not connected within this is forgotten (ASP.NET's disconnect
    /// timeout, 15 s).
    pub negotiate_timeout: Duration,
}

impl Default for ProjectXConfig {
    fn default() -> Self {
        ProjectXConfig {
            token_lifetime: Duration::from_secs(24 * 3600),
            limits: ProjectXLimits::default(),
            keep_alive: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            negotiate_timeout: Duration::from_secs(15),
        }
    }
}

/// The ProjectX surface's own state.
#[derive(Debug)]
pub struct ProjectX {
    /// Session tokens.
    pub tokens: Tokens,
    /// Request limits.
    pub limits: Limiter,
    /// Contract ids (`CON.F.US.MNQ.Z26`).
    pub ids: ContractIds,
    /// API keys by user.
    pub keys: DashMap<Id, String>,
    /// Accounts whose "Auto OCO Brackets" setting is off: bracket fields are ignored, as a
    /// community report says real servers do.
    pub manual_brackets: DashMap<Id, ()>,
    /// Hub connections negotiated and not yet (or still) connected.
    pub negotiations: Negotiations,
}

impl ProjectX {
    /// The surface for `catalog` with `config`.
    #[must_use]
    pub fn new(catalog: &Catalog, config: &ProjectXConfig) -> Self {
        ProjectX {
            tokens: Tokens::new(config.token_lifetime),
            limits: Limiter::new(config.limits.clone()),
            ids: ContractIds::build(catalog),
            keys: DashMap::new(),
            manual_brackets: DashMap::new(),
            negotiations: Negotiations::new(config.negotiate_timeout),
        }
    }

    /// Registers a ProjectX login's API key (`None`: a random one); returns it.
    pub fn set_key(&self, user_id: Id, key: Option<String>) -> String {
        let key = key.filter(|k| !k.trim().is_empty()).unwrap_or_else(|| {
            rand::rng()
                .sample_iter(&Alphanumeric)
                .take(44)
                .map(char::from)
                .collect()
        });
        self.keys.insert(user_id, key.clone());
        key
    }
}

/// Whether a lower-case path belongs to this surface.
#[must_use]
pub fn owns(path: &str) -> bool {
    path.starts_with("/api/") || path == "/api" || hubs::hub_route(path).is_some()
}

fn respond(reply: Reply) -> Response {
    let (status, body, content_type) = match reply {
        Reply::Json(s, v) => (s, v.to_string(), Some("application/json; charset=utf-8")),
        Reply::Text(s, t) => (s, t, Some("text/plain; charset=utf-8")),
        Reply::Empty(s) => (s, String::new(), None),
    };
    let mut r = Response::new(HttpBody::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type {
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if status == 401 {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if status == 405 {
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    r
}

fn bearer(req: &Request) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.trim();
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim().to_string())
        })
}

/// Serves a request for `/api/…` or `/hubs/…`.
pub(crate) async fn handle(sh: Arc<Shared>, conn: ConnHandle, req: Request) -> Response {
    let received_us = now_us();
    let path = req.uri().path().to_ascii_lowercase();
    match hubs::hub_route(&path) {
        Some((kind, hubs::HubRequest::Negotiate)) => return negotiation(sh, req, kind).await,
        Some((kind, hubs::HubRequest::Connect)) => return upgrade(sh, conn, req, kind).await,
        None => {}
    }
    let endpoint = path.strip_prefix("/api/").unwrap_or("").to_string();
    let is_post = req.method() == Method::POST;
    let is_ping = endpoint.trim_matches('/') == "status/ping";
    let allowed = is_post || (is_ping && req.method() == Method::GET);
    if !allowed {
        return respond(Reply::Empty(405));
    }
    let token = bearer(&req);
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return respond(Reply::Text(400, format!("Unreadable body: {e}"))),
    };
    let body = String::from_utf8_lossy(&body);
    let (reply, after) = rest::dispatch(
        &sh,
        &endpoint,
        allowed,
        token.as_deref(),
        &body,
        received_us,
    )
    .await;
    match after {
        After::Respond => respond(reply),
        After::Drop => {
            conn.kill();
            respond(Reply::Empty(500))
        }
        After::Hang => {
            tokio::select! {
                () = tokio::time::sleep(sh.config.ambiguous_hang) => {}
                () = sh.shutdown.cancelled() => {}
            }
            conn.kill();
            respond(Reply::Empty(504))
        }
    }
}

/// The fault endpoint of a hub (its negotiation and its upgrade alike: either failing makes
/// the hub unreachable).
fn hub_endpoint(kind: hubs::HubKind) -> &'static str {
    match kind {
        hubs::HubKind::User => "hubs/user",
        hubs::HubKind::Market => "hubs/market",
    }
}

/// The caller of a hub request (negotiation or upgrade, checked the same way): a valid token of
/// a ProjectX login in `?access_token=` or a bearer header, else 401; then the hub's faults.
async fn hub_caller(
    sh: &Arc<Shared>,
    bearer: Option<String>,
    query: &[(String, String)],
    kind: hubs::HubKind,
) -> Result<Identity, Response> {
    let token = hubs::hub_token(query, bearer.as_deref());
    let identity = match token.as_deref().map(|t| sh.px.tokens.validate(t)) {
        Some(Ok(i)) => i,
        _ => return Err(respond(Reply::Empty(401))),
    };
    let serves = sh
        .ex
        .user(identity.user_id)
        .is_some_and(|u| u.protocol == Protocol::ProjectX);
    if !serves {
        return Err(respond(Reply::Empty(401)));
    }
    let point = Point {
        user_id: Some(identity.user_id),
        account_id: None,
        endpoint: hub_endpoint(kind),
    };
    if let Err(reply) = rest::apply_faults(sh, &point).await {
        return Err(respond(reply));
    }
    Ok(identity)
}

/// `POST /hubs/{user,market}/negotiate`, answered as ASP.NET Core does (module `negotiate`).
async fn negotiation(sh: Arc<Shared>, req: Request, kind: hubs::HubKind) -> Response {
    sh.requests
        .count("projectx", &format!("{}/negotiate", hub_endpoint(kind)));
    let query = crate::wire::parse_query(req.uri().query().unwrap_or(""));
    let is_post = req.method() == Method::POST;
    if let Err(refused) = hub_caller(&sh, bearer(&req), &query, kind).await {
        return refused;
    }
    if !is_post {
        return respond(Reply::Text(405, String::new()));
    }
    let body = match negotiate::version(&query) {
        Ok(version) => {
            let (id, token) = sh.px.negotiations.create(kind, version);
            negotiate::answer(version, &id, &token)
        }
        Err(error) => negotiate::refusal(&error),
    };
    let mut r = Response::new(HttpBody::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The WebSocket upgrade of a hub: straight (no `id`) or with the `id` a negotiation gave.
async fn upgrade(sh: Arc<Shared>, conn: ConnHandle, req: Request, kind: hubs::HubKind) -> Response {
    sh.requests.count("projectx", hub_endpoint(kind));
    let query = crate::wire::parse_query(req.uri().query().unwrap_or(""));
    let identity = match hub_caller(&sh, bearer(&req), &query, kind).await {
        Ok(i) => i,
        Err(refused) => return refused,
    };
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &sh).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let negotiated = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("id"))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let claim = match negotiated.map(|id| sh.px.negotiations.claim(id, kind)) {
        None => None,
        Some(Ok(claim)) => Some(claim),
        Some(Err(Refused::NotFound)) => {
            return respond(Reply::Text(404, "No Connection with that ID".into()));
        }
        Some(Err(Refused::Conflict)) => return respond(Reply::Text(409, String::new())),
    };
    let ip = conn.remote.ip();
    upgrade
        .on_upgrade(move |socket| async move {
            hubs::serve(sh, socket, ip, kind, identity).await;
            // The negotiated connection ends with its socket (or with the upgrade, when the
            // client went away before it completed and this never ran).
            drop(claim);
        })
        .into_response()
}
