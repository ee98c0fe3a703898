//! Secrets at rest: the [`Secret`] wrapper that never shows its plaintext, the [`SecretKey`]
//! read from `JT_SECRET_KEY`, and the authenticated cipher (AES-256-GCM) that seals broker
//! credentials, access tokens, webhook tokens and notification targets in the database.
//!
//! Stored format: `0x01 ‖ nonce (12 random bytes) ‖ ciphertext ‖ tag (16 bytes)`. The
//! associated data binds each ciphertext to its table, column and row id, so a ciphertext copied
//! onto another row (another user's account) fails to decrypt instead of handing over the
//! wrong credentials.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The environment variable holding the secret key.
pub const SECRET_KEY_VAR: &str = "JT_SECRET_KEY";

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const REDACTED: &str = "[redacted]";

/// A secret string (password, API key, access token). Its `Debug`, `Display` and `Serialize`
/// never show the plaintext; [`Secret::expose`] is the one, explicit way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a plaintext secret.
    #[must_use]
    pub fn new(plaintext: impl Into<String>) -> Self {
        Self(plaintext.into())
    }

    /// The plaintext: call only where it is sent to the party it belongs to (a broker).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    /// Always `"[redacted]"`: a secret never leaves through an API type or a log line.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Accepts the plaintext (an API request carrying new credentials).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// A problem with `JT_SECRET_KEY`; every message names the variable and never shows its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretKeyError {
    /// The variable is not set.
    #[error(
        "{SECRET_KEY_VAR} is not set: it must hold 32 random bytes as 64 hex characters or \
         base64 (create one with `openssl rand -base64 32`); broker secrets are encrypted with it"
    )]
    Missing,
    /// The variable is set but is not a 32-byte key.
    #[error(
        "{SECRET_KEY_VAR} is malformed: {reason}; it must hold 32 random bytes as 64 hex \
         characters or base64 (create one with `openssl rand -base64 32`)"
    )]
    Malformed {
        /// What is wrong with the value (never the value itself).
        reason: String,
    },
    /// The development key file could not be read or written.
    #[error("development secret key file {path}: {reason}")]
    DevKeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// The 32-byte key of the secret cipher.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({REDACTED})")
    }
}

impl SecretKey {
    /// Parses a key: 64 hex characters, or base64 (standard or URL-safe, padded or not) of
    /// exactly 32 bytes.
    ///
    /// # Errors
    /// [`SecretKeyError::Missing`] for an empty value, [`SecretKeyError::Malformed`] otherwise.
    pub fn parse(value: &str) -> Result<Self, SecretKeyError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(SecretKeyError::Missing);
        }
        let bytes = if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(value).map_err(|e| SecretKeyError::Malformed {
                reason: format!("not valid hex ({e})"),
            })?
        } else {
            let trimmed = value.trim_end_matches('=');
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(trimmed)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
                .map_err(|_| SecretKeyError::Malformed {
                    reason: format!(
                        "a value of {} characters that is neither 64 hex characters nor base64",
                        value.len()
                    ),
                })?
        };
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SecretKeyError::Malformed {
                reason: format!("it decodes to {} bytes, not 32", bytes.len()),
            })?;
        Ok(Self(key))
    }

    /// Reads the key from a variable lookup (`|name| std::env::var(name).ok()` in a binary).
    ///
    /// # Errors
    /// See [`SecretKey::parse`]; an unset variable is [`SecretKeyError::Missing`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecretKeyError> {
        match lookup(SECRET_KEY_VAR) {
            Some(v) => Self::parse(&v),
            None => Err(SecretKeyError::Missing),
        }
    }

    /// A fresh random key.
    #[must_use]
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// The key as 64 hex characters (what [`SecretKey::parse`] reads).
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// For `jt dev` only: reads the key from `path`, or creates a random one there (mode 0600)
    /// when the file does not exist. Production sets `JT_SECRET_KEY` instead.
    ///
    /// # Errors
    /// [`SecretKeyError::DevKeyFile`] when the file cannot be read or written,
    /// [`SecretKeyError::Malformed`] when it holds something else than a key.
    pub fn load_or_create_dev(path: &Path) -> Result<Self, SecretKeyError> {
        let file_err = |e: std::io::Error| SecretKeyError::DevKeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(file_err)?;
                }
                let key = Self::generate();
                write_private(path, &key.to_hex()).map_err(file_err)?;
                tracing::warn!(
                    path = %path.display(),
                    "created a development secret key; set {SECRET_KEY_VAR} in production"
                );
                Ok(key)
            }
            Err(e) => Err(file_err(e)),
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{contents}\n"))
}

/// A stored secret that cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Authentication failed: wrong key, damaged value, or a value moved from another row.
    #[error(
        "cannot decrypt {what}: it was encrypted with a different {SECRET_KEY_VAR}, or the \
         stored value is damaged; restore the original key or enter the secret again"
    )]
    Undecryptable {
        /// Which secret (e.g. `broker account credentials`).
        what: &'static str,
    },
    /// The stored bytes are not in a known format.
    #[error("cannot decrypt {what}: unknown storage format")]
    UnknownFormat {
        /// Which secret.
        what: &'static str,
    },
    /// The plaintext is beyond what AES-GCM can seal.
    #[error("a secret is too large to encrypt")]
    TooLarge,
    /// The store was opened without a key.
    #[error("{SECRET_KEY_VAR} was not given to this service; it cannot read or write secrets")]
    NoKey,
}

/// The authenticated cipher (AES-256-GCM) keyed by [`SecretKey`].
#[derive(Clone)]
pub struct SecretCipher {
    cipher: Aes256Gcm,
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCipher").finish_non_exhaustive()
    }
}

impl SecretCipher {
    /// A cipher for `key`.
    #[must_use]
    pub fn new(key: &SecretKey) -> Self {
        Self {
            cipher: Aes256Gcm::new(&key.0.into()),
        }
    }

    /// Seals `plaintext`, bound to `aad` (table, column and row id).
    ///
    /// # Errors
    /// [`SecretError::TooLarge`] for a plaintext beyond AES-GCM's limit (64 GiB).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SecretError::TooLarge)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value made by [`SecretCipher::seal`] with the same `aad`.
    ///
    /// # Errors
    /// [`SecretError::Undecryptable`] for a wrong key, a damaged value or another row's value;
    /// [`SecretError::UnknownFormat`] for bytes this version did not write.
    pub fn open(
        &self,
        what: &'static str,
        aad: &[u8],
        stored: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        let (version, rest) = stored
            .split_first()
            .ok_or(SecretError::UnknownFormat { what })?;
        if *version != FORMAT_V1 || rest.len() < NONCE_LEN + 16 {
            return Err(SecretError::UnknownFormat { what });
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map_err(|_| SecretError::Undecryptable { what })
    }

    /// Seals a UTF-8 secret.
    ///
    /// # Errors
    /// As [`SecretCipher::seal`].
    pub fn seal_secret(&self, aad: &[u8], secret: &Secret) -> Result<Vec<u8>, SecretError> {
        self.seal(aad, secret.expose().as_bytes())
    }

    /// Opens a UTF-8 secret.
    ///
    /// # Errors
    /// As [`SecretCipher::open`]; non-UTF-8 plaintext counts as damaged.
    pub fn open_secret(
        &self,
        what: &'static str,
        aad: &[u8],
        stored: &[u8],
    ) -> Result<Secret, SecretError> {
        let bytes = self.open(what, aad, stored)?;
        String::from_utf8(bytes)
            .map(Secret)
            .map_err(|_| SecretError::Undecryptable { what })
    }
}

/// The associated data binding a ciphertext to `table.column` of row `id`.
#[must_use]
pub fn aad(table: &str, column: &str, id: uuid::Uuid) -> Vec<u8> {
    format!("jt:{table}.{column}:{id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_shows_its_plaintext() {
        let s = Secret::new("hunter2-pass");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        let back: Secret = serde_json::from_str("\"hunter2-pass\"").unwrap();
        assert_eq!(back.expose(), "hunter2-pass");
    }

    #[test]
    fn key_accepts_hex_and_base64_and_names_the_variable_when_wrong() {
        let key = SecretKey::generate();
        let hex = key.to_hex();
        assert_eq!(SecretKey::parse(&hex).unwrap().0, key.0);
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.0);
        assert_eq!(SecretKey::parse(&b64).unwrap().0, key.0);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.0);
        assert_eq!(SecretKey::parse(&b64url).unwrap().0, key.0);

        for bad in ["short", "aGVsbG8=", &hex[..62]] {
            let msg = SecretKey::parse(bad).unwrap_err().to_string();
            assert!(msg.contains("JT_SECRET_KEY"), "{msg}");
            assert!(
                !msg.contains(bad) || bad.len() < 6,
                "the value leaked: {msg}"
            );
        }
        let missing = SecretKey::from_lookup(|_| None).unwrap_err().to_string();
        assert!(missing.starts_with("JT_SECRET_KEY is not set"), "{missing}");
        assert!(format!("{key:?}").contains("redacted"));
    }

    #[test]
    fn seal_and_open_round_trip_bound_to_the_row() {
        let cipher = SecretCipher::new(&SecretKey::generate());
        let id = uuid::Uuid::now_v7();
        let a = aad("broker_accounts", "credentials_enc", id);
        let sealed = cipher.seal_secret(&a, &Secret::new("p@ss")).unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"p@ss"));
        assert_eq!(
            cipher.open_secret("x", &a, &sealed).unwrap().expose(),
            "p@ss"
        );
        // Two seals of the same plaintext differ (random nonce).
        assert_ne!(
            sealed,
            cipher.seal_secret(&a, &Secret::new("p@ss")).unwrap()
        );
        // Another row's associated data, another key, a flipped bit: all refused.
        let other = aad("broker_accounts", "credentials_enc", uuid::Uuid::now_v7());
        assert!(cipher.open("x", &other, &sealed).is_err());
        let wrong = SecretCipher::new(&SecretKey::generate());
        let err = wrong
            .open("broker account credentials", &a, &sealed)
            .unwrap_err();
        assert!(err.to_string().contains("different JT_SECRET_KEY"), "{err}");
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(cipher.open("x", &a, &damaged).is_err());
        assert!(matches!(
            cipher.open("x", &a, &[9, 1, 2]),
            Err(SecretError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn dev_key_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("jt-devkey-{}", uuid::Uuid::new_v4()));
        let path = dir.join("secret.key");
        let first = SecretKey::load_or_create_dev(&path).unwrap();
        let second = SecretKey::load_or_create_dev(&path).unwrap();
        assert_eq!(first.0, second.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
