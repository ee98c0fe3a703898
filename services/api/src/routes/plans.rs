//! Plans and subscriptions (DOMAIN §11): the limits a user's plan puts on broker accounts,
//! recorders and followers, enforced when one is created (403 `plan_limit`, naming the limit
//! and the count); the plans on offer; the caller's plan with its usage; admins define plans;
//! and Whop's signed webhooks keep subscriptions current (see `crate::whop`).
//!
//! Whose plan: the caller's current subscription (trialing, active or past due); without
//! one, `JT_DEFAULT_PLAN` when set; otherwise no limits (a self-hosted install that does not
//! sell plans). Admins are never limited. Two creates racing at the limit can both pass (the
//! count is read, not locked): at most one record over, never a stuck account.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use jt_store::repo::plans::{Plan, PlanSpec};
use jt_store::{Role, StoreError, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::routes::admin::AdminCaller;
use crate::state::ApiState;
use crate::whop;

/// A counted resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Broker accounts (logins).
    BrokerAccounts,
    /// Recorders (strategies).
    Recorders,
    /// Copy-trading followers.
    Followers,
}

impl Limit {
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Self::BrokerAccounts => ("max_broker_accounts", "broker accounts"),
            Self::Recorders => ("max_recorders", "recorders"),
            Self::Followers => ("max_followers", "followers"),
        }
    }

    fn of(self, plan: &Plan) -> Option<u32> {
        match self {
            Self::BrokerAccounts => plan.max_broker_accounts,
            Self::Recorders => plan.max_recorders,
            Self::Followers => plan.max_followers,
        }
    }
}

/// The plan that limits `user` now, if any.
async fn plan_of(state: &ApiState, user: UserId) -> ApiResult<Option<Plan>> {
    let plans = state.store.plans();
    if let Some(s) = plans.current_subscription(user).await? {
        let all = plans.list().await?;
        return Ok(all.into_iter().find(|p| p.id == s.plan));
    }
    match &state.config.default_plan {
        Some(code) => match plans.by_code(code).await {
            Ok(p) => Ok(Some(p)),
            Err(StoreError::NotFound { .. }) => {
                // A default that names no plan limits nobody: say so loudly, trade on.
                tracing::error!(plan = %code, "JT_DEFAULT_PLAN names no plan");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        },
        None => Ok(None),
    }
}

async fn count(state: &ApiState, user: UserId, limit: Limit) -> ApiResult<u64> {
    Ok(match limit {
        Limit::BrokerAccounts => state.store.accounts().list(user).await?.len() as u64,
        Limit::Recorders => state.store.recorders().list(user).await?.len() as u64,
        Limit::Followers => state.store.copying().follower_count(user).await?,
    })
}

/// Refuses a create that would pass the caller's plan limit.
///
/// # Errors
/// 403 `plan_limit` naming the limit, the plan and the count.
pub async fn enforce(state: &ApiState, caller: &Caller, limit: Limit) -> ApiResult<()> {
    if caller.user.role == Role::Admin {
        return Ok(());
    }
    let Some(plan) = plan_of(state, caller.owner()).await? else {
        return Ok(());
    };
    let Some(max) = limit.of(&plan) else {
        return Ok(());
    };
    let have = count(state, caller.owner(), limit).await?;
    if have >= u64::from(max) {
        let (field, what) = limit.words();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "plan_limit",
            format!(
                "your plan ({}) allows {max} {what} and you have {have}: remove one or \
                 change plan",
                plan.name
            ),
        )
        .field(field));
    }
    Ok(())
}

/// A plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    /// Stable code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Most broker accounts (absent: unlimited).
    pub max_broker_accounts: Option<u32>,
    /// Most recorders (absent: unlimited).
    pub max_recorders: Option<u32>,
    /// Most followers (absent: unlimited).
    pub max_followers: Option<u32>,
    /// Features.
    pub features: Vec<String>,
}

impl From<Plan> for PlanView {
    fn from(p: Plan) -> Self {
        Self {
            code: p.code,
            name: p.name,
            max_broker_accounts: p.max_broker_accounts,
            max_recorders: p.max_recorders,
            max_followers: p.max_followers,
            features: p.features,
        }
    }
}

/// The plans on offer.
#[utoipa::path(
    get,
    path = "/plans",
    tag = "plans",
    responses((status = 200, description = "Plans", body = Vec<PlanView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<PlanView>>> {
    let plans = state.store.plans().list().await?;
    Ok(Json(plans.into_iter().map(PlanView::from).collect()))
}

/// The caller's plan, where it comes from, and what they use of it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionView {
    /// The plan in force (absent: not limited).
    pub plan: Option<PlanView>,
    /// `subscription` (a current one), `default` (`JT_DEFAULT_PLAN`), `admin` or `none`.
    pub source: String,
    /// The subscription's state, when there is one.
    pub status: Option<String>,
    /// End of the paid period.
    pub current_period_end: Option<chrono::DateTime<Utc>>,
    /// Broker accounts in use.
    pub broker_accounts: u64,
    /// Recorders in use.
    pub recorders: u64,
    /// Followers in use.
    pub followers: u64,
}

/// The caller's plan and usage.
#[utoipa::path(
    get,
    path = "/subscription",
    tag = "plans",
    responses((status = 200, description = "Plan and usage", body = SubscriptionView)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn subscription(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<SubscriptionView>> {
    let owner = caller.owner();
    let sub = state.store.plans().current_subscription(owner).await?;
    let plan = plan_of(&state, owner).await?;
    let source = if caller.user.role == Role::Admin && caller.viewing.is_none() {
        "admin"
    } else if sub.is_some() {
        "subscription"
    } else if plan.is_some() {
        "default"
    } else {
        "none"
    };
    Ok(Json(SubscriptionView {
        plan: plan.map(PlanView::from),
        source: source.into(),
        status: sub.as_ref().map(|s| crate::routes::views::word(&s.status)),
        current_period_end: sub.and_then(|s| s.current_period_end),
        broker_accounts: count(&state, owner, Limit::BrokerAccounts).await?,
        recorders: count(&state, owner, Limit::Recorders).await?,
        followers: count(&state, owner, Limit::Followers).await?,
    }))
}

/// A plan's definition.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Pro", "max_broker_accounts": 5, "max_recorders": 20,
                          "max_followers": 10, "features": ["copy_trading"]}))]
pub struct PlanRequest {
    /// Name.
    pub name: String,
    /// Most broker accounts (absent: unlimited).
    #[serde(default)]
    pub max_broker_accounts: Option<u32>,
    /// Most recorders (absent: unlimited).
    #[serde(default)]
    pub max_recorders: Option<u32>,
    /// Most followers (absent: unlimited).
    #[serde(default)]
    pub max_followers: Option<u32>,
    /// Features.
    #[serde(default)]
    pub features: Vec<String>,
}

/// Creates or replaces a plan (admins). Audited.
#[utoipa::path(
    put,
    path = "/admin/plans/{code}",
    tag = "admin",
    params(("code" = String, Path, description = "The plan's code")),
    request_body = PlanRequest,
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn upsert(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Path(code): Path<String>,
    Json(req): Json<PlanRequest>,
) -> ApiResult<Json<PlanView>> {
    let code = code.trim().to_lowercase();
    if code.is_empty()
        || code.len() > 32
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::invalid(
            "code",
            "must be 1 to 32 letters, digits, '-' or '_'",
        ));
    }
    let plan = state
        .store
        .admin(&admin.scope)
        .upsert_plan(PlanSpec {
            code,
            name: req.name,
            max_broker_accounts: req.max_broker_accounts,
            max_recorders: req.max_recorders,
            max_followers: req.max_followers,
            features: req.features,
        })
        .await?;
    Ok(Json(plan.into()))
}

pub use crate::whop::WhopAnswer;

fn ignored(reason: impl Into<String>) -> Json<WhopAnswer> {
    Json(WhopAnswer::ignored(reason))
}

/// Whop's webhook: a membership activated or deactivated. Signed (Standard Webhooks); 401
/// when the signature, its headers or its time do not hold; 404 when Whop is not configured.
#[utoipa::path(
    post,
    path = "/webhooks/whop",
    tag = "plans",
    request_body(content = Object, description = "Whop's event as it sends it",
                 content_type = "application/json"),
    responses(
        (status = 200, description = "Applied, stale or ignored", body = WhopAnswer),
        (status = 400, description = "Signed but not JSON", body = ErrorBody),
        (status = 401, description = "Signature refused", body = ErrorBody),
        (status = 404, description = "Whop is not configured", body = ErrorBody),
    )
)]
pub async fn whop_webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WhopAnswer>> {
    let Some((config, key)) = state
        .config
        .whop
        .as_ref()
        .and_then(|c| c.key.as_deref().map(|k| (c, k)))
    else {
        return Err(ApiError::not_found("webhook"));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let event_time = whop::verify(
        key,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        Utc::now(),
    )
    .map_err(|r| {
        tracing::warn!(reason = %r, "Whop webhook refused");
        ApiError::unauthenticated(r.to_string()).field("webhook-signature")
    })?;
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "malformed", "the body is not JSON"))?;
    let Some(event) = whop::membership_event(&json) else {
        return Ok(ignored("not a membership event"));
    };
    let at = chrono::DateTime::from_timestamp(event_time, 0).unwrap_or_else(Utc::now);
    Ok(Json(whop::apply(&state, config, event, at).await?))
}
