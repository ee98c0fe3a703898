//! Protocol tests: a raw REST and WebSocket client following Tradovate's documented sequences.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{AdminHttp, Frame, Rest, Ws, kind, parse_frame};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn login_lookups_and_a_market_order_with_events_in_order() {
    let sim = common::sim().await;
    let admin = AdminHttp::new(&sim);
    let created = admin
        .post("users", json!({"name": "alice", "password": "pw", "accounts": ["DEMO1", "DEMO2"], "balance": 50000}))
        .await;
    assert_eq!(created["accounts"].as_array().unwrap().len(), 2);
    let rest = Rest::login(&sim, "alice").await;
    assert!(
        rest.login["expirationTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(rest.login["userStatus"], "Active");
    assert_eq!(rest.login["name"], "alice");

    let account_id = rest.account_id("DEMO1").await;
    assert_eq!(account_id, created["accounts"][0]["id"].as_i64().unwrap());
    let (contract_id, name) = rest.contract("MNQ").await;
    assert!(name.starts_with("MNQ") && name.len() == 5, "{name}");
    let found = rest.get(&format!("contract/find?name={name}")).await;
    assert_eq!(found["id"], contract_id);
    let maturity = rest
        .get(&format!(
            "contractMaturity/item?id={}",
            found["contractMaturityId"]
        ))
        .await;
    let product = rest
        .get(&format!("product/item?id={}", maturity["productId"]))
        .await;
    assert_eq!(product["name"], "MNQ");
    assert_eq!(product["tickSize"], json!(0.25));
    assert_eq!(product["valuePerPoint"], json!(2.0));

    admin
        .post("prices", json!({"symbol": "MNQ", "price": 21000.25}))
        .await;

    // The user socket: o, authorize, syncrequest.
    let mut ws = Ws::authorized(&sim.ws_url(), &rest.token).await;
    let sync = ws
        .request(
            "user/syncrequest",
            "",
            &json!({"users": [rest.user_id]}).to_string(),
        )
        .await;
    assert_eq!(sync["s"], 200);
    let d = &sync["d"];
    for array in [
        "users",
        "accounts",
        "positions",
        "orders",
        "orderVersions",
        "fills",
        "cashBalances",
        "contracts",
        "contractGroups",
        "accountRiskStatuses",
        "marginSnapshots",
        "userAccountAutoLiqs",
        "fillPairs",
        "executionReports",
        "commandReports",
        "commands",
        "orderStrategies",
        "orderStrategyLinks",
        "products",
        "contractMaturities",
        "currencies",
        "exchanges",
        "orderStrategyTypes",
    ] {
        assert!(d[array].is_array(), "sync lacks {array}: {d}");
    }
    assert_eq!(d["accounts"].as_array().unwrap().len(), 2);

    let placed = rest
        .post(
            "order/placeorder",
            json!({"accountSpec": "DEMO1", "accountId": account_id, "action": "Buy", "symbol": name,
                   "orderQty": 2, "orderType": "Market", "isAutomated": true, "clOrdId": "jt-1"}),
        )
        .await;
    let order_id = placed["orderId"].as_i64().expect("orderId");
    assert!(placed.get("failureReason").is_none());

    let events = ws
        .events_until(T, |e| {
            kind(e) == ("cashBalance".into(), "Updated".into()) || kind(e).0 == "position"
        })
        .await;
    let kinds: Vec<(String, String)> = events.iter().map(kind).collect();
    let pos = |k: &str, t: &str| {
        kinds
            .iter()
            .position(|(a, b)| a == k && b == t)
            .unwrap_or_else(|| panic!("no {k} {t} in {kinds:?}"))
    };
    // The documented lifecycle order.
    assert!(pos("order", "Created") < pos("command", "Created"));
    assert!(pos("command", "Created") < pos("commandReport", "Created"));
    assert!(pos("commandReport", "Created") < pos("executionReport", "Created"));
    assert!(pos("executionReport", "Created") < pos("orderVersion", "Created"));
    assert!(pos("orderVersion", "Created") < pos("fill", "Created"));
    assert!(pos("fill", "Created") < pos("position", "Created"));
    let created = &events[pos("order", "Created")]["d"]["entity"];
    assert_eq!(created["ordStatus"], "PendingNew");
    assert!(created.get("price").is_none() && created.get("orderQty").is_none());
    let fill = &events[pos("fill", "Created")]["d"]["entity"];
    assert_eq!(fill["orderId"], order_id);
    assert_eq!(fill["qty"], 2);
    assert_eq!(fill["price"], json!(21000.25));
    assert!(fill.get("accountId").is_none(), "Fill has no accountId");
    let position = &events[pos("position", "Created")]["d"]["entity"];
    assert_eq!(position["netPos"], 2);
    assert_eq!(position["netPrice"], json!(21000.25));
    assert_eq!(position["accountId"], account_id);

    // REST agrees.
    let version = rest
        .get(&format!("orderVersion/deps?masterid={order_id}"))
        .await;
    assert_eq!(version[0]["orderQty"], 2);
    assert_eq!(version[0]["orderType"], "Market");
    let order = rest.get(&format!("order/item?id={order_id}")).await;
    assert_eq!(order["ordStatus"], "Filled");
    let fills = rest.get(&format!("fill/deps?masterid={order_id}")).await;
    assert_eq!(fills.as_array().unwrap().len(), 1);
    let positions = rest
        .get(&format!("position/deps?masterid={account_id}"))
        .await;
    assert_eq!(positions[0]["netPos"], 2);

    // Admin read-outs with receive timestamps.
    let orders = admin.get("orders?account=DEMO1").await;
    assert_eq!(orders[0]["id"], order_id);
    assert_eq!(orders[0]["clOrdId"], "jt-1");
    assert!(orders[0]["receivedUs"].as_i64().unwrap() > 1_600_000_000_000_000);
    assert!(orders[0]["handledUs"].as_i64().unwrap() >= orders[0]["receivedUs"].as_i64().unwrap());
    let fills = admin.get(&format!("fills?account={account_id}")).await;
    assert_eq!(fills[0]["price"], json!(21000.25));
    let positions = admin.get("positions?account=DEMO1").await;
    assert_eq!(positions[0]["netPos"], 2);
    assert!(
        admin
            .get("orders?account=DEMO2")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn business_errors_come_back_as_documented() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("bob", &["B1"]))
        .unwrap();
    let http = common::http();
    let base = format!("{}/v1", sim.base_url());
    // Bad credentials: HTTP 200 with errorText.
    let r = http
        .post(format!("{base}/auth/accessTokenRequest"))
        .json(&json!({"name": "bob", "password": "wrong", "cid": "8"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["errorText"]
            .as_str()
            .unwrap()
            .starts_with("Incorrect username or password")
    );

    let rest = Rest::login(&sim, "bob").await;
    // No token → 401; unknown endpoint → 404; unknown entity id → 404; malformed JSON → 400.
    let r = http
        .get(format!("{base}/account/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(rest.get_raw("nothing/here").await.status(), 404);
    assert_eq!(rest.get_raw("order/item?id=1").await.status(), 404);
    let r = rest
        .http
        .post(format!("{base}/order/placeorder"))
        .bearer_auth(&rest.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Paths are case-insensitive; unknown fields are ignored.
    let accounts = rest.get("Account/LIST").await;
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    let (_, name) = rest.contract("MES").await;
    // Missing account → violations.
    let v = rest
        .post(
            "order/placeOrder",
            json!({"action": "Buy", "symbol": name, "orderQty": 1, "orderType": "Market"}),
        )
        .await;
    assert!(v["violations"].is_array(), "{v}");
    // Unknown contract → failureReason.
    let v = rest
        .post("order/placeorder", json!({"accountSpec": "B1", "action": "Buy", "symbol": "ZZZZ9", "orderQty": 1, "orderType": "Market", "someNewField": 1}))
        .await;
    assert_eq!(v["failureReason"], "InvalidContract");
    assert!(v.get("orderId").is_none());
    // Off-tick limit price → InvalidPrice.
    let v = rest
        .post("order/placeorder", json!({"accountSpec": "B1", "action": "Buy", "symbol": name, "orderQty": 1, "orderType": "Limit", "price": 6000.1}))
        .await;
    assert_eq!(v["failureReason"], "InvalidPrice");
    // accountSpec may be the user name (Tradovate's own examples do that).
    let v = rest
        .post("order/placeorder", json!({"accountSpec": "bob", "action": "Sell", "symbol": name, "orderQty": 1, "orderType": "Limit", "price": 7000}))
        .await;
    assert!(v["orderId"].is_i64(), "{v}");
    sim.shutdown().await;
}

#[tokio::test]
async fn socket_framing_heartbeats_and_errors() {
    let config = jt_sim::SimConfig {
        heartbeat_interval: Duration::from_millis(300),
        client_timeout: Duration::from_millis(1500),
        ..jt_sim::SimConfig::default()
    };
    let sim = common::sim_with(config).await;
    sim.admin()
        .create_user(&common::user("carol", &["C1"]))
        .unwrap();
    let rest = Rest::login(&sim, "carol").await;

    // Requests before authorization are refused.
    let mut ws = Ws::connect(&sim.ws_url()).await;
    ws.send("account/list\n5\n\n").await;
    let r = ws.response(5, T).await.unwrap();
    assert_eq!(r["s"], 401);
    assert!(r["d"].is_string());
    // The JSON-quoted token works as well as the raw one.
    ws.send(&format!("authorize\n6\n\n\"{}\"", rest.token))
        .await;
    assert_eq!(ws.response(6, T).await.unwrap(), json!({"s": 200, "i": 6}));
    let list = ws.request("account/list", "", "").await;
    assert_eq!(list["s"], 200);
    assert_eq!(list["d"][0]["name"], "C1");
    // An unknown endpoint: 404 with the error text as a string.
    let r = ws.request("quote/subscribe", "", "").await;
    assert_eq!(r["s"], 404);
    assert_eq!(r["d"], json!("\"Not found: quote/subscribe\""));
    // A query string.
    let id = rest.account_id("C1").await;
    let r = ws
        .request("cashBalance/deps", &format!("masterid={id}"), "")
        .await;
    assert_eq!(r["d"][0]["amount"], json!(50000.0));

    // Idle: the server sends `h`; a client that keeps sending `[]` stays connected.
    let mut beats = 0;
    for _ in 0..8 {
        ws.heartbeat().await;
        if let Some(t) = ws.raw_text(Duration::from_millis(400)).await
            && t == "h"
        {
            beats += 1;
        }
    }
    assert!(beats >= 2, "saw {beats} heartbeats");

    // A silent client is dropped after the client timeout.
    let mut silent = Ws::authorized(&sim.ws_url(), &rest.token).await;
    let started = std::time::Instant::now();
    while silent.raw_text(Duration::from_secs(4)).await.is_some() {}
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn planned_shutdown_sends_shutdown_event_and_close_frame() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("dave", &["D1"]))
        .unwrap();
    let rest = Rest::login(&sim, "dave").await;
    let mut ws = Ws::authorized(&sim.ws_url(), &rest.token).await;
    let admin = AdminHttp::new(&sim);
    let r = admin
        .post(
            "faults",
            json!({"kind": "shutdown", "user": "dave", "reasonCode": "Maintenance"}),
        )
        .await;
    assert_eq!(r["applied"], 1);
    let mut saw_shutdown = false;
    let mut saw_close = false;
    while let Some(t) = ws.raw_text(T).await {
        match parse_frame(&t) {
            Frame::Array(items) => {
                for m in items {
                    if m["e"] == "shutdown" {
                        assert_eq!(m["d"]["reasonCode"], "Maintenance");
                        saw_shutdown = true;
                    }
                }
            }
            Frame::Close(c) => {
                assert!(c[0].is_u64() && c[1].is_string(), "{c}");
                saw_close = true;
            }
            _ => {}
        }
    }
    assert!(saw_shutdown && saw_close);
    sim.shutdown().await;
}
