//! `POST /webhook/{token}`: the hot path.
//!
//! Token shape, token → recorder (cached), per-recorder rate limit, body limit and read
//! timeout, parse, de-duplicate, publish to SIGNALS and answer only after the stream
//! acknowledged the signal. Every request for a recorder — accepted, duplicate or refused — is
//! handed to the raw webhook log without waiting for it; requests without a known token are
//! limited per address and logged in aggregate ([`crate::strangers`]). Every refusal is a 4xx
//! (or 503 when the bus cannot take the signal) with a JSON body a person can act on:
//! `{"status": <code>, "error": "<message>"}`, and `Retry-After` on a 429; never a 500 for any
//! body.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use jt_alerts::{
    AlertContext, AlertError, DedupKey, MAX_BODY_BYTES, check_alert_time, parse_alert,
};
use jt_bus::{Bus, Envelope, MessageId, PublishError};
use jt_messages::SignalMessage;
use jt_store::auth::is_token_shaped;
use jt_store::repo::webhooks::{LOGGED_BODY_BYTES, NewWebhookLog, WebhookTarget};
use jt_store::text::strip_nul_opt;
use jt_store::{SignalId, WebhookLogId};
use serde_json::json;
use uuid::Uuid;

use crate::client::TrustedProxies;
use crate::directory::{Directory, Resolution};
use crate::log_writer::WebhookLog;
use crate::metrics as m;
use crate::strangers::{Kind, Strangers};

/// The most the handler reads of a body (the parser refuses anything over
/// [`MAX_BODY_BYTES`] with its size).
const READ_LIMIT: usize = 1024 * 1024;

/// Per-recorder alert rate limit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Sustained alerts per second for one webhook token.
    pub per_second: NonZeroU32,
    /// Alerts that may arrive at once.
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        // TradingView itself disables an alert firing more than 15 times in 3 minutes; a
        // strategy with several alerts on one recorder still stays far below this.
        Self {
            per_second: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// What the handler needs; cheap to clone.
#[derive(Clone)]
pub struct WebhookState {
    pub(crate) directory: Directory,
    pub(crate) bus: Bus,
    pub(crate) log: WebhookLog,
    pub(crate) limiter: Arc<DefaultKeyedRateLimiter<Uuid>>,
    pub(crate) limit: RateLimit,
    pub(crate) strangers: Arc<Strangers>,
    pub(crate) proxies: Arc<TrustedProxies>,
    pub(crate) body_timeout: Duration,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// How the handler treats requests beyond the recorder's own limit.
#[derive(Debug, Clone)]
pub struct Guards {
    /// Requests without a known token per address.
    pub unknown_limit: RateLimit,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// The longest a request body may take to arrive.
    pub body_timeout: Duration,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            // Generous for people (typos, a deleted recorder whose alerts still fire through
            // TradingView's few addresses), small for a flood of probes.
            unknown_limit: RateLimit {
                per_second: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
                burst: NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
            },
            trusted_proxies: TrustedProxies::default(),
            // TradingView gives up after about 3 s; a body still trickling in after 10 s is
            // not an alert worth a connection.
            body_timeout: Duration::from_secs(10),
        }
    }
}

impl WebhookState {
    /// Builds the state.
    #[must_use]
    pub fn new(
        directory: Directory,
        bus: Bus,
        log: WebhookLog,
        limit: RateLimit,
        guards: &Guards,
    ) -> Self {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Self {
            directory,
            bus,
            log,
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            limit,
            strangers: Strangers::new(guards.unknown_limit),
            proxies: Arc::new(guards.trusted_proxies.clone()),
            body_timeout: guards.body_timeout,
        }
    }

    /// Forgets rate-limit state of recorders and addresses idle for a while (bounded memory).
    pub fn prune_rate_limits(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.strangers.prune();
    }

    /// Hands the aggregated rows of requests without a known token to the webhook log.
    pub fn log_strangers(&self) {
        for row in self.strangers.drain() {
            self.log.record(row);
        }
    }
}

/// The handler's answer, before it becomes a response and a log row.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    result: &'static str,
    reason: Option<String>,
    signal: Option<Uuid>,
    retry_after: Option<Duration>,
}

impl Answer {
    fn refuse(status: StatusCode, result: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status,
            body: json!({ "status": status.as_u16(), "error": message }),
            result,
            reason: Some(message),
            signal: None,
            retry_after: None,
        }
    }

    fn alert_error(err: &AlertError) -> Self {
        let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self {
            status,
            body: json!({ "status": err.http_status(), "error": err.to_string() }),
            result: err.kind(),
            reason: Some(err.to_string()),
            signal: None,
            retry_after: None,
        }
    }

    fn after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client retrying earlier is refused again.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// The request's peer (known when the server was started with connect info, as `run` does).
fn peer_of(parts: &axum::http::request::Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// `POST /webhook/{token}`.
pub async fn handle(
    State(state): State<WebhookState>,
    token: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let received_at = Utc::now();
    let (parts, body) = request.into_parts();
    let source = state.proxies.client(&parts.headers, peer_of(&parts));
    // A token that cannot be ours (or a path that is not text) costs nothing more.
    let token = match token {
        Ok(Path(t)) if is_token_shaped(&t) => t,
        _ => return stranger(&state, source, Kind::InvalidToken, received_at, started),
    };
    // An address over its unknown-token budget gets no look-up for a token the cache does not
    // know as a recorder's.
    if let Some(wait) = state.strangers.blocked(source)
        && !state.directory.is_known(&token)
    {
        return throttled(
            &state,
            source,
            Kind::UnknownToken,
            wait,
            received_at,
            started,
        );
    }
    let target = match state.directory.resolve(&token).await {
        Resolution::Known(t) => Ok(t),
        Resolution::Unknown => {
            return match state.strangers.charge(source) {
                Ok(()) => stranger(&state, source, Kind::UnknownToken, received_at, started),
                Err(wait) => throttled(
                    &state,
                    source,
                    Kind::UnknownToken,
                    wait,
                    received_at,
                    started,
                ),
            };
        }
        Resolution::Unavailable(reason) => Err(reason),
    };
    let (answer, recorder, raw) = process(&state, &token, target, body, received_at).await;
    m::answered(answer.result, answer.status.as_u16(), started.elapsed());
    // Only what the log keeps is converted: a 1 MiB body is not copied to be cut.
    let kept = &raw[..raw.len().min(LOGGED_BODY_BYTES + 4)];
    state.log.record(NewWebhookLog {
        id: WebhookLogId::new(),
        received_at,
        recorder,
        source_ip: source.map(|ip| ip.to_string()),
        body: String::from_utf8_lossy(kept).into_owned(),
        status_code: answer.status.as_u16(),
        result: answer.result.to_string(),
        reason: answer.reason.clone(),
        signal: answer.signal.map(SignalId),
    });
    answer.into_response()
}

/// Any other method on a webhook URL: 405 in JSON, counted with the address's requests without
/// a known token.
pub async fn wrong_method(State(state): State<WebhookState>, request: Request) -> Response {
    let started = Instant::now();
    let received_at = Utc::now();
    let (parts, _) = request.into_parts();
    let source = state.proxies.client(&parts.headers, peer_of(&parts));
    let answer = Answer::refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        "wrong_method",
        format!(
            "{} is not accepted here: TradingView alerts are sent with POST",
            parts.method
        ),
    );
    state
        .strangers
        .note(source, Kind::WrongMethod, 405, b"", received_at);
    m::answered(answer.result, 405, started.elapsed());
    let mut response = answer.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// Any path that is no webhook: 404 in JSON, counted with the address's requests without a
/// known token.
pub async fn no_such_path(State(state): State<WebhookState>, request: Request) -> Response {
    let started = Instant::now();
    let received_at = Utc::now();
    let (parts, _) = request.into_parts();
    let source = state.proxies.client(&parts.headers, peer_of(&parts));
    let answer = Answer::refuse(
        StatusCode::NOT_FOUND,
        "no_such_path",
        "no such endpoint: alerts are sent with POST to /webhook/<your webhook token>",
    );
    state
        .strangers
        .note(source, Kind::NoSuchPath, 404, b"", received_at);
    m::answered(answer.result, 404, started.elapsed());
    answer.into_response()
}

/// The answer to a request without a known token: the same 404 whether or not the token ever
/// existed, counted for the aggregate row instead of one log row each.
fn stranger(
    state: &WebhookState,
    source: Option<IpAddr>,
    kind: Kind,
    received_at: DateTime<Utc>,
    started: Instant,
) -> Response {
    state.strangers.note(source, kind, 404, b"", received_at);
    m::answered(kind.as_str(), 404, started.elapsed());
    Answer::refuse(
        StatusCode::NOT_FOUND,
        "unknown_token",
        "unknown webhook token",
    )
    .into_response()
}

fn throttled(
    state: &WebhookState,
    source: Option<IpAddr>,
    kind: Kind,
    wait: Duration,
    received_at: DateTime<Utc>,
    started: Instant,
) -> Response {
    state.strangers.note(source, kind, 429, b"", received_at);
    m::answered("unknown_token_throttled", 429, started.elapsed());
    Answer::refuse(
        StatusCode::TOO_MANY_REQUESTS,
        "unknown_token_throttled",
        format!(
            "too many requests with unknown webhook tokens from this address (at most {} per \
             second): check the webhook URL, and retry after the Retry-After seconds",
            state.strangers.limit().per_second
        ),
    )
    .after(wait)
    .into_response()
}

async fn process(
    state: &WebhookState,
    token: &str,
    target: Result<WebhookTarget, String>,
    body: Body,
    received_at: DateTime<Utc>,
) -> (Answer, Option<jt_store::RecorderId>, Bytes) {
    // The token is resolved already: every row below belongs to the recorder when it is known.
    let recorder = target.as_ref().ok().map(|t| t.recorder);
    // The body first, so that even a refused request is logged with what was sent. Bodies up
    // to READ_LIMIT are read whole so the parser can say how large they are; beyond that the
    // connection is not worth more memory, and a body that trickles in is cut off.
    let read =
        tokio::time::timeout(state.body_timeout, Limited::new(body, READ_LIMIT).collect()).await;
    let raw = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            let answer = Answer::refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the alert body is over {READ_LIMIT} bytes; the limit is {MAX_BODY_BYTES} \
                     bytes: send only the fields the alert needs"
                ),
            );
            return (answer, recorder, Bytes::new());
        }
        Ok(Err(err)) => {
            let answer = Answer::refuse(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("the request body could not be read: {err}"),
            );
            return (answer, recorder, Bytes::new());
        }
        Err(_) => {
            let answer = Answer::refuse(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} s; the alert was not executed",
                    state.body_timeout.as_secs_f32()
                ),
            );
            return (answer, recorder, Bytes::new());
        }
    };

    let target = match target {
        Ok(t) => t,
        Err(reason) => {
            tracing::error!(%reason, "webhook token could not be resolved");
            let answer = Answer::refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "directory_unavailable",
                "the webhook could not be checked right now (database unavailable); the alert \
                 was not executed",
            );
            return (answer, None, raw);
        }
    };

    if let Err(not_until) = state.limiter.check_key(&target.recorder.0) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let answer = Answer::refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many alerts for this webhook: at most {} per second (bursts of {}); this \
                 alert was not executed",
                state.limit.per_second, state.limit.burst
            ),
        )
        .after(wait);
        return (answer, recorder, raw);
    }

    // `inverse_strategy` and a trader's own `custom_ticker` are per-trader settings: the
    // fan-out applies them. The recorder's `custom_ticker` applies here, so that a chart symbol
    // that is not a futures ticker (e.g. NAS100) is accepted for a recorder that trades MNQ.
    let ctx = AlertContext {
        recorder_symbol: target.symbol.as_deref(),
        custom_ticker: target.custom_ticker.as_deref(),
        inverse: false,
    };
    let signal = match parse_alert(&raw, &ctx)
        .and_then(|s| check_alert_time(s.time, received_at).map(|()| s))
    {
        Ok(s) => storable(s),
        Err(err) => return (Answer::alert_error(&err), recorder, raw),
    };

    let key = DedupKey::new(token, &raw, signal.time.is_some(), received_at);
    let signal_id = SignalMessage::id_for(key.msg_id());
    let answer = match queue(state, &target, key, signal_id, signal, received_at).await {
        Ok(Queued::New) => Answer {
            status: StatusCode::OK,
            body: json!({ "status": "queued", "signal_id": signal_id }),
            result: "queued",
            reason: None,
            signal: Some(signal_id),
            retry_after: None,
        },
        Ok(Queued::Duplicate) => Answer {
            status: StatusCode::OK,
            body: json!({ "status": "duplicate", "signal_id": signal_id }),
            result: "duplicate",
            reason: Some("the same alert arrived less than a second earlier".into()),
            signal: None,
            retry_after: None,
        },
        // An unconfirmed publish may still be stored: the NATS client keeps what it could not
        // send while disconnected and sends it on reconnecting (the chaos suite saw every such
        // alert executed after a 35 s NATS outage). Saying "not executed" would invite a resend,
        // which for an alert without `time` is a second signal.
        Err(err @ PublishError::Unconfirmed { .. }) => {
            tracing::error!(%err, recorder = %target.recorder, "signal not confirmed by the bus");
            Answer::refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "bus_unavailable",
                "the message bus did not confirm the alert in time (message bus unavailable); \
                 it may still be executed once the bus recovers: check the signal log before \
                 sending it again",
            )
        }
        Err(err) => {
            tracing::error!(%err, recorder = %target.recorder, "signal could not be queued");
            Answer::refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "bus_unavailable",
                "the alert could not be queued (message bus unavailable); it was not executed",
            )
        }
    };
    (answer, recorder, raw)
}

/// The signal without NUL characters in its texts (a JSON `\u0000` in a comment or ticker):
/// they mean nothing to a trade, and PostgreSQL refuses them wherever the signal is recorded.
fn storable(mut signal: jt_alerts::Signal) -> jt_alerts::Signal {
    signal.comment = strip_nul_opt(signal.comment);
    signal.ticker = strip_nul_opt(signal.ticker);
    signal.symbol = strip_nul_opt(signal.symbol);
    signal
}

enum Queued {
    New,
    Duplicate,
}

/// Publishes the signal: one acknowledged publish per alert, under the message id of its
/// de-duplication key (a copy in the same second is dropped by JetStream and answered
/// `duplicate`). A copy across a second boundary is published too and recorded as a
/// duplicate by the fan-out, which compares the key's body digest (`jt_alerts::dedup`).
async fn queue(
    state: &WebhookState,
    target: &WebhookTarget,
    key: DedupKey,
    signal_id: Uuid,
    signal: jt_alerts::Signal,
    received_at: DateTime<Utc>,
) -> Result<Queued, PublishError> {
    let id = MessageId::new(key.msg_id())?;
    let message = SignalMessage {
        signal_id,
        recorder_id: target.recorder.0,
        owner_id: target.owner.0,
        received_at,
        signal,
        body_digest: key.into_body_digest(),
    };
    let envelope = Envelope::new(id, message).with_trace(jt_bus::TraceContext::from_pairs(
        &jt_runtime::telemetry::inject_context(),
    ));
    let receipt = state.bus.publish(&envelope).await?;
    // A retried attempt of this same request finds its own earlier publish stored: that is
    // this alert queued, not a copy of another.
    Ok(if receipt.duplicate && !receipt.retried_unconfirmed {
        Queued::Duplicate
    } else {
        Queued::New
    })
}
