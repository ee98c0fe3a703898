//! Injected faults, seen from a raw client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{AdminHttp, Frame, Rest, Ws, kind, parse_frame};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);

struct Setup {
    sim: jt_sim::Sim,
    rest: Rest,
    admin: AdminHttp,
    symbol: String,
}

async fn setup(name: &str, accounts: &[&str]) -> Setup {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user(name, accounts))
        .unwrap();
    let rest = Rest::login(&sim, name).await;
    let (_, symbol) = rest.contract("MNQ").await;
    let admin = AdminHttp::new(&sim);
    Setup {
        sim,
        rest,
        admin,
        symbol,
    }
}

fn market(account: &str, symbol: &str, cl: &str) -> Value {
    json!({"accountSpec": account, "action": "Buy", "symbol": symbol, "orderQty": 1, "orderType": "Market", "isAutomated": true, "clOrdId": cl})
}

#[tokio::test]
async fn latency_and_error_rate_per_endpoint() {
    let s = setup("lat", &["L1"]).await;
    s.admin
        .post(
            "faults",
            json!({"kind": "latency", "ms": 300, "endpoint": "order/placeorder"}),
        )
        .await;
    let started = Instant::now();
    s.rest
        .post("order/placeorder", market("L1", &s.symbol, "a"))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    s.rest.get("account/list").await;
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "other endpoints are not delayed"
    );
    s.admin.delete("faults").await;

    s.admin
        .post(
            "faults",
            json!({"kind": "error", "status": 503, "endpoint": "order/placeorder", "count": 1}),
        )
        .await;
    let r = s
        .rest
        .post_raw("order/placeorder", &market("L1", &s.symbol, "b"))
        .await;
    assert_eq!(r.status(), 503);
    // Not handled: no order with that client id.
    let orders = s.admin.get("orders?account=L1").await;
    assert!(
        orders
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["clOrdId"] != "b")
    );
    // The count is spent.
    let r = s
        .rest
        .post_raw("order/placeorder", &market("L1", &s.symbol, "c"))
        .await;
    assert_eq!(r.status(), 200);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn ambiguous_failures_place_the_order_but_lose_the_answer() {
    let s = setup("amb", &["A1"]).await;
    s.admin
        .post("faults", json!({"kind": "ambiguous", "mode": "drop", "endpoint": "order/placeorder", "count": 1}))
        .await;
    let r = s
        .rest
        .http
        .post(format!("{}/order/placeorder", s.rest.base))
        .bearer_auth(&s.rest.token)
        .json(&market("A1", &s.symbol, "dropped"))
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.json::<Value>().await.is_err(),
    };
    assert!(failed, "the response must be lost");
    // The order exists, findable by its client order id.
    let orders = s.admin.get("orders?account=A1").await;
    assert!(
        orders
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["clOrdId"] == "dropped" && o["status"] == "Filled")
    );
    let listed = s.rest.get("command/list").await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["clOrdId"] == "dropped")
    );

    // Timeout mode: the client gives up, the order is there.
    s.admin
        .post("faults", json!({"kind": "ambiguous", "mode": "timeout", "endpoint": "order/placeorder", "count": 1}))
        .await;
    let r = s
        .rest
        .http
        .post(format!("{}/order/placeorder", s.rest.base))
        .bearer_auth(&s.rest.token)
        .timeout(Duration::from_millis(500))
        .json(&market("A1", &s.symbol, "slow"))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    let orders = s.admin.get("orders?account=A1").await;
    assert!(
        orders
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["clOrdId"] == "slow")
    );

    // Over the socket the response never comes, the order is placed.
    s.admin
        .post("faults", json!({"kind": "ambiguous", "mode": "timeout", "endpoint": "order/placeorder", "count": 1}))
        .await;
    let mut ws = Ws::authorized(&s.sim.ws_url(), &s.rest.token).await;
    ws.send(&format!(
        "order/placeorder\n9\n\n{}",
        market("A1", &s.symbol, "ws-lost")
    ))
    .await;
    assert!(ws.response(9, Duration::from_millis(800)).await.is_none());
    let orders = s.admin.get("orders?account=A1").await;
    assert!(
        orders
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["clOrdId"] == "ws-lost")
    );
    s.sim.shutdown().await;
}

#[tokio::test]
async fn suppressed_events_and_replay() {
    let s = setup("sup", &["S1", "S2"]).await;
    let mut ws = Ws::authorized(&s.sim.ws_url(), &s.rest.token).await;
    ws.request("user/syncrequest", "", "{}").await;
    s.admin
        .post("faults", json!({"kind": "suppressEvents", "account": "S1"}))
        .await;
    s.rest
        .post("order/placeorder", market("S1", &s.symbol, "quiet"))
        .await;
    s.rest
        .post("order/placeorder", market("S2", &s.symbol, "loud"))
        .await;
    let s1 = s.rest.account_id("S1").await;
    let events = ws.drain(Duration::from_millis(500)).await;
    assert!(!events.is_empty());
    for e in &events {
        assert_ne!(
            e["d"]["entity"]["accountId"], s1,
            "no S1 events while suppressed"
        );
    }
    s.admin.delete("faults").await;

    // Replay: the day's events again, same ids, Created.
    let fills = s.rest.get("fill/list").await;
    let r = s
        .admin
        .post("faults", json!({"kind": "replay", "account": "S1"}))
        .await;
    assert_eq!(r["applied"], 1);
    let replayed = ws.drain(Duration::from_millis(500)).await;
    let replayed_fills: Vec<&Value> = replayed.iter().filter(|e| kind(e).0 == "fill").collect();
    assert_eq!(replayed_fills.len(), 1);
    assert!(
        fills
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == replayed_fills[0]["d"]["entity"]["id"])
    );
    assert_eq!(replayed_fills[0]["d"]["eventType"], "Created");
    s.sim.shutdown().await;
}

#[tokio::test]
async fn frozen_and_dropped_sockets() {
    let sim = common::sim_with(jt_sim::SimConfig {
        heartbeat_interval: Duration::from_millis(200),
        ..jt_sim::SimConfig::default()
    })
    .await;
    sim.admin()
        .create_user(&common::user("fz", &["F1"]))
        .unwrap();
    let rest = Rest::login(&sim, "fz").await;
    let admin = AdminHttp::new(&sim);
    let mut ws = Ws::authorized(&sim.ws_url(), &rest.token).await;
    assert_eq!(ws.raw_text(T).await.as_deref(), Some("h"));
    admin
        .post("faults", json!({"kind": "freezeSocket", "user": "fz"}))
        .await;
    // Drain what was in flight, then silence: not even heartbeats.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while ws.raw_text(Duration::from_millis(100)).await.is_some() {}
    assert!(
        ws.raw_text(Duration::from_millis(1200)).await.is_none(),
        "a frozen socket sends nothing"
    );
    admin.delete("faults").await;
    assert_eq!(ws.raw_text(T).await.as_deref(), Some("h"));

    let mut other = Ws::authorized(&sim.ws_url(), &rest.token).await;
    let r = admin
        .post("faults", json!({"kind": "dropSocket", "user": "fz"}))
        .await;
    assert_eq!(r["applied"], 2);
    // Dropped: the connection ends without a `c` frame.
    let mut saw_close_frame = false;
    while let Some(t) = other.raw_text(T).await {
        if let Frame::Close(_) = parse_frame(&t) {
            saw_close_frame = true;
        }
    }
    assert!(!saw_close_frame);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_empty_position_list_with_401_and_forced_penalties() {
    let s = setup("p401", &["Q1"]).await;
    s.rest
        .post("order/placeorder", market("Q1", &s.symbol, "x"))
        .await;
    s.admin
        .post("faults", json!({"kind": "positions401", "user": "p401"}))
        .await;
    let r = s.rest.get_raw("position/list").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
    assert_eq!(s.rest.get_raw("order/list").await.status(), 200);
    s.admin.delete("faults").await;
    assert_eq!(s.rest.get("position/list").await[0]["netPos"], 1);

    s.admin
        .post(
            "faults",
            json!({"kind": "pTicket", "pTime": 0, "count": 1, "endpoint": "order/*"}),
        )
        .await;
    let r = s
        .rest
        .post("order/placeorder", market("Q1", &s.symbol, "y"))
        .await;
    let ticket = r["p-ticket"].as_str().unwrap().to_string();
    let mut again = market("Q1", &s.symbol, "y");
    again["p-ticket"] = json!(ticket);
    assert!(s.rest.post("order/placeorder", again).await["orderId"].is_i64());

    s.admin
        .post("faults", json!({"kind": "tooManyRequests", "count": 2}))
        .await;
    assert_eq!(s.rest.get_raw("account/list").await.status(), 429);
    assert_eq!(s.rest.get_raw("account/list").await.status(), 429);
    assert_eq!(s.rest.get_raw("account/list").await.status(), 200);

    s.admin
        .post("faults", json!({"kind": "captcha", "user": "p401"}))
        .await;
    let v: Value = common::http()
        .post(format!("{}/auth/accesstokenrequest", s.rest.base))
        .json(&json!({"name": "p401", "password": "pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["p-captcha"], true);
    let faults = s.admin.get("faults").await;
    assert_eq!(faults.as_array().unwrap().len(), 1);
    assert!(
        s.admin
            .http
            .post(format!("{}/faults", s.admin.base))
            .json(&json!({"kind": "nonsense"}))
            .send()
            .await
            .unwrap()
            .status()
            .is_client_error()
    );
    s.sim.shutdown().await;
}
