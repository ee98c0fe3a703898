//! The raw Tradovate REST client: one method per endpoint, named after it, returning the wire
//! bodies or a [`RawError`] that says exactly how far the request got. No retries, no policy:
//! [`super::client::TradovateHttpClient`] decides what each outcome means.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use jt_net::exact::parse_number_text;
use jt_net::http::{CallClass, HostPools, HttpConfig, RawError, RestClient, decode};

use crate::common::entities::{
    Account, Command, Contract, ContractMaturity, Fill, Order, OrderStrategy, OrderStrategyLink,
    OrderVersion, Position, Product,
};

use super::models::{
    AccessTokenRequest, AccessTokenResponse, CancelOrder, CashBalanceSnapshot,
    CashBalanceSnapshotRequest, CommandResult, LiquidatePosition, ModifyOrder,
    OrderStrategyStatusResponse, PlaceOrder, PlaceOrderResult, StartOrderStrategy,
};

/// The raw client of one REST base (`…/v1`).
#[derive(Debug, Clone)]
pub struct TradovateRawHttpClient {
    rest: RestClient,
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

impl TradovateRawHttpClient {
    /// A raw client for `base` (ending in `/v1`) using the shared pool of its host.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: Url, config: HttpConfig, pools: &HostPools) -> Result<Self, String> {
        Ok(Self {
            rest: RestClient::new(base, config, pools)?,
        })
    }

    async fn send(
        &self,
        req: &Request,
        token: Option<&str>,
        ticket: Option<&str>,
    ) -> Result<String, RawError> {
        let mut builder =
            self.rest
                .request(req.method.clone(), req.path, &req.query, req.class, token)?;
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
        let answer = RestClient::send(builder).await?;
        // A penalty ticket comes as a 200: the request was not executed.
        if answer.status == 200
            && let Some(p) = penalty_in(&answer.body)
        {
            return Err(p);
        }
        answer.into_body()
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
}
