//! The executor's outcome of each copy intent written back to its copy log row (the consumer
//! `copier` on EXECUTIONS): the follower's intent, order id, fill price, status and the latency
//! from the leader's fill being received to the follower's order executed.

use jt_bus::{Incoming, Outcome};
use jt_messages::{ExecutionMessage, ExecutionStatus};
use jt_store::repo::copy::CopyUpdate;
use jt_store::{
    CopyStatus, FollowerId, IntentId, IntentSource, IntentStatus, Store, StoreError, UserId,
};

use crate::metrics;
use tracing::Instrument;

/// The follower and leader fill of a copy intent's idempotency key
/// (`copy:<leader event>:follower:<follower>`, `IntentMessage::idempotency_key`).
#[must_use]
pub fn parse_key(key: &str) -> Option<(String, FollowerId)> {
    let rest = key.strip_prefix("copy:")?;
    let (event, follower) = rest.rsplit_once(":follower:")?;
    let follower: FollowerId = follower.parse().ok()?;
    Some((event.to_owned(), follower))
}

/// The consumer's handler.
pub(crate) async fn handle(store: Store, msg: Incoming<ExecutionMessage>) -> Outcome {
    let e = &msg.envelope.payload;
    // Signals' and traders' executions are not copies.
    if e.signal_id.is_some() || e.trader_id.is_some() {
        return Outcome::Ack;
    }
    // Recording the copy's outcome belongs to the trace of the execution that reported it.
    let span = tracing::info_span!("copy_outcome", intent = %e.intent_id);
    jt_runtime::telemetry::extract_context(&span, &msg.envelope.trace.to_pairs());
    match record(&store, e).instrument(span).await {
        Ok(()) => Outcome::Ack,
        Err(err) if err.is_transient() => {
            Outcome::retry(format!("the store is unavailable: {err}"))
        }
        Err(StoreError::NotFound { .. }) => Outcome::Ack,
        Err(err) => Outcome::retry(format!("recording the copy's outcome failed: {err}")),
    }
}

async fn record(store: &Store, e: &ExecutionMessage) -> Result<(), StoreError> {
    let owner = UserId(e.owner_id);
    let intent = store.intents().get(owner, IntentId(e.intent_id)).await?;
    if intent.source != IntentSource::Copy {
        return Ok(());
    }
    let Some((fill, follower)) = parse_key(&intent.idempotency_key) else {
        return Ok(());
    };
    let copying = store.copying();
    let Some(row) = copying.copy_of(owner, follower, &fill).await? else {
        return Ok(());
    };
    let (status, error) = match e.status {
        ExecutionStatus::Done if intent.status == IntentStatus::Filled => {
            (CopyStatus::Filled, None)
        }
        ExecutionStatus::Done => (CopyStatus::Accepted, None),
        ExecutionStatus::Skipped => (CopyStatus::Skipped, Some(e.summary.clone())),
        ExecutionStatus::Rejected | ExecutionStatus::Failed => {
            (CopyStatus::Error, Some(e.summary.clone()))
        }
    };
    copying
        .update_copy(
            owner,
            row.id,
            CopyUpdate {
                status: Some(status),
                follower_intent: Some(intent.id),
                follower_order_id: e.broker_order_ids.first().cloned(),
                follower_price: e.fill_price,
                error,
                latency_ms: Some(e.latency_ms),
            },
        )
        .await?;
    metrics::outcome(status.as_str());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_copy_key_names_the_fill_and_the_follower() {
        let f = FollowerId::new();
        assert_eq!(
            parse_key(&format!("copy:300000012:follower:{f}")),
            Some(("300000012".into(), f))
        );
        assert_eq!(parse_key("manual:x:y:account:z"), None);
        assert_eq!(parse_key("copy:1:follower:not-an-id"), None);
    }
}
