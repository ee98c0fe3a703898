//! The executor's metrics. Labels are bounded (outcome, step, error kind, broker): never an
//! account, trader or user id.

use std::time::Duration;

/// A signal fanned out (`ok`), recorded as a duplicate (`duplicate`) or left for a retry
/// (`retry`).
pub fn fanout_done(outcome: &'static str, took: Duration) {
    metrics::counter!("jt_executor_fanout_total", "outcome" => outcome).increment(1);
    metrics::histogram!("jt_executor_fanout_seconds").record(took.as_secs_f64());
}

/// An intent recorded as skipped by the fan-out (simulation mode, stale, unknown symbol).
pub fn intent_skipped_at_fanout() {
    metrics::counter!("jt_executor_intents_total", "outcome" => "skipped", "stage" => "fanout")
        .increment(1);
}

/// The paper record could not apply a signal.
pub fn paper_skipped(reason: &'static str) {
    metrics::counter!("jt_executor_paper_skipped_total", "reason" => reason).increment(1);
}

/// An intent reached a final outcome at the execution stage.
pub fn intent_done(outcome: &'static str, took: Duration) {
    metrics::counter!("jt_executor_intents_total", "outcome" => outcome, "stage" => "execute")
        .increment(1);
    metrics::histogram!("jt_executor_execute_seconds", "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// Alert receipt to the broker's acknowledgement of the main order.
pub fn alert_to_order(took: Duration) {
    metrics::histogram!("jt_executor_alert_to_order_seconds").record(took.as_secs_f64());
}

/// A broker call failed with an error of `kind`.
pub fn broker_error(kind: &'static str) {
    metrics::counter!("jt_executor_broker_errors_total", "kind" => kind).increment(1);
}

/// A position left without its protective orders: operators must act.
pub fn unprotected() {
    metrics::counter!("jt_executor_unprotected_positions_total").increment(1);
}

/// An intent given up without being sent, by why (`stale`, `throttled_stale`): bounded labels.
pub fn gave_up(reason: &'static str) {
    metrics::counter!("jt_executor_gave_up_total", "reason" => reason).increment(1);
}

/// A broker refused calls on a login for a while (rate limit, penalty, lock-out).
pub fn broker_throttled() {
    metrics::counter!("jt_executor_broker_throttled_total").increment(1);
}

/// An intent handed back to wait for its login (`exit`: exits always wait).
pub fn throttle_wait(exit: bool) {
    metrics::counter!("jt_executor_throttle_waits_total", "kind" => if exit { "exit" } else { "entry" })
        .increment(1);
}
