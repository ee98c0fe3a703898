//! A broker login's event connection as the connection manager reports it: who holds the
//! login (`login.<id>` in the lease bucket) and its status (`status.<id>`, rewritten at every
//! change and lease renewal, gone when no replica holds it). Written by `jt-connmgr`, read by
//! the API's status page and by operators' tools.

use chrono::{DateTime, Utc};
use jt_bus::{Bus, Definitions, KvError};
use jt_ids::BrokerAccountId;
use serde::{Deserialize, Serialize};

/// The lease key of a login.
#[must_use]
pub fn lease_key(login: BrokerAccountId) -> String {
    format!("login.{}", login.0)
}

/// The status key of a login.
#[must_use]
pub fn status_key(login: BrokerAccountId) -> String {
    format!("status.{}", login.0)
}

/// The state of a login's event connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Waiting for a connect slot, connecting, or waiting to retry.
    Connecting,
    /// Connected and synchronised: events flow.
    Connected,
    /// Not connected; `reason` says why.
    Disconnected,
}

/// One held login's status, as the API reads it ([`read_status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginStatus {
    /// The login.
    pub broker_account_id: BrokerAccountId,
    /// The replica holding it.
    pub owner: String,
    /// Connected or not.
    pub state: LinkState,
    /// Since when it is in that state.
    pub since: DateTime<Utc>,
    /// When the last broker event arrived, if any.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Connections lost (or restarted) since this replica took the login.
    pub reconnects: u64,
    /// Why it is not connected (or why it last disconnected).
    pub reason: Option<String>,
    /// Sub-accounts subscribed.
    pub accounts: usize,
    /// Events published on BROKER_EVENTS since this replica took the login.
    pub published: u64,
}

/// The status of `login` from the lease bucket; `None` when no replica holds it.
///
/// # Errors
/// The bucket cannot be reached.
pub async fn read_status(
    bus: &Bus,
    login: BrokerAccountId,
) -> Result<Option<LoginStatus>, KvError> {
    let defs = Definitions::new(bus.namespace());
    let kv = bus.kv(&defs.leases).await?;
    Ok(match kv.get(&status_key(login)).await? {
        // A status this build cannot read (a newer connection manager) is "unknown", not an
        // error that would hide the rest of the page.
        Some(entry) => serde_json::from_slice(&entry.value).ok(),
        None => None,
    })
}

/// Who holds `login` (the lease's value), if anyone.
///
/// # Errors
/// The bucket cannot be reached.
pub async fn holder(bus: &Bus, login: BrokerAccountId) -> Result<Option<String>, KvError> {
    let defs = Definitions::new(bus.namespace());
    let kv = bus.kv(&defs.leases).await?;
    Ok(kv
        .get(&lease_key(login))
        .await?
        .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
}
