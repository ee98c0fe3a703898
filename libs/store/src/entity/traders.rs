//! Table `traders`: a trader: one sub-account following one recorder, with overrides.

use sea_orm::entity::prelude::*;

/// A trader: one sub-account following one recorder, with overrides.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "traders")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `recorder_id`.
    pub recorder_id: Uuid,
    /// Column `sub_account_id`.
    pub sub_account_id: Uuid,
    /// Column `enabled`.
    pub enabled: bool,
    /// Column `overrides`.
    #[sea_orm(column_type = "JsonBinary")]
    pub overrides: Json,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
