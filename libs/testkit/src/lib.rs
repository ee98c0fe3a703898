//! Test support: connections to the test services (NATS, PostgreSQL) started by the harness,
//! with loud failures when they are missing, and a local SMTP server ([`smtp`]).
//!
//! A test that needs a server panics with a message naming the variable when it is unset; it
//! never skips quietly. `make test` sets every variable through `scripts/test-services`.
//!
//! This crate is for tests only: nothing here may be used by a service.

pub mod nats;
pub mod pg;
pub mod pg_server;
pub mod smtp;
pub mod sqlite;

pub use pg::TestDatabase;
pub use pg_server::PgServer;
pub use sqlite::TempSqlite;
