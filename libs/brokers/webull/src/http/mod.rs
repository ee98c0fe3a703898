//! Webull's REST: the wire models ([`models`]) and the signed client on `jt-net`'s call policy
//! ([`client`]).

pub mod client;
pub mod models;
