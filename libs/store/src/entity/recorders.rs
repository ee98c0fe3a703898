//! Table `recorders`: a recorder: a signal source with its settings and webhook token.

use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// A recorder: a signal source with its settings and webhook token.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "recorders")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `name`.
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// Column `symbol`.
    #[sea_orm(column_type = "Text", nullable)]
    pub symbol: Option<String>,
    /// Column `webhook_token_hash`.
    #[sea_orm(column_type = "Blob")]
    pub webhook_token_hash: Vec<u8>,
    /// Column `webhook_token_enc`.
    #[sea_orm(column_type = "Blob")]
    pub webhook_token_enc: Vec<u8>,
    /// Column `settings`.
    #[sea_orm(column_type = "JsonBinary")]
    pub settings: Json,
    /// Column `commission_per_contract`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub commission_per_contract: DbDecimal,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
