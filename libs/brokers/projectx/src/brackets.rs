//! Brackets at ProjectX (BROKERS.md §2.5): one native bracket per entry — a stop
//! (`stopLossBracket`, ticks from the fill) and one target (`takeProfitBracket`) — which the
//! server attaches when the entry fills, sized to the filled quantity and one-cancels-other.
//! More take-profit legs are not native. For a market entry this module:
//!
//! 1. places the entry with the stop and the first leg's target, tagged with the entry's
//!    client order id (`customTag`), ticks signed by side (a long's stop negative) — the
//!    convention several live integrations report as required;
//! 2. waits for the fill, and reads the filled quantity and price;
//! 3. finds the server's children (untagged exit orders on the contract created with the
//!    entry) and checks they sit on the protective side of the fill; a missing or misplaced
//!    child (accounts without "Auto OCO Brackets", another tick convention) is canceled and
//!    replaced by a standalone order at the same distance (`-sl`, `-tp1`) — never left out;
//! 4. sizes the legs from the filled quantity (each leg its requested quantity at most, in
//!    order, until the fill is used up), resizes the native target to the first leg and
//!    places the other legs as limit orders tagged `<id>-tp2`, `<id>-tp3`, ….
//!
//! The stop stays at the filled size; the hub's exit guard keeps every exit order within the
//! position as legs fill, and cancels the legs left when the position is flat.

use std::time::Duration;

use chrono::Utc;
use jt_domain::instrument::round_to_increment;
use jt_domain::order::{BracketOrder, OrderKind, StopKind};
use jt_domain::types::Side;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::common::enums::{self, order_status, order_type};
use crate::common::models::OrderModel;
use crate::http::client::ProjectXHttpClient;
use crate::http::models::{PlaceOrderBracket, PlaceOrderRequest};
use jt_broker::capabilities::Feature;
use jt_broker::error::BrokerError;
use jt_broker::model::{AccountId, BracketAck, Contract, OrderId};

/// Whole ticks in `distance`, or an error when it is not on the contract's grid.
///
/// # Errors
/// `InvalidRequest` for a distance that is not a positive whole number of ticks.
pub fn ticks(distance: Decimal, tick: Decimal, what: &str) -> Result<i32, BrokerError> {
    if tick <= Decimal::ZERO || distance <= Decimal::ZERO {
        return Err(BrokerError::invalid(format!(
            "{what} distance {distance} (tick {tick}) must be positive"
        )));
    }
    let n = distance / tick;
    if !n.fract().is_zero() {
        return Err(BrokerError::invalid(format!(
            "{what} distance {distance} is not a whole number of {tick} ticks"
        )));
    }
    n.to_i32()
        .ok_or_else(|| BrokerError::invalid(format!("{what} distance {distance} is too far")))
}

pub use jt_broker::legs::{is_exit_tag, leg_sizes, leg_tag, stop_tag};

/// The `Order/place` body of a bracket's entry.
///
/// # Errors
/// `InvalidRequest` for distances off the tick grid.
pub fn entry_body(
    account_id: i64,
    contract: &Contract,
    bracket: &BracketOrder,
    tick: Decimal,
) -> Result<PlaceOrderRequest, BrokerError> {
    // Signed ticks: positive is the winning side of a long.
    let dir: i32 = match bracket.side {
        Side::Buy => 1,
        Side::Sell => -1,
    };
    let stop_loss_bracket = match &bracket.stop {
        None => None,
        Some(s) => Some(PlaceOrderBracket {
            ticks: -dir * ticks(s.distance, tick, "stop")?,
            order_type: match s.kind {
                StopKind::Fixed => order_type::STOP,
                StopKind::Trailing { .. } => order_type::TRAILING_STOP,
            },
        }),
    };
    let take_profit_bracket = match bracket.take_profits.first() {
        None => None,
        Some(leg) => Some(PlaceOrderBracket {
            ticks: dir * ticks(leg.distance, tick, "take-profit 1")?,
            order_type: order_type::LIMIT,
        }),
    };
    for (i, leg) in bracket.take_profits.iter().enumerate().skip(1) {
        ticks(leg.distance, tick, &format!("take-profit {}", i + 1))?;
    }
    Ok(PlaceOrderRequest {
        account_id,
        contract_id: contract.id.to_string(),
        order_type: order_type::MARKET,
        side: enums::side_number(bracket.side),
        size: i64::from(bracket.qty),
        limit_price: None,
        stop_price: None,
        custom_tag: bracket.client_order_id.clone(),
        stop_loss_bracket,
        take_profit_bracket,
    })
}

/// Refuses what a ProjectX bracket cannot carry (see `PROJECTX_CAPABILITIES`).
///
/// # Errors
/// `Unsupported` naming the missing feature; `InvalidRequest` for a broken bracket.
pub fn check(bracket: &BracketOrder) -> Result<(), BrokerError> {
    bracket
        .validate()
        .map_err(|e| BrokerError::invalid(e.to_string()))?;
    if !matches!(bracket.entry, OrderKind::Market) {
        return Err(BrokerError::Unsupported {
            feature: Feature::NonMarketBracketEntry,
        });
    }
    if let Some(s) = &bracket.stop
        && let StopKind::Trailing { trigger, .. } = s.kind
        && !trigger.is_zero()
    {
        return Err(BrokerError::Unsupported {
            feature: Feature::TrailingTrigger,
        });
    }
    if bracket.break_even.is_some() {
        return Err(BrokerError::Unsupported {
            feature: Feature::BreakEven,
        });
    }
    Ok(())
}

fn unknown(bracket: &BracketOrder, detail: String) -> BrokerError {
    BrokerError::UnknownOutcome {
        operation: "place_bracket".into(),
        client_order_id: Some(bracket.client_order_id.clone()),
        detail,
    }
}

/// Places a bracket (see the module docs).
///
/// # Errors
/// See [`jt_broker::Broker::place_bracket`]. A failure after the entry was placed is
/// `UnknownOutcome`: the caller reconciles (the entry exists; its detail says what is in
/// place).
pub async fn place(
    http: &ProjectXHttpClient,
    account: &AccountId,
    contract: &Contract,
    bracket: &BracketOrder,
) -> Result<BracketAck, BrokerError> {
    check(bracket)?;
    let acct = http.account(account).await?;
    let tick = http.tick_size(&contract.id).await?;
    let body = entry_body(acct.id, contract, bracket, tick)?;
    let ack = http.submit(account, &body, "place_bracket").await?;
    let done = |recovered| BracketAck {
        client_order_id: bracket.client_order_id.clone(),
        bracket_id: None,
        entry_order_id: Some(ack.order_id.clone()),
        recovered,
    };
    if !bracket.is_protected() {
        return Ok(done(ack.recovered));
    }
    let entry_id: i64 = ack.order_id.as_str().parse().unwrap_or_default();
    let entry = wait_for_fill(http, account, entry_id, bracket).await?;
    let filled = u32::try_from(entry.fill_volume).unwrap_or(0);
    let Some(fill_price) = entry.filled_price else {
        return Err(unknown(
            bracket,
            format!("entry {entry_id} filled {filled} without a fill price: protection unverified"),
        ));
    };
    let reference = round_to_increment(fill_price, tick);
    follow_up(http, account, contract, bracket, &entry, filled, reference, tick)
        .await
        .map_err(|e| match e {
            e @ BrokerError::UnknownOutcome { .. } => e,
            other => unknown(
                bracket,
                format!("entry {entry_id} filled {filled} @ {fill_price}; completing its protection failed: {other}"),
            ),
        })?;
    Ok(done(ack.recovered))
}

async fn wait_for_fill(
    http: &ProjectXHttpClient,
    account: &AccountId,
    entry_id: i64,
    bracket: &BracketOrder,
) -> Result<OrderModel, BrokerError> {
    let cfg = &http.config().brackets;
    let deadline = tokio::time::Instant::now() + cfg.fill_wait;
    let since = Utc::now() - chrono::Duration::minutes(5);
    let mut last: Option<OrderModel> = None;
    loop {
        if let Some(o) = http
            .orders_since(account, since)
            .await?
            .into_iter()
            .find(|o| o.id == entry_id)
        {
            match o.status {
                order_status::FILLED => return Ok(o),
                order_status::CANCELLED | order_status::REJECTED | order_status::EXPIRED
                    if o.fill_volume == 0 =>
                {
                    return Err(BrokerError::Rejected {
                        reason: format!(
                            "bracket entry {entry_id} ended with status {} unfilled",
                            o.status
                        ),
                        code: Some(format!("Status{}", o.status)),
                    });
                }
                order_status::CANCELLED | order_status::REJECTED | order_status::EXPIRED => {
                    return Ok(o);
                }
                _ => last = Some(o),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return match last {
                Some(o) if o.fill_volume > 0 => Ok(o),
                _ => Err(unknown(
                    bracket,
                    format!(
                        "entry {entry_id} not filled within {:?}: its native bracket protects it when it fills; the other take-profit legs were not placed",
                        cfg.fill_wait
                    ),
                )),
            };
        }
        tokio::time::sleep(cfg.poll_interval).await;
    }
}

/// The server's children of `entry`: untagged exit orders on the contract created with it.
fn children<'a>(
    open: &'a [OrderModel],
    entry: &OrderModel,
    exit: Side,
) -> (Option<&'a OrderModel>, Option<&'a OrderModel>) {
    let mine = |o: &&OrderModel| {
        o.contract_id == entry.contract_id
            && enums::side(o.side) == Some(exit)
            && o.custom_tag.is_none()
            && o.id > entry.id
    };
    let stop = open
        .iter()
        .filter(mine)
        .find(|o| matches!(o.order_type, order_type::STOP | order_type::TRAILING_STOP));
    let target = open
        .iter()
        .filter(mine)
        .find(|o| o.order_type == order_type::LIMIT);
    (stop, target)
}

#[allow(clippy::too_many_arguments)]
async fn follow_up(
    http: &ProjectXHttpClient,
    account: &AccountId,
    contract: &Contract,
    bracket: &BracketOrder,
    entry: &OrderModel,
    filled: u32,
    reference: Decimal,
    tick: Decimal,
) -> Result<(), BrokerError> {
    let cfg = &http.config().brackets;
    let exit = bracket.side.opposite();
    let dir = match bracket.side {
        Side::Buy => Decimal::ONE,
        Side::Sell => Decimal::NEGATIVE_ONE,
    };
    let want_stop = bracket.stop.is_some();
    let want_target = !bracket.take_profits.is_empty();
    // Wait for the server's children (real servers send them 200–300 ms after the fill).
    let deadline = tokio::time::Instant::now() + cfg.children_wait;
    let open = loop {
        let open = http.open_order_models(account).await?;
        let (s, t) = children(&open, entry, exit);
        if (s.is_some() || !want_stop) && (t.is_some() || !want_target) {
            break open;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                entry = entry.id,
                stop = s.is_some(),
                target = t.is_some(),
                "ProjectX bracket children missing after the fill; placing them as standalone orders"
            );
            break open;
        }
        tokio::time::sleep(cfg.poll_interval).await;
    };
    let (stop_child, target_child) = children(&open, entry, exit);
    let tagged = |tag: &str| open.iter().find(|o| o.custom_tag.as_deref() == Some(tag));
    // The stop: on the losing side of the fill, or replaced.
    if let Some(spec) = &bracket.stop {
        let level = round_to_increment(reference - dir * spec.distance, tick);
        let good = stop_child.is_some_and(|s| {
            s.stop_price
                .is_some_and(|p| (reference - p) * dir > Decimal::ZERO)
        });
        if !good {
            if let Some(s) = stop_child {
                tracing::error!(order = s.id, stop = ?s.stop_price, fill = %reference, "ProjectX placed the bracket stop on the wrong side; replacing it");
                let _ = http.cancel_order(account, &OrderId::from(s.id)).await;
            }
            if tagged(&stop_tag(&bracket.client_order_id)).is_none() {
                place_exit(
                    http,
                    account,
                    contract,
                    &stop_tag(&bracket.client_order_id),
                    exit,
                    filled,
                    order_type::STOP,
                    level,
                )
                .await?;
            }
        }
    }
    let sizes = leg_sizes(
        &bracket
            .take_profits
            .iter()
            .map(|l| l.qty)
            .collect::<Vec<_>>(),
        filled,
    );
    for (i, (leg, size)) in bracket.take_profits.iter().zip(&sizes).enumerate() {
        let price = round_to_increment(reference + dir * leg.distance, tick);
        if i == 0 {
            // The native target: kept (resized to the first leg) when it is on the winning side.
            let good = target_child.filter(|t| {
                t.limit_price
                    .is_some_and(|p| (p - reference) * dir > Decimal::ZERO)
            });
            match (good, target_child) {
                (Some(t), _) => {
                    if *size == 0 {
                        http.cancel_order(account, &OrderId::from(t.id)).await?;
                    } else if i64::from(*size) < t.size {
                        http.modify_size(account, t.id, *size).await?;
                    }
                    continue;
                }
                (None, Some(t)) => {
                    tracing::error!(order = t.id, limit = ?t.limit_price, fill = %reference, "ProjectX placed the bracket target on the wrong side; replacing it");
                    let _ = http.cancel_order(account, &OrderId::from(t.id)).await;
                }
                (None, None) => {}
            }
        }
        let tag = leg_tag(&bracket.client_order_id, i + 1);
        if *size > 0 && tagged(&tag).is_none() {
            place_exit(
                http,
                account,
                contract,
                &tag,
                exit,
                *size,
                order_type::LIMIT,
                price,
            )
            .await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn place_exit(
    http: &ProjectXHttpClient,
    account: &AccountId,
    contract: &Contract,
    tag: &str,
    side: Side,
    size: u32,
    kind: i32,
    price: Decimal,
) -> Result<(), BrokerError> {
    let acct = http.account(account).await?;
    let body = PlaceOrderRequest {
        account_id: acct.id,
        contract_id: contract.id.to_string(),
        order_type: kind,
        side: enums::side_number(side),
        size: i64::from(size),
        limit_price: (kind == order_type::LIMIT).then_some(price),
        stop_price: (kind == order_type::STOP).then_some(price),
        custom_tag: tag.to_string(),
        stop_loss_bracket: None,
        take_profit_bracket: None,
    };
    http.submit(account, &body, "place_bracket")
        .await
        .map(|_| ())
}

/// How long [`place`] may take at most beyond its calls (for callers' deadlines).
#[must_use]
pub fn follow_up_budget(http: &ProjectXHttpClient) -> Duration {
    let c = &http.config().brackets;
    c.fill_wait + c.children_wait
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_domain::order::{StopSpec, TakeProfitLeg};
    use rust_decimal_macros::dec;

    #[test]
    fn distances_become_whole_ticks_or_are_refused() {
        assert_eq!(ticks(dec!(2.5), dec!(0.25), "x"), Ok(10));
        assert_eq!(ticks(dec!(1), dec!(0.0078125), "x"), Ok(128));
        assert!(ticks(dec!(2.6), dec!(0.25), "x").is_err());
        assert!(ticks(dec!(0), dec!(0.25), "x").is_err());
    }

    #[test]
    fn legs_follow_the_fill_in_order() {
        assert_eq!(leg_sizes(&[5, 5, 5], 15), vec![5, 5, 5]);
        assert_eq!(leg_sizes(&[5, 5, 5], 9), vec![5, 4, 0]);
        assert_eq!(leg_sizes(&[1, 1], 5), vec![1, 1]);
    }

    #[test]
    fn exit_tags_are_recognised() {
        assert!(is_exit_tag("jt-1-tp2"));
        assert!(is_exit_tag("jt-1-tp"));
        assert!(is_exit_tag("jt-1-sl"));
        assert!(!is_exit_tag("jt-1"));
        assert!(!is_exit_tag("jt-tpx"));
    }

    #[test]
    fn the_entry_carries_signed_ticks_and_the_first_leg() {
        let contract = Contract {
            id: "CON.F.US.MNQ.Z25".into(),
            name: "MNQZ5".into(),
            root: "MNQ".into(),
        };
        let mut b = BracketOrder {
            client_order_id: "jt-9".into(),
            side: Side::Sell,
            qty: 3,
            entry: OrderKind::Market,
            take_profits: vec![
                TakeProfitLeg {
                    qty: 1,
                    distance: dec!(5),
                },
                TakeProfitLeg {
                    qty: 2,
                    distance: dec!(10),
                },
            ],
            stop: Some(StopSpec {
                distance: dec!(2.5),
                kind: StopKind::Trailing {
                    trigger: dec!(0),
                    step: dec!(0),
                },
            }),
            break_even: None,
        };
        let body = entry_body(7, &contract, &b, dec!(0.25)).unwrap();
        assert_eq!(
            body.stop_loss_bracket,
            Some(PlaceOrderBracket {
                ticks: 10,
                order_type: 5
            })
        );
        assert_eq!(
            body.take_profit_bracket,
            Some(PlaceOrderBracket {
                ticks: -20,
                order_type: 1
            })
        );
        assert_eq!(
            (body.side, body.size, body.custom_tag.as_str()),
            (1, 3, "jt-9")
        );
        b.take_profits[1].distance = dec!(10.1);
        assert!(
            entry_body(7, &contract, &b, dec!(0.25)).is_err(),
            "every leg is checked"
        );
        b.break_even = Some(jt_domain::order::BreakEven {
            trigger: dec!(2),
            offset: dec!(0),
        });
        assert_eq!(
            check(&b),
            Err(BrokerError::Unsupported {
                feature: Feature::BreakEven
            })
        );
    }
}
