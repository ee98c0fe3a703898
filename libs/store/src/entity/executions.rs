//! Table `executions`: one attempt to carry out an intent at the broker.

use super::enums::ExecutionOutcome;
use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// One attempt to carry out an intent at the broker.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "executions")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `intent_id`.
    pub intent_id: Uuid,
    /// Column `attempt`.
    pub attempt: i64,
    /// Column `started_at`.
    pub started_at: DateTimeUtc,
    /// Column `finished_at`.
    #[sea_orm(nullable)]
    pub finished_at: Option<DateTimeUtc>,
    /// Column `latency_ms`.
    #[sea_orm(nullable)]
    pub latency_ms: Option<i64>,
    /// Column `outcome`.
    pub outcome: ExecutionOutcome,
    /// Column `broker_order_ids`.
    #[sea_orm(column_type = "JsonBinary")]
    pub broker_order_ids: Json,
    /// Column `fill_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub fill_price: Option<DbDecimal>,
    /// Column `filled_quantity`.
    #[sea_orm(nullable)]
    pub filled_quantity: Option<i64>,
    /// Column `error_kind`.
    #[sea_orm(column_type = "Text", nullable)]
    pub error_kind: Option<String>,
    /// Column `failure_reason`.
    #[sea_orm(column_type = "Text", nullable)]
    pub failure_reason: Option<String>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
