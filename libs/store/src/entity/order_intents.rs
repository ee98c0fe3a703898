//! Table `order_intents`: an order intent: what one account must do, fully resolved.

use super::enums::{IntentKind, IntentSource, IntentStatus, StoredSide};
use crate::decimal::DbDecimal;
use sea_orm::entity::prelude::*;

/// An order intent: what one account must do, fully resolved.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "order_intents")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `sub_account_id`.
    pub sub_account_id: Uuid,
    /// Column `trader_id`.
    #[sea_orm(nullable)]
    pub trader_id: Option<Uuid>,
    /// Column `signal_id`.
    #[sea_orm(nullable)]
    pub signal_id: Option<Uuid>,
    /// Column `source`.
    pub source: IntentSource,
    /// Column `idempotency_key`.
    #[sea_orm(column_type = "Text")]
    pub idempotency_key: String,
    /// Column `kind`.
    pub kind: IntentKind,
    /// Column `symbol`.
    #[sea_orm(column_type = "Text")]
    pub symbol: String,
    /// Column `contract`.
    #[sea_orm(column_type = "Text", nullable)]
    pub contract: Option<String>,
    /// Column `side`.
    #[sea_orm(nullable)]
    pub side: Option<StoredSide>,
    /// Column `quantity`.
    pub quantity: i64,
    /// Column `filled_quantity`.
    pub filled_quantity: i64,
    /// Column `average_fill_price`.
    #[sea_orm(column_type = "Decimal(None)", nullable)]
    pub average_fill_price: Option<DbDecimal>,
    /// Column `settings`.
    #[sea_orm(column_type = "JsonBinary")]
    pub settings: Json,
    /// Column `plan`.
    #[sea_orm(column_type = "JsonBinary")]
    pub plan: Json,
    /// Column `status`.
    pub status: IntentStatus,
    /// Column `status_reason`.
    #[sea_orm(column_type = "Text", nullable)]
    pub status_reason: Option<String>,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
    /// Column `sent_at`.
    #[sea_orm(nullable)]
    pub sent_at: Option<DateTimeUtc>,
    /// Column `completed_at`.
    #[sea_orm(nullable)]
    pub completed_at: Option<DateTimeUtc>,
    /// Column `resting_entry`: the intent placed a resting (limit, stop) entry.
    pub resting_entry: bool,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
