//! Table `login_sessions`: a login session, stored as the SHA-256 of its token.

use sea_orm::entity::prelude::*;

/// A login session, stored as the SHA-256 of its token.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "login_sessions")]
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
    /// Column `last_seen_at`.
    pub last_seen_at: DateTimeUtc,
    /// Column `revoked_at`.
    #[sea_orm(nullable)]
    pub revoked_at: Option<DateTimeUtc>,
    /// Column `user_agent`.
    #[sea_orm(column_type = "Text", nullable)]
    pub user_agent: Option<String>,
    /// Column `source_ip`.
    #[sea_orm(column_type = "Text", nullable)]
    pub source_ip: Option<String>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
