//! What every part of the adapter shares: the request signature.

pub mod signing;
