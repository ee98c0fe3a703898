//! Two columns on `paper_positions` for the fan-out's paper engine: `last_signal_id`, the last
//! signal applied (a redelivered signal is recognised and never applied twice), and
//! `engine_state`, the paper engine's whole position (lots with their excursions, resting
//! targets, stop, break-even), so the record resumes exactly after a restart.

use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("paper_positions")
                    .add_column(uuid_null("last_signal_id"))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("paper_positions")
                    .add_column(json_null("engine_state"))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite drops one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table("paper_positions")
                    .drop_column("engine_state")
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("paper_positions")
                    .drop_column("last_signal_id")
                    .take(),
            )
            .await
    }
}
