//! The hubs (SignalR over WebSocket): the client-side protocol [`codec`], the user hub's typed
//! [`messages`], the [`handler`] that joins hub events and REST polls into one stream, the
//! [`client`] that keeps the user hub alive (DOMAIN §8) and polls while it is down, the
//! optional connection [`negotiate`] step, the exit [`guard`], and the [`market`] hub's
//! quotes.

pub mod client;
pub mod codec;
pub mod guard;
pub mod handler;
pub mod market;
pub mod messages;
pub mod negotiate;
