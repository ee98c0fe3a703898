//! Typed identifiers: `jt-ids`'s, re-exported so the store's users keep naming them
//! `jt_store::UserId` (a `RecorderId` cannot be passed where a `TraderId` is expected). The
//! messages on the bus carry the same types.

pub use jt_ids::{
    ApiTokenId, BreachId, BrokerAccountId, ChannelId, CopyLogId, DeliveryId, ExecutionId,
    FollowerId, IntentId, LeaderId, PaperPositionId, PaperTradeId, PlanId, RecorderId, SessionId,
    SignalId, SubAccountId, SubscriptionId, TradeRecordId, TraderId, UserId, WebhookLogId,
};
