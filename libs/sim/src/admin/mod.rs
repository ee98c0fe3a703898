//! The simulator's own API (not a broker's): users and accounts, prices, sessions, matching
//! settings, limits, faults and read-outs of every order, fill and position with receive
//! timestamps. [`Admin`] is the typed handle for in-process tests; [`router`] serves the same
//! calls over HTTP under `/sim/`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use rand::Rng;
use rand::distr::Alphanumeric;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};

use crate::Shared;
use crate::core::account::OrderRec;
use crate::core::clock::now_us;
use crate::core::model::{Id, OrdStatus, Protocol};
use crate::core::{AdminError, MatchingSettings, SessionMode};
use crate::faults::{FaultKind, FaultSpec, Rule};
use crate::feed::PriceSource;
use crate::projectx::limits::ProjectXLimits;
use crate::sockets::{Control, SocketInfo};
use crate::tradovate::limits::LimitsConfig;

fn dec_num<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    crate::wire::num(*d).serialize(s)
}

fn de_opt_dec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => crate::wire::dec(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not a number: {v}"))),
    }
}

fn opt_dec_num<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => crate::wire::num(*d).serialize(s),
        None => s.serialize_none(),
    }
}

/// A login to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NewUser {
    /// Login name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Account names (default: one `DEMO…` account).
    pub accounts: Vec<String>,
    /// Starting cash of each account (default 50,000).
    #[serde(deserialize_with = "de_opt_dec", serialize_with = "opt_dec_num")]
    pub balance: Option<Decimal>,
    /// Client app id required at login, if set.
    pub cid: Option<Value>,
    /// API secret required at login, if set.
    pub sec: Option<String>,
    /// The protocol the login is served through (`"tradovate"` by default, `"projectx"` or
    /// `"webull"`; a Webull login's app secret is `sec`, else its password).
    pub protocol: Protocol,
    /// ProjectX API key (`Auth/loginKey`) or Webull app key; a random one when absent.
    pub api_key: Option<String>,
}

/// A created account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAccount {
    /// Id.
    pub id: Id,
    /// Name.
    pub name: String,
}

/// A created login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedUser {
    /// User id.
    pub user_id: Id,
    /// Name.
    pub name: String,
    /// Its accounts.
    pub accounts: Vec<CreatedAccount>,
    /// The API key of a ProjectX login, the app key of a Webull login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// An order as the admin API shows it (terms of the latest version included).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    /// Order id.
    pub id: Id,
    /// Account id.
    pub account_id: Id,
    /// Account name.
    pub account: String,
    /// Contract name.
    pub contract: String,
    /// Contract id.
    pub contract_id: Id,
    /// `Buy` / `Sell`.
    pub action: String,
    /// Order type.
    pub order_type: String,
    /// Quantity of the latest version.
    pub qty: u32,
    /// Filled quantity.
    pub filled_qty: u32,
    /// Average fill price.
    #[serde(serialize_with = "opt_dec_num")]
    pub avg_price: Option<Decimal>,
    /// Limit price.
    #[serde(serialize_with = "opt_dec_num")]
    pub price: Option<Decimal>,
    /// Stop price (current level for trailing stops).
    #[serde(serialize_with = "opt_dec_num")]
    pub stop_price: Option<Decimal>,
    /// Status.
    pub status: OrdStatus,
    /// Client order id.
    pub cl_ord_id: Option<String>,
    /// `isAutomated`.
    pub is_automated: bool,
    /// Parent (OSO / strategy entry).
    pub parent_id: Option<Id>,
    /// OCO group.
    pub oco_id: Option<Id>,
    /// OCO partner.
    pub linked_id: Option<Id>,
    /// Strategy.
    pub strategy_id: Option<Id>,
    /// The `uuid` the client gave the strategy (the platform's client order id of a bracket
    /// entry, which Tradovate's strategy orders do not carry as `clOrdId`).
    pub strategy_uuid: Option<String>,
    /// Free text.
    pub text: Option<String>,
    /// Arrival of the request that created it (µs since the epoch).
    pub received_us: i64,
    /// When the simulator finished handling that request (µs).
    pub handled_us: i64,
    /// Last change (µs).
    pub updated_us: i64,
}

/// A fill as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FillRecord {
    /// Fill id.
    pub id: Id,
    /// Order id.
    pub order_id: Id,
    /// Account id.
    pub account_id: Id,
    /// Account name.
    pub account: String,
    /// Contract name.
    pub contract: String,
    /// `Buy` / `Sell`.
    pub action: String,
    /// Quantity.
    pub qty: u32,
    /// Price.
    #[serde(serialize_with = "dec_num")]
    pub price: Decimal,
    /// Client order id of the order.
    pub cl_ord_id: Option<String>,
    /// Fill time (µs).
    pub timestamp_us: i64,
    /// Arrival of the request that created the order (µs).
    pub received_us: i64,
}

/// A position as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionRecord {
    /// Position id.
    pub id: Id,
    /// Account id.
    pub account_id: Id,
    /// Account name.
    pub account: String,
    /// Contract name.
    pub contract: String,
    /// Net quantity.
    pub net_pos: i64,
    /// Average price of the open quantity.
    #[serde(serialize_with = "opt_dec_num")]
    pub net_price: Option<Decimal>,
    /// Bought today.
    pub bought: u64,
    /// Sold today.
    pub sold: u64,
    /// Realized P&L of this position (dollars).
    #[serde(serialize_with = "dec_num")]
    pub realized_pnl: Decimal,
    /// Open P&L at the current price (dollars).
    #[serde(serialize_with = "dec_num")]
    pub open_pnl: Decimal,
    /// Last change (µs).
    pub timestamp_us: i64,
}

/// An account's money.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRecord {
    /// Account id.
    pub id: Id,
    /// Name.
    pub name: String,
    /// Owner id.
    pub user_id: Id,
    /// Cash.
    #[serde(serialize_with = "dec_num")]
    pub balance: Decimal,
    /// Realized P&L of the day.
    #[serde(serialize_with = "dec_num")]
    pub realized_pnl: Decimal,
    /// Open P&L.
    #[serde(serialize_with = "dec_num")]
    pub open_pnl: Decimal,
    /// Cash + open P&L.
    #[serde(serialize_with = "dec_num")]
    pub net_liq: Decimal,
    /// Live orders.
    pub working_orders: usize,
}

/// A contract and its price.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractRecord {
    /// Id.
    pub id: Id,
    /// Name (`MNQZ6`).
    pub name: String,
    /// Root.
    pub root: String,
    /// Front month.
    pub front: bool,
    /// Current price.
    #[serde(serialize_with = "dec_num")]
    pub price: Decimal,
    /// Tick size.
    #[serde(serialize_with = "dec_num")]
    pub tick_size: Decimal,
    /// Dollars per point.
    #[serde(serialize_with = "dec_num")]
    pub value_per_point: Decimal,
}

/// Matching settings as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct MatchingJson {
    /// Fill at most this many contracts per order per price event.
    pub partial_fill_qty: Option<u32>,
    /// Ticks of slippage for market and stop orders.
    pub slippage_ticks: Option<u32>,
    /// Commission per contract per side.
    #[serde(deserialize_with = "de_opt_dec", serialize_with = "opt_dec_num")]
    pub commission_per_contract: Option<Decimal>,
}

/// The typed admin handle.
#[derive(Clone)]
pub struct Admin {
    pub(crate) sh: Arc<Shared>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

fn order_record(
    sh: &Shared,
    account: &str,
    o: &OrderRec,
    strategy_uuid: Option<String>,
) -> OrderRecord {
    let contract = sh
        .ex
        .catalog
        .contract(o.order.contract_id)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    OrderRecord {
        id: o.order.id,
        account_id: o.order.account_id,
        account: account.to_string(),
        contract,
        contract_id: o.order.contract_id,
        action: o.order.action.as_str().into(),
        order_type: serde_json::to_value(o.version.order_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        qty: o.version.order_qty,
        filled_qty: o.cum_qty,
        avg_price: o.avg_px(),
        price: o.version.price,
        stop_price: o.version.stop_price,
        status: o.order.ord_status,
        cl_ord_id: o.cl_ord_id.clone(),
        is_automated: o.is_automated,
        parent_id: o.order.parent_id,
        oco_id: o.order.oco_id,
        linked_id: o.order.linked_id,
        strategy_id: o.strategy.map(|s| s.0),
        strategy_uuid,
        text: o.version.text.clone(),
        received_us: o.received_us,
        handled_us: o.handled_us,
        updated_us: o.updated_us,
    }
}

impl Admin {
    fn accounts_for(&self, account: Option<&str>) -> Result<Vec<Id>, AdminError> {
        match account {
            None => Ok(self.sh.ex.accounts().iter().map(|a| a.account.id).collect()),
            Some(a) => self
                .sh
                .ex
                .find_account(a)
                .map(|c| vec![c.account.id])
                .ok_or_else(|| AdminError::NotFound(format!("account {a}"))),
        }
    }

    fn user_id(&self, user: &str) -> Result<Id, AdminError> {
        self.sh
            .ex
            .user_by_name(user)
            .or_else(|| {
                user.trim()
                    .parse::<Id>()
                    .ok()
                    .and_then(|id| self.sh.ex.user(id))
            })
            .map(|u| u.id)
            .ok_or_else(|| AdminError::NotFound(format!("user {user}")))
    }

    /// Creates a login with its accounts.
    ///
    /// # Errors
    /// Name taken or invalid.
    pub fn create_user(&self, spec: &NewUser) -> Result<CreatedUser, AdminError> {
        let balance = spec.balance.unwrap_or(Decimal::from(50_000));
        let cid = spec.cid.as_ref().and_then(crate::wire::text);
        for (i, a) in spec.accounts.iter().enumerate() {
            let repeated = spec.accounts[..i].iter().any(|b| b.eq_ignore_ascii_case(a));
            if repeated || self.sh.ex.account_by_name(a).is_some() {
                return Err(AdminError::Exists(format!("account {a}")));
            }
        }
        let user = self.sh.ex.create_user_for(
            &spec.name,
            &spec.password,
            cid,
            spec.sec.clone(),
            spec.protocol,
        )?;
        let api_key = match spec.protocol {
            Protocol::ProjectX => Some(self.sh.px.set_key(user.id, spec.api_key.clone())),
            Protocol::Webull => Some(self.sh.wb.set_key(user.id, spec.api_key.clone())),
            Protocol::Tradovate => None,
        };
        let mut accounts = Vec::new();
        if spec.accounts.is_empty() {
            let a = self.sh.ex.add_account(user.id, None, balance)?;
            accounts.push(CreatedAccount {
                id: a.id,
                name: a.name,
            });
        }
        for name in &spec.accounts {
            let a = self.sh.ex.add_account(user.id, Some(name), balance)?;
            accounts.push(CreatedAccount {
                id: a.id,
                name: a.name,
            });
        }
        Ok(CreatedUser {
            user_id: user.id,
            name: user.name,
            accounts,
            api_key,
        })
    }

    /// The accounts of a user (by name or id); empty for an unknown user.
    #[must_use]
    pub fn accounts_of_user(&self, user: &str) -> Vec<CreatedAccount> {
        let Ok(uid) = self.user_id(user) else {
            return Vec::new();
        };
        self.sh
            .ex
            .accounts_of(uid)
            .iter()
            .map(|c| CreatedAccount {
                id: c.account.id,
                name: c.account.name.clone(),
            })
            .collect()
    }

    /// Adds an account to an existing user.
    ///
    /// # Errors
    /// Unknown user, taken name.
    pub fn add_account(
        &self,
        user: &str,
        name: Option<&str>,
        balance: Decimal,
    ) -> Result<CreatedAccount, AdminError> {
        let uid = self.user_id(user)?;
        let a = self.sh.ex.add_account(uid, name, balance)?;
        Ok(CreatedAccount {
            id: a.id,
            name: a.name,
        })
    }

    /// Sets an account's cash.
    ///
    /// # Errors
    /// Unknown account.
    pub fn set_balance(&self, account: &str, amount: Decimal) -> Result<(), AdminError> {
        let ids = self.accounts_for(Some(account))?;
        for id in ids {
            self.sh.ex.set_balance(id, amount)?;
        }
        Ok(())
    }

    /// Sets the price of a contract, or of every listed month of a root; stops their feeds.
    /// Returns the contracts and the prices actually set (rounded to tick).
    ///
    /// # Errors
    /// Unknown symbol, non-positive price.
    pub fn set_price(
        &self,
        symbol: &str,
        price: Decimal,
    ) -> Result<Vec<(String, Decimal)>, AdminError> {
        if price <= Decimal::ZERO {
            return Err(AdminError::Invalid(format!(
                "price {price} must be positive"
            )));
        }
        let contracts = self.sh.ex.catalog.resolve_symbol(symbol);
        if contracts.is_empty() {
            return Err(AdminError::NotFound(format!("symbol {symbol}")));
        }
        let mut out = Vec::new();
        for c in contracts {
            self.sh.feeds.stop(c.index);
            let p = self.sh.ex.set_price(c.index, price);
            out.push((c.name.clone(), p));
        }
        Ok(out)
    }

    /// Starts a moving price source on a contract or root.
    ///
    /// # Errors
    /// Unknown symbol.
    pub fn set_price_source(
        &self,
        symbol: &str,
        source: &PriceSource,
    ) -> Result<Vec<String>, AdminError> {
        let contracts = self.sh.ex.catalog.resolve_symbol(symbol);
        if contracts.is_empty() {
            return Err(AdminError::NotFound(format!("symbol {symbol}")));
        }
        let mut out = Vec::new();
        for c in contracts {
            self.sh
                .feeds
                .apply(&self.sh.ex, c.index, source, &self.sh.shutdown);
            out.push(c.name.clone());
        }
        Ok(out)
    }

    /// The current price of a contract or root (front month for a root).
    #[must_use]
    pub fn price(&self, symbol: &str) -> Option<Decimal> {
        let c = self
            .sh
            .ex
            .catalog
            .contract_by_name(symbol)
            .or_else(|| self.sh.ex.catalog.front(symbol))?;
        Some(self.sh.ex.market(c.index).price())
    }

    /// The front-month contract name of a root (`MNQ` → `MNQZ6`).
    #[must_use]
    pub fn front_month(&self, root: &str) -> Option<String> {
        self.sh.ex.catalog.front(root).map(|c| c.name.clone())
    }

    /// Every contract with its price.
    #[must_use]
    pub fn contracts(&self) -> Vec<ContractRecord> {
        let cat = &self.sh.ex.catalog;
        cat.contracts
            .iter()
            .map(|c| {
                let p = cat.product_of(c);
                ContractRecord {
                    id: c.id,
                    name: c.name.clone(),
                    root: p.name.clone(),
                    front: c.is_front,
                    price: self.sh.ex.market(c.index).price(),
                    tick_size: p.instrument.tick_size,
                    value_per_point: p.value_per_point(),
                }
            })
            .collect()
    }

    /// Every order (of one account by name or id, or of all), oldest first.
    ///
    /// # Errors
    /// Unknown account.
    pub fn orders(&self, account: Option<&str>) -> Result<Vec<OrderRecord>, AdminError> {
        let mut out = Vec::new();
        for id in self.accounts_for(account)? {
            self.sh.ex.read(id, |cell, st| {
                out.extend(st.orders.values().map(|o| {
                    let uuid = o
                        .strategy
                        .and_then(|(id, _)| st.strategies.get(&id))
                        .and_then(|s| s.entity.uuid.clone());
                    order_record(&self.sh, &cell.account.name, o, uuid)
                }));
            });
        }
        out.sort_by_key(|o| o.id);
        Ok(out)
    }

    /// Every fill, oldest first.
    ///
    /// # Errors
    /// Unknown account.
    pub fn fills(&self, account: Option<&str>) -> Result<Vec<FillRecord>, AdminError> {
        let mut out = Vec::new();
        for id in self.accounts_for(account)? {
            self.sh.ex.read(id, |cell, st| {
                for f in &st.fills {
                    let order = st.orders.get(&f.order_id);
                    out.push(FillRecord {
                        id: f.id,
                        order_id: f.order_id,
                        account_id: cell.account.id,
                        account: cell.account.name.clone(),
                        contract: self
                            .sh
                            .ex
                            .catalog
                            .contract(f.contract_id)
                            .map(|c| c.name.clone())
                            .unwrap_or_default(),
                        action: f.action.as_str().into(),
                        qty: f.qty,
                        price: f.price,
                        cl_ord_id: order.and_then(|o| o.cl_ord_id.clone()),
                        timestamp_us: f.timestamp_us,
                        received_us: order.map_or(0, |o| o.received_us),
                    });
                }
            });
        }
        out.sort_by_key(|f| f.id);
        Ok(out)
    }

    /// Every position (flat ones included), by account then contract.
    ///
    /// # Errors
    /// Unknown account.
    pub fn positions(&self, account: Option<&str>) -> Result<Vec<PositionRecord>, AdminError> {
        let mut out = Vec::new();
        for id in self.accounts_for(account)? {
            self.sh.ex.read(id, |cell, st| {
                for p in st.positions.values() {
                    let c = self.sh.ex.catalog.contract(p.pos.contract_id);
                    let open = match (c, p.pos.net_price) {
                        (Some(c), Some(np)) => {
                            let vpp = self.sh.ex.catalog.product_of(c).value_per_point();
                            (self.sh.ex.market(c.index).price() - np)
                                * Decimal::from(p.pos.net_pos)
                                * vpp
                        }
                        _ => Decimal::ZERO,
                    };
                    out.push(PositionRecord {
                        id: p.pos.id,
                        account_id: cell.account.id,
                        account: cell.account.name.clone(),
                        contract: c.map(|c| c.name.clone()).unwrap_or_default(),
                        net_pos: p.pos.net_pos,
                        net_price: p.pos.net_price,
                        bought: p.pos.bought,
                        sold: p.pos.sold,
                        realized_pnl: p.realized,
                        open_pnl: open,
                        timestamp_us: p.pos.timestamp_us,
                    });
                }
            });
        }
        Ok(out)
    }

    /// Money of every account (or one).
    ///
    /// # Errors
    /// Unknown account.
    pub fn accounts(&self, account: Option<&str>) -> Result<Vec<AccountRecord>, AdminError> {
        let mut out = Vec::new();
        for id in self.accounts_for(account)? {
            let Some(cell) = self.sh.ex.account(id) else {
                continue;
            };
            let Some(snap) = self.sh.ex.cash_snapshot(id) else {
                continue;
            };
            out.push(AccountRecord {
                id,
                name: cell.account.name.clone(),
                user_id: cell.account.user_id,
                balance: snap.total_cash_value,
                realized_pnl: snap.realized_pnl,
                open_pnl: snap.open_pnl,
                net_liq: snap.net_liq,
                working_orders: self.sh.ex.live_order_count(id),
            });
        }
        Ok(out)
    }

    /// Adds a fault; one-shot actions (drop or shut sockets, expire tokens, replay) act now.
    /// Returns the rule id (0 for actions) and how many things the action touched.
    ///
    /// # Errors
    /// Unknown user or account in the scope.
    pub fn add_fault(&self, spec: FaultSpec) -> Result<(u64, usize), AdminError> {
        let user_id = match &spec.user {
            Some(u) => Some(self.user_id(u)?),
            None => None,
        };
        let account_id = match &spec.account {
            Some(a) => Some(
                self.sh
                    .ex
                    .find_account(a)
                    .map(|c| c.account.id)
                    .ok_or_else(|| AdminError::NotFound(format!("account {a}")))?,
            ),
            None => None,
        };
        if spec.kind.is_action() {
            let n = match &spec.kind {
                FaultKind::DropSocket => self.sh.sockets.apply(user_id, account_id, &Control::Drop),
                FaultKind::Shutdown { reason_code } => self.sh.sockets.apply(
                    user_id,
                    account_id,
                    &Control::Close {
                        code: 1000,
                        reason: format!("Planned shutdown: {reason_code}"),
                        shutdown: Some(reason_code.clone()),
                    },
                ),
                FaultKind::ExpireToken => match user_id {
                    Some(u) => {
                        self.sh.auth.expire_user(u)
                            + self.sh.px.tokens.expire_user(u)
                            + self.sh.wb.expire_user(u)
                    }
                    None => self
                        .sh
                        .ex
                        .users()
                        .iter()
                        .map(|u| {
                            self.sh.auth.expire_user(u.id)
                                + self.sh.px.tokens.expire_user(u.id)
                                + self.sh.wb.expire_user(u.id)
                        })
                        .sum(),
                },
                FaultKind::Replay => {
                    let accounts: Vec<Id> = match (account_id, user_id) {
                        (Some(a), _) => vec![a],
                        (None, Some(u)) => self
                            .sh
                            .ex
                            .user(u)
                            .map(|u| u.account_ids)
                            .unwrap_or_default(),
                        (None, None) => {
                            self.sh.ex.accounts().iter().map(|a| a.account.id).collect()
                        }
                    };
                    accounts
                        .into_iter()
                        .filter(|a| self.sh.ex.replay(*a))
                        .count()
                }
                _ => 0,
            };
            return Ok((0, n));
        }
        let id = self.sh.faults.add(spec, user_id, account_id);
        Ok((id, 0))
    }

    /// Removes every fault rule and lifts socket freezes; forgets limit counters.
    pub fn clear_faults(&self) {
        self.sh.faults.clear();
        self.sh.limits.reset();
        self.sh.px.limits.reset();
    }

    /// Current fault rules.
    #[must_use]
    pub fn faults(&self) -> Vec<Rule> {
        self.sh.faults.list()
    }

    /// Replays the day's events of an account (or every account).
    ///
    /// # Errors
    /// Unknown account.
    pub fn replay(&self, account: Option<&str>) -> Result<usize, AdminError> {
        Ok(self
            .accounts_for(account)?
            .into_iter()
            .filter(|a| self.sh.ex.replay(*a))
            .count())
    }

    /// Ends the trading day now for an account (or every account): working `Day` orders expire,
    /// as Tradovate expires them at the session end. Returns how many expired.
    ///
    /// # Errors
    /// Unknown account.
    pub fn end_trading_day(&self, account: Option<&str>) -> Result<usize, AdminError> {
        Ok(self
            .accounts_for(account)?
            .into_iter()
            .map(|a| self.sh.ex.end_trading_day(a))
            .sum())
    }

    /// Expires every token of a user now.
    ///
    /// # Errors
    /// Unknown user.
    pub fn expire_tokens(&self, user: &str) -> Result<usize, AdminError> {
        let uid = self.user_id(user)?;
        Ok(self.sh.auth.expire_user(uid) + self.sh.px.tokens.expire_user(uid))
    }

    /// Sets the session mode.
    pub fn set_session_mode(&self, mode: SessionMode) {
        self.sh.ex.set_session_mode(mode);
    }

    /// Sets matching knobs (absent fields keep their value).
    pub fn set_matching(&self, m: &MatchingJson) -> MatchingSettings {
        let mut cur = self.sh.ex.matching();
        if let Some(q) = m.partial_fill_qty {
            cur.partial_fill_qty = (q > 0).then_some(q);
        }
        if let Some(s) = m.slippage_ticks {
            cur.slippage_ticks = s;
        }
        if let Some(c) = m.commission_per_contract {
            cur.commission_per_contract = c;
        }
        self.sh.ex.set_matching(cur);
        cur
    }

    /// Replaces the request limits (and forgets counters).
    pub fn set_limits(&self, cfg: LimitsConfig) {
        self.sh.limits.configure(cfg);
    }

    /// What the socket connection limits saw since the last reset: upgrades refused (429) and
    /// the most attempts opening at once from one IP (`LimitsConfig::connects_in_flight`).
    #[must_use]
    pub fn connect_stats(&self) -> crate::tradovate::limits::ConnectStats {
        self.sh.limits.connect_stats()
    }

    /// Changes the lifetime of Tradovate tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.sh.auth.set_lifetime(lifetime);
    }

    /// Changes the lifetime of ProjectX tokens issued from now on (24 h by default).
    pub fn set_projectx_token_lifetime(&self, lifetime: Duration) {
        self.sh.px.tokens.set_lifetime(lifetime);
    }

    /// Replaces the ProjectX request limits (and forgets counters).
    pub fn set_projectx_limits(&self, limits: ProjectXLimits) {
        self.sh.px.limits.configure(limits);
    }

    /// The current ProjectX request limits.
    #[must_use]
    pub fn projectx_limits(&self) -> ProjectXLimits {
        self.sh.px.limits.config()
    }

    /// Turns an account's ProjectX "Auto OCO Brackets" on (default) or off (bracket fields
    /// of its orders are then ignored).
    ///
    /// # Errors
    /// Unknown account.
    pub fn set_projectx_auto_brackets(&self, account: &str, on: bool) -> Result<(), AdminError> {
        for id in self.accounts_for(Some(account))? {
            if on {
                self.sh.px.manual_brackets.remove(&id);
            } else {
                self.sh.px.manual_brackets.insert(id, ());
            }
        }
        Ok(())
    }

    /// Open sockets.
    #[must_use]
    pub fn sockets(&self) -> Vec<SocketInfo> {
        self.sh.sockets.list()
    }

    /// The broker API requests received so far, keyed `"<protocol>:<endpoint>"`
    /// (`"tradovate:order/placeorder"`), endpoints lower case.
    #[must_use]
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.sh.requests.snapshot()
    }

    /// Counts requests from zero again.
    pub fn reset_request_counts(&self) {
        self.sh.requests.reset();
    }

    /// Mints a one-time OAuth code for `auth/oauthtoken`.
    ///
    /// # Errors
    /// Unknown user.
    pub fn oauth_code(&self, user: &str) -> Result<String, AdminError> {
        let uid = self.user_id(user)?;
        let code: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        self.sh.oauth_codes.insert(code.clone(), uid);
        Ok(code)
    }
}

// ---------------------------------------------------------------------------- HTTP

struct ApiError(StatusCode, String);

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let status = match e {
            AdminError::Exists(_) => StatusCode::CONFLICT,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    serde_json::from_str(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

#[derive(Debug, Deserialize)]
struct AccountQuery {
    account: Option<String>,
}

fn admin(sh: &Arc<Shared>) -> Admin {
    Admin { sh: sh.clone() }
}

async fn post_users(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let spec: NewUser = parse(&body)?;
    let created = admin(&sh).create_user(&spec)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn get_users(State(sh): State<Arc<Shared>>) -> ApiResult {
    let users: Vec<Value> = sh
        .ex
        .users()
        .iter()
        .map(|u| {
            let sessions = match u.protocol {
                Protocol::Tradovate => sh.auth.sessions_of(u.id),
                Protocol::ProjectX => sh.px.tokens.sessions_of(u.id),
                // Signed requests: no session.
                Protocol::Webull => Vec::new(),
            };
            json!({"userId": u.id, "name": u.name, "protocol": u.protocol, "accounts": u.account_ids, "sessions": sessions})
        })
        .collect();
    Ok(Json(users).into_response())
}

async fn post_accounts(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let v: Value = parse(&body)?;
    let f = crate::wire::Fields(&v);
    let user = f.text("user").ok_or_else(|| bad("user is required"))?;
    let balance = f.dec("balance").unwrap_or(Decimal::from(50_000));
    let a = admin(&sh).add_account(&user, f.text("name").as_deref(), balance)?;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

async fn get_accounts(State(sh): State<Arc<Shared>>, Query(q): Query<AccountQuery>) -> ApiResult {
    Ok(Json(admin(&sh).accounts(q.account.as_deref())?).into_response())
}

async fn post_balances(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let v: Value = parse(&body)?;
    let f = crate::wire::Fields(&v);
    let account = f
        .text("account")
        .ok_or_else(|| bad("account is required"))?;
    let amount = f
        .dec("amount")
        .or_else(|| f.dec("balance"))
        .ok_or_else(|| bad("amount is required"))?;
    admin(&sh).set_balance(&account, amount)?;
    Ok(Json(json!({"account": account, "amount": crate::wire::num(amount)})).into_response())
}

fn millis(f: &crate::wire::Fields<'_>, k: &str, default: u64) -> Duration {
    Duration::from_millis(
        f.int(k)
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(default),
    )
}

async fn post_prices(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let v: Value = parse(&body)?;
    let f = crate::wire::Fields(&v);
    let symbol = f.text("symbol").ok_or_else(|| bad("symbol is required"))?;
    let a = admin(&sh);
    if let Some(price) = f.dec("price") {
        let set = a.set_price(&symbol, price)?;
        let out: Vec<Value> = set
            .into_iter()
            .map(|(c, p)| json!({"contract": c, "price": crate::wire::num(p)}))
            .collect();
        return Ok(Json(out).into_response());
    }
    let source = if let Some(w) = f.value("walk") {
        let w = crate::wire::Fields(w);
        PriceSource::RandomWalk {
            seed: w
                .int("seed")
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(1),
            interval: millis(&w, "intervalMs", 1000),
            max_step_ticks: w
                .int("maxStepTicks")
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(2),
        }
    } else if let Some(Value::Array(path)) = f.value("path") {
        let prices: Option<Vec<Decimal>> = path.iter().map(crate::wire::dec).collect();
        PriceSource::Path {
            prices: prices.ok_or_else(|| bad("path must hold prices"))?,
            interval: millis(&f, "intervalMs", 1000),
            repeat: f.bool("repeat").unwrap_or(false),
        }
    } else {
        return Err(bad("one of price, walk or path is required"));
    };
    let names = a.set_price_source(&symbol, &source)?;
    Ok(Json(json!({"contracts": names})).into_response())
}

async fn get_prices(State(sh): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(admin(&sh).contracts()).into_response())
}

async fn get_orders(State(sh): State<Arc<Shared>>, Query(q): Query<AccountQuery>) -> ApiResult {
    Ok(Json(admin(&sh).orders(q.account.as_deref())?).into_response())
}

async fn get_fills(State(sh): State<Arc<Shared>>, Query(q): Query<AccountQuery>) -> ApiResult {
    Ok(Json(admin(&sh).fills(q.account.as_deref())?).into_response())
}

async fn get_positions(State(sh): State<Arc<Shared>>, Query(q): Query<AccountQuery>) -> ApiResult {
    Ok(Json(admin(&sh).positions(q.account.as_deref())?).into_response())
}

async fn post_faults(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let spec: FaultSpec = parse(&body)?;
    let (id, applied) = admin(&sh).add_fault(spec)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "applied": applied})),
    )
        .into_response())
}

async fn get_faults(State(sh): State<Arc<Shared>>) -> ApiResult {
    let rules: Vec<Value> = admin(&sh)
        .faults()
        .into_iter()
        .map(|r| json!({"id": r.id, "fault": r.spec, "userId": r.user_id, "accountId": r.account_id}))
        .collect();
    Ok(Json(rules).into_response())
}

async fn delete_faults(State(sh): State<Arc<Shared>>) -> ApiResult {
    admin(&sh).clear_faults();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_fault(State(sh): State<Arc<Shared>>, Path(id): Path<u64>) -> ApiResult {
    if sh.faults.remove(id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("fault {id} not found"),
        ))
    }
}

async fn post_session(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let v: Value = parse(&body)?;
    let mode: SessionMode = serde_json::from_value(v.get("mode").cloned().unwrap_or(Value::Null))
        .map_err(|_| bad("mode must be alwaysOpen, exchange or closed"))?;
    admin(&sh).set_session_mode(mode);
    Ok(Json(json!({"mode": mode, "open": sh.ex.is_open(now_us())})).into_response())
}

async fn get_session(State(sh): State<Arc<Shared>>) -> ApiResult {
    Ok(
        Json(json!({"mode": sh.ex.session_mode(), "open": sh.ex.is_open(now_us())}))
            .into_response(),
    )
}

fn matching_json(m: MatchingSettings) -> Value {
    json!({
        "partialFillQty": m.partial_fill_qty,
        "slippageTicks": m.slippage_ticks,
        "commissionPerContract": crate::wire::num(m.commission_per_contract),
    })
}

async fn post_matching(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let m: MatchingJson = parse(&body)?;
    Ok(Json(matching_json(admin(&sh).set_matching(&m))).into_response())
}

async fn get_matching(State(sh): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(matching_json(sh.ex.matching())).into_response())
}

async fn post_limits(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let cfg: LimitsConfig = parse(&body)?;
    admin(&sh).set_limits(cfg.clone());
    Ok(Json(cfg).into_response())
}

async fn get_limits(State(sh): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(sh.limits.config()).into_response())
}

async fn get_connect_stats(State(sh): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(sh.limits.connect_stats()).into_response())
}

async fn post_replay(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let v: Value = parse(&body)?;
    let account = crate::wire::Fields(&v).text("account");
    let n = admin(&sh).replay(account.as_deref())?;
    Ok(Json(json!({"replayed": n})).into_response())
}

async fn post_session_end(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let v: Value = parse(&body)?;
    let account = crate::wire::Fields(&v).text("account");
    let n = admin(&sh).end_trading_day(account.as_deref())?;
    Ok(Json(json!({"expired": n})).into_response())
}

async fn post_tokens(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let v: Value = parse(&body)?;
    let f = crate::wire::Fields(&v);
    let secs = f
        .int("lifetimeSecs")
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| bad("lifetimeSecs is required"))?;
    let protocol = match f.text("protocol").as_deref() {
        None | Some("tradovate") => Protocol::Tradovate,
        Some("projectx") => Protocol::ProjectX,
        Some("webull") => {
            return Err(bad(
                "protocol webull: signed requests have no token (expire credentials with the expireToken fault)",
            ));
        }
        Some(other) => return Err(bad(format!("protocol {other}: tradovate or projectx"))),
    };
    match protocol {
        Protocol::Tradovate => admin(&sh).set_token_lifetime(Duration::from_secs(secs)),
        Protocol::ProjectX | Protocol::Webull => {
            admin(&sh).set_projectx_token_lifetime(Duration::from_secs(secs));
        }
    }
    Ok(Json(json!({"lifetimeSecs": secs, "protocol": protocol})).into_response())
}

async fn post_projectx_limits(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let limits: ProjectXLimits = parse(&body)?;
    admin(&sh).set_projectx_limits(limits.clone());
    Ok(Json(limits).into_response())
}

async fn get_projectx_limits(State(sh): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(admin(&sh).projectx_limits()).into_response())
}

async fn post_projectx_brackets(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let v: Value = parse(&body)?;
    let f = crate::wire::Fields(&v);
    let account = f
        .text("account")
        .ok_or_else(|| bad("account is required"))?;
    let on = f.bool("auto").ok_or_else(|| bad("auto is required"))?;
    admin(&sh).set_projectx_auto_brackets(&account, on)?;
    Ok(Json(json!({"account": account, "auto": on})).into_response())
}

async fn get_sockets(State(sh): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(admin(&sh).sockets()).into_response())
}

async fn get_requests(State(sh): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(admin(&sh).request_counts()).into_response())
}

async fn delete_requests(State(sh): State<Arc<Shared>>) -> ApiResult {
    admin(&sh).reset_request_counts();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn post_oauth_code(State(sh): State<Arc<Shared>>, body: String) -> ApiResult {
    let v: Value = parse(&body)?;
    let user = crate::wire::Fields(&v)
        .text("user")
        .ok_or_else(|| bad("user is required"))?;
    let code = admin(&sh).oauth_code(&user)?;
    Ok(Json(json!({"code": code})).into_response())
}

async fn health() -> &'static str {
    "ok"
}

/// The `/sim/` routes.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/health", get(health))
        .route("/users", post(post_users).get(get_users))
        .route("/accounts", post(post_accounts).get(get_accounts))
        .route("/balances", post(post_balances))
        .route("/prices", post(post_prices).get(get_prices))
        .route("/contracts", get(get_prices))
        .route("/orders", get(get_orders))
        .route("/fills", get(get_fills))
        .route("/positions", get(get_positions))
        .route(
            "/faults",
            post(post_faults).get(get_faults).delete(delete_faults),
        )
        .route("/faults/{id}", delete(delete_fault))
        .route("/session", post(post_session).get(get_session))
        .route("/matching", post(post_matching).get(get_matching))
        .route("/limits", post(post_limits).get(get_limits))
        .route("/limits/connects", get(get_connect_stats))
        .route(
            "/projectx/limits",
            post(post_projectx_limits).get(get_projectx_limits),
        )
        .route("/projectx/brackets", post(post_projectx_brackets))
        .route("/replay", post(post_replay))
        .route("/session-end", post(post_session_end))
        .route("/tokens", post(post_tokens))
        .route("/sockets", get(get_sockets))
        .route("/requests", get(get_requests).delete(delete_requests))
        .route("/oauth/codes", post(post_oauth_code))
}
