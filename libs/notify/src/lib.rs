//! The notifier: delivers the notifications producers queued (`notification_deliveries`, one
//! row per channel and event) to users' channels — signed webhooks, Discord webhooks, e-mail.
//!
//! - **At least once, once per event.** Producers only insert a row; the store's unique key
//!   `(channel, dedup_key)` makes a repeated event one delivery. The notifier sends a row until a
//!   send succeeds, recording each attempt; a crash between the send and the record sends it
//!   again (at least once, never silently lost).
//! - **One sender per delivery across replicas.** Before sending, a row is *claimed* in the
//!   store (a conditional update that moves its next attempt past the send's time-out); a
//!   replica that loses the race skips it, one that dies mid-send leaves it due again when the
//!   claim runs out. Every replica of the owning service may run a notifier.
//! - **Rate limited per channel.** A keyed limiter (`JT_NOTIFY_RATE_PER_MINUTE`,
//!   `JT_NOTIFY_BURST`) and a cap on sends in flight per channel: a burst to one channel is put
//!   off (spaced by the channel's rate, without counting an attempt) while other channels go on.
//!   The limiter is per replica: R replicas allow a channel R times the rate.
//! - **Retried with back-off.** A transient failure (network, time-out, 5xx, 408, 425) is
//!   retried after an exponential back-off with jitter; a 429 after the receiver's own wait
//!   (Discord's `retry_after`), and the channel is held back until then. A refusal (another
//!   4xx, a 5xx SMTP reply) or the last attempt (`JT_NOTIFY_MAX_ATTEMPTS`) marks the row
//!   `failed` with the last error.
//! - **Never in trading's way.** Every send has a time-out and runs on its own task; the worker
//!   runs on its own task in the process that owns it (the risk service), and producers only
//!   write a row.
//!
//! - **Never into the platform's own network.** A webhook or Discord target whose host resolves
//!   to a private address (loopback, RFC 1918, link-local and cloud metadata, CGNAT, …) is
//!   refused — `failed`, not retried — unless `JT_NOTIFY_ALLOW_PRIVATE_TARGETS` allows it; the
//!   check is in the HTTP client's resolver, so the checked address is the one connected to
//!   ([`target`]).
//!
//! What it must not do: decide who gets what (the store's channels and events do), or follow a
//! receiver's redirect. `docs/notifications.md` documents the formats and the signature.

mod metrics;
pub mod send;
pub mod sign;
pub mod target;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use jt_mail::{FileMailer, Mailer, SmtpConfig, SmtpMailer};
use jt_runtime::config::{ConfigError, Env, optional, or_default};
use jt_store::repo::notifications::DueDelivery;
use jt_store::{ChannelId, ChannelKind, Secret, Store, StoreError};
use parking_lot::Mutex;
use rand::Rng as _;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::send::SendError;

/// The notifier's settings.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// How often due deliveries are looked for (`JT_NOTIFY_POLL_MS`, default 1000).
    pub poll_every: Duration,
    /// Due deliveries read per round (`JT_NOTIFY_BATCH`, default 100).
    pub batch: u64,
    /// Attempts before a delivery is given up as `failed` (`JT_NOTIFY_MAX_ATTEMPTS`,
    /// default 8: with the default back-off, about two hours of trying).
    pub max_attempts: u32,
    /// The first retry's back-off (`JT_NOTIFY_BACKOFF_BASE_SECS`, default 30); each next
    /// retry doubles it, with jitter (half to all of it).
    pub backoff_base: Duration,
    /// The back-off's ceiling (`JT_NOTIFY_BACKOFF_MAX_SECS`, default 3600).
    pub backoff_max: Duration,
    /// Bound on one send (`JT_NOTIFY_TIMEOUT_SECS`, default 10).
    pub send_timeout: Duration,
    /// Sends per channel per minute (`JT_NOTIFY_RATE_PER_MINUTE`, default 30: Discord allows a
    /// webhook 30 a minute).
    pub per_minute: NonZeroU32,
    /// Sends a channel may take at once before the rate applies, and its cap on sends in flight
    /// (`JT_NOTIFY_BURST`, default 5).
    pub burst: NonZeroU32,
    /// Sends in flight across channels (`JT_NOTIFY_CONCURRENCY`, default 32).
    pub concurrency: usize,
    /// The SMTP server e-mail goes through (`JT_SMTP_URL`, as for the API; see `jt-mail`).
    pub smtp_url: Option<Secret>,
    /// Without SMTP: the folder mails are written into (`JT_MAIL_DIR`, as in `jt dev`).
    pub mail_dir: Option<PathBuf>,
    /// The sender of e-mails (`JT_MAIL_FROM`).
    pub mail_from: String,
    /// Whether webhook and Discord targets may be private addresses
    /// (`JT_NOTIFY_ALLOW_PRIVATE_TARGETS`, default false; `jt dev` turns it on): see
    /// [`target`].
    pub allow_private_targets: bool,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            poll_every: Duration::from_secs(1),
            batch: 100,
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            send_timeout: Duration::from_secs(10),
            per_minute: NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            concurrency: 32,
            smtp_url: None,
            mail_dir: None,
            mail_from: "Just Trades <no-reply@localhost>".into(),
            allow_private_targets: false,
        }
    }
}

impl NotifyConfig {
    /// Reads the settings from the environment (`JT_NOTIFY_*`, `JT_SMTP_URL`, `JT_MAIL_DIR`,
    /// `JT_MAIL_FROM`), with defaults.
    ///
    /// # Errors
    /// A variable that is set but malformed, named in the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let secs = |name, default: Duration| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(
                or_default(env, name, default.as_secs())?.max(1),
            ))
        };
        Ok(Self {
            poll_every: Duration::from_millis(
                or_default::<u64>(env, "JT_NOTIFY_POLL_MS", 1000)?.max(10),
            ),
            batch: or_default::<u64>(env, "JT_NOTIFY_BATCH", d.batch)?.clamp(1, 1000),
            max_attempts: or_default::<u32>(env, "JT_NOTIFY_MAX_ATTEMPTS", d.max_attempts)?.max(1),
            backoff_base: secs("JT_NOTIFY_BACKOFF_BASE_SECS", d.backoff_base)?,
            backoff_max: secs("JT_NOTIFY_BACKOFF_MAX_SECS", d.backoff_max)?,
            send_timeout: secs("JT_NOTIFY_TIMEOUT_SECS", d.send_timeout)?,
            per_minute: or_default(env, "JT_NOTIFY_RATE_PER_MINUTE", d.per_minute)?,
            burst: or_default(env, "JT_NOTIFY_BURST", d.burst)?,
            concurrency: or_default::<usize>(env, "JT_NOTIFY_CONCURRENCY", d.concurrency)?.max(1),
            smtp_url: optional::<String>(env, "JT_SMTP_URL")?.map(Secret::new),
            mail_dir: optional::<PathBuf>(env, "JT_MAIL_DIR")?,
            mail_from: or_default(env, "JT_MAIL_FROM", d.mail_from)?,
            allow_private_targets: or_default(env, target::ALLOW_PRIVATE_ENV, false)?,
        })
    }

    /// The mailer e-mail channels use: SMTP when `JT_SMTP_URL` is set, else the file mailer
    /// when `JT_MAIL_DIR` is, else none — an e-mail delivery then fails saying so, rather than
    /// being dropped as sent.
    ///
    /// # Errors
    /// A `JT_SMTP_URL` that cannot be used (named, without its password).
    pub fn mailer(&self) -> anyhow::Result<Option<Arc<dyn Mailer>>> {
        if let Some(url) = &self.smtp_url {
            let smtp = SmtpConfig::from_url(url.expose(), &self.mail_from)?;
            return Ok(Some(Arc::new(SmtpMailer::new(smtp))));
        }
        Ok(self.mail_dir.as_ref().map(|dir| {
            Arc::new(FileMailer::new(dir.clone(), self.mail_from.clone())) as Arc<dyn Mailer>
        }))
    }

    /// The wait before attempt `attempts + 1` after `attempts` failed ones: the base doubled per
    /// failure, capped, then jittered to between half and all of it (so the deliveries of one
    /// outage do not all come back at the same instant).
    #[must_use]
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doubled = self
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
            .min(self.backoff_max);
        let half = doubled / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }

    /// How long a claim holds a delivery: longer than any send plus recording it, so a claim
    /// never runs out while its send is still going.
    fn claim_for(&self) -> Duration {
        self.send_timeout * 2 + Duration::from_secs(30)
    }

    /// The spacing of one channel's sends at its rate.
    fn period(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute.get()
    }
}

struct Inner {
    config: NotifyConfig,
    store: Store,
    http: reqwest::Client,
    mailer: Option<Arc<dyn Mailer>>,
    limiter: DefaultKeyedRateLimiter<ChannelId>,
    /// Sends in flight per channel.
    in_flight: Mutex<HashMap<ChannelId, u32>>,
    /// Channels whose receiver asked to wait (a 429), until when.
    throttled: Mutex<HashMap<ChannelId, DateTime<Utc>>>,
}

/// The delivery worker.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn kind_label(kind: Option<ChannelKind>) -> &'static str {
    match kind {
        Some(ChannelKind::Webhook) => "webhook",
        Some(ChannelKind::Discord) => "discord",
        Some(ChannelKind::Email) => "email",
        None => "unknown",
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Notifier {
    /// A notifier over `store`, sending e-mail through `mailer` (none: e-mail deliveries fail
    /// saying e-mail is not configured).
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS provider installed).
    pub fn new(
        config: NotifyConfig,
        store: Store,
        mailer: Option<Arc<dyn Mailer>>,
    ) -> anyhow::Result<Self> {
        jt_runtime::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.send_timeout)
            .connect_timeout(config.send_timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Every name is resolved through the SSRF guard; the addresses it checked are the
            // ones connected to.
            .dns_resolver(Arc::new(target::GuardedResolver {
                allow_private: config.allow_private_targets,
            }))
            // No proxy from the environment: through a proxy the resolver would check the
            // proxy's address and the proxy would reach the target unchecked.
            .no_proxy()
            .user_agent(concat!("jt-notify/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let quota = Quota::with_period(config.period())
            .unwrap_or_else(|| Quota::per_minute(config.per_minute))
            .allow_burst(config.burst);
        Ok(Self {
            inner: Arc::new(Inner {
                limiter: DefaultKeyedRateLimiter::keyed(quota),
                config,
                store,
                http,
                mailer,
                in_flight: Mutex::new(HashMap::new()),
                throttled: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Delivers until `stop`, then lets the sends in flight finish (each bounded by the send
    /// time-out) and returns.
    pub async fn run(self, stop: CancellationToken) {
        metrics::register();
        let mut sends = JoinSet::new();
        tracing::info!(
            per_minute = self.inner.config.per_minute.get(),
            max_attempts = self.inner.config.max_attempts,
            email = self.inner.mailer.is_some(),
            allow_private_targets = self.inner.config.allow_private_targets,
            "notifier started"
        );
        loop {
            while sends.try_join_next().is_some() {}
            if let Err(e) = self.round(&mut sends).await {
                tracing::warn!(error = %e, "the notifier could not read or claim its deliveries");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.inner.config.poll_every) => {}
            }
        }
        while sends.join_next().await.is_some() {}
        tracing::info!("notifier stopped");
    }

    /// What keeps a due delivery of `channel` from being sent now, and for how long: the
    /// receiver's own wait, the sends in flight, or the channel's rate.
    fn hold(&self, channel: ChannelId, now: DateTime<Utc>) -> Option<(&'static str, Duration)> {
        let inner = &self.inner;
        let throttled = inner.throttled.lock().get(&channel).copied();
        if let Some(until) = throttled.filter(|u| *u > now) {
            return Some(("throttled", (until - now).to_std().unwrap_or_default()));
        }
        let flying = inner.in_flight.lock().get(&channel).copied().unwrap_or(0);
        if flying >= inner.config.burst.get() {
            return Some(("busy", inner.config.period()));
        }
        match inner.limiter.check_key(&channel) {
            Ok(()) => None,
            Err(not_until) => Some((
                "rate_limited",
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
        }
    }

    /// One round: reads the due deliveries, puts off those of held channels (spaced by the
    /// channel's rate), claims the others and starts their sends.
    async fn round(&self, sends: &mut JoinSet<()>) -> Result<(), StoreError> {
        let inner = &self.inner;
        let now = Utc::now();
        let system = inner.store.system();
        metrics::queue_due(system.count_due(now).await?);
        inner.throttled.lock().retain(|_, until| *until > now);
        inner.limiter.retain_recent();
        let due = system.due_deliveries(now, inner.config.batch).await?;
        let mut put_off: HashMap<ChannelId, u32> = HashMap::new();
        for d in due {
            if let Some((reason, wait)) = self.hold(d.channel, now) {
                let k = put_off.entry(d.channel).or_insert(0);
                let until = now + to_chrono(wait + inner.config.period() * *k);
                *k += 1;
                system.claim_delivery(d.id, now, until).await?;
                metrics::deferred(reason);
                continue;
            }
            if sends.len() >= inner.config.concurrency {
                break; // the rest stay due for the next round
            }
            let claimed_until = now + to_chrono(inner.config.claim_for());
            if !system.claim_delivery(d.id, now, claimed_until).await? {
                continue; // another replica has it, or it is done
            }
            *inner.in_flight.lock().entry(d.channel).or_insert(0) += 1;
            let me = self.clone();
            sends.spawn(async move {
                let channel = d.channel;
                me.deliver(d).await;
                let mut flying = me.inner.in_flight.lock();
                if let Some(n) = flying.get_mut(&channel) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        flying.remove(&channel);
                    }
                }
            });
        }
        Ok(())
    }

    /// One attempt on a claimed delivery, and its record.
    async fn deliver(&self, d: DueDelivery) {
        let inner = &self.inner;
        let notifications = inner.store.notifications();
        let (kind, result) = match notifications.open(d.owner, d.channel).await {
            // The channel was removed: its deliveries went with it.
            Err(StoreError::NotFound { .. }) => return,
            Err(e) => (
                None,
                Err(SendError::Retry {
                    reason: format!("the channel could not be read: {e}"),
                    after: None,
                }),
            ),
            Ok(ch) if !ch.enabled => (
                Some(ch.kind),
                Err(SendError::Permanent("the channel is disabled".into())),
            ),
            Ok(ch) => {
                let sent = tokio::time::timeout(
                    inner.config.send_timeout,
                    send::send(
                        &inner.http,
                        inner.mailer.as_deref(),
                        &ch,
                        &d,
                        Utc::now(),
                        inner.config.allow_private_targets,
                    ),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(SendError::Retry {
                        reason: format!(
                            "no answer within {:?} (JT_NOTIFY_TIMEOUT_SECS)",
                            inner.config.send_timeout
                        ),
                        after: None,
                    })
                });
                (Some(ch.kind), sent)
            }
        };
        let label = kind_label(kind);
        let attempts = u32::try_from(d.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let now = Utc::now();
        let recorded = match &result {
            Ok(()) => {
                metrics::delivery(label, "sent");
                tracing::info!(delivery = %d.id, event = %d.event_kind, kind = label, attempts, "notification delivered");
                notifications.record_attempt(d.owner, d.id, Ok(())).await
            }
            Err(SendError::Retry { reason, after }) if attempts < inner.config.max_attempts => {
                let wait = after.unwrap_or_else(|| inner.config.backoff(attempts));
                let next = now + to_chrono(wait);
                if after.is_some() {
                    inner.throttled.lock().insert(d.channel, next);
                }
                metrics::delivery(label, "retry");
                tracing::info!(delivery = %d.id, event = %d.event_kind, kind = label, attempts, error = %reason, ?wait, "notification not delivered: trying again later");
                notifications
                    .record_attempt(d.owner, d.id, Err((reason, Some(next))))
                    .await
            }
            Err(e) => {
                let reason = match e {
                    SendError::Retry { reason, .. } => {
                        format!("{reason} (gave up after {attempts} attempts)")
                    }
                    SendError::Permanent(reason) => reason.clone(),
                };
                metrics::delivery(label, "failed");
                tracing::warn!(delivery = %d.id, event = %d.event_kind, kind = label, attempts, error = %reason, "notification given up");
                notifications
                    .record_attempt(d.owner, d.id, Err((&reason, None)))
                    .await
            }
        };
        if let Err(e) = recorded {
            // The claim runs out and the delivery is attempted again: at least once.
            tracing::warn!(delivery = %d.id, error = %e, "a notification attempt could not be recorded");
        }
    }
}

/// Starts a notifier on its own task, with the mailer its settings ask for; it stops at
/// `stop`, after its sends in flight.
///
/// # Errors
/// A `JT_SMTP_URL` that cannot be used; the HTTP client cannot be built.
pub fn spawn(
    config: NotifyConfig,
    store: Store,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let mailer = config.mailer()?;
    let notifier = Notifier::new(config, store, mailer)?;
    Ok(tokio::spawn(notifier.run(stop)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_have_defaults_and_are_read_from_the_environment() {
        let c = NotifyConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c.max_attempts, 8);
        assert_eq!(c.per_minute.get(), 30);
        assert!(c.smtp_url.is_none());
        assert!(
            !c.allow_private_targets,
            "private targets are refused by default"
        );
        let c = NotifyConfig::from_env(&env(&[
            ("JT_NOTIFY_MAX_ATTEMPTS", "3"),
            ("JT_NOTIFY_RATE_PER_MINUTE", "60"),
            ("JT_NOTIFY_TIMEOUT_SECS", "0"),
            ("JT_SMTP_URL", "smtp://127.0.0.1:2525"),
            ("JT_NOTIFY_ALLOW_PRIVATE_TARGETS", "true"),
        ]))
        .unwrap();
        assert!(c.allow_private_targets);
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.period(), Duration::from_secs(1));
        assert_eq!(c.send_timeout, Duration::from_secs(1), "at least a second");
        assert!(c.mailer().unwrap().is_some());
        let e = NotifyConfig::from_env(&env(&[("JT_NOTIFY_RATE_PER_MINUTE", "0")])).unwrap_err();
        assert!(e.to_string().contains("JT_NOTIFY_RATE_PER_MINUTE"), "{e}");
    }

    #[test]
    fn the_backoff_doubles_with_jitter_up_to_its_ceiling() {
        let c = NotifyConfig {
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(60),
            ..NotifyConfig::default()
        };
        for _ in 0..50 {
            let first = c.backoff(1);
            assert!((Duration::from_secs(5)..=Duration::from_secs(10)).contains(&first));
            let third = c.backoff(3);
            assert!((Duration::from_secs(20)..=Duration::from_secs(40)).contains(&third));
            let late = c.backoff(30);
            assert!((Duration::from_secs(30)..=Duration::from_secs(60)).contains(&late));
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| c.backoff(2)).collect();
        assert!(spread.len() > 1, "jittered");
    }
}
