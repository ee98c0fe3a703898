//! The copier (issue 22 part 1) on JetStream, PostgreSQL and the simulator, with the
//! connection manager (the leader's fills reach BROKER_EVENTS from the simulator's own event
//! stream) and the harness's executor (the followers' copy intents are executed): a leader
//! trading by hand at the broker — entry, add, trim, reversal, flat — and four followers at
//! multipliers 1, 2 and 0.5 and one mapped NQ → MNQ ×10, every follower's position at the
//! simulator equal to the DOMAIN §10 table after every step; a redelivered leader fill copies
//! nothing (one copy log row per follower per fill); a copier restarted mid-sequence, or a
//! `jt copier` process killed right after leader fills, copies nothing twice and misses nothing; skipped followers logged with their reasons; two leaders
//! following each other never ping-pong; a Tradovate leader copied to a Webull follower and
//! to a ProjectX follower, a ProjectX leader copied to a Tradovate follower; auto-sync (a
//! follower closed by hand re-synced once, with the drift logged, never while a copy to it is
//! in flight, a refused correction not retried at every check; or left flat when its setting
//! says so; a drift made while the copier was down corrected after its restart without a new
//! leader fill); a manual trade through the API on the leader reaching every follower once.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use jt_broker::{AccountId, Broker, BrokerEvent, EventOrigin, FillReport};
use jt_bus::{Envelope, MessageId};
use jt_domain::Side;
use jt_domain::order::{OrderKind, OrderRequest};
use jt_e2e::{ConnectionManager, Options, Platform, eventually};
use jt_messages::{BrokerEventMessage, ReportedEvent};
use jt_store::repo::copy::{ContractMapping, CopyLogEntry, CopyLogQuery, FollowerSettings};
use jt_store::{BrokerKind, CopyStatus, IntentSource, LeaderId};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// The connection manager and the copier of a test.
struct Services {
    stop: CancellationToken,
    connmgr: ConnectionManager,
    copier: Option<(CancellationToken, jt_service::Running)>,
    ctx: jt_service::Context,
    config: jt_copier::CopierConfig,
}

impl Services {
    async fn start(p: &Platform) -> Self {
        Self::start_with(p, jt_copier::CopierConfig::default()).await
    }

    async fn start_with(p: &Platform, config: jt_copier::CopierConfig) -> Self {
        let connmgr = ConnectionManager::start(p).await;
        let mut services = Self {
            stop: connmgr.stop.clone(),
            ctx: connmgr.ctx.clone(),
            connmgr,
            copier: None,
            config,
        };
        services.start_copier().await;
        services
    }

    async fn start_copier(&mut self) {
        let stop = self.stop.child_token();
        let ctx = self.ctx.clone().with_shutdown(stop.clone());
        let copier = jt_copier::start(self.config.clone(), &ctx).await.unwrap();
        self.copier = Some((stop, copier));
    }

    async fn stop_copier(&mut self) {
        let (stop, copier) = self.copier.take().unwrap();
        stop.cancel();
        copier.wait().await.unwrap();
    }

    async fn stop(self) {
        self.stop.cancel();
        if let Some((_, copier)) = self.copier {
            copier.wait().await.unwrap();
        }
        self.connmgr.stop().await;
    }
}

/// A person trading the leader's account at the broker (not through the platform).
struct Hand {
    broker: Arc<dyn Broker>,
    account: AccountId,
    contract: jt_broker::Contract,
    n: u32,
}

impl Hand {
    async fn new(p: &Platform, root: &str) -> Self {
        Self::on(p, root, 0).await
    }

    /// A person trading sub-account `index` (a follower's, to make it drift).
    async fn on(p: &Platform, root: &str, index: usize) -> Self {
        let login = p
            .store
            .accounts()
            .get(p.user, p.subs[index].broker_account)
            .await
            .unwrap();
        let access = jt_connect::AccessConfig::default()
            .with_sim_url(p.sim.base_url())
            .with_projectx_url(p.sim.base_url());
        let broker = jt_connect::BrokerAccess::new(p.store.clone(), access)
            .for_account(&login)
            .await
            .unwrap();
        let contract = broker.resolve_contract(root).await.unwrap();
        Self {
            broker,
            account: AccountId::from(p.subs[index].broker_sub_account_id.as_str()),
            contract,
            n: 0,
        }
    }

    async fn trade(&mut self, side: Side, qty: u32) {
        self.n += 1;
        self.broker
            .place_order(
                &self.account,
                &self.contract,
                &OrderRequest {
                    client_order_id: format!("by-hand-{}", self.n),
                    side,
                    qty,
                    kind: OrderKind::Market,
                },
            )
            .await
            .unwrap();
    }
}

fn settings(multiplier: Decimal) -> FollowerSettings {
    FollowerSettings {
        label: None,
        multiplier,
        max_position_size: None,
        enabled: true,
        copy_tp: false,
        copy_sl: false,
        daily_loss_limit: None,
        max_drawdown: None,
        closed_by_hand_stays_flat: false,
    }
}

/// The leader with followers on sub-accounts 2… at these multipliers; the last one mapped
/// NQ → MNQ ×10 when `mapped`.
async fn group(p: &Platform, multipliers: &[Decimal], mapped: bool) -> LeaderId {
    let copying = p.store.copying();
    let leader = copying
        .create_leader(p.user, p.subs[0].id, Some("leader"), true)
        .await
        .unwrap();
    for (i, m) in multipliers.iter().enumerate() {
        let f = copying
            .add_follower(p.user, leader.id, p.subs[i + 1].id, settings(*m))
            .await
            .unwrap();
        if mapped && i + 1 == multipliers.len() {
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
    leader.id
}

/// Waits until every follower (sub-accounts 2…) holds `want` at the simulator.
async fn followers_hold(p: &Platform, step: &str, want: &[i64]) {
    followers_hold_within(p, step, want, WAIT).await;
}

async fn followers_hold_within(p: &Platform, step: &str, want: &[i64], wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        let held: Vec<i64> = (1..=want.len()).map(|i| p.net_position(i)).collect();
        if held == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{step}: the followers hold {held:?}, the table says {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
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

/// The five steps: (leader side, quantity), the leader's net after, each follower's net after
/// (multipliers 1, 2, 0.5, and 1 mapped NQ → MNQ ×10).
const STEPS: [(&str, Side, u32, [i64; 4]); 5] = [
    ("entry", Side::Buy, 2, [2, 4, 1, 20]),
    ("add", Side::Buy, 2, [4, 8, 2, 40]),
    // f(3) = round(1.5) = 2 at 0.5: that follower does not move.
    ("trim", Side::Sell, 1, [3, 6, 2, 30]),
    ("reversal", Side::Sell, 5, [-2, -4, -1, -20]),
    ("flat", Side::Buy, 2, [0, 0, 0, 0]),
];

#[tokio::test]
async fn a_leaders_trades_by_hand_reach_every_follower_as_the_table_says_exactly_once() {
    let p = Platform::start(Options {
        accounts: 5,
        ..Options::default()
    })
    .await;
    let services = Services::start(&p).await;
    let leader = group(&p, &[dec!(1), dec!(2), dec!(0.5), dec!(1)], true).await;
    let mut hand = Hand::new(&p, "NQ").await;

    let mut leader_net = 0;
    for (step, side, qty, want) in STEPS {
        hand.trade(side, qty).await;
        leader_net += jt_copier::engine::signed(side, qty);
        assert_eq!(p.net_position(0), leader_net, "{step}: the leader");
        followers_hold(&p, step, &want).await;
        let mapped = p.sim.admin().positions(Some(&p.subs[4].name)).unwrap();
        assert!(
            mapped
                .iter()
                .all(|x| x.net_pos == 0 || x.contract.starts_with("MNQ")),
            "{step}: the mapped follower trades MNQ: {mapped:?}"
        );
    }

    // One row per follower per leader fill; the trim skipped for the 0.5 follower.
    let fills: HashSet<String> = copy_log(&p, leader)
        .await
        .iter()
        .filter_map(|r| r.leader_fill_id.clone())
        .collect();
    let log = eventually("a copy log row per follower per fill", WAIT, async || {
        let log = copy_log(&p, leader).await;
        (log.len() == fills.len() * 4 && fills.len() >= STEPS.len()).then_some(log)
    })
    .await;
    let mut pairs = HashSet::new();
    for row in &log {
        assert!(
            pairs.insert((row.follower, row.leader_fill_id.clone())),
            "{row:?}"
        );
    }
    let skipped: Vec<_> = log
        .iter()
        .filter(|r| r.status == CopyStatus::Skipped)
        .collect();
    assert_eq!(skipped.len(), 1, "{log:#?}");
    assert_eq!(skipped[0].leader_side, Some(Side::Sell));
    let intents = copy_intents(&p, 4).await;
    assert_eq!(intents, log.len() - 1, "one copy intent per copied row");
    // The executor's outcome is written back: the follower's intent, status and latency.
    let log = eventually("every copy's outcome in the log", WAIT, async || {
        let log = copy_log(&p, leader).await;
        log.iter()
            .filter(|r| r.status != CopyStatus::Skipped)
            .all(|r| {
                r.follower_intent.is_some()
                    && r.latency_ms.is_some()
                    && matches!(r.status, CopyStatus::Filled | CopyStatus::Accepted)
            })
            .then_some(log)
    })
    .await;
    assert!(
        log.iter()
            .filter(|r| r.status != CopyStatus::Skipped)
            .all(|r| r.follower_order_id.is_some()),
        "{log:#?}"
    );

    // A leader fill delivered again under another message id (past JetStream's duplicate
    // window), and the simulator's own replay of the session: nothing is copied twice.
    let entry = log
        .iter()
        .filter(|r| r.leader_side == Some(Side::Buy))
        .min_by_key(|r| r.created_at)
        .unwrap();
    let sub = &p.subs[0];
    let again = BrokerEventMessage {
        owner_id: p.user,
        broker_account_id: sub.broker_account,
        sub_account_id: sub.id,
        account: AccountId::from(sub.broker_sub_account_id.as_str()),
        broker: BrokerKind::Sim,
        origin: EventOrigin::Live,
        received_at: Utc::now(),
        event: ReportedEvent::Known(BrokerEvent::Fill(FillReport {
            id: entry.leader_fill_id.clone().unwrap().into(),
            order_id: entry.leader_order_id.clone().unwrap().into(),
            account: AccountId::from(sub.broker_sub_account_id.as_str()),
            contract: entry.leader_symbol.clone().into(),
            symbol: Some(entry.leader_symbol.clone()),
            side: Side::Buy,
            qty: entry.leader_quantity,
            price: entry.leader_price.unwrap(),
            timestamp: Utc::now(),
            trade_date: None,
            client_order_id: Some("by-hand-1".into()),
        })),
    };
    p.bus
        .publish(&Envelope::new(
            MessageId::new(format!("redelivered-{}", uuid::Uuid::new_v4().simple())).unwrap(),
            again,
        ))
        .await
        .unwrap();
    let _ = p.sim.admin().replay(Some(&sub.name));
    let lag_gone = async || {
        let lag = p
            .bus
            .consumer_lag(&jt_bus::Definitions::new(p.bus.namespace()).copier_events)
            .await
            .unwrap();
        (lag.pending == 0 && lag.ack_pending == 0).then_some(())
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    eventually("the copier to drain", WAIT, lag_gone).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(copy_log(&p, leader).await.len(), log.len(), "no new copy");
    assert_eq!(copy_intents(&p, 4).await, intents, "no new intent");
    followers_hold(&p, "after the redelivery", &[0, 0, 0, 0]).await;
    let per_follower: HashMap<_, usize> = log.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.follower).or_default() += 1;
        m
    });
    assert!(per_follower.values().all(|n| *n == fills.len()));

    services.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_copier_restarted_mid_sequence_copies_nothing_twice_and_misses_nothing() {
    let p = Platform::start(Options {
        accounts: 5,
        ..Options::default()
    })
    .await;
    let mut services = Services::start(&p).await;
    // The positions service keeps the store's picture of the leader, which a restarted copier
    // seeds its tracking from.
    let positions_stop = services.stop.child_token();
    let positions = jt_positions::start(
        jt_positions::PositionsConfig {
            reconcile_every: Duration::from_secs(3600),
            ..jt_positions::PositionsConfig::default()
        },
        &services.ctx.clone().with_shutdown(positions_stop.clone()),
    )
    .await
    .unwrap();
    let leader = group(&p, &[dec!(1), dec!(2), dec!(0.5), dec!(1)], true).await;
    let mut hand = Hand::new(&p, "NQ").await;
    let stored = async |net: i64| {
        let held: i64 = p
            .store
            .broker()
            .positions(p.user, p.subs[0].id)
            .await
            .unwrap()
            .iter()
            .map(|x| x.net_quantity)
            .sum();
        (held == net).then_some(())
    };

    let mut leader_net = 0;
    for (i, (step, side, qty, want)) in STEPS.into_iter().enumerate() {
        // Stopped before the trim and before the flat: the fill waits on the durable
        // consumer, and the tracked position (and the contract's name) is gone with the
        // process.
        let restart = i == 2 || i == 4;
        if restart {
            services.stop_copier().await;
        }
        hand.trade(side, qty).await;
        leader_net += jt_copier::engine::signed(side, qty);
        if restart {
            eventually("the store to hold the leader's trim", WAIT, async || {
                stored(leader_net).await
            })
            .await;
            services.start_copier().await;
        }
        followers_hold(&p, step, &want).await;
    }
    let log = eventually("a copy log row per follower per fill", WAIT, async || {
        let log = copy_log(&p, leader).await;
        let fills: HashSet<_> = log
            .iter()
            .filter_map(|r| r.leader_fill_id.clone())
            .collect();
        (log.len() == fills.len() * 4 && fills.len() >= STEPS.len()).then_some(log)
    })
    .await;
    let mut pairs = HashSet::new();
    for row in &log {
        assert!(
            pairs.insert((row.follower, row.leader_fill_id.clone())),
            "{row:?}"
        );
    }
    assert_eq!(
        copy_intents(&p, 4).await,
        log.iter()
            .filter(|r| r.status != CopyStatus::Skipped)
            .count()
    );

    // Restarted once more, then the whole session replayed (as at the session's end, past
    // JetStream's duplicate window: new message ids): nothing is copied again, and the next
    // trade starts from the leader's real position.
    services.stop_copier().await;
    services.start_copier().await;
    let day = jt_domain::session::trading_day(Utc::now());
    let sub = &p.subs[0];
    for f in p
        .store
        .broker()
        .fills_of_day(p.user, sub.id, day)
        .await
        .unwrap()
    {
        let replayed = BrokerEventMessage {
            owner_id: p.user,
            broker_account_id: sub.broker_account,
            sub_account_id: sub.id,
            account: AccountId::from(sub.broker_sub_account_id.as_str()),
            broker: BrokerKind::Sim,
            origin: EventOrigin::Snapshot,
            received_at: Utc::now(),
            event: ReportedEvent::Known(BrokerEvent::Fill(FillReport {
                id: f.broker_fill_id.clone().into(),
                order_id: f.broker_order_id.clone().into(),
                account: AccountId::from(sub.broker_sub_account_id.as_str()),
                contract: f.contract.clone().into(),
                symbol: None,
                side: f.side,
                qty: f.quantity,
                price: f.price,
                timestamp: f.filled_at,
                trade_date: Some(f.trading_day),
                client_order_id: f.client_order_id.clone(),
            })),
        };
        p.bus
            .publish(&Envelope::new(
                MessageId::new(format!("replayed-{}", uuid::Uuid::new_v4().simple())).unwrap(),
                replayed,
            ))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    eventually("the copier to drain the replay", WAIT, async || {
        let lag = p
            .bus
            .consumer_lag(&jt_bus::Definitions::new(p.bus.namespace()).copier_events)
            .await
            .unwrap();
        (lag.pending == 0 && lag.ack_pending == 0).then_some(())
    })
    .await;
    assert_eq!(
        copy_log(&p, leader).await.len(),
        log.len(),
        "nothing copied again"
    );
    hand.trade(Side::Buy, 1).await;
    followers_hold(&p, "an entry after the replay", &[1, 2, 1, 10]).await;

    positions_stop.cancel();
    positions.wait().await.unwrap();
    services.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn skipped_followers_are_logged_with_their_reason_and_two_leaders_following_each_other_never_ping_pong()
 {
    let p = Platform::start(Options {
        accounts: 5,
        ..Options::default()
    })
    .await;
    let services = Services::start(&p).await;
    let copying = p.store.copying();
    // ACC1 leads ACC2 (disabled), ACC3 (locked out), ACC4 (its own webhook trader), ACC5.
    let a = copying
        .create_leader(p.user, p.subs[0].id, Some("A"), true)
        .await
        .unwrap();
    let disabled = FollowerSettings {
        enabled: false,
        ..settings(dec!(1))
    };
    copying
        .add_follower(p.user, a.id, p.subs[1].id, disabled)
        .await
        .unwrap();
    let locked = copying
        .add_follower(p.user, a.id, p.subs[2].id, settings(dec!(1)))
        .await
        .unwrap();
    copying
        .set_lockout(p.user, locked.id, Some("daily loss limit"))
        .await
        .unwrap();
    copying
        .add_follower(p.user, a.id, p.subs[3].id, settings(dec!(1)))
        .await
        .unwrap();
    let _ = p
        .recorder(
            jt_domain::Settings::default(),
            &[(3, jt_domain::SettingsOverrides::default())],
        )
        .await;
    copying
        .add_follower(p.user, a.id, p.subs[4].id, settings(dec!(1)))
        .await
        .unwrap();
    // ACC5 leads ACC1 back.
    let b = copying
        .create_leader(p.user, p.subs[4].id, Some("B"), true)
        .await
        .unwrap();
    copying
        .add_follower(p.user, b.id, p.subs[0].id, settings(dec!(1)))
        .await
        .unwrap();

    let mut hand = Hand::new(&p, "MNQ").await;
    hand.trade(Side::Buy, 1).await;
    followers_hold(&p, "entry", &[0, 0, 0, 1]).await;
    // The copy on ACC5 is not copied back to ACC1.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(p.net_position(0), 1, "no ping-pong");
    assert_eq!(p.net_position(4), 1);

    let log = eventually("four rows for A's entry", WAIT, async || {
        let log = copy_log(&p, a.id).await;
        (log.len() == 4).then_some(log)
    })
    .await;
    let reasons: Vec<String> = log
        .iter()
        .filter(|r| r.status == CopyStatus::Skipped)
        .map(|r| r.error.clone().unwrap_or_default())
        .collect();
    assert_eq!(reasons.len(), 3, "{log:#?}");
    for wanted in ["disabled", "locked out: daily loss limit", "webhook trader"] {
        assert!(
            reasons.iter().any(|r| r.contains(wanted)),
            "{wanted} in {reasons:?}"
        );
    }
    assert!(copy_log(&p, b.id).await.is_empty(), "B copied its copy");

    services.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_copy_recorded_but_never_published_is_published_on_the_redelivery() {
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    let services = Services::start(&p).await;
    let leader = group(&p, &[dec!(1), dec!(1)], false).await;
    let copying = p.store.copying();
    let first = copying.followers(p.user, leader).await.unwrap()[0].clone();
    let contract = p.sim.admin().front_month("MNQ").unwrap();
    // A copier recorded the copy to the first follower and stopped before publishing it.
    let fill_id = "crashed-1";
    let recorded = copying
        .record_copy(
            p.user,
            jt_store::repo::copy::NewCopy {
                id: jt_store::CopyLogId::new(),
                leader,
                follower: first.id,
                trigger: jt_store::CopyTrigger::Auto,
                leader_fill_id: Some(fill_id.into()),
                leader_order_id: Some("1".into()),
                leader_symbol: contract.clone(),
                follower_symbol: contract.clone(),
                leader_side: Some(Side::Buy),
                follower_side: Some(Side::Buy),
                leader_quantity: 1,
                follower_quantity: 1,
                leader_price: None,
                status: CopyStatus::Pending,
                error: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(recorded, jt_store::repo::copy::CopyRecorded::New);
    // The leader's fill comes again (its redelivery after the crash).
    let sub = &p.subs[0];
    let fill = BrokerEventMessage {
        owner_id: p.user,
        broker_account_id: sub.broker_account,
        sub_account_id: sub.id,
        account: AccountId::from(sub.broker_sub_account_id.as_str()),
        broker: BrokerKind::Sim,
        origin: EventOrigin::Live,
        received_at: Utc::now(),
        event: ReportedEvent::Known(BrokerEvent::Fill(FillReport {
            id: fill_id.into(),
            order_id: "1".into(),
            account: AccountId::from(sub.broker_sub_account_id.as_str()),
            contract: contract.clone().into(),
            symbol: Some(contract.clone()),
            side: Side::Buy,
            qty: 1,
            price: dec!(21000),
            timestamp: Utc::now(),
            trade_date: None,
            client_order_id: None,
        })),
    };
    p.bus
        .publish(&Envelope::new(
            MessageId::new(fill.message_id()).unwrap(),
            fill,
        ))
        .await
        .unwrap();
    followers_hold(&p, "entry", &[1, 1]).await;
    let log = eventually("both copies executed", WAIT, async || {
        let log = copy_log(&p, leader).await;
        (log.len() == 2
            && log
                .iter()
                .all(|r| r.status != CopyStatus::Pending && r.follower_intent.is_some()))
        .then_some(log)
    })
    .await;
    assert_eq!(copy_intents(&p, 2).await, 2, "{log:#?}");
    services.stop().await;
    p.stop().await;
}

/// The cause of the chaos run that lost 9 of 19 leader fills (docs/reliability.md): fills the
/// leader makes while no connection manager holds its login (a killed replica's lease not yet
/// expired, or none running) never reach BROKER_EVENTS — the next connection's sync snapshot
/// takes them as history, not news (`jt_tradovate` `on_sync`) — so the copier never sees them,
/// restarted or not. The copier reads them at the broker when the leader's position comes in
/// the next connection's snapshot (auto-sync, which would heal the followers later, is off).
#[tokio::test]
async fn leader_fills_made_while_no_connection_manager_holds_the_login_reach_the_followers() {
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    let config = jt_copier::CopierConfig {
        sync_every: None,
        ..jt_copier::CopierConfig::default()
    };
    let services = Services::start_with(&p, config.clone()).await;
    let leader = group(&p, &[dec!(1), dec!(2)], false).await;
    let mut hand = Hand::new(&p, "NQ").await;
    hand.trade(Side::Buy, 1).await;
    followers_hold(&p, "entry", &[1, 2]).await;

    // No connection manager holds the login (nor runs a copier): the leader adds twice.
    services.stop().await;
    hand.trade(Side::Buy, 1).await;
    hand.trade(Side::Buy, 1).await;
    eventually("the leader to hold 3", WAIT, async || {
        (p.net_position(0) == 3).then_some(())
    })
    .await;

    // A connection manager holds the login again; the leader adds once more.
    let services = Services::start_with(&p, config.clone()).await;
    hand.trade(Side::Buy, 1).await;
    followers_hold(&p, "the add after the gap", &[4, 8]).await;
    let rows = eventually("a copy log row per follower per fill", WAIT, async || {
        let log = copy_log(&p, leader).await;
        (log.len() == 8).then_some(log)
    })
    .await;
    let pairs: HashSet<_> = rows
        .iter()
        .map(|r| (r.follower, r.leader_fill_id.clone()))
        .collect();
    assert_eq!(pairs.len(), 8, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.status != CopyStatus::Skipped),
        "{rows:?}"
    );
    assert_eq!(copy_intents(&p, 2).await, 8);

    // Another take-over with nothing missed: nothing is copied again.
    services.stop().await;
    let services = Services::start_with(&p, config).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(copy_log(&p, leader).await.len(), 8);
    assert_eq!(copy_intents(&p, 2).await, 8);
    followers_hold(&p, "after the second take-over", &[4, 8]).await;
    services.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_copier_process_killed_right_after_leader_fills_copies_nothing_twice_and_misses_nothing()
{
    let p = Platform::start(Options {
        accounts: 5,
        ..Options::default()
    })
    .await;
    let mut services = Services::start(&p).await;
    services.stop_copier().await;
    let positions_stop = services.stop.child_token();
    let positions = jt_positions::start(
        jt_positions::PositionsConfig {
            reconcile_every: Duration::from_secs(3600),
            ..jt_positions::PositionsConfig::default()
        },
        &services.ctx.clone().with_shutdown(positions_stop.clone()),
    )
    .await
    .unwrap();
    let leader = group(&p, &[dec!(1), dec!(2), dec!(0.5), dec!(1)], true).await;
    let key = p.secret_key_hex();
    let sim_url = p.sim.base_url();
    let env = [
        ("JT_SECRET_KEY", key.as_str()),
        ("JT_SIM_URL", sim_url.as_str()),
    ];
    let mut copier = Some(p.spawn_jt("copier", &env).await);
    let mut hand = Hand::new(&p, "NQ").await;

    for (i, (step, side, qty, want)) in STEPS.into_iter().enumerate() {
        hand.trade(side, qty).await;
        if i == 2 || i == 3 {
            // SIGKILL while the fill is (perhaps) being handled, then a new process.
            tokio::time::sleep(Duration::from_millis(if i == 2 { 5 } else { 40 })).await;
            drop(copier.take());
            copier = Some(p.spawn_jt("copier", &env).await);
            // A fill the killed process held comes back after the consumer's ack wait (30 s).
            followers_hold_within(&p, step, &want, Duration::from_secs(75)).await;
        } else {
            followers_hold(&p, step, &want).await;
        }
    }
    let log = eventually("a copy log row per follower per fill", WAIT, async || {
        let log = copy_log(&p, leader).await;
        let fills: HashSet<_> = log
            .iter()
            .filter_map(|r| r.leader_fill_id.clone())
            .collect();
        (log.len() == fills.len() * 4 && fills.len() >= STEPS.len()).then_some(log)
    })
    .await;
    let mut pairs = HashSet::new();
    for row in &log {
        assert!(
            pairs.insert((row.follower, row.leader_fill_id.clone())),
            "{row:?}"
        );
    }
    assert_eq!(
        copy_intents(&p, 4).await,
        log.iter()
            .filter(|r| r.status != CopyStatus::Skipped)
            .count()
    );

    drop(copier);
    positions_stop.cancel();
    positions.wait().await.unwrap();
    services.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tradovate_leader_is_copied_to_a_webull_follower() {
    let mut p = Platform::start(Options {
        accounts: 1,
        ..Options::default()
    })
    .await;
    let wb = p.webull_account("WB1").await;
    let services = Services::start(&p).await;
    let copying = p.store.copying();
    let leader = copying
        .create_leader(p.user, p.subs[0].id, Some("tradovate"), true)
        .await
        .unwrap();
    copying
        .add_follower(p.user, leader.id, p.subs[wb].id, settings(dec!(2)))
        .await
        .unwrap();
    let mut hand = Hand::new(&p, "MNQ").await;
    let webull = async |want: i64| {
        let deadline = Instant::now() + WAIT;
        loop {
            let held = p.net_position(wb);
            if held == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Webull follower holds {held}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    hand.trade(Side::Buy, 1).await;
    webull(2).await;
    hand.trade(Side::Buy, 1).await;
    webull(4).await;
    hand.trade(Side::Sell, 2).await;
    webull(0).await;
    let log = copy_log(&p, leader.id).await;
    assert_eq!(log.len(), 3, "{log:#?}");
    services.stop().await;
    p.stop().await;
}

/// Waits until sub-account `index` holds `want` at the simulator.
async fn holds(p: &Platform, who: &str, index: usize, want: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let held = p.net_position(index);
        if held == want {
            return;
        }
        assert!(Instant::now() < deadline, "{who} holds {held}, not {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tradovate_leader_is_copied_to_a_projectx_follower() {
    let mut p = Platform::start(Options {
        accounts: 1,
        ..Options::default()
    })
    .await;
    let px_follower = p.projectx_account("PX1").await;
    let services = Services::start(&p).await;
    let copying = p.store.copying();

    // Tradovate → ProjectX: the leader's contract name (`NQZ6`) is what the follower trades;
    // the ProjectX adapter resolves it to its contract id (`CON.F.US.ENQ.Z26`) by name.
    let tradovate = copying
        .create_leader(p.user, p.subs[0].id, Some("tradovate"), true)
        .await
        .unwrap();
    copying
        .add_follower(
            p.user,
            tradovate.id,
            p.subs[px_follower].id,
            settings(dec!(2)),
        )
        .await
        .unwrap();
    let mut hand = Hand::new(&p, "NQ").await;
    hand.trade(Side::Buy, 1).await;
    holds(&p, "the ProjectX follower", px_follower, 2).await;
    hand.trade(Side::Buy, 1).await;
    holds(&p, "the ProjectX follower", px_follower, 4).await;
    hand.trade(Side::Sell, 2).await;
    holds(&p, "the ProjectX follower", px_follower, 0).await;
    let log = eventually("the ProjectX copies executed", WAIT, async || {
        let log = copy_log(&p, tradovate.id).await;
        (log.len() == 3 && log.iter().all(|r| r.follower_intent.is_some())).then_some(log)
    })
    .await;
    let named = |s: &str| s.starts_with("NQ") && s.len() == 4;
    for r in &log {
        assert!(named(&r.leader_symbol), "a contract name: {r:?}");
        assert_eq!(r.follower_symbol, r.leader_symbol, "{r:?}");
        assert!(
            matches!(r.status, CopyStatus::Filled | CopyStatus::Accepted),
            "{r:?}"
        );
    }

    services.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projectx_leader_is_copied_to_a_tradovate_follower() {
    let mut p = Platform::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .await;
    let px_leader = p.projectx_account("PX2").await;
    let services = Services::start(&p).await;
    let copying = p.store.copying();
    let named = |s: &str| s.starts_with("NQ") && s.len() == 4;
    // ProjectX → Tradovate: the leader's fills come from its user hub with ProjectX contract
    // ids; the copier names the contract (`NQZ6`) before the follower's Tradovate login
    // resolves it, mapped NQ → MNQ ×10 here.
    let projectx = copying
        .create_leader(p.user, p.subs[px_leader].id, Some("projectx"), true)
        .await
        .unwrap();
    let f = copying
        .add_follower(p.user, projectx.id, p.subs[1].id, settings(dec!(1)))
        .await
        .unwrap();
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
    let login = p.subs[px_leader].broker_account;
    eventually("the ProjectX leader's login connected", WAIT, async || {
        jt_connmgr::read_status(&p.bus, login)
            .await
            .unwrap()
            .filter(|s| s.state == jt_connmgr::LinkState::Connected)
    })
    .await;
    let mut px_hand = Hand::on(&p, "NQ", px_leader).await;
    assert!(
        px_hand.contract.id.to_string().starts_with("CON."),
        "a ProjectX contract id: {:?}",
        px_hand.contract
    );
    px_hand.trade(Side::Sell, 1).await;
    holds(&p, "the Tradovate follower", 1, -10).await;
    px_hand.trade(Side::Sell, 1).await;
    holds(&p, "the Tradovate follower", 1, -20).await;
    px_hand.trade(Side::Buy, 2).await;
    holds(&p, "the Tradovate follower", 1, 0).await;
    let log = eventually("the Tradovate copies executed", WAIT, async || {
        let log = copy_log(&p, projectx.id).await;
        (log.len() == 3 && log.iter().all(|r| r.follower_intent.is_some())).then_some(log)
    })
    .await;
    for r in &log {
        assert!(
            named(&r.leader_symbol),
            "the ProjectX contract id named: {r:?}"
        );
        assert_eq!(r.follower_symbol, format!("M{}", r.leader_symbol), "{r:?}");
    }
    services.stop().await;
    p.stop().await;
}

/// The auto-sync rows of a follower: trigger `sync`, and exactly those with a `sync:` leader
/// event id.
async fn sync_rows(p: &Platform, leader: LeaderId, follower: usize) -> Vec<CopyLogEntry> {
    let sub = p.subs[follower].id;
    let followers = p.store.copying().followers(p.user, leader).await.unwrap();
    let id = followers.iter().find(|f| f.sub_account == sub).unwrap().id;
    let rows: Vec<CopyLogEntry> = copy_log(p, leader)
        .await
        .into_iter()
        .filter(|r| r.follower == Some(id))
        .collect();
    for r in &rows {
        let corrects = r
            .leader_fill_id
            .as_deref()
            .is_some_and(|f| f.starts_with("sync:"));
        assert_eq!(
            r.trigger == jt_store::CopyTrigger::Sync,
            corrects,
            "a correction, and only a correction, has the sync trigger: {r:#?}"
        );
    }
    rows.into_iter()
        .filter(|r| r.trigger == jt_store::CopyTrigger::Sync)
        .collect()
}

#[tokio::test]
async fn a_follower_closed_by_hand_is_resynced_once_with_the_drift_logged_and_not_while_a_copy_is_in_flight()
 {
    const EVERY: Duration = Duration::from_secs(2);
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    let services = Services::start_with(
        &p,
        jt_copier::CopierConfig {
            sync_every: Some(EVERY),
            ..jt_copier::CopierConfig::default()
        },
    )
    .await;
    let leader = group(&p, &[dec!(1), dec!(2)], false).await;
    let mut hand = Hand::new(&p, "NQ").await;
    hand.trade(Side::Buy, 2).await;
    followers_hold(&p, "entry", &[2, 4]).await;
    let copied = eventually("both copies executed", WAIT, async || {
        let n = copy_intents(&p, 2).await;
        let log = copy_log(&p, leader).await;
        (n == 2 && log.iter().all(|r| r.follower_intent.is_some())).then_some(n)
    })
    .await;
    assert_eq!(copied, 2);

    // The first follower is closed by hand at its broker: back to 2 within a sync interval
    // (plus the executor's round trip), the drift logged.
    let started = Instant::now();
    Hand::on(&p, "NQ", 1).await.trade(Side::Sell, 2).await;
    followers_hold_within(&p, "closed by hand", &[0, 4], WAIT).await;
    followers_hold_within(&p, "re-synced", &[2, 4], EVERY * 3).await;
    let took = started.elapsed();
    let rows = sync_rows(&p, leader, 1).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert!(
        row.error
            .as_deref()
            .is_some_and(|e| e.contains("drift") && e.contains("holds 0")),
        "the drift is logged with its reason: {row:?}"
    );
    assert_eq!(row.follower_side, Some(Side::Buy));
    assert_eq!(row.follower_quantity, 2);
    assert_eq!(row.leader_quantity, 2);

    // Repeated checks send nothing more: one correcting intent, the follower at 2.
    tokio::time::sleep(EVERY * 3).await;
    assert_eq!(sync_rows(&p, leader, 1).await.len(), 1);
    assert_eq!(
        copy_intents(&p, 2).await,
        3,
        "two copies and one correction"
    );
    followers_hold_within(&p, "still in sync", &[2, 4], Duration::ZERO).await;
    let row = eventually("the correction's outcome logged", WAIT, async || {
        let rows = sync_rows(&p, leader, 1).await;
        rows.into_iter()
            .find(|r| r.follower_intent.is_some() && r.status != CopyStatus::Pending)
    })
    .await;
    assert!(
        matches!(row.status, CopyStatus::Filled | CopyStatus::Accepted),
        "{row:?}"
    );

    // While a copy to the second follower is in flight (recorded, not yet executed), its
    // drift is not corrected; once that copy is done, it is.
    let copying = p.store.copying();
    let second = copying
        .followers(p.user, leader)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.sub_account == p.subs[2].id)
        .unwrap();
    let in_flight = jt_store::CopyLogId::new();
    copying
        .record_copy(
            p.user,
            jt_store::repo::copy::NewCopy {
                id: in_flight,
                leader,
                follower: second.id,
                trigger: jt_store::CopyTrigger::Auto,
                leader_fill_id: Some("a-copy-in-flight".into()),
                leader_order_id: None,
                leader_symbol: "NQZ6".into(),
                follower_symbol: "NQZ6".into(),
                leader_side: Some(Side::Buy),
                follower_side: Some(Side::Buy),
                leader_quantity: 1,
                follower_quantity: 1,
                leader_price: None,
                status: CopyStatus::Pending,
                error: None,
            },
        )
        .await
        .unwrap();
    Hand::on(&p, "NQ", 2).await.trade(Side::Sell, 4).await;
    followers_hold_within(&p, "second closed by hand", &[2, 0], WAIT).await;
    tokio::time::sleep(EVERY * 3).await;
    followers_hold_within(&p, "not corrected in flight", &[2, 0], Duration::ZERO).await;
    assert!(sync_rows(&p, leader, 2).await.is_empty());
    copying
        .update_copy(
            p.user,
            in_flight,
            jt_store::repo::copy::CopyUpdate {
                status: Some(CopyStatus::Skipped),
                ..jt_store::repo::copy::CopyUpdate::default()
            },
        )
        .await
        .unwrap();
    followers_hold_within(&p, "second re-synced", &[2, 4], EVERY * 3).await;
    assert_eq!(sync_rows(&p, leader, 2).await.len(), 1);

    // A correction the executor refuses (the follower's kill switch) is not sent again at
    // every check: one refused row, the follower left flat.
    p.store
        .risk()
        .set_account_kill(p.user, p.subs[1].id, true, Some("e2e"))
        .await
        .unwrap();
    Hand::on(&p, "NQ", 1).await.trade(Side::Sell, 2).await;
    followers_hold_within(&p, "first closed by hand again", &[0, 4], WAIT).await;
    let refused = eventually("the second correction refused", WAIT, async || {
        let rows = sync_rows(&p, leader, 1).await;
        (rows.len() == 2 && rows.iter().any(|r| r.status == CopyStatus::Skipped)).then_some(rows)
    })
    .await;
    assert!(
        refused.iter().any(|r| r
            .leader_fill_id
            .as_deref()
            .is_some_and(|f| f.ends_with(":1"))),
        "a second drift at the same leader state is a new correction: {refused:#?}"
    );
    tokio::time::sleep(EVERY * 3).await;
    assert_eq!(
        sync_rows(&p, leader, 1).await.len(),
        2,
        "not retried at every check"
    );
    followers_hold_within(&p, "left flat while refused", &[0, 4], Duration::ZERO).await;
    eprintln!("closed by hand → re-synced in {took:?} (sync every {EVERY:?})");
    services.stop().await;
}

#[tokio::test]
async fn a_copier_restarted_while_a_follower_drifted_corrects_it_without_a_new_leader_fill() {
    const EVERY: Duration = Duration::from_secs(2);
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    let mut services = Services::start_with(
        &p,
        jt_copier::CopierConfig {
            sync_every: Some(EVERY),
            ..jt_copier::CopierConfig::default()
        },
    )
    .await;
    let leader = group(&p, &[dec!(1), dec!(2)], false).await;
    let mut hand = Hand::new(&p, "NQ").await;
    hand.trade(Side::Buy, 2).await;
    followers_hold(&p, "entry", &[2, 4]).await;
    eventually("both copies executed", WAIT, async || {
        let log = copy_log(&p, leader).await;
        (log.len() == 2 && log.iter().all(|r| r.follower_intent.is_some())).then_some(())
    })
    .await;

    // The copier stops; the first follower is closed by hand meanwhile: nothing corrects it.
    services.stop_copier().await;
    Hand::on(&p, "NQ", 1).await.trade(Side::Sell, 2).await;
    followers_hold_within(&p, "closed by hand", &[0, 4], WAIT).await;
    tokio::time::sleep(EVERY * 2).await;
    followers_hold_within(&p, "copier down", &[0, 4], Duration::ZERO).await;

    // Started again, the leader still long 2 and trading nothing: its position is seeded from
    // its broker at start, and the follower is corrected within a sync interval.
    let started = Instant::now();
    services.start_copier().await;
    followers_hold_within(&p, "corrected after the restart", &[2, 4], EVERY * 3).await;
    let took = started.elapsed();
    let rows = sync_rows(&p, leader, 1).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert!(
        rows[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("holds 0")),
        "{:?}",
        rows[0]
    );
    assert!(sync_rows(&p, leader, 2).await.is_empty());
    assert_eq!(
        copy_log(&p, leader)
            .await
            .iter()
            .filter(|r| r.trigger == jt_store::CopyTrigger::Auto)
            .count(),
        2,
        "no leader fill in between: only the entry's two copies"
    );

    // Restarted once more: the followers are in sync, nothing is sent again.
    services.stop_copier().await;
    services.start_copier().await;
    tokio::time::sleep(EVERY * 3).await;
    assert_eq!(sync_rows(&p, leader, 1).await.len(), 1);
    assert_eq!(
        copy_intents(&p, 2).await,
        3,
        "two copies and one correction"
    );
    followers_hold_within(&p, "still in sync", &[2, 4], Duration::ZERO).await;

    // The leader's next fill is copied from the fill path's own seed, as before.
    hand.trade(Side::Buy, 1).await;
    followers_hold(&p, "add after the restart", &[3, 6]).await;
    eprintln!("restarted → drift corrected in {took:?} (sync every {EVERY:?})");
    services.stop().await;
}

/// Whether a sync row is a "left flat" one: the drift logged, no order.
fn left_flat(r: &CopyLogEntry) -> bool {
    r.status == CopyStatus::Skipped
        && r.follower_side.is_none()
        && r.follower_quantity == 0
        && r.error.as_deref().is_some_and(|e| {
            e.contains("drift") && e.contains("holds 0") && e.contains("left flat")
        })
}

#[tokio::test]
async fn a_follower_closed_by_hand_stays_flat_when_its_setting_says_so_until_the_leaders_next_entry()
 {
    const EVERY: Duration = Duration::from_secs(2);
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    let services = Services::start_with(
        &p,
        jt_copier::CopierConfig {
            sync_every: Some(EVERY),
            ..jt_copier::CopierConfig::default()
        },
    )
    .await;
    // Follower 1 re-synced (the default), follower 2 left flat when closed by hand.
    let leader = group(&p, &[dec!(1), dec!(1)], false).await;
    let copying = p.store.copying();
    let second = copying
        .followers(p.user, leader)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.sub_account == p.subs[2].id)
        .unwrap();
    let stays_flat = |on: bool| FollowerSettings {
        closed_by_hand_stays_flat: on,
        ..settings(dec!(1))
    };
    copying
        .update_follower(p.user, second.id, stays_flat(true))
        .await
        .unwrap();
    let mut hand = Hand::new(&p, "NQ").await;
    hand.trade(Side::Buy, 2).await;
    followers_hold(&p, "entry", &[2, 2]).await;
    eventually("both copies executed", WAIT, async || {
        let log = copy_log(&p, leader).await;
        (copy_intents(&p, 2).await == 2
            && log.len() == 2
            && log.iter().all(|r| r.follower_intent.is_some()))
        .then_some(())
    })
    .await;

    // Both closed by hand: the first is back at 2, the second stays flat with the drift
    // logged once and no order sent.
    Hand::on(&p, "NQ", 1).await.trade(Side::Sell, 2).await;
    Hand::on(&p, "NQ", 2).await.trade(Side::Sell, 2).await;
    followers_hold_within(&p, "first re-synced", &[2, 0], WAIT).await;
    let logged = eventually("the second's drift logged", WAIT, async || {
        let rows = sync_rows(&p, leader, 2).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(left_flat(&logged[0]), "{:#?}", logged[0]);
    assert_eq!(logged[0].leader_quantity, 2);
    tokio::time::sleep(EVERY * 3).await;
    followers_hold_within(&p, "left flat", &[2, 0], Duration::ZERO).await;
    assert_eq!(
        sync_rows(&p, leader, 2).await.len(),
        1,
        "the drift is logged once, not at every check"
    );
    assert_eq!(
        copy_intents(&p, 2).await,
        3,
        "two copies and the first follower's correction: nothing for the second"
    );

    // The leader adds: the first follower adds, the second is not entered afresh (the add
    // finds no position; the new leader state's drift is logged once more, nothing sent).
    hand.trade(Side::Buy, 1).await;
    followers_hold(&p, "add", &[3, 0]).await;
    let add = eventually("the add's copy to the second skipped", WAIT, async || {
        copy_log(&p, leader).await.into_iter().find(|r| {
            r.follower == Some(second.id)
                && r.trigger == jt_store::CopyTrigger::Auto
                && r.leader_quantity == 1
                && r.status == CopyStatus::Skipped
        })
    })
    .await;
    assert!(
        add.error.as_deref().is_some_and(|e| e.contains("to add")),
        "{add:?}"
    );
    eventually("the new leader state's drift logged", WAIT, async || {
        let rows = sync_rows(&p, leader, 2).await;
        (rows.len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(EVERY * 3).await;
    followers_hold_within(&p, "still flat after the add", &[3, 0], Duration::ZERO).await;
    let rows = sync_rows(&p, leader, 2).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(left_flat), "{rows:#?}");

    // The leader goes flat and enters again: that entry from flat is copied to both.
    hand.trade(Side::Sell, 3).await;
    followers_hold(&p, "flat", &[0, 0]).await;
    hand.trade(Side::Buy, 1).await;
    followers_hold(&p, "the next entry", &[1, 1]).await;

    // Closed by hand again: left flat (the drift logged for this leader state). Then the
    // setting turned off (no restart): re-synced at once — a "left flat" row does not hold a
    // correction back as a refused correction does.
    Hand::on(&p, "NQ", 2).await.trade(Side::Sell, 1).await;
    followers_hold_within(&p, "second closed by hand again", &[1, 0], WAIT).await;
    eventually("the third drift logged", WAIT, async || {
        (sync_rows(&p, leader, 2).await.len() == 3).then_some(())
    })
    .await;
    copying
        .update_follower(p.user, second.id, stays_flat(false))
        .await
        .unwrap();
    followers_hold_within(&p, "second re-synced", &[1, 1], EVERY * 3).await;
    let rows = sync_rows(&p, leader, 2).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert_eq!(rows.iter().filter(|r| left_flat(r)).count(), 3, "{rows:#?}");
    services.stop().await;
}

#[tokio::test]
async fn a_manual_trade_through_the_api_on_the_leader_reaches_every_follower_once() {
    let p = Platform::start(Options {
        accounts: 4,
        ..Options::default()
    })
    .await;
    let services = Services::start(&p).await;
    let leader = group(&p, &[dec!(1), dec!(2), dec!(0.5)], false).await;
    // Automatic mode off: the manual trigger copies without it.
    let copying = p.store.copying();
    copying
        .update_leader(p.user, leader, true, false)
        .await
        .unwrap();
    let api = jt_e2e::api::Client::login(
        &jt_e2e::api::serve_api(&p).await,
        &p.email(),
        jt_e2e::USER_PASSWORD,
    )
    .await;
    let on_leader = format!("/sub-accounts/{}/orders", p.subs[0].id);
    let trade = async |body: serde_json::Value, key: &str| {
        let (status, answer) = api
            .call(
                reqwest::Method::POST,
                &on_leader,
                Some(body),
                &[("idempotency-key", key)],
            )
            .await;
        assert_eq!(status, 202, "{answer}");
    };
    let rows_per_fill = async |followers: usize| {
        eventually(
            "one copy log row per follower per leader fill",
            WAIT,
            async || {
                let log = copy_log(&p, leader).await;
                let fills: HashSet<_> = log
                    .iter()
                    .filter_map(|r| r.leader_fill_id.clone())
                    .collect();
                (!fills.is_empty() && log.len() == fills.len() * followers).then_some(log)
            },
        )
        .await
    };

    let started = Instant::now();
    trade(
        serde_json::json!({"symbol": "NQ1!", "action": "entry", "direction": "long", "qty": 2}),
        "leader-entry",
    )
    .await;
    followers_hold(&p, "manual entry", &[2, 4, 1]).await;
    let took = started.elapsed();
    assert_eq!(p.net_position(0), 2, "the leader traded");
    let log = rows_per_fill(3).await;
    assert!(
        log.iter()
            .all(|r| r.trigger == jt_store::CopyTrigger::Manual),
        "{log:#?}"
    );

    // Automatic mode on: the leader's fill of the manual exit is copied once, as manual.
    copying
        .update_leader(p.user, leader, true, true)
        .await
        .unwrap();
    trade(
        serde_json::json!({"symbol": "NQ1!", "action": "exit"}),
        "leader-exit",
    )
    .await;
    followers_hold(&p, "manual exit", &[0, 0, 0]).await;
    assert_eq!(p.net_position(0), 0, "the leader is flat");
    // Settled: nothing more arrives (no second copy by automatic mode).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = rows_per_fill(3).await;
    let mut pairs = HashSet::new();
    for row in &log {
        assert_eq!(row.trigger, jt_store::CopyTrigger::Manual, "{row:?}");
        assert_ne!(row.status, CopyStatus::Skipped, "{row:?}");
        assert!(
            pairs.insert((row.follower, row.leader_fill_id.clone())),
            "{row:?}"
        );
    }
    assert_eq!(
        copy_intents(&p, 3).await,
        log.len(),
        "one intent per follower per leader fill"
    );
    followers_hold_within(&p, "still flat", &[0, 0, 0], Duration::ZERO).await;
    eprintln!("manual entry through the API → every follower holding: {took:?}");
    services.stop().await;
}
