//! Table `signals`: a parsed signal and its outcome.

use super::enums::SignalOutcome;
use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// A parsed signal and its outcome.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "signals")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `recorder_id`.
    pub recorder_id: Uuid,
    /// Column `received_at`.
    pub received_at: DateTimeUtc,
    /// Column `alert_time`.
    #[sea_orm(nullable)]
    pub alert_time: Option<DateTimeUtc>,
    /// Column `action`.
    #[sea_orm(column_type = "Text")]
    pub action: String,
    /// Column `ticker`.
    #[sea_orm(column_type = "Text", nullable)]
    pub ticker: Option<String>,
    /// Column `quantity`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub quantity: Option<DbDecimal>,
    /// Column `price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub price: Option<DbDecimal>,
    /// Column `market_position`.
    #[sea_orm(column_type = "Text", nullable)]
    pub market_position: Option<String>,
    /// Column `prev_market_position`.
    #[sea_orm(column_type = "Text", nullable)]
    pub prev_market_position: Option<String>,
    /// Column `payload`.
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    /// Column `outcome`.
    pub outcome: SignalOutcome,
    /// Column `outcome_reason`.
    #[sea_orm(column_type = "Text", nullable)]
    pub outcome_reason: Option<String>,
    /// Column `age_ms`.
    #[sea_orm(nullable)]
    pub age_ms: Option<i64>,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
    /// Column `body_digest`: token and body of a signal without `time`, for the fan-out's
    /// duplicate check (`m20261207_000010`).
    #[sea_orm(column_type = "Text", nullable)]
    pub body_digest: Option<String>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
