//! Request limits and time penalties, per Tradovate's documentation (BROKERS.md §1.8).
//!
//! Requests are counted per user and per source IP in fixed windows. Beyond a budget the
//! request is not handled and the answer is a penalty ticket (HTTP 200,
//! `{"p-ticket","p-time","p-captcha"}`); the identical request resent with `"p-ticket"` after
//! `p-time` seconds is handled. Too many failed logins put the login (and the IP) in captcha
//! mode: every token request gets `p-captcha: true` for an hour. A user over the hard limit is
//! warned with 423 and then locked out with 429 and an empty body. Every limit is off unless
//! configured.
//!
//! Socket connection attempts are limited per source IP as well ([`Limits::admit_socket`]):
//! too many opening at once, or too many in a short window, and the upgrade is answered HTTP
//! 429 with an empty body. Tradovate does not document these numbers; the replaced platform met
//! them in production (its reconnect storms of 16+ sockets were answered 429 until it allowed 2
//! attempts in flight, 3 s apart), so the simulator lets a test set them and counts every
//! refusal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::core::clock::now_us;
use crate::core::model::Id;

/// Limits (all optional; `None` = unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Counting window, seconds.
    pub window_secs: u64,
    /// Requests per user per window before penalty tickets.
    pub user_budget: Option<u32>,
    /// Requests per IP per window before penalty tickets.
    pub ip_budget: Option<u32>,
    /// `auth/accesstokenrequest` calls per IP per window before penalty tickets.
    pub auth_budget: Option<u32>,
    /// `p-time` of a ticket, seconds.
    pub penalty_secs: u64,
    /// Requests per user per window beyond which the user is locked out (429).
    pub hard_limit: Option<u32>,
    /// Requests per user per window beyond which requests are refused with 423 (a warning
    /// before the 429 lock-out).
    pub warn_limit: Option<u32>,
    /// Length of a 429 lock-out, seconds.
    pub lockout_secs: u64,
    /// Failed logins (per name or IP, per window) that switch to captcha mode.
    pub failed_logins_before_captcha: Option<u32>,
    /// Length of captcha mode, seconds.
    pub captcha_secs: u64,
    /// Socket connection attempts from one IP that may be opening at once (upgrade asked,
    /// `authorize` not yet answered); one more is answered 429.
    pub connects_in_flight: Option<u32>,
    /// Socket connection attempts from one IP per `connect_window_ms` before the upgrade is
    /// answered 429.
    pub connects_per_window: Option<u32>,
    /// The window of `connects_per_window`, milliseconds.
    pub connect_window_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            window_secs: 60,
            user_budget: None,
            ip_budget: None,
            auth_budget: None,
            penalty_secs: 5,
            hard_limit: None,
            warn_limit: None,
            lockout_secs: 3600,
            failed_logins_before_captcha: None,
            captcha_secs: 3600,
            connects_in_flight: None,
            connects_per_window: None,
            connect_window_ms: 1_000,
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Proceed,
    /// Answer a penalty ticket.
    Penalty {
        /// Ticket.
        ticket: String,
        /// Seconds to wait.
        secs: u64,
        /// Captcha mode: a third-party app cannot continue.
        captcha: bool,
    },
    /// Answer 423 (about to be locked out).
    Locked,
    /// Answer 429 with an empty body.
    TooMany,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(Id),
    Ip(IpAddr),
    AuthIp(IpAddr),
    Login(String),
    Connects(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_us: i64,
    count: u32,
}

#[derive(Debug, Clone)]
struct Ticket {
    ready_us: i64,
    expires_us: i64,
}

#[derive(Debug, Default)]
struct State {
    windows: HashMap<Key, Window>,
    failed: HashMap<Key, Window>,
    tickets: HashMap<String, Ticket>,
    lockouts: HashMap<Id, i64>,
    captcha: HashMap<Key, i64>,
}

/// The limiter.
#[derive(Debug)]
pub struct Limits {
    cfg: Mutex<LimitsConfig>,
    st: Mutex<State>,
    /// Whether any limit is configured or a captcha mode was forced; when not, requests
    /// without a ticket skip the counters (and their lock) entirely.
    active: AtomicBool,
    connects: Arc<Connects>,
}

/// Socket connection attempts per IP: those opening now, the window's count, and what was
/// seen (for tests and the admin read-out).
#[derive(Debug, Default)]
struct Connects {
    st: Mutex<ConnectState>,
    refused: AtomicU64,
    max_in_flight: AtomicUsize,
}

#[derive(Debug, Default)]
struct ConnectState {
    opening: HashMap<IpAddr, usize>,
    windows: HashMap<Key, Window>,
}

/// A socket connection attempt the limits let in: it counts as opening until
/// [`ConnectPass::opened`] (its `authorize` was answered) or until it is dropped (the socket
/// closed first).
#[derive(Debug)]
pub struct ConnectPass {
    connects: Arc<Connects>,
    ip: IpAddr,
    counted: bool,
}

impl ConnectPass {
    /// The attempt is over: the socket is open and authorized (or refused authorization).
    pub fn opened(&mut self) {
        if std::mem::take(&mut self.counted) {
            let mut st = self.connects.st.lock();
            if let Some(n) = st.opening.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.opening.remove(&self.ip);
                }
            }
        }
    }
}

impl Drop for ConnectPass {
    fn drop(&mut self) {
        self.opened();
    }
}

/// What the socket connection limits saw (`Admin::connect_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectStats {
    /// Upgrades answered 429 since the last reset.
    pub refused: u64,
    /// The most attempts seen opening at once from one IP.
    pub max_in_flight: usize,
}

impl LimitsConfig {
    fn any(&self) -> bool {
        self.user_budget.is_some()
            || self.ip_budget.is_some()
            || self.auth_budget.is_some()
            || self.hard_limit.is_some()
            || self.warn_limit.is_some()
            || self.failed_logins_before_captcha.is_some()
    }
}

/// Counts one more event for `k` in its fixed window; returns the count in the window.
fn bump(windows: &mut HashMap<Key, Window>, k: Key, now: i64, window_us: i64) -> u32 {
    let w = windows.entry(k).or_insert(Window {
        start_us: now,
        count: 0,
    });
    if now - w.start_us >= window_us {
        *w = Window {
            start_us: now,
            count: 0,
        };
    }
    w.count += 1;
    w.count
}

fn new_ticket() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

impl Limits {
    /// A limiter with this configuration.
    #[must_use]
    pub fn new(cfg: LimitsConfig) -> Self {
        Limits {
            active: AtomicBool::new(cfg.any()),
            cfg: Mutex::new(cfg),
            st: Mutex::new(State::default()),
            connects: Arc::default(),
        }
    }

    /// Lets a socket connection attempt from `ip` in, or refuses it (`None`: answer 429) when
    /// `connects_in_flight` attempts from that IP are already opening or the window's
    /// `connects_per_window` are spent. Refused attempts count in the window too, as a
    /// client hammering the upgrade keeps itself out.
    #[must_use]
    pub fn admit_socket(&self, ip: IpAddr) -> Option<ConnectPass> {
        let (in_flight, per_window, window_ms) = {
            let cfg = self.cfg.lock();
            (
                cfg.connects_in_flight,
                cfg.connects_per_window,
                cfg.connect_window_ms,
            )
        };
        let now = now_us();
        let window_us = i64::try_from(window_ms.max(1).saturating_mul(1_000)).unwrap_or(i64::MAX);
        let mut st = self.connects.st.lock();
        let in_window = bump(&mut st.windows, Key::Connects(ip), now, window_us);
        let opening = st.opening.get(&ip).copied().unwrap_or(0);
        let full = in_flight.is_some_and(|max| opening >= max as usize)
            || per_window.is_some_and(|max| in_window > max);
        if full {
            self.connects.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        st.opening.insert(ip, opening + 1);
        self.connects
            .max_in_flight
            .fetch_max(opening + 1, Ordering::Relaxed);
        Some(ConnectPass {
            connects: Arc::clone(&self.connects),
            ip,
            counted: true,
        })
    }

    /// What the socket connection limits saw since the last reset.
    #[must_use]
    pub fn connect_stats(&self) -> ConnectStats {
        ConnectStats {
            refused: self.connects.refused.load(Ordering::Relaxed),
            max_in_flight: self.connects.max_in_flight.load(Ordering::Relaxed),
        }
    }

    /// Current configuration.
    #[must_use]
    pub fn config(&self) -> LimitsConfig {
        self.cfg.lock().clone()
    }

    /// Replaces the configuration and forgets every counter, ticket and lock-out.
    pub fn configure(&self, cfg: LimitsConfig) {
        self.active.store(cfg.any(), Ordering::Release);
        *self.cfg.lock() = cfg;
        *self.st.lock() = State::default();
        self.forget_connects();
    }

    /// Forgets the connect windows and what was seen; attempts opening now stay counted.
    fn forget_connects(&self) {
        self.connects.st.lock().windows.clear();
        self.connects.refused.store(0, Ordering::Relaxed);
        let opening = self.connects.st.lock().opening.values().copied().max();
        self.connects
            .max_in_flight
            .store(opening.unwrap_or(0), Ordering::Relaxed);
    }

    /// Issues a ticket good after `secs` (used by forced penalties too).
    pub fn issue(&self, secs: u64, captcha: bool) -> Verdict {
        let ticket = new_ticket();
        let now = now_us();
        let secs_us = i64::try_from(secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        self.st.lock().tickets.insert(
            ticket.clone(),
            Ticket {
                ready_us: now.saturating_add(secs_us),
                expires_us: now.saturating_add(secs_us).saturating_add(600_000_000),
            },
        );
        Verdict::Penalty {
            ticket,
            secs,
            captcha,
        }
    }

    /// Decides what to do with a request of `user` (none for token requests) from `ip`.
    /// `login` is the name of a token request; `ticket` the `p-ticket` it carries.
    pub fn check(
        &self,
        user: Option<Id>,
        ip: IpAddr,
        login: Option<&str>,
        ticket: Option<&str>,
    ) -> Verdict {
        if ticket.is_none() && !self.active.load(Ordering::Acquire) {
            return Verdict::Proceed;
        }
        let cfg = self.cfg.lock().clone();
        let now = now_us();
        let window_us = i64::try_from(cfg.window_secs.max(1) * 1_000_000).unwrap_or(i64::MAX);
        let mut st = self.st.lock();
        st.captcha.retain(|_, until| *until > now);
        st.lockouts.retain(|_, until| *until > now);
        if let Some(u) = user
            && st.lockouts.contains_key(&u)
        {
            return Verdict::TooMany;
        }
        if let Some(name) = login {
            let keys = [Key::Login(name.to_ascii_lowercase()), Key::Ip(ip)];
            if let Some(until) = keys.iter().filter_map(|k| st.captcha.get(k)).max() {
                let secs = u64::try_from((until - now) / 1_000_000).unwrap_or(0);
                drop(st);
                return self.issue(secs.max(1), true);
            }
        }
        if let Some(t) = ticket {
            st.tickets.retain(|_, v| v.expires_us > now);
            if let Some(tk) = st.tickets.get(t).cloned() {
                if now >= tk.ready_us {
                    st.tickets.remove(t);
                    return Verdict::Proceed;
                }
                let secs = u64::try_from((tk.ready_us - now + 999_999) / 1_000_000).unwrap_or(1);
                return Verdict::Penalty {
                    ticket: t.to_string(),
                    secs: secs.max(1),
                    captcha: false,
                };
            }
        }
        let user_count = user.map(|u| bump(&mut st.windows, Key::User(u), now, window_us));
        let ip_count = bump(&mut st.windows, Key::Ip(ip), now, window_us);
        let auth_count = login.map(|_| bump(&mut st.windows, Key::AuthIp(ip), now, window_us));
        if let (Some(u), Some(n), Some(hard)) = (user, user_count, cfg.hard_limit)
            && n > hard
        {
            let lock = i64::try_from(cfg.lockout_secs * 1_000_000).unwrap_or(i64::MAX);
            st.lockouts.insert(u, now.saturating_add(lock));
            return Verdict::TooMany;
        }
        if let (Some(n), Some(warn)) = (user_count, cfg.warn_limit)
            && n > warn
        {
            return Verdict::Locked;
        }
        let over = |n: Option<u32>, budget: Option<u32>| matches!((n, budget), (Some(n), Some(b)) if n > b);
        if over(user_count, cfg.user_budget)
            || over(Some(ip_count), cfg.ip_budget)
            || over(auth_count, cfg.auth_budget)
        {
            drop(st);
            // Token requests are "novel operations": their penalty always demands a captcha.
            return self.issue(cfg.penalty_secs, login.is_some());
        }
        Verdict::Proceed
    }

    /// Records a failed login; enough of them switch the name and IP to captcha mode.
    pub fn failed_login(&self, name: &str, ip: IpAddr) {
        let cfg = self.cfg.lock().clone();
        let Some(limit) = cfg.failed_logins_before_captcha else {
            return;
        };
        let now = now_us();
        let window_us = i64::try_from(cfg.window_secs.max(1) * 1_000_000).unwrap_or(i64::MAX);
        let captcha_us = i64::try_from(cfg.captcha_secs * 1_000_000).unwrap_or(i64::MAX);
        let mut st = self.st.lock();
        for k in [Key::Login(name.to_ascii_lowercase()), Key::Ip(ip)] {
            if bump(&mut st.failed, k.clone(), now, window_us) >= limit {
                st.captcha.insert(k, now.saturating_add(captcha_us));
            }
        }
    }

    /// Puts a login in captcha mode now (a fault).
    pub fn force_captcha(&self, name: &str) {
        let secs = self.cfg.lock().captcha_secs;
        let until = now_us().saturating_add(i64::try_from(secs * 1_000_000).unwrap_or(i64::MAX));
        self.st
            .lock()
            .captcha
            .insert(Key::Login(name.to_ascii_lowercase()), until);
        self.active.store(true, Ordering::Release);
    }

    /// Forgets counters, tickets, lock-outs and captcha modes (configuration stays).
    pub fn reset(&self) {
        *self.st.lock() = State::default();
        self.forget_connects();
        self.active.store(self.cfg.lock().any(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn socket_connects_are_unlimited_by_default() {
        let l = Limits::new(LimitsConfig::default());
        let passes: Vec<_> = (0..500).map(|_| l.admit_socket(IP)).collect();
        assert!(passes.iter().all(Option::is_some));
        assert_eq!(l.connect_stats().refused, 0);
        assert_eq!(l.connect_stats().max_in_flight, 500);
    }

    #[test]
    fn a_third_socket_opening_at_once_is_refused_until_one_has_opened() {
        let l = Limits::new(LimitsConfig {
            connects_in_flight: Some(2),
            ..LimitsConfig::default()
        });
        let mut first = l.admit_socket(IP).unwrap();
        let second = l.admit_socket(IP).unwrap();
        assert!(l.admit_socket(IP).is_none(), "a third in flight");
        // Another IP has its own count.
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(l.admit_socket(other).is_some());
        first.opened();
        first.opened(); // idempotent: frees one slot, not two
        assert!(l.admit_socket(IP).is_some());
        drop(second); // a socket closed before authorizing frees its slot too
        assert!(l.admit_socket(IP).is_some());
        assert_eq!(l.connect_stats().refused, 1);
        assert_eq!(l.connect_stats().max_in_flight, 2);
    }

    #[test]
    fn connects_beyond_the_window_s_count_are_refused_until_it_turns() {
        let l = Limits::new(LimitsConfig {
            connects_per_window: Some(3),
            connect_window_ms: 200,
            ..LimitsConfig::default()
        });
        for _ in 0..3 {
            assert!(l.admit_socket(IP).is_some());
        }
        assert!(l.admit_socket(IP).is_none());
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(l.admit_socket(IP).is_some());
        assert_eq!(l.connect_stats().refused, 1);
        l.reset();
        assert_eq!(l.connect_stats().refused, 0);
    }

    #[test]
    fn unlimited_by_default() {
        let l = Limits::new(LimitsConfig::default());
        for _ in 0..10_000 {
            assert_eq!(l.check(Some(1), IP, None, None), Verdict::Proceed);
        }
    }

    #[test]
    fn budget_gives_a_ticket_that_works_after_the_wait() {
        let l = Limits::new(LimitsConfig {
            user_budget: Some(2),
            penalty_secs: 0,
            ..LimitsConfig::default()
        });
        assert_eq!(l.check(Some(1), IP, None, None), Verdict::Proceed);
        assert_eq!(l.check(Some(1), IP, None, None), Verdict::Proceed);
        let Verdict::Penalty {
            ticket, captcha, ..
        } = l.check(Some(1), IP, None, None)
        else {
            panic!("expected a penalty");
        };
        assert!(!captcha);
        assert_eq!(l.check(Some(1), IP, None, Some(&ticket)), Verdict::Proceed);
        // A ticket is good once.
        assert!(matches!(
            l.check(Some(1), IP, None, Some(&ticket)),
            Verdict::Penalty { .. }
        ));
    }

    #[test]
    fn early_resend_gets_the_same_ticket_back() {
        let l = Limits::new(LimitsConfig {
            user_budget: Some(0),
            penalty_secs: 30,
            ..LimitsConfig::default()
        });
        let Verdict::Penalty { ticket, secs, .. } = l.check(Some(1), IP, None, None) else {
            panic!("expected a penalty");
        };
        assert_eq!(secs, 30);
        let Verdict::Penalty { ticket: again, .. } = l.check(Some(1), IP, None, Some(&ticket))
        else {
            panic!("expected a penalty");
        };
        assert_eq!(again, ticket);
    }

    #[test]
    fn warn_then_lock_out() {
        let l = Limits::new(LimitsConfig {
            warn_limit: Some(2),
            hard_limit: Some(3),
            ..LimitsConfig::default()
        });
        assert_eq!(l.check(Some(1), IP, None, None), Verdict::Proceed);
        assert_eq!(l.check(Some(1), IP, None, None), Verdict::Proceed);
        assert_eq!(l.check(Some(1), IP, None, None), Verdict::Locked);
        assert_eq!(l.check(Some(1), IP, None, None), Verdict::TooMany);
        assert_eq!(l.check(Some(1), IP, None, None), Verdict::TooMany);
        // Other users are not locked out.
        assert_eq!(l.check(Some(2), IP, None, None), Verdict::Proceed);
    }

    #[test]
    fn failed_logins_switch_to_captcha() {
        let l = Limits::new(LimitsConfig {
            failed_logins_before_captcha: Some(2),
            ..LimitsConfig::default()
        });
        assert_eq!(l.check(None, IP, Some("bob"), None), Verdict::Proceed);
        l.failed_login("bob", IP);
        l.failed_login("bob", IP);
        assert!(matches!(
            l.check(None, IP, Some("bob"), None),
            Verdict::Penalty { captcha: true, .. }
        ));
    }
}
