//! The payloads that travel between services on the bus: accepted signals (ingest → executor
//! fan-out), order intents (fan-out → execution), executions (execution → history, copier) and
//! commands (flatten, kill switch).
//!
//! Each type implements [`jt_bus::Message`]: a stable type name, the schema version it writes
//! and the subject it goes to. Ids that must survive redelivery are derived from content
//! ([`derived_id`]), never drawn at random, so a redelivered message produces the same
//! downstream ids and JetStream de-duplication and the store's unique keys absorb the repeat.
//!
//! This crate holds data shapes only: no I/O and no rules (rules are in `jt-domain`).

pub mod execution;
pub mod intent;
pub mod signal;

pub use execution::{ExecutionMessage, ExecutionStatus};
pub use intent::{IntentMessage, client_order_id};
pub use signal::{SignalGuard, SignalMessage};

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A UUID (version 8, "custom") derived from `parts`: the same parts always give the same id.
///
/// Used for ids that must be identical when a message is handled twice (signal id from the
/// webhook's message id, intent id from signal and trader).
#[must_use]
pub fn derived_id(domain: &str, parts: &[&str]) -> Uuid {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_separate_domains_and_parts() {
        let a = derived_id("signal", &["abc"]);
        assert_eq!(a, derived_id("signal", &["abc"]));
        assert_ne!(a, derived_id("intent", &["abc"]));
        // Part boundaries matter: ("ab","c") is not ("a","bc").
        assert_ne!(derived_id("x", &["ab", "c"]), derived_id("x", &["a", "bc"]));
        assert_eq!(a.get_version_num(), 8);
    }
}
