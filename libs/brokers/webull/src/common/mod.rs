//! What every part of the adapter shares: the request signature and the translation between
//! Webull's words and the platform's.

pub mod convert;
pub mod signing;
