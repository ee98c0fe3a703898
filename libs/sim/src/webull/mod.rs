//! Webull OpenAPI's protocol surface (BROKERS.md §3; the official SDKs' v2 trading paths),
//! futures only, on the same port and exchange core as the other surfaces.
//!
//! Every request under `/openapi/` is signed ([`sign`]): `x-app-key`, `x-timestamp`
//! (ISO-8601 UTC), `x-signature-algorithm` `HMAC-SHA1`, `x-signature-version` `1.0`,
//! `x-signature-nonce` and `x-signature`. A login created with `"protocol": "webull"` has an
//! app key (`apiKey`, random when absent) and an app secret (`sec`, else its password). The
//! refusals, all `{"error_code", "message"}` as the official SDK reads them:
//!
//! | case | status | `error_code` |
//! |---|---|---|
//! | a signing header missing, algorithm or version not `HMAC-SHA1`/`1.0` | 401 | `INVALID_PARAMETER` |
//! | unknown app key | 401 | `INVALID_APP_KEY` |
//! | the login's credentials expired (fault `expireToken`) | 401 | `APP_KEY_EXPIRED` |
//! | `x-timestamp` unreadable or further than the window (5 min) from now | 401 | `TIMESTAMP_EXPIRED` |
//! | a nonce seen again within the window | 401 | `DUPLICATE_NONCE` |
//! | a wrong signature | 401 | `INVALID_SIGNATURE` |
//! | over the app key's limit (600 per 60 s; fault `tooManyRequests`) | 429 | `TOO_MANY_REQUESTS` |
//! | injected error | its status | `INTERNAL_ERROR` (5xx), `SERVICE_NOT_AVAILABLE` (503) |
//!
//! Matching, positions and fills are the core's: this module only translates.

pub mod rest;
pub mod sign;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use dashmap::DashMap;
use parking_lot::Mutex;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use crate::Shared;
use crate::core::clock::now_us;
use crate::core::model::Id;
use crate::net::ConnHandle;

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;

/// Webull settings of the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebullConfig {
    /// How far `x-timestamp` may be from the server's clock, either way; nonces are
    /// remembered this long.
    pub timestamp_window: Duration,
    /// Requests per app key per [`WebullConfig::limit_window`].
    pub limit: u32,
    /// The limit's window.
    pub limit_window: Duration,
}

impl Default for WebullConfig {
    fn default() -> Self {
        WebullConfig {
            timestamp_window: Duration::from_secs(300),
            limit: 600,
            limit_window: Duration::from_secs(60),
        }
    }
}

/// The Webull surface's own state.
#[derive(Debug)]
pub struct Webull {
    /// App key → user.
    pub keys: DashMap<String, Id>,
    /// Users whose credentials expired.
    pub expired: DashMap<Id, ()>,
    nonces: Mutex<HashMap<String, i64>>,
    calls: Mutex<HashMap<String, VecDeque<i64>>>,
    config: Mutex<WebullConfig>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Webull {
    /// The surface with `config`.
    #[must_use]
    pub fn new(config: &WebullConfig) -> Self {
        Webull {
            keys: DashMap::new(),
            expired: DashMap::new(),
            nonces: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            config: Mutex::new(config.clone()),
        }
    }

    /// Registers a Webull login's app key (`None`: a random one); returns it.
    pub fn set_key(&self, user_id: Id, key: Option<String>) -> String {
        let key = key.filter(|k| !k.trim().is_empty()).unwrap_or_else(|| {
            rand::rng()
                .sample_iter(&Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        });
        self.keys.retain(|_, u| *u != user_id);
        self.keys.insert(key.clone(), user_id);
        self.expired.remove(&user_id);
        key
    }

    /// The app key of a user.
    #[must_use]
    pub fn key_of(&self, user_id: Id) -> Option<String> {
        self.keys
            .iter()
            .find(|e| *e.value() == user_id)
            .map(|e| e.key().clone())
    }

    /// Expires a user's credentials; 1 when it has some.
    pub fn expire_user(&self, user_id: Id) -> usize {
        if self.key_of(user_id).is_some() {
            self.expired.insert(user_id, ());
            1
        } else {
            0
        }
    }

    /// Changes the settings.
    pub fn set_config(&self, config: WebullConfig) {
        *self.config.lock() = config;
    }

    fn window_us(&self) -> i64 {
        micros(self.config.lock().timestamp_window)
    }

    /// Remembers `nonce` of `app_key`; `false` when it was seen within the window.
    fn fresh_nonce(&self, app_key: &str, nonce: &str, now: i64) -> bool {
        let window = self.window_us();
        let mut seen = self.nonces.lock();
        if seen.len() > 10_000 {
            seen.retain(|_, at| now.saturating_sub(*at) <= window);
        }
        let k = format!("{app_key}\u{1}{nonce}");
        match seen.get(&k) {
            Some(at) if now.saturating_sub(*at) <= window => false,
            _ => {
                seen.insert(k, now);
                true
            }
        }
    }

    /// Admits a request of `app_key` under its limit.
    fn admit(&self, app_key: &str, now: i64) -> bool {
        let (limit, window) = {
            let c = self.config.lock();
            (c.limit as usize, micros(c.limit_window))
        };
        let mut calls = self.calls.lock();
        let q = calls.entry(app_key.to_string()).or_default();
        while q.front().is_some_and(|t| now.saturating_sub(*t) >= window) {
            q.pop_front();
        }
        if q.len() >= limit {
            return false;
        }
        q.push_back(now);
        true
    }
}

/// Whether a lower-case path belongs to this surface.
#[must_use]
pub fn owns(path: &str) -> bool {
    path.starts_with("/openapi/")
}

/// A Webull answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

impl Reply {
    /// 200 with `body`.
    #[must_use]
    pub fn ok(body: Value) -> Self {
        Reply { status: 200, body }
    }

    /// An error answer: `{"error_code", "message"}`.
    #[must_use]
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        Reply {
            status,
            body: json!({"error_code": code, "message": message.into()}),
        }
    }
}

fn respond(reply: &Reply) -> Response {
    let mut r = Response::new(HttpBody::from(reply.body.to_string()));
    *r.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let id: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    if let Ok(v) = HeaderValue::from_str(&id) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}

/// The signed request's caller, or the refusal.
fn authenticate(
    sh: &Shared,
    req: &Request,
    uri: &str,
    query: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<(Id, String), Reply> {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let missing = |name: &str| Reply::error(401, "INVALID_PARAMETER", format!("{name} is missing"));
    let signed = sign::Signed {
        app_key: h("x-app-key").ok_or_else(|| missing("x-app-key"))?,
        timestamp: h("x-timestamp").ok_or_else(|| missing("x-timestamp"))?,
        algorithm: h("x-signature-algorithm").ok_or_else(|| missing("x-signature-algorithm"))?,
        version: h("x-signature-version").ok_or_else(|| missing("x-signature-version"))?,
        nonce: h("x-signature-nonce").ok_or_else(|| missing("x-signature-nonce"))?,
        host: h("host").ok_or_else(|| missing("host"))?,
    };
    let given = h("x-signature").ok_or_else(|| missing("x-signature"))?;
    if signed.algorithm != "HMAC-SHA1" || signed.version != "1.0" {
        return Err(Reply::error(
            401,
            "INVALID_PARAMETER",
            "x-signature-algorithm must be HMAC-SHA1 and x-signature-version 1.0",
        ));
    }
    let user_id = sh
        .wb
        .keys
        .get(&signed.app_key)
        .map(|u| *u)
        .ok_or_else(|| Reply::error(401, "INVALID_APP_KEY", "the app key does not exist"))?;
    let Some(user) = sh.ex.user(user_id) else {
        return Err(Reply::error(
            401,
            "INVALID_APP_KEY",
            "the app key does not exist",
        ));
    };
    if sh.wb.expired.contains_key(&user_id) {
        return Err(Reply::error(
            401,
            "APP_KEY_EXPIRED",
            "the app key has expired: create a new one",
        ));
    }
    let stamp = chrono::DateTime::parse_from_rfc3339(&signed.timestamp)
        .map(|t| t.timestamp_micros())
        .map_err(|_| Reply::error(401, "TIMESTAMP_EXPIRED", "x-timestamp is not ISO-8601"))?;
    if (now - stamp).abs() > sh.wb.window_us() {
        return Err(Reply::error(
            401,
            "TIMESTAMP_EXPIRED",
            "x-timestamp is too far from the server time",
        ));
    }
    let secret = user.sec.clone().unwrap_or(user.password.clone());
    let want = sign::expected(&secret, uri, query, &signed, body);
    if !sign::matches(&want, &given) {
        return Err(Reply::error(
            401,
            "INVALID_SIGNATURE",
            "the signature does not match",
        ));
    }
    // Only a correctly signed request spends its nonce.
    if !sh.wb.fresh_nonce(&signed.app_key, &signed.nonce, now) {
        return Err(Reply::error(
            401,
            "DUPLICATE_NONCE",
            "x-signature-nonce was already used",
        ));
    }
    Ok((user_id, signed.app_key))
}

/// Serves a request for `/openapi/…`.
pub(crate) async fn handle(sh: Arc<Shared>, conn: ConnHandle, req: Request) -> Response {
    let received_us = now_us();
    let uri = req.uri().path().to_string();
    let endpoint = uri.trim_start_matches('/').to_ascii_lowercase();
    sh.requests.count("webull", &endpoint);
    let query = crate::wire::parse_query(req.uri().query().unwrap_or(""));
    let method = req.method().clone();
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return respond(&Reply::error(
                400,
                "INVALID_PARAMETER",
                format!("unreadable body: {e}"),
            ));
        }
    };
    let req = Request::from_parts(parts, HttpBody::empty());
    let (user_id, app_key) = match authenticate(&sh, &req, &uri, &query, &body, received_us) {
        Ok(v) => v,
        Err(r) => return respond(&r),
    };
    let (reply, after) = rest::dispatch(
        &sh,
        rest::Request {
            user_id,
            app_key: &app_key,
            endpoint: &endpoint,
            is_post: method == axum::http::Method::POST,
            query: &query,
            body: &body,
            received_us,
        },
    )
    .await;
    match after {
        rest::After::Respond => respond(&reply),
        rest::After::Drop => {
            conn.kill();
            respond(&Reply::error(500, "INTERNAL_ERROR", "connection lost"))
        }
        rest::After::Hang => {
            tokio::select! {
                () = tokio::time::sleep(sh.config.ambiguous_hang) => {}
                () = sh.shutdown.cancelled() => {}
            }
            conn.kill();
            respond(&Reply::error(504, "GATEWAY_TIMEOUT", "timed out"))
        }
    }
}
