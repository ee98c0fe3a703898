//! KV buckets and leases on them.
//!
//! A bucket's TTL is its max age: a value not rewritten within the TTL disappears. A
//! [`Lease`] is a key created only if absent (`create`), renewed by a conditional update of its
//! own revision, and released by a conditional delete — so a holder that lost its lease (it
//! expired, and someone else took the key) can neither renew nor release someone else's.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio_util::sync::CancellationToken;

use crate::embedded::EmbeddedBus;
use crate::error::KvError;
use crate::raw::KvEntry;

/// Whether `key` is a valid KV key: `[-/_=.a-zA-Z0-9]`, not empty, no leading/trailing `.`.
#[must_use]
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
}

#[derive(Clone)]
enum Backend {
    JetStream(Box<kv::Store>),
    Embedded(EmbeddedBus),
}

/// A handle on a provisioned bucket. Cheap to clone.
#[derive(Clone)]
pub struct KvBucket {
    name: String,
    ttl: Option<Duration>,
    backend: Backend,
}

impl std::fmt::Debug for KvBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvBucket")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl KvBucket {
    pub(crate) fn jetstream(name: String, ttl: Option<Duration>, store: kv::Store) -> Self {
        Self {
            name,
            ttl,
            backend: Backend::JetStream(Box::new(store)),
        }
    }

    pub(crate) fn embedded(name: String, ttl: Option<Duration>, bus: EmbeddedBus) -> Self {
        Self {
            name,
            ttl,
            backend: Backend::Embedded(bus),
        }
    }

    /// The bucket's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bucket's TTL (max age of a value since its last write).
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    fn check(&self, key: &str) -> Result<(), KvError> {
        if valid_key(key) {
            Ok(())
        } else {
            Err(KvError::InvalidKey(key.to_owned()))
        }
    }

    /// The live value of `key`, if any.
    ///
    /// # Errors
    /// [`KvError::InvalidKey`], or [`KvError::Unavailable`] when the server cannot answer.
    pub async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        self.check(key)?;
        match &self.backend {
            Backend::Embedded(bus) => bus.kv_get(&self.name, key),
            Backend::JetStream(store) => {
                let entry = store
                    .entry(key)
                    .await
                    .map_err(|e| KvError::unavailable("get", &self.name, e))?;
                Ok(entry
                    .filter(|e| e.operation == kv::Operation::Put)
                    .map(|e| KvEntry {
                        key: key.to_owned(),
                        value: e.value,
                        revision: e.revision,
                    }))
            }
        }
    }

    /// Writes `value` unconditionally; returns the new revision.
    ///
    /// # Errors
    /// [`KvError::InvalidKey`] or [`KvError::Unavailable`].
    pub async fn put(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        self.check(key)?;
        match &self.backend {
            Backend::Embedded(bus) => bus.kv_put(&self.name, key, value),
            Backend::JetStream(store) => store
                .put(key, value)
                .await
                .map_err(|e| KvError::unavailable("put", &self.name, e)),
        }
    }

    /// Writes `value` only if `key` has no live value; returns the new revision.
    ///
    /// # Errors
    /// [`KvError::AlreadyExists`] when a live value exists; [`KvError::InvalidKey`] or
    /// [`KvError::Unavailable`].
    pub async fn create(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        self.check(key)?;
        match &self.backend {
            Backend::Embedded(bus) => bus.kv_create(&self.name, key, value),
            Backend::JetStream(store) => {
                store.create(key, value).await.map_err(|e| match e.kind() {
                    kv::CreateErrorKind::AlreadyExists => KvError::AlreadyExists {
                        bucket: self.name.clone(),
                        key: key.to_owned(),
                    },
                    _ => KvError::unavailable("create", &self.name, e),
                })
            }
        }
    }

    /// Writes `value` only if `key` is still at `expected` (0: absent); returns the new revision.
    ///
    /// # Errors
    /// [`KvError::WrongRevision`] when someone else wrote or deleted it; [`KvError::InvalidKey`]
    /// or [`KvError::Unavailable`].
    pub async fn update(&self, key: &str, value: Bytes, expected: u64) -> Result<u64, KvError> {
        self.check(key)?;
        match &self.backend {
            Backend::Embedded(bus) => bus.kv_update(&self.name, key, value, expected),
            Backend::JetStream(store) => {
                store
                    .update(key, value, expected)
                    .await
                    .map_err(|e| match e.kind() {
                        kv::UpdateErrorKind::WrongLastRevision => KvError::WrongRevision {
                            bucket: self.name.clone(),
                            key: key.to_owned(),
                            expected,
                        },
                        _ => KvError::unavailable("update", &self.name, e),
                    })
            }
        }
    }

    /// Deletes `key`, only if still at `expected` when given.
    ///
    /// # Errors
    /// [`KvError::WrongRevision`], [`KvError::InvalidKey`] or [`KvError::Unavailable`].
    pub async fn delete(&self, key: &str, expected: Option<u64>) -> Result<(), KvError> {
        self.check(key)?;
        match &self.backend {
            Backend::Embedded(bus) => bus.kv_delete(&self.name, key, expected),
            Backend::JetStream(store) => {
                store
                    .delete_expect_revision(key, expected)
                    .await
                    .map_err(|e| match e.kind() {
                        kv::UpdateErrorKind::WrongLastRevision => KvError::WrongRevision {
                            bucket: self.name.clone(),
                            key: key.to_owned(),
                            expected: expected.unwrap_or_default(),
                        },
                        _ => KvError::unavailable("delete", &self.name, e),
                    })
            }
        }
    }

    /// Keys with a live value, sorted.
    ///
    /// # Errors
    /// [`KvError::Unavailable`].
    pub async fn keys(&self) -> Result<Vec<String>, KvError> {
        match &self.backend {
            Backend::Embedded(bus) => bus.kv_keys(&self.name),
            Backend::JetStream(store) => {
                let keys = store
                    .keys()
                    .await
                    .map_err(|e| KvError::unavailable("keys", &self.name, e))?;
                let mut keys: Vec<String> = keys
                    .try_collect()
                    .await
                    .map_err(|e| KvError::unavailable("keys", &self.name, e))?;
                keys.sort();
                Ok(keys)
            }
        }
    }

    /// Takes the lease `key` for `owner` if nobody holds it.
    ///
    /// The lease lasts the bucket's TTL from its last renewal. Returns `None` when someone else
    /// holds it.
    ///
    /// # Errors
    /// [`KvError::InvalidKey`] or [`KvError::Unavailable`]; a bucket without TTL cannot hold
    /// leases ([`KvError::Unavailable`] naming it), since a crashed holder would keep it forever.
    pub async fn try_acquire(&self, key: &str, owner: &str) -> Result<Option<Lease>, KvError> {
        let Some(ttl) = self.ttl else {
            return Err(KvError::unavailable(
                "lease",
                &self.name,
                "bucket has no TTL",
            ));
        };
        match self
            .create(key, Bytes::copy_from_slice(owner.as_bytes()))
            .await
        {
            Ok(revision) => Ok(Some(Lease {
                bucket: self.clone(),
                key: key.to_owned(),
                owner: owner.to_owned(),
                revision,
                ttl,
            })),
            Err(KvError::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A held lease. Renew it within the TTL ([`Lease::hold_while`] does it for you) and release
/// it when done; dropping it without release lets it expire after the TTL.
#[derive(Debug)]
pub struct Lease {
    bucket: KvBucket,
    key: String,
    owner: String,
    revision: u64,
    ttl: Duration,
}

impl Lease {
    /// The leased key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Who holds it.
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The TTL: the lease ends this long after its last renewal.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Extends the lease by a TTL from now.
    ///
    /// # Errors
    /// [`KvError::WrongRevision`] when the lease was lost (it expired and maybe someone else
    /// holds it now): stop the work it protects. [`KvError::Unavailable`]: try again soon.
    pub async fn renew(&mut self) -> Result<(), KvError> {
        let value = Bytes::copy_from_slice(self.owner.as_bytes());
        self.revision = self.bucket.update(&self.key, value, self.revision).await?;
        Ok(())
    }

    /// Gives the lease up.
    ///
    /// # Errors
    /// [`KvError::WrongRevision`] when it had already been lost (nothing to release).
    /// [`KvError::Unavailable`]: it will expire after the TTL anyway.
    pub async fn release(self) -> Result<(), KvError> {
        self.bucket.delete(&self.key, Some(self.revision)).await
    }

    /// Runs `work` while renewing the lease every third of its TTL. If the lease is lost (a
    /// renewal finds another revision, or no renewal succeeds for a whole TTL) `lost` is
    /// cancelled and `work` keeps running: it should watch `lost` and stop at a safe point.
    pub async fn hold_while<F: Future>(&mut self, work: F, lost: &CancellationToken) -> F::Output {
        let every = (self.ttl / 3).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_ok = tokio::time::Instant::now();
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tick.tick(), if !lost.is_cancelled() => {
                    match self.renew().await {
                        Ok(()) => last_ok = tokio::time::Instant::now(),
                        Err(KvError::WrongRevision { .. }) => {
                            tracing::warn!(key = %self.key, "lease lost to another holder");
                            lost.cancel();
                        }
                        Err(e) => {
                            tracing::warn!(key = %self.key, error = %e, "lease renewal failed");
                            if last_ok.elapsed() >= self.ttl {
                                lost.cancel();
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("account.A=2E1", true)]
    #[case("ORDERS.execute.42", true)]
    #[case("a/b-c_d=e", true)]
    #[case("", false)]
    #[case(".a", false)]
    #[case("a.", false)]
    #[case("a b", false)]
    #[case("a*b", false)]
    #[case("a>b", false)]
    fn kv_keys_follow_the_server_rules(#[case] key: &str, #[case] ok: bool) {
        assert_eq!(valid_key(key), ok);
    }
}
