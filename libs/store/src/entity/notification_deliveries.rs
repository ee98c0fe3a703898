//! Table `notification_deliveries`: one notification to deliver at least once.

use super::enums::DeliveryStatus;
use sea_orm::entity::prelude::*;

/// One notification to deliver at least once.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_deliveries")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `channel_id`.
    pub channel_id: Uuid,
    /// Column `event_kind`.
    #[sea_orm(column_type = "Text")]
    pub event_kind: String,
    /// Column `dedup_key`.
    #[sea_orm(column_type = "Text")]
    pub dedup_key: String,
    /// Column `payload`.
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    /// Column `status`.
    pub status: DeliveryStatus,
    /// Column `attempts`.
    pub attempts: i64,
    /// Column `last_error`.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Column `next_attempt_at`.
    pub next_attempt_at: DateTimeUtc,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `sent_at`.
    #[sea_orm(nullable)]
    pub sent_at: Option<DateTimeUtc>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
