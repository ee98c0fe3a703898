//! Cost of the adapter's hot paths: decoding a socket frame and turning it into events (once
//! per message, for every subscriber of a login), and an order's REST round trip through the
//! whole call policy against the simulator on loopback. Run with `make bench` (or
//! `cargo bench -p jt-tradovate`).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark stops loudly on set-up failure

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::Utc;
use hdrhistogram::Histogram;
use jt_broker::{AccountId, Broker, BrokerKind};
use jt_domain::order::{OrderKind, OrderRequest};
use jt_domain::types::Side;
use jt_tradovate::websocket::codec::{ServerFrame, WsMessage, decode_server_frame};
use jt_tradovate::websocket::handler::Dispatcher;
use jt_tradovate::websocket::messages::decode_props;
use jt_tradovate::{
    Brand, Credentials, Environment, LoginRegistry, TradovateBroker, TradovateConfig,
};

fn frames(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let order = 1_000 + i;
            let ts = Utc::now().to_rfc3339();
            format!(
                concat!(
                    r#"a[{{"e":"props","d":{{"entityType":"order","eventType":"Updated","entity":{{"id":{o},"accountId":33,"contractId":65543,"timestamp":"{t}","action":"Buy","ordStatus":"Filled","admin":false}}}}}},"#,
                    r#"{{"e":"props","d":{{"entityType":"fill","eventType":"Created","entity":{{"id":{f},"orderId":{o},"contractId":65543,"timestamp":"{t}","tradeDate":{{"year":2026,"month":11,"day":23}},"action":"Buy","qty":1,"price":21500.25,"active":true,"finallyPaired":0}}}}}},"#,
                    r#"{{"e":"props","d":{{"entityType":"position","eventType":"Updated","entity":{{"id":7,"accountId":33,"contractId":65543,"timestamp":"{t}","netPos":{i},"netPrice":21500.25,"bought":{i},"boughtValue":1,"sold":0,"soldValue":0,"prevPos":0}}}}}}]"#
                ),
                o = order,
                f = 900_000 + i,
                t = ts,
                i = i
            )
        })
        .collect()
}

fn bench_frames() {
    let frames = frames(20_000);
    let mut dispatcher = Dispatcher::new(BrokerKind::Tradovate, Duration::from_secs(2));
    dispatcher.begin_connection(
        HashSet::from([33]),
        Utc::now() - chrono::Duration::minutes(1),
    );
    let start = Instant::now();
    let mut events = 0usize;
    for f in &frames {
        let ServerFrame::Messages(ms) = decode_server_frame(black_box(f)).unwrap() else {
            panic!("not a messages frame")
        };
        for m in ms {
            if let WsMessage::Event { data: Some(d), .. } = m {
                let props = decode_props(&d).unwrap();
                events += dispatcher.on_props(&props).0.len();
            }
        }
    }
    let per_frame = start.elapsed() / u32::try_from(frames.len()).unwrap();
    assert_eq!(events, 3 * frames.len());
    println!(
        "socket frame (order + fill + position) → 3 events: {:>8.1} µs/frame",
        per_frame.as_nanos() as f64 / 1_000.0
    );
}

async fn bench_orders() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = jt_sim::Sim::start(jt_sim::SimConfig::default())
        .await
        .unwrap();
    let admin = sim.admin();
    let user = admin
        .create_user(&jt_sim::admin::NewUser {
            name: "bench".into(),
            password: "bench-pw".into(),
            accounts: vec!["BENCH1".into()],
            ..Default::default()
        })
        .unwrap();
    admin
        .set_price("MNQ", rust_decimal::Decimal::from(21_000))
        .unwrap();
    let config = TradovateConfig::new(
        Brand::Tradovate,
        Environment::Demo,
        Credentials {
            name: "bench".into(),
            password: "bench-pw".into(),
            ..Credentials::default()
        },
    )
    .with_base_url(&sim.base_url())
    .unwrap();
    // Measure the adapter, not its rate limiter.
    let mut config = config;
    config.limits.per_second = 1_000_000;
    config.limits.burst = 1_000_000;
    config.limits.per_hour = 1_000_000;
    let broker = TradovateBroker::with(config, &LoginRegistry::isolated()).unwrap();
    let account = AccountId::from(user.accounts[0].id);
    let contract = broker.resolve_contract("MNQ").await.unwrap();
    let mut hist = Histogram::<u64>::new(3).unwrap();
    for i in 0..1_000u32 {
        let order = OrderRequest {
            client_order_id: format!("bench-{i}"),
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            qty: 1,
            kind: OrderKind::Market,
        };
        let t = Instant::now();
        broker
            .place_order(&account, &contract, &order)
            .await
            .unwrap();
        hist.record(u64::try_from(t.elapsed().as_micros()).unwrap())
            .unwrap();
    }
    println!(
        "place_order round trip (adapter + loopback simulator), 1,000 sequential market orders: p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.max()
    );
    sim.shutdown().await;
}

fn main() {
    bench_frames();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench_orders());
}
