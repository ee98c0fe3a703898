//! The two traits of a broker login: [`Broker`], the commands (orders and reads) every service
//! uses, and [`BrokerEvents`], the login's event stream, which only the connection manager
//! holds (every other service reads events from the bus, not from a broker).

use std::fmt;

use async_trait::async_trait;
use jt_domain::bracket::{EntryOrder, StopOrder};
use jt_domain::order::{BracketOrder, OrderRequest, TimeInForce};
use jt_domain::types::{Contracts, Direction, Side};
use rust_decimal::Decimal;

use crate::capabilities::{Capabilities, Feature};
use crate::error::BrokerError;
use crate::events::EventSubscription;
use crate::market::QuoteFeed;
use crate::model::{
    AccountId, AccountInfo, AccountPnl, AccountSnapshot, BracketAck, CallBudget, CancelReport,
    CloseOutcome, Contract, ContractId, FillReport, FlattenReport, ItemFailure, OrderAck, OrderId,
    OrderReport, OrderType, PositionReport, SessionInfo,
};

/// Which exit orders of a position a batch cancel touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitOrders {
    /// Limit orders on the exit side (take-profits).
    TakeProfits,
    /// Stop, stop-limit and trailing orders on the exit side.
    Stops,
    /// Both.
    All,
}

impl ExitOrders {
    /// Whether `order` is an open exit order of this kind on `contract` for a `direction`
    /// position.
    #[must_use]
    pub fn matches(self, order: &OrderReport, contract: &ContractId, direction: Direction) -> bool {
        let exit: Side = direction.exit_side();
        let take_profit = order.order_type == Some(OrderType::Limit);
        let stop = matches!(
            order.order_type,
            Some(
                OrderType::Stop
                    | OrderType::StopLimit
                    | OrderType::TrailingStop
                    | OrderType::TrailingStopLimit
            )
        );
        order.is_working_on(contract)
            && order.side == exit
            && match self {
                Self::TakeProfits => take_profit,
                Self::Stops => stop,
                Self::All => take_profit || stop,
            }
    }
}

/// The limit and stop prices a working order gets when its price moves to `price`
/// ([`Broker::modify_order_price`]): a limit's limit price; a stop's stop price; a stop-limit's
/// stop price, with its limit price moved by the same amount (the offset kept). `(limit, stop)`,
/// `None` where the order has no such price.
///
/// # Errors
/// `InvalidRequest` for an order with no price to move (market, trailing: a trailing stop
/// trails by itself, only its quantity may change).
pub fn moved_prices(
    order: &OrderReport,
    price: Decimal,
) -> Result<(Option<Decimal>, Option<Decimal>), BrokerError> {
    match order.order_type {
        Some(OrderType::Limit) => Ok((Some(price), None)),
        Some(OrderType::Stop) => Ok((None, Some(price))),
        Some(OrderType::StopLimit) => {
            let offset = match (order.price, order.stop_price) {
                (Some(limit), Some(stop)) => limit - stop,
                _ => Decimal::ZERO,
            };
            Ok((Some(price + offset), Some(price)))
        }
        _ => Err(BrokerError::invalid(format!(
            "order {} has no price that can be moved",
            order.id
        ))),
    }
}

/// The commands of one broker login (one set of credentials, one access token, all the
/// accounts it reaches), used as `Arc<dyn Broker>` by the executor, risk, copier, API and
/// reconciler. Its events are [`BrokerEvents`].
///
/// Every call is for one account of that login and never touches another. Calls that move
/// money are never re-sent blindly: an ambiguous outcome is looked up by client order id, and
/// only when that cannot settle it does the call return [`BrokerError::UnknownOutcome`].
/// Lists are never "empty" because of an authentication failure: that is
/// [`BrokerError::AuthExpired`].
#[async_trait]
pub trait Broker: Send + Sync + fmt::Debug {
    /// Which broker family this is (a bounded metric label).
    fn kind(&self) -> crate::model::BrokerKind;

    /// What the adapter can do natively; check before asking for it.
    fn capabilities(&self) -> Capabilities;

    /// The request budget of this login, when the adapter tracks one.
    fn call_budget(&self) -> Option<CallBudget>;

    /// Makes sure a session exists: reuses a live one (never a second login while a session
    /// lives: brokers cap concurrent sessions), renews one that is due, and logs in with the
    /// credentials only when there is none.
    ///
    /// # Errors
    /// [`BrokerError::NeedsReauth`] when the credentials are refused; `LockedOut`, `Penalty`,
    /// `RateLimited`, `Transport` as they happen.
    async fn login(&self) -> Result<SessionInfo, BrokerError>;

    /// Renews the session now. A failed renewal never replaces a valid token; when the session
    /// is already dead the adapter falls back to a credential login.
    ///
    /// # Errors
    /// [`BrokerError::NeedsReauth`] when renewal and login both fail; transient errors as they
    /// happen (the current token stays in place).
    async fn renew(&self) -> Result<SessionInfo, BrokerError>;

    /// The accounts this login reaches.
    ///
    /// # Errors
    /// Any [`BrokerError`] of a read.
    async fn accounts(&self) -> Result<Vec<AccountInfo>, BrokerError>;

    /// Resolves a root (`MNQ`, front month) or a contract (`MNQZ5`, `MNQZ2025`) to the broker's
    /// contract; cached per trading day.
    ///
    /// # Errors
    /// [`BrokerError::UnknownContract`] when nothing tradable matches.
    async fn resolve_contract(&self, symbol: &str) -> Result<Contract, BrokerError>;

    /// The account's positions (flat ones may be included with `net_qty == 0`).
    ///
    /// # Errors
    /// Any [`BrokerError`] of a read.
    async fn positions(&self, account: &AccountId) -> Result<Vec<PositionReport>, BrokerError>;

    /// The account's working (open) orders, looked up at the broker.
    ///
    /// # Errors
    /// Any [`BrokerError`] of a read.
    async fn working_orders(&self, account: &AccountId) -> Result<Vec<OrderReport>, BrokerError>;

    /// The order placed with this client order id (for a bracket: its entry), if any.
    ///
    /// # Errors
    /// Any [`BrokerError`] of a read; [`BrokerError::Unsupported`] when the broker cannot.
    async fn find_order(
        &self,
        account: &AccountId,
        client_order_id: &str,
    ) -> Result<Option<OrderReport>, BrokerError>;

    /// The account's fills of the current trading day.
    ///
    /// # Errors
    /// Any [`BrokerError`] of a read.
    async fn fills(&self, account: &AccountId) -> Result<Vec<FillReport>, BrokerError>;

    /// The account's realized and open P&L as the broker computes it.
    ///
    /// # Errors
    /// Any [`BrokerError`] of a read.
    async fn account_pnl(&self, account: &AccountId) -> Result<AccountPnl, BrokerError>;

    /// The account's positions and working orders (with cash and P&L where the venue reads
    /// them cheaply), in as few calls as the venue allows: what a reconciler compares with its
    /// records.
    ///
    /// # Errors
    /// Any [`BrokerError`] of the position or order reads.
    async fn snapshot(&self, account: &AccountId) -> Result<AccountSnapshot, BrokerError>;

    /// The account's cash balance as the broker reports it (Tradovate's `totalCashValue`,
    /// ProjectX's `balance`): what an alert's `risk_percentage` is a percentage of.
    ///
    /// # Errors
    /// Any [`BrokerError`] of a read; `Transport` when the broker's answer has no balance
    /// (never read as zero).
    async fn balance(&self, account: &AccountId) -> Result<Decimal, BrokerError>;

    /// Changes the quantity of one working order of the account, keeping its type and prices
    /// (a partial exit trims a take-profit and shrinks a stop to what remains). `order` comes
    /// from [`Broker::working_orders`] of the same account.
    ///
    /// # Errors
    /// `Rejected` (no longer working, refused), `UnknownOutcome`, `InvalidRequest` for another
    /// account's order, and the errors of any call.
    async fn modify_order_qty(
        &self,
        account: &AccountId,
        order: &OrderReport,
        qty: Contracts,
    ) -> Result<(), BrokerError>;

    /// Moves the price of one working protective order of the account, keeping its type and
    /// quantity (a copied follower's take-profit or stop follows its leader's, issue #22): a
    /// limit's limit price, a stop's stop price, a stop-limit's stop price with its limit
    /// price moved by the same amount. `order` comes from [`Broker::working_orders`] of the same
    /// account; `price` is on the contract's tick.
    ///
    /// # Errors
    /// `Rejected` (no longer working, refused), `UnknownOutcome`, `InvalidRequest` for another
    /// account's order or one without a price to move (market, trailing), and the errors of any
    /// call.
    async fn modify_order_price(
        &self,
        account: &AccountId,
        order: &OrderReport,
        price: Decimal,
    ) -> Result<(), BrokerError>;

    /// Places a resting entry — limit, stop or stop-limit, plain or with its protection
    /// attached when it fills — that works until `time_in_force` ends (or is cancelled). An
    /// adapter without [`Feature::DayOrders`] refuses a `Day` entry with `Unsupported` instead
    /// of leaving it working past its day.
    ///
    /// # Errors
    /// As [`Broker::place_order`] and [`Broker::place_bracket`].
    async fn place_resting_entry(
        &self,
        account: &AccountId,
        contract: &Contract,
        entry: &EntryOrder,
        time_in_force: TimeInForce,
    ) -> Result<BracketAck, BrokerError> {
        if time_in_force == TimeInForce::Day && !self.capabilities().day_orders {
            return Err(BrokerError::Unsupported {
                feature: Feature::DayOrders,
            });
        }
        match entry {
            EntryOrder::Bracket(b) => self.place_bracket(account, contract, b).await,
            EntryOrder::Market(o) => {
                let ack = self.place_order(account, contract, o).await?;
                Ok(BracketAck {
                    client_order_id: ack.client_order_id,
                    bracket_id: None,
                    entry_order_id: Some(ack.order_id),
                    recovered: ack.recovered,
                })
            }
        }
    }

    /// Places one market, limit, stop or stop-limit order.
    ///
    /// # Errors
    /// `Rejected`, `UnknownOutcome` (reconcile first), `RateLimited`, `Penalty`, `LockedOut`,
    /// `AuthExpired`, `InvalidRequest`, `Unsupported`.
    async fn place_order(
        &self,
        account: &AccountId,
        contract: &Contract,
        order: &OrderRequest,
    ) -> Result<OrderAck, BrokerError>;

    /// Places an entry with its protective orders in one broker call. Refuses with
    /// [`BrokerError::Unsupported`] when the bracket needs a feature the adapter lacks
    /// (see [`Capabilities::missing_for`]) — a protective order is never dropped.
    ///
    /// # Errors
    /// As [`Broker::place_order`].
    async fn place_bracket(
        &self,
        account: &AccountId,
        contract: &Contract,
        bracket: &BracketOrder,
    ) -> Result<BracketAck, BrokerError>;

    /// Places a standalone protective stop for a whole position (the replacement stop after a
    /// DCA add): fixed, or trailing. Refuses with [`BrokerError::Unsupported`] what the broker
    /// cannot carry (see [`Capabilities::required_for_stop`]) instead of placing something else.
    ///
    /// # Errors
    /// As [`Broker::place_order`].
    async fn place_stop(
        &self,
        account: &AccountId,
        contract: &Contract,
        stop: &StopOrder,
    ) -> Result<OrderAck, BrokerError>;

    /// Cancels one order.
    ///
    /// # Errors
    /// `Rejected` (already filled or canceled), `UnknownOutcome`, and the errors of any call.
    async fn cancel_order(
        &self,
        account: &AccountId,
        order_id: &OrderId,
    ) -> Result<(), BrokerError>;

    /// Closes the account's position on `contract`: cancels its working orders on that contract
    /// and sends a market order for the net quantity.
    ///
    /// # Errors
    /// As [`Broker::place_order`].
    async fn close_position(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CloseOutcome, BrokerError>;

    /// [`Broker::close_position`] for a position the caller has just read open on `contract`
    /// (the executor's decision read it moments before): an adapter whose close takes no
    /// quantity — the venue closes whatever the net is when the command arrives — may skip its
    /// own read of the position (Tradovate's `liquidateposition`: one call instead of two). The
    /// reading is never used as a quantity, so a position that changed since is closed as it is
    /// now; one that went flat meanwhile must end as [`Broker::close_position`] would end it
    /// (the contract's working orders cancelled, nothing sent). The default is
    /// [`Broker::close_position`]: an adapter that sends a quantity reads it fresh.
    ///
    /// # Errors
    /// As [`Broker::close_position`].
    async fn close_open_position(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CloseOutcome, BrokerError> {
        self.close_position(account, contract).await
    }

    /// Flattens the account: closes every position and cancels every working order. Parts that
    /// fail are listed in the report; the call fails only when nothing could be read.
    ///
    /// # Errors
    /// The errors of the initial reads.
    async fn flatten_account(&self, account: &AccountId) -> Result<FlattenReport, BrokerError>;

    /// The account's position on one contract (`None` when flat or absent).
    ///
    /// # Errors
    /// As [`Broker::positions`].
    async fn position(
        &self,
        account: &AccountId,
        contract: &ContractId,
    ) -> Result<Option<PositionReport>, BrokerError> {
        Ok(self
            .positions(account)
            .await?
            .into_iter()
            .find(|p| &p.contract == contract && p.net_qty != 0))
    }

    /// Cancels the working exit orders of `contract` on the account for a `direction` position
    /// (DOMAIN §5.7: a DCA add replaces every take-profit, and the stop, with one for the whole
    /// position). Failures are listed, not fatal; the caller re-reads the working orders before
    /// placing replacements (a broker may cancel an OCO partner with its leg).
    ///
    /// # Errors
    /// The errors of listing the working orders.
    async fn cancel_exit_orders(
        &self,
        account: &AccountId,
        contract: &Contract,
        direction: Direction,
        which: ExitOrders,
    ) -> Result<CancelReport, BrokerError> {
        let working = self.working_orders(account).await?;
        Ok(cancel_each(
            self,
            account,
            working
                .iter()
                .filter(|o| which.matches(o, &contract.id, direction)),
        )
        .await)
    }

    /// Cancels every working order of the account on `contract`, whatever its side and kind
    /// (a close or a flip starts from none). Failures are listed, not fatal; an order that
    /// filled or went away meanwhile is a [`BrokerError::Rejected`] failure.
    ///
    /// # Errors
    /// The errors of listing the working orders.
    async fn cancel_working_orders(
        &self,
        account: &AccountId,
        contract: &Contract,
    ) -> Result<CancelReport, BrokerError> {
        let working = self.working_orders(account).await?;
        Ok(cancel_each(
            self,
            account,
            working.iter().filter(|o| o.is_working_on(&contract.id)),
        )
        .await)
    }

    /// [`Broker::cancel_exit_orders`] for the take-profits only.
    ///
    /// # Errors
    /// The errors of listing the working orders.
    async fn cancel_take_profits(
        &self,
        account: &AccountId,
        contract: &Contract,
        direction: Direction,
    ) -> Result<CancelReport, BrokerError> {
        self.cancel_exit_orders(account, contract, direction, ExitOrders::TakeProfits)
            .await
    }
}

/// The event stream of one broker login: fills, positions, orders, cash balances and the state
/// of the connection carrying them. Only the connection manager holds it (DOMAIN §8: one
/// socket per token, shared); every other service reads broker events from the bus.
#[async_trait]
pub trait BrokerEvents: Send + Sync + fmt::Debug {
    /// Subscribes to the events of `accounts` (connection events reach every subscriber).
    /// Accounts not yet served by the live connection are added (by a planned reconnect where
    /// the venue needs one).
    ///
    /// # Errors
    /// [`BrokerError::Unsupported`] when the broker has no event stream; `UnknownAccount`.
    async fn subscribe(&self, accounts: &[AccountId]) -> Result<EventSubscription, BrokerError>;

    /// Opens a quote feed over this login's market-data connection (one connection per call:
    /// hold the feed, do not open one per contract). It carries nothing until
    /// [`QuoteFeed::watch`] names contracts.
    ///
    /// # Errors
    /// [`BrokerError::Unsupported`] ([`Feature::MarketData`]) when the adapter has no feed.
    async fn quote_feed(&self) -> Result<QuoteFeed, BrokerError> {
        Err(BrokerError::Unsupported {
            feature: Feature::MarketData,
        })
    }
}

/// Cancels `orders` one by one with [`Broker::cancel_order`], listing what failed.
async fn cancel_each<'a, B: Broker + ?Sized>(
    broker: &B,
    account: &AccountId,
    orders: impl Iterator<Item = &'a OrderReport> + Send,
) -> CancelReport {
    let mut report = CancelReport::default();
    for order in orders {
        match broker.cancel_order(account, &order.id).await {
            Ok(()) => report.canceled.push(order.id.clone()),
            Err(error) => report.failures.push(ItemFailure {
                target: format!("cancel {}", order.id),
                error,
            }),
        }
    }
    report
}
