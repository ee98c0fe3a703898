//! The Tradovate adapter (NinjaTrader brokerage is the same adapter with its own hosts): one
//! venue crate implementing `jt-broker`'s [`jt_broker::Broker`] and
//! [`jt_broker::BrokerEvents`] over `jt-net`, laid out like a nautilus_trader venue crate:
//!
//! - [`common`]: wire entities and enum strings;
//! - [`http`]: [`http::raw::TradovateRawHttpClient`] (one method per endpoint, no policy),
//!   [`http::client::TradovateHttpClient`] (domain types over `jt-net`'s call policy, with the
//!   venue's own readings: failures answered as 200s, penalty tickets), the token lifecycle
//!   ([`http::session`]) and the login's limits ([`http::limits`]);
//! - [`websocket`]: the frame [`websocket::codec`], typed [`websocket::messages`],
//!   [`websocket::parse`] into neutral reports, the [`websocket::handler`] that joins and
//!   filters events, and the Tradovate connection [`websocket::client`] (its life — stagger,
//!   connect gate, back-off — is `jt-net`'s); the market-data socket [`websocket::market`]
//!   behind `jt-broker`'s [`jt_broker::QuoteFeed`], on the same codec and connection;
//! - [`config`]: everything configurable, with production defaults;
//! - [`broker`]: [`TradovateBroker`], the broker of one login, and its [`LoginRegistry`].
//!
//! What this crate must not do: depend on another venue, hold a copy of the call policy,
//! raw error classification or socket life (they are `jt-net`'s), decide trading (quantities,
//! distances, sequencing), re-send an order whose outcome is unknown, or read a price through
//! a binary float. The `jt tradovate decode` command reads captured frames with
//! [`websocket::messages::decode_line`].
//!
//! ```no_run
//! use jt_broker::{Broker, BrokerError, BrokerEvent, BrokerEvents};
//! use jt_tradovate::{Brand, Credentials, Environment, TradovateBroker, TradovateConfig};
//!
//! # async fn demo() -> Result<(), BrokerError> {
//! let config = TradovateConfig::new(
//!     Brand::Tradovate,
//!     Environment::Demo,
//!     Credentials { name: "me".into(), password: "secret".into(), ..Credentials::default() },
//! );
//! let broker = TradovateBroker::new(config)?;
//! let account = broker.accounts().await?[0].id.clone();
//! let snapshot = broker.snapshot(&account).await?;
//! println!("{} positions, {} working orders", snapshot.positions.len(), snapshot.working_orders.len());
//! let mut events = broker.subscribe(std::slice::from_ref(&account)).await?;
//! while let Some(event) = events.recv().await {
//!     if let BrokerEvent::Fill(fill) = &event.event {
//!         println!("{} {} @ {}", fill.side, fill.qty, fill.price);
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod broker;
pub mod common;
pub mod config;
pub mod http;
pub mod websocket;

pub use broker::{LoginRegistry, TRADOVATE_CAPABILITIES, TradovateBroker};
pub use config::{Brand, Credentials, Environment, TradovateConfig};
