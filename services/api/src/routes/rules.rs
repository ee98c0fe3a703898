//! Prop-firm rules (DOMAIN §14) through the API: the built-in presets to start from, one rule
//! set per sub-account (read, set from a preset or as a whole, remove), and the operator's news
//! calendar (read by every user, maintained by admins). The rules are enforced elsewhere — the
//! executor before an entry, the risk service while a position is open — from what is stored
//! here; this module only checks that a rule set makes sense before it is stored.
//!
//! The body is the domain's rule set (`jt_domain::propfirm::RuleSet`) with a starting point:
//! a preset named in `preset`, or nothing. Each rule given in the body replaces the starting
//! point's (`null` turns it off); a rule left out keeps the starting point's. So
//! `{"preset": "apex-50k"}` copies the preset, `{"preset": "apex-50k", "daily_loss": {…}}` is
//! the preset with a daily loss limit of the user's, and a rule set as `GET` shows it (every
//! rule present, `null` when off) is stored exactly as sent.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use jt_domain::propfirm::{
    DailyLoss, FlatBy, MaxContracts, NewsBlackout, NewsEvent, ProfitCap, RuleSet, TrailingDrawdown,
    TrailingMode, presets,
};
use jt_domain::settings::{ClockTime, TimeZone};
use jt_store::repo::rules::{AccountRules, StoredNews};
use jt_store::{StoreError, SubAccountId};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::routes::admin::AdminCaller;
use crate::routes::paging;
use crate::state::ApiState;

/// The longest flat-by lead (`flat_by.minutes_before`): half a day; more is a typo, not a rule.
pub const MAX_FLAT_BY_MINUTES: u32 = 720;
/// The longest news window on either side of an event (`news_blackout.minutes_*`).
pub const MAX_NEWS_MINUTES: u32 = 240;
/// The most micros one of the firm's contracts can stand for.
pub const MAX_MICROS_PER_CONTRACT: u32 = 100;
/// The longest news title.
pub const MAX_NEWS_TITLE: usize = 200;

/// How far below its high-water mark an account may fall.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrailingDrawdownBody {
    /// Dollars below the mark (> 0).
    pub amount: Decimal,
    /// How the mark moves: `intraday` (follows equity with open P&L, Apex-style) or
    /// `end_of_day` (follows the balance at each day's close, Topstep-style).
    pub mode: TrailingModeBody,
    /// The floor stops rising at the starting balance plus this (≥ 0; absent: it trails
    /// forever).
    #[serde(default)]
    pub stops_at_offset: Option<Decimal>,
    /// The platform acts this many dollars before the floor (≥ 0, below `amount`).
    #[serde(default)]
    pub buffer: Decimal,
}

/// How a trailing mark moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrailingModeBody {
    /// Follows equity including open P&L.
    Intraday,
    /// Follows the balance at each trading day's close.
    EndOfDay,
}

/// A daily loss limit (realised + open P&L of the trading day).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DailyLossBody {
    /// The firm's limit in dollars (> 0).
    pub amount: Decimal,
    /// The platform acts this many dollars before it (≥ 0, below `amount`).
    #[serde(default)]
    pub buffer: Decimal,
}

/// Contract limits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxContractsBody {
    /// Largest position in the firm's contracts (≥ 1).
    pub per_position: u32,
    /// Largest single order, when the firm limits it separately (≥ 1).
    #[serde(default)]
    pub per_order: Option<u32>,
    /// How many micros make one of the firm's contracts (1 to 100; 10: a micro counts a tenth).
    pub micros_per_contract: u32,
}

/// No position after a clock time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlatByBody {
    /// The firm's deadline, `HH:MM` (24-hour clock).
    #[schema(value_type = String, example = "15:10")]
    pub time: ClockTime,
    /// Its IANA time zone.
    #[schema(value_type = String, example = "America/Chicago")]
    pub time_zone: TimeZone,
    /// Flatten and refuse entries this many minutes before it (0 to 720).
    #[serde(default)]
    pub minutes_before: u32,
}

/// No entries around the calendar's news events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewsBlackoutBody {
    /// Minutes before an event (0 to 240).
    pub minutes_before: u32,
    /// Minutes after (0 to 240).
    pub minutes_after: u32,
    /// Also flatten open positions when a window starts.
    #[serde(default)]
    pub flatten: bool,
}

/// A daily profit cap (consistency rules).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfitCapBody {
    /// Today's profit at which new entries stop, in dollars (> 0).
    pub amount: Decimal,
}

/// A `null` present in the body is "off", an absent field "as the starting point".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A sub-account's prop-firm rules, as sent and as shown. Every rule is optional; see the
/// module documentation for how a body combines with `preset`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"preset": "apex-50k"}))]
pub struct RuleSetBody {
    /// The preset to start from (`GET /rule-presets`); kept as a label of where the values
    /// came from.
    #[serde(default)]
    pub preset: Option<String>,
    /// The account's starting balance (required with a trailing drawdown).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub starting_balance: Option<Option<Decimal>>,
    /// Trailing maximum drawdown.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<TrailingDrawdownBody>)]
    pub trailing_drawdown: Option<Option<TrailingDrawdownBody>>,
    /// Daily loss limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DailyLossBody>)]
    pub daily_loss: Option<Option<DailyLossBody>>,
    /// Contract limits.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<MaxContractsBody>)]
    pub max_contracts: Option<Option<MaxContractsBody>>,
    /// Flat-by time.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<FlatByBody>)]
    pub flat_by: Option<Option<FlatByBody>>,
    /// News blackout windows around the calendar's events.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<NewsBlackoutBody>)]
    pub news_blackout: Option<Option<NewsBlackoutBody>>,
    /// Daily profit cap.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ProfitCapBody>)]
    pub daily_profit_cap: Option<Option<ProfitCapBody>>,
    /// Whether the firm allows automated or copied trading on this account (`true` unless
    /// said otherwise).
    #[serde(default)]
    pub automation_allowed: Option<bool>,
}

fn known_presets() -> String {
    presets()
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn non_negative(field: &str, v: Decimal) -> ApiResult<()> {
    if v < Decimal::ZERO {
        return Err(ApiError::invalid(field, "must be ≥ 0"));
    }
    Ok(())
}

fn positive(field: &str, v: Decimal) -> ApiResult<()> {
    if v <= Decimal::ZERO {
        return Err(ApiError::invalid(field, "must be > 0"));
    }
    Ok(())
}

fn buffer_below(prefix: &str, amount: Decimal, buffer: Decimal) -> ApiResult<()> {
    positive(&format!("{prefix}.amount"), amount)?;
    non_negative(&format!("{prefix}.buffer"), buffer)?;
    if buffer >= amount {
        return Err(ApiError::invalid(
            format!("{prefix}.buffer"),
            format!(
                "must be smaller than the limit ({amount}): the buffer is how far before the \
                 firm's limit the platform acts"
            ),
        ));
    }
    Ok(())
}

fn minutes(field: &str, v: u32, max: u32) -> ApiResult<()> {
    if v > max {
        return Err(ApiError::invalid(field, format!("must be at most {max}")));
    }
    Ok(())
}

impl RuleSetBody {
    /// The rule set this body asks for: its starting point with the given rules in place,
    /// validated.
    ///
    /// # Errors
    /// 422 naming the field and the rule it breaks; an unknown preset names the known ones.
    pub fn resolve(self) -> ApiResult<RuleSet> {
        let mut rules = match self.preset.as_deref().map(str::trim) {
            None => RuleSet::default(),
            Some(name) => presets()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, r)| r)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "preset",
                        format!("unknown preset {name:?}; known: {}", known_presets()),
                    )
                })?,
        };
        // Without a preset `RuleSet::default()` would refuse automation; the domain's own
        // default (serde) allows it, and so does the API.
        if self.preset.is_none() {
            rules.automation_allowed = true;
        }
        if let Some(v) = self.starting_balance {
            rules.starting_balance = v;
        }
        if let Some(v) = self.trailing_drawdown {
            rules.trailing_drawdown = v.map(|t| TrailingDrawdown {
                amount: t.amount,
                mode: match t.mode {
                    TrailingModeBody::Intraday => TrailingMode::Intraday,
                    TrailingModeBody::EndOfDay => TrailingMode::EndOfDay,
                },
                stops_at_offset: t.stops_at_offset,
                buffer: t.buffer,
            });
        }
        if let Some(v) = self.daily_loss {
            rules.daily_loss = v.map(|d| DailyLoss {
                amount: d.amount,
                buffer: d.buffer,
            });
        }
        if let Some(v) = self.max_contracts {
            rules.max_contracts = v.map(|c| MaxContracts {
                per_position: c.per_position,
                per_order: c.per_order,
                micros_per_contract: c.micros_per_contract,
            });
        }
        if let Some(v) = self.flat_by {
            rules.flat_by = v.map(|f| FlatBy {
                time: f.time,
                time_zone: f.time_zone,
                minutes_before: f.minutes_before,
            });
        }
        if let Some(v) = self.news_blackout {
            rules.news_blackout = v.map(|b| NewsBlackout {
                minutes_before: b.minutes_before,
                minutes_after: b.minutes_after,
                flatten: b.flatten,
            });
        }
        if let Some(v) = self.daily_profit_cap {
            rules.daily_profit_cap = v.map(|c| ProfitCap { amount: c.amount });
        }
        if let Some(v) = self.automation_allowed {
            rules.automation_allowed = v;
        }
        validate(&rules)?;
        Ok(rules)
    }
}

/// Whether a rule set makes sense, whatever it came from (a preset is checked too: it is data).
///
/// # Errors
/// 422 naming the first field that breaks a rule.
pub fn validate(r: &RuleSet) -> ApiResult<()> {
    if let Some(b) = r.starting_balance {
        positive("starting_balance", b)?;
    }
    if let Some(t) = &r.trailing_drawdown {
        buffer_below("trailing_drawdown", t.amount, t.buffer)?;
        if let Some(o) = t.stops_at_offset {
            non_negative("trailing_drawdown.stops_at_offset", o)?;
        }
        if r.starting_balance.is_none() {
            return Err(ApiError::invalid(
                "starting_balance",
                "required with a trailing drawdown (the floor is measured from it)",
            ));
        }
    }
    if let Some(d) = &r.daily_loss {
        buffer_below("daily_loss", d.amount, d.buffer)?;
    }
    if let Some(c) = &r.max_contracts {
        if c.per_position < 1 {
            return Err(ApiError::invalid(
                "max_contracts.per_position",
                "must be at least 1",
            ));
        }
        if c.per_order == Some(0) {
            return Err(ApiError::invalid(
                "max_contracts.per_order",
                "must be at least 1 (leave it out when the firm has no per-order limit)",
            ));
        }
        if !(1..=MAX_MICROS_PER_CONTRACT).contains(&c.micros_per_contract) {
            return Err(ApiError::invalid(
                "max_contracts.micros_per_contract",
                format!(
                    "must be between 1 and {MAX_MICROS_PER_CONTRACT} (10: a micro counts a \
                     tenth of a contract; 1: a micro counts as a full one)"
                ),
            ));
        }
    }
    if let Some(f) = &r.flat_by {
        minutes(
            "flat_by.minutes_before",
            f.minutes_before,
            MAX_FLAT_BY_MINUTES,
        )?;
    }
    if let Some(b) = &r.news_blackout {
        minutes(
            "news_blackout.minutes_before",
            b.minutes_before,
            MAX_NEWS_MINUTES,
        )?;
        minutes(
            "news_blackout.minutes_after",
            b.minutes_after,
            MAX_NEWS_MINUTES,
        )?;
    }
    if let Some(c) = &r.daily_profit_cap {
        positive("daily_profit_cap.amount", c.amount)?;
    }
    Ok(())
}

impl From<RuleSet> for RuleSetBody {
    fn from(r: RuleSet) -> Self {
        Self {
            preset: r.preset,
            starting_balance: Some(r.starting_balance),
            trailing_drawdown: Some(r.trailing_drawdown.map(|t| TrailingDrawdownBody {
                amount: t.amount,
                mode: match t.mode {
                    TrailingMode::Intraday => TrailingModeBody::Intraday,
                    TrailingMode::EndOfDay => TrailingModeBody::EndOfDay,
                },
                stops_at_offset: t.stops_at_offset,
                buffer: t.buffer,
            })),
            daily_loss: Some(r.daily_loss.map(|d| DailyLossBody {
                amount: d.amount,
                buffer: d.buffer,
            })),
            max_contracts: Some(r.max_contracts.map(|c| MaxContractsBody {
                per_position: c.per_position,
                per_order: c.per_order,
                micros_per_contract: c.micros_per_contract,
            })),
            flat_by: Some(r.flat_by.map(|f| FlatByBody {
                time: f.time,
                time_zone: f.time_zone,
                minutes_before: f.minutes_before,
            })),
            news_blackout: Some(r.news_blackout.map(|b| NewsBlackoutBody {
                minutes_before: b.minutes_before,
                minutes_after: b.minutes_after,
                flatten: b.flatten,
            })),
            daily_profit_cap: Some(
                r.daily_profit_cap
                    .map(|c| ProfitCapBody { amount: c.amount }),
            ),
            automation_allowed: Some(r.automation_allowed),
        }
    }
}

/// A built-in preset.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PresetView {
    /// Its name (`PUT … {"preset": name}`).
    pub name: String,
    /// Its values: a starting point; check them against the firm's current rules.
    pub rules: RuleSetBody,
}

/// A sub-account's rules as stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RulesView {
    /// The sub-account.
    pub sub_account_id: Uuid,
    /// The rules (every rule present; `null` when off).
    pub rules: RuleSetBody,
    /// The trailing drawdown's high-water mark as the risk service keeps it (absent until
    /// first observed; a change of rules keeps it).
    #[schema(value_type = Option<String>)]
    pub high_water_mark: Option<Decimal>,
    /// The trading day whose close last moved an end-of-day mark.
    pub mark_day: Option<NaiveDate>,
    /// Last change of the rules.
    pub updated_at: DateTime<Utc>,
}

impl From<AccountRules> for RulesView {
    fn from(a: AccountRules) -> Self {
        Self {
            sub_account_id: a.sub_account.0,
            rules: a.rules.into(),
            high_water_mark: a.high_water_mark,
            mark_day: a.mark_day,
            updated_at: a.updated_at,
        }
    }
}

/// The built-in presets: a starting point for a user's rule set. Values as commonly published
/// for these accounts; firms change them — check the firm's current rules.
#[utoipa::path(
    get,
    path = "/rule-presets",
    tag = "rules",
    responses((status = 200, description = "Presets", body = Vec<PresetView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list_presets(_caller: Caller) -> Json<Vec<PresetView>> {
    Json(
        presets()
            .into_iter()
            .map(|(name, rules)| PresetView {
                name: name.to_string(),
                rules: rules.into(),
            })
            .collect(),
    )
}

/// A sub-account's prop-firm rules.
#[utoipa::path(
    get,
    path = "/sub-accounts/{sub_account_id}/rules",
    tag = "rules",
    params(("sub_account_id" = uuid::Uuid, Path, description = "The sub-account")),
    responses(
        (status = 200, description = "The rules", body = RulesView),
        (status = 404, description = "No such sub-account, or it has no rules", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn get_rules(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sub_account_id): Path<SubAccountId>,
) -> ApiResult<Json<RulesView>> {
    // The sub-account first: another user's is "sub-account not found", like every route.
    state
        .store
        .accounts()
        .sub_account(caller.owner(), sub_account_id)
        .await?;
    let rules = state
        .store
        .rules()
        .get(caller.owner(), sub_account_id)
        .await?
        .ok_or_else(no_rules)?;
    Ok(Json(rules.into()))
}

fn no_rules() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "this sub-account has no prop-firm rules; set them with PUT (a full rule set, or \
         {\"preset\": name} from GET /api/v1/rule-presets)",
    )
}

/// Sets a sub-account's prop-firm rules (replacing any): `{"preset": name}` copies a preset,
/// rules given beside it replace the preset's (`null` turns one off), and without `preset`
/// the body is the whole rule set. The trailing mark is kept.
#[utoipa::path(
    put,
    path = "/sub-accounts/{sub_account_id}/rules",
    tag = "rules",
    params(("sub_account_id" = uuid::Uuid, Path, description = "The sub-account")),
    request_body = RuleSetBody,
    responses(
        (status = 200, description = "The rules as stored", body = RulesView),
        (status = 404, description = "No such sub-account", body = ErrorBody),
        (status = 422, description = "A value breaks a rule (field named), or an unknown preset", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn put_rules(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sub_account_id): Path<SubAccountId>,
    Json(req): Json<RuleSetBody>,
) -> ApiResult<Json<RulesView>> {
    state
        .store
        .accounts()
        .sub_account(caller.owner(), sub_account_id)
        .await?;
    let rules = req.resolve()?;
    let stored = state
        .store
        .rules()
        .set(caller.owner(), sub_account_id, &rules)
        .await?;
    Ok(Json(stored.into()))
}

/// Removes a sub-account's prop-firm rules (and its trailing mark).
#[utoipa::path(
    delete,
    path = "/sub-accounts/{sub_account_id}/rules",
    tag = "rules",
    params(("sub_account_id" = uuid::Uuid, Path, description = "The sub-account")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such sub-account, or it has no rules", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete_rules(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sub_account_id): Path<SubAccountId>,
) -> ApiResult<StatusCode> {
    state
        .store
        .accounts()
        .sub_account(caller.owner(), sub_account_id)
        .await?;
    state
        .store
        .rules()
        .clear(caller.owner(), sub_account_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => no_rules(),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// A listed news event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewsView {
    /// Its id (to remove it).
    pub id: Uuid,
    /// When it is released.
    pub at: DateTime<Utc>,
    /// What it is.
    pub title: String,
}

impl From<StoredNews> for NewsView {
    fn from(n: StoredNews) -> Self {
        Self {
            id: n.id,
            at: n.event.at,
            title: n.event.title,
        }
    }
}

/// Which news to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NewsQuery {
    /// Days ahead, 1 to 90 (default 14).
    pub days: Option<u32>,
}

/// The calendar's upcoming news events, in time order: from 240 minutes ago (the longest
/// window after an event, so every window still open is listed) to `days` ahead.
#[utoipa::path(
    get,
    path = "/news",
    tag = "rules",
    params(NewsQuery),
    responses(
        (status = 200, description = "Events", body = Vec<NewsView>),
        (status = 400, description = "Bad query", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list_news(
    State(state): State<ApiState>,
    _caller: Caller,
    Query(q): Query<NewsQuery>,
) -> ApiResult<Json<Vec<NewsView>>> {
    let days = q.days.unwrap_or(14);
    if !(1..=90).contains(&days) {
        return Err(paging::bad_query("days", "must be between 1 and 90"));
    }
    let now = Utc::now();
    let events = state
        .store
        .rules()
        .news_between(
            now - Duration::minutes(i64::from(MAX_NEWS_MINUTES)),
            now + Duration::days(i64::from(days)),
        )
        .await?;
    Ok(Json(events.into_iter().map(NewsView::from).collect()))
}

/// A news event to list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"at": "2026-12-10T19:00:00Z", "title": "FOMC rate decision"}))]
pub struct NewNews {
    /// When it is released (RFC 3339; not more than a day in the past).
    pub at: DateTime<Utc>,
    /// What it is (1 to 200 characters).
    pub title: String,
}

/// Adds an event to the news calendar (admins; audited as `news.add`).
#[utoipa::path(
    post,
    path = "/admin/news",
    tag = "admin",
    request_body = NewNews,
    responses(
        (status = 201, description = "Listed", body = NewsView),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn add_news(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Json(req): Json<NewNews>,
) -> ApiResult<(StatusCode, Json<NewsView>)> {
    let title = req.title.trim();
    if title.is_empty() {
        return Err(ApiError::invalid("title", "must not be empty"));
    }
    if title.chars().count() > MAX_NEWS_TITLE {
        return Err(ApiError::invalid(
            "title",
            format!("at most {MAX_NEWS_TITLE} characters"),
        ));
    }
    // A past event blocks nothing; one more than a day old is a mistyped date.
    if req.at < Utc::now() - Duration::days(1) {
        return Err(ApiError::invalid(
            "at",
            "is more than a day in the past: list upcoming events",
        ));
    }
    let stored = state
        .store
        .rules()
        .add_news(NewsEvent {
            at: req.at,
            title: title.to_string(),
        })
        .await?;
    state
        .store
        .admin(&admin.scope)
        .record(
            "news.add",
            "news_event",
            Some(stored.id.to_string()),
            serde_json::json!({ "at": stored.event.at, "title": stored.event.title }),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// Removes an event from the news calendar (admins; audited as `news.remove`).
#[utoipa::path(
    delete,
    path = "/admin/news/{news_id}",
    tag = "admin",
    params(("news_id" = uuid::Uuid, Path, description = "The event")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete_news(
    State(state): State<ApiState>,
    admin: AdminCaller,
    Path(news_id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.store.rules().remove_news(news_id).await?;
    state
        .store
        .admin(&admin.scope)
        .record(
            "news.remove",
            "news_event",
            Some(news_id.to_string()),
            serde_json::json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_preset_is_valid_and_reads_back_through_the_body_unchanged() {
        for (name, preset) in presets() {
            validate(&preset).unwrap();
            // As GET shows it, PUT back: the same rule set.
            let body: RuleSetBody = serde_json::from_value(
                serde_json::to_value(RuleSetBody::from(preset.clone())).unwrap(),
            )
            .unwrap();
            assert_eq!(body.resolve().unwrap(), preset, "{name}");
            // By name alone: the same again.
            let by_name = RuleSetBody {
                preset: Some(name.to_string()),
                ..RuleSetBody::default()
            };
            assert_eq!(by_name.resolve().unwrap(), preset, "{name}");
        }
    }

    #[test]
    fn an_empty_body_is_no_rules_with_automation_allowed() {
        let r: RuleSetBody = serde_json::from_str("{}").unwrap();
        let r = r.resolve().unwrap();
        assert_eq!(
            r,
            RuleSet {
                automation_allowed: true,
                ..RuleSet::default()
            }
        );
    }
}
