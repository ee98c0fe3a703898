//! Notifications, as the notifier and the API's delivery log need them:
//!
//! - `notification_channels.secret_enc`: the per-channel signing secret of a webhook channel
//!   (sealed like the target; null for Discord and e-mail channels, which are not signed). The
//!   receiver checks `X-JT-Signature` with it (`docs/notifications.md`).
//! - `ix_notification_deliveries_user_time`: the delivery log is read per owner, newest first,
//!   in keyset pages of `(created_at, id)`; without it every page scans the owner's rows through
//!   the due index.

use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const LOG_INDEX: &str = "ix_notification_deliveries_user_time";

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("notification_channels")
                    .add_column(bytes_null("secret_enc"))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "notification_deliveries",
                "user_time",
                &["user_id", "created_at", "id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(LOG_INDEX)
                    .table("notification_deliveries")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("notification_channels")
                    .drop_column("secret_enc")
                    .take(),
            )
            .await
    }
}
