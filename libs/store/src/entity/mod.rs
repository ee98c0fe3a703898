//! sea-orm entities, one module per table. Repositories (`crate::repo`) are the API;
//! these types are public for tests and for reading rows the repositories do not cover.

mod enums;
pub use enums::*;

pub mod account_rules;
pub mod api_tokens;
pub mod audit_log;
pub mod broker_accounts;
pub mod broker_orders;
pub mod broker_positions;
pub mod contract_mappings;
pub mod copy_log;
pub mod executions;
pub mod fills;
pub mod follower_peaks;
pub mod followers;
pub mod kill_switches;
pub mod leaders;
pub mod login_sessions;
pub mod news_events;
pub mod notification_channels;
pub mod notification_deliveries;
pub mod order_intents;
pub mod paper_breaches;
pub mod paper_positions;
pub mod paper_trades;
pub mod password_reset_tokens;
pub mod plans;
pub mod recorders;
pub mod risk_breaches;
pub mod signals;
pub mod sub_accounts;
pub mod subscriptions;
pub mod trade_records;
pub mod traders;
pub mod users;
pub mod webhook_log;
