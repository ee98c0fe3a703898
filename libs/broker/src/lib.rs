//! The command trait every service uses to reach a broker ([`Broker`], used as
//! `Arc<dyn Broker>`), the event-stream trait only the connection manager holds
//! ([`BrokerEvents`]), their broker-neutral types and typed errors, and the session-store
//! trait the processes of one login share a session through. The venue adapters
//! (`jt-tradovate`, `jt-projectx`) implement these traits over `jt-net`; the store and the
//! messages depend on this crate alone.
//!
//! What this crate must not do: speak HTTP or open sockets (no reqwest, no tungstenite: that is
//! `jt-net` and the venues), know any venue's wire format, decide trading (quantities,
//! distances and sequencing come from `jt-domain` and the executor), or read prices through
//! binary floats.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use jt_broker::{Broker, BrokerError};
//! use jt_domain::order::{OrderKind, OrderRequest};
//! use jt_domain::types::Side;
//!
//! # async fn demo(broker: Arc<dyn Broker>) -> Result<(), BrokerError> {
//! let account = broker.accounts().await?[0].id.clone();
//! let contract = broker.resolve_contract("MNQ1!").await?;
//! let order = OrderRequest {
//!     client_order_id: "jt-intent-1".into(),
//!     side: Side::Buy,
//!     qty: 1,
//!     kind: OrderKind::Market,
//! };
//! match broker.place_order(&account, &contract, &order).await {
//!     Ok(ack) => println!("order {} (recovered: {})", ack.order_id, ack.recovered),
//!     // Maybe executed: reconcile before anything else for this account and contract.
//!     Err(e) if e.may_have_executed() => { /* find_order, position, block the contract */ }
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```

pub mod broker;
pub mod capabilities;
pub mod clock;
pub mod error;
pub mod events;
pub mod legs;
pub mod market;
pub mod model;
pub mod session_store;

pub use broker::{Broker, BrokerEvents, ExitOrders};
pub use capabilities::{Capabilities, Feature};
pub use error::{BrokerError, BrokerErrorKind};
pub use events::{
    BrokerEvent, ConnectionState, EventEnvelope, EventHub, EventOrigin, EventSubscription,
};
pub use market::{Quote, QuoteControl, QuoteEvent, QuoteFeed, QuoteSender, quote_channel};
pub use model::{
    AccountId, AccountInfo, AccountPnl, AccountSnapshot, BracketAck, BrokerKind, CallBudget,
    CancelReport, CashBalanceReport, CloseOutcome, Contract, ContractId, FillId, FillReport,
    FlattenReport, ItemFailure, OrderAck, OrderId, OrderReport, OrderStatus, OrderType,
    PositionReport, SessionInfo, SessionOutcome, contract_key,
};
pub use session_store::{
    ClaimAttempt, ClaimConfig, ClaimHolder, MemorySessionStore, SessionStore, SessionStoreError,
    StoredSession,
};
