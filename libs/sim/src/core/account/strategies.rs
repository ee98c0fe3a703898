//! Multibracket order strategies: the entry with its brackets, each bracket's target and stop
//! created as the entry fills, stops trailed and moved to break-even as the price moves, and the
//! strategy's status kept until it is done.

use super::*;

impl Op<'_> {
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

    pub(super) fn link(&mut self, sid: Id, order_id: Id, label: String) {
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
    pub(super) fn strategy_entry_filled(&mut self, sid: Id) {
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

    pub(super) fn create_bracket(
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
    pub(super) fn adjust_strategy_stops(&mut self, contract_index: usize, price: Decimal) {
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
    pub(super) fn strategy_check_done(&mut self, sid: Id) {
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
}
