//! Table `news_events`: the operator's calendar of listed news (blackout windows).

use sea_orm::entity::prelude::*;

/// A listed news event.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "news_events")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `at`: the release time.
    pub at: DateTimeUtc,
    /// Column `title`.
    #[sea_orm(column_type = "Text")]
    pub title: String,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
