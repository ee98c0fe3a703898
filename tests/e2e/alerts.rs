//! Alerts end to end (issue 17): the replaced platform's fields and the peers' risk instructions
//! from the webhook to the orders the simulator received — resting entries that fill and get
//! their bracket, partial exits across traders of different multipliers, dollar stops, trails
//! with a trigger, break-even, risk-sized entries, and the 422s that refuse a contradiction.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jt_domain::settings::{PriceUnits, TpTarget, TrimUnits};
use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::admin::OrderRecord;
use jt_e2e::{Options, Platform, assert_status, is_working};
use jt_store::IntentStatus;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const WAIT: Duration = Duration::from_secs(20);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn working<'a>(orders: &'a [OrderRecord], kind: &str, action: &str) -> Vec<&'a OrderRecord> {
    orders
        .iter()
        .filter(|o| is_working(o) && o.order_type == kind && o.action == action)
        .collect()
}

fn working_stops<'a>(orders: &'a [OrderRecord], action: &str) -> Vec<&'a OrderRecord> {
    orders
        .iter()
        .filter(|o| is_working(o) && o.order_type.contains("Stop") && o.action == action)
        .collect()
}

fn open_qty(o: &OrderRecord) -> u32 {
    o.qty.saturating_sub(o.filled_qty)
}

fn traders(multipliers: &[&str]) -> Vec<(usize, SettingsOverrides)> {
    multipliers
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
        .collect()
}

fn bracketed(size: u32) -> Settings {
    Settings {
        initial_position_size: size,
        tp_targets: vec![TpTarget {
            value: dec!(20),
            trim: dec!(0),
        }],
        tp_units: PriceUnits::Ticks,
        sl_enabled: true,
        sl_amount: dec!(20),
        sl_units: PriceUnits::Ticks,
        ..Settings::default()
    }
}

#[tokio::test]
async fn a_limit_entry_rests_then_fills_on_a_price_move_and_gets_its_bracket() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(bracketed(2), &traders(&["1"])).await;
    p.price("MNQ", "21000");
    // TradersPost's limit entry: rests below the market, never sent at market.
    let signal = p
        .queued(
            &token,
            r#"{"ticker":"MNQ1!","action":"buy","orderType":"limit","limitPrice":20990.1}"#,
        )
        .await;
    let intents = p.settled_intents(signal, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Accepted);
    assert!(
        intents[0]
            .status_reason
            .as_deref()
            .unwrap()
            .contains("rests as a limit at 20990"),
        "{:?}",
        intents[0].status_reason
    );
    let orders = p
        .wait_orders(0, WAIT, |o| !working(o, "Limit", "Buy").is_empty())
        .await;
    let entry = working(&orders, "Limit", "Buy")[0];
    assert_eq!((entry.price, entry.qty), (Some(dec!(20990)), 2), "on tick");
    assert!(
        orders.iter().all(|o| o.order_type != "Market"),
        "never converted to market: {orders:#?}"
    );
    assert!(
        working(&orders, "Limit", "Sell").is_empty(),
        "no bracket yet"
    );
    assert_eq!(p.net_position(0), 0);

    // The market comes down to the limit: the entry fills and its bracket attaches.
    p.price("MNQ", "20990");
    let orders = p
        .wait_orders(0, WAIT, |o| {
            !working(o, "Limit", "Sell").is_empty() && !working_stops(o, "Sell").is_empty()
        })
        .await;
    assert_eq!(p.net_position(0), 2);
    let tp = working(&orders, "Limit", "Sell");
    assert_eq!(
        (tp[0].price, open_qty(tp[0])),
        (Some(dec!(20995)), 2),
        "20 ticks above the fill"
    );
    let stops = working_stops(&orders, "Sell");
    assert_eq!(stops.iter().map(|s| open_qty(s)).sum::<u32>(), 2);
    assert!(stops.iter().all(|s| s.stop_price == Some(dec!(20985))));
    p.stop().await;
}

#[tokio::test]
async fn the_next_signal_cancels_a_resting_entry_and_the_trading_day_expires_one() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(bracketed(1), &traders(&["1"])).await;
    p.price("MNQ", "21000");
    let resting = p
        .queued(
            &token,
            r#"{"ticker":"MNQ1!","action":"buy","orderType":"limit","limitPrice":20980}"#,
        )
        .await;
    p.settled_intents(resting, 1, WAIT).await;
    p.wait_orders(0, WAIT, |o| working(o, "Limit", "Buy").len() == 1)
        .await;
    // The opposite signal: the resting buy is cancelled before the short entry.
    let opposite = p
        .queued(
            &token,
            r#"{"ticker":"MNQ1!","action":"sell","comment":"2"}"#,
        )
        .await;
    let intents = p.settled_intents(opposite, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Accepted);
    let orders = p
        .wait_orders(0, WAIT, |o| {
            working(o, "Limit", "Buy").len() == 1 && p.net_position(0) == -1
        })
        .await;
    let buy_entries: Vec<&OrderRecord> = orders
        .iter()
        .filter(|o| o.action == "Buy" && o.price == Some(dec!(20980)))
        .collect();
    assert_eq!(buy_entries.len(), 1);
    assert!(!is_working(buy_entries[0]), "cancelled: {buy_entries:#?}");
    assert_eq!(format!("{:?}", buy_entries[0].status), "Canceled");

    // Flat again, then a resting entry that the end of the trading day expires.
    let close = p
        .queued(
            &token,
            r#"{"ticker":"MNQ1!","action":"close","comment":"3"}"#,
        )
        .await;
    p.settled_intents(close, 1, WAIT).await;
    let day = p
        .queued(
            &token,
            r#"{"ticker":"MNQ1!","action":"sell","orderType":"limit","limitPrice":21020,"comment":"4"}"#,
        )
        .await;
    p.settled_intents(day, 1, WAIT).await;
    p.wait_orders(0, WAIT, |o| {
        o.iter()
            .any(|x| is_working(x) && x.action == "Sell" && x.price == Some(dec!(21020)))
    })
    .await;
    assert_eq!(p.sim.admin().end_trading_day(None).unwrap(), 1);
    let orders = p.orders(0);
    let expired = orders
        .iter()
        .find(|x| x.action == "Sell" && x.price == Some(dec!(21020)))
        .unwrap();
    assert_eq!(format!("{:?}", expired.status), "Expired");
    p.price("MNQ", "21020");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(p.net_position(0), 0, "an expired entry never fills");
    p.stop().await;
}

#[tokio::test]
async fn a_partial_exit_reduces_three_traders_in_proportion_and_resizes_their_protection() {
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    // Two take-profit legs (half each) and a stop, per trader: 4, 8 and 2 contracts.
    let settings = Settings {
        initial_position_size: 4,
        tp_targets: vec![
            TpTarget {
                value: dec!(10),
                trim: dec!(50),
            },
            TpTarget {
                value: dec!(30),
                trim: dec!(50),
            },
        ],
        tp_units: PriceUnits::Ticks,
        trim_units: TrimUnits::Percent,
        sl_enabled: true,
        sl_amount: dec!(20),
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &traders(&["1", "2", "0.5"])).await;
    p.price("MNQ", "21000");
    let entry = p
        .queued(
            &token,
            r#"{"action":"buy","ticker":"MNQ1!","position_size":4,"prev_position_size":0}"#,
        )
        .await;
    for intent in p.settled_intents(entry, 3, WAIT).await {
        assert_status(&intent, IntentStatus::Accepted);
    }
    let sizes = [4i64, 8, 2];
    for (i, size) in sizes.iter().enumerate() {
        p.wait_orders(i, WAIT, |o| {
            working_stops(o, "Sell")
                .iter()
                .map(|s| open_qty(s))
                .sum::<u32>() as i64
                == *size
        })
        .await;
        assert_eq!(p.net_position(i), *size);
    }

    // The strategy sells half: 4 → 2. The issue's body, which used to open a short.
    let partial = p
        .queued(
            &token,
            r#"{"action":"sell","ticker":"MNQ1!","position_size":2,"prev_position_size":4,"comment":"half"}"#,
        )
        .await;
    for intent in p.settled_intents(partial, 3, WAIT).await {
        assert_status(&intent, IntentStatus::Accepted);
        assert!(
            intent
                .status_reason
                .as_deref()
                .unwrap()
                .starts_with("partial exit of the long"),
            "{:?}",
            intent.status_reason
        );
    }
    for (i, size) in sizes.iter().enumerate() {
        let remaining = size / 2;
        let deadline = std::time::Instant::now() + WAIT;
        while p.net_position(i) != remaining {
            assert!(std::time::Instant::now() < deadline, "trader {i}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let orders = p.orders(i);
        let stops = working_stops(&orders, "Sell");
        assert_eq!(
            stops.iter().map(|s| open_qty(s)).sum::<u32>() as i64,
            remaining,
            "trader {i}: the stop covers what remains: {orders:#?}"
        );
        let targets = working(&orders, "Limit", "Sell");
        assert_eq!(
            targets.iter().map(|t| open_qty(t)).sum::<u32>() as i64,
            remaining,
            "trader {i}: the targets never exceed what remains: {orders:#?}"
        );
        // The farthest leg went: only the nearer target (10 ticks) is left.
        let fill = orders
            .iter()
            .find(|o| o.order_type == "Market" && o.action == "Buy")
            .and_then(|o| o.avg_price)
            .unwrap();
        assert!(
            targets.iter().all(|t| t.price == Some(fill + dec!(2.5))),
            "trader {i}: {targets:#?}"
        );
        // The reduction itself: one market sell for half.
        let sells: Vec<&OrderRecord> = orders
            .iter()
            .filter(|o| o.order_type == "Market" && o.action == "Sell")
            .collect();
        assert_eq!(sells.len(), 1, "trader {i}: {sells:#?}");
        assert_eq!(i64::from(sells[0].qty), size - remaining);
    }

    // The stops fire: every trader ends flat, none short.
    p.price("MNQ", "20990");
    for i in 0..3 {
        let deadline = std::time::Instant::now() + WAIT;
        while p.net_position(i) != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "trader {i} at {}",
                p.net_position(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        assert_eq!(p.net_position(i), 0, "trader {i}: nothing flipped");
    }
    p.stop().await;
}

#[tokio::test]
async fn a_dollar_stop_a_trail_with_trigger_and_a_break_even_reach_the_simulator_as_orders() {
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    p.price("MNQ", "21000");
    // One recorder per instruction, each with its own trader and account; the traders have no
    // stop of their own: every protective order comes from the alert.
    let mut tokens = Vec::new();
    for i in 0..3 {
        let (_, token) = p
            .recorder(
                Settings {
                    initial_position_size: 1,
                    ..Settings::default()
                },
                &[(i, SettingsOverrides::default())],
            )
            .await;
        tokens.push(token);
    }
    let bodies = [
        // $30 on MNQ ($0.50 a tick) = 60 ticks = 15 points; $50 = 100 ticks = 25 points.
        r#"{"side":"buy","symbol":"MNQ1!","dollar_sl":30,"dollar_tp":50}"#,
        // PickMyTrade's trailing stop: 40 ticks, trailing once 8 ticks in profit.
        r#"{"data":"buy","symbol":"MNQ1!","trail_stop":40,"trail_trigger":8,"trail_freq":1}"#,
        // A 40-tick stop that moves to entry + 2 ticks after 12 ticks of profit.
        r#"{"action":"buy","ticker":"MNQ1!","sl_ticks":40,"breakeven":12,"breakeven_offset":2}"#,
    ];
    for (token, body) in tokens.iter().zip(bodies) {
        let s = p.queued(token, body).await;
        let intents = p.settled_intents(s, 1, WAIT).await;
        assert_status(&intents[0], IntentStatus::Accepted);
    }
    let stop_of = |i: usize| {
        let orders = p.orders(i);
        let stops = working_stops(&orders, "Sell");
        assert_eq!(stops.len(), 1, "account {i}: {orders:#?}");
        (stops[0].stop_price.unwrap(), stops[0].order_type.clone())
    };
    let fill = |i: usize| {
        p.orders(i)
            .iter()
            .find(|o| o.order_type == "Market" && o.action == "Buy")
            .and_then(|o| o.avg_price)
            .unwrap()
    };
    for i in 0..3 {
        p.wait_orders(i, WAIT, |o| working_stops(o, "Sell").len() == 1)
            .await;
    }
    let f0 = fill(0);
    assert_eq!(stop_of(0).0, f0 - dec!(15), "the dollar stop");
    let orders = p.orders(0);
    let tp = working(&orders, "Limit", "Sell");
    assert_eq!(tp[0].price, Some(f0 + dec!(25)), "the dollar target");
    let f1 = fill(1);
    assert_eq!(
        stop_of(1).0,
        f1 - dec!(10),
        "the trail starts 40 ticks away"
    );
    let f2 = fill(2);
    assert_eq!(stop_of(2).0, f2 - dec!(10));

    // 3.5 points (14 ticks) of profit: past the trail's trigger and the break-even's.
    p.price("MNQ", &(f1 + dec!(3.5)).to_string());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let trail = stop_of(1).0;
        let be = stop_of(2).0;
        if trail == f1 + dec!(3.5) - dec!(10) && be == f2 + dec!(0.5) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "trail at {trail} (fill {f1}), break-even at {be} (fill {f2})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The dollar stop is fixed: it did not move.
    assert_eq!(stop_of(0).0, f0 - dec!(15));
    p.stop().await;
}

#[tokio::test]
async fn a_risk_sized_entry_gets_the_computed_quantity() {
    let p = Platform::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .await;
    p.price("MNQ", "21000");
    let (_, token) = p
        .recorder(
            Settings {
                initial_position_size: 1,
                ..Settings::default()
            },
            &traders(&["1", "2"]),
        )
        .await;
    // A 40-tick stop loses $20 per MNQ contract: $100 of risk is 5 contracts (10 at ×2).
    let s = p
        .queued(
            &token,
            r#"{"action":"buy","ticker":"MNQ1!","sl_ticks":40,"risk_dollars":100}"#,
        )
        .await;
    for intent in p.settled_intents(s, 2, WAIT).await {
        assert_status(&intent, IntentStatus::Accepted);
    }
    for (i, want) in [(0usize, 5u32), (1, 10)] {
        let orders = p
            .wait_orders(i, WAIT, |o| o.iter().any(|x| x.action == "Buy"))
            .await;
        let entry = orders
            .iter()
            .find(|o| o.order_type == "Market" && o.action == "Buy")
            .unwrap();
        assert_eq!(entry.qty, want, "account {i}");
        assert_eq!(p.net_position(i), i64::from(want));
    }
    // 0.002 % of the $1,000,000 balance the broker reports is $20: one contract at ×1.
    let close = p
        .queued(&token, r#"{"action":"close","ticker":"MNQ1!"}"#)
        .await;
    p.settled_intents(close, 2, WAIT).await;
    let s = p
        .queued(
            &token,
            r#"{"action":"sell","ticker":"MNQ1!","sl_ticks":40,"risk_percentage":0.002}"#,
        )
        .await;
    for intent in p.settled_intents(s, 2, WAIT).await {
        assert_status(&intent, IntentStatus::Accepted);
    }
    for (i, want) in [(0usize, -1i64), (1, -2)] {
        let deadline = std::time::Instant::now() + WAIT;
        while p.net_position(i) != want {
            assert!(
                std::time::Instant::now() < deadline,
                "account {i} at {}: {:#?}",
                p.net_position(i),
                p.orders(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    p.stop().await;
}

#[tokio::test]
async fn a_contradiction_or_an_unknown_risk_field_is_a_422_that_says_what_to_fix() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(bracketed(1), &traders(&["1"])).await;
    let (status, answer) = p
        .alert(
            &token,
            r#"{"action":"buy","ticker":"MNQ1!","position_size":1,"prev_position_size":2}"#,
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    let text = answer["error"].as_str().unwrap();
    assert!(
        text.contains(
            "the alert says buy but its position fields say partial exit of 50% of the long \
             (long 2 → long 1)"
        ),
        "{text}"
    );
    assert!(text.contains("{{strategy.order.action}}"), "{text}");
    let (status, answer) = p
        .alert(
            &token,
            r#"{"action":"buy","ticker":"MNQ1!","takeProfit2":40}"#,
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("`takeProfit2`"),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(p.orders(0).is_empty(), "{:#?}", p.orders(0));
    p.stop().await;
}
