//! Failures end to end (issue 8): an executor killed mid-burst and restarted executes every
//! intent exactly once; the ingest keeps answering while the database is down and the signal
//! is executed once it is back; a fan-out that cannot record one trader's intent retries the
//! signal without sending the other traders' orders twice.
//!
//! Needs `NATS_URL` and `DATABASE_URL` (`make test` sets both) and the `jt` binary of this
//! build (built by `cargo test --workspace`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::{Database, ExecutorMode, Options, Platform, alert};
use jt_store::IntentStatus;
use sea_orm::{ConnectionTrait, Statement};

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
    // Each alert may wait an hour (`max_lag`): the subject here is exactly-once through a
    // crash, and an alert without `time` that waits longer than its limit is stale (issue 16).
    for n in 0..SIGNALS {
        p.queued(
            &token,
            &alert(
                "buy",
                "long",
                &format!(r#","comment":"burst {n}","max_lag":3600"#),
            ),
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
    // It may wait for the database longer than the default 30 s staleness (the fan-out's
    // retries back off to 30 s): its `max_lag` says it is still wanted then.
    let (status, answer) = p
        .alert(
            &token,
            &alert(
                "buy",
                "long",
                r#","comment":"during the outage","max_lag":300"#,
            ),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_failing_for_one_trader_retries_the_signal_and_sends_no_order_twice() {
    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    // Traders 0 and 1 trade; trader 2 is in simulation mode, so the fan-out itself records
    // its intent (as skipped) — the write the database is about to refuse.
    let simulated = SettingsOverrides {
        simulation_mode: Some(true),
        ..SettingsOverrides::default()
    };
    let (_, token) = p
        .recorder(
            Settings::default(),
            &[
                (0, SettingsOverrides::default()),
                (1, SettingsOverrides::default()),
                (2, simulated),
            ],
        )
        .await;
    let db = p.store.connection();
    let sql = |s: &str| Statement::from_string(db.get_database_backend(), s.to_owned());
    // Refuse every skipped intent, counting refusals in a sequence (a sequence is not rolled
    // back with the refused insert).
    db.execute_unprepared(
        "CREATE SEQUENCE e2e_refusals;
         CREATE FUNCTION e2e_refuse_skips() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.status = 'skipped' THEN
             PERFORM nextval('e2e_refusals');
             RAISE EXCEPTION 'refused by the test';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER e2e_refuse_skips BEFORE INSERT ON order_intents
           FOR EACH ROW EXECUTE FUNCTION e2e_refuse_skips();",
    )
    .await
    .unwrap();
    let refusals = || async {
        let row = db
            .query_one_raw(sql(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM e2e_refusals",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };

    let signal = p
        .queued(&token, &alert("buy", "long", r#","comment":"partial""#))
        .await;
    // The other traders' orders go out although the fan-out as a whole failed...
    for i in [0, 1] {
        p.wait_orders(i, Duration::from_secs(20), |o| o.len() == 1)
            .await;
    }
    // ...and the signal is tried again (the bus's first back-off is 1 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    while refusals().await < 2 {
        assert!(
            Instant::now() < deadline,
            "the failed fan-out was not retried ({} refusals)",
            refusals().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        p.orders(2).len(),
        0,
        "a simulated trader never reaches the broker"
    );

    // The database takes the write again: the next attempt records the skipped intent.
    db.execute_unprepared("DROP TRIGGER e2e_refuse_skips ON order_intents")
        .await
        .unwrap();
    let intents = p.settled_intents(signal, 3, Duration::from_secs(60)).await;
    let skipped: Vec<_> = intents
        .iter()
        .filter(|i| i.status == IntentStatus::Skipped)
        .collect();
    assert_eq!(skipped.len(), 1, "{intents:#?}");
    assert!(
        skipped[0]
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("simulation mode")),
        "{intents:#?}"
    );
    // Every retry published the trading intents again (same ids): none became a second order.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in [0, 1] {
        assert_eq!(
            p.orders(i).len(),
            1,
            "account {i}: one order for one signal"
        );
    }
    assert_eq!(p.orders(2).len(), 0);
    p.stop().await;
}

/// Two replicas both believing they own a partition for a moment (a stalled owner whose lease
/// ran out while it was delivering) may each hold the same intent. Only the delivery that
/// moves the intent from `pending` to `sent` sends it; the other waits and would resume by
/// look-up. Ten intents, each handed to two executors at the same instant: one order each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_deliveries_of_one_intent_at_once_send_one_order() {
    use jt_bus::{Envelope, Incoming, MessageId, Outcome};
    use jt_messages::{IntentMessage, ManualIntent, ManualTrade};
    use tokio_util::sync::CancellationToken;

    const INTENTS: usize = 10;
    let mut p = Platform::start(Options {
        accounts: 1,
        ..Options::default()
    })
    .await;
    // Nothing else executes: the two executors below are the only ones.
    p.kill_executor().await;
    let executor = || {
        let access = jt_connect::AccessConfig::default()
            .with_sim_url(p.sim.base_url())
            .with_webull_url(p.sim.webull_url())
            .with_projectx_url(p.sim.base_url());
        let brokers = std::sync::Arc::new(jt_connect::BrokerAccess::new(p.store.clone(), access));
        jt_executor::Execute::new(
            p.store.clone(),
            p.bus.clone(),
            brokers,
            jt_executor::ExecuteConfig::default(),
        )
    };
    let (a, b) = (executor(), executor());
    let sub = &p.subs[0];
    let mut outcomes = Vec::new();
    let mut ids = Vec::new();
    for n in 0..INTENTS {
        let intent = IntentMessage::manual(
            p.user,
            sub.id,
            sub.broker_account,
            chrono::Utc::now(),
            ManualIntent::new(
                format!("dual-{n}"),
                p.user,
                "MNQ1!",
                ManualTrade::market_entry(jt_domain::Direction::Long, 1),
            ),
        );
        ids.push(intent.intent_id);
        let delivery = || Incoming {
            envelope: Envelope::new(MessageId::new(intent.message_id()).unwrap(), intent.clone()),
            subject: p.bus.subjects().order(&sub.id.to_string()).unwrap(),
            stream_sequence: n as u64 + 1,
            attempt: 1,
            max_attempts: 5,
            lock_lost: CancellationToken::new(),
        };
        let (x, y) = tokio::join!(a.handle(delivery()), b.handle(delivery()));
        outcomes.push((x, y));
    }
    let mut statuses = Vec::new();
    for id in &ids {
        let intent = p.store.intents().get(p.user, *id).await.unwrap();
        statuses.push((intent.status, intent.status_reason));
    }
    let orders = p.orders(0);
    let mut per_client_id: HashMap<String, usize> = HashMap::new();
    for o in &orders {
        *per_client_id
            .entry(o.cl_ord_id.clone().expect("client order id"))
            .or_default() += 1;
    }
    assert_eq!(
        orders.len(),
        INTENTS,
        "one order per intent: {per_client_id:?} {outcomes:?} {statuses:?}"
    );
    assert!(per_client_id.values().all(|n| *n == 1), "{per_client_id:?}");
    // The race was run: in some round both reached the decision and one was held back.
    let held_back = outcomes
        .iter()
        .filter(|(x, y)| matches!(x, Outcome::Wait { .. }) || matches!(y, Outcome::Wait { .. }))
        .count();
    assert!(held_back > 0, "no round raced: {outcomes:?}");
    for (x, y) in &outcomes {
        assert!(
            matches!(x, Outcome::Ack) || matches!(y, Outcome::Ack),
            "one delivery concluded each intent: {outcomes:?}"
        );
    }
    p.stop().await;
}
