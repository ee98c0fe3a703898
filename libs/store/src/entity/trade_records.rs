//! Table `trade_records`: one life of a live position on a (sub-account, contract).

use super::enums::{StoredDirection, TradeExitReason, TradeStatus};
use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// One life of a live position, built from the broker's fills.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "trade_records")]
pub struct Model {
    /// Primary key (UUID v7, or derived from the fill that opened it).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `sub_account_id`.
    pub sub_account_id: Uuid,
    /// Column `contract`.
    #[sea_orm(column_type = "Text")]
    pub contract: String,
    /// Column `direction`.
    pub direction: StoredDirection,
    /// Column `status`.
    pub status: TradeStatus,
    /// Column `quantity`: held now.
    pub quantity: i64,
    /// Column `max_quantity`: the most held at once.
    pub max_quantity: i64,
    /// Column `entered_quantity`.
    pub entered_quantity: i64,
    /// Column `exited_quantity`.
    pub exited_quantity: i64,
    /// Column `entry_value`: Σ price × quantity entered.
    #[sea_orm(column_type = "Decimal(None)")]
    pub entry_value: DbDecimal,
    /// Column `exit_value`: Σ price × quantity exited.
    #[sea_orm(column_type = "Decimal(None)")]
    pub exit_value: DbDecimal,
    /// Column `average_entry`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub average_entry: DbDecimal,
    /// Column `average_exit`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub average_exit: Option<DbDecimal>,
    /// Column `realized_pnl`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub realized_pnl: Option<DbDecimal>,
    /// Column `exit_reason`.
    #[sea_orm(nullable)]
    pub exit_reason: Option<TradeExitReason>,
    /// Column `exit_order_id`.
    #[sea_orm(column_type = "Text", nullable)]
    pub exit_order_id: Option<String>,
    /// Column `first_fill_id`.
    #[sea_orm(column_type = "Text")]
    pub first_fill_id: String,
    /// Column `last_fill_id`.
    #[sea_orm(column_type = "Text")]
    pub last_fill_id: String,
    /// Column `last_fill_at`.
    pub last_fill_at: DateTimeUtc,
    /// Column `fills`: fills applied.
    pub fills: i64,
    /// Column `opened_at`.
    pub opened_at: DateTimeUtc,
    /// Column `closed_at`.
    #[sea_orm(nullable)]
    pub closed_at: Option<DateTimeUtc>,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
