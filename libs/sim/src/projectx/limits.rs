//! ProjectX request limits (BROKERS.md §2.7): per token, `History/retrieveBars` at most
//! `bars_requests` per `bars_window` (30 per 30 s by the current docs; an older copy says 50),
//! every other endpoint at most `requests` per `window` (200 per 60 s). Beyond a limit the
//! request is not handled and answers HTTP 429 with an empty body (no body or header is
//! documented). Windows slide: a request counts for exactly one window length after it was
//! admitted; refused requests do not count.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::core::clock::now_us;

/// The limits (`None` = unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ProjectXLimits {
    /// Requests per token per `window_secs` on every endpoint but the bars.
    pub requests: Option<u32>,
    /// Window of `requests`, seconds.
    pub window_secs: u64,
    /// `History/retrieveBars` requests per token per `bars_window_secs`.
    pub bars_requests: Option<u32>,
    /// Window of `bars_requests`, seconds.
    pub bars_window_secs: u64,
}

impl Default for ProjectXLimits {
    fn default() -> Self {
        ProjectXLimits {
            requests: Some(200),
            window_secs: 60,
            bars_requests: Some(30),
            bars_window_secs: 30,
        }
    }
}

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Every endpoint but the bars.
    General,
    /// `History/retrieveBars`.
    Bars,
}

/// The limiter.
#[derive(Debug)]
pub struct Limiter {
    cfg: Mutex<ProjectXLimits>,
    log: Mutex<HashMap<(String, Bucket), VecDeque<i64>>>,
}

impl Limiter {
    /// A limiter with `cfg`.
    #[must_use]
    pub fn new(cfg: ProjectXLimits) -> Self {
        Limiter {
            cfg: Mutex::new(cfg),
            log: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the limits and forgets every count.
    pub fn configure(&self, cfg: ProjectXLimits) {
        *self.cfg.lock() = cfg;
        self.log.lock().clear();
    }

    /// Forgets every count.
    pub fn reset(&self) {
        self.log.lock().clear();
    }

    /// The current limits.
    #[must_use]
    pub fn config(&self) -> ProjectXLimits {
        self.cfg.lock().clone()
    }

    /// Admits (and counts) a request of `token`, or refuses it.
    #[must_use]
    pub fn admit(&self, token: &str, bucket: Bucket) -> bool {
        let cfg = self.cfg.lock().clone();
        let (limit, window) = match bucket {
            Bucket::General => (cfg.requests, cfg.window_secs),
            Bucket::Bars => (cfg.bars_requests, cfg.bars_window_secs),
        };
        let Some(limit) = limit else {
            return true;
        };
        let window_us = i64::try_from(Duration::from_secs(window).as_micros()).unwrap_or(i64::MAX);
        let now = now_us();
        let mut log = self.log.lock();
        let entries = log.entry((token.to_string(), bucket)).or_default();
        while entries.front().is_some_and(|t| now - *t >= window_us) {
            entries.pop_front();
        }
        if entries.len() >= limit as usize {
            return false;
        }
        entries.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_and_bucket_has_its_own_budget() {
        let l = Limiter::new(ProjectXLimits {
            requests: Some(3),
            bars_requests: Some(1),
            ..ProjectXLimits::default()
        });
        assert!((0..3).all(|_| l.admit("a", Bucket::General)));
        assert!(
            !l.admit("a", Bucket::General),
            "the fourth in the window is refused"
        );
        assert!(
            l.admit("b", Bucket::General),
            "another token has its own budget"
        );
        assert!(l.admit("a", Bucket::Bars), "the bars budget is separate");
        assert!(!l.admit("a", Bucket::Bars));
        l.reset();
        assert!(l.admit("a", Bucket::General));
        l.configure(ProjectXLimits {
            requests: None,
            ..ProjectXLimits::default()
        });
        assert!((0..500).all(|_| l.admit("a", Bucket::General)));
    }
}
