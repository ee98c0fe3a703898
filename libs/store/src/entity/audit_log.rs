//! Table `audit_log`: an audited admin action.

use sea_orm::entity::prelude::*;

/// An audited admin action.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `at`.
    pub at: DateTimeUtc,
    /// Column `actor_user_id`.
    #[sea_orm(nullable)]
    pub actor_user_id: Option<Uuid>,
    /// Column `actor_email`.
    #[sea_orm(column_type = "Text")]
    pub actor_email: String,
    /// Column `action`.
    #[sea_orm(column_type = "Text")]
    pub action: String,
    /// Column `target_type`.
    #[sea_orm(column_type = "Text")]
    pub target_type: String,
    /// Column `target_id`.
    #[sea_orm(column_type = "Text", nullable)]
    pub target_id: Option<String>,
    /// Column `target_user_id`.
    #[sea_orm(nullable)]
    pub target_user_id: Option<Uuid>,
    /// Column `details`.
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
