//! Controls, manual trades, copy steps and protection repairs: each read against the
//! sub-account's real position at the broker (the broker is the truth), then performed by the
//! same choreography as a signal's.
//!
//! Decisions taken where the design is silent (`docs/pipeline.md`, "Intents from every
//! source"): a manual or copied entry is refused while the kill switch is engaged or the
//! account's daily loss is breached, and on a `require_brackets` account without both a stop
//! and a target; a manual entry against an open position of the other direction is refused
//! (exit it first); a copy step that does not fit the follower's real position (an add to a
//! flat follower, an entry on top of a position) is skipped with the reason, never forced.

use jt_broker::Contract;
use jt_domain::bracket::{self, EntryOrder};
use jt_domain::copy::CopyAction;
use jt_domain::order::{OrderKind, OrderRequest};
use jt_domain::overrides;
use jt_domain::{
    AlertRisk, Contracts, Direction, ExitLevel, Instrument, Settings, Side, StopOverride,
    instrument, session,
};
use jt_messages::{
    ControlAction, ControlIntent, ControlScope, CopyIntent, CopyProtection, ManualIntent,
    ManualTrade, ProtectionKind, RepairIntent,
};
use jt_store::IntentKind;
use jt_trading::Step;
use rust_decimal::Decimal;

use super::signal::broker_symbol;
use super::{Choice, Inputs, Plan, Refusal, StepsPlan, Stored, steps_plan};

/// The plan of a flatten of the whole sub-account (also what a flatten sent before sources
/// existed resumes as).
pub(crate) fn flatten_account_plan() -> StepsPlan {
    steps_plan(
        None,
        vec![Step::FlattenAccount],
        None,
        "account flattened: working orders cancelled, positions closed".into(),
    )
}

fn plan(
    stored: StepsPlan,
    kind: IntentKind,
    contract: Option<&Contract>,
    side: Option<Side>,
    quantity: Contracts,
) -> Result<Choice, Refusal> {
    Ok(Choice::Plan(Box::new(Plan {
        stored: Stored::Steps(stored),
        kind,
        contract: contract.map(|c| c.name.clone()),
        side,
        quantity,
        resting_entry: false,
    })))
}

/// The instrument and broker contract of `symbol`.
async fn contract_of(
    inputs: &Inputs<'_>,
    symbol: &str,
) -> Result<(&'static Instrument, Contract), Refusal> {
    let instrument =
        instrument::resolve_ticker(symbol).map_err(|e| Refusal::Failed(format!("{e}")))?;
    let contract = inputs
        .broker
        .resolve_contract(&broker_symbol(symbol, instrument))
        .await?;
    Ok((instrument, contract))
}

/// The position held on `contract`: its direction (`None`: flat) and size.
async fn held(
    inputs: &Inputs<'_>,
    contract: &Contract,
) -> Result<(Option<Direction>, Contracts), Refusal> {
    let p = inputs.broker.position(inputs.account, &contract.id).await?;
    let net = p.map_or(0, |p| p.net_qty);
    Ok((
        Direction::of_net(net),
        Contracts::try_from(net.unsigned_abs()).unwrap_or(Contracts::MAX),
    ))
}

/// Why new exposure is refused on this sub-account now, if it is: the kill switch, or the
/// day's loss limit breached.
async fn exposure_refused(inputs: &Inputs<'_>) -> Result<Option<String>, Refusal> {
    let day = session::trading_day(inputs.msg.received_at);
    let gates = inputs.store.risk().exposure_gates(inputs.sub, day).await?;
    Ok(if gates.kill_switch {
        Some("the kill switch is engaged: no new entries until it is resumed".into())
    } else if gates.daily_loss_breached {
        Some("the account's max daily loss is breached for this trading day: no new entries".into())
    } else {
        None
    })
}

/// An entry of `qty` contracts in `direction`, with its own take-profit and stop (as per-alert
/// levels are: distances, prices, dollars), resting when `resting` says so. A level given as a
/// price is measured from `reference`.
#[allow(clippy::too_many_arguments)]
fn entry_order(
    inputs: &Inputs<'_>,
    instrument: &Instrument,
    direction: Direction,
    qty: Contracts,
    reference: Option<Decimal>,
    take_profit: Option<&ExitLevel>,
    stop_loss: Option<&StopOverride>,
    resting: Option<&jt_domain::EntryOrderSpec>,
) -> Result<Result<(EntryOrder, Option<jt_domain::order::TimeInForce>), String>, Refusal> {
    let settings = overrides::apply_all(
        &Settings::default(),
        direction,
        Some(instrument),
        reference,
        take_profit,
        stop_loss,
        &AlertRisk::default(),
    )
    .map_err(|e| Refusal::Failed(format!("{e}")))?;
    let mut entry = bracket::build_entry(
        &settings,
        instrument,
        direction,
        qty,
        reference,
        inputs.msg.client_order_id(),
    )
    .map_err(|e| Refusal::Failed(format!("{e}")))?;
    let mut time_in_force = None;
    if let Some(spec) = resting {
        let kind = spec
            .order_kind(instrument, false)
            .map_err(Refusal::Failed)?;
        match &mut entry {
            EntryOrder::Bracket(b) => b.entry = kind,
            EntryOrder::Market(o) => o.kind = kind,
        }
        time_in_force = Some(spec.time_in_force);
        jt_trading::check_time_in_force(&inputs.broker.capabilities(), time_in_force)
            .map_err(Refusal::Failed)?;
    }
    if let Err(reason) = bracket::check_required_protection(&entry, inputs.login.require_brackets) {
        return Ok(Err(format!("{reason} ({})", reason.rule())));
    }
    jt_trading::check_entry(&inputs.broker.capabilities(), &entry, time_in_force)
        .map_err(Refusal::Failed)?;
    Ok(Ok((entry, time_in_force)))
}

fn market(inputs: &Inputs<'_>, side: Side, qty: Contracts) -> OrderRequest {
    OrderRequest {
        client_order_id: inputs.msg.client_order_id(),
        side,
        qty,
        kind: OrderKind::Market,
    }
}

/// The close of a position `held` has just read open (`wait_flat`: an entry follows).
fn close_seen_open(wait_flat: bool) -> Step {
    Step::Close {
        wait_flat,
        seen_open: true,
    }
}

/// Take `qty` off a `direction` position of `held` contracts: the whole of it closes (working
/// orders of the contract cancelled first), less is a partial exit whose protection is resized
/// to what remains before the reduction. Never past flat.
fn exit_steps(
    inputs: &Inputs<'_>,
    direction: Direction,
    held: Contracts,
    qty: Contracts,
) -> (Vec<Step>, IntentKind, Contracts, Option<String>) {
    if qty >= held {
        (
            vec![Step::CancelWorkingOrders, close_seen_open(false)],
            IntentKind::Close,
            held,
            None,
        )
    } else {
        let order = market(inputs, direction.exit_side(), qty);
        (
            vec![
                Step::ResizeProtection {
                    direction,
                    position_qty: held - qty,
                },
                Step::Reduce { direction, order },
            ],
            IntentKind::Reduce,
            qty,
            Some(inputs.msg.client_order_id()),
        )
    }
}

/// A control: flatten, cancel or close, on the whole sub-account or one symbol.
pub(crate) async fn control(inputs: &Inputs<'_>, c: &ControlIntent) -> Result<Choice, Refusal> {
    let why = c.cause.describe();
    match (&c.scope, c.action) {
        (ControlScope::Account, ControlAction::Flatten) => {
            plan(flatten_account_plan(), IntentKind::Flatten, None, None, 0)
        }
        (ControlScope::Account, ControlAction::CancelOrders) => plan(
            steps_plan(
                None,
                vec![Step::CancelAllOrders],
                None,
                format!("every working order cancelled, positions kept ({why})"),
            ),
            IntentKind::Cancel,
            None,
            None,
            0,
        ),
        (ControlScope::Symbol { symbol }, action) => {
            let (_, contract) = contract_of(inputs, symbol).await?;
            let (steps, kind, summary) = match action {
                // Not read first: the close reads the position itself.
                ControlAction::Flatten => (
                    vec![
                        Step::CancelWorkingOrders,
                        Step::Close {
                            wait_flat: false,
                            seen_open: false,
                        },
                    ],
                    IntentKind::Close,
                    format!(
                        "{} closed: working orders cancelled, position closed ({why})",
                        contract.name
                    ),
                ),
                ControlAction::CancelOrders => (
                    vec![Step::CancelWorkingOrders],
                    IntentKind::Cancel,
                    format!(
                        "{} working orders cancelled, position kept ({why})",
                        contract.name
                    ),
                ),
            };
            plan(
                steps_plan(Some(&contract), steps, None, summary),
                kind,
                Some(&contract),
                None,
                0,
            )
        }
    }
}

/// A manual trade.
pub(crate) async fn manual(inputs: &Inputs<'_>, m: &ManualIntent) -> Result<Choice, Refusal> {
    let (instrument, contract) = contract_of(inputs, &m.symbol).await?;
    let (position, size) = held(inputs, &contract).await?;
    match &m.trade {
        ManualTrade::Entry {
            direction,
            qty,
            order,
            reference_price,
            take_profit,
            stop_loss,
        } => {
            if *qty == 0 {
                return Err(Refusal::Failed(
                    "a manual entry needs at least 1 contract".into(),
                ));
            }
            if let Some(reason) = exposure_refused(inputs).await? {
                return Ok(Choice::Skip(reason));
            }
            if position.is_some_and(|p| p != *direction) {
                return Ok(Choice::Skip(format!(
                    "the account holds a {} of {size} on {}: a manual {direction} entry would \
                     net against it under its protection; exit it first",
                    direction.opposite(),
                    contract.name
                )));
            }
            // A resting entry's own price is the reference of its levels.
            let reference = order
                .as_ref()
                .and_then(|o| o.limit_price.or(o.stop_price))
                .or(*reference_price);
            let (entry, tif) = match entry_order(
                inputs,
                instrument,
                *direction,
                *qty,
                reference,
                take_profit.as_ref(),
                stop_loss.as_ref(),
                order.as_ref(),
            )? {
                Ok(e) => e,
                Err(reason) => return Ok(Choice::Skip(reason)),
            };
            let mut summary = format!("manual entry {direction} {qty}");
            if size > 0 {
                summary.push_str(&format!(" ({size} already open)"));
            }
            if let Some(tif) = tif {
                summary.push_str(&format!(
                    "; the entry rests as a {} ({})",
                    super::signal::resting_words(&entry),
                    tif.as_str()
                ));
            }
            let resting = tif.is_some();
            let stored = steps_plan(
                Some(&contract),
                vec![Step::Enter {
                    entry,
                    time_in_force: tif,
                }],
                Some(inputs.msg.client_order_id()),
                summary,
            );
            let mut choice = plan(
                stored,
                IntentKind::Entry,
                Some(&contract),
                Some(direction.entry_side()),
                *qty,
            )?;
            if let Choice::Plan(p) = &mut choice {
                p.resting_entry = resting;
            }
            Ok(choice)
        }
        ManualTrade::Exit { qty } => {
            let Some(direction) = position else {
                return Ok(Choice::Skip(format!(
                    "nothing to exit: the account is flat on {}",
                    contract.name
                )));
            };
            let take = qty.unwrap_or(size).min(size);
            if take == 0 {
                return Err(Refusal::Failed("a manual exit of 0 contracts".into()));
            }
            let (steps, kind, quantity, main) = exit_steps(inputs, direction, size, take);
            let summary = if kind == IntentKind::Close {
                format!("manual exit: closed {direction} {size}")
            } else {
                format!(
                    "manual exit of the {direction}: {take} off, {} remain; protection resized to {}",
                    size - take,
                    size - take
                )
            };
            plan(
                steps_plan(Some(&contract), steps, main, summary),
                kind,
                Some(&contract),
                Some(direction.exit_side()),
                quantity,
            )
        }
    }
}

/// A copy step (DOMAIN.md §10), read against the follower's real position.
pub(crate) async fn copy(inputs: &Inputs<'_>, c: &CopyIntent) -> Result<Choice, Refusal> {
    if let Some(p) = c.protection {
        return copy_protection(inputs, c, p).await;
    }
    if c.step == CopyAction::Nothing {
        return Ok(Choice::Skip(
            "the leader's change does not move this follower (its size is unchanged)".into(),
        ));
    }
    let (instrument, contract) = contract_of(inputs, &c.symbol).await?;
    let (position, size) = held(inputs, &contract).await?;
    let main = Some(inputs.msg.client_order_id());
    let levels = |take_profit: bool, stop: bool| {
        (
            c.take_profit
                .filter(|_| take_profit)
                .map(|price| ExitLevel::Price { price }),
            c.stop_loss.filter(|_| stop).map(|price| StopOverride {
                level: ExitLevel::Price { price },
                stop_type: None,
            }),
        )
    };
    let name = &contract.name;
    match c.step {
        CopyAction::Nothing => Ok(Choice::Skip(String::new())),
        CopyAction::Entry {
            side,
            qty,
            take_profit,
            stop,
        } => {
            let direction = side.opens();
            if let Some(d) = position {
                return Ok(Choice::Skip(format!(
                    "the follower already holds a {d} of {size} on {name}: the copied entry \
                     {direction} {qty} is not sent on top of it"
                )));
            }
            if let Some(reason) = exposure_refused(inputs).await? {
                return Ok(Choice::Skip(reason));
            }
            let (tp, sl) = levels(take_profit, stop);
            let (entry, _) = match entry_order(
                inputs,
                instrument,
                direction,
                qty,
                c.leader.price,
                tp.as_ref(),
                sl.as_ref(),
                None,
            )? {
                Ok(e) => e,
                Err(reason) => return Ok(Choice::Skip(reason)),
            };
            plan(
                steps_plan(
                    Some(&contract),
                    vec![Step::Enter {
                        entry,
                        time_in_force: None,
                    }],
                    main,
                    format!("copy entry {direction} {qty}"),
                ),
                IntentKind::Entry,
                Some(&contract),
                Some(side),
                qty,
            )
        }
        CopyAction::Increase { side, qty } => {
            let direction = side.opens();
            if position != Some(direction) {
                return Ok(Choice::Skip(format!(
                    "the follower holds no {direction} on {name} to add {qty} to"
                )));
            }
            if let Some(reason) = exposure_refused(inputs).await? {
                return Ok(Choice::Skip(reason));
            }
            plan(
                steps_plan(
                    Some(&contract),
                    vec![
                        Step::Add {
                            order: market(inputs, side, qty),
                        },
                        Step::CoverPosition { direction },
                    ],
                    main,
                    format!("copy add {direction} {qty}, the stop resized to the whole position"),
                ),
                IntentKind::Add,
                Some(&contract),
                Some(side),
                qty,
            )
        }
        CopyAction::Reduce { side, qty } => {
            let direction = side.opposite().opens();
            if position != Some(direction) {
                return Ok(Choice::Skip(format!(
                    "the follower holds no {direction} on {name} to reduce by {qty}"
                )));
            }
            let take = qty.min(size);
            let (steps, kind, quantity, main) = exit_steps(inputs, direction, size, take);
            let summary = if kind == IntentKind::Close {
                format!("copy trim: closed {direction} {size}")
            } else {
                format!(
                    "copy trim of the {direction}: {take} off, {} remain; protection resized",
                    size - take
                )
            };
            plan(
                steps_plan(Some(&contract), steps, main, summary),
                kind,
                Some(&contract),
                Some(side),
                quantity,
            )
        }
        CopyAction::Close { direction, .. } => match position {
            Some(d) if d == direction => plan(
                steps_plan(
                    Some(&contract),
                    vec![Step::CancelWorkingOrders, close_seen_open(false)],
                    None,
                    format!("copy close: closed {direction} {size}"),
                ),
                IntentKind::Close,
                Some(&contract),
                Some(direction.exit_side()),
                size,
            ),
            // Nothing to close; whatever still works on the contract goes.
            None => plan(
                steps_plan(
                    Some(&contract),
                    vec![Step::CancelWorkingOrders],
                    None,
                    "copy close: the follower was already flat; its working orders cancelled"
                        .into(),
                ),
                IntentKind::Cancel,
                Some(&contract),
                None,
                0,
            ),
            Some(d) => Ok(Choice::Skip(format!(
                "the leader closed a {direction}, and the follower holds a {d} on {name}: not \
                 touched"
            ))),
        },
        CopyAction::Reverse {
            close_direction,
            entry_side,
            entry_qty,
            take_profit,
            stop,
            ..
        } => {
            let direction = entry_side.opens();
            if position == Some(direction) {
                return Ok(Choice::Skip(format!(
                    "the follower already holds a {direction} of {size} on {name}: the copied \
                     flip is not sent"
                )));
            }
            let mut steps = Vec::new();
            if position == Some(close_direction) {
                steps.push(Step::CancelWorkingOrders);
                steps.push(close_seen_open(true));
            }
            if let Some(reason) = exposure_refused(inputs).await? {
                // The exit half still runs: leaving the old side is never refused.
                if steps.is_empty() {
                    return Ok(Choice::Skip(reason));
                }
                if let Some(Step::Close { wait_flat, .. }) = steps.last_mut() {
                    *wait_flat = false;
                }
                return plan(
                    steps_plan(
                        Some(&contract),
                        steps,
                        None,
                        format!(
                            "copy flip: closed {close_direction} {size}; the new entry was refused: {reason}"
                        ),
                    ),
                    IntentKind::Close,
                    Some(&contract),
                    Some(close_direction.exit_side()),
                    size,
                );
            }
            let (tp, sl) = levels(take_profit, stop);
            let (entry, _) = match entry_order(
                inputs,
                instrument,
                direction,
                entry_qty,
                c.leader.price,
                tp.as_ref(),
                sl.as_ref(),
                None,
            )? {
                Ok(e) => e,
                Err(reason) => return Ok(Choice::Skip(reason)),
            };
            steps.push(Step::Enter {
                entry,
                time_in_force: None,
            });
            plan(
                steps_plan(
                    Some(&contract),
                    steps,
                    main,
                    format!(
                        "copy flip: closed {close_direction} {size}, entry {direction} {entry_qty}"
                    ),
                ),
                IntentKind::Flip,
                Some(&contract),
                Some(entry_side),
                entry_qty,
            )
        }
    }
}

/// A copied protection change: the follower's take-profit or stop set to its leader's (moved
/// in place, or placed when it has none). Checked against the real position when it runs
/// (`Desk::set_protection`): a follower that holds no such position is left alone, with the
/// reason in the outcome.
async fn copy_protection(
    inputs: &Inputs<'_>,
    c: &CopyIntent,
    p: CopyProtection,
) -> Result<Choice, Refusal> {
    let (_, contract) = contract_of(inputs, &c.symbol).await?;
    let take_profit = p.kind == ProtectionKind::TakeProfit;
    plan(
        steps_plan(
            Some(&contract),
            vec![Step::SetProtection {
                direction: p.direction,
                take_profit,
                price: p.price,
                client_order_id: inputs.msg.client_order_id(),
            }],
            None,
            format!(
                "copy protection: the {}'s {} set to {}",
                p.direction,
                p.kind.name(),
                p.price.normalize()
            ),
        ),
        IntentKind::Protect,
        Some(&contract),
        Some(p.direction.exit_side()),
        0,
    )
}

/// A protection repair.
pub(crate) async fn repair(inputs: &Inputs<'_>, r: &RepairIntent) -> Result<Choice, Refusal> {
    if !r.take_profit && !r.stop {
        return Ok(Choice::Skip("the repair asks for nothing".into()));
    }
    let (_, contract) = contract_of(inputs, &r.symbol).await?;
    let what = match (r.take_profit, r.stop) {
        (true, true) => "take-profit and stop",
        (true, false) => "take-profit",
        _ => "stop",
    };
    plan(
        steps_plan(
            Some(&contract),
            vec![Step::RepairProtection {
                direction: r.direction,
                settings: r.settings.clone(),
                client_order_id: inputs.msg.client_order_id(),
                take_profit: r.take_profit,
                stop: r.stop,
            }],
            None,
            format!("repair of the {}'s missing {what}", r.direction),
        ),
        IntentKind::Protect,
        Some(&contract),
        Some(r.direction.exit_side()),
        0,
    )
}
