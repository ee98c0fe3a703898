//! Risk breaches per account and trading day, kill switches (global, per user, per account),
//! the audit log of admin actions, and outbound notification channels with their delivery log.

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
                .table("risk_breaches")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("sub_account_id"))
                .col(date("trading_day"))
                .col(one_of(
                    "kind",
                    &[
                        "max_daily_loss",
                        "follower_daily_loss",
                        "follower_max_drawdown",
                    ],
                ))
                .col(money(backend, "loss_limit"))
                .col(money(backend, "realized_pnl"))
                .col(money(backend, "unrealized_pnl"))
                .col(time("breached_at"))
                .col(time_null("flattened_at"))
                .col(text_null("details"))
                .foreign_key(&mut foreign_key(
                    "risk_breaches",
                    ("sub_account_id", "user_id"),
                    "sub_accounts",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                // One breach per account, trading day and kind: no repeated flattening.
                unique_index(
                    "risk_breaches",
                    "account_day_kind",
                    &["sub_account_id", "trading_day", "kind"],
                ),
                index("risk_breaches", "user_day", &["user_id", "trading_day"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("kill_switches")
                .col(id())
                // "global", "user:<uuid>" or "account:<uuid>": one row per scope.
                .col(text("scope_key"))
                .col(one_of("scope", &["global", "user", "account"]))
                .col(uuid_null("user_id"))
                .col(uuid_null("sub_account_id"))
                .col(boolean("engaged", false))
                .col(text_null("reason"))
                .col(uuid_null("changed_by"))
                .col(time("changed_at"))
                .foreign_key(&mut foreign_key(
                    "kill_switches",
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut foreign_key(
                    "kill_switches",
                    "sub_account_id",
                    "sub_accounts",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut foreign_key(
                    "kill_switches",
                    "changed_by",
                    "users",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .take(),
            vec![unique_index("kill_switches", "scope_key", &["scope_key"])],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("audit_log")
                .col(id())
                .col(time("at"))
                // The audit trail outlives the people in it: references are detached, and the
                // actor's e-mail is copied so the row still says who acted.
                .col(uuid_null("actor_user_id"))
                .col(text("actor_email"))
                .col(text("action"))
                .col(text("target_type"))
                .col(text_null("target_id"))
                .col(uuid_null("target_user_id"))
                .col(json("details"))
                .foreign_key(&mut foreign_key(
                    "audit_log",
                    "actor_user_id",
                    "users",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut foreign_key(
                    "audit_log",
                    "target_user_id",
                    "users",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .take(),
            vec![
                index("audit_log", "time", &["at"]),
                index("audit_log", "target_user", &["target_user_id", "at"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("notification_channels")
                .col(id())
                .col(uuid("user_id"))
                .col(one_of("kind", &["webhook", "discord", "email"]))
                .col(text("label"))
                // The URL or address, encrypted: webhook URLs carry their own secret token.
                .col(bytes("target_enc"))
                // The event kinds delivered to this channel, as a JSON array.
                .col(json("events"))
                .col(boolean("enabled", true))
                .col(time("created_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "notification_channels",
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                unique_index("notification_channels", "id_user", &["id", "user_id"]),
                index("notification_channels", "user", &["user_id"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("notification_deliveries")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("channel_id"))
                .col(text("event_kind"))
                // At-least-once delivery without duplicates: one row per channel and event.
                .col(text("dedup_key"))
                .col(json("payload"))
                .col(one_of("status", &["pending", "sent", "failed"]))
                .col(int_default("attempts", 0))
                .col(text_null("last_error"))
                .col(time("next_attempt_at"))
                .col(time("created_at"))
                .col(time_null("sent_at"))
                .foreign_key(&mut foreign_key(
                    "notification_deliveries",
                    ("channel_id", "user_id"),
                    "notification_channels",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                unique_index(
                    "notification_deliveries",
                    "channel_dedup",
                    &["channel_id", "dedup_key"],
                ),
                index(
                    "notification_deliveries",
                    "due",
                    &["status", "next_attempt_at"],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "notification_deliveries",
                "notification_channels",
                "audit_log",
                "kill_switches",
                "risk_breaches",
            ],
        )
        .await
    }
}
