//! The exchange's entities and enumerations.
//!
//! The vocabulary is the FIX-like one Tradovate exposes (order, order version, command, command
//! report, execution report, fill, fill pair, position, cash balance, order strategy), because
//! it is general enough for every surface: a protocol module renders these structs in its own
//! wire shapes and never mutates them. Timestamps are microseconds since the Unix epoch.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Entity ids: one counter for every dynamic entity, so an id never names two things.
pub type Id = i64;

/// Order side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Action {
    /// +1 for a buy, −1 for a sell.
    #[must_use]
    pub fn sign(self) -> i64 {
        match self {
            Action::Buy => 1,
            Action::Sell => -1,
        }
    }

    /// The other side.
    #[must_use]
    pub fn opposite(self) -> Self {
        match self {
            Action::Buy => Action::Sell,
            Action::Sell => Action::Buy,
        }
    }

    /// Parses `Buy` / `Sell` (any case).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("buy") {
            Some(Action::Buy)
        } else if s.eq_ignore_ascii_case("sell") {
            Some(Action::Sell)
        } else {
            None
        }
    }

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Buy => "Buy",
            Action::Sell => "Sell",
        }
    }
}

/// Order types (the full Tradovate enumeration; the matching engine works the first five).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OrderType {
    /// Market.
    Market,
    /// Limit at `price`.
    Limit,
    /// Stop (market once triggered) at `stopPrice`.
    Stop,
    /// Stop that becomes a limit at `price` once `stopPrice` trades.
    StopLimit,
    /// Stop trailing the best price by a fixed distance.
    TrailingStop,
    /// Trailing stop that becomes a limit (not supported by the simulator).
    TrailingStopLimit,
    /// Market-if-touched (not supported).
    #[serde(rename = "MIT")]
    Mit,
    /// Quote-triggered (not supported).
    #[serde(rename = "QTS")]
    Qts,
}

impl OrderType {
    /// Parses the wire name (any case).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "market" => OrderType::Market,
            "limit" => OrderType::Limit,
            "stop" => OrderType::Stop,
            "stoplimit" => OrderType::StopLimit,
            "trailingstop" => OrderType::TrailingStop,
            "trailingstoplimit" => OrderType::TrailingStopLimit,
            "mit" => OrderType::Mit,
            "qts" => OrderType::Qts,
            _ => return None,
        })
    }
}

/// Time in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TimeInForce {
    /// Until the end of the trading day.
    Day,
    /// Fill or kill.
    #[serde(rename = "FOK")]
    Fok,
    /// Good till canceled.
    #[serde(rename = "GTC")]
    Gtc,
    /// Good till date.
    #[serde(rename = "GTD")]
    Gtd,
    /// Immediate or cancel.
    #[serde(rename = "IOC")]
    Ioc,
}

impl TimeInForce {
    /// Parses the wire name (any case).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "day" => TimeInForce::Day,
            "fok" => TimeInForce::Fok,
            "gtc" => TimeInForce::Gtc,
            "gtd" => TimeInForce::Gtd,
            "ioc" => TimeInForce::Ioc,
            _ => return None,
        })
    }
}

/// Order status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OrdStatus {
    /// Canceled.
    Canceled,
    /// Completed.
    Completed,
    /// Expired.
    Expired,
    /// Completely filled.
    Filled,
    /// Cancel requested.
    PendingCancel,
    /// Accepted, not yet working.
    PendingNew,
    /// Modify requested.
    PendingReplace,
    /// Rejected.
    Rejected,
    /// Suspended (an OSO bracket waiting for its entry, a stop-limit not yet triggered).
    Suspended,
    /// Unknown.
    Unknown,
    /// Working (possibly partially filled).
    Working,
}

impl OrdStatus {
    /// Whether the order can still fill or be changed.
    #[must_use]
    pub fn is_live(self) -> bool {
        matches!(
            self,
            OrdStatus::Working
                | OrdStatus::PendingNew
                | OrdStatus::PendingReplace
                | OrdStatus::PendingCancel
                | OrdStatus::Suspended
        )
    }
}

/// Command type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CommandType {
    /// Cancel.
    Cancel,
    /// Modify.
    Modify,
    /// New order.
    New,
}

/// Command status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CommandStatus {
    /// Sent to execution.
    AtExecution,
    /// Rejected at execution.
    ExecutionRejected,
    /// Stopped.
    ExecutionStopped,
    /// Suspended.
    ExecutionSuspended,
    /// Held.
    OnHold,
    /// Pending.
    Pending,
    /// Pending execution.
    PendingExecution,
    /// Replaced.
    Replaced,
    /// Risk checks passed.
    RiskPassed,
    /// Risk checks failed.
    RiskRejected,
}

/// Execution report type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ExecType {
    /// Canceled.
    Canceled,
    /// Completed.
    Completed,
    /// Done for day.
    DoneForDay,
    /// Expired.
    Expired,
    /// New (accepted, working).
    New,
    /// Status.
    OrderStatus,
    /// Cancel pending.
    PendingCancel,
    /// New pending.
    PendingNew,
    /// Replace pending.
    PendingReplace,
    /// Rejected.
    Rejected,
    /// Replaced (modified).
    Replaced,
    /// Stopped.
    Stopped,
    /// Suspended.
    Suspended,
    /// A trade (fill).
    Trade,
    /// Trade canceled.
    TradeCancel,
    /// Trade corrected.
    TradeCorrect,
}

/// Why a command failed (Tradovate's `failureReason` enumeration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub enum FailureReason {
    AccountClosed,
    AdvancedTrailingStopUnsupported,
    AnotherCommandPending,
    BackMonthProhibited,
    ExecutionProviderNotConfigured,
    ExecutionProviderUnavailable,
    InvalidContract,
    InvalidPrice,
    LiquidationOnly,
    LiquidationOnlyBeforeExpiration,
    MaxOrderQtyIsNotSpecified,
    MaxOrderQtyLimitReached,
    MaxPosLimitMisconfigured,
    MaxPosLimitReached,
    MaxTotalPosLimitReached,
    MultipleAccountPlanRequired,
    NoQuote,
    NotEnoughLiquidity,
    OtherExecutionRelated,
    ParentRejected,
    RiskCheckTimeout,
    SessionClosed,
    Success,
    TooLate,
    TradingLocked,
    TrailingStopNonOrderQtyModify,
    Unauthorized,
    UnknownReason,
    Unsupported,
}

/// Order strategy status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub enum StrategyStatus {
    ActiveStrategy,
    ExecutionFailed,
    ExecutionFinished,
    ExecutionInterrupted,
    InactiveStrategy,
    NotEnoughLiquidity,
    StoppedByUser,
}

/// A CME trade date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TradeDate {
    /// Year.
    pub year: i32,
    /// Month 1–12.
    pub month: u32,
    /// Day 1–31.
    pub day: u32,
}

/// The wire protocol a login (and so each of its accounts) is served through: an account is
/// reachable through one protocol only, while matching, positions and P&L are shared code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// Tradovate's REST and WebSockets (`/v1/…`), the default.
    #[default]
    #[serde(rename = "tradovate")]
    Tradovate,
    /// ProjectX Gateway (`/api/…`, SignalR hubs at `/hubs/…`).
    #[serde(rename = "projectx")]
    ProjectX,
    /// Webull OpenAPI (`/openapi/…`, HMAC-SHA1 signed with an app key and secret).
    #[serde(rename = "webull")]
    Webull,
}

/// A login.
#[derive(Debug, Clone)]
pub struct User {
    /// Id.
    pub id: Id,
    /// Login name.
    pub name: String,
    /// Password (plain: this is a simulator).
    pub password: String,
    /// Required client app id, when API credentials were set for this user.
    pub cid: Option<String>,
    /// Required API secret, when set.
    pub sec: Option<String>,
    /// Accounts of this user.
    pub account_ids: Vec<Id>,
    /// Creation time.
    pub timestamp_us: i64,
    /// The protocol this login and its accounts are served through.
    pub protocol: Protocol,
}

/// A trading account (static part).
#[derive(Debug, Clone)]
pub struct Account {
    /// Id.
    pub id: Id,
    /// Name (`DEMO123456`), what Tradovate calls `accountSpec`.
    pub name: String,
    /// Owner.
    pub user_id: Id,
    /// Creation time.
    pub timestamp_us: i64,
    /// Whether the account may trade.
    pub active: bool,
}

/// An order (its price and quantity live on [`OrderVersion`]).
#[derive(Debug, Clone)]
pub struct Order {
    /// Id.
    pub id: Id,
    /// Account.
    pub account_id: Id,
    /// Contract.
    pub contract_id: Id,
    /// Creation time.
    pub timestamp_us: i64,
    /// Side.
    pub action: Action,
    /// Status.
    pub ord_status: OrdStatus,
    /// Id shared by the orders of one OCO group (the first order's id).
    pub oco_id: Option<Id>,
    /// The order that sent this one (OSO brackets, strategy exits).
    pub parent_id: Option<Id>,
    /// The other order of an OCO pair.
    pub linked_id: Option<Id>,
    /// Placed by an administrator (liquidation with `admin: true`).
    pub admin: bool,
}

/// One version of an order's terms; a modification creates a new version.
#[derive(Debug, Clone)]
pub struct OrderVersion {
    /// Id.
    pub id: Id,
    /// Order.
    pub order_id: Id,
    /// Quantity.
    pub order_qty: u32,
    /// Type.
    pub order_type: OrderType,
    /// Limit price.
    pub price: Option<Decimal>,
    /// Stop price.
    pub stop_price: Option<Decimal>,
    /// Iceberg display quantity.
    pub max_show: Option<u32>,
    /// Trailing distance (signed as sent).
    pub peg_difference: Option<Decimal>,
    /// Time in force.
    pub time_in_force: Option<TimeInForce>,
    /// Expiry (GTD).
    pub expire_time: Option<String>,
    /// Free text.
    pub text: Option<String>,
}

/// A client command (new, modify, cancel).
#[derive(Debug, Clone)]
pub struct Command {
    /// Id.
    pub id: Id,
    /// Order.
    pub order_id: Id,
    /// Time.
    pub timestamp_us: i64,
    /// Client order id.
    pub cl_ord_id: Option<String>,
    /// Type.
    pub command_type: CommandType,
    /// Status.
    pub command_status: CommandStatus,
    /// Sending user.
    pub sender_id: Option<Id>,
    /// Sending session.
    pub user_session_id: Option<Id>,
    /// Activation time as sent.
    pub activation_time: Option<String>,
    /// Tag 50 as sent.
    pub custom_tag50: Option<String>,
    /// Automated (`isAutomated`).
    pub is_automated: bool,
}

/// The outcome of a command.
#[derive(Debug, Clone)]
pub struct CommandReport {
    /// Id.
    pub id: Id,
    /// Command.
    pub command_id: Id,
    /// Time.
    pub timestamp_us: i64,
    /// Status.
    pub command_status: CommandStatus,
    /// Reject reason.
    pub reject_reason: Option<FailureReason>,
    /// Text.
    pub text: Option<String>,
    /// Order status after the command.
    pub ord_status: Option<OrdStatus>,
}

/// An execution report.
#[derive(Debug, Clone)]
pub struct ExecutionReport {
    /// Id.
    pub id: Id,
    /// Command.
    pub command_id: Id,
    /// Account.
    pub account_id: Id,
    /// Contract.
    pub contract_id: Id,
    /// Time.
    pub timestamp_us: i64,
    /// Trade date.
    pub trade_date: TradeDate,
    /// Order.
    pub order_id: Id,
    /// Type.
    pub exec_type: ExecType,
    /// Order status.
    pub ord_status: OrdStatus,
    /// Side.
    pub action: Action,
    /// Cumulative filled quantity.
    pub cum_qty: u32,
    /// Average fill price.
    pub avg_px: Option<Decimal>,
    /// Quantity of this fill.
    pub last_qty: Option<u32>,
    /// Price of this fill.
    pub last_px: Option<Decimal>,
    /// Reject reason.
    pub reject_reason: Option<FailureReason>,
    /// Text.
    pub text: Option<String>,
}

/// A fill.
#[derive(Debug, Clone)]
pub struct Fill {
    /// Id.
    pub id: Id,
    /// Order.
    pub order_id: Id,
    /// Contract.
    pub contract_id: Id,
    /// Time.
    pub timestamp_us: i64,
    /// Trade date.
    pub trade_date: TradeDate,
    /// Side.
    pub action: Action,
    /// Quantity.
    pub qty: u32,
    /// Price.
    pub price: Decimal,
    /// Active (not busted).
    pub active: bool,
    /// Quantity of this fill already paired against opposite fills.
    pub finally_paired: u32,
    /// Commission charged for this fill (dollars).
    pub commission: Decimal,
}

/// A buy fill paired against a sell fill (FIFO) within one position.
#[derive(Debug, Clone)]
pub struct FillPair {
    /// Id.
    pub id: Id,
    /// Position.
    pub position_id: Id,
    /// Buy fill.
    pub buy_fill_id: Id,
    /// Sell fill.
    pub sell_fill_id: Id,
    /// Quantity.
    pub qty: u32,
    /// Buy price.
    pub buy_price: Decimal,
    /// Sell price.
    pub sell_price: Decimal,
    /// Active.
    pub active: bool,
}

/// A position in one contract.
#[derive(Debug, Clone)]
pub struct Position {
    /// Id.
    pub id: Id,
    /// Account.
    pub account_id: Id,
    /// Contract.
    pub contract_id: Id,
    /// Last change.
    pub timestamp_us: i64,
    /// Trade date.
    pub trade_date: TradeDate,
    /// Net quantity: > 0 long, < 0 short.
    pub net_pos: i64,
    /// Average price of the open quantity.
    pub net_price: Option<Decimal>,
    /// Contracts bought today.
    pub bought: u64,
    /// Σ qty × price of today's buys.
    pub bought_value: Decimal,
    /// Contracts sold today.
    pub sold: u64,
    /// Σ qty × price of today's sells.
    pub sold_value: Decimal,
    /// Net position at the start of the trade date.
    pub prev_pos: i64,
    /// Average price at the start of the trade date.
    pub prev_price: Option<Decimal>,
}

/// An account's cash balance.
#[derive(Debug, Clone)]
pub struct CashBalance {
    /// Id.
    pub id: Id,
    /// Account.
    pub account_id: Id,
    /// Last change.
    pub timestamp_us: i64,
    /// Trade date.
    pub trade_date: TradeDate,
    /// Currency (1 = USD).
    pub currency_id: Id,
    /// Cash: starting balance + realized P&L − commissions.
    pub amount: Decimal,
    /// Realized P&L of the trade date (gross of commissions).
    pub realized_pnl: Decimal,
    /// Realized P&L of the week.
    pub week_realized_pnl: Decimal,
}

/// A server-side order strategy (multibracket).
#[derive(Debug, Clone)]
pub struct OrderStrategy {
    /// Id.
    pub id: Id,
    /// Account.
    pub account_id: Id,
    /// Creation time.
    pub timestamp_us: i64,
    /// Contract.
    pub contract_id: Id,
    /// Strategy type (2 = multibracket).
    pub order_strategy_type_id: Id,
    /// Entry side.
    pub action: Action,
    /// Parameters as sent (a JSON string).
    pub params: String,
    /// Client uuid.
    pub uuid: Option<String>,
    /// Status.
    pub status: StrategyStatus,
    /// Failure text.
    pub failure_message: Option<String>,
    /// Sending user.
    pub sender_id: Option<Id>,
    /// Tag 50.
    pub custom_tag50: Option<String>,
    /// Sending session.
    pub user_session_id: Option<Id>,
}

/// Links an order to the strategy that manages it.
#[derive(Debug, Clone)]
pub struct OrderStrategyLink {
    /// Id.
    pub id: Id,
    /// Strategy.
    pub order_strategy_id: Id,
    /// Order.
    pub order_id: Id,
    /// Role label (`entry`, `target1`, `stop1`, …).
    pub label: String,
}

/// Created, updated or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChangeKind {
    /// A new entity.
    Created,
    /// A changed entity.
    Updated,
    /// A removed entity.
    Deleted,
}

/// One entity, as carried by a change event.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Entity {
    Account(Account),
    Order(Order),
    OrderVersion(OrderVersion),
    Command(Command),
    CommandReport(CommandReport),
    ExecutionReport(ExecutionReport),
    Fill(Fill),
    FillPair(FillPair),
    Position(Position),
    CashBalance(CashBalance),
    OrderStrategy(OrderStrategy),
    OrderStrategyLink(OrderStrategyLink),
}

/// One change of one entity.
#[derive(Debug, Clone)]
pub struct Change {
    /// Kind.
    pub kind: ChangeKind,
    /// The entity after the change.
    pub entity: Entity,
}

impl Change {
    /// A `Created` change.
    #[must_use]
    pub fn created(entity: Entity) -> Self {
        Change {
            kind: ChangeKind::Created,
            entity,
        }
    }

    /// An `Updated` change.
    #[must_use]
    pub fn updated(entity: Entity) -> Self {
        Change {
            kind: ChangeKind::Updated,
            entity,
        }
    }
}
