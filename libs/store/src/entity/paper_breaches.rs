//! Table `paper_breaches`: a recorder's paper record past its max daily loss on one trading day.

use sea_orm::entity::prelude::*;

use crate::decimal::DbDecimal;

/// A recorder's paper record past its max daily loss on one trading day.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "paper_breaches")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `recorder_id`.
    pub recorder_id: Uuid,
    /// Column `trading_day`.
    pub trading_day: Date,
    /// Column `loss_limit`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub loss_limit: DbDecimal,
    /// Column `realized_pnl`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub realized_pnl: DbDecimal,
    /// Column `unrealized_pnl`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub unrealized_pnl: DbDecimal,
    /// Column `breached_at`.
    pub breached_at: DateTimeUtc,
    /// Column `closed_at`.
    #[sea_orm(nullable)]
    pub closed_at: Option<DateTimeUtc>,
    /// Column `details`.
    #[sea_orm(column_type = "Text", nullable)]
    pub details: Option<String>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
