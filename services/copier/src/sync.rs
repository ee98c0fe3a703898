//! Auto-sync (DOMAIN.md §10, issue #22): every follower's position at its broker compared
//! with what its leader's tracked position implies — the same quantity function, contract
//! mapping and caps as a copy —, after every leader fill and at least every
//! `JT_COPY_SYNC_SECS`. A follower that drifted (a missed fill, a manual intervention at the
//! broker, a partial fill) gets one correcting [`CopyIntent`] and a copy log row naming the
//! drift. A correction that opens the follower's position is followed by the leader's
//! take-profit and stop, set on the follower at the leader's prices (protection intents queued
//! behind it).
//!
//! Never a blind re-send: the follower's real position is read at its broker first, the step
//! is computed from it, and nothing is compared while a copy to the follower is still in
//! flight (its intent queued, its outcome not recorded). The correction's leader event id is
//! `sync:<leader sub-account>:<contract>:<leader state>:<n>` — the leader state is the last
//! leader fill applied, `n` the corrections already logged for that state and follower — so a
//! repeated check of the same drift is the same intent (recorded before it is published, like
//! a copy) and a second drift at the same leader state (closed by hand again) is a new one.
//!
//! A follower whose setting `closed_by_hand_stays_flat` is on and that the broker shows flat
//! gets no correction: the drift is logged once per leader state (a `skipped` row without an
//! order) and the follower waits for the leader's next entry, which the copy path copies.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use jt_broker::AccountId;
use jt_domain::Direction;
use jt_domain::copy::CopyAction;
use jt_messages::{CopyIntent, CopyProtection, IntentMessage, LeaderChange, ProtectionKind};
use jt_store::repo::copy::{CopyLogEntry, CopyLogQuery, CopyRecorded, Follower, Leader, NewCopy};
use jt_store::{
    BrokerAccountId, CopyLogId, CopyStatus, CopyTrigger, StoreError, SubAccountId, UserId,
};
use tokio_util::sync::CancellationToken;

use crate::{Copier, Failure, PARALLEL_FOLLOWERS, engine, metrics};

/// A copy row pending (or queued without an outcome) for longer than this is taken as lost:
/// it no longer holds back its follower's sync.
const IN_FLIGHT_HORIZON: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// A correction refused by the executor (skipped or failed) is tried again for the same
/// leader state no sooner than this after it.
const RETRY_REFUSED_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The end of a "left flat" row's reason (a follower whose setting keeps a position closed by
/// hand flat).
const LEFT_FLAT: &str = "left flat (the follower's setting: closed by hand stays flat)";

/// Whether a sync row records a follower left flat by its setting, not a correction: it has no
/// order (a correction always has a side).
fn left_flat(row: &CopyLogEntry) -> bool {
    row.status == CopyStatus::Skipped && row.follower_side.is_none()
}

/// A correction that opened a follower's position, for the protection that follows it.
struct Corrected<'a> {
    owner: UserId,
    leader: &'a Leader,
    follower: &'a Follower,
    /// The follower's login.
    login: BrokerAccountId,
    /// The leader's contract.
    contract: &'a str,
    target: &'a engine::Target,
    /// The follower's new position's direction.
    direction: Direction,
    /// The correction's leader event id (`sync:…`).
    event_id: &'a str,
}

impl Copier {
    /// Checks every tracked leader's followers every `every`, and after every leader fill,
    /// until `stop`.
    pub(crate) async fn sync_loop(&self, every: Duration, stop: CancellationToken) {
        self.seed_at_start().await;
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

    /// Seeds the tracked position of every contract an enabled leader in automatic mode
    /// holds at its broker when the copier starts, from the broker: a follower that drifted
    /// while the copier was down is corrected without waiting for the leader's next fill, and
    /// that next fill gets its "before" from the broker rather than the store. Only a position
    /// whose newest fills of the day (every fill at the newest time) the copy log has: the
    /// copier handled what made it and no fill of it is still on its way — the same anchor
    /// as the catch-up after a take-over ([`engine::Positions::seed_handled`]: a redelivery of
    /// one of those fills gets its change back, an older fill changes nothing). A leader that
    /// cannot be read, a position with no fill of the day (carried over) or whose newest fill
    /// is not copied (still on its way, or handled without a copy) are left to the next fill.
    async fn seed_at_start(&self) {
        let leaders = match self.store.system().copying_leaders().await {
            Ok(leaders) => leaders,
            Err(e) => {
                tracing::warn!(error = %e, "the leaders could not be read at start: each leader contract is tracked from its next fill");
                return;
            }
        };
        let mut seeded = 0;
        for leader in leaders {
            // Never while a fill is handled: no fill is copied between the reads below.
            let _gate = self.gate.lock().await;
            match self.seed_leader(&leader).await {
                Ok(0) => {}
                Ok(n) => {
                    seeded += n;
                    self.leaders.lock().insert(leader.sub_account, leader.owner);
                }
                Err(e) => {
                    tracing::warn!(leader = %leader.id, error = %e, "the leader's positions could not be read at start: tracked from its next fill");
                }
            }
        }
        if seeded > 0 {
            tracing::info!(
                positions = seeded,
                "leader positions seeded from the broker at start"
            );
        }
    }

    /// The leader's positions at its broker seeded (see [`Copier::seed_at_start`]); returns
    /// how many.
    async fn seed_leader(&self, leader: &Leader) -> Result<usize, Failure> {
        let owner = leader.owner;
        let accounts = self.store.accounts();
        let sub = accounts.sub_account(owner, leader.sub_account).await?;
        let login = accounts.get(owner, sub.broker_account).await?;
        let broker = self
            .brokers
            .for_account(&login)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let account = AccountId(sub.broker_sub_account_id.clone());
        let read_fills = async || {
            broker
                .fills(&account)
                .await
                .map_err(|e| Failure::Broker(e.to_string()))
        };
        // The positions read between two reads of the fills that agree: no fill in between.
        let fills = read_fills().await?;
        let held: Vec<_> = broker
            .positions(&account)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?
            .into_iter()
            .filter(|p| p.net_qty != 0)
            .collect();
        if held.is_empty() {
            return Ok(0);
        }
        if read_fills().await?.len() != fills.len() {
            return Err(Failure::Broker(
                "the leader filled while its positions were read: tracked from its next fill"
                    .into(),
            ));
        }
        // The leader fills copied, with the contract name the copy used.
        let copied: HashMap<String, String> = self
            .store
            .copying()
            .copy_log(
                owner,
                &CopyLogQuery {
                    leader: Some(leader.id),
                    limit: 500,
                    ..CopyLogQuery::default()
                },
            )
            .await?
            .into_iter()
            .filter_map(|r| Some((r.leader_fill_id?, r.leader_symbol)))
            .collect();
        let sub_key = leader.sub_account.to_string();
        let mut seeded = 0;
        for position in held {
            let mut of: Vec<_> = fills
                .iter()
                .filter(|f| f.contract == position.contract)
                .collect();
            of.sort_by_key(|f| (f.timestamp, f.id.to_string()));
            let Some(newest) = of.last() else { continue };
            let last_at = newest.timestamp;
            let handled: Vec<(String, i64)> = of
                .iter()
                .filter(|f| f.timestamp == last_at)
                .map(|f| (f.id.to_string(), engine::signed(f.side, f.qty)))
                .collect();
            let contract = copied.get(&newest.id.to_string());
            let Some(contract) =
                contract.filter(|_| handled.iter().all(|(id, _)| copied.contains_key(id)))
            else {
                tracing::debug!(leader = %leader.id, contract = %position.contract, "the leader's newest fill is not copied: tracked from its next fill");
                continue;
            };
            let mut positions = self.positions.lock();
            if !positions.knows(&sub_key, contract) {
                positions.seed_handled(&sub_key, contract, position.net_qty, last_at, &handled);
                seeded += 1;
            }
        }
        Ok(seeded)
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
        let traders = self.traded_accounts(owner).await?;
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

    /// The leader's take-profit and stop of its `direction` position on `contract`, read
    /// from its working orders at its broker (a correction that opens a follower's position).
    async fn protection_at_broker(
        &self,
        owner: UserId,
        leader: &Leader,
        contract: &str,
        direction: Direction,
    ) -> Result<engine::LeaderProtection, Failure> {
        let accounts = self.store.accounts();
        let leader_sub = accounts.sub_account(owner, leader.sub_account).await?;
        let login = accounts.get(owner, leader_sub.broker_account).await?;
        let broker = self
            .brokers
            .for_account(&login)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let resolved = broker
            .resolve_contract(contract)
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        let working = broker
            .working_orders(&AccountId(leader_sub.broker_sub_account_id.clone()))
            .await
            .map_err(|e| Failure::Broker(e.to_string()))?;
        Ok(engine::leader_protection(&working, &resolved.id, direction))
    }

    /// Sets the leader's take-profit and stop (those the follower copies) on a follower whose
    /// correction opened its position: one protection [`CopyIntent`] per level, at the
    /// leader's price mapped onto the follower's instrument and tick, each with its copy log
    /// row (`syncprotect:<correction>:<kind>`, recorded before it is published). ORDERS is
    /// serial per account, so each runs once the correction is done, against the follower's
    /// real position (a follower the correction did not put in the position is left alone,
    /// with the reason in the row).
    async fn protect_correction(
        &self,
        c: &Corrected<'_>,
        protection: &engine::LeaderProtection,
    ) -> Result<(), Failure> {
        let copying = self.store.copying();
        for (kind, wanted) in [
            (ProtectionKind::TakeProfit, c.follower.copy_tp),
            (ProtectionKind::Stop, c.follower.copy_sl),
        ] {
            let Some(level) = protection.of(kind).filter(|_| wanted) else {
                continue;
            };
            let Some(price) =
                engine::mapped_price(&c.target.symbol, c.direction, kind, level.price)
            else {
                tracing::warn!(follower = %c.follower.id, symbol = %c.target.symbol, "the leader's {} cannot be put on the follower's instrument (unknown): the correction goes without it", kind.name());
                continue;
            };
            let event_id = format!(
                "syncprotect{}:{}",
                c.event_id.trim_start_matches("sync"),
                kind.name()
            );
            let recorded = copying
                .record_copy(
                    c.owner,
                    NewCopy {
                        id: CopyLogId::new(),
                        leader: c.leader.id,
                        follower: c.follower.id,
                        trigger: CopyTrigger::Sync,
                        leader_fill_id: Some(event_id.clone()),
                        leader_order_id: Some(level.order.id.to_string()),
                        leader_symbol: c.contract.to_owned(),
                        follower_symbol: c.target.symbol.clone(),
                        leader_side: Some(level.order.side),
                        follower_side: Some(c.direction.exit_side()),
                        leader_quantity: level.order.qty.unwrap_or(0),
                        follower_quantity: 0,
                        leader_price: Some(level.price),
                        status: CopyStatus::Pending,
                        error: Some(format!(
                            "protection after a correction: the leader's {} at {}, the \
                             follower's set to {}",
                            kind.name(),
                            level.price.normalize(),
                            price.normalize()
                        )),
                    },
                )
                .await?;
            if recorded == CopyRecorded::AlreadyCopied {
                metrics::already_copied();
                continue;
            }
            let intent = IntentMessage::copy(
                c.owner,
                c.follower.sub_account,
                c.login,
                chrono::Utc::now(),
                CopyIntent {
                    leader_sub_account_id: c.leader.sub_account,
                    leader_event_id: event_id.clone(),
                    follower_id: c.follower.id,
                    symbol: c.target.symbol.clone(),
                    leader: LeaderChange {
                        symbol: c.contract.to_owned(),
                        prev_net: 0,
                        new_net: 0,
                        price: Some(level.price),
                    },
                    step: CopyAction::Nothing,
                    take_profit: None,
                    stop_loss: None,
                    max_lag_secs: None,
                    protection: Some(CopyProtection {
                        direction: c.direction,
                        kind,
                        price,
                    }),
                },
            );
            self.send(intent).await?;
            self.accepted(c.owner, c.follower.id, &event_id).await?;
            // The follower's protection is now at this price: the leader's next event at it
            // is no news.
            self.remember(c.follower.id, level.order.id.to_string(), level.price);
            metrics::protection("published");
            tracing::info!(follower = %c.follower.id, kind = kind.name(), %price, "protection after a correction published");
        }
        Ok(())
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
            if follower.closed_by_hand_stays_flat && held == 0 {
                // The follower's setting: a position closed by hand stays flat. Nothing is
                // sent; the drift is logged once for this leader state. The leader's next
                // change is copied as usual: an entry from flat (or a reversal's new side)
                // enters the follower again, an add or trim finds nothing to change (the
                // executor skips it) and leaves it flat.
                if made.iter().any(left_flat) {
                    metrics::sync("left_flat");
                    continue;
                }
                let why = format!(
                    "drift: the follower holds 0 {symbol}, the leader's {net} {contract} implies \
                     {want}: {LEFT_FLAT}",
                    symbol = target.symbol
                );
                copying
                    .record_copy(
                        owner,
                        NewCopy {
                            id: CopyLogId::new(),
                            leader: leader.id,
                            follower: follower.id,
                            trigger: CopyTrigger::Sync,
                            leader_fill_id: Some(format!("{prefix}{}", made.len())),
                            leader_order_id: None,
                            leader_symbol: contract.clone(),
                            follower_symbol: target.symbol.clone(),
                            leader_side: None,
                            // No order: nothing is sent.
                            follower_side: None,
                            leader_quantity: u32::try_from(net.unsigned_abs()).unwrap_or(u32::MAX),
                            follower_quantity: 0,
                            leader_price: None,
                            status: CopyStatus::Skipped,
                            error: Some(why),
                        },
                    )
                    .await?;
                metrics::sync("left_flat");
                tracing::info!(follower = %follower.id, leader = %leader.id, %contract, want, "follower closed by hand: left flat (its setting), the drift logged");
                continue;
            }
            // A correction the executor refused (the kill switch, a loss limit, a step that no
            // longer fitted) is tried again only after a while: not a refused intent and a copy
            // log row every check. A follower left flat by its setting (since turned off) is
            // corrected at once.
            if let Some(last) = made.last().filter(|r| {
                !left_flat(r)
                    && matches!(r.status, CopyStatus::Skipped | CopyStatus::Error)
                    && r.created_at > chrono::Utc::now() - RETRY_REFUSED_AFTER
            }) {
                metrics::sync("held_back");
                tracing::debug!(follower = %follower.id, row = %last.id, "the last correction was refused: tried again later");
                continue;
            }
            let event_id = format!("{prefix}{}", made.len());
            // A correction that opens the follower's position (it missed the entry, or was
            // closed by hand; or across sides) is followed by the leader's take-profit and stop
            // working now: a follower is never put back in a position unprotected while its
            // leader's is protected. They are read before the correction is sent: a leader
            // unreadable now sends nothing (the next check tries again) rather than a
            // correction without its protection.
            let opens = Direction::of_net(want).filter(|d| Direction::of_net(held) != Some(*d));
            let protection = match opens {
                Some(direction) if follower.copy_tp || follower.copy_sl => Some((
                    direction,
                    self.protection_at_broker(owner, leader, contract, direction)
                        .await?,
                )),
                _ => None,
            };
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
                    // Levels given with an entry are measured from a reference price (the
                    // leader's fill, for a copy); a correction has none that is current, so its
                    // protection follows it at the leader's own prices (below).
                    take_profit: None,
                    stop_loss: None,
                    max_lag_secs: self.max_lag_secs,
                    protection: None,
                },
            );
            self.send(intent).await?;
            self.accepted(owner, follower.id, &event_id).await?;
            metrics::sync("corrected");
            tracing::info!(follower = %follower.id, leader = %leader.id, %contract, held, want, ?step, "follower drifted: correcting intent published");
            if let Some((direction, protection)) = protection {
                let corrected = Corrected {
                    owner,
                    leader,
                    follower,
                    login: sub.broker_account,
                    contract,
                    target: &target,
                    direction,
                    event_id: &event_id,
                };
                self.protect_correction(&corrected, &protection).await?;
            }
            return Ok(());
        }
        Ok(())
    }
}
