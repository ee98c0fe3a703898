//! The ingest's metrics (bounded labels only: result and status, never a token or recorder).

use std::time::Duration;

/// Counts one answered webhook and records how long the answer took.
pub fn answered(result: &'static str, status: u16, took: Duration) {
    metrics::counter!("jt_ingest_requests_total", "result" => result, "status" => status_class(status))
        .increment(1);
    metrics::histogram!("jt_ingest_answer_seconds", "result" => result).record(took.as_secs_f64());
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
