//! Table `account_rules`: one sub-account's prop-firm rule set and its trailing mark.

use sea_orm::entity::prelude::*;

use crate::decimal::DbDecimal;

/// One sub-account's prop-firm rule set.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "account_rules")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `sub_account_id` (unique).
    pub sub_account_id: Uuid,
    /// Column `rules`: `jt_domain::propfirm::RuleSet`.
    pub rules: Json,
    /// Column `high_water_mark`.
    #[sea_orm(nullable)]
    pub high_water_mark: Option<DbDecimal>,
    /// Column `mark_day`.
    #[sea_orm(nullable)]
    pub mark_day: Option<Date>,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
