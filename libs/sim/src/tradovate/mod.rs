//! Tradovate's protocol surface: REST under `/v1/`, the user socket at `/v1/websocket` and
//! the market-data socket at `/md/v1/websocket` (paths matched case-insensitively).
//!
//! This module translates between Tradovate's wire shapes and the exchange core; it holds no
//! trading state of its own beyond tokens, limits and sockets.

pub mod auth;
pub mod entities;
pub mod limits;
pub mod rest;
pub mod wire;
pub mod ws;

use std::sync::Arc;

use axum::body::Body as HttpBody;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Shared;
use crate::core::clock::now_us;
use crate::net::ConnHandle;

use rest::{After, Body, Caller};

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;

fn json_response(status: u16, body: String) -> Response {
    let mut r = Response::new(HttpBody::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves everything that is not the admin API.
pub(crate) async fn handle(
    State(sh): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    req: Request,
) -> Response {
    let received_us = now_us();
    let path = req.uri().path().to_ascii_lowercase();
    let query = req.uri().query().unwrap_or("").to_string();
    let (mut parts, body) = req.into_parts();
    let socket = match path.trim_end_matches('/') {
        "/v1/websocket" => Some(crate::sockets::SocketKind::User),
        "/md/v1/websocket" | "/md/websocket" => Some(crate::sockets::SocketKind::Md),
        _ => None,
    };
    if let Some(kind) = socket {
        return match WebSocketUpgrade::from_request_parts(&mut parts, &sh).await {
            Ok(upgrade) => {
                let ip = conn.remote.ip();
                // Too many sockets opening at once from this IP: refused as Tradovate does.
                let Some(pass) = sh.limits.admit_socket(ip) else {
                    tracing::debug!(%ip, "socket connection attempt refused: 429");
                    return empty_response(StatusCode::TOO_MANY_REQUESTS);
                };
                upgrade
                    .on_upgrade(move |socket| ws::serve(sh, socket, ip, kind, pass))
                    .into_response()
            }
            Err(rejection) => rejection.into_response(),
        };
    }
    let Some(endpoint) = path.strip_prefix("/v1/") else {
        return json_response(
            404,
            serde_json::Value::String(format!("Not found: {path}")).to_string(),
        );
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return json_response(
                400,
                serde_json::Value::String(format!("Unreadable body: {e}")).to_string(),
            );
        }
    };
    let body = String::from_utf8_lossy(&body);
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.trim();
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .map(|t| t.trim().to_string())
        });
    let caller = Caller {
        ip: conn.remote.ip(),
        token,
        socket: None,
        received_us,
    };
    let out = rest::dispatch(&sh, &caller, endpoint, &query, &body).await;
    match out.after {
        After::Respond => {}
        After::Drop => {
            conn.kill();
            return json_response(500, String::new());
        }
        After::Hang => {
            tokio::select! {
                () = tokio::time::sleep(sh.config.ambiguous_hang) => {}
                () = sh.shutdown.cancelled() => {}
            }
            conn.kill();
            return json_response(504, String::new());
        }
    }
    match out.reply.body {
        Body::Empty => empty_response(
            StatusCode::from_u16(out.reply.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
        ),
        _ => json_response(out.reply.status, out.reply.body_text()),
    }
}

/// A status with `Content-Length: 0` (Tradovate's 429s have no body).
fn empty_response(status: StatusCode) -> Response {
    let mut r = Response::new(HttpBody::empty());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}
