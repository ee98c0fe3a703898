//! Table `followers`: a follower of a leader.

use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// A follower of a leader.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "followers")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `leader_id`.
    pub leader_id: Uuid,
    /// Column `sub_account_id`.
    pub sub_account_id: Uuid,
    /// Column `label`.
    #[sea_orm(column_type = "Text", nullable)]
    pub label: Option<String>,
    /// Column `multiplier`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub multiplier: DbDecimal,
    /// Column `max_position_size`.
    #[sea_orm(nullable)]
    pub max_position_size: Option<i64>,
    /// Column `enabled`.
    pub enabled: bool,
    /// Column `copy_tp`.
    pub copy_tp: bool,
    /// Column `copy_sl`.
    pub copy_sl: bool,
    /// Column `daily_loss_limit`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub daily_loss_limit: Option<DbDecimal>,
    /// Column `max_drawdown`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub max_drawdown: Option<DbDecimal>,
    /// Column `locked_out`.
    pub locked_out: bool,
    /// Column `lockout_reason`.
    #[sea_orm(column_type = "Text", nullable)]
    pub lockout_reason: Option<String>,
    /// Column `closed_by_hand_stays_flat` (m20261207_000001).
    pub closed_by_hand_stays_flat: bool,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
