//! The `/sim/` admin API over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{AdminHttp, Rest};
use serde_json::{Value, json};

#[tokio::test]
async fn users_accounts_balances_sessions_and_matching() {
    let sim = common::sim().await;
    let admin = AdminHttp::new(&sim);
    let created = admin
        .post("users", json!({"name": "ada", "password": "pw"}))
        .await;
    let default_account = created["accounts"][0]["name"].as_str().unwrap().to_string();
    assert!(default_account.starts_with("DEMO"), "{created}");
    // A taken name is a conflict, a bad body a 400.
    let r = admin
        .http
        .post(format!("{}/users", admin.base))
        .json(&json!({"name": "ada", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = admin
        .http
        .post(format!("{}/users", admin.base))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let extra = admin
        .post(
            "accounts",
            json!({"user": "ada", "name": "ADA2", "balance": 1000}),
        )
        .await;
    assert_eq!(extra["name"], "ADA2");
    admin
        .post("balances", json!({"account": "ADA2", "amount": 2500.5}))
        .await;
    let accounts = admin.get("accounts?account=ADA2").await;
    assert_eq!(accounts[0]["balance"], json!(2500.5));
    let users = admin.get("users").await;
    assert_eq!(users[0]["accounts"].as_array().unwrap().len(), 2);

    let rest = Rest::login(&sim, "ada").await;
    let (_, symbol) = rest.contract("MES").await;
    let order = json!({"accountSpec": "ADA2", "action": "Buy", "symbol": symbol, "orderQty": 3, "orderType": "Market", "isAutomated": true});

    // Closed market: SessionClosed; open again: fills.
    let s = admin.post("session", json!({"mode": "closed"})).await;
    assert_eq!(s["open"], false);
    let r = rest.post("order/placeorder", order.clone()).await;
    assert_eq!(r["failureReason"], "SessionClosed");
    admin.post("session", json!({"mode": "alwaysOpen"})).await;

    // Partial fills and commissions through the admin API.
    let m = admin
        .post(
            "matching",
            json!({"partialFillQty": 1, "commissionPerContract": 0.25}),
        )
        .await;
    assert_eq!(m["partialFillQty"], 1);
    let id = rest.post("order/placeorder", order).await["orderId"]
        .as_i64()
        .unwrap();
    let orders = admin.get("orders?account=ADA2").await;
    let o = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id)
        .unwrap();
    assert_eq!(
        (o["filledQty"].as_i64(), o["status"].as_str()),
        (Some(1), Some("Working"))
    );
    admin
        .post("prices", json!({"symbol": "MES", "price": 6000.25}))
        .await;
    admin
        .post("prices", json!({"symbol": "MES", "price": 6000.5}))
        .await;
    let fills = admin.get("fills?account=ADA2").await;
    assert_eq!(fills.as_array().unwrap().len(), 3);
    assert!(
        fills
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["receivedUs"].as_i64().unwrap() > 0)
    );
    let acc = admin.get("accounts?account=ADA2").await;
    // 3 contracts × $0.25.
    assert_eq!(acc[0]["balance"], json!(2499.75));
    let positions = admin.get("positions?account=ADA2").await;
    assert_eq!(positions[0]["netPos"], 3);
    assert!(positions[0]["openPnl"].is_number());
    assert_eq!(
        admin
            .http
            .get(format!("{}/orders?account=NOPE", admin.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Sockets and token lifetime.
    admin.post("tokens", json!({"lifetimeSecs": 1})).await;
    let short = Rest::login(&sim, "ada").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(short.get_raw("account/list").await.status(), 401);
    assert!(admin.get("sockets").await.as_array().unwrap().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn prices_paths_walks_and_fault_removal() {
    let sim = common::sim().await;
    let admin = AdminHttp::new(&sim);
    let set = admin
        .post("prices", json!({"symbol": "GC", "price": 2650.07}))
        .await;
    // A root sets both listed months, rounded to the 0.10 tick.
    assert_eq!(set.as_array().unwrap().len(), 2);
    assert_eq!(set[0]["price"], json!(2650.1));
    let r = admin
        .http
        .post(format!("{}/prices", admin.base))
        .json(&json!({"symbol": "NOPE", "price": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let front = sim.admin().front_month("CL").unwrap();
    admin
        .post(
            "prices",
            json!({"symbol": front, "path": [70.5, 71, 71.25], "intervalMs": 50}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let price = |v: &Value, name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["price"]
            .clone()
    };
    assert_eq!(price(&admin.get("prices").await, &front), json!(71.25));
    admin
        .post(
            "prices",
            json!({"symbol": front, "walk": {"seed": 3, "intervalMs": 20, "maxStepTicks": 3}}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(
        price(&admin.get("prices").await, &front),
        json!(71.25),
        "the walk moves the price"
    );
    // A fixed price stops the walk.
    admin
        .post("prices", json!({"symbol": front, "price": 80}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(price(&admin.get("prices").await, &front), json!(80.0));

    let f = admin.post("faults", json!({"kind": "locked"})).await;
    let id = f["id"].as_u64().unwrap();
    assert_eq!(admin.get("faults").await.as_array().unwrap().len(), 1);
    admin.delete(&format!("faults/{id}")).await;
    assert!(admin.get("faults").await.as_array().unwrap().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn broker_requests_are_counted_by_protocol_and_endpoint() {
    let sim = common::sim().await;
    let admin = AdminHttp::new(&sim);
    admin
        .post("users", json!({"name": "cal", "password": "pw"}))
        .await;
    let rest = Rest::login(&sim, "cal").await;
    let counts = admin.get("requests").await;
    assert_eq!(counts["tradovate:auth/accesstokenrequest"], 1, "{counts}");

    admin.delete("requests").await;
    assert_eq!(admin.get("requests").await, json!({}));
    rest.get("account/list").await;
    rest.get("account/list").await;
    // Refused requests count too: a bad order, and ProjectX without a token.
    let r = rest.post_raw("order/placeorder", &json!({})).await;
    // The simulator answers a body without its fields as Tradovate does: `violations`.
    let refused: Value = r.json().await.unwrap();
    assert!(refused["violations"].is_array(), "{refused}");
    let r = common::http()
        .post(format!("{}/Order/search", sim.projectx_api_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        admin.get("requests").await,
        json!({
            "tradovate:account/list": 2,
            "tradovate:order/placeorder": 1,
            "projectx:order/search": 1,
        })
    );
    // The same counts in process.
    assert_eq!(
        sim.admin().request_counts().get("tradovate:account/list"),
        Some(&2)
    );
}
