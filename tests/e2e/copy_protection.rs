//! The copier's protection copy (issue #22, "copy protection changes") on JetStream,
//! PostgreSQL and the simulator, with the connection manager (the leader's fills and order
//! events reach BROKER_EVENTS from the simulator's own event stream) and the harness's executor
//! (the followers' copy intents are executed): a leader entering by hand at the broker with a
//! bracket (take-profit and stop) → followers at multipliers 1 and 2, one mapped NQ → MNQ ×10
//! and one with `copy_sl` off hold their entries with the leader's take-profit and stop at the
//! mapped, tick-rounded prices (the last one without a stop); the leader moves its stop and
//! its target at the broker → the followers' orders move (same order ids, new prices), exactly
//! once (a leader order event delivered again, or an old one replayed, changes nothing); the
//! leader cancels its stop → the followers keep theirs, a `skipped` row each says so. A
//! follower closed by hand is re-entered by auto-sync with the leader's protection.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jt_broker::{AccountId, Broker, BrokerEvent, EventOrigin, OrderReport, OrderType};
use jt_bus::{Envelope, MessageId};
use jt_domain::Side;
use jt_domain::order::{BracketOrder, OrderKind, StopKind, StopSpec, TakeProfitLeg};
use jt_e2e::{ConnectionManager, Options, Platform, eventually};
use jt_messages::{BrokerEventMessage, ReportedEvent};
use jt_store::repo::copy::{ContractMapping, CopyLogEntry, CopyLogQuery, FollowerSettings};
use jt_store::{BrokerKind, CopyStatus, IntentSource, LeaderId};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const WAIT: Duration = Duration::from_secs(30);

/// A person at the broker, on sub-account `index`'s account.
struct Hand {
    broker: Arc<dyn Broker>,
    account: AccountId,
    contract: jt_broker::Contract,
}

impl Hand {
    async fn on(p: &Platform, root: &str, index: usize) -> Self {
        let login = p
            .store
            .accounts()
            .get(p.user, p.subs[index].broker_account)
            .await
            .unwrap();
        let access = jt_connect::AccessConfig::default().with_sim_url(p.sim.base_url());
        let broker = jt_connect::BrokerAccess::new(p.store.clone(), access)
            .for_account(&login)
            .await
            .unwrap();
        let contract = broker.resolve_contract(root).await.unwrap();
        Self {
            broker,
            account: AccountId::from(p.subs[index].broker_sub_account_id.as_str()),
            contract,
        }
    }

    /// Enters long `qty` by hand with a bracket (one take-profit 20 points up, a stop 10
    /// down); returns the legs once they work: (take-profit, stop).
    async fn long_with_bracket(&self, qty: u32) -> (OrderReport, OrderReport) {
        self.broker
            .place_bracket(
                &self.account,
                &self.contract,
                &BracketOrder {
                    client_order_id: "by-hand-bracket".into(),
                    side: Side::Buy,
                    qty,
                    entry: OrderKind::Market,
                    take_profits: vec![TakeProfitLeg {
                        qty,
                        distance: dec!(20),
                    }],
                    stop: Some(StopSpec {
                        distance: dec!(10),
                        kind: StopKind::Fixed,
                    }),
                    break_even: None,
                },
            )
            .await
            .unwrap();
        eventually("the leader's bracket legs", WAIT, async || {
            let (tps, stops) = self.protection().await;
            Some((tps.first()?.clone(), stops.first()?.clone()))
        })
        .await
    }

    /// The working exit orders of a long on this contract: (take-profits, stops).
    async fn protection(&self) -> (Vec<OrderReport>, Vec<OrderReport>) {
        let working: Vec<OrderReport> = self
            .broker
            .working_orders(&self.account)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.is_working_on(&self.contract.id) && o.side == Side::Sell)
            .collect();
        let (tps, stops) = working
            .into_iter()
            .partition(|o| o.order_type == Some(OrderType::Limit));
        (tps, stops)
    }
}

fn settings(multiplier: Decimal, copy_sl: bool) -> FollowerSettings {
    FollowerSettings {
        label: None,
        multiplier,
        max_position_size: None,
        enabled: true,
        copy_tp: true,
        copy_sl,
        daily_loss_limit: None,
        max_drawdown: None,
        closed_by_hand_stays_flat: false,
    }
}

async fn copy_log(p: &Platform, leader: LeaderId) -> Vec<CopyLogEntry> {
    p.store
        .copying()
        .copy_log(
            p.user,
            &CopyLogQuery {
                leader: Some(leader),
                limit: 500,
                ..CopyLogQuery::default()
            },
        )
        .await
        .unwrap()
}

async fn copy_intents(p: &Platform, followers: usize) -> usize {
    let mut n = 0;
    for i in 1..=followers {
        n += p
            .store
            .intents()
            .for_sub_account(p.user, p.subs[i].id, 500)
            .await
            .unwrap()
            .iter()
            .filter(|x| x.source == IntentSource::Copy)
            .count();
    }
    n
}

/// The rows of the leader's protection changes (not its fills).
fn protection_rows(log: &[CopyLogEntry], prefix: &str) -> Vec<CopyLogEntry> {
    log.iter()
        .filter(|r| {
            r.leader_fill_id
                .as_deref()
                .is_some_and(|id| id.starts_with(prefix))
        })
        .cloned()
        .collect()
}

/// Waits for the copier's BROKER_EVENTS consumer to have nothing pending.
async fn drained(p: &Platform) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    eventually("the copier to drain", WAIT, async || {
        let lag = p
            .bus
            .consumer_lag(&jt_bus::Definitions::new(p.bus.namespace()).copier_events)
            .await
            .unwrap();
        (lag.pending == 0 && lag.ack_pending == 0).then_some(())
    })
    .await;
}

/// Each follower's (take-profit, stop) prices and order ids once they are as `want` says
/// (`None`: no such order).
async fn followers_protected(
    followers: &[Hand],
    step: &str,
    want: &[(Option<Decimal>, Option<Decimal>)],
) -> Vec<(Option<String>, Option<String>)> {
    eventually(step, WAIT, async || {
        let mut ids = Vec::new();
        for (hand, (tp, sl)) in followers.iter().zip(want) {
            let (tps, stops) = hand.protection().await;
            let price = |o: &[OrderReport], stop: bool| -> Option<Vec<Decimal>> {
                o.iter()
                    .map(|x| if stop { x.stop_price } else { x.price })
                    .collect::<Option<Vec<_>>>()
            };
            let held_tp = price(&tps, false)?;
            let held_sl = price(&stops, true)?;
            if held_tp != tp.iter().copied().collect::<Vec<_>>()
                || held_sl != sl.iter().copied().collect::<Vec<_>>()
            {
                return None;
            }
            ids.push((
                tps.first().map(|o| o.id.0.clone()),
                stops.first().map(|o| o.id.0.clone()),
            ));
        }
        Some(ids)
    })
    .await
}

#[tokio::test]
async fn a_leaders_take_profit_and_stop_reach_its_followers_and_follow_its_moves_exactly_once() {
    let p = Platform::start(Options {
        accounts: 5,
        ..Options::default()
    })
    .await;
    let connmgr = ConnectionManager::start(&p).await;
    let copier_stop = connmgr.stop.child_token();
    let copier = jt_copier::start(
        jt_copier::CopierConfig::default(),
        &connmgr.ctx.clone().with_shutdown(copier_stop.clone()),
    )
    .await
    .unwrap();

    // The leader (ACC1) and its followers: ×1, ×2, ×1 mapped NQ → MNQ ×10, ×1 without stops.
    let copying = p.store.copying();
    let leader = copying
        .create_leader(p.user, p.subs[0].id, Some("leader"), true)
        .await
        .unwrap();
    for (i, (m, copy_sl)) in [
        (dec!(1), true),
        (dec!(2), true),
        (dec!(1), true),
        (dec!(1), false),
    ]
    .into_iter()
    .enumerate()
    {
        let f = copying
            .add_follower(p.user, leader.id, p.subs[i + 1].id, settings(m, copy_sl))
            .await
            .unwrap();
        if i == 2 {
            copying
                .set_mappings(
                    p.user,
                    f.id,
                    &[ContractMapping {
                        source_root: "NQ".into(),
                        target_root: "MNQ".into(),
                        quantity_ratio: dec!(10),
                    }],
                )
                .await
                .unwrap();
        }
    }
    let hand = Hand::on(&p, "NQ", 0).await;
    let followers = vec![
        Hand::on(&p, "NQ", 1).await,
        Hand::on(&p, "NQ", 2).await,
        Hand::on(&p, "MNQ", 3).await,
        Hand::on(&p, "NQ", 4).await,
    ];

    // The leader enters long 2 with a bracket: one take-profit 20 points up, a stop 10 down.
    let (leader_tp, leader_sl) = hand.long_with_bracket(2).await;
    let (tp, sl) = (leader_tp.price.unwrap(), leader_sl.stop_price.unwrap());
    assert_eq!(p.net_position(0), 2);
    eventually("the followers' entries", WAIT, async || {
        let held: Vec<i64> = (1..=4).map(|i| p.net_position(i)).collect();
        (held == [2, 4, 20, 2]).then_some(())
    })
    .await;
    let both = (Some(tp), Some(sl));
    let entered = followers_protected(
        &followers,
        "the followers protected as the leader",
        &[both, both, both, (Some(tp), None)],
    )
    .await;
    // Each follower's protection covers its whole position.
    for (hand, held) in followers.iter().zip([2u32, 4, 20, 2]) {
        let (tps, stops) = hand.protection().await;
        for o in tps.iter().chain(&stops) {
            assert_eq!(o.qty, Some(held), "{o:?}");
        }
    }

    // The leader moves its stop up 5 points, then its target up 10, at the broker.
    let (sl2, tp2) = (sl + dec!(5), tp + dec!(10));
    hand.broker
        .modify_order_price(&hand.account, &leader_sl, sl2)
        .await
        .unwrap();
    followers_protected(
        &followers,
        "the followers' stops moved",
        &[
            (Some(tp), Some(sl2)),
            (Some(tp), Some(sl2)),
            (Some(tp), Some(sl2)),
            (Some(tp), None),
        ],
    )
    .await;
    hand.broker
        .modify_order_price(&hand.account, &leader_tp, tp2)
        .await
        .unwrap();
    let both = (Some(tp2), Some(sl2));
    let moved = followers_protected(
        &followers,
        "the followers' targets moved",
        &[both, both, both, (Some(tp2), None)],
    )
    .await;
    // Moved in place: the same orders, new prices.
    assert_eq!(moved, entered);

    // One row per follower per move: three stop moves (the fourth follower copies no stop),
    // four target moves; each executed. (Rows at the entry's prices exist when the leader's
    // legs showed at the broker only after its entry fill was copied: they set the followers'
    // protection then.)
    let log = eventually("the moves' rows executed", WAIT, async || {
        let rows: Vec<CopyLogEntry> = protection_rows(&copy_log(&p, leader.id).await, "protect:")
            .into_iter()
            .filter(|r| r.leader_price == Some(sl2) || r.leader_price == Some(tp2))
            .collect();
        (rows.len() == 7
            && rows.iter().all(|r| {
                r.follower_intent.is_some()
                    && matches!(r.status, CopyStatus::Accepted | CopyStatus::Filled)
            }))
        .then_some(rows)
    })
    .await;
    assert_eq!(
        log.iter().filter(|r| r.leader_price == Some(sl2)).count(),
        3,
        "{log:#?}"
    );
    let mut pairs = std::collections::HashSet::new();
    for r in &log {
        assert!(pairs.insert((r.follower, r.leader_price)), "twice: {r:?}");
    }
    drained(&p).await;
    let rows = copy_log(&p, leader.id).await.len();
    let intents = copy_intents(&p, 4).await;

    // The stop's old state delivered again (past JetStream's duplicate window): the broker
    // says the stop is at sl2 now, and the followers are there already: nothing.
    let sub = &p.subs[0];
    let old = BrokerEventMessage {
        owner_id: p.user,
        broker_account_id: sub.broker_account,
        sub_account_id: sub.id,
        account: hand.account.clone(),
        broker: BrokerKind::Sim,
        origin: EventOrigin::Live,
        received_at: Utc::now(),
        event: ReportedEvent::Known(BrokerEvent::Order(leader_sl.clone())),
    };
    for _ in 0..2 {
        p.bus
            .publish(&Envelope::new(
                MessageId::new(format!("again-{}", uuid::Uuid::new_v4().simple())).unwrap(),
                old.clone(),
            ))
            .await
            .unwrap();
    }
    drained(&p).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(copy_log(&p, leader.id).await.len(), rows, "no new row");
    assert_eq!(copy_intents(&p, 4).await, intents, "no new intent");

    // The leader cancels its stop: the followers keep theirs (a stop is never removed on a
    // copy), one `skipped` row each that copies stops.
    hand.broker
        .cancel_order(&hand.account, &leader_sl.id)
        .await
        .unwrap();
    let kept = eventually("the kept rows", WAIT, async || {
        let rows = protection_rows(&copy_log(&p, leader.id).await, "unprotect:");
        (rows.len() == 3).then_some(rows)
    })
    .await;
    assert!(
        kept.iter().all(|r| r.status == CopyStatus::Skipped
            && r.error
                .as_deref()
                .is_some_and(|e| e.contains("keeps its own"))),
        "{kept:#?}"
    );
    drained(&p).await;
    let still = followers_protected(
        &followers,
        "the followers' stops kept",
        &[both, both, both, (Some(tp2), None)],
    )
    .await;
    assert_eq!(still, entered);
    assert_eq!(
        copy_intents(&p, 4).await,
        intents,
        "nothing sent for the cancel"
    );

    copier_stop.cancel();
    copier.wait().await.unwrap();
    connmgr.stop().await;
    p.stop().await;
}

/// Auto-sync puts a follower closed by hand back in the leader's position **with** the
/// leader's take-profit and stop (those it copies), as a copied entry is: never re-entered
/// unprotected.
#[tokio::test]
async fn a_follower_closed_by_hand_is_re_entered_by_auto_sync_with_the_leaders_protection() {
    const EVERY: Duration = Duration::from_secs(2);
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    let connmgr = ConnectionManager::start(&p).await;
    let copier_stop = connmgr.stop.child_token();
    let copier = jt_copier::start(
        jt_copier::CopierConfig {
            sync_every: Some(EVERY),
            ..jt_copier::CopierConfig::default()
        },
        &connmgr.ctx.clone().with_shutdown(copier_stop.clone()),
    )
    .await
    .unwrap();
    let copying = p.store.copying();
    let leader = copying
        .create_leader(p.user, p.subs[0].id, Some("leader"), true)
        .await
        .unwrap();
    for (i, copy_sl) in [true, false].into_iter().enumerate() {
        copying
            .add_follower(
                p.user,
                leader.id,
                p.subs[i + 1].id,
                settings(dec!(1), copy_sl),
            )
            .await
            .unwrap();
    }
    let hand = Hand::on(&p, "NQ", 0).await;
    let followers = vec![Hand::on(&p, "NQ", 1).await, Hand::on(&p, "NQ", 2).await];
    let (leader_tp, leader_sl) = hand.long_with_bracket(1).await;
    let (tp, sl) = (leader_tp.price.unwrap(), leader_sl.stop_price.unwrap());
    let want = [(Some(tp), Some(sl)), (Some(tp), None)];
    followers_protected(&followers, "the copies protected", &want).await;

    // Both followers are closed by hand at their broker (position and orders): auto-sync
    // re-enters each within a few checks, with the leader's levels.
    for f in &followers {
        f.broker.flatten_account(&f.account).await.unwrap();
    }
    eventually("both followers flat", WAIT, async || {
        (p.net_position(1) == 0 && p.net_position(2) == 0).then_some(())
    })
    .await;
    eventually("both followers re-entered", WAIT, async || {
        (p.net_position(1) == 1 && p.net_position(2) == 1).then_some(())
    })
    .await;
    followers_protected(&followers, "the re-entries protected", &want).await;
    let corrections: Vec<CopyLogEntry> = copy_log(&p, leader.id)
        .await
        .into_iter()
        .filter(|r| {
            r.leader_fill_id
                .as_deref()
                .is_some_and(|id| id.starts_with("sync:"))
        })
        .collect();
    assert_eq!(
        corrections.len(),
        2,
        "one correction each: {corrections:#?}"
    );
    // Then the leader's levels, one protection row per level copied, each executed.
    let protected = eventually("the protection rows executed", WAIT, async || {
        let rows: Vec<CopyLogEntry> =
            protection_rows(&copy_log(&p, leader.id).await, "syncprotect:");
        (rows.len() == 3
            && rows.iter().all(|r| {
                r.follower_intent.is_some()
                    && matches!(r.status, CopyStatus::Accepted | CopyStatus::Filled)
            }))
        .then_some(rows)
    })
    .await;
    assert_eq!(
        protected
            .iter()
            .filter(|r| r.leader_price == Some(sl))
            .count(),
        1,
        "only the first follower copies stops: {protected:#?}"
    );
    // Each follower's protection covers its position once: a take-profit (and a stop for the
    // one that copies stops), never two.
    for (f, stops) in followers.iter().zip([1, 0]) {
        let (tps, held_stops) = f.protection().await;
        assert_eq!((tps.len(), held_stops.len()), (1, stops));
    }

    copier_stop.cancel();
    copier.wait().await.unwrap();
    connmgr.stop().await;
    p.stop().await;
}
