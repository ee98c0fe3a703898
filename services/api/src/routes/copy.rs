//! Copy trading (DOMAIN §10): leaders, their followers, each follower's contract mappings
//! (NQ → MNQ ×10) and the copy log. The copier service reads these records; the API only
//! keeps them, so a change here takes effect at the copier's next leader event.
//!
//! Rules enforced here, each answered with the field and the rule: an account never follows
//! itself; a sub-account leads at most once; a multiplier and a mapping ratio are greater
//! than zero; a position cap is at least 1; loss limits are positive amounts.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use jt_store::repo::copy::{
    ContractMapping, CopyLogEntry, CopyLogQuery, Follower, FollowerSettings, Leader,
};
use jt_store::{CopyLogId, CopyStatus, FollowerId, LeaderId, StoreError, SubAccountId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::routes::paging;
use crate::routes::views::{Page, dec, word};
use crate::state::ApiState;

/// A leader: a sub-account whose trades are copied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeaderView {
    /// Id.
    pub id: Uuid,
    /// The leader's sub-account.
    pub sub_account_id: Uuid,
    /// Name.
    pub label: Option<String>,
    /// Whether copying is on.
    pub enabled: bool,
    /// Copy the leader's own fills at the broker (automatic mode), not only manual trades
    /// placed through the API.
    pub auto_copy: bool,
}

impl From<Leader> for LeaderView {
    fn from(l: Leader) -> Self {
        Self {
            id: l.id.0,
            sub_account_id: l.sub_account.0,
            label: l.label,
            enabled: l.enabled,
            auto_copy: l.auto_copy,
        }
    }
}

/// A follower: a sub-account that copies a leader.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FollowerView {
    /// Id.
    pub id: Uuid,
    /// Its leader.
    pub leader_id: Uuid,
    /// Its sub-account.
    pub sub_account_id: Uuid,
    /// Name.
    pub label: Option<String>,
    /// Quantity multiplier (exact decimal).
    pub multiplier: String,
    /// Cap on the follower's position in contracts; absent: no cap.
    pub max_position_size: Option<u32>,
    /// Whether copying to it is on.
    pub enabled: bool,
    /// Copy the leader's take-profit.
    pub copy_tp: bool,
    /// Copy the leader's stop.
    pub copy_sl: bool,
    /// Daily loss limit in dollars (exact decimal); reaching it locks the follower out.
    pub daily_loss_limit: Option<String>,
    /// Maximum drawdown in dollars (exact decimal); reaching it locks the follower out.
    pub max_drawdown: Option<String>,
    /// Locked out by one of its risk limits: copies to it are skipped with the reason.
    pub locked_out: bool,
    /// Why it is locked out.
    pub lockout_reason: Option<String>,
    /// A position closed by hand at the follower's broker stays flat: auto-sync logs the
    /// drift once and does not re-enter it; the leader's next entry from flat is copied
    /// again. Off (the default): the follower is re-synced to the leader.
    pub closed_by_hand_stays_flat: bool,
    /// Its contract mappings.
    pub mappings: Vec<MappingView>,
}

fn follower_view(f: Follower, mappings: Vec<ContractMapping>) -> FollowerView {
    FollowerView {
        id: f.id.0,
        leader_id: f.leader.0,
        sub_account_id: f.sub_account.0,
        label: f.label,
        multiplier: dec(f.multiplier),
        max_position_size: f.max_position_size,
        enabled: f.enabled,
        copy_tp: f.copy_tp,
        copy_sl: f.copy_sl,
        daily_loss_limit: f.daily_loss_limit.map(dec),
        max_drawdown: f.max_drawdown.map(dec),
        locked_out: f.locked_out,
        lockout_reason: f.lockout_reason,
        closed_by_hand_stays_flat: f.closed_by_hand_stays_flat,
        mappings: mappings.into_iter().map(MappingView::from).collect(),
    }
}

/// A contract mapping: the leader's root traded as another root on the follower, with a
/// quantity factor (NQ → MNQ ×10).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingView {
    /// The leader's contract root (`NQ`).
    pub source_root: String,
    /// The follower's contract root (`MNQ`).
    pub target_root: String,
    /// Quantity factor (exact decimal, > 0): follower contracts per leader contract.
    #[schema(value_type = String)]
    pub quantity_ratio: Decimal,
}

impl From<ContractMapping> for MappingView {
    fn from(m: ContractMapping) -> Self {
        Self {
            source_root: m.source_root,
            target_root: m.target_root,
            quantity_ratio: m.quantity_ratio.normalize(),
        }
    }
}

/// A new leader.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "sub_account_id": "00000000-0000-0000-0000-000000000000",
    "label": "Main account",
    "auto_copy": true
}))]
pub struct NewLeaderRequest {
    /// The sub-account whose trades are copied.
    pub sub_account_id: Uuid,
    /// Name.
    #[serde(default)]
    pub label: Option<String>,
    /// Copy its own fills at the broker too (default true).
    #[serde(default = "yes")]
    pub auto_copy: bool,
}

fn yes() -> bool {
    true
}

/// Changes to a leader.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false}))]
pub struct LeaderPatch {
    /// Copying on or off.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Automatic mode on or off (takes effect at the copier's next event, no restart).
    #[serde(default)]
    pub auto_copy: Option<bool>,
}

/// A follower's settings: on create every absent field takes its default; on PATCH every
/// absent field keeps its value, and `null` clears an optional one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "sub_account_id": "00000000-0000-0000-0000-000000000000",
    "multiplier": "2",
    "max_position_size": 10,
    "mappings": [{"source_root": "NQ", "target_root": "MNQ", "quantity_ratio": "10"}]
}))]
pub struct FollowerRequest {
    /// The sub-account that copies (create only).
    #[serde(default)]
    pub sub_account_id: Option<Uuid>,
    /// Name.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Option<String>>,
    /// Quantity multiplier, > 0 (default 1).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub multiplier: Option<Decimal>,
    /// Position cap in contracts, ≥ 1; `null`: no cap.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<u32>)]
    pub max_position_size: Option<Option<u32>>,
    /// Copying on or off (default on).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Copy the leader's take-profit (default true).
    #[serde(default)]
    pub copy_tp: Option<bool>,
    /// Copy the leader's stop (default true).
    #[serde(default)]
    pub copy_sl: Option<bool>,
    /// Daily loss limit in dollars, > 0; `null`: none.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub daily_loss_limit: Option<Option<Decimal>>,
    /// Maximum drawdown in dollars, > 0; `null`: none.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub max_drawdown: Option<Option<Decimal>>,
    /// A position closed by hand at the broker stays flat instead of being re-synced to the
    /// leader (default false).
    #[serde(default)]
    pub closed_by_hand_stays_flat: Option<bool>,
    /// Contract mappings (replace the follower's whole list when given).
    #[serde(default)]
    pub mappings: Option<Vec<MappingView>>,
}

/// A present field (even `null`) is `Some`; an absent one stays `None` through `default`.
fn patch<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl FollowerRequest {
    fn apply(&self, mut s: FollowerSettings) -> FollowerSettings {
        if let Some(v) = &self.label {
            s.label.clone_from(v);
        }
        if let Some(v) = self.multiplier {
            s.multiplier = v;
        }
        if let Some(v) = self.max_position_size {
            s.max_position_size = v;
        }
        if let Some(v) = self.enabled {
            s.enabled = v;
        }
        if let Some(v) = self.copy_tp {
            s.copy_tp = v;
        }
        if let Some(v) = self.copy_sl {
            s.copy_sl = v;
        }
        if let Some(v) = self.daily_loss_limit {
            s.daily_loss_limit = v;
        }
        if let Some(v) = self.max_drawdown {
            s.max_drawdown = v;
        }
        if let Some(v) = self.closed_by_hand_stays_flat {
            s.closed_by_hand_stays_flat = v;
        }
        s
    }

    fn mappings(&self) -> ApiResult<Option<Vec<ContractMapping>>> {
        let Some(list) = &self.mappings else {
            return Ok(None);
        };
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(list.len());
        for (i, m) in list.iter().enumerate() {
            let source = m.source_root.trim().to_uppercase();
            let target = m.target_root.trim().to_uppercase();
            for (name, root) in [("source_root", &source), ("target_root", &target)] {
                if root.is_empty()
                    || root.len() > 16
                    || !root.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(ApiError::invalid(
                        format!("mappings[{i}].{name}"),
                        "must be a contract root of 1 to 16 letters or digits (NQ, MNQ)",
                    ));
                }
            }
            if !seen.insert(source.clone()) {
                return Err(ApiError::invalid(
                    format!("mappings[{i}].source_root"),
                    "each source root may be mapped once",
                ));
            }
            if m.quantity_ratio <= Decimal::ZERO {
                return Err(ApiError::invalid(
                    format!("mappings[{i}].quantity_ratio"),
                    "must be greater than 0",
                ));
            }
            out.push(ContractMapping {
                source_root: source,
                target_root: target,
                quantity_ratio: m.quantity_ratio,
            });
        }
        Ok(Some(out))
    }
}

fn settings_of(f: &Follower) -> FollowerSettings {
    FollowerSettings {
        label: f.label.clone(),
        multiplier: f.multiplier,
        max_position_size: f.max_position_size,
        enabled: f.enabled,
        copy_tp: f.copy_tp,
        copy_sl: f.copy_sl,
        daily_loss_limit: f.daily_loss_limit,
        max_drawdown: f.max_drawdown,
        closed_by_hand_stays_flat: f.closed_by_hand_stays_flat,
    }
}

/// The caller's leaders.
#[utoipa::path(
    get,
    path = "/leaders",
    tag = "copy",
    responses((status = 200, description = "Leaders", body = Vec<LeaderView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list_leaders(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<LeaderView>>> {
    let leaders = state.store.copying().leaders(caller.owner()).await?;
    Ok(Json(leaders.into_iter().map(LeaderView::from).collect()))
}

/// Makes one of the caller's sub-accounts a leader.
#[utoipa::path(
    post,
    path = "/leaders",
    tag = "copy",
    request_body = NewLeaderRequest,
    responses(
        (status = 201, description = "Created", body = LeaderView),
        (status = 404, description = "No such sub-account", body = ErrorBody),
        (status = 409, description = "The sub-account already leads", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn create_leader(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<NewLeaderRequest>,
) -> ApiResult<(StatusCode, Json<LeaderView>)> {
    let l = state
        .store
        .copying()
        .create_leader(
            caller.owner(),
            SubAccountId(req.sub_account_id),
            req.label.as_deref(),
            req.auto_copy,
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ApiError::conflict("this sub-account already leads").field("sub_account_id")
            }
            other => ApiError::from(other).field("sub_account_id"),
        })?;
    Ok((StatusCode::CREATED, Json(l.into())))
}

/// One leader.
#[utoipa::path(
    get,
    path = "/leaders/{leader_id}",
    tag = "copy",
    params(("leader_id" = uuid::Uuid, Path, description = "The leader")),
    responses(
        (status = 200, description = "The leader", body = LeaderView),
        (status = 404, description = "No such leader", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn get_leader(
    State(state): State<ApiState>,
    caller: Caller,
    Path(leader_id): Path<LeaderId>,
) -> ApiResult<Json<LeaderView>> {
    let l = state
        .store
        .copying()
        .leader(caller.owner(), leader_id)
        .await?;
    Ok(Json(l.into()))
}

/// Turns a leader, or its automatic mode, on or off.
#[utoipa::path(
    patch,
    path = "/leaders/{leader_id}",
    tag = "copy",
    params(("leader_id" = uuid::Uuid, Path, description = "The leader")),
    request_body = LeaderPatch,
    responses(
        (status = 200, description = "The leader", body = LeaderView),
        (status = 404, description = "No such leader", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn update_leader(
    State(state): State<ApiState>,
    caller: Caller,
    Path(leader_id): Path<LeaderId>,
    Json(req): Json<LeaderPatch>,
) -> ApiResult<Json<LeaderView>> {
    let copying = state.store.copying();
    let l = copying.leader(caller.owner(), leader_id).await?;
    copying
        .update_leader(
            caller.owner(),
            leader_id,
            req.enabled.unwrap_or(l.enabled),
            req.auto_copy.unwrap_or(l.auto_copy),
        )
        .await?;
    Ok(Json(
        copying.leader(caller.owner(), leader_id).await?.into(),
    ))
}

/// Removes a leader with its followers and their mappings (the copy log stays).
#[utoipa::path(
    delete,
    path = "/leaders/{leader_id}",
    tag = "copy",
    params(("leader_id" = uuid::Uuid, Path, description = "The leader")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such leader", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete_leader(
    State(state): State<ApiState>,
    caller: Caller,
    Path(leader_id): Path<LeaderId>,
) -> ApiResult<StatusCode> {
    state
        .store
        .copying()
        .delete_leader(caller.owner(), leader_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A leader's followers, each with its mappings.
#[utoipa::path(
    get,
    path = "/leaders/{leader_id}/followers",
    tag = "copy",
    params(("leader_id" = uuid::Uuid, Path, description = "The leader")),
    responses(
        (status = 200, description = "Followers", body = Vec<FollowerView>),
        (status = 404, description = "No such leader", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list_followers(
    State(state): State<ApiState>,
    caller: Caller,
    Path(leader_id): Path<LeaderId>,
) -> ApiResult<Json<Vec<FollowerView>>> {
    let copying = state.store.copying();
    // A foreign or missing leader is a 404, not an empty list.
    copying.leader(caller.owner(), leader_id).await?;
    let mut out = Vec::new();
    for f in copying.followers(caller.owner(), leader_id).await? {
        let mappings = copying.mappings(caller.owner(), f.id).await?;
        out.push(follower_view(f, mappings));
    }
    Ok(Json(out))
}

/// Adds a follower to a leader.
#[utoipa::path(
    post,
    path = "/leaders/{leader_id}/followers",
    tag = "copy",
    params(("leader_id" = uuid::Uuid, Path, description = "The leader")),
    request_body = FollowerRequest,
    responses(
        (status = 201, description = "Created", body = FollowerView),
        (status = 404, description = "No such leader or sub-account", body = ErrorBody),
        (status = 409, description = "The sub-account already follows this leader", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn add_follower(
    State(state): State<ApiState>,
    caller: Caller,
    Path(leader_id): Path<LeaderId>,
    Json(req): Json<FollowerRequest>,
) -> ApiResult<(StatusCode, Json<FollowerView>)> {
    let Some(sub_account) = req.sub_account_id else {
        return Err(ApiError::invalid("sub_account_id", "is required"));
    };
    let mappings = req.mappings()?;
    let copying = state.store.copying();
    copying.leader(caller.owner(), leader_id).await?;
    crate::routes::plans::enforce(&state, &caller, crate::routes::plans::Limit::Followers).await?;
    let f = copying
        .add_follower(
            caller.owner(),
            leader_id,
            SubAccountId(sub_account),
            req.apply(FollowerSettings::default()),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ApiError::conflict("this sub-account already follows this leader")
                    .field("sub_account_id")
            }
            StoreError::NotFound { .. } => ApiError::from(e).field("sub_account_id"),
            other => other.into(),
        })?;
    if let Some(m) = &mappings {
        copying.set_mappings(caller.owner(), f.id, m).await?;
    }
    let mappings = copying.mappings(caller.owner(), f.id).await?;
    Ok((StatusCode::CREATED, Json(follower_view(f, mappings))))
}

/// One follower with its mappings.
#[utoipa::path(
    get,
    path = "/followers/{follower_id}",
    tag = "copy",
    params(("follower_id" = uuid::Uuid, Path, description = "The follower")),
    responses(
        (status = 200, description = "The follower", body = FollowerView),
        (status = 404, description = "No such follower", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn get_follower(
    State(state): State<ApiState>,
    caller: Caller,
    Path(follower_id): Path<FollowerId>,
) -> ApiResult<Json<FollowerView>> {
    let copying = state.store.copying();
    let f = copying.follower(caller.owner(), follower_id).await?;
    let mappings = copying.mappings(caller.owner(), follower_id).await?;
    Ok(Json(follower_view(f, mappings)))
}

/// Changes a follower's settings (absent fields keep their value; `mappings`, when given,
/// replaces the whole list).
#[utoipa::path(
    patch,
    path = "/followers/{follower_id}",
    tag = "copy",
    params(("follower_id" = uuid::Uuid, Path, description = "The follower")),
    request_body = FollowerRequest,
    responses(
        (status = 200, description = "The follower", body = FollowerView),
        (status = 404, description = "No such follower", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn update_follower(
    State(state): State<ApiState>,
    caller: Caller,
    Path(follower_id): Path<FollowerId>,
    Json(req): Json<FollowerRequest>,
) -> ApiResult<Json<FollowerView>> {
    let copying = state.store.copying();
    let f = copying.follower(caller.owner(), follower_id).await?;
    if req
        .sub_account_id
        .is_some_and(|s| SubAccountId(s) != f.sub_account)
    {
        return Err(ApiError::invalid(
            "sub_account_id",
            "cannot be changed: remove the follower and add the other sub-account",
        ));
    }
    let mappings = req.mappings()?;
    copying
        .update_follower(caller.owner(), follower_id, req.apply(settings_of(&f)))
        .await?;
    if let Some(m) = &mappings {
        copying.set_mappings(caller.owner(), follower_id, m).await?;
    }
    let f = copying.follower(caller.owner(), follower_id).await?;
    let mappings = copying.mappings(caller.owner(), follower_id).await?;
    Ok(Json(follower_view(f, mappings)))
}

/// Removes a follower (its copy log stays).
#[utoipa::path(
    delete,
    path = "/followers/{follower_id}",
    tag = "copy",
    params(("follower_id" = uuid::Uuid, Path, description = "The follower")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such follower", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete_follower(
    State(state): State<ApiState>,
    caller: Caller,
    Path(follower_id): Path<FollowerId>,
) -> ApiResult<StatusCode> {
    state
        .store
        .copying()
        .remove_follower(caller.owner(), follower_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a follower's lockout and starts its equity peak afresh: its `max_drawdown` is then
/// measured from the equity the risk service sees next (a drawdown lock lasts until this call;
/// a daily loss lock would also lift by itself at the next trading day).
#[utoipa::path(
    post,
    path = "/followers/{follower_id}/unlock",
    tag = "copy",
    params(("follower_id" = uuid::Uuid, Path, description = "The follower")),
    responses(
        (status = 200, description = "The follower, unlocked", body = FollowerView),
        (status = 404, description = "No such follower", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn unlock_follower(
    State(state): State<ApiState>,
    caller: Caller,
    Path(follower_id): Path<FollowerId>,
) -> ApiResult<Json<FollowerView>> {
    state
        .store
        .risk()
        .unlock_follower(caller.owner(), follower_id)
        .await?;
    let copying = state.store.copying();
    let f = copying.follower(caller.owner(), follower_id).await?;
    let mappings = copying.mappings(caller.owner(), follower_id).await?;
    Ok(Json(follower_view(f, mappings)))
}

/// One copy: a leader event and what it did to one follower.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CopyLogView {
    /// Id.
    pub id: Uuid,
    /// The leader (absent once removed).
    pub leader_id: Option<Uuid>,
    /// The follower (absent once removed).
    pub follower_id: Option<Uuid>,
    /// `manual` (a trade through the API), `auto` (the leader's own fill) or `sync`
    /// (auto-sync's correction of a follower that drifted).
    pub trigger: String,
    /// The leader's fill that caused it.
    pub leader_fill_id: Option<String>,
    /// The leader's order.
    pub leader_order_id: Option<String>,
    /// The follower's intent (see `/intents/{intent_id}` for its timeline).
    pub follower_intent_id: Option<Uuid>,
    /// The follower's broker order.
    pub follower_order_id: Option<String>,
    /// The leader's symbol.
    pub leader_symbol: String,
    /// The follower's symbol (after mapping).
    pub follower_symbol: String,
    /// The leader's side.
    pub leader_side: Option<String>,
    /// The follower's side.
    pub follower_side: Option<String>,
    /// The leader's quantity.
    pub leader_quantity: u32,
    /// The follower's quantity.
    pub follower_quantity: u32,
    /// The leader's price.
    pub leader_price: Option<String>,
    /// The follower's price.
    pub follower_price: Option<String>,
    /// `pending`, `accepted`, `filled`, `skipped` or `error`.
    pub status: String,
    /// Why it was skipped, or the error.
    pub error: Option<String>,
    /// Leader fill seen → follower order acknowledged, in milliseconds.
    pub latency_ms: Option<i64>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<CopyLogEntry> for CopyLogView {
    fn from(c: CopyLogEntry) -> Self {
        Self {
            id: c.id.0,
            leader_id: c.leader.map(|l| l.0),
            follower_id: c.follower.map(|f| f.0),
            trigger: word(&c.trigger),
            leader_fill_id: c.leader_fill_id,
            leader_order_id: c.leader_order_id,
            follower_intent_id: c.follower_intent.map(|i| i.0),
            follower_order_id: c.follower_order_id,
            leader_symbol: c.leader_symbol,
            follower_symbol: c.follower_symbol,
            leader_side: c.leader_side.as_ref().map(word),
            follower_side: c.follower_side.as_ref().map(word),
            leader_quantity: c.leader_quantity,
            follower_quantity: c.follower_quantity,
            leader_price: c.leader_price.map(dec),
            follower_price: c.follower_price.map(dec),
            status: word(&c.status),
            error: c.error,
            latency_ms: c.latency_ms,
            created_at: c.created_at,
        }
    }
}

/// Which copies to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CopyLogFilter {
    /// Only this leader's copies.
    pub leader_id: Option<Uuid>,
    /// Only this follower's copies.
    pub follower_id: Option<Uuid>,
    /// Only this state: pending, accepted, filled, skipped, error.
    pub status: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
}

/// The copy log, newest first: one row per follower per leader event, with quantities,
/// prices, status, error and latency.
#[utoipa::path(
    get,
    path = "/copy-log",
    tag = "copy",
    params(CopyLogFilter),
    responses(
        (status = 200, description = "A page of the copy log", body = Page<CopyLogView>),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
        (status = 404, description = "No such leader or follower", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn copy_log(
    State(state): State<ApiState>,
    caller: Caller,
    Query(f): Query<CopyLogFilter>,
) -> ApiResult<Json<Page<CopyLogView>>> {
    let limit = paging::limit(f.limit, 50, 200)?;
    let status = paging::one_of::<CopyStatus>(
        "status",
        f.status.as_deref(),
        "pending, accepted, filled, skipped, error",
    )?;
    let copying = state.store.copying();
    // Filtering by another user's leader or follower is a 404, as for a missing one.
    if let Some(l) = f.leader_id {
        copying.leader(caller.owner(), LeaderId(l)).await?;
    }
    if let Some(fo) = f.follower_id {
        copying.follower(caller.owner(), FollowerId(fo)).await?;
    }
    let page = copying
        .copy_log(
            caller.owner(),
            &CopyLogQuery {
                leader: f.leader_id.map(LeaderId),
                follower: f.follower_id.map(FollowerId),
                status,
                after: f
                    .cursor
                    .as_deref()
                    .map(paging::decode_cursor)
                    .transpose()?
                    .map(|(t, id)| (t, CopyLogId(id))),
                limit,
            },
        )
        .await?;
    let next_cursor = (page.len() as u64 == limit)
        .then(|| {
            page.last()
                .map(|c| paging::encode_cursor(c.created_at, c.id.0))
        })
        .flatten();
    Ok(Json(Page {
        items: page.into_iter().map(CopyLogView::from).collect(),
        next_cursor,
    }))
}
