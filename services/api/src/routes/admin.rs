//! Administration: users (list, create, approve or disable, role, delete with everything they
//! own), the audit log, the platform-wide kill switch and dead letters. Every route needs an
//! admin (checked against the database on each request, not a cached role) and answers 403
//! to anyone else; every change is written to the audit log in the same transaction as the
//! change (the store's admin path).
//!
//! Reading the platform as another user is not a route here: any read route with the header
//! `X-View-As: <user id>` (see `auth.rs`), refused for writes, audited per request.

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jt_bus::{DeadLetter, DeadLetterQuery, Definitions};
use jt_store::repo::admin::{AdminScope, AuditEntry};
use jt_store::repo::auth::NewUser;
use jt_store::{KillScope, Role, Secret, StoreError, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::routes::controls::{KillAnswer, KillRequest, Queued, announced, engagement};
use crate::routes::paging;
use crate::routes::views::UserView;
use crate::state::ApiState;

/// A caller proven to be an admin.
#[derive(Debug)]
pub struct AdminCaller {
    /// The admin.
    pub caller: Caller,
    /// The store's proof, through which every admin action is audited.
    pub scope: AdminScope,
}

impl FromRequestParts<ApiState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.viewing.is_some() {
            return Err(ApiError::forbidden(
                "administration is not available while viewing as another user",
            ));
        }
        let scope = state
            .store
            .admin_scope(caller.user.id)
            .await
            .map_err(|e| match e {
                StoreError::NotAdmin(_) => ApiError::forbidden("this needs an administrator"),
                other => other.into(),
            })?;
        Ok(Self { caller, scope })
    }
}

/// Paging of an admin list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// Rows to skip (default 0).
    pub offset: Option<u64>,
}

impl Paging {
    fn get(&self) -> ApiResult<(u64, u64)> {
        let limit = paging::limit(self.limit, 50, 200)?;
        let offset = self.offset.unwrap_or(0);
        if offset > 1_000_000 {
            return Err(paging::bad_query("offset", "must be at most 1000000"));
        }
        Ok((limit, offset))
    }
}

/// Users, newest first.
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    params(Paging),
    responses(
        (status = 200, description = "Users", body = Vec<UserView>),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list_users(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Query(p): Query<Paging>,
) -> ApiResult<Json<Vec<UserView>>> {
    let (limit, offset) = p.get()?;
    let users = state
        .store
        .admin(&admin.scope)
        .list_users(limit, offset)
        .await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

/// A user made by an admin (approved at once).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "trader@example.com", "display_name": "Trader", "role": "user"}))]
pub struct NewUserRequest {
    /// Login e-mail.
    pub email: String,
    /// Name shown in the UI.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `user` (default) or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// The password (at least the store's minimum); absent: one is generated and shown once
    /// in the answer.
    #[serde(default)]
    pub password: Option<String>,
}

/// A created user, with the generated password when none was given (shown once: nothing
/// keeps it in clear).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedUser {
    /// The user.
    pub user: UserView,
    /// The generated password, if one was generated.
    pub password: Option<String>,
}

fn role(word: Option<&str>) -> ApiResult<Option<Role>> {
    match word {
        None => Ok(None),
        Some("user") => Ok(Some(Role::User)),
        Some("admin") => Ok(Some(Role::Admin)),
        Some(_) => Err(ApiError::invalid("role", "must be `user` or `admin`")),
    }
}

/// Creates a user.
#[utoipa::path(
    post,
    path = "/admin/users",
    tag = "admin",
    request_body = NewUserRequest,
    responses(
        (status = 201, description = "Created", body = CreatedUser),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 409, description = "The e-mail is taken", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn create_user(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Json(req): Json<NewUserRequest>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    let role = role(req.role.as_deref())?.unwrap_or(Role::User);
    let (password, generated) = match req.password {
        Some(p) => (Secret::new(p), false),
        None => (jt_store::auth::random_token(), true),
    };
    let user = state
        .store
        .admin(&admin.scope)
        .create_user(NewUser {
            email: req.email,
            display_name: req.display_name,
            password: password.clone(),
            role,
            approved: true,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ApiError::conflict("this e-mail is already registered").field("email")
            }
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: user.into(),
            password: generated.then(|| password.expose().to_string()),
        }),
    ))
}

/// One user.
#[utoipa::path(
    get,
    path = "/admin/users/{user_id}",
    tag = "admin",
    params(("user_id" = uuid::Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn get_user(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<UserView>> {
    let u = state.store.admin(&admin.scope).user(user_id).await?;
    Ok(Json(u.into()))
}

/// Changes to a user.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"approved": false}))]
pub struct UserPatch {
    /// `false` disables the user: every request of their sessions and API tokens is refused
    /// from the next one on, and they cannot log in; `true` approves or re-enables.
    #[serde(default)]
    pub approved: Option<bool>,
    /// `user` or `admin` (an admin cannot remove their own admin role).
    #[serde(default)]
    pub role: Option<String>,
}

/// Approves, disables or changes the role of a user.
#[utoipa::path(
    patch,
    path = "/admin/users/{user_id}",
    tag = "admin",
    params(("user_id" = uuid::Uuid, Path, description = "The user")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn update_user(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Path(user_id): Path<UserId>,
    Json(req): Json<UserPatch>,
) -> ApiResult<Json<UserView>> {
    let role = role(req.role.as_deref())?;
    let a = state.store.admin(&admin.scope);
    a.user(user_id).await?;
    if req.approved == Some(false) && user_id == admin.caller.user.id {
        return Err(ApiError::invalid(
            "approved",
            "an admin cannot disable their own account",
        ));
    }
    if let Some(r) = role {
        a.set_role(user_id, r).await?;
    }
    if let Some(approved) = req.approved {
        a.set_approved(user_id, approved).await?;
    }
    Ok(Json(a.user(user_id).await?.into()))
}

/// Deletes a user and everything they own (accounts, recorders, traders, copy groups,
/// history: DOMAIN §11); audit rows naming them stay.
#[utoipa::path(
    delete,
    path = "/admin/users/{user_id}",
    tag = "admin",
    params(("user_id" = uuid::Uuid, Path, description = "The user")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Deleting oneself", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete_user(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state.store.admin(&admin.scope).delete_user(user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One audited admin action.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// When.
    pub at: DateTime<Utc>,
    /// The admin (absent once deleted).
    pub actor_id: Option<Uuid>,
    /// The admin's e-mail at the time.
    pub actor_email: String,
    /// What (`user.create`, `user.view_as`, `kill.global.engage`, …).
    pub action: String,
    /// The kind of record acted on.
    pub target_type: String,
    /// The record.
    pub target_id: Option<String>,
    /// The user concerned (absent once deleted).
    pub target_user_id: Option<Uuid>,
    /// Details of the action.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditEntry> for AuditView {
    fn from(a: AuditEntry) -> Self {
        Self {
            at: a.at,
            actor_id: a.actor.map(|u| u.0),
            actor_email: a.actor_email,
            action: a.action,
            target_type: a.target_type,
            target_id: a.target_id,
            target_user_id: a.target_user.map(|u| u.0),
            details: a.details,
        }
    }
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    params(Paging),
    responses(
        (status = 200, description = "Audit rows", body = Vec<AuditView>),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn audit(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Query(p): Query<Paging>,
) -> ApiResult<Json<Vec<AuditView>>> {
    let (limit, offset) = p.get()?;
    let rows = state
        .store
        .admin(&admin.scope)
        .audit_log(limit, offset)
        .await?;
    Ok(Json(rows.into_iter().map(AuditView::from).collect()))
}

/// Engages the platform-wide kill switch (the risk service flattens every user's every active
/// sub-account, and no entry is taken until it is released) or releases it.
#[utoipa::path(
    put,
    path = "/admin/kill",
    tag = "admin",
    request_body = KillRequest,
    responses(
        (status = 200, description = "Changed", body = KillAnswer),
        (status = 403, description = "Not an administrator", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn kill_global(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Json(req): Json<KillRequest>,
) -> ApiResult<Json<KillAnswer>> {
    // The switch and its engagement in one write: from here the executor refuses new
    // entries, and the risk service carries the engagement out (cancel, flatten).
    let engagement = req.engaged.then(|| {
        engagement(
            admin.caller.user.id,
            req.reason.clone().or(Some("global kill switch".into())),
        )
    });
    state
        .store
        .admin(&admin.scope)
        .set_global_kill(req.engaged, req.reason.as_deref(), engagement.as_ref())
        .await?;
    // Every owner of an active account is told (their accounts are the ones it stops).
    let mut owners: Vec<UserId> = state
        .store
        .system()
        .active_accounts()
        .await?
        .into_iter()
        .map(|a| a.owner)
        .collect();
    owners.sort_unstable();
    owners.dedup();
    for owner in owners {
        crate::routes::controls::notify_kill(&state, owner, "global", None, &req).await;
    }
    let flatten = match &engagement {
        Some(e) => announced(&state, e, KillScope::Global, None, None).await?,
        None => Queued {
            intent_ids: Vec::new(),
            duplicate: false,
        },
    };
    Ok(Json(KillAnswer {
        engaged: req.engaged,
        flatten,
    }))
}

/// A message a consumer gave up on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    /// Its sequence in the dead-letter stream (retry it by this).
    pub sequence: u64,
    /// The stream it came from.
    pub stream: String,
    /// The consumer that gave up.
    pub consumer: String,
    /// Why.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// Its sequence in the original stream.
    pub original_sequence: u64,
    /// When it was dead-lettered.
    pub dead_at: Option<DateTime<Utc>>,
    /// The original subject.
    pub subject: String,
    /// The original message id.
    pub message_id: Option<String>,
    /// The original body: JSON when it is JSON, else its text.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        let body = serde_json::from_slice(&d.original.payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&d.original.payload).into_owned())
        });
        Self {
            sequence: d.sequence,
            stream: d.stream,
            consumer: d.consumer,
            reason: d.reason,
            attempts: d.attempts,
            original_sequence: d.original_sequence,
            dead_at: d.dead_at,
            message_id: d.original.message_id().map(str::to_owned),
            subject: d.original.subject,
            body,
        }
    }
}

/// Which dead letters to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterFilter {
    /// Only from this stream (`ORDERS`, `SIGNALS`, …).
    pub stream: Option<String>,
    /// Only from this consumer.
    pub consumer: Option<String>,
    /// After this dead-letter sequence (the last one of the previous page).
    pub after: Option<u64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
}

fn subject_token(field: &str, v: Option<String>) -> ApiResult<Option<String>> {
    match v {
        Some(t)
            if t.is_empty()
                || t.len() > 64
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Err(paging::bad_query(
                field,
                "must be a stream or consumer name",
            ))
        }
        other => Ok(other),
    }
}

fn unavailable(e: &jt_bus::BusError) -> ApiError {
    tracing::warn!(error = %e, "reading dead letters failed");
    ApiError::unavailable("the message bus did not answer; retry shortly")
}

/// Dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/admin/dead-letters",
    tag = "admin",
    params(DeadLetterFilter),
    responses(
        (status = 200, description = "Dead letters", body = Vec<DeadLetterView>),
        (status = 400, description = "A bad filter", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 503, description = "The bus did not answer", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn dead_letters(
    State(state): State<ApiState>,
    _admin: AdminCaller,
    Query(f): Query<DeadLetterFilter>,
) -> ApiResult<Json<Vec<DeadLetterView>>> {
    let limit = paging::limit(f.limit, 50, 200)?;
    let query = DeadLetterQuery {
        stream: subject_token("stream", f.stream)?,
        consumer: subject_token("consumer", f.consumer)?,
        after: f.after.unwrap_or(0),
        limit: usize::try_from(limit).unwrap_or(50),
    };
    let defs = Definitions::new(state.bus.namespace());
    let letters = state
        .bus
        .dead_letters(&defs.dead_letters, &query)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(
        letters.into_iter().map(DeadLetterView::from).collect(),
    ))
}

/// What a retry did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Retried {
    /// The id the message was published under again (derived from the original and the dead
    /// letter: a second retry of the same letter is dropped as a duplicate).
    pub message_id: String,
}

/// Puts a dead letter back on its stream (once, even if retried twice) and removes it.
/// Audited.
#[utoipa::path(
    post,
    path = "/admin/dead-letters/{sequence}/retry",
    tag = "admin",
    params(("sequence" = u64, Path, description = "The dead letter's sequence")),
    responses(
        (status = 200, description = "Back on its stream", body = Retried),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 503, description = "The bus did not answer", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn retry_dead_letter(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Path(sequence): Path<u64>,
) -> ApiResult<Json<Retried>> {
    let defs = Definitions::new(state.bus.namespace());
    let message_id = state
        .bus
        .retry_dead_letter(&defs.dead_letters, sequence)
        .await
        .map_err(|e| match e {
            jt_bus::BusError::NotFound(_) => ApiError::not_found("dead letter"),
            other => unavailable(&other),
        })?;
    state
        .store
        .admin(&admin.scope)
        .record(
            "dead_letter.retry",
            "dead_letter",
            Some(sequence.to_string()),
            serde_json::json!({ "message_id": message_id }),
        )
        .await?;
    Ok(Json(Retried { message_id }))
}
