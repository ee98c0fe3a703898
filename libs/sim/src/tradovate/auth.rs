//! Access tokens and login sessions.
//!
//! Each successful `auth/accesstokenrequest` opens a session with an access token and a
//! market-data token. A user holds at most `max_sessions` sessions: one more closes the oldest
//! and revokes its tokens (its sockets are closed by the caller). `auth/renewaccesstoken` issues
//! a new token in the same session; the previous token stays valid until its own expiry. An
//! expired token gets HTTP 401; a socket authorized before the expiry stays open.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::core::clock::now_us;
use crate::core::model::Id;

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("Access is denied")]
    Missing,
    /// Unknown token.
    #[error("Access is denied")]
    Invalid,
    /// The token expired.
    #[error("Expired Access Token")]
    Expired,
    /// The session was closed (a newer login took its place).
    #[error("Access is denied: the session was closed by a newer login")]
    Revoked,
}

/// Who a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// User.
    pub user_id: Id,
    /// Session.
    pub session_id: Id,
}

/// What a login or renewal hands out.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Access token.
    pub access_token: String,
    /// Market-data token.
    pub md_access_token: String,
    /// Expiry (µs).
    pub expires_us: i64,
    /// Identity.
    pub identity: Identity,
    /// Sessions closed to make room.
    pub evicted: Vec<Id>,
}

#[derive(Debug)]
struct TokenInfo {
    identity: Identity,
    expires_us: AtomicI64,
}

#[derive(Debug)]
struct SessionRec {
    id: Id,
    tokens: Vec<String>,
}

/// Tokens and sessions.
#[derive(Debug)]
pub struct Auth {
    tokens: DashMap<String, TokenInfo>,
    revoked: DashMap<String, ()>,
    sessions: Mutex<HashMap<Id, VecDeque<SessionRec>>>,
    next_session: AtomicI64,
    lifetime_us: AtomicI64,
    max_sessions: usize,
}

fn token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(72)
        .map(char::from)
        .collect()
}

impl Auth {
    /// Tokens living `lifetime`, at most `max_sessions` sessions per user.
    #[must_use]
    pub fn new(lifetime: Duration, max_sessions: usize) -> Self {
        Auth {
            tokens: DashMap::new(),
            revoked: DashMap::new(),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicI64::new(7_000_001),
            lifetime_us: AtomicI64::new(i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX)),
            max_sessions: max_sessions.max(1),
        }
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_us.store(
            i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }

    fn expiry(&self) -> i64 {
        now_us().saturating_add(self.lifetime_us.load(Ordering::Relaxed))
    }

    /// Opens a session for a user, closing the oldest ones beyond the limit.
    pub fn login(&self, user_id: Id) -> Issued {
        let session_id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let identity = Identity {
            user_id,
            session_id,
        };
        let access = token();
        let md = token();
        let expires_us = self.expiry();
        for t in [&access, &md] {
            self.tokens.insert(
                t.clone(),
                TokenInfo {
                    identity,
                    expires_us: AtomicI64::new(expires_us),
                },
            );
        }
        let mut evicted = Vec::new();
        {
            let mut sessions = self.sessions.lock();
            let list = sessions.entry(user_id).or_default();
            list.push_back(SessionRec {
                id: session_id,
                tokens: vec![access.clone(), md.clone()],
            });
            while list.len() > self.max_sessions {
                if let Some(old) = list.pop_front() {
                    for t in old.tokens {
                        self.tokens.remove(&t);
                        self.revoked.insert(t, ());
                    }
                    evicted.push(old.id);
                }
            }
        }
        Issued {
            access_token: access,
            md_access_token: md,
            expires_us,
            identity,
            evicted,
        }
    }

    /// Checks a token.
    ///
    /// # Errors
    /// [`AuthError`] when the token is unknown, revoked or expired.
    pub fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        match self.tokens.get(token) {
            Some(t) => {
                if now_us() >= t.expires_us.load(Ordering::Relaxed) {
                    Err(AuthError::Expired)
                } else {
                    Ok(t.identity)
                }
            }
            None if self.revoked.contains_key(token) => Err(AuthError::Revoked),
            None => Err(AuthError::Invalid),
        }
    }

    /// Whether a token's session still exists (expiry ignored): what a socket authorized
    /// earlier needs.
    #[must_use]
    pub fn session_alive(&self, session_id: Id, user_id: Id) -> bool {
        self.sessions
            .lock()
            .get(&user_id)
            .is_some_and(|l| l.iter().any(|s| s.id == session_id))
    }

    /// A new token in the same session.
    ///
    /// # Errors
    /// [`AuthError`] when the presented token is not valid.
    pub fn renew(&self, token: &str) -> Result<Issued, AuthError> {
        let identity = self.validate(token)?;
        let access = token_string();
        let expires_us = self.expiry();
        self.tokens.insert(
            access.clone(),
            TokenInfo {
                identity,
                expires_us: AtomicI64::new(expires_us),
            },
        );
        let mut sessions = self.sessions.lock();
        let md = sessions
            .get_mut(&identity.user_id)
            .and_then(|l| l.iter_mut().find(|s| s.id == identity.session_id))
            .map(|s| {
                s.tokens.push(access.clone());
                s.tokens.get(1).cloned().unwrap_or_default()
            })
            .unwrap_or_default();
        // The market-data token lives as long as the session's newest access token.
        if let Some(t) = self.tokens.get(&md) {
            t.expires_us.store(expires_us, Ordering::Relaxed);
        }
        Ok(Issued {
            access_token: access,
            md_access_token: md,
            expires_us,
            identity,
            evicted: Vec::new(),
        })
    }

    /// Expires every token of a user now (a fault); sessions stay, so authorized sockets stay.
    pub fn expire_user(&self, user_id: Id) -> usize {
        let now = now_us();
        let mut n = 0;
        for t in &self.tokens {
            if t.identity.user_id == user_id {
                t.expires_us.store(now, Ordering::Relaxed);
                n += 1;
            }
        }
        n
    }

    /// Sessions of a user, oldest first.
    #[must_use]
    pub fn sessions_of(&self, user_id: Id) -> Vec<Id> {
        self.sessions
            .lock()
            .get(&user_id)
            .map(|l| l.iter().map(|s| s.id).collect())
            .unwrap_or_default()
    }
}

fn token_string() -> String {
    token()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_login_evicts_the_oldest_session() {
        let auth = Auth::new(Duration::from_secs(60), 2);
        let a = auth.login(1);
        let b = auth.login(1);
        assert!(a.evicted.is_empty() && b.evicted.is_empty());
        let c = auth.login(1);
        assert_eq!(c.evicted, vec![a.identity.session_id]);
        assert_eq!(auth.validate(&a.access_token), Err(AuthError::Revoked));
        assert_eq!(auth.validate(&a.md_access_token), Err(AuthError::Revoked));
        assert!(auth.validate(&b.access_token).is_ok());
        assert!(auth.validate(&c.access_token).is_ok());
        // Another user is not affected.
        let other = auth.login(2);
        assert!(other.evicted.is_empty());
    }

    #[test]
    fn renew_keeps_the_session_and_expiry_is_enforced() {
        let auth = Auth::new(Duration::from_secs(60), 2);
        let a = auth.login(1);
        let r = auth.renew(&a.access_token).unwrap();
        assert_eq!(r.identity, a.identity);
        assert_ne!(r.access_token, a.access_token);
        assert_eq!(auth.sessions_of(1).len(), 1);
        auth.expire_user(1);
        assert_eq!(auth.validate(&r.access_token), Err(AuthError::Expired));
        assert!(auth.session_alive(a.identity.session_id, 1));
        assert_eq!(auth.validate("nope"), Err(AuthError::Invalid));
    }
}
