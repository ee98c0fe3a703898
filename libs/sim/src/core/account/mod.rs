//! One account's state and every operation on it, by concern: the order [`lifecycle`],
//! [`matching`], the position [`ledger`] (fills, FIFO fill pairs, cash), OCO/OSO [`links`] and
//! multibracket [`strategies`]. This module holds the state and the [`Op`] they all work on; a
//! protocol surface (Tradovate, ProjectX, a next venue) calls the operations and adds none.
//!
//! An [`Op`] runs under the account's lock and records every entity change in `batch`, in the
//! order a client sees them (order → command → command report → execution report → order
//! version → fill → fill pair → position → cash balance); the caller delivers the batch to the
//! account's listeners before releasing the lock, so each listener sees one account's changes
//! in the order they happened.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rust_decimal::Decimal;

mod ledger;
mod lifecycle;
mod links;
mod matching;
mod strategies;

use super::model::{
    Action, CashBalance, Change, Command, CommandReport, CommandStatus, CommandType, Entity,
    ExecType, ExecutionReport, FailureReason, Fill, FillPair, Id, OrdStatus, Order, OrderStrategy,
    OrderStrategyLink, OrderType, OrderVersion, Position, StrategyStatus, TimeInForce, TradeDate,
};
use super::strategy::{BracketSpec, StrategySpec};
use super::{EntityKind, EventSink, Exchange, MatchingSettings, Rejection};

/// How many matching passes one price event may cascade through (fills that trigger brackets
/// that fill…) before the engine stops and waits for the next price.
const MAX_PASSES: usize = 16;

/// The terms of a new order.
#[derive(Debug, Clone, Default)]
pub struct OrderSpec {
    /// Side.
    pub action: Option<Action>,
    /// Quantity.
    pub qty: u32,
    /// Type.
    pub order_type: Option<OrderType>,
    /// Limit price.
    pub price: Option<Decimal>,
    /// Stop price.
    pub stop_price: Option<Decimal>,
    /// Trailing distance.
    pub peg_difference: Option<Decimal>,
    /// Iceberg display size (recorded, not modelled).
    pub max_show: Option<u32>,
    /// Time in force.
    pub tif: Option<TimeInForce>,
    /// GTD expiry (recorded).
    pub expire_time: Option<String>,
    /// Free text.
    pub text: Option<String>,
    /// Client order id.
    pub cl_ord_id: Option<String>,
    /// Activation time (recorded).
    pub activation_time: Option<String>,
    /// Tag 50.
    pub custom_tag50: Option<String>,
    /// Automated.
    pub is_automated: bool,
}

/// A change to a working order.
#[derive(Debug, Clone, Default)]
pub struct ModifySpec {
    /// New quantity (total, including what has filled).
    pub qty: u32,
    /// Type (must be a type the order can become).
    pub order_type: Option<OrderType>,
    /// New limit price.
    pub price: Option<Decimal>,
    /// New stop price.
    pub stop_price: Option<Decimal>,
    /// New trailing distance.
    pub peg_difference: Option<Decimal>,
    /// New time in force.
    pub tif: Option<TimeInForce>,
    /// Client order id.
    pub cl_ord_id: Option<String>,
    /// Text.
    pub text: Option<String>,
    /// Tag 50.
    pub custom_tag50: Option<String>,
    /// Activation time.
    pub activation_time: Option<String>,
    /// Automated.
    pub is_automated: bool,
}

/// The role of an order inside a strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The entry.
    Entry,
    /// Take-profit of bracket n (0-based).
    Target(usize),
    /// Stop of bracket n (0-based).
    Stop(usize),
}

/// Matching state of a live order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    /// `false` while an OSO bracket waits for its entry to fill.
    pub active: bool,
    /// A stop-limit whose stop has traded.
    pub triggered: bool,
    /// Evaluated once already: a resting limit fills at its own price.
    pub rested: bool,
    /// Trailing distance of a trailing stop.
    pub trail_distance: Option<Decimal>,
}

/// An order with everything the exchange tracks about it.
#[derive(Debug, Clone)]
pub struct OrderRec {
    /// The order entity.
    pub order: Order,
    /// Its latest version.
    pub version: OrderVersion,
    /// Client order id of the `New` command.
    pub cl_ord_id: Option<String>,
    /// `isAutomated` of the `New` command.
    pub is_automated: bool,
    /// Filled so far.
    pub cum_qty: u32,
    /// Σ qty × price of its fills.
    pub fill_value: Decimal,
    /// When the request that created it arrived (µs).
    pub received_us: i64,
    /// When the exchange finished handling that request (µs).
    pub handled_us: i64,
    /// Last change (µs).
    pub updated_us: i64,
    /// The `New` command.
    pub new_command_id: Id,
    /// OSO brackets this order sends.
    pub children: Vec<Id>,
    /// OCO share: the quantity this order and its linked partner exit together.
    pub oco_base: Option<u32>,
    /// Strategy membership.
    pub strategy: Option<(Id, Role)>,
    pub(crate) live: Option<Live>,
}

impl OrderRec {
    /// Remaining quantity.
    #[must_use]
    pub fn remaining(&self) -> u32 {
        self.version.order_qty.saturating_sub(self.cum_qty)
    }

    /// Average fill price.
    #[must_use]
    pub fn avg_px(&self) -> Option<Decimal> {
        (self.cum_qty > 0).then(|| self.fill_value / Decimal::from(self.cum_qty))
    }

    fn is_live(&self) -> bool {
        self.live.is_some()
    }
}

#[derive(Debug, Clone)]
struct Lot {
    fill_id: Id,
    qty: u32,
    price: Decimal,
}

/// A position with its open lots.
#[derive(Debug, Clone)]
pub struct PositionRec {
    /// The entity.
    pub pos: Position,
    lots: VecDeque<Lot>,
    /// Realized P&L of this position (dollars, gross).
    pub realized: Decimal,
}

/// A running multibracket strategy.
#[derive(Debug, Clone)]
pub struct StrategyRec {
    /// The entity.
    pub entity: OrderStrategy,
    /// The checked parameters.
    pub spec: StrategySpec,
    /// Contract index in the catalog.
    pub contract_index: usize,
    /// Entry order.
    pub entry_id: Id,
    /// Per-bracket runtime.
    pub brackets: Vec<BracketRun>,
}

/// Runtime of one bracket.
#[derive(Debug, Clone, Default)]
pub struct BracketRun {
    /// Contracts of the entry allotted to this bracket so far.
    pub allocated: u32,
    /// Entry price the offsets apply to.
    pub reference: Decimal,
    /// Target order.
    pub target_id: Option<Id>,
    /// Stop order.
    pub stop_id: Option<Id>,
    /// Best price since the trail started (auto trail).
    pub best: Option<Decimal>,
    /// Break-even done.
    pub break_even_done: bool,
}

/// Everything one account holds.
pub struct AccountState {
    /// Orders by id.
    pub orders: BTreeMap<Id, OrderRec>,
    /// Order versions, oldest first.
    pub versions: Vec<OrderVersion>,
    /// Commands.
    pub commands: Vec<Command>,
    /// Command reports.
    pub command_reports: Vec<CommandReport>,
    /// Execution reports.
    pub execution_reports: Vec<ExecutionReport>,
    /// Fills.
    pub fills: Vec<Fill>,
    /// Fill pairs.
    pub fill_pairs: Vec<FillPair>,
    /// Positions by contract id.
    pub positions: BTreeMap<Id, PositionRec>,
    /// Cash.
    pub cash: CashBalance,
    /// Strategies by id.
    pub strategies: BTreeMap<Id, StrategyRec>,
    /// Strategy links.
    pub links: Vec<OrderStrategyLink>,
    /// Ids of the orders that can still fill (what matching looks at).
    pub live_ids: std::collections::BTreeSet<Id>,
    pub(crate) listeners: Vec<Arc<dyn EventSink>>,
}

impl std::fmt::Debug for AccountState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountState")
            .field("orders", &self.orders.len())
            .field("fills", &self.fills.len())
            .field("positions", &self.positions.len())
            .finish_non_exhaustive()
    }
}

impl AccountState {
    /// A fresh account with `balance` dollars.
    #[must_use]
    pub fn new(cash: CashBalance) -> Self {
        AccountState {
            orders: BTreeMap::new(),
            versions: Vec::new(),
            commands: Vec::new(),
            command_reports: Vec::new(),
            execution_reports: Vec::new(),
            fills: Vec::new(),
            fill_pairs: Vec::new(),
            positions: BTreeMap::new(),
            cash,
            strategies: BTreeMap::new(),
            links: Vec::new(),
            live_ids: std::collections::BTreeSet::new(),
            listeners: Vec::new(),
        }
    }

    /// Whether any order or strategy on this contract still needs price updates.
    #[must_use]
    pub fn watches(&self, contract_id: Id) -> bool {
        self.live_ids.iter().any(|id| {
            self.orders
                .get(id)
                .is_some_and(|o| o.order.contract_id == contract_id)
        })
    }

    /// The fill with this id.
    #[must_use]
    pub fn fill(&self, id: Id) -> Option<&Fill> {
        find_by_id(&self.fills, id, |f| f.id)
    }

    fn fill_mut(&mut self, id: Id) -> Option<&mut Fill> {
        let i = self.fills.binary_search_by_key(&id, |f| f.id).ok()?;
        self.fills.get_mut(i)
    }
}

/// Binary search in an id-ordered vector.
pub fn find_by_id<T>(v: &[T], id: Id, key: impl Fn(&T) -> Id) -> Option<&T> {
    v.binary_search_by_key(&id, key).ok().map(|i| &v[i])
}

/// One operation on one account, under its lock.
pub struct Op<'a> {
    pub(crate) ex: &'a Exchange,
    pub(crate) st: &'a mut AccountState,
    pub(crate) account_id: Id,
    pub(crate) now: i64,
    pub(crate) td: TradeDate,
    pub(crate) sender: Option<Id>,
    pub(crate) session: Option<Id>,
    pub(crate) received_us: i64,
    pub(crate) m: MatchingSettings,
    /// The changes, in order.
    pub batch: Vec<Change>,
    pub(crate) touched: Vec<usize>,
    /// Orders created by this operation (their `handled_us` is set when it ends).
    pub(crate) created: Vec<Id>,
}

/// What a client sent along with a command.
#[derive(Debug, Clone, Default)]
struct Sent {
    cl_ord_id: Option<String>,
    activation_time: Option<String>,
    custom_tag50: Option<String>,
    is_automated: bool,
}

enum Trigger {
    Fill(u32, Decimal),
    Reject(String),
    None,
}

impl Op<'_> {
    fn id(&self, kind: EntityKind) -> Id {
        self.ex.alloc_id(kind, self.account_id)
    }

    fn push(&mut self, c: Change) {
        self.batch.push(c);
    }

    fn touch(&mut self, contract_index: usize) {
        if !self.touched.contains(&contract_index) {
            self.touched.push(contract_index);
        }
    }

    fn market_price(&self, contract_index: usize) -> Decimal {
        self.ex.markets[contract_index].price()
    }

    fn contract_index(&self, contract_id: Id) -> usize {
        self.ex.catalog.contract(contract_id).map_or(0, |c| c.index)
    }

    fn tick(&self, contract_index: usize) -> Decimal {
        self.ex.markets[contract_index].tick_size
    }

    fn value_per_point(&self, contract_id: Id) -> Decimal {
        self.ex
            .catalog
            .contract(contract_id)
            .map_or(Decimal::ONE, |c| {
                self.ex.catalog.product_of(c).value_per_point()
            })
    }
}

/// The text of a stop on the wrong side of the market (checked on entry and when triggered).
fn wrong_side(action: Action, stop: Decimal, price: Decimal) -> String {
    match action {
        Action::Buy => format!("Buy stop price {stop} must be above the last price {price}"),
        Action::Sell => format!("Sell stop price {stop} must be below the last price {price}"),
    }
}
