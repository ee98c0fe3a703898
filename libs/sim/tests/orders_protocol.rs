//! Order endpoints over REST and the socket, driven by the documented request shapes in
//! `test_data/`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{AdminHttp, Rest, Ws, fixture, fixture_json, kind};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);

struct Setup {
    sim: jt_sim::Sim,
    rest: Rest,
    admin: AdminHttp,
    account_id: i64,
    contract_id: i64,
    symbol: String,
}

async fn setup(name: &str) -> Setup {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user(name, &[&format!("{name}-1")]))
        .unwrap();
    let admin = AdminHttp::new(&sim);
    admin
        .post("prices", json!({"symbol": "MNQ", "price": 21000}))
        .await;
    let rest = Rest::login(&sim, name).await;
    let account_id = rest.account_id(&format!("{name}-1")).await;
    let (contract_id, symbol) = rest.contract("MNQ").await;
    Setup {
        sim,
        rest,
        admin,
        account_id,
        contract_id,
        symbol,
    }
}

impl Setup {
    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "NAME",
                self.rest.login["name"].as_str().unwrap().to_string(),
            ),
            (
                "ACCOUNT",
                format!("{}-1", self.rest.login["name"].as_str().unwrap()),
            ),
            ("ACCOUNT_ID", self.account_id.to_string()),
            ("USER_ID", self.rest.user_id.to_string()),
            ("SYMBOL", self.symbol.clone()),
            ("CONTRACT_ID", self.contract_id.to_string()),
            ("PRICE_ABOVE", "21010".into()),
            ("PRICE_BELOW", "20990".into()),
        ]
    }
    async fn orders(&self) -> Vec<Value> {
        self.admin
            .get(&format!("orders?account={}", self.account_id))
            .await
            .as_array()
            .unwrap()
            .clone()
    }
    async fn status(&self, id: i64) -> String {
        self.rest.get(&format!("order/item?id={id}")).await["ordStatus"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

#[tokio::test]
async fn both_cid_forms_log_in() {
    let s = setup("cid").await;
    for f in [
        "accesstokenrequest_cid_number.json",
        "accesstokenrequest_cid_string.json",
    ] {
        let body = fixture_json(f, &s.vars());
        let v: Value = s
            .rest
            .http
            .post(format!("{}/auth/accesstokenrequest", s.rest.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(v["accessToken"].is_string(), "{f}: {v}");
        assert!(v["mdAccessToken"].is_string());
    }
    s.sim.shutdown().await;
}

#[tokio::test]
async fn oso_oco_and_plain_orders_from_documented_shapes() {
    let s = setup("oso").await;
    let mut ws = Ws::authorized(&s.sim.ws_url(), &s.rest.token).await;
    ws.request(
        "user/syncrequest",
        "",
        &fixture("syncrequest_users.json", &s.vars()),
    )
    .await;

    // OSO, market entry with two brackets: the ids come back and the brackets work as an OCO.
    let r = s
        .rest
        .post(
            "order/placeOSO",
            fixture_json("placeoso_market_two_brackets.json", &s.vars()),
        )
        .await;
    let (entry, oso1, oso2) = (
        r["orderId"].as_i64().unwrap(),
        r["oso1Id"].as_i64().unwrap(),
        r["oso2Id"].as_i64().unwrap(),
    );
    assert_eq!(s.status(entry).await, "Filled");
    assert_eq!(s.status(oso1).await, "Working");
    let o1 = s.rest.get(&format!("order/item?id={oso1}")).await;
    assert_eq!(o1["parentId"], entry);
    assert_eq!(o1["linkedId"], oso2);
    let v = s
        .rest
        .get(&format!("orderVersion/deps?masterid={oso1}"))
        .await;
    assert_eq!(v.as_array().unwrap().last().unwrap()["orderQty"], 2);
    s.admin
        .post("prices", json!({"symbol": s.symbol, "price": 21010}))
        .await;
    assert_eq!(s.status(oso2).await, "Filled");
    assert_eq!(s.status(oso1).await, "Canceled");

    // OSO with a limit entry: the bracket is suspended until the entry fills.
    let r = s
        .rest
        .post(
            "order/placeoso",
            fixture_json("placeoso_limit_entry_one_bracket.json", &s.vars()),
        )
        .await;
    let (entry, oso1) = (
        r["orderId"].as_i64().unwrap(),
        r["oso1Id"].as_i64().unwrap(),
    );
    assert!(r.get("oso2Id").is_none());
    assert_eq!(s.status(entry).await, "Working");
    assert_eq!(s.status(oso1).await, "Suspended");

    // OCO (the documented example puts a price on the stop too).
    s.admin
        .post("prices", json!({"symbol": s.symbol, "price": 21000}))
        .await;
    s.rest
        .post(
            "order/placeorder",
            fixture_json("placeorder_market.json", &s.vars()),
        )
        .await;
    let r = s
        .rest
        .post(
            "order/placeOCO",
            fixture_json("placeoco_stop_with_price.json", &s.vars()),
        )
        .await;
    let (a, b) = (r["orderId"].as_i64().unwrap(), r["ocoId"].as_i64().unwrap());
    assert_eq!(s.status(a).await, "Working");
    assert_eq!(s.status(b).await, "Working");

    // modify and cancel answer a command id.
    let sell = s
        .rest
        .post(
            "order/placeorder",
            fixture_json("placeorder_sell_limit.json", &s.vars()),
        )
        .await;
    let sell = sell["orderId"].as_i64().unwrap();
    let m = s
        .rest
        .post("order/modifyorder", json!({"orderId": sell, "orderQty": 1, "orderType": "Limit", "price": 21020, "isAutomated": true}))
        .await;
    assert!(m["commandId"].is_i64(), "{m}");
    let v = s
        .rest
        .get(&format!("orderVersion/deps?masterid={sell}"))
        .await;
    assert_eq!(
        v.as_array().unwrap().last().unwrap()["price"],
        json!(21020.0)
    );
    let c = s
        .rest
        .post(
            "order/cancelorder",
            json!({"orderId": sell, "isAutomated": true}),
        )
        .await;
    assert!(c["commandId"].is_i64());
    assert_eq!(s.status(sell).await, "Canceled");
    // The socket saw the cancel's command, report and execution report.
    let events = ws
        .events_until(T, |e| {
            kind(e) == ("executionReport".into(), "Created".into())
                && e["d"]["entity"]["execType"] == "Canceled"
                && e["d"]["entity"]["orderId"] == sell
        })
        .await;
    assert!(events.iter().any(
        |e| e["d"]["entity"]["commandType"] == "Cancel" && e["d"]["entity"]["orderId"] == sell
    ));
    // Item lookups for something that belongs to another user are 404.
    assert_eq!(s.rest.get_raw("order/item?id=1").await.status(), 404);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn order_strategies_over_the_socket_and_rest() {
    let s = setup("strat").await;
    let mut ws = Ws::authorized(&s.sim.ws_url(), &s.rest.token).await;
    ws.request(
        "user/syncrequest",
        "",
        &fixture("syncrequest_users.json", &s.vars()),
    )
    .await;
    // The documented way: over the socket, lower-case path.
    let r = ws
        .request(
            "orderstrategy/startorderstrategy",
            "",
            &fixture("startorderstrategy_multibracket.json", &s.vars()),
        )
        .await;
    assert_eq!(r["s"], 200);
    let strategy = &r["d"]["orderStrategy"];
    assert_eq!(strategy["status"], "ActiveStrategy");
    assert_eq!(strategy["orderStrategyTypeId"], 2);
    assert!(strategy["params"].is_string());
    let sid = strategy["id"].as_i64().unwrap();
    let links = s
        .rest
        .get(&format!("orderStrategyLink/deps?masterid={sid}"))
        .await;
    // entry + 3 × (target, stop)
    assert_eq!(links.as_array().unwrap().len(), 7, "{links}");
    let pos = s
        .rest
        .get(&format!("position/deps?masterid={}", s.account_id))
        .await;
    assert_eq!(pos[0]["netPos"], 15);
    let orders = s.orders().await;
    let targets: Vec<f64> = orders
        .iter()
        .filter(|o| o["strategyId"] == sid && o["orderType"] == "Limit")
        .map(|o| o["price"].as_f64().unwrap())
        .collect();
    assert_eq!(targets, vec![21005.0, 21012.5, 21025.0]);
    let events = ws
        .events_until(T, |e| kind(e).0 == "orderStrategyLink")
        .await;
    assert!(events.iter().any(|e| kind(e).0 == "orderStrategy"));

    // A sell strategy over REST: signs flip.
    let r = s
        .rest
        .post(
            "orderStrategy/startOrderStrategy",
            fixture_json("startorderstrategy_sell.json", &s.vars()),
        )
        .await;
    assert_eq!(r["orderStrategy"]["action"], "Sell");
    // Refusals come back as errorText.
    let mut bad = fixture_json("startorderstrategy_sell.json", &s.vars());
    bad["params"] = json!(
        "{\"entryVersion\":{\"orderQty\":1,\"orderType\":\"Market\"},\"brackets\":[{\"qty\":1,\"profitTarget\":30,\"stopLoss\":-15}]}"
    );
    let r = s.rest.post("orderstrategy/startorderstrategy", bad).await;
    assert!(r["errorText"].is_string(), "{r}");
    let mut bad = fixture_json("startorderstrategy_sell.json", &s.vars());
    bad["orderStrategyTypeId"] = json!(1);
    assert!(s.rest.post("orderstrategy/startorderstrategy", bad).await["errorText"].is_string());

    // Interrupt.
    let r = s
        .rest
        .post(
            "orderStrategy/interruptOrderStrategy",
            json!({"orderStrategyId": sid}),
        )
        .await;
    assert_eq!(r["orderStrategy"]["status"], "StoppedByUser");
    s.sim.shutdown().await;
}

/// Any fill that leaves the account flat ends the exits of an OSO or a strategy whose entry
/// filled, whichever order made it flat: a stop left working would open a position.
#[tokio::test]
async fn brackets_and_strategies_end_when_another_order_makes_the_account_flat() {
    let s = setup("flat").await;
    let sell = |qty: u32| {
        json!({"accountSpec": "flat-1", "accountId": s.account_id, "action": "Sell",
            "symbol": s.symbol, "orderQty": qty, "orderType": "Market", "isAutomated": true})
    };
    let working = || async {
        s.orders()
            .await
            .into_iter()
            .filter(|o| matches!(o["status"].as_str(), Some("Working" | "Suspended")))
            .collect::<Vec<_>>()
    };
    let net = || async {
        s.rest
            .get(&format!("position/deps?masterid={}", s.account_id))
            .await[0]["netPos"]
            .as_i64()
            .unwrap()
    };
    // An OSO (buy 2, stop 20990, target 21010) closed by a separate market order.
    let r = s
        .rest
        .post(
            "order/placeoso",
            fixture_json("placeoso_market_two_brackets.json", &s.vars()),
        )
        .await;
    let (stop, target) = (r["oso1Id"].as_i64().unwrap(), r["oso2Id"].as_i64().unwrap());
    assert_eq!(s.status(stop).await, "Working");
    s.rest.post("order/placeorder", sell(2)).await;
    assert_eq!(net().await, 0);
    assert_eq!(s.status(stop).await, "Canceled");
    assert_eq!(s.status(target).await, "Canceled");
    assert!(working().await.is_empty(), "{:#?}", working().await);
    // The old stop's price trades: still flat.
    for p in [20980, 21020, 21000] {
        s.admin
            .post("prices", json!({"symbol": s.symbol, "price": p}))
            .await;
    }
    assert_eq!(net().await, 0);

    // A multibracket strategy (buy 15 in three brackets) closed the same way.
    let r = s
        .rest
        .post(
            "orderstrategy/startorderstrategy",
            fixture_json("startorderstrategy_multibracket.json", &s.vars()),
        )
        .await;
    let sid = r["orderStrategy"]["id"].as_i64().unwrap();
    assert_eq!(net().await, 15);
    assert_eq!(working().await.len(), 6, "three targets, three stops");
    s.rest.post("order/placeorder", sell(15)).await;
    assert_eq!(net().await, 0);
    assert!(working().await.is_empty(), "{:#?}", working().await);
    let strategy = s.rest.get(&format!("orderStrategy/item?id={sid}")).await;
    assert_eq!(strategy["status"], "ExecutionFinished");
    for p in [20980, 21000] {
        s.admin
            .post("prices", json!({"symbol": s.symbol, "price": p}))
            .await;
    }
    assert_eq!(net().await, 0);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn liquidation_snapshot_and_entity_queries() {
    let s = setup("liq").await;
    s.rest
        .post(
            "order/placeorder",
            fixture_json("placeorder_market.json", &s.vars()),
        )
        .await;
    s.rest
        .post(
            "order/placeorder",
            fixture_json("placeorder_sell_limit.json", &s.vars()),
        )
        .await;
    s.admin
        .post("prices", json!({"symbol": s.symbol, "price": 21005}))
        .await;
    let snap = s
        .rest
        .post(
            "cashBalance/getCashBalanceSnapshot",
            json!({"accountId": s.account_id}),
        )
        .await;
    // Long 1 MNQ from 21000, now 21005: 5 points × $2.
    assert_eq!(snap["openPnL"], json!(10.0));
    assert_eq!(snap["totalCashValue"], json!(50000.0));
    assert_eq!(snap["netLiq"], json!(50010.0));

    let r = s
        .rest
        .post(
            "order/liquidatePosition",
            fixture_json("liquidateposition.json", &s.vars()),
        )
        .await;
    let close = r["orderId"].as_i64().unwrap();
    assert_eq!(s.status(close).await, "Filled");
    let pos = s.rest.get("position/list").await;
    assert_eq!(pos[0]["netPos"], 0);
    assert!(s.orders().await.iter().all(|o| o["status"] != "Working"));
    let cash = s
        .rest
        .get(&format!("cashBalance/deps?masterid={}", s.account_id))
        .await;
    assert_eq!(cash[0]["realizedPnL"], json!(10.0));
    assert_eq!(cash[0]["amount"], json!(50010.0));
    // Flat: nothing to close.
    assert_eq!(
        s.rest
            .post(
                "order/liquidateposition",
                fixture_json("liquidateposition.json", &s.vars())
            )
            .await,
        json!({})
    );

    // items / ldeps / find / suggest.
    let fills = s.rest.get("fill/list").await;
    let ids: Vec<String> = fills
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].to_string())
        .collect();
    let items = s
        .rest
        .get(&format!("fill/items?ids={}", ids.join("%2C")))
        .await;
    assert_eq!(items.as_array().unwrap().len(), ids.len());
    let pairs = s
        .rest
        .get(&format!("fillPair/ldeps?masterids={}", pos[0]["id"]))
        .await;
    assert_eq!(pairs[0]["qty"], 1);
    assert_eq!(
        s.rest.get(&format!("account/find?name={}-1", "liq")).await["id"],
        s.account_id
    );
    assert_eq!(
        s.rest.get("product/find?name=MNQ").await["tickSize"],
        json!(0.25)
    );
    assert_eq!(
        s.rest
            .get("contract/suggest?t=MN&l=3")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let me = s.rest.get("auth/me").await;
    assert_eq!(me["userId"], s.rest.user_id);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn sync_request_with_entity_types_filters_snapshot_and_events() {
    let s = setup("sync").await;
    s.rest
        .post(
            "order/placeorder",
            fixture_json("placeorder_market.json", &s.vars()),
        )
        .await;
    let mut ws = Ws::authorized(&s.sim.ws_url(), &s.rest.token).await;
    let r = ws
        .request(
            "user/syncrequest",
            "",
            &fixture("syncrequest_split_entity_types.json", &s.vars()),
        )
        .await;
    let d = &r["d"];
    assert!(d["users"].is_array());
    assert_eq!(d["orders"].as_array().unwrap().len(), 1);
    assert_eq!(d["positions"][0]["netPos"], 1);
    assert!(d.get("commands").is_none(), "commands were not asked for");
    s.rest
        .post(
            "order/placeorder",
            fixture_json("placeorder_market.json", &s.vars()),
        )
        .await;
    let events = ws.events_until(T, |e| kind(e).0 == "position").await;
    for e in &events {
        assert!(
            ["order", "fill", "position"].contains(&kind(e).0.as_str()),
            "{e}"
        );
    }
    s.sim.shutdown().await;
}
