//! Controls: a manual trade on a sub-account, flatten one or all, and kill switches. A trade or
//! a flatten is published on ORDERS as an intent of its source (manual, control) and carried
//! out by the executor like every other intent — never a broker call from here. A kill switch
//! is recorded (with its engagement) and carried out by the risk service, which publishes its
//! flattens (`docs/risk.md`, "Kill switches"); the answer names them.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use jt_bus::{Envelope, MessageId};
use jt_domain::Direction;
use jt_domain::alert::{ExitLevel, StopOverride};
use jt_domain::settings::PriceUnits;
use jt_messages::{ControlCause, ControlIntent, IntentMessage, ManualIntent, ManualTrade};
use jt_store::KillScope;
use jt_store::repo::accounts::{BrokerAccount, SubAccount};
use jt_store::repo::risk::KillEngagement;
use jt_store::{SubAccountId, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::state::ApiState;

/// The header that makes a manual trade idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Entry or exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ManualAction {
    /// Open or add to a position at market.
    Entry,
    /// Take contracts off the position at market (all of it without `qty`).
    Exit,
}

/// Long or short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectionInput {
    /// Long.
    Long,
    /// Short.
    Short,
}

/// A manual trade.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"symbol": "MNQ1!", "action": "entry", "direction": "long", "qty": 2,
                          "take_profit_ticks": "20", "stop_loss_ticks": "30"}))]
pub struct ManualOrder {
    /// Symbol: a continuous ticker (`MNQ1!`) or a contract (`MNQZ5`).
    pub symbol: String,
    /// Entry or exit.
    pub action: ManualAction,
    /// Entries: long or short.
    #[serde(default)]
    pub direction: Option<DirectionInput>,
    /// Contracts: required for an entry; for an exit, absent means the whole position.
    #[serde(default)]
    pub qty: Option<u32>,
    /// Entries: take-profit distance in ticks.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub take_profit_ticks: Option<Decimal>,
    /// Entries: take-profit price (instead of ticks).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub take_profit_price: Option<Decimal>,
    /// Entries: stop distance in ticks.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub stop_loss_ticks: Option<Decimal>,
    /// Entries: stop price (instead of ticks).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub stop_loss_price: Option<Decimal>,
    /// Entries with a price level: the price the user saw (what a price level is measured
    /// from for a market entry).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub reference_price: Option<Decimal>,
}

fn level(
    ticks: Option<Decimal>,
    price: Option<Decimal>,
    names: (&str, &str),
) -> ApiResult<Option<ExitLevel>> {
    match (ticks, price) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            names.1,
            format!("give either {} or {}, not both", names.0, names.1),
        )),
        (Some(t), None) if t <= Decimal::ZERO => Err(ApiError::invalid(names.0, "must be > 0")),
        (Some(t), None) => Ok(Some(ExitLevel::Distance {
            value: t,
            units: Some(PriceUnits::Ticks),
        })),
        (None, Some(p)) if p <= Decimal::ZERO => Err(ApiError::invalid(names.1, "must be > 0")),
        (None, Some(p)) => Ok(Some(ExitLevel::Price { price: p })),
        (None, None) => Ok(None),
    }
}

impl ManualOrder {
    fn trade(&self) -> ApiResult<ManualTrade> {
        if self.symbol.trim().is_empty() {
            return Err(ApiError::invalid("symbol", "must not be empty"));
        }
        if self.qty == Some(0) {
            return Err(ApiError::invalid("qty", "must be at least 1"));
        }
        match self.action {
            ManualAction::Exit => {
                let extra = [
                    ("direction", self.direction.is_some()),
                    ("take_profit_ticks", self.take_profit_ticks.is_some()),
                    ("take_profit_price", self.take_profit_price.is_some()),
                    ("stop_loss_ticks", self.stop_loss_ticks.is_some()),
                    ("stop_loss_price", self.stop_loss_price.is_some()),
                ];
                if let Some((f, _)) = extra.iter().find(|(_, set)| *set) {
                    return Err(ApiError::invalid(*f, "only for entries"));
                }
                Ok(match self.qty {
                    Some(q) => ManualTrade::exit(q),
                    None => ManualTrade::exit_all(),
                })
            }
            ManualAction::Entry => {
                let direction = match self.direction {
                    Some(DirectionInput::Long) => Direction::Long,
                    Some(DirectionInput::Short) => Direction::Short,
                    None => return Err(ApiError::invalid("direction", "required for an entry")),
                };
                let qty = self
                    .qty
                    .ok_or_else(|| ApiError::invalid("qty", "required for an entry"))?;
                let tp = level(
                    self.take_profit_ticks,
                    self.take_profit_price,
                    ("take_profit_ticks", "take_profit_price"),
                )?;
                let sl = level(
                    self.stop_loss_ticks,
                    self.stop_loss_price,
                    ("stop_loss_ticks", "stop_loss_price"),
                )?
                .map(|level| StopOverride {
                    level,
                    stop_type: None,
                });
                let priced = self.take_profit_price.is_some() || self.stop_loss_price.is_some();
                if priced && self.reference_price.is_none() {
                    return Err(ApiError::invalid(
                        "reference_price",
                        "required with a take-profit or stop price (the price you saw)",
                    ));
                }
                Ok(ManualTrade::market_entry(direction, qty).with_exits(
                    tp,
                    sl,
                    self.reference_price,
                ))
            }
        }
    }
}

/// What was queued.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Queued {
    /// The intents published (one per sub-account); follow them under `/intents/{intent_id}`.
    pub intent_ids: Vec<Uuid>,
    /// Whether the bus had already seen an intent (a repeated Idempotency-Key: nothing new).
    pub duplicate: bool,
}

async fn publish(state: &ApiState, intent: IntentMessage) -> ApiResult<bool> {
    let id = MessageId::new(intent.message_id()).map_err(ApiError::internal)?;
    let receipt = state
        .bus
        // A manual trade or flatten continues the request's trace into its executions.
        .publish(
            &Envelope::new(id, intent).with_trace(jt_bus::TraceContext::from_pairs(
                &jt_runtime::telemetry::inject_context(),
            )),
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "publishing an intent failed");
            ApiError::unavailable(
                "the order queue did not confirm the request; send it again (with the same \
                 Idempotency-Key for a trade)",
            )
        })?;
    Ok(receipt.duplicate)
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<String> {
    let v = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "idempotency-key: the header is required (any unique string per trade, e.g. a \
                 UUID): the same key never trades twice",
            )
            .field("idempotency-key")
        })?
        .to_str()
        .map_err(|_| ApiError::invalid("idempotency-key", "must be printable ASCII"))?
        .trim()
        .to_string();
    if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "idempotency-key",
            "1 to 128 printable ASCII characters without spaces",
        ));
    }
    Ok(v)
}

/// Places a manual trade on a sub-account through the executor. The `Idempotency-Key`
/// header is required: a request repeated with the same key (for the same sub-account) is
/// the same trade and is carried out once.
#[utoipa::path(
    post,
    path = "/sub-accounts/{sub_account_id}/orders",
    tag = "controls",
    params(
        ("sub_account_id" = uuid::Uuid, Path, description = "The sub-account"),
        ("Idempotency-Key" = String, Header, description = "Unique per trade; a repeat trades once"),
    ),
    request_body = ManualOrder,
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 400, description = "The Idempotency-Key header is missing", body = ErrorBody),
        (status = 404, description = "No such sub-account", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
        (status = 503, description = "The order queue is unavailable; retry with the same key", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn manual_order(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sub_account_id): Path<SubAccountId>,
    headers: HeaderMap,
    Json(req): Json<ManualOrder>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    let (sub, account) = state
        .store
        .accounts()
        .sub_account_with_account(caller.owner(), sub_account_id)
        .await?;
    let key = idempotency_key(&headers)?;
    let trade = req.trade()?;
    let intent = IntentMessage::manual(
        caller.owner(),
        sub.id,
        account.id,
        Utc::now(),
        ManualIntent::new(key, caller.owner(), req.symbol.trim(), trade),
    );
    let intent_id = intent.intent_id.0;
    let duplicate = publish(&state, intent).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            intent_ids: vec![intent_id],
            duplicate,
        }),
    ))
}

/// Why a control was asked for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "stepping away"}))]
pub struct ControlRequest {
    /// Shown in the history.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Publishes one flatten intent per sub-account, each owned by the sub-account's owner and
/// naming who asked (`requested_by`: the user, or the admin of a global kill).
pub(crate) async fn flatten(
    state: &ApiState,
    requested_by: UserId,
    subs: &[(SubAccount, BrokerAccount)],
    reason: Option<String>,
) -> ApiResult<Queued> {
    let request = Uuid::now_v7();
    let mut ids = Vec::new();
    let mut duplicate = false;
    for (sub, account) in subs {
        let intent = IntentMessage::control(
            sub.owner,
            sub.id,
            account.id,
            Utc::now(),
            ControlIntent::flatten_account(ControlCause::api(
                request,
                requested_by,
                reason.clone(),
            )),
        );
        ids.push(intent.intent_id.0);
        duplicate |= publish(state, intent).await?;
    }
    Ok(Queued {
        intent_ids: ids,
        duplicate,
    })
}

async fn all_subs(
    state: &ApiState,
    caller: &Caller,
) -> ApiResult<Vec<(SubAccount, BrokerAccount)>> {
    let accounts = state.store.accounts();
    let mut out = Vec::new();
    for a in accounts.list(caller.owner()).await? {
        for s in accounts.sub_accounts(caller.owner(), a.id).await? {
            if s.active {
                out.push((s, a.clone()));
            }
        }
    }
    Ok(out)
}

/// Flattens one sub-account: every working order cancelled, every position closed.
#[utoipa::path(
    post,
    path = "/sub-accounts/{sub_account_id}/flatten",
    tag = "controls",
    params(("sub_account_id" = uuid::Uuid, Path, description = "The sub-account")),
    request_body = ControlRequest,
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 404, description = "No such sub-account", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn flatten_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sub_account_id): Path<SubAccountId>,
    Json(req): Json<ControlRequest>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    let pair = state
        .store
        .accounts()
        .sub_account_with_account(caller.owner(), sub_account_id)
        .await?;
    let q = flatten(&state, caller.owner(), &[pair], req.reason).await?;
    Ok((StatusCode::ACCEPTED, Json(q)))
}

/// Flattens every sub-account of the caller.
#[utoipa::path(
    post,
    path = "/flatten",
    tag = "controls",
    request_body = ControlRequest,
    responses((status = 202, description = "Queued, one intent per sub-account", body = Queued)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn flatten_all(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<ControlRequest>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    let subs = all_subs(&state, &caller).await?;
    let q = flatten(&state, caller.owner(), &subs, req.reason).await?;
    Ok((StatusCode::ACCEPTED, Json(q)))
}

/// A kill switch change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"engaged": true, "reason": "news"}))]
pub struct KillRequest {
    /// `true`: stop (flatten now, refuse new entries until released); `false`: release.
    pub engaged: bool,
    /// Shown in the history.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The kill switch after a change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KillAnswer {
    /// Whether it is engaged.
    pub engaged: bool,
    /// When engaged: the flatten intents the risk service publishes, one per sub-account the
    /// switch covers (it carries the switch out: cancel, flatten). Empty on a release.
    pub flatten: Queued,
}

impl Queued {
    fn nothing() -> Self {
        Self {
            intent_ids: Vec::new(),
            duplicate: false,
        }
    }
}

/// A new engagement of a kill switch asked for by `requested_by`: its id is this request's,
/// and its flattens name the request as their cause (`ControlCause::Api`), as a flatten asked
/// for directly would.
pub(crate) fn engagement(requested_by: UserId, reason: Option<String>) -> KillEngagement {
    let request = Uuid::now_v7();
    let cause = ControlCause::api(
        request,
        requested_by,
        reason.or_else(|| Some("kill switch".into())),
    );
    KillEngagement {
        id: request,
        // A plain enum of ids and strings: serialising it cannot fail.
        cause: serde_json::to_value(&cause).unwrap_or_default(),
    }
}

/// The flatten intents the risk service publishes for `engagement` (one per sub-account the
/// switch covers, `Risk::kill_targets`): their ids derive from the cause and the sub-account,
/// so the ids answered here are the ones to follow under `/intents/{id}` — 404 until the risk
/// service has published them and the executor has taken them.
pub(crate) async fn announced(
    state: &ApiState,
    engagement: &KillEngagement,
    scope: KillScope,
    user: Option<UserId>,
    sub: Option<SubAccountId>,
) -> ApiResult<Queued> {
    let cause: ControlCause =
        serde_json::from_value(engagement.cause.clone()).map_err(ApiError::internal)?;
    let targets = state.store.risk().kill_targets(scope, user, sub).await?;
    Ok(Queued {
        intent_ids: targets
            .iter()
            .map(|s| {
                IntentMessage::control(
                    s.owner,
                    s.id,
                    s.broker_account,
                    Utc::now(),
                    ControlIntent::flatten_account(cause.clone()),
                )
                .intent_id
                .0
            })
            .collect(),
        duplicate: false,
    })
}

/// Queues the `kill_switch` notification of a change (each change is an event of its own,
/// keyed by a request id). Never fails the change: an error is logged.
pub(crate) async fn notify_kill(
    state: &ApiState,
    owner: UserId,
    scope: &str,
    sub: Option<&SubAccount>,
    req: &KillRequest,
) {
    let what = if req.engaged { "engaged" } else { "released" };
    let title = match (scope, sub) {
        ("global", _) => format!("Platform-wide kill switch {what}"),
        (_, Some(s)) => format!("Kill switch {what} on {}", s.name),
        (_, None) => format!("Kill switch {what} on every account"),
    };
    let payload = serde_json::json!({
        "title": title,
        "scope": scope,
        "engaged": req.engaged,
        "sub_account_id": sub.map(|s| s.id),
        "account": sub.map(|s| s.name.clone()),
        "reason": req.reason,
        "action": if req.engaged {
            "working orders cancelled, positions flattened, new entries refused until released"
        } else {
            "new entries allowed again"
        },
    });
    let key = format!("kill_switch:{scope}:{what}:{}", Uuid::now_v7());
    if let Err(e) = state
        .store
        .notifications()
        .enqueue(owner, "kill_switch", &key, &payload)
        .await
    {
        tracing::warn!(error = %e, "the kill switch notification could not be queued");
    }
}

/// Engages (flattening it) or releases the kill switch of one sub-account.
#[utoipa::path(
    put,
    path = "/sub-accounts/{sub_account_id}/kill",
    tag = "controls",
    params(("sub_account_id" = uuid::Uuid, Path, description = "The sub-account")),
    request_body = KillRequest,
    responses(
        (status = 200, description = "Changed", body = KillAnswer),
        (status = 404, description = "No such sub-account", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn kill_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sub_account_id): Path<SubAccountId>,
    Json(req): Json<KillRequest>,
) -> ApiResult<Json<KillAnswer>> {
    let pair = state
        .store
        .accounts()
        .sub_account_with_account(caller.owner(), sub_account_id)
        .await?;
    let flatten = if req.engaged {
        let engagement = engagement(caller.owner(), req.reason.clone());
        state
            .store
            .risk()
            .engage_account_kill(
                caller.owner(),
                sub_account_id,
                req.reason.as_deref(),
                &engagement,
            )
            .await?;
        announced(
            &state,
            &engagement,
            KillScope::Account,
            None,
            Some(sub_account_id),
        )
        .await?
    } else {
        state
            .store
            .risk()
            .set_account_kill(caller.owner(), sub_account_id, false, req.reason.as_deref())
            .await?;
        Queued::nothing()
    };
    notify_kill(&state, caller.owner(), "account", Some(&pair.0), &req).await;
    Ok(Json(KillAnswer {
        engaged: req.engaged,
        flatten,
    }))
}

/// Engages (flattening every sub-account) or releases the caller's kill switch.
#[utoipa::path(
    put,
    path = "/kill",
    tag = "controls",
    request_body = KillRequest,
    responses((status = 200, description = "Changed", body = KillAnswer)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn kill_all(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<KillRequest>,
) -> ApiResult<Json<KillAnswer>> {
    let flatten = if req.engaged {
        let engagement = engagement(caller.owner(), req.reason.clone());
        state
            .store
            .risk()
            .engage_user_kill(caller.owner(), req.reason.as_deref(), &engagement)
            .await?;
        announced(
            &state,
            &engagement,
            KillScope::User,
            Some(caller.owner()),
            None,
        )
        .await?
    } else {
        state
            .store
            .risk()
            .set_user_kill(caller.owner(), false, req.reason.as_deref())
            .await?;
        Queued::nothing()
    };
    notify_kill(&state, caller.owner(), "user", None, &req).await;
    Ok(Json(KillAnswer {
        engaged: req.engaged,
        flatten,
    }))
}
