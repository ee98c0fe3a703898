//! Password hashing (Argon2id, memory-hard) and random tokens stored only as hashes.
//!
//! Session tokens, API tokens, password-reset tokens and webhook tokens are 256 random bits,
//! URL-safe base64. They are looked up by their SHA-256: an unsalted fast hash is enough for
//! values with 256 bits of entropy (nothing to brute-force), and a lookup by hash leaks nothing
//! through timing, because an attacker cannot steer the hash of a guess towards a stored one.

use aes_gcm::aead::{OsRng, rand_core::RngCore};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Length of a random token in bytes (256 bits).
pub const TOKEN_BYTES: usize = 32;

/// A new random token: 32 bytes as URL-safe base64 without padding (43 characters).
#[must_use]
pub fn random_token() -> Secret {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The length of a [`random_token`]: 43 URL-safe base64 characters.
pub const TOKEN_CHARS: usize = 43;

/// Whether `s` can be a token made by [`random_token`] (43 characters of URL-safe base64). The
/// webhook refuses anything else before any look-up: no database work for a probe.
#[must_use]
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == TOKEN_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The SHA-256 of a token, as stored and looked up.
#[must_use]
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A password that could not be hashed (the hasher's own failure, not a wrong password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordHashError(pub String);

/// Hashes a password with Argon2id (the crate's defaults: 19 MiB, 2 passes — OWASP's minimum).
/// CPU-heavy by design: call it from a blocking thread (the repositories do).
///
/// # Errors
/// [`PasswordHashError`] when the hasher fails (it does not for ordinary input).
pub fn hash_password(password: &str) -> Result<String, PasswordHashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordHashError(e.to_string()))
}

/// Whether `password` matches a stored Argon2 hash. A malformed stored hash never matches.
#[must_use]
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_random_token_is_token_shaped_and_probes_are_not() {
        for _ in 0..200 {
            assert!(is_token_shaped(random_token().expose()));
        }
        let good = random_token().expose().to_string();
        assert!(!is_token_shaped(&good[1..]), "too short");
        assert!(!is_token_shaped(&format!("{good}A")), "too long");
        assert!(!is_token_shaped(&format!("{}=", &good[1..])), "padding");
        assert!(!is_token_shaped(&format!("{}é", &good[2..])), "not ASCII");
        assert!(!is_token_shaped(&"x".repeat(60_000)));
        assert!(!is_token_shaped("not-a-token"));
    }

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("Correct horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn tokens_are_random_url_safe_and_256_bits() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(token_hash(a.expose()).len(), 32);
        assert_eq!(token_hash(a.expose()), token_hash(a.expose()));
    }
}
