//! Shared by the REST and WebSocket sides: wire entities, enum strings, exact numbers.

pub mod entities;
pub mod enums;
