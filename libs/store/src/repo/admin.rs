//! The admin path: an [`AdminScope`] proves the caller is an admin (checked against the
//! database when it is made), and every action through it is written to the audit log in the
//! same transaction as the action.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use super::AdminView;
use super::auth::User;
use super::now;
use crate::Store;
use crate::entity::{Role, audit_log, users};
use crate::error::{StoreError, StoreResult};
use crate::ids::UserId;

/// Proof that the caller is an admin; made only by [`Store::admin_scope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminScope {
    admin: UserId,
    email: String,
}

impl AdminScope {
    /// The admin.
    #[must_use]
    pub fn admin(&self) -> UserId {
        self.admin
    }
}

/// One audited admin action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (detached if that admin was deleted).
    pub actor: Option<UserId>,
    /// Their e-mail at the time.
    pub actor_email: String,
    /// What (`user.approve`, `user.delete`, `user.view_as`…).
    pub action: String,
    /// Kind of record acted on.
    pub target_type: String,
    /// Its id.
    pub target_id: Option<String>,
    /// The user it belongs to.
    pub target_user: Option<UserId>,
    /// Details.
    pub details: serde_json::Value,
}

impl From<audit_log::Model> for AuditEntry {
    fn from(m: audit_log::Model) -> Self {
        Self {
            at: m.at,
            actor: m.actor_user_id.map(UserId),
            actor_email: m.actor_email,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            target_user: m.target_user_id.map(UserId),
            details: m.details,
        }
    }
}

/// What an audit row says.
pub(crate) struct AuditRecord<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub target_user: Option<UserId>,
    pub details: serde_json::Value,
}

pub(crate) async fn write_audit<C: ConnectionTrait>(
    db: &C,
    scope: &AdminScope,
    r: AuditRecord<'_>,
) -> StoreResult<()> {
    audit_log::Entity::insert(
        audit_log::Model {
            id: Uuid::now_v7(),
            at: now(),
            actor_user_id: Some(scope.admin.0),
            actor_email: scope.email.clone(),
            action: r.action.to_string(),
            target_type: r.target_type.to_string(),
            target_id: r.target_id,
            target_user_id: r.target_user.map(|u| u.0),
            details: r.details,
        }
        .into_active_model(),
    )
    .exec_without_returning(db)
    .await
    .map_err(|e| StoreError::db("audit log", e))?;
    Ok(())
}

/// Admin actions, each audited.
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    pub(crate) store: &'a Store,
    pub(crate) scope: &'a AdminScope,
}

impl Admin<'_> {
    /// Users, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_users(&self, limit: u64, offset: u64) -> StoreResult<Vec<User>> {
        Ok(users::Entity::find()
            .order_by_desc(users::Column::CreatedAt)
            .limit(limit)
            .offset(offset)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// Creates a user (approved: an admin made it), audited in the same transaction.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a malformed e-mail or a short password;
    /// [`StoreError::Conflict`] when the e-mail is taken.
    pub async fn create_user(&self, new: super::auth::NewUser) -> StoreResult<User> {
        let model = super::auth::user_row(new).await?;
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        super::auth::insert_user(&txn, &model).await?;
        write_audit(
            &txn,
            self.scope,
            AuditRecord {
                action: "user.create",
                target_type: "user",
                target_id: Some(model.id.to_string()),
                target_user: Some(UserId(model.id)),
                details: serde_json::json!({ "email": model.email, "role": model.role }),
            },
        )
        .await?;
        txn.commit().await.map_err(StoreError::from)?;
        Ok(model.into())
    }

    /// One user.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn user(&self, user: UserId) -> StoreResult<User> {
        users::Entity::find_by_id(user.0)
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?
            .map(User::from)
            .ok_or_else(|| StoreError::not_found("user", user))
    }

    /// Approves (or un-approves) a user.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn set_approved(&self, user: UserId, approved: bool) -> StoreResult<()> {
        self.update_user(
            user,
            "user.approve",
            serde_json::json!({ "approved": approved }),
            |q| q.col_expr(users::Column::Approved, Expr::value(approved)),
        )
        .await
    }

    /// Changes a user's role. An admin cannot remove their own admin role (so the platform
    /// never locks itself out by accident).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for self-demotion; [`StoreError::NotFound`].
    pub async fn set_role(&self, user: UserId, role: Role) -> StoreResult<()> {
        if user == self.scope.admin && role != Role::Admin {
            return Err(StoreError::invalid(
                "role",
                "an admin cannot remove their own admin role",
            ));
        }
        self.update_user(
            user,
            "user.set_role",
            serde_json::json!({ "role": role }),
            |q| q.col_expr(users::Column::Role, Expr::value(role)),
        )
        .await
    }

    /// Deletes a user and, through the foreign keys, every record that belongs to them;
    /// audit rows that name them are kept, detached.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for deleting oneself; [`StoreError::NotFound`].
    pub async fn delete_user(&self, user: UserId) -> StoreResult<()> {
        if user == self.scope.admin {
            return Err(StoreError::invalid(
                "user",
                "an admin cannot delete their own account",
            ));
        }
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        let victim = users::Entity::find_by_id(user.0)
            .one(&txn)
            .await
            .map_err(|e| StoreError::db("user", e))?
            .ok_or_else(|| StoreError::not_found("user", user))?;
        // Audit first: the row names the user while they still exist, then is detached by
        // the delete (ON DELETE SET NULL).
        write_audit(
            &txn,
            self.scope,
            AuditRecord {
                action: "user.delete",
                target_type: "user",
                target_id: Some(user.to_string()),
                target_user: Some(user),
                details: serde_json::json!({ "email": victim.email }),
            },
        )
        .await?;
        users::Entity::delete_by_id(user.0)
            .exec(&txn)
            .await
            .map_err(|e| StoreError::db("user", e))?;
        txn.commit().await.map_err(StoreError::from)
    }

    /// Views the platform as `user`, read-only: the returned [`AdminView`] is accepted by
    /// every read and by no write. Audited.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn view_as(&self, user: UserId) -> StoreResult<AdminView> {
        users::Entity::find_by_id(user.0)
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("user", e))?
            .ok_or_else(|| StoreError::not_found("user", user))?;
        write_audit(
            self.store.db(),
            self.scope,
            AuditRecord {
                action: "user.view_as",
                target_type: "user",
                target_id: Some(user.to_string()),
                target_user: Some(user),
                details: serde_json::json!({}),
            },
        )
        .await?;
        Ok(AdminView {
            admin: self.scope.admin,
            user,
        })
    }

    /// Audits an admin action that happens outside the store (a dead letter retried on the
    /// bus), after it happened.
    ///
    /// # Errors
    /// Database errors.
    pub async fn record(
        &self,
        action: &str,
        target_type: &str,
        target_id: Option<String>,
        details: serde_json::Value,
    ) -> StoreResult<()> {
        write_audit(
            self.store.db(),
            self.scope,
            AuditRecord {
                action,
                target_type,
                target_id,
                target_user: None,
                details,
            },
        )
        .await
    }

    /// The audit log, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn audit_log(&self, limit: u64, offset: u64) -> StoreResult<Vec<AuditEntry>> {
        Ok(audit_log::Entity::find()
            .order_by_desc(audit_log::Column::At)
            .order_by_desc(audit_log::Column::Id)
            .limit(limit)
            .offset(offset)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("audit log", e))?
            .into_iter()
            .map(AuditEntry::from)
            .collect())
    }

    async fn update_user(
        &self,
        user: UserId,
        action: &str,
        details: serde_json::Value,
        set: impl FnOnce(sea_orm::UpdateMany<users::Entity>) -> sea_orm::UpdateMany<users::Entity>,
    ) -> StoreResult<()> {
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        let r = set(users::Entity::update_many())
            .col_expr(users::Column::UpdatedAt, Expr::value(now()))
            .filter(users::Column::Id.eq(user.0))
            .exec(&txn)
            .await
            .map_err(|e| StoreError::db("user", e))?;
        if r.rows_affected == 0 {
            return Err(StoreError::not_found("user", user));
        }
        write_audit(
            &txn,
            self.scope,
            AuditRecord {
                action,
                target_type: "user",
                target_id: Some(user.to_string()),
                target_user: Some(user),
                details,
            },
        )
        .await?;
        txn.commit().await.map_err(StoreError::from)
    }
}

impl Store {
    /// Proves that `user` is an admin (read from the database now, not from a cached role).
    ///
    /// # Errors
    /// [`StoreError::NotAdmin`] for a user without the admin role; [`StoreError::NotFound`].
    pub async fn admin_scope(&self, user: UserId) -> StoreResult<AdminScope> {
        let m = users::Entity::find_by_id(user.0)
            .one(self.db())
            .await
            .map_err(|e| StoreError::db("user", e))?
            .ok_or_else(|| StoreError::not_found("user", user))?;
        if m.role != Role::Admin {
            return Err(StoreError::NotAdmin(user));
        }
        Ok(AdminScope {
            admin: user,
            email: m.email,
        })
    }

    /// Admin actions for a proven admin.
    #[must_use]
    pub fn admin<'a>(&'a self, scope: &'a AdminScope) -> Admin<'a> {
        Admin { store: self, scope }
    }
}
