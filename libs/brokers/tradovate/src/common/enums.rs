//! Tradovate's enum strings and their broker-neutral meaning.

use jt_domain::types::Side;

use jt_broker::model::{OrderStatus, OrderType};

/// `Buy` / `Sell` for a side.
#[must_use]
pub fn action(side: Side) -> &'static str {
    match side {
        Side::Buy => "Buy",
        Side::Sell => "Sell",
    }
}

/// The side of an `action` string (case-insensitive).
#[must_use]
pub fn side(action: &str) -> Option<Side> {
    if action.eq_ignore_ascii_case("buy") {
        Some(Side::Buy)
    } else if action.eq_ignore_ascii_case("sell") {
        Some(Side::Sell)
    } else {
        None
    }
}

/// The status of an `ordStatus` string (BROKERS.md §1.4).
#[must_use]
pub fn order_status(ord_status: &str) -> OrderStatus {
    match ord_status {
        "PendingNew" => OrderStatus::Pending,
        "Working" => OrderStatus::Working,
        "Filled" | "Completed" => OrderStatus::Filled,
        "Canceled" | "Cancelled" => OrderStatus::Canceled,
        "Rejected" => OrderStatus::Rejected,
        "Expired" => OrderStatus::Expired,
        "Suspended" => OrderStatus::Suspended,
        "PendingCancel" | "PendingReplace" => OrderStatus::PendingChange,
        _ => OrderStatus::Unknown,
    }
}

/// The type of an `orderType` string.
#[must_use]
pub fn order_type(order_type: &str) -> OrderType {
    match order_type {
        "Market" => OrderType::Market,
        "Limit" => OrderType::Limit,
        "Stop" => OrderType::Stop,
        "StopLimit" => OrderType::StopLimit,
        "TrailingStop" => OrderType::TrailingStop,
        "TrailingStopLimit" => OrderType::TrailingStopLimit,
        _ => OrderType::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("PendingNew", OrderStatus::Pending)]
    #[case("Working", OrderStatus::Working)]
    #[case("Filled", OrderStatus::Filled)]
    #[case("Canceled", OrderStatus::Canceled)]
    #[case("Rejected", OrderStatus::Rejected)]
    #[case("Suspended", OrderStatus::Suspended)]
    #[case("PendingCancel", OrderStatus::PendingChange)]
    #[case("Whatever", OrderStatus::Unknown)]
    fn statuses(#[case] wire: &str, #[case] status: OrderStatus) {
        assert_eq!(order_status(wire), status);
    }

    #[test]
    fn sides_round_trip() {
        for s in [Side::Buy, Side::Sell] {
            assert_eq!(side(action(s)), Some(s));
        }
        assert_eq!(side("hold"), None);
    }
}
