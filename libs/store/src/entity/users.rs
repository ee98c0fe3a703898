//! Table `users`: a user: login, role and approval.

use super::enums::Role;
use sea_orm::entity::prelude::*;

/// A user: login, role and approval.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `email`.
    #[sea_orm(column_type = "Text")]
    pub email: String,
    /// Column `display_name`.
    #[sea_orm(column_type = "Text", nullable)]
    pub display_name: Option<String>,
    /// Column `password_hash`.
    #[sea_orm(column_type = "Text")]
    pub password_hash: String,
    /// Column `role`.
    pub role: Role,
    /// Column `approved`.
    pub approved: bool,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
    /// Column `last_login_at`.
    #[sea_orm(nullable)]
    pub last_login_at: Option<DateTimeUtc>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
