//! Reconciliation of one sub-account (DOMAIN.md §9, the safety net): the broker's snapshot
//! (positions and working orders, in as few calls as the venue allows) against the store.
//!
//! - **Positions.** A stored position whose quantity or average differs from the broker's is
//!   corrected; one the broker shows flat is closed (stored as 0); one the store lacks is
//!   added. Corrections are written with the snapshot's time behind the store's time guard, so
//!   an event newer than the snapshot is never overwritten. An open live trade record of a
//!   contract the broker shows flat, untouched since the snapshot began, is closed as
//!   `reconciled` (no exit price, no P&L).
//! - **Protection.** An open position that should have a take-profit and/or a stop — the
//!   settings of the last signal intent that traded its contract say so — with none working at
//!   the broker gets a [`RepairIntent`] on ORDERS, unless it is being handled: an unfinished
//!   intent of the sub-account on that contract (the executor is between its steps), or an
//!   order event of that contract recorded less than `quiet` ago (a DCA add replacing its
//!   take-profit). The repair's identity derives from the sub-account, the contract and the
//!   position's state (direction, size, average) and what is missing, so every pass and
//!   every replica publish the same intent for the same gap: it is executed once (JetStream's
//!   duplicate window, then the store's idempotency key), and the executor reads the broker
//!   again before placing anything.

use std::time::Duration;

use chrono::Utc;
use jt_broker::{AccountId, AccountSnapshot, ExitOrders, PositionReport};
use jt_bus::{Bus, Envelope, MessageId};
use jt_domain::{Direction, Settings};
use jt_messages::{IntentMessage, RepairIntent, derived_id};
use jt_store::repo::accounts::{BrokerAccount, SubAccount};
use jt_store::repo::broker::{Applied, BrokerPosition};
use jt_store::repo::intents::Intent;
use jt_store::{IntentKind, IntentSource, IntentStatus, Store, StoreError, TradeExitReason};

use crate::apply::contract_key;
use crate::metrics;

/// What one sub-account's reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Stored positions corrected (quantity/average, closed, added).
    pub corrections: usize,
    /// Repairs published (new to the stream).
    pub repairs: usize,
    /// Repairs left because the position is being handled.
    pub deferred: usize,
}

/// Why a sub-account could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// No broker for the account.
    #[error("no broker: {0}")]
    Access(#[from] jt_connect::AccessError),
    /// The broker's snapshot failed.
    #[error("the broker's snapshot failed: {0}")]
    Broker(#[from] jt_broker::BrokerError),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// ORDERS did not take a repair.
    #[error("publishing on ORDERS failed: {0}")]
    Publish(String),
}

impl ReconcileError {
    /// The `outcome` label.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            ReconcileError::Access(_) => "access",
            ReconcileError::Broker(_) => "broker",
            ReconcileError::Store(_) => "store",
            ReconcileError::Publish(_) => "publish",
        }
    }
}

/// What a reconciliation needs.
#[derive(Clone)]
pub struct Reconciler {
    pub(crate) store: Store,
    pub(crate) bus: Bus,
    pub(crate) brokers: std::sync::Arc<jt_connect::BrokerAccess>,
    /// An order event newer than this on a contract means it is being handled.
    pub(crate) quiet: Duration,
}

impl Reconciler {
    /// Reconciles `sub` (of `account`) against its broker.
    ///
    /// # Errors
    /// [`ReconcileError`]: the pass goes on with the next account.
    pub async fn account(
        &self,
        account: &BrokerAccount,
        sub: &SubAccount,
    ) -> Result<Reconciled, ReconcileError> {
        let broker = self.brokers.for_account(account).await?;
        let snapshot = broker
            .snapshot(&AccountId::from(sub.broker_sub_account_id.as_str()))
            .await?;
        let mut done = Reconciled {
            corrections: self.positions(sub, &snapshot).await?,
            ..Reconciled::default()
        };
        self.protection(account, sub, &snapshot, &mut done).await?;
        Ok(done)
    }

    async fn positions(
        &self,
        sub: &SubAccount,
        snapshot: &AccountSnapshot,
    ) -> Result<usize, ReconcileError> {
        let broker = self.store.broker();
        let stored = broker.positions(sub.owner, sub.id).await?;
        let mut corrections = 0;
        let open: Vec<&PositionReport> = snapshot
            .positions
            .iter()
            .filter(|p| p.net_qty != 0)
            .collect();
        for p in &open {
            let key = contract_key(p.symbol.as_deref(), p.contract.as_str());
            let row = stored
                .iter()
                .find(|s| s.contract == key || s.contract == p.contract.as_str());
            let kind = match row {
                None => "opened",
                Some(s)
                    if s.net_quantity != p.net_qty
                        || (p.avg_price.is_some() && s.average_price != p.avg_price) =>
                {
                    "quantity"
                }
                Some(_) => continue,
            };
            let written = broker
                .upsert_position(
                    sub.owner,
                    BrokerPosition {
                        sub_account: sub.id,
                        contract: row.map_or(key, |s| s.contract.clone()),
                        net_quantity: p.net_qty,
                        average_price: p.avg_price,
                        realized_pnl: None,
                        broker_updated_at: snapshot.as_of,
                    },
                )
                .await?;
            if written == Applied::Stored {
                corrections += 1;
                metrics::correction(kind);
                tracing::info!(sub_account = %sub.id, contract = %p.contract, net = p.net_qty, kind, "stored position corrected from the broker");
            }
        }
        for s in stored.iter().filter(|s| s.net_quantity != 0) {
            let held = open.iter().any(|p| {
                s.contract == p.contract.as_str() || p.symbol.as_deref() == Some(&s.contract)
            });
            if held {
                continue;
            }
            let written = broker
                .upsert_position(
                    sub.owner,
                    BrokerPosition {
                        sub_account: sub.id,
                        contract: s.contract.clone(),
                        net_quantity: 0,
                        average_price: None,
                        realized_pnl: None,
                        broker_updated_at: snapshot.as_of,
                    },
                )
                .await?;
            if written == Applied::Stored {
                corrections += 1;
                metrics::correction("closed");
                tracing::info!(sub_account = %sub.id, contract = %s.contract, "stored position closed: the broker shows it flat");
            }
        }
        // Trade records still open on a contract the broker shows flat: the fills that closed
        // them were never seen (missed events, a position closed while no connection manager
        // listened). Closed as `reconciled` so no record stays open forever.
        let held: Vec<&str> = open
            .iter()
            .flat_map(|p| [p.contract.as_str()].into_iter().chain(p.symbol.as_deref()))
            .collect();
        for r in self
            .store
            .trades()
            .close_flat(sub.owner, sub.id, &held, snapshot.as_of)
            .await?
        {
            metrics::trade_closed(TradeExitReason::Reconciled.as_str());
            tracing::info!(sub_account = %sub.id, contract = %r.contract, "trade record closed: the broker shows the contract flat");
        }
        Ok(corrections)
    }

    async fn protection(
        &self,
        account: &BrokerAccount,
        sub: &SubAccount,
        snapshot: &AccountSnapshot,
        done: &mut Reconciled,
    ) -> Result<(), ReconcileError> {
        let open: Vec<&PositionReport> = snapshot
            .positions
            .iter()
            .filter(|p| p.net_qty != 0)
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let intents = self
            .store
            .intents()
            .for_sub_account(sub.owner, sub.id, 100)
            .await?;
        let unfinished = self.store.intents().unfinished(sub.owner, sub.id).await?;
        for p in open {
            let Some(direction) = Direction::of_net(p.net_qty) else {
                continue;
            };
            let key = contract_key(p.symbol.as_deref(), p.contract.as_str());
            let Some(plan) = intents.iter().find(|i| traded(i, p, &key)) else {
                // Not ours (a position opened by hand) or its intent is gone: nothing says
                // what protection it should have.
                continue;
            };
            let has = |which: ExitOrders| {
                snapshot
                    .working_orders
                    .iter()
                    .any(|o| which.matches(o, &p.contract, direction))
            };
            let want = Want::of(&plan.settings);
            let take_profit = want.take_profit && !has(ExitOrders::TakeProfits);
            let stop = want.stop && !has(ExitOrders::Stops);
            if !take_profit && !stop {
                // Protected. If a repair of ours made it so (recently: not one from days ago
                // told to a channel added since), say so once.
                if let Some(repair) = intents.iter().find(|i| {
                    i.source == IntentSource::Reconcile
                        && matches!(i.status, IntentStatus::Accepted | IntentStatus::Filled)
                        && i.contract
                            .as_deref()
                            .is_some_and(|c| c == key || c == p.contract.as_str())
                        && Utc::now() - i.updated_at < chrono::Duration::hours(1)
                }) {
                    crate::notify::repaired(
                        &self.store,
                        sub.owner,
                        sub.id,
                        &sub.name,
                        &key,
                        repair.id,
                    )
                    .await;
                }
                continue;
            }
            // `accepted` is settled for this purpose (the broker took it; its orders rest):
            // only an intent the executor is still sending holds the position.
            if unfinished.iter().any(|i| {
                i.status != IntentStatus::Accepted
                    && (i.contract.is_none() || i.contract.as_deref() == Some(key.as_str()))
            }) {
                done.deferred += 1;
                metrics::repair_deferred("intent");
                continue;
            }
            if let Some(at) = self
                .store
                .broker()
                .last_order_activity(sub.owner, sub.id, &key)
                .await?
                && (Utc::now() - at).to_std().unwrap_or_default() < self.quiet
            {
                done.deferred += 1;
                metrics::repair_deferred("orders");
                continue;
            }
            let dir = direction.to_string();
            let average = p
                .avg_price
                .map(|a| a.normalize().to_string())
                .unwrap_or_default();
            let cause = derived_id(
                "reconcile-repair",
                &[
                    &sub.id.to_string(),
                    &key,
                    &dir,
                    &p.net_qty.unsigned_abs().to_string(),
                    &average,
                    if take_profit { "tp" } else { "" },
                    if stop { "stop" } else { "" },
                ],
            );
            let intent = IntentMessage::repair(
                sub.owner,
                sub.id,
                account.id,
                snapshot.as_of,
                RepairIntent {
                    cause_id: cause,
                    symbol: plan.symbol.clone(),
                    direction,
                    take_profit,
                    stop,
                    trader_id: plan.trader,
                    settings: plan.settings.clone(),
                },
            );
            let duplicate = publish(&self.bus, intent).await?;
            metrics::repair(if duplicate { "duplicate" } else { "published" });
            // Told once per gap (the cause is the key), whichever pass or replica finds it.
            crate::notify::unprotected(
                &self.store,
                sub.owner,
                sub.id,
                &sub.name,
                &key,
                p.net_qty,
                take_profit,
                stop,
                &cause.to_string(),
            )
            .await;
            if !duplicate {
                done.repairs += 1;
                tracing::warn!(
                    sub_account = %sub.id,
                    contract = %key,
                    take_profit,
                    stop,
                    "position unprotected at the broker: repair published"
                );
            }
        }
        Ok(())
    }
}

/// What protection a position traded with `settings` must have.
struct Want {
    take_profit: bool,
    stop: bool,
}

impl Want {
    fn of(s: &Settings) -> Self {
        Self {
            take_profit: !s.tp_targets.is_empty(),
            stop: s.sl_enabled && s.sl_amount > rust_decimal::Decimal::ZERO,
        }
    }
}

/// Whether `intent` is the last signal intent that traded the position's contract in its
/// direction (entry, add or flip) — the source of the protection the position should have.
fn traded(intent: &Intent, p: &PositionReport, key: &str) -> bool {
    intent.source == IntentSource::Signal
        && intent.trader.is_some()
        && matches!(
            intent.kind,
            IntentKind::Entry | IntentKind::Add | IntentKind::Flip
        )
        && matches!(intent.status, IntentStatus::Accepted | IntentStatus::Filled)
        && intent
            .contract
            .as_deref()
            .is_some_and(|c| c == key || c == p.contract.as_str())
}

/// Publishes an intent on ORDERS; `true` when the stream already had it.
///
/// # Errors
/// [`ReconcileError::Publish`].
pub(crate) async fn publish(bus: &Bus, intent: IntentMessage) -> Result<bool, ReconcileError> {
    let id =
        MessageId::new(intent.message_id()).map_err(|e| ReconcileError::Publish(e.to_string()))?;
    let receipt = bus
        .publish(&Envelope::new(id, intent))
        .await
        .map_err(|e| ReconcileError::Publish(e.to_string()))?;
    Ok(receipt.duplicate)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jt_domain::settings::TpTarget;
    use rust_decimal::Decimal;

    #[test]
    fn the_protection_wanted_comes_from_the_settings() {
        let none = Want::of(&Settings::default());
        assert!(!none.take_profit && !none.stop);
        let both = Want::of(&Settings {
            tp_targets: vec![TpTarget {
                value: Decimal::from(20),
                trim: Decimal::ZERO,
            }],
            sl_enabled: true,
            sl_amount: Decimal::from(16),
            ..Settings::default()
        });
        assert!(both.take_profit && both.stop);
        // A stop switched on without a distance gives nothing to place.
        let zero = Want::of(&Settings {
            sl_enabled: true,
            ..Settings::default()
        });
        assert!(!zero.stop);
    }
}
