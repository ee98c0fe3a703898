//! Columns on `broker_accounts` that let every process using one broker login share its
//! session (`docs/brokers.md`, "Sessions across processes"; `docs/store.md`):
//!
//! - `md_access_token_enc`: the market-data token, sealed like `access_token_enc`;
//! - `token_obtained_at`: when the stored token was obtained (its age: sockets close before
//!   70 minutes, and an older token never replaces a newer one);
//! - `broker_user_id`: the broker's user id from the login answer;
//! - `login_claimed_by` / `login_claimed_until`: the renewal/login claim. A process takes it
//!   with one conditional `UPDATE` (free, lapsed, or already its own), so two processes that
//!   both find no live token never both log in; a crashed holder's claim lapses by itself.

use sea_orm_migration::prelude::*;

use crate::columns::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "broker_accounts";

fn added() -> Vec<ColumnDef> {
    vec![
        bytes_null("md_access_token_enc"),
        time_null("token_obtained_at"),
        text_null("broker_user_id"),
        text_null("login_claimed_by"),
        time_null("login_claimed_until"),
    ]
}

// The trait (async_trait) elides SchemaManager's lifetime; the impl must match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for mut column in added() {
            manager
                .alter_table(Table::alter().table(TABLE).add_column(&mut column).take())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in added().iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(TABLE)
                        .drop_column(column.get_column_name())
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
