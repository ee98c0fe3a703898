//! The risk service's metrics. Labels are bounded (outcome): never an account or a user.

/// Accounts the monitor watches now (on the monitor replica).
pub fn watched(n: usize) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("jt_risk_accounts_watched").set(n as f64);
}

/// A broker P&L read (`ok`, `failed`).
pub fn poll(outcome: &'static str) {
    metrics::counter!("jt_risk_pnl_reads_total", "outcome" => outcome).increment(1);
}

/// A quote received by the monitor.
pub fn quote() {
    metrics::counter!("jt_risk_quotes_total").increment(1);
}

/// A breach judged (`new`, `already`: recorded before, `failed`: not recorded).
pub fn breach(outcome: &'static str) {
    metrics::counter!("jt_risk_breaches_total", "outcome" => outcome).increment(1);
}

/// A breach's flatten (`published`, `retry`).
pub fn flatten(outcome: &'static str) {
    metrics::counter!("jt_risk_flattens_total", "outcome" => outcome).increment(1);
}

/// A kill switch engagement (`executed`, `retry`: to do again, `invalid`: unreadable cause).
pub fn kill(outcome: &'static str) {
    metrics::counter!("jt_risk_kill_switches_total", "outcome" => outcome).increment(1);
}

/// Registers every family at start, so dashboards see zeros rather than gaps.
pub fn register() {
    watched(0);
    for o in ["ok", "failed"] {
        metrics::counter!("jt_risk_pnl_reads_total", "outcome" => o).absolute(0);
    }
    metrics::counter!("jt_risk_quotes_total").absolute(0);
    for o in ["new", "already", "failed"] {
        metrics::counter!("jt_risk_breaches_total", "outcome" => o).absolute(0);
    }
    for o in ["published", "retry"] {
        metrics::counter!("jt_risk_flattens_total", "outcome" => o).absolute(0);
    }
    for o in ["executed", "retry", "invalid"] {
        metrics::counter!("jt_risk_kill_switches_total", "outcome" => o).absolute(0);
    }
}
