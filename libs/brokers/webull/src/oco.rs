//! The platform's one-cancels-other for Webull, which has no combo orders for futures.
//!
//! **Where it lives, and why.** The connection manager owns a login's event handling, and
//! that is where this link belongs once Webull has an event path (Webull pushes order status
//! over gRPC, which the platform does not speak yet). Until then a small polling watcher runs
//! in the adapter, per login, in the process that placed the protection (the executor): an
//! (account, contract) pair is **armed** when protective orders are placed for it
//! (`place_bracket`, `place_stop`, or an exit-tagged `place_order` such as a DCA take-profit)
//! and, every `oco.poll_interval`, the watcher reads the account's positions and open orders
//! (two calls) and, for each armed contract, keeps the platform's exit orders (client order
//! ids `…-tpN`, `…-tp`, `…-sl`) within the position:
//!
//! - the position is flat: every exit order still working is canceled (a take-profit filled:
//!   its stop goes; the stop filled: the take-profits go) and the pair is disarmed;
//! - an exit order would close more than the position holds (a take-profit leg filled): its
//!   quantity is reduced to the position (the stop shrinks as legs fill);
//! - an exit order on the position's own side (it would add to it) is canceled;
//! - no exit order works any more: the pair is disarmed.
//!
//! Limits, written in docs/brokers.md: a sibling lives up to one poll interval after its
//! partner filled; the armed set is in memory (a restarted executor guards again from the
//! next protection it places); every guarded account costs two calls per interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use jt_broker::legs::is_exit_tag;
use jt_broker::{AccountId, BrokerError, ContractId};
use parking_lot::Mutex;
use rust_decimal::Decimal;

use crate::broker::Login;
use crate::http::models::WbModify;

/// The armed pairs of one login and its polling task.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Each armed pair with the arming's number: a pass disarms a pair only when nothing armed
    /// it again after the pass read the account (protection placed meanwhile).
    armed: Mutex<BTreeMap<(AccountId, ContractId), u64>>,
    armings: AtomicU64,
    running: AtomicBool,
    interval: Duration,
}

impl Guard {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            armed: Mutex::new(BTreeMap::new()),
            armings: AtomicU64::new(0),
            running: AtomicBool::new(false),
            interval,
        }
    }

    /// Guards `contract` on `account`; starts the login's watcher when it is not running.
    pub(crate) fn arm(login: &Arc<Login>, account: &AccountId, contract: &ContractId) {
        if !login.config.oco.enabled {
            return;
        }
        let n = login.guard.armings.fetch_add(1, Ordering::SeqCst) + 1;
        login
            .guard
            .armed
            .lock()
            .insert((account.clone(), contract.clone()), n);
        if !login.guard.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(run(Arc::downgrade(login)));
        }
    }

    pub(crate) fn disarm(&self, account: &AccountId, contract: &ContractId) {
        self.armed
            .lock()
            .remove(&(account.clone(), contract.clone()));
    }

    /// Disarms the pair unless it was armed again after arming number `seen`.
    fn disarm_if(&self, account: &AccountId, contract: &ContractId, seen: u64) {
        let mut armed = self.armed.lock();
        let key = (account.clone(), contract.clone());
        if armed.get(&key).is_some_and(|n| *n <= seen) {
            armed.remove(&key);
        }
    }

    pub(crate) fn armed(&self) -> Vec<(AccountId, ContractId)> {
        self.armed.lock().keys().cloned().collect()
    }

    fn by_account(&self) -> BTreeMap<AccountId, Vec<ContractId>> {
        let mut out: BTreeMap<AccountId, Vec<ContractId>> = BTreeMap::new();
        for (a, c) in self.armed.lock().keys() {
            out.entry(a.clone()).or_default().push(c.clone());
        }
        out
    }
}

/// The watcher: runs while something is armed and the login lives.
async fn run(login: Weak<Login>) {
    loop {
        let interval = match login.upgrade() {
            Some(l) => l.guard.interval,
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(l) = login.upgrade() else { return };
        let accounts = l.guard.by_account();
        if accounts.is_empty() {
            l.guard.running.store(false, Ordering::SeqCst);
            // Armed meanwhile, and nobody started another watcher: keep this one.
            if l.guard.armed.lock().is_empty() || l.guard.running.swap(true, Ordering::SeqCst) {
                return;
            }
            continue;
        }
        for (account, contracts) in accounts {
            if let Err(e) = check(&l, &account, &contracts).await {
                tracing::warn!(
                    broker = "webull",
                    %account,
                    error = %e,
                    "the one-cancels-other watcher could not check the account"
                );
            }
        }
    }
}

/// One pass over every armed contract of `account`.
pub(crate) async fn check_account(login: &Login, account: &AccountId) -> Result<(), BrokerError> {
    let contracts: Vec<ContractId> = login
        .guard
        .armed()
        .into_iter()
        .filter(|(a, _)| a == account)
        .map(|(_, c)| c)
        .collect();
    if contracts.is_empty() {
        return Ok(());
    }
    check(login, account, &contracts).await
}

async fn check(
    login: &Login,
    account: &AccountId,
    contracts: &[ContractId],
) -> Result<(), BrokerError> {
    let http = &login.http;
    let seen = login.guard.armings.load(Ordering::SeqCst);
    let (positions, open) = tokio::join!(
        http.positions(account.as_str()),
        http.open_orders(account.as_str())
    );
    let (positions, open) = (positions?, open?);
    for contract in contracts {
        let net: Decimal = positions
            .iter()
            .filter(|p| p.symbol == contract.0)
            .map(super::http::models::WbPosition::net)
            .sum();
        let exits: Vec<_> = open
            .iter()
            .filter(|o| {
                o.symbol == contract.0
                    && o.status.is_working()
                    && o.client_order_id.as_deref().is_some_and(is_exit_tag)
            })
            .collect();
        if exits.is_empty() {
            login.guard.disarm_if(account, contract, seen);
            continue;
        }
        let exit_side = if net > Decimal::ZERO { "SELL" } else { "BUY" };
        let size = net.abs();
        let mut all_done = true;
        for o in exits {
            let Some(id) = o.client_order_id.as_deref() else {
                continue;
            };
            let left = o.quantity - o.filled_quantity;
            let result = if net.is_zero() || !o.side.eq_ignore_ascii_case(exit_side) {
                tracing::info!(
                    broker = "webull", %account, %contract, order = id,
                    "one-cancels-other: canceling an exit order the position no longer needs"
                );
                http.cancel(account.as_str(), id).await
            } else if left > size {
                tracing::info!(
                    broker = "webull", %account, %contract, order = id, %size,
                    "one-cancels-other: reducing an exit order to the position"
                );
                all_done = false;
                http.replace(
                    account.as_str(),
                    &WbModify {
                        client_order_id: id.to_string(),
                        quantity: Some((o.filled_quantity + size).normalize().to_string()),
                        limit_price: None,
                        stop_price: None,
                    },
                )
                .await
            } else {
                all_done = false;
                Ok(())
            };
            match result {
                // Filled or canceled meanwhile: the next pass sees it.
                Ok(()) | Err(BrokerError::Rejected { .. }) => {}
                Err(e) => {
                    all_done = false;
                    tracing::warn!(
                        broker = "webull", %account, %contract, order = id, error = %e,
                        "one-cancels-other: could not adjust an exit order"
                    );
                }
            }
        }
        if net.is_zero() && all_done {
            login.guard.disarm_if(account, contract, seen);
        }
    }
    Ok(())
}
