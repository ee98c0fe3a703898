//! The connection manager's metrics. Labels are bounded (entity, outcome): never a login,
//! account or user id (a login's own status is in the lease bucket, `status.<login>`).

use crate::{LinkState, Statuses};

/// Logins this replica holds.
pub fn held(n: usize) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("jt_connmgr_logins_held").set(n as f64);
}

/// Logins the platform wants connected (active accounts not waiting for re-authentication), as
/// this replica's last scan saw them. Every replica sees the same number: `max(wanted) -
/// sum(held)` over the replicas is the logins nobody holds.
pub fn wanted(n: usize) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("jt_connmgr_logins_wanted").set(n as f64);
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

/// A quote from a venue's feed: `published` on the bus, or `failed`.
pub fn quote(venue: &'static str, outcome: &'static str) {
    metrics::counter!("jt_connmgr_quotes_total", "venue" => venue, "outcome" => outcome)
        .increment(1);
}

/// A venue's feed: its state (1 connected, 0 not) and the contracts it has subscribed.
pub fn feed(venue: &'static str, state: &jt_broker::ConnectionState, subscribed: usize) {
    let up = matches!(state, jt_broker::ConnectionState::Connected);
    metrics::gauge!("jt_connmgr_quote_feed_connected", "venue" => venue).set(if up {
        1.0
    } else {
        0.0
    });
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("jt_connmgr_quote_contracts_subscribed", "venue" => venue)
        .set(subscribed as f64);
}

/// A venue without a feed here (none wanted, or another replica holds the quotes lease).
pub fn feed_closed(venue: &'static str) {
    metrics::gauge!("jt_connmgr_quote_feed_connected", "venue" => venue).set(0.0);
    metrics::gauge!("jt_connmgr_quote_contracts_subscribed", "venue" => venue).set(0.0);
}

/// Every feed closed (the quotes lease given up or lost).
pub fn feeds_cleared() {
    for kind in jt_broker::BrokerKind::ALL {
        feed_closed(kind.as_str());
    }
}
