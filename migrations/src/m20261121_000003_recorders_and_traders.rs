//! Recorders (signal sources with their default settings and webhook token) and traders
//! (one sub-account following one recorder, with nullable overrides of every setting).
//!
//! Settings are one validated JSON document per row, not one column per setting: the setting
//! list is declared once in `jt_domain::settings`, and a setting added there is stored, loaded
//! and resolved for every trader without a schema change that could be forgotten (the replaced
//! platform lost 40 % of its trades to a per-account copy of the settings that missed fields).
//! See `docs/store.md`.

use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        create_table_with_indexes(
            manager,
            Table::create()
                .table("recorders")
                .col(id())
                .col(uuid("user_id"))
                .col(text("name"))
                // Default ticker when an alert carries none.
                .col(text_null("symbol"))
                // SHA-256 of the webhook token: the ingest looks recorders up by this hash.
                .col(bytes("webhook_token_hash"))
                // The token itself, encrypted, so its owner can see the webhook URL again.
                .col(bytes("webhook_token_enc"))
                // `jt_domain::Settings` as JSON: every setting of DOMAIN.md §4.
                .col(json("settings"))
                // Paper record: commission per contract and side, in dollars.
                .col(money(backend, "commission_per_contract"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "recorders",
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                unique_index("recorders", "webhook_token_hash", &["webhook_token_hash"]),
                unique_index("recorders", "id_user", &["id", "user_id"]),
                index("recorders", "user", &["user_id"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("traders")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("recorder_id"))
                .col(uuid("sub_account_id"))
                .col(boolean("enabled", true))
                // `jt_domain::SettingsOverrides` as JSON: null or absent = inherit.
                .col(json("overrides"))
                .col(time("created_at"))
                .col(time("updated_at"))
                // Composite keys: the recorder and the sub-account must have the trader's owner.
                .foreign_key(&mut foreign_key(
                    "traders",
                    ("recorder_id", "user_id"),
                    "recorders",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut foreign_key(
                    "traders",
                    ("sub_account_id", "user_id"),
                    "sub_accounts",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                unique_index(
                    "traders",
                    "recorder_sub_account",
                    &["recorder_id", "sub_account_id"],
                ),
                index("traders", "sub_account", &["sub_account_id"]),
                index("traders", "user", &["user_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["traders", "recorders"]).await
    }
}
