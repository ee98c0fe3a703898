//! Kill switches, carried out (issue #23): every engagement the API or a kill alert recorded
//! (`kill_switches.engagement_id` without `executed_at`) becomes one flatten intent on ORDERS
//! per sub-account the switch covers — the executor cancels its working orders and closes its
//! positions, serially with the account's other orders — then is marked executed.
//!
//! Exactly once. The intents' ids derive from the engagement's cause and the sub-account, so a
//! pass that published and died before marking publishes the same ids again and the executor
//! runs them once (JetStream's duplicate window, then the intents' idempotency key); a marked
//! engagement is never read again, so a restarted service does not flatten twice. Refusing
//! new entries is not done here: the executor reads the switch itself, from the moment it is
//! written.
//!
//! Why the store and a poll, rather than a stream or a KV watch: the switch already lives in
//! the store (the executor reads it there on every entry) and the API and the fan-out write it
//! there; keeping "still to carry out" on the same row makes the engagement and the switch one
//! write that cannot half-happen, and the crash story is the breaches' own (`flattened_at`).
//! The table has a row per scope — a few rows — so a read every quarter of a second costs
//! nothing, and bounds the wait before the flattens are published.

use std::time::Duration;

use chrono::Utc;
use jt_bus::Bus;
use jt_messages::{ControlCause, ControlIntent, IntentMessage};
use jt_store::Store;
use jt_store::repo::risk::PendingKill;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Carries out every pending engagement every `every` until `stop`.
pub(crate) async fn run(store: Store, bus: Bus, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.risk().pending_kills().await {
            Ok(pending) => {
                for kill in pending {
                    if stop.is_cancelled() {
                        return;
                    }
                    // A failed one is left to do: the next pass publishes the same intents.
                    if let Err(e) = carry_out(&store, &bus, &kill).await {
                        metrics::kill("retry");
                        tracing::error!(engagement = %kill.engagement.id, scope = ?kill.scope, error = %e, "a kill switch could not be carried out: retried at the next pass");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "kill switches cannot be read: retried at the next pass");
            }
        }
    }
}

/// The flatten intents of an engagement: one per sub-account the switch covers now.
///
/// # Errors
/// The cause is not a control cause (nothing to name the intents by), or the store fails.
pub async fn intents(store: &Store, kill: &PendingKill) -> Result<Vec<IntentMessage>, String> {
    let cause: ControlCause = serde_json::from_value(kill.engagement.cause.clone())
        .map_err(|e| format!("the engagement's cause is unreadable: {e}"))?;
    let targets = store
        .risk()
        .kill_targets(kill.scope, kill.user, kill.sub_account)
        .await
        .map_err(|e| e.to_string())?;
    Ok(targets
        .into_iter()
        .map(|s| {
            IntentMessage::control(
                s.owner,
                s.id,
                s.broker_account,
                kill.changed_at,
                ControlIntent::flatten_account(cause.clone()),
            )
        })
        .collect())
}

async fn carry_out(store: &Store, bus: &Bus, kill: &PendingKill) -> Result<(), String> {
    let intents = match intents(store, kill).await {
        Ok(i) => i,
        Err(e) if e.starts_with("the engagement's cause") => {
            // Nothing can ever be published from it: marked, so it is not read every pass.
            // The switch itself still refuses entries.
            metrics::kill("invalid");
            tracing::error!(engagement = %kill.engagement.id, error = %e, "a kill switch engagement cannot be carried out: entries are refused, nothing is flattened");
            return store
                .risk()
                .mark_kill_executed(kill.engagement.id, Utc::now())
                .await
                .map_err(|e| e.to_string());
        }
        Err(e) => return Err(e),
    };
    for intent in &intents {
        crate::monitor::publish(bus, intent.clone()).await?;
        metrics::flatten("published");
    }
    notify_alert_kill(store, kill, &intents).await?;
    store
        .risk()
        .mark_kill_executed(kill.engagement.id, Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    metrics::kill("executed");
    tracing::info!(engagement = %kill.engagement.id, scope = ?kill.scope, accounts = intents.len(), "kill switch carried out: flattens published");
    Ok(())
}

/// A kill alert's `kill_switch` notification, to the owner of every account it flattens (the
/// API queues its own for a switch changed through it). Keyed by the alert's signal, so a pass
/// repeated after a crash queues nothing twice; queued before the engagement is marked carried
/// out, so none is lost.
async fn notify_alert_kill(
    store: &Store,
    kill: &PendingKill,
    intents: &[IntentMessage],
) -> Result<(), String> {
    let Ok(ControlCause::Signal {
        signal_id,
        recorder_id,
        ..
    }) = serde_json::from_value::<ControlCause>(kill.engagement.cause.clone())
    else {
        return Ok(());
    };
    let mut owners: Vec<jt_store::UserId> = intents.iter().map(|i| i.owner_id).collect();
    owners.sort_unstable_by_key(|o| o.0);
    owners.dedup();
    for owner in owners {
        let accounts = intents.iter().filter(|i| i.owner_id == owner).count();
        let payload = serde_json::json!({
            "title": "Kill switch engaged by an alert",
            "scope": kill.scope.as_str(),
            "engaged": true,
            "signal_id": signal_id,
            "recorder_id": recorder_id,
            "accounts": accounts,
            "action": "working orders cancelled, positions flattened, new entries refused until released",
        });
        store
            .notifications()
            .enqueue(
                owner,
                "kill_switch",
                &format!("kill_switch:alert:{signal_id}"),
                &payload,
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
