//! [`TradovateBroker`]: the [`Broker`] of one Tradovate (or NinjaTrader) login.
//!
//! Everything that belongs to the login — its session (token), rate limits, REST client and
//! WebSocket — exists once per process, in a [`LoginRegistry`], however many
//! `TradovateBroker` values point at it: a second value never logs in a second time (the
//! two-session limit) and never opens a second socket.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use chrono::Utc;
use jt_domain::bracket::{EntryOrder, StopOrder};
use jt_domain::order::{BracketOrder, OrderRequest, TimeInForce};
use jt_domain::types::{Contracts, Direction};
use rust_decimal::Decimal;

use jt_broker::broker::{Broker, BrokerEvents, ExitOrders};
use jt_broker::capabilities::Capabilities;
use jt_broker::error::BrokerError;
use jt_broker::events::EventSubscription;
use jt_broker::market::QuoteFeed;
use jt_broker::model::{
    AccountId, AccountInfo, AccountPnl, AccountSnapshot, BracketAck, BrokerKind, CallBudget,
    CancelReport, CloseOutcome, Contract, FillReport, FlattenReport, OrderAck, OrderId,
    OrderReport, PositionReport, SessionInfo,
};

use super::config::TradovateConfig;
use super::http::client::TradovateHttpClient;
use super::http::limits::login_limits;
use super::http::raw::TradovateRawHttpClient;
use super::http::session::Session;
use super::websocket::client::{SocketSetup, TradovateSocket};
use jt_net::gate::ConnectGate;
use jt_net::registry::{Logins, Plumbing};

/// What Tradovate's multibracket order strategy can carry (BROKERS.md §1.5).
pub const TRADOVATE_CAPABILITIES: Capabilities = Capabilities {
    native_bracket: true,
    multiple_take_profits: true,
    trailing_stop: true,
    trailing_trigger: true,
    break_even: true,
    // The server refuses it: "Stop and Stop/Limit breakeven supported only".
    break_even_with_trailing_stop: false,
    non_market_bracket_entry: true,
    stop_limit_order: true,
    client_order_id_lookup: true,
    event_stream: true,
    native_close_position: true,
    // `TrailingStop` orders with `pegDifference`; a profit trigger (`autoTrail`) exists only
    // inside an order strategy.
    standalone_trailing_stop: true,
    standalone_trailing_trigger: false,
    // `timeInForce: Day` on the order (or the strategy's entry version).
    day_orders: true,
    // The market-data socket (`md/subscribeQuote`).
    market_data: true,
};

/// Everything of one login, shared.
struct Login {
    kind: BrokerKind,
    config: TradovateConfig,
    http: Arc<TradovateHttpClient>,
    gate: Arc<ConnectGate>,
    socket: OnceLock<TradovateSocket>,
}

/// The Tradovate logins of a process, keyed by REST host and user name, over the plumbing
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

    fn login(&self, config: TradovateConfig) -> Result<Arc<Login>, BrokerError> {
        let host = config.rest_url.as_str().to_string();
        let user = config.credentials.name.clone();
        self.logins.get_or_make(&host, &user, || {
            let kind = config.brand.kind();
            let raw = TradovateRawHttpClient::new(
                config.rest_url.clone(),
                config.http.clone(),
                &self.plumbing.pools,
            )
            .map_err(BrokerError::transport)?;
            let mut limits = login_limits(kind, &config.limits);
            if let Some(store) = &self.plumbing.budgets {
                let key = jt_net::budget::ledger_key(kind.as_str(), &host, &user);
                limits = limits.with_shared(Arc::clone(store), key);
            }
            let limits = Arc::new(limits);
            let session = Arc::new(Session::new(
                kind,
                raw.clone(),
                config.credentials.clone(),
                config.session.clone(),
                Arc::clone(&limits),
                config.limits.clone(),
                config.session_store.clone(),
            ));
            let http = Arc::new(TradovateHttpClient::new(
                kind,
                raw,
                session,
                limits,
                config.clone(),
            ));
            Ok(Login {
                kind,
                config,
                http,
                gate: Arc::clone(&self.plumbing.gate),
                socket: OnceLock::new(),
            })
        })
    }
}

/// The broker of one Tradovate/NinjaTrader login.
#[derive(Clone)]
pub struct TradovateBroker {
    login: Arc<Login>,
}

impl std::fmt::Debug for TradovateBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradovateBroker")
            .field("kind", &self.login.kind)
            .field("rest", &self.login.config.rest_url.as_str())
            .field("user", &self.login.config.credentials.name)
            .finish()
    }
}

impl TradovateBroker {
    /// The broker of `config`'s login, sharing it with every other value for the same login in
    /// this process (the process-wide registry, pools and connect gate).
    ///
    /// # Errors
    /// `Transport` when the HTTP client cannot be built.
    pub fn new(config: TradovateConfig) -> Result<Self, BrokerError> {
        Self::with(config, &LoginRegistry::shared())
    }

    /// The broker of `config`'s login in `registry` (its pools and connect gate).
    ///
    /// # Errors
    /// `Transport` when the HTTP client cannot be built.
    pub fn with(config: TradovateConfig, registry: &LoginRegistry) -> Result<Self, BrokerError> {
        Ok(Self {
            login: registry.login(config)?,
        })
    }

    /// The REST client (raw access for tools and tests).
    #[must_use]
    pub fn http(&self) -> &Arc<TradovateHttpClient> {
        &self.login.http
    }

    /// The socket, once [`BrokerEvents::subscribe`] started it.
    #[must_use]
    pub fn socket(&self) -> Option<&TradovateSocket> {
        self.login.socket.get()
    }

    fn socket_or_start(&self) -> &TradovateSocket {
        self.login.socket.get_or_init(|| {
            TradovateSocket::start(
                Arc::clone(&self.login.http),
                SocketSetup {
                    url: self.login.config.ws_url.clone(),
                    config: self.login.config.ws.clone(),
                    gate: Arc::clone(&self.login.gate),
                    kind: self.login.kind,
                },
            )
        })
    }
}

#[async_trait]
impl Broker for TradovateBroker {
    fn kind(&self) -> BrokerKind {
        self.login.kind
    }

    fn capabilities(&self) -> Capabilities {
        TRADOVATE_CAPABILITIES
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

    /// Positions (`position/deps`), working orders (`order/deps`, `orderVersion/ldeps`) and the
    /// cash balance snapshot, read at once: three or four calls.
    async fn snapshot(&self, account: &AccountId) -> Result<AccountSnapshot, BrokerError> {
        let as_of = Utc::now();
        let http = &self.login.http;
        let (positions, working_orders, pnl) = tokio::join!(
            http.positions(account),
            http.working_orders(account),
            http.account_pnl(account)
        );
        Ok(AccountSnapshot {
            account: account.clone(),
            positions: positions?,
            working_orders: working_orders?,
            pnl: Some(pnl),
            as_of,
        })
    }

    async fn balance(&self, account: &AccountId) -> Result<Decimal, BrokerError> {
        self.login
            .http
            .account_pnl(account)
            .await?
            .cash
            .ok_or_else(|| BrokerError::transport("cash balance snapshot without totalCashValue"))
    }

    async fn modify_order_qty(
        &self,
        account: &AccountId,
        order: &OrderReport,
        qty: Contracts,
    ) -> Result<(), BrokerError> {
        self.login.http.modify_order_qty(account, order, qty).await
    }

    async fn modify_order_price(
        &self,
        account: &AccountId,
        order: &OrderReport,
        price: Decimal,
    ) -> Result<(), BrokerError> {
        self.login
            .http
            .modify_order_price(account, order, price)
            .await
    }

    async fn place_resting_entry(
        &self,
        account: &AccountId,
        contract: &Contract,
        entry: &EntryOrder,
        time_in_force: TimeInForce,
    ) -> Result<BracketAck, BrokerError> {
        let tif = Some(match time_in_force {
            TimeInForce::Day => "Day",
            TimeInForce::Gtc => "GTC",
        });
        match entry {
            EntryOrder::Bracket(bracket) => {
                if let Some(feature) = TRADOVATE_CAPABILITIES
                    .missing_for(bracket)
                    .into_iter()
                    .next()
                {
                    return Err(BrokerError::Unsupported { feature });
                }
                self.login
                    .http
                    .place_bracket_with_tif(account, contract, bracket, tif)
                    .await
            }
            EntryOrder::Market(order) => {
                let ack = self
                    .login
                    .http
                    .place_order_with_tif(account, contract, order, tif)
                    .await?;
                Ok(BracketAck {
                    client_order_id: ack.client_order_id,
                    bracket_id: None,
                    entry_order_id: Some(ack.order_id),
                    recovered: ack.recovered,
                })
            }
        }
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
        if let Some(feature) = TRADOVATE_CAPABILITIES
            .missing_for(bracket)
            .into_iter()
            .next()
        {
            return Err(BrokerError::Unsupported { feature });
        }
        self.login
            .http
            .place_bracket(account, contract, bracket)
            .await
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

    async fn close_open_position(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CloseOutcome, BrokerError> {
        self.login.http.close_open_position(account, contract).await
    }

    async fn flatten_account(&self, account: &AccountId) -> Result<FlattenReport, BrokerError> {
        self.login.http.flatten_account(account).await
    }

    async fn place_stop(
        &self,
        account: &AccountId,
        contract: &Contract,
        stop: &StopOrder,
    ) -> Result<OrderAck, BrokerError> {
        self.login.http.place_stop(account, contract, stop).await
    }

    async fn cancel_exit_orders(
        &self,
        account: &AccountId,
        contract: &Contract,
        direction: Direction,
        which: ExitOrders,
    ) -> Result<CancelReport, BrokerError> {
        self.login
            .http
            .cancel_exit_orders(account, contract, direction, which)
            .await
    }

    async fn cancel_working_orders(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CancelReport, BrokerError> {
        self.login
            .http
            .cancel_working_orders(account, contract)
            .await
    }
}

/// The login's events come from its WebSocket, started on the first subscription and shared by
/// every subscriber of the login.
#[async_trait]
impl BrokerEvents for TradovateBroker {
    async fn subscribe(&self, accounts: &[AccountId]) -> Result<EventSubscription, BrokerError> {
        let mut ids = Vec::with_capacity(accounts.len());
        for a in accounts {
            ids.push(self.login.http.account(a).await?.id);
        }
        Ok(self.socket_or_start().feed().serve(accounts, ids))
    }

    async fn quote_feed(&self) -> Result<QuoteFeed, BrokerError> {
        Ok(crate::websocket::market::start(
            Arc::clone(&self.login.http),
            SocketSetup {
                url: self.login.config.md_url.clone(),
                config: self.login.config.ws.clone(),
                gate: Arc::clone(&self.login.gate),
                kind: self.login.kind,
            },
        ))
    }
}
