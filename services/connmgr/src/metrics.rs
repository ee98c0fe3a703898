//! The connection manager's metrics. Labels are bounded (entity, outcome): never a login,
//! account or user id (a login's own status is in the lease bucket, `status.<login>`).

use crate::{LinkState, Statuses};

/// Logins this replica holds.
pub fn held(n: usize) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("jt_connmgr_logins_held").set(n as f64);
}

/// Held logins whose connection is up.
pub fn connected(statuses: &Statuses) {
    let (up, down) = {
        let s = statuses.lock();
        let up = s
            .values()
            .filter(|s| s.state == LinkState::Connected)
            .count();
        (up, s.len() - up)
    };
    #[allow(clippy::cast_precision_loss)]
    {
        metrics::gauge!("jt_connmgr_logins_connected").set(up as f64);
        metrics::gauge!("jt_connmgr_logins_disconnected").set(down as f64);
    }
}

/// A login claimed (at start, or taken over from a replica that stopped renewing).
pub fn claimed() {
    metrics::counter!("jt_connmgr_logins_claimed_total").increment(1);
}

/// A lease lost to another replica (or not renewed for a whole TTL).
pub fn lease_lost() {
    metrics::counter!("jt_connmgr_leases_lost_total").increment(1);
}

/// A connected login lost its connection.
pub fn reconnect() {
    metrics::counter!("jt_connmgr_reconnects_total").increment(1);
}

/// An event handled: `published`, `duplicate` (the stream had its id), `failed`,
/// `unattributed` (a sub-account the store does not list yet).
pub fn event(entity: &str, outcome: &'static str) {
    let entity = match entity {
        "fill" | "order" | "position" | "cash" | "connection" | "resync" => entity.to_owned(),
        _ => "other".to_owned(),
    };
    metrics::counter!("jt_connmgr_events_total", "entity" => entity, "outcome" => outcome)
        .increment(1);
}
