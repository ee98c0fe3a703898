//! One sub-account at its broker: each operation of the choreography, with its typed outcome.

use std::time::{Duration, Instant};

use jt_broker::{AccountId, Broker, BrokerError, Capabilities, Contract, ExitOrders, OrderReport};
use jt_domain::bracket::{self, EntryOrder, StopOrder};
use jt_domain::order::{OrderRequest, StopKind, TimeInForce};
use jt_domain::{Contracts, Direction, Instrument, Settings, instrument};
use rust_decimal::Decimal;
use tracing::{error, warn};

use crate::StepError;
use crate::protection;

/// How long the choreography waits for the broker.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Waits between reads of a fill price the broker has not reported yet (DOMAIN.md §5.5:
    /// 0.5 s, 1 s, 1.5 s).
    pub fill_price_waits: Vec<Duration>,
    /// How long a close may take to show as flat before a flip's new entry is sent.
    pub flat_wait: Duration,
    /// How often the position is read while waiting for flat.
    pub flat_poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            fill_price_waits: vec![
                Duration::from_millis(500),
                Duration::from_millis(1000),
                Duration::from_millis(1500),
            ],
            flat_wait: Duration::from_secs(3),
            flat_poll: Duration::from_millis(100),
        }
    }
}

/// The protection placed for a whole position after a DCA add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// The position's average price as the broker reported it.
    pub average: Decimal,
    /// The position's size.
    pub qty: Contracts,
    /// Broker order ids placed (or found: placed by an earlier attempt).
    pub orders: Vec<String>,
    /// What the trader should know (a trailing stop placed fixed).
    pub notes: Vec<String>,
}

/// What a protection move did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Moved {
    /// Broker order ids moved or placed.
    pub orders: Vec<String>,
    /// What was done, in words.
    pub notes: Vec<String>,
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired {
    /// Placed (or found placed by an earlier attempt) what was missing.
    Placed {
        /// The position's size the orders cover.
        qty: Contracts,
        /// The position's average price.
        average: Decimal,
        /// Broker order ids.
        orders: Vec<String>,
        /// What was placed and what was already there, in words.
        notes: Vec<String>,
    },
    /// Nothing to repair: the position is flat, the other way, or already protected.
    Nothing {
        /// Why, in words.
        reason: String,
    },
}

/// Checks that the broker can carry `entry` as asked, before anything is sent: a resting entry
/// that must expire at the day's end on a broker without day orders, or a bracket needing a
/// feature the broker lacks, is refused with what to change — never sent without the
/// protection or the expiry the trader asked for.
///
/// # Errors
/// The refusal, in the trader's words.
pub fn check_entry(
    capabilities: &Capabilities,
    entry: &EntryOrder,
    time_in_force: Option<TimeInForce>,
) -> Result<(), String> {
    check_time_in_force(capabilities, time_in_force)?;
    if let EntryOrder::Bracket(b) = entry {
        let missing = capabilities.missing_for(b);
        if !missing.is_empty() {
            return Err(format!(
                "the broker cannot place this bracket as configured (missing: {missing:?})"
            ));
        }
    }
    Ok(())
}

/// The time-in-force part of [`check_entry`]: a resting entry that must expire at the day's
/// end needs a broker with day orders.
///
/// # Errors
/// The refusal, in the trader's words.
pub fn check_time_in_force(
    capabilities: &Capabilities,
    time_in_force: Option<TimeInForce>,
) -> Result<(), String> {
    if time_in_force == Some(TimeInForce::Day) && !capabilities.day_orders {
        return Err(
            "the broker cannot expire a resting entry at the end of the trading day: send \
             timeInForce gtc (it then works until the next signal) or a market entry"
                .to_string(),
        );
    }
    Ok(())
}

/// One sub-account at its broker, where the choreography runs. Cheap: borrowed parts.
#[derive(Debug, Clone, Copy)]
pub struct Desk<'a> {
    broker: &'a dyn Broker,
    account: &'a AccountId,
    timing: &'a Timing,
}

impl<'a> Desk<'a> {
    /// The sub-account `account` of `broker`'s login.
    #[must_use]
    pub fn new(broker: &'a dyn Broker, account: &'a AccountId, timing: &'a Timing) -> Self {
        Self {
            broker,
            account,
            timing,
        }
    }

    /// The broker.
    #[must_use]
    pub fn broker(&self) -> &'a dyn Broker {
        self.broker
    }

    /// The sub-account.
    #[must_use]
    pub fn account(&self) -> &'a AccountId {
        self.account
    }

    /// The order placed with `client_order_id`, if the broker has it.
    ///
    /// # Errors
    /// The broker's.
    pub async fn find(&self, client_order_id: &str) -> Result<Option<OrderReport>, StepError> {
        Ok(self
            .broker
            .find_order(self.account, client_order_id)
            .await?)
    }

    /// The position held on `contract`: signed net quantity (0 when flat) and average price.
    ///
    /// # Errors
    /// The broker's.
    pub async fn held(&self, contract: &Contract) -> Result<(i64, Option<Decimal>), StepError> {
        let p = self.broker.position(self.account, &contract.id).await?;
        Ok(p.map_or((0, None), |p| (p.net_qty, p.avg_price)))
    }

    /// Cancels a previous resting entry by its client order id when it still works (its
    /// bracket's legs, suspended until a fill, go with it); whether it was working. Already
    /// filled, cancelled or expired: nothing to do.
    ///
    /// # Errors
    /// The broker's (a cancel refused because the order went away meanwhile is not one).
    pub async fn cancel_resting(&self, client_order_id: &str) -> Result<bool, StepError> {
        let Some(order) = self.find(client_order_id).await? else {
            return Ok(false);
        };
        if !order.status.is_open() {
            return Ok(false);
        }
        match self.broker.cancel_order(self.account, &order.id).await {
            Ok(()) | Err(BrokerError::Rejected { .. }) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Cancels every working order of `contract` (looked up at the broker, per sub-account);
    /// the ids cancelled. An order that filled or went away meanwhile is not a failure.
    ///
    /// # Errors
    /// The broker's, for the look-up or any cancel it did not refuse.
    pub async fn cancel_working(&self, contract: &Contract) -> Result<Vec<String>, StepError> {
        let report = self
            .broker
            .cancel_working_orders(self.account, contract)
            .await?;
        cancelled(report)
    }

    /// Cancels every working order of the sub-account, on every contract; positions stay.
    ///
    /// # Errors
    /// The broker's, for the look-up or any cancel it did not refuse.
    pub async fn cancel_all(&self) -> Result<Vec<String>, StepError> {
        let working = self.broker.working_orders(self.account).await?;
        let mut ids = Vec::new();
        for order in working.iter().filter(|o| o.status.is_open()) {
            match self.broker.cancel_order(self.account, &order.id).await {
                Ok(()) => ids.push(order.id.to_string()),
                Err(BrokerError::Rejected { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(ids)
    }

    /// Closes the position on `contract` (the broker cancels its working orders there and
    /// sends a market order for the net); the closing order, if there was a position. With
    /// `wait_flat` (an entry follows: a flip), waits until the broker shows flat, so the entry
    /// opens the new direction instead of netting against the old one. `seen_open`: the caller
    /// has just read the position open, so the broker may skip its own read
    /// ([`Broker::close_open_position`]); never a quantity.
    ///
    /// # Errors
    /// The broker's; [`StepError::NotFlat`] when flat does not show within the wait.
    pub async fn close(
        &self,
        contract: &Contract,
        wait_flat: bool,
        seen_open: bool,
    ) -> Result<Option<String>, StepError> {
        let outcome = if seen_open {
            self.broker
                .close_open_position(self.account, contract)
                .await?
        } else {
            self.broker.close_position(self.account, contract).await?
        };
        let order = outcome.order_id.map(|o| o.0);
        if !wait_flat {
            return Ok(order);
        }
        let deadline = Instant::now() + self.timing.flat_wait;
        loop {
            let (net, _) = self.held(contract).await?;
            if net == 0 {
                return Ok(order);
            }
            if Instant::now() >= deadline {
                return Err(StepError::NotFlat);
            }
            tokio::time::sleep(self.timing.flat_poll).await;
        }
    }

    /// Places an entry: a bracket in one call, or a plain order; with a time in force, as a
    /// resting entry whose protection attaches at the broker when it fills. The entry's (or the
    /// bracket's) broker id, when reported.
    ///
    /// # Errors
    /// The broker's.
    pub async fn enter(
        &self,
        contract: &Contract,
        entry: &EntryOrder,
        time_in_force: Option<TimeInForce>,
    ) -> Result<Option<String>, StepError> {
        let ack = match (entry, time_in_force) {
            (entry, Some(tif)) => {
                self.broker
                    .place_resting_entry(self.account, contract, entry, tif)
                    .await?
            }
            (EntryOrder::Bracket(b), None) => {
                self.broker.place_bracket(self.account, contract, b).await?
            }
            (EntryOrder::Market(o), None) => return self.place(contract, o).await.map(Some),
        };
        Ok(ack.entry_order_id.map(|o| o.0).or(ack.bracket_id))
    }

    /// Places one plain order; its broker id.
    ///
    /// # Errors
    /// The broker's.
    pub async fn place(
        &self,
        contract: &Contract,
        order: &OrderRequest,
    ) -> Result<String, StepError> {
        let ack = self
            .broker
            .place_order(self.account, contract, order)
            .await?;
        Ok(ack.order_id.0)
    }

    /// Places `order` unless an order with its client order id already exists (placed by an
    /// earlier attempt); its broker id either way.
    ///
    /// # Errors
    /// The broker's.
    pub async fn place_once(
        &self,
        contract: &Contract,
        order: &OrderRequest,
    ) -> Result<String, StepError> {
        if let Some(found) = self.find(&order.client_order_id).await? {
            return Ok(found.id.0);
        }
        self.place(contract, order).await
    }

    /// Places a standalone stop once (by its client order id). A broker that cannot trail a
    /// standalone stop after a trigger gets a fixed stop at the same distance: the position is
    /// protected, and the note says the trailing part was not placed. Its broker id and the note.
    ///
    /// # Errors
    /// The broker's.
    pub async fn place_stop_once(
        &self,
        contract: &Contract,
        stop: &StopOrder,
    ) -> Result<(String, Option<String>), StepError> {
        if let Some(found) = self.find(&stop.client_order_id).await? {
            return Ok((found.id.0, None));
        }
        self.place_stop(contract, stop).await
    }

    /// Places a standalone stop, fixed at the same distance when the broker cannot trail it
    /// after a trigger (see [`Desk::place_stop_once`]); no look-up first.
    async fn place_stop(
        &self,
        contract: &Contract,
        stop: &StopOrder,
    ) -> Result<(String, Option<String>), StepError> {
        match self.broker.place_stop(self.account, contract, stop).await {
            Ok(ack) => Ok((ack.order_id.0, None)),
            Err(BrokerError::Unsupported { feature }) if !matches!(stop.kind, StopKind::Fixed) => {
                warn!(
                    ?feature,
                    "trailing stop placed as a fixed stop at the same distance"
                );
                let fixed = StopOrder {
                    kind: StopKind::Fixed,
                    ..stop.clone()
                };
                let ack = self
                    .broker
                    .place_stop(self.account, contract, &fixed)
                    .await?;
                Ok((
                    ack.order_id.0,
                    Some(format!(
                        "the broker cannot trail this stop ({feature}): placed fixed at the same \
                         distance"
                    )),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The position's size and average once the broker reports both for a `direction`
    /// position, read again after each of [`Timing::fill_price_waits`]; `None` when it never
    /// did.
    async fn average_of(
        &self,
        contract: &Contract,
        direction: Direction,
    ) -> Result<Option<(Contracts, Decimal)>, StepError> {
        let mut waits = self.timing.fill_price_waits.iter();
        loop {
            let p = self.broker.position(self.account, &contract.id).await?;
            if let Some(p) = p.filter(|p| Direction::of_net(p.net_qty) == Some(direction))
                && let Some(avg) = p.avg_price.filter(|a| *a > Decimal::ZERO)
            {
                return Ok(Some((
                    Contracts::try_from(p.net_qty.unsigned_abs()).unwrap_or(Contracts::MAX),
                    avg,
                )));
            }
            match waits.next() {
                Some(w) => tokio::time::sleep(*w).await,
                None => return Ok(None),
            }
        }
    }

    /// After a DCA add: the new average from the broker (read again while it is unknown),
    /// every working take-profit (and stop, when the settings have one) of the position
    /// cancelled, one of each placed for the whole position (client order ids
    /// `client_order_id` + `-tp` / `-sl`). A stop is never computed from an unknown fill price.
    /// `resumed`: an earlier attempt may have placed the replacements — they are looked up by
    /// their client order ids, kept (never cancelled with the old exits) and not placed again;
    /// a first attempt cannot have any and makes no look-up.
    ///
    /// # Errors
    /// [`StepError::Unprotected`] when the average never comes (nothing was cancelled or
    /// placed); the broker's; [`StepError::Invalid`] when the settings cannot make the orders.
    pub async fn replace_protection(
        &self,
        contract: &Contract,
        direction: Direction,
        settings: &Settings,
        client_order_id: &str,
        resumed: bool,
    ) -> Result<Protected, StepError> {
        let instrument = instrument_of(contract)?;
        let Some((qty, average)) = self.average_of(contract, direction).await? else {
            error!(
                "POSITION UNPROTECTED: the add's fill price is unknown; no take-profit or stop was placed"
            );
            return Err(StepError::Unprotected(
                "position unprotected: the broker did not report the position's average price \
                 after the add; no take-profit or stop was placed — protect it by hand"
                    .into(),
            ));
        };
        let protection = bracket::dca_protection(
            settings,
            instrument,
            direction,
            qty,
            Some(average),
            client_order_id,
        )
        .map_err(|e| StepError::Invalid(e.to_string()))?;
        let which = if protection.stop.is_some() {
            ExitOrders::All
        } else {
            ExitOrders::TakeProfits
        };
        // Replacements an earlier attempt placed (a resumed intent) are kept, never cancelled
        // with the old exits and never placed twice.
        let mut ours = Vec::new();
        if resumed
            && let Some(tp) = &protection.take_profit
            && let Some(found) = self.find(&tp.client_order_id).await?
        {
            ours.push((tp.client_order_id.clone(), found));
        }
        if resumed
            && let Some(stop) = &protection.stop
            && let Some(found) = self.find(&stop.client_order_id).await?
        {
            ours.push((stop.client_order_id.clone(), found));
        }
        if protection.take_profit.is_some() || protection.stop.is_some() {
            let report = if ours.is_empty() {
                self.broker
                    .cancel_exit_orders(self.account, contract, direction, which)
                    .await?
            } else {
                let mut report = jt_broker::CancelReport::default();
                for o in self.broker.working_orders(self.account).await? {
                    if !which.matches(&o, &contract.id, direction)
                        || ours.iter().any(|(_, x)| x.id == o.id)
                    {
                        continue;
                    }
                    match self.broker.cancel_order(self.account, &o.id).await {
                        Ok(()) => report.canceled.push(o.id),
                        Err(error) => report.failures.push(jt_broker::ItemFailure {
                            target: format!("cancel {}", o.id),
                            error,
                        }),
                    }
                }
                report
            };
            if !report.failures.is_empty() {
                warn!(failures = ?report.failures, "some exit orders could not be cancelled");
            }
        }
        let mut out = Protected {
            average,
            qty,
            orders: Vec::new(),
            notes: Vec::new(),
        };
        let found = |cid: &str| ours.iter().find(|(c, _)| c == cid).map(|(_, o)| o);
        if let Some(tp) = &protection.take_profit {
            match found(&tp.client_order_id) {
                Some(o) => out.orders.push(o.id.0.clone()),
                None => out.orders.push(self.place(contract, tp).await?),
            }
        }
        if let Some(stop) = &protection.stop {
            match found(&stop.client_order_id) {
                Some(o) => out.orders.push(o.id.0.clone()),
                None => {
                    let (id, note) = self.place_stop(contract, stop).await?;
                    out.orders.push(id);
                    out.notes.extend(note);
                }
            }
        }
        Ok(out)
    }

    /// Resizes the `direction` position's working exit orders on `contract` to cover
    /// `target` contracts ([`protection::resize_plan`]: take-profits trimmed from the farthest
    /// with their one-cancels-other stops, stops to `target`, one stop grown when they cover
    /// less), with the broker's own calls (modify the quantity, or cancel at 0). Safe to
    /// repeat; the number of orders changed.
    ///
    /// # Errors
    /// The broker's (an order that went away while it was being trimmed is not one).
    pub async fn resize_protection(
        &self,
        contract: &Contract,
        direction: Direction,
        target: Contracts,
    ) -> Result<usize, StepError> {
        let working = self.broker.working_orders(self.account).await?;
        let changes = protection::resize_plan(&working, &contract.id, direction, target);
        for change in &changes {
            let result = if change.to == 0 {
                self.broker
                    .cancel_order(self.account, &change.order.id)
                    .await
            } else {
                self.broker
                    .modify_order_qty(self.account, &change.order, change.total())
                    .await
            };
            match result {
                Ok(()) => {}
                // Gone meanwhile (filled, or cancelled with its partner): nothing left to trim.
                Err(BrokerError::Rejected { .. }) if change.to < change.from => {
                    warn!(order = %change.order.id, "exit order already gone while resizing");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(changes.len())
    }

    /// The stops of a `direction` position grown (or trimmed) to the size the broker holds
    /// now: after contracts were added without protection of their own (a copied add).
    /// Nothing when the position is flat or the other way.
    ///
    /// # Errors
    /// The broker's.
    pub async fn cover_position(
        &self,
        contract: &Contract,
        direction: Direction,
    ) -> Result<usize, StepError> {
        let (net, _) = self.held(contract).await?;
        if Direction::of_net(net) != Some(direction) {
            return Ok(0);
        }
        let held = Contracts::try_from(net.unsigned_abs()).unwrap_or(Contracts::MAX);
        self.resize_protection(contract, direction, held).await
    }

    /// A partial exit's reduction: the market order on the exit side (the protection was
    /// resized before it). When the broker refuses it, the stops are made to cover the
    /// position the broker still holds again (the take-profits stay trimmed).
    ///
    /// # Errors
    /// [`StepError::ReduceRefused`] for a refusal (with what happened to the stops); the
    /// broker's other errors as they are (the reduction may still be sent, or may have been).
    pub async fn reduce(
        &self,
        contract: &Contract,
        direction: Direction,
        order: &OrderRequest,
    ) -> Result<String, StepError> {
        match self.place(contract, order).await {
            Err(StepError::Broker(error)) if is_refusal(&error) => {
                let (restored, under_protected) = self.restore(contract, direction).await;
                Err(StepError::ReduceRefused {
                    error,
                    restored,
                    under_protected,
                })
            }
            other => other,
        }
    }

    /// After a refused reduction: the stops cover the position the broker still holds.
    async fn restore(&self, contract: &Contract, direction: Direction) -> (String, bool) {
        let held = match self.broker.position(self.account, &contract.id).await {
            Ok(p) => p.map_or(0, |p| u32::try_from(p.net_qty.unsigned_abs()).unwrap_or(0)),
            Err(e) => {
                return (
                    format!(
                        "POSITION MAY BE UNDER-PROTECTED: its stop was resized for the partial \
                         exit and the position could not be read back ({e}); check it by hand"
                    ),
                    true,
                );
            }
        };
        let resized = match self.resize_protection(contract, direction, held).await {
            // What works now, read back: the restore is reported as it is, never assumed.
            Ok(_) => self.broker.working_orders(self.account).await.map(|w| {
                w.iter()
                    .filter(|o| ExitOrders::Stops.matches(o, &contract.id, direction))
                    .map(|o| o.qty.unwrap_or(0).saturating_sub(o.filled_qty.unwrap_or(0)))
                    .sum::<Contracts>()
            }),
            Err(e) => Err(match e {
                StepError::Broker(e) => e,
                other => BrokerError::transport(other.to_string()),
            }),
        };
        match resized {
            Ok(stops) if stops >= held => (
                format!("the stop covers the {held} contracts still held again"),
                false,
            ),
            Ok(0) => (
                format!("no stop works on the {held} contracts still held (none to restore)"),
                false,
            ),
            Ok(_) | Err(_) => {
                error!(
                    "POSITION UNDER-PROTECTED: the stop could not be restored after a refused partial exit"
                );
                (
                    format!(
                        "POSITION UNDER-PROTECTED: the stop was resized for the partial exit and \
                         could not be restored to the {held} contracts still held; protect them \
                         by hand"
                    ),
                    true,
                )
            }
        }
    }

    /// Places what a `direction` position on `contract` is missing — its take-profit
    /// (`take_profit`) and/or its stop (`stop`) — for the whole position the broker holds now,
    /// at its average ± the distances of `settings` (the first take-profit target, the stop
    /// settings), client order ids `client_order_id` + `-tp` / `-sl`, each placed once. A kind
    /// already working on the position is not placed again. A position that went flat or
    /// turned meanwhile is not repaired.
    ///
    /// # Errors
    /// [`StepError::Unprotected`] when the broker does not report the position's average;
    /// [`StepError::Invalid`] when the settings give no such order; the broker's.
    pub async fn repair_protection(
        &self,
        contract: &Contract,
        direction: Direction,
        settings: &Settings,
        client_order_id: &str,
        take_profit: bool,
        stop: bool,
    ) -> Result<Repaired, StepError> {
        let instrument = instrument_of(contract)?;
        let (net, _) = self.held(contract).await?;
        match Direction::of_net(net) {
            None => {
                return Ok(Repaired::Nothing {
                    reason: "the position is flat now: nothing to protect".into(),
                });
            }
            Some(d) if d != direction => {
                return Ok(Repaired::Nothing {
                    reason: format!("the position is {d} now, not {direction}: not repaired"),
                });
            }
            Some(_) => {}
        }
        let Some((qty, average)) = self.average_of(contract, direction).await? else {
            error!("POSITION UNPROTECTED: the position's average price is unknown; no repair");
            return Err(StepError::Unprotected(
                "position unprotected: the broker does not report the position's average price, \
                 so its missing take-profit or stop cannot be placed — protect it by hand"
                    .into(),
            ));
        };
        let protection = bracket::dca_protection(
            settings,
            instrument,
            direction,
            qty,
            Some(average),
            client_order_id,
        )
        .map_err(|e| StepError::Invalid(e.to_string()))?;
        let working = self.broker.working_orders(self.account).await?;
        let has = |which: ExitOrders| {
            working
                .iter()
                .any(|o| which.matches(o, &contract.id, direction))
        };
        let mut orders = Vec::new();
        let mut notes = Vec::new();
        if take_profit {
            match &protection.take_profit {
                // Ours from an earlier attempt is found by its id; anyone else's is kept.
                Some(tp)
                    if self.find(&tp.client_order_id).await?.is_some()
                        || !has(ExitOrders::TakeProfits) =>
                {
                    orders.push(self.place_once(contract, tp).await?);
                    notes.push(format!("take-profit for {qty} placed"));
                }
                Some(_) => notes.push("a take-profit is already working".into()),
                None => {
                    return Err(StepError::Invalid(
                        "no take-profit to place: the settings have no take-profit target (tp_targets)"
                            .into(),
                    ));
                }
            }
        }
        if stop {
            match &protection.stop {
                Some(s)
                    if self.find(&s.client_order_id).await?.is_some()
                        || !has(ExitOrders::Stops) =>
                {
                    let (id, note) = self.place_stop_once(contract, s).await?;
                    orders.push(id);
                    notes.push(format!("stop for {qty} placed"));
                    notes.extend(note);
                }
                Some(_) => notes.push("a stop is already working".into()),
                None => {
                    return Err(StepError::Invalid(
                        "no stop to place: the settings have no stop (sl_enabled, sl_amount)"
                            .into(),
                    ));
                }
            }
        }
        Ok(Repaired::Placed {
            qty,
            average,
            orders,
            notes,
        })
    }

    /// Sets the `direction` position's take-profit (`take_profit`) or stop to `price` (a copied
    /// follower following its leader's, issue #22): every working one of that kind is moved in
    /// place to it ([`Broker::modify_order_price`]: same order id, same quantity); a position
    /// with none gets one for its whole size, placed once (client order id `client_order_id` +
    /// `-tp`/`-sl`). A trailing stop trails by itself and is left as it is (said in the notes).
    /// A position that is flat or the other way is left alone (the notes say so). Safe to
    /// repeat: an order already at the price is not sent again.
    ///
    /// # Errors
    /// The broker's (a move or placement refused: the position keeps what it had, and the
    /// caller reports it).
    pub async fn set_protection(
        &self,
        contract: &Contract,
        direction: Direction,
        take_profit: bool,
        price: Decimal,
        client_order_id: &str,
    ) -> Result<Moved, StepError> {
        let instrument = instrument_of(contract)?;
        let on_tick = jt_domain::Price::on_tick(instrument, price);
        let price = on_tick.value();
        let what = if take_profit { "take-profit" } else { "stop" };
        let (net, average) = self.held(contract).await?;
        if Direction::of_net(net) != Some(direction) {
            return Ok(Moved {
                orders: Vec::new(),
                notes: vec![format!(
                    "the follower holds no {direction} now: its {what} is not set"
                )],
            });
        }
        let which = if take_profit {
            ExitOrders::TakeProfits
        } else {
            ExitOrders::Stops
        };
        let working: Vec<OrderReport> = self
            .broker
            .working_orders(self.account)
            .await?
            .into_iter()
            .filter(|o| which.matches(o, &contract.id, direction))
            .collect();
        let mut out = Moved::default();
        if working.is_empty() {
            let qty = Contracts::try_from(net.unsigned_abs()).unwrap_or(Contracts::MAX);
            if take_profit {
                let order = OrderRequest {
                    client_order_id: format!(
                        "{client_order_id}{}",
                        bracket::DCA_TAKE_PROFIT_SUFFIX
                    ),
                    side: direction.exit_side(),
                    qty,
                    kind: jt_domain::order::OrderKind::Limit { price: on_tick },
                };
                out.orders.push(self.place_once(contract, &order).await?);
            } else {
                let stop = StopOrder {
                    client_order_id: format!("{client_order_id}{}", bracket::DCA_STOP_SUFFIX),
                    side: direction.exit_side(),
                    qty,
                    stop: on_tick,
                    distance: average.map_or(Decimal::ZERO, |a| (a - price).abs()),
                    kind: StopKind::Fixed,
                };
                let (id, note) = self.place_stop_once(contract, &stop).await?;
                out.orders.push(id);
                out.notes.extend(note);
            }
            out.notes
                .push(format!("{what} for {qty} placed at {}", price.normalize()));
            return Ok(out);
        }
        for order in working {
            let current = if take_profit {
                order.price
            } else {
                order.stop_price
            };
            if matches!(
                order.order_type,
                Some(jt_broker::OrderType::TrailingStop | jt_broker::OrderType::TrailingStopLimit)
            ) {
                out.notes.push(format!(
                    "the trailing stop {} trails by itself: not moved",
                    order.id
                ));
                continue;
            }
            if current == Some(price) {
                out.notes.push(format!(
                    "the {what} {} is already at {}",
                    order.id,
                    price.normalize()
                ));
                continue;
            }
            self.broker
                .modify_order_price(self.account, &order, price)
                .await?;
            out.orders.push(order.id.0.clone());
            out.notes.push(format!(
                "{what} {} moved to {}",
                order.id,
                price.normalize()
            ));
        }
        Ok(out)
    }

    /// Flattens the sub-account: every working order cancelled, every position closed. Safe to
    /// repeat.
    ///
    /// # Errors
    /// The broker's for the reads; [`StepError::Incomplete`] when a part failed.
    pub async fn flatten(&self) -> Result<(), StepError> {
        let report = self.broker.flatten_account(self.account).await?;
        if report.failures.is_empty() {
            Ok(())
        } else {
            Err(StepError::Incomplete(format!(
                "flatten incomplete: {:?}",
                report.failures
            )))
        }
    }
}

/// Whether a refused order is final (nothing was sent, nothing will be): a reduction refused
/// so restores the protection it resized. Throttling, transport trouble and unknown outcomes
/// are not: the reduction is tried again.
fn is_refusal(e: &BrokerError) -> bool {
    matches!(
        e,
        BrokerError::Rejected { .. }
            | BrokerError::InvalidRequest { .. }
            | BrokerError::Unsupported { .. }
            | BrokerError::UnknownContract { .. }
            | BrokerError::UnknownAccount { .. }
            | BrokerError::NeedsReauth { .. }
    )
}

fn cancelled(report: jt_broker::CancelReport) -> Result<Vec<String>, StepError> {
    // Already filled or cancelled (a refusal): nothing left to cancel.
    match report
        .failures
        .into_iter()
        .find(|f| !matches!(f.error, BrokerError::Rejected { .. }))
    {
        Some(failure) => Err(failure.error.into()),
        None => Ok(report.canceled.into_iter().map(|o| o.0).collect()),
    }
}

fn instrument_of(contract: &Contract) -> Result<&'static Instrument, StepError> {
    instrument::by_root(&contract.root).map_err(|e| StepError::Invalid(e.to_string()))
}
