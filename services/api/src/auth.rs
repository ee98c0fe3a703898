//! Who is calling: the session cookie of a login (writes need the CSRF header) or an API token
//! (`Authorization: Bearer`, no CSRF: a script's token is not sent by a browser on its own).
//!
//! The CSRF token is derived from the session token (SHA-256 of a domain-separated copy), so
//! it needs no storage, changes with every session, and can be shown again by `GET /me`. It is
//! handed out in the login answer and in a readable `jt_csrf` cookie (double submit); a
//! cookie-authenticated `POST`/`PUT`/`PATCH`/`DELETE` must repeat it in `X-CSRF-Token`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use base64::Engine as _;
use jt_store::repo::auth::{Authenticated, User};
use jt_store::{ApiTokenId, SessionId, UserId};

use crate::error::ApiError;
use crate::state::ApiState;

/// The session cookie (HttpOnly).
pub const SESSION_COOKIE: &str = "jt_session";
/// The CSRF cookie (readable by the page's script, for the double submit).
pub const CSRF_COOKIE: &str = "jt_csrf";
/// The header a cookie-authenticated write must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The header with which an admin reads the platform as another user (read-only, audited).
pub const VIEW_AS_HEADER: &str = "x-view-as";

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A login session (its token is kept to derive the CSRF token).
    Session {
        /// The session.
        id: SessionId,
        /// The session token from the cookie.
        token: String,
    },
    /// An API token.
    ApiToken(ApiTokenId),
}

/// The authenticated caller of a request. Every handler that reads or writes records takes
/// one and passes [`Caller::owner`] to the store: this is the tenant scoping.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: User,
    /// How they authenticated.
    pub via: Via,
    /// The user an admin is viewing as (`X-View-As`): reads only, each one audited.
    pub viewing: Option<UserId>,
}

impl Caller {
    /// The owner of every record this request touches: the caller, or the user an admin is
    /// viewing as (only ever on a read: a write with `X-View-As` is refused before any
    /// handler runs).
    #[must_use]
    pub fn owner(&self) -> UserId {
        self.viewing.unwrap_or(self.user.id)
    }

    /// The CSRF token of a session caller.
    #[must_use]
    pub fn csrf_token(&self) -> Option<String> {
        match &self.via {
            Via::Session { token, .. } => Some(csrf_token(token)),
            Via::ApiToken(_) => None,
        }
    }
}

/// The CSRF token belonging to a session token.
#[must_use]
pub fn csrf_token(session_token: &str) -> String {
    let digest = jt_store::auth::token_hash(&format!("jt-csrf-v1:{session_token}"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Whether two strings are equal, in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A cookie's value from the request's `Cookie` headers.
#[must_use]
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let v = headers.get(header::AUTHORIZATION)?;
    let v = v.to_str().map_err(|_| ()).ok();
    Some(
        match v.and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        }) {
            Some(t) if !t.trim().is_empty() => Ok(t.trim()),
            _ => Err(()),
        },
    )
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let (auth, via) = match bearer(&parts.headers) {
            Some(Ok(token)) => {
                let found = state.store.api_tokens().resolve(token).await?;
                let Some(a) = found else {
                    return Err(ApiError::unauthenticated(
                        "the API token is unknown, revoked or expired",
                    )
                    .field("authorization"));
                };
                let id = a
                    .api_token
                    .ok_or_else(|| ApiError::internal("token without id"))?;
                (a, Via::ApiToken(id))
            }
            Some(Err(())) => {
                return Err(ApiError::unauthenticated(
                    "the Authorization header must be `Bearer <API token>`",
                )
                .field("authorization"));
            }
            None => {
                let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
                    return Err(ApiError::unauthenticated(
                        "log in (POST /api/v1/auth/login) or send an API token as \
                         `Authorization: Bearer`",
                    ));
                };
                let token = token.to_string();
                let found: Option<Authenticated> = state.store.sessions().resolve(&token).await?;
                let Some(a) = found else {
                    return Err(ApiError::unauthenticated(
                        "the session has ended; log in again",
                    ));
                };
                let id = a
                    .session
                    .ok_or_else(|| ApiError::internal("session without id"))?;
                if is_write(&parts.method) {
                    let sent = parts
                        .headers
                        .get(CSRF_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if !same(sent, &csrf_token(&token)) {
                        return Err(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "csrf",
                            "a write with the session cookie needs the X-CSRF-Token header \
                             (the csrf_token of the login answer or of GET /api/v1/me)",
                        )
                        .field("x-csrf-token"));
                    }
                }
                (a, Via::Session { id, token })
            }
        };
        if !auth.user.approved {
            return Err(ApiError::forbidden(
                "this account is waiting for an administrator's approval",
            ));
        }
        let viewing = view_as(parts, state, &auth.user).await?;
        Ok(Caller {
            user: auth.user,
            via,
            viewing,
        })
    }
}

/// `X-View-As: <user id>`: an admin reading the platform as that user. Refused for anyone
/// else and for any write; the target must exist; every such request is written to the audit
/// log (the store's `view_as`).
async fn view_as(
    parts: &Parts,
    state: &ApiState,
    caller: &User,
) -> Result<Option<UserId>, ApiError> {
    let Some(v) = parts.headers.get(VIEW_AS_HEADER) else {
        return Ok(None);
    };
    let target = v
        .to_str()
        .ok()
        .and_then(|t| t.trim().parse::<uuid::Uuid>().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "x-view-as: must be the id of the user to view as",
            )
            .field(VIEW_AS_HEADER)
        })?;
    if is_write(&parts.method) {
        return Err(ApiError::forbidden(
            "viewing as another user is read-only: send the change without X-View-As",
        )
        .field(VIEW_AS_HEADER));
    }
    let scope = state
        .store
        .admin_scope(caller.id)
        .await
        .map_err(|e| match e {
            jt_store::StoreError::NotAdmin(_) => {
                ApiError::forbidden("only administrators can view as another user")
                    .field(VIEW_AS_HEADER)
            }
            other => other.into(),
        })?;
    let view = state.store.admin(&scope).view_as(UserId(target)).await?;
    Ok(Some(jt_store::ReadScope::owner(&view)))
}

/// The source address of a request: the TCP peer, or behind a trusted proxy the address it
/// vouches for (`JT_TRUSTED_PROXIES`); `None` without connection info.
#[derive(Debug, Clone, Copy)]
pub struct SourceIp(pub Option<IpAddr>);

impl FromRequestParts<ApiState> for SourceIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(SourceIp(
            state.config.trusted_proxies.client(&parts.headers, peer),
        ))
    }
}

/// `Set-Cookie` values for a new session.
#[must_use]
pub fn session_cookies(token: &str, max_age_secs: u64, secure: bool) -> [String; 2] {
    let secure = if secure { "; Secure" } else { "" };
    [
        format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
        ),
        format!(
            "{CSRF_COOKIE}={}; Path=/; SameSite=Lax; Max-Age={max_age_secs}{secure}",
            csrf_token(token)
        ),
    ]
}

/// `Set-Cookie` values that remove the session cookies.
#[must_use]
pub fn cleared_cookies(secure: bool) -> [String; 2] {
    let secure = if secure { "; Secure" } else { "" };
    [
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
        format!("{CSRF_COOKIE}=; Path=/; SameSite=Lax; Max-Age=0{secure}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name_and_csrf_tokens_follow_the_session() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; jt_session=abc; jt_csrf=x".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
        assert_eq!(csrf_token("abc"), csrf_token("abc"));
        assert_ne!(csrf_token("abc"), csrf_token("abd"));
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        let [s, c] = session_cookies("tok", 60, true);
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Lax") && s.ends_with("Secure"));
        assert!(!c.contains("HttpOnly"));
    }
}
