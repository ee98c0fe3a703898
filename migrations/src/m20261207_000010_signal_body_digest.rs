//! `signals.body_digest`: the digest of the webhook token and the exact alert body of a signal
//! without `time` (`jt_alerts::DedupKey::body_digest`), so that the fan-out can record the same
//! body delivered again less than a second later as a `duplicate` with one conditional insert
//! (`jt_store::repo::signals::Signals::record`). Null for alerts with `time` (their message id
//! alone de-duplicates them) and for signals recorded before this column existed. No index: the
//! check reads the recorder's signals of two seconds through `ix_signals_recorder_time`.

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
                    .table("signals")
                    .add_column(text_null("body_digest"))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("signals")
                    .drop_column("body_digest")
                    .take(),
            )
            .await
    }
}
