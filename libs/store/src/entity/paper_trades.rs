//! Table `paper_trades`: a recorder's paper trade.

use super::enums::{ExitReason, PaperStatus, StoredDirection};
use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// A recorder's paper trade.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "paper_trades")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `recorder_id`.
    pub recorder_id: Uuid,
    /// Column `paper_position_id`.
    #[sea_orm(nullable)]
    pub paper_position_id: Option<Uuid>,
    /// Column `signal_id`.
    #[sea_orm(nullable)]
    pub signal_id: Option<Uuid>,
    /// Column `symbol`.
    #[sea_orm(column_type = "Text")]
    pub symbol: String,
    /// Column `direction`.
    pub direction: StoredDirection,
    /// Column `quantity`.
    pub quantity: i64,
    /// Column `entry_price`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub entry_price: DbDecimal,
    /// Column `entry_time`.
    pub entry_time: DateTimeUtc,
    /// Column `exit_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub exit_price: Option<DbDecimal>,
    /// Column `exit_time`.
    #[sea_orm(nullable)]
    pub exit_time: Option<DateTimeUtc>,
    /// Column `exit_reason`.
    #[sea_orm(nullable)]
    pub exit_reason: Option<ExitReason>,
    /// Column `tp_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub tp_price: Option<DbDecimal>,
    /// Column `sl_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub sl_price: Option<DbDecimal>,
    /// Column `max_favorable_excursion`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub max_favorable_excursion: DbDecimal,
    /// Column `max_adverse_excursion`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub max_adverse_excursion: DbDecimal,
    /// Column `realized_pnl`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub realized_pnl: Option<DbDecimal>,
    /// Column `realized_ticks`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub realized_ticks: Option<DbDecimal>,
    /// Column `commission`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub commission: DbDecimal,
    /// Column `status`.
    pub status: PaperStatus,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
