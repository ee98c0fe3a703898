//! Logins, the caller's profile, password resets and API tokens.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use jt_store::{ApiTokenId, Secret, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, SourceIp, Via, cleared_cookies, session_cookies};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::mailer::Mail;
use crate::routes::views::{ApiTokenView, UserView};
use crate::state::ApiState;

/// A login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "trader@example.com", "password": "correct horse battery"}))]
pub struct LoginRequest {
    /// The account's e-mail.
    pub email: String,
    /// The password.
    pub password: String,
}

/// A successful login (the session itself is the HttpOnly cookie).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginAnswer {
    /// Who logged in.
    pub user: UserView,
    /// Repeat in `X-CSRF-Token` on every write made with the session cookie.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// The caller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeAnswer {
    /// The user.
    pub user: UserView,
    /// The CSRF token of the caller's session (absent for API tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// The user an admin is viewing as (`X-View-As`): every read answers as that user, and
    /// nothing can be changed.
    pub viewing_as: Option<uuid::Uuid>,
}

fn too_many(what: &str, wait: std::time::Duration) -> ApiError {
    ApiError::rate_limited(
        format!(
            "too many login attempts {what}; wait {} s",
            wait.as_secs().max(1)
        ),
        wait.as_secs().max(1),
    )
}

/// Logs in: sets the session cookie (HttpOnly, SameSite=Lax) and returns the CSRF token.
/// Rate limited per e-mail address and per source address.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; `Set-Cookie` carries the session", body = LoginAnswer),
        (status = 401, description = "Wrong e-mail or password", body = ErrorBody),
        (status = 403, description = "Waiting for approval", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<ApiState>,
    SourceIp(ip): SourceIp,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let now = DefaultClock::default().now();
    if let Err(not_until) = state.limits.per_source.check_key(&ip) {
        return Err(too_many("from this address", not_until.wait_time_from(now)));
    }
    let email = req.email.trim().to_lowercase();
    if email.is_empty() {
        return Err(ApiError::invalid("email", "must not be empty"));
    }
    if let Err(not_until) = state.limits.per_address.check_key(&email) {
        return Err(too_many(
            "for this e-mail address",
            not_until.wait_time_from(now),
        ));
    }
    let password = Secret::new(req.password);
    let Some(user) = state.store.users().authenticate(&email, &password).await? else {
        return Err(ApiError::unauthenticated("wrong e-mail or password"));
    };
    if !user.approved {
        return Err(ApiError::forbidden(
            "this account is waiting for an administrator's approval",
        ));
    }
    let ttl = state.config.session_ttl;
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let (_, token) = state
        .store
        .sessions()
        .create(
            user.id,
            chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(7)),
            agent,
            ip.map(|i| i.to_string()).as_deref(),
        )
        .await?;
    let [session, csrf] =
        session_cookies(token.expose(), ttl.as_secs(), state.config.secure_cookies);
    let answer = LoginAnswer {
        user: user.into(),
        csrf_token: crate::auth::csrf_token(token.expose()),
        expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
    };
    Ok((
        AppendHeaders([(header::SET_COOKIE, session), (header::SET_COOKIE, csrf)]),
        Json(answer),
    )
        .into_response())
}

/// Ends the caller's session and clears the cookies (an API token stays valid: delete it
/// under `/tokens`).
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn logout(State(state): State<ApiState>, caller: Caller) -> ApiResult<Response> {
    if let Via::Session { id, .. } = &caller.via {
        match state.store.sessions().revoke(caller.owner(), *id).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let [a, b] = cleared_cookies(state.config.secure_cookies);
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders([(header::SET_COOKIE, a), (header::SET_COOKIE, b)]),
    )
        .into_response())
}

/// The caller, with the session's CSRF token.
#[utoipa::path(
    get,
    path = "/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = MeAnswer),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn me(caller: Caller) -> Json<MeAnswer> {
    let csrf_token = caller.csrf_token();
    Json(MeAnswer {
        viewing_as: caller.viewing.map(|u| u.0),
        user: caller.user.into(),
        csrf_token,
    })
}

/// A password reset request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "trader@example.com"}))]
pub struct ResetRequest {
    /// The account's e-mail.
    pub email: String,
}

/// Starts a password reset: always 202, whether the address exists or not; when it does, a
/// single-use link valid for one hour is e-mailed.
#[utoipa::path(
    post,
    path = "/auth/password-reset",
    tag = "auth",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "Accepted (whether or not the address exists)"),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub async fn password_reset(
    State(state): State<ApiState>,
    SourceIp(ip): SourceIp,
    Json(req): Json<ResetRequest>,
) -> ApiResult<StatusCode> {
    let now = DefaultClock::default().now();
    if let Err(not_until) = state.limits.per_source.check_key(&ip) {
        return Err(too_many("from this address", not_until.wait_time_from(now)));
    }
    let email = req.email.trim().to_lowercase();
    // Per-address limit too: nobody can flood someone's mailbox with reset mails.
    if state.limits.per_address.check_key(&email).is_err() {
        return Ok(StatusCode::ACCEPTED);
    }
    if let Some(token) = state.store.users().start_password_reset(&email).await? {
        let link = format!(
            "{}/reset-password?token={}",
            state.config.public_url,
            token.expose()
        );
        let mail = Mail {
            to: email,
            subject: "Reset your Just Trades password".into(),
            body: format!(
                "Someone (hopefully you) asked to reset the password of this account.\n\n\
                 Open this link within one hour to choose a new password:\n{link}\n\n\
                 Or send this token to POST /api/v1/auth/password-reset/confirm:\n{}\n\n\
                 If you did not ask, ignore this mail: your password stays as it is.\n",
                token.expose()
            ),
        };
        // The answer is the same whether or not the mail goes out (nothing to learn from it).
        if let Err(e) = state.mailer.send(&mail).await {
            tracing::error!(error = %e, "password reset mail not sent");
        }
    }
    Ok(StatusCode::ACCEPTED)
}

/// A new password with the e-mailed token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "the token from the mail", "password": "a new long password"}))]
pub struct ResetConfirm {
    /// The token from the e-mail.
    pub token: String,
    /// The new password (at least 8 characters).
    pub password: String,
}

/// Sets a new password with the e-mailed token (once, within the hour); every session of the
/// user ends.
#[utoipa::path(
    post,
    path = "/auth/password-reset/confirm",
    tag = "auth",
    request_body = ResetConfirm,
    responses(
        (status = 204, description = "Password changed"),
        (status = 422, description = "Unknown, used or expired token, or a short password", body = ErrorBody),
    )
)]
pub async fn password_reset_confirm(
    State(state): State<ApiState>,
    Json(req): Json<ResetConfirm>,
) -> ApiResult<StatusCode> {
    state
        .store
        .users()
        .finish_password_reset(&Secret::new(req.token), &Secret::new(req.password))
        .await
        .map_err(|e| match e {
            StoreError::Invalid {
                what: "reset token",
                reason,
            } => ApiError::invalid("token", reason),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "my script"}))]
pub struct NewToken {
    /// A name to tell it apart.
    pub name: String,
    /// When it stops working (none: until deleted).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A created API token: `token` is shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token as listed.
    #[serde(flatten)]
    pub listed: ApiTokenView,
    /// The secret: send as `Authorization: Bearer <token>`. It cannot be shown again.
    pub token: String,
}

/// Creates an API token for scripts.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    request_body = NewToken,
    responses(
        (status = 201, description = "Created; the token is shown once", body = CreatedToken),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn create_token(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    if req.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    let (listed, token) = state
        .store
        .api_tokens()
        .create(caller.owner(), &req.name, req.expires_at)
        .await
        .map_err(|e| match e {
            StoreError::Invalid { reason, .. } => ApiError::invalid("name", reason),
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            listed: listed.into(),
            token: token.expose().to_string(),
        }),
    ))
}

/// The caller's API tokens (never the secrets).
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    responses((status = 200, description = "Tokens, newest first", body = Vec<ApiTokenView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list_tokens(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApiTokenView>>> {
    let list = state.store.api_tokens().list(caller.owner()).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Revokes one of the caller's API tokens.
#[utoipa::path(
    delete,
    path = "/tokens/{token_id}",
    tag = "tokens",
    params(("token_id" = uuid::Uuid, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(token_id): Path<ApiTokenId>,
) -> ApiResult<StatusCode> {
    state
        .store
        .api_tokens()
        .revoke(caller.owner(), token_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
