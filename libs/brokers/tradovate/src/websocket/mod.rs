//! The user-data WebSocket: codec, typed messages, parsing, event handling, the connection
//! client and the process-wide connect gate.

pub mod client;
pub mod codec;
pub mod handler;
pub mod messages;
pub mod parse;
