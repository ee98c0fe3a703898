//! Signals end to end (issue 8): an alert over HTTP to the ingest, through JetStream and the
//! executor, to the orders the simulator received — DOMAIN.md §2, §4 and §5 rule by rule.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jt_domain::settings::{ClockTime, PriceUnits, StopType, TimeWindow, TpTarget, TrimUnits};
use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::admin::OrderRecord;
use jt_e2e::{Options, Platform, alert, assert_status, is_working, until_millisecond};
use jt_store::{IntentStatus, SignalId, SignalOutcome};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const WAIT: Duration = Duration::from_secs(20);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn of_type<'a>(orders: &'a [OrderRecord], kind: &str, action: &str) -> Vec<&'a OrderRecord> {
    orders
        .iter()
        .filter(|o| o.order_type == kind && o.action == action)
        .collect()
}

fn tp(value: i64, trim: i64) -> TpTarget {
    TpTarget {
        value: Decimal::from(value),
        trim: Decimal::from(trim),
    }
}

fn one(multiplier: &str) -> Vec<(usize, SettingsOverrides)> {
    vec![(
        0,
        SettingsOverrides {
            multiplier: Some(d(multiplier)),
            ..Default::default()
        },
    )]
}

#[tokio::test]
async fn an_entry_places_one_bracket_with_three_take_profit_legs_and_a_trailing_stop() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        initial_position_size: 3,
        tp_targets: vec![tp(10, 1), tp(20, 1), tp(30, 1)],
        tp_units: PriceUnits::Ticks,
        trim_units: TrimUnits::Contracts,
        sl_enabled: true,
        sl_amount: dec!(20),
        sl_type: StopType::Trailing,
        trail_trigger: dec!(8),
        trail_freq: dec!(2),
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one("1")).await;
    let signal = p
        .queued(&token, &alert("buy", "long", r#","contracts":3"#))
        .await;
    let intents = p.settled_intents(signal, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Accepted);

    let orders = p.wait_orders(0, WAIT, |o| o.len() >= 7).await;
    let entries = of_type(&orders, "Market", "Buy");
    assert_eq!(entries.len(), 1, "one entry: {orders:#?}");
    assert_eq!(entries[0].qty, 3);
    assert!(entries[0].is_automated);
    let fill = entries[0].avg_price.expect("the entry filled");
    let mut targets: Vec<(Decimal, u32)> = of_type(&orders, "Limit", "Sell")
        .iter()
        .map(|o| (o.price.unwrap(), o.qty))
        .collect();
    targets.sort();
    // 10, 20 and 30 ticks of 0.25 above the fill, one contract each.
    assert_eq!(
        targets,
        vec![
            (fill + dec!(2.5), 1),
            (fill + dec!(5), 1),
            (fill + dec!(7.5), 1)
        ],
        "{orders:#?}"
    );
    let stops: Vec<&OrderRecord> = orders
        .iter()
        .filter(|o| o.action == "Sell" && o.order_type.contains("Stop"))
        .collect();
    assert_eq!(
        stops.iter().map(|s| s.qty).sum::<u32>(),
        3,
        "the stop covers every contract: {stops:#?}"
    );
    for s in &stops {
        assert_eq!(
            s.stop_price,
            Some(fill - dec!(5)),
            "20 ticks below the fill"
        );
    }
    p.stop().await;
}

#[tokio::test]
async fn a_dca_add_cancels_the_take_profits_and_places_one_at_the_tick_rounded_average() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        dca_enabled: true,
        initial_position_size: 2,
        add_position_size: 1,
        add_delay: 0,
        tp_targets: vec![tp(20, 0)],
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one("1")).await;
    p.price("MNQ", "21000");
    let first = p
        .queued(&token, &alert("buy", "long", r#","comment":"1""#))
        .await;
    p.settled_intents(first, 1, WAIT).await;
    p.wait_orders(0, WAIT, |o| of_type(o, "Limit", "Sell").len() == 1)
        .await;
    // 2 @ 21000 + 1 @ 21001 = 21000.333…, rounded to 21000.25 before the distance is added.
    p.price("MNQ", "21001");
    let second = p
        .queued(&token, &alert("buy", "long", r#","comment":"2""#))
        .await;
    let intents = p.settled_intents(second, 1, WAIT).await;
    assert_eq!(
        intents[0].status,
        IntentStatus::Filled,
        "{:?}",
        intents[0].status_reason
    );
    let average = intents[0]
        .average_fill_price
        .expect("the new average is recorded");
    let mnq = jt_domain::instrument::by_root("MNQ").unwrap();
    assert_eq!(
        mnq.round_to_tick(average),
        dec!(21000.25),
        "average {average}"
    );

    let orders = p
        .wait_orders(0, WAIT, |o| of_type(o, "Limit", "Sell").len() == 2)
        .await;
    let adds = of_type(&orders, "Market", "Buy");
    assert_eq!(
        adds.iter().map(|o| o.qty).collect::<Vec<_>>(),
        vec![2, 1],
        "entry then add"
    );
    let tps = of_type(&orders, "Limit", "Sell");
    assert!(
        !is_working(tps[0]),
        "the first take-profit was cancelled, not modified: {:?}",
        tps[0]
    );
    assert_eq!(tps[0].qty, 2);
    assert!(is_working(tps[1]));
    assert_eq!(
        (tps[1].price, tps[1].qty),
        (Some(dec!(21005.25)), 3),
        "one TP for the whole position"
    );
    p.stop().await;
}

#[tokio::test]
async fn with_dca_off_a_same_direction_signal_places_a_fresh_full_bracket() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        initial_position_size: 1,
        add_position_size: 5,
        tp_targets: vec![tp(10, 0)],
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one("1")).await;
    for n in 0..2 {
        let s = p
            .queued(
                &token,
                &alert("buy", "long", &format!(r#","comment":"{n}""#)),
            )
            .await;
        p.settled_intents(s, 1, WAIT).await;
    }
    let orders = p
        .wait_orders(0, WAIT, |o| of_type(o, "Limit", "Sell").len() == 2)
        .await;
    let entries = of_type(&orders, "Market", "Buy");
    assert_eq!(
        entries.iter().map(|o| o.qty).collect::<Vec<_>>(),
        vec![1, 1],
        "initial size both times, never the add size"
    );
    assert!(
        of_type(&orders, "Limit", "Sell")
            .iter()
            .all(|o| o.qty == 1 && is_working(o)),
        "each entry has its own bracket"
    );
    p.stop().await;
}

#[tokio::test]
async fn an_opposite_signal_with_dca_off_flips_cancel_close_then_enter() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        initial_position_size: 2,
        tp_targets: vec![tp(20, 0)],
        sl_enabled: true,
        sl_amount: dec!(20),
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one("1")).await;
    let long = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(long, 1, WAIT).await;
    let short = p.queued(&token, &alert("sell", "short", "")).await;
    let intents = p.settled_intents(short, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Accepted);

    let orders = p
        .wait_orders(0, WAIT, |o| of_type(o, "Market", "Sell").len() == 2)
        .await;
    let sells = of_type(&orders, "Market", "Sell");
    assert_eq!(
        sells.iter().map(|o| o.qty).collect::<Vec<_>>(),
        vec![2, 2],
        "close 2, then enter short 2"
    );
    // The long's protective orders were cancelled before the close; the short has its own.
    let long_exits: Vec<&OrderRecord> = orders
        .iter()
        .filter(|o| o.action == "Sell" && o.order_type != "Market")
        .collect();
    assert!(long_exits.iter().all(|o| !is_working(o)), "{long_exits:#?}");
    let short_exits: Vec<&OrderRecord> = orders
        .iter()
        .filter(|o| o.action == "Buy" && o.order_type != "Market")
        .collect();
    assert_eq!(
        short_exits.len(),
        2,
        "the short's take-profit and stop: {orders:#?}"
    );
    assert_eq!(p.net_position(0), -2);
    p.stop().await;
}

#[tokio::test]
async fn a_close_cancels_the_working_orders_and_closes_the_position() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        initial_position_size: 2,
        tp_targets: vec![tp(40, 0)],
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one("1")).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    let s = p
        .queued(&token, r#"{"action":"close","ticker":"MNQ1!"}"#)
        .await;
    p.settled_intents(s, 1, WAIT).await;
    let orders = p
        .wait_orders(0, WAIT, |o| of_type(o, "Market", "Sell").len() == 1)
        .await;
    assert_eq!(of_type(&orders, "Market", "Sell")[0].qty, 2);
    assert!(
        of_type(&orders, "Limit", "Sell")
            .iter()
            .all(|o| !is_working(o)),
        "{orders:#?}"
    );
    assert_eq!(p.net_position(0), 0);
    p.stop().await;
}

#[tokio::test]
async fn an_opposite_signal_while_averaging_is_skipped_with_its_reason() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        dca_enabled: true,
        tp_targets: vec![tp(40, 0)],
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one("1")).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    let before = p.orders(0).len();
    let s = p.queued(&token, &alert("sell", "short", "")).await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_eq!(intents[0].status, IntentStatus::Skipped);
    let reason = intents[0].status_reason.clone().unwrap();
    assert!(reason.contains("averag"), "{reason}");
    assert_eq!(p.orders(0).len(), before, "nothing sent");
    p.stop().await;
}

#[tokio::test]
async fn a_duplicate_delivery_within_a_second_executes_once() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(Settings::default(), &one("1")).await;
    let body = alert("buy", "long", "");
    // Inside one second of the clock: the ingest's message id catches the copy (across a
    // second boundary the fan-out does: the next test).
    tokio::time::sleep(until_millisecond(20)).await;
    let (a, b) = tokio::join!(p.alert(&token, &body), p.alert(&token, &body));
    let statuses = [
        a.1["status"].as_str().unwrap(),
        b.1["status"].as_str().unwrap(),
    ];
    assert!(
        statuses.contains(&"queued") && statuses.contains(&"duplicate"),
        "{statuses:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(of_type(&p.orders(0), "Market", "Buy").len(), 1);
    p.stop().await;
}

/// Two alerts posted at once, the first at `millis` past a second and the second `gap` later;
/// their answers.
async fn post_two_at(
    p: &Platform,
    token: &str,
    bodies: [&str; 2],
    millis: u32,
    gap: Duration,
) -> [serde_json::Value; 2] {
    async fn post_at(
        p: &Platform,
        token: &str,
        body: &str,
        at: tokio::time::Instant,
    ) -> (u16, serde_json::Value) {
        tokio::time::sleep_until(at).await;
        p.alert(token, body).await
    }
    let first_at = tokio::time::Instant::now() + until_millisecond(millis);
    let (a, b) = tokio::join!(
        post_at(p, token, bodies[0], first_at),
        post_at(p, token, bodies[1], first_at + gap)
    );
    for (status, answer) in [&a, &b] {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["status"], "queued", "{answer}");
    }
    [a.1, b.1]
}

fn signal_id(answer: &serde_json::Value) -> uuid::Uuid {
    answer["signal_id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_same_body_across_a_second_boundary_executes_once_and_the_copy_is_a_duplicate() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(Settings::default(), &one("1")).await;
    let body = alert("buy", "long", "");
    // x.900 and (x+1).100: two second buckets, so two messages on SIGNALS (one publish each);
    // the fan-out records the later one as a duplicate with its one conditional insert.
    let answers = post_two_at(&p, &token, [&body, &body], 900, Duration::from_millis(200)).await;
    let ids = answers.each_ref().map(signal_id);
    assert_ne!(ids[0], ids[1], "two second buckets, two signal ids");
    let rows = jt_e2e::eventually("both signals recorded", WAIT, async || {
        let mut rows = Vec::new();
        for id in ids {
            rows.push(p.store.signals().get(p.user, SignalId(id)).await.ok()?);
        }
        Some(rows)
    })
    .await;
    let gap = rows[1].received_at - rows[0].received_at;
    assert!(
        rows[0].received_at.timestamp() != rows[1].received_at.timestamp()
            && gap < chrono::TimeDelta::seconds(1),
        "the test needs two deliveries less than 1 s apart across a second boundary: {rows:#?}"
    );
    let outcomes: Vec<SignalOutcome> = rows.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [SignalOutcome::Accepted, SignalOutcome::Duplicate],
        "{rows:#?}"
    );
    assert!(
        rows[1]
            .outcome_reason
            .as_deref()
            .unwrap()
            .contains("less than 1 s"),
        "{rows:#?}"
    );
    p.settled_intents(ids[0], 1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let copy_intents = p
        .store
        .intents()
        .for_signal(p.user, SignalId(ids[1]))
        .await
        .unwrap();
    assert!(copy_intents.is_empty(), "{copy_intents:#?}");
    assert_eq!(
        of_type(&p.orders(0), "Market", "Buy").len(),
        1,
        "executed once"
    );
    p.stop().await;
}

#[tokio::test]
async fn two_different_bodies_in_the_same_second_are_both_executed() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p
        .recorder(
            Settings {
                dca_enabled: true,
                add_delay: 0,
                ..Settings::default()
            },
            &one("1"),
        )
        .await;
    let entry = alert("buy", "long", r#","comment":"entry""#);
    let add = alert("buy", "long", r#","comment":"add""#);
    let answers = post_two_at(&p, &token, [&entry, &add], 100, Duration::from_millis(200)).await;
    let ids = answers.each_ref().map(signal_id);
    assert_ne!(ids[0], ids[1]);
    for id in ids {
        p.settled_intents(id, 1, WAIT).await;
        let row = p.store.signals().get(p.user, SignalId(id)).await.unwrap();
        assert_eq!(row.outcome, SignalOutcome::Accepted, "{row:#?}");
    }
    let orders = p
        .wait_orders(0, WAIT, |o| of_type(o, "Market", "Buy").len() == 2)
        .await;
    assert_eq!(
        of_type(&orders, "Market", "Buy").len(),
        2,
        "entry, then a DCA add"
    );
    p.stop().await;
}

#[tokio::test]
async fn an_identical_alert_without_time_two_seconds_later_executes_twice() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p
        .recorder(
            Settings {
                dca_enabled: true,
                add_delay: 0,
                ..Settings::default()
            },
            &one("1"),
        )
        .await;
    let body = alert("buy", "long", "");
    let first = p.queued(&token, &body).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = p.queued(&token, &body).await;
    assert_ne!(first, second);
    p.settled_intents(second, 1, WAIT).await;
    let orders = p
        .wait_orders(0, WAIT, |o| of_type(o, "Market", "Buy").len() == 2)
        .await;
    assert_eq!(
        of_type(&orders, "Market", "Buy").len(),
        2,
        "entry, then a DCA add"
    );
    p.stop().await;
}

#[tokio::test]
async fn a_stale_alert_is_recorded_as_stale_and_not_executed() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(Settings::default(), &one("1")).await;
    let old = (chrono::Utc::now() - chrono::Duration::seconds(90)).to_rfc3339();
    let s = p
        .queued(
            &token,
            &alert("buy", "long", &format!(r#","time":"{old}""#)),
        )
        .await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_eq!(intents[0].status, IntentStatus::Skipped);
    assert!(
        intents[0]
            .status_reason
            .as_deref()
            .unwrap()
            .contains("stale"),
        "{:?}",
        intents[0].status_reason
    );
    assert!(p.orders(0).is_empty());
    p.stop().await;
}

#[tokio::test]
async fn a_decided_intent_is_written_once_straight_into_sent_and_a_waiting_one_shows_pending() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(Settings::default(), &one("1")).await;
    // Decided at once: the intent's first row is `sent` with its plan (never `pending`: no
    // write while deciding), so it was created and sent in the same instant.
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    let done = [IntentStatus::Accepted, IntentStatus::Filled];
    assert!(done.contains(&intents[0].status), "{intents:#?}");
    assert_eq!(
        intents[0].sent_at,
        Some(intents[0].created_at),
        "{intents:#?}"
    );
    assert!(!intents[0].plan.is_null());

    // The alert's own delay: the intent waits, and shows as `pending` while it does.
    let s = p
        .queued(&token, r#"{"action":"close","ticker":"MNQ1!","delay":3}"#)
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    let waiting = loop {
        let intents = p
            .store
            .intents()
            .for_signal(p.user, SignalId(s))
            .await
            .unwrap();
        if let Some(i) = intents.first() {
            break i.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no intent recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(waiting.status, IntentStatus::Pending, "{waiting:#?}");
    assert_eq!(waiting.sent_at, None);
    assert_eq!(p.net_position(0), 1, "nothing sent while it waits");
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert!(done.contains(&intents[0].status), "{intents:#?}");
    let sent = intents[0].sent_at.unwrap();
    assert!(
        sent - intents[0].created_at >= chrono::Duration::milliseconds(2_000),
        "sent after its delay: {intents:#?}"
    );
    assert_eq!(p.net_position(0), 0);
    p.stop().await;
}

#[tokio::test]
async fn an_entry_outside_the_trading_window_is_skipped() {
    let p = Platform::start(Options::default()).await;
    let now = chrono::Utc::now().time();
    let start = now + chrono::Duration::hours(2);
    let stop = now + chrono::Duration::hours(3);
    let window = TimeWindow {
        enabled: true,
        start: ClockTime(start.with_nanosecond_zero()),
        stop: ClockTime(stop.with_nanosecond_zero()),
    };
    let settings = Settings {
        time_filter_1: window,
        time_zone: "UTC".parse().unwrap(),
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one("1")).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_eq!(intents[0].status, IntentStatus::Skipped);
    assert!(
        intents[0]
            .status_reason
            .as_deref()
            .unwrap()
            .contains("time_filter"),
        "{:?}",
        intents[0].status_reason
    );
    assert!(p.orders(0).is_empty());
    p.stop().await;
}

#[tokio::test]
async fn max_contracts_caps_the_position_including_adds() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        dca_enabled: true,
        add_delay: 0,
        initial_position_size: 2,
        add_position_size: 2,
        max_contracts: 3,
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one("1")).await;
    for n in 0..2 {
        let s = p
            .queued(
                &token,
                &alert("buy", "long", &format!(r#","comment":"{n}""#)),
            )
            .await;
        p.settled_intents(s, 1, WAIT).await;
    }
    let orders = p
        .wait_orders(0, WAIT, |o| of_type(o, "Market", "Buy").len() == 2)
        .await;
    assert_eq!(
        of_type(&orders, "Market", "Buy")
            .iter()
            .map(|o| o.qty)
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
    p.stop().await;
}

#[tokio::test]
async fn a_half_multiplier_on_one_contract_rounds_up_to_one() {
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    let traders: Vec<(usize, SettingsOverrides)> = ["1", "2", "0.5"]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                i,
                SettingsOverrides {
                    multiplier: Some(d(m)),
                    ..Default::default()
                },
            )
        })
        .collect();
    let (_, token) = p.recorder(Settings::default(), &traders).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 3, WAIT).await;
    let qty = |i| {
        of_type(&p.orders(i), "Market", "Buy")
            .iter()
            .map(|o| o.qty)
            .collect::<Vec<_>>()
    };
    assert_eq!((qty(0), qty(1), qty(2)), (vec![1], vec![2], vec![1]));
    p.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_renewed_and_the_order_still_placed() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p
        .recorder(
            Settings {
                dca_enabled: true,
                add_delay: 0,
                ..Settings::default()
            },
            &one("1"),
        )
        .await;
    let s = p
        .queued(&token, &alert("buy", "long", r#","comment":"a""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    let expired = p.sim.admin().expire_tokens(jt_e2e::SIM_LOGIN).unwrap();
    assert!(expired >= 1, "the session's token expired now");
    let s = p
        .queued(&token, &alert("buy", "long", r#","comment":"b""#))
        .await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert!(
        matches!(
            intents[0].status,
            IntentStatus::Accepted | IntentStatus::Filled
        ),
        "{:?}",
        intents[0].status_reason
    );
    assert_eq!(of_type(&p.orders(0), "Market", "Buy").len(), 2);
    p.stop().await;
}

#[tokio::test]
async fn an_ambiguous_broker_outcome_leaves_exactly_one_order() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p
        .recorder(
            Settings {
                tp_targets: vec![tp(20, 0)],
                ..Settings::default()
            },
            &one("1"),
        )
        .await;
    // The simulator accepts the order strategy but drops the HTTP response, once.
    let fault: jt_sim::faults::FaultSpec = serde_json::from_value(serde_json::json!({
        "kind": "ambiguous", "mode": "drop", "endpoint": "orderstrategy/startorderstrategy", "count": 1
    }))
    .unwrap();
    p.sim.admin().add_fault(fault).unwrap();
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    let intents = p.settled_intents(s, 1, Duration::from_secs(40)).await;
    assert_status(&intents[0], IntentStatus::Accepted);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        of_type(&p.orders(0), "Market", "Buy").len(),
        1,
        "never sent twice: {:#?}",
        p.orders(0)
    );
    p.stop().await;
}

trait NanosZero {
    fn with_nanosecond_zero(self) -> chrono::NaiveTime;
}

impl NanosZero for chrono::NaiveTime {
    fn with_nanosecond_zero(self) -> chrono::NaiveTime {
        use chrono::Timelike;
        chrono::NaiveTime::from_hms_opt(self.hour(), self.minute(), 0).unwrap()
    }
}

#[tokio::test]
async fn a_refusal_before_sending_fails_the_intent_and_a_refused_order_rejects_it() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(Settings::default(), &one("1")).await;
    // The owner gets failures on a channel (the notifier is not running: only the queue).
    let channel = p
        .store
        .notifications()
        .create_channel(
            p.user,
            jt_store::repo::notifications::NewChannel {
                kind: jt_store::ChannelKind::Email,
                label: "me".into(),
                target: jt_store::Secret::new("trader@example.com"),
                events: vec!["execution_failed".into()],
            },
        )
        .await
        .unwrap();
    let refuse = |endpoint: &str| {
        let fault: jt_sim::faults::FaultSpec = serde_json::from_value(serde_json::json!({
            "kind": "error", "status": 400, "endpoint": endpoint, "count": 1
        }))
        .unwrap();
        p.sim.admin().add_fault(fault).unwrap();
    };

    // The broker refuses to say the position: nothing was sent, so the intent failed.
    refuse("position/deps");
    let s = p
        .queued(
            &token,
            &alert("buy", "long", r#","comment":"read refused""#),
        )
        .await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Failed);
    assert!(p.orders(0).is_empty(), "{:#?}", p.orders(0));

    // The broker refuses the order itself: it was sent, and rejected.
    refuse("order/place*");
    let s = p
        .queued(
            &token,
            &alert("buy", "long", r#","comment":"order refused""#),
        )
        .await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Rejected);
    assert!(
        intents[0]
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("400")),
        "{:?}",
        intents[0].status_reason
    );
    assert!(p.orders(0).is_empty(), "{:#?}", p.orders(0));
    let rejected = intents[0].id;

    // Each outcome queued one `execution_failed` notification, keyed by its intent.
    let log = p
        .store
        .notifications()
        .deliveries(
            p.user,
            &jt_store::repo::notifications::DeliveryQuery {
                channel: Some(channel.id),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(log.iter().all(|d| d.event_kind == "execution_failed"));
    assert_eq!(log[0].dedup_key, format!("execution_failed:{rejected}"));
    assert_eq!(log[0].payload["status"], "rejected");
    assert!(
        log[0].payload["reason"].as_str().unwrap().contains("400"),
        "{:?}",
        log[0].payload
    );
    assert_eq!(log[1].payload["status"], "failed");
    p.stop().await;
}

/// Which broker calls one intent makes once the session and the contract are known: the
/// position of its own account, the order itself, nothing login-wide.
#[tokio::test]
async fn an_entry_and_a_close_make_only_their_own_broker_calls() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        initial_position_size: 1,
        tp_targets: vec![tp(10, 1)],
        tp_units: PriceUnits::Ticks,
        trim_units: TrimUnits::Contracts,
        sl_enabled: true,
        sl_amount: dec!(20),
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one("1")).await;
    // A first entry and its close log in and resolve the contract.
    for (action, position) in [("buy", "long"), ("sell", "flat")] {
        let s = p
            .queued(&token, &alert(action, position, r#","comment":"warm-up""#))
            .await;
        p.settled_intents(s, 1, WAIT).await;
    }
    let calls = |p: &Platform| p.sim.admin().request_counts();
    p.sim.admin().reset_request_counts();
    let s = p
        .queued(&token, &alert("buy", "long", r#","comment":"entry""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    let entry = calls(&p);
    p.sim.admin().reset_request_counts();
    let s = p
        .queued(&token, &alert("sell", "flat", r#","comment":"close""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    let close = calls(&p);
    let expected = |pairs: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
        pairs
            .iter()
            .map(|(e, n)| (format!("tradovate:{e}"), *n))
            .collect()
    };
    // The entry: its account's position, then the bracket as one order strategy.
    assert_eq!(
        entry,
        expected(&[
            ("position/deps", 1),
            ("orderstrategy/startorderstrategy", 1)
        ])
    );
    // The close: the position, read once to decide, and one liquidation, which cancels the
    // bracket's legs itself (issue 21: no separate read of the working orders, no cancel per
    // leg) and takes no quantity, so the close does not read the position again
    // (`Broker::close_open_position`). Nothing reads the whole login (`order/list`,
    // `orderstrategy/list`, `position/list`).
    assert_eq!(
        close,
        expected(&[("position/deps", 1), ("order/liquidateposition", 1)])
    );
    // The legs are gone with the position: nothing of the bracket still works.
    assert!(
        p.orders(0).iter().all(|o| !jt_e2e::is_working(o)),
        "{:#?}",
        p.orders(0)
    );
}

/// One alert to three traders on one login, from a cold start (issue 21): the contract is
/// resolved once for all of them (`contract/suggest` + `contractMaturity/items`, concurrent
/// executions sharing one look-up), and a second alert resolves nothing. Each execution then
/// makes only its own calls: its account's position and the order.
#[tokio::test]
async fn one_alert_to_three_traders_on_one_login_resolves_the_contract_once() {
    let p = Platform::start(Options {
        accounts: 3,
        logins: 1,
        ..Options::default()
    })
    .await;
    let settings = Settings {
        initial_position_size: 1,
        ..Settings::default()
    };
    let traders: Vec<(usize, SettingsOverrides)> =
        (0..3).map(|i| (i, SettingsOverrides::default())).collect();
    let (_, token) = p.recorder(settings, &traders).await;
    let contract_calls = |counts: &std::collections::BTreeMap<String, u64>| -> u64 {
        counts
            .iter()
            .filter(|(e, _)| e.starts_with("tradovate:contract"))
            .map(|(_, n)| n)
            .sum()
    };
    p.sim.admin().reset_request_counts();
    let s = p
        .queued(&token, &alert("buy", "long", r#","comment":"first""#))
        .await;
    p.settled_intents(s, 3, WAIT).await;
    let first = p.sim.admin().request_counts();
    eprintln!("one alert to three traders, cold: {first:?}");
    let count = |e: &str| first.get(&format!("tradovate:{e}")).copied().unwrap_or(0);
    assert_eq!(count("contract/suggest"), 1, "{first:?}");
    assert_eq!(count("contractmaturity/items"), 1, "{first:?}");
    assert_eq!(contract_calls(&first), 2, "{first:?}");
    assert_eq!(count("position/deps"), 3, "{first:?}");
    for i in 0..3 {
        assert_eq!(p.orders(i).len(), 1, "{:#?}", p.orders(i));
    }

    p.sim.admin().reset_request_counts();
    let s = p
        .queued(&token, &alert("buy", "long", r#","comment":"second""#))
        .await;
    p.settled_intents(s, 3, WAIT).await;
    let second = p.sim.admin().request_counts();
    eprintln!("a second alert to the same three traders: {second:?}");
    assert_eq!(contract_calls(&second), 0, "{second:?}");
    assert_eq!(
        second.get("tradovate:position/deps").copied(),
        Some(3),
        "{second:?}"
    );
    p.stop().await;
}
