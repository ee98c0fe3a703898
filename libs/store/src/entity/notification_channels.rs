//! Table `notification_channels`: a user's notification channel (target encrypted).

use super::enums::ChannelKind;
use sea_orm::entity::prelude::*;

/// A user's notification channel (target encrypted).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_channels")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `kind`.
    pub kind: ChannelKind,
    /// Column `label`.
    #[sea_orm(column_type = "Text")]
    pub label: String,
    /// Column `target_enc`.
    #[sea_orm(column_type = "Blob")]
    pub target_enc: Vec<u8>,
    /// Column `events`.
    #[sea_orm(column_type = "JsonBinary")]
    pub events: Json,
    /// Column `enabled`.
    pub enabled: bool,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
    /// Column `secret_enc`: a webhook channel's signing secret, sealed (migration
    /// `m20261206_000002`; null for Discord and e-mail).
    #[sea_orm(column_type = "Blob", nullable)]
    pub secret_enc: Option<Vec<u8>>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
