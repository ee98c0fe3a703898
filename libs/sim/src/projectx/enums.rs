//! ProjectX's numeric enumerations (BROKERS.md §2.4, the server's swagger), in one place: the
//! wire numbers and their mapping to and from the exchange core's vocabulary.

use crate::core::model::{Action, OrdStatus, OrderType};

/// `OrderType`: 0 Unknown, 1 Limit, 2 Market, 3 StopLimit, 4 Stop, 5 TrailingStop, 6 JoinBid,
/// 7 JoinAsk.
pub mod order_type {
    /// Unknown.
    pub const UNKNOWN: i64 = 0;
    /// Limit.
    pub const LIMIT: i64 = 1;
    /// Market.
    pub const MARKET: i64 = 2;
    /// Stop-limit (the docs list it only in responses; the simulator accepts it).
    pub const STOP_LIMIT: i64 = 3;
    /// Stop.
    pub const STOP: i64 = 4;
    /// Trailing stop.
    pub const TRAILING_STOP: i64 = 5;
    /// A limit order at the best bid.
    pub const JOIN_BID: i64 = 6;
    /// A limit order at the best ask.
    pub const JOIN_ASK: i64 = 7;
}

/// `OrderSide`: 0 Bid (buy), 1 Ask (sell).
pub mod side {
    /// Buy.
    pub const BID: i64 = 0;
    /// Sell.
    pub const ASK: i64 = 1;
}

/// `OrderStatus`: 0 None, 1 Open, 2 Filled, 3 Cancelled, 4 Expired, 5 Rejected, 6 Pending,
/// 7 PendingCancellation, 8 Suspended.
pub mod order_status {
    /// None.
    pub const NONE: i64 = 0;
    /// Open (working).
    pub const OPEN: i64 = 1;
    /// Filled.
    pub const FILLED: i64 = 2;
    /// Cancelled.
    pub const CANCELLED: i64 = 3;
    /// Expired.
    pub const EXPIRED: i64 = 4;
    /// Rejected.
    pub const REJECTED: i64 = 5;
    /// Pending (accepted, not yet working or filled).
    pub const PENDING: i64 = 6;
    /// A cancel is pending.
    pub const PENDING_CANCELLATION: i64 = 7;
    /// Suspended (inactive bracket child).
    pub const SUSPENDED: i64 = 8;
}

/// `PositionType`: 0 Undefined, 1 Long, 2 Short.
pub mod position_type {
    /// Undefined.
    pub const UNDEFINED: i64 = 0;
    /// Long.
    pub const LONG: i64 = 1;
    /// Short.
    pub const SHORT: i64 = 2;
}

/// `AggregateBarUnit`: 0 Unspecified, 1 Second, 2 Minute, 3 Hour, 4 Day, 5 Week, 6 Month.
pub mod bar_unit {
    /// Second.
    pub const SECOND: i64 = 1;
    /// Minute.
    pub const MINUTE: i64 = 2;
    /// Hour.
    pub const HOUR: i64 = 3;
    /// Day.
    pub const DAY: i64 = 4;
    /// Week.
    pub const WEEK: i64 = 5;
    /// Month.
    pub const MONTH: i64 = 6;
}

/// `DomType` of market-hub depth entries.
pub mod dom_type {
    /// An ask level.
    pub const ASK: i64 = 1;
    /// A bid level.
    pub const BID: i64 = 2;
    /// The best ask.
    pub const BEST_ASK: i64 = 3;
    /// The best bid.
    pub const BEST_BID: i64 = 4;
    /// Clear the book.
    pub const RESET: i64 = 6;
}

/// `TradeLogType` of market-hub trades: 0 Buy, 1 Sell.
pub mod trade_log_type {
    /// Traded at the ask (up-tick).
    pub const BUY: i64 = 0;
    /// Traded at the bid (down-tick).
    pub const SELL: i64 = 1;
}

/// The `action` of a real-time `{action, data}` envelope: 0 create, 1 update, 2 delete.
pub mod action {
    /// A new entity.
    pub const CREATE: i64 = 0;
    /// A changed entity.
    pub const UPDATE: i64 = 1;
}

/// `LoginErrorCode`.
pub mod login_error {
    /// The user does not exist.
    pub const USER_NOT_FOUND: i64 = 1;
    /// Wrong password.
    pub const PASSWORD_VERIFICATION_FAILED: i64 = 2;
    /// Wrong API key.
    pub const INVALID_CREDENTIALS: i64 = 3;
    /// Unknown application.
    pub const APP_NOT_FOUND: i64 = 4;
    /// Application verification failed.
    pub const APP_VERIFICATION_FAILED: i64 = 5;
    /// Bad device id.
    pub const INVALID_DEVICE: i64 = 6;
    /// The login has no API subscription (a login of another protocol).
    pub const API_SUBSCRIPTION_NOT_FOUND: i64 = 9;
}

/// `ValidateErrorCode` and `LogoutErrorCode` share 1 = InvalidSession.
pub mod session_error {
    /// The token is not a session token.
    pub const INVALID_SESSION: i64 = 1;
    /// The session was logged out.
    pub const SESSION_NOT_FOUND: i64 = 2;
    /// The token expired.
    pub const EXPIRED_TOKEN: i64 = 3;
}

/// `PlaceOrderErrorCode`.
pub mod place_error {
    /// Not an account of the caller.
    pub const ACCOUNT_NOT_FOUND: i64 = 1;
    /// Refused (bad terms, duplicate `customTag`).
    pub const ORDER_REJECTED: i64 = 2;
    /// The account may not trade.
    pub const ACCOUNT_VIOLATION: i64 = 4;
    /// The market is closed.
    pub const OUTSIDE_TRADING_HOURS: i64 = 5;
    /// Unknown contract id.
    pub const CONTRACT_NOT_FOUND: i64 = 8;
}

/// `CancelOrderErrorCode` / `ModifyOrderErrorCode`.
pub mod order_change_error {
    /// Not an account of the caller.
    pub const ACCOUNT_NOT_FOUND: i64 = 1;
    /// No such order on that account.
    pub const ORDER_NOT_FOUND: i64 = 2;
    /// The order is no longer working, or the change is refused.
    pub const REJECTED: i64 = 3;
}

/// `ClosePositionErrorCode` / `PartialClosePositionErrorCode` (they differ after 4).
pub mod close_error {
    /// Not an account of the caller.
    pub const ACCOUNT_NOT_FOUND: i64 = 1;
    /// Flat in that contract.
    pub const POSITION_NOT_FOUND: i64 = 2;
    /// Unknown contract id.
    pub const CONTRACT_NOT_FOUND: i64 = 3;
    /// `closeContract`: the closing order was refused.
    pub const CLOSE_ORDER_REJECTED: i64 = 5;
    /// `partialCloseContract`: size below 1 or above the position.
    pub const INVALID_CLOSE_SIZE: i64 = 5;
    /// `partialCloseContract`: the closing order was refused.
    pub const PARTIAL_ORDER_REJECTED: i64 = 6;
}

/// `RetrieveBarErrorCode`.
pub mod bars_error {
    /// Unknown contract id.
    pub const CONTRACT_NOT_FOUND: i64 = 1;
    /// Unit out of range (or seconds, which the simulator does not keep).
    pub const UNIT_INVALID: i64 = 2;
    /// `unitNumber` below 1.
    pub const UNIT_NUMBER_INVALID: i64 = 3;
    /// `limit` below 1 or above 20,000.
    pub const LIMIT_INVALID: i64 = 4;
}

/// The wire side of a core action.
#[must_use]
pub fn side_of(action: Action) -> i64 {
    match action {
        Action::Buy => side::BID,
        Action::Sell => side::ASK,
    }
}

/// The core action of a wire side.
#[must_use]
pub fn action_of(side_value: i64) -> Option<Action> {
    match side_value {
        side::BID => Some(Action::Buy),
        side::ASK => Some(Action::Sell),
        _ => None,
    }
}

/// The wire type of a core order type.
#[must_use]
pub fn type_of(t: OrderType) -> i64 {
    match t {
        OrderType::Limit => order_type::LIMIT,
        OrderType::Market => order_type::MARKET,
        OrderType::StopLimit => order_type::STOP_LIMIT,
        OrderType::Stop => order_type::STOP,
        OrderType::TrailingStop => order_type::TRAILING_STOP,
        OrderType::TrailingStopLimit | OrderType::Mit | OrderType::Qts => order_type::UNKNOWN,
    }
}

/// The wire status of a core order status.
#[must_use]
pub fn status_of(s: OrdStatus) -> i64 {
    match s {
        OrdStatus::Working | OrdStatus::PendingReplace => order_status::OPEN,
        OrdStatus::Filled | OrdStatus::Completed => order_status::FILLED,
        OrdStatus::Canceled => order_status::CANCELLED,
        OrdStatus::Expired => order_status::EXPIRED,
        OrdStatus::Rejected => order_status::REJECTED,
        OrdStatus::PendingNew => order_status::PENDING,
        OrdStatus::PendingCancel => order_status::PENDING_CANCELLATION,
        OrdStatus::Suspended => order_status::SUSPENDED,
        OrdStatus::Unknown => order_status::NONE,
    }
}

/// The position type of a signed net position (`None` when flat: the caller keeps the last).
#[must_use]
pub fn position_type_of(net: i64) -> Option<i64> {
    match net.signum() {
        1 => Some(position_type::LONG),
        -1 => Some(position_type::SHORT),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_and_types_round_trip() {
        for a in [Action::Buy, Action::Sell] {
            assert_eq!(action_of(side_of(a)), Some(a));
        }
        assert_eq!(action_of(2), None);
        assert_eq!(type_of(OrderType::Stop), 4);
        assert_eq!(type_of(OrderType::TrailingStop), 5);
        assert_eq!(status_of(OrdStatus::PendingNew), 6);
        assert_eq!(status_of(OrdStatus::Suspended), 8);
        assert_eq!(position_type_of(-3), Some(position_type::SHORT));
        assert_eq!(position_type_of(0), None);
    }
}
