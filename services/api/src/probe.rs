//! The one broker call the API makes: "log in and list the sub-accounts" of a broker account
//! (`POST /broker-accounts/{id}/test`). Behind [`AccountProbe`] so handler tests use a fake
//! login; the real one is the process's broker access (`jt-connect`), shared with every other
//! service of the process (one session per broker login).

use std::sync::Arc;

use async_trait::async_trait;
use jt_connect::{AccessError, BrokerAccess};
use jt_store::repo::accounts::{BrokerAccount, BrokerSubAccount};

/// Why a login test failed, in the broker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The broker refused the credentials (or the login is locked out, or the account cannot
    /// be set up as entered): the user must act.
    #[error("{0}")]
    Refused(String),
    /// The broker (or the database) could not be reached or answered with a transient error:
    /// try again later.
    #[error("{0}")]
    Unreachable(String),
}

/// Logs a broker account in and lists the sub-accounts its login reaches.
#[async_trait]
pub trait AccountProbe: Send + Sync {
    /// The sub-accounts `account`'s login sees.
    ///
    /// # Errors
    /// [`ProbeError`] with the broker's reason.
    async fn sub_accounts(
        &self,
        account: &BrokerAccount,
    ) -> Result<Vec<BrokerSubAccount>, ProbeError>;
}

/// [`AccountProbe`] over the process's broker access.
#[derive(Debug, Clone)]
pub struct AccessProbe {
    access: Arc<BrokerAccess>,
}

impl AccessProbe {
    /// A probe over `access` (the service context's `brokers`).
    #[must_use]
    pub fn new(access: Arc<BrokerAccess>) -> Self {
        Self { access }
    }

    /// As a shared probe.
    #[must_use]
    pub fn shared(self) -> Arc<dyn AccountProbe> {
        Arc::new(self)
    }
}

#[async_trait]
impl AccountProbe for AccessProbe {
    async fn sub_accounts(
        &self,
        account: &BrokerAccount,
    ) -> Result<Vec<BrokerSubAccount>, ProbeError> {
        let listed = self.access.probe(account).await.map_err(classify)?;
        Ok(listed
            .into_iter()
            .filter(|a| a.active)
            .map(|a| BrokerSubAccount {
                broker_sub_account_id: a.id.to_string(),
                name: a.name,
            })
            .collect())
    }
}

fn classify(e: AccessError) -> ProbeError {
    use jt_broker::BrokerError as B;
    match &e {
        AccessError::Store(_) => ProbeError::Unreachable(e.to_string()),
        AccessError::Broker(
            B::NeedsReauth { .. }
            | B::AuthExpired { .. }
            | B::LockedOut { .. }
            | B::Rejected { .. },
        ) => ProbeError::Refused(e.to_string()),
        AccessError::Broker(_) => ProbeError::Unreachable(e.to_string()),
        AccessError::Unsupported { .. }
        | AccessError::NoCredentials
        | AccessError::NoSimulator
        | AccessError::Adapter(_) => ProbeError::Refused(e.to_string()),
    }
}
