//! Followers' max drawdown (DOMAIN.md §10, issue #23): `follower_peaks` keeps each follower's
//! own equity peak since it started following (or since its owner last unlocked it), so the
//! risk service can lock it out once its account's equity falls `max_drawdown` below that peak.
//!
//! A table of its own rather than columns on `followers`: the peak is the risk service's record,
//! written up to once a second while equity makes new highs, and kept apart from the settings
//! the API and the copier write. `started_at` says which tracking a row belongs to: an unlock
//! through the API starts a new one, and a write of the old tracking (a peak seen before the
//! reset) matches no row and changes nothing.
//!
//! Paper accounts' daily loss (DOMAIN.md §9 "paper from prices"): `paper_breaches`, a recorder's
//! paper record past its `max_daily_loss` on a trading day — once per recorder and day (a
//! recorder has no sub-account, so `risk_breaches` cannot hold it), with when its open paper
//! positions were closed at the mark (`closed_at`: `NULL` = still to close, for the next risk
//! monitor after a crash). The fan-out reads it to refuse the recorder's paper entries.

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
                .table("follower_peaks")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("follower_id"))
                // The highest equity (balance + open P&L) seen since `started_at`; null until
                // the first figure is known.
                .col(money_null(backend, "peak"))
                .col(time_null("peak_at"))
                // When this tracking began: the follower's first watch or its last unlock.
                .col(time("started_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "follower_peaks",
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut foreign_key(
                    "follower_peaks",
                    "follower_id",
                    "followers",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![unique_index("follower_peaks", "follower", &["follower_id"])],
        )
        .await?;
        create_table_with_indexes(
            manager,
            Table::create()
                .table("paper_breaches")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("recorder_id"))
                .col(date("trading_day"))
                .col(money(backend, "loss_limit"))
                .col(money(backend, "realized_pnl"))
                .col(money(backend, "unrealized_pnl"))
                .col(time("breached_at"))
                // When the open paper positions were closed at the mark; null: still to do.
                .col(time_null("closed_at"))
                .col(text_null("details"))
                .foreign_key(&mut foreign_key(
                    "paper_breaches",
                    ("recorder_id", "user_id"),
                    "recorders",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![unique_index(
                "paper_breaches",
                "recorder_day",
                &["recorder_id", "trading_day"],
            )],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["paper_breaches", "follower_peaks"]).await
    }
}
