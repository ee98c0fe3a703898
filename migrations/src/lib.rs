//! The database schema as sea-orm migrations: the only place the schema changes.
//!
//! One file per migration, named `mYYYYMMDD_NNNNNN_name.rs` (sea-orm-migration names a
//! migration after its file). Every migration has a working `down`, and both engines run the
//! same migrations: PostgreSQL in production and the integration tests, SQLite on one machine.
//! Where the engines differ (exact decimals, partial indexes) the difference is decided once in
//! [`columns`] and explained in `docs/store.md`.
//!
//! This crate must not hold data access code: entities and repositories live in `jt-store`.
//! A migration that has shipped is never edited; a change is a new migration.

use sea_orm_migration::prelude::*;
pub use sea_orm_migration::{MigrationStatus, MigratorTrait};

pub mod columns;
mod m20261121_000001_users_and_auth;
mod m20261121_000002_broker_accounts;
mod m20261121_000003_recorders_and_traders;
mod m20261121_000004_signals_and_intents;
mod m20261121_000005_broker_state;
mod m20261121_000006_paper_record;
mod m20261121_000007_copy_trading;
mod m20261121_000008_risk_and_operations;
mod m20261122_000001_paper_last_signal;
mod m20261122_000002_broker_session_sharing;
mod m20261122_000003_trader_activity_index;
mod m20261122_000004_intent_fillfactor;
mod m20261201_000001_intent_resting_entry;
mod m20261206_000001_sub_account_enabled;
mod m20261206_000002_notification_signing;
mod m20261206_000003_prop_firm_rules;
mod m20261206_000004_rule_breach_kind;
mod m20261206_000005_kill_switch_engagement;
mod m20261206_000006_copy_sync_trigger;
mod m20261207_000001_closed_by_hand_stays_flat;
mod m20261207_000002_follower_peaks_and_paper_breaches;
mod m20261207_000003_trade_records;
mod m20261207_000010_signal_body_digest;

/// Every migration of the schema, oldest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_users_and_auth::Migration),
            Box::new(m20261121_000002_broker_accounts::Migration),
            Box::new(m20261121_000003_recorders_and_traders::Migration),
            Box::new(m20261121_000004_signals_and_intents::Migration),
            Box::new(m20261121_000005_broker_state::Migration),
            Box::new(m20261121_000006_paper_record::Migration),
            Box::new(m20261121_000007_copy_trading::Migration),
            Box::new(m20261121_000008_risk_and_operations::Migration),
            Box::new(m20261122_000001_paper_last_signal::Migration),
            Box::new(m20261122_000002_broker_session_sharing::Migration),
            Box::new(m20261122_000003_trader_activity_index::Migration),
            Box::new(m20261122_000004_intent_fillfactor::Migration),
            Box::new(m20261201_000001_intent_resting_entry::Migration),
            Box::new(m20261206_000001_sub_account_enabled::Migration),
            Box::new(m20261206_000002_notification_signing::Migration),
            Box::new(m20261206_000003_prop_firm_rules::Migration),
            Box::new(m20261206_000004_rule_breach_kind::Migration),
            Box::new(m20261206_000005_kill_switch_engagement::Migration),
            Box::new(m20261206_000006_copy_sync_trigger::Migration),
            Box::new(m20261207_000001_closed_by_hand_stays_flat::Migration),
            Box::new(m20261207_000002_follower_peaks_and_paper_breaches::Migration),
            Box::new(m20261207_000003_trade_records::Migration),
            Box::new(m20261207_000010_signal_body_digest::Migration),
        ]
    }
}

/// Every table the migrations create, in creation order (dropping goes the other way). Kept
/// here so tests can check that `up` creates exactly these and `down` removes them all.
pub const TABLES: &[&str] = &[
    // 000001
    "users",
    "login_sessions",
    "api_tokens",
    "password_reset_tokens",
    "plans",
    "subscriptions",
    // 000002
    "broker_accounts",
    "sub_accounts",
    // 000003
    "recorders",
    "traders",
    // 000004
    "webhook_log",
    "signals",
    "order_intents",
    "executions",
    // 000005
    "broker_orders",
    "fills",
    "broker_positions",
    // 000006
    "paper_positions",
    "paper_trades",
    // 000007
    "leaders",
    "followers",
    "contract_mappings",
    "copy_log",
    // 000008
    "risk_breaches",
    "kill_switches",
    "audit_log",
    "notification_channels",
    "notification_deliveries",
    // m20261206_000003
    "account_rules",
    "news_events",
    // m20261207_000002
    "follower_peaks",
    "paper_breaches",
    // m20261207_000003
    "trade_records",
];
