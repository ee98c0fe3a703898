//! The raw Tradovate REST client: one method per endpoint, named after it, returning the wire
//! bodies or a [`RawError`] that says exactly how far the request got. No retries, no policy:
//! [`super::client::TradovateHttpClient`] decides what each outcome means.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::tradovate::common::entities::{
    Account, Command, Contract, ContractMaturity, Fill, Order, OrderStrategy, OrderStrategyLink,
    OrderVersion, Position, Product,
};
use crate::tradovate::common::exact::parse_number_text;
use crate::tradovate::config::HttpConfig;

use super::models::{
    AccessTokenRequest, AccessTokenResponse, CancelOrder, CashBalanceSnapshot,
    CashBalanceSnapshotRequest, CommandResult, LiquidatePosition, ModifyOrder,
    OrderStrategyStatusResponse, PlaceOrder, PlaceOrderResult, StartOrderStrategy,
};

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
        /// Body text (may be empty: 429s carry none).
        body: String,
        /// `Retry-After`, when given in seconds.
        retry_after: Option<Duration>,
    },
    /// A 200 carrying a penalty ticket instead of an answer: the request was not executed.
    Penalty {
        /// `p-ticket`, when given.
        ticket: Option<String>,
        /// `p-time` in seconds.
        wait: Duration,
        /// `p-captcha: true`: a person must solve a captcha; a bot waits about an hour.
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

/// Which timeout a call gets.
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

/// One `reqwest::Client` (one connection pool) per host, shared by every login on that host.
#[derive(Debug, Default)]
pub struct HostPools {
    clients: Mutex<HashMap<String, reqwest::Client>>,
}

impl HostPools {
    /// The process-wide pools.
    #[must_use]
    pub fn shared() -> Arc<Self> {
        static POOLS: OnceLock<Arc<HostPools>> = OnceLock::new();
        Arc::clone(POOLS.get_or_init(|| Arc::new(Self::default())))
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

/// The raw client of one REST base (`…/v1`).
#[derive(Debug, Clone)]
pub struct TradovateRawHttpClient {
    http: reqwest::Client,
    base: Url,
    config: HttpConfig,
}

/// A request before sending: the policy layer may resend it with a penalty ticket.
#[derive(Debug, Clone)]
struct Request {
    method: Method,
    path: &'static str,
    query: Vec<(&'static str, String)>,
    body: Option<String>,
    class: CallClass,
}

fn body_of<T: Serialize>(value: &T) -> Result<String, RawError> {
    serde_json::to_string(value)
        .map_err(|e| RawError::NotSent(format!("body does not serialise: {e}")))
}

/// `body` with `"p-ticket"` added (penalty resend: identical body plus the ticket).
fn with_ticket(body: Option<&str>, ticket: &str) -> String {
    let ticket = serde_json::Value::String(ticket.to_string()).to_string();
    match body.map(str::trim) {
        Some(b) if b.starts_with('{') && b[1..].trim_start().starts_with('}') => {
            format!("{{\"p-ticket\":{ticket}}}")
        }
        Some(b) if b.starts_with('{') => format!("{{\"p-ticket\":{ticket},{}", &b[1..]),
        _ => format!("{{\"p-ticket\":{ticket}}}"),
    }
}

/// Reads a penalty object from a 200 body, if it is one.
fn penalty_in(body: &str) -> Option<RawError> {
    if !body.contains("p-ticket") && !body.contains("p-captcha") && !body.contains("p-time") {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "p-ticket", default)]
        ticket: Option<String>,
        #[serde(rename = "p-time", borrow, default)]
        time: Option<&'a serde_json::value::RawValue>,
        #[serde(rename = "p-captcha", default)]
        captcha: Option<bool>,
    }
    let probe: Probe<'_> = serde_json::from_str(body).ok()?;
    if probe.ticket.is_none() && probe.captcha.is_none() && probe.time.is_none() {
        return None;
    }
    let secs = probe
        .time
        .and_then(|t| parse_number_text(t.get()).ok())
        .unwrap_or_default();
    let millis = (secs * rust_decimal::Decimal::ONE_THOUSAND)
        .round()
        .try_into()
        .unwrap_or(0u64);
    Some(RawError::Penalty {
        ticket: probe.ticket,
        wait: Duration::from_millis(millis),
        captcha: probe.captcha.unwrap_or(false),
    })
}

fn snippet(body: &str) -> String {
    let mut end = body.len().min(512);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

impl TradovateRawHttpClient {
    /// A raw client for `base` (ending in `/v1`) using the shared pool of its host.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: Url, config: HttpConfig, pools: &HostPools) -> Result<Self, String> {
        let http = pools.client_for(&base, &config)?;
        Ok(Self { http, base, config })
    }

    fn timeout(&self, class: CallClass) -> Duration {
        match class {
            CallClass::Auth => self.config.auth_timeout,
            CallClass::Read => self.config.read_timeout,
            CallClass::Write => self.config.write_timeout,
        }
    }

    async fn send(
        &self,
        req: &Request,
        token: Option<&str>,
        ticket: Option<&str>,
    ) -> Result<String, RawError> {
        let mut url = Url::parse(&format!(
            "{}/{}",
            self.base.as_str().trim_end_matches('/'),
            req.path
        ))
        .map_err(|e| RawError::NotSent(format!("bad URL for {}: {e}", req.path)))?;
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query.iter());
        }
        let mut builder = self
            .http
            .request(req.method.clone(), url)
            .timeout(self.timeout(req.class))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        let body = match (ticket, req.body.as_deref()) {
            (Some(t), b) => Some(with_ticket(b, t)),
            (None, Some(b)) => Some(b.to_string()),
            (None, None) => None,
        };
        if let Some(body) = body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = builder.send().await.map_err(|e| {
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
        let text = response
            .text()
            .await
            .map_err(|e| RawError::NoAnswer(format!("HTTP {status}, body lost: {e}")))?;
        if status == StatusCode::OK
            && let Some(p) = penalty_in(&text)
        {
            return Err(p);
        }
        if !status.is_success() {
            return Err(RawError::Status {
                status: status.as_u16(),
                body: snippet(&text),
                retry_after,
            });
        }
        Ok(text)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        req: Request,
        token: Option<&str>,
        ticket: Option<&str>,
    ) -> Result<T, RawError> {
        let text = self.send(&req, token, ticket).await?;
        decode(&text)
    }

    fn get(path: &'static str, query: Vec<(&'static str, String)>) -> Request {
        Request {
            method: Method::GET,
            path,
            query,
            body: None,
            class: CallClass::Read,
        }
    }

    fn post<T: Serialize>(
        path: &'static str,
        body: &T,
        class: CallClass,
    ) -> Result<Request, RawError> {
        Ok(Request {
            method: Method::POST,
            path,
            query: Vec::new(),
            body: Some(body_of(body)?),
            class,
        })
    }

    /// `POST auth/accesstokenrequest`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn access_token_request(
        &self,
        body: &AccessTokenRequest,
        ticket: Option<&str>,
    ) -> Result<AccessTokenResponse, RawError> {
        let req = Self::post("auth/accesstokenrequest", body, CallClass::Auth)?;
        self.call(req, None, ticket).await
    }

    /// `GET auth/renewaccesstoken` with the current token.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn renew_access_token(&self, token: &str) -> Result<AccessTokenResponse, RawError> {
        let mut req = Self::get("auth/renewaccesstoken", Vec::new());
        req.class = CallClass::Auth;
        self.call(req, Some(token), None).await
    }

    /// `GET auth/me`: whether a token is still accepted.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn auth_me(&self, token: &str) -> Result<serde_json::Value, RawError> {
        self.call(Self::get("auth/me", Vec::new()), Some(token), None)
            .await
    }

    /// `GET account/list`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn account_list(
        &self,
        token: &str,
        ticket: Option<&str>,
    ) -> Result<Vec<Account>, RawError> {
        self.call(Self::get("account/list", Vec::new()), Some(token), ticket)
            .await
    }

    /// `GET contract/find?name=`.
    ///
    /// # Errors
    /// See [`RawError`] (404 when there is no such contract).
    pub async fn contract_find(
        &self,
        token: &str,
        name: &str,
        ticket: Option<&str>,
    ) -> Result<Contract, RawError> {
        let req = Self::get("contract/find", vec![("name", name.to_string())]);
        self.call(req, Some(token), ticket).await
    }

    /// `GET contract/item?id=`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn contract_item(
        &self,
        token: &str,
        id: i64,
        ticket: Option<&str>,
    ) -> Result<Contract, RawError> {
        let req = Self::get("contract/item", vec![("id", id.to_string())]);
        self.call(req, Some(token), ticket).await
    }

    /// `GET contract/suggest?t=&l=` (the spec's parameter names).
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn contract_suggest(
        &self,
        token: &str,
        text: &str,
        limit: u32,
        ticket: Option<&str>,
    ) -> Result<Vec<Contract>, RawError> {
        let req = Self::get(
            "contract/suggest",
            vec![("t", text.to_string()), ("l", limit.to_string())],
        );
        self.call(req, Some(token), ticket).await
    }

    /// `GET contractMaturity/items?ids=`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn contract_maturity_items(
        &self,
        token: &str,
        ids: &[i64],
        ticket: Option<&str>,
    ) -> Result<Vec<ContractMaturity>, RawError> {
        let req = Self::get("contractMaturity/items", vec![("ids", join(ids))]);
        self.call(req, Some(token), ticket).await
    }

    /// `GET product/find?name=`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn product_find(
        &self,
        token: &str,
        name: &str,
        ticket: Option<&str>,
    ) -> Result<Product, RawError> {
        let req = Self::get("product/find", vec![("name", name.to_string())]);
        self.call(req, Some(token), ticket).await
    }

    /// `GET contractMaturity/deps?masterid=<productId>`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn contract_maturity_deps(
        &self,
        token: &str,
        product_id: i64,
        ticket: Option<&str>,
    ) -> Result<Vec<ContractMaturity>, RawError> {
        let req = Self::get(
            "contractMaturity/deps",
            vec![("masterid", product_id.to_string())],
        );
        self.call(req, Some(token), ticket).await
    }

    /// `GET contract/deps?masterid=<contractMaturityId>`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn contract_deps(
        &self,
        token: &str,
        maturity_id: i64,
        ticket: Option<&str>,
    ) -> Result<Vec<Contract>, RawError> {
        let req = Self::get("contract/deps", vec![("masterid", maturity_id.to_string())]);
        self.call(req, Some(token), ticket).await
    }

    /// `GET position/deps?masterid=` (one account's positions; `position/list` would carry
    /// every account of the login).
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn position_deps(
        &self,
        token: &str,
        account_id: i64,
        ticket: Option<&str>,
    ) -> Result<Vec<Position>, RawError> {
        let req = Self::get("position/deps", vec![("masterid", account_id.to_string())]);
        self.call(req, Some(token), ticket).await
    }

    /// `GET order/deps?masterid=` (one account's orders of the session; `order/list` would
    /// carry every account of the login, so its size would grow with the login's accounts).
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_deps(
        &self,
        token: &str,
        account_id: i64,
        ticket: Option<&str>,
    ) -> Result<Vec<Order>, RawError> {
        let req = Self::get("order/deps", vec![("masterid", account_id.to_string())]);
        self.call(req, Some(token), ticket).await
    }

    /// `GET order/item?id=`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_item(
        &self,
        token: &str,
        id: i64,
        ticket: Option<&str>,
    ) -> Result<Order, RawError> {
        let req = Self::get("order/item", vec![("id", id.to_string())]);
        self.call(req, Some(token), ticket).await
    }

    /// `GET orderVersion/ldeps?masterids=` (versions of several orders in one call).
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_version_ldeps(
        &self,
        token: &str,
        order_ids: &[i64],
        ticket: Option<&str>,
    ) -> Result<Vec<OrderVersion>, RawError> {
        let req = Self::get("orderVersion/ldeps", vec![("masterids", join(order_ids))]);
        self.call(req, Some(token), ticket).await
    }

    /// `GET command/list` (carries the `clOrdId`s).
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn command_list(
        &self,
        token: &str,
        ticket: Option<&str>,
    ) -> Result<Vec<Command>, RawError> {
        self.call(Self::get("command/list", Vec::new()), Some(token), ticket)
            .await
    }

    /// `GET fill/list`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn fill_list(
        &self,
        token: &str,
        ticket: Option<&str>,
    ) -> Result<Vec<Fill>, RawError> {
        self.call(Self::get("fill/list", Vec::new()), Some(token), ticket)
            .await
    }

    /// `GET orderStrategy/list`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_strategy_list(
        &self,
        token: &str,
        ticket: Option<&str>,
    ) -> Result<Vec<OrderStrategy>, RawError> {
        self.call(
            Self::get("orderStrategy/list", Vec::new()),
            Some(token),
            ticket,
        )
        .await
    }

    /// `GET orderStrategyLink/deps?masterid=<strategyId>`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_strategy_link_deps(
        &self,
        token: &str,
        strategy_id: i64,
        ticket: Option<&str>,
    ) -> Result<Vec<OrderStrategyLink>, RawError> {
        let req = Self::get(
            "orderStrategyLink/deps",
            vec![("masterid", strategy_id.to_string())],
        );
        self.call(req, Some(token), ticket).await
    }

    /// `POST cashBalance/getcashbalancesnapshot`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn cash_balance_snapshot(
        &self,
        token: &str,
        body: &CashBalanceSnapshotRequest,
        ticket: Option<&str>,
    ) -> Result<CashBalanceSnapshot, RawError> {
        let req = Self::post("cashBalance/getcashbalancesnapshot", body, CallClass::Read)?;
        self.call(req, Some(token), ticket).await
    }

    /// `POST order/placeorder`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn place_order(
        &self,
        token: &str,
        body: &PlaceOrder,
        ticket: Option<&str>,
    ) -> Result<PlaceOrderResult, RawError> {
        let req = Self::post("order/placeorder", body, CallClass::Write)?;
        self.call(req, Some(token), ticket).await
    }

    /// `POST order/cancelorder`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn cancel_order(
        &self,
        token: &str,
        body: &CancelOrder,
        ticket: Option<&str>,
    ) -> Result<CommandResult, RawError> {
        let req = Self::post("order/cancelorder", body, CallClass::Write)?;
        self.call(req, Some(token), ticket).await
    }

    /// `POST order/modifyorder`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn modify_order(
        &self,
        token: &str,
        body: &ModifyOrder,
        ticket: Option<&str>,
    ) -> Result<CommandResult, RawError> {
        let req = Self::post("order/modifyorder", body, CallClass::Write)?;
        self.call(req, Some(token), ticket).await
    }

    /// `POST order/liquidateposition`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn liquidate_position(
        &self,
        token: &str,
        body: &LiquidatePosition,
        ticket: Option<&str>,
    ) -> Result<PlaceOrderResult, RawError> {
        let req = Self::post("order/liquidateposition", body, CallClass::Write)?;
        self.call(req, Some(token), ticket).await
    }

    /// `POST orderStrategy/startorderstrategy`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn start_order_strategy(
        &self,
        token: &str,
        body: &StartOrderStrategy,
        ticket: Option<&str>,
    ) -> Result<OrderStrategyStatusResponse, RawError> {
        let req = Self::post("orderStrategy/startorderstrategy", body, CallClass::Write)?;
        self.call(req, Some(token), ticket).await
    }
}

fn join(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Decodes a 2xx body. A failure object where a list was expected is never an empty list.
fn decode<T: DeserializeOwned>(text: &str) -> Result<T, RawError> {
    serde_json::from_str(text).map_err(|e| RawError::Decode {
        detail: e.to_string(),
        body: snippet(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Some(r#"{"a":1}"#), r#"{"p-ticket":"T",    "a":1}"#)]
    #[case(Some("{}"), r#"{"p-ticket":"T"}"#)]
    #[case(Some("{ }"), r#"{"p-ticket":"T"}"#)]
    #[case(None, r#"{"p-ticket":"T"}"#)]
    fn the_ticket_is_added_to_the_identical_body(#[case] body: Option<&str>, #[case] want: &str) {
        let got: serde_json::Value = serde_json::from_str(&with_ticket(body, "T")).unwrap();
        let want: serde_json::Value = serde_json::from_str(want).unwrap();
        assert_eq!(got, want);
    }

    #[rstest]
    #[case(r#"{"p-ticket":"abc","p-time":5}"#, Some(("abc", 5_000, false)))]
    #[case(r#"{"p-ticket":"abc","p-time":1.5,"p-captcha":false}"#, Some(("abc", 1_500, false)))]
    #[case(r#"{"p-captcha":true,"p-time":3600}"#, Some(("", 3_600_000, true)))]
    #[case(r#"{"orderId":5}"#, None)]
    #[case(r#"[{"text":"p-ticket"}]"#, None)]
    fn penalties_are_recognised(#[case] body: &str, #[case] want: Option<(&str, u64, bool)>) {
        let got = penalty_in(body).map(|p| match p {
            RawError::Penalty {
                ticket,
                wait,
                captcha,
            } => (
                ticket.unwrap_or_default(),
                u64::try_from(wait.as_millis()).unwrap(),
                captcha,
            ),
            other => panic!("{other:?}"),
        });
        assert_eq!(got, want.map(|(t, w, c)| (t.to_string(), w, c)));
    }

    #[test]
    fn an_error_object_is_not_an_empty_list() {
        let r: Result<Vec<Position>, _> = decode(r#"{"errorText":"Access is denied"}"#);
        assert!(matches!(r, Err(RawError::Decode { .. })));
        let r: Result<Vec<Position>, _> = decode("[]");
        assert_eq!(r.unwrap(), vec![]);
    }
}
