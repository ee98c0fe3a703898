//! The copier's metrics. Labels are bounded (outcome, reason): never an account, user or
//! contract.

/// A leader fill seen on BROKER_EVENTS. `outcome`: `copied` (handled for its followers),
/// `manual` (a fill of a manual trade through the API on the leader, copied as such),
/// `not_leader` (the sub-account leads nothing), `leader_off` (disabled, or not in automatic
/// mode), `own_copy` (a fill of one of our copy orders on an account that follows: loop
/// prevention), `old` (a replayed fill older than the tracked position), `failed`.
pub fn leader_event(outcome: &'static str) {
    metrics::counter!("jt_copier_leader_events_total", "outcome" => outcome).increment(1);
}

/// A follower intent published on ORDERS (`duplicate`: the stream already had it, e.g. a
/// republish of a copy recorded before a crash).
pub fn published(duplicate: bool) {
    let outcome = if duplicate { "duplicate" } else { "published" };
    metrics::counter!("jt_copier_copies_published_total", "outcome" => outcome).increment(1);
}

/// A follower skipped for a leader fill, with the reason (`disabled`, `locked_out`,
/// `own_trader`, `same_account`, `no_change`, `invalid`, `gone`).
pub fn skipped(reason: &'static str) {
    metrics::counter!("jt_copier_skipped_total", "reason" => reason).increment(1);
}

/// A leader fill already copied to a follower (a redelivery, a replay): nothing published.
pub fn already_copied() {
    metrics::counter!("jt_copier_already_copied_total").increment(1);
}

/// The executor's outcome of a copy intent written to its copy log row (`filled`, `accepted`,
/// `skipped`, `error`).
pub fn outcome(status: &'static str) {
    metrics::counter!("jt_copier_outcomes_total", "status" => status).increment(1);
}

/// One follower position compared by auto-sync. `outcome`: `in_sync`, `corrected` (a
/// correcting intent published), `left_flat` (a follower closed by hand whose setting keeps it
/// flat: the drift logged, nothing sent), `in_flight` (a copy to the follower is still queued: not
/// compared), `leader_moving` (the tracked leader position differs from the leader's at its
/// broker: its fills are still arriving, its followers are compared later), `held_back` (the
/// last correction for this leader state was refused by the executor: retried after a while),
/// `failed` (the broker or the store could not be read).
pub fn sync(outcome: &'static str) {
    metrics::counter!("jt_copier_sync_total", "outcome" => outcome).increment(1);
}

/// A leader protection change handled for one follower (issue #22). `outcome`: `published` (a
/// protection intent on ORDERS), `unchanged` (the follower is set to that price already: a
/// redelivery, a replay, carried by its entry), `kept` (the leader cancelled its stop or target:
/// the follower keeps its own), `failed` (the event is retried).
pub fn protection(outcome: &'static str) {
    metrics::counter!("jt_copier_protection_total", "outcome" => outcome).increment(1);
}
