//! One module per `jt` subcommand.

pub mod admin;
pub mod alert;
pub mod api;
pub mod connmgr;
pub mod copier;
pub mod db;
pub mod dead_letters;
pub mod dev;
pub mod executor;
pub mod ingest;
pub mod instruments;
pub mod positions;
pub mod risk;
mod serve;
pub mod sim;
pub mod tradovate;
