//! Table `leaders`: a copy-trading leader sub-account.

use sea_orm::entity::prelude::*;

/// A copy-trading leader sub-account.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "leaders")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `sub_account_id`.
    pub sub_account_id: Uuid,
    /// Column `label`.
    #[sea_orm(column_type = "Text", nullable)]
    pub label: Option<String>,
    /// Column `enabled`.
    pub enabled: bool,
    /// Column `auto_copy`.
    pub auto_copy: bool,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
