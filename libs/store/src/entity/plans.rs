//! Table `plans`: a plan: limits on features and counts (NULL = unlimited).

use sea_orm::entity::prelude::*;

/// A plan: limits on features and counts (NULL = unlimited).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "plans")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `code`.
    #[sea_orm(column_type = "Text")]
    pub code: String,
    /// Column `name`.
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// Column `max_broker_accounts`.
    #[sea_orm(nullable)]
    pub max_broker_accounts: Option<i64>,
    /// Column `max_recorders`.
    #[sea_orm(nullable)]
    pub max_recorders: Option<i64>,
    /// Column `max_followers`.
    #[sea_orm(nullable)]
    pub max_followers: Option<i64>,
    /// Column `features`.
    #[sea_orm(column_type = "JsonBinary")]
    pub features: Json,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
