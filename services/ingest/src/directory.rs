//! Webhook token → recorder, cached so the hot path rarely touches the database and keeps
//! answering while the database is down.
//!
//! Each token's answer (its recorder, or "unknown") is kept for [`DirectoryConfig::fresh_for`]
//! (2 s by default: a rotated or deleted token stops working within seconds). After that the
//! next request looks it up again; when that look-up fails (database down or slow) the last known
//! answer is served for up to [`DirectoryConfig::serve_stale_for`], so a recorder that was seen
//! recently keeps receiving alerts through a database outage. A token never seen while the
//! database is down cannot be resolved: the request gets 503, never a guess.
//!
//! Freshness costs one statement per [`RESOLVE_MANY_MAX`] tokens, not one per token:
//! [`Directory::revalidate`] (run every [`DirectoryConfig::revalidate_every`] by the ingest)
//! looks up, in bulk, every token used within [`DirectoryConfig::keep_warm_for`], so the hot
//! path finds them fresh and asks the database only for tokens it has not seen (or when
//! revalidation fails: then the per-token look-up and the stale answers above apply).
//!
//! An unknown token's answer is kept for [`DirectoryConfig::unknown_fresh_for`] (a minute) and
//! never revalidated: tokens are random 256-bit values, so a token that was unknown stays
//! unknown, and probes must not cost a revalidation each (the webhook also refuses ill-shaped
//! tokens before they reach the directory, and limits unknown tokens per address).
//!
//! Memory is bounded: at most [`DirectoryConfig::max_entries`] tokens are cached; unknown tokens
//! (probes, typos) are evicted first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use jt_store::Store;
use jt_store::auth::token_hash;
use jt_store::repo::webhooks::{RESOLVE_MANY_MAX, WebhookTarget};
use parking_lot::RwLock;
use tokio::time::Instant;

/// Where tokens are resolved (the store in production; a fake in unit tests).
#[async_trait]
pub trait TargetSource: Send + Sync + 'static {
    /// The recorder of `token`, `None` when unknown; `Err` when the source cannot answer.
    async fn resolve(&self, token: &str) -> Result<Option<WebhookTarget>, String>;

    /// The hash ([`jt_store::auth::token_hash`]) of every recorder's token; a source that
    /// cannot list them answers an empty list (nothing is then known without a look-up).
    async fn token_hashes(&self) -> Result<Vec<Vec<u8>>, String> {
        Ok(Vec::new())
    }

    /// [`Self::resolve`] for up to [`RESOLVE_MANY_MAX`] tokens at once: each with its answer.
    async fn resolve_many(
        &self,
        tokens: &[String],
    ) -> Result<Vec<(String, Option<WebhookTarget>)>, String> {
        let mut answers = Vec::with_capacity(tokens.len());
        for token in tokens {
            answers.push((token.clone(), self.resolve(token).await?));
        }
        Ok(answers)
    }
}

#[async_trait]
impl TargetSource for Store {
    async fn resolve(&self, token: &str) -> Result<Option<WebhookTarget>, String> {
        self.webhooks()
            .resolve(token)
            .await
            .map_err(|e| e.to_string())
    }

    async fn resolve_many(
        &self,
        tokens: &[String],
    ) -> Result<Vec<(String, Option<WebhookTarget>)>, String> {
        self.webhooks()
            .resolve_many(tokens)
            .await
            .map_err(|e| e.to_string())
    }

    async fn token_hashes(&self) -> Result<Vec<Vec<u8>>, String> {
        self.webhooks()
            .token_hashes()
            .await
            .map_err(|e| e.to_string())
    }
}

/// Cache settings.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// How long an answer is used without asking the source again.
    pub fresh_for: Duration,
    /// How long an old answer is still served when the source cannot answer.
    pub serve_stale_for: Duration,
    /// Most tokens kept.
    pub max_entries: usize,
    /// How long one look-up may take before it counts as failed (the hot path must answer
    /// TradingView within 3 s, whatever the database does).
    pub lookup_timeout: Duration,
    /// How often the ingest revalidates its warm tokens in bulk (below `fresh_for`, so they
    /// never go stale while the database answers).
    pub revalidate_every: Duration,
    /// Tokens used within this long are revalidated; idler ones are left to expire.
    pub keep_warm_for: Duration,
    /// How long an "unknown token" answer is used (never revalidated).
    pub unknown_fresh_for: Duration,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            fresh_for: Duration::from_secs(2),
            serve_stale_for: Duration::from_secs(3600),
            max_entries: 100_000,
            lookup_timeout: Duration::from_millis(800),
            revalidate_every: Duration::from_secs(1),
            keep_warm_for: Duration::from_secs(600),
            unknown_fresh_for: Duration::from_secs(60),
        }
    }
}

/// The result of resolving a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The token's recorder.
    Known(WebhookTarget),
    /// No recorder has this token.
    Unknown,
    /// The source cannot answer and nothing is cached: try again later.
    Unavailable(String),
}

#[derive(Debug, Clone)]
struct Entry {
    target: Option<WebhookTarget>,
    fetched: Instant,
    /// When a request last asked for it, in ms since the directory's `epoch` (shared by the
    /// clones, so the hot path marks it under the read lock).
    used: Arc<AtomicU64>,
}

/// The cached token directory; cheap to clone.
#[derive(Clone)]
pub struct Directory {
    source: Arc<dyn TargetSource>,
    config: DirectoryConfig,
    entries: Arc<RwLock<HashMap<String, Entry>>>,
    /// Every recorder's token hash as of the last [`Directory::refresh_known`].
    known: Arc<RwLock<HashSet<Vec<u8>>>>,
    epoch: Instant,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("config", &self.config)
            .field("entries", &self.entries.read().len())
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// A directory over `source`.
    pub fn new(source: Arc<dyn TargetSource>, config: DirectoryConfig) -> Self {
        Self {
            source,
            config,
            entries: Arc::new(RwLock::new(HashMap::new())),
            known: Arc::new(RwLock::new(HashSet::new())),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Looks up, in bulk, every cached recorder's token used within `keep_warm_for` and stores
    /// the answers (a deleted recorder or rotated token becomes unknown). Unknown tokens are
    /// not revalidated (see the module documentation). Returns how many were refreshed.
    ///
    /// # Errors
    /// The source's error (or a timeout): nothing is changed, the entries age as they would
    /// without revalidation.
    pub async fn revalidate(&self) -> Result<usize, String> {
        let now = self.now_ms();
        let warm_ms = u64::try_from(self.config.keep_warm_for.as_millis()).unwrap_or(u64::MAX);
        let warm: Vec<String> = self
            .entries
            .read()
            .iter()
            .filter(|(_, e)| {
                e.target.is_some() && now.saturating_sub(e.used.load(Ordering::Relaxed)) <= warm_ms
            })
            .map(|(token, _)| token.clone())
            .collect();
        let mut refreshed = 0;
        for chunk in warm.chunks(RESOLVE_MANY_MAX) {
            // An answer is as fresh as the question.
            let asked = Instant::now();
            let answers =
                tokio::time::timeout(self.config.lookup_timeout, self.source.resolve_many(chunk))
                    .await
                    .map_err(|_| {
                        format!(
                            "bulk token look-up took longer than {:?}",
                            self.config.lookup_timeout
                        )
                    })??;
            let mut entries = self.entries.write();
            for (token, target) in answers {
                if let Some(entry) = entries.get_mut(&token) {
                    entry.target = target;
                    entry.fetched = asked;
                    refreshed += 1;
                }
            }
        }
        Ok(refreshed)
    }

    /// Resolves `token`: from the cache when fresh, else from the source, else (source down)
    /// from a stale cache entry.
    pub async fn resolve(&self, token: &str) -> Resolution {
        let cached = self.entries.read().get(token).map(|entry| {
            entry.used.store(self.now_ms(), Ordering::Relaxed);
            entry.clone()
        });
        if let Some(entry) = &cached
            && entry.fetched.elapsed() < self.fresh_for(entry)
        {
            return to_resolution(entry.target.clone());
        }
        let looked_up = match tokio::time::timeout(
            self.config.lookup_timeout,
            self.source.resolve(token),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(format!(
                "token look-up took longer than {:?}",
                self.config.lookup_timeout
            )),
        };
        match looked_up {
            Ok(target) => {
                self.insert(token, target.clone());
                to_resolution(target)
            }
            Err(reason) => match cached {
                Some(entry) if entry.fetched.elapsed() < self.config.serve_stale_for => {
                    metrics::counter!("jt_ingest_directory_stale_total").increment(1);
                    tracing::warn!(%reason, "token look-up failed; serving the cached recorder");
                    to_resolution(entry.target)
                }
                _ => Resolution::Unavailable(reason),
            },
        }
    }

    fn fresh_for(&self, entry: &Entry) -> Duration {
        if entry.target.is_some() {
            self.config.fresh_for
        } else {
            self.config.unknown_fresh_for
        }
    }

    /// Whether `token` is a recorder's as far as memory tells: cached as one (fresh or not), or
    /// among the hashes of [`Directory::refresh_known`]. Such a request is never refused for its
    /// address's unknown-token budget.
    #[must_use]
    pub fn is_known(&self, token: &str) -> bool {
        self.entries
            .read()
            .get(token)
            .is_some_and(|e| e.target.is_some())
            || self.known.read().contains(&token_hash(token))
    }

    /// Reloads the hash of every recorder's token (the ingest runs it every minute); returns
    /// how many. A recorder created since is not known this way until the next reload.
    ///
    /// # Errors
    /// The source's error; the previous set is kept.
    pub async fn refresh_known(&self) -> Result<usize, String> {
        let hashes = self.source.token_hashes().await?;
        let n = hashes.len();
        *self.known.write() = hashes.into_iter().collect();
        Ok(n)
    }

    fn insert(&self, token: &str, target: Option<WebhookTarget>) {
        let mut entries = self.entries.write();
        if entries.len() >= self.config.max_entries && !entries.contains_key(token) {
            evict(&mut entries, self.config.max_entries);
        }
        entries.insert(
            token.to_string(),
            Entry {
                target,
                fetched: Instant::now(),
                used: Arc::new(AtomicU64::new(self.now_ms())),
            },
        );
    }

    /// Tokens currently cached (for metrics and tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn to_resolution(target: Option<WebhookTarget>) -> Resolution {
    match target {
        Some(t) => Resolution::Known(t),
        None => Resolution::Unknown,
    }
}

/// Makes room for one entry: drops unknown tokens first, then the oldest known ones, down to
/// 90 % of the bound so eviction runs rarely.
fn evict(entries: &mut HashMap<String, Entry>, max: usize) {
    let target = max.saturating_mul(9) / 10;
    entries.retain(|_, e| e.target.is_some());
    if entries.len() > target {
        let mut by_age: Vec<(String, Instant)> = entries
            .iter()
            .map(|(k, e)| (k.clone(), e.fetched))
            .collect();
        by_age.sort_by_key(|(_, at)| *at);
        let excess = entries.len() - target;
        for (k, _) in by_age.into_iter().take(excess) {
            entries.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_store::{RecorderId, UserId};
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    struct Fake {
        calls: AtomicUsize,
        bulk_calls: AtomicUsize,
        down: AtomicBool,
        deleted: AtomicBool,
    }

    impl Fake {
        fn answer(&self, token: &str) -> Result<Option<WebhookTarget>, String> {
            if self.down.load(Ordering::SeqCst) {
                return Err("database down".into());
            }
            Ok((token == "good" && !self.deleted.load(Ordering::SeqCst)).then(target))
        }
    }

    fn target() -> WebhookTarget {
        WebhookTarget {
            recorder: RecorderId::new(),
            owner: UserId::new(),
            name: "r".into(),
            symbol: None,
            custom_ticker: None,
        }
    }

    #[async_trait]
    impl TargetSource for Fake {
        async fn resolve(&self, token: &str) -> Result<Option<WebhookTarget>, String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.answer(token)
        }

        async fn token_hashes(&self) -> Result<Vec<Vec<u8>>, String> {
            Ok(vec![token_hash("good")])
        }

        async fn resolve_many(
            &self,
            tokens: &[String],
        ) -> Result<Vec<(String, Option<WebhookTarget>)>, String> {
            self.bulk_calls.fetch_add(1, Ordering::SeqCst);
            tokens
                .iter()
                .map(|t| Ok((t.clone(), self.answer(t)?)))
                .collect()
        }
    }

    fn fake() -> Arc<Fake> {
        Arc::new(Fake {
            calls: AtomicUsize::new(0),
            bulk_calls: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn warm_tokens_are_revalidated_in_bulk_and_the_hot_path_stays_off_the_source() {
        let src = fake();
        let dir = Directory::new(src.clone(), DirectoryConfig::default());
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        assert_eq!(dir.resolve("bad").await, Resolution::Unknown);
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            // The recorder's token only: an unknown answer is kept, not revalidated.
            assert_eq!(dir.revalidate().await, Ok(1));
            assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
            assert_eq!(dir.resolve("bad").await, Resolution::Unknown);
        }
        assert_eq!(
            src.calls.load(Ordering::SeqCst),
            2,
            "only the first look-ups"
        );
        assert_eq!(src.bulk_calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deleted_token_is_unknown_after_the_next_revalidation() {
        let src = fake();
        let dir = Directory::new(src.clone(), DirectoryConfig::default());
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        src.deleted.store(true, Ordering::SeqCst);
        assert_eq!(dir.revalidate().await, Ok(1));
        assert_eq!(dir.resolve("good").await, Resolution::Unknown);
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_tokens_are_left_to_expire_and_a_failed_revalidation_changes_nothing() {
        let src = fake();
        let config = DirectoryConfig::default();
        let dir = Directory::new(src.clone(), config.clone());
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        src.down.store(true, Ordering::SeqCst);
        assert!(dir.revalidate().await.is_err());
        // Still served (stale) while the database is down.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        src.down.store(false, Ordering::SeqCst);
        tokio::time::advance(config.keep_warm_for + Duration::from_secs(1)).await;
        assert_eq!(dir.revalidate().await, Ok(0), "idle: not revalidated");
        assert_eq!(src.bulk_calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_answers_come_from_the_cache() {
        let src = fake();
        let dir = Directory::new(src.clone(), DirectoryConfig::default());
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        assert_eq!(dir.resolve("bad").await, Resolution::Unknown);
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
        // After `fresh_for` the source is asked again: a deleted token stops within seconds.
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        assert_eq!(src.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_answers_are_kept_a_minute_and_never_revalidated() {
        let src = fake();
        let dir = Directory::new(src.clone(), DirectoryConfig::default());
        for i in 0..100 {
            assert_eq!(
                dir.resolve(&format!("probe-{i}")).await,
                Resolution::Unknown
            );
        }
        assert!(!dir.is_known("probe-1"));
        for _ in 0..30 {
            tokio::time::advance(Duration::from_secs(1)).await;
            assert_eq!(dir.revalidate().await, Ok(0));
            assert_eq!(dir.resolve("probe-7").await, Resolution::Unknown);
        }
        assert_eq!(
            src.calls.load(Ordering::SeqCst),
            100,
            "one look-up per probe"
        );
        assert_eq!(src.bulk_calls.load(Ordering::SeqCst), 0, "no revalidation");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(dir.resolve("probe-7").await, Resolution::Unknown);
        assert_eq!(
            src.calls.load(Ordering::SeqCst),
            101,
            "asked again after a minute"
        );
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        assert!(dir.is_known("good"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_recorder_token_never_used_is_known_from_the_hashes() {
        let src = fake();
        let dir = Directory::new(src.clone(), DirectoryConfig::default());
        assert!(!dir.is_known("good"));
        assert_eq!(dir.refresh_known().await, Ok(1));
        assert!(dir.is_known("good"));
        assert!(!dir.is_known("bad"));
        assert_eq!(src.calls.load(Ordering::SeqCst), 0, "no look-up");
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_recorder_is_served_while_the_database_is_down() {
        let src = fake();
        let dir = Directory::new(src.clone(), DirectoryConfig::default());
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        src.down.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(matches!(dir.resolve("good").await, Resolution::Known(_)));
        // Never seen: cannot be resolved, and is not guessed.
        assert!(matches!(
            dir.resolve("other").await,
            Resolution::Unavailable(_)
        ));
        // Stale beyond the limit: unavailable, not served forever.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(matches!(
            dir.resolve("good").await,
            Resolution::Unavailable(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_lookup_is_cut_off() {
        struct Hang;
        #[async_trait]
        impl TargetSource for Hang {
            async fn resolve(&self, _: &str) -> Result<Option<WebhookTarget>, String> {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(None)
            }
        }
        let dir = Directory::new(Arc::new(Hang), DirectoryConfig::default());
        assert!(matches!(dir.resolve("x").await, Resolution::Unavailable(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_is_bounded_and_drops_unknown_tokens_first() {
        let src = fake();
        let config = DirectoryConfig {
            max_entries: 10,
            ..DirectoryConfig::default()
        };
        let dir = Directory::new(src, config);
        dir.resolve("good").await;
        for i in 0..50 {
            dir.resolve(&format!("probe-{i}")).await;
        }
        assert!(dir.len() <= 10);
        assert!(
            dir.entries.read().contains_key("good"),
            "known recorder kept"
        );
    }
}
