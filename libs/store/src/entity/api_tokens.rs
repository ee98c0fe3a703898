//! Table `api_tokens`: an API token, stored as the SHA-256 of the token.

use sea_orm::entity::prelude::*;

/// An API token, stored as the SHA-256 of the token.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
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
    /// Column `name`.
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// Column `token_prefix`.
    #[sea_orm(column_type = "Text")]
    pub token_prefix: String,
    /// Column `expires_at`.
    #[sea_orm(nullable)]
    pub expires_at: Option<DateTimeUtc>,
    /// Column `last_used_at`.
    #[sea_orm(nullable)]
    pub last_used_at: Option<DateTimeUtc>,
    /// Column `revoked_at`.
    #[sea_orm(nullable)]
    pub revoked_at: Option<DateTimeUtc>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
