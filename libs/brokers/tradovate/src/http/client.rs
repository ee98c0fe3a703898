//! The Tradovate domain client: speaks the broker-neutral types over the raw client, and owns
//! the call policy — rate limits, tokens, penalties, retries of reads, and the rule that an
//! order is never re-sent blindly (an ambiguous write is looked up by client order id).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use jt_domain::bracket::StopOrder;
use jt_domain::instrument::{Instrument, by_root, resolve_ticker};
use jt_domain::order::{BracketOrder, OrderKind, OrderRequest};
use jt_net::contracts::{ContractCache, DEFAULT_CONTRACT_CAPACITY, Resolved};
use jt_net::http::RawError;
use jt_net::limits::LoginLimits;
use jt_net::policy::{Call, CallError, CallPolicy, PolicyConfig, Refusal, Uncertain};
use parking_lot::Mutex;
use rust_decimal::Decimal;

use crate::common::entities::{self as wire};
use crate::config::TradovateConfig;
use crate::websocket::parse;
use jt_broker::broker::ExitOrders;
use jt_broker::error::BrokerError;
use jt_broker::model::{
    AccountId, AccountInfo, AccountPnl, BracketAck, BrokerKind, CancelReport, CloseOutcome,
    Contract, ContractId, FillReport, FlattenReport, ItemFailure, OrderAck, OrderId, OrderReport,
    PositionReport,
};

use super::models::{
    self, CancelOrder, CashBalanceSnapshotRequest, FailureProbe, LiquidatePosition, Target,
};
use super::raw::TradovateRawHttpClient;
use super::session::Session;

fn is_auth_text(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "access is denied",
        "access denied",
        "expired access token",
        "unauthorized",
        "invalid token",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// The rejection a `PlaceOrderResult`/`CommandResult` reports, if any.
fn command_failure(reason: Option<&String>, text: Option<&String>) -> Option<BrokerError> {
    FailureProbe {
        failure_reason: reason.cloned(),
        failure_text: text.cloned(),
        ..FailureProbe::default()
    }
    .failure()
    .map(|(reason, code)| BrokerError::Rejected { reason, code })
}

/// What a 2xx body that is not the endpoint's answer says: Tradovate answers many refusals
/// as a 200 with `errorText`/`failureReason` (the call policy's [`BodyReader`] hook).
///
/// [`BodyReader`]: jt_net::policy::BodyReader
fn read_failure(body: &str) -> Option<Refusal> {
    let probe: FailureProbe = serde_json::from_str(body).unwrap_or_default();
    let (text, code) = probe.failure()?;
    Some(if is_auth_text(&text) {
        Refusal::Unauthorized(text)
    } else {
        Refusal::Rejected { reason: text, code }
    })
}

#[derive(Debug, Default)]
struct Caches {
    /// contract id → name.
    contract_names: HashMap<i64, String>,
    /// account id → account.
    accounts: HashMap<i64, wire::Account>,
}

/// The Tradovate client of one login.
#[derive(Debug)]
pub struct TradovateHttpClient {
    raw: TradovateRawHttpClient,
    session: Arc<Session>,
    policy: CallPolicy,
    config: TradovateConfig,
    caches: Mutex<Caches>,
    /// Normalised symbol → contract, bounded by the contract's expiration and a TTL.
    contracts: ContractCache,
    /// Client order ids whose outcome was left unknown: looked up before any new attempt.
    uncertain: Uncertain<String>,
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

fn contract_number(contract: &ContractId) -> Result<i64, BrokerError> {
    contract
        .as_str()
        .trim()
        .parse()
        .map_err(|_| BrokerError::UnknownContract {
            symbol: contract.to_string(),
        })
}

const MONTH_CODES: &str = "FGHJKMNQUVXZ";

/// The Tradovate name of `symbol` (`MNQZ2025` → `MNQZ5`), or `None` when it is a bare root.
fn contract_name_of(symbol: &str, instrument: &Instrument) -> Option<String> {
    let mut t = symbol.trim().to_ascii_uppercase();
    if let Some(p) = t.rfind(':') {
        t = t[p + 1..].to_string();
    }
    if t.ends_with('!') {
        return None;
    }
    let rest = t.strip_prefix(instrument.root)?;
    let mut chars = rest.chars();
    let month = chars.next()?;
    let year: String = chars.collect();
    if !MONTH_CODES.contains(month) || year.is_empty() {
        return None;
    }
    let last = year.chars().last()?;
    Some(format!("{}{month}{last}", instrument.root))
}

/// Whether `name` is `root` + month code + 1–2 digit year (excludes options and spreads).
fn is_outright(name: &str, root: &str) -> bool {
    let Some(rest) = name.strip_prefix(root) else {
        return false;
    };
    let mut chars = rest.chars();
    matches!(chars.next(), Some(m) if MONTH_CODES.contains(m)) && {
        let year: Vec<char> = chars.collect();
        (1..=2).contains(&year.len()) && year.iter().all(char::is_ascii_digit)
    }
}

impl TradovateHttpClient {
    /// A client over `raw`, sharing `session` and `limits` with every user of the login.
    #[must_use]
    pub fn new(
        kind: BrokerKind,
        raw: TradovateRawHttpClient,
        session: Arc<Session>,
        limits: Arc<LoginLimits>,
        config: TradovateConfig,
    ) -> Self {
        let policy = CallPolicy::new(
            PolicyConfig {
                locked_warning_backoff: Some(config.limits.locked_warning_backoff),
                max_inline_penalty_wait: config.limits.max_inline_penalty_wait,
                max_penalty_rounds: config.limits.max_penalty_rounds,
                ..PolicyConfig::new(
                    kind.as_str(),
                    &config.http,
                    config.limits.too_many_requests_backoff,
                )
            },
            limits,
            Some(read_failure),
        );
        Self {
            raw,
            session,
            policy,
            uncertain: Uncertain::new(kind.as_str(), &config.http),
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

    /// The raw client.
    #[must_use]
    pub fn raw(&self) -> &TradovateRawHttpClient {
        &self.raw
    }

    async fn read<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, BrokerError>
    where
        F: FnMut(String, Option<String>) -> Fut,
        Fut: Future<Output = Result<T, RawError>>,
    {
        self.policy.read(&*self.session, Call::read(op), call).await
    }

    /// Runs a write: `Ok(Ok(answer))`, `Ok(Err(detail))` when the outcome is ambiguous (the
    /// caller looks it up), `Err` for a definite failure.
    async fn write<T, F, Fut>(
        &self,
        op: &'static str,
        call: F,
    ) -> Result<Result<T, String>, BrokerError>
    where
        F: FnMut(String, Option<String>) -> Fut,
        Fut: Future<Output = Result<T, RawError>>,
    {
        self.policy
            .write(&*self.session, Call::write(op), call)
            .await
    }

    /// `order/item`, `None` when the broker does not know the order.
    async fn order_item(&self, order_id: i64) -> Result<Option<wire::Order>, BrokerError> {
        let raw = &self.raw;
        match self
            .policy
            .run(&*self.session, Call::read("order/item"), |token, ticket| async move {
                raw.order_item(&token, order_id, ticket.as_deref()).await
            })
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(CallError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into_broker("order/item")),
        }
    }

    // ---- accounts ----------------------------------------------------------------------

    /// Every account of the login (refreshes the account cache).
    ///
    /// # Errors
    /// Read errors.
    pub async fn accounts(&self) -> Result<Vec<AccountInfo>, BrokerError> {
        let raw = &self.raw;
        let list = self
            .read("account/list", |token, ticket| async move {
                raw.account_list(&token, ticket.as_deref()).await
            })
            .await?;
        let mut caches = self.caches.lock();
        caches.accounts = list.iter().map(|a| (a.id, a.clone())).collect();
        Ok(list
            .into_iter()
            .map(|a| AccountInfo {
                id: AccountId::from(a.id),
                name: a.name,
                active: a.active,
            })
            .collect())
    }

    /// The wire account for `account`, refreshing the cache once when unknown.
    ///
    /// # Errors
    /// `UnknownAccount` when the login does not reach it.
    pub async fn account(&self, account: &AccountId) -> Result<wire::Account, BrokerError> {
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

    // ---- contracts ---------------------------------------------------------------------

    /// Resolves a root (front month) or a contract name, cached per login until the contract
    /// expires (the maturity's `expirationDate`) or the TTL passes, whichever comes first.
    ///
    /// # Errors
    /// `UnknownContract`, read errors.
    pub async fn resolve_contract(&self, symbol: &str) -> Result<Contract, BrokerError> {
        let instrument = resolve_ticker(symbol).map_err(|_| BrokerError::UnknownContract {
            symbol: symbol.to_string(),
        })?;
        let name = contract_name_of(symbol, instrument);
        let key = name.clone().unwrap_or_else(|| instrument.root.to_string());
        self.contracts
            .get_or_resolve(&key, || async {
                let (found, expires) = match &name {
                    Some(n) => (self.find_contract(n).await?, None),
                    None => self.front_month(instrument.root).await?,
                };
                let contract = Contract {
                    id: ContractId::from(found.id),
                    name: found.name.clone(),
                    root: instrument.root.to_string(),
                };
                self.caches
                    .lock()
                    .contract_names
                    .insert(found.id, found.name);
                Ok(Resolved { contract, expires })
            })
            .await
    }

    async fn find_contract(&self, name: &str) -> Result<wire::Contract, BrokerError> {
        let raw = &self.raw;
        match self
            .policy
            .run(&*self.session, Call::read("contract/find"), |token, ticket| async move {
                raw.contract_find(&token, name, ticket.as_deref()).await
            })
            .await
        {
            Ok(c) => Ok(c),
            Err(CallError::NotFound(_)) => Err(BrokerError::UnknownContract {
                symbol: name.to_string(),
            }),
            Err(CallError::Broker(BrokerError::Rejected { .. })) => {
                Err(BrokerError::UnknownContract {
                    symbol: name.to_string(),
                })
            }
            Err(e) => Err(e.into_broker("contract/find")),
        }
    }

    /// The front-month contract of `root`: the outright contracts `contract/suggest` offers,
    /// the one whose maturity is flagged `isFront`, else the nearest unexpired one; with its
    /// maturity's expiration when the venue gave one.
    async fn front_month(
        &self,
        root: &str,
    ) -> Result<(wire::Contract, Option<DateTime<Utc>>), BrokerError> {
        let raw = &self.raw;
        let suggested = self
            .read("contract/suggest", |token, ticket| async move {
                raw.contract_suggest(&token, root, 50, ticket.as_deref())
                    .await
            })
            .await?;
        let candidates: Vec<wire::Contract> = suggested
            .into_iter()
            .filter(|c| is_outright(&c.name, root))
            .collect();
        if candidates.is_empty() {
            return Err(BrokerError::UnknownContract {
                symbol: root.to_string(),
            });
        }
        let ids: Vec<i64> = candidates
            .iter()
            .filter_map(|c| c.contract_maturity_id)
            .collect();
        let maturities = if ids.is_empty() {
            Vec::new()
        } else {
            let ids = &ids;
            self.read("contractMaturity/items", |token, ticket| async move {
                raw.contract_maturity_items(&token, ids, ticket.as_deref())
                    .await
            })
            .await?
        };
        let by_id: HashMap<i64, &wire::ContractMaturity> =
            maturities.iter().map(|m| (m.id, m)).collect();
        let maturity_of = |c: &wire::Contract| c.contract_maturity_id.and_then(|id| by_id.get(&id));
        if let Some(front) = candidates
            .iter()
            .find(|c| maturity_of(c).is_some_and(|m| m.is_front))
        {
            let expires = maturity_of(front).and_then(|m| m.expiration_date);
            return Ok((front.clone(), expires));
        }
        let now = Utc::now();
        candidates
            .iter()
            .filter_map(|c| {
                let m = maturity_of(c)?;
                let exp = m.expiration_date?;
                (exp > now).then_some((exp, c))
            })
            .min_by_key(|(exp, _)| *exp)
            .map(|(exp, c)| (c.clone(), Some(exp)))
            .ok_or_else(|| BrokerError::UnknownContract {
                symbol: format!(
                    "{root} (no front month among {} contracts)",
                    candidates.len()
                ),
            })
    }

    /// Names of contract ids, from the cache or `contract/item`.
    pub(crate) async fn contract_names(
        &self,
        ids: impl IntoIterator<Item = i64>,
    ) -> HashMap<i64, String> {
        let wanted: HashSet<i64> = ids.into_iter().collect();
        let missing: Vec<i64> = {
            let c = self.caches.lock();
            wanted
                .iter()
                .filter(|id| !c.contract_names.contains_key(id))
                .copied()
                .collect()
        };
        let raw = &self.raw;
        for id in missing {
            let got = self
                .read("contract/item", |token, ticket| async move {
                    raw.contract_item(&token, id, ticket.as_deref()).await
                })
                .await;
            match got {
                Ok(c) => {
                    self.caches.lock().contract_names.insert(c.id, c.name);
                }
                Err(e) => tracing::warn!(contract = id, error = %e, "contract name unknown"),
            }
        }
        let c = self.caches.lock();
        wanted
            .into_iter()
            .filter_map(|id| c.contract_names.get(&id).map(|n| (id, n.clone())))
            .collect()
    }

    /// Remembers contract names seen elsewhere (the socket's sync snapshot).
    pub fn learn_contract_names(&self, names: impl IntoIterator<Item = (i64, String)>) {
        self.caches.lock().contract_names.extend(names);
    }

    // ---- reads -------------------------------------------------------------------------

    /// The account's positions.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn positions(&self, account: &AccountId) -> Result<Vec<PositionReport>, BrokerError> {
        let id = account_number(account)?;
        let raw = &self.raw;
        let list = self
            .read("position/deps", |token, ticket| async move {
                raw.position_deps(&token, id, ticket.as_deref()).await
            })
            .await?;
        // `deps` is already one account's; the filter keeps a server's stray row out.
        let mine: Vec<wire::Position> = list.into_iter().filter(|p| p.account_id == id).collect();
        let names = self
            .contract_names(mine.iter().map(|p| p.contract_id))
            .await;
        Ok(mine
            .iter()
            .map(|p| parse::position(p, names.get(&p.contract_id).cloned()))
            .collect())
    }

    async fn orders_with_versions(
        &self,
        orders: Vec<wire::Order>,
    ) -> Result<Vec<OrderReport>, BrokerError> {
        let ids: Vec<i64> = orders.iter().map(|o| o.id).collect();
        let versions = if ids.is_empty() {
            Vec::new()
        } else {
            let raw = &self.raw;
            let ids = &ids;
            self.read("orderVersion/ldeps", |token, ticket| async move {
                raw.order_version_ldeps(&token, ids, ticket.as_deref())
                    .await
            })
            .await?
        };
        let mut latest: HashMap<i64, &wire::OrderVersion> = HashMap::new();
        for v in &versions {
            let e = latest.entry(v.order_id).or_insert(v);
            if v.id > e.id {
                *e = v;
            }
        }
        let names = self
            .contract_names(orders.iter().filter_map(|o| o.contract_id))
            .await;
        Ok(orders
            .iter()
            .filter_map(|o| {
                parse::order(
                    o,
                    latest.get(&o.id).copied(),
                    o.contract_id.and_then(|c| names.get(&c).cloned()),
                    None,
                )
            })
            .collect())
    }

    /// The account's working orders.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn working_orders(
        &self,
        account: &AccountId,
    ) -> Result<Vec<OrderReport>, BrokerError> {
        let id = account_number(account)?;
        let raw = &self.raw;
        let list = self
            .read("order/deps", |token, ticket| async move {
                raw.order_deps(&token, id, ticket.as_deref()).await
            })
            .await?;
        let open: Vec<wire::Order> = list
            .into_iter()
            .filter(|o| {
                o.account_id == id && crate::common::enums::order_status(&o.ord_status).is_open()
            })
            .collect();
        self.orders_with_versions(open).await
    }

    /// The order placed with `client_order_id` on `account`; for a bracket, its entry (the
    /// strategy's first order).
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn find_order(
        &self,
        account: &AccountId,
        client_order_id: &str,
    ) -> Result<Option<OrderReport>, BrokerError> {
        let id = account_number(account)?;
        let raw = &self.raw;
        let commands = self
            .read("command/list", |token, ticket| async move {
                raw.command_list(&token, ticket.as_deref()).await
            })
            .await?;
        let order_id = commands
            .iter()
            .filter(|c| c.cl_ord_id.as_deref() == Some(client_order_id))
            .filter(|c| c.command_type.as_deref().is_none_or(|t| t == "New"))
            .map(|c| c.order_id)
            .min();
        let order_id = match order_id {
            Some(o) => Some(o),
            None => match self.find_strategy(id, client_order_id).await? {
                Some(strategy) => self.strategy_entry(strategy.id).await?,
                None => None,
            },
        };
        let Some(order_id) = order_id else {
            return Ok(None);
        };
        let Some(order) = self.order_item(order_id).await? else {
            return Ok(None);
        };
        if order.account_id != id {
            // The id belongs to another account of the login: never act on it for this one.
            return Ok(None);
        }
        let mut reports = self.orders_with_versions(vec![order]).await?;
        Ok(reports.pop().map(|mut r| {
            r.client_order_id = Some(client_order_id.to_string());
            r
        }))
    }

    async fn find_strategy(
        &self,
        account_id: i64,
        uuid: &str,
    ) -> Result<Option<wire::OrderStrategy>, BrokerError> {
        let raw = &self.raw;
        let list = self
            .read("orderStrategy/list", |token, ticket| async move {
                raw.order_strategy_list(&token, ticket.as_deref()).await
            })
            .await?;
        Ok(list.into_iter().find(|s| {
            s.uuid.as_deref() == Some(uuid) && s.account_id.is_none_or(|a| a == account_id)
        }))
    }

    async fn strategy_entry(&self, strategy_id: i64) -> Result<Option<i64>, BrokerError> {
        let raw = &self.raw;
        let links = self
            .read("orderStrategyLink/deps", |token, ticket| async move {
                raw.order_strategy_link_deps(&token, strategy_id, ticket.as_deref())
                    .await
            })
            .await?;
        Ok(links
            .iter()
            .find(|l| {
                l.label
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case("entry"))
            })
            .or_else(|| links.iter().min_by_key(|l| l.order_id))
            .map(|l| l.order_id))
    }

    /// The account's fills of the current trading day.
    ///
    /// # Errors
    /// Read errors; `UnknownAccount`.
    pub async fn fills(&self, account: &AccountId) -> Result<Vec<FillReport>, BrokerError> {
        let id = account_number(account)?;
        let raw = &self.raw;
        let fills = self
            .read("fill/list", |token, ticket| async move {
                raw.fill_list(&token, ticket.as_deref()).await
            })
            .await?;
        if fills.is_empty() {
            return Ok(Vec::new());
        }
        // Fills carry no account: join through the account's orders.
        let orders = self
            .read("order/deps", |token, ticket| async move {
                raw.order_deps(&token, id, ticket.as_deref()).await
            })
            .await?;
        let owner: HashMap<i64, i64> = orders.iter().map(|o| (o.id, o.account_id)).collect();
        let today = jt_broker::clock::trading_day(Utc::now());
        let mine: Vec<&wire::Fill> = fills
            .iter()
            .filter(|f| owner.get(&f.order_id) == Some(&id) && f.active)
            .filter(|f| {
                // A broker's trade date may run ahead of ours on holidays, never behind.
                f.trade_date
                    .and_then(wire::TradeDate::to_date)
                    .unwrap_or_else(|| jt_broker::clock::trading_day(f.timestamp))
                    >= today
            })
            .collect();
        let names = self
            .contract_names(mine.iter().map(|f| f.contract_id))
            .await;
        Ok(mine
            .into_iter()
            .filter_map(|f| {
                parse::fill(
                    f,
                    AccountId::from(id),
                    names.get(&f.contract_id).cloned(),
                    None,
                )
            })
            .collect())
    }

    /// The account's realized and open P&L (`cashBalance/getcashbalancesnapshot`).
    ///
    /// # Errors
    /// Read errors; `Transport` when the snapshot lacks the P&L figures (a missing figure is
    /// never read as zero: max-loss decisions depend on it).
    pub async fn account_pnl(&self, account: &AccountId) -> Result<AccountPnl, BrokerError> {
        let id = account_number(account)?;
        let raw = &self.raw;
        let body = CashBalanceSnapshotRequest { account_id: id };
        let body = &body;
        let snap = self
            .read(
                "cashBalance/getcashbalancesnapshot",
                |token, ticket| async move {
                    raw.cash_balance_snapshot(&token, body, ticket.as_deref())
                        .await
                },
            )
            .await?;
        if let Some(text) = snap.error_text.as_deref().filter(|t| !t.trim().is_empty()) {
            return Err(if is_auth_text(text) {
                BrokerError::AuthExpired {
                    detail: text.to_string(),
                }
            } else {
                BrokerError::Rejected {
                    reason: text.to_string(),
                    code: None,
                }
            });
        }
        let (Some(realized), Some(open)) = (snap.realized_pnl, snap.open_pnl) else {
            return Err(BrokerError::transport(
                "cash balance snapshot without realizedPnL/openPnL",
            ));
        };
        Ok(AccountPnl {
            account: account.clone(),
            realized,
            open,
            net_liq: snap.net_liq,
            cash: snap.total_cash_value,
            as_of: Utc::now(),
        })
    }

    // ---- writes ------------------------------------------------------------------------

    async fn target(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<(wire::Account, &'static Instrument), BrokerError> {
        let acct = self.account(account).await?;
        let instrument = by_root(&contract.root).map_err(|_| BrokerError::UnknownContract {
            symbol: contract.name.clone(),
        })?;
        Ok((acct, instrument))
    }

    /// Places one order.
    ///
    /// # Errors
    /// See [`jt_broker::Broker::place_order`].
    pub async fn place_order(
        &self,
        account: &AccountId,
        contract: &Contract,
        order: &OrderRequest,
    ) -> Result<OrderAck, BrokerError> {
        self.place_order_with_tif(account, contract, order, None)
            .await
    }

    /// [`Self::place_order`] with the order's time in force (`Day`: a resting entry that the
    /// broker cancels at the end of the trading day); `None` keeps the default (`GTC` for
    /// resting orders).
    ///
    /// # Errors
    /// See [`crate::Broker::place_order`].
    pub async fn place_order_with_tif(
        &self,
        account: &AccountId,
        contract: &Contract,
        order: &OrderRequest,
        time_in_force: Option<&'static str>,
    ) -> Result<OrderAck, BrokerError> {
        let (acct, instrument) = self.target(account, contract).await?;
        for p in match order.kind {
            OrderKind::Market => vec![],
            OrderKind::Limit { price } => vec![price],
            OrderKind::Stop { stop } => vec![stop],
            OrderKind::StopLimit { stop, price } => vec![stop, price],
        } {
            if !instrument.is_on_tick(p.value()) {
                return Err(BrokerError::invalid(format!(
                    "price {p} is not on the {} tick of {}",
                    instrument.tick_size, instrument.root
                )));
            }
        }
        let mut body = models::place_order(
            Target {
                account_id: acct.id,
                account_spec: &acct.name,
                symbol: &contract.name,
            },
            order,
        )?;
        if let Some(tif) = time_in_force
            && !matches!(order.kind, OrderKind::Market)
        {
            body.time_in_force = Some(tif);
        }
        self.submit(account, &body, "place_order").await
    }

    /// Places a standalone protective stop (fixed, or trailing from the start).
    ///
    /// # Errors
    /// See [`jt_broker::Broker::place_stop`].
    pub async fn place_stop(
        &self,
        account: &AccountId,
        contract: &Contract,
        stop: &StopOrder,
    ) -> Result<OrderAck, BrokerError> {
        let (acct, instrument) = self.target(account, contract).await?;
        if !instrument.is_on_tick(stop.stop.value()) {
            return Err(BrokerError::invalid(format!(
                "stop {} is not on the {} tick of {}",
                stop.stop, instrument.tick_size, instrument.root
            )));
        }
        let body = models::place_stop(
            Target {
                account_id: acct.id,
                account_spec: &acct.name,
                symbol: &contract.name,
            },
            instrument,
            stop,
        )?;
        self.submit(account, &body, "place_stop").await
    }

    /// Sends a placeorder body; an ambiguous outcome is looked up by its client order id.
    async fn submit(
        &self,
        account: &AccountId,
        body: &models::PlaceOrder,
        operation: &'static str,
    ) -> Result<OrderAck, BrokerError> {
        let cid = &body.cl_ord_id;
        if let Some(found) = self
            .uncertain
            .check(cid, operation, cid, || self.find_order(account, cid))
            .await?
        {
            return Ok(OrderAck {
                order_id: found.id,
                client_order_id: cid.clone(),
                recovered: true,
            });
        }
        let raw = &self.raw;
        let detail = match self
            .write("order/placeorder", |token, ticket| async move {
                raw.place_order(&token, body, ticket.as_deref()).await
            })
            .await?
        {
            Ok(r) => {
                if let Some(e) = command_failure(r.failure_reason.as_ref(), r.failure_text.as_ref())
                {
                    return Err(e);
                }
                match r.order_id {
                    Some(id) => {
                        return Ok(OrderAck {
                            order_id: OrderId::from(id),
                            client_order_id: cid.clone(),
                            recovered: false,
                        });
                    }
                    None => "placeorder answered without an orderId or a failure".to_string(),
                }
            }
            Err(detail) => detail,
        };
        let found = self
            .uncertain
            .settle(cid.clone(), operation, cid, detail, || {
                self.find_order(account, cid)
            })
            .await?;
        Ok(OrderAck {
            order_id: found.id,
            client_order_id: cid.clone(),
            recovered: true,
        })
    }

    /// Places a multibracket order strategy.
    ///
    /// # Errors
    /// See [`jt_broker::Broker::place_bracket`].
    pub async fn place_bracket(
        &self,
        account: &AccountId,
        contract: &Contract,
        bracket: &BracketOrder,
    ) -> Result<BracketAck, BrokerError> {
        self.place_bracket_with_tif(account, contract, bracket, None)
            .await
    }

    /// [`Self::place_bracket`] whose entry carries `time_in_force` (a resting entry that
    /// expires; its protection attaches when it fills).
    ///
    /// # Errors
    /// See [`crate::Broker::place_bracket`].
    pub async fn place_bracket_with_tif(
        &self,
        account: &AccountId,
        contract: &Contract,
        bracket: &BracketOrder,
        time_in_force: Option<&'static str>,
    ) -> Result<BracketAck, BrokerError> {
        let (acct, instrument) = self.target(account, contract).await?;
        let body = models::start_order_strategy_with_tif(
            Target {
                account_id: acct.id,
                account_spec: &acct.name,
                symbol: &contract.name,
            },
            instrument,
            bracket,
            time_in_force.filter(|_| !matches!(bracket.entry, OrderKind::Market)),
        )?;
        let cid = &bracket.client_order_id;
        let recovered = |s: wire::OrderStrategy| BracketAck {
            client_order_id: cid.clone(),
            bracket_id: Some(s.id.to_string()),
            entry_order_id: None,
            recovered: true,
        };
        if let Some(s) = self
            .uncertain
            .check(cid, "place_bracket", cid, || {
                self.find_strategy(acct.id, cid)
            })
            .await?
        {
            return Ok(recovered(s));
        }
        let raw = &self.raw;
        let body = &body;
        let result = self
            .write(
                "orderStrategy/startorderstrategy",
                |token, ticket| async move {
                    raw.start_order_strategy(&token, body, ticket.as_deref())
                        .await
                },
            )
            .await?;
        let detail = match result {
            Ok(resp) => {
                if let Some(text) = resp.error_text.as_deref().filter(|t| !t.trim().is_empty()) {
                    return Err(BrokerError::Rejected {
                        reason: text.to_string(),
                        code: None,
                    });
                }
                match resp.order_strategy {
                    Some(s)
                        if matches!(
                            s.status.as_deref(),
                            Some("ExecutionFailed" | "NotEnoughLiquidity" | "StoppedByUser")
                        ) =>
                    {
                        return Err(BrokerError::Rejected {
                            reason: s
                                .failure_message
                                .clone()
                                .unwrap_or_else(|| s.status.clone().unwrap_or_default()),
                            code: s.status.clone(),
                        });
                    }
                    Some(s) => {
                        return Ok(BracketAck {
                            client_order_id: cid.clone(),
                            bracket_id: Some(s.id.to_string()),
                            entry_order_id: None,
                            recovered: false,
                        });
                    }
                    None => {
                        "startorderstrategy answered without a strategy or an error".to_string()
                    }
                }
            }
            Err(detail) => detail,
        };
        let found = self
            .uncertain
            .settle(cid.clone(), "place_bracket", cid, detail, || {
                self.find_strategy(acct.id, cid)
            })
            .await?;
        Ok(recovered(found))
    }

    /// Cancels `order_id` after checking that it belongs to `account`.
    ///
    /// # Errors
    /// See [`jt_broker::Broker::cancel_order`].
    pub async fn cancel_order(
        &self,
        account: &AccountId,
        order_id: &OrderId,
    ) -> Result<(), BrokerError> {
        let id = account_number(account)?;
        let oid: i64 = order_id.as_str().parse().map_err(|_| {
            BrokerError::invalid(format!("order id {order_id} is not a Tradovate id"))
        })?;
        match self.order_item(oid).await? {
            None => Err(BrokerError::invalid(format!(
                "no order {order_id} at the broker"
            ))),
            Some(order) if order.account_id != id => Err(BrokerError::invalid(format!(
                "order {order_id} belongs to another account"
            ))),
            Some(_) => self.cancel_verified(oid).await,
        }
    }

    async fn cancel_verified(&self, oid: i64) -> Result<(), BrokerError> {
        let raw = &self.raw;
        let body = CancelOrder {
            order_id: oid,
            is_automated: true,
        };
        let body = &body;
        let detail = match self
            .write("order/cancelorder", |token, ticket| async move {
                raw.cancel_order(&token, body, ticket.as_deref()).await
            })
            .await?
        {
            Ok(r) => {
                return match command_failure(r.failure_reason.as_ref(), r.failure_text.as_ref()) {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            Err(detail) => detail,
        };
        // Whether a cancel happened is read from the order's status.
        tokio::time::sleep(self.config.http.lookup_interval).await;
        let status = self
            .order_item(oid)
            .await
            .map(|o| o.map(|o| crate::common::enums::order_status(&o.ord_status)));
        match status {
            Ok(Some(s)) if !s.is_open() => Ok(()),
            other => Err(BrokerError::UnknownOutcome {
                operation: "cancel_order".into(),
                client_order_id: None,
                detail: format!("{detail}; order {oid} afterwards: {other:?}"),
            }),
        }
    }

    /// Changes the quantity of a working order of the account (`order/modifyorder`); its type
    /// and prices are sent unchanged. `order` comes from the account's own working orders.
    ///
    /// # Errors
    /// `InvalidRequest` for another account's order; `Rejected` for a refused command;
    /// `UnknownOutcome` when the answer was lost and the order does not show the new quantity.
    pub async fn modify_order_qty(
        &self,
        account: &AccountId,
        order: &OrderReport,
        qty: u32,
    ) -> Result<(), BrokerError> {
        let body = models::modify_order_qty(order, qty)?;
        self.modify(account, order, body, |o| o.qty == Some(qty))
            .await
    }

    /// Moves the price of a working order of the account (`order/modifyorder` with `price` /
    /// `stopPrice`, [`models::modify_order_price`]); its type and quantity are sent unchanged.
    ///
    /// # Errors
    /// As [`Self::modify_order_qty`]; `InvalidRequest` for an order whose price cannot move
    /// (a trailing stop).
    pub async fn modify_order_price(
        &self,
        account: &AccountId,
        order: &OrderReport,
        price: Decimal,
    ) -> Result<(), BrokerError> {
        let body = models::modify_order_price(order, price)?;
        let (limit, stop) = (body.price, body.stop_price);
        self.modify(account, order, body, |o| {
            (limit.is_none() || o.price == limit) && (stop.is_none() || o.stop_price == stop)
        })
        .await
    }

    /// Sends one modifyorder; a lost answer is settled by reading the account's working
    /// orders (`settled`: the order shows the change).
    async fn modify(
        &self,
        account: &AccountId,
        order: &OrderReport,
        body: models::ModifyOrder,
        settled: impl Fn(&OrderReport) -> bool,
    ) -> Result<(), BrokerError> {
        if &order.account != account {
            return Err(BrokerError::invalid(format!(
                "order {} belongs to another account",
                order.id
            )));
        }
        let oid = body.order_id;
        let raw = &self.raw;
        let body = &body;
        let detail = match self
            .write("order/modifyorder", |token, ticket| async move {
                raw.modify_order(&token, body, ticket.as_deref()).await
            })
            .await?
        {
            Ok(r) => {
                return match command_failure(r.failure_reason.as_ref(), r.failure_text.as_ref()) {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            Err(detail) => detail,
        };
        // Whether the change happened is read from the account's working orders.
        tokio::time::sleep(self.config.http.lookup_interval).await;
        match self.working_orders(account).await {
            Ok(open) if open.iter().any(|o| o.id == order.id && settled(o)) => Ok(()),
            other => Err(BrokerError::UnknownOutcome {
                operation: "modify_order".into(),
                client_order_id: None,
                detail: format!(
                    "{detail}; order {oid} afterwards: {:?}",
                    other.map(|o| o.into_iter().find(|x| x.id == order.id).map(|x| (
                        x.qty,
                        x.price,
                        x.stop_price
                    )))
                ),
            }),
        }
    }

    /// Cancels the working exit orders of a contract (orders already known to be the
    /// account's: no ownership look-up per order).
    ///
    /// # Errors
    /// The errors of listing the working orders.
    pub async fn cancel_exit_orders(
        &self,
        account: &AccountId,
        contract: &Contract,
        direction: jt_domain::types::Direction,
        which: ExitOrders,
    ) -> Result<CancelReport, BrokerError> {
        self.cancel_listed(account, |o| which.matches(o, &contract.id, direction))
            .await
    }

    /// Cancels every working order of a contract (see
    /// [`jt_broker::Broker::cancel_working_orders`]); no ownership look-up per order.
    ///
    /// # Errors
    /// The errors of listing the working orders.
    pub async fn cancel_working_orders(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CancelReport, BrokerError> {
        self.cancel_listed(account, |o| o.is_working_on(&contract.id))
            .await
    }

    /// Cancels the account's working orders that `pick` selects. They come from the account's
    /// own `order/deps`, so the per-order ownership read of [`Self::cancel_order`] is skipped.
    async fn cancel_listed(
        &self,
        account: &AccountId,
        pick: impl Fn(&OrderReport) -> bool,
    ) -> Result<CancelReport, BrokerError> {
        Ok(self
            .cancel_listed_noting_ended(account, pick, false)
            .await?
            .0)
    }

    /// [`Self::cancel_listed`], and with `tolerate_ended` an order whose cancel the broker
    /// rejected because it had ended on its own between the listing and the cancel (filled, or
    /// cancelled elsewhere) is not a failure — it no longer works — but is counted: a fill may
    /// have changed the position, which the caller then reads again.
    async fn cancel_listed_noting_ended(
        &self,
        account: &AccountId,
        pick: impl Fn(&OrderReport) -> bool,
        tolerate_ended: bool,
    ) -> Result<(CancelReport, usize), BrokerError> {
        let working = self.working_orders(account).await?;
        let mut report = CancelReport::default();
        let mut ended = 0;
        for o in working.iter().filter(|o| pick(o)) {
            let Ok(oid) = o.id.as_str().parse::<i64>() else {
                continue;
            };
            match self.cancel_verified(oid).await {
                Ok(()) => report.canceled.push(o.id.clone()),
                Err(BrokerError::Rejected { .. })
                    if tolerate_ended && self.order_closed(oid).await =>
                {
                    ended += 1;
                }
                Err(error) => report.failures.push(ItemFailure {
                    target: format!("cancel {}", o.id),
                    error,
                }),
            }
        }
        Ok((report, ended))
    }

    async fn liquidate(
        &self,
        account: &AccountId,
        account_id: i64,
        contract_id: i64,
    ) -> Result<Option<OrderId>, BrokerError> {
        let raw = &self.raw;
        let body = LiquidatePosition {
            account_id,
            contract_id,
            admin: false,
        };
        let body = &body;
        let detail = match self
            .write("order/liquidateposition", |token, ticket| async move {
                raw.liquidate_position(&token, body, ticket.as_deref())
                    .await
            })
            .await?
        {
            Ok(r) => {
                return match command_failure(r.failure_reason.as_ref(), r.failure_text.as_ref()) {
                    Some(e) => Err(e),
                    None => Ok(r.order_id.map(OrderId::from)),
                };
            }
            Err(detail) => detail,
        };
        // A close is settled by the position: flat means it happened.
        tokio::time::sleep(self.config.http.lookup_interval).await;
        let cid = ContractId::from(contract_id);
        match self.positions(account).await {
            Ok(ps) if ps.iter().all(|p| p.contract != cid || p.net_qty == 0) => Ok(None),
            other => Err(BrokerError::UnknownOutcome {
                operation: "close_position".into(),
                client_order_id: None,
                detail: format!(
                    "{detail}; position afterwards: {:?}",
                    other.map(|ps| ps.into_iter().find(|p| p.contract == cid))
                ),
            }),
        }
    }

    /// Closes the position on `contract` (liquidateposition: cancels its working orders and
    /// sends the closing market order); when flat, cancels the contract's working orders.
    ///
    /// # Errors
    /// See [`jt_broker::Broker::close_position`].
    pub async fn close_position(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CloseOutcome, BrokerError> {
        let acct = self.account(account).await?;
        let cid = contract_number(&contract.id)?;
        if self.is_open(account, &contract.id).await? {
            let order_id = self.liquidate(account, acct.id, cid).await?;
            return Ok(CloseOutcome { order_id });
        }
        self.close_flat(account, acct.id, cid, contract).await
    }

    /// Closes a position the caller has just read open: `liquidateposition` straight away,
    /// without [`Self::close_position`]'s own read — it takes no quantity, so whatever the
    /// position is when it arrives is what closes (issue 21: a close in one call). When the
    /// position went flat since the caller's read (its stop or target filled), the close ends
    /// as a close of a flat position does: the answer "nothing to close" (`{}`), or a refusal
    /// while the position reads flat, is followed by the flat close (what still works on the
    /// contract cancelled; liquidating a flat position is not documented to cancel anything).
    /// A refusal while the position is still open stands: the liquidation is not sent twice.
    ///
    /// # Errors
    /// See [`jt_broker::Broker::close_open_position`].
    pub async fn close_open_position(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CloseOutcome, BrokerError> {
        let acct = self.account(account).await?;
        let cid = contract_number(&contract.id)?;
        match self.liquidate(account, acct.id, cid).await {
            Ok(Some(order_id)) => Ok(CloseOutcome {
                order_id: Some(order_id),
            }),
            Ok(None) => self.close_position(account, contract).await,
            Err(refused @ BrokerError::Rejected { .. }) => {
                if self.is_open(account, &contract.id).await? {
                    Err(refused)
                } else {
                    self.close_flat(account, acct.id, cid, contract).await
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the account holds a position on `contract` (one `position/deps`).
    async fn is_open(
        &self,
        account: &AccountId,
        contract: &ContractId,
    ) -> Result<bool, BrokerError> {
        Ok(self
            .positions(account)
            .await?
            .iter()
            .any(|p| &p.contract == contract && p.net_qty != 0))
    }

    /// The close of a position read flat: what still works on the contract is cancelled. An
    /// order can fill between the listing and its cancel (a resting entry reached by the
    /// market): the broker then rejects the cancel, or — Tradovate's commands being
    /// asynchronous — accepts it and rejects the command later. Either way the fill opened a
    /// position the read did not see, so after any cancel the position is read again and
    /// closed too: never left open behind a "closed".
    async fn close_flat(
        &self,
        account: &AccountId,
        account_id: i64,
        contract_id: i64,
        contract: &Contract,
    ) -> Result<CloseOutcome, BrokerError> {
        let (report, ended) = self
            .cancel_listed_noting_ended(account, |o| o.is_working_on(&contract.id), true)
            .await?;
        if let Some(failure) = report.failures.into_iter().next() {
            return Err(failure.error);
        }
        if (ended > 0 || !report.canceled.is_empty()) && self.is_open(account, &contract.id).await?
        {
            let order_id = self.liquidate(account, account_id, contract_id).await?;
            return Ok(CloseOutcome { order_id });
        }
        Ok(CloseOutcome { order_id: None })
    }

    /// Flattens the account.
    ///
    /// # Errors
    /// See [`jt_broker::Broker::flatten_account`].
    pub async fn flatten_account(&self, account: &AccountId) -> Result<FlattenReport, BrokerError> {
        let acct = self.account(account).await?;
        let positions = self.positions(account).await?;
        let mut report = FlattenReport {
            account: account.clone(),
            canceled: Vec::new(),
            closed: Vec::new(),
            failures: Vec::new(),
        };
        for p in positions.iter().filter(|p| p.net_qty != 0) {
            let Ok(cid) = contract_number(&p.contract) else {
                continue;
            };
            match self.liquidate(account, acct.id, cid).await {
                Ok(order) => report.closed.push((p.contract.clone(), order)),
                Err(error) => report.failures.push(ItemFailure {
                    target: format!(
                        "close {}",
                        p.symbol.as_deref().unwrap_or(p.contract.as_str())
                    ),
                    error,
                }),
            }
        }
        // What liquidation did not cancel (other contracts, or not yet): cancel it now.
        let working = self.working_orders(account).await?;
        for o in &working {
            let Ok(oid) = o.id.as_str().parse::<i64>() else {
                continue;
            };
            match self.cancel_verified(oid).await {
                Ok(()) => report.canceled.push(o.id.clone()),
                Err(BrokerError::Rejected { .. }) if self.order_closed(oid).await => {}
                Err(error) => report.failures.push(ItemFailure {
                    target: format!("cancel {}", o.id),
                    error,
                }),
            }
        }
        Ok(report)
    }

    async fn order_closed(&self, oid: i64) -> bool {
        self.order_item(oid).await.is_ok_and(|o| {
            o.is_some_and(|o| !crate::common::enums::order_status(&o.ord_status).is_open())
        })
    }

    /// Looks up the account and contract of an order (fills carry neither account nor, on
    /// some servers, contract names).
    ///
    /// # Errors
    /// Read errors.
    pub async fn order_owner(&self, order_id: i64) -> Result<Option<wire::Order>, BrokerError> {
        self.order_item(order_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("MNQ", None)]
    #[case("MNQ1!", None)]
    #[case("CME_MINI:MNQ1!", None)]
    #[case("MNQZ2025", Some("MNQZ5"))]
    #[case("MNQZ25", Some("MNQZ5"))]
    #[case("mnqz5", Some("MNQZ5"))]
    #[case("GCJ6", Some("GCJ6"))]
    fn symbols_map_to_tradovate_names(#[case] symbol: &str, #[case] want: Option<&str>) {
        let i = resolve_ticker(symbol).unwrap();
        assert_eq!(contract_name_of(symbol, i).as_deref(), want);
    }

    #[rstest]
    #[case("MNQZ5", "MNQ", true)]
    #[case("MNQZ25", "MNQ", true)]
    #[case("NQZ5", "MNQ", false)]
    #[case("MNQZ5-MNQH6", "MNQ", false)]
    #[case("MNQZ5 C21000", "MNQ", false)]
    #[case("MNQ", "MNQ", false)]
    fn outright_contracts_are_recognised(#[case] name: &str, #[case] root: &str, #[case] ok: bool) {
        assert_eq!(is_outright(name, root), ok);
    }
}
