//! Copy trading (DOMAIN.md §10): leader sub-accounts, their followers with sizing and risk
//! limits, per-follower contract mappings (NQ → MNQ ×10) and the copy log.

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
                .table("leaders")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("sub_account_id"))
                .col(text_null("label"))
                .col(boolean("enabled", true))
                // Copy the leader's own fills (automatic mode), not only manual API trades.
                .col(boolean("auto_copy", false))
                .col(time("created_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "leaders",
                    ("sub_account_id", "user_id"),
                    "sub_accounts",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                unique_index("leaders", "sub_account", &["sub_account_id"]),
                unique_index("leaders", "id_user", &["id", "user_id"]),
                index("leaders", "user", &["user_id"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("followers")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("leader_id"))
                .col(uuid("sub_account_id"))
                .col(text_null("label"))
                .col(money(backend, "multiplier"))
                // NULL = no cap.
                .col(int_null("max_position_size"))
                .col(boolean("enabled", true))
                .col(boolean("copy_tp", true))
                .col(boolean("copy_sl", true))
                .col(money_null(backend, "daily_loss_limit"))
                .col(money_null(backend, "max_drawdown"))
                .col(boolean("locked_out", false))
                .col(text_null("lockout_reason"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "followers",
                    ("leader_id", "user_id"),
                    "leaders",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut foreign_key(
                    "followers",
                    ("sub_account_id", "user_id"),
                    "sub_accounts",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                unique_index(
                    "followers",
                    "leader_sub_account",
                    &["leader_id", "sub_account_id"],
                ),
                unique_index("followers", "id_user", &["id", "user_id"]),
                index("followers", "sub_account", &["sub_account_id"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("contract_mappings")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("follower_id"))
                .col(text("source_root"))
                .col(text("target_root"))
                .col(money(backend, "quantity_ratio"))
                .col(time("created_at"))
                .foreign_key(&mut foreign_key(
                    "contract_mappings",
                    ("follower_id", "user_id"),
                    "followers",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![unique_index(
                "contract_mappings",
                "follower_source",
                &["follower_id", "source_root"],
            )],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("copy_log")
                .col(id())
                .col(uuid("user_id"))
                // History survives a removed leader or follower.
                .col(uuid_null("leader_id"))
                .col(uuid_null("follower_id"))
                .col(one_of("trigger", &["manual", "auto"]))
                // The leader fill that caused the copy (automatic mode): copied at most once per
                // follower.
                .col(text_null("leader_fill_id"))
                .col(text_null("leader_order_id"))
                .col(uuid_null("follower_intent_id"))
                .col(text_null("follower_order_id"))
                .col(text("leader_symbol"))
                .col(text("follower_symbol"))
                .col(one_of_null("leader_side", &["buy", "sell"]))
                .col(one_of_null("follower_side", &["buy", "sell"]))
                .col(int("leader_quantity"))
                .col(int("follower_quantity"))
                .col(money_null(backend, "leader_price"))
                .col(money_null(backend, "follower_price"))
                .col(one_of(
                    "status",
                    &["pending", "accepted", "filled", "skipped", "error"],
                ))
                .col(text_null("error"))
                .col(int_null("latency_ms"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "copy_log",
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut foreign_key(
                    "copy_log",
                    "leader_id",
                    "leaders",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut foreign_key(
                    "copy_log",
                    "follower_id",
                    "followers",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut foreign_key(
                    "copy_log",
                    "follower_intent_id",
                    "order_intents",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .take(),
            vec![
                unique_index(
                    "copy_log",
                    "follower_fill",
                    &["follower_id", "leader_fill_id"],
                ),
                index("copy_log", "user_time", &["user_id", "created_at"]),
                index("copy_log", "leader_time", &["leader_id", "created_at"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &["copy_log", "contract_mappings", "followers", "leaders"],
        )
        .await
    }
}
