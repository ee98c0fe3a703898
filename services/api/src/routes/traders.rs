//! Traders: a sub-account following a recorder. Every setting can be overridden; answers
//! show each effective value and whether it is inherited from the recorder; a PATCH sets a
//! value, or `null` clears it back to inherited.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use jt_domain::{Settings, SettingsOverrides};
use jt_store::repo::traders::{NewTrader, Trader};
use jt_store::{RecorderId, SubAccountId, TraderId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, parse_value};
use crate::state::ApiState;

/// One setting of a trader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EffectiveSetting {
    /// The value in force.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// `true`: the recorder's value; `false`: set on the trader.
    pub inherited: bool,
}

/// A trader.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TraderView {
    /// Id.
    pub id: Uuid,
    /// The recorder it follows.
    pub recorder_id: Uuid,
    /// The sub-account it trades.
    pub sub_account_id: Uuid,
    /// Whether it executes signals.
    pub enabled: bool,
    /// Every setting with its effective value and where it comes from.
    pub settings: BTreeMap<String, EffectiveSetting>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn view(t: Trader, recorder: &Settings) -> ApiResult<TraderView> {
    let resolved =
        serde_json::to_value(recorder.resolve(&t.overrides)).map_err(ApiError::internal)?;
    let inherited = t.overrides.inherited();
    let settings = Settings::NAMES
        .iter()
        .map(|name| {
            (
                (*name).to_string(),
                EffectiveSetting {
                    value: resolved[*name].clone(),
                    inherited: inherited.contains(name),
                },
            )
        })
        .collect();
    Ok(TraderView {
        id: t.id.0,
        recorder_id: t.recorder.0,
        sub_account_id: t.sub_account.0,
        enabled: t.enabled,
        settings,
        created_at: t.created_at,
        updated_at: t.updated_at,
    })
}

/// Overrides from a JSON object (`null`: inherit), merged over `base`, checked against the
/// recorder's settings so the resolved values are valid.
fn merge_overrides(
    base: &SettingsOverrides,
    patch: &serde_json::Value,
    recorder: &Settings,
) -> ApiResult<SettingsOverrides> {
    let serde_json::Value::Object(patch) = patch else {
        return Err(ApiError::invalid(
            "settings",
            "must be an object of setting names",
        ));
    };
    let mut merged = serde_json::to_value(base).map_err(ApiError::internal)?;
    for (name, value) in patch {
        if !Settings::NAMES.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                format!("settings.{name}"),
                "unknown setting",
            ));
        }
        merged[name.as_str()] = value.clone();
    }
    let overrides: SettingsOverrides = parse_value(merged).map_err(|mut e| {
        if let Some(f) = e.field.take() {
            e.field = Some(format!("settings.{f}"));
            e.message = format!("settings.{}", e.message);
        }
        e
    })?;
    recorder.resolve(&overrides).validate()?;
    Ok(overrides)
}

/// A new trader.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "recorder_id": "00000000-0000-0000-0000-000000000000",
    "sub_account_id": "00000000-0000-0000-0000-000000000000",
    "settings": {"multiplier": "2"}
}))]
pub struct NewTraderRequest {
    /// The recorder to follow.
    pub recorder_id: Uuid,
    /// The sub-account to trade.
    pub sub_account_id: Uuid,
    /// Execute signals (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overrides of the recorder's settings; absent ones are inherited.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// The caller's traders.
#[utoipa::path(
    get,
    path = "/traders",
    tag = "traders",
    responses((status = 200, description = "Traders", body = Vec<TraderView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TraderView>>> {
    let recorders: std::collections::HashMap<RecorderId, Settings> = state
        .store
        .recorders()
        .list(caller.owner())
        .await?
        .into_iter()
        .map(|r| (r.id, r.settings))
        .collect();
    let mut out = Vec::new();
    for t in state.store.traders().list(caller.owner()).await? {
        let Some(settings) = recorders.get(&t.recorder) else {
            continue; // deleted between the two reads
        };
        out.push(view(t, settings)?);
    }
    Ok(Json(out))
}

/// Links a sub-account to a recorder.
#[utoipa::path(
    post,
    path = "/traders",
    tag = "traders",
    request_body = NewTraderRequest,
    responses(
        (status = 201, description = "Created", body = TraderView),
        (status = 404, description = "No such recorder or sub-account", body = ErrorBody),
        (status = 409, description = "The sub-account already follows the recorder", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<NewTraderRequest>,
) -> ApiResult<(StatusCode, Json<TraderView>)> {
    let recorder = state
        .store
        .recorders()
        .get(caller.owner(), RecorderId(req.recorder_id))
        .await
        .map_err(|e| ApiError::from(e).field("recorder_id"))?;
    state
        .store
        .accounts()
        .sub_account(caller.owner(), SubAccountId(req.sub_account_id))
        .await
        .map_err(|e| ApiError::from(e).field("sub_account_id"))?;
    let overrides = match &req.settings {
        Some(v) => merge_overrides(&SettingsOverrides::default(), v, &recorder.settings)?,
        None => SettingsOverrides::default(),
    };
    let t = state
        .store
        .traders()
        .create(
            caller.owner(),
            NewTrader {
                recorder: recorder.id,
                sub_account: SubAccountId(req.sub_account_id),
                enabled: req.enabled,
                overrides,
            },
        )
        .await
        .map_err(|e| match e {
            jt_store::StoreError::Conflict { .. } => {
                ApiError::conflict("this sub-account already follows this recorder")
                    .field("sub_account_id")
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(view(t, &recorder.settings)?)))
}

async fn load(state: &ApiState, caller: &Caller, id: TraderId) -> ApiResult<(Trader, Settings)> {
    let t = state.store.traders().get(caller.owner(), id).await?;
    let r = state
        .store
        .recorders()
        .get(caller.owner(), t.recorder)
        .await?;
    Ok((t, r.settings))
}

/// One trader with its effective settings.
#[utoipa::path(
    get,
    path = "/traders/{trader_id}",
    tag = "traders",
    params(("trader_id" = uuid::Uuid, Path, description = "The trader")),
    responses(
        (status = 200, description = "The trader", body = TraderView),
        (status = 404, description = "No such trader", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(trader_id): Path<TraderId>,
) -> ApiResult<Json<TraderView>> {
    let (t, s) = load(&state, &caller, trader_id).await?;
    Ok(Json(view(t, &s)?))
}

/// Changes to a trader.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true, "settings": {"multiplier": "3", "sl_amount": null}}))]
pub struct TraderPatch {
    /// Execute signals or not.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Settings to set on the trader; `null` clears one back to the recorder's value.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Option<serde_json::Value>,
}

/// Changes a trader: set a setting, or `null` to inherit it again.
#[utoipa::path(
    patch,
    path = "/traders/{trader_id}",
    tag = "traders",
    params(("trader_id" = uuid::Uuid, Path, description = "The trader")),
    request_body = TraderPatch,
    responses(
        (status = 200, description = "The trader", body = TraderView),
        (status = 404, description = "No such trader", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(trader_id): Path<TraderId>,
    Json(req): Json<TraderPatch>,
) -> ApiResult<Json<TraderView>> {
    let (t, recorder) = load(&state, &caller, trader_id).await?;
    if let Some(patch) = &req.settings {
        let overrides = merge_overrides(&t.overrides, patch, &recorder)?;
        state
            .store
            .traders()
            .update_overrides(caller.owner(), trader_id, &overrides)
            .await?;
    }
    if let Some(enabled) = req.enabled {
        state
            .store
            .traders()
            .set_enabled(caller.owner(), trader_id, enabled)
            .await?;
    }
    let (t, s) = load(&state, &caller, trader_id).await?;
    Ok(Json(view(t, &s)?))
}

/// Unlinks a trader (its history stays with the sub-account).
#[utoipa::path(
    delete,
    path = "/traders/{trader_id}",
    tag = "traders",
    params(("trader_id" = uuid::Uuid, Path, description = "The trader")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such trader", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(trader_id): Path<TraderId>,
) -> ApiResult<StatusCode> {
    state
        .store
        .traders()
        .delete(caller.owner(), trader_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
