//! Graceful shutdown: SIGINT/SIGTERM cancel one root [`CancellationToken`]; services watch it,
//! stop taking new work, finish or release what they hold, and return before the deadline.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long services get to drain after the signal: shorter than Kubernetes' default 30 s
/// termination grace period, so unfinished work is released (and redelivered), not killed.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

/// A root token that is cancelled on the first SIGINT (Ctrl-C) or SIGTERM.
///
/// A second signal is not handled here: the default disposition is restored only when the
/// process exits, so operators who need a hard stop use SIGKILL.
#[must_use]
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: draining");
        child.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Closes `tracker` and waits for its tasks, at most `deadline`.
///
/// Returns `true` when every task finished in time.
pub async fn drain(tracker: &TaskTracker, deadline: Duration) -> bool {
    tracker.close();
    if tokio::time::timeout(deadline, tracker.wait()).await.is_ok() {
        true
    } else {
        tracing::warn!(
            remaining = tracker.len(),
            "drain deadline passed; unfinished work will be redelivered"
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_tasks_then_reports() {
        let tracker = TaskTracker::new();
        tracker.spawn(async { tokio::time::sleep(Duration::from_millis(20)).await });
        assert!(drain(&tracker, Duration::from_secs(5)).await);

        let tracker = TaskTracker::new();
        tracker.spawn(async { tokio::time::sleep(Duration::from_secs(60)).await });
        assert!(!drain(&tracker, Duration::from_millis(20)).await);
    }
}
