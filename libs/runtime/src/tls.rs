//! The process-wide rustls crypto provider.
//!
//! reqwest is built without a bundled provider (no aws-lc C build), while async-nats and sqlx use
//! ring: one provider must be installed per process before the first TLS client is built, or
//! rustls panics. Every binary, test harness and client constructor calls this; it is idempotent.

/// Installs ring as the process-wide rustls provider (no-op when one is installed already).
pub fn install_crypto_provider() {
    // An error only means another provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn installing_twice_is_harmless() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
