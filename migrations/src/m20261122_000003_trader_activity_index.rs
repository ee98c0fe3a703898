//! The execution reads a trader's recent activity (cooldown, add delay, signals per session)
//! before every order, filtered by owner *and* trader. With only `(trader_id, created_at)` and
//! `(user_id, created_at)` to choose from, PostgreSQL's generic plan intersected both
//! (a bitmap AND), scanning every intent of the owner on each execution: about 1 ms per query
//! at 8,000 intents, growing with the owner's history, and the largest share of the database's
//! work under load (`docs/benchmarks.md`). One index on `(trader_id, user_id, created_at)`
//! answers all three reads with a short backward scan of that trader's own rows, and replaces
//! the old `(trader_id, created_at)` (its prefix still serves the trader foreign key).

use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "ix_order_intents_trader_time";
const NEW: &str = "ix_order_intents_trader_user_time";

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(
                "order_intents",
                "trader_user_time",
                &["trader_id", "user_id", "created_at"],
            ))
            .await?;
        manager
            .drop_index(Index::drop().name(OLD).table("order_intents").to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(
                "order_intents",
                "trader_time",
                &["trader_id", "created_at"],
            ))
            .await?;
        manager
            .drop_index(Index::drop().name(NEW).table("order_intents").to_owned())
            .await
    }
}
