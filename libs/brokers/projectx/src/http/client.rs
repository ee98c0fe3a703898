//! The ProjectX domain client: speaks the broker-neutral types over the raw client and owns
//! the call policy — the per-token budget, tokens, retries of reads, the envelope checked
//! explicitly, and the rule that an order is never re-sent blindly (an ambiguous write is
//! looked up by its `customTag`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use jt_domain::bracket::StopOrder;
use jt_domain::instrument::{Instrument, resolve_ticker};
use jt_domain::order::{OrderKind, OrderRequest, StopKind};
use jt_domain::types::{Direction, Side};
use jt_net::contracts::{ContractCache, DEFAULT_CONTRACT_CAPACITY, Resolved};
use jt_net::http::{CallClass, RawError};
use jt_net::limits::LoginLimits;
use jt_net::policy::{Call, CallError, CallPolicy, PolicyConfig, Uncertain};
use parking_lot::Mutex;
use rust_decimal::Decimal;

use crate::common::enums::{self, Endpoint, bar_unit, error_name, is_pending, order_type};
use crate::common::models::{ContractModel, HalfTrade, OrderModel, PositionModel, TradingAccount};
use crate::config::ProjectXConfig;
use jt_broker::capabilities::Feature;
use jt_broker::error::BrokerError;
use jt_broker::model::{
    AccountId, AccountInfo, AccountPnl, CloseOutcome, Contract, ContractId, FillId, FillReport,
    FlattenReport, ItemFailure, OrderAck, OrderId, OrderReport, PositionReport,
};

use super::limits::Bucket;
use super::models::{
    AccountRequest, AccountSearchRequest, CancelOrderRequest, CloseContractRequest,
    ContractByIdRequest, ContractSearchRequest, Envelope, ModifyOrderRequest, PlaceOrderRequest,
    RetrieveBarsRequest, TimeRangeRequest,
};
use super::raw::ProjectXRawHttpClient;
use super::session::Session;

/// How far back `find_order` looks for a `customTag`.
const LOOKUP_DAYS: i64 = 7;

/// The error of an envelope that is not a success.
fn envelope_error<T: Envelope>(endpoint: Endpoint, r: &T) -> Option<BrokerError> {
    if r.success() && r.error_code() == 0 {
        return None;
    }
    let name = error_name(endpoint, r.error_code());
    let text = r
        .error_message()
        .filter(|m| !m.trim().is_empty())
        .map_or_else(|| name.clone(), str::to_string);
    Some(BrokerError::Rejected {
        reason: text,
        code: Some(name),
    })
}

fn account_number(account: &AccountId) -> Result<i64, BrokerError> {
    account
        .as_str()
        .trim()
        .parse()
        .map_err(|_| BrokerError::UnknownAccount {
            account: account.to_string(),
        })
}

fn order_number(order: &OrderId) -> Result<i64, BrokerError> {
    order
        .as_str()
        .trim()
        .parse()
        .map_err(|_| BrokerError::invalid(format!("order id {order} is not a ProjectX id")))
}

const MONTH_CODES: &str = "FGHJKMNQUVXZ";

/// `(month code, last digit of the year)` of a contract name like `MNQZ5`, `MNQZ25` or
/// `MNQZ2025` for `root`; `None` for a bare root, another root, an option or a spread.
fn month_of(name: &str, root: &str) -> Option<(char, char)> {
    let mut t = name.trim().to_ascii_uppercase();
    if let Some(p) = t.rfind(':') {
        t = t[p + 1..].to_string();
    }
    let rest = t.strip_prefix(root)?;
    let mut chars = rest.chars();
    let month = chars.next().filter(|m| MONTH_CODES.contains(*m))?;
    let year: Vec<char> = chars.collect();
    if !(1..=4).contains(&year.len()) || !year.iter().all(char::is_ascii_digit) {
        return None;
    }
    Some((month, *year.last()?))
}

/// The id of another month of the product whose contract id is `active`
/// (`CON.F.US.MNQ.Z26` → `CON.F.US.MNQ.H27` for `('H', '7')`): the year is the first one ending
/// in the requested digit that is not before the active contract's year.
fn sibling_id(active: &str, (month, digit): (char, char)) -> Option<String> {
    let (prefix, code) = active.rsplit_once('.')?;
    let yy: u32 = code.get(1..).filter(|y| y.len() == 2)?.parse().ok()?;
    let d = digit.to_digit(10)?;
    let mut year = yy - yy % 10 + d;
    if year < yy {
        year += 10;
    }
    Some(format!("{prefix}.{month}{:02}", year % 100))
}

/// The ProjectX order type, prices and feature a plain order needs.
fn order_terms(kind: OrderKind) -> Result<(i32, Option<Decimal>, Option<Decimal>), BrokerError> {
    match kind {
        OrderKind::Market => Ok((order_type::MARKET, None, None)),
        OrderKind::Limit { price } => Ok((order_type::LIMIT, Some(price.value()), None)),
        OrderKind::Stop { stop } => Ok((order_type::STOP, None, Some(stop.value()))),
        // The docs list StopLimit (3) in responses only: not placeable.
        OrderKind::StopLimit { .. } => Err(BrokerError::Unsupported {
            feature: Feature::StopLimitOrder,
        }),
    }
}

/// Where the current trading day's trades and orders start: the session start (17:00
/// Chicago the evening before), or three days back when that lies ahead (a simulator trading
/// through a weekend or holiday) — [`of_day`] then keeps the day's own.
#[must_use]
pub fn trading_day_start() -> DateTime<Utc> {
    let now = Utc::now();
    let start = jt_domain::session::session_start(jt_broker::clock::trading_day(now));
    if start <= now {
        start
    } else {
        now - chrono::Duration::days(3)
    }
}

/// Whether a trade belongs to the trading day `day` (or a later one: a broker's trade date
/// may run ahead of ours on holidays, never behind).
#[must_use]
pub fn of_day(t: &HalfTrade, day: NaiveDate) -> bool {
    t.creation_timestamp
        .is_none_or(|ts| jt_broker::clock::trading_day(ts) >= day)
}

/// The neutral report of an order.
#[must_use]
pub fn order_report(o: &OrderModel, symbol: Option<String>) -> Option<OrderReport> {
    Some(OrderReport {
        id: OrderId::from(o.id),
        client_order_id: o.custom_tag.clone(),
        account: AccountId::from(o.account_id),
        contract: Some(ContractId::from(o.contract_id.as_str())),
        symbol,
        side: enums::side(o.side)?,
        order_type: Some(enums::order_kind(o.order_type)),
        qty: u32::try_from(o.size).ok(),
        price: o.limit_price,
        stop_price: o.stop_price,
        status: enums::status(o.status),
        filled_qty: u32::try_from(o.fill_volume).ok(),
        avg_fill_price: o.filled_price,
        parent: None,
        linked: None,
        reject_reason: None,
        timestamp: o.creation_timestamp,
    })
}

#[derive(Debug, Default)]
struct Caches {
    /// Contract id → model (tick size, name).
    models: HashMap<String, ContractModel>,
    /// Account id → account.
    accounts: HashMap<i64, TradingAccount>,
    /// Contract id → (last price, when read), for open P&L.
    prices: HashMap<String, (Decimal, Instant)>,
}

/// The ProjectX client of one login.
#[derive(Debug)]
pub struct ProjectXHttpClient {
    raw: ProjectXRawHttpClient,
    session: Arc<Session>,
    policy: CallPolicy,
    config: ProjectXConfig,
    caches: Mutex<Caches>,
    /// Normalised symbol → contract, bounded by a TTL (the Gateway reports no expiration).
    contracts: ContractCache,
    /// (account, customTag) whose outcome was left unknown: looked up before a new attempt.
    uncertain: Uncertain<(i64, String)>,
}

impl ProjectXHttpClient {
    /// A client over `raw`, sharing `session` and `limits` with every user of the login.
    #[must_use]
    pub fn new(
        raw: ProjectXRawHttpClient,
        session: Arc<Session>,
        limits: Arc<LoginLimits>,
        config: ProjectXConfig,
    ) -> Self {
        // ProjectX sends no penalty tickets and no 423s; its failures are envelopes, read by
        // the callers below.
        let policy = CallPolicy::new(
            PolicyConfig::new(
                "projectx",
                &config.http,
                config.limits.too_many_requests_backoff,
            ),
            limits,
            None,
        );
        Self {
            raw,
            session,
            policy,
            uncertain: Uncertain::new("projectx", &config.http),
            contracts: ContractCache::new(config.http.contract_ttl, DEFAULT_CONTRACT_CAPACITY),
            config,
            caches: Mutex::new(Caches::default()),
        }
    }

    /// The session of this login.
    #[must_use]
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The limits of this login.
    #[must_use]
    pub fn limits(&self) -> &Arc<LoginLimits> {
        self.policy.limits()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ProjectXConfig {
        &self.config
    }

    /// Runs one call under the policy; `call` gets the token (ProjectX has no tickets).
    async fn run<T, F, Fut>(
        &self,
        bucket: Bucket,
        class: CallClass,
        op: &'static str,
        mut call: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, RawError>>,
    {
        let spec = Call {
            op,
            class,
            lane: bucket.into(),
        };
        self.policy
            .run(&*self.session, spec, |token, _| call(token))
            .await
    }

    /// A read whose envelope must be a success.
    async fn read<T, F, Fut>(
        &self,
        op: &'static str,
        endpoint: Endpoint,
        bucket: Bucket,
        call: F,
    ) -> Result<T, BrokerError>
    where
        T: Envelope,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, RawError>>,
    {
        let r = self
            .run(bucket, CallClass::Read, op, call)
            .await
            .map_err(|e| e.into_broker(op))?;
        match envelope_error(endpoint, &r) {
            None => Ok(r),
            Some(e) => Err(e),
        }
    }

    /// A read of one account's data: `AccountNotFound` is `UnknownAccount`.
    async fn account_read<T, F, Fut>(
        &self,
        op: &'static str,
        account: &AccountId,
        call: F,
    ) -> Result<T, BrokerError>
    where
        T: Envelope,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, RawError>>,
    {
        match self.read(op, Endpoint::Search, Bucket::General, call).await {
            Err(BrokerError::Rejected { code: Some(c), .. }) if c == "AccountNotFound" => {
                Err(BrokerError::UnknownAccount {
                    account: account.to_string(),
                })
            }
            other => other,
        }
    }

    // ---- accounts ----------------------------------------------------------------------

    /// Every account of the login (refreshes the cache).
    ///
    /// # Errors
    /// Read errors.
    pub async fn accounts(&self) -> Result<Vec<AccountInfo>, BrokerError> {
        let raw = &self.raw;
        let body = AccountSearchRequest {
            only_active_accounts: false,
        };
        let body = &body;
        let r = self
            .read(
                "Account/search",
                Endpoint::List,
                Bucket::General,
                |t| async move { raw.account_search(&t, body).await },
            )
            .await?;
        let list = r
            .accounts
            .ok_or_else(|| BrokerError::transport("Account/search answered without accounts"))?;
        self.caches.lock().accounts = list.iter().map(|a| (a.id, a.clone())).collect();
        Ok(list
            .into_iter()
            .map(|a| AccountInfo {
                id: AccountId::from(a.id),
                name: a.name,
                active: a.can_trade,
            })
            .collect())
    }

    /// The account, refreshing the cache once when unknown.
    ///
    /// # Errors
    /// `UnknownAccount` when the login does not reach it.
    pub async fn account(&self, account: &AccountId) -> Result<TradingAccount, BrokerError> {
        let id = account_number(account)?;
        if let Some(a) = self.caches.lock().accounts.get(&id) {
            return Ok(a.clone());
        }
        self.accounts().await?;
        self.caches
            .lock()
            .accounts
            .get(&id)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownAccount {
                account: account.to_string(),
            })
    }

    /// The balances of every account (the P&L poll: one call for all of them).
    ///
    /// # Errors
    /// Read errors.
    pub async fn balances(&self) -> Result<Vec<TradingAccount>, BrokerError> {
        self.accounts().await?;
        Ok(self.caches.lock().accounts.values().cloned().collect())
    }

    // ---- contracts ---------------------------------------------------------------------

    /// Resolves a root (front month: `activeContract`) or a contract name, cached per login
    /// for the TTL (`HttpConfig::contract_ttl`; the Gateway reports no expiration).
    ///
    /// # Errors
    /// `UnknownContract`, read errors.
    pub async fn resolve_contract(&self, symbol: &str) -> Result<Contract, BrokerError> {
        let unknown = || BrokerError::UnknownContract {
            symbol: symbol.to_string(),
        };
        let instrument = resolve_ticker(symbol).map_err(|_| unknown())?;
        let month = month_of(symbol, instrument.root);
        let key = month.map_or_else(
            || instrument.root.to_string(),
            |(m, y)| format!("{}{m}{y}", instrument.root),
        );
        self.contracts
            .get_or_resolve(&key, || async {
                self.look_up_contract(instrument, month, unknown)
                    .await
                    .map(|contract| Resolved {
                        contract,
                        expires: None,
                    })
            })
            .await
    }

    async fn look_up_contract(
        &self,
        instrument: &Instrument,
        month: Option<(char, char)>,
        unknown: impl Fn() -> BrokerError + Copy,
    ) -> Result<Contract, BrokerError> {
        let raw = &self.raw;
        let body = ContractSearchRequest {
            search_text: instrument.root,
            live: false,
        };
        let body = &body;
        let r = self
            .read(
                "Contract/search",
                Endpoint::List,
                Bucket::General,
                |t| async move { raw.contract_search(&t, body).await },
            )
            .await?;
        let candidates: Vec<ContractModel> = r
            .contracts
            .unwrap_or_default()
            .into_iter()
            .filter(|c| month_of(&c.name, instrument.root).is_some())
            .collect();
        let listed = match month {
            Some(m) => candidates
                .iter()
                .find(|c| month_of(&c.name, instrument.root) == Some(m)),
            None => candidates.iter().find(|c| c.active_contract),
        }
        .cloned();
        let found = match (listed, month) {
            (Some(c), _) => c,
            // The Gateway's search lists the active month of each product only: another month
            // is looked up by its id, built from the active one's.
            (None, Some(m)) => {
                let id = candidates
                    .iter()
                    .find(|c| c.active_contract)
                    .and_then(|active| sibling_id(&active.id, m))
                    .ok_or_else(unknown)?;
                match self.contract_model(&ContractId::from(id.as_str())).await {
                    Ok(c) if month_of(&c.name, instrument.root) == Some(m) => c,
                    Ok(_) | Err(BrokerError::UnknownContract { .. }) => return Err(unknown()),
                    Err(e) => return Err(e),
                }
            }
            (None, None) => return Err(unknown()),
        };
        let contract = Contract {
            id: ContractId::from(found.id.as_str()),
            name: found.name.clone(),
            root: instrument.root.to_string(),
        };
        self.caches.lock().models.insert(found.id.clone(), found);
        Ok(contract)
    }

    /// The model of a contract id (tick size, name), from the cache or `Contract/searchById`.
    ///
    /// # Errors
    /// `UnknownContract`, read errors.
    pub async fn contract_model(&self, id: &ContractId) -> Result<ContractModel, BrokerError> {
        if let Some(m) = self.caches.lock().models.get(id.as_str()) {
            return Ok(m.clone());
        }
        let raw = &self.raw;
        let body = ContractByIdRequest {
            contract_id: id.as_str(),
        };
        let body = &body;
        let r = self
            .read(
                "Contract/searchById",
                Endpoint::ContractById,
                Bucket::General,
                |t| async move { raw.contract_search_by_id(&t, body).await },
            )
            .await;
        let model = match r {
            Ok(r) => r.contract,
            Err(BrokerError::Rejected { code: Some(c), .. }) if c == "ContractNotFound" => None,
            Err(e) => return Err(e),
        }
        .ok_or_else(|| BrokerError::UnknownContract {
            symbol: id.to_string(),
        })?;
        self.caches
            .lock()
            .models
            .insert(model.id.clone(), model.clone());
        Ok(model)
    }

    /// The contract name (`NQZ6`) of a contract id, from the cache or else `Contract/searchById`
    /// (then cached): REST positions and trades carry only the id, and a caller that never
    /// resolved the contract itself (the copier naming a leader's fill for a follower on
    /// another broker) needs the name. `None` when the broker cannot tell.
    async fn name_of(&self, id: &str) -> Option<String> {
        if let Some(name) = self.cached_name(id) {
            return Some(name);
        }
        match self.contract_model(&ContractId::from(id)).await {
            Ok(m) => Some(m.name),
            Err(e) => {
                tracing::debug!(contract = %id, error = %e, "the contract's name could not be read");
                None
            }
        }
    }

    fn cached_name(&self, id: &str) -> Option<String> {
        self.caches.lock().models.get(id).map(|m| m.name.clone())
    }

    /// The tick size of a contract, as the broker states it.
    ///
    /// # Errors
    /// `UnknownContract`; `InvalidRequest` for a non-positive tick size.
    pub async fn tick_size(&self, contract: &ContractId) -> Result<Decimal, BrokerError> {
        let tick = self.contract_model(contract).await?.tick_size;
        if tick <= Decimal::ZERO {
            return Err(BrokerError::invalid(format!(
                "contract {contract} has tick size {tick}"
            )));
        }
        Ok(tick)
    }

    // ---- reads -------------------------------------------------------------------------

    /// The account's open positions as the broker sends them.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`; `Transport` for an answer without its list (never read
    /// as "no positions").
    pub async fn position_models(
        &self,
        account: &AccountId,
    ) -> Result<Vec<PositionModel>, BrokerError> {
        let id = account_number(account)?;
        let raw = &self.raw;
        let body = AccountRequest { account_id: id };
        let body = &body;
        let r = self
            .account_read("Position/searchOpen", account, |t| async move {
                raw.position_search_open(&t, body).await
            })
            .await?;
        Ok(r.positions
            .ok_or_else(|| {
                BrokerError::transport("Position/searchOpen answered without positions")
            })?
            .into_iter()
            .filter(|p| p.account_id == id)
            .collect())
    }

    /// The account's half-turn trades since `since`.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn trade_models(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
    ) -> Result<Vec<HalfTrade>, BrokerError> {
        let id = account_number(account)?;
        let raw = &self.raw;
        let body = TimeRangeRequest {
            account_id: id,
            start_timestamp: since.to_rfc3339(),
            end_timestamp: None,
        };
        let body = &body;
        let r = self
            .account_read("Trade/search", account, |t| async move {
                raw.trade_search(&t, body).await
            })
            .await?;
        Ok(r.trades
            .ok_or_else(|| BrokerError::transport("Trade/search answered without trades"))?
            .into_iter()
            .filter(|t| t.account_id == id)
            .collect())
    }

    /// The account's open positions; the direction is the position's `type`.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`; `Transport` for a position without a direction.
    pub async fn positions(&self, account: &AccountId) -> Result<Vec<PositionReport>, BrokerError> {
        let list = self.position_models(account).await?;
        let mut out = Vec::with_capacity(list.len());
        for p in &list {
            let net = match enums::direction(p.position_type) {
                Some(Direction::Long) => p.size,
                Some(Direction::Short) => -p.size,
                None if p.size == 0 => 0,
                None => {
                    return Err(BrokerError::transport(format!(
                        "position {} of {} has size {} and no direction (type {})",
                        p.id, p.contract_id, p.size, p.position_type
                    )));
                }
            };
            out.push(PositionReport {
                account: account.clone(),
                contract: ContractId::from(p.contract_id.as_str()),
                symbol: match &p.contract_display_name {
                    Some(name) => Some(name.clone()),
                    None => self.name_of(&p.contract_id).await,
                },
                net_qty: net,
                avg_price: p.average_price,
                timestamp: p.creation_timestamp,
            });
        }
        Ok(out)
    }

    /// The account's open orders.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn working_orders(
        &self,
        account: &AccountId,
    ) -> Result<Vec<OrderReport>, BrokerError> {
        let models = self.open_order_models(account).await?;
        Ok(models
            .iter()
            .filter_map(|o| order_report(o, self.cached_name(&o.contract_id)))
            .collect())
    }

    /// The account's open orders as the broker sends them.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn open_order_models(
        &self,
        account: &AccountId,
    ) -> Result<Vec<OrderModel>, BrokerError> {
        let id = account_number(account)?;
        let raw = &self.raw;
        let body = AccountRequest { account_id: id };
        let body = &body;
        let r = self
            .account_read("Order/searchOpen", account, |t| async move {
                raw.order_search_open(&t, body).await
            })
            .await?;
        Ok(r.orders
            .ok_or_else(|| BrokerError::transport("Order/searchOpen answered without orders"))?
            .into_iter()
            .filter(|o| o.account_id == id)
            .collect())
    }

    /// The account's orders created since `since`.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn orders_since(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
    ) -> Result<Vec<OrderModel>, BrokerError> {
        let id = account_number(account)?;
        let raw = &self.raw;
        let body = TimeRangeRequest {
            account_id: id,
            start_timestamp: since.to_rfc3339(),
            end_timestamp: None,
        };
        let body = &body;
        let r = self
            .account_read("Order/search", account, |t| async move {
                raw.order_search(&t, body).await
            })
            .await?;
        Ok(r.orders
            .ok_or_else(|| BrokerError::transport("Order/search answered without orders"))?
            .into_iter()
            .filter(|o| o.account_id == id)
            .collect())
    }

    /// The order placed with `client_order_id` (its `customTag`) on `account`.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn find_order(
        &self,
        account: &AccountId,
        client_order_id: &str,
    ) -> Result<Option<OrderReport>, BrokerError> {
        Ok(self
            .find_order_model(account, client_order_id)
            .await?
            .and_then(|o| order_report(&o, self.cached_name(&o.contract_id))))
    }

    /// [`ProjectXHttpClient::find_order`] as the broker's model.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn find_order_model(
        &self,
        account: &AccountId,
        client_order_id: &str,
    ) -> Result<Option<OrderModel>, BrokerError> {
        let since = Utc::now() - chrono::Duration::days(LOOKUP_DAYS);
        Ok(self
            .orders_since(account, since)
            .await?
            .into_iter()
            .find(|o| o.custom_tag.as_deref() == Some(client_order_id)))
    }

    /// The account's fills of the current trading day (voided ones left out); each carries
    /// the `customTag` of its order.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn fills(&self, account: &AccountId) -> Result<Vec<FillReport>, BrokerError> {
        let start = trading_day_start();
        let today = jt_broker::clock::trading_day(Utc::now());
        let trades: Vec<_> = self
            .trade_models(account, start)
            .await?
            .into_iter()
            .filter(|t| !t.voided && of_day(t, today))
            .collect();
        if trades.is_empty() {
            return Ok(Vec::new());
        }
        let tags: HashMap<i64, Option<String>> = self
            .orders_since(account, start)
            .await?
            .into_iter()
            .map(|o| (o.id, o.custom_tag))
            .collect();
        // Named once per contract (most days: one or two contracts).
        let mut names: HashMap<String, Option<String>> = HashMap::new();
        for t in &trades {
            if !names.contains_key(&t.contract_id) {
                let name = self.name_of(&t.contract_id).await;
                names.insert(t.contract_id.clone(), name);
            }
        }
        Ok(trades
            .into_iter()
            .filter_map(|t| {
                Some(FillReport {
                    id: FillId::from(t.id),
                    order_id: OrderId::from(t.order_id),
                    account: account.clone(),
                    symbol: names.get(&t.contract_id).cloned().flatten(),
                    contract: ContractId::from(t.contract_id.as_str()),
                    side: enums::side(t.side)?,
                    qty: u32::try_from(t.size).ok()?,
                    price: t.price,
                    timestamp: t.creation_timestamp?,
                    trade_date: t.creation_timestamp.map(jt_broker::clock::trading_day),
                    client_order_id: tags.get(&t.order_id).cloned().flatten(),
                })
            })
            .collect())
    }

    /// The last traded price of a contract: the newest one-minute bar's close, cached for
    /// half the poll interval (the bars budget is 30 per 30 s per token).
    ///
    /// # Errors
    /// Read errors; `Transport` when the broker has no recent bar.
    pub async fn last_price(&self, contract: &str) -> Result<Decimal, BrokerError> {
        let fresh = self.config.hub.poll_interval / 2;
        if let Some((p, at)) = self.caches.lock().prices.get(contract)
            && at.elapsed() < fresh
        {
            return Ok(*p);
        }
        let now = Utc::now();
        let raw = &self.raw;
        let body = RetrieveBarsRequest {
            contract_id: contract,
            live: false,
            start_time: (now - chrono::Duration::days(4)).to_rfc3339(),
            end_time: (now + chrono::Duration::minutes(1)).to_rfc3339(),
            unit: bar_unit::MINUTE,
            unit_number: 1,
            limit: 1,
            include_partial_bar: true,
        };
        let body = &body;
        let r = self
            .read(
                "History/retrieveBars",
                Endpoint::RetrieveBars,
                Bucket::Bars,
                |t| async move { raw.history_retrieve_bars(&t, body).await },
            )
            .await?;
        let bar = r
            .bars
            .unwrap_or_default()
            .into_iter()
            .max_by_key(|b| b.t)
            .ok_or_else(|| BrokerError::transport(format!("no recent bar of {contract}")))?;
        self.caches
            .lock()
            .prices
            .insert(contract.to_string(), (bar.c, Instant::now()));
        Ok(bar.c)
    }

    /// Realized P&L of the trading day (trades' `profitAndLoss` less fees) and open P&L of the
    /// open positions at the last price. ProjectX has no P&L endpoint; this is what the
    /// max-loss poll reads every 5 s (DOMAIN §9). A figure that cannot be read is an error,
    /// never zero.
    ///
    /// # Errors
    /// Read errors; `Transport` when a position has no average price or no last price.
    pub async fn account_pnl(&self, account: &AccountId) -> Result<AccountPnl, BrokerError> {
        let start = trading_day_start();
        let today = jt_broker::clock::trading_day(Utc::now());
        let trades = self.trade_models(account, start).await?;
        let realized: Decimal = trades
            .iter()
            .filter(|t| !t.voided && of_day(t, today))
            .map(|t| t.profit_and_loss.unwrap_or_default() - t.fees.unwrap_or_default())
            .sum();
        let mut open = Decimal::ZERO;
        for p in self.positions(account).await? {
            if p.net_qty == 0 {
                continue;
            }
            let avg = p.avg_price.ok_or_else(|| {
                BrokerError::transport(format!("position in {} without an average", p.contract))
            })?;
            let model = self.contract_model(&p.contract).await?;
            let last = self.last_price(p.contract.as_str()).await?;
            let per_point = model.tick_value / model.tick_size;
            open += (last - avg) * Decimal::from(p.net_qty) * per_point;
        }
        // Fresh, not the cached account: the balance moves with every fill.
        let id = account_number(account)?;
        let balance = self
            .balances()
            .await?
            .into_iter()
            .find(|x| x.id == id)
            .ok_or_else(|| BrokerError::UnknownAccount {
                account: account.to_string(),
            })?
            .balance;
        Ok(AccountPnl {
            account: account.clone(),
            realized,
            open,
            net_liq: Some(balance + open),
            cash: Some(balance),
            as_of: Utc::now(),
        })
    }

    /// The account's balance (`Account/search`, read fresh: it moves with every fill).
    ///
    /// # Errors
    /// Read errors; `UnknownAccount` when the login does not reach the account.
    pub async fn balance(&self, account: &AccountId) -> Result<Decimal, BrokerError> {
        let id = account_number(account)?;
        Ok(self
            .balances()
            .await?
            .into_iter()
            .find(|x| x.id == id)
            .ok_or_else(|| BrokerError::UnknownAccount {
                account: account.to_string(),
            })?
            .balance)
    }

    // ---- writes ------------------------------------------------------------------------

    /// Checks that `price` lies on the contract's tick grid exactly.
    ///
    /// # Errors
    /// `InvalidRequest` for an off-tick price.
    pub async fn check_on_tick(
        &self,
        contract: &Contract,
        price: Decimal,
    ) -> Result<(), BrokerError> {
        let tick = self.tick_size(&contract.id).await?;
        if (price % tick).is_zero() {
            Ok(())
        } else {
            Err(BrokerError::invalid(format!(
                "price {price} is not on the {tick} tick of {}",
                contract.name
            )))
        }
    }

    /// Places one market, limit or stop order tagged with its client order id.
    ///
    /// # Errors
    /// See [`jt_broker::Broker::place_order`].
    pub async fn place_order(
        &self,
        account: &AccountId,
        contract: &Contract,
        order: &OrderRequest,
    ) -> Result<OrderAck, BrokerError> {
        let acct = self.account(account).await?;
        let (kind, limit, stop) = order_terms(order.kind)?;
        for p in [limit, stop].into_iter().flatten() {
            self.check_on_tick(contract, p).await?;
        }
        if order.qty == 0 {
            return Err(BrokerError::invalid("order quantity is 0"));
        }
        let body = PlaceOrderRequest {
            account_id: acct.id,
            contract_id: contract.id.to_string(),
            order_type: kind,
            side: enums::side_number(order.side),
            size: i64::from(order.qty),
            limit_price: limit,
            stop_price: stop,
            custom_tag: order.client_order_id.clone(),
            stop_loss_bracket: None,
            take_profit_bracket: None,
        };
        self.submit(account, &body, "place_order").await
    }

    /// Places a standalone protective stop for a position (fixed only: a standalone trailing
    /// stop's `trailPrice` means different things in different sources).
    ///
    /// # Errors
    /// See [`jt_broker::Broker::place_stop`].
    pub async fn place_stop(
        &self,
        account: &AccountId,
        contract: &Contract,
        stop: &StopOrder,
    ) -> Result<OrderAck, BrokerError> {
        if let StopKind::Trailing { .. } = stop.kind {
            return Err(BrokerError::Unsupported {
                feature: Feature::StandaloneTrailingStop,
            });
        }
        self.place_order(
            account,
            contract,
            &OrderRequest {
                client_order_id: stop.client_order_id.clone(),
                side: stop.side,
                qty: stop.qty,
                kind: OrderKind::Stop { stop: stop.stop },
            },
        )
        .await
    }

    /// Sends an `Order/place` body; an ambiguous outcome is looked up by its `customTag`
    /// (never re-sent), and a tag left unknown is looked up before it is sent again.
    ///
    /// # Errors
    /// `Rejected` with the endpoint's error name; `UnknownOutcome`; the errors of any call.
    pub async fn submit(
        &self,
        account: &AccountId,
        body: &PlaceOrderRequest,
        operation: &'static str,
    ) -> Result<OrderAck, BrokerError> {
        let tag = &body.custom_tag;
        let key = (body.account_id, tag.clone());
        let ack = |id: i64, recovered: bool| OrderAck {
            order_id: OrderId::from(id),
            client_order_id: tag.clone(),
            recovered,
        };
        if let Some(found) = self
            .uncertain
            .check(&key, operation, tag, || self.find_order_model(account, tag))
            .await?
        {
            return Ok(ack(found.id, true));
        }
        let raw = &self.raw;
        let detail = match self
            .run(
                Bucket::General,
                CallClass::Write,
                "Order/place",
                |t| async move { raw.order_place(&t, body).await },
            )
            .await
        {
            Ok(r) if r.success() && r.error_code() == 0 => match r.order_id {
                Some(id) => return Ok(ack(id, false)),
                None => "Order/place succeeded without an orderId".to_string(),
            },
            Ok(r) if is_pending(Endpoint::PlaceOrder, r.error_code()) => {
                format!(
                    "Order/place answered OrderPending ({})",
                    r.error_message().unwrap_or_default()
                )
            }
            Ok(r) => {
                let e = envelope_error(Endpoint::PlaceOrder, &r).unwrap_or_else(|| {
                    BrokerError::transport("Order/place failed without an error code")
                });
                return Err(match e {
                    BrokerError::Rejected { code: Some(c), .. } if c == "ContractNotFound" => {
                        BrokerError::UnknownContract {
                            symbol: body.contract_id.clone(),
                        }
                    }
                    BrokerError::Rejected { code: Some(c), .. } if c == "AccountNotFound" => {
                        BrokerError::UnknownAccount {
                            account: account.to_string(),
                        }
                    }
                    other => other,
                });
            }
            Err(CallError::Ambiguous(d)) => d,
            Err(e) => return Err(e.into_broker("Order/place")),
        };
        let found = self
            .uncertain
            .settle(key, operation, tag, detail, || {
                self.find_order_model(account, tag)
            })
            .await?;
        Ok(ack(found.id, true))
    }

    /// Sends a write whose answer is only the envelope: `Ok(None)` when it succeeded,
    /// `Ok(Some(detail))` when its outcome is unknown (pending, no answer: the caller settles
    /// it by reading the state), `Err` for a definite failure.
    async fn command<T, F, Fut>(
        &self,
        endpoint: Endpoint,
        op: &'static str,
        call: F,
    ) -> Result<Option<String>, BrokerError>
    where
        T: Envelope,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, RawError>>,
    {
        match self.run(Bucket::General, CallClass::Write, op, call).await {
            Ok(r) if is_pending(endpoint, r.error_code()) => Ok(Some(format!(
                "{op} answered {}",
                error_name(endpoint, r.error_code())
            ))),
            Ok(r) => envelope_error(endpoint, &r).map_or(Ok(None), Err),
            Err(CallError::Ambiguous(d)) => Ok(Some(d)),
            Err(e) => Err(e.into_broker(op)),
        }
    }

    /// Cancels an order of the account (the broker checks the account).
    ///
    /// # Errors
    /// `Rejected` (`OrderNotFound`, `Rejected`: not working); `UnknownOutcome`.
    pub async fn cancel_order(
        &self,
        account: &AccountId,
        order_id: &OrderId,
    ) -> Result<(), BrokerError> {
        let acct = account_number(account)?;
        let oid = order_number(order_id)?;
        let raw = &self.raw;
        let body = CancelOrderRequest {
            account_id: acct,
            order_id: oid,
        };
        let body = &body;
        let Some(detail) = self
            .command(Endpoint::CancelOrder, "Order/cancel", |t| async move {
                raw.order_cancel(&t, body).await
            })
            .await?
        else {
            return Ok(());
        };
        // Whether the cancel happened is read from the open orders.
        tokio::time::sleep(self.config.http.lookup_interval).await;
        match self.open_order_models(account).await {
            Ok(open) if !open.iter().any(|o| o.id == oid) => Ok(()),
            other => Err(BrokerError::UnknownOutcome {
                operation: "cancel_order".into(),
                client_order_id: None,
                detail: format!(
                    "{detail}; order {oid} afterwards: {:?}",
                    other.map(|o| o.into_iter().find(|x| x.id == oid).map(|x| x.status))
                ),
            }),
        }
    }

    /// Changes the total quantity of a working order (exit legs sized to a fill, a stop kept
    /// within its position).
    ///
    /// # Errors
    /// `Rejected` (not working, through the market); `UnknownOutcome`.
    pub async fn modify_size(
        &self,
        account: &AccountId,
        order_id: i64,
        size: u32,
    ) -> Result<(), BrokerError> {
        let body = ModifyOrderRequest {
            account_id: account_number(account)?,
            order_id,
            size: Some(i64::from(size)),
            limit_price: None,
            stop_price: None,
        };
        self.modify(account, body, |o| o.size == i64::from(size))
            .await
    }

    /// Moves a working order's prices (`Order/modify` with `limitPrice` and/or `stopPrice`;
    /// the size is not sent, so it stays).
    ///
    /// # Errors
    /// As [`Self::modify_size`].
    pub async fn modify_prices(
        &self,
        account: &AccountId,
        order_id: i64,
        limit_price: Option<Decimal>,
        stop_price: Option<Decimal>,
    ) -> Result<(), BrokerError> {
        let body = ModifyOrderRequest {
            account_id: account_number(account)?,
            order_id,
            size: None,
            limit_price,
            stop_price,
        };
        self.modify(account, body, |o| {
            (limit_price.is_none() || o.limit_price == limit_price)
                && (stop_price.is_none() || o.stop_price == stop_price)
        })
        .await
    }

    /// Sends one `Order/modify`; a lost answer is settled by reading the open orders
    /// (`settled`: the order shows the change).
    async fn modify(
        &self,
        account: &AccountId,
        body: ModifyOrderRequest,
        settled: impl Fn(&OrderModel) -> bool,
    ) -> Result<(), BrokerError> {
        let order_id = body.order_id;
        let raw = &self.raw;
        let body = &body;
        let Some(detail) = self
            .command(Endpoint::ModifyOrder, "Order/modify", |t| async move {
                raw.order_modify(&t, body).await
            })
            .await?
        else {
            return Ok(());
        };
        tokio::time::sleep(self.config.http.lookup_interval).await;
        match self.open_order_models(account).await {
            Ok(open) if open.iter().any(|o| o.id == order_id && settled(o)) => Ok(()),
            other => Err(BrokerError::UnknownOutcome {
                operation: "modify_order".into(),
                client_order_id: None,
                detail: format!(
                    "{detail}; order {order_id} afterwards: {:?}",
                    other.map(|o| o.into_iter().find(|x| x.id == order_id).map(|x| (
                        x.status,
                        x.size,
                        x.limit_price,
                        x.stop_price
                    )))
                ),
            }),
        }
    }

    async fn close_contract(
        &self,
        account: &AccountId,
        contract: &ContractId,
    ) -> Result<CloseOutcome, BrokerError> {
        let acct = account_number(account)?;
        let started = Utc::now() - chrono::Duration::seconds(1);
        let raw = &self.raw;
        let body = CloseContractRequest {
            account_id: acct,
            contract_id: contract.as_str(),
        };
        let body = &body;
        let detail = match self
            .command(
                Endpoint::ClosePosition,
                "Position/closeContract",
                |t| async move { raw.position_close_contract(&t, body).await },
            )
            .await
        {
            Ok(None) => {
                // The endpoint returns no order id: the closing order is the newest market
                // order on the contract.
                let order_id = self
                    .orders_since(account, started)
                    .await
                    .ok()
                    .and_then(|os| {
                        os.into_iter()
                            .filter(|o| {
                                o.contract_id == contract.as_str()
                                    && o.order_type == order_type::MARKET
                            })
                            .max_by_key(|o| o.id)
                    })
                    .map(|o| OrderId::from(o.id));
                return Ok(CloseOutcome { order_id });
            }
            Err(BrokerError::Rejected { code: Some(c), .. }) if c == "PositionNotFound" => {
                return Ok(CloseOutcome { order_id: None });
            }
            Err(e) => return Err(e),
            Ok(Some(detail)) => detail,
        };
        // A close is settled by the position: flat means it happened.
        tokio::time::sleep(self.config.http.lookup_interval).await;
        match self.positions(account).await {
            Ok(ps) if ps.iter().all(|p| &p.contract != contract || p.net_qty == 0) => {
                Ok(CloseOutcome { order_id: None })
            }
            other => Err(BrokerError::UnknownOutcome {
                operation: "close_position".into(),
                client_order_id: None,
                detail: format!(
                    "{detail}; position afterwards: {:?}",
                    other.map(|ps| ps.into_iter().find(|p| &p.contract == contract))
                ),
            }),
        }
    }

    /// Cancels the contract's working orders, then closes its position
    /// (`Position/closeContract` sends the market order; it does not cancel other orders).
    ///
    /// # Errors
    /// See [`jt_broker::Broker::close_position`].
    pub async fn close_position(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CloseOutcome, BrokerError> {
        let working = self.open_order_models(account).await?;
        for o in working
            .iter()
            .filter(|o| o.contract_id == contract.id.as_str())
        {
            match self.cancel_order(account, &OrderId::from(o.id)).await {
                Ok(()) | Err(BrokerError::Rejected { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let outcome = self.close_contract(account, &contract.id).await?;
        // Bracket children the close did not take with it (they go when the position is flat;
        // anything else still working on the contract is canceled now).
        for o in self
            .open_order_models(account)
            .await?
            .iter()
            .filter(|o| o.contract_id == contract.id.as_str())
        {
            if let Err(e) = self.cancel_order(account, &OrderId::from(o.id)).await
                && !matches!(e, BrokerError::Rejected { .. })
            {
                return Err(e);
            }
        }
        Ok(outcome)
    }

    /// Flattens the account.
    ///
    /// # Errors
    /// See [`jt_broker::Broker::flatten_account`].
    pub async fn flatten_account(&self, account: &AccountId) -> Result<FlattenReport, BrokerError> {
        let positions = self.positions(account).await?;
        let mut report = FlattenReport {
            account: account.clone(),
            canceled: Vec::new(),
            closed: Vec::new(),
            failures: Vec::new(),
        };
        for o in self.open_order_models(account).await? {
            match self.cancel_order(account, &OrderId::from(o.id)).await {
                Ok(()) => report.canceled.push(OrderId::from(o.id)),
                Err(BrokerError::Rejected { .. }) => {}
                Err(error) => report.failures.push(ItemFailure {
                    target: format!("cancel {}", o.id),
                    error,
                }),
            }
        }
        for p in positions.iter().filter(|p| p.net_qty != 0) {
            match self.close_contract(account, &p.contract).await {
                Ok(c) => report.closed.push((p.contract.clone(), c.order_id)),
                Err(error) => report.failures.push(ItemFailure {
                    target: format!(
                        "close {}",
                        p.symbol.as_deref().unwrap_or(p.contract.as_str())
                    ),
                    error,
                }),
            }
        }
        for o in self.open_order_models(account).await? {
            match self.cancel_order(account, &OrderId::from(o.id)).await {
                Ok(()) => report.canceled.push(OrderId::from(o.id)),
                Err(BrokerError::Rejected { .. }) => {}
                Err(error) => report.failures.push(ItemFailure {
                    target: format!("cancel {}", o.id),
                    error,
                }),
            }
        }
        Ok(report)
    }

    /// The instrument behind a contract (for sides and points); `UnknownContract` otherwise.
    ///
    /// # Errors
    /// `UnknownContract`.
    pub fn instrument(contract: &Contract) -> Result<&'static Instrument, BrokerError> {
        jt_domain::instrument::by_root(&contract.root).map_err(|_| BrokerError::UnknownContract {
            symbol: contract.name.clone(),
        })
    }

    /// The exit side of a position direction (a helper for brackets and the exit guard).
    #[must_use]
    pub fn exit_side(direction: Direction) -> Side {
        direction.exit_side()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("MNQZ5", "MNQ", Some(('Z', '5')))]
    #[case("MNQZ25", "MNQ", Some(('Z', '5')))]
    #[case("MNQZ2025", "MNQ", Some(('Z', '5')))]
    #[case("CME_MINI:MNQH6", "MNQ", Some(('H', '6')))]
    #[case("MNQ", "MNQ", None)]
    #[case("MNQ1!", "MNQ", None)]
    #[case("MNQZ5", "NQ", None)]
    #[case("ENQH25", "NQ", None)]
    fn contract_months(#[case] name: &str, #[case] root: &str, #[case] want: Option<(char, char)>) {
        assert_eq!(month_of(name, root), want);
    }

    #[rstest]
    #[case("CON.F.US.MNQ.Z26", ('H', '7'), Some("CON.F.US.MNQ.H27"))]
    #[case("CON.F.US.MNQ.Z26", ('M', '6'), Some("CON.F.US.MNQ.M26"))]
    #[case("CON.F.US.EP.Z29", ('H', '0'), Some("CON.F.US.EP.H30"))]
    #[case("CON.F.US.ENQ.H99", ('Z', '0'), Some("CON.F.US.ENQ.Z00"))]
    #[case("CON.F.US.MNQ.Z26", ('H', 'x'), None)]
    #[case("MNQZ6", ('H', '7'), None)]
    fn other_months_are_named_after_the_active_id(
        #[case] active: &str,
        #[case] month: (char, char),
        #[case] want: Option<&str>,
    ) {
        assert_eq!(sibling_id(active, month).as_deref(), want);
    }

    #[test]
    fn envelopes_are_checked_explicitly() {
        use crate::http::models::PlaceOrderResponse;
        let r: PlaceOrderResponse = serde_json::from_str(
            r#"{"orderId":1,"success":true,"errorCode":0,"errorMessage":null}"#,
        )
        .unwrap();
        assert!(envelope_error(Endpoint::PlaceOrder, &r).is_none());
        let r: PlaceOrderResponse = serde_json::from_str(
            r#"{"orderId":null,"success":false,"errorCode":5,"errorMessage":null}"#,
        )
        .unwrap();
        assert_eq!(
            envelope_error(Endpoint::PlaceOrder, &r),
            Some(BrokerError::Rejected {
                reason: "OutsideTradingHours".into(),
                code: Some("OutsideTradingHours".into())
            })
        );
        // `success: true` with an error code is not a success.
        let r: PlaceOrderResponse =
            serde_json::from_str(r#"{"orderId":1,"success":true,"errorCode":2}"#).unwrap();
        assert!(envelope_error(Endpoint::PlaceOrder, &r).is_some());
        assert_eq!(
            order_terms(OrderKind::StopLimit {
                stop: jt_domain::types::Price::on_tick(
                    jt_domain::instrument::by_root("MNQ").unwrap(),
                    Decimal::ONE
                ),
                price: jt_domain::types::Price::on_tick(
                    jt_domain::instrument::by_root("MNQ").unwrap(),
                    Decimal::ONE
                ),
            }),
            Err(BrokerError::Unsupported {
                feature: Feature::StopLimitOrder
            })
        );
    }
}
