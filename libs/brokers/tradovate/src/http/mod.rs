//! REST: the raw endpoint client, the domain client with its call policy, the session (token
//! lifecycle) and the per-login limits.

pub mod client;
pub mod limits;
pub mod models;
pub mod raw;
pub mod session;
