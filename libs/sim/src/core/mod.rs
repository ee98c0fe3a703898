//! The exchange core: users, accounts, contracts, prices, matching, positions and P&L.
//!
//! Protocol surfaces (Tradovate today, ProjectX later) call into [`Exchange`] and render its
//! entities; nothing here knows a wire format. Concurrency: every account has its own lock, the
//! one place its state changes; each market holds its price in an atomic and the set of
//! accounts whose live orders watch it. A price change locks the watching accounts one at a
//! time, never two at once, so matching scales with the number of accounts touched, not with
//! the number that exist. Changes reach listeners through [`EventSink::offer`], which must not
//! block: a slow consumer can never stall matching.

pub mod account;
pub mod catalog;
pub mod clock;
pub mod market;
pub mod model;
pub mod strategy;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::NaiveDate;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use rust_decimal::Decimal;

use account::{AccountState, ModifySpec, Op, OrderSpec};
use catalog::{Catalog, USD};
use market::Market;
use model::{
    Account, CashBalance, Change, Entity, FailureReason, Id, OrdStatus, OrderStrategy, Protocol,
    User,
};
use strategy::StrategySpec;

/// Receives an account's changes.
pub trait EventSink: Send + Sync {
    /// Offers one batch of changes of `account_id`. Must not block. `false` means the sink is
    /// gone (closed or overflowed) and is dropped from the account.
    fn offer(&self, account_id: Id, batch: &Arc<[Change]>) -> bool;
    /// Identity, for unsubscribing.
    fn sink_id(&self) -> u64;
}

/// Whether orders are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SessionMode {
    /// Always open (tests, demos).
    AlwaysOpen,
    /// CME Globex hours with the daily halt.
    Exchange,
    /// Closed until changed.
    Closed,
}

/// Matching knobs, changeable at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchingSettings {
    /// Fill at most this many contracts per order per price event (`None`: fill completely).
    pub partial_fill_qty: Option<u32>,
    /// Market and stop orders fill this many ticks worse than the price.
    pub slippage_ticks: u32,
    /// Commission per contract per side, in dollars.
    pub commission_per_contract: Decimal,
}

impl Default for MatchingSettings {
    fn default() -> Self {
        MatchingSettings {
            partial_fill_qty: None,
            slippage_ticks: 0,
            commission_per_contract: Decimal::ZERO,
        }
    }
}

/// Who asks, and when the request arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx {
    /// User.
    pub user_id: Option<Id>,
    /// Login session.
    pub session_id: Option<Id>,
    /// Arrival of the request (µs).
    pub received_us: i64,
}

/// A synchronous refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Reason.
    pub reason: FailureReason,
    /// Text.
    pub text: String,
}

impl Rejection {
    /// A refusal.
    pub fn new(reason: FailureReason, text: impl Into<String>) -> Self {
        Rejection {
            reason,
            text: text.into(),
        }
    }
}

/// Entity kinds of the id index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum EntityKind {
    Order,
    OrderVersion,
    Command,
    CommandReport,
    ExecutionReport,
    Fill,
    FillPair,
    Position,
    CashBalance,
    OrderStrategy,
    OrderStrategyLink,
}

/// Failures of administrative calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The name is taken.
    #[error("{0} already exists")]
    Exists(String),
    /// Nothing by that name or id.
    #[error("{0} not found")]
    NotFound(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

/// An account and its lock.
pub struct AccountCell {
    /// Static part.
    pub account: Account,
    /// Everything that changes.
    pub state: Mutex<AccountState>,
}

impl std::fmt::Debug for AccountCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountCell")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// What `cashBalance/getcashbalancesnapshot` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashSnapshot {
    /// Cash.
    pub total_cash_value: Decimal,
    /// Realized + open P&L.
    pub total_pnl: Decimal,
    /// Initial margin of open positions.
    pub initial_margin: Decimal,
    /// Maintenance margin.
    pub maintenance_margin: Decimal,
    /// Cash + open P&L.
    pub net_liq: Decimal,
    /// Open P&L at current prices.
    pub open_pnl: Decimal,
    /// Realized P&L of the day.
    pub realized_pnl: Decimal,
    /// Realized P&L of the week.
    pub week_realized_pnl: Decimal,
}

#[derive(Default)]
struct Users {
    by_id: HashMap<Id, User>,
    by_name: HashMap<String, Id>,
}

/// The exchange.
pub struct Exchange {
    /// Products and contracts.
    pub catalog: Catalog,
    pub(crate) markets: Vec<Market>,
    next_id: AtomicI64,
    next_user: AtomicI64,
    next_account: AtomicI64,
    next_sink: AtomicU64,
    users: RwLock<Users>,
    accounts: DashMap<Id, Arc<AccountCell>>,
    account_names: DashMap<String, Id>,
    index: DashMap<Id, (EntityKind, Id)>,
    matching: RwLock<MatchingSettings>,
    session: RwLock<SessionMode>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("accounts", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// An exchange for the trade date `today`, every contract at its default price.
    #[must_use]
    pub fn new(today: NaiveDate, matching: MatchingSettings, session: SessionMode) -> Self {
        let catalog = Catalog::build(today);
        let now = clock::now_us();
        let markets = catalog
            .contracts
            .iter()
            .map(|c| {
                let inst = catalog.product_of(c).instrument;
                Market::new(c.id, inst.tick_size, catalog::default_price(inst), now)
            })
            .collect();
        Exchange {
            catalog,
            markets,
            next_id: AtomicI64::new(300_000_001),
            next_user: AtomicI64::new(100_001),
            next_account: AtomicI64::new(40_000_001),
            next_sink: AtomicU64::new(1),
            users: RwLock::new(Users::default()),
            accounts: DashMap::new(),
            account_names: DashMap::new(),
            index: DashMap::new(),
            matching: RwLock::new(matching),
            session: RwLock::new(session),
        }
    }

    /// A fresh listener id.
    pub fn next_sink_id(&self) -> u64 {
        self.next_sink.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn alloc_id(&self, kind: EntityKind, account_id: Id) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.index.insert(id, (kind, account_id));
        id
    }

    /// The kind and account of a dynamic entity.
    #[must_use]
    pub fn locate(&self, id: Id) -> Option<(EntityKind, Id)> {
        self.index.get(&id).map(|e| *e)
    }

    /// The market of a contract (by catalog index).
    #[must_use]
    pub fn market(&self, contract_index: usize) -> &Market {
        &self.markets[contract_index]
    }

    /// Current matching settings.
    #[must_use]
    pub fn matching(&self) -> MatchingSettings {
        *self.matching.read()
    }

    /// Replaces the matching settings.
    pub fn set_matching(&self, m: MatchingSettings) {
        *self.matching.write() = m;
    }

    /// Current session mode.
    #[must_use]
    pub fn session_mode(&self) -> SessionMode {
        *self.session.read()
    }

    /// Sets the session mode.
    pub fn set_session_mode(&self, mode: SessionMode) {
        *self.session.write() = mode;
    }

    /// Whether the market is open at `now_us`.
    #[must_use]
    pub fn is_open(&self, now_us: i64) -> bool {
        match self.session_mode() {
            SessionMode::AlwaysOpen => true,
            SessionMode::Closed => false,
            SessionMode::Exchange => clock::cme_session_open(now_us),
        }
    }

    // ------------------------------------------------------------------ users and accounts

    /// Creates a login.
    ///
    /// # Errors
    /// [`AdminError::Exists`] when the name is taken, [`AdminError::Invalid`] for an empty name.
    pub fn create_user(
        &self,
        name: &str,
        password: &str,
        cid: Option<String>,
        sec: Option<String>,
    ) -> Result<User, AdminError> {
        self.create_user_for(name, password, cid, sec, Protocol::Tradovate)
    }

    /// Creates a login served through `protocol` (its accounts are reachable through that
    /// protocol only).
    ///
    /// # Errors
    /// [`AdminError::Exists`] when the name is taken, [`AdminError::Invalid`] for an empty name.
    pub fn create_user_for(
        &self,
        name: &str,
        password: &str,
        cid: Option<String>,
        sec: Option<String>,
        protocol: Protocol,
    ) -> Result<User, AdminError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(AdminError::Invalid("user name is empty".into()));
        }
        let mut users = self.users.write();
        let key = name.to_ascii_lowercase();
        if users.by_name.contains_key(&key) {
            return Err(AdminError::Exists(format!("user {name}")));
        }
        let user = User {
            id: self.next_user.fetch_add(1, Ordering::Relaxed),
            name: name.to_string(),
            password: password.to_string(),
            cid,
            sec,
            account_ids: Vec::new(),
            timestamp_us: clock::now_us(),
            protocol,
        };
        users.by_name.insert(key, user.id);
        users.by_id.insert(user.id, user.clone());
        Ok(user)
    }

    /// Adds an account to a user.
    ///
    /// # Errors
    /// [`AdminError::NotFound`] for an unknown user, [`AdminError::Exists`] for a taken name.
    pub fn add_account(
        &self,
        user_id: Id,
        name: Option<&str>,
        balance: Decimal,
    ) -> Result<Account, AdminError> {
        let mut users = self.users.write();
        let Some(user) = users.by_id.get_mut(&user_id) else {
            return Err(AdminError::NotFound(format!("user {user_id}")));
        };
        let id = self.next_account.fetch_add(1, Ordering::Relaxed);
        // Tradovate's demo accounts are named like `DEMO1234567`.
        let name = name.map_or_else(|| format!("DEMO{}", id - 39_000_000), str::to_string);
        let key = name.to_ascii_uppercase();
        if name.trim().is_empty() {
            return Err(AdminError::Invalid("account name is empty".into()));
        }
        if self.account_names.contains_key(&key) {
            return Err(AdminError::Exists(format!("account {name}")));
        }
        let now = clock::now_us();
        let account = Account {
            id,
            name,
            user_id,
            timestamp_us: now,
            active: true,
        };
        let cash = CashBalance {
            id: self.alloc_id(EntityKind::CashBalance, id),
            account_id: id,
            timestamp_us: now,
            trade_date: clock::trade_date(now),
            currency_id: USD,
            amount: balance,
            realized_pnl: Decimal::ZERO,
            week_realized_pnl: Decimal::ZERO,
        };
        self.accounts.insert(
            id,
            Arc::new(AccountCell {
                account: account.clone(),
                state: Mutex::new(AccountState::new(cash)),
            }),
        );
        self.account_names.insert(key, id);
        user.account_ids.push(id);
        Ok(account)
    }

    /// A user by id.
    #[must_use]
    pub fn user(&self, id: Id) -> Option<User> {
        self.users.read().by_id.get(&id).cloned()
    }

    /// A user by name (any case).
    #[must_use]
    pub fn user_by_name(&self, name: &str) -> Option<User> {
        let users = self.users.read();
        users
            .by_name
            .get(&name.trim().to_ascii_lowercase())
            .and_then(|id| users.by_id.get(id))
            .cloned()
    }

    /// Every user.
    #[must_use]
    pub fn users(&self) -> Vec<User> {
        let mut v: Vec<User> = self.users.read().by_id.values().cloned().collect();
        v.sort_by_key(|u| u.id);
        v
    }

    /// An account by id.
    #[must_use]
    pub fn account(&self, id: Id) -> Option<Arc<AccountCell>> {
        self.accounts.get(&id).map(|a| a.clone())
    }

    /// An account by name (any case).
    #[must_use]
    pub fn account_by_name(&self, name: &str) -> Option<Arc<AccountCell>> {
        let id = *self.account_names.get(&name.trim().to_ascii_uppercase())?;
        self.account(id)
    }

    /// An account by name or by id written as digits.
    #[must_use]
    pub fn find_account(&self, name_or_id: &str) -> Option<Arc<AccountCell>> {
        self.account_by_name(name_or_id).or_else(|| {
            name_or_id
                .trim()
                .parse::<Id>()
                .ok()
                .and_then(|id| self.account(id))
        })
    }

    /// Every account, by id.
    #[must_use]
    pub fn accounts(&self) -> Vec<Arc<AccountCell>> {
        let mut v: Vec<Arc<AccountCell>> = self.accounts.iter().map(|a| a.clone()).collect();
        v.sort_by_key(|a| a.account.id);
        v
    }

    /// The accounts of a user.
    #[must_use]
    pub fn accounts_of(&self, user_id: Id) -> Vec<Arc<AccountCell>> {
        self.user(user_id)
            .map(|u| {
                u.account_ids
                    .iter()
                    .filter_map(|id| self.account(*id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets an account's cash (a deposit or withdrawal to reach `amount`).
    ///
    /// # Errors
    /// [`AdminError::NotFound`].
    pub fn set_balance(&self, account_id: Id, amount: Decimal) -> Result<(), AdminError> {
        let cell = self
            .account(account_id)
            .ok_or_else(|| AdminError::NotFound(format!("account {account_id}")))?;
        self.run(&cell, &Ctx::default(), |op| {
            op.st.cash.amount = amount;
            op.st.cash.timestamp_us = op.now;
            let c = op.st.cash.clone();
            op.batch.push(Change::updated(Entity::CashBalance(c)));
        });
        Ok(())
    }

    // ------------------------------------------------------------------ operations

    /// Runs `f` on one account under its lock, then delivers the changes and registers the
    /// touched markets.
    pub fn run<R>(&self, cell: &AccountCell, ctx: &Ctx, f: impl FnOnce(&mut Op<'_>) -> R) -> R {
        let now = clock::now_us();
        let mut st = cell.state.lock();
        let mut op = Op {
            ex: self,
            st: &mut st,
            account_id: cell.account.id,
            now,
            td: clock::trade_date(now),
            sender: ctx.user_id,
            session: ctx.session_id,
            received_us: if ctx.received_us == 0 {
                now
            } else {
                ctx.received_us
            },
            m: self.matching(),
            batch: Vec::new(),
            touched: Vec::new(),
            created: Vec::new(),
        };
        let r = f(&mut op);
        let batch = std::mem::take(&mut op.batch);
        let touched = std::mem::take(&mut op.touched);
        let created = std::mem::take(&mut op.created);
        drop(op);
        for ci in touched {
            let contract_id = self.catalog.contracts[ci].id;
            if st.watches(contract_id) {
                self.markets[ci].watchers.lock().insert(cell.account.id);
            }
        }
        if !batch.is_empty() {
            let batch: Arc<[Change]> = batch.into();
            st.listeners.retain(|l| l.offer(cell.account.id, &batch));
        }
        if !created.is_empty() {
            // Handled = matched, recorded and handed to every listener.
            let done = clock::now_us();
            for id in created {
                if let Some(o) = st.orders.get_mut(&id) {
                    o.handled_us = done;
                }
            }
        }
        r
    }

    fn trading_checks(&self, cell: &AccountCell) -> Result<(), Rejection> {
        if !cell.account.active {
            return Err(Rejection::new(
                FailureReason::AccountClosed,
                "the account is closed",
            ));
        }
        if !self.is_open(clock::now_us()) {
            return Err(Rejection::new(
                FailureReason::SessionClosed,
                "the market is closed",
            ));
        }
        Ok(())
    }

    fn check_spec(op: &Op<'_>, ci: usize, spec: &OrderSpec) -> Result<(), Rejection> {
        if spec.qty == 0 {
            return Err(Rejection::new(
                FailureReason::UnknownReason,
                "orderQty must be at least 1",
            ));
        }
        let Some(t) = spec.order_type else {
            return Err(Rejection::new(
                FailureReason::UnknownReason,
                "orderType is required",
            ));
        };
        if spec.action.is_none() {
            return Err(Rejection::new(
                FailureReason::UnknownReason,
                "action is required",
            ));
        }
        op.check_terms(ci, t, spec.price, spec.stop_price, spec.peg_difference)
    }

    fn cell(&self, account_id: Id) -> Result<Arc<AccountCell>, Rejection> {
        self.account(account_id)
            .ok_or_else(|| Rejection::new(FailureReason::UnknownReason, "unknown account"))
    }

    /// Places one order.
    ///
    /// # Errors
    /// Synchronous refusals (closed account or market, bad terms).
    pub fn place_order(
        &self,
        ctx: &Ctx,
        account_id: Id,
        contract_index: usize,
        spec: &OrderSpec,
    ) -> Result<Id, Rejection> {
        let cell = self.cell(account_id)?;
        self.trading_checks(&cell)?;
        self.run(&cell, ctx, |op| {
            Self::check_spec(op, contract_index, spec)?;
            let id = op.create_order(contract_index, spec, false, None, false);
            op.match_contract(contract_index);
            Ok(id)
        })
    }

    /// Places an entry with one or two brackets sent when it fills (two brackets are an OCO).
    ///
    /// # Errors
    /// Synchronous refusals.
    pub fn place_oso(
        &self,
        ctx: &Ctx,
        account_id: Id,
        contract_index: usize,
        spec: &OrderSpec,
        brackets: &[OrderSpec],
    ) -> Result<(Id, Vec<Id>), Rejection> {
        let cell = self.cell(account_id)?;
        self.trading_checks(&cell)?;
        self.run(&cell, ctx, |op| {
            Self::check_spec(op, contract_index, spec)?;
            for b in brackets {
                let mut b = b.clone();
                b.qty = spec.qty;
                Self::check_spec(op, contract_index, &b)?;
            }
            let entry = op.create_order(contract_index, spec, false, None, false);
            let mut ids = Vec::new();
            for b in brackets {
                let mut b = b.clone();
                b.qty = spec.qty;
                ids.push(op.create_order(contract_index, &b, true, Some(entry), false));
            }
            if let Some(r) = op.st.orders.get_mut(&entry) {
                r.children.clone_from(&ids);
            }
            match ids.as_slice() {
                [a, b] => op.link_oco(*a, *b, 0, 0),
                [a] => {
                    if let Some(r) = op.st.orders.get_mut(a) {
                        r.oco_base = Some(0);
                    }
                }
                _ => {}
            }
            op.match_contract(contract_index);
            Ok((entry, ids))
        })
    }

    /// Places two orders linked one-cancels-other.
    ///
    /// # Errors
    /// Synchronous refusals.
    pub fn place_oco(
        &self,
        ctx: &Ctx,
        account_id: Id,
        contract_index: usize,
        spec: &OrderSpec,
        other: &OrderSpec,
    ) -> Result<(Id, Id), Rejection> {
        let cell = self.cell(account_id)?;
        self.trading_checks(&cell)?;
        self.run(&cell, ctx, |op| {
            let mut other = other.clone();
            other.qty = spec.qty;
            Self::check_spec(op, contract_index, spec)?;
            Self::check_spec(op, contract_index, &other)?;
            let a = op.create_order(contract_index, spec, false, None, false);
            let b = op.create_order(contract_index, &other, false, None, false);
            op.link_oco(a, b, spec.qty, other.qty);
            op.match_contract(contract_index);
            Ok((a, b))
        })
    }

    fn order_cell(&self, order_id: Id) -> Result<Arc<AccountCell>, Rejection> {
        match self.locate(order_id) {
            Some((EntityKind::Order, account)) => self.cell(account),
            _ => Err(Rejection::new(
                FailureReason::UnknownReason,
                format!("unknown order {order_id}"),
            )),
        }
    }

    /// The account an order belongs to.
    #[must_use]
    pub fn order_account(&self, order_id: Id) -> Option<Id> {
        match self.locate(order_id) {
            Some((EntityKind::Order, account)) => Some(account),
            _ => None,
        }
    }

    /// Modifies a working order.
    ///
    /// # Errors
    /// Synchronous refusals (unknown order, bad terms, trailing stop price change).
    pub fn modify_order(
        &self,
        ctx: &Ctx,
        order_id: Id,
        spec: &ModifySpec,
    ) -> Result<Id, Rejection> {
        let cell = self.order_cell(order_id)?;
        if !self.is_open(clock::now_us()) {
            return Err(Rejection::new(
                FailureReason::SessionClosed,
                "the market is closed",
            ));
        }
        self.run(&cell, ctx, |op| op.client_modify(order_id, spec))
    }

    /// Cancels a working order (a filled or canceled one gets a rejected command: too late).
    ///
    /// # Errors
    /// Unknown order.
    pub fn cancel_order(
        &self,
        ctx: &Ctx,
        order_id: Id,
        cl_ord_id: Option<String>,
        is_automated: bool,
        custom_tag50: Option<String>,
    ) -> Result<Id, Rejection> {
        let cell = self.order_cell(order_id)?;
        Ok(self.run(&cell, ctx, |op| {
            op.client_cancel(order_id, cl_ord_id, is_automated, custom_tag50)
        }))
    }

    /// Cancels every working order of the contract and flattens the position with a market
    /// order; `None` when there was nothing to close.
    ///
    /// # Errors
    /// Closed account or market, unknown contract.
    pub fn liquidate(
        &self,
        ctx: &Ctx,
        account_id: Id,
        contract_id: Id,
        admin: bool,
    ) -> Result<Option<Id>, Rejection> {
        let cell = self.cell(account_id)?;
        let ci = self
            .catalog
            .contract(contract_id)
            .map(|c| c.index)
            .ok_or_else(|| Rejection::new(FailureReason::InvalidContract, "unknown contract"))?;
        self.trading_checks(&cell)?;
        Ok(self.run(&cell, ctx, |op| {
            op.cancel_contract(contract_id);
            let net = op.net_pos(contract_id);
            if net == 0 {
                return None;
            }
            let spec = OrderSpec {
                action: Some(if net > 0 {
                    model::Action::Sell
                } else {
                    model::Action::Buy
                }),
                qty: u32::try_from(net.unsigned_abs()).unwrap_or(u32::MAX),
                order_type: Some(model::OrderType::Market),
                is_automated: true,
                text: Some("liquidation".into()),
                ..OrderSpec::default()
            };
            let id = op.create_order(ci, &spec, false, None, admin);
            op.match_contract(ci);
            Some(id)
        }))
    }

    /// Starts a multibracket strategy.
    ///
    /// # Errors
    /// The `errorText` to answer.
    #[allow(clippy::too_many_arguments)]
    pub fn start_strategy(
        &self,
        ctx: &Ctx,
        account_id: Id,
        contract_index: usize,
        spec: StrategySpec,
        params: String,
        uuid: Option<String>,
        custom_tag50: Option<String>,
        is_automated: bool,
    ) -> Result<OrderStrategy, String> {
        let cell = self.cell(account_id).map_err(|r| r.text)?;
        self.trading_checks(&cell).map_err(|r| r.text)?;
        spec.validate(self.markets[contract_index].tick_size)?;
        self.run(&cell, ctx, |op| {
            op.check_terms(
                contract_index,
                spec.entry.order_type,
                spec.entry.price,
                spec.entry.stop_price,
                None,
            )
            .map_err(|r| r.text)?;
            Ok(op.start_strategy(
                contract_index,
                spec,
                params,
                uuid,
                custom_tag50,
                is_automated,
            ))
        })
    }

    /// The account of a strategy.
    #[must_use]
    pub fn strategy_account(&self, strategy_id: Id) -> Option<Id> {
        match self.locate(strategy_id) {
            Some((EntityKind::OrderStrategy, account)) => Some(account),
            _ => None,
        }
    }

    /// Interrupts a strategy.
    ///
    /// # Errors
    /// The `errorText` to answer.
    pub fn interrupt_strategy(&self, ctx: &Ctx, strategy_id: Id) -> Result<OrderStrategy, String> {
        let account = self
            .strategy_account(strategy_id)
            .ok_or_else(|| format!("unknown order strategy {strategy_id}"))?;
        let cell = self.cell(account).map_err(|r| r.text)?;
        self.run(&cell, ctx, |op| op.interrupt_strategy(strategy_id))
            .ok_or_else(|| format!("unknown order strategy {strategy_id}"))
    }

    /// Sets a contract's price, publishes it and matches every watching account.
    pub fn set_price(&self, contract_index: usize, price: Decimal) -> Decimal {
        let now = clock::now_us();
        let market = &self.markets[contract_index];
        let update = market.set_price(price, now);
        market.publish(&update);
        if self.is_open(now) {
            self.match_market(contract_index);
        }
        update.quote.trade
    }

    /// Matches every account watching a market against its current price.
    pub fn match_market(&self, contract_index: usize) {
        let market = &self.markets[contract_index];
        let contract_id = market.contract_id;
        for account_id in market.watchers() {
            let Some(cell) = self.account(account_id) else {
                market.watchers.lock().remove(&account_id);
                continue;
            };
            let still = self.run(&cell, &Ctx::default(), |op| {
                op.match_contract(contract_index);
                op.st.watches(contract_id)
            });
            if !still {
                let st = cell.state.lock();
                if !st.watches(contract_id) {
                    market.watchers.lock().remove(&account_id);
                }
            }
        }
    }

    /// Adds a listener to an account, atomically with a snapshot of its state: every change
    /// after the snapshot reaches the listener, none before.
    pub fn subscribe<R>(
        &self,
        account_id: Id,
        sink: Arc<dyn EventSink>,
        snapshot: impl FnOnce(&AccountState) -> R,
    ) -> Option<R> {
        let cell = self.account(account_id)?;
        let mut st = cell.state.lock();
        let r = snapshot(&st);
        let id = sink.sink_id();
        st.listeners.retain(|l| l.sink_id() != id);
        st.listeners.push(sink);
        Some(r)
    }

    /// Removes a listener.
    pub fn unsubscribe(&self, account_id: Id, sink_id: u64) {
        if let Some(cell) = self.account(account_id) {
            cell.state
                .lock()
                .listeners
                .retain(|l| l.sink_id() != sink_id);
        }
    }

    /// Reads an account's state.
    pub fn read<R>(
        &self,
        account_id: Id,
        f: impl FnOnce(&AccountCell, &AccountState) -> R,
    ) -> Option<R> {
        let cell = self.account(account_id)?;
        let st = cell.state.lock();
        Some(f(&cell, &st))
    }

    /// Sends the account's listeners every entity of the day again, as `Created` changes in
    /// id order: what Tradovate does around the daily session end.
    pub fn replay(&self, account_id: Id) -> bool {
        let Some(cell) = self.account(account_id) else {
            return false;
        };
        self.run(&cell, &Ctx::default(), |op| {
            let st = &*op.st;
            let mut all: Vec<(Id, Entity)> = Vec::new();
            all.extend(
                st.orders
                    .values()
                    .map(|o| (o.order.id, Entity::Order(o.order.clone()))),
            );
            all.extend(
                st.versions
                    .iter()
                    .map(|v| (v.id, Entity::OrderVersion(v.clone()))),
            );
            all.extend(
                st.commands
                    .iter()
                    .map(|v| (v.id, Entity::Command(v.clone()))),
            );
            all.extend(
                st.command_reports
                    .iter()
                    .map(|v| (v.id, Entity::CommandReport(v.clone()))),
            );
            all.extend(
                st.execution_reports
                    .iter()
                    .map(|v| (v.id, Entity::ExecutionReport(v.clone()))),
            );
            all.extend(st.fills.iter().map(|v| (v.id, Entity::Fill(v.clone()))));
            all.extend(
                st.fill_pairs
                    .iter()
                    .map(|v| (v.id, Entity::FillPair(v.clone()))),
            );
            all.extend(
                st.positions
                    .values()
                    .map(|p| (p.pos.id, Entity::Position(p.pos.clone()))),
            );
            all.push((st.cash.id, Entity::CashBalance(st.cash.clone())));
            all.extend(
                st.strategies
                    .values()
                    .map(|s| (s.entity.id, Entity::OrderStrategy(s.entity.clone()))),
            );
            all.extend(
                st.links
                    .iter()
                    .map(|v| (v.id, Entity::OrderStrategyLink(v.clone()))),
            );
            all.sort_by_key(|(id, _)| *id);
            op.batch = all.into_iter().map(|(_, e)| Change::created(e)).collect();
        });
        true
    }

    /// The end of the trading day for one account: its working `Day` orders expire. Returns
    /// how many did.
    pub fn end_trading_day(&self, account_id: Id) -> usize {
        let Some(cell) = self.account(account_id) else {
            return 0;
        };
        self.run(&cell, &Ctx::default(), |op| op.expire_day_orders())
    }

    /// Cash, P&L and margin of an account at current prices.
    #[must_use]
    pub fn cash_snapshot(&self, account_id: Id) -> Option<CashSnapshot> {
        self.read(account_id, |_, st| self.cash_snapshot_locked(st))
    }

    /// [`Exchange::cash_snapshot`] of a state already locked.
    #[must_use]
    pub fn cash_snapshot_locked(&self, st: &AccountState) -> CashSnapshot {
        let mut open = Decimal::ZERO;
        let mut margin = Decimal::ZERO;
        for p in st.positions.values() {
            let Some(c) = self.catalog.contract(p.pos.contract_id) else {
                continue;
            };
            let vpp = self.catalog.product_of(c).value_per_point();
            let price = self.markets[c.index].price();
            if let Some(np) = p.pos.net_price {
                open += (price - np) * Decimal::from(p.pos.net_pos) * vpp;
            }
            // Simplified exchange margin: 5 % of the notional.
            margin +=
                price * vpp * Decimal::from(p.pos.net_pos.unsigned_abs()) * Decimal::new(5, 2);
        }
        let cash = st.cash.amount;
        CashSnapshot {
            total_cash_value: cash,
            total_pnl: st.cash.realized_pnl + open,
            initial_margin: margin,
            maintenance_margin: margin * Decimal::new(9, 1),
            net_liq: cash + open,
            open_pnl: open,
            realized_pnl: st.cash.realized_pnl,
            week_realized_pnl: st.cash.week_realized_pnl,
        }
    }

    /// Live orders of an account (for liquidation checks in tests).
    #[must_use]
    pub fn live_order_count(&self, account_id: Id) -> usize {
        self.read(account_id, |_, st| st.live_ids.len())
            .unwrap_or(0)
    }

    /// The status of an order.
    #[must_use]
    pub fn order_status(&self, order_id: Id) -> Option<OrdStatus> {
        let account = self.order_account(order_id)?;
        self.read(account, |_, st| {
            st.orders.get(&order_id).map(|o| o.order.ord_status)
        })
        .flatten()
    }
}
