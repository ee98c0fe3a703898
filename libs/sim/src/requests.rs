//! How many broker API requests the simulator received, by protocol and endpoint (every
//! request that reached a protocol's dispatcher, answered or refused). A test reads it to say
//! which calls an action made — a first delivery that lists the whole login's orders, say —
//! and the benchmark to count broker calls per order. `GET /sim/requests`, reset with
//! `DELETE /sim/requests`.

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// Request counts keyed `"<protocol>:<endpoint>"` (`"tradovate:order/placeorder"`,
/// `"projectx:order/place"`), endpoints lower case as dispatched.
#[derive(Debug, Default)]
pub(crate) struct RequestCounts(Mutex<BTreeMap<String, u64>>);

impl RequestCounts {
    /// Counts one request.
    pub(crate) fn count(&self, protocol: &str, endpoint: &str) {
        let key = format!("{protocol}:{endpoint}");
        *self.0.lock().entry(key).or_default() += 1;
    }

    /// The counts so far.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().clone()
    }

    /// Starts counting from zero.
    pub(crate) fn reset(&self) {
        self.0.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_protocol_and_endpoint_until_reset() {
        let c = RequestCounts::default();
        c.count("tradovate", "order/placeorder");
        c.count("tradovate", "order/placeorder");
        c.count("projectx", "order/place");
        let seen = c.snapshot();
        assert_eq!(seen.get("tradovate:order/placeorder"), Some(&2));
        assert_eq!(seen.get("projectx:order/place"), Some(&1));
        assert_eq!(seen.len(), 2);
        c.reset();
        assert!(c.snapshot().is_empty());
    }
}
