//! The positions service's metrics. Labels are bounded (entity, outcome, reason): never an
//! account, user or contract.

/// A BROKER_EVENTS message handled. `outcome`: `applied` (the store changed), `duplicate` (the
/// store already had it), `stale` (the store has a newer state), `ignored` (an entity this
/// service does not keep: cash, connection, resync), `unknown` (a kind this build cannot read),
/// `failed` (the store refused it; retried or dead-lettered).
pub fn event(entity: &str, outcome: &'static str) {
    let entity = match entity {
        "fill" | "order" | "position" | "cash" | "connection" | "resync" => entity.to_owned(),
        _ => "other".to_owned(),
    };
    metrics::counter!("jt_positions_events_total", "entity" => entity, "outcome" => outcome)
        .increment(1);
}

/// A cancelled order that protected an open position (its take-profit or stop).
pub fn protection_cancelled() {
    metrics::counter!("jt_positions_protection_cancelled_total").increment(1);
}

/// A reconciliation pass over every active sub-account ended.
pub fn pass(accounts: usize, failed: usize) {
    metrics::counter!("jt_positions_reconcile_passes_total").increment(1);
    #[allow(clippy::cast_precision_loss)]
    {
        metrics::gauge!("jt_positions_reconcile_accounts").set(accounts as f64);
        metrics::gauge!("jt_positions_reconcile_accounts_failed").set(failed as f64);
    }
}

/// One sub-account reconciled: `ok`, or why not (`broker`, `store`, `access`).
pub fn account(outcome: &'static str) {
    metrics::counter!("jt_positions_reconcile_accounts_total", "outcome" => outcome).increment(1);
}

/// A stored position corrected from the broker's snapshot: `quantity` (net quantity or
/// average differed), `closed` (the broker shows it flat), `opened` (the store did not have it).
pub fn correction(kind: &'static str) {
    metrics::counter!("jt_positions_corrections_total", "kind" => kind).increment(1);
}

/// A protection repair published on ORDERS (`duplicate`: the stream already had it).
pub fn repair(outcome: &'static str) {
    metrics::counter!("jt_positions_repairs_published_total", "outcome" => outcome).increment(1);
}

/// A repair not published because the position is being handled (`intent`: an unfinished
/// intent on it; `orders`: its orders moved recently).
pub fn repair_deferred(reason: &'static str) {
    metrics::counter!("jt_positions_repairs_deferred_total", "reason" => reason).increment(1);
}

/// An auto-flat (flatten after the trader's window closed) published on ORDERS.
pub fn flatten(outcome: &'static str) {
    metrics::counter!("jt_positions_flattens_published_total", "outcome" => outcome).increment(1);
}

/// A login's access token renewed by the token refresher.
pub fn token_renewed() {
    metrics::counter!("jt_positions_tokens_renewed_total").increment(1);
}

/// A login logged in again by the token refresher (its session could not be renewed).
pub fn token_relogin() {
    metrics::counter!("jt_positions_relogins_total").increment(1);
}

/// A broker account marked "needs re-authentication" (its credentials were refused).
pub fn token_reauth_marked() {
    metrics::counter!("jt_positions_reauth_marked_total").increment(1);
}

/// A token refresh that failed for now (retried next pass). `stage`: `broker` (the renewal or
/// login failed: network, 429, 5xx, lock-out, no broker) or `store` (the due logins could not
/// be listed).
pub fn token_failure(stage: &'static str) {
    metrics::counter!("jt_positions_token_refresh_failures_total", "stage" => stage).increment(1);
}

/// A token refresh pass ended: logins due, of which left for a later pass (budget spent).
pub fn token_pass(due: usize, deferred: usize) {
    metrics::counter!("jt_positions_token_passes_total").increment(1);
    #[allow(clippy::cast_precision_loss)]
    {
        metrics::gauge!("jt_positions_tokens_due").set(due as f64);
        metrics::gauge!("jt_positions_tokens_deferred").set(deferred as f64);
    }
}

/// Broker accounts waiting for re-authentication (the whole platform).
pub fn needing_reauth(accounts: usize) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("jt_positions_accounts_needing_reauth").set(accounts as f64);
}

/// A paper position marked by a quote: `marked`, `conflict` (changed meanwhile: another replica
/// or a signal; the next quote marks it), `refused` (the engine refused the price), `no_state`
/// (no engine state to continue from), `failed` (the store failed).
pub fn paper_mark(outcome: &'static str) {
    metrics::counter!("jt_positions_paper_marks_total", "outcome" => outcome).increment(1);
}

/// A paper trade closed by a price: `take_profit` or `stop_loss`.
pub fn paper_closed(reason: &'static str) {
    metrics::counter!("jt_positions_paper_closed_total", "reason" => reason).increment(1);
}

/// A live trade record opened by a fill (from flat, or a flip's remainder).
pub fn trade_opened() {
    metrics::counter!("jt_positions_trades_opened_total").increment(1);
}

/// A live trade record closed: `take_profit`, `stop`, `market`, `unknown` (by a fill) or
/// `reconciled` (the broker showed the contract flat).
pub fn trade_closed(reason: &'static str) {
    metrics::counter!("jt_positions_trades_closed_total", "reason" => reason).increment(1);
}

/// A fill older than the latest fill already applied to its contract's trade records:
/// `rebuilt` (the records it lands among replayed in the broker's order) or `absorbed` (older
/// than a reconciled close: recorded, no record changed).
pub fn trade_fill_out_of_order(outcome: &'static str) {
    metrics::counter!("jt_positions_trade_fills_out_of_order_total", "outcome" => outcome)
        .increment(1);
}
