//! Broker accounts (logins): CRUD with sealed credentials, the login test that lists and
//! stores the sub-accounts, and the sub-accounts.

use axum::extract::State;
use axum::http::StatusCode;
use jt_store::repo::accounts::{AccountUpdate, BrokerCredentials, NewBrokerAccount};
use jt_store::{BrokerAccountId, BrokerKind, Environment, Secret, SubAccountId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::probe::ProbeError;
use crate::routes::views::{BrokerAccountView, SubAccountView};
use crate::state::ApiState;

/// A broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrokerInput {
    /// Tradovate.
    Tradovate,
    /// NinjaTrader brokerage.
    Ninjatrader,
    /// ProjectX (TopstepX and other prop firms).
    Projectx,
    /// Webull.
    Webull,
    /// The built-in simulator.
    Sim,
}

impl From<BrokerInput> for BrokerKind {
    fn from(b: BrokerInput) -> Self {
        match b {
            BrokerInput::Tradovate => BrokerKind::Tradovate,
            BrokerInput::Ninjatrader => BrokerKind::NinjaTrader,
            BrokerInput::Projectx => BrokerKind::ProjectX,
            BrokerInput::Webull => BrokerKind::Webull,
            BrokerInput::Sim => BrokerKind::Sim,
        }
    }
}

/// A broker environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentInput {
    /// Demo money.
    Demo,
    /// Real money.
    Live,
}

impl From<EnvironmentInput> for Environment {
    fn from(e: EnvironmentInput) -> Self {
        match e {
            EnvironmentInput::Demo => Environment::Demo,
            EnvironmentInput::Live => Environment::Live,
        }
    }
}

/// Login secrets, by broker: Tradovate and NinjaTrader `password` (with `app_id`,
/// `app_version`, `client_id`, `client_secret`, `device_id` where the login needs them) or an
/// OAuth `refresh_token`; ProjectX `api_key`; Webull `api_key` and `api_secret`; the
/// simulator `password`. Stored sealed, never returned.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsInput {
    /// Password.
    pub password: Option<String>,
    /// API key (ProjectX) or app key (Webull).
    pub api_key: Option<String>,
    /// App secret (Webull).
    pub api_secret: Option<String>,
    /// Tradovate `appId`.
    pub app_id: Option<String>,
    /// Tradovate `appVersion`.
    pub app_version: Option<String>,
    /// Tradovate `cid`.
    pub client_id: Option<String>,
    /// Tradovate `sec`.
    pub client_secret: Option<String>,
    /// Tradovate `deviceId`.
    pub device_id: Option<String>,
    /// OAuth refresh token.
    pub refresh_token: Option<String>,
}

fn filled(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

impl CredentialsInput {
    /// Checks that the broker's login has what it needs, naming the missing field.
    fn into_credentials(self, broker: BrokerKind) -> ApiResult<BrokerCredentials> {
        let c = BrokerCredentials {
            password: filled(self.password).map(Secret::new),
            api_key: filled(self.api_key).map(Secret::new),
            api_secret: filled(self.api_secret).map(Secret::new),
            app_id: filled(self.app_id),
            app_version: filled(self.app_version),
            client_id: filled(self.client_id),
            client_secret: filled(self.client_secret).map(Secret::new),
            device_id: filled(self.device_id),
            refresh_token: filled(self.refresh_token).map(Secret::new),
        };
        let need = |ok: bool, field: &str, rule: &str| {
            if ok {
                Ok(())
            } else {
                Err(ApiError::invalid(format!("credentials.{field}"), rule))
            }
        };
        match broker {
            BrokerKind::Tradovate | BrokerKind::NinjaTrader => need(
                c.password.is_some() || c.refresh_token.is_some(),
                "password",
                "required (or an OAuth refresh_token)",
            )?,
            BrokerKind::Sim => need(c.password.is_some(), "password", "required")?,
            BrokerKind::ProjectX => need(c.api_key.is_some(), "api_key", "required")?,
            BrokerKind::Webull => {
                need(c.api_key.is_some(), "api_key", "required (the app key)")?;
                need(
                    c.api_secret.is_some(),
                    "api_secret",
                    "required (the app secret)",
                )?;
            }
        }
        Ok(c)
    }
}

/// A new broker account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "label": "Simulator", "broker": "sim", "environment": "demo", "username": "demo",
    "credentials": {"password": "demo-password"}
}))]
pub struct NewAccount {
    /// A name for it.
    pub label: String,
    /// The broker.
    pub broker: BrokerInput,
    /// Demo or live.
    pub environment: EnvironmentInput,
    /// The login name (Tradovate, NinjaTrader, ProjectX, simulator).
    #[serde(default)]
    pub username: Option<String>,
    /// The login secrets.
    pub credentials: CredentialsInput,
    /// Refuse entries without both a stop and a target (prop-firm rule).
    #[serde(default)]
    pub require_brackets: bool,
}

fn need_username(broker: BrokerKind, username: Option<&str>) -> ApiResult<()> {
    let needs = !matches!(broker, BrokerKind::Webull);
    if needs && username.is_none_or(|u| u.trim().is_empty()) {
        return Err(ApiError::invalid(
            "username",
            format!("required for {broker} accounts"),
        ));
    }
    Ok(())
}

/// The caller's broker accounts.
#[utoipa::path(
    get,
    path = "/broker-accounts",
    tag = "broker-accounts",
    responses((status = 200, description = "Accounts, oldest first", body = Vec<BrokerAccountView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<BrokerAccountView>>> {
    let list = state.store.accounts().list(caller.owner()).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Adds a broker account; its credentials are sealed and never shown again. Test it with
/// `POST /broker-accounts/{account_id}/test` to see its sub-accounts.
#[utoipa::path(
    post,
    path = "/broker-accounts",
    tag = "broker-accounts",
    request_body = NewAccount,
    responses(
        (status = 201, description = "Created", body = BrokerAccountView),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<NewAccount>,
) -> ApiResult<(StatusCode, Json<BrokerAccountView>)> {
    let broker = BrokerKind::from(req.broker);
    need_username(broker, req.username.as_deref())?;
    let credentials = req.credentials.into_credentials(broker)?;
    crate::routes::plans::enforce(&state, &caller, crate::routes::plans::Limit::BrokerAccounts)
        .await?;
    let account = state
        .store
        .accounts()
        .create(
            caller.owner(),
            NewBrokerAccount {
                label: req.label,
                broker,
                environment: req.environment.into(),
                username: req.username,
                credentials,
                require_brackets: req.require_brackets,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}

/// One broker account with its authentication status.
#[utoipa::path(
    get,
    path = "/broker-accounts/{account_id}",
    tag = "broker-accounts",
    params(("account_id" = uuid::Uuid, Path, description = "The broker account")),
    responses(
        (status = 200, description = "The account", body = BrokerAccountView),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(account_id): Path<BrokerAccountId>,
) -> ApiResult<Json<BrokerAccountView>> {
    let a = state
        .store
        .accounts()
        .get(caller.owner(), account_id)
        .await?;
    Ok(Json(a.into()))
}

/// Changes to a broker account; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"label": "Main login", "enabled": true}))]
pub struct AccountPatch {
    /// New name.
    #[serde(default)]
    pub label: Option<String>,
    /// New login name.
    #[serde(default)]
    pub username: Option<String>,
    /// New `require_brackets`.
    #[serde(default)]
    pub require_brackets: Option<bool>,
    /// Trade on it or not.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Changes a broker account's plain fields.
#[utoipa::path(
    patch,
    path = "/broker-accounts/{account_id}",
    tag = "broker-accounts",
    params(("account_id" = uuid::Uuid, Path, description = "The broker account")),
    request_body = AccountPatch,
    responses(
        (status = 200, description = "The account", body = BrokerAccountView),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(account_id): Path<BrokerAccountId>,
    Json(req): Json<AccountPatch>,
) -> ApiResult<Json<BrokerAccountView>> {
    if let Some(u) = &req.username
        && u.trim().is_empty()
    {
        return Err(ApiError::invalid("username", "must not be empty"));
    }
    let a = state
        .store
        .accounts()
        .update(
            caller.owner(),
            account_id,
            AccountUpdate {
                label: req.label,
                username: req.username.map(Some),
                require_brackets: req.require_brackets,
                enabled: req.enabled,
            },
        )
        .await
        .map_err(|e| match e {
            jt_store::StoreError::Invalid { reason, .. } => ApiError::invalid("label", reason),
            other => other.into(),
        })?;
    Ok(Json(a.into()))
}

/// Deletes a broker account with its sub-accounts, traders and their history.
#[utoipa::path(
    delete,
    path = "/broker-accounts/{account_id}",
    tag = "broker-accounts",
    params(("account_id" = uuid::Uuid, Path, description = "The broker account")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(account_id): Path<BrokerAccountId>,
) -> ApiResult<StatusCode> {
    state
        .store
        .accounts()
        .delete(caller.owner(), account_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the login secrets (clears "needs re-authentication" and the stored session).
#[utoipa::path(
    put,
    path = "/broker-accounts/{account_id}/credentials",
    tag = "broker-accounts",
    params(("account_id" = uuid::Uuid, Path, description = "The broker account")),
    request_body(content = CredentialsInput, example = json!({"password": "new password"})),
    responses(
        (status = 200, description = "The account", body = BrokerAccountView),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 422, description = "A required secret is missing", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn set_credentials(
    State(state): State<ApiState>,
    caller: Caller,
    Path(account_id): Path<BrokerAccountId>,
    Json(req): Json<CredentialsInput>,
) -> ApiResult<Json<BrokerAccountView>> {
    let accounts = state.store.accounts();
    let account = accounts.get(caller.owner(), account_id).await?;
    let creds = req.into_credentials(account.broker)?;
    accounts
        .set_credentials(caller.owner(), account_id, &creds)
        .await?;
    Ok(Json(accounts.get(caller.owner(), account_id).await?.into()))
}

/// The result of a login test.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestAnswer {
    /// The account's status after the test.
    pub account: BrokerAccountView,
    /// The sub-accounts the login sees (stored; ones it no longer lists are marked inactive).
    pub sub_accounts: Vec<SubAccountView>,
}

/// Logs the account in, lists the sub-accounts it sees and stores them.
#[utoipa::path(
    post,
    path = "/broker-accounts/{account_id}/test",
    tag = "broker-accounts",
    params(("account_id" = uuid::Uuid, Path, description = "The broker account")),
    responses(
        (status = 200, description = "Logged in", body = TestAnswer),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 422, description = "The broker refused the login (its reason in `message`)", body = ErrorBody),
        (status = 502, description = "The broker could not be reached", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn test(
    State(state): State<ApiState>,
    caller: Caller,
    Path(account_id): Path<BrokerAccountId>,
) -> ApiResult<Json<TestAnswer>> {
    let accounts = state.store.accounts();
    let account = accounts.get(caller.owner(), account_id).await?;
    let listed = match state.brokers.sub_accounts(&account).await {
        Ok(l) => l,
        Err(ProbeError::Refused(reason)) => {
            accounts
                .record_error(caller.owner(), account_id, &reason)
                .await?;
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "broker",
                format!("the broker refused the login: {reason}"),
            )
            .field("credentials"));
        }
        Err(ProbeError::Unreachable(reason)) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "broker",
                format!("the broker could not be reached: {reason}"),
            ));
        }
    };
    let subs = accounts
        .sync_sub_accounts(caller.owner(), account_id, &listed)
        .await?;
    Ok(Json(TestAnswer {
        account: accounts.get(caller.owner(), account_id).await?.into(),
        sub_accounts: subs.into_iter().map(Into::into).collect(),
    }))
}

/// The sub-accounts of one broker account.
#[utoipa::path(
    get,
    path = "/broker-accounts/{account_id}/sub-accounts",
    tag = "broker-accounts",
    params(("account_id" = uuid::Uuid, Path, description = "The broker account")),
    responses(
        (status = 200, description = "Sub-accounts by name", body = Vec<SubAccountView>),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn sub_accounts(
    State(state): State<ApiState>,
    caller: Caller,
    Path(account_id): Path<BrokerAccountId>,
) -> ApiResult<Json<Vec<SubAccountView>>> {
    let accounts = state.store.accounts();
    accounts.get(caller.owner(), account_id).await?;
    let subs = accounts.sub_accounts(caller.owner(), account_id).await?;
    Ok(Json(subs.into_iter().map(Into::into).collect()))
}

/// Every sub-account of the caller, across broker accounts.
#[utoipa::path(
    get,
    path = "/sub-accounts",
    tag = "broker-accounts",
    responses((status = 200, description = "Sub-accounts", body = Vec<SubAccountView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn all_sub_accounts(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SubAccountView>>> {
    let accounts = state.store.accounts();
    let mut out = Vec::new();
    for a in accounts.list(caller.owner()).await? {
        out.extend(
            accounts
                .sub_accounts(caller.owner(), a.id)
                .await?
                .into_iter()
                .map(SubAccountView::from),
        );
    }
    Ok(Json(out))
}

/// A sub-account's switch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false}))]
pub struct SubAccountPatch {
    /// `false`: no new entries on it (exits and flattens still go through).
    pub enabled: bool,
}

/// Turns a sub-account on or off.
#[utoipa::path(
    patch,
    path = "/sub-accounts/{sub_account_id}",
    tag = "broker-accounts",
    params(("sub_account_id" = uuid::Uuid, Path, description = "The sub-account")),
    request_body = SubAccountPatch,
    responses(
        (status = 200, description = "The sub-account", body = SubAccountView),
        (status = 404, description = "No such sub-account", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn update_sub_account(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sub_account_id): Path<SubAccountId>,
    Json(req): Json<SubAccountPatch>,
) -> ApiResult<Json<SubAccountView>> {
    let s = state
        .store
        .accounts()
        .set_sub_account_enabled(caller.owner(), sub_account_id, req.enabled)
        .await?;
    Ok(Json(s.into()))
}
