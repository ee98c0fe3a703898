//! ProjectX's numeric enumerations (BROKERS.md §2.4, the server's swagger) and their
//! broker-neutral meaning — the one place where a wire number is given a name.

use jt_domain::types::{Direction, Side};

use jt_broker::model::{OrderStatus, OrderType};

/// `OrderType` numbers.
pub mod order_type {
    /// Limit.
    pub const LIMIT: i32 = 1;
    /// Market.
    pub const MARKET: i32 = 2;
    /// Stop-limit (the docs list it only in responses).
    pub const STOP_LIMIT: i32 = 3;
    /// Stop.
    pub const STOP: i32 = 4;
    /// Trailing stop.
    pub const TRAILING_STOP: i32 = 5;
    /// Limit at the best bid.
    pub const JOIN_BID: i32 = 6;
    /// Limit at the best ask.
    pub const JOIN_ASK: i32 = 7;
}

/// `OrderStatus` numbers.
pub mod order_status {
    /// None.
    pub const NONE: i32 = 0;
    /// Open (working).
    pub const OPEN: i32 = 1;
    /// Filled.
    pub const FILLED: i32 = 2;
    /// Cancelled.
    pub const CANCELLED: i32 = 3;
    /// Expired.
    pub const EXPIRED: i32 = 4;
    /// Rejected.
    pub const REJECTED: i32 = 5;
    /// Pending (a normal transient state, not a rejection).
    pub const PENDING: i32 = 6;
    /// A cancel is pending.
    pub const PENDING_CANCELLATION: i32 = 7;
    /// Suspended (an inactive bracket child).
    pub const SUSPENDED: i32 = 8;
}

/// `PositionType` numbers.
pub mod position_type {
    /// Long.
    pub const LONG: i32 = 1;
    /// Short.
    pub const SHORT: i32 = 2;
}

/// `AggregateBarUnit` numbers.
pub mod bar_unit {
    /// Minute.
    pub const MINUTE: i32 = 2;
    /// Hour.
    pub const HOUR: i32 = 3;
    /// Day.
    pub const DAY: i32 = 4;
}

/// The real-time `action` of a `{action, data}` envelope.
pub mod action {
    /// Created.
    pub const CREATE: i32 = 0;
    /// Updated.
    pub const UPDATE: i32 = 1;
    /// Deleted.
    pub const DELETE: i32 = 2;
}

/// `OrderSide` of a side: 0 Bid (buy), 1 Ask (sell).
#[must_use]
pub fn side_number(side: Side) -> i32 {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// The side of an `OrderSide` number.
#[must_use]
pub fn side(n: i32) -> Option<Side> {
    match n {
        0 => Some(Side::Buy),
        1 => Some(Side::Sell),
        _ => None,
    }
}

/// The neutral status of an `OrderStatus` number.
#[must_use]
pub fn status(n: i32) -> OrderStatus {
    match n {
        order_status::OPEN => OrderStatus::Working,
        order_status::FILLED => OrderStatus::Filled,
        order_status::CANCELLED => OrderStatus::Canceled,
        order_status::EXPIRED => OrderStatus::Expired,
        order_status::REJECTED => OrderStatus::Rejected,
        order_status::PENDING => OrderStatus::Pending,
        order_status::PENDING_CANCELLATION => OrderStatus::PendingChange,
        order_status::SUSPENDED => OrderStatus::Suspended,
        _ => OrderStatus::Unknown,
    }
}

/// The neutral type of an `OrderType` number (join-bid/ask are limit orders).
#[must_use]
pub fn order_kind(n: i32) -> OrderType {
    match n {
        order_type::LIMIT | order_type::JOIN_BID | order_type::JOIN_ASK => OrderType::Limit,
        order_type::MARKET => OrderType::Market,
        order_type::STOP_LIMIT => OrderType::StopLimit,
        order_type::STOP => OrderType::Stop,
        order_type::TRAILING_STOP => OrderType::TrailingStop,
        _ => OrderType::Other,
    }
}

/// The direction of a `PositionType` number — never the sign of `size`, which is always
/// positive at ProjectX.
#[must_use]
pub fn direction(position_type: i32) -> Option<Direction> {
    match position_type {
        position_type::LONG => Some(Direction::Long),
        position_type::SHORT => Some(Direction::Short),
        _ => None,
    }
}

/// The endpoints whose `errorCode` the adapter names (each endpoint has its own enumeration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `Auth/loginKey`, `Auth/loginApp`.
    Login,
    /// `Auth/validate`.
    Validate,
    /// `Auth/logout`.
    Logout,
    /// `Order/place`.
    PlaceOrder,
    /// `Order/cancel`.
    CancelOrder,
    /// `Order/modify`.
    ModifyOrder,
    /// `Position/closeContract`.
    ClosePosition,
    /// `Position/partialCloseContract`.
    PartialClosePosition,
    /// `Contract/searchById`.
    ContractById,
    /// `History/retrieveBars`.
    RetrieveBars,
    /// `Order/search`, `Order/searchOpen`, `Position/searchOpen`, `Trade/search`.
    Search,
    /// `Account/search`, `Contract/search`, `Contract/available` (success only).
    List,
}

/// The name of an endpoint's `errorCode` (the swagger's enumeration; `Code<n>` when unknown).
#[must_use]
pub fn error_name(endpoint: Endpoint, code: i32) -> String {
    let names: &[&str] = match endpoint {
        Endpoint::Login => &[
            "Success",
            "UserNotFound",
            "PasswordVerificationFailed",
            "InvalidCredentials",
            "AppNotFound",
            "AppVerificationFailed",
            "InvalidDevice",
            "AgreementsNotSigned",
            "UnknownError",
            "ApiSubscriptionNotFound",
            "ApiKeyAuthenticationDisabled",
        ],
        Endpoint::Validate => &[
            "Success",
            "InvalidSession",
            "SessionNotFound",
            "ExpiredToken",
            "UnknownError",
        ],
        Endpoint::Logout => &["Success", "InvalidSession", "UnknownError"],
        Endpoint::PlaceOrder => &[
            "Success",
            "AccountNotFound",
            "OrderRejected",
            "InsufficientFunds",
            "AccountViolation",
            "OutsideTradingHours",
            "OrderPending",
            "UnknownError",
            "ContractNotFound",
            "ContractNotActive",
            "AccountRejected",
        ],
        Endpoint::CancelOrder => &[
            "Success",
            "AccountNotFound",
            "OrderNotFound",
            "Rejected",
            "Pending",
            "UnknownError",
            "AccountRejected",
        ],
        Endpoint::ModifyOrder => &[
            "Success",
            "AccountNotFound",
            "OrderNotFound",
            "Rejected",
            "Pending",
            "UnknownError",
            "AccountRejected",
            "ContractNotFound",
        ],
        Endpoint::ClosePosition => &[
            "Success",
            "AccountNotFound",
            "PositionNotFound",
            "ContractNotFound",
            "ContractNotActive",
            "OrderRejected",
            "OrderPending",
            "UnknownError",
            "AccountRejected",
        ],
        Endpoint::PartialClosePosition => &[
            "Success",
            "AccountNotFound",
            "PositionNotFound",
            "ContractNotFound",
            "ContractNotActive",
            "InvalidCloseSize",
            "OrderRejected",
            "OrderPending",
            "UnknownError",
            "AccountRejected",
        ],
        Endpoint::ContractById => &["Success", "ContractNotFound"],
        Endpoint::RetrieveBars => &[
            "Success",
            "ContractNotFound",
            "UnitInvalid",
            "UnitNumberInvalid",
            "LimitInvalid",
        ],
        Endpoint::Search => &["Success", "AccountNotFound"],
        Endpoint::List => &["Success"],
    };
    usize::try_from(code)
        .ok()
        .and_then(|i| names.get(i))
        .map_or_else(|| format!("Code{code}"), |s| (*s).to_string())
}

/// Whether an error is ProjectX's "the order (or close) is pending": a transient state that
/// leaves the outcome open (BROKERS.md §2.8 gotcha 3), never a rejection.
#[must_use]
pub fn is_pending(endpoint: Endpoint, code: i32) -> bool {
    matches!(
        (endpoint, code),
        (Endpoint::PlaceOrder | Endpoint::ClosePosition, 6)
            | (Endpoint::PartialClosePosition, 7)
            | (Endpoint::CancelOrder | Endpoint::ModifyOrder, 4)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(1, OrderStatus::Working)]
    #[case(2, OrderStatus::Filled)]
    #[case(3, OrderStatus::Canceled)]
    #[case(5, OrderStatus::Rejected)]
    #[case(6, OrderStatus::Pending)]
    #[case(8, OrderStatus::Suspended)]
    #[case(42, OrderStatus::Unknown)]
    fn statuses(#[case] n: i32, #[case] want: OrderStatus) {
        assert_eq!(status(n), want);
    }

    #[test]
    fn sides_types_and_directions() {
        for s in [Side::Buy, Side::Sell] {
            assert_eq!(side(side_number(s)), Some(s));
        }
        assert_eq!(side(2), None);
        assert_eq!(order_kind(6), OrderType::Limit);
        assert_eq!(order_kind(5), OrderType::TrailingStop);
        assert_eq!(direction(2), Some(Direction::Short));
        assert_eq!(direction(0), None);
    }

    #[test]
    fn error_codes_are_named_per_endpoint() {
        assert_eq!(error_name(Endpoint::PlaceOrder, 2), "OrderRejected");
        assert_eq!(error_name(Endpoint::CancelOrder, 2), "OrderNotFound");
        assert_eq!(
            error_name(Endpoint::PartialClosePosition, 5),
            "InvalidCloseSize"
        );
        assert_eq!(error_name(Endpoint::Login, 9), "ApiSubscriptionNotFound");
        assert_eq!(error_name(Endpoint::Search, 7), "Code7");
        assert!(is_pending(Endpoint::PlaceOrder, 6));
        assert!(!is_pending(Endpoint::PlaceOrder, 2));
    }
}
