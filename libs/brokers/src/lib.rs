//! The one trait every service uses to reach a broker ([`Broker`], used as `Arc<dyn Broker>`),
//! its broker-neutral types, typed errors and event stream, and the adapters: Tradovate (and
//! NinjaTrader, the same backend) and ProjectX (TopstepX and other prop firms); others
//! implement the same trait.
//!
//! What this crate must not do: decide trading (quantities, distances and sequencing come from
//! `jt-domain` and the executor), re-send a call that may have moved money without looking it
//! up first, drop a protective order it cannot carry (it refuses with
//! [`BrokerError::Unsupported`]), read prices through binary floats, or let one broker's wire
//! details leak into the trait.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use jt_brokers::tradovate::{Brand, Credentials, Environment, TradovateBroker, TradovateConfig};
//! use jt_brokers::{Broker, BrokerError, BrokerEvent};
//! use jt_domain::order::{OrderKind, OrderRequest};
//! use jt_domain::types::Side;
//!
//! # async fn demo() -> Result<(), BrokerError> {
//! let config = TradovateConfig::new(
//!     Brand::Tradovate,
//!     Environment::Demo,
//!     Credentials { name: "me".into(), password: "secret".into(), ..Credentials::default() },
//! );
//! let broker: Arc<dyn Broker> = Arc::new(TradovateBroker::new(config)?);
//! let account = broker.accounts().await?[0].id.clone();
//! let mut events = broker.subscribe(std::slice::from_ref(&account)).await?;
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
//! while let Some(event) = events.recv().await {
//!     if let BrokerEvent::Fill(fill) = &event.event {
//!         println!("{} {} @ {}", fill.side, fill.qty, fill.price);
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod broker;
pub mod capabilities;
pub mod clock;
pub mod error;
pub mod events;
pub mod model;
pub mod projectx;
pub mod session_store;
pub mod tradovate;

pub use broker::{Broker, ExitOrders};
pub use capabilities::{Capabilities, Feature};
pub use error::{BrokerError, BrokerErrorKind};
pub use events::{
    BrokerEvent, ConnectionState, EventEnvelope, EventHub, EventOrigin, EventSubscription,
};
pub use model::{
    AccountId, AccountInfo, AccountPnl, BracketAck, BrokerKind, CallBudget, CancelReport,
    CashBalanceReport, CloseOutcome, Contract, ContractId, FillId, FillReport, FlattenReport,
    ItemFailure, OrderAck, OrderId, OrderReport, OrderStatus, OrderType, PositionReport,
    SessionInfo, SessionOutcome,
};
pub use session_store::{
    ClaimAttempt, ClaimConfig, ClaimHolder, MemorySessionStore, SessionStore, SessionStoreError,
    StoredSession,
};
