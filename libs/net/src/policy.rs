//! The one call policy of every venue: what a REST call may do before it gives up, and what its
//! failure means for the caller.
//!
//! For each attempt: the login's [`LoginLimits`] admit it, the session gives a token, the raw
//! call runs; then by how far it got ([`RawError`]):
//!
//! | outcome | reads | writes |
//! |---|---|---|
//! | not sent | retried (back-off doubling), then `Transport` | retried, then `Transport` |
//! | no answer, 5xx | retried, then `Transport` | **ambiguous**: looked up, never re-sent |
//! | 2xx not understood | `Transport` (or the venue's reading of the body) | ambiguous (or the venue's reading) |
//! | 401 | new token once, then `AuthExpired` | new token once, then `AuthExpired` |
//! | 429 (and 423 where the venue says so) | cool-down, `RateLimited` | cool-down, `RateLimited` |
//! | penalty ticket | waited out and re-sent with the ticket (bounded), else `Penalty` | the same: the broker did not execute it |
//! | captcha | `LockedOut` for the lock-out period | the same |
//! | 404 | [`CallError::NotFound`] | the same |
//! | other 4xx | `Rejected` with the status | the same |
//!
//! The venue hooks in where only it knows: its session ([`Authority`]: the token, and whether
//! a refused token's session still lives) and how it reads a 2xx body that did not decode
//! ([`BodyReader`]: Tradovate answers failures as 200s with `errorText`). An ambiguous write is
//! settled by the caller through [`Uncertain`]: looked up by client order id, and when the
//! look-up cannot settle it, `UnknownOutcome` — never a blind re-send.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jt_broker::BrokerError;
use parking_lot::Mutex;

use crate::http::{CallClass, HttpConfig, RawError};
use crate::limits::{Lane, LoginLimits};

/// What the session found after a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterUnauthorized {
    /// The token still works: the refusal was about the request, not the session.
    SessionAlive,
    /// A new token is in place (someone else renewed, or we logged in again): retry once.
    Replaced,
}

/// The venue's session, as the policy needs it.
#[async_trait]
pub trait Authority: Send + Sync {
    /// The session's token.
    type Token: Send + Sync;

    /// A token for the next attempt (renewed or obtained as the session's rules say).
    ///
    /// # Errors
    /// The session's errors (`NeedsReauth`, `LockedOut`, …): the call is not attempted.
    async fn token(&self) -> Result<Self::Token, BrokerError>;

    /// The bearer text of `token`.
    fn bearer(token: &Self::Token) -> &str;

    /// `token` was refused: find out whether the session lives, replacing the token when not.
    ///
    /// # Errors
    /// When no new token can be had.
    async fn after_unauthorized(
        &self,
        token: &Self::Token,
    ) -> Result<AfterUnauthorized, BrokerError>;
}

/// What a venue reads in a 2xx body that did not decode as the endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The body says the token was refused.
    Unauthorized(String),
    /// The body says the request was refused.
    Rejected {
        /// The venue's text.
        reason: String,
        /// The venue's code, if any.
        code: Option<String>,
    },
}

/// A venue's reading of an undecodable 2xx body: `None` when it is not a failure it knows.
pub type BodyReader = fn(&str) -> Option<Refusal>;

/// The venue's settings of the policy.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// The venue's metric label.
    pub venue: &'static str,
    /// Extra attempts of a read (or of any call not sent) after a transport error or 5xx.
    pub read_retries: u32,
    /// Delay before the first retry (doubles each time).
    pub read_retry_backoff: Duration,
    /// Cool-down after HTTP 429 when the answer gives no `Retry-After`.
    pub too_many_requests_backoff: Duration,
    /// Cool-down after HTTP 423 ("about to be locked out"), for a venue that sends it
    /// (`None`: a 423 is an ordinary refusal).
    pub locked_warning_backoff: Option<Duration>,
    /// A penalty wait up to this long is waited out inside the call; a longer one is returned
    /// as `Penalty`.
    pub max_inline_penalty_wait: Duration,
    /// Penalty rounds inside one call before giving up with `Penalty`.
    pub max_penalty_rounds: u32,
}

impl PolicyConfig {
    /// The policy of `venue` with the retries of `http` and no penalties or 423s.
    #[must_use]
    pub fn new(venue: &'static str, http: &HttpConfig, too_many_requests: Duration) -> Self {
        Self {
            venue,
            read_retries: http.read_retries,
            read_retry_backoff: http.read_retry_backoff,
            too_many_requests_backoff: too_many_requests,
            locked_warning_backoff: None,
            max_inline_penalty_wait: Duration::ZERO,
            max_penalty_rounds: 0,
        }
    }
}

/// One call: its endpoint (`op`, a bounded label), class and lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The endpoint, for logs, errors and the penalty ticket.
    pub op: &'static str,
    /// Read, write or auth.
    pub class: CallClass,
    /// The limits lane it spends.
    pub lane: Lane,
}

impl Call {
    /// A read of `op` in the main lane.
    #[must_use]
    pub fn read(op: &'static str) -> Self {
        Self {
            op,
            class: CallClass::Read,
            lane: Lane::MAIN,
        }
    }

    /// A write of `op` in the main lane.
    #[must_use]
    pub fn write(op: &'static str) -> Self {
        Self {
            op,
            class: CallClass::Write,
            lane: Lane::MAIN,
        }
    }

    /// The same call in `lane`.
    #[must_use]
    pub fn in_lane(self, lane: Lane) -> Self {
        Self { lane, ..self }
    }
}

/// How a policed call ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// A definite error.
    Broker(BrokerError),
    /// A write may have been executed: look it up before answering.
    Ambiguous(String),
    /// HTTP 404.
    NotFound(String),
}

impl From<BrokerError> for CallError {
    fn from(e: BrokerError) -> Self {
        Self::Broker(e)
    }
}

impl CallError {
    /// The broker error the caller of `op` sees when nothing settles it further (an ambiguous
    /// read is a transport error; a 404 is a rejection).
    #[must_use]
    pub fn into_broker(self, op: &str) -> BrokerError {
        match self {
            Self::Broker(e) => e,
            Self::Ambiguous(d) => BrokerError::transport(format!("{op}: {d}")),
            Self::NotFound(d) => BrokerError::Rejected {
                reason: format!("{op}: not found ({d})"),
                code: Some("NotFound".into()),
            },
        }
    }
}

/// The call policy of one login.
pub struct CallPolicy {
    config: PolicyConfig,
    limits: Arc<LoginLimits>,
    read_body: Option<BodyReader>,
    /// Penalty tickets handed back to callers, sent with the next call of the same endpoint.
    tickets: Mutex<HashMap<&'static str, String>>,
}

impl std::fmt::Debug for CallPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallPolicy")
            .field("config", &self.config)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl CallPolicy {
    /// The policy of a login with `limits`; `read_body` is the venue's reading of undecodable
    /// 2xx bodies.
    #[must_use]
    pub fn new(
        config: PolicyConfig,
        limits: Arc<LoginLimits>,
        read_body: Option<BodyReader>,
    ) -> Self {
        Self {
            config,
            limits,
            read_body,
            tickets: Mutex::new(HashMap::new()),
        }
    }

    /// The login's limits.
    #[must_use]
    pub fn limits(&self) -> &Arc<LoginLimits> {
        &self.limits
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Runs `attempt` under the policy; it gets the bearer token and the penalty ticket to
    /// send.
    ///
    /// # Errors
    /// See the module's table.
    pub async fn run<A, T, F, Fut>(
        &self,
        session: &A,
        call: Call,
        mut attempt: F,
    ) -> Result<T, CallError>
    where
        A: Authority,
        F: FnMut(String, Option<String>) -> Fut,
        Fut: Future<Output = Result<T, RawError>>,
    {
        let Call { op, class, lane } = call;
        let venue = self.config.venue;
        // A ticket handed back with `Penalty` goes out with the next call of the endpoint.
        let mut ticket: Option<String> = self.tickets.lock().remove(op);
        let mut penalty_rounds = 0u32;
        let mut retries = 0u32;
        let mut auth_retried = false;
        loop {
            self.limits.admit(lane).await?;
            let token = session.token().await?;
            let started = Instant::now();
            let result = attempt(A::bearer(&token).to_string(), ticket.clone()).await;
            let outcome = result.as_ref().map_or_else(RawError::label, |_| "ok");
            metrics::counter!("jt_broker_requests_total", "broker" => venue, "class" => class.as_str(), "outcome" => outcome)
                .increment(1);
            metrics::histogram!("jt_broker_request_duration_seconds", "broker" => venue, "class" => class.as_str())
                .record(started.elapsed().as_secs_f64());
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            tracing::debug!(venue, op, error = %err, "broker call failed");
            // What to do about a refused token (`in_body`: the body said so, with a 200).
            let unauthorized = async |detail: String, in_body: bool| -> Result<(), CallError> {
                match session.after_unauthorized(&token).await? {
                    AfterUnauthorized::Replaced => Ok(()),
                    // A failure object saying so while the session answers: about the order.
                    AfterUnauthorized::SessionAlive if in_body => Err(BrokerError::Rejected {
                        reason: detail,
                        code: Some("Unauthorized".into()),
                    }
                    .into()),
                    // A read refused with 401 is never "empty": the caller re-authenticates.
                    AfterUnauthorized::SessionAlive if class != CallClass::Write => {
                        Err(BrokerError::AuthExpired {
                            detail: format!(
                                "{op} refused with 401 ({detail}) although the session answers"
                            ),
                        }
                        .into())
                    }
                    // A write refused with 401 while the session lives is about the order
                    // (Tradovate answers 401 to cancelling a filled order).
                    AfterUnauthorized::SessionAlive => Err(BrokerError::Rejected {
                        reason: format!("unauthorized for {op}: {detail}"),
                        code: Some("Unauthorized".into()),
                    }
                    .into()),
                }
            };
            let retry = |retries: &mut u32, detail: String| -> Result<Duration, CallError> {
                if *retries >= self.config.read_retries {
                    return Err(BrokerError::transport(format!("{op}: {detail}")).into());
                }
                *retries += 1;
                Ok(self.config.read_retry_backoff * 2u32.pow(*retries - 1))
            };
            let wait = match err {
                RawError::Penalty { captcha: true, .. } => {
                    return Err(BrokerError::LockedOut {
                        until: self.limits.lock_out(),
                    }
                    .into());
                }
                RawError::Penalty {
                    ticket: t, wait, ..
                } => {
                    penalty_rounds += 1;
                    metrics::counter!("jt_broker_penalties_total", "broker" => venue).increment(1);
                    if penalty_rounds > self.config.max_penalty_rounds
                        || wait > self.config.max_inline_penalty_wait
                    {
                        let t = t.unwrap_or_default();
                        if !t.is_empty() {
                            self.tickets.lock().insert(op, t.clone());
                        }
                        return Err(BrokerError::Penalty { ticket: t, wait }.into());
                    }
                    tracing::info!(
                        venue,
                        op,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "penalty ticket: waiting, then resending with it"
                    );
                    ticket = t;
                    wait
                }
                RawError::Status {
                    status: 401, body, ..
                } => {
                    if auth_retried {
                        return Err(BrokerError::AuthExpired {
                            detail: format!("{op} refused with 401 after a new token ({body})"),
                        }
                        .into());
                    }
                    auth_retried = true;
                    unauthorized(body, false).await?;
                    Duration::ZERO
                }
                RawError::Status {
                    status: 429,
                    retry_after,
                    ..
                } => {
                    let wait = retry_after.unwrap_or(self.config.too_many_requests_backoff);
                    self.limits.cool_down(wait);
                    return Err(BrokerError::RateLimited { retry_after: wait }.into());
                }
                RawError::Status { status: 423, .. }
                    if self.config.locked_warning_backoff.is_some() =>
                {
                    let wait = self.config.locked_warning_backoff.unwrap_or_default();
                    self.limits.cool_down(wait);
                    return Err(BrokerError::RateLimited { retry_after: wait }.into());
                }
                RawError::Status {
                    status: 404, body, ..
                } => return Err(CallError::NotFound(body)),
                RawError::Status { status, body, .. } if status >= 500 => {
                    let detail = format!("HTTP {status}: {body}");
                    if class == CallClass::Write {
                        return Err(CallError::Ambiguous(detail));
                    }
                    retry(&mut retries, detail)?
                }
                RawError::Status { status, body, .. } => {
                    // 400 (our body does not fit), 405, …: nothing was executed.
                    return Err(BrokerError::Rejected {
                        reason: format!("{op}: HTTP {status}: {body}"),
                        code: Some(format!("Http{status}")),
                    }
                    .into());
                }
                RawError::NoAnswer(detail) => {
                    if class == CallClass::Write {
                        return Err(CallError::Ambiguous(detail));
                    }
                    retry(&mut retries, detail)?
                }
                // Nothing reached the broker: any call may be retried.
                RawError::NotSent(detail) => retry(&mut retries, detail)?,
                RawError::Decode { detail, body } => match self.read_body.and_then(|r| r(&body)) {
                    Some(Refusal::Unauthorized(text)) if !auth_retried => {
                        auth_retried = true;
                        unauthorized(text, true).await?;
                        Duration::ZERO
                    }
                    Some(Refusal::Unauthorized(text)) => {
                        return Err(BrokerError::AuthExpired { detail: text }.into());
                    }
                    Some(Refusal::Rejected { reason, code }) => {
                        return Err(BrokerError::Rejected { reason, code }.into());
                    }
                    None => {
                        let detail = format!("answer not understood ({detail}): {body}");
                        if class == CallClass::Write {
                            return Err(CallError::Ambiguous(detail));
                        }
                        return Err(BrokerError::transport(format!("{op}: {detail}")).into());
                    }
                },
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// A read: the policy's error as the caller sees it.
    ///
    /// # Errors
    /// See [`CallPolicy::run`] and [`CallError::into_broker`].
    pub async fn read<A, T, F, Fut>(
        &self,
        session: &A,
        call: Call,
        attempt: F,
    ) -> Result<T, BrokerError>
    where
        A: Authority,
        F: FnMut(String, Option<String>) -> Fut,
        Fut: Future<Output = Result<T, RawError>>,
    {
        self.run(session, call, attempt)
            .await
            .map_err(|e| e.into_broker(call.op))
    }

    /// A write: `Ok(Ok(answer))`, `Ok(Err(detail))` when its outcome is ambiguous (the caller
    /// settles it by looking it up), `Err` for a definite failure.
    ///
    /// # Errors
    /// See [`CallPolicy::run`].
    pub async fn write<A, T, F, Fut>(
        &self,
        session: &A,
        call: Call,
        attempt: F,
    ) -> Result<Result<T, String>, BrokerError>
    where
        A: Authority,
        F: FnMut(String, Option<String>) -> Fut,
        Fut: Future<Output = Result<T, RawError>>,
    {
        match self.run(session, call, attempt).await {
            Ok(v) => Ok(Ok(v)),
            Err(CallError::Ambiguous(detail)) => Ok(Err(detail)),
            Err(e) => Err(e.into_broker(call.op)),
        }
    }
}

/// Writes whose outcome was left unknown, by key (a client order id, with its account where
/// ids are per account): looked up before anything is sent with the same key again, so an
/// order is never sent twice.
#[derive(Debug)]
pub struct Uncertain<K> {
    venue: &'static str,
    attempts: u32,
    interval: Duration,
    keys: Mutex<HashSet<K>>,
}

impl<K: Eq + Hash> Uncertain<K> {
    /// The unknown outcomes of a login of `venue`, looked up as `http` says.
    #[must_use]
    pub fn new(venue: &'static str, http: &HttpConfig) -> Self {
        Self {
            venue,
            attempts: http.lookup_attempts,
            interval: http.lookup_interval,
            keys: Mutex::new(HashSet::new()),
        }
    }

    /// Whether `key` is waiting to be settled.
    #[must_use]
    pub fn contains(&self, key: &K) -> bool {
        self.keys.lock().contains(key)
    }

    /// Before sending `client_order_id` again: when an earlier attempt with it ended unknown,
    /// look it up first (never send it twice). `Some` when it exists (then the caller answers
    /// with it instead of sending); `None` when nothing is known or the look-up found nothing.
    ///
    /// # Errors
    /// `UnknownOutcome` when the look-up fails: still unknown, nothing may be sent.
    pub async fn check<T, F, Fut>(
        &self,
        key: &K,
        operation: &str,
        client_order_id: &str,
        lookup: F,
    ) -> Result<Option<T>, BrokerError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, BrokerError>>,
    {
        if !self.contains(key) {
            return Ok(None);
        }
        match lookup().await {
            Ok(found) => {
                self.keys.lock().remove(key);
                Ok(found)
            }
            Err(e) => Err(BrokerError::UnknownOutcome {
                operation: operation.to_string(),
                client_order_id: Some(client_order_id.to_string()),
                detail: format!("an earlier attempt is unresolved and the look-up failed: {e}"),
            }),
        }
    }

    /// After an ambiguous write: looks `client_order_id` up a few times (it may appear late).
    /// Found → it; otherwise `UnknownOutcome`, and `key` is remembered until settled.
    ///
    /// # Errors
    /// `UnknownOutcome`.
    pub async fn settle<T, F, Fut>(
        &self,
        key: K,
        operation: &str,
        client_order_id: &str,
        detail: String,
        lookup: F,
    ) -> Result<T, BrokerError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<T>, BrokerError>>,
    {
        let venue = self.venue;
        tracing::warn!(venue, operation, client_order_id, %detail, "ambiguous outcome; looking it up");
        metrics::counter!("jt_broker_ambiguous_writes_total", "broker" => venue).increment(1);
        let mut last_err = None;
        for _ in 0..self.attempts.max(1) {
            tokio::time::sleep(self.interval).await;
            match lookup().await {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => last_err = None,
                Err(e) => last_err = Some(e),
            }
        }
        self.keys.lock().insert(key);
        Err(BrokerError::UnknownOutcome {
            operation: operation.to_string(),
            client_order_id: Some(client_order_id.to_string()),
            detail: match last_err {
                Some(e) => format!("{detail}; look-up failed: {e}"),
                None => format!(
                    "{detail}; nothing with this client order id after {} look-ups",
                    self.attempts
                ),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    use crate::limits::{LaneConfig, LimitsConfig, Pace};

    /// A session whose token is `t<generation>`; a refused token is replaced (or, with
    /// `alive`, said to still work).
    struct FakeSession {
        generation: AtomicU32,
        alive: bool,
        refusals: AtomicU32,
    }

    impl FakeSession {
        fn new(alive: bool) -> Self {
            Self {
                generation: AtomicU32::new(1),
                alive,
                refusals: AtomicU32::new(0),
            }
        }
    }

    #[async_trait]
    impl Authority for FakeSession {
        type Token = String;
        async fn token(&self) -> Result<String, BrokerError> {
            Ok(format!("t{}", self.generation.load(Ordering::SeqCst)))
        }
        fn bearer(token: &String) -> &str {
            token
        }
        async fn after_unauthorized(&self, _: &String) -> Result<AfterUnauthorized, BrokerError> {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            if self.alive {
                return Ok(AfterUnauthorized::SessionAlive);
            }
            self.generation.fetch_add(1, Ordering::SeqCst);
            Ok(AfterUnauthorized::Replaced)
        }
    }

    fn policy(read_body: Option<BodyReader>) -> CallPolicy {
        let limits = LoginLimits::new(LimitsConfig {
            venue: "test",
            lanes: vec![LaneConfig {
                pace: Pace::PerSecond {
                    rate: 10_000,
                    burst: 10_000,
                },
                max_wait: None,
                counted: true,
            }],
            window: Duration::from_secs(60),
            budget: 10_000,
            refuse_when_spent: false,
            lockout: Duration::from_secs(3_600),
        });
        CallPolicy::new(
            PolicyConfig {
                venue: "test",
                read_retries: 2,
                read_retry_backoff: Duration::from_millis(1),
                too_many_requests_backoff: Duration::from_millis(40),
                locked_warning_backoff: Some(Duration::from_millis(20)),
                max_inline_penalty_wait: Duration::from_millis(50),
                max_penalty_rounds: 2,
            },
            Arc::new(limits),
            read_body,
        )
    }

    fn status(status: u16) -> RawError {
        RawError::Status {
            status,
            body: String::new(),
            retry_after: None,
        }
    }

    /// Runs `call` once under `p`, answering each attempt from `script` (then `Ok`); returns
    /// the result and what each attempt was sent with.
    async fn scripted(
        p: &CallPolicy,
        session: &FakeSession,
        call: Call,
        script: Vec<RawError>,
    ) -> (Result<u32, CallError>, Vec<(String, Option<String>)>) {
        let script = Mutex::new(script);
        let sent = Mutex::new(Vec::new());
        let result = p
            .run(session, call, |token, ticket| {
                sent.lock().push((token, ticket));
                let next = {
                    let mut s = script.lock();
                    (!s.is_empty()).then(|| s.remove(0))
                };
                async move { next.map_or(Ok(7), Err) }
            })
            .await;
        (result, sent.into_inner())
    }

    #[tokio::test]
    async fn an_ambiguous_write_is_never_resent_while_reads_retry_then_fail() {
        let p = policy(None);
        let s = FakeSession::new(false);
        let (r, sent) = scripted(
            &p,
            &s,
            Call::write("order/place"),
            vec![RawError::NoAnswer("reset".into())],
        )
        .await;
        assert_eq!(r, Err(CallError::Ambiguous("reset".into())));
        assert_eq!(sent.len(), 1);
        let (r, sent) = scripted(&p, &s, Call::write("order/place"), vec![status(502)]).await;
        assert!(matches!(r, Err(CallError::Ambiguous(_))), "{r:?}");
        assert_eq!(sent.len(), 1);
        // A read is retried twice, then is a transport error.
        let (r, sent) = scripted(&p, &s, Call::read("position/list"), vec![status(503); 3]).await;
        assert!(
            matches!(r, Err(CallError::Broker(BrokerError::Transport { .. }))),
            "{r:?}"
        );
        assert_eq!(sent.len(), 3);
        // Nothing sent: a write may be retried, and succeeds.
        let (r, sent) = scripted(
            &p,
            &s,
            Call::write("order/place"),
            vec![RawError::NotSent("refused".into())],
        )
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(sent.len(), 2);
    }

    #[tokio::test]
    async fn a_refused_token_is_replaced_once_then_the_session_is_expired() {
        let p = policy(None);
        let s = FakeSession::new(false);
        let (r, sent) = scripted(&p, &s, Call::read("account/list"), vec![status(401)]).await;
        assert_eq!(r, Ok(7));
        assert_eq!(
            sent.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            ["t1", "t2"]
        );
        let (r, _) = scripted(&p, &s, Call::read("account/list"), vec![status(401); 2]).await;
        assert!(
            matches!(r, Err(CallError::Broker(BrokerError::AuthExpired { .. }))),
            "{r:?}"
        );
        // While the session answers, a refused read needs re-authentication and a refused
        // write was about the order.
        let alive = FakeSession::new(true);
        let (r, _) = scripted(&p, &alive, Call::read("fill/list"), vec![status(401)]).await;
        assert!(
            matches!(r, Err(CallError::Broker(BrokerError::AuthExpired { .. }))),
            "{r:?}"
        );
        let (r, _) = scripted(
            &p,
            &alive,
            Call::write("order/cancelorder"),
            vec![status(401)],
        )
        .await;
        assert!(
            matches!(&r, Err(CallError::Broker(BrokerError::Rejected { code: Some(c), .. })) if c == "Unauthorized"),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn throttling_cools_the_login_down_and_is_never_retried_inline() {
        let p = policy(None);
        let s = FakeSession::new(false);
        let (r, sent) = scripted(&p, &s, Call::read("order/list"), vec![status(429)]).await;
        assert_eq!(
            r,
            Err(CallError::Broker(BrokerError::RateLimited {
                retry_after: Duration::from_millis(40)
            }))
        );
        assert_eq!(sent.len(), 1);
        // The next call is refused before it is sent.
        let (r, sent) = scripted(&p, &s, Call::read("order/list"), vec![]).await;
        assert!(matches!(
            r,
            Err(CallError::Broker(BrokerError::RateLimited { .. }))
        ));
        assert!(sent.is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        // 423 is a throttle where the venue says so, a refusal otherwise.
        let (r, _) = scripted(&p, &s, Call::read("order/list"), vec![status(423)]).await;
        assert_eq!(
            r,
            Err(CallError::Broker(BrokerError::RateLimited {
                retry_after: Duration::from_millis(20)
            }))
        );
        let mut plain = policy(None);
        plain.config.locked_warning_backoff = None;
        let (r, _) = scripted(&plain, &s, Call::read("order/list"), vec![status(423)]).await;
        assert!(
            matches!(&r, Err(CallError::Broker(BrokerError::Rejected { code: Some(c), .. })) if c == "Http423"),
            "{r:?}"
        );
        let (r, _) = scripted(&plain, &s, Call::read("order/item"), vec![status(404)]).await;
        assert_eq!(r, Err(CallError::NotFound(String::new())));
    }

    #[tokio::test]
    async fn penalties_are_waited_out_with_the_ticket_or_handed_back_and_a_captcha_locks_out() {
        let p = policy(None);
        let s = FakeSession::new(false);
        let penalty = |ticket: &str, ms| RawError::Penalty {
            ticket: Some(ticket.into()),
            wait: Duration::from_millis(ms),
            captcha: false,
        };
        let (r, sent) = scripted(&p, &s, Call::write("order/place"), vec![penalty("A", 5)]).await;
        assert_eq!(r, Ok(7));
        assert_eq!(
            sent[1].1.as_deref(),
            Some("A"),
            "the resend carries the ticket"
        );
        // Too long to wait inline: handed back, and the next call of the endpoint carries it.
        let (r, _) = scripted(&p, &s, Call::write("order/place"), vec![penalty("B", 500)]).await;
        assert!(
            matches!(&r, Err(CallError::Broker(BrokerError::Penalty { ticket, .. })) if ticket == "B"),
            "{r:?}"
        );
        let (r, sent) = scripted(&p, &s, Call::write("order/place"), vec![]).await;
        assert_eq!(r, Ok(7));
        assert_eq!(sent[0].1.as_deref(), Some("B"));
        let (r, _) = scripted(
            &p,
            &s,
            Call::read("account/list"),
            vec![RawError::Penalty {
                ticket: None,
                wait: Duration::from_secs(3_600),
                captcha: true,
            }],
        )
        .await;
        assert!(
            matches!(r, Err(CallError::Broker(BrokerError::LockedOut { .. }))),
            "{r:?}"
        );
        assert!(p.limits().locked_until().is_some());
    }

    #[tokio::test]
    async fn an_undecodable_answer_is_read_by_the_venue_or_is_ambiguous_for_a_write() {
        fn reader(body: &str) -> Option<Refusal> {
            match body {
                "denied" => Some(Refusal::Unauthorized("Access is denied".into())),
                "price" => Some(Refusal::Rejected {
                    reason: "Invalid price".into(),
                    code: Some("InvalidPrice".into()),
                }),
                _ => None,
            }
        }
        let decode = |body: &str| RawError::Decode {
            detail: "expected a list".into(),
            body: body.into(),
        };
        let p = policy(Some(reader));
        let s = FakeSession::new(false);
        let (r, sent) = scripted(&p, &s, Call::read("order/list"), vec![decode("denied")]).await;
        assert_eq!(r, Ok(7), "a new token, then the call again");
        assert_eq!(sent.len(), 2);
        let alive = FakeSession::new(true);
        let (r, _) = scripted(&p, &alive, Call::read("order/list"), vec![decode("denied")]).await;
        assert!(
            matches!(&r, Err(CallError::Broker(BrokerError::Rejected { code: Some(c), .. })) if c == "Unauthorized"),
            "{r:?}"
        );
        let (r, _) = scripted(&p, &s, Call::write("order/place"), vec![decode("price")]).await;
        assert!(
            matches!(&r, Err(CallError::Broker(BrokerError::Rejected { code: Some(c), .. })) if c == "InvalidPrice"),
            "{r:?}"
        );
        let (r, _) = scripted(&p, &s, Call::write("order/place"), vec![decode("?")]).await;
        assert!(matches!(r, Err(CallError::Ambiguous(_))), "{r:?}");
        let (r, _) = scripted(&p, &s, Call::read("order/list"), vec![decode("?")]).await;
        assert!(
            matches!(r, Err(CallError::Broker(BrokerError::Transport { .. }))),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn an_unknown_outcome_is_remembered_and_looked_up_before_any_resend() {
        let http = HttpConfig {
            lookup_attempts: 2,
            lookup_interval: Duration::from_millis(1),
            ..HttpConfig::default()
        };
        let u: Uncertain<String> = Uncertain::new("test", &http);
        let lookups = AtomicU32::new(0);
        let nothing = || async {
            lookups.fetch_add(1, Ordering::SeqCst);
            Ok::<Option<u32>, BrokerError>(None)
        };
        let r = u
            .settle("c1".into(), "place_order", "c1", "reset".into(), nothing)
            .await;
        assert!(
            matches!(&r, Err(BrokerError::UnknownOutcome { client_order_id: Some(c), .. }) if c == "c1"),
            "{r:?}"
        );
        assert_eq!(lookups.load(Ordering::SeqCst), 2);
        assert!(u.contains(&"c1".to_string()));
        // Before sending again: a failed look-up keeps it unknown; a found order is the answer.
        let failed = u
            .check(&"c1".to_string(), "place_order", "c1", || async {
                Err::<Option<u32>, _>(BrokerError::transport("down"))
            })
            .await;
        assert!(matches!(failed, Err(BrokerError::UnknownOutcome { .. })));
        let found = u
            .check(&"c1".to_string(), "place_order", "c1", || async {
                Ok::<_, BrokerError>(Some(42))
            })
            .await;
        assert_eq!(found, Ok(Some(42)));
        assert!(!u.contains(&"c1".to_string()), "settled");
        // A key never left unknown is not looked up at all.
        let untouched = u
            .check(&"c2".to_string(), "place_order", "c2", || async {
                panic!("no look-up for a key that was never unknown")
            })
            .await;
        assert_eq!(untouched, Ok::<Option<u32>, BrokerError>(None));
    }
}
