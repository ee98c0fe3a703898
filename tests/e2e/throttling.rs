//! Broker throttling end to end (issue 16): one HTTP 429 on a login must never drop an exit.
//! The simulator answers one `order/liquidateposition` with 429 (no `Retry-After`), and the
//! login backs off; exits wait their turn and go first, an entry the wait would make stale
//! gives up with its reason, nothing is dead-lettered.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use jt_bus::{DeadLetterQuery, Definitions};
use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::{Options, Platform, SIM_LOGIN, alert, assert_status};
use jt_store::IntentStatus;

fn trader(index: usize) -> (usize, SettingsOverrides) {
    (index, SettingsOverrides::default())
}

/// The simulator answers the next close on the login with 429 and an empty body.
fn close_throttled_once(p: &Platform) {
    let fault: jt_sim::faults::FaultSpec = serde_json::from_value(serde_json::json!({
        "kind": "tooManyRequests", "user": SIM_LOGIN,
        "endpoint": "order/liquidateposition", "count": 1
    }))
    .unwrap();
    p.sim.admin().add_fault(fault).unwrap();
}

async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn no_dead_letters(p: &Platform) {
    let defs = Definitions::new(p.bus.namespace());
    let letters = p
        .bus
        .dead_letters(&defs.dead_letters, &DeadLetterQuery::default())
        .await
        .unwrap();
    assert!(letters.is_empty(), "{letters:#?}");
}

/// The issue's case: a minute-long back-off (here 35 s, longer than the 30 s after which the
/// executor used to fail the close "not executed"). The close, a flatten sent during the wait
/// and the recorder's other trader all end flat; an entry on the same login that the wait would
/// make stale is given up at once with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_a_close_delays_exits_and_never_drops_them() {
    let backoff = Duration::from_secs(35);
    let p = Platform::start(Options {
        accounts: 3,
        logins: 1,
        broker_429_backoff: Some(backoff),
        ..Options::default()
    })
    .await;
    let (_, trend) = p
        .recorder(Settings::default(), &[trader(0), trader(1)])
        .await;
    let (_, other) = p.recorder(Settings::default(), &[trader(2)]).await;
    let entry = p.queued(&trend, &alert("buy", "long", "")).await;
    for i in p.settled_intents(entry, 2, Duration::from_secs(20)).await {
        assert_status(&i, IntentStatus::Accepted);
    }
    wait_until("both long", Duration::from_secs(20), async || {
        p.net_position(0) == 1 && p.net_position(1) == 1
    })
    .await;

    close_throttled_once(&p);
    let started = Instant::now();
    let close = p
        .queued(&trend, r#"{"action":"close","ticker":"MNQ1!"}"#)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Another recorder's entry on the same login, with the default 30 s staleness: the wait
    // would make it stale, so it gives up now instead of being sent late.
    let late = p.queued(&other, &alert("buy", "long", "")).await;
    let late_intents = p.settled_intents(late, 1, Duration::from_secs(10)).await;
    assert_status(&late_intents[0], IntentStatus::Skipped);
    let reason = late_intents[0].status_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("stale") && reason.contains("not sent") && reason.contains("limit"),
        "{reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "given up at once, not after the wait"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flatten = p.queued(&trend, r#"{"command":"flatten"}"#).await;

    let closes = p
        .settled_intents(close, 2, backoff + Duration::from_secs(30))
        .await;
    for i in &closes {
        assert_status(i, IntentStatus::Accepted);
    }
    assert!(
        started.elapsed() >= backoff - Duration::from_secs(2),
        "the closes waited out the back-off ({:?})",
        started.elapsed()
    );
    let flattens = p.settled_intents(flatten, 2, Duration::from_secs(30)).await;
    for i in &flattens {
        assert_status(i, IntentStatus::Accepted);
    }
    assert_eq!((p.net_position(0), p.net_position(1)), (0, 0));
    assert!(p.orders(2).is_empty(), "{:#?}", p.orders(2));
    no_dead_letters(&p).await;
    p.stop().await;
}

/// Exits go first: when the login may call again, the close waiting on it is sent before an
/// entry that arrived during the wait (still fresh, so it waits too and is sent after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_wait_ends_the_waiting_exit_goes_before_the_entries_of_its_login() {
    let p = Platform::start(Options {
        accounts: 2,
        logins: 1,
        broker_429_backoff: Some(Duration::from_secs(3)),
        ..Options::default()
    })
    .await;
    let (_, holder) = p.recorder(Settings::default(), &[trader(0)]).await;
    let (_, newcomer) = p.recorder(Settings::default(), &[trader(1)]).await;
    let s = p.queued(&holder, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, Duration::from_secs(20)).await;
    wait_until("long", Duration::from_secs(20), async || {
        p.net_position(0) == 1
    })
    .await;

    close_throttled_once(&p);
    let close = p
        .queued(&holder, r#"{"action":"close","ticker":"MNQ1!"}"#)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let entry = p.queued(&newcomer, &alert("buy", "long", "")).await;
    assert_status(
        &p.settled_intents(close, 1, Duration::from_secs(30)).await[0],
        IntentStatus::Accepted,
    );
    assert_status(
        &p.settled_intents(entry, 1, Duration::from_secs(30)).await[0],
        IntentStatus::Accepted,
    );
    let closed = p
        .orders(0)
        .into_iter()
        .filter(|o| o.action == "Sell")
        .map(|o| o.received_us)
        .min()
        .expect("the close reached the broker");
    let entered = p
        .orders(1)
        .into_iter()
        .filter(|o| o.action == "Buy")
        .map(|o| o.received_us)
        .min()
        .expect("the entry reached the broker");
    assert!(
        closed < entered,
        "the exit went first ({closed} vs {entered})"
    );
    assert_eq!((p.net_position(0), p.net_position(1)), (0, 1));
    no_dead_letters(&p).await;
    p.stop().await;
}
