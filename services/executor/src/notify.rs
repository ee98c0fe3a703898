//! What the executor tells an intent's owner: `execution_failed` when an intent ends failed or
//! rejected, queued on the owner's notification channels that subscribe to it (one row per
//! channel, de-duplicated by the intent: a redelivered message queues nothing new). Queuing
//! never fails or holds the execution: an error is logged, and the intent's outcome is already
//! recorded.

use jt_messages::IntentMessage;
use jt_store::{IntentStatus, Store};
use serde_json::json;

/// The event kind.
pub const EXECUTION_FAILED: &str = "execution_failed";

/// Queues the notification of an intent that ended `status` (failed or rejected).
pub async fn execution_failed(
    store: &Store,
    msg: &IntentMessage,
    status: IntentStatus,
    summary: &str,
) {
    let what = if status == IntentStatus::Rejected {
        "rejected by the broker"
    } else {
        "failed"
    };
    let symbol = msg.symbol().unwrap_or("the account");
    let payload = json!({
        "title": format!("Order {what} on {symbol}"),
        "intent_id": msg.intent_id,
        "sub_account_id": msg.sub_account_id,
        "signal_id": msg.signal_id(),
        "source": msg.source().as_str(),
        "symbol": msg.symbol(),
        "status": if status == IntentStatus::Rejected { "rejected" } else { "failed" },
        "reason": summary,
    });
    let key = format!("{EXECUTION_FAILED}:{}", msg.intent_id);
    if let Err(e) = store
        .notifications()
        .enqueue(msg.owner_id, EXECUTION_FAILED, &key, &payload)
        .await
    {
        tracing::warn!(intent = %msg.intent_id, error = %e, "the execution-failed notification could not be queued");
    }
}
