//! [`ProjectXBroker`]: the [`Broker`] of one ProjectX login (user name + API key).
//!
//! Everything that belongs to the login — its token, request budget, REST client and user hub
//! — exists once per process, in a [`LoginRegistry`], however many `ProjectXBroker` values
//! point at it: the budget of 200 requests per 60 s is per token, so every account and caller
//! of the login spends the same one.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use chrono::Utc;
use jt_domain::bracket::StopOrder;
use jt_domain::order::{BracketOrder, OrderRequest};
use jt_domain::types::Contracts;
use rust_decimal::Decimal;

use jt_broker::broker::{Broker, BrokerEvents};
use jt_broker::capabilities::Capabilities;
use jt_broker::error::BrokerError;
use jt_broker::events::EventSubscription;
use jt_broker::market::QuoteFeed;
use jt_broker::model::{
    AccountId, AccountInfo, AccountPnl, AccountSnapshot, BracketAck, BrokerKind, CallBudget,
    CloseOutcome, Contract, FillReport, FlattenReport, OrderAck, OrderId, OrderReport,
    PositionReport, SessionInfo,
};
use jt_net::gate::ConnectGate;
use jt_net::registry::{Logins, Plumbing};

use super::brackets;
use super::config::ProjectXConfig;
use super::http::client::ProjectXHttpClient;
use super::http::limits::login_limits;
use super::http::raw::ProjectXRawHttpClient;
use super::http::session::Session;
use super::hub::client::ProjectXHub;

/// What ProjectX carries (BROKERS.md §2.5), and how.
///
/// `multiple_take_profits` is carried, **not native**: ProjectX has one native target per
/// entry ([`NATIVE_TAKE_PROFIT_LEGS`]). `place_bracket` places the entry with its stop and the
/// first leg's target, waits for the fill, resizes that target to the first leg and places
/// the other legs as limit orders sized to the filled quantity; the hub's exit guard keeps the
/// stop within the position as legs fill. Only market entries are followed up this way.
pub const PROJECTX_CAPABILITIES: Capabilities = Capabilities {
    native_bracket: true,
    multiple_take_profits: true,
    // `stopLossBracket` of type 5 trails from the start by its ticks.
    trailing_stop: true,
    trailing_trigger: false,
    break_even: false,
    break_even_with_trailing_stop: false,
    // The extra legs are sized to a fill the call waits for: market entries only.
    non_market_bracket_entry: false,
    // StopLimit (3) is listed only in responses, not as placeable.
    stop_limit_order: false,
    client_order_id_lookup: true,
    event_stream: true,
    native_close_position: true,
    // A standalone `TrailingStop`'s `trailPrice` is documented both as a price and as a
    // distance: refused rather than guessed.
    standalone_trailing_stop: false,
    standalone_trailing_trigger: false,
    // PlaceOrderRequest has no time in force: a resting order works until cancelled.
    day_orders: false,
    // The market hub's `GatewayQuote` (`hub::market`).
    market_data: true,
};

/// Take-profit legs ProjectX carries natively in one bracket (the rest are separate orders).
pub const NATIVE_TAKE_PROFIT_LEGS: usize = 1;

/// Everything of one login, shared.
struct Login {
    config: ProjectXConfig,
    http: Arc<ProjectXHttpClient>,
    gate: Arc<ConnectGate>,
    hub: OnceLock<ProjectXHub>,
}

/// The ProjectX logins of a process, keyed by REST host and user name, over the plumbing
/// (connection pools, connect gate) they share.
pub struct LoginRegistry {
    logins: Logins<Login>,
    plumbing: Plumbing,
}

impl std::fmt::Debug for LoginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRegistry")
            .field("logins", &self.logins)
            .finish()
    }
}

impl LoginRegistry {
    /// A registry whose logins use `plumbing`.
    #[must_use]
    pub fn new(plumbing: Plumbing) -> Arc<Self> {
        Arc::new(Self {
            logins: Logins::default(),
            plumbing,
        })
    }

    /// The process-wide registry (process-wide pools and gate).
    #[must_use]
    pub fn shared() -> Arc<Self> {
        static REGISTRY: OnceLock<Arc<LoginRegistry>> = OnceLock::new();
        Arc::clone(REGISTRY.get_or_init(|| Self::new(Plumbing::process_wide())))
    }

    /// A private registry over the process-wide plumbing (tests that must not share logins).
    #[must_use]
    pub fn isolated() -> Arc<Self> {
        Self::new(Plumbing::process_wide())
    }

    /// The call budget of every live login (for a status page; never a metric label).
    #[must_use]
    pub fn budgets(&self) -> Vec<(String, CallBudget)> {
        self.logins
            .live()
            .into_iter()
            .map(|(name, l)| (name, l.http.limits().budget()))
            .collect()
    }

    fn login(&self, config: ProjectXConfig) -> Result<Arc<Login>, BrokerError> {
        let host = config.api_url.as_str().to_string();
        let user = config.credentials.user_name.clone();
        self.logins.get_or_make(&host, &user, || {
            let raw = ProjectXRawHttpClient::new(
                config.api_url.clone(),
                config.http.clone(),
                &self.plumbing.pools,
            )
            .map_err(BrokerError::transport)?;
            let mut limits = login_limits(&config.limits);
            if let Some(store) = &self.plumbing.budgets {
                let key = jt_net::budget::ledger_key("projectx", &host, &user);
                limits = limits.with_shared(Arc::clone(store), key);
            }
            let limits = Arc::new(limits);
            let session = Arc::new(Session::new(
                raw.clone(),
                config.credentials.clone(),
                config.session.clone(),
                Arc::clone(&limits),
                config.limits.clone(),
            ));
            let http = Arc::new(ProjectXHttpClient::new(
                raw,
                session,
                limits,
                config.clone(),
            ));
            Ok(Login {
                config,
                http,
                gate: Arc::clone(&self.plumbing.gate),
                hub: OnceLock::new(),
            })
        })
    }
}

/// The broker of one ProjectX login.
#[derive(Clone)]
pub struct ProjectXBroker {
    login: Arc<Login>,
}

impl std::fmt::Debug for ProjectXBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectXBroker")
            .field("api", &self.login.config.api_url.as_str())
            .field("user", &self.login.config.credentials.user_name)
            .finish()
    }
}

impl ProjectXBroker {
    /// The broker of `config`'s login, sharing it with every other value for the same login
    /// in this process (the process-wide registry, pools and connect gate).
    ///
    /// # Errors
    /// `Transport` when the HTTP client cannot be built.
    pub fn new(config: ProjectXConfig) -> Result<Self, BrokerError> {
        Self::with(config, &LoginRegistry::shared())
    }

    /// The broker of `config`'s login in `registry` (its pools and connect gate).
    ///
    /// # Errors
    /// `Transport` when the HTTP client cannot be built.
    pub fn with(config: ProjectXConfig, registry: &LoginRegistry) -> Result<Self, BrokerError> {
        Ok(Self {
            login: registry.login(config)?,
        })
    }

    /// The REST client (raw access for tools and tests).
    #[must_use]
    pub fn http(&self) -> &Arc<ProjectXHttpClient> {
        &self.login.http
    }

    /// The user hub, once [`BrokerEvents::subscribe`] started it.
    #[must_use]
    pub fn hub(&self) -> Option<&ProjectXHub> {
        self.login.hub.get()
    }

    /// Take-profit legs carried natively per bracket.
    #[must_use]
    pub fn native_take_profit_legs(&self) -> usize {
        NATIVE_TAKE_PROFIT_LEGS
    }

    fn hub_or_start(&self) -> &ProjectXHub {
        self.login.hub.get_or_init(|| {
            ProjectXHub::start(
                Arc::clone(&self.login.http),
                self.login.config.user_hub_url.clone(),
                self.login.config.hub.clone(),
                Arc::clone(&self.login.gate),
            )
        })
    }
}

#[async_trait]
impl Broker for ProjectXBroker {
    fn kind(&self) -> BrokerKind {
        BrokerKind::ProjectX
    }

    fn capabilities(&self) -> Capabilities {
        PROJECTX_CAPABILITIES
    }

    fn call_budget(&self) -> Option<CallBudget> {
        Some(self.login.http.limits().budget())
    }

    async fn login(&self) -> Result<SessionInfo, BrokerError> {
        self.login.http.session().login().await
    }

    async fn renew(&self) -> Result<SessionInfo, BrokerError> {
        self.login.http.session().renew().await
    }

    async fn accounts(&self) -> Result<Vec<AccountInfo>, BrokerError> {
        self.login.http.accounts().await
    }

    async fn resolve_contract(&self, symbol: &str) -> Result<Contract, BrokerError> {
        self.login.http.resolve_contract(symbol).await
    }

    async fn positions(&self, account: &AccountId) -> Result<Vec<PositionReport>, BrokerError> {
        self.login.http.positions(account).await
    }

    async fn working_orders(&self, account: &AccountId) -> Result<Vec<OrderReport>, BrokerError> {
        self.login.http.working_orders(account).await
    }

    async fn find_order(
        &self,
        account: &AccountId,
        client_order_id: &str,
    ) -> Result<Option<OrderReport>, BrokerError> {
        self.login.http.find_order(account, client_order_id).await
    }

    async fn fills(&self, account: &AccountId) -> Result<Vec<FillReport>, BrokerError> {
        self.login.http.fills(account).await
    }

    async fn account_pnl(&self, account: &AccountId) -> Result<AccountPnl, BrokerError> {
        self.login.http.account_pnl(account).await
    }

    /// Open positions and open orders (`Position/searchOpen`, `Order/searchOpen`), read at
    /// once: two calls. P&L is not read (ProjectX computes none: trades, bars and balances would
    /// cost several more calls of the per-token budget): ask [`Broker::account_pnl`].
    async fn snapshot(&self, account: &AccountId) -> Result<AccountSnapshot, BrokerError> {
        let as_of = Utc::now();
        let http = &self.login.http;
        let (positions, working_orders) =
            tokio::join!(http.positions(account), http.working_orders(account));
        Ok(AccountSnapshot {
            account: account.clone(),
            positions: positions?,
            working_orders: working_orders?,
            pnl: None,
            as_of,
        })
    }

    async fn balance(&self, account: &AccountId) -> Result<Decimal, BrokerError> {
        self.login.http.balance(account).await
    }

    async fn modify_order_qty(
        &self,
        account: &AccountId,
        order: &OrderReport,
        qty: Contracts,
    ) -> Result<(), BrokerError> {
        if &order.account != account {
            return Err(BrokerError::invalid(format!(
                "order {} belongs to another account",
                order.id
            )));
        }
        let id: i64 = order.id.as_str().parse().map_err(|_| {
            BrokerError::invalid(format!("order id {} is not a ProjectX id", order.id))
        })?;
        self.login.http.modify_size(account, id, qty).await
    }

    async fn modify_order_price(
        &self,
        account: &AccountId,
        order: &OrderReport,
        price: Decimal,
    ) -> Result<(), BrokerError> {
        if &order.account != account {
            return Err(BrokerError::invalid(format!(
                "order {} belongs to another account",
                order.id
            )));
        }
        let id: i64 = order.id.as_str().parse().map_err(|_| {
            BrokerError::invalid(format!("order id {} is not a ProjectX id", order.id))
        })?;
        let (limit, stop) = jt_broker::broker::moved_prices(order, price)?;
        self.login
            .http
            .modify_prices(account, id, limit, stop)
            .await
    }

    async fn place_order(
        &self,
        account: &AccountId,
        contract: &Contract,
        order: &OrderRequest,
    ) -> Result<OrderAck, BrokerError> {
        self.login.http.place_order(account, contract, order).await
    }

    async fn place_bracket(
        &self,
        account: &AccountId,
        contract: &Contract,
        bracket: &BracketOrder,
    ) -> Result<BracketAck, BrokerError> {
        if let Some(feature) = PROJECTX_CAPABILITIES
            .missing_for(bracket)
            .into_iter()
            .next()
        {
            return Err(BrokerError::Unsupported { feature });
        }
        brackets::place(&self.login.http, account, contract, bracket).await
    }

    async fn place_stop(
        &self,
        account: &AccountId,
        contract: &Contract,
        stop: &StopOrder,
    ) -> Result<OrderAck, BrokerError> {
        self.login.http.place_stop(account, contract, stop).await
    }

    async fn cancel_order(
        &self,
        account: &AccountId,
        order_id: &OrderId,
    ) -> Result<(), BrokerError> {
        self.login.http.cancel_order(account, order_id).await
    }

    async fn close_position(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CloseOutcome, BrokerError> {
        self.login.http.close_position(account, contract).await
    }

    async fn flatten_account(&self, account: &AccountId) -> Result<FlattenReport, BrokerError> {
        self.login.http.flatten_account(account).await
    }
}

/// The login's events come from its user hub (with REST polling while it is down), started on
/// the first subscription and shared by every subscriber of the login.
#[async_trait]
impl BrokerEvents for ProjectXBroker {
    async fn subscribe(&self, accounts: &[AccountId]) -> Result<EventSubscription, BrokerError> {
        let mut ids = Vec::with_capacity(accounts.len());
        for a in accounts {
            ids.push(self.login.http.account(a).await?.id);
        }
        Ok(self.hub_or_start().feed().serve(accounts, ids))
    }

    async fn quote_feed(&self) -> Result<QuoteFeed, BrokerError> {
        Ok(crate::hub::market::start(
            Arc::clone(&self.login.http),
            self.login.config.market_hub_url.clone(),
            self.login.config.hub.clone(),
            Arc::clone(&self.login.gate),
        ))
    }
}
