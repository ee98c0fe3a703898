//! The raw ProjectX REST client: one method per endpoint, named after it, returning the
//! decoded body or a [`RawError`] saying exactly how far the request got (the HTTP plumbing is
//! [`jt_net::http`]'s). No retries, no envelope checks, no policy:
//! [`super::client::ProjectXHttpClient`] decides what each outcome means.

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use jt_net::http::{CallClass, HostPools, HttpConfig, RawError, RestClient, decode};

use super::models::{
    AccountRequest, AccountSearchRequest, AccountsResponse, BarsResponse, CancelOrderRequest,
    CloseContractRequest, ContractByIdRequest, ContractResponse, ContractSearchRequest,
    ContractsResponse, EmptyResponse, LoginKeyRequest, LoginResponse, ModifyOrderRequest,
    OrdersResponse, PlaceOrderRequest, PlaceOrderResponse, PositionsResponse, RetrieveBarsRequest,
    TimeRangeRequest, TradesResponse, ValidateResponse,
};

/// The raw client of one REST base (`…/api`).
#[derive(Debug, Clone)]
pub struct ProjectXRawHttpClient {
    rest: RestClient,
}

impl ProjectXRawHttpClient {
    /// A raw client for `base` using the shared pool of its host.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: Url, config: HttpConfig, pools: &HostPools) -> Result<Self, String> {
        Ok(Self {
            rest: RestClient::new(base, config, pools)?,
        })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        token: Option<&str>,
        class: CallClass,
    ) -> Result<T, RawError> {
        let body = serde_json::to_string(body)
            .map_err(|e| RawError::NotSent(format!("body does not serialise: {e}")))?;
        let request = self
            .rest
            .request(Method::POST, path, &[], class, token)?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        decode(&RestClient::send(request).await?.into_body()?)
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
