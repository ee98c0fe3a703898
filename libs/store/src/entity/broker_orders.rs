//! Table `broker_orders`: an order as the broker reports it.

use super::enums::{BrokerOrderStatus, BrokerOrderType, OrderRole, StoredSide};
use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// An order as the broker reports it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "broker_orders")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `sub_account_id`.
    pub sub_account_id: Uuid,
    /// Column `broker_order_id`.
    #[sea_orm(column_type = "Text")]
    pub broker_order_id: String,
    /// Column `client_order_id`.
    #[sea_orm(column_type = "Text", nullable)]
    pub client_order_id: Option<String>,
    /// Column `intent_id`.
    #[sea_orm(nullable)]
    pub intent_id: Option<Uuid>,
    /// Column `contract`.
    #[sea_orm(column_type = "Text")]
    pub contract: String,
    /// Column `side`.
    pub side: StoredSide,
    /// Column `order_type`.
    pub order_type: BrokerOrderType,
    /// Column `role`.
    #[sea_orm(nullable)]
    pub role: Option<OrderRole>,
    /// Column `quantity`.
    pub quantity: i64,
    /// Column `filled_quantity`.
    pub filled_quantity: i64,
    /// Column `limit_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub limit_price: Option<DbDecimal>,
    /// Column `stop_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub stop_price: Option<DbDecimal>,
    /// Column `average_fill_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub average_fill_price: Option<DbDecimal>,
    /// Column `status`.
    pub status: BrokerOrderStatus,
    /// Column `status_reason`.
    #[sea_orm(column_type = "Text", nullable)]
    pub status_reason: Option<String>,
    /// Column `broker_updated_at`.
    pub broker_updated_at: DateTimeUtc,
    /// Column `recorded_at`.
    pub recorded_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
