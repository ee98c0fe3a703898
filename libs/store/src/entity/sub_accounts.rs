//! Table `sub_accounts`: a broker sub-account reachable through a broker account.

use sea_orm::entity::prelude::*;

/// A broker sub-account reachable through a broker account.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sub_accounts")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `broker_account_id`.
    pub broker_account_id: Uuid,
    /// Column `broker_sub_account_id`.
    #[sea_orm(column_type = "Text")]
    pub broker_sub_account_id: String,
    /// Column `name`.
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// Column `active`.
    pub active: bool,
    /// Column `enabled` (the user's switch; migration `m20261206_000001`).
    pub enabled: bool,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
