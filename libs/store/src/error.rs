//! The store's error: what went wrong and what the caller should do about it.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

use crate::secret::SecretError;

/// A repository call that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row for this owner (or at all: the two are deliberately indistinguishable).
    #[error("{entity} {id} not found")]
    NotFound {
        /// The kind of record.
        entity: &'static str,
        /// Its id or key.
        id: String,
    },
    /// A unique value is already taken (e-mail, name, broker id).
    #[error("{entity}: {detail}")]
    Conflict {
        /// The kind of record.
        entity: &'static str,
        /// What collides.
        detail: String,
    },
    /// The caller's input was refused (a setting out of range, an empty name…).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was refused.
        what: &'static str,
        /// Why, in words a person can act on.
        reason: String,
    },
    /// An intent cannot move from its current state to the requested one.
    #[error("intent {intent}: cannot go from {from} to {to}")]
    InvalidTransition {
        /// The intent.
        intent: crate::ids::IntentId,
        /// Its current state.
        from: crate::entity::IntentStatus,
        /// The refused target state.
        to: crate::entity::IntentStatus,
    },
    /// The caller lacks the role for an admin path.
    #[error("user {0} is not an admin")]
    NotAdmin(crate::ids::UserId),
    /// A stored value could not be decoded (the row was written by something else than the
    /// repositories, or a setting was renamed without a data migration).
    #[error("stored {entity} {id} is unreadable: {reason}")]
    Corrupt {
        /// The kind of record.
        entity: &'static str,
        /// Its id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A secret could not be sealed or opened.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The database cannot be reached right now: retry later (nak the message, report not
    /// ready); nothing was changed.
    #[error("database unavailable: {0}")]
    Unavailable(DbErr),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(DbErr),
}

impl StoreError {
    /// Whether retrying the same call later may succeed (the database was unreachable).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    pub(crate) fn not_found(entity: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(entity: &'static str, id: impl ToString, reason: impl ToString) -> Self {
        StoreError::Corrupt {
            entity,
            id: id.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Maps a database error, naming `entity` for constraint violations.
    pub(crate) fn db(entity: &'static str, err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => {
                return StoreError::Conflict { entity, detail };
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                // A reference to a row that does not exist, or not for this owner (composite
                // (id, user_id) keys): to the caller, the referenced record is not found.
                return StoreError::NotFound {
                    entity,
                    id: "(a record it refers to)".to_string(),
                };
            }
            _ => {}
        }
        if is_connection_error(&err) {
            StoreError::Unavailable(err)
        } else {
            StoreError::Database(err)
        }
    }
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        StoreError::db("record", err)
    }
}

/// Whether `err` is a foreign key violation (a referenced row is missing).
pub(crate) fn is_foreign_key_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// Whether `err` means "the database is not reachable", as opposed to a refused statement.
pub(crate) fn is_connection_error(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::Protocol(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed => true,
                Sqlx::Database(db) => db.code().is_some_and(|c| is_transient_code(&c)),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Server error codes that mean "not now" rather than "never": PostgreSQL connection
/// exceptions (class 08), administrator/crash shutdown and "cannot connect now" (57P01–57P03,
/// a restarting server), too many connections (53300); SQLite busy/locked after the busy
/// timeout (5, 6 and their extended codes).
fn is_transient_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
        || matches!(code, "5" | "6" | "261" | "262" | "517")
}

/// Shorthand for repository results.
pub type StoreResult<T> = Result<T, StoreError>;
