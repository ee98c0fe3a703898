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
use jt_store::repo::auth::NewUser;
use jt_store::repo::plans::{Plan, PlanSpec, ProviderSubscription};
use jt_store::{Role, StoreError, SubscriptionStatus, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::mailer::Mail;
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

/// What a Whop delivery did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhopAnswer {
    /// `applied`, `stale` (an older event than the stored state), or `ignored` with the
    /// reason.
    pub result: String,
    /// Why it was ignored.
    pub reason: Option<String>,
}

fn ignored(reason: impl Into<String>) -> Json<WhopAnswer> {
    Json(WhopAnswer {
        result: "ignored".into(),
        reason: Some(reason.into()),
    })
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
    let Some(config) = state.config.whop.as_ref() else {
        return Err(ApiError::not_found("webhook"));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let event_time = whop::verify(
        &config.key,
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
    let Some(plan_code) = config.products.get(&event.product_id) else {
        tracing::info!(product = %event.product_id, "Whop membership of a product that is no plan of ours");
        return Ok(ignored(format!(
            "product {} is not mapped to a plan (JT_WHOP_PRODUCTS)",
            event.product_id
        )));
    };
    let Some(email) = event.email.clone() else {
        return Ok(ignored("the membership carries no e-mail"));
    };
    let activates = matches!(
        event.status,
        SubscriptionStatus::Active | SubscriptionStatus::Trialing | SubscriptionStatus::PastDue
    );
    let user = match state.store.system().user_by_email(&email).await? {
        Some(u) => u.id,
        None if activates => activate(&state, &email).await?,
        None => return Ok(ignored("no account with this e-mail")),
    };
    let provider_updated_at =
        chrono::DateTime::from_timestamp(event_time, 0).unwrap_or_else(Utc::now);
    let applied = state
        .store
        .plans()
        .apply_subscription(ProviderSubscription {
            user,
            plan_code: plan_code.clone(),
            provider: "whop".into(),
            provider_subscription_id: event.membership_id,
            status: event.status,
            current_period_end: event.period_end,
            provider_updated_at,
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => {
                tracing::error!(plan = %plan_code, "JT_WHOP_PRODUCTS names a plan that does not exist");
                ApiError::unavailable("the plan of this product is not defined yet; retry later")
            }
            other => other.into(),
        })?;
    Ok(Json(WhopAnswer {
        result: if applied { "applied" } else { "stale" }.into(),
        reason: None,
    }))
}

/// An account for a buyer who has none: approved, with a random password, and a mail with a
/// single-use link to choose one (valid one hour; a password reset renews it).
async fn activate(state: &ApiState, email: &str) -> ApiResult<UserId> {
    let created = state
        .store
        .users()
        .register(NewUser {
            email: email.to_string(),
            display_name: None,
            password: jt_store::auth::random_token(),
            role: Role::User,
            approved: true,
        })
        .await;
    let user = match created {
        Ok(u) => u.id,
        // A concurrent delivery made it first.
        Err(StoreError::Conflict { .. }) => {
            return state
                .store
                .system()
                .user_by_email(email)
                .await?
                .map(|u| u.id)
                .ok_or_else(|| ApiError::unavailable("retry"));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(token) = state.store.users().start_password_reset(email).await? {
        let link = format!(
            "{}/reset-password?token={}",
            state.config.public_url,
            token.expose()
        );
        let mail = Mail {
            to: email.to_string(),
            subject: "Your Just Trades account is ready".into(),
            body: format!(
                "Thank you for your purchase. Your account is ready.\n\n\
                 Open this link within one hour to choose your password:\n{link}\n\n\
                 If it has expired, ask for a new one from the sign-in page (\"forgot \
                 password\").\n"
            ),
        };
        if let Err(e) = state.mailer.send(&mail).await {
            tracing::error!(error = %e, "activation mail not sent");
        }
    }
    Ok(user)
}
