//! The HTTP plumbing under every venue's raw REST client: one connection pool per host shared
//! by every login on it ([`HostPools`]), the call classes and their timeouts ([`CallClass`],
//! [`HttpConfig`]), and one classification of how far a request got ([`RawError`]) — the
//! distinction the call policy lives by: a request never delivered did nothing, one delivered
//! without a complete answer may have moved money.
//!
//! A venue's raw client builds its requests with [`RestClient::request`], sends them with
//! [`RestClient::send`] and reads the body its own way (a venue may answer a refusal with a
//! 200, as Tradovate's penalty tickets do: [`Answer::into_body`] is where it looks first).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

/// Which timeout a call gets, and whether its outcome can be ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallClass {
    /// Token request and renewal.
    Auth,
    /// Anything that only reads.
    Read,
    /// Orders, cancels, closes: anything that moves money.
    Write,
}

impl CallClass {
    /// A bounded label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// Timeouts per call class, retries of reads and the look-ups after an ambiguous write.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-call timeout of token requests and renewals.
    pub auth_timeout: Duration,
    /// Whole-call timeout of reads.
    pub read_timeout: Duration,
    /// Whole-call timeout of orders, cancels and closes.
    pub write_timeout: Duration,
    /// Extra attempts of a read after a transport error or 5xx.
    pub read_retries: u32,
    /// Delay before the first read retry (doubles each time).
    pub read_retry_backoff: Duration,
    /// Look-ups by client order id after an ambiguous write.
    pub lookup_attempts: u32,
    /// Delay before each of those look-ups (the order may appear late).
    pub lookup_interval: Duration,
    /// Idle pooled connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// The longest a resolved contract is served from the login's cache (never past the
    /// contract's own expiration when the venue gave one): see [`crate::contracts`].
    pub contract_ttl: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            auth_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            read_retries: 2,
            read_retry_backoff: Duration::from_millis(250),
            lookup_attempts: 3,
            lookup_interval: Duration::from_millis(500),
            pool_max_idle_per_host: 32,
            contract_ttl: crate::contracts::DEFAULT_CONTRACT_TTL,
        }
    }
}

impl HttpConfig {
    /// The whole-call timeout of `class`.
    #[must_use]
    pub fn timeout(&self, class: CallClass) -> Duration {
        match class {
            CallClass::Auth => self.auth_timeout,
            CallClass::Read => self.read_timeout,
            CallClass::Write => self.write_timeout,
        }
    }
}

/// One `reqwest::Client` (one connection pool) per host, shared by every login on that host.
#[derive(Debug, Default)]
pub struct HostPools {
    clients: Mutex<HashMap<String, reqwest::Client>>,
}

impl HostPools {
    /// Pools of their own (a test, or a process that passes its plumbing in).
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The process-wide pools.
    #[must_use]
    pub fn shared() -> Arc<Self> {
        static POOLS: OnceLock<Arc<HostPools>> = OnceLock::new();
        Arc::clone(POOLS.get_or_init(Self::new))
    }

    /// The client for `url`'s host, built on first use.
    ///
    /// # Errors
    /// When reqwest cannot build a client (no TLS provider).
    pub fn client_for(&self, url: &Url, config: &HttpConfig) -> Result<reqwest::Client, String> {
        // reqwest is built without a bundled crypto provider: install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        );
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for {key}: {e}"))?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// How far a request got, when it did not produce a usable 2xx body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawError {
    /// The request was never delivered (connection refused, DNS, TLS): nothing happened.
    NotSent(String),
    /// The request was (or may have been) delivered and no complete answer came back
    /// (timeout, reset, truncated body): it may have been executed.
    NoAnswer(String),
    /// A non-2xx status.
    Status {
        /// HTTP status.
        status: u16,
        /// Body text (may be empty: 401 and 429 often carry none).
        body: String,
        /// `Retry-After`, when given in seconds.
        retry_after: Option<Duration>,
    },
    /// An answer asking to wait and send the identical request again with a ticket (Tradovate
    /// answers a 200 carrying `p-ticket`): the request was not executed.
    Penalty {
        /// The ticket the resend carries, when given.
        ticket: Option<String>,
        /// How long to wait first.
        wait: Duration,
        /// A person must solve a captcha; a bot waits about an hour.
        captcha: bool,
    },
    /// A 2xx whose body is not what the endpoint returns.
    Decode {
        /// What did not fit.
        detail: String,
        /// The body (first 512 bytes).
        body: String,
    },
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotSent(d) => write!(f, "not sent: {d}"),
            Self::NoAnswer(d) => write!(f, "no answer: {d}"),
            Self::Status { status, body, .. } => write!(f, "HTTP {status}: {body}"),
            Self::Penalty { wait, captcha, .. } => {
                write!(
                    f,
                    "penalty ticket, wait {} s, captcha {captcha}",
                    wait.as_secs()
                )
            }
            Self::Decode { detail, body } => write!(f, "undecodable answer ({detail}): {body}"),
        }
    }
}

impl RawError {
    /// A bounded label of the outcome (the `outcome` of `jt_broker_requests_total`).
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Penalty { .. } => "penalty",
            Self::Status { status: 401, .. } => "unauthorized",
            Self::Status {
                status: 423 | 429, ..
            } => "rate_limited",
            Self::Status { status, .. } if *status >= 500 => "server_error",
            Self::Status { .. } => "client_error",
            Self::NotSent(_) => "not_sent",
            Self::NoAnswer(_) => "no_answer",
            Self::Decode { .. } => "undecodable",
        }
    }
}

/// The first 512 bytes of a body (on a character boundary), for errors and logs.
#[must_use]
pub fn snippet(body: &str) -> String {
    let mut end = body.len().min(512);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

/// Decodes a 2xx body. A failure object where a list was expected is never an empty list.
///
/// # Errors
/// [`RawError::Decode`] with the body's first bytes.
pub fn decode<T: DeserializeOwned>(text: &str) -> Result<T, RawError> {
    serde_json::from_str(text).map_err(|e| RawError::Decode {
        detail: e.to_string(),
        body: snippet(text),
    })
}

/// A complete answer: status, `Retry-After` and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, when given in seconds.
    pub retry_after: Option<Duration>,
    /// The body text.
    pub body: String,
}

impl Answer {
    /// The body of a 2xx answer.
    ///
    /// # Errors
    /// [`RawError::Status`] for any other status.
    pub fn into_body(self) -> Result<String, RawError> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(RawError::Status {
                status: self.status,
                body: snippet(&self.body),
                retry_after: self.retry_after,
            })
        }
    }
}

/// The REST base of one venue host (`…/v1`, `…/api`): builds requests with the class's timeout
/// and sends them, saying how far each got. No retries, no policy.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: Url,
    config: HttpConfig,
}

impl RestClient {
    /// A client for `base` using the shared pool of its host.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: Url, config: HttpConfig, pools: &HostPools) -> Result<Self, String> {
        let http = pools.client_for(&base, &config)?;
        Ok(Self { http, base, config })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The base URL.
    #[must_use]
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// A request for `{base}/{path}?{query}` accepting JSON, with the class's timeout and the
    /// bearer token, when there is one.
    ///
    /// # Errors
    /// [`RawError::NotSent`] when the URL does not parse.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        class: CallClass,
        token: Option<&str>,
    ) -> Result<RequestBuilder, RawError> {
        let mut url = Url::parse(&format!(
            "{}/{path}",
            self.base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| RawError::NotSent(format!("bad URL for {path}: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut builder = self
            .http
            .request(method, url)
            .timeout(self.config.timeout(class))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        Ok(builder)
    }

    /// Sends `request` and reads the whole answer.
    ///
    /// # Errors
    /// [`RawError::NotSent`] when nothing was delivered (connect, TLS, a request that could
    /// not be built); [`RawError::NoAnswer`] when it may have been (timeout, reset, a body
    /// cut short).
    pub async fn send(request: RequestBuilder) -> Result<Answer, RawError> {
        let (client, request) = request.build_split();
        let request = request.map_err(|e| RawError::NotSent(e.to_string()))?;
        let span = client_span(&request);
        let answer = Self::execute(client, request)
            .instrument(span.clone())
            .await;
        match &answer {
            Ok(a) => {
                span.record("http.response.status_code", a.status);
                if a.status >= 400 {
                    span.record("error.type", a.status.to_string());
                    span.record("otel.status_code", "error");
                }
            }
            Err(e) => {
                span.record("error.type", e.label());
                span.record("otel.status_code", "error");
            }
        }
        answer
    }

    async fn execute(
        client: reqwest::Client,
        request: reqwest::Request,
    ) -> Result<Answer, RawError> {
        let response = client.execute(request).await.map_err(|e| {
            if e.is_connect() || e.is_builder() {
                RawError::NotSent(e.to_string())
            } else {
                RawError::NoAnswer(e.to_string())
            }
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .text()
            .await
            .map_err(|e| RawError::NoAnswer(format!("HTTP {status}, body lost: {e}")))?;
        Ok(Answer {
            status: status.as_u16(),
            retry_after,
            body,
        })
    }
}

/// The client span of one venue call, after OpenTelemetry's HTTP semantic conventions: named
/// after the method, with `http.request.method`, `server.address`, `server.port`, `url.full`
/// and, once answered, `http.response.status_code` (or `error.type`). The query string is left
/// out of `url.full`: it is the venue's business (ids, sometimes signatures), not the trace's.
/// No `traceparent` goes to the venue: a broker has no use for our trace ids.
fn client_span(request: &reqwest::Request) -> tracing::Span {
    let url = request.url();
    let mut full = url.clone();
    full.set_query(None);
    full.set_fragment(None);
    let _ = full.set_password(None);
    let _ = full.set_username("");
    tracing::info_span!(
        "http_client",
        otel.name = request.method().as_str(),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = request.method().as_str(),
        server.address = url.host_str(),
        server.port = url.port_or_known_default(),
        url.full = full.as_str(),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_object_is_not_an_empty_list() {
        let r: Result<Vec<u32>, _> = decode(r#"{"errorText":"Access is denied"}"#);
        assert!(matches!(r, Err(RawError::Decode { .. })));
        let r: Result<Vec<u32>, _> = decode("[]");
        assert_eq!(r.unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn only_2xx_answers_have_a_body_and_snippets_keep_characters_whole() {
        let ok = Answer {
            status: 204,
            retry_after: None,
            body: String::new(),
        };
        assert_eq!(ok.into_body(), Ok(String::new()));
        let throttled = Answer {
            status: 429,
            retry_after: Some(Duration::from_secs(3)),
            body: "é".repeat(300),
        };
        match throttled.into_body() {
            Err(RawError::Status {
                status: 429,
                body,
                retry_after: Some(wait),
            }) => {
                assert_eq!(wait, Duration::from_secs(3));
                assert_eq!(body.len(), 512);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn outcome_labels_are_bounded() {
        let status = |status| RawError::Status {
            status,
            body: String::new(),
            retry_after: None,
        };
        assert_eq!(status(401).label(), "unauthorized");
        assert_eq!(status(423).label(), "rate_limited");
        assert_eq!(status(429).label(), "rate_limited");
        assert_eq!(status(503).label(), "server_error");
        assert_eq!(status(404).label(), "client_error");
        assert_eq!(RawError::NoAnswer(String::new()).label(), "no_answer");
    }
}
