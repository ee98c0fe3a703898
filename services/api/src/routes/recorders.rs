//! Recorders: CRUD with every setting of DOMAIN §4, the webhook URL, token rotation and the
//! ready-to-paste TradingView alert message.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use jt_domain::Settings;
use jt_store::repo::recorders::{NewRecorder, Recorder, RecorderUpdate};
use jt_store::{RecorderId, StoreError};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, parse_value};
use crate::routes::views::dec;
use crate::state::ApiState;

/// The alert message to paste into TradingView's alert dialog ("Message"): the strategy's
/// placeholders, which TradingView fills in when the alert fires.
pub const ALERT_MESSAGE: &str = "{\"action\": \"{{strategy.order.action}}\", \"ticker\": \"{{ticker}}\", \"contracts\": {{strategy.order.contracts}}, \"price\": {{strategy.order.price}}, \"position\": \"{{strategy.market_position}}\", \"prev_position\": \"{{strategy.prev_market_position}}\", \"time\": \"{{timenow}}\"}";

/// A recorder.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecorderView {
    /// Id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Ticker used when an alert carries none.
    pub symbol: Option<String>,
    /// Every setting (DOMAIN §4), the traders' defaults.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Paper record commission per contract, dollars.
    pub commission_per_contract: String,
    /// The URL TradingView posts to (contains the secret token: keep it private).
    pub webhook_url: String,
    /// Paste into the alert's "Message" box.
    pub alert_message: String,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

async fn view(state: &ApiState, r: Recorder) -> ApiResult<RecorderView> {
    let token = state.store.recorders().webhook_token(r.owner, r.id).await?;
    Ok(RecorderView {
        id: r.id.0,
        name: r.name,
        symbol: r.symbol,
        settings: serde_json::to_value(&r.settings).map_err(ApiError::internal)?,
        commission_per_contract: dec(r.commission_per_contract),
        webhook_url: state.config.webhook_url(token.expose()),
        alert_message: ALERT_MESSAGE.to_string(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// Settings from a JSON object, each name checked and each value decoded; `null` is the
/// setting's default. Merged over `base`.
pub(crate) fn merge_settings(base: &Settings, patch: &serde_json::Value) -> ApiResult<Settings> {
    let serde_json::Value::Object(patch) = patch else {
        return Err(ApiError::invalid(
            "settings",
            "must be an object of setting names",
        ));
    };
    let defaults = serde_json::to_value(Settings::default()).map_err(ApiError::internal)?;
    let mut merged = serde_json::to_value(base).map_err(ApiError::internal)?;
    for (name, value) in patch {
        if !Settings::NAMES.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                format!("settings.{name}"),
                "unknown setting",
            ));
        }
        let v = if value.is_null() {
            defaults[name.as_str()].clone()
        } else {
            value.clone()
        };
        merged[name.as_str()] = v;
    }
    let settings: Settings = parse_value(merged).map_err(|mut e| {
        if let Some(f) = e.field.take() {
            e.field = Some(format!("settings.{f}"));
            e.message = format!("settings.{}", e.message);
        }
        e
    })?;
    settings.validate()?;
    Ok(settings)
}

/// A new recorder.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "MNQ breakout", "symbol": "MNQ1!",
    "settings": {"initial_position_size": 2, "tp_targets": [{"value": "20", "trim": "1"}, {"value": "40", "trim": "1"}],
                 "sl_enabled": true, "sl_amount": "30"}
}))]
pub struct NewRecorderRequest {
    /// Its name.
    pub name: String,
    /// Ticker used when an alert carries none.
    #[serde(default)]
    pub symbol: Option<String>,
    /// Settings (DOMAIN §4); absent ones take their defaults.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Option<serde_json::Value>,
    /// Paper record commission per contract, dollars (default 0).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub commission_per_contract: Option<Decimal>,
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid { what, reason } => ApiError::invalid(what, reason),
        other => other.into(),
    }
}

/// The caller's recorders.
#[utoipa::path(
    get,
    path = "/recorders",
    tag = "recorders",
    responses((status = 200, description = "Recorders", body = Vec<RecorderView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<RecorderView>>> {
    let mut out = Vec::new();
    for r in state.store.recorders().list(caller.owner()).await? {
        out.push(view(&state, r).await?);
    }
    Ok(Json(out))
}

/// Creates a recorder with its webhook URL.
#[utoipa::path(
    post,
    path = "/recorders",
    tag = "recorders",
    request_body = NewRecorderRequest,
    responses(
        (status = 201, description = "Created", body = RecorderView),
        (status = 422, description = "Invalid input (the field names the setting)", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<NewRecorderRequest>,
) -> ApiResult<(StatusCode, Json<RecorderView>)> {
    let settings = match &req.settings {
        Some(v) => merge_settings(&Settings::default(), v)?,
        None => Settings::default(),
    };
    let commission = req.commission_per_contract.unwrap_or_default();
    if commission < Decimal::ZERO {
        return Err(ApiError::invalid("commission_per_contract", "must be >= 0"));
    }
    crate::routes::plans::enforce(&state, &caller, crate::routes::plans::Limit::Recorders).await?;
    let (r, _) = state
        .store
        .recorders()
        .create(
            caller.owner(),
            NewRecorder {
                name: req.name,
                symbol: req.symbol,
                settings,
                commission_per_contract: commission,
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Invalid {
                what: "name",
                reason,
            } => ApiError::invalid("name", reason),
            other => store_error(other),
        })?;
    Ok((StatusCode::CREATED, Json(view(&state, r).await?)))
}

/// One recorder with its webhook URL and alert message.
#[utoipa::path(
    get,
    path = "/recorders/{recorder_id}",
    tag = "recorders",
    params(("recorder_id" = uuid::Uuid, Path, description = "The recorder")),
    responses(
        (status = 200, description = "The recorder", body = RecorderView),
        (status = 404, description = "No such recorder", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(recorder_id): Path<RecorderId>,
) -> ApiResult<Json<RecorderView>> {
    let r = state
        .store
        .recorders()
        .get(caller.owner(), recorder_id)
        .await?;
    Ok(Json(view(&state, r).await?))
}

fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a recorder; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"settings": {"sl_amount": "25", "dca_enabled": true}}))]
pub struct RecorderPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New default ticker; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub symbol: Option<Option<String>>,
    /// Settings to change (others stay); `null` sets one back to its default.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Option<serde_json::Value>,
    /// New paper commission per contract.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub commission_per_contract: Option<Decimal>,
}

/// Changes a recorder (its traders inherit the new values they do not override).
#[utoipa::path(
    patch,
    path = "/recorders/{recorder_id}",
    tag = "recorders",
    params(("recorder_id" = uuid::Uuid, Path, description = "The recorder")),
    request_body = RecorderPatch,
    responses(
        (status = 200, description = "The recorder", body = RecorderView),
        (status = 404, description = "No such recorder", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(recorder_id): Path<RecorderId>,
    Json(req): Json<RecorderPatch>,
) -> ApiResult<Json<RecorderView>> {
    let recorders = state.store.recorders();
    let current = recorders.get(caller.owner(), recorder_id).await?;
    if let Some(patch) = &req.settings {
        let settings = merge_settings(&current.settings, patch)?;
        // Every trader's resolved settings must stay valid with the new defaults.
        for t in state
            .store
            .traders()
            .for_recorder(caller.owner(), recorder_id)
            .await?
        {
            settings.resolve(&t.overrides).validate().map_err(|e| {
                ApiError::invalid(
                    format!("settings.{}", e.setting),
                    format!("{} (with the overrides of trader {})", e.reason, t.id),
                )
            })?;
        }
        recorders
            .update_settings(caller.owner(), recorder_id, &settings)
            .await
            .map_err(store_error)?;
    }
    if let Some(c) = req.commission_per_contract
        && c < Decimal::ZERO
    {
        return Err(ApiError::invalid("commission_per_contract", "must be >= 0"));
    }
    let r = recorders
        .update(
            caller.owner(),
            recorder_id,
            RecorderUpdate {
                name: req.name,
                symbol: req.symbol,
                commission_per_contract: req.commission_per_contract,
            },
        )
        .await
        .map_err(store_error)?;
    Ok(Json(view(&state, r).await?))
}

/// Deletes a recorder with its traders, signals, webhook log and paper record (the intents it
/// caused stay in the accounts' history).
#[utoipa::path(
    delete,
    path = "/recorders/{recorder_id}",
    tag = "recorders",
    params(("recorder_id" = uuid::Uuid, Path, description = "The recorder")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such recorder", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(recorder_id): Path<RecorderId>,
) -> ApiResult<StatusCode> {
    state
        .store
        .recorders()
        .delete(caller.owner(), recorder_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A recorder's webhook.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// The URL TradingView posts to.
    pub webhook_url: String,
    /// Paste into the alert's "Message" box.
    pub alert_message: String,
}

impl WebhookView {
    /// The webhook of `token`: its public URL and the alert message to paste.
    fn of(state: &ApiState, token: &jt_store::Secret) -> Self {
        Self {
            webhook_url: state.config.webhook_url(token.expose()),
            alert_message: ALERT_MESSAGE.to_string(),
        }
    }
}

/// Replaces the webhook token: the old URL stops working at once.
#[utoipa::path(
    post,
    path = "/recorders/{recorder_id}/rotate-token",
    tag = "recorders",
    params(("recorder_id" = uuid::Uuid, Path, description = "The recorder")),
    responses(
        (status = 200, description = "The new webhook", body = WebhookView),
        (status = 404, description = "No such recorder", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn rotate_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(recorder_id): Path<RecorderId>,
) -> ApiResult<Json<WebhookView>> {
    let token = state
        .store
        .recorders()
        .rotate_webhook_token(caller.owner(), recorder_id)
        .await?;
    Ok(Json(WebhookView::of(&state, &token)))
}

/// The webhook URL and the ready-to-paste alert message.
#[utoipa::path(
    get,
    path = "/recorders/{recorder_id}/webhook",
    tag = "recorders",
    params(("recorder_id" = uuid::Uuid, Path, description = "The recorder")),
    responses(
        (status = 200, description = "The webhook", body = WebhookView),
        (status = 404, description = "No such recorder", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(recorder_id): Path<RecorderId>,
) -> ApiResult<Json<WebhookView>> {
    let token = state
        .store
        .recorders()
        .webhook_token(caller.owner(), recorder_id)
        .await?;
    Ok(Json(WebhookView::of(&state, &token)))
}
