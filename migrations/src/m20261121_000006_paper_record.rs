//! The recorder's own paper record (recording and simulation mode, DOMAIN.md §6): aggregated
//! positions with current / worst / best unrealized P&L, and trades with MFE/MAE.

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
        let owned_by_recorder = |table: &'static str| {
            foreign_key(
                table,
                ("recorder_id", "user_id"),
                "recorders",
                ("id", "user_id"),
                ForeignKeyAction::Cascade,
            )
        };

        create_table_with_indexes(
            manager,
            Table::create()
                .table("paper_positions")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("recorder_id"))
                .col(text("symbol"))
                .col(one_of("direction", &["long", "short"]))
                .col(int("quantity"))
                .col(money(backend, "average_entry"))
                // Each fill that built the position: [{"price": "...", "qty": n, "time": ...}].
                .col(json("entries"))
                .col(money_null(backend, "current_price"))
                .col(money(backend, "unrealized_pnl"))
                .col(money(backend, "worst_unrealized_pnl"))
                .col(money(backend, "best_unrealized_pnl"))
                .col(money(backend, "realized_pnl"))
                .col(money_null(backend, "exit_price"))
                .col(one_of("status", &["open", "closed"]))
                .col(time("opened_at"))
                .col(time_null("closed_at"))
                .col(time("updated_at"))
                .foreign_key(&mut owned_by_recorder("paper_positions"))
                .take(),
            vec![index(
                "paper_positions",
                "recorder_time",
                &["recorder_id", "opened_at"],
            )],
        )
        .await?;
        // At most one open position per recorder and symbol. Partial indexes are spelled the
        // same on both engines.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_paper_positions_open ON paper_positions \
                 (recorder_id, symbol) WHERE status = 'open'",
            )
            .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("paper_trades")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("recorder_id"))
                .col(uuid_null("paper_position_id"))
                .col(uuid_null("signal_id"))
                .col(text("symbol"))
                .col(one_of("direction", &["long", "short"]))
                .col(int("quantity"))
                .col(money(backend, "entry_price"))
                .col(time("entry_time"))
                .col(money_null(backend, "exit_price"))
                .col(time_null("exit_time"))
                .col(one_of_null(
                    "exit_reason",
                    &[
                        "take_profit",
                        "stop_loss",
                        "signal",
                        "flip",
                        "manual",
                        "session_end",
                    ],
                ))
                .col(money_null(backend, "tp_price"))
                .col(money_null(backend, "sl_price"))
                // Maximum favourable / adverse excursion, in price points from the entry.
                .col(money(backend, "max_favorable_excursion"))
                .col(money(backend, "max_adverse_excursion"))
                .col(money_null(backend, "realized_pnl"))
                .col(money_null(backend, "realized_ticks"))
                .col(money(backend, "commission"))
                .col(one_of("status", &["open", "closed"]))
                .col(time("created_at"))
                .col(time("updated_at"))
                .foreign_key(&mut owned_by_recorder("paper_trades"))
                .foreign_key(&mut foreign_key(
                    "paper_trades",
                    "paper_position_id",
                    "paper_positions",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut foreign_key(
                    "paper_trades",
                    "signal_id",
                    "signals",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .take(),
            vec![
                index(
                    "paper_trades",
                    "recorder_time",
                    &["recorder_id", "entry_time"],
                ),
                index(
                    "paper_trades",
                    "recorder_status",
                    &["recorder_id", "status"],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["paper_trades", "paper_positions"]).await
    }
}
