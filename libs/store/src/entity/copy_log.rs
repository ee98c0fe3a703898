//! Table `copy_log`: one copy from a leader to a follower.

use super::enums::{CopyStatus, CopyTrigger, StoredSide};
use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// One copy from a leader to a follower.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "copy_log")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `leader_id`.
    #[sea_orm(nullable)]
    pub leader_id: Option<Uuid>,
    /// Column `follower_id`.
    #[sea_orm(nullable)]
    pub follower_id: Option<Uuid>,
    /// Column `trigger`.
    pub trigger: CopyTrigger,
    /// Column `leader_fill_id`.
    #[sea_orm(column_type = "Text", nullable)]
    pub leader_fill_id: Option<String>,
    /// Column `leader_order_id`.
    #[sea_orm(column_type = "Text", nullable)]
    pub leader_order_id: Option<String>,
    /// Column `follower_intent_id`.
    #[sea_orm(nullable)]
    pub follower_intent_id: Option<Uuid>,
    /// Column `follower_order_id`.
    #[sea_orm(column_type = "Text", nullable)]
    pub follower_order_id: Option<String>,
    /// Column `leader_symbol`.
    #[sea_orm(column_type = "Text")]
    pub leader_symbol: String,
    /// Column `follower_symbol`.
    #[sea_orm(column_type = "Text")]
    pub follower_symbol: String,
    /// Column `leader_side`.
    #[sea_orm(nullable)]
    pub leader_side: Option<StoredSide>,
    /// Column `follower_side`.
    #[sea_orm(nullable)]
    pub follower_side: Option<StoredSide>,
    /// Column `leader_quantity`.
    pub leader_quantity: i64,
    /// Column `follower_quantity`.
    pub follower_quantity: i64,
    /// Column `leader_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub leader_price: Option<DbDecimal>,
    /// Column `follower_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub follower_price: Option<DbDecimal>,
    /// Column `status`.
    pub status: CopyStatus,
    /// Column `error`.
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// Column `latency_ms`.
    #[sea_orm(nullable)]
    pub latency_ms: Option<i64>,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
