//! The user-data WebSocket: codec, typed messages, parsing, event handling, the connection
//! client and the process-wide connect gate; and the market-data socket ([`market`]) built on
//! the same codec and connection.

pub mod client;
pub mod codec;
pub mod handler;
pub mod market;
pub mod messages;
pub mod parse;
