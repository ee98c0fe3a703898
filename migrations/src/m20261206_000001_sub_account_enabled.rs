//! `sub_accounts.enabled`: the user's switch for one sub-account (the API's
//! `PATCH /sub-accounts/{id}`). A disabled sub-account gets no new entries — signal, copy and
//! manual entries are skipped with the reason — while exits and flattens still go through, so
//! a position can always be closed. Separate from `active` (whether the broker still lists
//! it), which the account test maintains.

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
                    .table("sub_accounts")
                    .add_column(boolean("enabled", true))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("sub_accounts")
                    .drop_column("enabled")
                    .take(),
            )
            .await
    }
}
