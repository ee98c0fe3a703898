//! Order lifecycle: a new order's terms checked, the order created with its command, command
//! report and execution report, its status and versions kept, and every way it ends other than
//! a fill — client cancel and modify, server changes, rejections, and a contract's orders
//! cancelled.

use super::*;

impl Op<'_> {
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

    /// Records a command and emits it: a client's (`sent`) or the exchange's own (`None`: no
    /// sender, automated).
    pub(super) fn command(
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

    pub(super) fn command_report(
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
    pub(super) fn execution_report(
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

    pub(super) fn emit_order(&mut self, order_id: Id) {
        if let Some(rec) = self.st.orders.get_mut(&order_id) {
            rec.updated_us = self.now;
            let o = rec.order.clone();
            self.push(Change::updated(Entity::Order(o)));
        }
    }

    pub(super) fn set_status(&mut self, order_id: Id, status: OrdStatus) {
        if let Some(rec) = self.st.orders.get_mut(&order_id) {
            rec.order.ord_status = status;
            if !status.is_live() {
                rec.live = None;
                self.st.live_ids.remove(&order_id);
            }
        }
    }

    /// A modification the exchange makes on its own (OCO reductions, bracket growth, trailing
    /// and break-even moves): a `Modify` command without a sender, its report, a `Replaced`
    /// execution report and the new version.
    pub(super) fn server_modify(&mut self, order_id: Id, f: impl FnOnce(&mut OrderVersion)) {
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
    pub(super) fn modify_accepted(&mut self, order_id: Id, command_id: Id) {
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

    pub(super) fn new_version(&mut self, order_id: Id, f: impl FnOnce(&mut OrderVersion)) {
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

    pub(super) fn reject_live(&mut self, order_id: Id, text: &str) {
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

    pub(super) fn too_late(
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
}

fn command_status_of(s: OrdStatus) -> CommandStatus {
    match s {
        OrdStatus::Suspended => CommandStatus::OnHold,
        _ => CommandStatus::AtExecution,
    }
}
