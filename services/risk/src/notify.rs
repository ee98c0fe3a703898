//! What the risk service tells an account's owner: queued on the owner's notification channels
//! (the store's delivery log, one row per channel and event, delivered at least once by the
//! notifier). Queuing never blocks or fails an action: a notification that cannot be queued is
//! logged, and the flatten it reports has already been published.

use jt_store::Store;
use jt_store::repo::risk::Breach;
use serde_json::json;

use crate::monitor::MAX_LOSS_EVENT;
use crate::watch::Watched;

/// Queues the max-loss notification of `breach` (de-duplicated by the breach).
pub async fn breach(store: &Store, w: &Watched, breach: &Breach) {
    let payload = json!({
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
        "action": "working orders cancelled, every position flattened, new entries refused until the next trading day",
    });
    let key = format!("{MAX_LOSS_EVENT}:{}", breach.id);
    match store
        .notifications()
        .enqueue(w.sub.owner, MAX_LOSS_EVENT, &key, &payload)
        .await
    {
        Ok(n) => {
            tracing::info!(breach = %breach.id, deliveries = n, "max-loss notification queued")
        }
        Err(e) => {
            tracing::warn!(breach = %breach.id, error = %e, "the max-loss notification could not be queued")
        }
    }
}
