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
    let db = manager.get_connection();
    let list = kinds
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            // The column's CHECK was created unnamed (PostgreSQL calls it
            // `risk_breaches_kind_check`); found by its definition rather than trusting the
            // generated name.
            db.execute_unprepared(
                "DO $$ DECLARE c text; BEGIN \
                   FOR c IN SELECT conname FROM pg_constraint \
                     WHERE conrelid = 'risk_breaches'::regclass AND contype = 'c' \
                       AND pg_get_constraintdef(oid) LIKE '%kind%' LOOP \
                     EXECUTE format('ALTER TABLE risk_breaches DROP CONSTRAINT %I', c); \
                   END LOOP; \
                 END $$",
            )
            .await?;
            db.execute_unprepared(&format!(
                "ALTER TABLE risk_breaches ADD CONSTRAINT risk_breaches_kind_check \
                 CHECK (kind IN ({list}))"
            ))
            .await?;
            Ok(())
        }
        backend => {
            // One batch on one connection, in one transaction: the pool's other connections
            // never see the table half rebuilt, and a failure leaves the old table as it was.
            let rebuilt = "risk_breaches_rebuilt";
            let mut sql = vec![
                "BEGIN".to_owned(),
                table(backend, rebuilt, kinds).to_string(SqliteQueryBuilder),
                format!("INSERT INTO {rebuilt} ({COLUMNS}) SELECT {COLUMNS} FROM risk_breaches"),
                "DROP TABLE risk_breaches".to_owned(),
                format!("ALTER TABLE {rebuilt} RENAME TO risk_breaches"),
            ];
            sql.extend(indexes().iter().map(|i| i.to_string(SqliteQueryBuilder)));
            sql.push("COMMIT".to_owned());
            db.execute_unprepared(&sql.join(";\n")).await?;
            Ok(())
        }
    }
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
