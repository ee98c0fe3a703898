//! Table `kill_switches`: a kill switch (global, per user or per account).

use super::enums::KillScope;
use sea_orm::entity::prelude::*;

/// A kill switch (global, per user or per account).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "kill_switches")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `scope_key`.
    #[sea_orm(column_type = "Text")]
    pub scope_key: String,
    /// Column `scope`.
    pub scope: KillScope,
    /// Column `user_id`.
    #[sea_orm(nullable)]
    pub user_id: Option<Uuid>,
    /// Column `sub_account_id`.
    #[sea_orm(nullable)]
    pub sub_account_id: Option<Uuid>,
    /// Column `engaged`.
    pub engaged: bool,
    /// Column `reason`.
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// Column `changed_by`.
    #[sea_orm(nullable)]
    pub changed_by: Option<Uuid>,
    /// Column `changed_at`.
    pub changed_at: DateTimeUtc,
    /// Column `engagement_id`: the latest engagement (API request id, kill alert's signal id).
    #[sea_orm(nullable)]
    pub engagement_id: Option<Uuid>,
    /// Column `engagement_cause`: the cause its flatten intents name (a
    /// `jt_messages::ControlCause`, opaque here).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub engagement_cause: Option<Json>,
    /// Column `executed_at`: when the risk service had published every flatten of it.
    #[sea_orm(nullable)]
    pub executed_at: Option<DateTimeUtc>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
