//! A choreography as plain data, and the runner that performs and resumes it.

use chrono::{DateTime, Utc};
use jt_broker::Contract;
use jt_domain::bracket::EntryOrder;
use jt_domain::order::{OrderRequest, TimeInForce};
use jt_domain::{Contracts, Direction, Settings};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::StepError;
use crate::desk::{Desk, Repaired};

/// One step of a choreography. Steps on a contract act on [`Choreography::contract`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Cancel the trader's previous resting entry (by its client order id) when it still works.
    CancelResting {
        /// Its client order id.
        client_order_id: String,
    },
    /// Cancel every working order of the contract.
    CancelWorkingOrders,
    /// Cancel every working order of the sub-account, on every contract.
    CancelAllOrders,
    /// Close the contract's position; with `wait_flat`, wait until the broker shows flat (a
    /// flip's entry follows).
    Close {
        /// Wait until flat.
        wait_flat: bool,
        /// The decision read the position open (it closes what it saw): a first attempt lets
        /// the broker skip the close's own read ([`jt_broker::Broker::close_open_position`]).
        /// A resumed one reads again — its plan's reading may be minutes old. Absent from plans
        /// stored before it existed: `false`, the close reads.
        #[serde(default)]
        seen_open: bool,
    },
    /// Flatten the sub-account: every working order cancelled, every position closed.
    FlattenAccount,
    /// The main order of an entry: a bracket or plain order, resting when `time_in_force` is
    /// set.
    Enter {
        /// The entry.
        entry: EntryOrder,
        /// How long a resting entry works; `None` for a market entry.
        time_in_force: Option<TimeInForce>,
    },
    /// The main order of an add: one plain order (never a bracket).
    Add {
        /// The order.
        order: OrderRequest,
    },
    /// The main order of a partial exit: a market order on the exit side of a `direction`
    /// position; refused, the stops are restored to what the broker still holds.
    Reduce {
        /// The position's direction.
        direction: Direction,
        /// The order.
        order: OrderRequest,
    },
    /// Resize the `direction` position's exit orders to `position_qty` contracts (before a
    /// reduction).
    ResizeProtection {
        /// The position's direction.
        direction: Direction,
        /// What will remain.
        position_qty: Contracts,
    },
    /// Make the `direction` position's stops cover what the broker holds (after an add that
    /// brought no protection of its own).
    CoverPosition {
        /// The position's direction.
        direction: Direction,
    },
    /// After a DCA add: cancel the position's exit orders and place one take-profit (and stop)
    /// for the whole position at the new average (with the fill-price retries).
    ReplaceProtection {
        /// The position's direction.
        direction: Direction,
        /// The settings the orders are built from. Read tolerantly.
        #[serde(deserialize_with = "jt_domain::tolerant::deserialize")]
        settings: Settings,
        /// The client order id the replacements' ids derive from.
        client_order_id: String,
    },
    /// Place the take-profit and/or stop a `direction` position is missing.
    RepairProtection {
        /// The position's direction.
        direction: Direction,
        /// The settings the orders are built from. Read tolerantly.
        #[serde(deserialize_with = "jt_domain::tolerant::deserialize")]
        settings: Settings,
        /// The client order id the orders' ids derive from.
        client_order_id: String,
        /// Place the take-profit.
        take_profit: bool,
        /// Place the stop.
        stop: bool,
    },
    /// Set the `direction` position's take-profit or stop to `price`: the working one moved
    /// in place, or one placed for the whole position (a copied follower following its
    /// leader's, [`Desk::set_protection`]).
    SetProtection {
        /// The position's direction.
        direction: Direction,
        /// The take-profit (else the stop).
        take_profit: bool,
        /// The price.
        price: Decimal,
        /// The client order id a placed order's id derives from.
        client_order_id: String,
    },
}

impl Step {
    /// What the step did, in words (a failure's summary lists the steps done before it).
    #[must_use]
    pub fn done_name(&self) -> &'static str {
        match self {
            Step::CancelResting { .. } => "the previous resting entry cancelled",
            Step::CancelWorkingOrders => "working orders cancelled",
            Step::CancelAllOrders => "every working order cancelled",
            Step::Close { .. } => "position closed",
            Step::FlattenAccount => "account flattened",
            Step::Enter { .. } => "entry placed",
            Step::Add { .. } => "add placed",
            Step::Reduce { .. } => "position reduced",
            Step::ResizeProtection { .. } => "protection resized",
            Step::CoverPosition { .. } => "stop resized to the position",
            Step::ReplaceProtection { .. } => "protection replaced",
            Step::RepairProtection { .. } => "protection repaired",
            Step::SetProtection { .. } => "protection set",
        }
    }

    /// Whether it is a main order (entry, add, reduction): the order whose client order id,
    /// found at the broker, proves every step up to it was done.
    #[must_use]
    pub fn is_main(&self) -> bool {
        matches!(
            self,
            Step::Enter { .. } | Step::Add { .. } | Step::Reduce { .. }
        )
    }
}

/// The steps of one intent, in order, and what they act on: stored with the intent before the
/// first broker call, so a resumed intent performs the same steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choreography {
    /// The contract of the contract steps; `None` for a choreography on the whole sub-account.
    pub contract: Option<Contract>,
    /// The steps.
    pub steps: Vec<Step>,
    /// The client order id of the main order, when the steps have one.
    pub main: Option<String>,
}

/// What a choreography did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Done {
    /// Broker order ids placed (or found placed), in order.
    pub orders: Vec<String>,
    /// The position's average price after the steps, when a step read it (a DCA add's
    /// protection): the fill.
    pub fill: Option<Decimal>,
    /// The main order was found at the broker on resume: the steps up to it were not repeated.
    pub main_found: bool,
    /// When the main order was acknowledged (latency).
    pub main_at: Option<DateTime<Utc>>,
    /// The steps done, in words.
    pub done: Vec<&'static str>,
    /// What the trader should know (a trailing stop placed fixed, a repair with nothing to
    /// do).
    pub notes: Vec<String>,
}

/// A choreography that stopped at a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    /// Why.
    pub error: StepError,
    /// The steps done before it, in words: a flip whose entry was refused has closed the old
    /// position, and the trader must know.
    pub done: Vec<&'static str>,
    /// Broker order ids placed before it.
    pub orders: Vec<String>,
}

impl Failed {
    /// The error's text with the steps already done (`… (already done: position closed)`).
    #[must_use]
    pub fn with_progress(&self, text: String) -> String {
        if self.done.is_empty() {
            text
        } else {
            format!("{text} (already done: {})", self.done.join(", "))
        }
    }
}

/// Performs `choreography` at `desk`. `resuming`: an earlier attempt may have done some of it —
/// the main order is looked up by its client order id first, and when the broker has it the
/// steps up to it are not repeated (the steps after it are: each is safe to repeat). `stop` is
/// checked before every step (the caller lost the right to trade this account).
///
/// # Errors
/// [`Failed`] at the first step that fails, with the steps done before it.
pub async fn run(
    desk: &Desk<'_>,
    choreography: &Choreography,
    resuming: bool,
    stop: &CancellationToken,
) -> Result<Done, Failed> {
    let mut out = Done::default();
    let fail = |error: StepError, out: &Done| Failed {
        error,
        done: out.done.clone(),
        orders: out.orders.clone(),
    };
    let main_index = choreography.steps.iter().position(Step::is_main);
    if resuming
        && main_index.is_some()
        && let Some(main) = &choreography.main
    {
        match desk.find(main).await {
            Ok(Some(found)) => {
                out.orders.push(found.id.0);
                out.main_found = true;
            }
            Ok(None) => {}
            Err(e) => return Err(fail(e, &out)),
        }
    }
    for (i, step) in choreography.steps.iter().enumerate() {
        if out.main_found && main_index.is_some_and(|m| i <= m) {
            continue;
        }
        if folded_into_close(&choreography.steps, i) {
            continue;
        }
        if stop.is_cancelled() {
            return Err(fail(StepError::Interrupted, &out));
        }
        if let Err(e) = perform(desk, choreography, step, resuming, &mut out).await {
            return Err(fail(e, &out));
        }
        if i > 0 && folded_into_close(&choreography.steps, i - 1) {
            out.done.push(Step::CancelWorkingOrders.done_name());
        }
        out.done.push(step.done_name());
        if step.is_main() {
            out.main_at = Some(Utc::now());
        }
    }
    Ok(out)
}

/// Whether step `i` cancels the contract's working orders right before the contract's close:
/// the close does that itself (`Broker::close_position` cancels the contract's working orders
/// before it sends the market order: Tradovate's `liquidateposition` natively, the other
/// adapters by their own cancels), so sending the cancels separately would cost the same broker
/// calls twice — on Tradovate 4 of a bracketed close's 7. The step is reported done with the
/// close (never before it: a close that fails has not cancelled anything either).
fn folded_into_close(steps: &[Step], i: usize) -> bool {
    matches!(steps.get(i), Some(Step::CancelWorkingOrders))
        && matches!(steps.get(i + 1), Some(Step::Close { .. }))
}

async fn perform(
    desk: &Desk<'_>,
    choreography: &Choreography,
    step: &Step,
    resuming: bool,
    out: &mut Done,
) -> Result<(), StepError> {
    let contract = || {
        choreography.contract.as_ref().ok_or_else(|| {
            StepError::Invalid(format!(
                "the step {:?} needs a contract and the choreography has none",
                step.done_name()
            ))
        })
    };
    match step {
        Step::CancelResting { client_order_id } => {
            desk.cancel_resting(client_order_id).await?;
        }
        Step::CancelWorkingOrders => {
            desk.cancel_working(contract()?).await?;
        }
        Step::CancelAllOrders => {
            desk.cancel_all().await?;
        }
        Step::Close {
            wait_flat,
            seen_open,
        } => {
            // Only a first attempt's reading is moments old (see `Step::Close`).
            let fresh = *seen_open && !resuming;
            out.orders
                .extend(desk.close(contract()?, *wait_flat, fresh).await?);
        }
        Step::FlattenAccount => desk.flatten().await?,
        Step::Enter {
            entry,
            time_in_force,
        } => {
            out.orders
                .extend(desk.enter(contract()?, entry, *time_in_force).await?);
        }
        Step::Add { order } => out.orders.push(desk.place(contract()?, order).await?),
        Step::Reduce { direction, order } => {
            out.orders
                .push(desk.reduce(contract()?, *direction, order).await?);
        }
        Step::ResizeProtection {
            direction,
            position_qty,
        } => {
            desk.resize_protection(contract()?, *direction, *position_qty)
                .await?;
        }
        Step::CoverPosition { direction } => {
            desk.cover_position(contract()?, *direction).await?;
        }
        Step::ReplaceProtection {
            direction,
            settings,
            client_order_id,
        } => {
            let p = desk
                .replace_protection(contract()?, *direction, settings, client_order_id, resuming)
                .await?;
            out.orders.extend(p.orders);
            out.notes.extend(p.notes);
            out.fill = Some(p.average);
        }
        Step::RepairProtection {
            direction,
            settings,
            client_order_id,
            take_profit,
            stop,
        } => match desk
            .repair_protection(
                contract()?,
                *direction,
                settings,
                client_order_id,
                *take_profit,
                *stop,
            )
            .await?
        {
            Repaired::Placed { orders, notes, .. } => {
                out.orders.extend(orders);
                out.notes.extend(notes);
            }
            Repaired::Nothing { reason } => out.notes.push(reason),
        },
        Step::SetProtection {
            direction,
            take_profit,
            price,
            client_order_id,
        } => {
            let moved = desk
                .set_protection(
                    contract()?,
                    *direction,
                    *take_profit,
                    *price,
                    client_order_id,
                )
                .await?;
            out.orders.extend(moved.orders);
            out.notes.extend(moved.notes);
        }
    }
    Ok(())
}
