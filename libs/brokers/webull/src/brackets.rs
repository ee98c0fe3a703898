//! Brackets emulated by the platform: Webull carries no bracket, OTO or OCO for futures
//! (BROKERS.md §3, the futures feature matrix). `place_bracket`:
//!
//! 1. refuses, before sending anything, what it cannot protect: a bracket needing a feature
//!    Webull lacks (`WEBULL_CAPABILITIES`), distances off the tick grid, client order ids
//!    Webull would refuse, or — with the one-cancels-other guard off — a bracket with more
//!    than one exit order;
//! 2. places the market entry (exactly once: an ambiguous answer is looked up by its client
//!    order id);
//! 3. waits for its fill (`brackets.fill_wait`); an entry not completely filled by then has
//!    its rest canceled, so the position is exactly what filled;
//! 4. places the stop (`<id>-sl`) and the take-profit legs (`<id>-tpN`), each sized to the
//!    **filled** quantity (the stop: all of it; the legs: their requested quantity at most,
//!    in order, until the fill is used up), at the distances from the fill price rounded to
//!    the tick.
//!
//! The one-cancels-other link between them is not this call's: the guard ([`crate::oco`]) on
//! the login's event side, in the connection manager, finds them by their client order ids.
//!
//! A protective order refused after the entry filled leaves a position that cannot be
//! protected as asked: what was placed is canceled and the filled quantity is closed at
//! market (`<id>-x`), and the call answers `UnknownOutcome` (the caller reconciles; the
//! detail says what was done). It is never left naked silently.

use std::sync::Arc;

use jt_broker::capabilities::Feature;
use jt_broker::error::BrokerError;
use jt_broker::legs::{leg_sizes, leg_tag, stop_tag};
use jt_broker::model::{AccountId, BracketAck, Contract, OrderId};
use jt_domain::instrument::{by_root, round_to_increment};
use jt_domain::order::{BracketOrder, OrderKind, TimeInForce};
use jt_domain::types::Side;
use rust_decimal::Decimal;

use crate::broker::{Login, WEBULL_CAPABILITIES, check_id, on_tick};
use crate::common::convert::{contracts, new_order, side_name};
use crate::http::models::{WbNewOrder, WbStatus};

/// Refuses what the adapter cannot protect (see the module docs).
///
/// # Errors
/// `InvalidRequest` for a broken bracket or an id too long; `Unsupported` naming the missing
/// feature.
pub fn check(bracket: &BracketOrder, oco_enabled: bool) -> Result<(), BrokerError> {
    bracket
        .validate()
        .map_err(|e| BrokerError::invalid(e.to_string()))?;
    if let Some(feature) = WEBULL_CAPABILITIES.missing_for(bracket).into_iter().next() {
        return Err(BrokerError::Unsupported { feature });
    }
    let exits = bracket.take_profits.len() + usize::from(bracket.stop.is_some());
    if exits > 1 && !oco_enabled {
        // Two exit orders without the guard: one filling would leave the other working.
        return Err(BrokerError::Unsupported {
            feature: Feature::NativeBracket,
        });
    }
    check_id(&bracket.client_order_id)?;
    check_id(&stop_tag(&bracket.client_order_id))?;
    check_id(&leg_tag(
        &bracket.client_order_id,
        bracket.take_profits.len().max(1),
    ))?;
    check_id(&format!("{}-x", bracket.client_order_id))?;
    Ok(())
}

fn unknown(bracket: &BracketOrder, detail: String) -> BrokerError {
    BrokerError::UnknownOutcome {
        operation: "place_bracket".into(),
        client_order_id: Some(bracket.client_order_id.clone()),
        detail,
    }
}

fn exit_order(
    id: String,
    contract: &Contract,
    side: Side,
    qty: u32,
    order_type: &'static str,
    price: Decimal,
) -> WbNewOrder {
    let mut o = new_order(
        &id,
        &contract.name,
        side,
        qty,
        &OrderKind::Market,
        TimeInForce::Gtc,
    );
    o.order_type = order_type;
    let text = Some(price.normalize().to_string());
    if order_type == "LIMIT" {
        o.limit_price = text;
    } else {
        o.stop_price = text;
    }
    o
}

/// Places an emulated bracket (see the module docs).
///
/// # Errors
/// See [`jt_broker::Broker::place_bracket`]; a failure after the entry was placed is
/// `UnknownOutcome`.
pub(crate) async fn place(
    login: &Arc<Login>,
    account: &AccountId,
    contract: &Contract,
    bracket: &BracketOrder,
) -> Result<BracketAck, BrokerError> {
    check(bracket, login.config.oco.enabled)?;
    let inst = by_root(&contract.root).map_err(|_| BrokerError::UnknownContract {
        symbol: contract.name.clone(),
    })?;
    let tick = inst.tick_size;
    for (i, leg) in bracket.take_profits.iter().enumerate() {
        if !(leg.distance / tick).fract().is_zero() {
            return Err(BrokerError::invalid(format!(
                "take-profit {} distance {} is not a whole number of {tick} ticks",
                i + 1,
                leg.distance
            )));
        }
    }
    if let Some(s) = &bracket.stop
        && !(s.distance / tick).fract().is_zero()
    {
        return Err(BrokerError::invalid(format!(
            "stop distance {} is not a whole number of {tick} ticks",
            s.distance
        )));
    }
    let id = bracket.client_order_id.as_str();
    let entry = new_order(
        id,
        &contract.name,
        bracket.side,
        bracket.qty,
        &OrderKind::Market,
        TimeInForce::Day,
    );
    let placed = login.http.place(account.as_str(), &entry).await?;
    login.remember(account, &placed.order_id, id);
    let ack = BracketAck {
        client_order_id: id.to_string(),
        bracket_id: None,
        entry_order_id: Some(OrderId(placed.order_id.clone())),
        recovered: placed.recovered,
    };
    if !bracket.is_protected() {
        return Ok(ack);
    }
    let (filled, price) = wait_for_fill(login, account, bracket).await?;
    let reference = round_to_increment(price, tick);
    protect(
        login,
        account,
        contract,
        bracket,
        filled,
        reference,
        placed.recovered,
    )
    .await?;
    Ok(ack)
}

/// The entry's filled quantity and average price, once it no longer works (the rest canceled
/// at `fill_wait`).
async fn wait_for_fill(
    login: &Login,
    account: &AccountId,
    bracket: &BracketOrder,
) -> Result<(u32, Decimal), BrokerError> {
    let id = bracket.client_order_id.as_str();
    let cfg = &login.config.brackets;
    let read = || async {
        login
            .http
            .order(account.as_str(), id)
            .await
            .map_err(|e| {
                unknown(
                    bracket,
                    format!("entry placed; reading it failed ({e}): it is unprotected until reconciled"),
                )
            })?
            .ok_or_else(|| {
                unknown(
                    bracket,
                    "entry placed but not found by its client order id: unprotected until reconciled"
                        .into(),
                )
            })
    };
    let deadline = tokio::time::Instant::now() + cfg.fill_wait;
    let mut o = read().await?;
    while o.status.is_working() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(cfg.poll_interval).await;
        o = read().await?;
    }
    if o.status.is_working() {
        // A market entry still working after the wait: cancel the rest, so the position is
        // exactly what filled and the protection fits it.
        match login.http.cancel(account.as_str(), id).await {
            Ok(()) | Err(BrokerError::Rejected { .. }) => {}
            Err(e) => {
                return Err(unknown(
                    bracket,
                    format!(
                        "entry not completely filled within {:?} and canceling its rest failed ({e}): unprotected until reconciled",
                        cfg.fill_wait
                    ),
                ));
            }
        }
        o = read().await?;
    }
    let filled = contracts(o.filled_quantity).map_err(|e| unknown(bracket, e.to_string()))?;
    if filled == 0 {
        return if o.status.is_working() {
            Err(unknown(
                bracket,
                "entry still working unfilled after its cancel".into(),
            ))
        } else {
            Err(BrokerError::Rejected {
                reason: format!(
                    "bracket entry {id} ended {:?} without a fill: nothing to protect",
                    o.status
                ),
                code: Some(
                    match o.status {
                        WbStatus::Failed => "FAILED",
                        _ => "CANCELLED",
                    }
                    .into(),
                ),
            })
        };
    }
    let price = o.filled_price.ok_or_else(|| {
        unknown(
            bracket,
            format!("entry filled {filled} without a fill price: unprotected until reconciled"),
        )
    })?;
    Ok((filled, price))
}

/// Places the stop and the take-profit legs for `filled` contracts around `reference`.
async fn protect(
    login: &Login,
    account: &AccountId,
    contract: &Contract,
    bracket: &BracketOrder,
    filled: u32,
    reference: Decimal,
    recovered: bool,
) -> Result<(), BrokerError> {
    let inst = by_root(&contract.root).map_err(|_| BrokerError::UnknownContract {
        symbol: contract.name.clone(),
    })?;
    let exit = bracket.side.opposite();
    let dir = match bracket.side {
        Side::Buy => Decimal::ONE,
        Side::Sell => Decimal::NEGATIVE_ONE,
    };
    let mut orders = Vec::new();
    if let Some(s) = &bracket.stop {
        let price = reference - dir * s.distance;
        orders.push((
            exit_order(
                stop_tag(&bracket.client_order_id),
                contract,
                exit,
                filled,
                "STOP_LOSS",
                price,
            ),
            price,
        ));
    }
    let requested: Vec<u32> = bracket.take_profits.iter().map(|l| l.qty).collect();
    for (i, (leg, qty)) in bracket
        .take_profits
        .iter()
        .zip(leg_sizes(&requested, filled))
        .enumerate()
    {
        if qty == 0 {
            continue;
        }
        let price = reference + dir * leg.distance;
        orders.push((
            exit_order(
                leg_tag(&bracket.client_order_id, i + 1),
                contract,
                exit,
                qty,
                "LIMIT",
                price,
            ),
            price,
        ));
    }
    let mut placed: Vec<String> = Vec::new();
    for (order, price) in &orders {
        let id = order.client_order_id.clone();
        let result = match on_tick(inst, order.order_type, *price) {
            Err(e) => Err(e),
            // A bracket retried after an unknown outcome: a leg already placed is not sent
            // twice.
            Ok(()) if recovered => match login.http.order(account.as_str(), &id).await {
                Ok(Some(found)) => Ok(found.order_id),
                Ok(None) => login
                    .http
                    .place(account.as_str(), order)
                    .await
                    .map(|p| p.order_id),
                Err(e) => Err(e),
            },
            Ok(()) => login
                .http
                .place(account.as_str(), order)
                .await
                .map(|p| p.order_id),
        };
        match result {
            Ok(order_id) => {
                login.remember(account, &order_id, &id);
                placed.push(id);
            }
            Err(e @ BrokerError::UnknownOutcome { .. }) => {
                return Err(unknown(
                    bracket,
                    format!(
                        "entry filled {filled} @ {reference}; protective order {id} unknown ({e}); placed: {placed:?}"
                    ),
                ));
            }
            Err(e) => {
                return Err(
                    unwind(login, account, contract, bracket, filled, &placed, &id, &e).await,
                );
            }
        }
    }
    Ok(())
}

/// A protective order was refused after the entry filled: cancel what was placed, close the
/// filled quantity, and say so.
#[allow(clippy::too_many_arguments)]
async fn unwind(
    login: &Login,
    account: &AccountId,
    contract: &Contract,
    bracket: &BracketOrder,
    filled: u32,
    placed: &[String],
    failed: &str,
    error: &BrokerError,
) -> BrokerError {
    for id in placed {
        let _ = login.http.cancel(account.as_str(), id).await;
    }
    let close_id = format!("{}-x", bracket.client_order_id);
    let close = new_order(
        &close_id,
        &contract.name,
        bracket.side.opposite(),
        filled,
        &OrderKind::Market,
        TimeInForce::Day,
    );
    let closed = login.http.place(account.as_str(), &close).await;
    tracing::warn!(
        broker = "webull",
        %account,
        contract = %contract.name,
        order = failed,
        error = %error,
        "a protective order was refused after the entry filled: closing the entry"
    );
    unknown(
        bracket,
        match closed {
            Ok(_) => format!(
                "entry filled {filled}; protective order {failed} refused ({error}); the protection placed was canceled and the entry closed with {close_id} ({} {filled})",
                side_name(bracket.side.opposite())
            ),
            Err(e) => format!(
                "entry filled {filled}; protective order {failed} refused ({error}); closing it with {close_id} failed ({e}): POSITION UNPROTECTED"
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_domain::order::{BreakEven, StopKind, StopSpec, TakeProfitLeg};
    use rust_decimal_macros::dec;

    fn bracket() -> BracketOrder {
        BracketOrder {
            client_order_id: "jt0123456789abcdef0123456789abcdef".into(),
            side: Side::Buy,
            qty: 2,
            entry: OrderKind::Market,
            take_profits: vec![TakeProfitLeg {
                qty: 2,
                distance: dec!(5),
            }],
            stop: Some(StopSpec {
                distance: dec!(4),
                kind: StopKind::Fixed,
            }),
            break_even: None,
        }
    }

    #[test]
    fn what_cannot_be_protected_is_refused_before_sending() {
        assert_eq!(check(&bracket(), true), Ok(()));
        assert_eq!(
            check(&bracket(), false),
            Err(BrokerError::Unsupported {
                feature: Feature::NativeBracket
            })
        );
        let mut trailing = bracket();
        trailing.stop = Some(StopSpec {
            distance: dec!(4),
            kind: StopKind::Trailing {
                trigger: dec!(0),
                step: dec!(0),
            },
        });
        assert_eq!(
            check(&trailing, true),
            Err(BrokerError::Unsupported {
                feature: Feature::TrailingStop
            })
        );
        let mut be = bracket();
        be.break_even = Some(BreakEven {
            trigger: dec!(3),
            offset: dec!(0),
        });
        assert!(matches!(
            check(&be, true),
            Err(BrokerError::Unsupported {
                feature: Feature::BreakEven
            })
        ));
        let mut long = bracket();
        long.client_order_id = "x".repeat(38);
        assert!(matches!(
            check(&long, true),
            Err(BrokerError::InvalidRequest { .. })
        ));
    }
}
