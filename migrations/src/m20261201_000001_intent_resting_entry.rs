//! `order_intents.resting_entry`: the intent placed a resting entry (limit, stop or stop-limit)
//! that may still be working at the broker. The trader's next signal on the contract cancels
//! it first (`docs/alerts.md`, "Order types"); the execution finds it through the trader's
//! latest executed intent, in the same statement as its cooldown and add-delay reads.
//!
//! Not indexed: the read goes through `(trader_id, user_id, created_at)`, and the column is
//! written with the move to `sent`, which stays a heap-only update.

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
                    .table("order_intents")
                    .add_column(boolean("resting_entry", false))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("order_intents")
                    .drop_column("resting_entry")
                    .take(),
            )
            .await
    }
}
