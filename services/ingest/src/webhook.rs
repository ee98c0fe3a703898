//! `POST /webhook/{token}`: the hot path.
//!
//! Token → recorder (cached), per-recorder rate limit, body limit, parse, de-duplicate, publish
//! to SIGNALS and answer only after the stream acknowledged the signal. Every request — accepted,
//! duplicate or refused — is handed to the raw webhook log without waiting for it. Every refusal
//! is a 4xx (or 503 when the bus cannot take the signal) with a JSON body a person can act on:
//! `{"status": <code>, "error": "<message>"}`; never a 500 for any body.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use jt_alerts::{AlertContext, AlertError, DedupKey, MAX_BODY_BYTES, parse_alert};
use jt_bus::{Bus, Envelope, MessageId, PublishError};
use jt_messages::{SignalGuard, SignalMessage};
use jt_store::repo::webhooks::{NewWebhookLog, WebhookTarget};
use jt_store::{SignalId, WebhookLogId};
use serde_json::json;
use uuid::Uuid;

use crate::directory::{Directory, Resolution};
use crate::log_writer::WebhookLog;
use crate::metrics as m;

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
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl WebhookState {
    /// Builds the state.
    #[must_use]
    pub fn new(directory: Directory, bus: Bus, log: WebhookLog, limit: RateLimit) -> Self {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Self {
            directory,
            bus,
            log,
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            limit,
        }
    }

    /// Forgets rate-limit state of recorders idle for a while (bounded memory).
    pub fn prune_rate_limits(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The handler's answer, before it becomes a response and a log row.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    result: &'static str,
    reason: Option<String>,
    signal: Option<Uuid>,
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
        }
    }
}

/// `POST /webhook/{token}`.
pub async fn handle(
    State(state): State<WebhookState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let received_at = Utc::now();
    let (parts, body) = request.into_parts();
    // The peer is known when the server was started with connect info (it always is in `run`).
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    let source = source_address(&parts.headers, peer);
    let (answer, recorder, raw) = process(&state, &token, body, received_at).await;
    m::answered(answer.result, answer.status.as_u16(), started.elapsed());
    state.log.record(NewWebhookLog {
        id: WebhookLogId::new(),
        received_at,
        recorder,
        source_ip: source,
        body: String::from_utf8_lossy(&raw).into_owned(),
        status_code: answer.status.as_u16(),
        result: answer.result.to_string(),
        reason: answer.reason.clone(),
        signal: answer.signal.map(SignalId),
    });
    (answer.status, axum::Json(answer.body)).into_response()
}

async fn process(
    state: &WebhookState,
    token: &str,
    body: Body,
    received_at: DateTime<Utc>,
) -> (Answer, Option<jt_store::RecorderId>, Bytes) {
    // The body first, so that even a refused request is logged with what was sent. Bodies up
    // to READ_LIMIT are read whole so the parser can say how large they are; beyond that the
    // connection is not worth more memory.
    let raw = match Limited::new(body, READ_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            let answer = Answer::refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the alert body is over {READ_LIMIT} bytes; the limit is {MAX_BODY_BYTES} \
                     bytes: send only the fields the alert needs"
                ),
            );
            return (answer, None, Bytes::new());
        }
        Err(err) => {
            let answer = Answer::refuse(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("the request body could not be read: {err}"),
            );
            return (answer, None, Bytes::new());
        }
    };

    let target = match state.directory.resolve(token).await {
        Resolution::Known(t) => t,
        Resolution::Unknown => {
            // Same answer whether or not the token ever existed.
            let answer = Answer::refuse(
                StatusCode::NOT_FOUND,
                "unknown_token",
                "unknown webhook token",
            );
            return (answer, None, raw);
        }
        Resolution::Unavailable(reason) => {
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
    let recorder = Some(target.recorder);

    if state.limiter.check_key(&target.recorder.0).is_err() {
        let answer = Answer::refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many alerts for this webhook: at most {} per second (bursts of {}); this \
                 alert was not executed",
                state.limit.per_second, state.limit.burst
            ),
        );
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
    let signal = match parse_alert(&raw, &ctx) {
        Ok(s) => s,
        Err(err) => return (Answer::alert_error(&err), recorder, raw),
    };

    let key = DedupKey::new(token, &raw, signal.time.is_some(), received_at);
    let signal_id = SignalMessage::id_for(key.msg_id());
    let answer = match queue(state, &target, &key, signal_id, signal, received_at).await {
        Ok(Queued::New) => Answer {
            status: StatusCode::OK,
            body: json!({ "status": "queued", "signal_id": signal_id }),
            result: "queued",
            reason: None,
            signal: Some(signal_id),
        },
        Ok(Queued::Duplicate) => Answer {
            status: StatusCode::OK,
            body: json!({ "status": "duplicate", "signal_id": signal_id }),
            result: "duplicate",
            reason: Some("the same alert arrived less than a second earlier".into()),
            signal: None,
        },
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

enum Queued {
    New,
    Duplicate,
}

/// Publishes the de-duplication guard (bodies without `time`) and then the signal; see
/// `jt_alerts::dedup` for why two ids are needed.
async fn queue(
    state: &WebhookState,
    target: &WebhookTarget,
    key: &DedupKey,
    signal_id: Uuid,
    signal: jt_alerts::Signal,
    received_at: DateTime<Utc>,
) -> Result<Queued, PublishError> {
    let recorder_id = target.recorder.0;
    if let Some(guard_id) = key.guard_id() {
        let guard = Envelope::new(
            MessageId::new(guard_id)?,
            SignalGuard {
                recorder_id,
                signal_id,
            },
        );
        let receipt = state.bus.publish(&guard).await?;
        // After a timed-out attempt the guard may be our own (stored by that attempt): then it
        // proves nothing, and the signal's own id still catches a same-second duplicate.
        if receipt.duplicate && !receipt.retried_unconfirmed {
            return Ok(Queued::Duplicate);
        }
    }
    let message = SignalMessage {
        signal_id,
        recorder_id,
        owner_id: target.owner.0,
        received_at,
        signal,
    };
    let envelope = Envelope::new(MessageId::new(key.msg_id())?, message).with_trace(
        jt_bus::TraceContext::from_pairs(&jt_runtime::telemetry::inject_context()),
    );
    let receipt = state.bus.publish(&envelope).await?;
    Ok(if receipt.duplicate {
        Queued::Duplicate
    } else {
        Queued::New
    })
}

/// The client's address: the first `X-Forwarded-For` hop when behind a proxy, else the peer.
fn source_address(headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<String> {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| peer.map(|p| p.ip().to_string()))
}
