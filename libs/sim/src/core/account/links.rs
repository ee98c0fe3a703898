//! OCO and OSO links: partners that exit one quantity together, brackets activated and sized
//! by their entry's fills, and the exits of filled entries ended when the account goes flat.

use super::*;

impl Op<'_> {
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

    pub(super) fn after_fill_links(&mut self, order_id: Id) {
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
    pub(super) fn cancel_exits_when_flat(&mut self, contract_id: Id) {
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
    pub(super) fn set_base(&mut self, order_id: Id, base: u32) {
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
    pub(super) fn activate(&mut self, order_id: Id, qty: u32) {
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
    pub(super) fn rebalance(&mut self, order_id: Id) {
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
}
