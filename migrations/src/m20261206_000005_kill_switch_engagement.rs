//! A kill switch is executed by the risk service (issue #23): `kill_switches` gains the
//! engagement it still has to carry out.
//!
//! - `engagement_id`: the id of the latest engagement (the API request's id, or the kill
//!   alert's signal id). An engagement written again with the same id (a redelivered alert, a
//!   retried request) is the same engagement: it is not carried out twice.
//! - `engagement_cause`: what the flatten intents name as their cause (a
//!   `jt_messages::ControlCause`, opaque to the store): their ids derive from it, so the
//!   intents the API announces are the ones the risk service publishes.
//! - `executed_at`: when the risk service had published every flatten of the engagement;
//!   `NULL` with an `engagement_id` means still to do — a risk service that restarts finishes
//!   it, and one that finds it set does nothing (never flattened twice).
//!
//! No index: the table holds one row per scope (the platform, each user, each account that
//! ever had a switch), and the risk service's scan of it is a read of a few rows.
//! One ALTER per column: SQLite adds one column per statement.

use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            uuid_null("engagement_id"),
            json_null("engagement_cause"),
            time_null("executed_at"),
        ] {
            manager
                .alter_table(Table::alter().table("kill_switches").add_column(col).take())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in ["executed_at", "engagement_cause", "engagement_id"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("kill_switches")
                        .drop_column(col)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
