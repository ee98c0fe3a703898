//! Typed identifiers — a `RecorderId` cannot be passed where a `TraderId` is expected — and
//! ids derived from content ([`derived_id`]), shared by the store (its keys), the messages on
//! the bus (the ids they carry) and every service.
//!
//! Typed ids are UUID v7 (time-ordered, made by the application, so an intent has its id — and
//! the broker its client order id — before anything is stored); in JSON and in the database
//! they are the bare UUID (`#[serde(transparent)]`), so typing a field changes no stored or
//! queued byte.
//!
//! What this crate must not do: hold rules, read or write anything, or depend on another crate
//! of ours. The `sea-orm` feature (an id as a query value) is for the store alone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
pub use uuid::Uuid;

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

        #[cfg(feature = "sea-orm")]
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
    /// A live trade record (one position life on a sub-account and contract).
    TradeRecordId;
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

/// A UUID (version 8, "custom") derived from `parts`: the same parts always give the same id.
///
/// Used for ids that must be identical when a message is handled twice (signal id from the
/// webhook's message id, intent id from signal and trader, paper rows from their signal).
/// `domain` separates the kinds of id: the same parts under two domains give two ids.
#[must_use]
pub fn derived_id(domain: &str, parts: &[&str]) -> Uuid {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_separate_domains_and_parts() {
        let a = derived_id("signal", &["abc"]);
        assert_eq!(a, derived_id("signal", &["abc"]));
        assert_ne!(a, derived_id("intent", &["abc"]));
        // Part boundaries matter: ("ab","c") is not ("a","bc").
        assert_ne!(derived_id("x", &["ab", "c"]), derived_id("x", &["a", "bc"]));
        assert_eq!(a.get_version_num(), 8);
    }

    #[test]
    fn a_typed_id_is_the_bare_uuid_in_json() {
        let u: Uuid = "0195a3c4-1a2b-7c3d-8e4f-5a6b7c8d9e0f"
            .parse()
            .unwrap_or_default();
        let json = serde_json::to_string(&SignalId(u)).unwrap_or_default();
        assert_eq!(json, "\"0195a3c4-1a2b-7c3d-8e4f-5a6b7c8d9e0f\"");
        assert_eq!(
            serde_json::from_str::<SignalId>(&json).ok(),
            Some(SignalId(u))
        );
    }
}
