//! The raw ProjectX REST client: one method per endpoint, named after it, returning the
//! decoded body or a [`RawError`] saying exactly how far the request got. No retries, no
//! envelope checks, no policy: [`super::client::ProjectXHttpClient`] decides what each outcome
//! means.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::HttpConfig;
use jt_tradovate::http::raw::{CallClass, HostPools};

use super::models::{
    AccountRequest, AccountSearchRequest, AccountsResponse, BarsResponse, CancelOrderRequest,
    CloseContractRequest, ContractByIdRequest, ContractResponse, ContractSearchRequest,
    ContractsResponse, EmptyResponse, LoginKeyRequest, LoginResponse, ModifyOrderRequest,
    OrdersResponse, PlaceOrderRequest, PlaceOrderResponse, PositionsResponse, RetrieveBarsRequest,
    TimeRangeRequest, TradesResponse, ValidateResponse,
};

/// How far a request got, when it did not produce a decodable 2xx body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawError {
    /// Never delivered (connection refused, DNS, TLS): nothing happened.
    NotSent(String),
    /// Delivered (or maybe) and no complete answer came back (timeout, reset, truncated
    /// body): a write may have been executed.
    NoAnswer(String),
    /// A non-2xx status.
    Status {
        /// HTTP status.
        status: u16,
        /// Body (may be empty: 401 and 429 carry none).
        body: String,
        /// `Retry-After` in seconds, when sent.
        retry_after: Option<Duration>,
    },
    /// A 2xx whose body is not the endpoint's model.
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
            Self::Decode { detail, body } => write!(f, "undecodable answer ({detail}): {body}"),
        }
    }
}

fn snippet(body: &str) -> String {
    let mut end = body.len().min(512);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

/// The raw client of one REST base (`…/api`).
#[derive(Debug, Clone)]
pub struct ProjectXRawHttpClient {
    http: reqwest::Client,
    base: Url,
    config: HttpConfig,
}

impl ProjectXRawHttpClient {
    /// A raw client for `base` using the shared pool of its host.
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

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        token: Option<&str>,
        class: CallClass,
    ) -> Result<T, RawError> {
        let url = format!("{}/{path}", self.base.as_str().trim_end_matches('/'));
        let body = serde_json::to_string(body)
            .map_err(|e| RawError::NotSent(format!("body does not serialise: {e}")))?;
        let mut builder = self
            .http
            .post(url)
            .timeout(self.timeout(class))
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
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
        if status != StatusCode::OK && !status.is_success() {
            return Err(RawError::Status {
                status: status.as_u16(),
                body: snippet(&text),
                retry_after,
            });
        }
        serde_json::from_str(&text).map_err(|e| RawError::Decode {
            detail: e.to_string(),
            body: snippet(&text),
        })
    }

    /// `POST Auth/loginKey`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn auth_login_key(
        &self,
        body: &LoginKeyRequest<'_>,
    ) -> Result<LoginResponse, RawError> {
        self.post("Auth/loginKey", body, None, CallClass::Auth)
            .await
    }

    /// `POST Auth/validate` with the current token: a new token in the same session.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn auth_validate(&self, token: &str) -> Result<ValidateResponse, RawError> {
        self.post(
            "Auth/validate",
            &serde_json::json!({}),
            Some(token),
            CallClass::Auth,
        )
        .await
    }

    /// `POST Auth/logout`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn auth_logout(&self, token: &str) -> Result<EmptyResponse, RawError> {
        self.post(
            "Auth/logout",
            &serde_json::json!({}),
            Some(token),
            CallClass::Auth,
        )
        .await
    }

    /// `POST Account/search`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn account_search(
        &self,
        token: &str,
        body: &AccountSearchRequest,
    ) -> Result<AccountsResponse, RawError> {
        self.post("Account/search", body, Some(token), CallClass::Read)
            .await
    }

    /// `POST Contract/search` (at most 20 results).
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn contract_search(
        &self,
        token: &str,
        body: &ContractSearchRequest<'_>,
    ) -> Result<ContractsResponse, RawError> {
        self.post("Contract/search", body, Some(token), CallClass::Read)
            .await
    }

    /// `POST Contract/searchById`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn contract_search_by_id(
        &self,
        token: &str,
        body: &ContractByIdRequest<'_>,
    ) -> Result<ContractResponse, RawError> {
        self.post("Contract/searchById", body, Some(token), CallClass::Read)
            .await
    }

    /// `POST History/retrieveBars`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn history_retrieve_bars(
        &self,
        token: &str,
        body: &RetrieveBarsRequest<'_>,
    ) -> Result<BarsResponse, RawError> {
        self.post("History/retrieveBars", body, Some(token), CallClass::Read)
            .await
    }

    /// `POST Order/search`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_search(
        &self,
        token: &str,
        body: &TimeRangeRequest,
    ) -> Result<OrdersResponse, RawError> {
        self.post("Order/search", body, Some(token), CallClass::Read)
            .await
    }

    /// `POST Order/searchOpen`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_search_open(
        &self,
        token: &str,
        body: &AccountRequest,
    ) -> Result<OrdersResponse, RawError> {
        self.post("Order/searchOpen", body, Some(token), CallClass::Read)
            .await
    }

    /// `POST Order/place`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_place(
        &self,
        token: &str,
        body: &PlaceOrderRequest,
    ) -> Result<PlaceOrderResponse, RawError> {
        self.post("Order/place", body, Some(token), CallClass::Write)
            .await
    }

    /// `POST Order/cancel`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_cancel(
        &self,
        token: &str,
        body: &CancelOrderRequest,
    ) -> Result<EmptyResponse, RawError> {
        self.post("Order/cancel", body, Some(token), CallClass::Write)
            .await
    }

    /// `POST Order/modify`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn order_modify(
        &self,
        token: &str,
        body: &ModifyOrderRequest,
    ) -> Result<EmptyResponse, RawError> {
        self.post("Order/modify", body, Some(token), CallClass::Write)
            .await
    }

    /// `POST Position/searchOpen`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn position_search_open(
        &self,
        token: &str,
        body: &AccountRequest,
    ) -> Result<PositionsResponse, RawError> {
        self.post("Position/searchOpen", body, Some(token), CallClass::Read)
            .await
    }

    /// `POST Position/closeContract`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn position_close_contract(
        &self,
        token: &str,
        body: &CloseContractRequest<'_>,
    ) -> Result<EmptyResponse, RawError> {
        self.post(
            "Position/closeContract",
            body,
            Some(token),
            CallClass::Write,
        )
        .await
    }

    /// `POST Trade/search`.
    ///
    /// # Errors
    /// See [`RawError`].
    pub async fn trade_search(
        &self,
        token: &str,
        body: &TimeRangeRequest,
    ) -> Result<TradesResponse, RawError> {
        self.post("Trade/search", body, Some(token), CallClass::Read)
            .await
    }
}
