//! Table `fills`: a fill as the broker reports it.

use super::enums::StoredSide;
use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// A fill as the broker reports it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "fills")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `sub_account_id`.
    pub sub_account_id: Uuid,
    /// Column `broker_fill_id`.
    #[sea_orm(column_type = "Text")]
    pub broker_fill_id: String,
    /// Column `broker_order_id`.
    #[sea_orm(column_type = "Text")]
    pub broker_order_id: String,
    /// Column `client_order_id`.
    #[sea_orm(column_type = "Text", nullable)]
    pub client_order_id: Option<String>,
    /// Column `contract`.
    #[sea_orm(column_type = "Text")]
    pub contract: String,
    /// Column `side`.
    pub side: StoredSide,
    /// Column `quantity`.
    pub quantity: i64,
    /// Column `price`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub price: DbDecimal,
    /// Column `filled_at`.
    pub filled_at: DateTimeUtc,
    /// Column `trading_day`.
    pub trading_day: Date,
    /// Column `recorded_at`.
    pub recorded_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
