//! The signed Webull client: every call signed afresh ([`crate::common::signing`]: a new
//! timestamp and nonce per attempt), run by `jt-net`'s call policy, with Webull's error
//! classes hooked in:
//!
//! | Webull answers | the caller gets |
//! |---|---|
//! | 401 `INVALID_APP_KEY`, `APP_KEY_EXPIRED` | `NeedsReauth` (and no call is sent any more with these keys) |
//! | 401 `INVALID_SIGNATURE`, `TIMESTAMP_EXPIRED`, `DUPLICATE_NONCE` | re-signed and sent once more, then `AuthExpired` |
//! | 429 `TOO_MANY_REQUESTS` | `RateLimited` (the login cools down) |
//! | 5xx, no answer | reads retried; a write is **ambiguous**: looked up by client order id, never re-sent |
//! | 404 | a read of an order: none; else `Rejected { code: "NotFound" }` |
//! | other 4xx | `Rejected { code: <error_code> }` |

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jt_broker::BrokerError;
use jt_net::budget::{BudgetStore, ledger_key};
use jt_net::http::{CallClass, HostPools, HttpConfig, RawError, RestClient, decode};
use jt_net::limits::{LaneConfig, LimitsConfig, LoginLimits, Pace};
use jt_net::policy::{
    AfterUnauthorized, Authority, Call, CallError, CallPolicy, PolicyConfig, Uncertain,
};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::json;
use url::Url;

use super::models::{
    WbAccount, WbBalance, WbError, WbInstrument, WbModify, WbNewOrder, WbOrder, WbPlaced,
    WbPosition,
};
use crate::common::signing::{self, SignParams, headers};

/// The metric label.
pub const VENUE: &str = "webull";

/// Everything a Webull login needs.
#[derive(Clone)]
pub struct WebullHttpConfig {
    /// `https://api.webull.com` (the simulator: its base URL).
    pub base_url: Url,
    /// The app key.
    pub app_key: String,
    /// The app secret.
    pub app_secret: String,
    /// Timeouts, retries, look-ups.
    pub http: HttpConfig,
    /// Requests per [`WebullHttpConfig::window`] (600 per 60 s: chosen, no public figure for
    /// futures seen).
    pub requests: u32,
    /// The budget window.
    pub window: Duration,
    /// Cool-down after a 429 without `Retry-After`.
    pub too_many_requests_backoff: Duration,
}

impl std::fmt::Debug for WebullHttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebullHttpConfig")
            .field("base_url", &self.base_url.as_str())
            .field("app_key", &self.app_key)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

impl WebullHttpConfig {
    /// Production defaults for `base_url` and a key pair.
    #[must_use]
    pub fn new(base_url: Url, app_key: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self {
            base_url,
            app_key: app_key.into(),
            app_secret: app_secret.into(),
            http: HttpConfig::default(),
            requests: 600,
            window: Duration::from_secs(60),
            too_many_requests_backoff: Duration::from_secs(5),
        }
    }
}

/// The keys as the policy sees them: no token; dead once Webull says they are invalid or
/// expired.
#[derive(Debug, Default)]
struct Keys {
    dead: Mutex<Option<String>>,
}

impl Keys {
    fn reauth(&self) -> Option<BrokerError> {
        self.dead
            .lock()
            .clone()
            .map(|reason| BrokerError::NeedsReauth { reason })
    }
}

#[async_trait]
impl Authority for Keys {
    type Token = ();

    async fn token(&self) -> Result<(), BrokerError> {
        self.reauth().map_or(Ok(()), Err)
    }

    fn bearer(_token: &()) -> &str {
        ""
    }

    async fn after_unauthorized(&self, _token: &()) -> Result<AfterUnauthorized, BrokerError> {
        match self.reauth() {
            Some(e) => Err(e),
            // A refused signature (clock, nonce): the next attempt is signed afresh.
            None => Ok(AfterUnauthorized::Replaced),
        }
    }
}

/// A placement's answer: the order, and whether it was found by a look-up after an ambiguous
/// answer (or an earlier unknown attempt) instead of being answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Webull's order id.
    pub order_id: String,
    /// Found by client order id, not answered.
    pub recovered: bool,
}

/// The signed REST client of one Webull login.
pub struct WebullHttpClient {
    rest: RestClient,
    config: WebullHttpConfig,
    host: String,
    prefix: String,
    keys: Keys,
    policy: CallPolicy,
    uncertain: Uncertain<(String, String)>,
}

impl std::fmt::Debug for WebullHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebullHttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A Webull refusal's `error_code` as the rejection's code.
fn with_code(e: BrokerError) -> BrokerError {
    match e {
        BrokerError::Rejected { reason, code } => {
            let webull = reason
                .find('{')
                .and_then(|i| serde_json::from_str::<WbError>(&reason[i..]).ok())
                .map(|w| w.error_code);
            BrokerError::Rejected {
                reason,
                code: webull.or(code),
            }
        }
        other => other,
    }
}

fn account_query(account: &str) -> Vec<(&'static str, String)> {
    vec![("account_id", account.to_string())]
}

impl WebullHttpClient {
    /// The client of a login.
    ///
    /// # Errors
    /// When the base URL has no host or the HTTP client cannot be built.
    pub fn new(config: WebullHttpConfig, pools: &HostPools) -> Result<Self, String> {
        Self::with_budgets(config, pools, None)
    }

    /// The client of a login whose request budget is shared by the fleet through `budgets`
    /// (keyed by host and app key: Webull counts per app key), when given.
    ///
    /// # Errors
    /// As [`WebullHttpClient::new`].
    pub fn with_budgets(
        config: WebullHttpConfig,
        pools: &HostPools,
        budgets: Option<&Arc<dyn BudgetStore>>,
    ) -> Result<Self, String> {
        let base = &config.base_url;
        let host = match (base.host_str(), base.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(format!("{base} has no host")),
        };
        let prefix = base.path().trim_end_matches('/').to_string();
        let rest = RestClient::new(base.clone(), config.http.clone(), pools)?;
        let limits = LoginLimits::new(LimitsConfig {
            venue: VENUE,
            lanes: vec![LaneConfig {
                pace: Pace::Spread {
                    budget: config.requests,
                    window: config.window,
                },
                max_wait: Some(config.window),
                counted: true,
            }],
            window: config.window,
            budget: config.requests,
            refuse_when_spent: false,
            // Webull demands no captcha: a lock-out cannot happen.
            lockout: Duration::from_secs(3_600),
        });
        let limits = Arc::new(match budgets {
            Some(store) => {
                let key = ledger_key(VENUE, base.as_str(), &config.app_key);
                limits.with_shared(Arc::clone(store), key)
            }
            None => limits,
        });
        let policy = CallPolicy::new(
            PolicyConfig::new(VENUE, &config.http, config.too_many_requests_backoff),
            limits,
            None,
        );
        let uncertain = Uncertain::new(VENUE, &config.http);
        Ok(Self {
            rest,
            config,
            host,
            prefix,
            keys: Keys::default(),
            policy,
            uncertain,
        })
    }

    /// The login's limits.
    #[must_use]
    pub fn limits(&self) -> &Arc<LoginLimits> {
        self.policy.limits()
    }

    /// One signed attempt: a fresh timestamp and nonce.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&'static str, String)],
        body: Option<&str>,
        class: CallClass,
    ) -> Result<String, RawError> {
        let timestamp = signing::timestamp(chrono::Utc::now().timestamp());
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let uri = format!("{}/{path}", self.prefix);
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let params = SignParams {
            app_key: &self.config.app_key,
            timestamp: &timestamp,
            nonce: &nonce,
            host: &self.host,
        };
        let signature = signing::signature(
            &self.config.app_secret,
            &uri,
            &q,
            &params,
            body.map(str::as_bytes),
        );
        let mut request = self
            .rest
            .request(method, path, query, class, None)?
            .header(headers::APP_KEY, &self.config.app_key)
            .header(headers::TIMESTAMP, &timestamp)
            .header(headers::ALGORITHM, signing::ALGORITHM)
            .header(headers::VERSION, signing::VERSION)
            .header(headers::NONCE, &nonce)
            .header(headers::SIGNATURE, signature);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let answer = RestClient::send(request).await?;
        if answer.status == 401
            && let Ok(e) = serde_json::from_str::<WbError>(&answer.body)
            && matches!(e.error_code.as_str(), "INVALID_APP_KEY" | "APP_KEY_EXPIRED")
        {
            *self.keys.dead.lock() = Some(format!(
                "Webull refused the app key ({}: {}): enter a new key pair",
                e.error_code, e.message
            ));
        }
        answer.into_body()
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        path: &'static str,
        query: Vec<(&'static str, String)>,
    ) -> Result<T, CallError> {
        let query = &query;
        self.policy
            .run(&self.keys, Call::read(op), |_, _| async move {
                let body = self
                    .send(Method::GET, path, query, None, CallClass::Read)
                    .await?;
                decode::<T>(&body)
            })
            .await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        path: &'static str,
        account: &str,
        body: String,
    ) -> Result<Result<T, String>, BrokerError> {
        let query = &account_query(account);
        let body = &body;
        self.policy
            .write(&self.keys, Call::write(op), |_, _| async move {
                let text = self
                    .send(Method::POST, path, query, Some(body), CallClass::Write)
                    .await?;
                decode::<T>(&text)
            })
            .await
            .map_err(with_code)
    }

    /// `GET /openapi/account/list`.
    ///
    /// # Errors
    /// The policy's errors.
    pub async fn accounts(&self) -> Result<Vec<WbAccount>, BrokerError> {
        self.get("account/list", "openapi/account/list", Vec::new())
            .await
            .map_err(|e| with_code(e.into_broker("account/list")))
    }

    /// `GET /openapi/account/positions`.
    ///
    /// # Errors
    /// The policy's errors.
    pub async fn positions(&self, account: &str) -> Result<Vec<WbPosition>, BrokerError> {
        self.get(
            "account/positions",
            "openapi/account/positions",
            account_query(account),
        )
        .await
        .map_err(|e| with_code(e.into_broker("account/positions")))
    }

    /// `GET /openapi/account/balance`.
    ///
    /// # Errors
    /// The policy's errors.
    pub async fn balance(&self, account: &str) -> Result<WbBalance, BrokerError> {
        self.get(
            "account/balance",
            "openapi/account/balance",
            account_query(account),
        )
        .await
        .map_err(|e| with_code(e.into_broker("account/balance")))
    }

    /// `GET /openapi/instrument/futures/list?code=`: the listed months of a product.
    ///
    /// # Errors
    /// The policy's errors.
    pub async fn futures(&self, code: &str) -> Result<Vec<WbInstrument>, BrokerError> {
        self.get(
            "instrument/futures/list",
            "openapi/instrument/futures/list",
            vec![("code", code.to_string())],
        )
        .await
        .map_err(|e| with_code(e.into_broker("instrument/futures/list")))
    }

    /// `GET /openapi/account/orders/list-open`.
    ///
    /// # Errors
    /// The policy's errors.
    pub async fn open_orders(&self, account: &str) -> Result<Vec<WbOrder>, BrokerError> {
        self.get(
            "orders/list-open",
            "openapi/account/orders/list-open",
            account_query(account),
        )
        .await
        .map_err(|e| with_code(e.into_broker("orders/list-open")))
    }

    /// `GET /openapi/account/orders/history`: every order of the account Webull keeps (working
    /// or finished), read page by page (`page_size` 100, the next page after the last client
    /// order id of the previous one: Webull sorts the history by client order id).
    ///
    /// # Errors
    /// The policy's errors.
    pub async fn order_history(&self, account: &str) -> Result<Vec<WbOrder>, BrokerError> {
        const PAGE: usize = 100;
        let mut all: Vec<WbOrder> = Vec::new();
        loop {
            let mut q = account_query(account);
            q.push(("page_size", PAGE.to_string()));
            if let Some(last) = all.last().and_then(|o| o.client_order_id.clone()) {
                q.push(("last_client_order_id", last));
            }
            let page: Vec<WbOrder> = self
                .get("orders/history", "openapi/account/orders/history", q)
                .await
                .map_err(|e| with_code(e.into_broker("orders/history")))?;
            let full = page.len() >= PAGE;
            // A page whose last order has no client order id cannot name the next one.
            let named = page.last().is_some_and(|o| o.client_order_id.is_some());
            all.extend(page);
            if !full || !named {
                return Ok(all);
            }
        }
    }

    /// `GET /openapi/account/orders/detail`: the order placed with `client_order_id`, or
    /// `None`.
    ///
    /// # Errors
    /// The policy's errors (a 404 is `None`).
    pub async fn order(
        &self,
        account: &str,
        client_order_id: &str,
    ) -> Result<Option<WbOrder>, BrokerError> {
        let mut q = account_query(account);
        q.push(("client_order_id", client_order_id.to_string()));
        match self
            .get("orders/detail", "openapi/account/orders/detail", q)
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(CallError::NotFound(_)) => Ok(None),
            Err(e) => Err(with_code(e.into_broker("orders/detail"))),
        }
    }

    /// `POST /openapi/account/orders/place`, exactly once: an earlier attempt with the same
    /// client order id left unknown is looked up first; an ambiguous answer is looked up by
    /// client order id, never re-sent.
    ///
    /// # Errors
    /// The policy's errors; `UnknownOutcome` when the look-up cannot settle it.
    pub async fn place(&self, account: &str, order: &WbNewOrder) -> Result<Placement, BrokerError> {
        let id = order.client_order_id.as_str();
        let key = (account.to_string(), id.to_string());
        let lookup = || self.order(account, id);
        if let Some(found) = self
            .uncertain
            .check(&key, "place_order", id, lookup)
            .await?
        {
            return Ok(Placement {
                order_id: found.order_id,
                recovered: true,
            });
        }
        let body = json!({ "new_orders": [order] }).to_string();
        match self
            .post::<WbPlaced>(
                "orders/place",
                "openapi/account/orders/place",
                account,
                body,
            )
            .await?
        {
            Ok(p) => Ok(Placement {
                order_id: p.order_id,
                recovered: false,
            }),
            Err(detail) => {
                let found = self
                    .uncertain
                    .settle(key, "place_order", id, detail, lookup)
                    .await?;
                Ok(Placement {
                    order_id: found.order_id,
                    recovered: true,
                })
            }
        }
    }

    /// `POST /openapi/account/orders/replace`.
    ///
    /// # Errors
    /// The policy's errors; `UnknownOutcome` when the answer was lost.
    pub async fn replace(&self, account: &str, change: &WbModify) -> Result<(), BrokerError> {
        let body = json!({ "modify_orders": [change] }).to_string();
        match self
            .post::<WbPlaced>(
                "orders/replace",
                "openapi/account/orders/replace",
                account,
                body,
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(detail) => Err(BrokerError::UnknownOutcome {
                operation: "modify_order".into(),
                client_order_id: Some(change.client_order_id.clone()),
                detail,
            }),
        }
    }

    /// `POST /openapi/account/orders/cancel`; a lost answer is settled by reading the order
    /// (no longer working: done).
    ///
    /// # Errors
    /// The policy's errors; `UnknownOutcome` when the order still works after the look-ups.
    pub async fn cancel(&self, account: &str, client_order_id: &str) -> Result<(), BrokerError> {
        let body = json!({ "client_order_id": client_order_id }).to_string();
        match self
            .post::<WbPlaced>(
                "orders/cancel",
                "openapi/account/orders/cancel",
                account,
                body,
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(detail) => {
                let key = (account.to_string(), format!("cancel:{client_order_id}"));
                self.uncertain
                    .settle(key, "cancel_order", client_order_id, detail, || async {
                        Ok(self
                            .order(account, client_order_id)
                            .await?
                            .filter(|o| !o.status.is_working()))
                    })
                    .await
                    .map(|_| ())
            }
        }
    }
}
