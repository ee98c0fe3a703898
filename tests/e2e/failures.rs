//! Failures end to end (issue 8): an executor killed mid-burst and restarted executes every
//! intent exactly once; the ingest keeps answering while the database is down and the signal
//! is executed once it is back.
//!
//! Needs `NATS_URL` and `DATABASE_URL` (`make test` sets both) and the `jt` binary of this
//! build (built by `cargo test --workspace`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::{Database, ExecutorMode, Options, Platform, alert};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_mid_burst_and_restarted_executes_every_intent_exactly_once() {
    const SIGNALS: usize = 200;
    const TRADERS: usize = 20;
    let mut p = Platform::start(Options {
        accounts: TRADERS,
        // Twenty traders are twenty customers' accounts, each on its own login: one login's
        // request budget (about 5,000 an hour at Tradovate) is not the subject of this test.
        logins: TRADERS,
        executor: ExecutorMode::Process,
        ..Options::default()
    })
    .await;
    let traders: Vec<(usize, SettingsOverrides)> = (0..TRADERS)
        .map(|i| (i, SettingsOverrides::default()))
        .collect();
    // DCA off and no protection: every signal is a fresh market entry on every account.
    let (_, token) = p.recorder(Settings::default(), &traders).await;
    for n in 0..SIGNALS {
        p.queued(
            &token,
            &alert("buy", "long", &format!(r#","comment":"burst {n}""#)),
        )
        .await;
    }
    let total = SIGNALS * TRADERS;
    let placed = |p: &Platform| (0..TRADERS).map(|i| p.orders(i).len()).sum::<usize>();
    // Kill it when a good part — but not all — of the burst is at the broker.
    let deadline = Instant::now() + Duration::from_secs(120);
    while placed(&p) < total / 4 {
        assert!(
            Instant::now() < deadline,
            "the executor made no progress: {} orders",
            placed(&p)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.kill_executor().await;
    let at_kill = placed(&p);
    assert!(
        at_kill < total,
        "killed mid-burst ({at_kill} of {total} placed)"
    );
    p.start_executor();
    let deadline = Instant::now() + Duration::from_secs(300);
    while placed(&p) < total {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} orders after the restart",
            placed(&p)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a duplicate (if any) time to show up, then check each intent placed one order.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut per_client_id: HashMap<String, usize> = HashMap::new();
    for i in 0..TRADERS {
        let orders = p.orders(i);
        assert_eq!(orders.len(), SIGNALS, "account {i}: one order per signal");
        for o in orders {
            *per_client_id
                .entry(o.cl_ord_id.clone().expect("client order id"))
                .or_default() += 1;
        }
    }
    assert_eq!(per_client_id.len(), total);
    assert!(
        per_client_id.values().all(|n| *n == 1),
        "an intent placed two orders"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_answers_within_three_seconds_while_the_database_is_down() {
    let server = jt_testkit::PgServer::start();
    let p = Platform::start(Options {
        database: Database::Private(server),
        ..Options::default()
    })
    .await;
    let (_, token) = p
        .recorder(Settings::default(), &[(0, SettingsOverrides::default())])
        .await;
    // A first alert: the recorder is known to the ingest.
    let first = p
        .queued(&token, &alert("buy", "long", r#","comment":"before""#))
        .await;
    p.settled_intents(first, 1, Duration::from_secs(20)).await;

    p.db_server().unwrap().stop();
    let started = Instant::now();
    let (status, answer) = p
        .alert(
            &token,
            &alert("buy", "long", r#","comment":"during the outage""#),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "queued");
    assert!(took < Duration::from_secs(3), "answered in {took:?}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        p.orders(0).len(),
        1,
        "nothing can execute while the database is down"
    );
    p.db_server().unwrap().restart();
    let deadline = Instant::now() + Duration::from_secs(90);
    while p.orders(0).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the queued signal was not executed after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.stop().await;
}
