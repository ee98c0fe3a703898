//! The venue-neutral network layer under every broker adapter, so that each venue crate holds
//! only what is its own (endpoints, wire models, how it words its errors):
//!
//! - [`policy`]: the one call policy — limits admitted, tokens, retries of reads, 401 handled
//!   once, throttling and penalty tickets, and ambiguous writes settled by look-up, never by a
//!   blind re-send ([`policy::Uncertain`]) — with hooks where a venue reads its own answers;
//! - [`limits`]: per-login request budgets (paced lanes, a budget window, cool-downs,
//!   captcha lock-outs);
//! - [`budget`]: a login's budget shared by the fleet through an injected key-value store
//!   ([`budget::BudgetStore`]; the services pass the bus's), claimed in small chunks;
//! - [`http`]: one connection pool per host, call classes and timeouts, the raw request and how
//!   far it got ([`http::RawError`]);
//! - [`contracts`]: a login's symbol → contract cache (expiry-bounded, single flight);
//! - [`exact`]: prices and money as exact JSON number text, never through `f64`;
//! - [`gate`]: the connect gate — N attempts in flight, spaced — per process, or the fleet's
//!   through the same injected store as the budgets ([`gate::ConnectGate::shared`]);
//! - [`socket`]: an event socket's life — stagger, connect through the fleet's [`gate`],
//!   reconnect with back-off — and the [`socket::Feed`] subscribers read;
//! - [`quote_feed`]: the shell of a market-data connection behind `jt_broker::QuoteFeed`;
//! - [`registry`]: the shared [`registry::Plumbing`] (pools and gate) and a venue's live
//!   [`registry::Logins`], constructible and passed in, with process-wide defaults.
//!
//! What this crate must not do: know a venue's endpoints, wire models or error texts (venues
//! hook those in), know orders or decide anything about trading, or depend on a venue crate.

pub mod budget;
pub mod contracts;
pub mod exact;
pub mod gate;
pub mod http;
pub mod limits;
pub mod policy;
pub mod quote_feed;
pub mod registry;
pub mod socket;
