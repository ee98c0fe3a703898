//! Status: for each of the caller's broker logins, whether the platform can use it
//! (authentication), whether its event connection is up (the connection manager's record in
//! the lease bucket), and per sub-account the open positions with their protection — the
//! page that answers "is every position protected?" — and the day's P&L with the distance to
//! each risk limit, as the risk monitor shares them (`jt_risk_status`, with `as_of`), and the
//! kill switch that refuses its entries, if one is engaged.
//!
//! Positions and working orders are the store's, kept by the positions service from the
//! brokers' events and its reconciliation; a position is `unprotected` when no working stop
//! on the closing side covers it.

use axum::extract::State;
use chrono::{DateTime, Utc};
use jt_domain::Side;
use jt_messages::login_status::{LinkState, read_status};
use jt_messages::risk_status::{self, RiskSnapshot};
use jt_store::repo::broker::{BrokerOrder, BrokerPosition};
use jt_store::repo::risk::KillState;
use jt_store::{BrokerOrderType, OrderRole, SubAccountId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiResult, Json};
use crate::routes::views::{AuthStatus, BrokerAccountView, dec, word};
use crate::state::ApiState;

/// A login's event connection, as the connection manager last wrote it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionView {
    /// `connected`, `connecting`, `disconnected`; `not_held` when no connection manager holds
    /// the login (none running, or the login is new and not yet picked up); `unknown` when the
    /// record could not be read.
    pub state: String,
    /// Since when.
    pub since: Option<DateTime<Utc>>,
    /// The last broker event received.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Connections lost or restarted since the current holder took the login.
    pub reconnects: u64,
    /// Why it is not connected (or last disconnected).
    pub reason: Option<String>,
    /// The connection manager replica holding it.
    pub holder: Option<String>,
}

/// An open position and what protects it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PositionView {
    /// The contract.
    pub contract: String,
    /// Signed quantity: positive long, negative short.
    pub net_quantity: i64,
    /// Average entry price.
    pub average_price: Option<String>,
    /// Contracts covered by working take-profit orders.
    pub take_profit_quantity: u32,
    /// Contracts covered by working stops.
    pub stop_quantity: u32,
    /// No working stop covers the whole position.
    pub unprotected: bool,
    /// When the broker last reported it.
    pub updated_at: DateTime<Utc>,
}

/// A sub-account's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubAccountStatus {
    /// Id.
    pub id: Uuid,
    /// Its name at the broker.
    pub name: String,
    /// The user's switch.
    pub enabled: bool,
    /// Open positions (flat ones left out).
    pub positions: Vec<PositionView>,
    /// Working orders.
    pub working_orders: usize,
    /// The day's P&L and the distance to every risk limit, as the risk monitor last shared
    /// them; `null` when the account is not watched (no max daily loss, no prop-firm rules) or
    /// the monitor has not shared figures yet.
    pub risk: Option<RiskView>,
    /// The engaged kill switch that refuses new entries on this account (the widest one when
    /// several are: the platform's, then the user's, then the account's own); `null` when none
    /// is engaged.
    pub kill_switch: Option<KillSwitchView>,
}

/// An engaged kill switch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KillSwitchView {
    /// `global` (the operator's, released only by an admin), `user` (every account of the
    /// caller: `PUT /kill`) or `account` (this one: `PUT /sub-accounts/{id}/kill`).
    pub scope: String,
    /// Why, as given when it was engaged.
    pub reason: Option<String>,
    /// When it was engaged.
    pub since: DateTime<Utc>,
}

impl KillSwitchView {
    fn of(state: &KillState) -> Option<Self> {
        [&state.global, &state.user, &state.account]
            .into_iter()
            .flatten()
            .find(|k| k.engaged)
            .map(|k| Self {
                scope: word(&k.scope),
                reason: k.reason.clone(),
                since: k.changed_at,
            })
    }
}

/// How far one prop-firm limit is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleDistanceView {
    /// The rule (`trailing_drawdown`, `daily_loss`, `daily_profit_cap`, …).
    pub rule: String,
    /// Where the platform acts (the firm's limit moved in by the safety buffer).
    pub acts_at: String,
    /// The firm's limit.
    pub firm_limit: String,
    /// The value now.
    pub current: String,
    /// What is left before the platform acts (≤ 0: it acts).
    pub remaining: String,
}

/// A sub-account's day P&L and risk limits (`docs/risk.md`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RiskView {
    /// The trading day (CME, from 17:00 Chicago).
    pub trading_day: chrono::NaiveDate,
    /// Realised P&L of the day, dollars.
    pub realized_pnl: Option<String>,
    /// Open P&L, dollars (`null` while unknown).
    pub open_pnl: Option<String>,
    /// Where the open P&L came from: `quotes`, `broker`, `flat`, `unknown`.
    pub open_source: Option<String>,
    /// The max daily loss, dollars.
    pub max_daily_loss: Option<String>,
    /// What is left before the max daily loss (≤ 0: breached).
    pub max_daily_loss_distance: Option<String>,
    /// Cash balance.
    pub balance: Option<String>,
    /// The trailing drawdown's high-water mark.
    pub high_water_mark: Option<String>,
    /// The prop-firm preset the rules started from.
    pub rules_preset: Option<String>,
    /// The distance to every prop-firm limit.
    pub rules: Vec<RuleDistanceView>,
    /// Locked for the trading day (a limit was reached): new entries are refused.
    pub breached: bool,
    /// When the figures last changed.
    pub changed_at: DateTime<Utc>,
    /// When the risk monitor last confirmed them.
    pub as_of: DateTime<Utc>,
    /// `as_of` is older than 30 s: the monitor is not running or not sharing; do not trust
    /// the figures as current.
    pub stale: bool,
}

impl RiskView {
    fn from_snapshot(s: RiskSnapshot, now: DateTime<Utc>) -> Self {
        Self {
            stale: s.is_stale(now),
            trading_day: s.trading_day,
            realized_pnl: s.realized_pnl.map(dec),
            open_pnl: s.open_pnl.map(dec),
            open_source: s.open_source,
            max_daily_loss: s.max_daily_loss.map(dec),
            max_daily_loss_distance: s.max_daily_loss_distance.map(dec),
            balance: s.balance.map(dec),
            high_water_mark: s.high_water_mark.map(dec),
            rules_preset: s.rules_preset,
            rules: s
                .rules
                .into_iter()
                .map(|d| RuleDistanceView {
                    rule: d.rule.name().to_owned(),
                    acts_at: dec(d.acts_at),
                    firm_limit: dec(d.firm_limit),
                    current: dec(d.current),
                    remaining: dec(d.remaining),
                })
                .collect(),
            breached: s.breached,
            changed_at: s.changed_at,
            as_of: s.as_of,
        }
    }
}

/// One broker login's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginStatusView {
    /// The broker account.
    pub account_id: Uuid,
    /// Its label.
    pub label: String,
    /// The broker.
    pub broker: String,
    /// Whether the platform trades on it.
    pub enabled: bool,
    /// Authentication (`needs_reauth` means the user must enter credentials again).
    pub auth: AuthStatus,
    /// The event connection.
    pub connection: ConnectionView,
    /// Its active sub-accounts.
    pub sub_accounts: Vec<SubAccountStatus>,
}

/// The caller's logins, their connections and their open positions with protection.
#[utoipa::path(
    get,
    path = "/status",
    tag = "status",
    responses((status = 200, description = "Status per login", body = Vec<LoginStatusView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn status(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<LoginStatusView>>> {
    let accounts = state.store.accounts();
    let broker = state.store.broker();
    let kill = state.store.risk();
    let mut out = Vec::new();
    for a in accounts.list(caller.owner()).await? {
        let connection = connection(&state, a.id).await;
        let mut subs = Vec::new();
        for s in accounts.sub_accounts(caller.owner(), a.id).await? {
            if !s.active {
                continue;
            }
            let orders = broker.open_orders(caller.owner(), s.id, None).await?;
            let positions = broker
                .positions(caller.owner(), s.id)
                .await?
                .into_iter()
                .filter(|p| p.net_quantity != 0)
                .map(|p| position(p, &orders))
                .collect();
            let risk = risk_of(&state, caller.owner(), s.id).await;
            let kill_switch = KillSwitchView::of(&kill.kill_state_of(&s).await?);
            subs.push(SubAccountStatus {
                id: s.id.0,
                name: s.name,
                enabled: s.enabled,
                positions,
                working_orders: orders.len(),
                risk,
                kill_switch,
            });
        }
        let view = BrokerAccountView::from(a);
        out.push(LoginStatusView {
            account_id: view.id,
            label: view.label,
            broker: view.broker,
            enabled: view.enabled,
            auth: view.auth,
            connection,
            sub_accounts: subs,
        });
    }
    Ok(Json(out))
}

/// The risk monitor's figures of `sub`; `None` when there are none or the bucket cannot be
/// read (the rest of the page still answers).
async fn risk_of(state: &ApiState, owner: jt_store::UserId, sub: SubAccountId) -> Option<RiskView> {
    match risk_status::read(&state.bus, sub).await {
        // The key is the caller's own sub-account; the owner is checked again all the same.
        Ok(Some(s)) if s.owner == owner => Some(RiskView::from_snapshot(s, Utc::now())),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "risk figures not readable");
            None
        }
    }
}

async fn connection(state: &ApiState, login: jt_store::BrokerAccountId) -> ConnectionView {
    match read_status(&state.bus, login).await {
        Ok(Some(s)) => ConnectionView {
            state: match s.state {
                LinkState::Connected => "connected",
                LinkState::Connecting => "connecting",
                LinkState::Disconnected => "disconnected",
            }
            .into(),
            since: Some(s.since),
            last_event_at: s.last_event_at,
            reconnects: s.reconnects,
            reason: s.reason,
            holder: Some(s.owner),
        },
        Ok(None) => ConnectionView::without("not_held"),
        Err(e) => {
            tracing::debug!(error = %e, "login status not readable");
            ConnectionView::without("unknown")
        }
    }
}

impl ConnectionView {
    fn without(state: &str) -> Self {
        Self {
            state: state.into(),
            since: None,
            last_event_at: None,
            reconnects: 0,
            reason: None,
            holder: None,
        }
    }
}

/// What covers a position: working orders of its contract on the closing side. An order's
/// role is the platform's when it placed it; an order placed elsewhere (by hand, another
/// tool) is classified by its type — a limit takes profit, a stop of any kind protects.
fn position(p: BrokerPosition, orders: &[BrokerOrder]) -> PositionView {
    let closing = if p.net_quantity > 0 {
        Side::Sell
    } else {
        Side::Buy
    };
    let (mut tp, mut stop) = (0u32, 0u32);
    for o in orders
        .iter()
        .filter(|o| o.contract == p.contract && o.side == closing)
    {
        let open = o.quantity.saturating_sub(o.filled_quantity);
        let is_stop = match o.role {
            Some(OrderRole::Stop) => true,
            Some(OrderRole::TakeProfit) => false,
            _ => matches!(
                o.order_type,
                BrokerOrderType::Stop | BrokerOrderType::StopLimit | BrokerOrderType::TrailingStop
            ),
        };
        let is_tp = matches!(o.role, Some(OrderRole::TakeProfit))
            || (o.role.is_none() && o.order_type == BrokerOrderType::Limit);
        if is_stop {
            stop = stop.saturating_add(open);
        } else if is_tp {
            tp = tp.saturating_add(open);
        }
    }
    let size = p.net_quantity.unsigned_abs();
    PositionView {
        unprotected: u64::from(stop) < size,
        contract: p.contract,
        net_quantity: p.net_quantity,
        average_price: p.average_price.map(dec),
        take_profit_quantity: tp,
        stop_quantity: stop,
        updated_at: p.broker_updated_at,
    }
}
