//! Prop-firm rules (DOMAIN.md §14): `account_rules`, one rule set per sub-account (the rules as
//! JSON — `jt_domain::propfirm::RuleSet`, values are data — with the trailing drawdown's
//! high-water mark the risk service keeps), and `news_events`, the operator's calendar of
//! listed news that blackout windows are built from.

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
                .table("account_rules")
                .col(id())
                .col(uuid("user_id"))
                .col(uuid("sub_account_id"))
                .col(json("rules"))
                // The trailing drawdown's mark (highest equity or end-of-day balance seen).
                .col(money_null(backend, "high_water_mark"))
                // The trading day whose close last moved an end-of-day mark.
                .col(date_null("mark_day"))
                .col(time("updated_at"))
                .foreign_key(&mut foreign_key(
                    "account_rules",
                    "user_id",
                    "users",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut foreign_key(
                    "account_rules",
                    "sub_account_id",
                    "sub_accounts",
                    "id",
                    ForeignKeyAction::Cascade,
                ))
                .take(),
            vec![unique_index(
                "account_rules",
                "sub_account",
                &["sub_account_id"],
            )],
        )
        .await?;
        create_table_with_indexes(
            manager,
            Table::create()
                .table("news_events")
                .col(id())
                .col(time("at"))
                .col(text("title"))
                .col(time("created_at"))
                .take(),
            vec![index("news_events", "at", &["at"])],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["news_events", "account_rules"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
