//! The platform's one-cancels-other for Webull, which has no combo orders for futures.
//!
//! **Where it runs, and why.** On the login's event side ([`crate::events`]): every poll of an
//! account reads its open orders and then its positions, and the guard keeps the platform's
//! exit orders (client order ids `…-tpN`, `…-tp`, `…-sl`, [`jt_broker::legs`]) within the
//! position from those two reads alone. The event side runs where the login is subscribed —
//! the connection manager, which holds each login on exactly one replica — never in the
//! process that placed the protection (the executor opens no event side). Nothing is armed or
//! remembered from the placement: a restarted or new replica guards every open position it
//! finds, including protection it never saw placed.
//!
//! The rules, per contract with at least one working exit order:
//!
//! - the position is flat: every exit order still working is canceled (a take-profit filled:
//!   its stop goes; the stop filled: the take-profits go);
//! - an exit order would close more than the position holds (a take-profit leg filled): its
//!   quantity is reduced to the position (the stop shrinks as legs fill);
//! - an exit order on the position's own side (it would add to it) is canceled.
//!
//! **Races with protection being placed right now** (a decision, docs/brokers.md "Webull"):
//! the open orders are read **before** the positions, and a bracket's protection is placed
//! only after its entry filled, so an exit order in the first read has its entry in the second
//! (a concurrent read could pair a stop placed a moment ago with a position read from before
//! its entry filled, and cancel it). Against a broker whose position read lags its order state,
//! the guard also leaves alone an exit order it has not seen working for `oco.grace` (1 s: with
//! 2 s polls, one seen for the first time is acted on at the next pass). That age is the
//! poller's own observation, not a clock of the placing process, so it survives every
//! restart: a fresh replica waits one pass before acting on what it finds.
//!
//! Limits: a sibling lives up to a poll interval (plus the grace for protection placed within
//! the last pass) after its partner filled.

use std::collections::HashMap;
use std::time::Duration;

use jt_broker::legs::is_exit_tag;
use jt_broker::{AccountId, BrokerError};
use rust_decimal::Decimal;
use tokio::time::Instant;

use crate::http::client::WebullHttpClient;
use crate::http::models::{WbModify, WbOrder, WbPosition};

/// What the guard does to one exit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Cancel it: the position is flat, or it would add to the position.
    Cancel {
        /// The order's client order id.
        id: String,
        /// Its contract.
        symbol: String,
    },
    /// Reduce its quantity to `quantity` (what filled plus the position): it would close
    /// more than the position holds.
    Reduce {
        /// The order's client order id.
        id: String,
        /// Its contract.
        symbol: String,
        /// The order's new total quantity.
        quantity: Decimal,
    },
}

/// Whether `o` is a working exit order of the platform.
pub(crate) fn is_working_exit(o: &WbOrder) -> bool {
    o.status.is_working() && o.client_order_id.as_deref().is_some_and(is_exit_tag)
}

/// What to do, from the open orders (read first) and the positions (read after): see the
/// module docs. `first_seen` holds when the poller first saw each working exit order (by
/// client order id); one not in it, or seen less than `grace` ago, is left for a later pass.
pub(crate) fn plan(
    open: &[WbOrder],
    positions: &[WbPosition],
    first_seen: &HashMap<String, Instant>,
    now: Instant,
    grace: Duration,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for o in open.iter().filter(|o| is_working_exit(o)) {
        let Some(id) = o.client_order_id.as_deref() else {
            continue;
        };
        let settled = first_seen
            .get(id)
            .is_some_and(|t| now.saturating_duration_since(*t) >= grace);
        if !settled {
            continue;
        }
        let net: Decimal = positions
            .iter()
            .filter(|p| p.symbol == o.symbol)
            .map(WbPosition::net)
            .sum();
        let exit_side = if net > Decimal::ZERO { "SELL" } else { "BUY" };
        let size = net.abs();
        let left = o.quantity - o.filled_quantity;
        if net.is_zero() || !o.side.eq_ignore_ascii_case(exit_side) {
            actions.push(Action::Cancel {
                id: id.to_string(),
                symbol: o.symbol.clone(),
            });
        } else if left > size {
            actions.push(Action::Reduce {
                id: id.to_string(),
                symbol: o.symbol.clone(),
                quantity: o.filled_quantity + size,
            });
        }
    }
    actions
}

/// Carries out `actions` on `account`. An order filled or canceled meanwhile is refused as not
/// working: the next pass sees it. Other failures are logged and tried again next pass.
pub(crate) async fn apply(http: &WebullHttpClient, account: &AccountId, actions: Vec<Action>) {
    for action in actions {
        let (id, symbol, result) = match action {
            Action::Cancel { id, symbol } => {
                tracing::info!(
                    broker = "webull", %account, contract = %symbol, order = %id,
                    "one-cancels-other: canceling an exit order the position no longer needs"
                );
                let r = http.cancel(account.as_str(), &id).await;
                (id, symbol, r)
            }
            Action::Reduce {
                id,
                symbol,
                quantity,
            } => {
                tracing::info!(
                    broker = "webull", %account, contract = %symbol, order = %id, %quantity,
                    "one-cancels-other: reducing an exit order to the position"
                );
                let r = http
                    .replace(
                        account.as_str(),
                        &WbModify {
                            client_order_id: id.clone(),
                            quantity: Some(quantity.normalize().to_string()),
                            limit_price: None,
                            stop_price: None,
                        },
                    )
                    .await;
                (id, symbol, r)
            }
        };
        match result {
            Ok(()) | Err(BrokerError::Rejected { .. }) => {}
            Err(e) => tracing::warn!(
                broker = "webull", %account, contract = %symbol, order = %id, error = %e,
                "one-cancels-other: could not adjust an exit order; trying again next pass"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::models::WbStatus;
    use rust_decimal_macros::dec;

    fn order(id: &str, side: &str, qty: Decimal, filled: Decimal) -> WbOrder {
        WbOrder {
            client_order_id: Some(id.into()),
            order_id: format!("o-{id}"),
            symbol: "MNQZ6".into(),
            side: side.into(),
            order_type: "LIMIT".into(),
            quantity: qty,
            filled_quantity: filled,
            limit_price: None,
            stop_price: None,
            filled_price: None,
            status: if filled.is_zero() {
                WbStatus::Submitted
            } else {
                WbStatus::PartialFilled
            },
        }
    }

    fn long(qty: Decimal) -> Vec<WbPosition> {
        vec![WbPosition {
            symbol: "MNQZ6".into(),
            position_side: "LONG".into(),
            quantity: qty,
            cost_price: None,
        }]
    }

    fn seen_long_ago(open: &[WbOrder], now: Instant) -> HashMap<String, Instant> {
        open.iter()
            .filter_map(|o| o.client_order_id.clone())
            .map(|id| (id, now.checked_sub(Duration::from_secs(60)).unwrap_or(now)))
            .collect()
    }

    const GRACE: Duration = Duration::from_secs(1);

    #[test]
    fn flat_cancels_every_exit_and_a_filled_leg_shrinks_the_stop() {
        let now = Instant::now();
        let open = vec![
            order("b-sl", "SELL", dec!(2), dec!(0)),
            order("b-tp2", "SELL", dec!(1), dec!(0)),
            order("other", "SELL", dec!(5), dec!(0)),
        ];
        let seen = seen_long_ago(&open, now);
        // Flat: both exits go; an order that is not the platform's exit is left alone.
        assert_eq!(
            plan(&open, &[], &seen, now, GRACE),
            vec![
                Action::Cancel {
                    id: "b-sl".into(),
                    symbol: "MNQZ6".into()
                },
                Action::Cancel {
                    id: "b-tp2".into(),
                    symbol: "MNQZ6".into()
                },
            ]
        );
        // One contract left after the first leg filled: the stop is reduced to it.
        assert_eq!(
            plan(&open, &long(dec!(1)), &seen, now, GRACE),
            vec![Action::Reduce {
                id: "b-sl".into(),
                symbol: "MNQZ6".into(),
                quantity: dec!(1)
            }]
        );
        // A partly filled exit keeps what filled: its total becomes filled + position.
        let part = vec![order("c-tp1", "SELL", dec!(3), dec!(1))];
        let seen = seen_long_ago(&part, now);
        assert_eq!(
            plan(&part, &long(dec!(1)), &seen, now, GRACE),
            vec![Action::Reduce {
                id: "c-tp1".into(),
                symbol: "MNQZ6".into(),
                quantity: dec!(2)
            }]
        );
    }

    #[test]
    fn an_exit_on_the_positions_own_side_is_canceled() {
        let now = Instant::now();
        let open = vec![order("d-sl", "BUY", dec!(1), dec!(0))];
        let seen = seen_long_ago(&open, now);
        assert_eq!(
            plan(&open, &long(dec!(1)), &seen, now, GRACE),
            vec![Action::Cancel {
                id: "d-sl".into(),
                symbol: "MNQZ6".into()
            }]
        );
    }

    #[test]
    fn protection_just_seen_is_left_for_a_later_pass() {
        let now = Instant::now();
        let open = vec![order("e-sl", "SELL", dec!(2), dec!(0))];
        // Never seen before this pass: a position read that lags the entry must not cancel it.
        assert!(plan(&open, &[], &HashMap::new(), now, GRACE).is_empty());
        let mut seen = HashMap::new();
        seen.insert("e-sl".to_string(), now);
        assert!(plan(&open, &[], &seen, now, GRACE).is_empty());
        // Seen a grace ago: acted on.
        assert_eq!(
            plan(&open, &[], &seen, now + GRACE, GRACE).len(),
            1,
            "acted on once it has been seen working for the grace"
        );
    }
}
