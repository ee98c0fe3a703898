//! A prop-firm rule breach is a breach (DOMAIN.md §14, issue #23): `risk_breaches.kind` gains
//! `prop_firm_rule`, so the risk service records it with the same once-per-account-and-day
//! row, the same crash-safe flatten (`flattened_at`) and the same executor lookup as a max
//! daily loss. The rule's name and the numbers are in `details` (why one kind for every rule
//! and not a kind per rule: `docs/store.md`).
//!
//! PostgreSQL replaces the column's CHECK constraint in place. SQLite cannot alter a CHECK:
//! the table is rebuilt (created under a new name with the new CHECK, rows copied, the old one
//! dropped, the new one renamed, the indexes created again, in one transaction on one
//! connection) — nothing references `risk_breaches`, so no foreign key has to follow it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const BEFORE: &[&str] = &[
    "max_daily_loss",
    "follower_daily_loss",
    "follower_max_drawdown",
];
const AFTER: &[&str] = &[
    "max_daily_loss",
    "follower_daily_loss",
    "follower_max_drawdown",
    "prop_firm_rule",
];
const COLUMNS: &str = "id, user_id, sub_account_id, trading_day, kind, loss_limit, realized_pnl, \
                       unrealized_pnl, breached_at, flattened_at, details";

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        allow_kinds(manager, AFTER).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The old CHECK cannot hold rows of the new kind.
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM risk_breaches WHERE kind = 'prop_firm_rule'")
            .await?;
        allow_kinds(manager, BEFORE).await
    }
}

async fn allow_kinds(
    manager: &SchemaManager<'_>,
    kinds: &'static [&'static str],
) -> Result<(), DbErr> {
    let rebuild = Rebuild {
        table: table(
            manager.get_database_backend(),
            "risk_breaches_rebuilt",
            kinds,
        ),
        columns: COLUMNS,
        indexes: indexes(),
    };
    replace_check(manager, "risk_breaches", "kind", kinds, rebuild).await
}

/// `risk_breaches` as m20261121_000008 made it, with `kinds` allowed.
fn table(
    backend: DbBackend,
    name: &'static str,
    kinds: &'static [&'static str],
) -> TableCreateStatement {
    Table::create()
        .table(name)
        .col(id())
        .col(uuid("user_id"))
        .col(uuid("sub_account_id"))
        .col(date("trading_day"))
        .col(one_of("kind", kinds))
        .col(money(backend, "loss_limit"))
        .col(money(backend, "realized_pnl"))
        .col(money(backend, "unrealized_pnl"))
        .col(time("breached_at"))
        .col(time_null("flattened_at"))
        .col(text_null("details"))
        .foreign_key(&mut foreign_key(
            name,
            ("sub_account_id", "user_id"),
            "sub_accounts",
            ("id", "user_id"),
            ForeignKeyAction::Cascade,
        ))
        .take()
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        unique_index(
            "risk_breaches",
            "account_day_kind",
            &["sub_account_id", "trading_day", "kind"],
        ),
        index("risk_breaches", "user_day", &["user_id", "trading_day"]),
    ]
}
