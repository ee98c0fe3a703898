//! Storage: the platform's records on PostgreSQL (production) or SQLite (one machine), through
//! owner-scoped repositories.
//!
//! - [`Store::connect`] opens a pool sized by [`StoreConfig`], retrying an unreachable database
//!   with back-off; [`Store::ping`] is the readiness check; [`Store::migrate`] applies
//!   `jt-migrations`.
//! - Repositories (`store.recorders()`, `store.intents()`, …) take the owner on every call;
//!   admin actions go through [`AdminScope`] and are audited; platform-wide daemon reads are on
//!   `store.system()`.
//! - Money is exact on both engines ([`decimal::DbDecimal`]); secrets are sealed with
//!   AES-256-GCM under `JT_SECRET_KEY` ([`secret`]); passwords are Argon2id hashes; tokens are
//!   stored as SHA-256 hashes ([`auth`]).
//! - Text from outside (bodies, comments, reasons) is made storable on both engines before it is
//!   written: PostgreSQL refuses NUL ([`text`]).
//! - [`StoreSessions`] is `jt_broker::SessionStore` for a broker account: the processes of one
//!   broker login share its session (tokens, the renewal/login claim) through the account row.
//!
//! This crate must not hold trading rules (they are in `jt-domain`), must not read the
//! environment itself (the binary passes a lookup), and services must not put SQL anywhere
//! else. `docs/store.md` lists the tables and the decisions behind them.

pub mod auth;
pub mod config;
pub mod decimal;
pub mod entity;
mod error;
pub mod ids;
pub mod repo;
pub mod secret;
pub mod session_store;
mod store;
pub mod text;

pub use config::{Backend, StoreConfig, StoreConfigError};
pub use entity::{
    BreachKind, BrokerOrderStatus, BrokerOrderType, ChannelKind, CopyStatus, CopyTrigger,
    DeliveryStatus, Environment, ExecutionOutcome, ExitReason, IntentKind, IntentSource,
    IntentStatus, KillScope, OrderRole, PaperStatus, Role, SignalOutcome, SubscriptionStatus,
    TradeExitReason, TradeStatus,
};
pub use error::{StoreError, StoreResult};
pub use ids::*;
/// The kind of broker of an account, stored as its name: `jt_broker`'s one enum for the idea.
pub use jt_broker::BrokerKind;
pub use repo::admin::AdminScope;
pub use repo::{AdminView, ReadScope};
pub use secret::{Secret, SecretError, SecretKey, SecretKeyError};
pub use session_store::StoreSessions;
pub use store::{MigrationState, Store};
