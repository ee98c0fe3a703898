//! Table `contract_mappings`: a follower's contract mapping (NQ → MNQ ×10).

use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// A follower's contract mapping (NQ → MNQ ×10).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "contract_mappings")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `follower_id`.
    pub follower_id: Uuid,
    /// Column `source_root`.
    #[sea_orm(column_type = "Text")]
    pub source_root: String,
    /// Column `target_root`.
    #[sea_orm(column_type = "Text")]
    pub target_root: String,
    /// Column `quantity_ratio`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub quantity_ratio: DbDecimal,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
