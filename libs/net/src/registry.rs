//! What a process's broker adapters share, made to be passed in: the connection pools per host,
//! the fleet's connect gate and, in the services, the store of the fleet's shared request
//! budgets ([`Plumbing`]), and the live logins of a venue ([`Logins`]) —
//! one session, one budget, one socket per login however many handles point at it.
//!
//! Each has a process-wide default (`shared()`, `process_wide()`) for the code that does not
//! pass its own yet; tests and the broker-access library construct their own.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use crate::budget::BudgetStore;
use crate::gate::{ConnectGate, GateConfig};
use crate::http::HostPools;

/// The network resources the adapters of a process share.
#[derive(Debug, Clone)]
pub struct Plumbing {
    /// One HTTP connection pool per host.
    pub pools: Arc<HostPools>,
    /// At most N socket connection attempts in flight, spaced (DOMAIN §8): this process's,
    /// or the fleet's when built with [`ConnectGate::shared`] (the services).
    pub gate: Arc<ConnectGate>,
    /// Where the logins' fleet-wide request budgets live ([`crate::budget`]); `None`: each
    /// login keeps to its per-process limits only (tools, tests, the process-wide default).
    pub budgets: Option<Arc<dyn BudgetStore>>,
}

impl Plumbing {
    /// Pools and gate of their own.
    #[must_use]
    pub fn new(gate: &GateConfig) -> Self {
        Self {
            pools: HostPools::new(),
            gate: ConnectGate::new(gate),
            budgets: None,
        }
    }

    /// The same plumbing with the fleet's shared request budgets in `budgets`.
    #[must_use]
    pub fn with_budgets(self, budgets: Option<Arc<dyn BudgetStore>>) -> Self {
        Self { budgets, ..self }
    }

    /// The process-wide pools and gate.
    #[must_use]
    pub fn process_wide() -> Self {
        static PLUMBING: OnceLock<Plumbing> = OnceLock::new();
        PLUMBING
            .get_or_init(|| Self {
                pools: HostPools::shared(),
                gate: ConnectGate::process_wide(),
                budgets: None,
            })
            .clone()
    }

    /// The same pools with another gate.
    #[must_use]
    pub fn with_gate(self, gate: Arc<ConnectGate>) -> Self {
        Self { gate, ..self }
    }
}

/// The live logins of one venue, keyed by (REST host, user name). A login lives as long as a
/// handle to it does; the registry only finds it again.
pub struct Logins<L> {
    map: Mutex<HashMap<(String, String), Weak<L>>>,
}

impl<L> Default for Logins<L> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<L> std::fmt::Debug for Logins<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins")
            .field("live", &self.live().len())
            .finish()
    }
}

impl<L> Logins<L> {
    /// The live login of (`host`, `user`), or a new one from `make`.
    ///
    /// # Errors
    /// `make`'s error; nothing is registered then.
    pub fn get_or_make<E>(
        &self,
        host: &str,
        user: &str,
        make: impl FnOnce() -> Result<L, E>,
    ) -> Result<Arc<L>, E> {
        let key = (host.to_string(), user.to_string());
        let mut map = self.map.lock();
        if let Some(l) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(l);
        }
        map.retain(|_, w| w.strong_count() > 0);
        let login = Arc::new(make()?);
        map.insert(key, Arc::downgrade(&login));
        Ok(login)
    }

    /// Every live login as `user@host`.
    #[must_use]
    pub fn live(&self) -> Vec<(String, Arc<L>)> {
        self.map
            .lock()
            .iter()
            .filter_map(|((host, user), w)| w.upgrade().map(|l| (format!("{user}@{host}"), l)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_login_per_host_and_user_while_a_handle_lives() {
        let logins: Logins<u32> = Logins::default();
        let a = logins.get_or_make("h", "u", || Ok::<_, ()>(1)).unwrap();
        let again = logins.get_or_make("h", "u", || Ok::<_, ()>(2)).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let other = logins.get_or_make("h", "v", || Ok::<_, ()>(3)).unwrap();
        assert_eq!(*other, 3);
        assert_eq!(logins.live().len(), 2);
        drop((a, again));
        assert_eq!(logins.live().len(), 1);
        assert_eq!(*logins.get_or_make("h", "u", || Ok::<_, ()>(4)).unwrap(), 4);
        assert!(logins.get_or_make("h", "w", || Err("no")).is_err());
    }
}
