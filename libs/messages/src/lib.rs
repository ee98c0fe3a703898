//! The payloads that travel between services on the bus: accepted signals (ingest → executor
//! fan-out), order intents from every source — signal, copy, manual, control, repair — (→
//! execution), executions (execution → history, copier) and broker events (connection manager
//! → positions, risk, copier), and the shapes of the KV values services share: a login's
//! connection status ([`login_status`]), an account's risk figures ([`risk_status`]).
//!
//! Each type implements [`jt_bus::Message`]: a stable type name, the schema version it writes
//! and the subject it goes to. Ids that must survive redelivery are derived from content
//! ([`derived_id`]), never drawn at random, so a redelivered message produces the same
//! downstream ids and JetStream de-duplication and the store's unique keys absorb the repeat.
//!
//! This crate holds data shapes only: no I/O and no rules (rules are in `jt-domain`). It must
//! not depend on the alert parser (`jt-alerts`), a venue, HTTP or sockets: what it carries is
//! the domain's and `jt-ids`' (`scripts/check-layers`).

pub mod broker_event;
pub mod execution;
pub mod intent;
pub mod login_status;
pub mod quote;
pub mod risk_status;
pub mod signal;

pub use broker_event::{BrokerEventMessage, ReportedEvent};
pub use execution::{ExecutionMessage, ExecutionStatus};
pub use intent::{
    ControlAction, ControlCause, ControlIntent, ControlScope, CopyIntent, CopyProtection,
    DEFAULT_MANUAL_MAX_LAG_SECS, IntentAction, IntentMessage, LeaderChange, ManualIntent,
    ManualTrade, ProtectionKind, RepairIntent, SignalIntent, SourceKind, Staleness,
    client_order_id,
};
pub use quote::{QuoteMessage, subscribe_quotes};
pub use signal::SignalMessage;

/// Content-derived ids (`jt_ids::derived_id`): the same parts always give the same id.
pub use jt_ids::derived_id;
