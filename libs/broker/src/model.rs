//! Broker-neutral data the [`crate::Broker`] trait returns: identifiers, accounts, contracts,
//! positions, orders, fills, P&L, acknowledgements. Identifiers are the broker's own, as text
//! (Tradovate's are integers, ProjectX contract ids are strings), so no adapter detail leaks
//! into the trait. Prices and money are exact decimals.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use jt_domain::types::{Contracts, Side};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<i64> for $name {
            fn from(v: i64) -> Self {
                Self(v.to_string())
            }
        }

        impl From<&str> for $name {
            fn from(v: &str) -> Self {
                Self(v.to_string())
            }
        }

        impl From<String> for $name {
            fn from(v: String) -> Self {
                Self(v)
            }
        }
    };
}

text_id!(
    /// A broker (sub-)account id, as the broker spells it.
    AccountId
);
text_id!(
    /// A broker contract id.
    ContractId
);
text_id!(
    /// A broker order id.
    OrderId
);
text_id!(
    /// A broker fill (execution) id.
    FillId
);

/// The kind of broker behind an account or an adapter — one name for the idea everywhere: the
/// store keeps it in `broker_accounts.broker` as the text of [`BrokerKind::as_str`] (with the
/// `sea-orm` feature it is that column's type), adapters report it, metrics label by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "sea-orm",
    derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum),
    sea_orm(rs_type = "String", db_type = "Text")
)]
pub enum BrokerKind {
    /// Tradovate.
    #[serde(rename = "tradovate")]
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "tradovate"))]
    Tradovate,
    /// NinjaTrader brokerage (the Tradovate backend with its own hosts).
    #[serde(rename = "ninjatrader")]
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "ninjatrader"))]
    NinjaTrader,
    /// ProjectX Gateway (TopstepX and other prop firms).
    #[serde(rename = "projectx")]
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "projectx"))]
    ProjectX,
    /// Webull.
    #[serde(rename = "webull")]
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "webull"))]
    Webull,
    /// The built-in simulator.
    #[serde(rename = "sim")]
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "sim"))]
    Sim,
}

impl BrokerKind {
    /// Every kind.
    pub const ALL: &'static [BrokerKind] = &[
        Self::Tradovate,
        Self::NinjaTrader,
        Self::ProjectX,
        Self::Webull,
        Self::Sim,
    ];

    /// The stable lower-case name (stored, serialized, a metric label).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tradovate => "tradovate",
            Self::NinjaTrader => "ninjatrader",
            Self::ProjectX => "projectx",
            Self::Webull => "webull",
            Self::Sim => "sim",
        }
    }
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BrokerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a broker kind"))
    }
}

/// How a session call obtained the token it leaves in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionOutcome {
    /// A live session was already there and is not due for renewal: nothing was sent.
    Reused,
    /// The live session was renewed (no new session was created).
    Renewed,
    /// A new session was started with the credentials.
    LoggedIn,
}

/// The session a login or renewal left in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// What the call did.
    pub outcome: SessionOutcome,
    /// When the token was obtained (its age starts here).
    pub obtained_at: DateTime<Utc>,
    /// When the broker says the token expires.
    pub expires_at: DateTime<Utc>,
    /// The broker's user id, when it reports one.
    pub user_id: Option<String>,
}

/// How much of a login's request budget is left (the broker's limits are per token/user and
/// shared by every account on it: count a signal's calls across all accounts before sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallBudget {
    /// Calls made in the current window.
    pub used: u32,
    /// Calls allowed in the window.
    pub limit: u32,
    /// The window length.
    #[serde(with = "crate::error::duration_ms")]
    pub window: Duration,
}

impl CallBudget {
    /// Calls still available in the window.
    #[must_use]
    pub fn remaining(&self) -> u32 {
        self.limit.saturating_sub(self.used)
    }
}

/// One broker account reachable with this login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// The broker's account id.
    pub id: AccountId,
    /// The account's name (Tradovate's `accountSpec`, e.g. `DEMO12345`).
    pub name: String,
    /// Whether the broker reports it active.
    pub active: bool,
}

/// The platform's name of a contract (what the store keys positions by and quotes are
/// published under): the broker's name when reported (`MNQZ6`), else its id.
#[must_use]
pub fn contract_key(symbol: Option<&str>, id: &str) -> String {
    symbol.filter(|s| !s.is_empty()).unwrap_or(id).to_owned()
}

/// A tradable contract at the broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Contract {
    /// The broker's contract id.
    pub id: ContractId,
    /// The broker's contract name (`MNQZ5`).
    pub name: String,
    /// The instrument root (`MNQ`), the key of `jt_domain::instrument`.
    pub root: String,
}

/// A position at the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionReport {
    /// Account holding it.
    pub account: AccountId,
    /// Contract.
    pub contract: ContractId,
    /// Contract name, when known.
    pub symbol: Option<String>,
    /// Signed net quantity: > 0 long, < 0 short, 0 flat.
    pub net_qty: i64,
    /// Average price of the net position, when the broker reports one.
    pub avg_price: Option<Decimal>,
    /// When the broker last changed it.
    pub timestamp: Option<DateTime<Utc>>,
}

/// The type of a reported order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// Market.
    Market,
    /// Limit.
    Limit,
    /// Stop.
    Stop,
    /// Stop-limit.
    StopLimit,
    /// Trailing stop.
    TrailingStop,
    /// Trailing stop-limit.
    TrailingStopLimit,
    /// Any other type (market-if-touched, …).
    Other,
}

/// The status of a reported order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Sent, not yet acknowledged by the exchange.
    Pending,
    /// Resting at the exchange.
    Working,
    /// Completely filled.
    Filled,
    /// Canceled.
    Canceled,
    /// Rejected.
    Rejected,
    /// Expired.
    Expired,
    /// Suspended (for example a bracket leg waiting for its entry to fill).
    Suspended,
    /// A cancel or modify is pending.
    PendingChange,
    /// The broker does not know.
    Unknown,
}

impl OrderStatus {
    /// Whether the order may still fill (working, pending, suspended, being changed).
    #[must_use]
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Working | Self::Suspended | Self::PendingChange
        )
    }
}

/// An order at the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReport {
    /// The broker's order id.
    pub id: OrderId,
    /// The client order id we sent, when the broker reports it.
    pub client_order_id: Option<String>,
    /// Account.
    pub account: AccountId,
    /// Contract, when known.
    pub contract: Option<ContractId>,
    /// Contract name, when known.
    pub symbol: Option<String>,
    /// Buy or sell.
    pub side: Side,
    /// Order type, when known.
    pub order_type: Option<OrderType>,
    /// Quantity, when known.
    pub qty: Option<Contracts>,
    /// Limit price.
    pub price: Option<Decimal>,
    /// Stop price.
    pub stop_price: Option<Decimal>,
    /// Status.
    pub status: OrderStatus,
    /// Filled quantity, when known.
    pub filled_qty: Option<Contracts>,
    /// Average fill price, when known.
    pub avg_fill_price: Option<Decimal>,
    /// The broker's strategy/bracket this order belongs to, when any.
    pub parent: Option<String>,
    /// The other order of its one-cancels-other pair, when the broker reports one (a bracket's
    /// take-profit and its stop): a fill of one reduces the other.
    #[serde(default)]
    pub linked: Option<OrderId>,
    /// The broker's text for a rejection, when any.
    pub reject_reason: Option<String>,
    /// When the broker created it.
    pub timestamp: Option<DateTime<Utc>>,
}

impl OrderReport {
    /// Whether it is still working on `contract`.
    #[must_use]
    pub fn is_working_on(&self, contract: &ContractId) -> bool {
        self.contract.as_ref() == Some(contract) && self.status.is_open()
    }
}

/// One fill (execution) at the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillReport {
    /// The broker's fill id (unique per broker; replay filtering keys on it).
    pub id: FillId,
    /// The order it filled.
    pub order_id: OrderId,
    /// Account.
    pub account: AccountId,
    /// Contract.
    pub contract: ContractId,
    /// Contract name, when known.
    pub symbol: Option<String>,
    /// Buy or sell.
    pub side: Side,
    /// Filled quantity.
    pub qty: Contracts,
    /// Fill price.
    pub price: Decimal,
    /// When it happened (broker clock).
    pub timestamp: DateTime<Utc>,
    /// The broker's trading date, when reported.
    pub trade_date: Option<NaiveDate>,
    /// Client order id of the order, when known (copy-loop prevention keys on its prefix).
    pub client_order_id: Option<String>,
}

/// A cash balance change (Tradovate pushes these; max-loss monitoring reads them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashBalanceReport {
    /// Account.
    pub account: AccountId,
    /// Cash amount.
    pub amount: Decimal,
    /// Realized P&L of the trading day, when reported.
    pub realized_pnl: Option<Decimal>,
    /// Realized P&L of the week, when reported.
    pub week_realized_pnl: Option<Decimal>,
    /// When the broker changed it.
    pub timestamp: Option<DateTime<Utc>>,
}

/// Account P&L as the broker computes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPnl {
    /// Account.
    pub account: AccountId,
    /// Realized P&L of the trading day.
    pub realized: Decimal,
    /// Open (unrealized) P&L.
    pub open: Decimal,
    /// Net liquidation value, when reported.
    pub net_liq: Option<Decimal>,
    /// Total cash value, when reported.
    pub cash: Option<Decimal>,
    /// When we read it.
    pub as_of: DateTime<Utc>,
}

/// An account as the broker has it now — what a reconciler compares with its records — read
/// in as few calls as the venue allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    /// Account.
    pub account: AccountId,
    /// Its positions (flat ones may be included with `net_qty == 0`).
    pub positions: Vec<PositionReport>,
    /// Its working (open) orders.
    pub working_orders: Vec<OrderReport>,
    /// Cash and P&L, where the venue reads them for one more call (Tradovate's cash balance
    /// snapshot): `None` when the venue does not read them with a snapshot (ask
    /// `Broker::account_pnl`), `Some(Err)` when that read failed — the positions and orders
    /// still stand, and a failed figure is never shown as zero.
    pub pnl: Option<Result<AccountPnl, BrokerError>>,
    /// When the reads started (a change after this may be missing).
    pub as_of: DateTime<Utc>,
}

impl AccountSnapshot {
    /// The open position on `contract`, if any.
    #[must_use]
    pub fn position(&self, contract: &ContractId) -> Option<&PositionReport> {
        self.positions
            .iter()
            .find(|p| &p.contract == contract && p.net_qty != 0)
    }

    /// The working orders on `contract`.
    pub fn working_on<'a>(
        &'a self,
        contract: &'a ContractId,
    ) -> impl Iterator<Item = &'a OrderReport> + 'a {
        self.working_orders
            .iter()
            .filter(move |o| o.is_working_on(contract))
    }
}

/// A placed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAck {
    /// The broker's order id.
    pub order_id: OrderId,
    /// The client order id sent with it.
    pub client_order_id: String,
    /// `true` when the answer was lost (timeout, reset) and the order was found by its client
    /// order id afterwards.
    pub recovered: bool,
}

/// A placed bracket (entry with its protective orders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BracketAck {
    /// The client order id of the entry.
    pub client_order_id: String,
    /// The broker's id of the bracket as a whole (Tradovate order strategy id), when any.
    pub bracket_id: Option<String>,
    /// The entry order id, when the broker reported it.
    pub entry_order_id: Option<OrderId>,
    /// See [`OrderAck::recovered`].
    pub recovered: bool,
}

/// What closing one contract's position did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseOutcome {
    /// The closing order, or `None` when the account was already flat on that contract.
    pub order_id: Option<OrderId>,
}

/// One part of a flatten or batch cancel that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    /// What was attempted (`cancel 123`, `close MNQZ5`).
    pub target: String,
    /// Why it failed.
    pub error: BrokerError,
}

/// What flattening an account (cancel every working order, close every position) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlattenReport {
    /// Account.
    pub account: AccountId,
    /// Orders canceled.
    pub canceled: Vec<OrderId>,
    /// Contracts closed, with the closing order.
    pub closed: Vec<(ContractId, Option<OrderId>)>,
    /// What failed; empty when the account is flat with nothing working.
    pub failures: Vec<ItemFailure>,
}

impl FlattenReport {
    /// Whether every part succeeded.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What a batch cancel did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CancelReport {
    /// Orders canceled.
    pub canceled: Vec<OrderId>,
    /// What failed.
    pub failures: Vec<ItemFailure>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_kind_reads_back_from_its_name_and_serializes_as_stored() {
        for kind in BrokerKind::ALL {
            assert_eq!(kind.as_str().parse::<BrokerKind>(), Ok(*kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().into())
            );
        }
        assert!("ninja_trader".parse::<BrokerKind>().is_err());
    }
}
