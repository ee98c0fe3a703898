//! Control alerts and account safeguards end to end (issue 8, DOMAIN.md §2, §5, §7): flatten,
//! the kill switch and resume, `require_brackets` and `simulation_mode` — asserted on what the
//! simulator received and on the intents' recorded reasons.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jt_bus::{Envelope, MessageId};
use jt_domain::Direction;
use jt_domain::settings::{PriceUnits, TpTarget, TrimUnits};
use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::admin::OrderRecord;
use jt_e2e::{Options, Platform, RiskService, alert, assert_status, is_working};
use jt_messages::SignalMessage;
use jt_store::repo::accounts::AccountUpdate;
use jt_store::{IntentStatus, PaperStatus, SignalId, SignalOutcome};
use rust_decimal_macros::dec;

const WAIT: Duration = Duration::from_secs(20);

fn trader(index: usize) -> (usize, SettingsOverrides) {
    (index, SettingsOverrides::default())
}

/// A bracketed entry: one take-profit 40 ticks away and a stop 20 ticks away.
fn bracketed() -> Settings {
    Settings {
        initial_position_size: 2,
        tp_targets: vec![TpTarget {
            value: dec!(40),
            trim: dec!(0),
        }],
        tp_units: PriceUnits::Ticks,
        trim_units: TrimUnits::Contracts,
        sl_enabled: true,
        sl_amount: dec!(20),
        ..Settings::default()
    }
}

/// Waits until sub-account `index` is flat with no working order.
async fn wait_flat(p: &Platform, index: usize) -> Vec<OrderRecord> {
    let orders = p
        .wait_orders(index, WAIT, |o| {
            !o.iter().any(is_working) && p.net_position(index) == 0
        })
        .await;
    assert_eq!(p.net_position(index), 0);
    orders
}

#[tokio::test]
async fn a_flatten_alert_cancels_the_exits_and_closes_every_traders_position() {
    let p = Platform::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .await;
    let (_, token) = p.recorder(bracketed(), &[trader(0), trader(1)]).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    let intents = p.settled_intents(s, 2, WAIT).await;
    assert!(
        intents.iter().all(|i| i.status != IntentStatus::Failed),
        "{intents:#?}"
    );
    for i in 0..2 {
        p.wait_orders(i, WAIT, |o| o.iter().filter(|o| is_working(o)).count() == 2)
            .await;
        assert_eq!(p.net_position(i), 2, "entered on account {i}");
    }

    let s = p.queued(&token, r#"{"command":"flatten"}"#).await;
    let intents = p.settled_intents(s, 2, WAIT).await;
    assert!(
        intents.iter().all(|i| i.status != IntentStatus::Failed),
        "{intents:#?}"
    );
    for i in 0..2 {
        let orders = wait_flat(&p, i).await;
        // The take-profit and the stop were cancelled, not left to fire on a flat account.
        let exits: Vec<&OrderRecord> = orders
            .iter()
            .filter(|o| o.order_type == "Limit" || o.order_type.contains("Stop"))
            .collect();
        assert_eq!(exits.len(), 2, "the take-profit and the stop: {orders:#?}");
        assert!(
            exits
                .iter()
                .all(|o| format!("{:?}", o.status) == "Canceled"),
            "{exits:#?}"
        );
    }
    p.stop().await;
}

#[tokio::test]
async fn a_kill_alert_flattens_and_refuses_entries_until_resumed() {
    let p = Platform::start(Options::default()).await;
    // The alert records the switch; the risk service carries it out (cancel, flatten).
    let risk = RiskService::start(&p).await;
    let (_, token) = p.recorder(bracketed(), &[trader(0)]).await;
    let s = p
        .queued(&token, &alert("buy", "long", r#","comment":"entry 1""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |o| o.iter().filter(|o| is_working(o)).count() == 2)
        .await;

    // The owner hears of it on a channel taking kill switch events.
    let channel = p
        .store
        .notifications()
        .create_channel(
            p.user,
            jt_store::repo::notifications::NewChannel {
                kind: jt_store::ChannelKind::Email,
                label: "me".into(),
                target: jt_store::Secret::new("trader@example.com"),
                events: vec!["kill_switch".into()],
            },
        )
        .await
        .unwrap()
        .id;
    let s = p.queued(&token, r#"{"command":"kill"}"#).await;
    p.settled_intents(s, 1, WAIT).await;
    wait_flat(&p, 0).await;
    let after_kill = p.orders(0).len();
    let deadline = std::time::Instant::now() + WAIT;
    let told = loop {
        let told: Vec<_> = p
            .store
            .notifications()
            .deliveries(
                p.user,
                &jt_store::repo::notifications::DeliveryQuery {
                    channel: Some(channel),
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if !told.is_empty() || std::time::Instant::now() > deadline {
            break told;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        told.len(),
        1,
        "one notification of the kill alert: {told:#?}"
    );
    assert_eq!(told[0].event_kind, "kill_switch");
    assert_eq!(told[0].dedup_key, format!("kill_switch:alert:{s}"));
    assert_eq!(told[0].payload["engaged"], true);
    assert_eq!(told[0].payload["accounts"], 1);

    // While the switch is engaged an entry is recorded as skipped, with the reason, and
    // nothing reaches the broker. (Each entry's comment differs: an identical body within
    // seconds is a duplicate delivery.)
    let s = p
        .queued(&token, &alert("buy", "long", r#","comment":"entry 2""#))
        .await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Skipped);
    let reason = intents[0].status_reason.clone().unwrap();
    assert!(reason.contains("kill switch"), "{reason}");
    assert_eq!(p.orders(0).len(), after_kill, "nothing sent while killed");

    // Resume places nothing: it lifts the switch (recorded on the signal).
    let resume = p.queued(&token, r#"{"command":"resume"}"#).await;
    let deadline = std::time::Instant::now() + WAIT;
    while p
        .store
        .risk()
        .kill_state(p.user, p.subs[0].id)
        .await
        .unwrap()
        .engaged()
    {
        assert!(std::time::Instant::now() < deadline, "resume not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = p
        .queued(&token, &alert("buy", "long", r#","comment":"entry 3""#))
        .await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Accepted);
    p.wait_orders(0, WAIT, |o| o.len() > after_kill).await;
    assert_eq!(p.net_position(0), 2, "entered again after resume");
    let row = p
        .store
        .signals()
        .get(p.user, SignalId(resume))
        .await
        .unwrap();
    assert_eq!(
        (row.outcome, row.outcome_reason.as_deref()),
        (SignalOutcome::Accepted, Some("kill switch lifted"))
    );
    risk.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_signal_for_a_recorder_without_enabled_traders_is_recorded_as_filtered() {
    let p = Platform::start(Options::default()).await;
    let (recorder, token) = p.recorder(bracketed(), &[]).await;
    let s = p
        .queued(&token, &alert("buy", "long", r#","price":21000.25"#))
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    let row = loop {
        match p.store.signals().get(p.user, SignalId(s)).await {
            Ok(row) => break row,
            Err(_) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "signal never recorded"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(
        (row.outcome, row.outcome_reason.as_deref()),
        (
            SignalOutcome::Filtered,
            Some("no enabled trader is linked to this recorder")
        )
    );
    // The paper record still follows the strategy.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let paper = p
            .store
            .paper()
            .positions(p.user, recorder, 10)
            .await
            .unwrap();
        if let [position] = paper.as_slice() {
            assert_eq!((position.quantity, position.status), (2, PaperStatus::Open));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no paper position: {paper:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(p.orders(0).is_empty());
    p.stop().await;
}

#[tokio::test]
async fn a_require_brackets_account_refuses_an_entry_without_stop_and_target() {
    let p = Platform::start(Options::default()).await;
    p.store
        .accounts()
        .update(
            p.user,
            p.broker_accounts[0],
            AccountUpdate {
                require_brackets: Some(true),
                ..AccountUpdate::default()
            },
        )
        .await
        .unwrap();
    // Default settings: a plain market entry, neither stop nor take-profit.
    let (_, naked) = p.recorder(Settings::default(), &[trader(0)]).await;
    let s = p.queued(&naked, &alert("buy", "long", "")).await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Skipped);
    let reason = intents[0].status_reason.clone().unwrap();
    assert!(
        reason.contains("requires a stop and a take-profit"),
        "{reason}"
    );
    assert!(p.orders(0).is_empty(), "nothing sent: {:#?}", p.orders(0));

    // The same account takes a bracketed entry.
    let (_, protected) = p.recorder(bracketed(), &[trader(0)]).await;
    let s = p.queued(&protected, &alert("buy", "long", "")).await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Accepted);
    p.wait_orders(0, WAIT, |o| o.len() >= 3).await;
    p.stop().await;
}

#[tokio::test]
async fn a_simulation_mode_recorder_keeps_its_paper_record_and_never_reaches_the_broker() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        simulation_mode: true,
        ..bracketed()
    };
    let (recorder, token) = p.recorder(settings, &[trader(0)]).await;
    let s = p
        .queued(&token, &alert("buy", "long", r#","price":21000.25"#))
        .await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Skipped);
    let reason = intents[0].status_reason.clone().unwrap();
    assert!(reason.contains("simulation mode"), "{reason}");

    let paper = p
        .store
        .paper()
        .positions(p.user, recorder, 10)
        .await
        .unwrap();
    assert_eq!(paper.len(), 1, "the paper record has the entry: {paper:#?}");
    assert_eq!(paper[0].quantity, 2);
    assert_eq!(paper[0].average_entry, dec!(21000.25));
    // Give a wrongly queued intent time to reach the simulator, then check nothing did.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(p.orders(0).is_empty(), "sent: {:#?}", p.orders(0));
    p.stop().await;
}

#[tokio::test]
async fn the_paper_record_adds_flips_and_never_applies_a_redelivered_signal_twice() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        simulation_mode: true,
        dca_enabled: true,
        ..bracketed()
    };
    let (recorder, token) = p.recorder(settings, &[trader(0)]).await;
    let positions = || async {
        p.store
            .paper()
            .positions(p.user, recorder, 10)
            .await
            .unwrap()
    };
    let first = p
        .queued(&token, &alert("buy", "long", r#","price":21000.25"#))
        .await;
    p.settled_intents(first, 1, WAIT).await;
    let second = p
        .queued(&token, &alert("buy", "long", r#","price":21010.25"#))
        .await;
    p.settled_intents(second, 1, WAIT).await;

    let paper = positions().await;
    assert_eq!(paper.len(), 1, "one position, added to: {paper:#?}");
    assert_eq!(paper[0].quantity, 4);
    assert_eq!(paper[0].entries.len(), 2);
    assert_eq!(paper[0].average_entry, dec!(21005.25));

    // The add delivered again (as after a crash before its ack), under another message id so
    // that JetStream's de-duplication does not hide it from the fan-out.
    let stored = p
        .store
        .signals()
        .get(p.user, SignalId(second))
        .await
        .unwrap();
    let again = SignalMessage {
        signal_id: second,
        recorder_id: recorder.0,
        owner_id: p.user.0,
        received_at: stored.received_at,
        signal: serde_json::from_value::<jt_alerts::Signal>(stored.payload).unwrap(),
        body_digest: None,
    };
    p.bus
        .publish(&Envelope::new(
            MessageId::new("redelivered-add").unwrap(),
            again,
        ))
        .await
        .unwrap();
    // Then a flip: the fan-out handles the recorder's signals in order, so once the flip is
    // settled the redelivery was handled before it.
    let flip = p
        .queued(&token, &alert("sell", "short", r#","price":21020.25"#))
        .await;
    p.settled_intents(flip, 1, WAIT).await;

    let paper = positions().await;
    assert_eq!(
        paper.len(),
        2,
        "the long closed, a short opened: {paper:#?}"
    );
    let (short, long) = (&paper[0], &paper[1]);
    assert_eq!(
        (long.status, long.entries.len(), long.exit_price),
        (PaperStatus::Closed, 2, Some(dec!(21020.25))),
        "the redelivered add was not applied again"
    );
    assert_eq!(long.last_signal, Some(SignalId(flip)));
    assert_eq!(
        (short.status, short.direction, short.quantity),
        (PaperStatus::Open, Direction::Short, 2)
    );
    assert_eq!(short.average_entry, dec!(21020.25));
    assert_eq!(short.last_signal, Some(SignalId(flip)));
    p.stop().await;
}

#[tokio::test]
async fn a_signal_whose_recorder_was_deleted_meanwhile_is_dropped_not_retried() {
    let mut p = Platform::start(Options::default()).await;
    let (recorder, token) = p.recorder(bracketed(), &[trader(0)]).await;
    // Queued while no executor runs, then the recorder goes before the fan-out sees it.
    p.kill_executor().await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.store.recorders().delete(p.user, recorder).await.unwrap();
    p.start_executor();

    let signals = jt_bus::Definitions::new(p.bus.namespace()).signals.name;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while p.bus.stream_stats(&signals).await.unwrap().messages > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the signal is still queued: retried instead of dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        p.store.signals().get(p.user, SignalId(s)).await.is_err(),
        "no row: its recorder is gone"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(p.orders(0).is_empty(), "sent: {:#?}", p.orders(0));
    p.stop().await;
}
