//! Typed identifiers: a `RecorderId` cannot be passed where a `TraderId` is expected. All are
//! UUID v7 (time-ordered, made by the application, so an intent has its id — and the broker
//! its client order id — before anything is stored).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! ids {
    ($( $(#[doc = $doc:literal])+ $name:ident; )+) => {$(
        $(#[doc = $doc])+
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID.
            #[must_use]
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl From<$name> for sea_orm::Value {
            fn from(id: $name) -> Self {
                sea_orm::Value::Uuid(Some(id.0))
            }
        }
    )+};
}

ids! {
    /// A user.
    UserId;
    /// A login session.
    SessionId;
    /// An API token.
    ApiTokenId;
    /// A plan.
    PlanId;
    /// A subscription.
    SubscriptionId;
    /// A broker account (one set of broker credentials).
    BrokerAccountId;
    /// A broker sub-account (the account orders are placed on).
    SubAccountId;
    /// A recorder (signal source).
    RecorderId;
    /// A trader (a sub-account following a recorder).
    TraderId;
    /// A raw webhook log row.
    WebhookLogId;
    /// A signal.
    SignalId;
    /// An order intent; the broker's client order id derives from it.
    IntentId;
    /// An execution attempt.
    ExecutionId;
    /// A paper position.
    PaperPositionId;
    /// A paper trade.
    PaperTradeId;
    /// A copy-trading leader.
    LeaderId;
    /// A copy-trading follower.
    FollowerId;
    /// A copy log row.
    CopyLogId;
    /// A risk breach.
    BreachId;
    /// A notification channel.
    ChannelId;
    /// A notification delivery.
    DeliveryId;
}
