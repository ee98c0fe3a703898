//! The notifier's metrics. Labels are bounded (channel kind, outcome, reason): never a user, a
//! channel id or a URL.

/// A delivery attempt's outcome (`sent`, `retry`, `failed`) on a kind of channel (`webhook`,
/// `discord`, `email`).
pub fn delivery(kind: &'static str, outcome: &'static str) {
    metrics::counter!("jt_notify_deliveries_total", "kind" => kind, "outcome" => outcome)
        .increment(1);
}

/// A due delivery put off without an attempt (`rate_limited`, `busy`: the channel has a send
/// in flight, `throttled`: the receiver said to wait).
pub fn deferred(reason: &'static str) {
    metrics::counter!("jt_notify_deferred_total", "reason" => reason).increment(1);
}

/// Pending deliveries due now.
pub fn queue_due(n: u64) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("jt_notify_queue_due").set(n as f64);
}

/// Registers every family at start, so dashboards see zeros rather than gaps.
pub fn register() {
    for kind in ["webhook", "discord", "email"] {
        for outcome in ["sent", "retry", "failed"] {
            metrics::counter!("jt_notify_deliveries_total", "kind" => kind, "outcome" => outcome)
                .absolute(0);
        }
    }
    for reason in ["rate_limited", "busy", "throttled"] {
        metrics::counter!("jt_notify_deferred_total", "reason" => reason).absolute(0);
    }
    queue_due(0);
}
