//! What the risk service tells an account's owner: queued on the owner's notification channels
//! (the store's delivery log, one row per channel and event, delivered at least once by the
//! notifier). Queuing never blocks or fails an action: a notification that cannot be queued is
//! logged, and the flatten it reports has already been published.

use chrono::NaiveDate;
use jt_domain::propfirm::Distance;
use jt_store::Store;
use jt_store::entity::BreachKind;
use jt_store::repo::risk::Breach;
use serde_json::json;

use crate::monitor::{MAX_LOSS_EVENT, RULE_BREACH_EVENT, RULE_WARNING_EVENT, breach_rule};
use crate::watch::Watched;

/// Queues the notification of `breach` (de-duplicated by the breach): `max_loss` for the max
/// daily loss, `rule_breach` for a prop-firm rule.
pub async fn breach(store: &Store, w: &Watched, breach: &Breach) {
    let action = "working orders cancelled, every position flattened, new entries refused until the next trading day";
    let (event, payload) = if breach.kind == BreachKind::FollowerDailyLoss {
        (
            MAX_LOSS_EVENT,
            json!({
                "event": MAX_LOSS_EVENT,
                "title": format!("Follower daily loss limit reached on {}: flattened, copies stopped", w.sub.name),
                "sub_account_id": w.sub.id,
                "account": w.sub.name,
                "broker": w.login.broker,
                "trading_day": breach.trading_day,
                "limit": breach.loss_limit,
                "rule": "follower_daily_loss",
                "realized_pnl": breach.realized_pnl,
                "unrealized_pnl": breach.unrealized_pnl,
                "total_pnl": breach.realized_pnl + breach.unrealized_pnl,
                "breached_at": breach.breached_at,
                "action": "working orders cancelled, every position flattened, the follower locked out: no copies until the next trading day",
            }),
        )
    } else if breach.kind == BreachKind::FollowerMaxDrawdown {
        (
            MAX_LOSS_EVENT,
            json!({
                "event": MAX_LOSS_EVENT,
                "title": format!("Follower max drawdown reached on {}: flattened, copies stopped", w.sub.name),
                "sub_account_id": w.sub.id,
                "account": w.sub.name,
                "broker": w.login.broker,
                "trading_day": breach.trading_day,
                "limit": breach.loss_limit,
                "rule": "follower_max_drawdown",
                "reason": breach.details,
                "realized_pnl": breach.realized_pnl,
                "unrealized_pnl": breach.unrealized_pnl,
                "breached_at": breach.breached_at,
                "action": "working orders cancelled, every position flattened, the follower locked out: no copies until its owner unlocks it",
            }),
        )
    } else if breach.kind == BreachKind::PropFirmRule {
        let rule = breach_rule(breach);
        (
            RULE_BREACH_EVENT,
            json!({
                "event": RULE_BREACH_EVENT,
                "title": format!("Prop-firm rule {rule} reached on {}: flattened", w.sub.name),
                "sub_account_id": w.sub.id,
                "account": w.sub.name,
                "broker": w.login.broker,
                "trading_day": breach.trading_day,
                "rule": rule,
                "reason": breach.details,
                "acts_at": breach.loss_limit,
                "realized_pnl": breach.realized_pnl,
                "unrealized_pnl": breach.unrealized_pnl,
                "breached_at": breach.breached_at,
                "action": action,
            }),
        )
    } else {
        (
            MAX_LOSS_EVENT,
            json!({
                "event": MAX_LOSS_EVENT,
                "title": format!("Max daily loss reached on {}: flattened", w.sub.name),
                "sub_account_id": w.sub.id,
                "account": w.sub.name,
                "broker": w.login.broker,
                "trading_day": breach.trading_day,
                "limit": breach.loss_limit,
                "realized_pnl": breach.realized_pnl,
                "unrealized_pnl": breach.unrealized_pnl,
                "total_pnl": breach.realized_pnl + breach.unrealized_pnl,
                "breached_at": breach.breached_at,
                "action": action,
            }),
        )
    };
    let key = format!("{event}:{}", breach.id);
    match store
        .notifications()
        .enqueue(w.sub.owner, event, &key, &payload)
        .await
    {
        Ok(n) => {
            tracing::info!(breach = %breach.id, event, deliveries = n, "breach notification queued")
        }
        Err(e) => {
            tracing::warn!(breach = %breach.id, event, error = %e, "the breach notification could not be queued")
        }
    }
}

/// Queues a `rule_warning`: a prop-firm limit is within the warning share of its buffer. One
/// per account, rule and trading day (the key), however often the monitor sees it.
pub async fn warning(store: &Store, w: &Watched, day: NaiveDate, d: &Distance) {
    let rule = d.rule.name();
    let payload = json!({
        "event": RULE_WARNING_EVENT,
        "title": format!("{} is close to its prop-firm limit {rule}", w.sub.name),
        "sub_account_id": w.sub.id,
        "account": w.sub.name,
        "broker": w.login.broker,
        "trading_day": day,
        "rule": rule,
        "current": d.current,
        "acts_at": d.acts_at,
        "firm_limit": d.firm_limit,
        "remaining": d.remaining,
        "action": "none yet: the account is flattened and locked if it reaches acts_at",
    });
    let key = format!("{RULE_WARNING_EVENT}:{}:{day}:{rule}", w.sub.id);
    match store
        .notifications()
        .enqueue(w.sub.owner, RULE_WARNING_EVENT, &key, &payload)
        .await
    {
        Ok(n) => {
            tracing::info!(sub_account = %w.sub.id, rule, deliveries = n, "rule warning queued")
        }
        Err(e) => {
            tracing::warn!(sub_account = %w.sub.id, rule, error = %e, "the rule warning could not be queued")
        }
    }
}
