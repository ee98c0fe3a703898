//! Table `broker_accounts`: a broker account: one set of broker credentials (encrypted) and its health.

use jt_broker::BrokerKind;

use super::enums::Environment;
use sea_orm::entity::prelude::*;

/// A broker account: one set of broker credentials (encrypted) and its health.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "broker_accounts")]
pub struct Model {
    /// Primary key (UUID v7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Column `user_id`.
    pub user_id: Uuid,
    /// Column `label`.
    #[sea_orm(column_type = "Text")]
    pub label: String,
    /// Column `broker`.
    pub broker: BrokerKind,
    /// Column `environment`.
    pub environment: Environment,
    /// Column `username`.
    #[sea_orm(column_type = "Text", nullable)]
    pub username: Option<String>,
    /// Column `credentials_enc`.
    #[sea_orm(column_type = "Blob", nullable)]
    pub credentials_enc: Option<Vec<u8>>,
    /// Column `access_token_enc`.
    #[sea_orm(column_type = "Blob", nullable)]
    pub access_token_enc: Option<Vec<u8>>,
    /// Column `token_expires_at`.
    #[sea_orm(nullable)]
    pub token_expires_at: Option<DateTimeUtc>,
    /// Column `needs_reauth`.
    pub needs_reauth: bool,
    /// Column `reauth_reason`.
    #[sea_orm(column_type = "Text", nullable)]
    pub reauth_reason: Option<String>,
    /// Column `locked_until`.
    #[sea_orm(nullable)]
    pub locked_until: Option<DateTimeUtc>,
    /// Column `last_error`.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Column `last_error_at`.
    #[sea_orm(nullable)]
    pub last_error_at: Option<DateTimeUtc>,
    /// Column `require_brackets`.
    pub require_brackets: bool,
    /// Column `enabled`.
    pub enabled: bool,
    /// Column `created_at`.
    pub created_at: DateTimeUtc,
    /// Column `updated_at`.
    pub updated_at: DateTimeUtc,
    /// Column `md_access_token_enc`: the market-data token, sealed.
    #[sea_orm(column_type = "Blob", nullable)]
    pub md_access_token_enc: Option<Vec<u8>>,
    /// Column `token_obtained_at`: when the stored token was obtained.
    #[sea_orm(nullable)]
    pub token_obtained_at: Option<DateTimeUtc>,
    /// Column `broker_user_id`: the broker's user id from the login answer.
    #[sea_orm(column_type = "Text", nullable)]
    pub broker_user_id: Option<String>,
    /// Column `login_claimed_by`: the process holding the renewal/login claim.
    #[sea_orm(column_type = "Text", nullable)]
    pub login_claimed_by: Option<String>,
    /// Column `login_claimed_until`: when that claim lapses.
    #[sea_orm(nullable)]
    pub login_claimed_until: Option<DateTimeUtc>,
}

/// No relations are declared: repositories join explicitly, by owner.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_kind_is_stored_as_its_name_as_before() {
        // The migration's CHECK constraint lists exactly these strings.
        let stored: Vec<String> = BrokerKind::ALL.iter().map(|k| k.to_value()).collect();
        assert_eq!(
            stored,
            ["tradovate", "ninjatrader", "projectx", "webull", "sim"]
        );
        for kind in BrokerKind::ALL {
            assert_eq!(BrokerKind::try_from_value(&kind.to_value()), Ok(*kind));
        }
        assert!(BrokerKind::try_from_value(&"ninja_trader".to_string()).is_err());
    }
}
