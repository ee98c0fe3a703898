//! The closed sets of values stored as text. Each string here is also listed in the
//! migration's `CHECK` constraint, so a value the code does not know is refused by the database.

use std::fmt;

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[doc = $doc:literal])+ $name:ident { $( $(#[doc = $vdoc:literal])+ $variant:ident = $s:literal, )+ }) => {
        $(#[doc = $doc])+
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        pub enum $name {
            $( $(#[doc = $vdoc])+ #[sea_orm(string_value = $s)] #[serde(rename = $s)] $variant, )+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored (and serialized) string.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $s, )+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $s => Ok($name::$variant), )+
                    other => Err(format!(concat!("{:?} is not a ", stringify!($name)), other)),
                }
            }
        }
    };
}

text_enum! {
    /// A user's role.
    Role {
        /// An ordinary user: sees and changes only their own records.
        User = "user",
        /// An administrator: the admin path, audited.
        Admin = "admin",
    }
}

text_enum! {
    /// A broker environment.
    Environment {
        /// Demo / paper money at the broker.
        Demo = "demo",
        /// Real money.
        Live = "live",
    }
}

text_enum! {
    /// The state of a subscription at the payment provider.
    SubscriptionStatus {
        /// Trial period.
        Trialing = "trialing",
        /// Paid and current.
        Active = "active",
        /// Payment failed; grace period.
        PastDue = "past_due",
        /// Cancelled by the user.
        Canceled = "canceled",
        /// Ended.
        Expired = "expired",
    }
}

text_enum! {
    /// What became of a signal.
    SignalOutcome {
        /// Queued for execution.
        Accepted = "accepted",
        /// The same alert was already received.
        Duplicate = "duplicate",
        /// Older than `stale_after_secs` when it was about to execute.
        Stale = "stale",
        /// Skipped by a filter (the reason names the filter).
        Filtered = "filtered",
        /// Refused as invalid (the reason says why).
        Rejected = "rejected",
    }
}

text_enum! {
    /// What caused an intent.
    IntentSource {
        /// A recorder's signal.
        Signal = "signal",
        /// Copy trading.
        Copy = "copy",
        /// A manual trade through the API.
        Manual = "manual",
        /// A control command (flatten, kill switch, max loss).
        Control = "control",
        /// The reconciler (a missing take-profit, auto-flat).
        Reconcile = "reconcile",
    }
}

text_enum! {
    /// What an intent does at the broker.
    IntentKind {
        /// Entry from flat, or a fresh entry with DCA off.
        Entry = "entry",
        /// DCA add.
        Add = "add",
        /// Reduce the position (copy trading).
        Reduce = "reduce",
        /// Close the position.
        Close = "close",
        /// Close and enter the other direction.
        Flip = "flip",
        /// Cancel orders and close positions (control).
        Flatten = "flatten",
        /// Cancel working orders only.
        Cancel = "cancel",
        /// Place a missing protective order.
        Protect = "protect",
    }
}

text_enum! {
    /// The state of an order intent. Allowed moves:
    /// `pending → sent | skipped | failed`; `sent → accepted | filled | rejected | failed | unknown`;
    /// `unknown → accepted | filled | rejected | failed` (after reconciliation);
    /// `accepted → filled | rejected | failed | cancelled`. The rest are terminal.
    IntentStatus {
        /// Recorded, not yet sent.
        Pending = "pending",
        /// Sent to the broker, no answer yet.
        Sent = "sent",
        /// The broker call had an ambiguous outcome: reconcile before anything else.
        Unknown = "unknown",
        /// The broker accepted the order.
        Accepted = "accepted",
        /// Filled.
        Filled = "filled",
        /// The broker rejected it.
        Rejected = "rejected",
        /// It failed on our side or at the broker (see the reason).
        Failed = "failed",
        /// Cancelled after acceptance.
        Cancelled = "cancelled",
        /// Not executed: a filter or rule skipped it (see the reason).
        Skipped = "skipped",
    }
}

impl IntentStatus {
    /// The states an intent may move to from `self`.
    #[must_use]
    pub fn successors(self) -> &'static [IntentStatus] {
        use IntentStatus::*;
        match self {
            Pending => &[Sent, Skipped, Failed],
            Sent => &[Accepted, Filled, Rejected, Failed, Unknown],
            Unknown => &[Accepted, Filled, Rejected, Failed],
            Accepted => &[Filled, Rejected, Failed, Cancelled],
            Filled | Rejected | Failed | Cancelled | Skipped => &[],
        }
    }

    /// The states from which `self` may be reached.
    #[must_use]
    pub fn predecessors(self) -> Vec<IntentStatus> {
        IntentStatus::ALL
            .iter()
            .copied()
            .filter(|from| from.successors().contains(&self))
            .collect()
    }

    /// Whether no further move is possible.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        self.successors().is_empty()
    }
}

text_enum! {
    /// The outcome of one execution attempt.
    ExecutionOutcome {
        /// Accepted by the broker.
        Accepted = "accepted",
        /// Filled.
        Filled = "filled",
        /// Rejected by the broker.
        Rejected = "rejected",
        /// Failed (error before or at the broker).
        Failed = "failed",
        /// Ambiguous (timeout after sending): to be reconciled.
        Unknown = "unknown",
    }
}

text_enum! {
    /// An order side as stored (`jt_domain::Side` in the API).
    StoredSide {
        /// Buy.
        Buy = "buy",
        /// Sell.
        Sell = "sell",
    }
}

impl From<jt_domain::Side> for StoredSide {
    fn from(s: jt_domain::Side) -> Self {
        match s {
            jt_domain::Side::Buy => StoredSide::Buy,
            jt_domain::Side::Sell => StoredSide::Sell,
        }
    }
}

impl From<StoredSide> for jt_domain::Side {
    fn from(s: StoredSide) -> Self {
        match s {
            StoredSide::Buy => jt_domain::Side::Buy,
            StoredSide::Sell => jt_domain::Side::Sell,
        }
    }
}

text_enum! {
    /// A position direction as stored (`jt_domain::Direction` in the API).
    StoredDirection {
        /// Long.
        Long = "long",
        /// Short.
        Short = "short",
    }
}

impl From<jt_domain::Direction> for StoredDirection {
    fn from(d: jt_domain::Direction) -> Self {
        match d {
            jt_domain::Direction::Long => StoredDirection::Long,
            jt_domain::Direction::Short => StoredDirection::Short,
        }
    }
}

impl From<StoredDirection> for jt_domain::Direction {
    fn from(d: StoredDirection) -> Self {
        match d {
            StoredDirection::Long => jt_domain::Direction::Long,
            StoredDirection::Short => jt_domain::Direction::Short,
        }
    }
}

text_enum! {
    /// The type of a broker order.
    BrokerOrderType {
        /// Market.
        Market = "market",
        /// Limit.
        Limit = "limit",
        /// Stop (market).
        Stop = "stop",
        /// Stop-limit.
        StopLimit = "stop_limit",
        /// Trailing stop.
        TrailingStop = "trailing_stop",
    }
}

text_enum! {
    /// The role of a broker order in a position's management.
    OrderRole {
        /// Opens or adds.
        Entry = "entry",
        /// A take-profit leg.
        TakeProfit = "take_profit",
        /// The protective stop.
        Stop = "stop",
        /// A closing order.
        Exit = "exit",
    }
}

text_enum! {
    /// The state of a broker order as the broker reports it.
    BrokerOrderStatus {
        /// Not yet working.
        Pending = "pending",
        /// Working at the exchange.
        Working = "working",
        /// Completely filled.
        Filled = "filled",
        /// Cancelled.
        Cancelled = "cancelled",
        /// Rejected.
        Rejected = "rejected",
        /// Expired.
        Expired = "expired",
    }
}

impl BrokerOrderStatus {
    /// Whether the order can still fill.
    #[must_use]
    pub fn is_open(self) -> bool {
        matches!(
            self,
            BrokerOrderStatus::Pending | BrokerOrderStatus::Working
        )
    }
}

text_enum! {
    /// Open or closed (paper positions and trades).
    PaperStatus {
        /// Open.
        Open = "open",
        /// Closed.
        Closed = "closed",
    }
}

text_enum! {
    /// Why a paper trade closed.
    ExitReason {
        /// The take-profit price was reached.
        TakeProfit = "take_profit",
        /// The stop price was reached.
        StopLoss = "stop_loss",
        /// A closing signal.
        Signal = "signal",
        /// An opposite signal (flip).
        Flip = "flip",
        /// Closed by hand.
        Manual = "manual",
        /// Closed at the session end (auto-flat).
        SessionEnd = "session_end",
    }
}

text_enum! {
    /// What triggered a copy.
    CopyTrigger {
        /// A manual trade on the leader through the API.
        Manual = "manual",
        /// The leader's own fill (automatic mode).
        Auto = "auto",
        /// Auto-sync's correction of a follower that drifted from its leader.
        Sync = "sync",
    }
}

text_enum! {
    /// The state of one copy to one follower.
    CopyStatus {
        /// Recorded before the follower order is sent.
        Pending = "pending",
        /// The follower order was accepted.
        Accepted = "accepted",
        /// The follower order filled.
        Filled = "filled",
        /// Not copied (follower disabled, locked out, own webhook trader…).
        Skipped = "skipped",
        /// Failed (see the error).
        Error = "error",
    }
}

text_enum! {
    /// Which risk limit was breached.
    BreachKind {
        /// The trader's `max_daily_loss`.
        MaxDailyLoss = "max_daily_loss",
        /// A follower's daily loss limit.
        FollowerDailyLoss = "follower_daily_loss",
        /// A follower's maximum drawdown.
        FollowerMaxDrawdown = "follower_max_drawdown",
        /// A prop-firm rule (DOMAIN.md §14) reached its safety buffer while positions were
        /// open; the rule's name leads `details` (`trailing_drawdown: …`).
        PropFirmRule = "prop_firm_rule",
    }
}

text_enum! {
    /// The reach of a kill switch.
    KillScope {
        /// The whole platform (admin).
        Global = "global",
        /// Every account of one user.
        User = "user",
        /// One sub-account.
        Account = "account",
    }
}

text_enum! {
    /// Where a notification goes.
    ChannelKind {
        /// An HTTP webhook.
        Webhook = "webhook",
        /// A Discord webhook.
        Discord = "discord",
        /// E-mail.
        Email = "email",
    }
}

text_enum! {
    /// The state of one notification delivery.
    DeliveryStatus {
        /// Waiting for (another) attempt.
        Pending = "pending",
        /// Delivered.
        Sent = "sent",
        /// Given up after the last attempt.
        Failed = "failed",
    }
}

text_enum! {
    /// Open or closed (live trade records).
    TradeStatus {
        /// The position is still held.
        Open = "open",
        /// Back to flat (or flipped).
        Closed = "closed",
    }
}

text_enum! {
    /// Why a live trade record closed: the type of the broker order whose fill closed it.
    TradeExitReason {
        /// A limit order (the take-profit).
        TakeProfit = "take_profit",
        /// A stop, stop-limit or trailing stop.
        Stop = "stop",
        /// A market order: a signal's close or flip, a flatten, or by hand.
        Market = "market",
        /// The closing order is not (yet) stored.
        Unknown = "unknown",
        /// Closed by reconciliation: the broker showed the contract flat (no exit price).
        Reconciled = "reconciled",
    }
}

impl TradeExitReason {
    /// The reason a fill of an order of this type gives when it closes a record.
    #[must_use]
    pub fn of_order(t: BrokerOrderType) -> Self {
        match t {
            BrokerOrderType::Limit => TradeExitReason::TakeProfit,
            BrokerOrderType::Stop | BrokerOrderType::StopLimit | BrokerOrderType::TrailingStop => {
                TradeExitReason::Stop
            }
            BrokerOrderType::Market => TradeExitReason::Market,
        }
    }
}
