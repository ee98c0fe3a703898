//! The entity system (`{entity}/list|item|items|find|deps|ldeps|suggest`) and the
//! `user/syncrequest` snapshot, both limited to what the calling user may see.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::core::account::AccountState;
use crate::core::clock::now_us;
use crate::core::model::{Account, Id, User};
use crate::core::{EntityKind, Exchange};

use super::wire;

/// Entity types served, with their lower-case path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Kind {
    User,
    Account,
    AccountRiskStatus,
    MarginSnapshot,
    UserAccountAutoLiq,
    CashBalance,
    Position,
    FillPair,
    Order,
    OrderVersion,
    Command,
    CommandReport,
    ExecutionReport,
    Fill,
    OrderStrategy,
    OrderStrategyLink,
    Contract,
    ContractMaturity,
    Product,
    Exchange,
    Currency,
    ContractGroup,
    OrderStrategyType,
}

impl Kind {
    /// Parses the path segment (any case).
    #[must_use]
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "user" => Kind::User,
            "account" => Kind::Account,
            "accountriskstatus" => Kind::AccountRiskStatus,
            "marginsnapshot" => Kind::MarginSnapshot,
            "useraccountautoliq" => Kind::UserAccountAutoLiq,
            "cashbalance" => Kind::CashBalance,
            "position" => Kind::Position,
            "fillpair" => Kind::FillPair,
            "order" => Kind::Order,
            "orderversion" => Kind::OrderVersion,
            "command" => Kind::Command,
            "commandreport" => Kind::CommandReport,
            "executionreport" => Kind::ExecutionReport,
            "fill" => Kind::Fill,
            "orderstrategy" => Kind::OrderStrategy,
            "orderstrategylink" => Kind::OrderStrategyLink,
            "contract" => Kind::Contract,
            "contractmaturity" => Kind::ContractMaturity,
            "product" => Kind::Product,
            "exchange" => Kind::Exchange,
            "currency" => Kind::Currency,
            "contractgroup" => Kind::ContractGroup,
            "orderstrategytype" => Kind::OrderStrategyType,
            _ => return None,
        })
    }

    /// The `entityType` of `props` events and the sync array name.
    #[must_use]
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::User => ("user", "users"),
            Kind::Account => ("account", "accounts"),
            Kind::AccountRiskStatus => ("accountRiskStatus", "accountRiskStatuses"),
            Kind::MarginSnapshot => ("marginSnapshot", "marginSnapshots"),
            Kind::UserAccountAutoLiq => ("userAccountAutoLiq", "userAccountAutoLiqs"),
            Kind::CashBalance => ("cashBalance", "cashBalances"),
            Kind::Position => ("position", "positions"),
            Kind::FillPair => ("fillPair", "fillPairs"),
            Kind::Order => ("order", "orders"),
            Kind::OrderVersion => ("orderVersion", "orderVersions"),
            Kind::Command => ("command", "commands"),
            Kind::CommandReport => ("commandReport", "commandReports"),
            Kind::ExecutionReport => ("executionReport", "executionReports"),
            Kind::Fill => ("fill", "fills"),
            Kind::OrderStrategy => ("orderStrategy", "orderStrategies"),
            Kind::OrderStrategyLink => ("orderStrategyLink", "orderStrategyLinks"),
            Kind::Contract => ("contract", "contracts"),
            Kind::ContractMaturity => ("contractMaturity", "contractMaturities"),
            Kind::Product => ("product", "products"),
            Kind::Exchange => ("exchange", "exchanges"),
            Kind::Currency => ("currency", "currencies"),
            Kind::ContractGroup => ("contractGroup", "contractGroups"),
            Kind::OrderStrategyType => ("orderStrategyType", "orderStrategyTypes"),
        }
    }

    fn of(kind: EntityKind) -> Kind {
        match kind {
            EntityKind::Order => Kind::Order,
            EntityKind::OrderVersion => Kind::OrderVersion,
            EntityKind::Command => Kind::Command,
            EntityKind::CommandReport => Kind::CommandReport,
            EntityKind::ExecutionReport => Kind::ExecutionReport,
            EntityKind::Fill => Kind::Fill,
            EntityKind::FillPair => Kind::FillPair,
            EntityKind::Position => Kind::Position,
            EntityKind::CashBalance => Kind::CashBalance,
            EntityKind::OrderStrategy => Kind::OrderStrategy,
            EntityKind::OrderStrategyLink => Kind::OrderStrategyLink,
        }
    }
}

/// One entity with what the queries filter on.
#[derive(Debug, Clone)]
pub struct Row {
    /// Id.
    pub id: Id,
    /// Master id for `deps` (account, order, command, position, strategy, …).
    pub master: Option<Id>,
    /// Name for `find` and `suggest`.
    pub name: Option<String>,
    /// The JSON.
    pub json: Value,
}

fn row(id: Id, master: Option<Id>, name: Option<String>, json: Value) -> Row {
    Row {
        id,
        master,
        name,
        json,
    }
}

/// Rows of an account-owned kind from one account's state.
fn account_rows(ex: &Exchange, kind: Kind, account: &Account, st: &AccountState) -> Vec<Row> {
    match kind {
        Kind::Order => st
            .orders
            .values()
            .map(|o| row(o.order.id, Some(account.id), None, wire::order(&o.order)))
            .collect(),
        Kind::OrderVersion => st
            .versions
            .iter()
            .map(|v| row(v.id, Some(v.order_id), None, wire::order_version(v)))
            .collect(),
        Kind::Command => st
            .commands
            .iter()
            .map(|c| row(c.id, Some(c.order_id), None, wire::command(c)))
            .collect(),
        Kind::CommandReport => st
            .command_reports
            .iter()
            .map(|c| row(c.id, Some(c.command_id), None, wire::command_report(c)))
            .collect(),
        Kind::ExecutionReport => st
            .execution_reports
            .iter()
            .map(|e| row(e.id, Some(e.command_id), None, wire::execution_report(e)))
            .collect(),
        Kind::Fill => st
            .fills
            .iter()
            .map(|f| row(f.id, Some(f.order_id), None, wire::fill(f)))
            .collect(),
        Kind::FillPair => st
            .fill_pairs
            .iter()
            .map(|p| row(p.id, Some(p.position_id), None, wire::fill_pair(p)))
            .collect(),
        Kind::Position => st
            .positions
            .values()
            .map(|p| {
                let name = ex
                    .catalog
                    .contract(p.pos.contract_id)
                    .map(|c| c.name.clone());
                row(p.pos.id, Some(account.id), name, wire::position(&p.pos))
            })
            .collect(),
        Kind::CashBalance => vec![row(
            st.cash.id,
            Some(account.id),
            None,
            wire::cash_balance(&st.cash),
        )],
        Kind::OrderStrategy => st
            .strategies
            .values()
            .map(|s| {
                row(
                    s.entity.id,
                    Some(account.id),
                    None,
                    wire::order_strategy(&s.entity),
                )
            })
            .collect(),
        Kind::OrderStrategyLink => st
            .links
            .iter()
            .map(|l| {
                row(
                    l.id,
                    Some(l.order_strategy_id),
                    None,
                    wire::order_strategy_link(l),
                )
            })
            .collect(),
        Kind::Account => vec![row(
            account.id,
            Some(account.user_id),
            Some(account.name.clone()),
            wire::account(account),
        )],
        Kind::AccountRiskStatus => vec![row(
            account.id,
            Some(account.id),
            None,
            wire::account_risk_status(account),
        )],
        Kind::MarginSnapshot => {
            let snap = ex.cash_snapshot_locked(st);
            vec![row(
                account.id,
                Some(account.id),
                None,
                wire::margin_snapshot(
                    account,
                    snap.initial_margin,
                    snap.maintenance_margin,
                    now_us(),
                ),
            )]
        }
        Kind::UserAccountAutoLiq => vec![row(
            account.id,
            Some(account.id),
            None,
            wire::user_account_auto_liq(account),
        )],
        _ => Vec::new(),
    }
}

fn static_rows(ex: &Exchange, kind: Kind, user: &User) -> Vec<Row> {
    let cat = &ex.catalog;
    match kind {
        Kind::User => vec![row(
            user.id,
            None,
            Some(user.name.clone()),
            wire::user(user),
        )],
        Kind::Contract => cat
            .contracts
            .iter()
            .map(|c| {
                row(
                    c.id,
                    Some(c.maturity_id),
                    Some(c.name.clone()),
                    wire::contract(c, cat.product_of(c)),
                )
            })
            .collect(),
        Kind::ContractMaturity => cat
            .contracts
            .iter()
            .map(|c| {
                let p = cat.product_of(c);
                row(
                    c.maturity_id,
                    Some(p.id),
                    None,
                    wire::contract_maturity(c, p),
                )
            })
            .collect(),
        Kind::Product => cat
            .products
            .iter()
            .map(|p| {
                row(
                    p.id,
                    Some(p.exchange_id),
                    Some(p.name.clone()),
                    wire::product(p),
                )
            })
            .collect(),
        Kind::Exchange => cat
            .exchanges
            .iter()
            .map(|n| row(n.id, None, Some(n.name.clone()), wire::named(n)))
            .collect(),
        Kind::Currency => cat
            .currencies
            .iter()
            .map(|n| row(n.id, None, Some(n.name.clone()), wire::currency(n)))
            .collect(),
        Kind::ContractGroup => cat
            .contract_groups
            .iter()
            .map(|n| row(n.id, None, Some(n.name.clone()), wire::named(n)))
            .collect(),
        Kind::OrderStrategyType => cat
            .order_strategy_types
            .iter()
            .map(|n| {
                row(
                    n.id,
                    None,
                    Some(n.name.clone()),
                    wire::order_strategy_type(n),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_static(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::User
            | Kind::Contract
            | Kind::ContractMaturity
            | Kind::Product
            | Kind::Exchange
            | Kind::Currency
            | Kind::ContractGroup
            | Kind::OrderStrategyType
    )
}

/// Every visible row of a kind for `user`, limited to `accounts` when given.
#[must_use]
pub fn rows(ex: &Exchange, kind: Kind, user: &User, accounts: Option<&[Id]>) -> Vec<Row> {
    if is_static(kind) {
        return static_rows(ex, kind, user);
    }
    let mut out = Vec::new();
    for cell in ex.accounts_of(user.id) {
        if accounts.is_some_and(|a| !a.contains(&cell.account.id)) {
            continue;
        }
        let st = cell.state.lock();
        out.extend(account_rows(ex, kind, &cell.account, &st));
    }
    out
}

/// Rows with these ids (dynamic kinds are found through the id index, not by scanning).
#[must_use]
pub fn rows_by_id(ex: &Exchange, kind: Kind, user: &User, ids: &[Id]) -> Vec<Row> {
    if is_static(kind)
        || matches!(
            kind,
            Kind::Account
                | Kind::AccountRiskStatus
                | Kind::MarginSnapshot
                | Kind::UserAccountAutoLiq
        )
    {
        return rows(ex, kind, user, None)
            .into_iter()
            .filter(|r| ids.contains(&r.id))
            .collect();
    }
    let mut accounts = BTreeSet::new();
    for id in ids {
        if let Some((k, account)) = ex.locate(*id)
            && Kind::of(k) == kind
            && user.account_ids.contains(&account)
        {
            accounts.insert(account);
        }
    }
    let accounts: Vec<Id> = accounts.into_iter().collect();
    rows(ex, kind, user, Some(&accounts))
        .into_iter()
        .filter(|r| ids.contains(&r.id))
        .collect()
}

/// Rows whose master is one of `masters`.
#[must_use]
pub fn rows_by_master(ex: &Exchange, kind: Kind, user: &User, masters: &[Id]) -> Vec<Row> {
    let scope: Option<Vec<Id>> = match kind {
        Kind::Order
        | Kind::Position
        | Kind::CashBalance
        | Kind::OrderStrategy
        | Kind::AccountRiskStatus
        | Kind::MarginSnapshot
        | Kind::UserAccountAutoLiq => Some(masters.to_vec()),
        _ if is_static(kind) || kind == Kind::Account => None,
        _ => Some(
            masters
                .iter()
                .filter_map(|m| ex.locate(*m).map(|(_, a)| a))
                .collect(),
        ),
    };
    rows(ex, kind, user, scope.as_deref())
        .into_iter()
        .filter(|r| r.master.is_some_and(|m| masters.contains(&m)))
        .collect()
}

/// The sync snapshot of `accounts` (which must be the user's), with only `types` when given.
#[must_use]
pub fn sync_message(
    ex: &Exchange,
    user: &User,
    snapshots: &[(Account, Map<String, Value>)],
    types: Option<&BTreeSet<String>>,
) -> Value {
    let wanted = |array: &str, entity: &str| {
        types.is_none_or(|t| t.contains(entity) || t.contains(array) || array == "users")
    };
    let mut out = Map::new();
    out.insert("users".into(), Value::Array(vec![wire::user(user)]));
    let account_arrays = [
        Kind::Account,
        Kind::AccountRiskStatus,
        Kind::MarginSnapshot,
        Kind::UserAccountAutoLiq,
        Kind::CashBalance,
        Kind::Position,
        Kind::FillPair,
        Kind::Order,
        Kind::Command,
        Kind::CommandReport,
        Kind::ExecutionReport,
        Kind::OrderVersion,
        Kind::Fill,
        Kind::OrderStrategy,
        Kind::OrderStrategyLink,
    ];
    for kind in account_arrays {
        let (entity, array) = kind.names();
        if !wanted(array, entity) {
            continue;
        }
        let mut items = Vec::new();
        for (_, snap) in snapshots {
            if let Some(Value::Array(a)) = snap.get(array) {
                items.extend(a.iter().cloned());
            }
        }
        out.insert(array.into(), Value::Array(items));
    }
    // Contracts, maturities and products the account data refers to.
    let mut contract_ids = BTreeSet::new();
    for (_, snap) in snapshots {
        for array in ["positions", "orders", "fills", "orderStrategies"] {
            if let Some(Value::Array(a)) = snap.get(array) {
                for e in a {
                    if let Some(id) = e.get("contractId").and_then(Value::as_i64) {
                        contract_ids.insert(id);
                    }
                }
            }
        }
    }
    let cat = &ex.catalog;
    let contracts: Vec<_> = contract_ids
        .iter()
        .filter_map(|id| cat.contract(*id))
        .collect();
    if wanted("contracts", "contract") {
        out.insert(
            "contracts".into(),
            contracts
                .iter()
                .map(|c| wire::contract(c, cat.product_of(c)))
                .collect(),
        );
    }
    if wanted("contractMaturities", "contractMaturity") {
        out.insert(
            "contractMaturities".into(),
            contracts
                .iter()
                .map(|c| wire::contract_maturity(c, cat.product_of(c)))
                .collect(),
        );
    }
    if wanted("products", "product") {
        let mut seen = BTreeSet::new();
        out.insert(
            "products".into(),
            contracts
                .iter()
                .filter(|c| seen.insert(c.product_index))
                .map(|c| wire::product(cat.product_of(c)))
                .collect(),
        );
    }
    let statics: [(&str, &str, Vec<Value>); 4] = [
        (
            "currencies",
            "currency",
            cat.currencies.iter().map(wire::currency).collect(),
        ),
        (
            "exchanges",
            "exchange",
            cat.exchanges.iter().map(wire::named).collect(),
        ),
        (
            "contractGroups",
            "contractGroup",
            cat.contract_groups.iter().map(wire::named).collect(),
        ),
        (
            "orderStrategyTypes",
            "orderStrategyType",
            cat.order_strategy_types
                .iter()
                .map(wire::order_strategy_type)
                .collect(),
        ),
    ];
    for (array, entity, items) in statics {
        if wanted(array, entity) || array == "contractGroups" {
            out.insert(array.into(), Value::Array(items));
        }
    }
    for array in [
        "spreadDefinitions",
        "userProperties",
        "properties",
        "userPlugins",
        "userReadStatuses",
    ] {
        if types.is_none() {
            out.insert(array.into(), Value::Array(Vec::new()));
        }
    }
    Value::Object(out)
}

/// One account's arrays for a sync snapshot (taken under the account lock).
#[must_use]
pub fn account_snapshot(ex: &Exchange, account: &Account, st: &AccountState) -> Map<String, Value> {
    let mut m = Map::new();
    for kind in [
        Kind::Account,
        Kind::AccountRiskStatus,
        Kind::MarginSnapshot,
        Kind::UserAccountAutoLiq,
        Kind::CashBalance,
        Kind::Position,
        Kind::FillPair,
        Kind::Order,
        Kind::Command,
        Kind::CommandReport,
        Kind::ExecutionReport,
        Kind::OrderVersion,
        Kind::Fill,
        Kind::OrderStrategy,
        Kind::OrderStrategyLink,
    ] {
        let (_, array) = kind.names();
        let items: Vec<Value> = account_rows(ex, kind, account, st)
            .into_iter()
            .map(|r| r.json)
            .collect();
        m.insert(array.into(), Value::Array(items));
    }
    m
}
