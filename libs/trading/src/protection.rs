//! A position's protection resized (issue 17): the position's working exit orders resized to
//! what will remain, before a reduction is sent — take-profit legs trimmed from the farthest,
//! the stops to the remaining quantity — so no exit order can take the smaller position past
//! flat; and grown back, for the stops, to cover what the broker holds.
//!
//! Pure: from the account's working orders (read at the broker) to the changes to make. A
//! take-profit and the stop it is one-cancels-other with (a Tradovate bracket leg) are trimmed
//! together, so a later fill of one still cancels exactly the other. The same function restores
//! the stops when the reduction is refused: asked for the position the broker still holds, it
//! grows a stop back to cover it (take-profits are never grown).

use std::collections::HashMap;

use jt_broker::{ContractId, ExitOrders, OrderId, OrderReport, OrderType};
use jt_domain::{Contracts, Direction};

/// One change: the order's working quantity becomes `to` (0 = cancel it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resize {
    /// The order, as read at the broker.
    pub order: OrderReport,
    /// Its working quantity now.
    pub from: Contracts,
    /// Its working quantity after the change; 0 cancels it.
    pub to: Contracts,
}

impl Resize {
    /// The order's new total quantity for a modify call (brokers count what has filled).
    #[must_use]
    pub fn total(&self) -> Contracts {
        self.to.saturating_add(self.order.filled_qty.unwrap_or(0))
    }
}

fn working(o: &OrderReport) -> Contracts {
    o.qty.unwrap_or(0).saturating_sub(o.filled_qty.unwrap_or(0))
}

fn is_stop(o: &OrderReport) -> bool {
    matches!(
        o.order_type,
        Some(
            OrderType::Stop
                | OrderType::StopLimit
                | OrderType::TrailingStop
                | OrderType::TrailingStopLimit
        )
    )
}

/// The changes that leave the `direction` position's exit orders on `contract` covering at most
/// `target` contracts with take-profits, and exactly `target` with stops (when it has any).
#[must_use]
pub fn resize_plan(
    orders: &[OrderReport],
    contract: &ContractId,
    direction: Direction,
    target: Contracts,
) -> Vec<Resize> {
    let exits: Vec<&OrderReport> = orders
        .iter()
        .filter(|o| ExitOrders::All.matches(o, contract, direction))
        .collect();
    let mut qty: HashMap<&OrderId, Contracts> = exits.iter().map(|o| (&o.id, working(o))).collect();
    let mut take_profits: Vec<&OrderReport> = exits
        .iter()
        .copied()
        .filter(|o| o.order_type == Some(OrderType::Limit))
        .collect();
    let stops: Vec<&OrderReport> = exits.iter().copied().filter(|o| is_stop(o)).collect();
    // Farthest first: the highest target of a long, the lowest of a short.
    take_profits.sort_by(|a, b| match direction {
        Direction::Long => b.price.cmp(&a.price),
        Direction::Short => a.price.cmp(&b.price),
    });
    let stop_ids: Vec<&OrderId> = stops.iter().map(|o| &o.id).collect();

    let mut excess = take_profits
        .iter()
        .map(|o| qty[&o.id])
        .sum::<Contracts>()
        .saturating_sub(target);
    for tp in &take_profits {
        if excess == 0 {
            break;
        }
        let cut = qty[&tp.id].min(excess);
        excess -= cut;
        qty.entry(&tp.id).and_modify(|q| *q -= cut);
        // Its one-cancels-other stop shrinks with it.
        if let Some(partner) = tp.linked.as_ref().filter(|p| stop_ids.contains(p))
            && let Some(q) = qty.get_mut(partner)
        {
            *q = q.saturating_sub(cut);
        }
    }

    // Stops: those without a live partner first (a runner, or a pair just trimmed), then the
    // partner of the farthest take-profit.
    let live_partner = |o: &OrderReport| {
        o.linked
            .as_ref()
            .and_then(|p| take_profits.iter().position(|t| &t.id == p))
            .filter(|i| qty[&take_profits[*i].id] > 0)
    };
    let mut ordered: Vec<&OrderReport> = stops.clone();
    ordered.sort_by_key(|o| live_partner(o).map_or(-1, |i| i64::try_from(i).unwrap_or(0)));
    let total: Contracts = ordered.iter().map(|o| qty[&o.id]).sum();
    if total > target {
        let mut excess = total - target;
        for stop in &ordered {
            if excess == 0 {
                break;
            }
            let cut = qty[&stop.id].min(excess);
            excess -= cut;
            qty.entry(&stop.id).and_modify(|q| *q -= cut);
        }
    } else if total < target
        && let Some(stop) = ordered
            .iter()
            .find(|o| qty[&o.id] > 0)
            .or_else(|| ordered.first())
    {
        // Too little stop for what remains (a stop sized to an earlier fill, or restoring
        // after a refused reduction): one stop grows to cover it.
        qty.entry(&stop.id).and_modify(|q| *q += target - total);
    }

    take_profits
        .iter()
        .chain(stops.iter())
        .filter_map(|o| {
            let from = working(o);
            let to = qty[&o.id];
            (from != to).then(|| Resize {
                order: (*o).clone(),
                from,
                to,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_broker::{AccountId, OrderStatus};
    use jt_domain::Side;
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;

    fn order(
        id: &str,
        kind: OrderType,
        qty: Contracts,
        price: Decimal,
        linked: Option<&str>,
    ) -> OrderReport {
        OrderReport {
            id: OrderId::from(id),
            client_order_id: None,
            account: AccountId::from("1"),
            contract: Some(ContractId::from("MNQZ6")),
            symbol: None,
            side: Side::Sell,
            order_type: Some(kind),
            qty: Some(qty),
            price: (kind == OrderType::Limit).then_some(price),
            stop_price: (kind != OrderType::Limit).then_some(price),
            status: OrderStatus::Working,
            filled_qty: None,
            avg_fill_price: None,
            parent: None,
            linked: linked.map(OrderId::from),
            reject_reason: None,
            timestamp: None,
        }
    }

    fn changes(plan: &[Resize]) -> Vec<(String, Contracts)> {
        let mut out: Vec<(String, Contracts)> = plan
            .iter()
            .map(|r| (r.order.id.to_string(), r.to))
            .collect();
        out.sort();
        out
    }

    fn contract() -> ContractId {
        ContractId::from("MNQZ6")
    }

    #[test]
    fn tradovate_legs_are_trimmed_from_the_farthest_with_their_stops() {
        // Three legs of 1 (each its own target and stop), a long of 3 reduced to 1.
        let orders = vec![
            order("tp1", OrderType::Limit, 1, dec!(21010), Some("sl1")),
            order("sl1", OrderType::Stop, 1, dec!(20990), Some("tp1")),
            order("tp2", OrderType::Limit, 1, dec!(21020), Some("sl2")),
            order("sl2", OrderType::Stop, 1, dec!(20990), Some("tp2")),
            order("tp3", OrderType::Limit, 1, dec!(21030), Some("sl3")),
            order("sl3", OrderType::Stop, 1, dec!(20990), Some("tp3")),
        ];
        let plan = resize_plan(&orders, &contract(), Direction::Long, 1);
        assert_eq!(
            changes(&plan),
            vec![
                ("sl2".into(), 0),
                ("sl3".into(), 0),
                ("tp2".into(), 0),
                ("tp3".into(), 0)
            ]
        );
    }

    #[test]
    fn a_runner_stop_goes_before_a_paired_one() {
        // Legs of 1 and 1 plus a stop-only runner of 2: a long of 4 reduced to 3.
        let orders = vec![
            order("tp1", OrderType::Limit, 1, dec!(21010), Some("sl1")),
            order("sl1", OrderType::Stop, 1, dec!(20990), Some("tp1")),
            order("tp2", OrderType::Limit, 1, dec!(21020), Some("sl2")),
            order("sl2", OrderType::Stop, 1, dec!(20990), Some("tp2")),
            order("run", OrderType::Stop, 2, dec!(20990), None),
        ];
        let plan = resize_plan(&orders, &contract(), Direction::Long, 3);
        assert_eq!(changes(&plan), vec![("run".into(), 1)]);
    }

    #[test]
    fn a_single_stop_follows_the_remaining_quantity_and_a_target_is_partly_trimmed() {
        // ProjectX: one stop for the position, targets without links. 6 → 4.
        let orders = vec![
            order("tp1", OrderType::Limit, 2, dec!(21010), None),
            order("tp2", OrderType::Limit, 4, dec!(21020), None),
            order("sl", OrderType::Stop, 6, dec!(20990), None),
        ];
        let plan = resize_plan(&orders, &contract(), Direction::Long, 4);
        assert_eq!(
            changes(&plan),
            vec![("sl".into(), 4), ("tp2".into(), 2)],
            "the farthest target loses 2"
        );
        // A short: the farthest target is the lowest.
        let short: Vec<OrderReport> = vec![
            OrderReport {
                side: Side::Buy,
                ..order("near", OrderType::Limit, 1, dec!(20990), None)
            },
            OrderReport {
                side: Side::Buy,
                ..order("far", OrderType::Limit, 1, dec!(20980), None)
            },
        ];
        let plan = resize_plan(&short, &contract(), Direction::Short, 1);
        assert_eq!(changes(&plan), vec![("far".into(), 0)]);
    }

    #[test]
    fn restoring_grows_the_stop_back_and_never_the_targets() {
        let orders = vec![
            order("tp1", OrderType::Limit, 1, dec!(21010), None),
            order("sl", OrderType::Stop, 2, dec!(20990), None),
        ];
        let plan = resize_plan(&orders, &contract(), Direction::Long, 4);
        assert_eq!(changes(&plan), vec![("sl".into(), 4)]);
        // Nothing to change when it already fits.
        assert!(resize_plan(&orders, &contract(), Direction::Long, 2).is_empty());
        // Other contracts, entry-side and cancelled orders are not touched.
        let mut other = order("x", OrderType::Stop, 5, dec!(1), None);
        other.contract = Some(ContractId::from("ESZ6"));
        assert!(resize_plan(&[other], &contract(), Direction::Long, 1).is_empty());
    }
}
