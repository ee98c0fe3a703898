//! The one broker call the API makes: "log in and list the sub-accounts" of a broker account
//! (`POST /broker-accounts/{id}/test`). Behind [`AccountProbe`] so the implementation — today
//! the executor's `BrokerRegistry`, later the broker access crate — changes in this file only.

use std::sync::Arc;

use async_trait::async_trait;
use jt_executor::BrokerRegistry;
use jt_store::Store;
use jt_store::repo::accounts::{BrokerAccount, BrokerSubAccount};

/// Why a login test failed, in the broker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The broker refused the credentials (or the login is locked out): the user must act.
    #[error("{0}")]
    Refused(String),
    /// The broker could not be reached or answered with a transient error: try again later.
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

/// [`AccountProbe`] over the executor's broker registry (one cached broker per login).
pub struct RegistryProbe {
    registry: BrokerRegistry,
}

impl RegistryProbe {
    /// A probe building brokers from `store`'s sealed credentials; `sim` accounts reach the
    /// simulator at `sim_url`, ProjectX accounts `projectx_url` when set.
    #[must_use]
    pub fn new(store: Store, sim_url: Option<String>, projectx_url: Option<String>) -> Self {
        Self {
            registry: BrokerRegistry::new(store, sim_url).with_projectx_url(projectx_url),
        }
    }

    /// As a shared probe.
    #[must_use]
    pub fn shared(self) -> Arc<dyn AccountProbe> {
        Arc::new(self)
    }
}

#[async_trait]
impl AccountProbe for RegistryProbe {
    async fn sub_accounts(
        &self,
        account: &BrokerAccount,
    ) -> Result<Vec<BrokerSubAccount>, ProbeError> {
        let broker = self.registry.broker(account).await.map_err(|e| {
            if e.is_transient() {
                ProbeError::Unreachable(e.to_string())
            } else {
                ProbeError::Refused(e.to_string())
            }
        })?;
        broker.login().await.map_err(classify)?;
        let listed = broker.accounts().await.map_err(classify)?;
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

fn classify(e: jt_broker::BrokerError) -> ProbeError {
    use jt_broker::BrokerError as B;
    match e {
        B::NeedsReauth { .. }
        | B::AuthExpired { .. }
        | B::LockedOut { .. }
        | B::Rejected { .. } => ProbeError::Refused(e.to_string()),
        other => ProbeError::Unreachable(other.to_string()),
    }
}
