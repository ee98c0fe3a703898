//! The positions service (issue 20 parts 2 and 3) on JetStream, PostgreSQL and the simulator, beside
//! the ingest and the executor of the harness: broker events applied to the store once however
//! often they are delivered; the simulator's own events through the connection manager keeping
//! the store in step without any reconciliation; a DCA add whose new take-profit the simulator refused repaired by
//! one reconciliation pass, exactly once; a position closed by hand at the broker closed in the
//! store; one replica reconciling at a time, another taking over when it stops; `auto_flat_after_cutoff` flattening the account at the window's end.
//!
//! Token refresh (part 3): a token renewed by the daemon before it expires so the next signal
//! pays no login; a refused renewal followed by one login; a transient failure retried; refused
//! credentials marking the account "needs re-authentication" (shown by the API) and never
//! retried; two replicas renewing each token once, the other taking over.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.
//! Without them the harness fails loudly; nothing here is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use jt_broker::{
    AccountId, BrokerEvent, EventOrigin, FillReport, OrderReport, OrderStatus, OrderType,
    PositionReport,
};
use jt_bus::{Definitions, Envelope, MessageId};
use jt_domain::settings::{ClockTime, TimeWindow, TimeZone, TpTarget};
use jt_domain::{Settings, SettingsOverrides, Side};
use jt_e2e::admin::OrderRecord;
use jt_e2e::{
    ConnectionManager, Options, Platform, PositionsService, alert, eventually, is_working,
};
use jt_messages::{BrokerEventMessage, ReportedEvent};
use jt_positions::PositionsConfig;
use jt_store::repo::intents::Intent;
use jt_store::{BrokerKind, IntentKind, IntentSource};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const WAIT: Duration = Duration::from_secs(20);

fn fast(reconcile: Duration) -> PositionsConfig {
    PositionsConfig {
        reconcile_every: reconcile,
        repair_quiet: Duration::ZERO,
        autoflat_every: Duration::from_millis(500),
        ..PositionsConfig::default()
    }
}

fn one() -> Vec<(usize, SettingsOverrides)> {
    vec![(0, SettingsOverrides::default())]
}

fn tp(ticks: i64) -> TpTarget {
    TpTarget {
        value: Decimal::from(ticks),
        trim: Decimal::ZERO,
    }
}

fn of_type<'a>(orders: &'a [OrderRecord], kind: &str, action: &str) -> Vec<&'a OrderRecord> {
    orders
        .iter()
        .filter(|o| o.order_type == kind && o.action == action)
        .collect()
}

async fn intents_of(p: &Platform, source: IntentSource, kind: IntentKind) -> Vec<Intent> {
    p.store
        .intents()
        .for_sub_account(p.user, p.subs[0].id, 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.source == source && i.kind == kind)
        .collect()
}

fn event(p: &Platform, event: ReportedEvent) -> BrokerEventMessage {
    let sub = &p.subs[0];
    BrokerEventMessage {
        owner_id: p.user,
        broker_account_id: sub.broker_account,
        sub_account_id: sub.id,
        account: AccountId::from(sub.broker_sub_account_id.as_str()),
        broker: BrokerKind::Sim,
        origin: EventOrigin::Live,
        received_at: Utc::now(),
        event,
    }
}

/// Publishes `m` on BROKER_EVENTS, under its own message id or `other_id`.
async fn publish(p: &Platform, m: &BrokerEventMessage, other_id: Option<&str>) -> bool {
    let id = other_id.map_or_else(|| m.message_id(), str::to_owned);
    p.bus
        .publish(&Envelope::new(MessageId::new(id).unwrap(), m.clone()))
        .await
        .unwrap()
        .duplicate
}

#[tokio::test]
async fn broker_events_are_applied_to_the_store_once_however_often_they_come() {
    let p = Platform::start(Options::default()).await;
    // No reconciliation during the test: only the events write.
    let positions = PositionsService::start(&p, fast(Duration::from_secs(3600)));
    let sub = p.subs[0].clone();
    let account = AccountId::from(sub.broker_sub_account_id.as_str());
    let at = Utc::now();
    let order = event(
        &p,
        ReportedEvent::Known(BrokerEvent::Order(OrderReport {
            id: "7001".into(),
            client_order_id: Some("jtabc-tp".into()),
            account: account.clone(),
            contract: Some("3570918".into()),
            symbol: Some("MNQZ6".into()),
            side: Side::Sell,
            order_type: Some(OrderType::Limit),
            qty: Some(2),
            price: Some(dec!(21005)),
            stop_price: None,
            status: OrderStatus::Working,
            filled_qty: Some(0),
            avg_fill_price: None,
            parent: None,
            linked: None,
            reject_reason: None,
            timestamp: Some(at),
        })),
    );
    let fill = event(
        &p,
        ReportedEvent::Known(BrokerEvent::Fill(FillReport {
            id: "9001".into(),
            order_id: "7000".into(),
            account: account.clone(),
            contract: "3570918".into(),
            symbol: Some("MNQZ6".into()),
            side: Side::Buy,
            qty: 2,
            price: dec!(21000.25),
            timestamp: at,
            trade_date: None,
            client_order_id: Some("jtabc".into()),
        })),
    );
    let position = event(
        &p,
        ReportedEvent::Known(BrokerEvent::Position(PositionReport {
            account: account.clone(),
            contract: "3570918".into(),
            symbol: Some("MNQZ6".into()),
            net_qty: 2,
            avg_price: Some(dec!(21000.25)),
            timestamp: Some(at),
        })),
    );
    let unknown = event(
        &p,
        ReportedEvent::Unknown {
            kind: "margin_call".into(),
        },
    );
    for m in [&order, &fill, &position, &unknown] {
        assert!(!publish(&p, m, None).await, "new to the stream");
        // The same event again: the stream drops it.
        assert!(publish(&p, m, None).await, "a duplicate for the stream");
        // And once more under another id (after the duplicate window, or from a replica that
        // derived it differently): the consumer sees it twice and the store changes once.
        let other = format!("again-{}", m.message_id());
        assert!(!publish(&p, m, Some(&other)).await);
    }

    // Every message is consumed (the unknown kind acknowledged too).
    let defs = Definitions::new(p.bus.namespace());
    eventually("the consumer to drain BROKER_EVENTS", WAIT, async || {
        let lag = p.bus.consumer_lag(&defs.positions).await.unwrap();
        (lag.total() == 0).then_some(())
    })
    .await;

    let broker = p.store.broker();
    let stored = broker.order(p.user, sub.id, "7001").await.unwrap();
    assert_eq!(
        (
            stored.quantity,
            stored.limit_price,
            stored.contract.as_str()
        ),
        (2, Some(dec!(21005)), "MNQZ6")
    );
    let fills = broker
        .fills_of_day(p.user, sub.id, jt_domain::session::trading_day(at))
        .await
        .unwrap();
    assert_eq!(fills.len(), 1, "{fills:#?}");
    assert_eq!(fills[0].price, dec!(21000.25));
    let held = broker.positions(p.user, sub.id).await.unwrap();
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(
        (held[0].net_quantity, held[0].average_price),
        (2, Some(dec!(21000.25)))
    );

    // The take-profit cancelled, then its old working state delivered late: the order stays
    // cancelled (an older state never overwrites a newer one).
    let mut cancelled = order.clone();
    if let ReportedEvent::Known(BrokerEvent::Order(o)) = &mut cancelled.event {
        o.status = OrderStatus::Canceled;
    }
    cancelled.received_at = Utc::now();
    publish(&p, &cancelled, None).await;
    publish(&p, &order, Some("late-working-state")).await;
    eventually("the cancellation to be stored", WAIT, async || {
        let lag = p.bus.consumer_lag(&defs.positions).await.unwrap();
        let o = broker.order(p.user, sub.id, "7001").await.unwrap();
        (lag.total() == 0 && o.status == jt_store::entity::BrokerOrderStatus::Cancelled)
            .then_some(())
    })
    .await;
    assert!(
        broker
            .open_orders(p.user, sub.id, None)
            .await
            .unwrap()
            .is_empty()
    );
    positions.stop().await;
    p.stop().await;
}

/// A channel of the platform's user getting `events` (the notifier is not running: the
/// deliveries stay queued for the test to read).
async fn channel(p: &Platform, events: &[&str]) -> jt_store::ChannelId {
    p.store
        .notifications()
        .create_channel(
            p.user,
            jt_store::repo::notifications::NewChannel {
                kind: jt_store::ChannelKind::Email,
                label: "me".into(),
                target: jt_store::Secret::new("trader@example.com"),
                events: events.iter().map(|e| (*e).to_string()).collect(),
            },
        )
        .await
        .unwrap()
        .id
}

/// The events queued on `channel`, oldest first.
async fn queued_events(
    p: &Platform,
    channel: jt_store::ChannelId,
) -> Vec<(String, serde_json::Value)> {
    let mut log = p
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
    log.reverse();
    log.into_iter().map(|d| (d.event_kind, d.payload)).collect()
}

#[tokio::test]
async fn a_dca_add_whose_take_profit_failed_is_repaired_by_one_pass_exactly_once() {
    let p = Platform::start(Options::default()).await;
    let settings = Settings {
        dca_enabled: true,
        initial_position_size: 1,
        add_position_size: 1,
        add_delay: 0,
        tp_targets: vec![tp(20)],
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one()).await;
    let first = p
        .queued(&token, &alert("buy", "long", r#","comment":"1""#))
        .await;
    p.settled_intents(first, 1, WAIT).await;
    p.wait_orders(0, WAIT, |o| of_type(o, "Limit", "Sell").len() == 1)
        .await;

    // The add: its market order goes through; the old take-profit's cancel is slowed down, and
    // meanwhile the simulator starts refusing new orders, so the new take-profit is refused.
    let fault = |spec: serde_json::Value| {
        p.sim
            .admin()
            .add_fault(serde_json::from_value(spec).unwrap())
            .unwrap();
    };
    fault(serde_json::json!({
        "kind": "latency", "ms": 2000, "endpoint": "order/cancelorder", "count": 1
    }));
    let second = p
        .queued(&token, &alert("buy", "long", r#","comment":"2""#))
        .await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 2).await;
    fault(serde_json::json!({
        "kind": "error", "status": 400, "endpoint": "order/placeorder", "count": 1
    }));
    p.settled_intents(second, 1, WAIT).await;
    let orders = p.orders(0);
    assert!(
        !orders.iter().any(is_working),
        "the add left the position without a take-profit: {orders:#?}"
    );
    p.sim.admin().clear_faults();
    let placed_before = of_type(&orders, "Limit", "Sell").len();

    let told = channel(&p, &["unprotected_position", "protection_repaired"]).await;
    // One pass (the first runs at start) publishes the repair; the executor places it.
    let started = Instant::now();
    let positions = PositionsService::start(&p, fast(Duration::from_secs(2)));
    let orders = p
        .wait_orders(0, WAIT, |o| o.iter().filter(|o| is_working(o)).count() == 1)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "repaired by the first pass (2 s after start): {:?}",
        started.elapsed()
    );
    let working: Vec<_> = orders.iter().filter(|o| is_working(o)).collect();
    assert_eq!(
        (
            working[0].order_type.as_str(),
            working[0].action.as_str(),
            working[0].qty
        ),
        ("Limit", "Sell", 2),
        "one take-profit for the whole position"
    );
    // More passes change nothing: one repair intent, one take-profit placed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let repairs = intents_of(&p, IntentSource::Reconcile, IntentKind::Protect).await;
    assert_eq!(repairs.len(), 1, "{repairs:#?}");
    assert_eq!(
        of_type(&p.orders(0), "Limit", "Sell").len(),
        placed_before + 1,
        "{:#?}",
        p.orders(0)
    );
    // The reconciliation also brought the store in step with the broker.
    let held = p
        .store
        .broker()
        .positions(p.user, p.subs[0].id)
        .await
        .unwrap();
    assert_eq!(held.iter().map(|h| h.net_quantity).sum::<i64>(), 2);
    // The owner was told once that it was unprotected, and once that it was repaired.
    let events = queued_events(&p, told).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["unprotected_position", "protection_repaired"],
        "{events:#?}"
    );
    assert_eq!(events[0].1["missing"], serde_json::json!(["take_profit"]));
    assert_eq!(
        events[1].1["repair_intent_id"],
        serde_json::json!(repairs[0].id)
    );
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_position_closed_by_hand_at_the_broker_is_closed_in_the_store() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(Settings::default(), &one()).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;

    let positions = PositionsService::start(&p, fast(Duration::from_secs(1)));
    let open = async || {
        p.store
            .broker()
            .positions(p.user, p.subs[0].id)
            .await
            .unwrap()
            .iter()
            .map(|h| h.net_quantity)
            .sum::<i64>()
    };
    eventually("the store to learn the position", WAIT, async || {
        (open().await == 1).then_some(())
    })
    .await;

    // A person closes it at the broker, outside the platform.
    let (broker, account) = p.by_hand(0).await;
    broker.flatten_account(&account).await.unwrap();
    assert_eq!(p.net_position(0), 0);
    eventually("the store to close the position", WAIT, async || {
        (open().await == 0).then_some(())
    })
    .await;
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn auto_flat_after_cutoff_flattens_the_account_once_at_the_window_end() {
    let p = Platform::start(Options::default()).await;
    // Windows are stored to the minute: the window ends at the next minute boundary, at least
    // 10 s away so the entry is inside it.
    use chrono::Timelike;
    let to_boundary = 60 - u64::from(Utc::now().second());
    if to_boundary < 10 {
        tokio::time::sleep(Duration::from_secs(to_boundary + 1)).await;
    }
    let now = Utc::now();
    let minute = |t: chrono::DateTime<Utc>| {
        chrono::NaiveTime::from_hms_opt(t.hour(), t.minute(), 0).unwrap()
    };
    let end = minute(now + chrono::Duration::minutes(1));
    let settings = Settings {
        time_zone: TimeZone(chrono_tz::UTC),
        time_filter_1: TimeWindow {
            enabled: true,
            start: ClockTime(minute(now - chrono::Duration::hours(1))),
            stop: ClockTime(end),
        },
        auto_flat_after_cutoff: true,
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one()).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    let entry = p.settled_intents(s, 1, WAIT).await;
    assert!(
        !entry[0].status.is_terminal() || entry[0].status == jt_store::IntentStatus::Filled,
        "{:?}: {:?}",
        entry[0].status,
        entry[0].status_reason
    );
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;

    let positions = PositionsService::start(&p, fast(Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    if Utc::now().time() < end {
        assert_eq!(p.net_position(0), 1, "not flattened inside the window");
    }
    p.wait_orders(0, Duration::from_secs(90), |_| p.net_position(0) == 0)
        .await;
    assert!(
        Utc::now().time() >= end || Utc::now().time() < minute(now),
        "flattened only once the window ended"
    );
    // Later checks publish nothing more: one flatten for that window end.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let flattens = intents_of(&p, IntentSource::Control, IntentKind::Flatten).await;
    assert_eq!(flattens.len(), 1, "{flattens:#?}");
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn the_simulators_events_through_the_connection_manager_keep_the_store_in_step() {
    let p = Platform::start(Options::default()).await;
    // No reconciliation: only the events write.
    let positions = PositionsService::start(&p, fast(Duration::from_secs(3600)));
    let connmgr = ConnectionManager::start(&p).await;

    let settings = Settings {
        tp_targets: vec![tp(40)],
        ..Settings::default()
    };
    let (_, token) = p.recorder(settings, &one()).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;

    let broker = p.store.broker();
    let sub = p.subs[0].id;
    eventually(
        "the position, fill and take-profit in the store",
        WAIT,
        async || {
            let held: i64 = broker
                .positions(p.user, sub)
                .await
                .unwrap()
                .iter()
                .map(|h| h.net_quantity)
                .sum();
            let fills = broker
                .fills_of_day(p.user, sub, jt_domain::session::trading_day(Utc::now()))
                .await
                .unwrap();
            let working = broker.open_orders(p.user, sub, None).await.unwrap();
            (held == 1
                && fills.len() == 1
                && working
                    .iter()
                    .any(|o| o.order_type == jt_store::entity::BrokerOrderType::Limit))
            .then_some(())
        },
    )
    .await;

    // Closed (the take-profit cancelled, the position flattened) by the platform's close.
    let s = p
        .queued(&token, &alert("sell", "flat", r#","comment":"close""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    eventually("the store to follow the close", WAIT, async || {
        let held: i64 = broker
            .positions(p.user, sub)
            .await
            .unwrap()
            .iter()
            .map(|h| h.net_quantity)
            .sum();
        let working = broker.open_orders(p.user, sub, None).await.unwrap();
        (held == 0 && working.is_empty()).then_some(())
    })
    .await;
    connmgr.stop().await;
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn one_replica_reconciles_and_another_takes_over_when_it_stops() {
    let p = Platform::start(Options::default()).await;
    let replica = |owner: &str| {
        PositionsService::start(
            &p,
            PositionsConfig {
                owner: owner.into(),
                ..fast(Duration::from_secs(1))
            },
        )
    };
    let (a, b) = (replica("replica-a"), replica("replica-b"));
    let defs = Definitions::new(p.bus.namespace());
    let leases = p.bus.kv(&defs.leases).await.unwrap();
    let holder = async || {
        leases
            .get(jt_positions::RECONCILER_LEASE)
            .await
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.value).into_owned())
    };
    let first = eventually("a replica to take the lease", WAIT, async || holder().await).await;

    // Its passes keep the store in step.
    let (_, token) = p.recorder(Settings::default(), &one()).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    let open = async || -> i64 {
        p.store
            .broker()
            .positions(p.user, p.subs[0].id)
            .await
            .unwrap()
            .iter()
            .map(|h| h.net_quantity)
            .sum()
    };
    eventually("the holder to reconcile the position", WAIT, async || {
        (open().await == 1).then_some(())
    })
    .await;

    // The holder stops (releasing its lease): the other takes over and reconciles the close.
    let (stopped, other) = if first == "replica-a" { (a, b) } else { (b, a) };
    stopped.stop().await;
    let next = eventually("the other replica to take the lease", WAIT, async || {
        holder().await.filter(|h| *h != first)
    })
    .await;
    assert_ne!(next, first);
    let s = p
        .queued(&token, &alert("sell", "flat", r#","comment":"close""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    eventually("the new holder to reconcile the close", WAIT, async || {
        (open().await == 0).then_some(())
    })
    .await;
    other.stop().await;
    p.stop().await;
}

// ---- Token refresh (issue 20 part 3) ----

const LOGIN: &str = "tradovate:auth/accesstokenrequest";
const RENEW: &str = "tradovate:auth/renewaccesstoken";

/// Positions with only the token refresher busy: a pass every second, renewing tokens expiring
/// within `renew_before`, budgets out of the way (reconciliation far off).
fn refreshing(renew_before: Duration) -> PositionsConfig {
    PositionsConfig {
        reconcile_every: Duration::from_secs(3600),
        tokens: jt_positions::tokens::TokenConfig {
            every: Duration::from_secs(1),
            renew_before,
            max_per_pass: 10,
            renewals_per_hour: 1000,
            logins_per_hour: 1000,
        },
        ..PositionsConfig::default()
    }
}

fn calls(p: &Platform, endpoint: &str) -> u64 {
    p.sim
        .admin()
        .request_counts()
        .get(endpoint)
        .copied()
        .unwrap_or(0)
}

async fn session(p: &Platform, login: usize) -> jt_store::repo::broker_sessions::BrokerSession {
    p.store
        .broker_sessions()
        .load(p.user, p.broker_accounts[login])
        .await
        .unwrap()
        .expect("a session is stored")
}

async fn account(p: &Platform, login: usize) -> jt_store::repo::accounts::BrokerAccount {
    p.store
        .accounts()
        .get(p.user, p.broker_accounts[login])
        .await
        .unwrap()
}

/// Logs `login` in the way any process of the platform would (its own broker access, the
/// shared session store): the token is stored with the account.
async fn log_in(p: &Platform, login: usize) {
    let access = jt_connect::AccessConfig::default().with_sim_url(p.sim.base_url());
    let brokers = jt_connect::BrokerAccess::new(p.store.clone(), access);
    brokers
        .for_account(&account(p, login).await)
        .await
        .unwrap()
        .login()
        .await
        .unwrap();
}

async fn sleep_until(t: chrono::DateTime<Utc>) {
    if let Ok(left) = (t - Utc::now()).to_std() {
        tokio::time::sleep(left).await;
    }
}

#[tokio::test]
async fn a_token_close_to_expiry_is_renewed_by_the_daemon_and_the_next_signal_pays_no_login() {
    let p = Platform::start(Options::default()).await;
    p.sim.admin().set_token_lifetime(Duration::from_secs(30));
    let (_, token) = p.recorder(Settings::default(), &one()).await;
    // The executor logs in for the entry: a token of 30 s.
    let s = p
        .queued(&token, &alert("buy", "long", r#","comment":"entry""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    let first = session(&p, 0).await;
    p.sim.admin().reset_request_counts();

    let positions = PositionsService::start(&p, refreshing(Duration::from_secs(20)));
    let renewed = eventually("the daemon to renew the token", WAIT, async || {
        let s = session(&p, 0).await;
        (s.access_token.expose() != first.access_token.expose()).then_some(s)
    })
    .await;
    assert!(
        Utc::now() < first.expires_at,
        "renewed before the old token expired"
    );
    assert!(renewed.expires_at > first.expires_at);
    assert!(calls(&p, RENEW) >= 1);
    // The old token (the executor's) expires: without the daemon the next signal would log in.
    sleep_until(first.expires_at + chrono::Duration::seconds(1)).await;
    let s = p
        .queued(&token, &alert("sell", "flat", r#","comment":"close""#))
        .await;
    let intents = p.settled_intents(s, 1, WAIT).await;
    assert!(
        matches!(
            intents[0].status,
            jt_store::IntentStatus::Accepted | jt_store::IntentStatus::Filled
        ),
        "{:?}",
        intents[0].status_reason
    );
    assert_eq!(p.net_position(0), 0, "the close went through");
    assert_eq!(
        calls(&p, LOGIN),
        0,
        "nobody logged in: {:?}",
        p.sim.admin().request_counts()
    );
    assert!(!account(&p, 0).await.needs_reauth);
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_refused_renewal_is_followed_by_a_login_with_the_stored_credentials() {
    let p = Platform::start(Options::default()).await;
    p.sim.admin().set_token_lifetime(Duration::from_secs(30));
    log_in(&p, 0).await;
    let first = session(&p, 0).await;
    // The broker refuses the next renewal: the session is gone.
    p.sim
        .admin()
        .add_fault(
            serde_json::from_value(serde_json::json!({
                "kind": "error", "status": 401, "endpoint": "auth/renewaccesstoken", "count": 1
            }))
            .unwrap(),
        )
        .unwrap();
    p.sim.admin().reset_request_counts();

    let positions = PositionsService::start(&p, refreshing(Duration::from_secs(28)));
    eventually("a new token", WAIT, async || {
        let s = session(&p, 0).await;
        (s.access_token.expose() != first.access_token.expose()).then_some(())
    })
    .await;
    assert_eq!(calls(&p, RENEW), 1, "one renewal, refused");
    assert_eq!(calls(&p, LOGIN), 1, "then one login");
    // The new session is renewed by later passes, never logged in again.
    eventually("a renewal of the new token", WAIT, async || {
        (calls(&p, RENEW) >= 2).then_some(())
    })
    .await;
    assert_eq!(calls(&p, LOGIN), 1);
    let a = account(&p, 0).await;
    assert!(!a.needs_reauth, "{:?}", a.reauth_reason);
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_transient_renewal_failure_is_retried_next_pass_without_a_login_or_a_mark() {
    let p = Platform::start(Options::default()).await;
    p.sim.admin().set_token_lifetime(Duration::from_secs(30));
    log_in(&p, 0).await;
    let first = session(&p, 0).await;
    // The broker fails the next two renewals (HTTP 500).
    p.sim
        .admin()
        .add_fault(
            serde_json::from_value(serde_json::json!({
                "kind": "error", "status": 500, "endpoint": "auth/renewaccesstoken", "count": 2
            }))
            .unwrap(),
        )
        .unwrap();
    p.sim.admin().reset_request_counts();

    // Due 5 s after the login: the first passes fail, a later one renews.
    let positions = PositionsService::start(&p, refreshing(Duration::from_secs(25)));
    eventually("a renewal after the failures", WAIT, async || {
        let s = session(&p, 0).await;
        (s.access_token.expose() != first.access_token.expose()).then_some(())
    })
    .await;
    assert_eq!(
        calls(&p, RENEW),
        3,
        "two failed renewals, then one that worked"
    );
    assert_eq!(calls(&p, LOGIN), 0, "a failure is no reason to log in");
    let a = account(&p, 0).await;
    assert!(!a.needs_reauth, "{:?}", a.reauth_reason);
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn refused_credentials_mark_the_account_needs_reauth_and_it_is_not_retried() {
    let p = Platform::start(Options::default()).await;
    let id = p.broker_accounts[0];
    // The user's password changed at the broker: the stored one is wrong, and the stored token
    // (about to expire) is not the broker's any more.
    p.store
        .accounts()
        .set_credentials(
            p.user,
            id,
            &jt_store::repo::accounts::BrokerCredentials {
                password: Some(jt_store::Secret::new("not-the-password")),
                ..jt_store::repo::accounts::BrokerCredentials::default()
            },
        )
        .await
        .unwrap();
    p.store
        .broker_sessions()
        .save(
            p.user,
            id,
            &jt_store::repo::broker_sessions::BrokerSession {
                access_token: jt_store::Secret::new("a-token-the-broker-forgot"),
                md_access_token: None,
                obtained_at: Utc::now() - chrono::Duration::minutes(80),
                expires_at: Utc::now() + chrono::Duration::minutes(10),
                broker_user_id: None,
            },
        )
        .await
        .unwrap();
    p.sim.admin().reset_request_counts();
    let told = channel(&p, &["needs_reauth"]).await;

    let positions = PositionsService::start(&p, refreshing(Duration::from_secs(1800)));
    let marked = eventually("the account to be marked", WAIT, async || {
        let a = account(&p, 0).await;
        a.needs_reauth.then_some(a)
    })
    .await;
    let reason = marked.reauth_reason.unwrap_or_default();
    assert!(
        reason.contains("Incorrect username or password"),
        "the broker's reason: {reason}"
    );
    assert_eq!(calls(&p, RENEW), 1);
    assert_eq!(calls(&p, LOGIN), 1, "one login, refused");
    // The next passes leave it alone: no renewal, no login (each refused login counts towards
    // the broker's lock-out).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(calls(&p, RENEW), 1);
    assert_eq!(calls(&p, LOGIN), 1);
    assert!(account(&p, 0).await.needs_reauth);
    // The user sees it in `GET /api/v1/status`, with the broker's reason.
    let login = api_status(&p).await;
    let auth = &login[0]["auth"];
    assert_eq!(auth["status"], "needs_reauth", "{login}");
    assert!(
        auth["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Incorrect username or password")),
        "{auth}"
    );
    // And was told once, with the broker's reason.
    let events = queued_events(&p, told).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].0, "needs_reauth");
    assert!(
        events[0].1["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Incorrect username or password")),
        "{events:#?}"
    );
    positions.stop().await;
    p.stop().await;
}

/// `GET /api/v1/status` of the platform's user, from an API served for the call.
async fn api_status(p: &Platform) -> serde_json::Value {
    let mail = std::env::temp_dir().join(format!("jt-e2e-mail-{}", uuid::Uuid::new_v4()));
    let config = jt_api::ApiConfig {
        public_url: p.ingest_url.clone(),
        mail_dir: Some(mail.clone()),
        ..jt_api::ApiConfig::default()
    };
    let access = jt_connect::AccessConfig::default().with_sim_url(p.sim.base_url());
    let brokers = Arc::new(jt_connect::BrokerAccess::new(p.store.clone(), access));
    let state = jt_api::ApiState::new(
        config,
        p.store.clone(),
        p.bus.clone(),
        jt_api::AccessProbe::new(brokers).shared(),
        Arc::new(jt_api::FileMailer::new(mail, "jt <no-reply@jt.test>")),
    );
    let app = jt_api::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let email = p.store.users().get(p.user).await.unwrap().email;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    let r = http
        .get(format!("{base}/api/v1/status"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = r.json().await.unwrap();
    server.abort();
    v
}

#[tokio::test]
async fn with_two_replicas_each_token_is_renewed_once_and_the_other_takes_over() {
    let p = Platform::start(Options {
        accounts: 2,
        logins: 2,
        ..Options::default()
    })
    .await;
    // 60 s tokens renewed when 45 s are left: due 15 s after each renewal.
    p.sim.admin().set_token_lifetime(Duration::from_secs(60));
    log_in(&p, 0).await;
    log_in(&p, 1).await;
    let before = [session(&p, 0).await, session(&p, 1).await];
    p.sim.admin().reset_request_counts();

    let replica = |owner: &str| {
        PositionsService::start(
            &p,
            PositionsConfig {
                owner: owner.into(),
                ..refreshing(Duration::from_secs(45))
            },
        )
    };
    let (a, b) = (replica("replica-a"), replica("replica-b"));
    let renewed_at = eventually("both tokens renewed", WAIT, async || {
        let now = [session(&p, 0).await, session(&p, 1).await];
        now.iter()
            .zip(&before)
            .all(|(n, b)| n.access_token.expose() != b.access_token.expose())
            .then(|| now.map(|s| s.obtained_at))
    })
    .await;
    // Well before the renewed tokens are due again, every pass of both replicas has seen them.
    let earliest = renewed_at.iter().min().copied().unwrap();
    sleep_until(earliest + chrono::Duration::seconds(10)).await;
    assert_eq!(
        calls(&p, RENEW),
        2,
        "one renewal per token: {:?}",
        p.sim.admin().request_counts()
    );
    assert_eq!(calls(&p, LOGIN), 0);

    // The holder of the refresher's lease stops: the other replica takes over and renews the
    // tokens when they are due again, once each.
    let defs = Definitions::new(p.bus.namespace());
    let leases = p.bus.kv(&defs.leases).await.unwrap();
    let holder = async || {
        leases
            .get(jt_positions::TOKENS_LEASE)
            .await
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.value).into_owned())
    };
    let first = holder()
        .await
        .expect("a replica holds the refresher's lease");
    let (stopped, other) = if first == "replica-a" { (a, b) } else { (b, a) };
    stopped.stop().await;
    eventually("the other replica to take the lease", WAIT, async || {
        holder().await.filter(|h| *h != first)
    })
    .await;
    let renewed = [session(&p, 0).await, session(&p, 1).await];
    eventually("both tokens renewed again", WAIT, async || {
        let now = [session(&p, 0).await, session(&p, 1).await];
        now.iter()
            .zip(&renewed)
            .all(|(n, r)| n.access_token.expose() != r.access_token.expose())
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        calls(&p, RENEW),
        4,
        "one more renewal per token: {:?}",
        p.sim.admin().request_counts()
    );
    assert_eq!(calls(&p, LOGIN), 0);
    other.stop().await;
    p.stop().await;
}
