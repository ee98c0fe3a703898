//! Live trade records (DOMAIN.md §9 "fill events close trade records hit by TP or SL"):
//! `trade_records`, one row per life of a position on one (sub-account, contract) — from the
//! fill that opens it from flat (or the remainder of a flip) to the fill that brings it back to
//! 0 (or crosses 0), built by the positions service from the broker's fills.
//!
//! Entries and exits are kept as exact sums (`entry_value` = Σ price × quantity of the entering
//! fills, `exit_value` likewise), so the volume-weighted averages and the realised P&L of a
//! closed record — (`exit_value` − `entry_value`) × direction × the contract's point value —
//! are exact whatever order the fills of one record were applied in. At most one record per
//! (sub-account, contract) is open (a partial unique index): two replicas opening one at once
//! cannot both succeed, the loser retries and adds to the winner's.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

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
                .table("trade_records")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("sub_account_id"))
                .col(text("contract"))
                .col(one_of("direction", &["long", "short"]))
                .col(one_of("status", &["open", "closed"]))
                // Contracts held now (0 once closed), the most held at once, entered in all.
                .col(int("quantity"))
                .col(int("max_quantity"))
                .col(int("entered_quantity"))
                .col(int("exited_quantity"))
                // Σ price × quantity of the entering / exiting fills (exact).
                .col(money(backend, "entry_value"))
                .col(money(backend, "exit_value"))
                .col(money(backend, "average_entry"))
                .col(money_null(backend, "average_exit"))
                // Set when the record closes by fills and the contract's point value is known;
                // null for a record closed by reconciliation (no exit price) or a contract
                // keyed by a broker id (no instrument).
                .col(money_null(backend, "realized_pnl"))
                .col(one_of_null(
                    "exit_reason",
                    &["take_profit", "stop", "market", "unknown", "reconciled"],
                ))
                // The broker order of the closing fill: its type decides the exit reason, also
                // when the order's own event arrives after the fill.
                .col(text_null("exit_order_id"))
                .col(text("first_fill_id"))
                .col(text("last_fill_id"))
                .col(time("last_fill_at"))
                .col(int("fills"))
                .col(time("opened_at"))
                .col(time_null("closed_at"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "trade_records",
                    ("sub_account_id", "user_id"),
                    "sub_accounts",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                index(
                    "trade_records",
                    "sub_account_time",
                    &["sub_account_id", "opened_at"],
                ),
                index(
                    "trade_records",
                    "exit_order",
                    &["sub_account_id", "exit_order_id"],
                ),
            ],
        )
        .await?;
        // At most one open record per sub-account and contract. Partial indexes are spelled the
        // same on both engines.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_trade_records_open ON trade_records \
                 (sub_account_id, contract) WHERE status = 'open'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["trade_records"]).await
    }
}
