//! The exit guard: keeps a position's exit orders within the position at ProjectX, where only
//! one target is native and the other take-profit legs are plain limit orders.
//!
//! When a position shrinks (a leg filled) or goes flat, the guard re-reads the position and
//! the open orders at the broker (never acting on the event alone) and then:
//! - while the position is open, reduces every exit-side order larger than the position to
//!   the position's size (a stop sized to the original fill would otherwise reverse the
//!   position when it triggers after some legs filled);
//! - once the position is flat, cancels the exit legs the platform placed for it (`customTag`
//!   ending in `-tpN`, `-tp` or `-sl`; the server cancels its own bracket children). A new
//!   entry's legs are placed only after that entry fills, so a flat re-read means none exist.
//!
//! It runs where the hub runs (the connection manager) and never raises a position.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::brackets::is_exit_tag;
use crate::common::enums;
use crate::http::client::ProjectXHttpClient;
use jt_broker::error::BrokerError;
use jt_broker::events::{BrokerEvent, EventEnvelope, EventHub, EventOrigin};
use jt_broker::model::{AccountId, ContractId, OrderId};

use super::handler::Shrunk;

/// What one check did (tests and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardAction {
    /// Orders reduced to the position, with their new size.
    pub resized: Vec<(i64, u32)>,
    /// Exit legs canceled because the position was flat.
    pub canceled: Vec<i64>,
}

/// Checks one account's position in one contract and fixes its exit orders.
///
/// # Errors
/// The errors of the reads and of the changes.
pub async fn check(
    http: &ProjectXHttpClient,
    account: &AccountId,
    contract: &str,
) -> Result<GuardAction, BrokerError> {
    let contract_id = ContractId::from(contract);
    let net = http
        .positions(account)
        .await?
        .into_iter()
        .find(|p| p.contract == contract_id)
        .map_or(0, |p| p.net_qty);
    let open: Vec<_> = http
        .open_order_models(account)
        .await?
        .into_iter()
        .filter(|o| o.contract_id == contract)
        .collect();
    let mut done = GuardAction::default();
    if net == 0 {
        for o in open
            .iter()
            .filter(|o| o.custom_tag.as_deref().is_some_and(is_exit_tag))
        {
            match http.cancel_order(account, &OrderId::from(o.id)).await {
                Ok(()) => done.canceled.push(o.id),
                // Filled or canceled meanwhile: nothing left to do.
                Err(BrokerError::Rejected { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(done);
    }
    let exit = if net > 0 {
        jt_domain::types::Side::Sell
    } else {
        jt_domain::types::Side::Buy
    };
    let size = net.unsigned_abs();
    for o in open
        .iter()
        .filter(|o| enums::side(o.side) == Some(exit) && o.size.unsigned_abs() > size)
    {
        let to = u32::try_from(size).unwrap_or(u32::MAX);
        match http.modify_size(account, o.id, to).await {
            Ok(()) => done.resized.push((o.id, to)),
            Err(BrokerError::Rejected { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Runs the guard until `cancel`: checks every shrunk position sent on `rx` (duplicates
/// queued meanwhile are checked once). A failed check is published as `Resync`.
pub async fn run(
    http: Arc<ProjectXHttpClient>,
    hub: Arc<EventHub>,
    mut rx: mpsc::UnboundedReceiver<Shrunk>,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = cancel.cancelled() => return,
            s = rx.recv() => match s { Some(s) => s, None => return },
        };
        let mut batch = BTreeSet::new();
        batch.insert((first.account, first.contract));
        while let Ok(s) = rx.try_recv() {
            batch.insert((s.account, s.contract));
        }
        for (account, contract) in batch {
            let account = AccountId::from(account);
            match check(&http, &account, &contract).await {
                Ok(a) if a == GuardAction::default() => {}
                Ok(a) => {
                    tracing::info!(%account, contract, resized = ?a.resized, canceled = ?a.canceled, "exit guard adjusted a position's exit orders");
                }
                Err(e) => {
                    tracing::error!(%account, contract, error = %e, "exit guard could not check a position's exit orders");
                    hub.publish(Arc::new(EventEnvelope::now(
                        EventOrigin::Adapter,
                        BrokerEvent::Resync {
                            reason: format!(
                                "exit orders of {contract} on {account} could not be checked after the position changed: {e}"
                            ),
                        },
                    )));
                }
            }
        }
    }
}
