//! Poison input end to end (issue 16): what a hostile or careless sender can do to the
//! pipeline — a NUL in an alert, an alert kept waiting, and a few thousand generated hostile
//! bodies against a `jt ingest` process on PostgreSQL.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL), and the `jt` binary of
//! this build (`make test` provides all three).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::{ExecutorMode, Options, Platform, alert, assert_status};
use jt_store::repo::auth::NewUser;
use jt_store::repo::recorders::NewRecorder;
use jt_store::{IntentStatus, Role, Secret};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, Statement};

const WAIT: Duration = Duration::from_secs(20);

fn trader(index: usize) -> (usize, SettingsOverrides) {
    (index, SettingsOverrides::default())
}

/// Issue 16, item 2: `\u0000` in a comment was answered 200, failed the fan-out on PostgreSQL's
/// `jsonb` for minutes and held the recorder's next alert behind it until it executed late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_comment_executes_and_holds_nothing_up() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p.recorder(Settings::default(), &[trader(0)]).await;
    let poisoned = p
        .queued(
            &token,
            r#"{"action":"sell","ticker":"MNQ1!","position":"short","comment":"a\u0000b"}"#,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = Instant::now();
    let next = p.queued(&token, &alert("sell", "short", "")).await;
    assert_status(
        &p.settled_intents(poisoned, 1, WAIT).await[0],
        IntentStatus::Accepted,
    );
    assert_status(
        &p.settled_intents(next, 1, WAIT).await[0],
        IntentStatus::Accepted,
    );
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "the next alert was not held up ({:?})",
        sent.elapsed()
    );
    let signal = p
        .store
        .signals()
        .get(p.user, jt_store::SignalId(poisoned))
        .await
        .unwrap();
    assert_eq!(signal.payload["comment"], "ab");
    assert_eq!(p.net_position(0), -2);
    p.stop().await;
}

/// Issue 16, item 3: an alert without `time` that waited longer than its limit (here behind an
/// executor outage) is recorded stale, never sent late at market.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_without_time_that_waited_too_long_is_recorded_stale() {
    // A separate process: it can be killed.
    let mut p = Platform::start(Options {
        executor: ExecutorMode::Process,
        ..Options::default()
    })
    .await;
    let (_, token) = p.recorder(Settings::default(), &[trader(0)]).await;
    p.kill_executor().await;
    let late = p
        .queued(&token, &alert("buy", "long", r#","max_lag":2"#))
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    p.start_executor();
    let intents = p.settled_intents(late, 1, WAIT).await;
    assert_status(&intents[0], IntentStatus::Skipped);
    let reason = intents[0].status_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("stale") && reason.contains("receipt"),
        "{reason}"
    );
    assert!(p.orders(0).is_empty(), "{:#?}", p.orders(0));
    p.stop().await;
}

/// A small deterministic generator (xorshift): the same bodies on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }
}

const ACTIONS: &[&str] = &[
    "buy",
    "sell",
    "long",
    "short",
    "close",
    "exit",
    "flatten",
    "close_long",
    "cancel",
    "add",
    "hold",
    "BUY",
    "{{strategy.order.action}}",
    "",
    "\\u0000",
    "b\\u0000uy",
];
const TICKERS: &[&str] = &[
    "MNQ1!",
    "CME_MINI:MNQ1!",
    "MNQZ2025",
    "AAPL",
    "",
    "MNQ\\u0000",
    "ES1!",
    "{{ticker}}",
];
const NUMBERS: &[&str] = &[
    "1",
    "2",
    "\"3\"",
    "0",
    "-1",
    "1e400",
    "-1e400",
    "99999999999999999999999999999999999999",
    "0.000000000000000000000000000001",
    "1.5",
    "\"Infinity\"",
    "\"NaN\"",
    "null",
    "true",
    "[]",
];
const FIELDS: &[&str] = &[
    "action",
    "data",
    "command",
    "ticker",
    "symbol",
    "tv_instrument",
    "contracts",
    "quantity",
    "qty",
    "price",
    "position",
    "market_position",
    "sentiment",
    "prev_position",
    "time",
    "timenow",
    "timestamp",
    "comment",
    "delay",
    "max_lag",
    "tp",
    "sl",
    "takeProfit",
    "stopLoss",
    "order.amount",
    "strategy_info.market_position",
    "unknown_field",
    "Ü",
    "",
];

/// One hostile body (bytes: not all of them are text).
fn hostile_body(rng: &mut Rng, i: usize) -> Vec<u8> {
    match i % 12 {
        // Not JSON at all, or JSON cut short.
        0 => {
            let n = rng.below(200) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| (rng.below(95) + 32) as u8).collect();
            if rng.below(2) == 0 {
                b = br#"{"action":"buy","ticker":"MNQ1!","contr"#.to_vec();
            }
            b
        }
        // Raw control characters (NUL included) inside strings.
        1 => {
            let c = rng.below(32) as u8;
            let mut b = br#"{"action":"buy"#.to_vec();
            b.push(c);
            b.extend_from_slice(br#"","ticker":"MNQ1!","comment":"x"#);
            b.push(0);
            b.extend_from_slice(b"\"}");
            b
        }
        // `\u0000` and other escapes in every text field.
        2 => format!(
            r#"{{"action":"{}","ticker":"{}","comment":"a\u0000b\u001f\ud83d\ude00","position":"long\u0000"}}"#,
            rng.pick(ACTIONS),
            rng.pick(TICKERS)
        )
        .into_bytes(),
        // Huge, negative, fractional and non-numbers where numbers go.
        3 => format!(
            r#"{{"action":"buy","ticker":"MNQ1!","contracts":{},"price":{},"delay":{},"max_lag":{},"tp":{},"sl":{}}}"#,
            rng.pick(NUMBERS),
            rng.pick(NUMBERS),
            rng.pick(NUMBERS),
            rng.pick(NUMBERS),
            rng.pick(NUMBERS),
            rng.pick(NUMBERS)
        )
        .into_bytes(),
        // Deep nesting, under and over the size limit.
        4 => {
            let depth = [64, 129, 1000, 20_000, 40_000][rng.below(5) as usize];
            format!(
                r#"{{"action":"buy","ticker":"MNQ1!","x":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes()
        }
        // The same field twice, in any case.
        5 => br#"{"action":"buy","ACTION":"sell","ticker":"MNQ1!","Ticker":"ES1!","qty":1,"qty":2}"#
            .to_vec(),
        // Many unknown fields.
        6 => {
            let mut b = String::from(r#"{"action":"sell","ticker":"MNQ1!""#);
            for k in 0..rng.below(300) {
                b.push_str(&format!(r#","f{k}_{}":{{"n":[{k},"{k}"]}}"#, rng.next()));
            }
            b.push('}');
            b.into_bytes()
        }
        // Enormous strings: under the 64 KiB limit, over it, and over the 1 MiB read limit.
        7 => {
            let size = match rng.below(20) {
                0 => 1_100_000,
                1..=4 => 70_000,
                _ => 60_000,
            };
            format!(
                r#"{{"action":"buy","ticker":"MNQ1!","comment":"{}"}}"#,
                "x".repeat(size)
            )
            .into_bytes()
        }
        // Every synonym, in conflict.
        8 => {
            let mut b = String::from("{");
            for (k, field) in FIELDS.iter().enumerate() {
                if rng.below(2) == 0 {
                    continue;
                }
                if k > 0 && b.len() > 1 {
                    b.push(',');
                }
                let value = match rng.below(3) {
                    0 => format!("\"{}\"", rng.pick(ACTIONS)),
                    1 => rng.pick(NUMBERS).to_string(),
                    _ => format!("\"{}\"", rng.pick(TICKERS)),
                };
                b.push_str(&format!("\"{field}\":{value}"));
            }
            b.push('}');
            b.into_bytes()
        }
        // Not UTF-8, a BOM, nothing.
        9 => match rng.below(3) {
            0 => b"{\"action\":\"buy\xff\xfe\",\"ticker\":\"MNQ1!\"}".to_vec(),
            1 => b"\xef\xbb\xbf{\"action\":\"buy\",\"ticker\":\"MNQ1!\"}".to_vec(),
            _ => Vec::new(),
        },
        // Times from the far future, the past, or nowhere.
        10 => format!(
            r#"{{"action":"buy","ticker":"MNQ1!","time":"{}"}}"#,
            rng.pick(&[
                "9999-12-31T23:59:59Z",
                "2099-01-01T00:00:00Z",
                "1970-01-01T00:00:00Z",
                "99999999999999999999",
                "yesterday",
                "",
                "\\u0000",
            ])
        )
        .into_bytes(),
        // Valid alerts (queued; their recorder has no trader, so nothing reaches a broker).
        _ => format!(
            r#"{{"action":"{}","ticker":"MNQ1!","contracts":{},"comment":"fuzz {i}"}}"#,
            rng.pick(&["buy", "sell"]),
            1 + rng.below(3)
        )
        .into_bytes(),
    }
}

async fn count(p: &Platform, filter: &str) -> i64 {
    let db = p.store.connection();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM webhook_log WHERE {filter}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// The issue's acceptance test: thousands of generated hostile bodies to a `jt ingest` process
/// on PostgreSQL — never a 5xx, the process stays up with bounded memory, the webhook log keeps
/// growing (it is never poisoned) and loses nothing at SIGTERM, and the next valid alert still
/// executes on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_hostile_bodies_never_break_the_ingest() {
    const BODIES: usize = 3000;
    const AT_ONCE: usize = 8;
    let p = Platform::start(Options::default()).await;
    let (_, trading) = p.recorder(Settings::default(), &[trader(0)]).await;
    // The hostile bodies go to another user's recorder without traders: a `kill` among them
    // must not stop the trader above, and nothing they queue reaches a broker.
    let stranger = p
        .store
        .users()
        .register(NewUser {
            email: format!("fuzz-{}@e2e.test", uuid::Uuid::new_v4().simple()),
            display_name: None,
            password: Secret::new("correct horse battery"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap();
    let (fuzz_recorder, fuzz_token) = p
        .store
        .recorders()
        .create(
            stranger.id,
            NewRecorder {
                name: "fuzz".into(),
                symbol: None,
                settings: Settings::default(),
                commission_per_contract: Decimal::ZERO,
            },
        )
        .await
        .unwrap();
    let fuzz_token = fuzz_token.expose().to_string();
    let mut ingest = p
        .spawn_ingest(&[
            ("JT_INGEST_RATE_PER_SEC", "100000"),
            ("JT_INGEST_RATE_BURST", "100000"),
        ])
        .await;
    let rss_at_start = ingest.rss_kib();
    // A connection per request: the server closes one after answering a body it did not read
    // (413), and a pooled client could pick that connection for the next request.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut logged_with_token = 0usize;
    let mut max_rss = rss_at_start;
    let mut log_counts = Vec::new();
    let started = Instant::now();
    let bodies: Vec<(String, Vec<u8>)> = (0..BODIES)
        .map(|i| {
            let token = match rng.below(20) {
                0 => format!("{:A<43}", format!("unknown{i}")),
                1 => ["x", "%00", "not-a-token", &"T".repeat(5000)][rng.below(4) as usize]
                    .to_string(),
                _ => fuzz_token.clone(),
            };
            (token, hostile_body(&mut rng, i))
        })
        .collect();
    for (n, chunk) in bodies.chunks(AT_ONCE).enumerate() {
        let mut set = tokio::task::JoinSet::new();
        for (token, body) in chunk.iter().cloned() {
            let (http, url) = (http.clone(), ingest.url.clone());
            let huge = body.len() > 1024 * 1024;
            set.spawn(async move {
                let res = http
                    .post(format!("{url}/webhook/{token}"))
                    .header("content-type", "text/plain")
                    .body(body)
                    .send()
                    .await;
                match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let json: Result<serde_json::Value, _> = r.json().await;
                        (status, json.is_ok())
                    }
                    // A body over the 1 MiB read limit may be cut off while it is still
                    // being sent: the 413 can arrive as a reset.
                    Err(e) => {
                        assert!(huge, "request failed: {e}");
                        (0, true)
                    }
                }
            });
        }
        while let Some(done) = set.join_next().await {
            let (status, json) = done.unwrap();
            assert!(json, "every answer is JSON (status {status})");
            assert!(status < 500, "a {status} from the ingest");
            *statuses.entry(status).or_default() += 1;
        }
        logged_with_token += chunk.iter().filter(|(t, _)| *t == fuzz_token).count();
        if n % 25 == 0 {
            max_rss = max_rss.max(ingest.rss_kib());
            assert!(ingest.is_running(), "jt ingest died");
        }
        if n % 60 == 59 {
            // The log writer flushes every 200 ms: the log must have grown since last time.
            tokio::time::sleep(Duration::from_millis(400)).await;
            let rows = count(&p, &format!("recorder_id = '{}'", fuzz_recorder.id.0)).await;
            log_counts.push(rows);
        }
    }
    let fuzz_took = started.elapsed();
    max_rss = max_rss.max(ingest.rss_kib());
    assert!(ingest.is_running(), "jt ingest died");
    assert!(
        log_counts.windows(2).all(|w| w[1] > w[0]),
        "the webhook log stopped growing: {log_counts:?}"
    );

    // The next valid alert, through the same process, executes on time.
    let sent = Instant::now();
    let res = http
        .post(format!("{}/webhook/{trading}", ingest.url))
        .body(alert("buy", "long", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let answer: serde_json::Value = res.json().await.unwrap();
    let signal: uuid::Uuid = answer["signal_id"].as_str().unwrap().parse().unwrap();
    assert_status(
        &p.settled_intents(signal, 1, WAIT).await[0],
        IntentStatus::Accepted,
    );
    p.wait_orders(0, Duration::from_secs(5), |o| !o.is_empty())
        .await;
    let on_time = sent.elapsed();
    assert!(
        on_time < Duration::from_secs(5),
        "executed after {on_time:?}"
    );

    // SIGTERM: what the writer holds is flushed; every request with the recorder's token has
    // its row, and the others their per-address rows.
    assert!(ingest.terminate(), "jt ingest exits cleanly on SIGTERM");
    let rows = count(&p, &format!("recorder_id = '{}'", fuzz_recorder.id.0)).await;
    assert_eq!(
        usize::try_from(rows).unwrap(),
        logged_with_token,
        "one webhook log row per request with the recorder's token"
    );
    assert!(count(&p, "recorder_id IS NULL AND result = 'unknown_token'").await >= 1);
    let grew_mib = (max_rss.saturating_sub(rss_at_start)) / 1024;
    eprintln!(
        "{BODIES} hostile bodies in {fuzz_took:?}; statuses {statuses:?}; RSS {} → max {} MiB; \
         next alert at the broker after {on_time:?}",
        rss_at_start / 1024,
        max_rss / 1024
    );
    assert!(
        max_rss < 256 * 1024 && grew_mib < 160,
        "jt ingest's memory grew from {} to {} MiB",
        rss_at_start / 1024,
        max_rss / 1024
    );
    assert!(statuses.get(&200).is_some_and(|n| *n > 100), "{statuses:?}");
    p.stop().await;
}
