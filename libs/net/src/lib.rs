//! The venue-neutral network layer of the broker adapters: exact JSON decimals and the fleet's
//! connect gate.
//!
//! What this crate must not do: know a venue's endpoints, wire models or error texts, or
//! anything about orders and trading.

pub mod exact;
pub mod gate;
