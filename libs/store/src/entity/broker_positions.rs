//! Table `broker_positions`: a position as the broker reports it.

use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// A position as the broker reports it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "broker_positions")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `sub_account_id`.
    pub sub_account_id: Uuid,
    /// Column `contract`.
    #[sea_orm(column_type = "Text")]
    pub contract: String,
    /// Column `net_quantity`.
    pub net_quantity: i64,
    /// Column `average_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub average_price: Option<DbDecimal>,
    /// Column `realized_pnl`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub realized_pnl: Option<DbDecimal>,
    /// Column `broker_updated_at`.
    pub broker_updated_at: DateTimeUtc,
    /// Column `recorded_at`.
    pub recorded_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
