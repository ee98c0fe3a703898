//! Auto-sync's corrections get their own trigger (issue #22): `copy_log.trigger` gains `sync`
//! beside `manual` (a trade through the API) and `auto` (the leader's own fill), so the copy log
//! tells a copy from a correction without parsing its leader event id (`sync:…`).
//!
//! PostgreSQL replaces the column's CHECK in place. SQLite cannot alter a CHECK: the table is
//! rebuilt (created under a new name with the new CHECK, rows copied, the old one dropped, the
//! new one renamed, the indexes created again, in one transaction on one connection). Nothing
//! references `copy_log`, so no foreign key has to follow it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const BEFORE: &[&str] = &["manual", "auto"];
const AFTER: &[&str] = &["manual", "auto", "sync"];
// `trigger` is an SQL keyword: quoted wherever SQL is written by hand.
const COLUMNS: &str = "id, user_id, leader_id, follower_id, \"trigger\", leader_fill_id, \
                       leader_order_id, follower_intent_id, follower_order_id, leader_symbol, \
                       follower_symbol, leader_side, follower_side, leader_quantity, \
                       follower_quantity, leader_price, follower_price, status, error, \
                       latency_ms, created_at, updated_at";

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        allow_triggers(manager, AFTER).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The old CHECK cannot hold the new trigger: corrections become `auto` again, as they
        // were recorded before.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE copy_log SET \"trigger\" = 'auto' WHERE \"trigger\" = 'sync'",
            )
            .await?;
        allow_triggers(manager, BEFORE).await
    }
}

async fn allow_triggers(
    manager: &SchemaManager<'_>,
    triggers: &'static [&'static str],
) -> Result<(), DbErr> {
    let rebuild = Rebuild {
        table: table(manager.get_database_backend(), "copy_log_rebuilt", triggers),
        columns: COLUMNS,
        indexes: indexes(),
    };
    replace_check(manager, "copy_log", "trigger", triggers, rebuild).await
}

/// `copy_log` as m20261121_000007 made it, with `triggers` allowed.
fn table(
    backend: DbBackend,
    name: &'static str,
    triggers: &'static [&'static str],
) -> TableCreateStatement {
    Table::create()
        .table(name)
        .col(id())
        .col(uuid("user_id"))
        .col(uuid_null("leader_id"))
        .col(uuid_null("follower_id"))
        .col(one_of("trigger", triggers))
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
            name,
            "user_id",
            "users",
            "id",
            ForeignKeyAction::Cascade,
        ))
        .foreign_key(&mut foreign_key(
            name,
            "leader_id",
            "leaders",
            "id",
            ForeignKeyAction::SetNull,
        ))
        .foreign_key(&mut foreign_key(
            name,
            "follower_id",
            "followers",
            "id",
            ForeignKeyAction::SetNull,
        ))
        .foreign_key(&mut foreign_key(
            name,
            "follower_intent_id",
            "order_intents",
            "id",
            ForeignKeyAction::SetNull,
        ))
        .take()
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        unique_index(
            "copy_log",
            "follower_fill",
            &["follower_id", "leader_fill_id"],
        ),
        index("copy_log", "user_time", &["user_id", "created_at"]),
        index("copy_log", "leader_time", &["leader_id", "created_at"]),
    ]
}
