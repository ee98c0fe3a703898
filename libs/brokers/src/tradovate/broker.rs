//! [`TradovateBroker`]: the [`Broker`] of one Tradovate (or NinjaTrader) login.
//!
//! Everything that belongs to the login — its session (token), rate limits, REST client and
//! WebSocket — exists once per process, in a [`LoginRegistry`], however many
//! `TradovateBroker` values point at it: a second value never logs in a second time (the
//! two-session limit) and never opens a second socket.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use jt_domain::bracket::{EntryOrder, StopOrder};
use jt_domain::order::{BracketOrder, OrderRequest, TimeInForce};
use jt_domain::types::{Contracts, Direction};
use parking_lot::Mutex;
use rust_decimal::Decimal;

use crate::broker::{Broker, ExitOrders};
use crate::capabilities::Capabilities;
use crate::error::BrokerError;
use crate::events::EventSubscription;
use crate::model::{
    AccountId, AccountInfo, AccountPnl, BracketAck, BrokerKind, CallBudget, CancelReport,
    CloseOutcome, Contract, FillReport, FlattenReport, OrderAck, OrderId, OrderReport,
    PositionReport, SessionInfo,
};

use super::config::TradovateConfig;
use super::http::client::TradovateHttpClient;
use super::http::limits::LoginLimits;
use super::http::raw::{HostPools, TradovateRawHttpClient};
use super::http::session::Session;
use super::websocket::client::{SocketSetup, TradovateSocket};
use super::websocket::gate::ConnectGate;

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
};

/// Everything of one login, shared.
struct Login {
    kind: BrokerKind,
    config: TradovateConfig,
    http: Arc<TradovateHttpClient>,
    gate: Arc<ConnectGate>,
    socket: OnceLock<TradovateSocket>,
}

/// The logins of a process, keyed by REST host and user name.
#[derive(Default)]
pub struct LoginRegistry {
    logins: Mutex<HashMap<(String, String), Weak<Login>>>,
    pools: Arc<HostPools>,
}

impl std::fmt::Debug for LoginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRegistry")
            .field("logins", &self.logins.lock().len())
            .finish()
    }
}

impl LoginRegistry {
    /// The process-wide registry.
    #[must_use]
    pub fn shared() -> Arc<Self> {
        static REGISTRY: OnceLock<Arc<LoginRegistry>> = OnceLock::new();
        Arc::clone(REGISTRY.get_or_init(|| {
            Arc::new(Self {
                logins: Mutex::new(HashMap::new()),
                pools: HostPools::shared(),
            })
        }))
    }

    /// A private registry (tests that must not share logins).
    #[must_use]
    pub fn isolated() -> Arc<Self> {
        Arc::new(Self {
            logins: Mutex::new(HashMap::new()),
            pools: HostPools::shared(),
        })
    }

    /// The call budget of every live login (for a status page; never a metric label).
    #[must_use]
    pub fn budgets(&self) -> Vec<(String, CallBudget)> {
        self.logins
            .lock()
            .iter()
            .filter_map(|((host, user), w)| {
                w.upgrade()
                    .map(|l| (format!("{user}@{host}"), l.http.limits().budget()))
            })
            .collect()
    }

    fn login(
        &self,
        config: TradovateConfig,
        gate: Arc<ConnectGate>,
    ) -> Result<Arc<Login>, BrokerError> {
        let key = (
            config.rest_url.as_str().to_string(),
            config.credentials.name.clone(),
        );
        let mut logins = self.logins.lock();
        if let Some(l) = logins.get(&key).and_then(Weak::upgrade) {
            return Ok(l);
        }
        logins.retain(|_, w| w.strong_count() > 0);
        let kind = config.brand.kind();
        let raw =
            TradovateRawHttpClient::new(config.rest_url.clone(), config.http.clone(), &self.pools)
                .map_err(BrokerError::transport)?;
        let limits = Arc::new(LoginLimits::new(kind, config.limits.clone()));
        let session = Arc::new(Session::new(
            kind,
            raw.clone(),
            config.credentials.clone(),
            config.session.clone(),
            Arc::clone(&limits),
            config.session_store.clone(),
        ));
        let http = Arc::new(TradovateHttpClient::new(
            kind,
            raw,
            session,
            limits,
            config.clone(),
        ));
        let login = Arc::new(Login {
            kind,
            config,
            http,
            gate,
            socket: OnceLock::new(),
        });
        logins.insert(key, Arc::downgrade(&login));
        Ok(login)
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
    /// this process, and the process-wide connect gate.
    ///
    /// # Errors
    /// `Transport` when the HTTP client cannot be built.
    pub fn new(config: TradovateConfig) -> Result<Self, BrokerError> {
        Self::with(
            config,
            &LoginRegistry::shared(),
            ConnectGate::process_wide(),
        )
    }

    /// The broker of `config`'s login in `registry`, with `gate` for its socket.
    ///
    /// # Errors
    /// `Transport` when the HTTP client cannot be built.
    pub fn with(
        config: TradovateConfig,
        registry: &LoginRegistry,
        gate: Arc<ConnectGate>,
    ) -> Result<Self, BrokerError> {
        Ok(Self {
            login: registry.login(config, gate)?,
        })
    }

    /// The REST client (raw access for tools and tests).
    #[must_use]
    pub fn http(&self) -> &Arc<TradovateHttpClient> {
        &self.login.http
    }

    /// The socket, once [`Broker::subscribe`] started it.
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

    async fn flatten_account(&self, account: &AccountId) -> Result<FlattenReport, BrokerError> {
        self.login.http.flatten_account(account).await
    }

    async fn subscribe(&self, accounts: &[AccountId]) -> Result<EventSubscription, BrokerError> {
        let mut ids = Vec::with_capacity(accounts.len());
        for a in accounts {
            ids.push(self.login.http.account(a).await?.id);
        }
        let socket = self.socket_or_start();
        let subscription = socket.subscribe(Some(accounts.iter().cloned().collect::<HashSet<_>>()));
        socket.add_accounts(ids);
        Ok(subscription)
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
