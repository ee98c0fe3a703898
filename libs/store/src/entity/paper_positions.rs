//! Table `paper_positions`: a recorder's paper position.

use super::enums::{PaperStatus, StoredDirection};
use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// A recorder's paper position.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "paper_positions")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `recorder_id`.
    pub recorder_id: Uuid,
    /// Column `symbol`.
    #[sea_orm(column_type = "Text")]
    pub symbol: String,
    /// Column `direction`.
    pub direction: StoredDirection,
    /// Column `quantity`.
    pub quantity: i64,
    /// Column `average_entry`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub average_entry: DbDecimal,
    /// Column `entries`.
    #[sea_orm(column_type = "JsonBinary")]
    pub entries: Json,
    /// Column `current_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub current_price: Option<DbDecimal>,
    /// Column `unrealized_pnl`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub unrealized_pnl: DbDecimal,
    /// Column `worst_unrealized_pnl`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub worst_unrealized_pnl: DbDecimal,
    /// Column `best_unrealized_pnl`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub best_unrealized_pnl: DbDecimal,
    /// Column `realized_pnl`.
    #[sea_orm(column_type = "Decimal(None)")]
    pub realized_pnl: DbDecimal,
    /// Column `exit_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub exit_price: Option<DbDecimal>,
    /// Column `status`.
    pub status: PaperStatus,
    /// Column `opened_at`.
    pub opened_at: DateTimeUtc,
    /// Column `closed_at`.
    #[sea_orm(nullable)]
    pub closed_at: Option<DateTimeUtc>,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
    /// Column `last_signal_id`: the last signal applied (redeliveries are recognised).
    #[sea_orm(nullable)]
    pub last_signal_id: Option<Uuid>,
    /// Column `engine_state`: the paper engine's whole position (JSON).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub engine_state: Option<Json>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
