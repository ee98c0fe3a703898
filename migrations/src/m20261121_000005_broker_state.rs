//! What the brokers report: orders, fills and positions per sub-account, keyed by the broker's
//! own ids so that the same event applied twice leaves the same row.

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
        let owned_by_sub_account = |table: &'static str| {
            foreign_key(
                table,
                ("sub_account_id", "user_id"),
                "sub_accounts",
                ("id", "user_id"),
                ForeignKeyAction::Cascade,
            )
        };

        create_table_with_indexes(
            manager,
            Table::create()
                .table("broker_orders")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("sub_account_id"))
                .col(text("broker_order_id"))
                .col(text_null("client_order_id"))
                .col(uuid_null("intent_id"))
                .col(text("contract"))
                .col(one_of("side", &["buy", "sell"]))
                .col(one_of(
                    "order_type",
                    &["market", "limit", "stop", "stop_limit", "trailing_stop"],
                ))
                .col(one_of_null(
                    "role",
                    &["entry", "take_profit", "stop", "exit"],
                ))
                .col(int("quantity"))
                .col(int("filled_quantity"))
                .col(money_null(backend, "limit_price"))
                .col(money_null(backend, "stop_price"))
                .col(money_null(backend, "average_fill_price"))
                .col(one_of(
                    "status",
                    &[
                        "pending",
                        "working",
                        "filled",
                        "cancelled",
                        "rejected",
                        "expired",
                    ],
                ))
                .col(text_null("status_reason"))
                // The broker's time of this state: an older event never overwrites a newer one.
                .col(time("broker_updated_at"))
                .col(time("recorded_at"))
                .foreign_key(&mut owned_by_sub_account("broker_orders"))
                .foreign_key(&mut foreign_key(
                    "broker_orders",
                    "intent_id",
                    "order_intents",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .take(),
            vec![
                unique_index(
                    "broker_orders",
                    "broker_id",
                    &["sub_account_id", "broker_order_id"],
                ),
                index(
                    "broker_orders",
                    "contract_status",
                    &["sub_account_id", "contract", "status"],
                ),
                index("broker_orders", "client_order_id", &["client_order_id"]),
                index("broker_orders", "intent", &["intent_id"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("fills")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("sub_account_id"))
                .col(text("broker_fill_id"))
                .col(text("broker_order_id"))
                .col(text_null("client_order_id"))
                .col(text("contract"))
                .col(one_of("side", &["buy", "sell"]))
                .col(int("quantity"))
                .col(money(backend, "price"))
                .col(time("filled_at"))
                // The CME trading day (starting 17:00 America/Chicago) the fill belongs to.
                .col(date("trading_day"))
                .col(time("recorded_at"))
                .foreign_key(&mut owned_by_sub_account("fills"))
                .take(),
            vec![
                unique_index("fills", "broker_id", &["sub_account_id", "broker_fill_id"]),
                index("fills", "day", &["sub_account_id", "trading_day"]),
                index("fills", "order", &["sub_account_id", "broker_order_id"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("broker_positions")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("sub_account_id"))
                .col(text("contract"))
                // Signed: > 0 long, < 0 short, 0 flat.
                .col(int("net_quantity"))
                .col(money_null(backend, "average_price"))
                .col(money_null(backend, "realized_pnl"))
                .col(time("broker_updated_at"))
                .col(time("recorded_at"))
                .foreign_key(&mut owned_by_sub_account("broker_positions"))
                .take(),
            vec![unique_index(
                "broker_positions",
                "contract",
                &["sub_account_id", "contract"],
            )],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["broker_positions", "fills", "broker_orders"]).await
    }
}
