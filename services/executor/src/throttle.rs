//! Broker throttling per login: who waits, and who goes first when the wait is over.
//!
//! A broker's rate limit or penalty (Tradovate: a 429 means "back off", often for a minute;
//! a captcha locks the login out for an hour) applies to the whole login: every sub-account on
//! it. The executor's rule (docs/pipeline.md, "Broker throttling"):
//!
//! - An exit (close, flatten, a kill's flatten, cancel) is never given up because of a wait: it
//!   is handed back until the login may call again, as often as needed, without being charged
//!   an attempt ([`jt_bus::Outcome::Wait`]).
//! - Exits go first: while an exit of a login is waiting, that login's entries wait too, and
//!   when the wait is over entries start a little later ([`ENTRY_GRACE`]) than exits.
//! - An entry waits as long as the wait leaves it fresh; one the wait would make stale gives up
//!   at once, recorded with the reason and counted (`jt_executor_gave_up_total`).
//!
//! This is the state behind the first two rules: until when each login is throttled, and which
//! exits are waiting on it. It is per process, like the brokers' request budgets; a message
//! handed back may come back to another replica, which learns the login's wait from its own
//! first refused call.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

/// How much later than exits entries may call when a login's wait is over.
pub const ENTRY_GRACE: Duration = Duration::from_secs(1);
/// How long an entry steps aside while an exit of its login is waiting.
pub const ENTRY_YIELD: Duration = Duration::from_millis(250);
/// An exit still waiting this long after its login's wait ended is forgotten (it went to
/// another replica, or its process lost track of it): entries do not wait for it forever.
const EXIT_FORGOTTEN_AFTER: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct Login {
    until: Option<Instant>,
    /// Exits waiting on this login, each until when it counts.
    exits: HashMap<Uuid, Instant>,
}

/// The throttling state of every login this process calls; cheap to share.
#[derive(Debug, Default)]
pub struct Throttles {
    logins: Mutex<HashMap<Uuid, Login>>,
}

impl Throttles {
    /// An empty state.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the intent `intent` (an exit or not) must wait before calling the broker of
    /// `login`, if it must.
    #[must_use]
    pub fn wait_for(&self, login: Uuid, intent: Uuid, exit: bool) -> Option<Duration> {
        let now = Instant::now();
        let mut logins = self.logins.lock();
        let l = logins.get_mut(&login)?;
        l.exits.retain(|_, until| *until > now);
        if let Some(until) = l.until.filter(|u| *u > now) {
            let wait = until - now;
            return Some(if exit { wait } else { wait + ENTRY_GRACE });
        }
        if !exit && l.exits.keys().any(|i| *i != intent) {
            return Some(ENTRY_YIELD);
        }
        if l.exits.is_empty() {
            logins.remove(&login);
        }
        None
    }

    /// The broker of `login` refused a call of `intent` for `wait`.
    pub fn throttled(&self, login: Uuid, intent: Uuid, exit: bool, wait: Duration) {
        let now = Instant::now();
        let mut logins = self.logins.lock();
        let l = logins.entry(login).or_default();
        let until = now + wait;
        if l.until.is_none_or(|u| u < until) {
            l.until = Some(until);
        }
        if exit {
            let forget_at = l.until.unwrap_or(until) + EXIT_FORGOTTEN_AFTER;
            l.exits.insert(intent, forget_at);
        }
    }

    /// `intent` is finished with the broker of `login` (done, or given up).
    pub fn done(&self, login: Uuid, intent: Uuid) {
        let mut logins = self.logins.lock();
        if let Some(l) = logins.get_mut(&login) {
            l.exits.remove(&intent);
            if l.exits.is_empty() && l.until.is_none_or(|u| u <= Instant::now()) {
                logins.remove(&login);
            }
        }
    }

    /// Exits waiting on `login` (for tests and metrics).
    #[must_use]
    pub fn exits_waiting(&self, login: Uuid) -> usize {
        let now = Instant::now();
        self.logins
            .lock()
            .get(&login)
            .map_or(0, |l| l.exits.values().filter(|u| **u > now).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (Uuid, Uuid, Uuid, Uuid) {
        (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_throttle_exits_go_first_and_entries_wait_for_them() {
        let (login, other, close, entry) = ids();
        let t = Throttles::new();
        assert_eq!(t.wait_for(login, entry, false), None, "nothing known");
        t.throttled(login, close, true, Duration::from_secs(60));
        // During the wait: the exit waits exactly the wait, an entry a little longer.
        assert_eq!(
            t.wait_for(login, close, true),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            t.wait_for(login, entry, false),
            Some(Duration::from_secs(60) + ENTRY_GRACE)
        );
        // Another login is not concerned.
        assert_eq!(t.wait_for(other, entry, false), None);
        tokio::time::advance(Duration::from_secs(60)).await;
        // The wait is over: the exit goes; entries step aside until it is done.
        assert_eq!(t.wait_for(login, close, true), None);
        assert_eq!(t.wait_for(login, entry, false), Some(ENTRY_YIELD));
        assert_eq!(t.exits_waiting(login), 1);
        t.done(login, close);
        assert_eq!(t.wait_for(login, entry, false), None);
        assert_eq!(t.exits_waiting(login), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_longer_wait_is_kept_and_a_lost_exit_is_forgotten() {
        let (login, _, close, entry) = ids();
        let t = Throttles::new();
        t.throttled(login, close, true, Duration::from_secs(60));
        t.throttled(login, entry, false, Duration::from_secs(5));
        assert_eq!(
            t.wait_for(login, close, true),
            Some(Duration::from_secs(60))
        );
        // The exit went to another replica and never reported here.
        tokio::time::advance(Duration::from_secs(60) + EXIT_FORGOTTEN_AFTER).await;
        assert_eq!(t.wait_for(login, entry, false), None);
    }
}
