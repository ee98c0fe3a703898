//! [`WebullBroker`]: the [`Broker`] of one Webull login (an app key and its secret).
//!
//! Everything of a login — the signed client, its budget (600 requests per minute, chosen),
//! the order-id map and the polled event side with its one-cancels-other guard — exists once
//! per registry, however many `WebullBroker` values point at it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use jt_domain::bracket::{EntryOrder, StopOrder};
use jt_domain::instrument::{Instrument, by_root, resolve_ticker};
use jt_domain::order::{BracketOrder, OrderKind, OrderRequest, StopKind, TimeInForce};
use jt_domain::types::{Contracts, Side};
use parking_lot::Mutex;
use rust_decimal::Decimal;

use jt_broker::broker::{Broker, BrokerEvents};
use jt_broker::capabilities::{Capabilities, Feature};
use jt_broker::error::BrokerError;
use jt_broker::events::EventSubscription;
use jt_broker::model::{
    AccountId, AccountInfo, AccountPnl, AccountSnapshot, BracketAck, BrokerKind, CallBudget,
    CloseOutcome, Contract, ContractId, FillReport, FlattenReport, ItemFailure, OrderAck, OrderId,
    OrderReport, PositionReport, SessionInfo, SessionOutcome,
};
use jt_net::registry::{Logins, Plumbing};

use crate::brackets;
use crate::common::convert::{self, contract_name, new_order};
use crate::config::WebullConfig;
use crate::http::client::WebullHttpClient;
use crate::http::models::WbModify;

/// What Webull carries for futures, and how (BROKERS.md §3; the futures feature matrix: no
/// combo orders — OTO, OTOCO, OCO — for futures).
///
/// `native_bracket` and `multiple_take_profits` are **carried, not native** (see
/// [`EMULATED`]): `place_bracket` places the market entry, waits for its fill, then places a
/// stop and the take-profit legs sized to the filled quantity, and the one-cancels-other link
/// is emulated by the guard ([`crate::oco`]) on the login's polled event side, where the
/// connection manager subscribes. A bracket whose protection cannot be honoured is refused
/// before anything is sent.
pub const WEBULL_CAPABILITIES: Capabilities = Capabilities {
    native_bracket: true,
    multiple_take_profits: true,
    // `TRAILING_STOP_LOSS` is listed for futures, but its body (trail type, amount) is not
    // documented: refused rather than guessed.
    trailing_stop: false,
    trailing_trigger: false,
    break_even: false,
    break_even_with_trailing_stop: false,
    // The protection is sized to a fill the call waits for: market entries only.
    non_market_bracket_entry: false,
    stop_limit_order: true,
    client_order_id_lookup: true,
    // Webull pushes order status over gRPC, which the platform does not speak: the event
    // side is polled (`crate::events`), and the connection manager holds it like any stream.
    event_stream: true,
    native_close_position: false,
    standalone_trailing_stop: false,
    standalone_trailing_trigger: false,
    day_orders: true,
    // Webull streams market data over MQTT: not spoken by this adapter.
    market_data: false,
};

/// The features [`WEBULL_CAPABILITIES`] declares that the platform emulates (Webull carries
/// none of them for futures).
pub const EMULATED: &[Feature] = &[Feature::NativeBracket, Feature::MultipleTakeProfits];

/// Webull's longest client order id (the simulator's, *chosen*).
pub const MAX_CLIENT_ORDER_ID: usize = 40;

/// How long a resolved contract is reused.
const CONTRACT_TTL: Duration = Duration::from_secs(3_600);

/// Everything of one login, shared.
pub(crate) struct Login {
    pub(crate) config: WebullConfig,
    pub(crate) http: WebullHttpClient,
    /// (account, Webull order id) → our client order id: Webull names orders by the latter.
    ids: Mutex<HashMap<(AccountId, String), String>>,
    contracts: Mutex<HashMap<String, (Instant, Contract)>>,
    verified: Mutex<Option<SessionInfo>>,
    /// The polled event side and its guard: started by the first subscriber.
    pub(crate) events: crate::events::Poller,
}

impl Login {
    pub(crate) fn remember(&self, account: &AccountId, order_id: &str, client_order_id: &str) {
        self.ids.lock().insert(
            (account.clone(), order_id.to_string()),
            client_order_id.to_string(),
        );
    }
}

/// The Webull logins of a process, keyed by REST host and app key, over the plumbing they
/// share.
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

    /// The process-wide registry.
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

    /// The call budget of every live login (a status page; never a metric label).
    #[must_use]
    pub fn budgets(&self) -> Vec<(String, CallBudget)> {
        self.logins
            .live()
            .into_iter()
            .map(|(name, l)| (name, l.http.limits().budget()))
            .collect()
    }

    fn login(&self, config: WebullConfig) -> Result<Arc<Login>, BrokerError> {
        let host = config.http.base_url.as_str().to_string();
        // The key pair is the login: two accounts with one app key and different secrets
        // (one of them wrong) must not share a client. A short digest of the secret tells
        // them apart without showing it (the name appears on status pages).
        let digest = {
            use sha1::Digest as _;
            let d = sha1::Sha1::digest(config.http.app_secret.as_bytes());
            d.iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let key = format!("{}#{digest}", config.http.app_key);
        self.logins.get_or_make(&host, &key, || {
            let http = WebullHttpClient::with_budgets(
                config.http.clone(),
                &self.plumbing.pools,
                self.plumbing.budgets.as_ref(),
            )
            .map_err(BrokerError::transport)?;
            Ok(Login {
                events: crate::events::Poller::new(config.events.subscriber_capacity),
                config,
                http,
                ids: Mutex::new(HashMap::new()),
                contracts: Mutex::new(HashMap::new()),
                verified: Mutex::new(None),
            })
        })
    }
}

/// The broker of one Webull login.
#[derive(Clone)]
pub struct WebullBroker {
    login: Arc<Login>,
}

impl std::fmt::Debug for WebullBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebullBroker")
            .field("api", &self.login.config.http.base_url.as_str())
            .field("app_key", &self.login.config.http.app_key)
            .finish()
    }
}

fn instrument(contract: &Contract) -> Result<&'static Instrument, BrokerError> {
    by_root(&contract.root).map_err(|_| BrokerError::UnknownContract {
        symbol: contract.name.clone(),
    })
}

/// Refuses a price off the contract's tick grid (never rounded silently).
pub(crate) fn on_tick(inst: &Instrument, what: &str, price: Decimal) -> Result<(), BrokerError> {
    if price > Decimal::ZERO && inst.is_on_tick(price) {
        Ok(())
    } else {
        Err(BrokerError::invalid(format!(
            "{what} price {price} is not a positive price on the {} tick grid of {}",
            inst.tick_size, inst.root
        )))
    }
}

fn check_kind(inst: &Instrument, kind: &OrderKind) -> Result<(), BrokerError> {
    match kind {
        OrderKind::Market => Ok(()),
        OrderKind::Limit { price } => on_tick(inst, "limit", price.value()),
        OrderKind::Stop { stop } => on_tick(inst, "stop", stop.value()),
        OrderKind::StopLimit { stop, price } => {
            on_tick(inst, "stop", stop.value())?;
            on_tick(inst, "limit", price.value())
        }
    }
}

pub(crate) fn check_id(client_order_id: &str) -> Result<(), BrokerError> {
    if client_order_id.is_empty() || client_order_id.len() > MAX_CLIENT_ORDER_ID {
        return Err(BrokerError::invalid(format!(
            "client order id {client_order_id:?} must have 1 to {MAX_CLIENT_ORDER_ID} characters at Webull"
        )));
    }
    Ok(())
}

/// A fresh client order id for an order the adapter itself sends (a close).
fn own_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

impl WebullBroker {
    /// The broker of `config`'s login, shared with every other value for it in this process.
    ///
    /// # Errors
    /// `Transport` when the HTTP client cannot be built.
    pub fn new(config: WebullConfig) -> Result<Self, BrokerError> {
        Self::with(config, &LoginRegistry::shared())
    }

    /// The broker of `config`'s login in `registry`.
    ///
    /// # Errors
    /// `Transport` when the HTTP client cannot be built.
    pub fn with(config: WebullConfig, registry: &LoginRegistry) -> Result<Self, BrokerError> {
        Ok(Self {
            login: registry.login(config)?,
        })
    }

    /// The signed client (raw access for tools and tests).
    #[must_use]
    pub fn http(&self) -> &WebullHttpClient {
        &self.login.http
    }

    /// The features the platform emulates for Webull.
    #[must_use]
    pub fn emulated(&self) -> &'static [Feature] {
        EMULATED
    }

    /// The accounts the login's event side polls (and guards) now: none until something
    /// subscribed in this process (the connection manager), none again once it let go.
    #[must_use]
    pub fn polled_accounts(&self) -> Vec<AccountId> {
        self.login.events.accounts()
    }

    async fn client_id_of(
        &self,
        account: &AccountId,
        order_id: &OrderId,
    ) -> Result<String, BrokerError> {
        let known = self
            .login
            .ids
            .lock()
            .get(&(account.clone(), order_id.0.clone()))
            .cloned();
        if let Some(id) = known {
            return Ok(id);
        }
        self.working_orders(account)
            .await?
            .into_iter()
            .find(|o| &o.id == order_id)
            .and_then(|o| o.client_order_id)
            .ok_or_else(|| BrokerError::Rejected {
                reason: format!("order {order_id} is not a working order of account {account}"),
                code: Some("ORDER_NOT_WORKING".into()),
            })
    }

    async fn send(
        &self,
        account: &AccountId,
        contract: &Contract,
        order: &OrderRequest,
        time_in_force: TimeInForce,
    ) -> Result<OrderAck, BrokerError> {
        check_id(&order.client_order_id)?;
        if order.qty == 0 {
            return Err(BrokerError::invalid("quantity 0"));
        }
        check_kind(instrument(contract)?, &order.kind)?;
        let body = new_order(
            &order.client_order_id,
            &contract.name,
            order.side,
            order.qty,
            &order.kind,
            time_in_force,
        );
        let placed = self.login.http.place(account.as_str(), &body).await?;
        self.login
            .remember(account, &placed.order_id, &order.client_order_id);
        Ok(OrderAck {
            order_id: OrderId(placed.order_id),
            client_order_id: order.client_order_id.clone(),
            recovered: placed.recovered,
        })
    }

    /// Closes `net` contracts of `contract` with a market order.
    async fn market_out(
        &self,
        account: &AccountId,
        contract: &Contract,
        net: i64,
    ) -> Result<OrderId, BrokerError> {
        let qty = u32::try_from(net.unsigned_abs())
            .map_err(|_| BrokerError::invalid(format!("position {net} is too large")))?;
        let side = if net > 0 { Side::Sell } else { Side::Buy };
        let order = OrderRequest {
            client_order_id: own_id("jtx"),
            side,
            qty,
            kind: OrderKind::Market,
        };
        Ok(self
            .send(account, contract, &order, TimeInForce::Day)
            .await?
            .order_id)
    }

    fn contract_of(position: &PositionReport) -> Contract {
        let name = position
            .symbol
            .clone()
            .unwrap_or_else(|| position.contract.0.clone());
        let root = resolve_ticker(&name)
            .map(|i| i.root.to_string())
            .unwrap_or_default();
        Contract {
            id: position.contract.clone(),
            name,
            root,
        }
    }
}

#[async_trait]
impl Broker for WebullBroker {
    fn kind(&self) -> BrokerKind {
        BrokerKind::Webull
    }

    fn capabilities(&self) -> Capabilities {
        WEBULL_CAPABILITIES
    }

    fn call_budget(&self) -> Option<CallBudget> {
        Some(self.login.http.limits().budget())
    }

    /// Webull signs every request: there is no session. The first call checks the key pair
    /// with the account list; later calls send nothing. The expiry is nominal (a day ahead).
    async fn login(&self) -> Result<SessionInfo, BrokerError> {
        if let Some(s) = self.login.verified.lock().clone() {
            return Ok(SessionInfo {
                outcome: SessionOutcome::Reused,
                ..s
            });
        }
        self.login.http.accounts().await?;
        let now = Utc::now();
        let info = SessionInfo {
            outcome: SessionOutcome::LoggedIn,
            obtained_at: now,
            expires_at: now + chrono::Duration::hours(24),
            user_id: None,
        };
        *self.login.verified.lock() = Some(info.clone());
        Ok(info)
    }

    async fn renew(&self) -> Result<SessionInfo, BrokerError> {
        *self.login.verified.lock() = None;
        self.login().await
    }

    async fn accounts(&self) -> Result<Vec<AccountInfo>, BrokerError> {
        Ok(self
            .login
            .http
            .accounts()
            .await?
            .into_iter()
            .map(|a| AccountInfo {
                id: AccountId(a.account_id),
                name: a.account_number,
                active: a
                    .account_status
                    .is_none_or(|s| s.eq_ignore_ascii_case("ACTIVE")),
            })
            .collect())
    }

    /// A root (`MNQ`, `MNQ1!`) is the listed month nearest to expiry; a named month
    /// (`MNQZ6`, `MNQZ2026`) must be listed. Reused for an hour.
    async fn resolve_contract(&self, symbol: &str) -> Result<Contract, BrokerError> {
        let key = symbol.trim().to_ascii_uppercase();
        if let Some((at, c)) = self.login.contracts.lock().get(&key)
            && at.elapsed() < CONTRACT_TTL
        {
            return Ok(c.clone());
        }
        let unknown = || BrokerError::UnknownContract {
            symbol: symbol.to_string(),
        };
        let inst = resolve_ticker(symbol).map_err(|_| unknown())?;
        let mut listed = self.login.http.futures(inst.root).await?;
        listed.retain(|c| c.code.eq_ignore_ascii_case(inst.root));
        listed.sort_by(|a, b| a.expire_date.cmp(&b.expire_date));
        let chosen = match contract_name(inst.root, symbol) {
            Some(name) => listed
                .into_iter()
                .find(|c| c.symbol.eq_ignore_ascii_case(&name)),
            None => listed.into_iter().next(),
        }
        .ok_or_else(unknown)?;
        let contract = Contract {
            id: ContractId(chosen.symbol.clone()),
            name: chosen.symbol,
            root: inst.root.to_string(),
        };
        self.login
            .contracts
            .lock()
            .insert(key, (Instant::now(), contract.clone()));
        Ok(contract)
    }

    async fn positions(&self, account: &AccountId) -> Result<Vec<PositionReport>, BrokerError> {
        self.login
            .http
            .positions(account.as_str())
            .await?
            .iter()
            .map(|p| convert::position_report(account, p))
            .collect()
    }

    async fn working_orders(&self, account: &AccountId) -> Result<Vec<OrderReport>, BrokerError> {
        let open = self.login.http.open_orders(account.as_str()).await?;
        let mut out = Vec::with_capacity(open.len());
        for o in &open {
            if let Some(id) = &o.client_order_id {
                self.login.remember(account, &o.order_id, id);
            }
            let r = convert::order_report(account, o)?;
            if r.status.is_open() {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn find_order(
        &self,
        account: &AccountId,
        client_order_id: &str,
    ) -> Result<Option<OrderReport>, BrokerError> {
        match self
            .login
            .http
            .order(account.as_str(), client_order_id)
            .await?
        {
            Some(o) => {
                self.login.remember(account, &o.order_id, client_order_id);
                Ok(Some(convert::order_report(account, &o)?))
            }
            None => Ok(None),
        }
    }

    /// Not read by this adapter yet (no fills endpoint in the simulator's surface).
    async fn fills(&self, _account: &AccountId) -> Result<Vec<FillReport>, BrokerError> {
        Err(BrokerError::Rejected {
            reason: "the Webull adapter does not read fills yet".into(),
            code: Some("NotImplemented".into()),
        })
    }

    /// Not read by this adapter yet.
    async fn account_pnl(&self, _account: &AccountId) -> Result<AccountPnl, BrokerError> {
        Err(BrokerError::Rejected {
            reason: "the Webull adapter does not read P&L yet".into(),
            code: Some("NotImplemented".into()),
        })
    }

    /// Positions and open orders, read at once: two calls; no P&L.
    async fn snapshot(&self, account: &AccountId) -> Result<AccountSnapshot, BrokerError> {
        let as_of = Utc::now();
        let (positions, working_orders) =
            tokio::join!(self.positions(account), self.working_orders(account));
        Ok(AccountSnapshot {
            account: account.clone(),
            positions: positions?,
            working_orders: working_orders?,
            pnl: None,
            as_of,
        })
    }

    async fn balance(&self, account: &AccountId) -> Result<Decimal, BrokerError> {
        self.login
            .http
            .balance(account.as_str())
            .await?
            .total_cash_balance
            .ok_or_else(|| BrokerError::transport("Webull's balance answer has no cash figure"))
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
        if qty == 0 {
            return Err(BrokerError::invalid("quantity 0: cancel the order instead"));
        }
        let id = match &order.client_order_id {
            Some(id) => id.clone(),
            None => self.client_id_of(account, &order.id).await?,
        };
        self.login
            .http
            .replace(
                account.as_str(),
                &WbModify {
                    client_order_id: id,
                    quantity: Some(qty.to_string()),
                    limit_price: None,
                    stop_price: None,
                },
            )
            .await
    }

    /// Webull's replace carries the new limit and/or stop price (the quantity is not sent, so
    /// it stays): the order moves in place, no cancel-and-replace.
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
        let (limit, stop) = jt_broker::broker::moved_prices(order, price)?;
        let id = match &order.client_order_id {
            Some(id) => id.clone(),
            None => self.client_id_of(account, &order.id).await?,
        };
        self.login
            .http
            .replace(
                account.as_str(),
                &WbModify {
                    client_order_id: id,
                    quantity: None,
                    limit_price: limit.map(|d| d.normalize().to_string()),
                    stop_price: stop.map(|d| d.normalize().to_string()),
                },
            )
            .await
    }

    /// A plain resting entry carries its time in force (`DAY` or `GTC`); a bracket's entry
    /// must be a market order (the protection is sized to its fill).
    async fn place_resting_entry(
        &self,
        account: &AccountId,
        contract: &Contract,
        entry: &EntryOrder,
        time_in_force: TimeInForce,
    ) -> Result<BracketAck, BrokerError> {
        match entry {
            EntryOrder::Bracket(b) => self.place_bracket(account, contract, b).await,
            EntryOrder::Market(o) => {
                let ack = self.send(account, contract, o, time_in_force).await?;
                Ok(BracketAck {
                    client_order_id: ack.client_order_id,
                    bracket_id: None,
                    entry_order_id: Some(ack.order_id),
                    recovered: ack.recovered,
                })
            }
        }
    }

    /// A market order works for the day; any other order until canceled (`GTC`: a protective
    /// order must outlive the trading day with its position).
    async fn place_order(
        &self,
        account: &AccountId,
        contract: &Contract,
        order: &OrderRequest,
    ) -> Result<OrderAck, BrokerError> {
        let tif = if matches!(order.kind, OrderKind::Market) {
            TimeInForce::Day
        } else {
            TimeInForce::Gtc
        };
        self.send(account, contract, order, tif).await
    }

    async fn place_bracket(
        &self,
        account: &AccountId,
        contract: &Contract,
        bracket: &BracketOrder,
    ) -> Result<BracketAck, BrokerError> {
        brackets::place(&self.login, account, contract, bracket).await
    }

    /// Fixed stops only (`STOP_LOSS`, `GTC`); a trailing stop is `Unsupported`.
    async fn place_stop(
        &self,
        account: &AccountId,
        contract: &Contract,
        stop: &StopOrder,
    ) -> Result<OrderAck, BrokerError> {
        if let Some(feature) = Capabilities::required_for_stop(&stop.kind)
            .into_iter()
            .find(|f| !WEBULL_CAPABILITIES.supports(*f))
        {
            return Err(BrokerError::Unsupported { feature });
        }
        debug_assert!(matches!(stop.kind, StopKind::Fixed));
        let order = OrderRequest {
            client_order_id: stop.client_order_id.clone(),
            side: stop.side,
            qty: stop.qty,
            kind: OrderKind::Stop { stop: stop.stop },
        };
        self.send(account, contract, &order, TimeInForce::Gtc).await
    }

    async fn cancel_order(
        &self,
        account: &AccountId,
        order_id: &OrderId,
    ) -> Result<(), BrokerError> {
        let id = self.client_id_of(account, order_id).await?;
        self.login.http.cancel(account.as_str(), &id).await
    }

    /// Cancels the contract's working orders, sends a market order for the net position
    /// (Webull closes nothing in one call), then cancels what still works.
    async fn close_position(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CloseOutcome, BrokerError> {
        self.cancel_working_orders(account, contract).await?;
        let net = self
            .position(account, &contract.id)
            .await?
            .map_or(0, |p| p.net_qty);
        let order_id = if net == 0 {
            None
        } else {
            Some(self.market_out(account, contract, net).await?)
        };
        let _ = self.cancel_working_orders(account, contract).await;
        Ok(CloseOutcome { order_id })
    }

    async fn flatten_account(&self, account: &AccountId) -> Result<FlattenReport, BrokerError> {
        let (working, positions) =
            tokio::join!(self.working_orders(account), self.positions(account));
        let (working, positions) = (working?, positions?);
        let mut report = FlattenReport {
            account: account.clone(),
            canceled: Vec::new(),
            closed: Vec::new(),
            failures: Vec::new(),
        };
        for o in &working {
            match self.cancel_order(account, &o.id).await {
                Ok(()) => report.canceled.push(o.id.clone()),
                Err(error) => report.failures.push(ItemFailure {
                    target: format!("cancel {}", o.id),
                    error,
                }),
            }
        }
        for p in positions.iter().filter(|p| p.net_qty != 0) {
            let contract = Self::contract_of(p);
            match self.market_out(account, &contract, p.net_qty).await {
                Ok(id) => report.closed.push((p.contract.clone(), Some(id))),
                Err(error) => report.failures.push(ItemFailure {
                    target: format!("close {}", p.contract),
                    error,
                }),
            }
        }
        Ok(report)
    }
}

/// Webull pushes order status over gRPC, which the platform does not speak: the login's
/// events are polled ([`crate::events`]), started by the first subscription and shared by every
/// subscriber of the login; the one-cancels-other guard runs on the same polls.
#[async_trait]
impl BrokerEvents for WebullBroker {
    async fn subscribe(&self, accounts: &[AccountId]) -> Result<EventSubscription, BrokerError> {
        crate::events::subscribe(&self.login, accounts).await
    }
}
