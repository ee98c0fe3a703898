//! Room on each page of `order_intents` for its rows' next versions (PostgreSQL only).
//!
//! An intent is written once and then moved two or three times on the executor's hot path
//! (`pending` → `sent` → outcome); PostgreSQL writes every move as a new version of the whole
//! row (about 2 KB: the resolved settings and the plan are JSON). With pages packed full by
//! the inserts, a new version rarely fits beside the old one, so the update is not "HOT" and
//! each of the table's six indexes gets a new entry as well: only 54 % of the updates were HOT
//! under the T = 500 benchmark. Filling pages to half on insert leaves the room, so the moves
//! touch the heap page only (`docs/store.md`, `docs/benchmarks.md`). None of the moves changes
//! an indexed column, which HOT also needs.
//!
//! SQLite has no such setting; the migration does nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Percent of a page an insert may fill.
const FILLFACTOR: u8 = 50;

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "ALTER TABLE order_intents SET (fillfactor = {FILLFACTOR})"
            ))
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE order_intents RESET (fillfactor)")
            .await
            .map(|_| ())
    }
}
