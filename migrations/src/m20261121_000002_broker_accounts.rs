//! Broker accounts (a set of broker credentials, encrypted at rest) and the broker's
//! sub-accounts reachable through them.

use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table_with_indexes(
            manager,
            Table::create()
                .table("broker_accounts")
                .col(id())
                .col(uuid("user_id"))
                .col(text("label"))
                .col(one_of(
                    "broker",
                    &["tradovate", "ninjatrader", "projectx", "webull", "sim"],
                ))
                .col(one_of("environment", &["demo", "live"]))
                // The login name is not a secret (it is shown in the UI); everything that is
                // lives in the two AES-256-GCM ciphertexts below.
                .col(text_null("username"))
                .col(bytes_null("credentials_enc"))
                .col(bytes_null("access_token_enc"))
                .col(time_null("token_expires_at"))
                .col(boolean("needs_reauth", false))
                .col(text_null("reauth_reason"))
                // Captcha lock-outs: no login attempt before this instant.
                .col(time_null("locked_until"))
                .col(text_null("last_error"))
                .col(time_null("last_error_at"))
                .col(boolean("require_brackets", false))
                .col(boolean("enabled", true))
                .col(time("created_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "broker_accounts",
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                // Target of the composite (id, user_id) foreign keys of dependent tables.
                unique_index("broker_accounts", "id_user", &["id", "user_id"]),
                index("broker_accounts", "user", &["user_id"]),
                index("broker_accounts", "token_expiry", &["token_expires_at"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("sub_accounts")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("broker_account_id"))
                // The broker's own id of the sub-account (numeric at Tradovate and ProjectX).
                .col(text("broker_sub_account_id"))
                .col(text("name"))
                .col(boolean("active", true))
                .col(time("created_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "sub_accounts",
                    ("broker_account_id", "user_id"),
                    "broker_accounts",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                unique_index(
                    "sub_accounts",
                    "broker_id",
                    &["broker_account_id", "broker_sub_account_id"],
                ),
                unique_index("sub_accounts", "id_user", &["id", "user_id"]),
                index("sub_accounts", "user", &["user_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["sub_accounts", "broker_accounts"]).await
    }
}
