//! `followers.closed_by_hand_stays_flat`: the follower's choice when its position is closed by
//! hand at the broker (issue #22). Off (the default, what every follower did before): auto-sync
//! brings the follower back to what the leader's position implies. On: a follower the broker
//! shows flat while the leader holds is left flat — the drift logged once per leader state,
//! no correcting order — until the leader's next entry from flat (`docs/copier.md`).

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
                    .table("followers")
                    .add_column(boolean("closed_by_hand_stays_flat", false))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("followers")
                    .drop_column("closed_by_hand_stays_flat")
                    .take(),
            )
            .await
    }
}
