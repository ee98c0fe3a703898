//! Table `password_reset_tokens`: a single-use password-reset token (SHA-256), valid for one hour.

use sea_orm::entity::prelude::*;

/// A single-use password-reset token (SHA-256), valid for one hour.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "password_reset_tokens")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `token_hash`.
    #[sea_orm(column_type = "Blob")]
    pub token_hash: Vec<u8>,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `expires_at`.
    pub expires_at: DateTimeUtc,
    /// Column `used_at`.
    #[sea_orm(nullable)]
    pub used_at: Option<DateTimeUtc>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
