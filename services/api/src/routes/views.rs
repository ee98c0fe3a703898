//! What the API answers with: the store's records as JSON, without secrets, with OpenAPI
//! schemas. Ids are UUIDs, times RFC 3339, money and prices exact decimals as strings.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use jt_store::repo::accounts::{BrokerAccount, SubAccount};
use jt_store::repo::auth::{ApiToken, User};

/// The serialized word of a stored enum (`filled`, `tradovate`, …).
pub(crate) fn word<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Login e-mail.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    /// Approved by an admin.
    pub approved: bool,
    /// Registration.
    pub created_at: DateTime<Utc>,
    /// Last login.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.0,
            email: u.email,
            display_name: u.display_name,
            role: u.role.to_string(),
            approved: u.approved,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

/// An API token as listed (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiTokenView {
    /// Id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its first characters.
    pub prefix: String,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id.0,
            name: t.name,
            prefix: t.prefix,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// Whether the platform can use a broker login.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthStatus {
    /// `ok` (a session or credentials to make one), `needs_reauth` (the broker refused: enter
    /// the credentials again), `locked` (the broker locked the login out until
    /// `locked_until`), `no_credentials`.
    pub status: String,
    /// The broker's reason, when not `ok`.
    pub reason: Option<String>,
    /// The lock-out's end.
    pub locked_until: Option<DateTime<Utc>>,
    /// The last error the broker returned, and when.
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Whether a session (access token) is stored.
    pub has_session: bool,
    /// The session's expiry.
    pub session_expires_at: Option<DateTime<Utc>>,
}

/// A broker account (credentials are never returned).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BrokerAccountView {
    /// Id.
    pub id: Uuid,
    /// The user's name for it.
    pub label: String,
    /// `tradovate`, `ninjatrader`, `projectx`, `webull` or `sim`.
    pub broker: String,
    /// `demo` or `live`.
    pub environment: String,
    /// The login name at the broker.
    pub username: Option<String>,
    /// Whether credentials are stored (they are never shown).
    pub has_credentials: bool,
    /// Refuse entries that would lack a stop or a target (prop-firm rule).
    pub require_brackets: bool,
    /// Whether the platform trades on it.
    pub enabled: bool,
    /// Authentication status.
    pub auth: AuthStatus,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<BrokerAccount> for BrokerAccountView {
    fn from(a: BrokerAccount) -> Self {
        let now = Utc::now();
        let (status, reason) = if !a.has_credentials {
            ("no_credentials", None)
        } else if a.locked_until.is_some_and(|t| t > now) {
            ("locked", a.last_error.clone())
        } else if a.needs_reauth {
            ("needs_reauth", a.reauth_reason.clone())
        } else {
            ("ok", None)
        };
        Self {
            id: a.id.0,
            label: a.label,
            broker: a.broker.as_str().to_string(),
            environment: a.environment.to_string(),
            username: a.username,
            has_credentials: a.has_credentials,
            require_brackets: a.require_brackets,
            enabled: a.enabled,
            auth: AuthStatus {
                status: status.into(),
                reason,
                locked_until: a.locked_until,
                last_error: a.last_error,
                last_error_at: a.last_error_at,
                has_session: a.has_access_token,
                session_expires_at: a.token_expires_at,
            },
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A broker sub-account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubAccountView {
    /// Id.
    pub id: Uuid,
    /// The broker account (login) it is reached through.
    pub broker_account_id: Uuid,
    /// The broker's id of it.
    pub broker_sub_account_id: String,
    /// Its name at the broker.
    pub name: String,
    /// Whether the broker still lists it.
    pub active: bool,
    /// The user's switch: a disabled sub-account gets no new entries (exits and flattens
    /// still go through).
    pub enabled: bool,
    /// First seen.
    pub created_at: DateTime<Utc>,
}

impl From<SubAccount> for SubAccountView {
    fn from(s: SubAccount) -> Self {
        Self {
            id: s.id.0,
            broker_account_id: s.broker_account.0,
            broker_sub_account_id: s.broker_sub_account_id,
            name: s.name,
            active: s.active,
            enabled: s.enabled,
            created_at: s.created_at,
        }
    }
}

/// A list page with the cursor of the next one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A decimal as the API shows it (a string: exact).
pub(crate) fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}
