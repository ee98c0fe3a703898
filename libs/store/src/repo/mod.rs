//! Repositories: the only way services read and write records.
//!
//! Ownership is part of every signature: a read of user-owned data takes a [`ReadScope`]
//! (the owner's [`UserId`], or an admin's audited [`AdminView`]), and a write takes the owner's
//! `UserId`; every query filters by it, so a record of another user is simply "not found".
//! Admin actions go through [`crate::AdminScope`] and are written to the audit log. The few
//! platform-wide reads that daemons need (every active account, tokens about to expire) are
//! on the explicitly named [`crate::repo::system::System`] path.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, UpdateMany};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::Store;
use crate::error::{StoreError, StoreResult};
use crate::ids::UserId;

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod broker;
pub mod broker_sessions;
pub mod copy;
pub mod dashboard;
pub mod follower_peaks;
pub mod intents;
pub mod notifications;
pub mod paper;
pub mod paper_risk;
pub mod plans;
pub mod recorders;
pub mod risk;
pub mod rules;
pub mod signals;
pub mod system;
pub mod traders;
pub mod trades;
pub mod webhooks;

/// Whose records a read may see: the owner themself, or an admin viewing as that owner
/// (read-only, audited). Writes take a plain [`UserId`], which an [`AdminView`] is not.
pub trait ReadScope: Copy + Send + Sync {
    /// The user whose records are visible.
    fn owner(&self) -> UserId;
}

impl ReadScope for UserId {
    fn owner(&self) -> UserId {
        *self
    }
}

/// An admin viewing the platform as one user: accepted by reads, refused by writes (by type).
/// Made only by [`crate::repo::admin::Admin::view_as`], which writes the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminView {
    pub(crate) admin: UserId,
    pub(crate) user: UserId,
}

impl AdminView {
    /// The admin who is viewing.
    #[must_use]
    pub fn admin(&self) -> UserId {
        self.admin
    }
}

impl ReadScope for AdminView {
    fn owner(&self) -> UserId {
        self.user
    }
}

/// The one row of a `SELECT` that answers one (scalar subqueries, a join from a one-row
/// select) — the executor's combined reads: a database error is named `what`, no row is
/// [`StoreError::NotFound`] of `what` and `key`.
pub(crate) async fn one_row(
    store: &Store,
    statement: &sea_orm::sea_query::SelectStatement,
    what: &'static str,
    key: impl ToString,
) -> StoreResult<sea_orm::QueryResult> {
    use sea_orm::ConnectionTrait as _;
    store
        .db()
        .query_one(statement)
        .await
        .map_err(|e| StoreError::db(what, e))?
        .ok_or_else(|| StoreError::not_found(what, key))
}

/// Now, at the precision both engines keep (microseconds), so what is written reads back
/// equal.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A caller's instant at the stored precision.
pub(crate) fn at(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// A value as stored JSON, with NUL removed from its strings (PostgreSQL's `jsonb` refuses it:
/// see [`crate::text`]).
pub(crate) fn to_json<T: Serialize>(what: &'static str, v: &T) -> StoreResult<serde_json::Value> {
    serde_json::to_value(v)
        .map(crate::text::strip_nul_json_owned)
        .map_err(|e| StoreError::invalid(what, e.to_string()))
}

pub(crate) fn from_json<T: DeserializeOwned>(
    entity: &'static str,
    id: impl ToString,
    v: serde_json::Value,
) -> StoreResult<T> {
    serde_json::from_value(v).map_err(|e| StoreError::corrupt(entity, id, e))
}

/// [`from_json`] for values another build may have written with fields this one does not
/// know yet (settings, overrides): those fields are dropped ([`jt_domain::tolerant`]).
pub(crate) fn from_json_tolerant<T: DeserializeOwned>(
    entity: &'static str,
    id: impl ToString,
    v: serde_json::Value,
) -> StoreResult<T> {
    jt_domain::tolerant::from_value(v).map_err(|e| StoreError::corrupt(entity, id, e))
}

pub(crate) fn to_u32(entity: &'static str, id: impl ToString, v: i64) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::corrupt(entity, id, format!("count {v} out of range")))
}

/// Trims a required text input, refusing an empty one.
pub(crate) fn required_text(what: &'static str, v: &str) -> StoreResult<String> {
    let v = crate::text::strip_nul(v);
    let t = v.trim();
    if t.is_empty() {
        return Err(StoreError::invalid(what, "must not be empty"));
    }
    Ok(t.to_string())
}

/// Trims an optional text input; blank means none.
pub(crate) fn optional_text(v: Option<&str>) -> Option<String> {
    v.map(crate::text::strip_nul)
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A table whose rows belong to a user through `user_id` and are keyed by `id`: the owner
/// filter of single-row updates and deletes is written once, here.
pub(crate) trait Owned: EntityTrait {
    /// The record's name in errors.
    const NAME: &'static str;
    /// The `id` column.
    fn id_col() -> Self::Column;
    /// The `user_id` column.
    fn user_col() -> Self::Column;
}

macro_rules! owned {
    ($($table:ident => $name:literal),+ $(,)?) => {$(
        impl Owned for crate::entity::$table::Entity {
            const NAME: &'static str = $name;
            fn id_col() -> Self::Column {
                crate::entity::$table::Column::Id
            }
            fn user_col() -> Self::Column {
                crate::entity::$table::Column::UserId
            }
        }
    )+};
}

owned! {
    api_tokens => "api token",
    broker_accounts => "broker account",
    copy_log => "copy log",
    followers => "follower",
    leaders => "leader",
    login_sessions => "session",
    notification_channels => "notification channel",
    notification_deliveries => "notification delivery",
    order_intents => "intent",
    recorders => "recorder",
    risk_breaches => "risk breach",
    signals => "signal",
    traders => "trader",
}

/// Runs `q` on the row `id` of `owner`; [`StoreError::NotFound`] when the owner has no such
/// row (or `q`'s own filters exclude it).
pub(crate) async fn update_owned<E: Owned>(
    store: &Store,
    q: UpdateMany<E>,
    id: impl Into<Uuid>,
    owner: UserId,
) -> StoreResult<()> {
    let id = id.into();
    let r = q
        .filter(E::id_col().eq(id))
        .filter(E::user_col().eq(owner.0))
        .exec(store.db())
        .await
        .map_err(|e| StoreError::db(E::NAME, e))?;
    if r.rows_affected == 0 {
        return Err(StoreError::not_found(E::NAME, id));
    }
    Ok(())
}

/// Deletes the row `id` of `owner` (dependent rows follow the foreign keys);
/// [`StoreError::NotFound`] when the owner has no such row.
pub(crate) async fn delete_owned<E: Owned>(
    store: &Store,
    id: impl Into<Uuid>,
    owner: UserId,
) -> StoreResult<()> {
    let id = id.into();
    let r = E::delete_many()
        .filter(E::id_col().eq(id))
        .filter(E::user_col().eq(owner.0))
        .exec(store.db())
        .await
        .map_err(|e| StoreError::db(E::NAME, e))?;
    if r.rows_affected == 0 {
        return Err(StoreError::not_found(E::NAME, id));
    }
    Ok(())
}
