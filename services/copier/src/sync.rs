//! Auto-sync (DOMAIN.md §10, issue #22): every follower's position at its broker compared
//! with what its leader's tracked position implies — the same quantity function, contract
//! mapping and caps as a copy —, after every leader fill and at least every
//! `JT_COPY_SYNC_SECS`. A follower that drifted (a missed fill, a manual intervention at the
//! broker, a partial fill) gets one correcting [`CopyIntent`] and a copy log row naming the
//! drift.
//!
//! Never a blind re-send: the follower's real position is read at its broker first, the step
//! is computed from it, and nothing is compared while a copy to the follower is still in
//! flight (its intent queued, its outcome not recorded). The correction's leader event id is
//! `sync:<leader sub-account>:<contract>:<leader state>:<n>` — the leader state is the last
//! leader fill applied, `n` the corrections already logged for that state and follower — so a
//! repeated check of the same drift is the same intent (recorded before it is published, like
//! a copy) and a second drift at the same leader state (closed by hand again) is a new one.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use jt_broker::AccountId;
use jt_domain::copy::CopyAction;
use jt_messages::{CopyIntent, IntentMessage, LeaderChange};
use jt_store::repo::copy::{CopyRecorded, Follower, Leader, NewCopy};
use jt_store::{CopyLogId, CopyStatus, CopyTrigger, StoreError, SubAccountId, UserId};
use tokio_util::sync::CancellationToken;

use crate::{Copier, Failure, PARALLEL_FOLLOWERS, engine, metrics};

/// A copy row pending (or queued without an outcome) for longer than this is taken as lost:
/// it no longer holds back its follower's sync.
const IN_FLIGHT_HORIZON: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// A correction refused by the executor (skipped or failed) is tried again for the same
/// leader state no sooner than this after it.
const RETRY_REFUSED_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

impl Copier {
    /// Checks every tracked leader's followers every `every`, and after every leader fill,
    /// until `stop`.
    pub(crate) async fn sync_loop(&self, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
                () = self.nudge.notified() => {}
            }
            let leaders: Vec<(SubAccountId, UserId)> =
                self.leaders.lock().iter().map(|(s, o)| (*s, *o)).collect();
            for (sub, owner) in leaders {
                if stop.is_cancelled() {
                    return;
                }
                // One leader at a time, never while one of its fills is handled.
                let _gate = self.gate.lock().await;
                if let Err(e) = self.sync_leader(owner, sub).await {
                    tracing::warn!(leader = %sub, error = %e, "auto-sync of the leader's followers failed: tried again on the next check");
                }
            }
        }
    }

    /// Compares each of the leader's (enabled, copyable) followers with the leader's tracked
    /// positions, correcting the ones that drifted.
    async fn sync_leader(&self, owner: UserId, sub: SubAccountId) -> Result<(), Failure> {
        let copying = self.store.copying();
        let Some(leader) = copying.leader_of(owner, sub).await? else {
            self.leaders.lock().remove(&sub);
            return Ok(());
        };
        if !leader.enabled || !leader.auto_copy {
            return Ok(());
        }
        let books = self.positions.lock().of(&sub.to_string());
        if books.is_empty() {
            return Ok(());
        }
        let books = self.settled(owner, sub, books).await?;
        if books.is_empty() {
            return Ok(());
        }
        let traders: HashSet<SubAccountId> = self
            .store
            .traders()
            .list(owner)
            .await?
            .into_iter()
            .filter(|t| t.enabled)
            .map(|t| t.sub_account)
            .collect();
        // The followers a copy would skip (disabled, locked out, their own webhook trader, the
        // leader's own account) are not synced either: the skip is already logged.
        let followers: Vec<Follower> = copying
            .followers(owner, leader.id)
            .await?
            .into_iter()
            .filter(|f| {
                f.enabled
                    && !f.locked_out
                    && f.sub_account != leader.sub_account
                    && !traders.contains(&f.sub_account)
            })
            .collect();
        let (leader_ref, books_ref) = (&leader, &books);
        // Boxed: a closure returning the future trips the compiler's lifetime inference
        // inside a spawned task.
        let checks: Vec<futures_util::future::BoxFuture<'_, Result<(), Failure>>> = followers
            .iter()
            .map(|f| {
                Box::pin(self.sync_follower(owner, leader_ref, f, books_ref))
                    as futures_util::future::BoxFuture<'_, _>
            })
            .collect();
        let results: Vec<Result<(), Failure>> = futures_util::stream::iter(checks)
            .buffer_unordered(PARALLEL_FOLLOWERS)
            .collect()
            .await;
        for r in results {
            if let Err(e) = r {
                metrics::sync("failed");
                tracing::warn!(leader = %leader.id, error = %e, "a follower's auto-sync failed: tried again on the next check");
            }
        }
        Ok(())
    }

    /// The tracked leader positions that agree with the leader's position at its broker. One
    /// that does not is left for a later check: fills are still on their way to the copier (a
    /// leader trade in progress, a session-end replay walking through old states), and its
    /// followers are compared only once the copier has caught up — a follower is never
    /// "corrected" towards a state the leader has already left.
    async fn settled(
        &self,
        owner: UserId,
        sub: SubAccountId,
        books: Vec<(String, i64, String)>,
    ) -> Result<Vec<(String, i64, String)>, Failure> {
        let accounts = self.store.accounts();
        let leader_sub = accounts.sub_account(owner, sub).await?;
        let login = accounts.get(owner, leader_sub.broker_account).await?;
        let broker = self
            .brokers
            .for_account(&login)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let held = broker
            .positions(&AccountId(leader_sub.broker_sub_account_id.clone()))
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let mut settled = Vec::with_capacity(books.len());
        for (contract, net, state) in books {
            let resolved = match broker.resolve_contract(&contract).await {
                Ok(c) => c,
                Err(e) => {
                    // A contract known only by its id, or gone: the others are still synced.
                    metrics::sync("failed");
                    tracing::debug!(leader = %sub, %contract, error = %e, "the leader's contract cannot be resolved: not synced");
                    continue;
                }
            };
            let real: i64 = held
                .iter()
                .filter(|p| p.contract == resolved.id)
                .map(|p| p.net_qty)
                .sum();
            if real == net {
                settled.push((contract, net, state));
            } else {
                metrics::sync("leader_moving");
                tracing::debug!(leader = %sub, %contract, tracked = net, real, "the leader's fills are still arriving: its followers are synced later");
            }
        }
        Ok(settled)
    }

    /// One follower against the leader's tracked `(contract, net, state)`s: at most one
    /// correction per check (it is then in flight).
    async fn sync_follower(
        &self,
        owner: UserId,
        leader: &Leader,
        follower: &Follower,
        books: &[(String, i64, String)],
    ) -> Result<(), Failure> {
        let copying = self.store.copying();
        let since = chrono::Utc::now() - IN_FLIGHT_HORIZON;
        if copying.copy_in_flight(owner, follower.id, since).await? {
            metrics::sync("in_flight");
            return Ok(());
        }
        let accounts = self.store.accounts();
        let sub = match accounts.sub_account(owner, follower.sub_account).await {
            Ok(sub) if sub.enabled => sub,
            Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let login = accounts.get(owner, sub.broker_account).await?;
        let broker = self
            .brokers
            .for_account(&login)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let account = AccountId(sub.broker_sub_account_id.clone());
        let mappings = copying.mappings(owner, follower.id).await?;
        for (contract, net, state) in books {
            let target = engine::target(follower, &mappings, contract);
            let Ok(want) = engine::implied(*net, &target) else {
                // The copy path logs the refused sizing (`invalid`).
                continue;
            };
            let resolved = broker
                .resolve_contract(&target.symbol)
                .await
                .map_err(|e| Failure::Broker(e.to_string()))?;
            let held = broker
                .position(&account, &resolved.id)
                .await
                .map_err(|e| Failure::Broker(e.to_string()))?
                .map_or(0, |p| p.net_qty);
            let step = engine::correction(held, want, &target);
            if step == CopyAction::Nothing {
                metrics::sync("in_sync");
                continue;
            }
            let prefix = format!("sync:{}:{contract}:{state}:", leader.sub_account);
            let made = copying
                .copies_with_prefix(owner, follower.id, &prefix)
                .await?;
            // A correction the executor refused (the kill switch, a loss limit, a step that no
            // longer fitted) is tried again only after a while: not a refused intent and a copy
            // log row every check.
            if let Some(last) = made.last().filter(|r| {
                matches!(r.status, CopyStatus::Skipped | CopyStatus::Error)
                    && r.created_at > chrono::Utc::now() - RETRY_REFUSED_AFTER
            }) {
                metrics::sync("held_back");
                tracing::debug!(follower = %follower.id, row = %last.id, "the last correction was refused: tried again later");
                continue;
            }
            let event_id = format!("{prefix}{}", made.len());
            let why = format!(
                "drift: the follower holds {held} {symbol}, the leader's {net} {contract} implies \
                 {want}: corrected",
                symbol = target.symbol
            );
            let order = engine::order_of(&step);
            let recorded = copying
                .record_copy(
                    owner,
                    NewCopy {
                        id: CopyLogId::new(),
                        leader: leader.id,
                        follower: follower.id,
                        trigger: CopyTrigger::Sync,
                        leader_fill_id: Some(event_id.clone()),
                        leader_order_id: None,
                        leader_symbol: contract.clone(),
                        follower_symbol: target.symbol.clone(),
                        leader_side: None,
                        follower_side: order.map(|(side, _)| side),
                        leader_quantity: u32::try_from(net.unsigned_abs()).unwrap_or(u32::MAX),
                        follower_quantity: order.map_or(0, |(_, qty)| qty),
                        leader_price: None,
                        status: CopyStatus::Pending,
                        error: Some(why.clone()),
                    },
                )
                .await?;
            if recorded == CopyRecorded::AlreadyCopied {
                // Counted between the check and now by no one else (checks hold the gate):
                // a row of this id exists, so the correction was made.
                metrics::already_copied();
                return Ok(());
            }
            let intent = IntentMessage::copy(
                owner,
                follower.sub_account,
                sub.broker_account,
                chrono::Utc::now(),
                CopyIntent {
                    leader_sub_account_id: leader.sub_account,
                    leader_event_id: event_id.clone(),
                    follower_id: follower.id,
                    symbol: target.symbol.clone(),
                    leader: LeaderChange {
                        symbol: contract.clone(),
                        prev_net: *net,
                        new_net: *net,
                        price: None,
                    },
                    step,
                    // The leader's levels are not read yet (as for copies).
                    take_profit: None,
                    stop_loss: None,
                    max_lag_secs: self.max_lag_secs,
                    protection: None,
                },
            );
            self.send(intent).await?;
            if let Some(row) = copying.copy_of(owner, follower.id, &event_id).await? {
                copying.mark_copy_accepted(owner, row.id).await?;
            }
            metrics::sync("corrected");
            tracing::info!(follower = %follower.id, leader = %leader.id, %contract, held, want, ?step, "follower drifted: correcting intent published");
            return Ok(());
        }
        Ok(())
    }
}
