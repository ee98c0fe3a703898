//! Order-handling benchmark of the simulator (`cargo bench -p jt-sim`, part of `make bench`).
//!
//! 1. Core: `Exchange::place_order` (market orders, alternating sides) in one thread.
//! 2. Protocol under load: many logins and accounts, one user socket per login with a sync
//!    request over all its accounts, orders sent over REST at a fixed rate (open loop: each
//!    order has its scheduled send time) while a random walk moves the price and resting
//!    limit orders keep many accounts watching it. Reported: the simulator's own handling time
//!    (request arrival → response ready, from `/sim/orders`), the client's round trip, and the
//!    delay from request arrival to the fill event on the account's socket.
//!
//! Environment: `JT_SIM_BENCH_SECS` (20), `JT_SIM_BENCH_RATE` orders/s (1000),
//! `JT_SIM_BENCH_USERS` (200), `JT_SIM_BENCH_ACCOUNTS` per user (5).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    clippy::cast_precision_loss
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use jt_sim::admin::NewUser;
use jt_sim::core::account::OrderSpec;
use jt_sim::core::model::{Action, OrderType};
use jt_sim::core::{Ctx, Exchange, MatchingSettings, SessionMode};
use jt_sim::feed::PriceSource;
use jt_sim::{Sim, SimConfig};
use parking_lot::Mutex;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "  {name:<44} n={:>7}  p50={:>7}µs  p90={:>7}µs  p99={:>7}µs  p99.9={:>7}µs  max={:>8}µs",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

fn core_bench() {
    let ex = Exchange::new(
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        MatchingSettings::default(),
        SessionMode::AlwaysOpen,
    );
    let user = ex.create_user("core", "pw", None, None).unwrap();
    let accounts: Vec<i64> = (0..100)
        .map(|i| {
            ex.add_account(user.id, Some(&format!("CORE{i}")), Decimal::from(50_000))
                .unwrap()
                .id
        })
        .collect();
    let ci = ex.catalog.front("MNQ").unwrap().index;
    let n = 200_000;
    let mut h = hist();
    let started = Instant::now();
    for i in 0..n {
        let spec = OrderSpec {
            action: Some(if i % 2 == 0 {
                Action::Buy
            } else {
                Action::Sell
            }),
            qty: 1,
            order_type: Some(OrderType::Market),
            is_automated: true,
            ..OrderSpec::default()
        };
        let t = Instant::now();
        ex.place_order(
            &Ctx::default(),
            accounts[(i / 2) % accounts.len()],
            ci,
            &spec,
        )
        .unwrap();
        h.saturating_record(t.elapsed().as_nanos().max(1) as u64);
    }
    let secs = started.elapsed().as_secs_f64();
    println!("core: {n} market orders on 100 accounts, one thread");
    println!(
        "  throughput {:.0} orders/s; latency (ns) p50={} p99={} p99.9={} max={}",
        n as f64 / secs,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

struct Login {
    token: String,
    accounts: Vec<(i64, String)>,
}

async fn protocol_bench() {
    let secs = env("JT_SIM_BENCH_SECS", 20);
    let rate = env("JT_SIM_BENCH_RATE", 1000);
    let users = env("JT_SIM_BENCH_USERS", 200) as usize;
    let per_user = env("JT_SIM_BENCH_ACCOUNTS", 5) as usize;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig {
        event_queue: 65_536,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let admin = sim.admin();
    let symbol = admin.front_month("MNQ").unwrap();
    admin.set_price(&symbol, Decimal::from(21_000)).unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("{}/v1", sim.base_url());

    // Logins and accounts.
    let mut logins = Vec::new();
    for u in 0..users {
        let created = admin
            .create_user(&NewUser {
                name: format!("bench{u}"),
                password: "pw".into(),
                accounts: (0..per_user).map(|a| format!("B{u}X{a}")).collect(),
                ..NewUser::default()
            })
            .unwrap();
        let r: Value = http
            .post(format!("{base}/auth/accesstokenrequest"))
            .json(&json!({"name": format!("bench{u}"), "password": "pw", "cid": 1, "sec": "x"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        logins.push(Login {
            token: r["accessToken"].as_str().unwrap().to_string(),
            accounts: created
                .accounts
                .iter()
                .map(|a| (a.id, a.name.clone()))
                .collect(),
        });
    }
    let n_accounts = users * per_user;

    // One user socket per login, synced over all its accounts; fill events are timed.
    let arrivals: Arc<Mutex<HashMap<i64, i64>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut readers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(users);
    for login in &logins {
        let url = sim.ws_url();
        let token = login.token.clone();
        let arrivals = arrivals.clone();
        let ready = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            let _ = ws.next().await; // o
            ws.send(Message::Text(format!("authorize\n0\n\n{token}").into())).await.unwrap();
            ws.send(Message::Text("user/syncrequest\n1\n\n{}".into())).await.unwrap();
            let mut synced = false;
            let mut beat = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    m = ws.next() => {
                        let Some(Ok(Message::Text(t))) = m else { break };
                        let at = now_us();
                        if !synced && t.contains("\"i\":1") {
                            synced = true;
                            let _ = ready.send(()).await;
                            continue;
                        }
                        if t.contains("\"entityType\":\"fill\"") {
                            let v: Value = serde_json::from_str(&t[1..]).unwrap();
                            let mut a = arrivals.lock();
                            for e in v.as_array().unwrap() {
                                if e["d"]["entityType"] == "fill" && e["d"]["eventType"] == "Created" {
                                    a.entry(e["d"]["entity"]["orderId"].as_i64().unwrap()).or_insert(at);
                                }
                            }
                        }
                    }
                    _ = beat.tick() => {
                        if ws.send(Message::Text("[]".into())).await.is_err() { break; }
                    }
                }
            }
        }));
    }
    for _ in 0..users {
        ready_rx.recv().await.unwrap();
    }
    println!(
        "protocol: {users} logins, {n_accounts} accounts, {users} user sockets synced; {rate} orders/s for {secs} s over REST"
    );

    // Price moves and resting limits keep the matching engine busy.
    admin
        .set_price_source(
            &symbol,
            &PriceSource::RandomWalk {
                seed: 7,
                interval: Duration::from_millis(100),
                max_step_ticks: 2,
            },
        )
        .unwrap();

    let total = rate * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let rtt = Arc::new(Mutex::new(hist()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + interval * u32::try_from(i).unwrap();
        tokio::time::sleep_until(scheduled.into()).await;
        let idx = (i as usize) % n_accounts;
        let login = &logins[idx / per_user];
        let (account_id, _) = &login.accounts[idx % per_user];
        // One order in ten rests far from the market (a protective stop / target stand-in).
        let body = if i % 10 == 9 {
            json!({"accountId": account_id, "action": "Sell", "symbol": symbol, "orderQty": 1, "orderType": "Limit", "price": 30000, "isAutomated": true})
        } else {
            let side = if (i / n_accounts as u64).is_multiple_of(2) {
                "Buy"
            } else {
                "Sell"
            };
            json!({"accountId": account_id, "action": side, "symbol": symbol, "orderQty": 1, "orderType": "Market", "isAutomated": true})
        };
        let req = http
            .post(format!("{base}/order/placeorder"))
            .bearer_auth(&login.token)
            .json(&body);
        let rtt = rtt.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let ok = match req.send().await {
                Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["orderId"].is_i64()),
                Err(_) => false,
            };
            if ok {
                rtt.lock()
                    .saturating_record(scheduled.elapsed().as_micros().max(1) as u64);
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let orders = admin.orders(None).unwrap();
    let mut handled = hist();
    let mut delivered = hist();
    let arrivals: HashMap<i64, i64> = arrivals.lock().clone();
    let mut market_orders = 0;
    for o in &orders {
        handled.saturating_record((o.handled_us - o.received_us).max(1) as u64);
        if o.order_type == "Market" {
            market_orders += 1;
            if let Some(at) = arrivals.get(&o.id) {
                delivered.saturating_record((at - o.received_us).max(1) as u64);
            }
        }
    }
    println!(
        "  sent {total} in {elapsed:.2} s ({:.0}/s), errors {}, orders recorded {}, fill events seen {}/{market_orders}",
        total as f64 / elapsed,
        errors.load(std::sync::atomic::Ordering::Relaxed),
        orders.len(),
        delivered.len()
    );
    report("simulator handling (arrival → response ready)", &handled);
    let rtt = rtt.lock().clone();
    report("client round trip (scheduled send → answer)", &rtt);
    report(
        "fill event on the socket (arrival → frame read)",
        &delivered,
    );
    let working = admin
        .accounts(None)
        .unwrap()
        .iter()
        .map(|a| a.working_orders)
        .sum::<usize>();
    println!(
        "  resting orders watching the price at the end: {working}; sockets open: {}",
        admin.sockets().len()
    );
    for r in readers {
        r.abort();
    }
    sim.shutdown().await;
}

fn main() {
    println!(
        "jt-sim benchmark — {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    core_bench();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(protocol_bench());
}
