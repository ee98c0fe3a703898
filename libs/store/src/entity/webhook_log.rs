//! Table `webhook_log`: one webhook request as received.

use sea_orm::entity::prelude::*;

/// One webhook request as received.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_log")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `received_at`.
    pub received_at: DateTimeUtc,
    /// Column `recorder_id`.
    #[sea_orm(nullable)]
    pub recorder_id: Option<Uuid>,
    /// Column `source_ip`.
    #[sea_orm(column_type = "Text", nullable)]
    pub source_ip: Option<String>,
    /// Column `body`.
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// Column `body_truncated`.
    pub body_truncated: bool,
    /// Column `status_code`.
    pub status_code: i64,
    /// Column `result`.
    #[sea_orm(column_type = "Text")]
    pub result: String,
    /// Column `reason`.
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// Column `signal_id`.
    #[sea_orm(nullable)]
    pub signal_id: Option<Uuid>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
