//! ProjectX session tokens (BROKERS.md §2.2).
//!
//! `Auth/loginKey` and `Auth/loginApp` open a session and hand out a token valid for the
//! configured lifetime (24 h, as ProjectX documents). `Auth/validate` hands out a new token in
//! the same session (`newToken`); the presented one stays valid until its own expiry.
//! `Auth/logout` ends the session: every token of it stops working. Tokens are shaped like the
//! JWTs real servers issue (`header.payload.signature`, base64url) with an `exp` claim, so a
//! client can read the expiry the way it would from a real token; the signature is random.
//! There is no per-user session limit (none is documented).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use parking_lot::Mutex;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;

use crate::core::clock::now_us;
use crate::core::model::Id;

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was presented.
    #[error("no token")]
    Missing,
    /// Not a token of this server.
    #[error("invalid token")]
    Invalid,
    /// The token expired.
    #[error("expired token")]
    Expired,
    /// The session was logged out.
    #[error("session logged out")]
    LoggedOut,
}

/// Who a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// User.
    pub user_id: Id,
    /// Session.
    pub session_id: Id,
}

/// A token handed out.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The bearer token.
    pub token: String,
    /// Expiry (µs).
    pub expires_us: i64,
    /// Identity.
    pub identity: Identity,
}

#[derive(Debug)]
struct TokenRec {
    identity: Identity,
    expires_us: AtomicI64,
}

/// Tokens and sessions of the ProjectX surface.
#[derive(Debug)]
pub struct Tokens {
    tokens: DashMap<String, TokenRec>,
    logged_out: DashMap<String, ()>,
    sessions: Mutex<HashMap<Id, Vec<String>>>,
    next_session: AtomicI64,
    lifetime_us: AtomicI64,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A JWT-shaped token for `user_id` expiring at `expires_us`.
fn jwt(user_id: Id, user_name: &str, session_id: Id, expires_us: i64) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let nonce: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    let payload = json!({
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": user_id.to_string(),
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": user_name,
        "msd": session_id.to_string(),
        "jti": nonce,
        "iat": now_us() / 1_000_000,
        "exp": expires_us / 1_000_000,
        "iss": "jt-sim",
        "aud": "jt-sim",
    });
    let signature: Vec<u8> = (0..32).map(|_| rand::rng().random::<u8>()).collect();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

impl Tokens {
    /// Tokens living `lifetime`.
    #[must_use]
    pub fn new(lifetime: Duration) -> Self {
        Tokens {
            tokens: DashMap::new(),
            logged_out: DashMap::new(),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicI64::new(9_000_001),
            lifetime_us: AtomicI64::new(micros(lifetime)),
        }
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_us.store(micros(lifetime), Ordering::Relaxed);
    }

    fn issue(&self, identity: Identity, user_name: &str) -> Issued {
        let expires_us = now_us().saturating_add(self.lifetime_us.load(Ordering::Relaxed));
        let token = jwt(identity.user_id, user_name, identity.session_id, expires_us);
        self.tokens.insert(
            token.clone(),
            TokenRec {
                identity,
                expires_us: AtomicI64::new(expires_us),
            },
        );
        self.sessions
            .lock()
            .entry(identity.session_id)
            .or_default()
            .push(token.clone());
        Issued {
            token,
            expires_us,
            identity,
        }
    }

    /// Opens a session.
    pub fn login(&self, user_id: Id, user_name: &str) -> Issued {
        let session_id = self.next_session.fetch_add(1, Ordering::Relaxed);
        self.issue(
            Identity {
                user_id,
                session_id,
            },
            user_name,
        )
    }

    /// Checks a token.
    ///
    /// # Errors
    /// [`TokenError`] when it is unknown, expired or logged out.
    pub fn validate(&self, token: &str) -> Result<Identity, TokenError> {
        match self.tokens.get(token) {
            Some(t) if now_us() >= t.expires_us.load(Ordering::Relaxed) => Err(TokenError::Expired),
            Some(t) => Ok(t.identity),
            None if self.logged_out.contains_key(token) => Err(TokenError::LoggedOut),
            None => Err(TokenError::Invalid),
        }
    }

    /// A new token in the session of `token` (`Auth/validate`).
    ///
    /// # Errors
    /// As [`Tokens::validate`].
    pub fn renew(&self, token: &str, user_name: &str) -> Result<Issued, TokenError> {
        let identity = self.validate(token)?;
        Ok(self.issue(identity, user_name))
    }

    /// Ends the session of `token`; returns it.
    ///
    /// # Errors
    /// As [`Tokens::validate`].
    pub fn logout(&self, token: &str) -> Result<Identity, TokenError> {
        let identity = self.validate(token)?;
        let tokens = self
            .sessions
            .lock()
            .remove(&identity.session_id)
            .unwrap_or_default();
        for t in tokens {
            self.tokens.remove(&t);
            self.logged_out.insert(t, ());
        }
        Ok(identity)
    }

    /// Expires every token of a user now (a fault); returns how many.
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

    /// Live sessions of a user.
    #[must_use]
    pub fn sessions_of(&self, user_id: Id) -> Vec<Id> {
        let mut v: Vec<Id> = self
            .tokens
            .iter()
            .filter(|t| t.identity.user_id == user_id)
            .map(|t| t.identity.session_id)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_renews_in_the_session_and_logout_ends_it() {
        let t = Tokens::new(Duration::from_secs(60));
        let a = t.login(1, "u");
        assert_eq!(a.token.split('.').count(), 3, "JWT-shaped");
        let payload = a.token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["exp"].as_i64().unwrap(), a.expires_us / 1_000_000);
        let b = t.renew(&a.token, "u").unwrap();
        assert_eq!(b.identity, a.identity);
        assert!(
            t.validate(&a.token).is_ok(),
            "the old token lives until its expiry"
        );
        t.logout(&b.token).unwrap();
        assert_eq!(t.validate(&a.token), Err(TokenError::LoggedOut));
        assert_eq!(t.validate(&b.token), Err(TokenError::LoggedOut));
        assert_eq!(t.validate("x"), Err(TokenError::Invalid));
        let c = t.login(1, "u");
        t.expire_user(1);
        assert_eq!(t.validate(&c.token), Err(TokenError::Expired));
    }
}
