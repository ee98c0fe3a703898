//! The process-wide connect gate (DOMAIN §8): at most N WebSocket connection attempts in flight
//! and their starts at least a spacing apart, however many tokens reconnect at once. The
//! replaced platform's 429 storms ended only when this gate (2 attempts, 3 s) was added.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The process-wide connect gate (DOMAIN §8).
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Connection attempts in flight at once.
    pub max_in_flight: usize,
    /// Minimum time between the starts of two attempts.
    pub spacing: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 2,
            spacing: Duration::from_secs(3),
        }
    }
}

/// Limits concurrent connection attempts across every socket that shares it.
#[derive(Debug)]
pub struct ConnectGate {
    permits: Arc<Semaphore>,
    spacing: Duration,
    next_start: Mutex<Option<Instant>>,
    in_flight: AtomicUsize,
    max_seen: AtomicUsize,
    attempts: AtomicUsize,
}

/// Held while a connection attempt is in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct GatePass {
    _permit: OwnedSemaphorePermit,
    gate: Arc<ConnectGate>,
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let now = self.gate.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!("jt_broker_ws_connect_in_flight").set(now as f64);
    }
}

impl ConnectGate {
    /// A gate with its own limits (tests, or a connection manager that owns one).
    #[must_use]
    pub fn new(config: &GateConfig) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            spacing: config.spacing,
            next_start: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            max_seen: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
        })
    }

    /// The gate every socket of this process shares by default (2 in flight, 3 s apart).
    #[must_use]
    pub fn process_wide() -> Arc<Self> {
        static GATE: OnceLock<Arc<ConnectGate>> = OnceLock::new();
        Arc::clone(GATE.get_or_init(|| Self::new(&GateConfig::default())))
    }

    /// Waits for a slot and for the spacing since the previous attempt's start.
    pub async fn enter(self: &Arc<Self>) -> GatePass {
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            unreachable!("the gate's semaphore is never closed");
        };
        let start = {
            let mut next = self.next_start.lock();
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + self.spacing);
            start
        };
        tokio::time::sleep_until(start).await;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_seen.fetch_max(now, Ordering::SeqCst);
        self.attempts.fetch_add(1, Ordering::SeqCst);
        metrics::gauge!("jt_broker_ws_connect_in_flight").set(now as f64);
        GatePass {
            _permit: permit,
            gate: Arc::clone(self),
        }
    }

    /// Attempts in flight now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most attempts ever in flight at once.
    #[must_use]
    pub fn max_in_flight_seen(&self) -> usize {
        self.max_seen.load(Ordering::SeqCst)
    }

    /// Attempts admitted so far.
    #[must_use]
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_limit_in_flight_and_starts_are_spaced() {
        let gate = ConnectGate::new(&GateConfig {
            max_in_flight: 2,
            spacing: Duration::from_secs(3),
        });
        let starts = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let gate = Arc::clone(&gate);
            let starts = Arc::clone(&starts);
            tasks.push(tokio::spawn(async move {
                let _pass = gate.enter().await;
                starts.lock().push(t0.elapsed());
                // An attempt takes 5 s.
                tokio::time::sleep(Duration::from_secs(5)).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(gate.max_in_flight_seen(), 2);
        assert_eq!(gate.attempts(), 10);
        let mut s = starts.lock().clone();
        s.sort();
        for pair in s.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(3), "{s:?}");
        }
    }
}
