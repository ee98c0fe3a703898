//! The raw webhook log, parsed signals with their outcome, order intents (one per trader and
//! signal, with the resolved settings and a unique idempotency key) and executions (each attempt
//! at the broker, with broker order ids, outcome and latency).

use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `IntentStatus` string values (jt-store).
pub const INTENT_STATUSES: &[&str] = &[
    "pending",
    "sent",
    "unknown",
    "accepted",
    "filled",
    "rejected",
    "failed",
    "cancelled",
    "skipped",
];

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        create_table_with_indexes(
            manager,
            Table::create()
                .table("webhook_log")
                .col(id())
                .col(time("received_at"))
                // NULL when the token matched no recorder.
                .col(uuid_null("recorder_id"))
                .col(text_null("source_ip"))
                // The first 8 KiB of the body.
                .col(text("body"))
                .col(boolean("body_truncated", false))
                .col(int("status_code"))
                .col(text("result"))
                .col(text_null("reason"))
                // No foreign key: the log is written in batches off the hot path and may land
                // before or after the signal row.
                .col(uuid_null("signal_id"))
                .foreign_key(&mut foreign_key(
                    "webhook_log",
                    "recorder_id",
                    "recorders",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                index(
                    "webhook_log",
                    "recorder_time",
                    &["recorder_id", "received_at"],
                ),
                index("webhook_log", "time", &["received_at"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("signals")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("recorder_id"))
                .col(time("received_at"))
                // The alert's own `time`, when it carried one.
                .col(time_null("alert_time"))
                .col(text("action"))
                .col(text_null("ticker"))
                .col(money_null(backend, "quantity"))
                .col(money_null(backend, "price"))
                .col(text_null("market_position"))
                .col(text_null("prev_market_position"))
                // The parsed signal as the alert parser produced it.
                .col(json("payload"))
                .col(one_of(
                    "outcome",
                    &["accepted", "duplicate", "stale", "filtered", "rejected"],
                ))
                .col(text_null("outcome_reason"))
                .col(int_null("age_ms"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "signals",
                    ("recorder_id", "user_id"),
                    "recorders",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                index("signals", "recorder_time", &["recorder_id", "received_at"]),
                index("signals", "user_time", &["user_id", "received_at"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("order_intents")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("sub_account_id"))
                // History survives an unlinked trader or a pruned signal.
                .col(uuid_null("trader_id"))
                .col(uuid_null("signal_id"))
                .col(one_of(
                    "source",
                    &["signal", "copy", "manual", "control", "reconcile"],
                ))
                .col(text("idempotency_key"))
                .col(one_of(
                    "kind",
                    &[
                        "entry", "add", "reduce", "close", "flip", "flatten", "cancel", "protect",
                    ],
                ))
                .col(text("symbol"))
                .col(text_null("contract"))
                .col(one_of_null("side", &["buy", "sell"]))
                .col(int("quantity"))
                .col(int_default("filled_quantity", 0))
                .col(money_null(backend, "average_fill_price"))
                // The resolved `jt_domain::Settings` this intent was decided with.
                .col(json("settings"))
                // The order shapes the executor will send (jt_domain::order types).
                .col(json("plan"))
                .col(one_of("status", INTENT_STATUSES))
                .col(text_null("status_reason"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .col(time_null("sent_at"))
                .col(time_null("completed_at"))
                .foreign_key(&mut foreign_key(
                    "order_intents",
                    ("sub_account_id", "user_id"),
                    "sub_accounts",
                    ("id", "user_id"),
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut foreign_key(
                    "order_intents",
                    "trader_id",
                    "traders",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut foreign_key(
                    "order_intents",
                    "signal_id",
                    "signals",
                    "id",
                    ForeignKeyAction::SetNull,
                ))
                .take(),
            vec![
                unique_index("order_intents", "idempotency_key", &["idempotency_key"]),
                index(
                    "order_intents",
                    "sub_account_time",
                    &["sub_account_id", "created_at"],
                ),
                index("order_intents", "trader_time", &["trader_id", "created_at"]),
                index("order_intents", "signal", &["signal_id"]),
                index("order_intents", "user_time", &["user_id", "created_at"]),
            ],
        )
        .await?;

        create_table_with_indexes(
            manager,
            Table::create()
                .table("executions")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("intent_id"))
                .col(int("attempt"))
                .col(time("started_at"))
                .col(time_null("finished_at"))
                .col(int_null("latency_ms"))
                .col(one_of(
                    "outcome",
                    &["accepted", "filled", "rejected", "failed", "unknown"],
                ))
                // Every broker order id the attempt produced (entry, legs), as a JSON array.
                .col(json("broker_order_ids"))
                .col(money_null(backend, "fill_price"))
                .col(int_null("filled_quantity"))
                .col(text_null("error_kind"))
                .col(text_null("failure_reason"))
                .foreign_key(&mut foreign_key(
                    "executions",
                    "intent_id",
                    "order_intents",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut foreign_key(
                    "executions",
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![
                unique_index("executions", "intent_attempt", &["intent_id", "attempt"]),
                index("executions", "user_time", &["user_id", "started_at"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &["executions", "order_intents", "signals", "webhook_log"],
        )
        .await
    }
}
