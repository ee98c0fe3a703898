//! The user hub's events: one account's core changes turned into `GatewayUser*` events in the
//! order real servers send them (BROKERS.md §2.6).
//!
//! A [`Mirror`] holds what the client has been told about one account (orders, positions,
//! balance), initialised from a snapshot taken atomically with the subscription, and turns
//! each batch of changes into events:
//!
//! - an order appears as `Pending` (status 6) once its terms are known; a market order then
//!   goes straight to `Filled`; a resting order becomes `Open` (1);
//! - a fill is a `GatewayUserTrade` (no `profitAndLoss` when it opens; `commissions` added),
//!   then the order, then the position (`size` never negative, direction in `type`; a flat
//!   position keeps its type and last average price with `size: 0`), then the account: twice
//!   after a fill that opened or grew the position, once otherwise — the captured sequence
//!   `Order(6) → Trade → Order(2) → Position → Account ×2` of a market entry;
//! - an order filled in the request that placed it sends its trade first; a resting order
//!   filled later sends the order first (`Order(2) → Trade → Position → Account`), as captured;
//! - bracket children appear after the entry's fill as `Open` orders, stop first, then the
//!   target; when the position is flat the remaining child is `Cancelled` (3);
//! - nulls are omitted; a change that alters nothing the client sees is not sent; entities the
//!   client already knows are not created again (a session replay sends nothing here).

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::core::account::AccountState;
use crate::core::catalog::Catalog;
use crate::core::clock::now_us;
use crate::core::model::{
    Change, ChangeKind, Entity, ExecType, Fill, Id, OrdStatus, OrderType, Position,
};

use super::enums::{self, action};
use super::models::{
    ContractIds, Nulls, OrderView, PositionView, TradeView, account_model, order_model,
    position_model, trade_model,
};

/// Which user-hub subscription an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `GatewayUserAccount` (`SubscribeAccounts`).
    Account,
    /// `GatewayUserOrder` (`SubscribeOrders`).
    Order,
    /// `GatewayUserPosition` (`SubscribePositions`).
    Position,
    /// `GatewayUserTrade` (`SubscribeTrades`).
    Trade,
}

impl Topic {
    /// The client method the event invokes.
    #[must_use]
    pub fn target(self) -> &'static str {
        match self {
            Topic::Account => "GatewayUserAccount",
            Topic::Order => "GatewayUserOrder",
            Topic::Position => "GatewayUserPosition",
            Topic::Trade => "GatewayUserTrade",
        }
    }
}

/// One event: the single `{action, data}` argument real servers send.
#[derive(Debug, Clone, PartialEq)]
pub struct HubEvent {
    /// Subscription.
    pub topic: Topic,
    /// `{ "action": 0|1|2, "data": {…} }`.
    pub argument: Value,
}

/// A fill waiting for its pairs, position and cash before it is sent.
struct FillGroup {
    fill: Fill,
    pnl: Decimal,
    closing: bool,
    position: Option<Position>,
}

/// What the client knows about one account.
pub struct Mirror {
    account_id: Id,
    name: String,
    can_trade: bool,
    balance: Decimal,
    orders: HashMap<Id, OrderView>,
    sent: HashMap<Id, OrderView>,
    positions: HashMap<Id, PositionView>,
    fills: HashSet<Id>,
    /// The newest entity id the client has been told about: ids come from one increasing
    /// counter, so a `Created` change at or below it is a replay.
    newest: Id,
}

/// The newest entity id of an account's state.
fn newest_id(st: &AccountState) -> Id {
    [
        st.orders.keys().next_back().copied(),
        st.versions.last().map(|v| v.id),
        st.commands.last().map(|v| v.id),
        st.command_reports.last().map(|v| v.id),
        st.execution_reports.last().map(|v| v.id),
        st.fills.last().map(|v| v.id),
        st.fill_pairs.last().map(|v| v.id),
        st.positions.values().map(|p| p.pos.id).max(),
        Some(st.cash.id),
        st.strategies.keys().next_back().copied(),
        st.links.last().map(|v| v.id),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0)
}

fn entity_id(e: &Entity) -> Id {
    match e {
        Entity::Account(v) => v.id,
        Entity::Order(v) => v.id,
        Entity::OrderVersion(v) => v.id,
        Entity::Command(v) => v.id,
        Entity::CommandReport(v) => v.id,
        Entity::ExecutionReport(v) => v.id,
        Entity::Fill(v) => v.id,
        Entity::FillPair(v) => v.id,
        Entity::Position(v) => v.id,
        Entity::CashBalance(v) => v.id,
        Entity::OrderStrategy(v) => v.id,
        Entity::OrderStrategyLink(v) => v.id,
    }
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("account_id", &self.account_id)
            .field("orders", &self.orders.len())
            .finish_non_exhaustive()
    }
}

/// The per-batch bookkeeping of [`Mirror::translate`].
#[derive(Default)]
struct Pass {
    out: Vec<HubEvent>,
    fresh: HashSet<Id>,
    awaiting_terms: HashSet<Id>,
    filled_first: HashSet<Id>,
    children: Vec<OrderView>,
    group: Option<FillGroup>,
    time: i64,
}

fn same(a: &OrderView, b: &OrderView) -> bool {
    OrderView {
        updated_us: 0,
        ..a.clone()
    } == OrderView {
        updated_us: 0,
        ..b.clone()
    }
}

impl Mirror {
    /// The mirror of an account, from its state (taken under the account's lock together with
    /// the subscription, so no change is missed or counted twice).
    #[must_use]
    pub fn new(
        catalog: &Catalog,
        account_id: Id,
        name: &str,
        active: bool,
        st: &AccountState,
    ) -> Self {
        let index = |contract_id: Id| catalog.contract(contract_id).map(|c| c.index);
        let orders: HashMap<Id, OrderView> = st
            .orders
            .values()
            .filter_map(|o| Some((o.order.id, OrderView::of(o, index(o.order.contract_id)?))))
            .collect();
        let positions = st
            .positions
            .values()
            .filter_map(|p| {
                Some((
                    p.pos.contract_id,
                    PositionView {
                        id: p.pos.id,
                        account_id,
                        contract_index: index(p.pos.contract_id)?,
                        created_us: p.pos.timestamp_us,
                        position_type: enums::position_type_of(p.pos.net_pos)
                            .unwrap_or(enums::position_type::UNDEFINED),
                        size: p.pos.net_pos.unsigned_abs(),
                        average_price: p.pos.net_price.unwrap_or_default(),
                    },
                ))
            })
            .collect();
        Mirror {
            account_id,
            name: name.to_string(),
            can_trade: active,
            balance: st.cash.amount,
            sent: orders.clone(),
            orders,
            positions,
            fills: st.fills.iter().map(|f| f.id).collect(),
            newest: newest_id(st),
        }
    }

    /// The account event as it stands.
    #[must_use]
    pub fn account_event(&self, act: i64) -> HubEvent {
        HubEvent {
            topic: Topic::Account,
            argument: json!({
                "action": act,
                "data": account_model(self.account_id, &self.name, self.balance, self.can_trade),
            }),
        }
    }

    /// Turns one batch of the account's changes into hub events, in wire order.
    #[must_use]
    pub fn translate(
        &mut self,
        catalog: &Catalog,
        ids: &ContractIds,
        batch: &[Change],
    ) -> Vec<HubEvent> {
        let mut p = Pass {
            time: now_us(),
            ..Pass::default()
        };
        for (i, change) in batch.iter().enumerate() {
            if change.kind == ChangeKind::Created {
                let id = entity_id(&change.entity);
                if id <= self.newest {
                    continue; // replayed: the client knows it
                }
                self.newest = id;
            }
            let in_group = matches!(
                (&change.entity, change.kind),
                (
                    Entity::FillPair(_) | Entity::Position(_) | Entity::CashBalance(_),
                    _
                ) | (Entity::Fill(_), ChangeKind::Updated)
            );
            if !in_group {
                self.flush_group(catalog, ids, &mut p);
            }
            match &change.entity {
                Entity::Order(o) => {
                    p.time = p.time.max(o.timestamp_us);
                    if change.kind == ChangeKind::Created {
                        let Some(c) = catalog.contract(o.contract_id) else {
                            continue;
                        };
                        self.orders.insert(
                            o.id,
                            OrderView {
                                id: o.id,
                                account_id: o.account_id,
                                contract_index: c.index,
                                created_us: o.timestamp_us,
                                updated_us: o.timestamp_us,
                                status: o.ord_status,
                                order_type: OrderType::Market,
                                action: o.action,
                                size: 0,
                                limit_price: None,
                                stop_price: None,
                                fill_volume: 0,
                                filled_price: None,
                                custom_tag: None,
                                parent_id: o.parent_id,
                            },
                        );
                        p.fresh.insert(o.id);
                        p.awaiting_terms.insert(o.id);
                        continue;
                    }
                    self.order_updated(o.id, o.ord_status, batch, i, catalog, ids, &mut p);
                }
                Entity::Command(c) => {
                    p.time = p.time.max(c.timestamp_us);
                    if let Some(v) = self.orders.get_mut(&c.order_id)
                        && v.custom_tag.is_none()
                        && c.cl_ord_id.is_some()
                        && p.awaiting_terms.contains(&c.order_id)
                    {
                        v.custom_tag.clone_from(&c.cl_ord_id);
                    }
                }
                Entity::OrderVersion(v) => {
                    let Some(view) = self.orders.get_mut(&v.order_id) else {
                        continue;
                    };
                    view.size = v.order_qty;
                    view.order_type = v.order_type;
                    view.limit_price = v.price;
                    view.stop_price = v.stop_price;
                    view.updated_us = p.time;
                    if p.awaiting_terms.remove(&v.order_id) {
                        // Bracket children appear only once they work.
                        if view.parent_id.is_none() {
                            let view = view.clone();
                            self.emit_order(catalog, ids, &view, &mut p);
                        }
                    } else {
                        let view = view.clone();
                        self.flush_children_about(catalog, ids, view.id, &mut p);
                        self.emit_order(catalog, ids, &view, &mut p);
                    }
                }
                Entity::ExecutionReport(er) => {
                    p.time = p.time.max(er.timestamp_us);
                    if er.exec_type == ExecType::Trade
                        && let Some(view) = self.orders.get_mut(&er.order_id)
                    {
                        view.fill_volume = er.cum_qty;
                        view.filled_price = er.avg_px;
                    }
                }
                Entity::Fill(f) => {
                    if change.kind != ChangeKind::Created || !self.fills.insert(f.id) {
                        continue;
                    }
                    p.time = p.time.max(f.timestamp_us);
                    self.flush_children(catalog, ids, &mut p);
                    p.group = Some(FillGroup {
                        fill: f.clone(),
                        pnl: Decimal::ZERO,
                        closing: false,
                        position: None,
                    });
                }
                Entity::FillPair(fp) => {
                    if let Some(g) = p.group.as_mut()
                        && (fp.buy_fill_id == g.fill.id || fp.sell_fill_id == g.fill.id)
                    {
                        let vpp = catalog
                            .contract(g.fill.contract_id)
                            .map_or(Decimal::ONE, |c| catalog.product_of(c).value_per_point());
                        g.pnl += (fp.sell_price - fp.buy_price) * Decimal::from(fp.qty) * vpp;
                        g.closing = true;
                    }
                }
                Entity::Position(pos) => {
                    p.time = p.time.max(pos.timestamp_us);
                    match p.group.as_mut() {
                        Some(g) => g.position = Some(pos.clone()),
                        None => {
                            if let Some(e) = self.position_event(catalog, ids, pos).0 {
                                p.out.push(e);
                            }
                        }
                    }
                }
                Entity::CashBalance(c) => {
                    self.balance = c.amount;
                    if p.group.is_none() {
                        p.out.push(self.account_event(action::UPDATE));
                    }
                }
                Entity::Account(_)
                | Entity::CommandReport(_)
                | Entity::OrderStrategy(_)
                | Entity::OrderStrategyLink(_) => {}
            }
        }
        self.flush_group(catalog, ids, &mut p);
        self.flush_children(catalog, ids, &mut p);
        p.out
    }

    #[allow(clippy::too_many_arguments)]
    fn order_updated(
        &mut self,
        id: Id,
        status: OrdStatus,
        batch: &[Change],
        at: usize,
        catalog: &Catalog,
        ids: &ContractIds,
        p: &mut Pass,
    ) {
        let Some(view) = self.orders.get_mut(&id) else {
            return;
        };
        let before = view.status;
        view.status = status;
        view.updated_us = p.time;
        let view = view.clone();
        if p.awaiting_terms.contains(&id) {
            return;
        }
        match status {
            OrdStatus::Filled if p.fresh.contains(&id) => {
                // Sent with its fill, after the trade.
            }
            OrdStatus::Filled => {
                // A resting order filled by the market: the order first, with the fill the
                // next execution report carries.
                let mut view = view;
                if let Some(er) = batch[at..].iter().find_map(|c| match &c.entity {
                    Entity::ExecutionReport(er)
                        if er.order_id == id && er.exec_type == ExecType::Trade =>
                    {
                        Some(er)
                    }
                    _ => None,
                }) {
                    view.fill_volume = er.cum_qty;
                    view.filled_price = er.avg_px;
                }
                if let Some(v) = self.orders.get_mut(&id) {
                    v.clone_from(&view);
                }
                self.flush_children_about(catalog, ids, id, p);
                self.emit_order(catalog, ids, &view, p);
                p.filled_first.insert(id);
            }
            OrdStatus::Working if before == OrdStatus::PendingNew => {
                if view.parent_id.is_some() {
                    p.children.push(view);
                } else if view.order_type != OrderType::Market {
                    self.emit_order(catalog, ids, &view, p);
                }
            }
            _ => {
                self.flush_children_about(catalog, ids, id, p);
                self.emit_order(catalog, ids, &view, p);
            }
        }
    }

    fn emit_order(&mut self, catalog: &Catalog, ids: &ContractIds, view: &OrderView, p: &mut Pass) {
        let act = match self.sent.get(&view.id) {
            Some(prev) if same(prev, view) => return,
            Some(_) => action::UPDATE,
            None => action::CREATE,
        };
        self.sent.insert(view.id, view.clone());
        p.out.push(HubEvent {
            topic: Topic::Order,
            argument: json!({
                "action": act,
                "data": order_model(catalog, ids, view, Nulls::Omitted),
            }),
        });
    }

    /// Bracket children created by a fill appear stop first, then the target.
    fn flush_children(&mut self, catalog: &Catalog, ids: &ContractIds, p: &mut Pass) {
        let mut children = std::mem::take(&mut p.children);
        children.sort_by_key(|c| c.order_type == OrderType::Limit);
        for child in children {
            let current = self.orders.get(&child.id).cloned().unwrap_or(child);
            self.emit_order(catalog, ids, &current, p);
        }
    }

    fn flush_children_about(&mut self, catalog: &Catalog, ids: &ContractIds, id: Id, p: &mut Pass) {
        if p.children.iter().any(|c| c.id == id) {
            self.flush_children(catalog, ids, p);
        }
    }

    /// The position event of a change, and whether the position grew.
    fn position_event(
        &mut self,
        catalog: &Catalog,
        ids: &ContractIds,
        pos: &Position,
    ) -> (Option<HubEvent>, bool) {
        let Some(c) = catalog.contract(pos.contract_id) else {
            return (None, false);
        };
        let prev = self.positions.get(&pos.contract_id).cloned();
        let size = pos.net_pos.unsigned_abs();
        let view = PositionView {
            id: pos.id,
            account_id: self.account_id,
            contract_index: c.index,
            created_us: match &prev {
                Some(v) if v.size > 0 => v.created_us,
                _ => pos.timestamp_us,
            },
            position_type: enums::position_type_of(pos.net_pos)
                .or(prev.as_ref().map(|v| v.position_type))
                .unwrap_or(enums::position_type::UNDEFINED),
            size,
            average_price: pos
                .net_price
                .or(prev.as_ref().map(|v| v.average_price))
                .unwrap_or_default(),
        };
        let grew = prev
            .as_ref()
            .is_none_or(|v| size > v.size || (size > 0 && v.position_type != view.position_type))
            && size > 0;
        let act = if prev.is_some() {
            action::UPDATE
        } else {
            action::CREATE
        };
        let event = HubEvent {
            topic: Topic::Position,
            argument: json!({
                "action": act,
                "data": position_model(catalog, ids, &view, Nulls::Omitted),
            }),
        };
        self.positions.insert(pos.contract_id, view);
        (Some(event), grew)
    }

    fn flush_group(&mut self, catalog: &Catalog, ids: &ContractIds, p: &mut Pass) {
        let Some(g) = p.group.take() else {
            return;
        };
        let f = &g.fill;
        let Some(c) = catalog.contract(f.contract_id) else {
            return;
        };
        let trade = TradeView {
            id: f.id,
            account_id: self.account_id,
            contract_index: c.index,
            created_us: f.timestamp_us,
            price: f.price,
            profit_and_loss: g.closing.then_some(g.pnl),
            fees: f.commission,
            action: f.action,
            size: f.qty,
            order_id: f.order_id,
        };
        p.out.push(HubEvent {
            topic: Topic::Trade,
            argument: json!({
                "action": action::CREATE,
                "data": trade_model(ids, &trade, Nulls::Omitted),
            }),
        });
        if !p.filled_first.contains(&f.order_id)
            && let Some(view) = self.orders.get(&f.order_id).cloned()
        {
            self.emit_order(catalog, ids, &view, p);
        }
        let mut grew = false;
        if let Some(pos) = &g.position {
            let (event, g2) = self.position_event(catalog, ids, pos);
            grew = g2;
            if let Some(e) = event {
                p.out.push(e);
            }
        }
        p.out.push(self.account_event(action::UPDATE));
        if grew {
            // Real servers send the account twice after an entry (balance, then margin).
            p.out.push(self.account_event(action::UPDATE));
        }
    }
}
