//! The JetStream backend (async-nats), for production and the integration tests.
//!
//! Targets NATS 2.10+ (KV and multiple filter subjects). Debian's 2.9 answers KV requests with
//! replies async-nats cannot read and silently ignores `filter_subjects`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, context::PublishErrorKind, kv, stream};
use async_nats::{HeaderMap, connection::State};
use tokio::time::Instant;

use crate::envelope::{Headers, RawMessage};
use crate::error::{BusError, KvError, PublishError};
use crate::kv::KvBucket;
use crate::raw::{
    ConsumerLag, HandedOut, HeadRead, PublishReceipt, StoredMessage, StreamShape, StreamStats,
};
use crate::topology::{ConsumerDef, Discard, KvDef, Retention, StreamDef, Topology};

/// How the JetStream backend talks to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamOptions {
    /// The client name the server shows (`jt-executor`, …).
    pub client_name: String,
    /// Timeout of one request or publish attempt.
    pub request_timeout: Duration,
    /// How long a publish keeps retrying (same message id) before it reports
    /// [`PublishError::Unconfirmed`]. Covers a server restart or a leader election.
    pub publish_deadline: Duration,
    /// How long a publish retries "no stream for this subject" while connected (JetStream
    /// answers that briefly while it restores streams after a restart).
    pub no_stream_grace: Duration,
    /// A NATS credentials file (`.creds`: user JWT and NKey seed), for servers with
    /// decentralised auth. `None`: the URL's user and password or token, if any.
    pub credentials_file: Option<PathBuf>,
    /// TLS to the server: required, with these trust roots and client certificate.
    pub tls: Option<TlsOptions>,
}

/// TLS to the NATS server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// PEM file of the CA(s) that signed the server's certificate (`None`: the system's web
    /// roots, for a server with a public certificate).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate and key of this client, for servers that verify clients (mutual TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        Self {
            client_name: "jt".to_owned(),
            request_timeout: Duration::from_secs(5),
            publish_deadline: Duration::from_secs(30),
            no_stream_grace: Duration::from_secs(5),
            credentials_file: None,
            tls: None,
        }
    }
}

/// The oldest NATS server the bus works with: 2.10 brought consumers with several filter
/// subjects (2.9 ignores them silently) and the account-info fields async-nats needs for
/// key-value buckets (on 2.9 `create_key_value` fails with an unreadable reply).
pub const MIN_SERVER_VERSION: &str = "2.10.0";

/// `Err(MIN_SERVER_VERSION)` when `found` (the server's `INFO` version, e.g. `2.9.10` or
/// `2.11.0-beta.2`) is older than [`MIN_SERVER_VERSION`] or cannot be read.
///
/// # Errors
/// The version needed.
pub fn check_server_version(found: &str) -> Result<(), &'static str> {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let core = v.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        Some((
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    };
    match (parse(found), parse(MIN_SERVER_VERSION)) {
        (Some(f), Some(min)) if f >= min => Ok(()),
        _ => Err(MIN_SERVER_VERSION),
    }
}

/// A connection to NATS with JetStream. Clones share the connection.
#[derive(Clone)]
pub struct JetStreamBus {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    options: JetStreamOptions,
}

impl std::fmt::Debug for JetStreamBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamBus")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

fn strip_credentials(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_and_user, host)) => {
            let scheme = scheme_and_user.split_once("://").map_or("", |(s, _)| s);
            if scheme.is_empty() {
                format!("***@{host}")
            } else {
                format!("{scheme}://***@{host}")
            }
        }
        None => url.to_owned(),
    }
}

impl JetStreamBus {
    /// Connects to `url`. The client reconnects forever after the first connection; a server
    /// that is down at start is an error (the service's readiness stays false and it restarts).
    ///
    /// # Errors
    /// [`BusError::Connect`] when the server cannot be reached.
    pub async fn connect(url: &str, options: JetStreamOptions) -> Result<Self, BusError> {
        let mut connect = async_nats::ConnectOptions::new()
            .name(&options.client_name)
            .request_timeout(Some(options.request_timeout))
            .max_reconnects(None);
        if let Some(path) = &options.credentials_file {
            connect = connect
                .credentials_file(path)
                .await
                .map_err(|e| BusError::Connect {
                    url: strip_credentials(url),
                    reason: format!("reading the credentials file {}: {e}", path.display()),
                })?;
        }
        if let Some(tls) = &options.tls {
            connect = connect.require_tls(true);
            if let Some(ca) = &tls.ca_file {
                connect = connect.add_root_certificates(ca.clone());
            }
            if let Some((cert, key)) = &tls.client_cert {
                connect = connect.add_client_certificate(cert.clone(), key.clone());
            }
        }
        let client = connect.connect(url).await.map_err(|e| BusError::Connect {
            url: strip_credentials(url),
            reason: e.to_string(),
        })?;
        let found = client.server_info().version;
        if let Err(needed) = check_server_version(&found) {
            return Err(BusError::UnsupportedServer {
                url: strip_credentials(url),
                found,
                needed,
            });
        }
        let js = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .build(client.clone());
        Ok(Self {
            inner: std::sync::Arc::new(Inner {
                client,
                js,
                options,
            }),
        })
    }

    /// The version the server reported when this connection was made.
    #[must_use]
    pub fn server_version(&self) -> String {
        self.inner.client.server_info().version
    }

    /// The underlying client (for health checks: `connection_state()`).
    #[must_use]
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    pub(crate) async fn provision_stream(&self, def: &StreamDef) -> Result<(), BusError> {
        self.inner
            .js
            .create_or_update_stream(stream_config(def))
            .await
            .map_err(|e| BusError::Provision {
                what: format!("stream {}", def.name),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    pub(crate) async fn provision_consumer(&self, def: &ConsumerDef) -> Result<(), BusError> {
        self.inner
            .js
            .create_consumer_on_stream(consumer_config(def), &def.stream)
            .await
            .map_err(|e| BusError::Provision {
                what: format!("consumer {} on {}", def.durable, def.stream),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    pub(crate) async fn provision_bucket(&self, def: &KvDef) -> Result<(), BusError> {
        self.inner
            .js
            .create_or_update_key_value(kv_config(def))
            .await
            .map_err(|e| BusError::Provision {
                what: format!("KV bucket {}", def.bucket),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    pub(crate) async fn delete_stream(&self, name: &str) -> Result<(), BusError> {
        match self.inner.js.delete_stream(name).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("not found") => Ok(()),
            Err(e) => Err(BusError::unavailable("delete stream", e)),
        }
    }

    pub(crate) async fn delete_bucket(&self, name: &str) -> Result<(), BusError> {
        match self.inner.js.delete_key_value(name).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("not found") => Ok(()),
            Err(e) => Err(BusError::unavailable("delete bucket", e)),
        }
    }

    async fn stream(&self, name: &str) -> Result<jetstream::stream::Stream<()>, BusError> {
        self.inner
            .js
            .get_stream_no_info(name)
            .await
            .map_err(|e| BusError::unavailable("stream", e))
    }

    async fn stream_info(&self, name: &str) -> Result<stream::Info, BusError> {
        let stream = self.stream(name).await?;
        stream.get_info().await.map_err(|e| {
            if e.to_string().contains("not found") {
                BusError::NotFound(format!("stream {name}"))
            } else {
                BusError::unavailable("stream info", e)
            }
        })
    }

    pub(crate) async fn stream_shape(&self, name: &str) -> Result<StreamShape, BusError> {
        let config = self.stream_info(name).await?.config;
        Ok(StreamShape {
            retention: match config.retention {
                stream::RetentionPolicy::WorkQueue => Retention::WorkQueue,
                _ => Retention::Limits,
            },
            direct_get: config.allow_direct,
            single_copy: config.num_replicas <= 1,
        })
    }

    pub(crate) async fn stream_stats(&self, name: &str) -> Result<StreamStats, BusError> {
        let state = self.stream_info(name).await?.state;
        Ok(StreamStats {
            messages: state.messages,
            bytes: state.bytes,
            first_sequence: if state.messages == 0 {
                0
            } else {
                state.first_sequence
            },
            last_sequence: state.last_sequence,
        })
    }

    /// The first message at or after `from_seq` whose subject matches `filter`, read from the
    /// stream leader (consistent with acks just made).
    pub(crate) async fn next_for_subject(
        &self,
        stream: &str,
        filter: &str,
        from_seq: u64,
    ) -> Result<Option<StoredMessage>, BusError> {
        let handle = self.stream(stream).await?;
        match handle
            .get_first_raw_message_by_subject(filter, from_seq.max(1))
            .await
        {
            Ok(m) => Ok(Some(StoredMessage {
                sequence: m.sequence,
                message: RawMessage {
                    subject: m.subject.to_string(),
                    headers: from_header_map(&m.headers),
                    payload: m.payload,
                },
            })),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(BusError::unavailable("read message", e)),
        }
    }

    /// The sequence of the oldest message on `subject` (a literal subject) in `stream`.
    pub(crate) async fn head_sequence(
        &self,
        stream: &str,
        subject: &str,
        read: HeadRead,
    ) -> Result<Option<u64>, BusError> {
        match read {
            HeadRead::Leader => Ok(self
                .next_for_subject(stream, subject, 1)
                .await?
                .map(|m| m.sequence)),
            HeadRead::AnyReplica => {
                let handle = self.stream(stream).await?;
                match handle.direct_get_first_for_subject(subject).await {
                    Ok(m) => Ok(Some(m.sequence)),
                    Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
                    Err(e) => Err(BusError::unavailable("direct get", e)),
                }
            }
        }
    }

    pub(crate) async fn delete_message(&self, stream: &str, seq: u64) -> Result<bool, BusError> {
        let handle = self.stream(stream).await?;
        match handle.delete_message(seq).await {
            Ok(done) => Ok(done),
            Err(e) if e.to_string().contains("no message found") => Ok(false),
            Err(e) => Err(BusError::unavailable("delete message", e)),
        }
    }

    pub(crate) async fn lag(&self, stream: &str, durable: &str) -> Result<ConsumerLag, BusError> {
        let handle = self.stream(stream).await?;
        let info = handle.consumer_info(durable).await.map_err(|e| {
            if e.to_string().contains("not found") {
                BusError::NotFound(format!("consumer {durable} on {stream}"))
            } else {
                BusError::unavailable("consumer info", e)
            }
        })?;
        Ok(ConsumerLag {
            pending: info.num_pending,
            ack_pending: info.num_ack_pending as u64,
            redelivered: info.num_redelivered as u64,
            waiting: info.num_waiting as u64,
        })
    }

    /// What a consumer has handed out: the last stream sequence delivered and how many
    /// deliveries await their ack; `None` when the consumer does not exist.
    pub(crate) async fn handed_out(
        &self,
        stream: &str,
        durable: &str,
    ) -> Result<Option<HandedOut>, BusError> {
        let handle = self.stream(stream).await?;
        match handle.consumer_info(durable).await {
            Ok(info) => Ok(Some(HandedOut {
                last_delivered: info.delivered.stream_sequence,
                ack_pending: info.num_ack_pending as u64,
            })),
            Err(e) if e.to_string().contains("not found") => Ok(None),
            Err(e) => Err(BusError::unavailable("consumer info", e)),
        }
    }

    /// Deletes a consumer (its messages stay in the stream); `false` when it did not exist.
    pub(crate) async fn delete_consumer(
        &self,
        stream: &str,
        durable: &str,
    ) -> Result<bool, BusError> {
        let handle = self.stream(stream).await?;
        match handle.delete_consumer(durable).await {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("not found") => Ok(false),
            Err(e) => Err(BusError::unavailable("delete consumer", e)),
        }
    }

    pub(crate) async fn pull_consumer(
        &self,
        stream: &str,
        durable: &str,
    ) -> Result<jetstream::consumer::PullConsumer, BusError> {
        self.inner
            .js
            .get_consumer_from_stream(durable, stream)
            .await
            .map_err(|e| {
                if e.to_string().contains("not found") {
                    BusError::NotFound(format!("consumer {durable} on {stream}"))
                } else {
                    BusError::unavailable("bind consumer", e)
                }
            })
    }

    pub(crate) async fn kv(&self, def: &KvDef) -> Result<KvBucket, KvError> {
        match self.inner.js.get_key_value(&def.bucket).await {
            Ok(store) => Ok(KvBucket::jetstream(def.bucket.clone(), def.ttl, store)),
            Err(e) if e.to_string().contains("not found") => {
                Err(KvError::NoBucket(def.bucket.clone()))
            }
            Err(e) => Err(KvError::unavailable("bind", &def.bucket, e)),
        }
    }

    /// Publishes and awaits the stream's acknowledgement, retrying with the same message id
    /// until [`JetStreamOptions::publish_deadline`].
    pub(crate) async fn ping(&self) -> Result<(), BusError> {
        self.inner
            .js
            .query_account()
            .await
            .map(|_| ())
            .map_err(|e| BusError::Unavailable {
                op: "ping",
                reason: e.to_string(),
            })
    }

    pub(crate) async fn publish(
        &self,
        message: &RawMessage,
    ) -> Result<PublishReceipt, PublishError> {
        let message_id = message.message_id().unwrap_or_default().to_owned();
        let headers = to_header_map(&message.headers);
        let started = Instant::now();
        let mut backoff = Duration::from_millis(25);
        let mut maybe_stored = false;
        let mut no_stream_since: Option<Instant> = None;
        loop {
            let attempt = async {
                let ack = self
                    .inner
                    .js
                    .send_publish(
                        message.subject.clone(),
                        jetstream::message::PublishMessage::build()
                            .payload(message.payload.clone())
                            .headers(headers.clone()),
                    )
                    .await?;
                ack.await
            };
            let err = match attempt.await {
                Ok(ack) => {
                    return Ok(PublishReceipt {
                        stream: ack.stream,
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                        retried_unconfirmed: maybe_stored,
                    });
                }
                Err(err) => err,
            };
            match classify(&err) {
                Failure::Rejected(reason) => {
                    return Err(PublishError::Rejected {
                        message_id,
                        subject: message.subject.clone(),
                        reason,
                    });
                }
                Failure::NoStream => {
                    let connected = self.inner.client.connection_state() == State::Connected;
                    let since = *no_stream_since.get_or_insert_with(Instant::now);
                    if connected
                        && !maybe_stored
                        && since.elapsed() >= self.inner.options.no_stream_grace
                    {
                        return Err(PublishError::NoStream {
                            subject: message.subject.clone(),
                        });
                    }
                }
                Failure::Unknown => {
                    maybe_stored = true;
                    no_stream_since = None;
                }
            }
            if started.elapsed() + backoff >= self.inner.options.publish_deadline {
                return Err(PublishError::Unconfirmed {
                    message_id,
                    subject: message.subject.clone(),
                    waited: started.elapsed(),
                    last_error: err.to_string(),
                });
            }
            tracing::debug!(subject = %message.subject, %message_id, error = %err, "publish not confirmed, retrying with the same id");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

enum Failure {
    /// The server refused it; it will refuse again.
    Rejected(String),
    /// Nobody answered on the subject: no stream (or JetStream not ready yet).
    NoStream,
    /// Timed out or the connection broke: it may or may not be stored.
    Unknown,
}

fn classify(err: &jetstream::context::PublishError) -> Failure {
    match err.kind() {
        PublishErrorKind::StreamNotFound => Failure::NoStream,
        PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence
        | PublishErrorKind::MaxPayloadExceeded => Failure::Rejected(err.to_string()),
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => Failure::Unknown,
        PublishErrorKind::Other => {
            let api =
                std::error::Error::source(err).and_then(|s| s.downcast_ref::<jetstream::Error>());
            match api {
                // 503: JetStream temporarily unavailable (restart, leader election).
                Some(api) if api.code() != 503 => Failure::Rejected(api.to_string()),
                _ => Failure::Unknown,
            }
        }
    }
}

pub(crate) fn to_header_map(headers: &Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in headers.iter() {
        map.append(n, v);
    }
    map
}

pub(crate) fn from_header_map(map: &HeaderMap) -> Headers {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, values) in map.iter() {
        for v in values {
            pairs.push((name.to_string(), v.as_str().to_owned()));
        }
    }
    // async-nats keeps headers in a hash map: sort names so reads are repeatable.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.into_iter().collect()
}

/// The JetStream stream configuration for a definition.
#[must_use]
pub fn stream_config(def: &StreamDef) -> stream::Config {
    stream::Config {
        name: def.name.clone(),
        description: Some(def.description.clone()),
        subjects: def.subjects.clone(),
        retention: match def.retention {
            Retention::Limits => stream::RetentionPolicy::Limits,
            Retention::WorkQueue => stream::RetentionPolicy::WorkQueue,
        },
        max_age: def.max_age.unwrap_or_default(),
        max_bytes: def.max_bytes,
        max_messages: def.max_msgs.unwrap_or(-1),
        discard: match def.discard {
            Discard::Old => stream::DiscardPolicy::Old,
            Discard::New => stream::DiscardPolicy::New,
        },
        duplicate_window: def.duplicate_window,
        num_replicas: def.replicas,
        storage: stream::StorageType::File,
        // Single-message reads (the serial gate's "oldest message of this key") without the
        // JSON and base64 wrapping of `STREAM.MSG.GET`, answered by any replica.
        allow_direct: true,
        ..Default::default()
    }
}

/// The JetStream consumer configuration for a definition.
///
/// The server's `max_deliver` is unlimited on purpose: the bus counts attempts itself and
/// dead-letters on the last one (with the message and the reason), and a serial consumer's
/// lock waits must not count as attempts. The logical limit is in the metadata.
#[must_use]
pub fn consumer_config(def: &ConsumerDef) -> pull::Config {
    let (filter_subject, filter_subjects) = match def.filter_subjects.as_slice() {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    };
    let mut metadata = HashMap::new();
    metadata.insert("jt.max_deliver".to_owned(), def.max_deliver.to_string());
    metadata.insert(
        "jt.dead_letter_subject".to_owned(),
        def.dead_letter_subject.clone(),
    );
    let backoff: Vec<String> = def
        .backoff
        .iter()
        .map(|d| format!("{}ms", d.as_millis()))
        .collect();
    metadata.insert("jt.backoff".to_owned(), backoff.join(","));
    if let Some(serial) = &def.serial {
        metadata.insert(
            "jt.serial_key_token".to_owned(),
            serial.key_token.to_string(),
        );
        metadata.insert("jt.serial_locks".to_owned(), serial.locks.bucket.clone());
        if let Some(parts) = &serial.partitions {
            metadata.insert("jt.partitions".to_owned(), parts.count.to_string());
            metadata.insert(
                "jt.partition_leases".to_owned(),
                parts.leases.bucket.clone(),
            );
        }
    }
    pull::Config {
        durable_name: Some(def.durable.clone()),
        description: Some(def.description.clone()),
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: def.ack_wait,
        max_deliver: -1,
        filter_subject,
        filter_subjects,
        max_ack_pending: def.max_ack_pending,
        metadata,
        ..Default::default()
    }
}

/// The JetStream KV configuration for a definition.
#[must_use]
pub fn kv_config(def: &KvDef) -> kv::Config {
    kv::Config {
        bucket: def.bucket.clone(),
        description: def.description.clone(),
        history: def.history,
        max_age: def.ttl.unwrap_or_default(),
        max_value_size: def.max_value_size,
        num_replicas: def.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// The JetStream configurations of a topology as JSON (what `nats/definitions.json` holds).
#[must_use]
pub fn describe(topology: &Topology) -> serde_json::Value {
    let streams: Vec<_> = topology.streams.iter().map(stream_config).collect();
    let consumers: Vec<_> = topology
        .consumers
        .iter()
        .flat_map(ConsumerDef::server_consumers)
        .map(|c| serde_json::json!({ "stream": c.stream, "config": consumer_config(&c) }))
        .collect();
    let buckets: Vec<_> = topology
        .buckets
        .iter()
        .map(|b| {
            serde_json::json!({
                "bucket": b.bucket,
                "description": b.description,
                "history": b.history,
                "ttl_seconds": b.ttl.map(|t| t.as_secs()),
                "max_value_size": b.max_value_size,
                "replicas": b.replicas,
            })
        })
        .collect();
    serde_json::json!({ "streams": streams, "consumers": consumers, "kv_buckets": buckets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_older_than_2_10_are_refused_with_the_version_needed() {
        for ok in [
            "2.10.0",
            "2.10.29",
            "2.11.0-beta.2",
            "2.15.1",
            "3.0.0",
            "v2.12.1",
        ] {
            assert_eq!(check_server_version(ok), Ok(()), "{ok}");
        }
        for old in ["2.9.10", "2.9.25", "2.2.0", "1.4.1", "", "garbage", "2"] {
            assert_eq!(check_server_version(old), Err("2.10.0"), "{old}");
        }
    }

    #[test]
    fn credentials_never_reach_error_messages() {
        assert_eq!(
            strip_credentials("nats://user:pw@host:4222"),
            "nats://***@host:4222"
        );
        assert_eq!(strip_credentials("nats://host:4222"), "nats://host:4222");
    }

    #[test]
    fn headers_survive_the_trip_through_async_nats() {
        let mut h = Headers::new();
        h.insert("Nats-Msg-Id", "a:b");
        h.insert("traceparent", "00-x-y-01");
        let back = from_header_map(&to_header_map(&h));
        assert_eq!(back.get("Nats-Msg-Id"), Some("a:b"));
        assert_eq!(back.get("traceparent"), Some("00-x-y-01"));
    }
}
