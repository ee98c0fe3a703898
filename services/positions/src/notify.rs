//! What the positions service tells an account's owner, queued on the owner's notification
//! channels that subscribe to the event (one row per channel and event; the notifier delivers):
//!
//! - `unprotected_position`: the reconciler found an open position without the take-profit or
//!   stop it should have and published its repair. Keyed by the repair's cause (sub-account,
//!   contract, position state, what is missing): every pass and replica finds the same gap, and
//!   it is told once.
//! - `protection_repaired`: a repair intent of that contract succeeded and the reconciler now
//!   finds the position protected. Keyed by the repair intent.
//! - `needs_reauth`: the broker refused the login's credentials and the account is marked.
//!   Keyed by the account and the day: told once a day while it waits.
//!
//! Queuing never fails or holds the reconciler or the token refresh: an error is logged.

use jt_store::{BrokerAccountId, IntentId, Store, SubAccountId, UserId};
use serde_json::{Value, json};

async fn enqueue(store: &Store, owner: UserId, kind: &str, key: &str, payload: &Value) {
    if let Err(e) = store
        .notifications()
        .enqueue(owner, kind, key, payload)
        .await
    {
        tracing::warn!(event = kind, %key, error = %e, "a notification could not be queued");
    }
}

/// An unprotected position whose repair was published (`cause`: the repair's identity).
#[allow(clippy::too_many_arguments)]
pub async fn unprotected(
    store: &Store,
    owner: UserId,
    sub: SubAccountId,
    account: &str,
    contract: &str,
    net_qty: i64,
    take_profit: bool,
    stop: bool,
    cause: &str,
) {
    let missing: Vec<&str> = [("take_profit", take_profit), ("stop", stop)]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(n, _)| *n)
        .collect();
    let payload = json!({
        "title": format!("Position on {contract} in {account} is unprotected: repairing"),
        "sub_account_id": sub,
        "account": account,
        "contract": contract,
        "net_quantity": net_qty,
        "missing": missing,
        "action": "a repair placing the missing orders was sent",
    });
    let key = format!("unprotected_position:{cause}");
    enqueue(store, owner, "unprotected_position", &key, &payload).await;
}

/// A position protected again by the repair intent `repair`.
pub async fn repaired(
    store: &Store,
    owner: UserId,
    sub: SubAccountId,
    account: &str,
    contract: &str,
    repair: IntentId,
) {
    let payload = json!({
        "title": format!("Position on {contract} in {account} is protected again"),
        "sub_account_id": sub,
        "account": account,
        "contract": contract,
        "repair_intent_id": repair,
    });
    let key = format!("protection_repaired:{repair}");
    enqueue(store, owner, "protection_repaired", &key, &payload).await;
}

/// A login whose credentials the broker refused.
pub async fn needs_reauth(
    store: &Store,
    owner: UserId,
    account: BrokerAccountId,
    label: &str,
    broker: &str,
    reason: &str,
) {
    let day = chrono::Utc::now().date_naive();
    let payload = json!({
        "title": format!("{label} needs you to log in again"),
        "broker_account_id": account,
        "account": label,
        "broker": broker,
        "reason": reason,
        "action": "orders on this account fail until its credentials are entered again",
    });
    let key = format!("needs_reauth:{account}:{day}");
    enqueue(store, owner, "needs_reauth", &key, &payload).await;
}
