//! The position ledger: a fill recorded on its order, as a fill and FIFO fill pairs, on the
//! position (average, realized P&L) and in cash.

use super::*;

impl Op<'_> {
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

    pub(super) fn apply_to_position(
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

    /// The account's net position in a contract.
    #[must_use]
    pub fn net_pos(&self, contract_id: Id) -> i64 {
        self.st
            .positions
            .get(&contract_id)
            .map_or(0, |p| p.pos.net_pos)
    }
}
