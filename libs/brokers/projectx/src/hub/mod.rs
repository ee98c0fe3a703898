//! The user hub (SignalR over WebSocket): the client-side protocol [`codec`], typed
//! [`messages`], the [`handler`] that joins hub events and REST polls into one stream, the
//! [`client`] that keeps the hub alive (DOMAIN §8) and polls while it is down, the optional
//! connection [`negotiate`] step, and the exit [`guard`].

pub mod client;
pub mod codec;
pub mod guard;
pub mod handler;
pub mod messages;
pub mod negotiate;
