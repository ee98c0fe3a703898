//! Users, their login sessions, API tokens and password-reset tokens (all stored as SHA-256
//! hashes of high-entropy random tokens, never the tokens), plans and subscriptions.

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
                .table("users")
                .col(id())
                .col(text("email"))
                .col(text_null("display_name"))
                .col(text("password_hash"))
                .col(one_of("role", &["user", "admin"]))
                .col(boolean("approved", false))
                .col(time("created_at"))
                .col(time("updated_at"))
                .col(time_null("last_login_at"))
                .take(),
            vec![unique_index("users", "email", &["email"])],
        )
        .await?;

        // The three token tables share their shape: a SHA-256 hash of a random token, owned by
        // a user and deleted with them.
        for table in ["login_sessions", "api_tokens", "password_reset_tokens"] {
            let mut t = Table::create();
            t.table(table)
                .col(id())
                .col(uuid("user_id"))
                .col(bytes("token_hash"))
                .col(time("created_at"))
                .foreign_key(&mut foreign_key(
                    table,
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ));
            match table {
                "login_sessions" => {
                    t.col(time("expires_at"))
                        .col(time("last_seen_at"))
                        .col(time_null("revoked_at"))
                        .col(text_null("user_agent"))
                        .col(text_null("source_ip"));
                }
                "api_tokens" => {
                    t.col(text("name"))
                        .col(text("token_prefix"))
                        .col(time_null("expires_at"))
                        .col(time_null("last_used_at"))
                        .col(time_null("revoked_at"));
                }
                _ => {
                    t.col(time("expires_at")).col(time_null("used_at"));
                }
            }
            create_table_with_indexes(
                manager,
                t,
                vec![
                    unique_index(table, "token_hash", &["token_hash"]),
                    index(table, "user", &["user_id"]),
                ],
            )
            .await?;
        }

        create_table_with_indexes(
            manager,
            Table::create()
                .table("plans")
                .col(id())
                .col(text("code"))
                .col(text("name"))
                // NULL = unlimited.
                .col(int_null("max_broker_accounts"))
                .col(int_null("max_recorders"))
                .col(int_null("max_followers"))
                .col(json("features"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .take(),
            vec![unique_index("plans", "code", &["code"])],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("subscriptions")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("plan_id"))
                .col(text("provider"))
                .col(text("provider_subscription_id"))
                .col(one_of(
                    "status",
                    &["trialing", "active", "past_due", "canceled", "expired"],
                ))
                .col(time_null("current_period_end"))
                // The provider's own event time: an older event never overwrites a newer one.
                .col(time("provider_updated_at"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "subscriptions",
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                // A plan in use cannot be deleted: move its subscribers first.
                .foreign_key(&mut foreign_key(
                    "subscriptions",
                    "plan_id",
                    "plans",
                    "id",
                    ForeignKeyAction::Restrict,
                ))
                .take(),
            vec![
                unique_index(
                    "subscriptions",
                    "provider_id",
                    &["provider", "provider_subscription_id"],
                ),
                index("subscriptions", "user", &["user_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "subscriptions",
                "plans",
                "password_reset_tokens",
                "api_tokens",
                "login_sessions",
                "users",
            ],
        )
        .await
    }
}
