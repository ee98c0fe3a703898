//! A trader's share of a signal (DOMAIN.md §5): the broker's real position and the trader's
//! filter state read at once, the alert's own instructions applied to the trader's settings,
//! the domain's decision, and the concrete orders (client order ids derived from the intent).

use chrono::{DateTime, Utc};
use jt_broker::Contract;
use jt_domain::bracket::{self, EntryOrder};
use jt_domain::decision::{
    AlertSize, BrokerPosition, Decision, DecisionInput, IntentPlan, PlanStep,
};
use jt_domain::filters::FilterState;
use jt_domain::order::{OrderKind, OrderRequest, TimeInForce};
use jt_domain::{Instrument, RiskSizing, instrument, overrides, quantity, session};
use jt_messages::SignalIntent;
use jt_store::repo::accounts::SubAccount;
use jt_store::{IntentId, IntentKind, StoreError};
use jt_trading::{Choreography, Done, Step};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Choice, Inputs, Plan, Refusal, Stored};

/// What is stored with a signal's intent when it is sent: the plan and the exact orders. Its
/// shape is what every signal intent has stored since plans were stored: a plan written before
/// a deploy resumes after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredPlan {
    plan: IntentPlan,
    contract: Contract,
    /// The entry of an entry, fresh entry or flip.
    entry: Option<EntryOrder>,
    /// The market order of a DCA add.
    add: Option<OrderRequest>,
    /// The settings the orders were built with (after the alert's own exits); read
    /// tolerantly (a plan written by a newer executor resumes here).
    #[serde(deserialize_with = "jt_domain::tolerant::deserialize")]
    settings: jt_domain::Settings,
    /// The market order of a partial exit.
    #[serde(default)]
    reduce: Option<OrderRequest>,
    /// A resting entry's time in force (`None`: the entry is a market order).
    #[serde(default)]
    time_in_force: Option<TimeInForce>,
    /// The client order id of the trader's previous resting entry, cancelled first when it
    /// still works (the next signal on the contract replaces it).
    #[serde(default)]
    cancel_resting: Option<String>,
}

impl StoredPlan {
    /// The steps of the plan; `main` is the intent's client order id.
    ///
    /// # Errors
    /// A plan missing the order of one of its steps (refused, never skipped).
    pub(crate) fn choreography(&self, main: &str) -> Result<Choreography, String> {
        let mut steps = Vec::new();
        if let Some(previous) = &self.cancel_resting {
            steps.push(Step::CancelResting {
                client_order_id: previous.clone(),
            });
        }
        for step in self.plan.steps() {
            let next = match step {
                PlanStep::CancelWorkingOrders => Step::CancelWorkingOrders,
                // The decision closes a position it read open (its size).
                PlanStep::ClosePosition { qty, .. } => Step::Close {
                    wait_flat: self.entry.is_some(),
                    seen_open: qty > 0,
                },
                PlanStep::PlaceEntry { .. } => match &self.entry {
                    Some(entry) => Step::Enter {
                        entry: entry.clone(),
                        time_in_force: self.time_in_force,
                    },
                    None => return Err("the plan has no entry order".into()),
                },
                PlanStep::MarketAdd { .. } => match &self.add {
                    Some(order) => Step::Add {
                        order: order.clone(),
                    },
                    None => return Err("the plan has no add order".into()),
                },
                PlanStep::ResizeProtection { position_qty } => match self.plan {
                    IntentPlan::Reduce { direction, .. } => Step::ResizeProtection {
                        direction,
                        position_qty,
                    },
                    _ => return Err("protection resized outside a partial exit".into()),
                },
                PlanStep::ReducePosition { .. } => match (&self.plan, &self.reduce) {
                    (IntentPlan::Reduce { direction, .. }, Some(order)) => Step::Reduce {
                        direction: *direction,
                        order: order.clone(),
                    },
                    _ => return Err("the plan has no reduce order".into()),
                },
                PlanStep::ReplaceProtection { .. } => match self.plan {
                    IntentPlan::Add { direction, .. } => Step::ReplaceProtection {
                        direction,
                        settings: self.settings.clone(),
                        client_order_id: main.to_string(),
                    },
                    _ => return Err("protection replacement outside a DCA add".into()),
                },
            };
            steps.push(next);
        }
        let has_main = self.entry.is_some() || self.add.is_some() || self.reduce.is_some();
        Ok(Choreography {
            contract: Some(self.contract.clone()),
            steps,
            main: has_main.then(|| main.to_string()),
        })
    }

    /// The intent's summary once done.
    pub(crate) fn summary(&self, done: &Done) -> String {
        let mut summary = summary_of(&self.plan);
        if let (Some(tif), Some(entry)) = (self.time_in_force, &self.entry) {
            summary.push_str(&format!(
                "; the entry rests as a {} until {}",
                resting_words(entry),
                match tif {
                    TimeInForce::Day => "it fills, the end of the trading day or the next signal",
                    TimeInForce::Gtc => "it fills or the next signal",
                }
            ));
        }
        if self.cancel_resting.is_some() && !done.main_found {
            summary.push_str("; the previous resting entry was cancelled first");
        }
        summary
    }

    /// The row's description of the plan.
    fn into_plan(self) -> Plan {
        let (kind, side, quantity) = describe(&self.plan);
        Plan {
            contract: Some(self.contract.name.clone()),
            kind,
            side,
            quantity,
            resting_entry: self.time_in_force.is_some() && self.entry.is_some(),
            stored: Stored::Signal(Box::new(self)),
        }
    }
}

/// Reads the broker and decides.
pub(crate) async fn decide(inputs: &Inputs<'_>, s: &SignalIntent) -> Result<Choice, Refusal> {
    let msg = inputs.msg;
    let instrument =
        instrument::resolve_ticker(&s.symbol).map_err(|e| Refusal::Failed(format!("{e}")))?;
    let contract = inputs
        .broker
        .resolve_contract(&broker_symbol(&s.symbol, instrument))
        .await?;
    let decided_at = msg.received_at + chrono::Duration::seconds(i64::from(s.delay_secs));
    // The broker's position and the store's filter state do not depend on each other.
    let (position, filters) = tokio::join!(
        inputs.broker.position(inputs.account, &contract.id),
        filter_state(inputs, s, inputs.sub, decided_at),
    );
    let position = position?;
    let position = BrokerPosition {
        net_qty: position.as_ref().map_or(0, |p| p.net_qty),
        average_price: position.as_ref().and_then(|p| p.avg_price),
    };
    let (filters, resting) = filters?;
    let reference = s.price.or(position.average_price);
    // The alert's own risk instructions replace the trader's for this signal (entries only).
    let settings = match s.action.entry_direction() {
        Some(direction) => overrides::apply_all(
            &s.settings,
            direction,
            Some(instrument),
            s.price,
            s.take_profit.as_ref(),
            s.stop_loss.as_ref(),
            &s.risk,
        )
        .map_err(|e| Refusal::Failed(format!("{e}")))?,
        None => s.settings.clone(),
    };
    let alert_size = match (s.action.entry_direction(), s.risk.sizing) {
        (Some(_), Some(sizing)) => {
            Some(risk_size(inputs, &settings, instrument, reference, sizing).await?)
        }
        _ => None,
    };
    let decision = jt_domain::decision::decide(&DecisionInput {
        action: s.action,
        position,
        settings: &settings,
        filters,
        now: decided_at,
        exit_fraction: s.exit_fraction,
        alert_size,
    })
    .map_err(|e| Refusal::Failed(format!("{e}")))?;
    let plan = match decision {
        Decision::Skip { reason } => {
            return Ok(Choice::Skip(format!("{} ({})", reason, reason.rule())));
        }
        Decision::Execute { plan } => plan,
    };
    let client_order_id = msg.client_order_id();
    let mut entry = None;
    let mut add = None;
    let mut reduce = None;
    let mut time_in_force = None;
    let steps = plan.steps();
    for &step in &steps {
        match step {
            PlanStep::PlaceEntry { side, qty } => {
                let mut built = bracket::build_entry(
                    &settings,
                    instrument,
                    side.opens(),
                    qty,
                    reference,
                    client_order_id.clone(),
                )
                .map_err(|e| Refusal::Failed(format!("{e}")))?;
                if let Some(spec) = &s.entry_order {
                    let kind = spec
                        .order_kind(instrument, s.settings.inverse_strategy)
                        .map_err(Refusal::Failed)?;
                    match &mut built {
                        EntryOrder::Bracket(b) => b.entry = kind,
                        EntryOrder::Market(o) => o.kind = kind,
                    }
                    time_in_force = Some(spec.time_in_force);
                    jt_trading::check_time_in_force(&inputs.broker.capabilities(), time_in_force)
                        .map_err(Refusal::Failed)?;
                }
                if let Err(reason) =
                    bracket::check_required_protection(&built, inputs.login.require_brackets)
                {
                    return Ok(Choice::Skip(format!("{reason} ({})", reason.rule())));
                }
                // Refused, never sent without the protection the trader asked for.
                jt_trading::check_entry(&inputs.broker.capabilities(), &built, time_in_force)
                    .map_err(Refusal::Failed)?;
                entry = Some(built);
            }
            PlanStep::MarketAdd { side, qty } => {
                if s.entry_order.is_some() {
                    // Never converted to market: refused with the reason.
                    return Err(Refusal::Failed(
                        "the alert asks for a limit or stop order, but this signal is a DCA \
                         add, which is always a market order: send the add as a market \
                         order, or turn DCA off for a resting fresh entry"
                            .to_string(),
                    ));
                }
                add = Some(OrderRequest {
                    client_order_id: client_order_id.clone(),
                    side,
                    qty,
                    kind: OrderKind::Market,
                });
            }
            PlanStep::ReducePosition { side, qty } => {
                reduce = Some(OrderRequest {
                    client_order_id: client_order_id.clone(),
                    side,
                    qty,
                    kind: OrderKind::Market,
                });
            }
            _ => {}
        }
    }
    // The previous resting entry is cancelled first, unless the plan cancels every working
    // order of the contract anyway.
    let cancel_resting = resting
        .filter(|_| !steps.contains(&PlanStep::CancelWorkingOrders))
        .map(|id| jt_messages::client_order_id(id.0));
    Ok(Choice::Plan(Box::new(
        StoredPlan {
            plan,
            contract,
            entry,
            add,
            settings,
            reduce,
            time_in_force,
            cancel_resting,
        }
        .into_plan(),
    )))
}

/// The entry size of an alert that sizes by risk: its dollars (or its percentage of the
/// balance the broker reports) × the multiplier, over what one contract loses at the stop.
async fn risk_size(
    inputs: &Inputs<'_>,
    settings: &jt_domain::Settings,
    instrument: &Instrument,
    reference: Option<Decimal>,
    sizing: RiskSizing,
) -> Result<AlertSize, Refusal> {
    let stop = bracket::stop_distance(settings, instrument, reference)
        .map_err(|e| Refusal::Failed(format!("{e}")))?
        .unwrap_or(Decimal::ZERO);
    let dollars = match sizing {
        RiskSizing::Dollars { amount } => amount,
        RiskSizing::Percent { percent } => {
            let balance = inputs.broker.balance(inputs.account).await?;
            if balance <= Decimal::ZERO {
                return Err(Refusal::Failed(format!(
                    "the alert risks {percent}% of the account's balance, and the broker \
                     reports a balance of {balance}"
                )));
            }
            balance
                .checked_mul(percent)
                .map(|d| d / Decimal::ONE_HUNDRED)
                .ok_or_else(|| {
                    Refusal::Failed("the balance × risk percentage is out of range".into())
                })?
        }
    };
    let risk = dollars
        .checked_mul(settings.multiplier)
        .ok_or_else(|| Refusal::Failed("the risk × multiplier is out of range".into()))?;
    let (qty, per_contract) =
        quantity::risk_sized(risk, stop, instrument).map_err(|e| Refusal::Failed(e.to_string()))?;
    Ok(AlertSize {
        qty,
        risk: risk.round_dp(2).normalize(),
        per_contract,
    })
}

async fn filter_state(
    inputs: &Inputs<'_>,
    s: &SignalIntent,
    sub: &SubAccount,
    now: DateTime<Utc>,
) -> Result<(FilterState, Option<IntentId>), StoreError> {
    let day = session::trading_day(now);
    // One statement: what the trader did this session, the kill switches, the day's loss.
    let (activity, gates) = inputs
        .store
        .intents()
        .signal_filters(s.trader_id, session::session_start(day), sub, day)
        .await?;
    Ok((
        FilterState {
            last_signal_at: activity.last_executed_at,
            signals_this_session: activity.executed_since,
            last_add_at: activity.last_add_at,
            daily_loss_breached: gates.daily_loss_breached,
            kill_switch: gates.kill_switch,
        },
        activity.resting_entry,
    ))
}

/// The symbol to resolve at the broker: the root for a continuous ticker (`MNQ1!` → front
/// month), the contract itself for a dated one (`MNQZ5`).
pub(crate) fn broker_symbol(symbol: &str, instrument: &Instrument) -> String {
    let s = symbol.trim().to_ascii_uppercase();
    let s = s.rsplit(':').next().unwrap_or(&s).to_string();
    if s.ends_with('!') || s == instrument.root {
        instrument.root.to_string()
    } else {
        s
    }
}

fn describe(plan: &IntentPlan) -> (IntentKind, Option<jt_domain::Side>, u32) {
    match plan {
        IntentPlan::Entry { direction, size }
        | IntentPlan::FreshEntry {
            direction, size, ..
        } => (IntentKind::Entry, Some(direction.entry_side()), size.qty),
        IntentPlan::Add {
            direction, size, ..
        } => (IntentKind::Add, Some(direction.entry_side()), size.qty),
        IntentPlan::Flip {
            direction, size, ..
        } => (IntentKind::Flip, Some(direction.entry_side()), size.qty),
        IntentPlan::Close { direction, qty, .. } => {
            (IntentKind::Close, Some(direction.exit_side()), *qty)
        }
        IntentPlan::Reduce { direction, qty, .. } => {
            (IntentKind::Reduce, Some(direction.exit_side()), *qty)
        }
        IntentPlan::CancelOrders => (IntentKind::Cancel, None, 0),
    }
}

fn summary_of(plan: &IntentPlan) -> String {
    match plan {
        IntentPlan::Entry { direction, size } => format!("entry {direction} {}", size.qty),
        IntentPlan::FreshEntry {
            direction,
            size,
            existing,
        } => {
            format!(
                "fresh entry {direction} {} (DCA off; {existing} already open)",
                size.qty
            )
        }
        IntentPlan::Add {
            direction, size, ..
        } => format!("DCA add {direction} {}, take-profit replaced", size.qty),
        IntentPlan::Flip {
            from,
            close_qty,
            direction,
            size,
        } => {
            format!(
                "flip: closed {from} {close_qty}, entry {direction} {}",
                size.qty
            )
        }
        IntentPlan::Close {
            direction,
            qty,
            entry_refused,
        } => match entry_refused {
            Some(r) => format!("closed {direction} {qty}; the new entry was refused: {r}"),
            None => format!("closed {direction} {qty}"),
        },
        IntentPlan::Reduce {
            direction,
            qty,
            remaining,
            fraction,
        } => format!(
            "partial exit of the {direction}: {qty} off ({}% sold by the strategy), {remaining} \
             remain; protection resized to {remaining}",
            (fraction * Decimal::ONE_HUNDRED).round_dp(2).normalize()
        ),
        IntentPlan::CancelOrders => "working orders cancelled".into(),
    }
}

/// `limit at 21000`, `stop at 21010`, `stop-limit 21010/21012`.
pub(crate) fn resting_words(entry: &EntryOrder) -> String {
    let kind = match entry {
        EntryOrder::Bracket(b) => b.entry,
        EntryOrder::Market(o) => o.kind,
    };
    match kind {
        OrderKind::Market => "market order".into(),
        OrderKind::Limit { price } => format!("limit at {price}"),
        OrderKind::Stop { stop } => format!("stop at {stop}"),
        OrderKind::StopLimit { stop, price } => format!("stop-limit {stop}/{price}"),
    }
}
