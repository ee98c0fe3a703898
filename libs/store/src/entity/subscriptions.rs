//! Table `subscriptions`: a user's subscription, as the payment provider reports it.

use super::enums::SubscriptionStatus;
use sea_orm::entity::prelude::*;

/// A user's subscription, as the payment provider reports it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `plan_id`.
    pub plan_id: Uuid,
    /// Column `provider`.
    #[sea_orm(column_type = "Text")]
    pub provider: String,
    /// Column `provider_subscription_id`.
    #[sea_orm(column_type = "Text")]
    pub provider_subscription_id: String,
    /// Column `status`.
    pub status: SubscriptionStatus,
    /// Column `current_period_end`.
    #[sea_orm(nullable)]
    pub current_period_end: Option<DateTimeUtc>,
    /// Column `provider_updated_at`.
    pub provider_updated_at: DateTimeUtc,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
