//! Shared by the REST and hub sides: ProjectX's numeric enumerations and error codes in one
//! place, and the wire models both sides carry.

pub mod enums;
pub mod models;
