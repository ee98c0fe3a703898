//! Intents from every source through the one executor path (issue 18): a signal and a control
//! on the same account, manual trades, copy steps and protection repairs published on ORDERS
//! as their services will publish them, executed at the simulator exactly once — a redelivered
//! intent (the same intent id under another message id, as after an acknowledgement was lost)
//! places nothing twice, because its client order ids derive from the intent id and the store
//! keys it by its idempotency key. And an intent queued in the shape written before sources
//! existed (schema version 1) still executes, with the client order id it always had.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use jt_bus::envelope::HEADER_SCHEMA_VERSION;
use jt_bus::{Envelope, Message, MessageId};
use jt_domain::copy::CopyAction;
use jt_domain::order::TimeInForce;
use jt_domain::settings::{PriceUnits, TpTarget};
use jt_domain::{
    Direction, EntryKind, EntryOrderSpec, ExitLevel, Settings, SettingsOverrides, Side,
    StopOverride,
};
use jt_e2e::admin::OrderRecord;
use jt_e2e::{Options, Platform, alert, assert_status, is_working};
use jt_messages::{
    ControlCause, ControlIntent, CopyIntent, IntentAction, IntentMessage, LeaderChange,
    ManualIntent, ManualTrade, RepairIntent,
};
use jt_store::repo::intents::Intent;
use jt_store::repo::traders::NewTrader;
use jt_store::{FollowerId, IntentKind, IntentSource, IntentStatus, SignalId, UserId};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

/// The platform's account `index` as an intent addresses it: owner, sub-account, login.
fn target(
    p: &Platform,
    index: usize,
) -> (UserId, jt_store::SubAccountId, jt_store::BrokerAccountId) {
    let sub = &p.subs[index];
    (p.user, sub.id, sub.broker_account)
}

/// Publishes `msg` on ORDERS as a source's service does.
async fn publish(p: &Platform, msg: &IntentMessage) {
    p.bus
        .publish(&Envelope::new(
            MessageId::new(msg.message_id()).unwrap(),
            msg.clone(),
        ))
        .await
        .unwrap();
}

/// Delivers `msg` again under another message id: what the executor sees when a delivery's
/// acknowledgement was lost (JetStream would drop a republish with the same id).
async fn redeliver(p: &Platform, msg: &IntentMessage) {
    p.bus
        .publish(&Envelope::new(
            MessageId::new(format!(
                "{}-again-{}",
                msg.message_id(),
                Uuid::new_v4().simple()
            ))
            .unwrap(),
            msg.clone(),
        ))
        .await
        .unwrap();
}

/// The intent once it reached a final state (or `accepted`).
async fn settled(p: &Platform, msg: &IntentMessage) -> Intent {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(i) = p.store.intents().get(p.user, msg.intent_id).await
            && (i.status.is_terminal() || i.status == IntentStatus::Accepted)
        {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "intent {} ({}) did not settle",
            msg.intent_id,
            msg.action_name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `msg` redelivered after it settled: it stays as it was, and the account receives nothing.
async fn redelivered_changes_nothing(p: &Platform, index: usize, msg: &IntentMessage) {
    let before = p.orders(index).len();
    let first = settled(p, msg).await;
    redeliver(p, msg).await;
    // The redelivery is handled (the execution is serial per account: a marker behind it on
    // the same account settles only after it).
    let marker = cancel_orders(p, index, Some("ES1!"));
    publish(p, &marker).await;
    settled(p, &marker).await;
    assert_eq!(p.orders(index).len(), before, "a redelivery sent nothing");
    let again = p.store.intents().get(p.user, msg.intent_id).await.unwrap();
    assert_eq!(
        (again.status, &again.status_reason),
        (first.status, &first.status_reason)
    );
}

/// A control that cancels the working orders of `symbol` (or of the account): a harmless
/// marker queued behind an account's other intents.
fn cancel_orders(p: &Platform, index: usize, symbol: Option<&str>) -> IntentMessage {
    let (owner, sub, login) = target(p, index);
    IntentMessage::control(
        owner,
        sub,
        login,
        chrono::Utc::now(),
        ControlIntent::cancel_orders(
            symbol.map(str::to_string),
            ControlCause::api(Uuid::now_v7(), owner, Some("test marker".into())),
        ),
    )
}

fn manual(p: &Platform, index: usize, key: &str, trade: ManualTrade) -> IntentMessage {
    let (owner, sub, login) = target(p, index);
    IntentMessage::manual(
        owner,
        sub,
        login,
        chrono::Utc::now(),
        ManualIntent {
            idempotency_key: key.into(),
            requested_by: owner,
            symbol: "MNQ1!".into(),
            trade,
            max_lag_secs: None,
        },
    )
}

fn working(orders: &[OrderRecord]) -> Vec<(String, String, u32, Option<Decimal>)> {
    let mut w: Vec<_> = orders
        .iter()
        .filter(|o| is_working(o))
        .map(|o| {
            (
                o.order_type.clone(),
                o.action.clone(),
                o.qty - o.filled_qty,
                o.price.or(o.stop_price),
            )
        })
        .collect();
    w.sort_by_key(|x| format!("{x:?}"));
    w
}

fn tp_sl(tp_ticks: Decimal, sl_ticks: Decimal) -> (Option<ExitLevel>, Option<StopOverride>) {
    (
        Some(ExitLevel::Distance {
            value: tp_ticks,
            units: Some(PriceUnits::Ticks),
        }),
        Some(StopOverride {
            level: ExitLevel::Distance {
                value: sl_ticks,
                units: Some(PriceUnits::Ticks),
            },
            stop_type: None,
        }),
    )
}

#[tokio::test]
async fn a_signal_and_a_control_on_one_account_run_through_the_same_executor_path() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        initial_position_size: 2,
        tp_targets: vec![TpTarget {
            value: dec!(40),
            trim: dec!(0),
        }],
        sl_enabled: true,
        sl_amount: dec!(20),
        ..Settings::default()
    };
    let (_, token) = p
        .recorder(settings, &[(0, SettingsOverrides::default())])
        .await;
    let signal = p.queued(&token, &alert("buy", "long", "")).await;
    let entry = p.settled_intents(signal, 1, WAIT).await;
    assert_status(&entry[0], IntentStatus::Accepted);
    assert_eq!(entry[0].source, IntentSource::Signal);
    p.wait_orders(0, WAIT, |o| o.iter().filter(|o| is_working(o)).count() == 2)
        .await;
    assert_eq!(p.net_position(0), 2);

    // An operator closes the symbol through the API: a control intent on the same account.
    let (owner, sub, login) = target(&p, 0);
    let close = IntentMessage::control(
        owner,
        sub,
        login,
        chrono::Utc::now(),
        ControlIntent::close_symbol(
            "MNQ1!",
            ControlCause::api(Uuid::now_v7(), owner, Some("end of day".into())),
        ),
    );
    publish(&p, &close).await;
    let closed = settled(&p, &close).await;
    assert_status(&closed, IntentStatus::Accepted);
    assert_eq!(
        (closed.source, closed.kind, closed.signal, closed.trader),
        (IntentSource::Control, IntentKind::Close, None, None)
    );
    let reason = closed.status_reason.clone().unwrap();
    assert!(
        reason.contains("closed") && reason.contains("end of day"),
        "{reason}"
    );
    assert_eq!(closed.idempotency_key, close.idempotency_key());
    let orders = p
        .wait_orders(0, WAIT, |o| {
            !o.iter().any(is_working) && p.net_position(0) == 0
        })
        .await;
    assert!(working(&orders).is_empty());
    // Both went through the same lifecycle: an execution row each, with the client order ids
    // derived from their intent ids.
    for id in [entry[0].id, closed.id] {
        let executions = p.store.intents().executions(p.user, id).await.unwrap();
        assert_eq!(executions.len(), 1, "{id}: {executions:?}");
    }
    redelivered_changes_nothing(&p, 0, &close).await;
    p.stop().await;
}

#[tokio::test]
async fn manual_trades_enter_with_their_bracket_exit_in_parts_and_run_once() {
    let p = Platform::start(Options::default()).await;
    let (tp, sl) = tp_sl(dec!(40), dec!(20));
    let entry = manual(
        &p,
        0,
        "buy-3",
        ManualTrade::Entry {
            direction: Direction::Long,
            qty: 3,
            order: None,
            reference_price: None,
            take_profit: tp,
            stop_loss: sl,
        },
    );
    publish(&p, &entry).await;
    let done = settled(&p, &entry).await;
    assert_status(&done, IntentStatus::Accepted);
    assert_eq!(
        (done.source, done.kind),
        (IntentSource::Manual, IntentKind::Entry)
    );
    let orders = p
        .wait_orders(0, WAIT, |o| o.iter().filter(|o| is_working(o)).count() == 2)
        .await;
    assert_eq!(p.net_position(0), 3);
    // MNQ at 21000: the target 40 ticks above, the stop 20 ticks below, both for 3.
    assert_eq!(
        working(&orders),
        vec![
            ("Limit".into(), "Sell".into(), 3, Some(dec!(21010))),
            ("Stop".into(), "Sell".into(), 3, Some(dec!(20995))),
        ]
    );
    // The same request again (the API retried it): the same intent, nothing sent.
    redelivered_changes_nothing(&p, 0, &entry).await;
    let again = manual(
        &p,
        0,
        "buy-3",
        ManualTrade::Exit { qty: None }, // the key decides: same key, same intent
    );
    assert_eq!(again.intent_id, entry.intent_id);

    // One contract off: the protection follows what remains.
    let trim = manual(&p, 0, "sell-1", ManualTrade::Exit { qty: Some(1) });
    publish(&p, &trim).await;
    let trimmed = settled(&p, &trim).await;
    assert_status(&trimmed, IntentStatus::Accepted);
    assert_eq!(trimmed.kind, IntentKind::Reduce);
    let orders = p.wait_orders(0, WAIT, |_| p.net_position(0) == 2).await;
    assert_eq!(
        working(&orders),
        vec![
            ("Limit".into(), "Sell".into(), 2, Some(dec!(21010))),
            ("Stop".into(), "Sell".into(), 2, Some(dec!(20995))),
        ]
    );
    redelivered_changes_nothing(&p, 0, &trim).await;

    // The kill switch refuses a manual entry, never an exit.
    p.store
        .risk()
        .set_account_kill(p.user, p.subs[0].id, true, Some("test"))
        .await
        .unwrap();
    let refused = manual(
        &p,
        0,
        "buy-more",
        ManualTrade::Entry {
            direction: Direction::Long,
            qty: 1,
            order: None,
            reference_price: None,
            take_profit: None,
            stop_loss: None,
        },
    );
    publish(&p, &refused).await;
    let skipped = settled(&p, &refused).await;
    assert_status(&skipped, IntentStatus::Skipped);
    assert!(
        skipped
            .status_reason
            .as_deref()
            .unwrap()
            .contains("kill switch"),
        "{skipped:?}"
    );
    let out = manual(&p, 0, "sell-all", ManualTrade::Exit { qty: None });
    publish(&p, &out).await;
    assert_status(&settled(&p, &out).await, IntentStatus::Accepted);
    p.wait_orders(0, WAIT, |o| {
        !o.iter().any(is_working) && p.net_position(0) == 0
    })
    .await;
    p.store
        .risk()
        .set_account_kill(p.user, p.subs[0].id, false, None)
        .await
        .unwrap();

    // A resting limit entry below the market rests, with its time in force.
    let rest = manual(
        &p,
        0,
        "limit",
        ManualTrade::Entry {
            direction: Direction::Long,
            qty: 1,
            order: Some(EntryOrderSpec {
                kind: EntryKind::Limit,
                limit_price: Some(dec!(20950.10)),
                stop_price: None,
                time_in_force: TimeInForce::Gtc,
            }),
            reference_price: None,
            take_profit: None,
            stop_loss: None,
        },
    );
    publish(&p, &rest).await;
    let rested = settled(&p, &rest).await;
    assert_status(&rested, IntentStatus::Accepted);
    let orders = p.wait_orders(0, WAIT, |o| o.iter().any(is_working)).await;
    assert_eq!(
        working(&orders),
        vec![("Limit".into(), "Buy".into(), 1, Some(dec!(20950.00)))],
        "the limit rounded to tick"
    );
    assert_eq!(p.net_position(0), 0);
    // An exit on a flat account has nothing to do, and says so.
    let nothing = manual(&p, 0, "sell-flat", ManualTrade::Exit { qty: None });
    publish(&p, &nothing).await;
    let skipped = settled(&p, &nothing).await;
    assert_status(&skipped, IntentStatus::Skipped);
    assert!(skipped.status_reason.unwrap().contains("flat"));
    p.stop().await;
}

fn copy(
    p: &Platform,
    index: usize,
    event: &str,
    follower: FollowerId,
    (prev_net, new_net): (i64, i64),
    step: CopyAction,
) -> IntentMessage {
    let (owner, sub, login) = target(p, index);
    IntentMessage::copy(
        owner,
        sub,
        login,
        chrono::Utc::now(),
        CopyIntent {
            leader_sub_account_id: p.subs[1].id,
            leader_event_id: event.into(),
            follower_id: follower,
            symbol: "MNQ1!".into(),
            leader: LeaderChange {
                symbol: "MNQ1!".into(),
                prev_net,
                new_net,
                price: Some(dec!(21000)),
            },
            step,
            take_profit: Some(dec!(21010)),
            stop_loss: Some(dec!(20990)),
            max_lag_secs: None,
            protection: None,
        },
    )
}

#[tokio::test]
async fn copy_steps_follow_the_leader_with_explicit_quantities_exactly_once() {
    let p = Platform::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .await;
    let follower = FollowerId(Uuid::now_v7());
    let run = |msg: IntentMessage| {
        let p = &p;
        async move {
            publish(p, &msg).await;
            let i = settled(p, &msg).await;
            assert_eq!(i.source, IntentSource::Copy);
            (msg, i)
        }
    };
    // Flat → long 2 with the leader's target and stop.
    let (entry, i) = run(copy(
        &p,
        0,
        "fill-1",
        follower,
        (0, 2),
        CopyAction::Entry {
            side: Side::Buy,
            qty: 2,
            take_profit: true,
            stop: true,
        },
    ))
    .await;
    assert_status(&i, IntentStatus::Accepted);
    let orders = p
        .wait_orders(0, WAIT, |o| o.iter().filter(|o| is_working(o)).count() == 2)
        .await;
    assert_eq!(p.net_position(0), 2);
    assert_eq!(
        working(&orders),
        vec![
            ("Limit".into(), "Sell".into(), 2, Some(dec!(21010))),
            ("Stop".into(), "Sell".into(), 2, Some(dec!(20990))),
        ]
    );
    redelivered_changes_nothing(&p, 0, &entry).await;

    // Larger: the difference only, no new target or stop; the stop grows to the position.
    let (add, i) = run(copy(
        &p,
        0,
        "fill-2",
        follower,
        (2, 3),
        CopyAction::Increase {
            side: Side::Buy,
            qty: 1,
        },
    ))
    .await;
    assert_status(&i, IntentStatus::Accepted);
    let orders = p.wait_orders(0, WAIT, |_| p.net_position(0) == 3).await;
    assert_eq!(
        working(&orders),
        vec![
            ("Limit".into(), "Sell".into(), 2, Some(dec!(21010))),
            ("Stop".into(), "Sell".into(), 3, Some(dec!(20990))),
        ]
    );
    redelivered_changes_nothing(&p, 0, &add).await;

    // Smaller: trimmed by 2; the exits cover what remains.
    let (trim, i) = run(copy(
        &p,
        0,
        "fill-3",
        follower,
        (3, 1),
        CopyAction::Reduce {
            side: Side::Sell,
            qty: 2,
        },
    ))
    .await;
    assert_status(&i, IntentStatus::Accepted);
    let orders = p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;
    assert_eq!(
        working(&orders),
        vec![
            ("Limit".into(), "Sell".into(), 1, Some(dec!(21010))),
            ("Stop".into(), "Sell".into(), 1, Some(dec!(20990))),
        ]
    );
    redelivered_changes_nothing(&p, 0, &trim).await;

    // Side change: closed, then short 2 with the leader's levels.
    let (flip, i) = run(CopyIntentFlip::short(&p, follower)).await;
    assert_status(&i, IntentStatus::Accepted);
    assert_eq!(i.kind, IntentKind::Flip);
    let orders = p.wait_orders(0, WAIT, |_| p.net_position(0) == -2).await;
    assert_eq!(
        working(&orders),
        vec![
            ("Limit".into(), "Buy".into(), 2, Some(dec!(20990))),
            ("Stop".into(), "Buy".into(), 2, Some(dec!(21010))),
        ]
    );
    redelivered_changes_nothing(&p, 0, &flip).await;

    // To flat: closed.
    let (close, i) = run(copy(
        &p,
        0,
        "fill-5",
        follower,
        (-2, 0),
        CopyAction::Close {
            direction: Direction::Short,
            expected_qty: 2,
        },
    ))
    .await;
    assert_status(&i, IntentStatus::Accepted);
    p.wait_orders(0, WAIT, |o| {
        !o.iter().any(is_working) && p.net_position(0) == 0
    })
    .await;
    redelivered_changes_nothing(&p, 0, &close).await;

    // A step that does not fit the follower's position is skipped with the reason.
    let (_, i) = run(copy(
        &p,
        0,
        "fill-6",
        follower,
        (1, 2),
        CopyAction::Increase {
            side: Side::Buy,
            qty: 1,
        },
    ))
    .await;
    assert_status(&i, IntentStatus::Skipped);
    assert!(i.status_reason.unwrap().contains("holds no long"));
    assert_eq!(p.net_position(0), 0);
    p.stop().await;
}

/// The copy flip of the test above.
struct CopyIntentFlip;

impl CopyIntentFlip {
    fn short(p: &Platform, follower: FollowerId) -> IntentMessage {
        let mut msg = copy(
            p,
            0,
            "fill-4",
            follower,
            (1, -1),
            CopyAction::Reverse {
                close_direction: Direction::Long,
                expected_close_qty: 1,
                entry_side: Side::Sell,
                entry_qty: 2,
                take_profit: true,
                stop: true,
            },
        );
        if let IntentAction::Copy(c) = &mut msg.action {
            c.take_profit = Some(dec!(20990));
            c.stop_loss = Some(dec!(21010));
        }
        msg
    }
}

#[tokio::test]
async fn a_repair_places_the_missing_protection_for_the_position_held_once() {
    let p = Platform::start(Options::default()).await;
    let naked = manual(
        &p,
        0,
        "naked",
        ManualTrade::Entry {
            direction: Direction::Long,
            qty: 2,
            order: None,
            reference_price: None,
            take_profit: None,
            stop_loss: None,
        },
    );
    publish(&p, &naked).await;
    assert_status(&settled(&p, &naked).await, IntentStatus::Accepted);
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 2).await;
    assert!(!p.orders(0).iter().any(is_working), "no protection yet");

    let (owner, sub, login) = target(&p, 0);
    let repair = |cause: Uuid, take_profit: bool, stop: bool| {
        IntentMessage::repair(
            owner,
            sub,
            login,
            chrono::Utc::now(),
            RepairIntent {
                cause_id: cause,
                symbol: "MNQ1!".into(),
                direction: Direction::Long,
                take_profit,
                stop,
                trader_id: None,
                settings: Settings {
                    tp_targets: vec![TpTarget {
                        value: dec!(20),
                        trim: dec!(0),
                    }],
                    sl_enabled: true,
                    sl_amount: dec!(16),
                    ..Settings::default()
                },
            },
        )
    };
    let both = repair(Uuid::now_v7(), true, true);
    publish(&p, &both).await;
    let done = settled(&p, &both).await;
    assert_status(&done, IntentStatus::Accepted);
    assert_eq!(
        (done.source, done.kind),
        (IntentSource::Reconcile, IntentKind::Protect)
    );
    let orders = p
        .wait_orders(0, WAIT, |o| o.iter().filter(|o| is_working(o)).count() == 2)
        .await;
    // Average 21000: target 20 ticks above, stop 16 ticks below, for the 2 held.
    assert_eq!(
        working(&orders),
        vec![
            ("Limit".into(), "Sell".into(), 2, Some(dec!(21005))),
            ("Stop".into(), "Sell".into(), 2, Some(dec!(20996))),
        ]
    );
    redelivered_changes_nothing(&p, 0, &both).await;
    // Another pass that thinks the stop is missing finds one working: nothing stacked.
    let again = repair(Uuid::now_v7(), false, true);
    publish(&p, &again).await;
    let i = settled(&p, &again).await;
    assert_status(&i, IntentStatus::Accepted);
    assert!(i.status_reason.unwrap().contains("already working"));
    assert_eq!(working(&p.orders(0)).len(), 2);
    p.stop().await;
}

#[tokio::test]
async fn an_intent_queued_before_sources_existed_executes_with_its_old_client_order_id() {
    let p = Platform::start(Options::default()).await;
    // A recorder whose signal finds no trader yet (recorded, filtered), then its trader: the
    // intent below is that trader's share, written by the executor of the previous release.
    let (recorder, token) = p.recorder(Settings::default(), &[]).await;
    let signal = p.queued(&token, &alert("buy", "long", "")).await;
    let deadline = Instant::now() + WAIT;
    while p
        .store
        .signals()
        .get(p.user, SignalId(signal))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the signal was not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let trader = p
        .store
        .traders()
        .create(
            p.user,
            NewTrader {
                recorder,
                sub_account: p.subs[0].id,
                enabled: true,
                overrides: SettingsOverrides::default(),
            },
        )
        .await
        .unwrap();
    let intent_id = IntentMessage::id_for(SignalId(signal), trader.id);
    // Version 1's JSON (test_data of jt-messages), with this platform's ids.
    let mut v1: serde_json::Value = serde_json::from_str(include_str!(
        "../../libs/messages/test_data/intent_v1_signal_entry.json"
    ))
    .unwrap();
    let now = chrono::Utc::now();
    for (key, value) in [
        ("intent_id", intent_id.to_string()),
        ("signal_id", signal.to_string()),
        ("owner_id", p.user.to_string()),
        ("recorder_id", recorder.to_string()),
        ("trader_id", trader.id.to_string()),
        ("sub_account_id", p.subs[0].id.to_string()),
        ("broker_account_id", p.subs[0].broker_account.to_string()),
        ("received_at", now.to_rfc3339()),
    ] {
        v1[key] = serde_json::json!(value);
    }
    // A market entry of 2 (the captured settings' size), without the captured alert's time,
    // resting entry and exits (it would be stale, rest and be bracketed): a plain order whose
    // client order id the simulator records.
    for key in ["alert_time", "entry_order", "take_profit", "stop_loss"] {
        v1[key] = serde_json::Value::Null;
    }
    v1.as_object_mut().unwrap().remove("risk");
    v1["delay_secs"] = serde_json::json!(0);
    v1["settings"]["sl_enabled"] = serde_json::json!(false);
    // Encoded as version 1 is on the bus: its headers say so.
    let probe = IntentMessage::decode(1, v1.to_string().as_bytes()).unwrap();
    let mut raw = Envelope::new(MessageId::new(probe.message_id()).unwrap(), probe)
        .encode(&p.bus.subjects())
        .unwrap();
    raw.headers.insert(HEADER_SCHEMA_VERSION, "1");
    raw.payload = v1.to_string().into_bytes().into();
    p.bus.publish_raw(&raw).await.unwrap();

    let intents = p.settled_intents(signal, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Accepted);
    assert_eq!(intents[0].id, intent_id);
    assert_eq!(
        intents[0].idempotency_key,
        format!("signal:{signal}:trader:{}", trader.id)
    );
    let orders = p.wait_orders(0, WAIT, |_| p.net_position(0) == 2).await;
    // One order, with the client order id the old executor gave the intent.
    let entries: Vec<_> = orders
        .iter()
        .map(|o| (o.cl_ord_id.clone(), o.qty))
        .collect();
    assert_eq!(
        entries,
        vec![(Some(format!("jt{}", intent_id.0.simple())), 2)]
    );
    p.stop().await;
}
