//! Table `follower_peaks`: a follower's equity peak since it started following or was last
//! unlocked (its max drawdown is measured from it). The row's id names the tracking: an unlock
//! replaces the row, so a write meant for the old tracking matches nothing.

use sea_orm::entity::prelude::*;

use crate::decimal::DbDecimal;

/// One follower's equity peak.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "follower_peaks")]
pub struct Model {
    /// Primary key (UUID v7): the tracking.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `follower_id` (unique).
    pub follower_id: Uuid,
    /// Column `peak`: the highest equity seen, once one is known.
    #[sea_orm(nullable)]
    pub peak: Option<DbDecimal>,
    /// Column `peak_at`.
    #[sea_orm(nullable)]
    pub peak_at: Option<DateTimeUtc>,
    /// Column `started_at`.
    pub started_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
