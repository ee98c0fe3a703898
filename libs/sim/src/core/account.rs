//! One account's state and every operation on it: order lifecycle, matching, fills, positions
//! (FIFO fill pairs), cash, OCO/OSO links and multibracket strategies.
//!
//! An [`Op`] runs under the account's lock and records every entity change in `batch`, in the
//! order a client sees them (order → command → command report → execution report → order
//! version → fill → fill pair → position → cash balance); the caller delivers the batch to the
//! account's listeners before releasing the lock, so each listener sees one account's changes
//! in the order they happened.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rust_decimal::Decimal;

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

    // ---------------------------------------------------------------- validation

    /// Checks a new order's terms against the market (synchronous rejections).
    ///
    /// # Errors
    /// The failure reason and text Tradovate answers in a `PlaceOrderResult`.
    pub fn check_terms(
        &self,
        contract_index: usize,
        order_type: OrderType,
        price: Option<Decimal>,
        stop_price: Option<Decimal>,
        peg: Option<Decimal>,
    ) -> Result<(), Rejection> {
        let tick = self.tick(contract_index);
        let need = |v: Option<Decimal>, what: &str| -> Result<Decimal, Rejection> {
            v.ok_or_else(|| {
                Rejection::new(
                    FailureReason::InvalidPrice,
                    format!("{what} is required for a {order_type:?} order"),
                )
            })
        };
        let grid = |v: Decimal, what: &str| -> Result<(), Rejection> {
            if v <= Decimal::ZERO {
                return Err(Rejection::new(
                    FailureReason::InvalidPrice,
                    format!("{what} {v} must be positive"),
                ));
            }
            if !(v % tick).is_zero() {
                return Err(Rejection::new(
                    FailureReason::InvalidPrice,
                    format!("{what} {v} is not a multiple of the tick size {tick}"),
                ));
            }
            Ok(())
        };
        match order_type {
            OrderType::Market => Ok(()),
            OrderType::Limit => grid(need(price, "price")?, "price"),
            OrderType::Stop => grid(need(stop_price, "stopPrice")?, "stopPrice"),
            OrderType::StopLimit => {
                grid(need(price, "price")?, "price")?;
                grid(need(stop_price, "stopPrice")?, "stopPrice")
            }
            OrderType::TrailingStop => {
                if let Some(s) = stop_price {
                    grid(s, "stopPrice")?;
                }
                match (stop_price, peg) {
                    (None, None) => Err(Rejection::new(
                        FailureReason::InvalidPrice,
                        "a TrailingStop needs stopPrice or pegDifference",
                    )),
                    (_, Some(p)) if (p.abs() % tick) != Decimal::ZERO || p.is_zero() => {
                        Err(Rejection::new(
                            FailureReason::InvalidPrice,
                            format!(
                                "pegDifference {p} must be a non-zero multiple of the tick size {tick}"
                            ),
                        ))
                    }
                    _ => Ok(()),
                }
            }
            OrderType::TrailingStopLimit => Err(Rejection::new(
                FailureReason::AdvancedTrailingStopUnsupported,
                "TrailingStopLimit orders are not supported",
            )),
            OrderType::Mit | OrderType::Qts => Err(Rejection::new(
                FailureReason::Unsupported,
                format!("{order_type:?} orders are not supported"),
            )),
        }
    }

    // ---------------------------------------------------------------- order creation

    /// Creates an order (entity, command, report, execution report, version) and, unless
    /// `suspended`, makes it work and matches it at once.
    ///
    /// Terms must have been checked with [`Op::check_terms`].
    pub fn create_order(
        &mut self,
        contract_index: usize,
        spec: &OrderSpec,
        suspended: bool,
        parent_id: Option<Id>,
        admin: bool,
    ) -> Id {
        let contract_id = self.ex.catalog.contracts[contract_index].id;
        let action = spec.action.unwrap_or(Action::Buy);
        let order_type = spec.order_type.unwrap_or(OrderType::Market);
        let order_id = self.id(EntityKind::Order);
        let order = Order {
            id: order_id,
            account_id: self.account_id,
            contract_id,
            timestamp_us: self.now,
            action,
            ord_status: OrdStatus::PendingNew,
            oco_id: None,
            parent_id,
            linked_id: None,
            admin,
        };
        self.push(Change::created(Entity::Order(order.clone())));
        let command_id = self.command(
            order_id,
            CommandType::New,
            if suspended {
                CommandStatus::OnHold
            } else {
                CommandStatus::AtExecution
            },
            Some(Sent {
                cl_ord_id: spec.cl_ord_id.clone(),
                activation_time: spec.activation_time.clone(),
                custom_tag50: spec.custom_tag50.clone(),
                is_automated: spec.is_automated,
            }),
        );
        let status = if suspended {
            OrdStatus::Suspended
        } else {
            OrdStatus::Working
        };
        self.command_report(command_id, command_status_of(status), None, None, status);
        let version = OrderVersion {
            id: 0,
            order_id,
            order_qty: spec.qty,
            order_type,
            price: spec.price,
            stop_price: spec.stop_price,
            max_show: spec.max_show,
            peg_difference: spec.peg_difference,
            time_in_force: spec.tif,
            expire_time: spec.expire_time.clone(),
            text: spec.text.clone(),
        };
        let mut rec = OrderRec {
            order,
            version,
            cl_ord_id: spec.cl_ord_id.clone(),
            is_automated: spec.is_automated,
            cum_qty: 0,
            fill_value: Decimal::ZERO,
            received_us: self.received_us,
            handled_us: self.now,
            updated_us: self.now,
            new_command_id: command_id,
            children: Vec::new(),
            oco_base: None,
            strategy: None,
            live: Some(Live {
                active: !suspended,
                triggered: false,
                rested: false,
                trail_distance: None,
            }),
        };
        let exec = if suspended {
            ExecType::Suspended
        } else {
            ExecType::New
        };
        self.st.orders.insert(order_id, rec.clone());
        self.st.live_ids.insert(order_id);
        self.created.push(order_id);
        self.execution_report(order_id, command_id, exec, status, None, None, None);
        let version_id = self.id(EntityKind::OrderVersion);
        rec.version.id = version_id;
        self.st.versions.push(rec.version.clone());
        self.push(Change::created(Entity::OrderVersion(rec.version.clone())));
        if let Some(r) = self.st.orders.get_mut(&order_id) {
            r.version.id = version_id;
            r.order.ord_status = status;
        }
        self.emit_order(order_id);
        if order_type == OrderType::TrailingStop {
            self.init_trail(order_id);
        }
        self.touch(contract_index);
        order_id
    }

    fn init_trail(&mut self, order_id: Id) {
        let Some(rec) = self.st.orders.get(&order_id) else {
            return;
        };
        let ci = self.contract_index(rec.order.contract_id);
        let price = self.market_price(ci);
        let dir = Decimal::from(rec.order.action.sign());
        let distance = match (rec.version.peg_difference, rec.version.stop_price) {
            (Some(p), _) => p.abs(),
            (None, Some(s)) => (price - s).abs(),
            (None, None) => Decimal::ZERO,
        };
        // A buy stop sits above the market, a sell stop below.
        let stop = rec.version.stop_price.unwrap_or(price + dir * distance);
        if let Some(r) = self.st.orders.get_mut(&order_id) {
            if let Some(l) = r.live.as_mut() {
                l.trail_distance = Some(distance);
            }
            r.version.stop_price = Some(stop);
        }
    }

    /// Records a command and emits it: a client's (`sent`) or the exchange's own (`None`: no
    /// sender, automated).
    fn command(
        &mut self,
        order_id: Id,
        command_type: CommandType,
        command_status: CommandStatus,
        sent: Option<Sent>,
    ) -> Id {
        let id = self.id(EntityKind::Command);
        let client = sent.is_some();
        let sent = sent.unwrap_or(Sent {
            is_automated: true,
            ..Sent::default()
        });
        let command = Command {
            id,
            order_id,
            timestamp_us: self.now,
            cl_ord_id: sent.cl_ord_id,
            command_type,
            command_status,
            sender_id: if client { self.sender } else { None },
            user_session_id: if client { self.session } else { None },
            activation_time: sent.activation_time,
            custom_tag50: sent.custom_tag50,
            is_automated: sent.is_automated,
        };
        self.st.commands.push(command.clone());
        self.push(Change::created(Entity::Command(command)));
        id
    }

    fn command_report(
        &mut self,
        command_id: Id,
        status: CommandStatus,
        reject: Option<FailureReason>,
        text: Option<String>,
        ord_status: OrdStatus,
    ) {
        let cr = CommandReport {
            id: self.id(EntityKind::CommandReport),
            command_id,
            timestamp_us: self.now,
            command_status: status,
            reject_reason: reject,
            text,
            ord_status: Some(ord_status),
        };
        self.st.command_reports.push(cr.clone());
        self.push(Change::created(Entity::CommandReport(cr)));
    }

    #[allow(clippy::too_many_arguments)]
    fn execution_report(
        &mut self,
        order_id: Id,
        command_id: Id,
        exec_type: ExecType,
        ord_status: OrdStatus,
        last: Option<(u32, Decimal)>,
        reject: Option<FailureReason>,
        text: Option<String>,
    ) {
        let Some(rec) = self.st.orders.get(&order_id) else {
            return;
        };
        let er = ExecutionReport {
            id: self
                .ex
                .alloc_id(EntityKind::ExecutionReport, self.account_id),
            command_id,
            account_id: self.account_id,
            contract_id: rec.order.contract_id,
            timestamp_us: self.now,
            trade_date: self.td,
            order_id,
            exec_type,
            ord_status,
            action: rec.order.action,
            cum_qty: rec.cum_qty,
            avg_px: rec.avg_px(),
            last_qty: last.map(|l| l.0),
            last_px: last.map(|l| l.1),
            reject_reason: reject,
            text,
        };
        self.st.execution_reports.push(er.clone());
        self.push(Change::created(Entity::ExecutionReport(er)));
    }

    fn emit_order(&mut self, order_id: Id) {
        if let Some(rec) = self.st.orders.get_mut(&order_id) {
            rec.updated_us = self.now;
            let o = rec.order.clone();
            self.push(Change::updated(Entity::Order(o)));
        }
    }

    fn set_status(&mut self, order_id: Id, status: OrdStatus) {
        if let Some(rec) = self.st.orders.get_mut(&order_id) {
            rec.order.ord_status = status;
            if !status.is_live() {
                rec.live = None;
                self.st.live_ids.remove(&order_id);
            }
        }
    }

    /// Links two orders as an OCO pair sharing `base` contracts.
    pub fn link_oco(&mut self, a: Id, b: Id, base_a: u32, base_b: u32) {
        for (me, other, base) in [(a, b, base_a), (b, a, base_b)] {
            if let Some(r) = self.st.orders.get_mut(&me) {
                r.order.oco_id = Some(a);
                r.order.linked_id = Some(other);
                r.oco_base = Some(base);
            }
        }
        self.emit_order(a);
        self.emit_order(b);
    }

    // ---------------------------------------------------------------- matching

    /// Matches every live order of a contract against its current price, cascading through
    /// brackets, then moves auto-trailing and break-even stops.
    pub fn match_contract(&mut self, contract_index: usize) {
        let contract_id = self.ex.catalog.contracts[contract_index].id;
        // An order fills at most once per price event, so partial fills spread over events.
        let mut filled: Vec<Id> = Vec::new();
        for _ in 0..MAX_PASSES {
            let price = self.market_price(contract_index);
            let ids: Vec<Id> = self
                .st
                .live_ids
                .iter()
                .filter(|id| {
                    self.st.orders.get(id).is_some_and(|o| {
                        o.order.contract_id == contract_id
                            && o.live.as_ref().is_some_and(|l| l.active)
                    })
                })
                .copied()
                .collect();
            let mut any = false;
            for id in ids {
                if filled.contains(&id) {
                    continue;
                }
                match self.evaluate(id, price, contract_index) {
                    Trigger::Fill(qty, px) => {
                        filled.push(id);
                        self.fill(id, qty, px);
                        any = true;
                    }
                    Trigger::Reject(text) => {
                        self.reject_live(id, &text);
                        any = true;
                    }
                    Trigger::None => {}
                }
            }
            self.expire_immediate(contract_id);
            self.adjust_strategy_stops(contract_index, price);
            if !any {
                break;
            }
        }
    }

    /// The end of the trading day: every working `Day` order expires (execution report
    /// `Expired`, its suspended brackets canceled with it). Returns how many expired.
    pub fn expire_day_orders(&mut self) -> usize {
        let ids: Vec<Id> = self
            .st
            .live_ids
            .iter()
            .filter(|id| {
                self.st.orders.get(id).is_some_and(|o| {
                    o.live.as_ref().is_some_and(|l| l.active)
                        && o.version.time_in_force == Some(TimeInForce::Day)
                })
            })
            .copied()
            .collect();
        for &id in &ids {
            self.cancel_live(
                id,
                None,
                Some("Day order expired at the end of the trading day".into()),
                OrdStatus::Expired,
            );
        }
        ids.len()
    }

    /// Cancels what is left of IOC and FOK orders once they have had their chance.
    fn expire_immediate(&mut self, contract_id: Id) {
        let ids: Vec<Id> = self
            .st
            .live_ids
            .iter()
            .filter(|id| {
                self.st.orders.get(id).is_some_and(|o| {
                    o.order.contract_id == contract_id
                        && o.live.as_ref().is_some_and(|l| l.active && l.rested)
                        && matches!(
                            o.version.time_in_force,
                            Some(TimeInForce::Ioc | TimeInForce::Fok)
                        )
                })
            })
            .copied()
            .collect();
        for id in ids {
            self.cancel_live(
                id,
                None,
                Some("IOC/FOK order expired".into()),
                OrdStatus::Expired,
            );
        }
    }

    fn evaluate(&mut self, order_id: Id, price: Decimal, contract_index: usize) -> Trigger {
        let slip = Decimal::from(self.m.slippage_ticks) * self.tick(contract_index);
        let chunk = self.m.partial_fill_qty;
        let Some(rec) = self.st.orders.get_mut(&order_id) else {
            return Trigger::None;
        };
        let Some(live) = rec.live.as_mut() else {
            return Trigger::None;
        };
        let remaining = rec.version.order_qty.saturating_sub(rec.cum_qty);
        if remaining == 0 {
            return Trigger::None;
        }
        let qty = chunk.map_or(remaining, |c| c.clamp(1, remaining));
        let action = rec.order.action;
        let dir = Decimal::from(action.sign());
        let first = !live.rested;
        live.rested = true;
        let market_px = price + dir * slip;
        // A limit marketable on arrival fills at the market (price improvement); a resting
        // limit that the market trades through fills at its own price.
        let limit_fill = |limit: Decimal, first: bool| -> Option<Decimal> {
            let crosses = (limit - price) * dir >= Decimal::ZERO;
            crosses.then_some(if first { price } else { limit })
        };
        let stop_hit = |stop: Decimal| (price - stop) * dir >= Decimal::ZERO;
        match rec.version.order_type {
            OrderType::Market => Trigger::Fill(qty, market_px),
            OrderType::Limit => match rec.version.price.and_then(|l| limit_fill(l, first)) {
                Some(px) => Trigger::Fill(qty, px),
                None => Trigger::None,
            },
            OrderType::Stop => {
                let Some(stop) = rec.version.stop_price else {
                    return Trigger::None;
                };
                if stop_hit(stop) {
                    if first && rec.cum_qty == 0 {
                        return Trigger::Reject(wrong_side(action, stop, price));
                    }
                    Trigger::Fill(qty, market_px)
                } else {
                    Trigger::None
                }
            }
            OrderType::StopLimit => {
                let (Some(stop), Some(limit)) = (rec.version.stop_price, rec.version.price) else {
                    return Trigger::None;
                };
                if !live.triggered {
                    if !stop_hit(stop) {
                        return Trigger::None;
                    }
                    if first && rec.cum_qty == 0 {
                        return Trigger::Reject(wrong_side(action, stop, price));
                    }
                    live.triggered = true;
                    // Once triggered it is a new limit order: marketable → market price.
                    return match limit_fill(limit, true) {
                        Some(px) => Trigger::Fill(qty, px),
                        None => Trigger::None,
                    };
                }
                match limit_fill(limit, false) {
                    Some(px) => Trigger::Fill(qty, px),
                    None => Trigger::None,
                }
            }
            OrderType::TrailingStop => {
                let Some(stop) = rec.version.stop_price else {
                    return Trigger::None;
                };
                if stop_hit(stop) {
                    if first && rec.cum_qty == 0 {
                        return Trigger::Reject(wrong_side(action, stop, price));
                    }
                    return Trigger::Fill(qty, market_px);
                }
                // A sell stop trails below the best price, a buy stop above.
                if let Some(d) = live.trail_distance {
                    let candidate = price + dir * d;
                    if (stop - candidate) * dir > Decimal::ZERO {
                        rec.version.stop_price = Some(candidate);
                    }
                }
                Trigger::None
            }
            _ => Trigger::None,
        }
    }

    // ---------------------------------------------------------------- fills

    /// Fills `qty` of an order at `px`, then updates the position, cash, linked orders and
    /// strategy.
    pub fn fill(&mut self, order_id: Id, qty: u32, px: Decimal) {
        let Some(rec) = self.st.orders.get_mut(&order_id) else {
            return;
        };
        rec.cum_qty += qty;
        rec.fill_value += px * Decimal::from(qty);
        let complete = rec.cum_qty >= rec.version.order_qty;
        let action = rec.order.action;
        let contract_id = rec.order.contract_id;
        let command_id = rec.new_command_id;
        let status = if complete {
            OrdStatus::Filled
        } else {
            OrdStatus::Working
        };
        if complete {
            rec.order.ord_status = OrdStatus::Filled;
            rec.live = None;
            self.st.live_ids.remove(&order_id);
            self.emit_order(order_id);
        }
        self.execution_report(
            order_id,
            command_id,
            ExecType::Trade,
            status,
            Some((qty, px)),
            None,
            None,
        );
        let fill_id = self.id(EntityKind::Fill);
        let fill = Fill {
            id: fill_id,
            order_id,
            contract_id,
            timestamp_us: self.now,
            trade_date: self.td,
            action,
            qty,
            price: px,
            active: true,
            finally_paired: 0,
            commission: self.m.commission_per_contract * Decimal::from(qty),
        };
        self.st.fills.push(fill);
        self.ex.markets[self.contract_index(contract_id)].record_volume(u64::from(qty), self.now);
        self.apply_to_position(fill_id, contract_id, action, qty, px);

        // Linked orders.
        self.after_fill_links(order_id);
        self.cancel_exits_when_flat(contract_id);
    }

    fn apply_to_position(
        &mut self,
        fill_id: Id,
        contract_id: Id,
        action: Action,
        qty: u32,
        px: Decimal,
    ) {
        let vpp = self.value_per_point(contract_id);
        let created = !self.st.positions.contains_key(&contract_id);
        if created {
            let id = self.id(EntityKind::Position);
            self.st.positions.insert(
                contract_id,
                PositionRec {
                    pos: Position {
                        id,
                        account_id: self.account_id,
                        contract_id,
                        timestamp_us: self.now,
                        trade_date: self.td,
                        net_pos: 0,
                        net_price: None,
                        bought: 0,
                        bought_value: Decimal::ZERO,
                        sold: 0,
                        sold_value: Decimal::ZERO,
                        prev_pos: 0,
                        prev_price: None,
                    },
                    lots: VecDeque::new(),
                    realized: Decimal::ZERO,
                },
            );
        }
        let sign = action.sign();
        let mut pairs: Vec<(Id, u32, Decimal)> = Vec::new(); // (opening fill, qty, opening price)
        let mut realized = Decimal::ZERO;
        let position_id;
        {
            let Some(p) = self.st.positions.get_mut(&contract_id) else {
                return;
            };
            position_id = p.pos.id;
            let value = px * Decimal::from(qty);
            match action {
                Action::Buy => {
                    p.pos.bought += u64::from(qty);
                    p.pos.bought_value += value;
                }
                Action::Sell => {
                    p.pos.sold += u64::from(qty);
                    p.pos.sold_value += value;
                }
            }
            let mut left = qty;
            while left > 0 && p.pos.net_pos * sign < 0 {
                let Some(lot) = p.lots.front_mut() else {
                    break;
                };
                let take = lot.qty.min(left);
                pairs.push((lot.fill_id, take, lot.price));
                // Closing a long: (sell − buy); closing a short: (sell − buy) with the lot sold.
                let pnl = match action {
                    Action::Sell => px - lot.price,
                    Action::Buy => lot.price - px,
                };
                realized += pnl * Decimal::from(take) * vpp;
                lot.qty -= take;
                left -= take;
                p.pos.net_pos += sign * i64::from(take);
                if lot.qty == 0 {
                    p.lots.pop_front();
                }
            }
            if left > 0 {
                p.lots.push_back(Lot {
                    fill_id,
                    qty: left,
                    price: px,
                });
                p.pos.net_pos += sign * i64::from(left);
            }
            let open: u32 = p.lots.iter().map(|l| l.qty).sum();
            p.pos.net_price = (open > 0).then(|| {
                p.lots
                    .iter()
                    .map(|l| l.price * Decimal::from(l.qty))
                    .sum::<Decimal>()
                    / Decimal::from(open)
            });
            p.pos.timestamp_us = self.now;
            p.pos.trade_date = self.td;
            p.realized += realized;
        }
        let paired: u32 = pairs.iter().map(|p| p.1).sum();
        if let Some(f) = self.st.fill_mut(fill_id) {
            f.finally_paired = paired;
            let f = f.clone();
            self.push(Change::created(Entity::Fill(f)));
        }
        for (open_id, take, _) in &pairs {
            if let Some(f) = self.st.fill_mut(*open_id) {
                f.finally_paired += take;
                let f = f.clone();
                self.push(Change::updated(Entity::Fill(f)));
            }
        }
        for (open_id, take, open_px) in pairs {
            let (buy_fill_id, sell_fill_id, buy_price, sell_price) = match action {
                Action::Sell => (open_id, fill_id, open_px, px),
                Action::Buy => (fill_id, open_id, px, open_px),
            };
            let fp = FillPair {
                id: self.id(EntityKind::FillPair),
                position_id,
                buy_fill_id,
                sell_fill_id,
                qty: take,
                buy_price,
                sell_price,
                active: true,
            };
            self.st.fill_pairs.push(fp.clone());
            self.push(Change::created(Entity::FillPair(fp)));
        }
        if let Some(p) = self.st.positions.get(&contract_id) {
            let pos = p.pos.clone();
            self.push(if created {
                Change::created(Entity::Position(pos))
            } else {
                Change::updated(Entity::Position(pos))
            });
        }
        let commission = self.m.commission_per_contract * Decimal::from(qty);
        if !realized.is_zero() || !commission.is_zero() {
            let c = &mut self.st.cash;
            c.amount += realized - commission;
            c.realized_pnl += realized;
            c.week_realized_pnl += realized;
            c.timestamp_us = self.now;
            c.trade_date = self.td;
            let c = c.clone();
            self.push(Change::updated(Entity::CashBalance(c)));
        }
    }

    fn after_fill_links(&mut self, order_id: Id) {
        let Some(rec) = self.st.orders.get(&order_id) else {
            return;
        };
        let linked = rec.order.linked_id;
        let children = rec.children.clone();
        let cum = rec.cum_qty;
        let strategy = rec.strategy;
        if let Some(partner) = linked {
            self.rebalance(partner);
        }
        for child in children {
            self.set_base(child, cum);
        }
        if let Some((sid, role)) = strategy {
            match role {
                Role::Entry => self.strategy_entry_filled(sid),
                Role::Target(_) | Role::Stop(_) => {}
            }
            self.strategy_check_done(sid);
        }
    }

    /// Once a fill leaves the account flat in a contract, the exits that protected the
    /// position there have nothing left to protect, whichever order made it flat (a close, a
    /// manual opposite order, another strategy's exit): every active strategy of the contract
    /// whose entry has filled finishes with its working exits cancelled, and so do the brackets
    /// of an OSO whose entry has filled. Left working, such a stop would open a position nobody
    /// asked for once the price reaches it. An entry still working (partly filled) keeps its
    /// exits: more of it may fill. Standalone orders, OCO pairs included, are not tied to a
    /// position and stay.
    fn cancel_exits_when_flat(&mut self, contract_id: Id) {
        if self.net_pos(contract_id) != 0 {
            return;
        }
        // Only live orders can belong to a strategy that is still active or to a bracket
        // still working, so the live set (small) is enough to find them.
        let mut sids: Vec<Id> = Vec::new();
        let mut brackets: Vec<Id> = Vec::new();
        for id in &self.st.live_ids {
            let Some(o) = self.st.orders.get(id) else {
                continue;
            };
            if o.order.contract_id != contract_id {
                continue;
            }
            match o.strategy {
                Some((sid, _)) => {
                    if !sids.contains(&sid) {
                        sids.push(sid);
                    }
                }
                None => {
                    let active = o.live.as_ref().is_some_and(|l| l.active);
                    let entry_done = o
                        .order
                        .parent_id
                        .and_then(|p| self.st.orders.get(&p))
                        .is_some_and(|p| !p.is_live() && p.cum_qty > 0);
                    if active && entry_done {
                        brackets.push(*id);
                    }
                }
            }
        }
        for sid in sids {
            self.strategy_check_done(sid);
        }
        for id in brackets {
            self.cancel_live(
                id,
                None,
                Some("position closed".into()),
                OrdStatus::Canceled,
            );
        }
    }

    /// Sets the OCO share of an order (activating a suspended bracket) and rebalances it.
    fn set_base(&mut self, order_id: Id, base: u32) {
        let mut activate = false;
        if let Some(rec) = self.st.orders.get_mut(&order_id) {
            rec.oco_base = Some(base);
            if let Some(l) = rec.live.as_mut()
                && !l.active
                && base > 0
            {
                l.active = true;
                activate = true;
            }
        }
        if activate {
            self.activate(order_id, base);
        } else {
            self.rebalance(order_id);
        }
    }

    /// A suspended bracket starts working with `qty` contracts.
    fn activate(&mut self, order_id: Id, qty: u32) {
        let Some(rec) = self.st.orders.get(&order_id) else {
            return;
        };
        let command_id = rec.new_command_id;
        let partner_cum = rec
            .order
            .linked_id
            .and_then(|p| self.st.orders.get(&p))
            .map_or(0, |p| p.cum_qty);
        let target = qty.saturating_sub(partner_cum);
        if target == 0 {
            self.cancel_live(
                order_id,
                None,
                Some("OCO partner filled".into()),
                OrdStatus::Canceled,
            );
            return;
        }
        if target != rec.version.order_qty {
            self.new_version(order_id, |v| v.order_qty = target);
        }
        self.set_status(order_id, OrdStatus::Working);
        if let Some(r) = self.st.orders.get_mut(&order_id)
            && let Some(l) = r.live.as_mut()
        {
            l.active = true;
        }
        self.execution_report(
            order_id,
            command_id,
            ExecType::New,
            OrdStatus::Working,
            None,
            None,
            None,
        );
        self.emit_order(order_id);
        if self
            .st
            .orders
            .get(&order_id)
            .is_some_and(|r| r.version.order_type == OrderType::TrailingStop)
        {
            self.init_trail(order_id);
        }
    }

    /// Brings an OCO member's quantity to its share minus what its partner filled; cancels it
    /// when nothing is left.
    fn rebalance(&mut self, order_id: Id) {
        let Some(rec) = self.st.orders.get(&order_id) else {
            return;
        };
        if !rec.is_live() {
            return;
        }
        let Some(base) = rec.oco_base else {
            return;
        };
        if rec.live.as_ref().is_some_and(|l| !l.active) {
            return;
        }
        let partner_cum = rec
            .order
            .linked_id
            .and_then(|p| self.st.orders.get(&p))
            .map_or(0, |p| p.cum_qty);
        let target = base.saturating_sub(partner_cum);
        let cum = rec.cum_qty;
        let current = rec.version.order_qty;
        if target <= cum {
            if cum > 0 {
                // It exited its whole share.
                if current != cum {
                    self.new_version(order_id, |v| v.order_qty = cum);
                }
                self.set_status(order_id, OrdStatus::Filled);
                self.emit_order(order_id);
            } else {
                self.cancel_live(
                    order_id,
                    None,
                    Some("OCO partner filled".into()),
                    OrdStatus::Canceled,
                );
            }
        } else if target != current {
            self.server_modify(order_id, |v| v.order_qty = target);
        }
    }

    /// A modification the exchange makes on its own (OCO reductions, bracket growth, trailing
    /// and break-even moves): a `Modify` command without a sender, its report, a `Replaced`
    /// execution report and the new version.
    fn server_modify(&mut self, order_id: Id, f: impl FnOnce(&mut OrderVersion)) {
        let command_id = self.command(
            order_id,
            CommandType::Modify,
            CommandStatus::AtExecution,
            None,
        );
        self.modify_accepted(order_id, command_id);
        self.new_version(order_id, f);
    }

    /// The report and `Replaced` execution report of an accepted modify command.
    fn modify_accepted(&mut self, order_id: Id, command_id: Id) {
        self.command_report(
            command_id,
            CommandStatus::AtExecution,
            None,
            None,
            OrdStatus::Working,
        );
        self.execution_report(
            order_id,
            command_id,
            ExecType::Replaced,
            OrdStatus::Working,
            None,
            None,
            None,
        );
    }

    fn new_version(&mut self, order_id: Id, f: impl FnOnce(&mut OrderVersion)) {
        let id = self.id(EntityKind::OrderVersion);
        let Some(rec) = self.st.orders.get_mut(&order_id) else {
            return;
        };
        let mut v = rec.version.clone();
        f(&mut v);
        v.id = id;
        rec.version = v.clone();
        rec.updated_us = self.now;
        self.st.versions.push(v.clone());
        self.push(Change::created(Entity::OrderVersion(v)));
    }

    // ---------------------------------------------------------------- cancel / reject

    /// Cancels a live order (with `command_id` when a client asked) and cascades: a canceled
    /// entry cancels its suspended brackets, a strategy re-checks whether it is done.
    pub fn cancel_live(
        &mut self,
        order_id: Id,
        command_id: Option<Id>,
        text: Option<String>,
        status: OrdStatus,
    ) {
        let Some(rec) = self.st.orders.get(&order_id) else {
            return;
        };
        if !rec.is_live() {
            return;
        }
        let command_id = command_id.unwrap_or(rec.new_command_id);
        let children = rec.children.clone();
        let strategy = rec.strategy;
        let cum = rec.cum_qty;
        self.set_status(order_id, status);
        self.emit_order(order_id);
        let exec = if status == OrdStatus::Expired {
            ExecType::Expired
        } else {
            ExecType::Canceled
        };
        self.execution_report(order_id, command_id, exec, status, None, None, text);
        for child in children {
            let suspended = self
                .st
                .orders
                .get(&child)
                .and_then(|c| c.live.as_ref())
                .is_some_and(|l| !l.active);
            if suspended || cum == 0 {
                self.cancel_live(
                    child,
                    None,
                    Some("parent order canceled".into()),
                    OrdStatus::Canceled,
                );
            }
        }
        if let Some((sid, _)) = strategy {
            self.strategy_check_done(sid);
        }
    }

    fn reject_live(&mut self, order_id: Id, text: &str) {
        let Some(rec) = self.st.orders.get(&order_id) else {
            return;
        };
        let command_id = rec.new_command_id;
        let children = rec.children.clone();
        let strategy = rec.strategy;
        self.command_report(
            command_id,
            CommandStatus::ExecutionRejected,
            Some(FailureReason::OtherExecutionRelated),
            Some(text.to_string()),
            OrdStatus::Rejected,
        );
        self.set_status(order_id, OrdStatus::Rejected);
        self.emit_order(order_id);
        self.execution_report(
            order_id,
            command_id,
            ExecType::Rejected,
            OrdStatus::Rejected,
            None,
            Some(FailureReason::OtherExecutionRelated),
            Some(text.to_string()),
        );
        for child in children {
            self.cancel_live(
                child,
                None,
                Some("parent order rejected".into()),
                OrdStatus::Canceled,
            );
        }
        if let Some((sid, _)) = strategy {
            self.strategy_check_done(sid);
        }
    }

    /// Records a client command the exchange accepts and then rejects (too late, through the
    /// market): the command and its `ExecutionRejected` report; the order is unchanged.
    #[allow(clippy::too_many_arguments)]
    pub fn rejected_command(
        &mut self,
        order_id: Id,
        kind: CommandType,
        cl_ord_id: Option<String>,
        automated: bool,
        reason: FailureReason,
        text: String,
    ) -> Id {
        let command_id = self.command(
            order_id,
            kind,
            CommandStatus::ExecutionRejected,
            Some(Sent {
                cl_ord_id,
                activation_time: None,
                custom_tag50: None,
                is_automated: automated,
            }),
        );
        let status = self
            .st
            .orders
            .get(&order_id)
            .map_or(OrdStatus::Unknown, |o| o.order.ord_status);
        self.command_report(
            command_id,
            CommandStatus::ExecutionRejected,
            Some(reason),
            Some(text),
            status,
        );
        command_id
    }

    fn too_late(
        &mut self,
        order_id: Id,
        kind: CommandType,
        cl: Option<String>,
        automated: bool,
    ) -> Id {
        let status = self
            .st
            .orders
            .get(&order_id)
            .map_or(OrdStatus::Unknown, |o| o.order.ord_status);
        let what = if kind == CommandType::Cancel {
            "cancel"
        } else {
            "modify"
        };
        self.rejected_command(
            order_id,
            kind,
            cl,
            automated,
            FailureReason::TooLate,
            format!("Too late to {what}: the order is {status:?}"),
        )
    }

    /// A client cancel.
    pub fn client_cancel(
        &mut self,
        order_id: Id,
        cl_ord_id: Option<String>,
        automated: bool,
        tag50: Option<String>,
    ) -> Id {
        let live = self.st.orders.get(&order_id).is_some_and(OrderRec::is_live);
        if !live {
            return self.too_late(order_id, CommandType::Cancel, cl_ord_id, automated);
        }
        let command_id = self.command(
            order_id,
            CommandType::Cancel,
            CommandStatus::AtExecution,
            Some(Sent {
                cl_ord_id,
                activation_time: None,
                custom_tag50: tag50,
                is_automated: automated,
            }),
        );
        self.command_report(
            command_id,
            CommandStatus::AtExecution,
            None,
            None,
            OrdStatus::Canceled,
        );
        self.cancel_live(order_id, Some(command_id), None, OrdStatus::Canceled);
        command_id
    }

    /// A client modify.
    ///
    /// # Errors
    /// Synchronous rejections (bad terms).
    pub fn client_modify(&mut self, order_id: Id, spec: &ModifySpec) -> Result<Id, Rejection> {
        let Some(rec) = self.st.orders.get(&order_id) else {
            return Err(Rejection::new(
                FailureReason::UnknownReason,
                "unknown order",
            ));
        };
        if !rec.is_live() {
            return Ok(self.too_late(
                order_id,
                CommandType::Modify,
                spec.cl_ord_id.clone(),
                spec.is_automated,
            ));
        }
        let ci = self.contract_index(rec.order.contract_id);
        let current = rec.version.clone();
        let cum = rec.cum_qty;
        let order_type = spec.order_type.unwrap_or(current.order_type);
        if current.order_type == OrderType::TrailingStop
            && (spec
                .stop_price
                .is_some_and(|s| Some(s) != current.stop_price)
                || spec
                    .peg_difference
                    .is_some_and(|p| Some(p) != current.peg_difference)
                || order_type != OrderType::TrailingStop)
        {
            return Err(Rejection::new(
                FailureReason::TrailingStopNonOrderQtyModify,
                "only the quantity of a trailing stop can be modified",
            ));
        }
        if spec.qty == 0 || spec.qty < cum {
            return Err(Rejection::new(
                FailureReason::UnknownReason,
                format!("orderQty {} is below the filled quantity {cum}", spec.qty),
            ));
        }
        let price = spec.price.or(current.price);
        let stop = spec.stop_price.or(current.stop_price);
        self.check_terms(
            ci,
            order_type,
            price,
            stop,
            spec.peg_difference.or(current.peg_difference),
        )?;
        let action = rec.order.action;
        let triggered = rec.live.as_ref().is_some_and(|l| l.triggered);
        let now_px = self.market_price(ci);
        let through = matches!(order_type, OrderType::Stop | OrderType::StopLimit)
            && !triggered
            && stop.is_some_and(|s| (now_px - s) * Decimal::from(action.sign()) >= Decimal::ZERO);
        if through {
            let text = wrong_side(action, stop.unwrap_or_default(), now_px);
            return Ok(self.rejected_command(
                order_id,
                CommandType::Modify,
                spec.cl_ord_id.clone(),
                spec.is_automated,
                FailureReason::OtherExecutionRelated,
                text,
            ));
        }
        let command_id = self.command(
            order_id,
            CommandType::Modify,
            CommandStatus::AtExecution,
            Some(Sent {
                cl_ord_id: spec.cl_ord_id.clone(),
                activation_time: spec.activation_time.clone(),
                custom_tag50: spec.custom_tag50.clone(),
                is_automated: spec.is_automated,
            }),
        );
        self.modify_accepted(order_id, command_id);
        let qty = spec.qty;
        let tif = spec.tif;
        let text = spec.text.clone();
        self.new_version(order_id, |v| {
            v.order_qty = qty;
            v.order_type = order_type;
            v.price = price;
            v.stop_price = stop;
            if tif.is_some() {
                v.time_in_force = tif;
            }
            if text.is_some() {
                v.text = text;
            }
        });
        if let Some(r) = self.st.orders.get_mut(&order_id) {
            if let Some(l) = r.live.as_mut()
                && order_type == OrderType::Limit
            {
                // A modified limit is re-checked against the market like a new one: if it is
                // marketable now it fills at the market.
                l.rested = false;
            }
            // A quantity change of an OCO member changes the pair's share.
            if r.oco_base.is_some() && r.strategy.is_none() && r.order.parent_id.is_none() {
                r.oco_base = Some(qty);
            }
        }
        self.emit_order(order_id);
        self.touch(ci);
        self.match_contract(ci);
        Ok(command_id)
    }

    // ---------------------------------------------------------------- strategies

    /// Starts a multibracket strategy: the entry order and its link; exits follow fills.
    pub fn start_strategy(
        &mut self,
        contract_index: usize,
        spec: StrategySpec,
        params: String,
        uuid: Option<String>,
        tag50: Option<String>,
        is_automated: bool,
    ) -> OrderStrategy {
        let contract_id = self.ex.catalog.contracts[contract_index].id;
        let sid = self.id(EntityKind::OrderStrategy);
        let entity = OrderStrategy {
            id: sid,
            account_id: self.account_id,
            timestamp_us: self.now,
            contract_id,
            order_strategy_type_id: 2,
            action: spec.action,
            params,
            uuid,
            status: StrategyStatus::ActiveStrategy,
            failure_message: None,
            sender_id: self.sender,
            custom_tag50: tag50.clone(),
            user_session_id: self.session,
        };
        self.push(Change::created(Entity::OrderStrategy(entity.clone())));
        let entry_spec = OrderSpec {
            action: Some(spec.action),
            qty: spec.entry.qty,
            order_type: Some(spec.entry.order_type),
            price: spec.entry.price,
            stop_price: spec.entry.stop_price,
            tif: spec.entry.tif,
            cl_ord_id: spec.entry.cl_ord_id.clone(),
            custom_tag50: tag50,
            is_automated,
            ..OrderSpec::default()
        };
        let brackets = vec![BracketRun::default(); spec.brackets.len()];
        self.st.strategies.insert(
            sid,
            StrategyRec {
                entity: entity.clone(),
                spec,
                contract_index,
                entry_id: 0,
                brackets,
            },
        );
        let entry_id = self.create_order(contract_index, &entry_spec, false, None, false);
        if let Some(r) = self.st.orders.get_mut(&entry_id) {
            r.strategy = Some((sid, Role::Entry));
        }
        if let Some(s) = self.st.strategies.get_mut(&sid) {
            s.entry_id = entry_id;
        }
        self.link(sid, entry_id, "entry".into());
        self.match_contract(contract_index);
        self.st
            .strategies
            .get(&sid)
            .map_or(entity, |s| s.entity.clone())
    }

    fn link(&mut self, sid: Id, order_id: Id, label: String) {
        let l = OrderStrategyLink {
            id: self.id(EntityKind::OrderStrategyLink),
            order_strategy_id: sid,
            order_id,
            label,
        };
        self.st.links.push(l.clone());
        self.push(Change::created(Entity::OrderStrategyLink(l)));
    }

    /// Allots newly filled entry contracts to brackets in order, creating or growing their
    /// target/stop pairs.
    fn strategy_entry_filled(&mut self, sid: Id) {
        let Some(s) = self.st.strategies.get(&sid) else {
            return;
        };
        if s.entity.status != StrategyStatus::ActiveStrategy {
            return;
        }
        let Some(entry) = self.st.orders.get(&s.entry_id) else {
            return;
        };
        let filled = entry.cum_qty;
        let avg = entry.avg_px().unwrap_or(Decimal::ZERO);
        let allocated: u32 = s.brackets.iter().map(|b| b.allocated).sum();
        let mut left = filled.saturating_sub(allocated);
        let n = s.brackets.len();
        for i in 0..n {
            if left == 0 {
                break;
            }
            let Some(s) = self.st.strategies.get(&sid) else {
                return;
            };
            let spec = s.spec.brackets[i].clone();
            let run = s.brackets[i].clone();
            let take = spec.qty.saturating_sub(run.allocated).min(left);
            if take == 0 {
                continue;
            }
            left -= take;
            let base = run.allocated + take;
            if run.allocated == 0 {
                self.create_bracket(sid, i, &spec, base, avg);
            } else {
                if let Some(s) = self.st.strategies.get_mut(&sid) {
                    s.brackets[i].allocated = base;
                }
                for id in [run.target_id, run.stop_id].into_iter().flatten() {
                    self.set_base(id, base);
                }
            }
        }
    }

    fn create_bracket(
        &mut self,
        sid: Id,
        i: usize,
        spec: &BracketSpec,
        qty: u32,
        reference: Decimal,
    ) {
        let Some(s) = self.st.strategies.get(&sid) else {
            return;
        };
        let ci = s.contract_index;
        let exit = s.spec.action.opposite();
        let entry_id = s.entry_id;
        let market = &self.ex.markets[ci];
        let target_spec = spec.profit_target.map(|pt| OrderSpec {
            action: Some(exit),
            qty,
            order_type: Some(OrderType::Limit),
            price: Some(market.on_tick(reference + pt)),
            is_automated: true,
            ..OrderSpec::default()
        });
        let stop_spec = spec.stop_loss.map(|sl| {
            if spec.trailing_stop {
                OrderSpec {
                    action: Some(exit),
                    qty,
                    order_type: Some(OrderType::TrailingStop),
                    stop_price: Some(market.on_tick(reference + sl)),
                    peg_difference: Some(sl),
                    is_automated: true,
                    ..OrderSpec::default()
                }
            } else {
                OrderSpec {
                    action: Some(exit),
                    qty,
                    order_type: Some(OrderType::Stop),
                    stop_price: Some(market.on_tick(reference + sl)),
                    is_automated: true,
                    ..OrderSpec::default()
                }
            }
        });
        let target_id =
            target_spec.map(|t| self.create_order(ci, &t, false, Some(entry_id), false));
        let stop_id = stop_spec.map(|t| self.create_order(ci, &t, false, Some(entry_id), false));
        for (id, role, label) in [
            (target_id, Role::Target(i), format!("target{}", i + 1)),
            (stop_id, Role::Stop(i), format!("stop{}", i + 1)),
        ] {
            if let Some(id) = id {
                if let Some(r) = self.st.orders.get_mut(&id) {
                    r.strategy = Some((sid, role));
                    r.oco_base = Some(qty);
                }
                self.link(sid, id, label);
            }
        }
        if let (Some(t), Some(st)) = (target_id, stop_id) {
            self.link_oco(t, st, qty, qty);
        }
        if let Some(s) = self.st.strategies.get_mut(&sid) {
            let run = &mut s.brackets[i];
            run.allocated = qty;
            run.reference = reference;
            run.target_id = target_id;
            run.stop_id = stop_id;
        }
    }

    /// Moves auto-trailing and break-even stops of the strategies on this contract.
    fn adjust_strategy_stops(&mut self, contract_index: usize, price: Decimal) {
        let tick = self.tick(contract_index);
        let sids: Vec<Id> = self
            .st
            .strategies
            .iter()
            .filter(|(_, s)| {
                s.contract_index == contract_index
                    && s.entity.status == StrategyStatus::ActiveStrategy
            })
            .map(|(id, _)| *id)
            .collect();
        for sid in sids {
            let Some(s) = self.st.strategies.get(&sid) else {
                continue;
            };
            let dir = Decimal::from(s.spec.action.sign());
            let n = s.brackets.len();
            for i in 0..n {
                let Some(s) = self.st.strategies.get(&sid) else {
                    break;
                };
                let spec = s.spec.brackets[i].clone();
                let run = s.brackets[i].clone();
                let Some(stop_id) = run.stop_id else {
                    continue;
                };
                let Some(stop_rec) = self.st.orders.get(&stop_id) else {
                    continue;
                };
                if !stop_rec.is_live() || stop_rec.version.order_type != OrderType::Stop {
                    continue;
                }
                let Some(current) = stop_rec.version.stop_price else {
                    continue;
                };
                let profit = (price - run.reference) * dir;
                let mut wanted: Option<Decimal> = None;
                if let Some(be) = spec.break_even
                    && !run.break_even_done
                    && profit >= be.trigger
                {
                    let level = run.reference + dir * be.offset;
                    if (level - current) * dir > Decimal::ZERO {
                        wanted = Some(level);
                    }
                    if let Some(s) = self.st.strategies.get_mut(&sid) {
                        s.brackets[i].break_even_done = true;
                    }
                }
                if let Some(t) = spec.auto_trail {
                    let active = run.best.is_some() || profit >= t.trigger;
                    if active {
                        let best = match run.best {
                            Some(b) if (b - price) * dir >= Decimal::ZERO => b,
                            _ => price,
                        };
                        if let Some(s) = self.st.strategies.get_mut(&sid) {
                            s.brackets[i].best = Some(best);
                        }
                        let level = best - dir * t.distance;
                        let base = wanted.unwrap_or(current);
                        let step = t.freq.max(tick);
                        if (level - base) * dir >= step {
                            wanted = Some(level);
                        }
                    }
                }
                if let Some(level) = wanted {
                    let level = self.ex.markets[contract_index].on_tick(level);
                    self.server_modify(stop_id, |v| v.stop_price = Some(level));
                }
            }
        }
    }

    /// Finishes a strategy whose orders are all done, and cancels what remains once the
    /// account is flat in the contract after the entry filled.
    fn strategy_check_done(&mut self, sid: Id) {
        let Some(s) = self.st.strategies.get(&sid) else {
            return;
        };
        if s.entity.status != StrategyStatus::ActiveStrategy {
            return;
        }
        let contract_id = s.entity.contract_id;
        let entry = self.st.orders.get(&s.entry_id);
        let entry_live = entry.is_some_and(OrderRec::is_live);
        let entry_cum = entry.map_or(0, |e| e.cum_qty);
        let ids: Vec<Id> = s
            .brackets
            .iter()
            .flat_map(|b| [b.target_id, b.stop_id])
            .flatten()
            .collect();
        let any_live = ids
            .iter()
            .any(|id| self.st.orders.get(id).is_some_and(OrderRec::is_live));
        let flat = self
            .st
            .positions
            .get(&contract_id)
            .is_none_or(|p| p.pos.net_pos == 0);
        if !entry_live && any_live && entry_cum > 0 && flat {
            // The last exit cancels what remains.
            for id in ids.clone() {
                self.cancel_live(
                    id,
                    None,
                    Some("strategy position closed".into()),
                    OrdStatus::Canceled,
                );
            }
        }
        let any_live = ids
            .iter()
            .any(|id| self.st.orders.get(id).is_some_and(OrderRec::is_live));
        if !entry_live && !any_live {
            let status = if entry_cum == 0 {
                StrategyStatus::ExecutionInterrupted
            } else {
                StrategyStatus::ExecutionFinished
            };
            self.set_strategy_status(sid, status, None);
        }
    }

    /// Sets a strategy's status and emits it.
    pub fn set_strategy_status(
        &mut self,
        sid: Id,
        status: StrategyStatus,
        message: Option<String>,
    ) {
        if let Some(s) = self.st.strategies.get_mut(&sid) {
            s.entity.status = status;
            if message.is_some() {
                s.entity.failure_message = message;
            }
            let e = s.entity.clone();
            self.push(Change::updated(Entity::OrderStrategy(e)));
        }
    }

    /// Stops a strategy: an unfilled entry is canceled; exits already working stay (they
    /// protect the position) but are no longer managed.
    pub fn interrupt_strategy(&mut self, sid: Id) -> Option<OrderStrategy> {
        let s = self.st.strategies.get(&sid)?;
        if s.entity.status == StrategyStatus::ActiveStrategy {
            let entry_id = s.entry_id;
            self.set_strategy_status(
                sid,
                StrategyStatus::StoppedByUser,
                Some("interrupted by user".into()),
            );
            self.cancel_live(
                entry_id,
                None,
                Some("strategy interrupted".into()),
                OrdStatus::Canceled,
            );
        }
        self.st.strategies.get(&sid).map(|s| s.entity.clone())
    }

    /// Cancels every live order of a contract and stops its strategies (liquidation).
    pub fn cancel_contract(&mut self, contract_id: Id) {
        let sids: Vec<Id> = self
            .st
            .strategies
            .iter()
            .filter(|(_, s)| {
                s.entity.contract_id == contract_id
                    && s.entity.status == StrategyStatus::ActiveStrategy
            })
            .map(|(id, _)| *id)
            .collect();
        for sid in sids {
            self.set_strategy_status(
                sid,
                StrategyStatus::StoppedByUser,
                Some("position liquidated".into()),
            );
        }
        let ids: Vec<Id> = self
            .st
            .live_ids
            .iter()
            .filter(|id| {
                self.st
                    .orders
                    .get(id)
                    .is_some_and(|o| o.order.contract_id == contract_id)
            })
            .copied()
            .collect();
        for id in ids {
            self.cancel_live(
                id,
                None,
                Some("position liquidated".into()),
                OrdStatus::Canceled,
            );
        }
    }

    /// The account's net position in a contract.
    #[must_use]
    pub fn net_pos(&self, contract_id: Id) -> i64 {
        self.st
            .positions
            .get(&contract_id)
            .map_or(0, |p| p.pos.net_pos)
    }
}

fn command_status_of(s: OrdStatus) -> CommandStatus {
    match s {
        OrdStatus::Suspended => CommandStatus::OnHold,
        _ => CommandStatus::AtExecution,
    }
}

fn wrong_side(action: Action, stop: Decimal, price: Decimal) -> String {
    match action {
        Action::Buy => format!("Buy stop price {stop} must be above the last price {price}"),
        Action::Sell => format!("Sell stop price {stop} must be below the last price {price}"),
    }
}
